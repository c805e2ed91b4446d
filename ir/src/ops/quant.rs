//! Quantization: QuantizeLinear, DequantizeLinear (per-tensor, per-axis, blocked),
//! DynamicQuantizeLinear, MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv.

use super::conv::eval_conv;
use super::elementwise::tensor;
use super::matmul::eval_matmul;
use super::{invalid, norm_axis, opt, req, InType, OpError, TensorType, Window};
use crate::dtype::DType;
use crate::tensor::{round_to, Data, Tensor};

/// Expands a scale or zero point to one value per element of `dims`.
fn expand_param(p: &Tensor, dims: &[usize], axis: i64, block: i64) -> Result<Vec<f64>, OpError> {
    let n: usize = dims.iter().product();
    let v = p.to_f64();
    if p.numel() == 1 {
        return Ok(vec![v[0]; n]);
    }
    let a = norm_axis(axis, dims.len())?;
    let s = crate::shape::strides(dims);
    if p.rank() <= 1 && block <= 0 {
        if p.numel() != dims[a] {
            return invalid(format!("per-axis parameter has {} elements for axis of size {}", p.numel(), dims[a]));
        }
        return Ok((0..n).map(|i| v[(i / s[a]) % dims[a]]).collect());
    }
    if block <= 0 || p.rank() != dims.len() {
        return invalid("blocked quantization parameter must have the input's rank and a positive block_size");
    }
    let ps = p.strides();
    let b = block as usize;
    (0..n)
        .map(|i| {
            let mut off = 0;
            for d in 0..dims.len() {
                let c = (i / s[d]) % dims[d];
                let c = if d == a { c / b } else { c };
                if c >= p.dims()[d] {
                    return invalid("blocked quantization parameter too small");
                }
                off += c * ps[d];
            }
            Ok(v[off])
        })
        .collect()
}

/// The integer range a quantized dtype holds, `None` for the others.
pub fn range_of(dt: DType) -> Option<(f64, f64)> {
    Some(match dt {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::U4 => (0.0, 15.0),
        DType::I4 => (-8.0, 7.0),
        DType::U2 => (0.0, 3.0),
        DType::I2 => (-2.0, 1.0),
        DType::I32 => (i32::MIN as f64, i32::MAX as f64),
        _ => return None,
    })
}

fn quant_dtype(output_dtype: Option<DType>, zp: Option<DType>) -> DType {
    zp.or(output_dtype).unwrap_or(DType::U8)
}

pub(crate) fn infer_quantize(output_dtype: Option<DType>, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let dt = quant_dtype(output_dtype, ins.get(2).and_then(|z| z.as_ref()).map(|z| z.dtype));
    Ok(vec![TensorType::new(dt, x.shape.clone())])
}

pub(crate) fn infer_dequantize(output_dtype: Option<DType>, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let s = req(ins, 1)?;
    Ok(vec![TensorType::new(output_dtype.unwrap_or(s.dtype), x.shape.clone())])
}

pub(crate) fn eval_quantize(
    axis: i64,
    saturate: bool,
    block: i64,
    output_dtype: Option<DType>,
    ins: &[Option<&Tensor>],
) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let scale = expand_param(req(ins, 1)?, x.dims(), axis, block)?;
    let zp_t = opt(ins, 2).copied();
    let dt = quant_dtype(output_dtype, zp_t.map(|z| z.dtype()));
    let zp = match zp_t {
        Some(z) => expand_param(z, x.dims(), axis, block)?,
        None => vec![0.0; x.numel()],
    };
    let xv = x.to_f64();
    if let Some(f) = dt.minifloat() {
        // Float targets: no rounding to integers; `saturate` clamps to the finite range.
        let m = f.max();
        let v: Vec<f64> = xv
            .iter()
            .zip(&scale)
            .zip(&zp)
            .map(|((x, s), z)| {
                let q = x / s + z;
                if saturate && !q.is_nan() {
                    q.clamp(-m, m)
                } else {
                    q
                }
            })
            .collect();
        return Ok(tensor(x.dims().to_vec(), Data::from_f64(dt, &v)));
    }
    let (lo, hi) = range_of(dt).ok_or_else(|| OpError::Unsupported(format!("QuantizeLinear to {dt}")))?;
    // x / scale rounds in x's dtype before the rounding to integers, as the spec computes it.
    let xdt = x.dtype();
    let div = |x: f64, s: f64| round_to(xdt, x / s);
    let v: Vec<i64> = xv.iter().zip(&scale).zip(&zp).map(|((x, s), z)| (div(*x, *s).round_ties_even() + z).clamp(lo, hi) as i64).collect();
    Ok(tensor(x.dims().to_vec(), Data::from_i64(dt, &v)))
}

