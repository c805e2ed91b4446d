#!/usr/bin/env bash
# The corpus on the GPU machine (the device tool): every model in CACHE run compiled for sm_90 in
# fp32 (against onnxruntime's outputs, 1e-4 of scale) and fp16 (cosine >= 0.999) under
# compute-sanitizer memcheck, then `kiln verify` in both precisions (the first kernel that drifts
# from the interpreter) on the models that failed (VERIFY=all: on every model), then racecheck
# on the fp16 artifacts of RACE models.
#
#   testsuite/models/gpu.sh CACHE KILN_XZ OUT [MODEL...]
#
# CACHE holds fetch.py's per-model folders (a carried subset of .cache/models; NAME.tar.xz packs of
# them are unpacked first: images and feature maps halve under xz), KILN_XZ a stripped,
# xz-compressed kiln (the GPU machine has no Rust), OUT where the logs go. Writes OUT/gpu.jsonl
# (survey's lines), OUT/verify.log and OUT/race.log.
set -uo pipefail
cache=$1 xz=$2 out=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
python3 -c "import lzma,sys; open('/tmp/kiln','wb').write(lzma.open(sys.argv[1]).read())" "$xz" && chmod +x /tmp/kiln
export PATH=$PATH:/usr/local/cuda/bin LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}:$cache
if compgen -G "$cache/*.tar.xz" >/dev/null; then
    mkdir -p /tmp/gpu-cache && cp -r "$cache"/. /tmp/gpu-cache/
    for p in "$cache"/*.tar.xz; do tar xJf "$p" -C /tmp/gpu-cache; done
    cache=/tmp/gpu-cache
fi
models=("$@")
[ ${#models[@]} -gt 0 ] || models=($(cd "$cache" && for d in */; do [ -f "$d/case.json" ] && echo "${d%/}"; done))
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
only=()
for m in "${models[@]}"; do only+=(--only "$m"); done
PYTHONUNBUFFERED=1 python3 "$here/survey.py" --kiln /tmp/kiln --cache "$cache" "${only[@]}" \
    --targets sm_90-run,sm_90-fp16 --sanitize --timeout 120 | tee "$out/gpu.jsonl"
# kiln verify (the first kernel that drifts from the interpreter) on the models whose runs
# failed, or on every model with VERIFY=all; inputs the manifest binds go as --input-value.
for m in "${models[@]}"; do
    if [ "${VERIFY:-failed}" != all ] && python3 - "$out/gpu.jsonl" "$m" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
r = next((r for r in rows if r["name"] == sys.argv[2]), {})
sys.exit(0 if r and all(v.get("status") == "ok" for k, v in r.items() if k != "name") else 1)
PY
    then
        continue
    fi
    args=$(python3 - "$cache/$m" "$here/manifest.json" <<'PY'
import json, sys
d = sys.argv[1]
case = json.load(open(f"{d}/case.json"))
bound = {i["name"] for m in json.load(open(sys.argv[2]))["models"] if m["name"] == case["name"] for i in m["inputs"] if i.get("bind")}
flag = lambda n: "--input-value" if n in bound else "--input"
print(" ".join(f"{flag(i['name'])} {i['name']}={d}/{i['file']}" for i in case["inputs"]), f"{d}/{case['model']}")
PY
)
    for p in fp32 fp16; do
        echo "== verify $m $p" | tee -a "$out/verify.log"
        timeout 200 /tmp/kiln verify $args --precision $p >>"$out/verify.log" 2>&1
    done
done
# racecheck (shared-memory hazards) on the fp16 artifacts of the models named in RACE.
for m in ${RACE:-}; do
    args=$(python3 -c "import json,sys; d=sys.argv[1]; c=json.load(open(d+'/case.json')); print(' '.join('--input %s=%s/%s' % (i['name'], d, i['file']) for i in c['inputs']))" "$cache/$m")
    shapes=$(python3 -c "import json,sys; c=json.load(open(sys.argv[1]+'/case.json')); print(' '.join('--input-shape %s=%s' % (i['name'], 'x'.join(map(str, i['shape']))) for i in c['inputs']))" "$cache/$m")
    echo "== racecheck $m" | tee -a "$out/race.log"
    /tmp/kiln compile "$cache/$m/model.onnx" --target sm_90 --precision fp16 $shapes -o /tmp/race.kiln >>"$out/race.log" 2>&1 || continue
    timeout 300 compute-sanitizer --tool racecheck --print-limit 5 /tmp/kiln run /tmp/race.kiln $args --output-dir /tmp/race-out 2>&1 | tail -n 15 >>"$out/race.log"
done
