#!/usr/bin/env python3
"""Malformed variants of real models never crash kiln.

Each model (the golden models in testsuite/golden and the smallest fetched corpus models) is
mutated: truncated at several offsets, bytes flipped at random, graph-input dims set to 0,
-1 and 2^40, an input's or an initializer's dtype changed, an initializer's dims changed so
that they no longer match its data. Every variant goes through `kiln inspect`, `kiln compile
--target ref`, `kiln compile --target 910b` and `kiln run` (with the model's own inputs), each
under a memory limit and a timeout. A command must end with a result (exit 0) or an error
(exit 1 or 2, a message on stderr); a panic (exit 101, "panicked"), an abort or a signal, a
timeout, or running out of the memory limit is a failure, listed with the command that shows it.

  .venv/bin/python testsuite/models/mutate.py [--kiln target/debug/kiln] [--models N] [--cache DIR]
"""
from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
GOLDEN = REPO / "testsuite" / "golden"
MEMORY_LIMIT = 6 << 30  # bytes of address space per command
TIMEOUT = 120.0


def limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def models(cache: Path, n: int) -> list[tuple[str, Path, list[tuple[str, Path]]]]:
    """(name, model, [(input name, npy)]) for the goldens and the n smallest corpus models."""
    out = []
    for d in sorted(GOLDEN.iterdir()):
        if (d / "model.onnx").exists():
            m = onnx.load(str(d / "model.onnx"), load_external_data=False)
            ins = [(i.name, d / f"input_{i.name}.npy") for i in m.graph.input if (d / f"input_{i.name}.npy").exists()]
            out.append((f"golden/{d.name}", d / "model.onnx", ins))
    corpus = []
    for case in sorted(cache.glob("*/case.json")):
        c = json.loads(case.read_text())
        model = case.parent / c["model"]
        if model.exists() and not any(case.parent.glob("*.data")):
            corpus.append((model.stat().st_size, c["name"], model, [(i["name"], case.parent / i["file"]) for i in c["inputs"]]))
    for _, name, model, ins in sorted(corpus)[:n]:
        out.append((name, model, ins))
    return out


def variants(model: Path, rng: random.Random):
    """(what, bytes) for each malformed variant of `model`."""
    raw = model.read_bytes()
    for frac in (0.1, 0.5, 0.9):
        yield f"truncated at {int(len(raw) * frac)}", raw[: int(len(raw) * frac)]
    yield "truncated by one byte", raw[:-1]
    for k in range(3):
        b = bytearray(raw)
        for _ in range(16):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        yield f"16 bit flips (draw {k})", bytes(b)
    m = onnx.load_from_string(raw)
    for dim in (0, -1, 1 << 40):
        v = onnx.ModelProto()
        v.CopyFrom(m)
        for i in v.graph.input:
            for d in i.type.tensor_type.shape.dim:
                d.dim_value = dim
        yield f"every input dim {dim}", v.SerializeToString()
    v = onnx.ModelProto()
    v.CopyFrom(m)
    if v.graph.input:
        t = v.graph.input[0].type.tensor_type
        t.elem_type = onnx.TensorProto.INT64 if t.elem_type == onnx.TensorProto.FLOAT else onnx.TensorProto.FLOAT
        yield f"input {v.graph.input[0].name} of another dtype", v.SerializeToString()
    big = [t for t in m.graph.initializer if len(t.dims) >= 1]
    if big:
        t0 = max(big, key=lambda t: len(t.raw_data))
        for what, edit in (
            ("of another dtype", lambda t: setattr(t, "data_type", onnx.TensorProto.DOUBLE if t.data_type != onnx.TensorProto.DOUBLE else onnx.TensorProto.FLOAT)),
            ("with its first dim doubled", lambda t: t.dims.__setitem__(0, t.dims[0] * 2)),
            ("with a dim of 2^40", lambda t: t.dims.__setitem__(0, 1 << 40)),
            ("with a negative dim", lambda t: t.dims.__setitem__(0, -3)),
        ):
            v = onnx.ModelProto()
            v.CopyFrom(m)
            t = next(x for x in v.graph.initializer if x.name == t0.name)
            edit(t)
            yield f"initializer {t0.name} {what}", v.SerializeToString()


def check(cmd: list[str]) -> str | None:
    """None when the command ended with a result or an error; else what went wrong."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=limit_memory)
    except subprocess.TimeoutExpired:
        return f"no answer in {TIMEOUT:.0f} s"
    err = p.stderr[-400:].strip().replace("\n", " | ")
    if "panicked" in p.stderr or p.returncode == 101:
        return f"panic: {err}"
    if "memory allocation" in p.stderr and "failed" in p.stderr:
        return f"ran out of the {MEMORY_LIMIT >> 30} GiB limit: {err}"
    if p.returncode < 0:
        return f"killed by signal {-p.returncode}: {err}"
    if p.returncode not in (0, 1, 2):
        return f"exit {p.returncode}: {err}"
    if p.returncode != 0 and not p.stderr.strip():
        return f"exit {p.returncode} with no message"
    return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=str(REPO / "target" / "debug" / "kiln"))
    ap.add_argument("--cache", default=str(REPO / ".cache" / "models"))
    ap.add_argument("--models", type=int, default=8, help="how many of the smallest corpus models (default 8)")
    ap.add_argument("--seed", type=int, default=20261207)
    a = ap.parse_args()
    rng = random.Random(a.seed)
    failures, runs = [], 0
    with tempfile.TemporaryDirectory(prefix="kiln-mutate-") as tmp:
        t = Path(tmp)
        for name, model, ins in models(Path(a.cache), a.models):
            feeds = [x for n, f in ins for x in ("--input", f"{n}={f}")]
            for what, data in variants(model, rng):
                m = t / "m.onnx"
                m.write_bytes(data)
                cmds = [
                    [a.kiln, "inspect", str(m)],
                    [a.kiln, "compile", str(m), "--target", "ref", "-o", str(t / "ref.txt")],
                    [a.kiln, "compile", str(m), "--target", "910b", "-o", str(t / "bundle")],
                    [a.kiln, "run", str(m), *feeds, "--output-dir", str(t / "out")],
                ]
                for cmd in cmds:
                    runs += 1
                    bad = check(cmd)
                    if bad:
                        failures.append(f"{name}, {what}: `kiln {' '.join(cmd[1:3])}`: {bad}")
            print(f"{name}: done ({runs} commands so far, {len(failures)} failures)", flush=True)
    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    print(f"{runs} commands on malformed models, {len(failures)} crashed, hung or ran out of memory")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
