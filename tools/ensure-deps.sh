#!/usr/bin/env bash
# Makes a fresh Debian machine with rustup ready to build and test kiln:
# a C linker for rustc, LLVM 19 for the CUDA backend, the pinned Rust toolchain, and (with --python)
# the Python venv with the pinned wheels that the tests use (the ONNX node suite ships in
# onnx==1.20.0; ptxas in nvidia-cuda-nvcc==13.0.88).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing: $* (install them with your package manager)" >&2
    exit 1
  fi
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

command -v cc >/dev/null 2>&1 || apt_install gcc libc6-dev
# The AscendC CPU model (backends/ascend/ascendc_model) compiles kiln's kernels with g++ (12+: _Float16).
command -v g++ >/dev/null 2>&1 || apt_install g++

# The CUDA backend links LLVM 19 statically through inkwell (.cargo/config.toml points
# llvm-sys at /usr/lib/llvm-19); Debian 12 ships it in main.
if [ ! -x /usr/lib/llvm-19/bin/llvm-config ] || [ ! -e /usr/lib/llvm-19/lib/libPolly.a ]; then
  apt_install llvm-19-dev libpolly-19-dev libzstd-dev libz3-dev libxml2-dev libffi-dev zlib1g-dev
fi

# rust-toolchain.toml pins 1.95.0; offline machines whose stable *is* 1.95.0 can link it.
want="$(sed -n 's/^channel = "\(.*\)"/\1/p' rust-toolchain.toml)"
if ! rustup run "$want" rustc --version >/dev/null 2>&1; then
  stable="$(rustup run stable rustc --version 2>/dev/null || true)"
  if [[ "$stable" == "rustc $want "* ]]; then
    rustup toolchain link "$want" "$(rustup run stable rustc --print sysroot)"
  else
    rustup toolchain install "$want" --profile minimal --component rustfmt,clippy
  fi
fi

if [ "${1:-}" = "--python" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c "import ensurepip" >/dev/null 2>&1; then
    apt_install python3 python3-venv python3-pip
  fi
  testsuite/fetch-onnx-suite.sh
fi
