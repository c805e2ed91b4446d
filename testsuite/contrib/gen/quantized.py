"""Quantized and fused matmul contrib ops: MatMulNBits, FusedMatMul, DynamicQuantizeMatMul, MatMulIntegerToFloat,
DynamicQuantizeLSTM and the QLinear* element-wise / pooling / concat ops. Each case row cites the onnxruntime
schema it was written from (onnxruntime/core/graph/contrib_ops/{contrib_defs,quantization_defs}.cc)."""
import os
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .common import (F32, I8, IR_VERSION, OPSET, U8, case, cases, check_close, ms, optional_input, rand_int, randn,
                     scalar, spec, uniform)

# ----------------------------------------------------------------------------- MatMulNBits


def quantize_nbits(w, block_size, with_zp, bits=4):
    """w: float [K, N] (as in MatMul(A, w)). Returns (B, scales, zero_points or None, dequantized w).

    Layout (contrib_defs.cc, MatMulNBits): B uint8 [N, n_blocks, block_size*bits/8], quantized along K, two 4-bit
    values per byte, the lower K index in the low nibble; scales [N * n_blocks] (n-major); zero_points uint8
    packed the same way per row n: [N * ceil(n_blocks*bits/8)], low nibble first. Without zero_points the
    zero point is 2^(bits-1) = 8. The last block is zero-padded when K % block_size != 0."""
    assert bits == 4
    K, N = w.shape
    nb = (K + block_size - 1) // block_size
    wt = np.zeros([N, nb * block_size], dtype=np.float32)
    wt[:, :K] = w.T
    blocks = wt.reshape(N, nb, block_size)
    if with_zp:
        lo = np.minimum(blocks.min(axis=2), 0.0)
        hi = np.maximum(blocks.max(axis=2), 0.0)
        scale = np.maximum((hi - lo) / 15.0, 1e-8).astype(np.float32)
        zp = np.clip(np.round(-lo / scale), 0, 15).astype(np.int32)
    else:
        scale = np.maximum(np.abs(blocks).max(axis=2) / 8.0, 1e-8).astype(np.float32)
        zp = np.full([N, nb], 8, dtype=np.int32)
    q = np.clip(np.round(blocks / scale[:, :, None]) + zp[:, :, None], 0, 15).astype(np.uint8)
    packed = (q[:, :, 0::2] | (q[:, :, 1::2] << 4)).astype(np.uint8)  # [N, nb, block_size/2]
    deq = ((q.astype(np.float32) - zp[:, :, None]) * scale[:, :, None]).reshape(N, nb * block_size)[:, :K].T
    zp_packed = None
    if with_zp:
        zpad = np.zeros([N, (nb + 1) // 2 * 2], dtype=np.uint8)
        zpad[:, :nb] = zp
        zp_packed = (zpad[:, 0::2] | (zpad[:, 1::2] << 4)).astype(np.uint8).reshape(-1)
    return packed, scale.reshape(-1), zp_packed, deq


def _matmulnbits(rng, note, a_shape, n, block_size, with_zp, bias=False):
    # contrib_defs.cc: MatMulNBits(A, B, scales, zero_points?, g_idx?, bias?), attributes K, N, bits, block_size
    k = a_shape[-1]
    a = randn(rng, a_shape)
    w = randn(rng, [k, n], 0.2)
    b, scales, zp, deq = quantize_nbits(w, block_size, with_zp)
    inits = [("B", b), ("scales", scales)]
    names = ["A", "B", "scales"]
    if with_zp:
        inits.append(("zero_points", zp))
        names.append("zero_points")
    if bias:
        optional_input(names, 5, "bias")
        inits.append(("bias", randn(rng, [n], 0.5)))
    node = ms("MatMulNBits", names, ["Y"], K=k, N=n, bits=4, block_size=block_size)
    out = spec("MatMulNBits", note, node, [("A", a)], [("Y", F32)], inits)
    out["check"] = lambda outs: check_close("MatMulNBits vs numpy dequantized matmul", outs[0],
                                            a @ deq + (inits[-1][1] if bias else 0), 1e-4)
    return out


# row: (name, note, A shape, N, block_size, with zero_points[, {bias}])
cases(_matmulnbits, [
    # contrib_defs.cc: MatMulNBits, 4 bits, block 16, packed uint8 zero points
    ("matmulnbits_b16_zp", "A [3,64], K=64 N=24 bits=4 block_size=16 (4 blocks), packed uint8 zero_points [24*2]",
     [3, 64], 24, 16, True),
    # contrib_defs.cc: MatMulNBits, block 16, no zero points (implicit 8)
    ("matmulnbits_b16", "K=64 N=24 bits=4 block_size=16, no zero_points (implicit zero point 8)",
     [3, 64], 24, 16, False),
    # contrib_defs.cc: MatMulNBits, block 32 with zero points
    ("matmulnbits_b32_zp", "K=64 N=24 bits=4 block_size=32 (2 blocks), packed zero_points [24*1]",
     [3, 64], 24, 32, True),
    # contrib_defs.cc: MatMulNBits, block 32 without zero points
    ("matmulnbits_b32", "K=64 N=24 bits=4 block_size=32, no zero_points", [3, 64], 24, 32, False),
    # contrib_defs.cc: MatMulNBits with the optional bias input (index 5; index 4 g_idx empty)
    ("matmulnbits_bias", "K=64 N=24 block_size=16 with zero_points and bias [24] (input 5)",
     [3, 64], 24, 16, True, dict(bias=True)),
    # contrib_defs.cc: MatMulNBits with an odd number of blocks: the last zero-point byte holds one nibble
    ("matmulnbits_k48_odd_blocks", "K=48 N=24 block_size=16 -> 3 blocks, zero_points [24*2] with a padding nibble",
     [3, 48], 24, 16, True),
    # contrib_defs.cc: MatMulNBits with K not a multiple of block_size (last block zero-padded)
    ("matmulnbits_k40_padded", "K=40 N=24 block_size=16 -> 3 blocks, last block half padding; zero_points",
     [3, 40], 24, 16, True),
    # contrib_defs.cc: MatMulNBits with 3-D A
    ("matmulnbits_3d", "A [2,3,64] (batched), K=64 N=24 block_size=32 with zero_points",
     [2, 3, 64], 24, 32, True),
])

# ----------------------------------------------------------------------------- FusedMatMul


def _fused(rng, note, a_shape, b_shape, **attrs):
    # contrib_defs.cc: FusedMatMul(A, B) = alpha * op(A) @ op(B), op = transpose of the last two axes if trans*
    a, b = randn(rng, a_shape), randn(rng, b_shape)
    node = ms("FusedMatMul", ["A", "B"], ["Y"], **attrs)
    return spec("FusedMatMul", note, node, [("A", a), ("B", b)], [("Y", F32)])


# row: (name, note, A shape, B shape, {attributes})
cases(_fused, [
    # contrib_defs.cc: FusedMatMul, alpha only
    ("fusedmatmul_alpha", "A [3,4] @ B [4,5] with alpha=0.5", [3, 4], [4, 5], dict(alpha=0.5)),
    # contrib_defs.cc: FusedMatMul, transA
    ("fusedmatmul_transa", "transA=1: A [4,3] -> [3,4], B [4,5], alpha=0.5", [4, 3], [4, 5],
     dict(alpha=0.5, transA=1)),
    # contrib_defs.cc: FusedMatMul, transB
    ("fusedmatmul_transb", "transB=1: A [3,4], B [5,4] -> [4,5], alpha=2.0", [3, 4], [5, 4],
     dict(alpha=2.0, transB=1)),
    # contrib_defs.cc: FusedMatMul, 3-D batched A with a 2-D B and both transposes
    ("fusedmatmul_batched", "batched A [2,4,3] with transA=1 and 2-D B [5,4] with transB=1, alpha=0.5",
     [2, 4, 3], [5, 4], dict(alpha=0.5, transA=1, transB=1)),
    # contrib_defs.cc: FusedMatMul, batched A and B broadcasting batch dims
    ("fusedmatmul_broadcast", "A [2,1,3,4] @ B [3,4,5] (batch broadcast to [2,3]), alpha=0.25",
     [2, 1, 3, 4], [3, 4, 5], dict(alpha=0.25)),
])

# ----------------------------------------------------------------------------- DynamicQuantizeMatMul

# int8 weights are kept within [-63, 63] (7 bits) in every case that multiplies them with uint8 data. On x86
# without AVX-VNNI, onnxruntime's u8s8 GEMM (pmaddubsw) saturates the int16 sum of two adjacent products, so
# 255*127 + 255*127 would come out clipped and the expected outputs would depend on the machine that made
# them; with |B| <= 63 the pair sum stays below 32767 and every machine computes the exact result.
B_S8_MAX = 63


def _b_scale(rng, n, per_column):
    return uniform(rng, [n], 0.005, 0.02) if per_column else scalar(0.01, F32)


def _dqmm(rng, note, b_dtype, a_shape=(3, 16), zp=None, bias=False, per_column=False):
    # quantization_defs.cc: DynamicQuantizeMatMul(A float, B int8|uint8, b_scale, b_zero_point?, bias?):
    # A is quantized to uint8 per tensor at run time, Y = (A_q - a_zp) a_scale @ (B - b_zp) b_scale + bias
    n = 8
    a = randn(rng, list(a_shape))
    if b_dtype == I8:
        b = rand_int(rng, [16, n], -B_S8_MAX, B_S8_MAX, I8)
    else:
        b = rand_int(rng, [16, n], 0, 255, U8)
    inits = [("B", b), ("b_scale", _b_scale(rng, n, per_column))]
    names = ["A", "B", "b_scale"]
    if zp is not None:
        inits.append(("b_zero_point", np.asarray(zp, dtype=b_dtype)))
        names.append("b_zero_point")
    if bias:
        optional_input(names, 4, "bias")
        inits.append(("bias", randn(rng, [n], 0.5)))
    node = ms("DynamicQuantizeMatMul", names, ["Y"])
    return spec("DynamicQuantizeMatMul", note, node, [("A", a)], [("Y", F32)], inits)


# row: (name, note, B dtype[, {options}])
cases(_dqmm, [
    # quantization_defs.cc: DynamicQuantizeMatMul, int8 B, per-tensor scale
    ("dqmatmul_s8", "A [3,16] float, B int8 [16,8], scalar b_scale, no zero point, no bias", I8),
    # quantization_defs.cc: DynamicQuantizeMatMul, uint8 B with zero point
    ("dqmatmul_u8_zp", "B uint8 [16,8] with scalar b_zero_point=131, scalar b_scale", U8, dict(zp=131)),
    # quantization_defs.cc: DynamicQuantizeMatMul, int8 B with zero point and bias
    ("dqmatmul_s8_zp_bias", "B int8 with scalar b_zero_point=-3 and bias [8]", I8, dict(zp=-3, bias=True)),
    # quantization_defs.cc: DynamicQuantizeMatMul, per-column b_scale / b_zero_point, 3-D A
    ("dqmatmul_per_column", "A [2,3,16]; B int8; per-column b_scale [8] and b_zero_point [8]; bias", I8,
     dict(a_shape=(2, 3, 16), zp=[0, 1, -1, 2, -2, 3, 0, -4], bias=True, per_column=True)),
])

# ----------------------------------------------------------------------------- MatMulIntegerToFloat


def _mmitf(rng, note, a_dtype, b_dtype, a_shape=(3, 16), zps=True, bias=True, per_column=False):
    # quantization_defs.cc: MatMulIntegerToFloat(A, B, a_scale, b_scale, a_zero_point?, b_zero_point?, bias?)
    # Y = (A - a_zp) * a_scale @ (B - b_zp) * b_scale + bias
    n = 8

    def ints(shape, dt, lim=128):
        return rand_int(rng, shape, -lim, lim - 1, I8) if dt == I8 else rand_int(rng, shape, 0, 255, U8)

    a, b = ints(list(a_shape), a_dtype), ints([16, n], b_dtype, B_S8_MAX + 1)
    inputs = [("A", a), ("a_scale", scalar(0.02, F32))]
    inits = [("B", b), ("b_scale", _b_scale(rng, n, per_column))]
    names = ["A", "B", "a_scale", "b_scale"]
    if zps:
        a_zp = scalar(120 if a_dtype == U8 else -5, a_dtype)
        b_zp = (np.array([125, 128, 130, 127, 126, 129, 131, 124], dtype=U8) if per_column else
                scalar(128 if b_dtype == U8 else 2, b_dtype))
        inputs.append(("a_zero_point", a_zp))
        inits.append(("b_zero_point", b_zp))
        names += ["a_zero_point", "b_zero_point"]
    if bias:
        optional_input(names, 6, "bias")
        inits.append(("bias", randn(rng, [n], 0.5)))
    node = ms("MatMulIntegerToFloat", names, ["Y"])
    return spec("MatMulIntegerToFloat", note, node, inputs, [("Y", F32)], inits)


# row: (name, note, A dtype, B dtype[, {options}])
cases(_mmitf, [
    # quantization_defs.cc: MatMulIntegerToFloat, uint8 A x int8 B with zero points and bias
    ("mmitf_u8s8", "A uint8 [3,16] (a_scale, a_zero_point graph inputs), B int8 [16,8], scalar b_scale, "
                   "b_zero_point, bias [8]", U8, I8),
    # quantization_defs.cc: MatMulIntegerToFloat, uint8 x uint8, per-column b_scale/b_zero_point, 3-D A
    ("mmitf_u8u8_per_column", "A uint8 [2,3,16] x B uint8 [16,8], per-column b_scale [8] and b_zero_point [8], no bias",
     U8, U8, dict(a_shape=(2, 3, 16), bias=False, per_column=True)),
    # quantization_defs.cc: MatMulIntegerToFloat, int8 x int8 without zero points
    ("mmitf_s8s8", "A int8 [3,16] x B int8 [16,8], no zero points, bias [8]", I8, I8, dict(zps=False)),
])

# ----------------------------------------------------------------------------- DynamicQuantizeLSTM


def _dqlstm(rng, note, batch, direction, initial_state=False):
    # quantization_defs.cc: DynamicQuantizeLSTM(X, W, R, B?, sequence_lens?, initial_h?, initial_c?, P?, W_scale,
    # W_zero_point, R_scale, R_zero_point) -> Y?, Y_h?, Y_c?.  The model is made the way
    # onnxruntime.quantization.quantize_dynamic makes it from a float ONNX LSTM: W int8 [dirs, input, 4*hidden]
    # and R int8 [dirs, hidden, 4*hidden] (transposed relative to ONNX LSTM), scales/zero points [dirs].
    from onnxruntime.quantization import QuantType, quantize_dynamic

    seq, inp, hid = 6, 8, 12
    nd = 2 if direction == "bidirectional" else 1
    x = randn(rng, [seq, batch, inp])
    w = randn(rng, [nd, 4 * hid, inp], 0.3)
    r = randn(rng, [nd, 4 * hid, hid], 0.3)
    b = randn(rng, [nd, 8 * hid], 0.1)
    inputs = [("X", x)]
    lstm_in = ["X", "W", "R", "B"]
    if initial_state:
        inputs += [("initial_h", randn(rng, [nd, batch, hid], 0.5)), ("initial_c", randn(rng, [nd, batch, hid], 0.5))]
        lstm_in += ["", "initial_h", "initial_c"]
    node = helper.make_node("LSTM", lstm_in, ["Y", "Y_h", "Y_c"], name="LSTM_0", hidden_size=hid, direction=direction)
    g_in = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape)) for n, a in inputs]
    g_out = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [seq, nd, batch, hid]),
             helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [nd, batch, hid]),
             helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [nd, batch, hid])]
    inits = [numpy_helper.from_array(a, n) for n, a in (("W", w), ("R", r), ("B", b))]
    graph = helper.make_graph([node], "lstm", g_in, g_out, inits)
    fmodel = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    fmodel.ir_version = IR_VERSION
    with tempfile.TemporaryDirectory() as tmp:
        fpath, qpath = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "quant.onnx")
        onnx.save(fmodel, fpath)
        # reduce_range: 7-bit weights, see B_S8_MAX above (the u8s8 saturation on x86 without VNNI)
        quantize_dynamic(fpath, qpath, weight_type=QuantType.QInt8, reduce_range=True)
        qmodel = onnx.load(qpath)
    ops = [n.op_type for n in qmodel.graph.node]
    if "DynamicQuantizeLSTM" not in ops:
        raise RuntimeError(f"quantize_dynamic produced {ops}, no DynamicQuantizeLSTM")
    qmodel.producer_name, qmodel.producer_version = "kiln-testsuite-contrib", ""
    qmodel.graph.name = "dqlstm"
    for t in qmodel.graph.initializer:
        if t.data_type == TensorProto.INT8 and np.abs(numpy_helper.to_array(t).astype(np.int32)).max() > B_S8_MAX + 1:
            raise RuntimeError(f"{t.name} has int8 values beyond +-{B_S8_MAX + 1}")
    others = [o for o in ops if o != "DynamicQuantizeLSTM"]
    full_note = note + (f"; quantize_dynamic also left: {', '.join(others)}" if others else
                        "; quantize_dynamic output, single node")
    return dict(op="DynamicQuantizeLSTM", note=full_note, model=qmodel, inputs=inputs,
                outputs=[("Y", F32), ("Y_h", F32), ("Y_c", F32)])


