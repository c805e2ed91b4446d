//! CANN's quantized products as their documentation gives them (the formulas of
//! aclnnDynamicQuant, aclnnQuantMatmulV3 and aclnnWeightQuantBatchMatmulV2): the cases kiln
//! emits (lower/quantized_products.rs), 2-D operands, no transposes; anything else is an error
//! naming what is not simulated.

use super::{round, OpCx, SimError, Value};
use kiln_ir::DType;

pub(crate) fn eval(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    match cx.op.r#type.as_str() {
        "DynamicQuant" => dynamic_quant(cx),
        "QuantBatchMatmulV3" => quant_batch_matmul(cx).map(|v| vec![v]),
        "WeightQuantBatchMatmulV2" => weight_quant_batch_matmul(cx).map(|v| vec![v]),
        t => cx.err(format!("{t} is not an op of quant.rs")),
    }
}

/// [m, k] of a 2-D operand.
fn two_d(cx: &OpCx, v: &Value, what: &str) -> Result<(usize, usize), SimError> {
    match v.dims[..] {
        [m, k] => Ok((m, k)),
        _ => cx.err(format!("{what} of dims {:?}: only 2-D operands are simulated", v.dims)),
    }
}

/// Per token (row) symmetric int8: scale = row_max(|x|) / 127, y = round(x / scale) (half to
/// even, CANN's Round). A row of zeros (scale 0; the documentation says nothing) gives y = 0.
fn dynamic_quant(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    let x = cx.input(0)?;
    if cx.opt(1).is_some() || cx.opt(2).is_some() {
        return cx.err("smooth_scales and group_index are not simulated");
    }
    if cx.int("dst_type")? != crate::ge::dtype::ge_type(DType::I8).map_or(-1, |t| t.cpp) {
        return cx.err("a dst_type other than DT_INT8 is not simulated");
    }
    let Some((&k, rows)) = x.dims.split_last() else { return cx.err("a scalar input") };
    if rows.is_empty() {
        return cx.err("x must have rank >= 2");
    }
    let m: usize = rows.iter().product();
    let (mut y, mut scales) = (vec![0.0; m * k], vec![0.0; m]);
    for r in 0..m {
        let row = &x.data[r * k..(r + 1) * k];
        // In f32, as the hardware computes.
        let s = round(DType::F32, row.iter().fold(0f64, |a, v| a.max(v.abs())) / 127.0);
        scales[r] = s;
        if s > 0.0 {
            for (o, v) in y[r * k..(r + 1) * k].iter_mut().zip(row) {
                *o = round(DType::F32, v / s).round_ties_even().clamp(-128.0, 127.0);
            }
        }
    }
    Ok(vec![Value::new(DType::I8, x.dims.clone(), y), Value::new(DType::F32, rows.to_vec(), scales)])
}

/// y = (x1 @ x2) · scale[n] · pertoken_scale[m] (+ bias), the product exact in int32, out in
/// `dtype`.
fn quant_batch_matmul(cx: &OpCx) -> Result<Value, SimError> {
    let (a, b, scale) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    if cx.bool("transpose_x1")? || cx.bool("transpose_x2")? || cx.opt(3).is_some() || cx.opt(4).is_some() {
        return cx.err("transposes, offset and bias are not simulated");
    }
    let ((m, k), (k2, n)) = (two_d(cx, a, "x1")?, two_d(cx, b, "x2")?);
    if k != k2 || a.dtype != DType::I8 || b.dtype != DType::I8 {
        return cx.err(format!("x1 {}{:?} and x2 {}{:?}", a.dtype, a.dims, b.dtype, b.dims));
    }
    let per_token = cx.opt(5);
    if scale.data.len() != n && scale.data.len() != 1 || per_token.is_some_and(|p| p.data.len() != m) {
        return cx.err(format!("scale of {} values for {n} columns, pertoken_scale for {m} rows", scale.data.len()));
    }
    let out = crate::ge::dtype::from_cpp(cx.int("dtype")?).ok_or_else(|| SimError::Graph("QuantBatchMatmulV3: no dtype".into()))?;
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let acc: f64 = (0..k).map(|l| a.data[i * k + l] * b.data[l * n + j]).sum();
            let s = scale.data[if scale.data.len() == 1 { 0 } else { j }];
            y[i * n + j] = acc * s * per_token.map_or(1.0, |p| p.data[i]);
        }
    }
    Ok(Value::new(out, vec![m, n], y))
}

/// y = x @ ((weight + antiquant_offset) · antiquant_scale), the dequantized weight in x's
/// dtype; the scale and offset per column ([n] or [1, n]) or per group of
/// `antiquant_group_size` rows ([k / group, n]).
fn weight_quant_batch_matmul(cx: &OpCx) -> Result<Value, SimError> {
    let (x, w, scale) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    if cx.bool("transpose_x")? || cx.bool("transpose_weight")? || (4..7).any(|i| cx.opt(i).is_some()) {
        return cx.err("transposes, quant_scale, quant_offset and bias are not simulated");
    }
    let ((m, k), (k2, n)) = (two_d(cx, x, "x")?, two_d(cx, w, "weight")?);
    if k != k2 || !matches!(x.dtype, DType::F16 | DType::BF16) || !matches!(w.dtype, DType::I8 | DType::I4) {
        return cx.err(format!("x {}{:?} and weight {}{:?}", x.dtype, x.dims, w.dtype, w.dims));
    }
    let group = cx.int("antiquant_group_size")?;
    let groups = if group > 0 { k.div_ceil(group as usize) } else { 1 };
    let offset = cx.opt(3);
    if scale.data.len() != groups * n || offset.is_some_and(|o| o.data.len() != groups * n) {
        return cx.err(format!("antiquant_scale of {} values for {groups} group(s) of {n} columns", scale.data.len()));
    }
    let g = |l: usize| if group > 0 { l / group as usize } else { 0 };
    let deq: Vec<f64> = (0..k * n)
        .map(|i| {
            let (l, j) = (i / n, i % n);
            let p = g(l) * n + j;
            round(x.dtype, (w.data[i] + offset.map_or(0.0, |o| o.data[p])) * scale.data[p])
        })
        .collect();
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            y[i * n + j] = (0..k).map(|l| x.data[i * k + l] * deq[l * n + j]).sum();
        }
    }
    Ok(Value::new(x.dtype, vec![m, n], y))
}
