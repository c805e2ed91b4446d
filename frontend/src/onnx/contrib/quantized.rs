//! The quantized contrib ops of ORT's quantization tools and LLM exporters
//! (quantization_defs.cc, contrib_defs.cc, matmul_nbits docs): integer products that end in
//! float, the QLinear elementwise family (dequantize, compute, quantize: what ORT's lookup
//! tables and kernels compute), MatMulNBits (block-quantized weights, dequantized at import)
//! and DynamicQuantizeLSTM (ONNX's LSTM with dequantized weights, its products' inputs
//! quantized per product as ORT's kernel does).

use super::cast;
use crate::onnx::node::{unsupported, Cx, LowerError, Out, R};
use kiln_ir::ops::{PoolKind, ReduceKind};
use kiln_ir::{BinaryOp, DType, Data, Op, Tensor, ValueId};

fn dequantize(cx: &mut Cx, x: ValueId, scale: ValueId, zp: Option<ValueId>) -> Result<ValueId, LowerError> {
    cx.emit(Op::DequantizeLinear { axis: 1, block_size: 0, output_dtype: None }, vec![Some(x), Some(scale), zp])
}

/// Quantizes `f` to the dtype of `like` (ORT's QLinear ops keep their input's 8-bit type).
fn quantize(cx: &Cx, f: ValueId, scale: ValueId, zp: Option<ValueId>, like: ValueId) -> R {
    let op = Op::QuantizeLinear { axis: 1, saturate: true, block_size: 0, output_dtype: Some(cx.dtype(like)) };
    Ok(Out::Node(op, vec![Some(f), Some(scale), zp]))
}

/// QLinearSigmoid, QLinearLeakyRelu: inputs X, X_scale, X_zero_point?, Y_scale, Y_zero_point?.
pub(crate) fn qlinear_unary(cx: &mut Cx, op: Op) -> R {
    let x = cx.req(0)?;
    let d = dequantize(cx, x, cx.req(1)?, cx.inp(2))?;
    let f = cx.emit(op, vec![Some(d)])?;
    quantize(cx, f, cx.req(3)?, cx.inp(4), x)
}

/// QLinearAdd, QLinearMul: inputs A, A_scale, A_zero_point?, B, B_scale, B_zero_point?,
/// C_scale, C_zero_point?.
pub(crate) fn qlinear_binary(cx: &mut Cx, op: BinaryOp) -> R {
    let a = cx.req(0)?;
    let da = dequantize(cx, a, cx.req(1)?, cx.inp(2))?;
    let db = dequantize(cx, cx.req(3)?, cx.req(4)?, cx.inp(5))?;
    let f = cx.bin(op, da, db)?;
    quantize(cx, f, cx.req(6)?, cx.inp(7), a)
}

/// QLinearConcat: inputs Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) per input.
pub(crate) fn qlinear_concat(cx: &mut Cx) -> R {
    let axis = cx.a.opt_i("axis")?.ok_or_else(|| LowerError::Invalid("QLinearConcat needs axis".into()))?;
    if cx.ins.len() < 5 || !(cx.ins.len() - 2).is_multiple_of(3) {
        return Err(LowerError::Invalid(format!("{} inputs: want Y_scale, Y_zero_point and triples", cx.ins.len())));
    }
    let first = cx.req(2)?;
    let mut parts = vec![];
    for k in (2..cx.ins.len()).step_by(3) {
        parts.push(Some(dequantize(cx, cx.req(k)?, cx.req(k + 1)?, cx.inp(k + 2))?));
    }
    let f = cx.emit(Op::Concat { axis }, parts)?;
    quantize(cx, f, cx.req(0)?, cx.inp(1), first)
}

/// QLinearGlobalAveragePool: inputs X, x_scale, x_zero_point, y_scale, y_zero_point;
/// channels_last picks NHWC.
pub(crate) fn qlinear_global_average_pool(cx: &mut Cx) -> R {
    let x = cx.req(0)?;
    let d = dequantize(cx, x, cx.req(1)?, cx.inp(2))?;
    let f = if cx.b("channels_last", false)? {
        let r = cx.rank(x) as i64;
        if r < 3 {
            return Err(LowerError::Invalid(format!("X must have rank 3 or more, got {r}")));
        }
        let axes = cx.ints_const("axes", &(1..r - 1).collect::<Vec<_>>());
        cx.emit(Op::Reduce { kind: ReduceKind::Mean, keepdims: true, noop_with_empty_axes: false }, vec![Some(d), Some(axes)])?
    } else {
        cx.emit(Op::GlobalPool { kind: PoolKind::Average, p: 2 }, vec![Some(d)])?
    };
    quantize(cx, f, cx.req(3)?, cx.inp(4), x)
}

