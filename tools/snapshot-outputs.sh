#!/usr/bin/env bash
# Writes what kiln emits for the six golden models into OUT_DIR: the optimized IR and PTX for
# sm_90 and sm_80 (fp32 and fp16) and the 910b bundles (fp32 and fp16). A change that must not
# alter behaviour (a refactoring) is checked byte for byte: run this before and after with the
# two builds, then `diff -r BEFORE AFTER`.
#
#   KILN=target/debug/kiln tools/snapshot-outputs.sh /tmp/before
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:?usage: tools/snapshot-outputs.sh OUT_DIR}"
kiln="${KILN:-$root/target/debug/kiln}"
py="$root/.venv/bin/python"
mkdir -p "$out"
for m in resnet18_narrow mobilenet_v2_narrow bert_tiny gpt2_tiny llama_tiny qwen2_tiny; do
  d="$root/testsuite/golden/$m"
  # --input-shape NAME=DIMS for every input_NAME.npy beside the model.
  mapfile -t shapes < <("$py" - "$d" <<'PY'
import sys, pathlib, numpy as np
for p in sorted(pathlib.Path(sys.argv[1]).glob("input_*.npy")):
    a = np.load(p)
    print("--input-shape=%s=%s" % (p.stem[len("input_"):], "x".join(map(str, a.shape))))
PY
  )
  for t in sm_90 sm_80; do
    for p in fp32 fp16; do
      "$kiln" compile "$d/model.onnx" --target "$t" --precision "$p" --emit opt-ir "${shapes[@]}" > "$out/$m.$t.$p.ir"
      "$kiln" compile "$d/model.onnx" --target "$t" --precision "$p" --emit ptx "${shapes[@]}" > "$out/$m.$t.$p.ptx"
    done
  done
  for p in fp32 fp16; do
    "$kiln" compile "$d/model.onnx" --target 910b --precision "$p" --emit opt-ir "${shapes[@]}" > "$out/$m.910b.$p.ir"
    "$kiln" compile "$d/model.onnx" --target 910b --precision "$p" "${shapes[@]}" -o "$out/$m.910b.$p" > /dev/null
  done
  echo "$m: done"
done
