#!/usr/bin/env python3
"""Generates kiln's node tests for onnxruntime's contrib operators (domain com.microsoft).

Every case is a tiny ONNX model holding one contrib node (for DynamicQuantizeLSTM, the model
exactly as onnxruntime's quantize_dynamic left it, which is that one node). The inputs
are random data from a fixed seed and the expected outputs are whatever onnxruntime's CPU
execution provider computes; onnxruntime is the reference. (The MatMulNBits cases are also
compared with a numpy dequantize-and-matmul, which confirms the weight packing written here.)

For each case the script writes <out>/<case>/:
    model.onnx        the model; weights the op normally takes as constants are initializers
    input_<k>.npy     one per graph input, k in graph-input order
    output_<k>.npy    one per graph output, k in graph-output order
    case.json         names, files, dtypes and shapes of the above, the onnxruntime version
                      and a one-line note of what the case covers

onnxruntime runs with CPUExecutionProvider, graph optimizations disabled and one intra-op
thread. A case onnxruntime refuses (at load or at run) is reported as SKIP and not written
(a stale folder of that name is removed). The graph outputs carry the shapes onnxruntime
produced (the model is run once without output shapes, rebuilt with them and run again;
both runs must agree bit for bit).

Randomness: each case draws from numpy.random.default_rng([20261207, crc32(case name)]),
so a case's data does not depend on which other cases exist or run.

Environment: onnx 1.20.0, onnxruntime 1.20.1, numpy (testsuite/requirements.txt).
Run from the repository root:
    .venv/bin/python testsuite/contrib/generate.py [--out testsuite/contrib] [--only SUBSTR ...]

Layout: this file is the entry point; the cases live in gen/:
    gen/common.py       case registry and seeding, model building, running onnxruntime, writing a case
    gen/transformer.py  GELU family, layer norms, EmbedLayerNormalization, Attention, MultiHeadAttention,
                        GroupQueryAttention, RotaryEmbedding
    gen/quantized.py    MatMulNBits, FusedMatMul, DynamicQuantizeMatMul, MatMulIntegerToFloat,
                        DynamicQuantizeLSTM, QLinear* ops
Each case carries a comment naming the onnxruntime schema file it was written from
(onnxruntime/core/graph/contrib_ops/{bert_defs,contrib_defs,quantization_defs}.cc).
"""
import argparse
import logging
import os
import sys

sys.dont_write_bytecode = True  # keep gen/__pycache__ out of the test-data folder

import onnxruntime as ort  # noqa: E402

# importing a module registers its cases; this order is the run (and print) order
from gen import transformer  # noqa: E402,F401
from gen import quantized  # noqa: E402,F401
from gen.common import generate  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=HERE, help="output folder (default: this script's folder)")
    ap.add_argument("--only", nargs="*", default=None, help="only cases whose name contains one of these")
    args = ap.parse_args()
    ort.set_default_logger_severity(4)  # refusals are reported on our own SKIP line
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's pre-processing hint
    generate(args.out, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
