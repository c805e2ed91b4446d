#!/usr/bin/env bash
# Fetches the ONNX node test suite (the pinned onnx 1.20.0 wheel ships it) and the other
# pinned Python wheels the tests use, into .venv at the repository root.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
py="${PYTHON:-python3}"
if ! "$py" -m venv --help >/dev/null 2>&1; then
  echo "python3 with venv is required; on Debian: apt-get install -y python3 python3-venv" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r testsuite/requirements.txt
.venv/bin/python -c "import onnx, pathlib; p = pathlib.Path(onnx.__file__).parent / 'backend/test/data/node'; n = len(list(p.iterdir())); assert n == 1653, n; print(f'ONNX node suite: {n} cases at {p}')"
