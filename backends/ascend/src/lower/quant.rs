//! ONNX's quantization ops composed from CANN built-ins, with ONNX's rounding (half to even,
//! CANN's Round) and saturation (ClipByValue before the Cast; QLinearMatMul wraps, as ONNX's
//! reference and kiln's interpreter do): QuantizeLinear and
//! DequantizeLinear (per tensor, per axis, blocked), DynamicQuantizeLinear, QLinearMatMul,
//! QLinearConv, MatMulInteger and ConvInteger (the integer products computed in fp32, exact while every
//! partial sum stays below 2^24).
//!
//! AscendQuant/AscendDequant are the fused forms kiln's own quantization passes target; they
//! take one scale and offset as attributes and fp16 data, so the general ONNX forms are built
//! from their parts instead.

use super::conv;
use super::ops::{cast, input, one, output, reshape, Outs};
use super::transformer::{broadcast, cast_to};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::ops::{quantized_range as range_of, Format, Window};
use kiln_ir::{DType, Tensor};

fn bin(cx: &mut Cx, name: &str, ty: &str, a: Port, b: Port, d: &Desc) -> Result<Port, Fail> {
    cx.op1(name, ty, &[("x1", Some(a)), ("x2", Some(b))], d.clone(), vec![])
}

fn un(cx: &mut Cx, name: &str, ty: &str, x: Port, d: &Desc) -> Result<Port, Fail> {
    cx.op1(name, ty, &[("x", Some(x))], d.clone(), vec![])
}

fn with_dtype(d: &Desc, t: DType) -> Desc {
    Desc { dtype: t, ..d.clone() }
}

/// A scale or zero point shaped to broadcast over `x` (`dims`): a scalar as is, a per-axis
/// vector as `[n, 1, ...]` at `axis`, a blocked one repeated `block` times along `axis`.
fn param(cx: &mut Cx, name: &str, p: Port, dims: &[i64], axis: i64, block: i64) -> Result<Port, Fail> {
    let pd = cx.desc(&p)?;
    let n: i64 = pd.dims.iter().product();
    if n == 1 {
        return Ok(p);
    }
    let r = dims.len() as i64;
    let a = usize::try_from(if axis < 0 { axis + r } else { axis }).ok().filter(|&a| a < dims.len());
    let Some(a) = a else { return Err(Fail::Internal(format!("axis {axis} of a rank-{r} input"))) };
    if pd.dims.len() <= 1 && block <= 0 {
        let shape: Vec<usize> = (0..dims.len()).map(|i| if i == a { n as usize } else { 1 }).collect();
        return reshape(cx, &format!("{name}_axis"), p, Desc::nd(pd.dtype, &shape));
    }
    if block <= 0 || pd.dims.len() != dims.len() || pd.dims[a] * block != dims[a] {
        return unsupported(format!("a blocked quantization parameter {:?} for {dims:?} (block {block})", pd.dims));
    }
    let mut split = pd.dims.clone();
    split.insert(a + 1, 1);
    let one = reshape(cx, &format!("{name}_split"), p, Desc::nd(pd.dtype, &split.iter().map(|&v| v as usize).collect::<Vec<_>>()))?;
    split[a + 1] = block;
    let wide = broadcast(cx, &format!("{name}_repeat"), one, &split)?;
    reshape(cx, &format!("{name}_blocked"), wide, Desc::nd(pd.dtype, &dims.iter().map(|&v| v as usize).collect::<Vec<_>>()))
}

/// `clip(round(v) + zp, lo, hi)` cast to `out` (v in a float dtype).
fn round_clip_cast(cx: &mut Cx, name: &str, v: Port, zp: Option<Port>, out: Desc) -> Result<Port, Fail> {
    let vd = cx.desc(&v)?;
    let Some((lo, hi)) = range_of(out.dtype) else { return unsupported(format!("quantizing to {}", out.dtype)) };
    let at = |s: &str| format!("{name}/{s}");
    let mut q = un(cx, &at("round"), "Round", v, &vd)?;
    if let Some(z) = zp {
        let z = cast_to(cx, &at("zero_point"), z, vd.dtype)?;
        q = bin(cx, &at("shift"), "Add", q, z, &vd)?;
    }
    let (l, h) = (cx.scalar(&at("lo"), vd.dtype, lo)?, cx.scalar(&at("hi"), vd.dtype, hi)?);
    let q =
        cx.op1(&at("saturate"), "ClipByValue", &[("x", Some(q)), ("clip_value_min", Some(l)), ("clip_value_max", Some(h))], vd, vec![])?;
    cast(cx, name, q, out)
}

