//! kiln's quantized products (`--quantize`, ir/src/ops/quant_matmul.rs) on CANN's quantized
//! matmuls, for fp16/bf16 activations (CANN's only ones for these ops):
//!
//! - `MatMulQ4` (W4A16) → `WeightQuantBatchMatmulV2`: y = x @ ((w + antiquant_offset) ·
//!   antiquant_scale) per group of `antiquant_group_size` rows of w (aclnnWeightQuantBatchMatmulV2).
//!   kiln's unsigned 4-bit values q with zero point z become w = q − 8 and offset 8 − z, so that
//!   (w + offset) · scale = (q − z) · scale. The weight is stored as int8 (values −8..7): how GE
//!   packs DT_INT4 constants is not pinned down in the sources kiln follows, and an int8 weight
//!   computes the same. Groups are multiples of 32 dividing K (the documented grouped case).
//! - `MatMulQ8` (W8A8) → `DynamicQuant` (per-token symmetric int8: scale = row_max(|x|) / 127,
//!   y = round(x / scale); aclnnDynamicQuant) and `QuantBatchMatmulV3` (x1 @ x2 in int32, times the
//!   per-channel `scale` and the per-token `pertoken_scale`, out in `dtype`; aclnnQuantMatmulV3).
//!
//! Activations of any rank are multiplied as [rows, K] and reshaped back.

use super::ops::{input, one, output, reshape, Outs};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::{DType, Data, Tensor};

/// Why the 910b cannot run a quantized product with activation `x` (None: it can).
pub fn refusal(x: DType, k: Option<usize>, group: Option<i64>) -> Option<String> {
    if !matches!(x, DType::F16 | DType::BF16) {
        return Some(format!("CANN's quantized matmuls take fp16/bf16 activations, not {x} (compile with --precision fp16)"));
    }
    match (group, k) {
        (Some(g), Some(k)) if g <= 0 || g % 32 != 0 || k % g as usize != 0 => {
            Some(format!("WeightQuantBatchMatmulV2 groups are multiples of 32 dividing K, not {g} of {k}"))
        }
        (Some(_), None) => Some("a W4A16 product whose K is not known".into()),
        _ => None,
    }
}

fn konst(cx: &mut Cx, name: &str, dims: Vec<usize>, d: Data) -> Result<Port, Fail> {
    let t = Tensor::new(dims, d).map_err(|e| Fail::Internal(e.to_string()))?;
    cx.constant(name, &t)
}

/// `x` as [rows, k].
fn rows(cx: &mut Cx, name: &str, x: Port, k: usize) -> Result<(Port, usize, Desc), Fail> {
    let xd = cx.desc(&x)?;
    let numel: i64 = xd.dims.iter().product();
    let m = (numel as usize).checked_div(k).unwrap_or(0);
    let x2 = reshape(cx, &format!("{name}/rows"), x, Desc::nd(xd.dtype, &[m, k]))?;
    Ok((x2, m, xd))
}

pub(super) fn matmul_q4(
    cx: &mut Cx,
    name: &str,
    group: i64,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let (Some(q), Some(s), Some(z)) =
        (consts.get(1).copied().flatten(), consts.get(2).copied().flatten(), consts.get(3).copied().flatten())
    else {
        return unsupported("a W4A16 product whose weights are computed at run time");
    };
    let (Data::U4(qv), Data::U4(zv)) = (q.data(), z.data()) else { return Err(Fail::Internal("MatMulQ4 weights that are not u4".into())) };
    let (k, n) = (q.dims()[0], q.dims()[1]);
    let x = input(ins, 0)?;
    let xdt = cx.desc(&x)?.dtype;
    if let Some(why) = refusal(xdt, Some(k), Some(group)) {
        return unsupported(why);
    }
    let groups = k / group as usize;
    let (x2, m, _) = rows(cx, name, x, k)?;
    let w = konst(cx, &format!("{name}/weight"), vec![k, n], Data::I8(qv.iter().map(|&v| v as i8 - 8).collect()))?;
    let scale = konst(cx, &format!("{name}/antiquant_scale"), vec![groups, n], Data::from_f64(xdt, &s.to_f64()))?;
    let offset: Vec<f64> = zv.iter().map(|&v| 8.0 - v as f64).collect();
    let offset = konst(cx, &format!("{name}/antiquant_offset"), vec![groups, n], Data::from_f64(xdt, &offset))?;
    let inputs = [
        ("x", Some(x2)),
        ("weight", Some(w)),
        ("antiquant_scale", Some(scale)),
        ("antiquant_offset", Some(offset)),
        ("quant_scale", None),
        ("quant_offset", None),
        ("bias", None),
    ];
    let attrs =
        vec![("transpose_x", Attr::Bool(false)), ("transpose_weight", Attr::Bool(false)), ("antiquant_group_size", Attr::Int(group))];
    let y = cx.op1(&format!("{name}/matmul"), "WeightQuantBatchMatmulV2", &inputs, Desc::nd(xdt, &[m, n]), attrs)?;
    one(reshape(cx, name, y, output(outs, 0)?)?)
}

pub(super) fn matmul_q8(
    cx: &mut Cx,
    name: &str,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let (Some(q), Some(s)) = (consts.get(1).copied().flatten(), consts.get(2).copied().flatten()) else {
        return unsupported("a W8A8 product whose weights are computed at run time");
    };
    let (k, n) = (q.dims()[0], q.dims()[1]);
    let x = input(ins, 0)?;
    let xdt = cx.desc(&x)?.dtype;
    if let Some(why) = refusal(xdt, Some(k), None) {
        return unsupported(why);
    }
    let (x2, m, _) = rows(cx, name, x, k)?;
    let i8_type = crate::ge::dtype::ge_type(DType::I8).ok_or_else(|| Fail::Internal("no DT_INT8".into()))?;
    let quantized = cx.op(
        &format!("{name}/quantize"),
        "DynamicQuant",
        &[("x", Some(x2)), ("smooth_scales", None), ("group_index", None)],
        vec![("y", Desc::nd(DType::I8, &[m, k])), ("scale", Desc::nd(DType::F32, &[m]))],
        vec![("dst_type", Attr::Int(i8_type.cpp))],
    )?;
    let [xq, token_scale] = &quantized[..] else { return Err(Fail::Internal("DynamicQuant made no y and scale".into())) };
    let w = cx.constant(&format!("{name}/weight"), q)?;
    let ws = konst(cx, &format!("{name}/scale"), vec![n], Data::F32(s.to_f64().iter().map(|&v| v as f32).collect()))?;
    let out_type = crate::ge::dtype::ge_type(xdt).ok_or_else(|| Fail::Internal(format!("no GE type for {xdt}")))?;
    let inputs = [
        ("x1", Some(xq.clone())),
        ("x2", Some(w)),
        ("scale", Some(ws)),
        ("offset", None),
        ("bias", None),
        ("pertoken_scale", Some(token_scale.clone())),
    ];
    let attrs = vec![("dtype", Attr::Int(out_type.cpp)), ("transpose_x1", Attr::Bool(false)), ("transpose_x2", Attr::Bool(false))];
    let y = cx.op1(&format!("{name}/matmul"), "QuantBatchMatmulV3", &inputs, Desc::nd(xdt, &[m, n]), attrs)?;
    one(reshape(cx, name, y, output(outs, 0)?)?)
}