pub(crate) fn eval_dequantize(axis: i64, block: i64, output_dtype: Option<DType>, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let st = *req(ins, 1)?;
    if !x.dtype().is_int() && x.dtype().minifloat().is_none() {
        return Err(OpError::Unsupported(format!("DequantizeLinear from {}", x.dtype())));
    }
    let scale = expand_param(st, x.dims(), axis, block)?;
    let zp = match opt(ins, 2) {
        Some(z) => expand_param(z, x.dims(), axis, block)?,
        None => vec![0.0; x.numel()],
    };
    let xv = x.to_f64();
    // (x - zp) is exact; the product rounds once in f32 as the spec computes it.
    let v: Vec<f64> = xv.iter().zip(&scale).zip(&zp).map(|((x, s), z)| ((x - z) as f32 * *s as f32) as f64).collect();
    Ok(tensor(x.dims().to_vec(), Data::from_f64(output_dtype.unwrap_or(st.dtype()), &v)))
}

pub(crate) fn infer_dynamic(ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    Ok(vec![TensorType::new(DType::U8, x.shape.clone()), TensorType::fixed(DType::F32, &[]), TensorType::fixed(DType::U8, &[])])
}

pub(crate) fn eval_dynamic(x: &Tensor) -> Result<Vec<Tensor>, OpError> {
    let xv: Vec<f32> = x.to_f64().iter().map(|&v| v as f32).collect();
    let max = xv.iter().copied().fold(0f32, f32::max);
    let min = xv.iter().copied().fold(0f32, f32::min);
    let scale = (max - min) / 255.0;
    let zp = if scale == 0.0 { 0.0 } else { (0.0 - min / scale).round_ties_even().clamp(0.0, 255.0) };
    let y: Vec<i64> =
        xv.iter().map(|&v| if scale == 0.0 { zp as i64 } else { ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as i64 }).collect();
    Ok(vec![
        tensor(x.dims().to_vec(), Data::from_i64(DType::U8, &y)),
        tensor(vec![], Data::F32(vec![scale])),
        tensor(vec![], Data::U8(vec![zp as u8])),
    ])
}

/// `v` quantized to u8 with its own range and back, as onnxruntime quantizes a product's
/// activation input dynamically (onnxruntime/core/util/qmath.h, GetQuantizationParameter):
/// in f32, the range widened to hold 0, scale 1 for an empty range, the zero point and the
/// values rounded half to even.
pub(crate) fn fake_quant_u8(v: &[f64]) -> Vec<f64> {
    let xf: Vec<f32> = v.iter().map(|&x| x as f32).collect();
    let min = xf.iter().copied().fold(0f32, f32::min);
    let max = xf.iter().copied().fold(0f32, f32::max);
    let scale = if max == min { 1.0 } else { (max - min) / 255.0 };
    let zp = (0.0 - min / scale).clamp(0.0, 255.0).round_ties_even();
    xf.iter().map(|&x| ((((x / scale).round_ties_even() + zp).clamp(0.0, 255.0) - zp) * scale) as f64).collect()
}

/// `t - zp` as an i64 tensor; `zp` is a scalar or per-row/per-column vector along `axis`.
fn center(t: &Tensor, zp: Option<&Tensor>, axis: i64) -> Result<Tensor, OpError> {
    let v = t.to_i64();
    let z: Vec<f64> = match zp {
        Some(z) if z.numel() > 1 => expand_param(z, t.dims(), axis, 0)?,
        Some(z) => vec![z.to_f64()[0]; v.len()],
        None => vec![0.0; v.len()],
    };
    let c: Vec<i64> = v.iter().zip(&z).map(|(a, b)| a - *b as i64).collect();
    Ok(tensor(t.dims().to_vec(), Data::I64(c)))
}

pub(crate) fn eval_matmul_integer(ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let (a, b) = (*req(ins, 0)?, *req(ins, 1)?);
    let ac = center(a, opt(ins, 2).copied(), -2)?;
    let bc = center(b, opt(ins, 3).copied(), -1)?;
    Ok(eval_matmul(&ac, &bc)?.cast(DType::I32))
}

