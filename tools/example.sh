#!/usr/bin/env bash
# Imports the bundled narrow ResNet-18 (testsuite/golden), runs it in the reference
# interpreter and compares the logits with onnxruntime's.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/ensure-deps.sh
cargo build --release -q -p kiln
m=testsuite/golden/resnet18_narrow
./target/release/kiln inspect "$m/model.onnx"
./target/release/kiln run "$m/model.onnx" --input "input=$m/input_input.npy" --output-dir target/example-out
./target/release/kiln compare target/example-out/logits.npy "$m/output_0.npy"
