"""Shared machinery for the contrib-op cases: the case registry, per-case seeding, model building,
running onnxruntime, and writing <out>/<case>/ (model.onnx, input_<k>.npy, output_<k>.npy, case.json)."""
import json
import os
import shutil
import zlib

import numpy as np
import onnx
from onnx import helper, numpy_helper
import onnxruntime as ort

SEED = 20261207
MS = "com.microsoft"
OPSET = 17
IR_VERSION = 8  # onnxruntime 1.20 reads up to IR 10; opset 17 needs IR 8

F32 = np.float32
I32 = np.int32
I64 = np.int64
U8 = np.uint8
I8 = np.int8

CASES = []


# ----------------------------------------------------------------------------- case registry


def case(name):
    def register(fn):
        CASES.append((name, fn))
        return fn

    return register


def cases(builder, rows):
    """Registers one case per row, in order: (name, note, *args[, {kwargs}]) -> builder(rng, note, *args, **kwargs)."""
    for name, note, *args in rows:
        kwargs = args.pop() if args and isinstance(args[-1], dict) else {}
        case(name)(lambda rng, note=note, args=tuple(args), kwargs=kwargs: builder(rng, note, *args, **kwargs))


def case_rng(name):
    """Each case draws from its own generator, so its data does not depend on which other cases exist or run."""
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


# ----------------------------------------------------------------------------- case building helpers


def spec(op, note, nodes, inputs, outputs, inits=(), opset=OPSET):
    """inputs/inits: [(name, ndarray)]; outputs: [(name, numpy dtype)]."""
    if not isinstance(nodes, (list, tuple)):
        nodes = [nodes]
    return dict(op=op, note=note, nodes=list(nodes), inputs=list(inputs), inits=list(inits),
                outputs=list(outputs), opset=opset)


def ms(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, name=op + "_0", domain=MS, **attrs)


def optional_input(names, index, name):
    """Pads names with empty (absent) optional inputs up to position index, then appends name."""
    names += [""] * (index - len(names)) + [name]


def randn(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def uniform(rng, shape, lo, hi):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def rand_int(rng, shape, lo, hi, dtype):
    """Integers in [lo, hi] inclusive."""
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)


def scalar(value, dtype):
    return np.array(value, dtype=dtype)


def right_padding_mask(shape, row, start):
    """int32 ones of shape [batch, seq] with mask[row, start:] = 0."""
    m = np.ones(shape, dtype=I32)
    m[row, start:] = 0
    return m


def rope_cache(max_pos, rot_dim, base=10000.0):
    """The usual cos/sin tables, shape [max_pos, rot_dim / 2]."""
    inv_freq = 1.0 / base ** (np.arange(0, rot_dim, 2, dtype=np.float64) / rot_dim)
    freqs = np.arange(max_pos, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)


def check_close(what, got, want, tol):
    err = float(np.max(np.abs(got - want)))
    scale = max(1.0, float(np.max(np.abs(want))))
    if err > tol * scale:
        raise AssertionError(f"{what}: max abs diff {err:.3g}")
    return f"numpy check max|diff|={err:.2g}"


# ----------------------------------------------------------------------------- models and onnxruntime


def np_to_onnx(dtype):
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def build_model(name, s, out_shapes=None):
    g_in = [helper.make_tensor_value_info(n, np_to_onnx(a.dtype), list(a.shape)) for n, a in s["inputs"]]
    g_out = [helper.make_tensor_value_info(n, np_to_onnx(dt), None if out_shapes is None else out_shapes[i])
             for i, (n, dt) in enumerate(s["outputs"])]
    inits = [numpy_helper.from_array(a, n) for n, a in s["inits"]]
    graph = helper.make_graph(s["nodes"], name, g_in, g_out, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", s["opset"]), helper.make_opsetid(MS, 1)],
                              producer_name="kiln-testsuite-contrib")
    model.ir_version = IR_VERSION
    return model


