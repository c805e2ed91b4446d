#!/usr/bin/env python3
"""Small ONNX convolutions with the shapes of the corpus's 16-bit tensor-core failures, written to
DIR/NAME.onnx for `kiln verify --precision fp16` on the GPU machine (which has onnx but no
network). Each model is one convolution (optionally after a depthwise one, as paddle's
MobileNet blocks have it) with seeded random weights.

    python3 testsuite/models/conv_probe.py DIR
"""
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# name: (N, Cin, H, W, Cout, kernel, pad, depthwise first)
CASES = {
    "v5det_3x3_96_24_160": (1, 96, 160, 160, 24, 3, 1, False),
    "c3x3_96_32_160": (1, 96, 160, 160, 32, 3, 1, False),
    "c3x3_64_24_160": (1, 64, 160, 160, 24, 3, 1, False),
    "c3x3_96_24_56": (1, 96, 56, 56, 24, 3, 1, False),
    "c3x3_64_64_56": (1, 64, 56, 56, 64, 3, 1, False),
    "c3x3_64_64_56_b4": (4, 64, 56, 56, 64, 3, 1, False),
    "rec_dw_1x1_32_64": (1, 32, 24, 160, 64, 1, 0, True),
    "rec_1x1_32_64": (1, 32, 24, 160, 64, 1, 0, False),
    "pico_dw_1x1_256_256": (1, 256, 50, 38, 256, 1, 0, True),
    "pico_1x1_256_256": (1, 256, 50, 38, 256, 1, 0, False),
}


def model(n, cin, h, w, cout, k, pad, dw, seed):
    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    x = "x"
    # An elementwise op first, as in the models (a convolution straight after the input is
    # left NCHW by the cost model: the input's cast and layout change would not pay).
    nodes.append(helper.make_node("Sigmoid", ["x"], ["s"]))
    x = "s"
    if dw:
        wd = (rng.standard_normal((cin, 1, 3, 3)) * 0.3).astype(np.float32)
        inits.append(numpy_helper.from_array(wd, "wd"))
        nodes.append(helper.make_node("Conv", [x, "wd"], ["d"], group=cin, kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", ["d"], ["dr"]))
        x = "dr"
    wc = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    inits += [numpy_helper.from_array(wc, "w"), numpy_helper.from_array(b, "b")]
    nodes.append(helper.make_node("Conv", [x, "w"], ["c"], kernel_shape=[k, k], pads=[pad] * 4))
    # A consumer the convolution's epilogue cannot take (the models' next op is a Resize).
    nodes.append(helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[2, 2], strides=[2, 2]))
    g = helper.make_graph(
        nodes,
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, cin, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def main():
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for i, (name, c) in enumerate(CASES.items()):
        onnx.save(model(*c, seed=i), out / f"{name}.onnx")
        print(name)


if __name__ == "__main__":
    main()