pub(super) fn quantize(cx: &mut Cx, name: &str, axis: i64, block: i64, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    if !xd.dtype.is_float() {
        return unsupported(format!("QuantizeLinear of {}", xd.dtype));
    }
    let at = |s: &str| format!("{name}/{s}");
    let s = param(cx, &at("scale"), input(ins, 1)?, &xd.dims, axis, block)?;
    let s = cast_to(cx, &at("scale_cast"), s, xd.dtype)?;
    // x / scale rounds in x's dtype, as ONNX computes it.
    let v = bin(cx, &at("scaled"), "RealDiv", x, s, &xd)?;
    let zp = match ins.get(2).cloned().flatten() {
        Some(z) => Some(param(cx, &at("zp"), z, &xd.dims, axis, block)?),
        None => None,
    };
    round_clip_cast(cx, name, v, zp, out)
}

pub(super) fn dequantize(cx: &mut Cx, name: &str, axis: i64, block: i64, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    if xd.dtype.is_float() || xd.dtype == DType::Bool {
        return unsupported(format!("DequantizeLinear of {}", xd.dtype));
    }
    let at = |s: &str| format!("{name}/{s}");
    let f = with_dtype(&xd, DType::F32);
    let mut v = cast(cx, &at("x_f32"), x, f.clone())?;
    if let Some(z) = ins.get(2).cloned().flatten() {
        let z = param(cx, &at("zp"), z, &xd.dims, axis, block)?;
        let z = cast_to(cx, &at("zp_f32"), z, DType::F32)?;
        v = bin(cx, &at("centered"), "Sub", v, z, &f)?;
    }
    let s = param(cx, &at("scale"), input(ins, 1)?, &xd.dims, axis, block)?;
    let s = cast_to(cx, &at("scale_f32"), s, DType::F32)?;
    // The product rounds once in fp32, as ONNX computes it, then to the output dtype.
    if out.dtype == DType::F32 {
        return bin(cx, name, "Mul", v, s, &out);
    }
    let y = bin(cx, &at("scaled"), "Mul", v, s, &f)?;
    cast(cx, name, y, out)
}

/// DynamicQuantizeLinear: uint8 with `scale = (max(x, 0) − min(x, 0))/255` and
/// `zp = clip(round(−min/scale), 0, 255)`.
pub(super) fn dynamic_quantize(cx: &mut Cx, name: &str, x: Port, outs: &[Option<Desc>]) -> Result<Outs, Fail> {
    let xd = cx.desc(&x)?;
    if xd.dtype != DType::F32 {
        return unsupported(format!("DynamicQuantizeLinear of {}", xd.dtype));
    }
    let at = |s: &str| format!("{name}/{s}");
    let all: Vec<i64> = (0..xd.dims.len() as i64).collect();
    let sd = Desc::nd(DType::F32, &[]);
    let red = |cx: &mut Cx, n: &str, ty: &str, x: Port| {
        cx.op1(n, ty, &[("x", Some(x))], sd.clone(), vec![("axes", Attr::ListInt(all.clone())), ("keep_dims", Attr::Bool(false))])
    };
    let zero = cx.scalar(&at("zero"), DType::F32, 0.0)?;
    let hi = red(cx, &at("max"), "ReduceMaxD", x.clone())?;
    let hi = bin(cx, &at("max0"), "Maximum", hi, zero.clone(), &sd)?;
    let lo = red(cx, &at("min"), "ReduceMinD", x.clone())?;
    let lo = bin(cx, &at("min0"), "Minimum", lo, zero.clone(), &sd)?;
    let span = bin(cx, &at("span"), "Sub", hi, lo.clone(), &sd)?;
    let levels = cx.scalar(&at("levels"), DType::F32, 255.0)?;
    let scale = bin(cx, &at("scale"), "RealDiv", span, levels, &sd)?;
    let q = bin(cx, &at("min_q"), "RealDiv", lo, scale.clone(), &sd)?;
    let neg = bin(cx, &at("neg_min_q"), "Sub", zero, q, &sd)?;
    let zp8 = round_clip_cast(cx, &at("zero_point"), neg, None, Desc::nd(DType::U8, &[]))?;
    let v = bin(cx, &at("scaled"), "RealDiv", x, scale.clone(), &xd)?;
    let y = round_clip_cast(cx, name, v, Some(zp8.clone()), output(outs, 0)?)?;
    Ok(vec![Some(y), outs.get(1).cloned().flatten().map(|_| scale), outs.get(2).cloned().flatten().map(|_| zp8)])
}