# row: (name, note, batch, direction[, {initial_state}])
cases(_dqlstm, [
    # quantization_defs.cc: DynamicQuantizeLSTM, forward
    ("dqlstm_forward", "quantize_dynamic(QInt8, reduce_range) of LSTM X [6,2,8], hidden 12, forward, with B",
     2, "forward"),
    # quantization_defs.cc: DynamicQuantizeLSTM, bidirectional
    ("dqlstm_bidirectional", "quantize_dynamic(QInt8, reduce_range) of LSTM X [6,2,8], hidden 12, bidirectional",
     2, "bidirectional"),
    # quantization_defs.cc: DynamicQuantizeLSTM with initial_h / initial_c graph inputs
    ("dqlstm_initial_state", "quantize_dynamic(QInt8, reduce_range) of LSTM X [6,1,8], hidden 12, forward, "
                             "initial_h/initial_c inputs", 1, "forward", dict(initial_state=True)),
])

# ----------------------------------------------------------------------------- QLinear* element-wise and pooling


def _qx(rng, shape, dtype):
    return rand_int(rng, shape, 0, 255, U8) if dtype == U8 else rand_int(rng, shape, -128, 127, I8)


def _qinits(names, values, dtype):
    """Scale / zero-point initializers: values alternate float scale, zero point of the case's dtype."""
    return [(n, scalar(v, F32 if i % 2 == 0 else dtype)) for i, (n, v) in enumerate(zip(names, values))]


