#!/usr/bin/env python3
"""Run every corpus model (fetched by fetch.py) through kiln on every target it can check here,
and write the results table.

For each model in .cache/models/<name>/case.json:

- ref: ``kiln run`` in the reference interpreter, each output against onnxruntime's;
- sm_90: ``kiln compile --target sm_90`` (PTX assembled by ptxas when it is found; running it
  needs the GPU machine);
- 910b: ``kiln compile --target 910b``, then the bundle in the GE-graph simulator
  (``kiln run BUNDLE --target 910b-sim``), each output against onnxruntime's.

An output matches when max|kiln - ort| <= 1e-4 * max(max|ort|, 1e-3) (the floor: onnxruntime's
own sigmoid is coarse near 0, see ../../shared/TOOLCHAIN.md); 1e-2 for float16 outputs
(onnxruntime computes an fp16 model in fp32 on CPU, kiln rounds every op's result to fp16);
integer and bool outputs must be equal. A failure is classified as ``unsupported`` (kiln says the target lacks something),
``error`` (anything else kiln reports), ``PANIC`` or ``timeout``.

With --check FILE, the (model, target) pairs listed in FILE ("name target" per line) must
pass: the command fails naming each that does not, and reports pairs that pass without being
listed (bless them into FILE with --bless FILE).

Usage:
    .venv/bin/python testsuite/models/survey.py [--kiln target/debug/kiln] [--only NAME]...
        [--targets ref,sm_90,910b,910b-sim] [--timeout 600] [--json out.json]
        [--markdown docs/models.md] [--check FILE] [--bless FILE]

Targets: ref (interpreter vs onnxruntime), ref-fp16 (the interpreter on the model as
`--precision fp16` converts it, cosine >= 0.999 against onnxruntime: what fp16 itself does to the
model, which the GPU's fp16 kernels are checked against), sm_90 (compile), 910b (compile), 910b-sim
(compile and simulate vs onnxruntime); on the GPU machine sm_90-run (fp32 artifact run vs onnxruntime)
and sm_90-fp16 (fp16 artifact, cosine >= 0.999), under compute-sanitizer with --sanitize.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = REPO / ".cache" / "models"
TOLERANCE = 1e-4
TOLERANCE_F16 = 1e-2
FLOOR = 1e-3


def out_file(name: str) -> str:
    """The file `kiln run --output-dir` writes for output `name`."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name) + ".npy"


def run(cmd: list[str], timeout: float) -> tuple[str, str, float]:
    """(status, message, seconds): status ok, unsupported, error, PANIC or timeout."""
    start = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return "timeout", f"over {timeout:.0f} s", time.monotonic() - start
    took = time.monotonic() - start
    if p.returncode == 0:
        return "ok", "", took
    err = p.stderr.strip()
    # compute-sanitizer reports on stdout: its first findings say what failed.
    found = [l.strip("= ").strip() for l in p.stdout.splitlines() if l.startswith("========= ") and "COMPUTE-SANITIZER" not in l]
    if found:
        return "error", " | ".join(found[:4])[:400] + " | " + last_lines(err), took
    if "panicked" in err or p.returncode < 0 or p.returncode == 101:
        return "PANIC", last_lines(err), took
    low = err.lower()
    if any(k in low for k in ("unsupported", "cannot run", "no ascend lowering", "has no cuda kernel", "not built yet")):
        return "unsupported", last_lines(err), took
    return "error", last_lines(err), took


def last_lines(err: str) -> str:
    lines = [l.strip() for l in err.splitlines() if l.strip()]
    return " | ".join(lines[-3:])[:300]