/// `t − zp` in fp32 (`zp` a scalar, or a vector along `axis`: −2 rows, −1 columns, 0/1 of a
/// convolution's weight/input).
fn centered(cx: &mut Cx, name: &str, t: Port, zp: Option<Port>, axis: i64) -> Result<Port, Fail> {
    let td = cx.desc(&t)?;
    let f = with_dtype(&td, DType::F32);
    let v = cast(cx, &format!("{name}_f32"), t, f.clone())?;
    let Some(z) = zp else { return Ok(v) };
    let z = param(cx, &format!("{name}_zp"), z, &td.dims, axis, 0)?;
    let z = cast_to(cx, &format!("{name}_zp_f32"), z, DType::F32)?;
    bin(cx, &format!("{name}_centered"), "Sub", v, z, &f)
}

fn matmul_f32(cx: &mut Cx, name: &str, a: Port, b: Port, out: &Desc) -> Result<Port, Fail> {
    let attrs = vec![("adj_x1", Attr::Bool(false)), ("adj_x2", Attr::Bool(false)), ("offset_x", Attr::Int(0))];
    cx.op1(
        name,
        "BatchMatMulV2",
        &[("x1", Some(a)), ("x2", Some(b)), ("bias", None), ("offset_w", None)],
        with_dtype(out, DType::F32),
        attrs,
    )
}

fn two_d(cx: &Cx, p: &Port) -> Result<bool, Fail> {
    Ok(cx.desc(p)?.dims.len() >= 2)
}

pub(super) fn matmul_integer(cx: &mut Cx, name: &str, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let (a, b) = (input(ins, 0)?, input(ins, 1)?);
    if !two_d(cx, &a)? || !two_d(cx, &b)? {
        return unsupported("MatMulInteger of a 1-D operand");
    }
    let a = centered(cx, &format!("{name}/a"), a, ins.get(2).cloned().flatten(), -2)?;
    let b = centered(cx, &format!("{name}/b"), b, ins.get(3).cloned().flatten(), -1)?;
    let acc = matmul_f32(cx, &format!("{name}/product"), a, b, &out)?;
    cast(cx, name, acc, out)
}

/// QLinearMatMul (per-tensor scales): `round(acc · (a_scale·b_scale/y_scale)) + y_zp`, the
/// multiplier rounded in the scales' dtype at each step as ONNX's reference computes it.
pub(super) fn qlinear_matmul(cx: &mut Cx, name: &str, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let (a, sa, b, sb, sy) = (input(ins, 0)?, input(ins, 1)?, input(ins, 3)?, input(ins, 4)?, input(ins, 6)?);
    for s in [&sa, &sb, &sy] {
        if cx.desc(s)?.dims.iter().product::<i64>() != 1 {
            return unsupported("QLinearMatMul with per-axis scales");
        }
    }
    if !two_d(cx, &a)? || !two_d(cx, &b)? {
        return unsupported("QLinearMatMul of a 1-D operand");
    }
    let at = |s: &str| format!("{name}/{s}");
    let a = centered(cx, &at("a"), a, ins.get(2).cloned().flatten(), -2)?;
    let b = centered(cx, &at("b"), b, ins.get(5).cloned().flatten(), -1)?;
    let acc = matmul_f32(cx, &at("product"), a, b, &out)?;
    let sdt = cx.desc(&sa)?;
    let ab = bin(cx, &at("ab_scale"), "Mul", sa, sb, &sdt)?;
    let m = bin(cx, &at("multiplier"), "RealDiv", ab, sy, &sdt)?;
    let m = cast_to(cx, &at("multiplier_f32"), m, DType::F32)?;
    let f = with_dtype(&out, DType::F32);
    let v = bin(cx, &at("rescaled"), "Mul", acc, m, &f)?;
    let mut q = un(cx, &at("round"), "Round", v, &f)?;
    if let Some(z) = ins.get(7).cloned().flatten() {
        let z = cast_to(cx, &at("zero_point"), z, DType::F32)?;
        q = bin(cx, &at("shift"), "Add", q, z, &f)?;
    }
    // ONNX's reference (and kiln's interpreter) wraps the result into the output type rather
    // than saturating it: (q − lo) mod 2^bits + lo, in int32.
    let Some((lo, hi)) = range_of(out.dtype) else { return unsupported(format!("QLinearMatMul to {}", out.dtype)) };
    let i = with_dtype(&out, DType::I32);
    let q = cast(cx, &at("int"), q, i.clone())?;
    let l = cx.scalar(&at("lo"), DType::I32, lo)?;
    let span = cx.scalar(&at("span"), DType::I32, hi - lo + 1.0)?;
    let q = bin(cx, &at("from_lo"), "Sub", q, l.clone(), &i)?;
    let q = bin(cx, &at("wrapped"), "FloorMod", q, span, &i)?;
    let q = bin(cx, &at("to_lo"), "Add", q, l, &i)?;
    cast(cx, name, q, out)
}