/// Requantizes an accumulator: round(acc * scale / y_scale) + y_zero_point, saturated.
fn requantize(acc: &Tensor, scale: f64, y_scale: &Tensor, y_zp: Option<&Tensor>, out: DType) -> Result<Tensor, OpError> {
    let ys = y_scale.to_f64();
    let yz = y_zp.map_or(0.0, |z| z.to_f64()[0]);
    let (lo, hi) = range_of(out).ok_or_else(|| OpError::Unsupported(format!("requantize to {out}")))?;
    let ch = if ys.len() > 1 && acc.rank() >= 2 { acc.dims()[1] } else { 1 };
    let inner: usize = if acc.rank() > 2 { acc.dims()[2..].iter().product() } else { 1 };
    let v: Vec<i64> = acc
        .to_f64()
        .iter()
        .enumerate()
        .map(|(i, &a)| {
            let s = if ys.len() > 1 { ys[(i / inner) % ch] } else { ys[0] };
            ((a * scale / s).round_ties_even() + yz).clamp(lo, hi) as i64
        })
        .collect();
    Ok(tensor(acc.dims().to_vec(), Data::from_i64(out, &v)))
}

pub(crate) fn eval_qlinear_matmul(ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let (a, sa, za, b, sb, zb, sy) =
        (req(ins, 0)?, req(ins, 1)?, opt(ins, 2).copied(), req(ins, 3)?, req(ins, 4)?, opt(ins, 5).copied(), req(ins, 6)?);
    let zy = opt(ins, 7).copied();
    let acc = eval_matmul(&center(a, za, -2)?, &center(b, zb, -1)?)?;
    if sa.numel() != 1 || sb.numel() != 1 || sy.numel() != 1 {
        return Err(OpError::Unsupported("QLinearMatMul with per-axis scales".into()));
    }
    let out = zy.map_or(a.dtype(), |z| z.dtype());
    // The multiplier a_scale * b_scale / y_scale is rounded in the scales' dtype at each
    // step, as the ONNX reference computes it; the accumulator is then scaled in f64.
    let dt = sa.dtype();
    let round = |v: f64| round_to(dt, v);
    let m = round(round(sa.to_f64()[0] * sb.to_f64()[0]) / sy.to_f64()[0]);
    if range_of(out).is_none() {
        return Err(OpError::Unsupported(format!("QLinearMatMul to {out}")));
    }
    let yz = zy.map_or(0.0, |z| z.to_f64()[0]);
    // The reference wraps (it does not saturate) into the output type; so does kiln.
    let v: Vec<i64> = acc.to_f64().iter().map(|&c| (c * m + yz).round_ties_even() as i64).collect();
    Ok(tensor(acc.dims().to_vec(), Data::from_i64(out, &v)))
}

pub(crate) fn eval_conv_integer(w: &Window, group: i64, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let (x, wt) = (*req(ins, 0)?, *req(ins, 1)?);
    let xc = center(x, opt(ins, 2).copied(), 1)?.cast(DType::F64);
    let wc = center(wt, opt(ins, 3).copied(), 0)?.cast(DType::F64);
    Ok(eval_conv(w, group, &xc, &wc, None)?.cast(DType::I32))
}

pub(crate) fn eval_qlinear_conv(w: &Window, group: i64, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let (x, sx, zx, wt, sw, zw, sy) =
        (req(ins, 0)?, req(ins, 1)?, opt(ins, 2).copied(), req(ins, 3)?, req(ins, 4)?, opt(ins, 5).copied(), req(ins, 6)?);
    let zy = opt(ins, 7).copied();
    let xc = center(x, zx, 1)?.cast(DType::F64);
    let wc = center(wt, zw, 0)?.cast(DType::F64);
    let mut acc = eval_conv(w, group, &xc, &wc, None)?;
    if let Some(b) = opt(ins, 8) {
        let bb = super::elementwise::broadcast_to(
            &b.cast(DType::F64).reshaped(vec![b.numel(), 1]).map_err(|e| OpError::Invalid(e.to_string()))?,
            &[b.numel(), acc.dims()[2..].iter().product()],
        )?;
        let bv = bb.to_f64();
        let per = bv.len();
        let v: Vec<f64> = acc.to_f64().iter().enumerate().map(|(i, &a)| a + bv[i % per]).collect();
        acc = tensor(acc.dims().to_vec(), Data::F64(v));
    }
    let sxv = sx.to_f64()[0];
    let swv = sw.to_f64();
    let out = zy.map_or(x.dtype(), |z| z.dtype());
    if swv.len() == 1 {
        return requantize(&acc, sxv * swv[0], sy, zy, out);
    }
    // Per-output-channel weight scales: fold into the accumulator first.
    let ch = acc.dims()[1];
    let inner: usize = acc.dims()[2..].iter().product();
    let v: Vec<f64> = acc.to_f64().iter().enumerate().map(|(i, &a)| a * swv[(i / inner) % ch]).collect();
    requantize(&tensor(acc.dims().to_vec(), Data::F64(v)), sxv, sy, zy, out)
}