def outputs(got_dir: Path, case: dict, case_dir: Path) -> list[tuple[str, "np.ndarray", "np.ndarray"]] | str:
    """(name, kiln's, onnxruntime's) for every output of `case`, or what is missing."""
    out = []
    for o in case["outputs"]:
        want = np.load(case_dir / o["file"])
        p = got_dir / out_file(o["name"])
        if not p.exists():
            return f"output {o['name']} was not written"
        got = np.load(p)
        if got.shape != want.shape:
            return f"output {o['name']}: shape {got.shape}, onnxruntime {want.shape}"
        out.append((o["name"], got, want))
    return out


def cosine_check(got_dir: Path, case: dict, case_dir: Path, floor: float = 0.999) -> tuple[str, str]:
    """(status, detail): every float output's cosine with onnxruntime's at least `floor` (the
    bar for reduced precision), other outputs equal."""
    outs = outputs(got_dir, case, case_dir)
    if isinstance(outs, str):
        return "error", outs
    worst = 1.0
    for name, got, want in outs:
        if want.dtype.kind in "fc":
            g, w = got.astype(np.float64).ravel(), want.astype(np.float64).ravel()
            if not np.all(np.isfinite(g)):
                return "wrong", f"output {name}: non-finite values"
            den = float(np.linalg.norm(g) * np.linalg.norm(w))
            cos = float(g @ w) / den if den > 0 else (1.0 if np.allclose(g, w) else 0.0)
            worst = min(worst, cos)
        elif int(np.sum(got != want)):
            return "wrong", f"output {name}: {int(np.sum(got != want))} of {want.size} differ"
    return ("ok" if worst >= floor else "wrong"), f"cosine {worst:.6f}"


def compare(got_dir: Path, case: dict, case_dir: Path) -> tuple[str, str]:
    """(status, detail) of every output of `case` written in got_dir against onnxruntime's."""
    outs = outputs(got_dir, case, case_dir)
    if isinstance(outs, str):
        return "error", outs
    worst = 0.0
    notes = []
    for name, got, want in outs:
        if want.dtype.kind in "fc":
            w = want.astype(np.float64)
            g = got.astype(np.float64)
            scale = max(float(np.max(np.abs(w))) if w.size else 0.0, FLOOR)
            if not np.all(np.isfinite(g) == np.isfinite(w)):
                return "wrong", f"output {name}: non-finite values differ"
            fin = np.isfinite(w)
            err = float(np.max(np.abs(g[fin] - w[fin]))) / scale if fin.any() else 0.0
            worst = max(worst, err)
            if err > (TOLERANCE_F16 if want.dtype == np.float16 else TOLERANCE):
                notes.append(f"{name} {err:.1e}")
        else:
            bad = int(np.sum(got != want))
            if bad:
                notes.append(f"{name}: {bad} of {want.size} differ")
    if notes:
        # A model whose onnxruntime outputs themselves move past the tolerance under last-bit
        # input noise (fetch.py's ulp_sensitivity: dynamically quantized recurrences) cannot
        # be matched at the tolerance by any other implementation: say so, with both numbers.
        noise = case.get("ulp_sensitivity", 0.0)
        if noise > TOLERANCE:
            return "ill-conditioned", f"{'; '.join(notes)} (onnxruntime moves {noise:.1e} under 1-ulp noise)"
        return "wrong", "; ".join(notes)
    return "ok", f"{worst:.1e}"


