#!/usr/bin/env bash
# kiln's test command: prepares a fresh machine (linker, toolchain, pinned Python wheels with
# the ONNX node suite) and runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh --python
cargo test --workspace "$@"