/// The integer product `prod` (i32) as float: prod * (a_scale * b_scale) (+ bias), in ORT's
/// order (the scales multiplied first, quantization_defs.cc: MatMulIntegerToFloat).
fn integer_product_to_float(cx: &mut Cx, prod: ValueId, a_scale: ValueId, b_scale: ValueId, bias: Option<ValueId>) -> R {
    let f = cast(cx, prod, cx.dtype(a_scale))?;
    let scale = cx.bin(BinaryOp::Mul, a_scale, b_scale)?;
    match bias {
        Some(b) => {
            let y = cx.bin(BinaryOp::Mul, f, scale)?;
            Ok(Out::Node(Op::Binary { op: BinaryOp::Add }, vec![Some(y), Some(b)]))
        }
        None => Ok(Out::Node(Op::Binary { op: BinaryOp::Mul }, vec![Some(f), Some(scale)])),
    }
}

/// DynamicQuantizeMatMul: inputs A (float), B (8-bit), b_scale, b_zero_point?, bias?; A is
/// quantized to u8 with its own range (DynamicQuantizeLinear), then an integer product.
pub(crate) fn dynamic_quantize_matmul(cx: &mut Cx) -> R {
    let q = cx.emit_n(Op::DynamicQuantizeLinear {}, vec![Some(cx.req(0)?)], 3)?;
    let prod = cx.emit(Op::MatMulInteger {}, vec![Some(q[0]), Some(cx.req(1)?), Some(q[2]), cx.inp(3)])?;
    integer_product_to_float(cx, prod, q[1], cx.req(2)?, cx.inp(4))
}

/// MatMulIntegerToFloat: inputs A, B, a_scale, b_scale, a_zero_point?, b_zero_point?, bias?.
pub(crate) fn matmul_integer_to_float(cx: &mut Cx) -> R {
    let prod = cx.emit(Op::MatMulInteger {}, vec![Some(cx.req(0)?), Some(cx.req(1)?), cx.inp(4), cx.inp(5)])?;
    integer_product_to_float(cx, prod, cx.req(2)?, cx.req(3)?, cx.inp(6))
}

/// FusedMatMul (contrib_defs.cc): alpha * op(A) op(B), op a transpose of the last two axes
/// with transA / transB.
pub(crate) fn fused_matmul(cx: &mut Cx) -> R {
    if cx.i("transBatchA", 0)? != 0 || cx.i("transBatchB", 0)? != 0 {
        return unsupported("FusedMatMul with transBatchA or transBatchB");
    }
    let mut ab = [cx.req(0)?, cx.req(1)?];
    for (k, flag) in ["transA", "transB"].iter().enumerate() {
        if cx.b(flag, false)? {
            let r = cx.rank(ab[k]);
            if r < 2 {
                return Err(LowerError::Invalid(format!("{flag} on an input of rank {r}")));
            }
            let mut perm: Vec<i64> = (0..r as i64).collect();
            perm.swap(r - 2, r - 1);
            ab[k] = cx.emit(Op::Transpose { perm }, vec![Some(ab[k])])?;
        }
    }
    let alpha = cx.f("alpha", 1.0)?;
    if alpha == 1.0 {
        return Ok(Out::Node(Op::MatMul {}, vec![Some(ab[0]), Some(ab[1])]));
    }
    let y = cx.emit(Op::MatMul {}, vec![Some(ab[0]), Some(ab[1])])?;
    let a = cx.scalar_const("alpha", cx.dtype(y), alpha as f64);
    Ok(Out::Node(Op::Binary { op: BinaryOp::Mul }, vec![Some(y), Some(a)]))
}

fn constant(cx: &Cx, id: ValueId, what: &str) -> Result<std::sync::Arc<Tensor>, LowerError> {
    cx.const_of(id).ok_or_else(|| LowerError::Unsupported(format!("{what} that is not a constant (an initializer)")))
}