def survey(kiln: str, name: str, bound: set[str], targets: list[str], timeout: float, work: Path, sanitize: bool = False) -> dict:
    """`bound`: the inputs the manifest binds at compile time (`"bind": true`, a sample rate
    an If switches on), given with --input-value instead of --input."""
    d = CACHE / name
    case = json.loads((d / "case.json").read_text())
    model = str(d / case["model"])
    ins = []
    shapes = []
    for i in case["inputs"]:
        if i["name"] in bound:
            shapes += ["--input-value", f"{i['name']}={d / i['file']}"]
            ins += ["--input-value", f"{i['name']}={d / i['file']}"]
            continue
        ins += ["--input", f"{i['name']}={d / i['file']}"]
        shapes += ["--input-shape", f"{i['name']}={'x'.join(map(str, i['shape']))}"]
    r: dict = {"name": name}
    w = work / name
    w.mkdir(parents=True, exist_ok=True)
    if "ref" in targets:
        st, msg, t = run([kiln, "run", model, *ins, "--output-dir", str(w / "ref")], timeout)
        if st == "ok":
            st, msg = compare(w / "ref", case, d)
        r["ref"] = {"status": st, "detail": msg, "seconds": round(t, 2)}
    if "ref-fp16" in targets:
        st, msg, t = run([kiln, "run", model, *ins, "--precision", "fp16", "--output-dir", str(w / "ref-fp16")], timeout)
        if st == "ok":
            st, msg = cosine_check(w / "ref-fp16", case, d)
        r["ref-fp16"] = {"status": st, "detail": msg, "seconds": round(t, 2)}
    if "sm_90" in targets:
        st, msg, t = run([kiln, "compile", model, "--target", "sm_90", *shapes, "-o", str(w / "m.kiln")], timeout)
        r["sm_90"] = {"status": st, "detail": msg, "seconds": round(t, 2)}
    # On the GPU machine: the artifact run (compute-sanitizer memcheck with --sanitize), fp32
    # against onnxruntime at 1e-4 of scale, fp16 by cosine >= 0.999.
    gpu_ins = [x for k, x in enumerate(ins) if not (x == "--input-value" or (k > 0 and ins[k - 1] == "--input-value"))]
    san = ["compute-sanitizer", "--tool", "memcheck", "--error-exitcode", "3", "--print-limit", "3"] if sanitize else []
    for key, precision in (("sm_90-run", "fp32"), ("sm_90-fp16", "fp16")):
        if key not in targets:
            continue
        art = w / f"{precision}.kiln"
        st, msg, t = run([kiln, "compile", model, "--target", "sm_90", "--precision", precision, *shapes, "-o", str(art)], timeout)
        if st == "ok":
            st, msg, t = run([*san, kiln, "run", str(art), *gpu_ins, "--output-dir", str(w / key)], timeout)
            if st == "ok":
                st, msg = compare(w / key, case, d) if precision == "fp32" else cosine_check(w / key, case, d)
        r[key] = {"status": st, "detail": msg, "seconds": round(t, 2)}
    if "910b" in targets or "910b-sim" in targets:
        st, msg, t = run([kiln, "compile", model, "--target", "910b", *shapes, "-o", str(w / "bundle")], timeout)
        r["910b"] = {"status": st, "detail": msg, "seconds": round(t, 2)}
        if st == "ok" and "910b-sim" in targets:
            # The bundle has the bound inputs built in.
            fed = [x for k, x in enumerate(ins) if not (x == "--input-value" or (k > 0 and ins[k - 1] == "--input-value"))]
            st, msg, t = run([kiln, "run", str(w / "bundle"), "--target", "910b-sim", *fed, "--output-dir", str(w / "sim")], timeout)
            if st == "ok":
                st, msg = compare(w / "sim", case, d)
            r["910b-sim"] = {"status": st, "detail": msg, "seconds": round(t, 2)}
    return r


def cell(r: dict, key: str) -> str:
    c = r.get(key)
    if c is None:
        return "–"
    if c["status"] == "ok":
        return f"ok {c['detail']}" if c["detail"] else "ok"
    detail = c["detail"].replace("|", "/")
    return f"**{c['status']}**: {detail[:160]}"


def reason(detail: str) -> str:
    """A failure's cause without the model's own names: what groups models by failure class."""
    d = re.sub(r"^error: ", "", detail.split(" | ")[-1] if "caused by" in detail else detail)
    d = re.sub(r"caused by: ", "", d)
    d = re.sub(r"node `[^`]*`", "node", d)
    d = re.sub(r"/\S+", "PATH", d)
    return d[:110]