def _qunary(rng, note, op, dtype, y_scale=1.0 / 256, y_zp=None, **attrs):
    # quantization_defs.cc: QLinear<op>(X, X_scale, X_zero_point?, Y_scale, Y_zero_point?)
    # x scale 0.05, x zero point 128 (uint8) / -3 (int8); y zero point default 0 (uint8) / -128 (int8)
    x_zp = 128 if dtype == U8 else -3
    if y_zp is None:
        y_zp = 0 if dtype == U8 else -128
    x = _qx(rng, [2, 3, 4, 5], dtype)
    names = ["X_scale", "X_zero_point", "Y_scale", "Y_zero_point"]
    node = ms(op, ["X"] + names, ["Y"], **attrs)
    return spec(op, note, node, [("X", x)], [("Y", dtype)], _qinits(names, [0.05, x_zp, y_scale, y_zp], dtype))


# row: (name, note, op, dtype[, {y_scale, y_zp, attributes}])
cases(_qunary, [
    # quantization_defs.cc: QLinearSigmoid uint8
    ("qlinearsigmoid_u8", "uint8 X [2,3,4,5], x scale 0.05 zp 128, y scale 1/256 zp 0", "QLinearSigmoid", U8),
    # quantization_defs.cc: QLinearSigmoid int8
    ("qlinearsigmoid_s8", "int8 X [2,3,4,5], x scale 0.05 zp -3, y scale 1/256 zp -128", "QLinearSigmoid", I8),
    # quantization_defs.cc: QLinearLeakyRelu uint8
    ("qlinearleakyrelu_u8", "uint8, alpha=0.1, x scale 0.05 zp 128, y scale 0.04 zp 100", "QLinearLeakyRelu", U8,
     dict(y_scale=0.04, y_zp=100, alpha=0.1)),
    # quantization_defs.cc: QLinearLeakyRelu int8 (default alpha 0.01)
    ("qlinearleakyrelu_s8", "int8, default alpha (0.01), x scale 0.05 zp -3, y scale 0.04 zp -20", "QLinearLeakyRelu",
     I8, dict(y_scale=0.04, y_zp=-20)),
])