def run_ort(model, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(None, feeds)


def make_case(name, s):
    """Returns (model, outputs) after the two-run shape check."""
    feeds = {n: a for n, a in s["inputs"]}
    if "model" in s:
        model = s["model"]
        names, outs = run_ort(model, feeds)
        _, again = run_ort(model, feeds)
    else:
        names, outs = run_ort(build_model(name, s), feeds)
        model = build_model(name, s, [list(o.shape) for o in outs])
        names, again = run_ort(model, feeds)
    assert names == [n for n, _ in s["outputs"]], (names, s["outputs"])
    for o, p in zip(outs, again):
        if o.dtype != p.dtype or o.shape != p.shape or not np.array_equal(o, p, equal_nan=True):
            raise AssertionError("two onnxruntime runs disagree")
    for (n, dt), o in zip(s["outputs"], again):
        if o.dtype != np.dtype(dt):
            raise AssertionError(f"output {n}: dtype {o.dtype}, expected {np.dtype(dt)}")
        if o.dtype.kind == "f" and not np.all(np.isfinite(o)):
            raise AssertionError(f"output {n} has non-finite values")
    return model, again


# ----------------------------------------------------------------------------- writing a case


def case_json(name, op, meta_in, meta_out, note):
    """case.json text: plain JSON, one tensor entry per line."""
    def tensors(entries):
        return "[\n" + ",\n".join("  " + json.dumps(e) for e in entries) + "\n ]"

    return ("{\n"
            f' "name": {json.dumps(name)},\n'
            f' "op": {json.dumps(op)},\n'
            f' "inputs": {tensors(meta_in)},\n'
            f' "outputs": {tensors(meta_out)},\n'
            f' "onnxruntime": {json.dumps(ort.__version__)},\n'
            f' "note": {json.dumps(note)}\n'
            "}\n")


def _save_tensors(folder, prefix, named):
    """Writes <prefix>_<k>.npy for each (name, array) and returns their case.json entries."""
    meta = []
    for k, (n, a) in enumerate(named):
        np.save(os.path.join(folder, f"{prefix}_{k}.npy"), a)
        meta.append({"name": n, "file": f"{prefix}_{k}.npy", "dtype": str(a.dtype), "shape": list(a.shape)})
    return meta


def write_case(out_dir, name, s, model, outs):
    final = os.path.join(out_dir, name)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    onnx.save(model, os.path.join(tmp, "model.onnx"))
    meta_in = _save_tensors(tmp, "input", s["inputs"])
    meta_out = _save_tensors(tmp, "output", [(n, a) for (n, _), a in zip(s["outputs"], outs)])
    with open(os.path.join(tmp, "case.json"), "w") as f:
        f.write(case_json(name, s["op"], meta_in, meta_out, s["note"]))
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)


def fmt_shapes(items):
    return ",".join("x".join(map(str, a.shape)) or "scalar" for a in items)


def generate(out_dir, only=None):
    """Builds, runs and writes every registered case (or those whose name contains one of only); returns the
    names of the skipped cases."""
    os.makedirs(out_dir, exist_ok=True)
    ok, skipped = 0, []
    for name, build in CASES:
        if only and not any(sub in name for sub in only):
            continue
        rng = case_rng(name)
        op = "?"
        try:
            s = build(rng)
            op = s["op"]
            model, outs = make_case(name, s)
            extra = s["check"](outs) if "check" in s else ""
        except Exception as e:  # onnxruntime refused the case, or a self-check failed
            msg = " ".join(str(e).split())[:300]
            print(f"SKIP {name:30s} {op:34s} {type(e).__name__}: {msg}", flush=True)
            shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)
            skipped.append(name)
            continue
        write_case(out_dir, name, s, model, outs)
        ok += 1
        print(f"ok   {name:30s} {op:34s} in {fmt_shapes([a for _, a in s['inputs']])} -> out {fmt_shapes(outs)}"
              + (f"  ({extra})" if extra else ""), flush=True)
    print(f"{ok} cases written to {out_dir}, {len(skipped)} skipped" + (f": {' '.join(skipped)}" if skipped else ""))
    return skipped