/// MatMulNBits (contrib_defs.cc, docs/ContribOperators.md): A [.., K] times a weight of K x N
/// stored as `bits`-bit integers in blocks of `block_size` along K: B [N, K/block_size,
/// block_size*bits/8] u8, little end first; scales [N * blocks]; zero_points? u8 packed the
/// same way per row ([N * ceil(blocks*bits/8)]) or float like the scales, 2^(bits-1) when
/// absent; g_idx? (not taken); bias? [N]. 4 bits with integer zero points import as kiln's
/// MatMulQ4 (the weight stays 4-bit); otherwise the weight is dequantized at import, in the
/// scales' type, (q - zp) * scale as ORT does, and the product is an ordinary MatMul.
pub(crate) fn matmul_nbits(cx: &mut Cx) -> R {
    if cx.inp(4).is_some() {
        return unsupported("MatMulNBits with g_idx (act-order)");
    }
    let (k, n, bits, bs) = (cx.i("K", 0)?, cx.i("N", 0)?, cx.i("bits", 4)?, cx.i("block_size", 0)?);
    if !matches!(bits, 2 | 4 | 8) || k <= 0 || n <= 0 || bs < 16 || bs & (bs - 1) != 0 {
        return Err(LowerError::Invalid(format!(
            "K {k}, N {n}, bits {bits}, block_size {bs} (bits 2, 4 or 8; block_size a power of 2 >= 16)"
        )));
    }
    let (k, n, bits, bs) = (k as usize, n as usize, bits as usize, bs as usize);
    let blocks = k.div_ceil(bs);
    let blob = bs * bits / 8;
    let b = constant(cx, cx.req(1)?, "MatMulNBits' B")?;
    let scales = constant(cx, cx.req(2)?, "MatMulNBits' scales")?;
    let zp = match cx.inp(3) {
        Some(z) => Some(constant(cx, z, "MatMulNBits' zero_points")?),
        None => None,
    };
    let Data::U8(q) = b.data() else { return Err(LowerError::Invalid(format!("B must be u8, got {}", b.dtype()))) };
    if q.len() != n * blocks * blob {
        return Err(LowerError::Invalid(format!("B has {} bytes, want N*blocks*blob = {n}*{blocks}*{blob}", q.len())));
    }
    let sv = scales.to_f64();
    if sv.len() != n * blocks {
        return Err(LowerError::Invalid(format!("scales has {} values, want N*blocks = {}", sv.len(), n * blocks)));
    }
    let per_byte = 8 / bits;
    let mask = (1u32 << bits) - 1;
    let unpack = |bytes: &[u8], i: usize| ((bytes[i / per_byte] as u32 >> ((i % per_byte) * bits)) & mask) as f32;
    let zp_row = blocks.div_ceil(per_byte);
    let zero_point = |row: usize, blk: usize| -> Result<f32, LowerError> {
        match zp.as_deref() {
            None => Ok((1u32 << (bits - 1)) as f32),
            Some(z) => match z.data() {
                Data::U8(v) if v.len() == n * zp_row => Ok(unpack(&v[row * zp_row..(row + 1) * zp_row], blk)),
                Data::U8(v) => Err(LowerError::Invalid(format!("zero_points has {} bytes, want {}", v.len(), n * zp_row))),
                _ if z.numel() == n * blocks => Ok(z.to_f64()[row * blocks + blk] as f32),
                _ => Err(LowerError::Invalid(format!("zero_points has {} values, want {}", z.numel(), n * blocks))),
            },
        }
    };
    let a = cx.req(0)?;
    // 4-bit with integer zero points: kiln's W4A16 product (MatMulQ4), the weight kept packed
    // as it is; a target without its kernel takes the dequantized form (rules/quant.rs).
    let zeros: Option<Vec<u8>> = (0..n * blocks)
        .map(|i| zero_point(i % n, i / n).ok().filter(|z| z.fract() == 0.0 && (0.0..=15.0).contains(z)).map(|z| z as u8))
        .collect();
    if let (4, Some(zeros)) = (bits, zeros) {
        let mut qv = vec![0u8; k * n];
        for row in 0..n {
            for blk in 0..blocks {
                let bytes = &q[(row * blocks + blk) * blob..][..blob];
                for j in 0..bs.min(k - blk * bs) {
                    qv[(blk * bs + j) * n + row] = unpack(bytes, j) as u8;
                }
            }
        }
        let st: Vec<f64> = (0..n * blocks).map(|i| sv[(i % n) * blocks + i / n]).collect();
        let tensor = |dims: Vec<usize>, d: Data| Tensor::new(dims, d).map_err(|e| LowerError::Invalid(e.to_string()));
        let qid = cx.konst("weight_q4", tensor(vec![k, n], Data::U4(qv))?);
        let sid = cx.konst("scales", tensor(vec![blocks, n], Data::from_f64(scales.dtype(), &st))?);
        let zid = cx.konst("zero_points", tensor(vec![blocks, n], Data::U4(zeros))?);
        let op = Op::MatMulQ4 { group_size: bs as i64 };
        let ins = vec![Some(a), Some(qid), Some(sid), Some(zid)];
        return match cx.inp(5) {
            Some(bias) => {
                let y = cx.emit(op, ins)?;
                Ok(Out::Node(Op::Binary { op: BinaryOp::Add }, vec![Some(y), Some(bias)]))
            }
            None => Ok(Out::Node(op, ins)),
        };
    }
    let mut w = vec![0f64; k * n];
    for row in 0..n {
        for blk in 0..blocks {
            let (s, z) = (sv[row * blocks + blk] as f32, zero_point(row, blk)?);
            let bytes = &q[(row * blocks + blk) * blob..][..blob];
            for j in 0..bs.min(k - blk * bs) {
                w[(blk * bs + j) * n + row] = ((unpack(bytes, j) - z) * s) as f64;
            }
        }
    }
    let dt = scales.dtype();
    let wt = Tensor::new(vec![k, n], Data::from_f64(dt, &w)).map_err(|e| e.to_string())?;
    let wid = cx.konst("weight", wt);
    match cx.inp(5) {
        Some(bias) => {
            let y = cx.emit(Op::MatMul {}, vec![Some(a), Some(wid)])?;
            Ok(Out::Node(Op::Binary { op: BinaryOp::Add }, vec![Some(y), Some(bias)]))
        }
        None => Ok(Out::Node(Op::MatMul {}, vec![Some(a), Some(wid)])),
    }
}