def _qbinary(rng, note, op, dtype, a_shape, b_shape):
    # quantization_defs.cc: QLinearAdd / QLinearMul(A, A_scale, A_zero_point?, B, B_scale, B_zero_point?,
    # C_scale, C_zero_point?) with numpy broadcasting
    a, b = _qx(rng, a_shape, dtype), _qx(rng, b_shape, dtype)
    zps = [120, 130, 125] if dtype == U8 else [-4, 3, -2]
    c_scale = 0.6 if op == "QLinearMul" else 0.07
    names = ["A_scale", "A_zero_point", "B_scale", "B_zero_point", "C_scale", "C_zero_point"]
    node = ms(op, ["A", "A_scale", "A_zero_point", "B", "B_scale", "B_zero_point", "C_scale", "C_zero_point"], ["C"])
    inits = _qinits(names, [0.03, zps[0], 0.05, zps[1], c_scale, zps[2]], dtype)
    return spec(op, note, node, [("A", a), ("B", b)], [("C", dtype)], inits)


# row: (name, note, op, dtype, A shape, B shape)
cases(_qbinary, [
    # quantization_defs.cc: QLinearAdd uint8 with broadcasting
    ("qlinearadd_u8", "uint8 A [2,3,4] + B [4] (broadcast), distinct scales/zero points", "QLinearAdd", U8,
     [2, 3, 4], [4]),
    # quantization_defs.cc: QLinearAdd int8 same shape
    ("qlinearadd_s8", "int8 A [2,3,4] + B [2,3,4]", "QLinearAdd", I8, [2, 3, 4], [2, 3, 4]),
    # quantization_defs.cc: QLinearMul uint8 with broadcasting
    ("qlinearmul_u8", "uint8 A [2,3,4] * B [3,1] (broadcast)", "QLinearMul", U8, [2, 3, 4], [3, 1]),
    # quantization_defs.cc: QLinearMul int8
    ("qlinearmul_s8", "int8 A [2,3,4] * B [2,3,4]", "QLinearMul", I8, [2, 3, 4], [2, 3, 4]),
])