KEYS = ("ref", "ref-fp16", "sm_90", "sm_90-run", "sm_90-fp16", "910b", "910b-sim")


def markdown(results: list[dict], manifest: dict, commit: str | None) -> str:
    meta = {m["name"]: m for m in manifest["models"]}
    if not commit:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    lines = [
        "# The real-model corpus on every target",
        "",
        f"Generated by `.venv/bin/python testsuite/models/survey.py --markdown docs/models.md` on "
        f"{time.strftime('%Y-%m-%d')} (kiln {commit}, {os.cpu_count()} CPU cores). The models, their "
        "packages and how inputs are made: [testsuite/models/README.md](../testsuite/models/README.md). "
        "ref and 910b-sim compare every output with onnxruntime's (CPU, ORT_DISABLE_ALL): max |kiln - ort| "
        "over max(max |ort|, 1e-3), at most 1e-4 (1e-2 for float16 outputs, which onnxruntime computes in "
        "fp32); the figure shown is the worst output's. **ill-conditioned** marks a model whose onnxruntime "
        "outputs themselves move past that bound when every float input (or, for integer inputs, every float "
        "weight) moves by one unit in the last place (fetch.py's ulp_sensitivity, shown with the error): "
        "dynamically quantized models re-round their activations, so no other implementation can match them "
        "at 1e-4. int8 weights of integer products are re-encoded as uint8 for onnxruntime's reference, the "
        "same function (its AVX2 u8xs8 kernel saturates int16 pair sums). ref fp16 runs the interpreter on the model as "
        "`--precision fp16` converts it (every op's result rounded to f16) and needs cosine >= 0.999 with onnxruntime's "
        "outputs: what fp16 itself does to the model. sm_90 and 910b are compiles (ptxas assembles the "
        "sm_90 PTX). The sm_90 run columns come from the GPU machine (`testsuite/models/gpu.sh` through the device "
        "tool, merged with `--merge gpu.jsonl`; an H100, each artifact run under compute-sanitizer memcheck): fp32 "
        "against onnxruntime at 1e-4, fp16 by cosine >= 0.999; each cell names the kiln it ran, and fixes made after "
        "it are not measured there; – where the model was not carried there (64 MiB a call). CI checks the pairs in `testsuite/models/expected.txt` (ref, sm_90, 910b) with "
        "`testsuite/models/check.sh`.",
        "",
        "| model | package | exporter | family | ref (vs onnxruntime) | ref fp16 (cosine) | sm_90 compile | sm_90 fp32 run | sm_90 fp16 run (cosine) | 910b compile | 910b-sim (vs onnxruntime) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = meta.get(r["name"], {})
        pkg = f"derived from {m['derived_from']}" if "derived_from" in m else f"{m.get('package', '?')}=={m.get('version', '?')}"
        lines.append(
            f"| {r['name']} | {pkg} | {m.get('exporter', '?')} | {m.get('family', '?')} | {cell(r, 'ref')} | {cell(r, 'ref-fp16')} | {cell(r, 'sm_90')} "
            f"| {cell(r, 'sm_90-run')} | {cell(r, 'sm_90-fp16')} | {cell(r, '910b')} | {cell(r, '910b-sim')} |"
        )
    counts = []
    for key in KEYS:
        n = sum(1 for r in results if key in r)
        ok = sum(1 for r in results if r.get(key, {}).get("status") == "ok")
        if n:
            counts.append(f"{key}: {ok} of {n}")
    lines += ["", "Passing: " + "; ".join(counts) + ".", "", "## Failures by cause", ""]
    for key in KEYS:
        groups: dict[str, list[str]] = {}
        for r in results:
            c = r.get(key)
            if c and c["status"] != "ok":
                groups.setdefault(f"{c['status']}: {reason(c['detail'])}", []).append(r["name"])
        for why, names in sorted(groups.items(), key=lambda g: -len(g[1])):
            lines.append(f"- **{key}**, {len(names)} model(s): {why.replace('|', '/')} ({', '.join(names)})")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln", default=str(REPO / "target" / "debug" / "kiln"))
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--targets", default="ref,sm_90,910b,910b-sim")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--json")
    ap.add_argument("--from-json", help="tabulate a previous run's --json output instead of running kiln")
    ap.add_argument("--kiln-commit", help="the commit the surveyed kiln was built from (default: HEAD)")
    ap.add_argument(
        "--merge",
        action="append",
        default=[],
        help="FILE[@COMMIT]: survey lines from the GPU machine (gpu.sh's gpu.jsonl; later files win) whose sm_90-run and "
        "sm_90-fp16 results join the table, marked with the commit of the kiln that ran them",
    )
    ap.add_argument("--markdown")
    ap.add_argument("--cache", help="where the fetched models are (default .cache/models)")
    ap.add_argument("--sanitize", action="store_true", help="run GPU artifacts under compute-sanitizer memcheck")
    ap.add_argument("--check")
    ap.add_argument("--bless")
    a = ap.parse_args()
    global CACHE
    if a.cache:
        CACHE = Path(a.cache).resolve()
    manifest = json.loads((HERE / "manifest.json").read_text())
    names = [m["name"] for m in manifest["models"] if not a.only or m["name"] in a.only]
    missing = [n for n in names if not (CACHE / n / "case.json").exists()]
    if missing:
        print(f"not fetched: {', '.join(missing)} (run testsuite/models/fetch.py)", file=sys.stderr)
        return 2
    targets = a.targets.split(",")
    results = []
    to_run = names
    if a.from_json:
        results = [r for r in json.loads(Path(a.from_json).read_text()) if r["name"] in names]
        to_run = []
    with tempfile.TemporaryDirectory(prefix="kiln-survey-") as tmp:
        for n in to_run:
            bound = {i["name"] for m in manifest["models"] if m["name"] == n for i in m["inputs"] if i.get("bind")}
            r = survey(a.kiln, n, bound, targets, a.timeout, Path(tmp), a.sanitize)
            results.append(r)
            print(json.dumps(r), flush=True)
    gpu: dict[str, dict] = {}
    for spec in a.merge:
        f, _, commit = spec.partition("@")
        for line in Path(f).read_text().splitlines():
            if line.startswith("{"):
                r = json.loads(line)
                for k in ("sm_90-run", "sm_90-fp16"):
                    if k in r:
                        c = dict(r[k])
                        c["detail"] = f"{c['detail']} (kiln {commit})" if commit else c["detail"]
                        gpu.setdefault(r["name"], {})[k] = c
    for r in results:
        r.update(gpu.get(r["name"], {}))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1) + "\n")
    if a.markdown:
        Path(a.markdown).write_text(markdown(results, manifest, a.kiln_commit))
    passing = {(r["name"], k) for r in results for k in ("ref", "sm_90", "910b", "910b-sim") if r.get(k, {}).get("status") == "ok"}
    if a.bless:
        Path(a.bless).write_text("".join(f"{n} {k}\n" for n, k in sorted(passing)))
    if a.check:
        listed = {tuple(l.split()) for l in Path(a.check).read_text().splitlines() if l.strip()}
        checked = {(n, k) for (n, k) in listed if n in names and k in targets}
        lost = sorted(checked - passing)
        new = sorted(p for p in passing - listed if p[1] in targets)
        for n, k in new:
            print(f"newly passing (bless it into {a.check}): {n} {k}")
        for n, k in lost:
            r = next(r for r in results if r["name"] == n)
            print(f"REGRESSION: {n} {k}: {r.get(k, {}).get('status', 'not run')}: {r.get(k, {}).get('detail', '')}", file=sys.stderr)
        print(f"{len(checked) - len(lost)} of {len(checked)} listed (model, target) pairs pass")
        if lost:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
