#!/usr/bin/env bash
# The real-model corpus as a regression check (CI runs it after the README's test command):
# fetches the pinned models and onnxruntime's references (tools/ensure-deps.sh --python makes
# the venv), then runs every model in the interpreter against onnxruntime and compiles it for
# sm_90 and 910b; every (model, target) pair listed in testsuite/models/expected.txt must pass.
# Then malformed variants of the golden models and the 8 smallest corpus models (mutate.py) go
# through inspect, compile and run: each command must end with a result or an error.
# The GE-graph simulation of each 910b bundle (target 910b-sim) takes longer: run
#   .venv/bin/python testsuite/models/survey.py --markdown docs/models.md
# for the whole table.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/python testsuite/models/fetch.py
# The test profile: the artifacts `cargo test --workspace` has just built (target/debug).
cargo build --profile test -p kiln
.venv/bin/python testsuite/models/survey.py --kiln target/debug/kiln --targets ref,sm_90,910b --check testsuite/models/expected.txt "$@"
.venv/bin/python testsuite/models/mutate.py --kiln target/debug/kiln --models 8