def _qgap(rng, note, dtype, shape, x_zp, y_zp, **attrs):
    # quantization_defs.cc: QLinearGlobalAveragePool(X, x_scale, x_zero_point, y_scale, y_zero_point), channels_last attr
    x = _qx(rng, shape, dtype)
    names = ["x_scale", "x_zero_point", "y_scale", "y_zero_point"]
    node = ms("QLinearGlobalAveragePool", ["X"] + names, ["Y"], **attrs)
    return spec("QLinearGlobalAveragePool", note, node, [("X", x)], [("Y", dtype)],
                _qinits(names, [0.05, x_zp, 0.02, y_zp], dtype))


# row: (name, note, dtype, X shape, x zero point, y zero point[, {attributes}])
cases(_qgap, [
    # quantization_defs.cc: QLinearGlobalAveragePool uint8 NCHW
    ("qlinearglobalavgpool_u8", "uint8 NCHW [1,3,4,4] -> [1,3,1,1], x scale 0.05 zp 128, y 0.02 zp 120",
     U8, [1, 3, 4, 4], 128, 120),
    # quantization_defs.cc: QLinearGlobalAveragePool, int8, channels_last=1 (NHWC)
    ("qlinearglobalavgpool_s8_nhwc", "int8 NHWC [2,3,3,4] with channels_last=1 -> [2,1,1,4]",
     I8, [2, 3, 3, 4], -3, 5, dict(channels_last=1)),
])


