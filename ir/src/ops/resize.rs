//! Resize (nearest, linear, cubic; every coordinate transformation mode; antialias;
//! exclude_outside; axes; keep_aspect_ratio_policy). Interpolation is separable, so it is
//! applied one axis at a time: each output index reads a few edge-clamped input indices with
//! weights (f64), and tf_crop_and_resize positions outside the input take the extrapolation value.

use super::elementwise::tensor;
use super::shape_ops::const_ints;
use super::{invalid, norm_axis, opt, req, AspectPolicy, CoordMode, DimNamer, InType, NearestMode, Op, OpError, ResizeMode, TensorType};
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};

struct Plan {
    scales: Vec<f64>,
    out: Vec<usize>,
    /// Per axis, roi (start, end) for tf_crop_and_resize.
    roi: Vec<(f64, f64)>,
}

fn const_floats(x: Option<&InType>) -> Option<Vec<f64>> {
    x.and_then(|x| x.value).map(|t| t.to_f64())
}

/// Resolves scales/sizes (given for `axes`, or all axes) into per-axis scales and sizes.
fn plan(op: &Op, dims: &[usize], roi: Option<Vec<f64>>, scales: Option<Vec<f64>>, sizes: Option<Vec<i64>>) -> Result<Plan, OpError> {
    let Op::Resize { axes, keep_aspect_ratio_policy, .. } = op else { return invalid("not a Resize op") };
    let r = dims.len();
    let axes: Vec<usize> =
        if axes.is_empty() { (0..r).collect() } else { axes.iter().map(|&a| norm_axis(a, r)).collect::<Result<_, _>>()? };
    let n = axes.len();
    let mut s = vec![1.0; r];
    let mut out = dims.to_vec();
    match (scales.filter(|v| !v.is_empty()), sizes.filter(|v| !v.is_empty())) {
        (Some(sc), None) => {
            if sc.len() != n {
                return invalid(format!("Resize: {} scales for {n} axes", sc.len()));
            }
            for (k, &a) in axes.iter().enumerate() {
                if sc[k] <= 0.0 {
                    return invalid("Resize scales must be positive");
                }
                s[a] = sc[k];
                out[a] = (sc[k] * dims[a] as f64).floor() as usize;
            }
        }
        (None, Some(sz)) => {
            if sz.len() != n {
                return invalid(format!("Resize: {} sizes for {n} axes", sz.len()));
            }
            for (k, &a) in axes.iter().enumerate() {
                s[a] = sz[k] as f64 / dims[a] as f64;
                out[a] = sz[k].max(0) as usize;
            }
            if *keep_aspect_ratio_policy != AspectPolicy::Stretch {
                let pick = axes.iter().map(|&a| s[a]);
                let scale = if *keep_aspect_ratio_policy == AspectPolicy::NotLarger {
                    pick.fold(f64::INFINITY, f64::min)
                } else {
                    pick.fold(0.0, f64::max)
                };
                for &a in &axes {
                    s[a] = scale;
                    out[a] = (scale * dims[a] as f64 + 0.5) as usize;
                }
            }
        }
        _ => return invalid("Resize needs exactly one of scales and sizes"),
    }
    let mut rv = vec![(0.0, 1.0); r];
    if let Some(roi) = roi.filter(|v| !v.is_empty()) {
        if roi.len() != 2 * n {
            return invalid(format!("Resize: roi has {} values for {n} axes", roi.len()));
        }
        for (k, &a) in axes.iter().enumerate() {
            rv[a] = (roi[k], roi[n + k]);
        }
    }
    Ok(Plan { scales: s, out, roi: rv })
}

pub(crate) fn infer(op: &Op, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let (scales, sizes) = (opt(ins, 2), opt(ins, 3));
    let known = scales.is_none_or(|s| s.value.is_some()) && sizes.is_none_or(|s| s.value.is_some());
    match x.shape.as_fixed() {
        Some(dims) if known => {
            let p = plan(op, &dims, None, const_floats(scales), const_ints(sizes))?;
            Ok(vec![TensorType::new(x.dtype, Shape::fixed(&p.out))])
        }
        _ => Ok(vec![TensorType::new(x.dtype, Shape((0..x.shape.rank()).map(|_| names.fresh()).collect::<Vec<Dim>>()))]),
    }
}