/// A DynamicQuantizeLSTM weight, [dirs, rows, 4H] 8-bit with scale and zero point per
/// direction or per (direction, column), as ONNX's float LSTM weight [dirs, 4H, rows].
fn lstm_weight(cx: &Cx, w: ValueId, scale: ValueId, zp: ValueId, what: &str) -> Result<Tensor, LowerError> {
    let (w, s, z) = (constant(cx, w, what)?, constant(cx, scale, what)?, constant(cx, zp, what)?);
    let &[dirs, rows, cols] = w.dims() else { return Err(LowerError::Invalid(format!("{what} must be rank 3, got {:?}", w.dims()))) };
    let (wv, sv, zv) = (w.to_f64(), s.to_f64(), z.to_f64());
    let per_col = match sv.len() {
        x if x == dirs => false,
        x if x == dirs * cols => true,
        x => return Err(LowerError::Invalid(format!("{what}'s scale has {x} values, want {dirs} or {}", dirs * cols))),
    };
    if zv.len() != sv.len() {
        return Err(LowerError::Invalid(format!("{what}'s zero point has {} values, its scale {}", zv.len(), sv.len())));
    }
    let mut out = vec![0f64; dirs * cols * rows];
    for d in 0..dirs {
        for c in 0..cols {
            let p = if per_col { d * cols + c } else { d };
            let (s, z) = (sv[p] as f32, zv[p] as f32);
            for r in 0..rows {
                out[(d * cols + c) * rows + r] = ((wv[(d * rows + r) * cols + c] as f32 - z) * s) as f64;
            }
        }
    }
    Tensor::new(vec![dirs, cols, rows], Data::from_f64(DType::F32, &out)).map_err(|e| LowerError::Invalid(e.to_string()))
}

/// DynamicQuantizeLSTM (quantization_defs.cc): ONNX's LSTM with W [dirs, input, 4H] and
/// R [dirs, H, 4H] 8-bit, then W_scale, W_zero_point, R_scale, R_zero_point as inputs 8..11.
/// ORT quantizes each product's activation input to u8 with its own range (X for all steps
/// at once, H at every step; rnn_helpers.cc ComputeGemm): the IR LSTM's `dynamic_quant`.
pub(crate) fn dynamic_quantize_lstm(cx: &mut Cx) -> R {
    let w = lstm_weight(cx, cx.req(1)?, cx.req(8)?, cx.req(9)?, "W")?;
    let r = lstm_weight(cx, cx.req(2)?, cx.req(10)?, cx.req(11)?, "R")?;
    let (wid, rid) = (cx.konst("W", w), cx.konst("R", r));
    let mut ins = cx.ins.clone();
    ins.truncate(8);
    ins[1] = Some(wid);
    ins[2] = Some(rid);
    match crate::onnx::lowerings::recurrent(cx, "lstm")? {
        Out::Node(mut op @ Op::LSTM { .. }, _) => {
            if let Op::LSTM { dynamic_quant, .. } = &mut op {
                *dynamic_quant = true;
            }
            Ok(Out::Node(op, ins))
        }
        _ => Err(LowerError::Invalid("internal: the LSTM lowering returned another op".into())),
    }
}