def _qconcat(rng, note, dtype):
    # quantization_defs.cc: QLinearConcat(Y_scale, Y_zero_point, (X_i, X_i_scale, X_i_zero_point)...), axis required
    x0, x1 = _qx(rng, [2, 3, 2], dtype), _qx(rng, [2, 5, 2], dtype)
    zps = [128, 120, 135] if dtype == U8 else [0, -8, 7]
    node = ms("QLinearConcat", ["Y_scale", "Y_zero_point", "X0", "X0_scale", "X0_zero_point",
                                "X1", "X1_scale", "X1_zero_point"], ["Y"], axis=1)
    names = ["Y_scale", "Y_zero_point", "X0_scale", "X0_zero_point", "X1_scale", "X1_zero_point"]
    inits = _qinits(names, [0.05, zps[0], 0.04, zps[1], 0.07, zps[2]], dtype)
    return spec("QLinearConcat", note, node, [("X0", x0), ("X1", x1)], [("Y", dtype)], inits)


cases(_qconcat, [
    # quantization_defs.cc: QLinearConcat uint8 (requantizes each input to the output scale)
    ("qlinearconcat_u8", "uint8 [2,3,2] ++ [2,5,2] on axis 1, three different scales/zero points", U8),
    # quantization_defs.cc: QLinearConcat int8
    ("qlinearconcat_s8", "int8 [2,3,2] ++ [2,5,2] on axis 1, three different scales/zero points", I8),
])