/// Taps of one output index: (input index, weight), plus whether it lies outside the roi.
struct Taps {
    taps: Vec<(usize, f64)>,
    outside: bool,
}

#[allow(clippy::too_many_arguments)]
fn taps_for(op: &Op, x: usize, in_len: usize, scale: f64, out_len: usize, roi: (f64, f64)) -> Result<Taps, OpError> {
    let Op::Resize { mode, coordinate_transformation_mode: ctm, nearest_mode, cubic_coeff_a: a, exclude_outside, antialias, .. } = op
    else {
        return invalid("not a Resize op");
    };
    let (xf, inl, outw) = (x as f64, in_len as f64, scale * in_len as f64);
    let x_ori = match ctm {
        CoordMode::AlignCorners => {
            if outw == 1.0 {
                0.0
            } else {
                xf * (inl - 1.0) / (outw - 1.0)
            }
        }
        CoordMode::Asymmetric => xf / scale,
        CoordMode::TfCropAndResize => {
            let v = if outw == 1.0 { (roi.1 - roi.0) * (inl - 1.0) / 2.0 } else { xf * (roi.1 - roi.0) * (inl - 1.0) / (outw - 1.0) };
            v + roi.0 * (inl - 1.0)
        }
        CoordMode::PytorchHalfPixel => {
            if outw == 1.0 {
                -0.5
            } else {
                (xf + 0.5) / scale - 0.5
            }
        }
        CoordMode::HalfPixel => (xf + 0.5) / scale - 0.5,
        CoordMode::HalfPixelSymmetric => {
            let adj = out_len as f64 / outw;
            let offset = inl / 2.0 * (1.0 - adj);
            offset + (xf + 0.5) / scale - 0.5
        }
    };
    if *ctm == CoordMode::TfCropAndResize && (x_ori < 0.0 || x_ori > inl - 1.0) {
        return Ok(Taps { taps: vec![], outside: true });
    }
    let integer = x_ori.fract() == 0.0;
    let base = if integer { x_ori as i64 - 1 } else { x_ori.floor() as i64 };
    let ratio = if integer { 1.0 } else { x_ori - x_ori.floor() };
    let (a, s) = (*a as f64, scale);
    let coeffs: Vec<f64> = match mode {
        ResizeMode::Nearest => {
            let up = match nearest_mode {
                _ if integer => true,
                NearestMode::RoundPreferFloor => ratio > 0.5,
                NearestMode::RoundPreferCeil => ratio >= 0.5,
                NearestMode::Floor => false,
                NearestMode::Ceil => true,
            };
            if up {
                vec![0.0, 1.0]
            } else {
                vec![1.0, 0.0]
            }
        }
        ResizeMode::Linear if *antialias && s < 1.0 => {
            let start = (-1.0 / s).floor() as i64 + 1;
            let c: Vec<f64> = (start..2 - start).map(|i| (1.0 - ((i as f64 - ratio) * s).abs()).clamp(0.0, 1.0)).collect();
            let sum: f64 = c.iter().sum();
            c.into_iter().map(|v| v / sum).collect()
        }
        ResizeMode::Linear => vec![1.0 - ratio, ratio],
        ResizeMode::Cubic if *antialias && s < 1.0 => {
            let f = |x: f64| {
                let x = x.abs();
                if x <= 1.0 {
                    (a + 2.0) * x * x * x - (a + 3.0) * x * x + 1.0
                } else if x < 2.0 {
                    a * x * x * x - 5.0 * a * x * x + 8.0 * a * x - 4.0 * a
                } else {
                    0.0
                }
            };
            let start = (-2.0 / s).floor() as i64 + 1;
            let c: Vec<f64> = (start..2 - start).map(|i| f(s * (i as f64 - ratio))).collect();
            let sum: f64 = c.iter().sum();
            c.into_iter().map(|v| v / sum).collect()
        }
        ResizeMode::Cubic => {
            let (r, q) = (ratio, 1.0 - ratio);
            vec![
                ((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
                ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
                ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
                ((a * (q + 1.0) - 5.0 * a) * (q + 1.0) + 8.0 * a) * (q + 1.0) - 4.0 * a,
            ]
        }
    };
    let n = coeffs.len() as i64;
    let first = base - (n / 2 - 1);
    let mut taps: Vec<(i64, f64)> = coeffs.into_iter().enumerate().map(|(k, c)| (first + k as i64, c)).collect();
    if *exclude_outside {
        for t in &mut taps {
            if t.0 < 0 || t.0 >= in_len as i64 {
                t.1 = 0.0;
            }
        }
        let sum: f64 = taps.iter().map(|t| t.1).sum();
        if sum != 0.0 {
            for t in &mut taps {
                t.1 /= sum;
            }
        }
    }
    let last = in_len as i64 - 1;
    Ok(Taps { taps: taps.into_iter().map(|(i, w)| (i.clamp(0, last.max(0)) as usize, w)).collect(), outside: false })
}

/// One resized axis as a compiled kernel reads it: for each output index, its (input index,
/// weight) taps and whether it lies outside a tf_crop_and_resize roi.
#[derive(Clone, Debug, PartialEq)]
pub struct AxisTaps {
    pub axis: usize,
    pub taps: Vec<Vec<(usize, f64)>>,
    pub outside: Vec<bool>,
}

/// The taps of every axis that Resize changes, for input dims `dims` and its roi, scales and
/// sizes operands (the interpreter applies the same taps one axis at a time).
pub fn resize_taps(
    op: &Op,
    dims: &[usize],
    roi: Option<Vec<f64>>,
    scales: Option<Vec<f64>>,
    sizes: Option<Vec<i64>>,
) -> Result<Vec<AxisTaps>, OpError> {
    let Op::Resize { antialias, mode, .. } = op else { return invalid("not a Resize op") };
    if *antialias && *mode == ResizeMode::Nearest {
        return invalid("antialias is not defined for nearest mode");
    }
    let p = plan(op, dims, roi, scales, sizes)?;
    let mut out = vec![];
    for (ax, &len) in dims.iter().enumerate() {
        if p.out[ax] == len && p.scales[ax] == 1.0 && p.roi[ax] == (0.0, 1.0) {
            continue;
        }
        let t: Vec<Taps> = (0..p.out[ax]).map(|o| taps_for(op, o, len, p.scales[ax], p.out[ax], p.roi[ax])).collect::<Result<_, _>>()?;
        out.push(AxisTaps { axis: ax, outside: t.iter().map(|t| t.outside).collect(), taps: t.into_iter().map(|t| t.taps).collect() });
    }
    Ok(out)
}

pub(crate) fn eval(op: &Op, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let Op::Resize { extrapolation_value, .. } = op else { return invalid("not a Resize op") };
    let x = *req(ins, 0)?;
    let axes =
        resize_taps(op, x.dims(), opt(ins, 1).map(|t| t.to_f64()), opt(ins, 2).map(|t| t.to_f64()), opt(ins, 3).map(|t| t.to_i64()))?;
    let mut out_dims = x.dims().to_vec();
    for a in &axes {
        out_dims[a.axis] = a.taps.len();
    }
    super::checked_numel(&out_dims)?;
    let mut dims = x.dims().to_vec();
    let mut cur = x.to_f64();
    let mut outside = vec![false; cur.len()];
    for a in &axes {
        let ax = a.axis;
        let outer: usize = dims[..ax].iter().product();
        let inner: usize = dims[ax + 1..].iter().product();
        let (len, olen) = (dims[ax], a.taps.len());
        let mut next = vec![0f64; outer * olen * inner];
        let mut next_out = vec![false; next.len()];
        for o in 0..outer {
            for (j, (taps, &out_j)) in a.taps.iter().zip(&a.outside).enumerate() {
                for i in 0..inner {
                    let dst = (o * olen + j) * inner + i;
                    if out_j {
                        next_out[dst] = true;
                        continue;
                    }
                    let mut v = 0.0;
                    let mut out_flag = false;
                    for &(k, w) in taps {
                        let src = (o * len + k) * inner + i;
                        if w != 0.0 {
                            v += w * cur[src];
                        }
                        out_flag |= outside[src];
                    }
                    next[dst] = v;
                    next_out[dst] = out_flag;
                }
            }
        }
        cur = next;
        outside = next_out;
        dims[ax] = olen;
    }
    let ev = *extrapolation_value as f64;
    for (v, o) in cur.iter_mut().zip(&outside) {
        if *o {
            *v = ev;
        }
    }
    let dt = x.dtype();
    let data =
        if dt.is_float() { Data::from_f64(dt, &cur) } else { Data::from_f64(dt, &cur.iter().map(|v| v.round()).collect::<Vec<_>>()) };
    Ok(tensor(dims, data))
}