/// The fp32 convolution of the centred `x` (input 0, zero point `x_zp`) and `w` (input `w_at`,
/// zero point `w_zp`), with `bias`, over the node's window as `out` (ConvInteger, QLinearConv).
#[allow(clippy::too_many_arguments)]
fn centered_conv(
    cx: &mut Cx,
    name: &str,
    window: &Window,
    group: i64,
    ins: &[Option<Port>],
    [x_zp, w_at, w_zp]: [usize; 3],
    bias: Option<Port>,
    out: &Desc,
) -> Result<Port, Fail> {
    let w = input(ins, w_at)?;
    let Window { kernel_shape, strides, pads, dilations, auto_pad } = window;
    let win = conv::weight_window(cx, &w, kernel_shape, strides, pads, dilations, *auto_pad)?;
    let x = centered(cx, &format!("{name}/x"), input(ins, 0)?, ins.get(x_zp).cloned().flatten(), 1)?;
    let w = centered(cx, &format!("{name}/w"), w, ins.get(w_zp).cloned().flatten(), 0)?;
    conv::conv2d(cx, &format!("{name}/conv"), &win, group, Format::Nchw, &[Some(x), Some(w), bias], with_dtype(out, DType::F32))
}

/// ConvInteger: the convolution of the centred operands in fp32, cast to int32.
pub(super) fn conv_integer(
    cx: &mut Cx,
    name: &str,
    window: &Window,
    group: &i64,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let out = output(outs, 0)?;
    let acc = centered_conv(cx, name, window, *group, ins, [2, 1, 3], None, &out)?;
    one(cast(cx, name, acc, out)?)
}

/// QLinearConv: the convolution of the centred operands in fp32 plus the int32 bias, rescaled
/// by `x_scale·w_scale/y_scale` (w_scale per output channel or one), rounded, shifted by y's
/// zero point and saturated.
pub(super) fn qlinear_conv(
    cx: &mut Cx,
    name: &str,
    window: &Window,
    group: &i64,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let out = output(outs, 0)?;
    let at = |s: &str| format!("{name}/{s}");
    let f = with_dtype(&out, DType::F32);
    let bias = match ins.get(8).cloned().flatten() {
        Some(b) => Some(cast_to(cx, &at("bias_f32"), b, DType::F32)?),
        None => None,
    };
    let acc = centered_conv(cx, name, window, *group, ins, [2, 3, 5], bias, &out)?;
    let rank = out.dims.len();
    // x_scale·w_scale, w_scale as [1, M, 1, 1] when there is one per output channel.
    let (sx, sw, sy) = (input(ins, 1)?, input(ins, 4)?, input(ins, 6)?);
    let swd = cx.desc(&sw)?;
    let sw = if swd.dims.iter().product::<i64>() > 1 {
        let dims: Vec<usize> = (0..rank).map(|i| if i == 1 { swd.dims.iter().product::<i64>() as usize } else { 1 }).collect();
        reshape(cx, &at("w_scale_channels"), sw, Desc::nd(swd.dtype, &dims))?
    } else {
        sw
    };
    let sx = cast_to(cx, &at("x_scale_f32"), sx, DType::F32)?;
    let sw = cast_to(cx, &at("w_scale_f32"), sw, DType::F32)?;
    let sy = cast_to(cx, &at("y_scale_f32"), sy, DType::F32)?;
    let v = bin(cx, &at("x_scaled"), "Mul", acc, sx, &f)?;
    let v = bin(cx, &at("w_scaled"), "Mul", v, sw, &f)?;
    let v = bin(cx, &at("rescaled"), "RealDiv", v, sy, &f)?;
    one(round_clip_cast(cx, name, v, ins.get(7).cloned().flatten(), out)?)
}
