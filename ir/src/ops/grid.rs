//! Sampling grids. GridSample (opsets 16 and 20): samples X [N, C, *S] at the normalized coordinates of grid
//! [N, *O, r] (last axis in reverse spatial order: x, y, z). Interpolation is the tensor
//! product of per-axis taps (nearest, linear, or cubic with a = -0.75); padding is zeros,
//! border (clamp) or reflection about the sampling borders.

use super::elementwise::tensor;
use super::{invalid, req, GridMode, GridPadding, InType, OpError, TensorType};
use crate::shape::Shape;
use crate::tensor::{Data, Tensor};

pub(crate) fn infer(ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (x, g) = (req(ins, 0)?, req(ins, 1)?);
    if x.shape.rank() < 3 || g.shape.rank() != x.shape.rank() {
        return invalid(format!("GridSample: X {} and grid {} must have equal rank >= 3", x.shape, g.shape));
    }
    let mut dims = vec![x.shape.0[0].clone(), x.shape.0[1].clone()];
    dims.extend(g.shape.0[1..g.shape.rank() - 1].iter().cloned());
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let rng = hi - lo;
    if rng <= 0.0 {
        return lo;
    }
    if x < lo {
        let dx = lo - x;
        let n = (dx / rng) as i64;
        let r = dx - n as f64 * rng;
        if n % 2 == 0 {
            lo + r
        } else {
            hi - r
        }
    } else if x > hi {
        let dx = x - hi;
        let n = (dx / rng) as i64;
        let r = dx - n as f64 * rng;
        if n % 2 == 0 {
            hi - r
        } else {
            lo + r
        }
    } else {
        x
    }
}

fn cubic(t: f64) -> [f64; 4] {
    let a = -0.75;
    let (p, q) = (t + 1.0, 2.0 - t);
    [
        ((a * p - 5.0 * a) * p + 8.0 * a) * p - 4.0 * a,
        ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0,
        ((a + 2.0) * (1.0 - t) - (a + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0,
        ((a * q - 5.0 * a) * q + 8.0 * a) * q - 4.0 * a,
    ]
}

/// Per-axis taps: (source index or None for a zero, weight).
pub(crate) fn taps(v: f64, d: usize, mode: GridMode, pad: GridPadding, align: bool) -> Vec<(Option<usize>, f64)> {
    let (lo, hi) = if align { (0.0, d as f64 - 1.0) } else { (-0.5, d as f64 - 0.5) };
    let mut v = if mode == GridMode::Nearest { v.round_ties_even() } else { v };
    if v < lo || v > hi {
        match pad {
            GridPadding::Border => v = v.clamp(0.0, d as f64 - 1.0),
            GridPadding::Reflection => v = reflect(v, lo, hi),
            GridPadding::Zeros => {}
        }
    }
    let at = |i: i64| -> Option<usize> {
        match pad {
            GridPadding::Zeros => (0..d as i64).contains(&i).then_some(i as usize),
            GridPadding::Border => Some(i.clamp(0, d as i64 - 1) as usize),
            GridPadding::Reflection => Some((reflect(i as f64, lo, hi) as i64).clamp(0, d as i64 - 1) as usize),
        }
    };
    match mode {
        GridMode::Nearest => vec![(at(v as i64), 1.0)],
        GridMode::Linear => {
            let x0 = v.floor();
            let t = v - x0;
            vec![(at(x0 as i64), 1.0 - t), (at(x0 as i64 + 1), t)]
        }
        GridMode::Cubic => {
            let x0 = v.floor();
            let c = cubic(v - x0);
            (0..4).map(|k| (at(x0 as i64 - 1 + k), c[k as usize])).collect()
        }
    }
}

pub(crate) fn eval(mode: GridMode, pad: GridPadding, align: bool, x: &Tensor, grid: &Tensor) -> Result<Tensor, OpError> {
    let (xd, gd) = (x.dims(), grid.dims());
    let nd = xd.len().saturating_sub(2);
    if nd == 0 || gd.len() != xd.len() || gd[0] != xd[0] || gd[gd.len() - 1] != nd {
        return invalid(format!("GridSample: X {xd:?} and grid {gd:?} do not agree"));
    }
    if !x.dtype().is_float() {
        return Err(OpError::DType { index: 0, dtype: x.dtype() });
    }
    let (n, c) = (xd[0], xd[1]);
    let sp = &xd[2..];
    let in_sz: usize = sp.iter().product();
    let out_sp = &gd[1..gd.len() - 1];
    let out_sz: usize = out_sp.iter().product();
    let in_str = crate::shape::strides(sp);
    let (xv, gv) = (x.to_f64(), grid.to_f64());
    let mut y = vec![0f64; n * c * out_sz];
    for b in 0..n {
        for o in 0..out_sz {
            let coords = &gv[(b * out_sz + o) * nd..][..nd];
            // Per spatial axis (outermost first): grid holds them innermost first.
            let axis_taps: Vec<Vec<(Option<usize>, f64)>> = (0..nd)
                .map(|i| {
                    let norm = coords[nd - 1 - i];
                    let d = sp[i] as f64;
                    let v = if align { (norm + 1.0) / 2.0 * (d - 1.0) } else { ((norm + 1.0) * d - 1.0) / 2.0 };
                    taps(v, sp[i], mode, pad, align)
                })
                .collect();
            // Iterate the tensor product of taps.
            let total: usize = axis_taps.iter().map(Vec::len).product();
            for ch in 0..c {
                let plane = &xv[(b * c + ch) * in_sz..][..in_sz];
                let mut acc = 0.0;
                for combo in 0..total {
                    let (mut rem, mut off, mut w) = (combo, Some(0usize), 1.0);
                    for i in (0..nd).rev() {
                        let t = &axis_taps[i];
                        let (idx, wt) = t[rem % t.len()];
                        rem /= t.len();
                        w *= wt;
                        off = match (off, idx) {
                            (Some(o), Some(k)) => Some(o + k * in_str[i]),
                            _ => None,
                        };
                    }
                    if let Some(off) = off {
                        acc += w * plane[off];
                    }
                }
                y[(b * c + ch) * out_sz + o] = acc;
            }
        }
    }
    let mut dims = vec![n, c];
    dims.extend(out_sp);
    Ok(tensor(dims, Data::from_f64(x.dtype(), &y)))
}

/// AffineGrid output: [N, *size[2..], r] for theta [N, r, r+1] and size [N, C, *S].
pub(crate) fn infer_affine(ins: &[Option<InType>], names: &mut super::DimNamer) -> Result<Vec<TensorType>, OpError> {
    let (theta, size) = (req(ins, 0)?, req(ins, 1)?);
    let dims = match super::shape_ops::const_ints(Some(size)) {
        Some(s) if s.len() >= 3 => {
            let mut d: Vec<crate::shape::Dim> = vec![theta.shape.0[0].clone()];
            d.extend(s[2..].iter().map(|&v| crate::shape::Dim::Known(v.max(0) as usize)));
            d.push(crate::shape::Dim::Known(s.len() - 2));
            Shape(d)
        }
        _ => {
            let r = size.shape.0.first().and_then(crate::shape::Dim::known).unwrap_or(4);
            names.shape(r)
        }
    };
    Ok(vec![TensorType::new(theta.dtype, dims)])
}

/// Normalized base coordinates along an axis of `n` points.
fn base_coords(n: usize, align: bool) -> Vec<f64> {
    (0..n)
        .map(|i| {
            if align {
                if n == 1 {
                    -1.0
                } else {
                    -1.0 + 2.0 * i as f64 / (n - 1) as f64
                }
            } else {
                -1.0 + (2 * i + 1) as f64 / n as f64
            }
        })
        .collect()
}

pub(crate) fn eval_affine(align: bool, theta: &Tensor, size: &Tensor) -> Result<Tensor, OpError> {
    let s: Vec<usize> = size.to_i64().iter().map(|&v| v.max(0) as usize).collect();
    let r = s.len().saturating_sub(2);
    if !(r == 2 || r == 3) || theta.dims() != [s[0], r, r + 1] {
        return invalid(format!("AffineGrid: theta {:?} does not fit size {s:?}", theta.dims()));
    }
    let sp = &s[2..];
    let n_pts: usize = super::checked_numel(sp)?;
    let coords: Vec<Vec<f64>> = sp.iter().map(|&d| base_coords(d, align)).collect();
    let tv = theta.to_f64();
    let mut out = Vec::with_capacity(s[0] * n_pts * r);
    let st = crate::shape::strides(sp);
    for b in 0..s[0] {
        let th = &tv[b * r * (r + 1)..][..r * (r + 1)];
        for p in 0..n_pts {
            // Homogeneous point (x, y[, z], 1): x runs along the last spatial axis.
            let mut h: Vec<f64> = (0..r).map(|k| coords[r - 1 - k][(p / st[r - 1 - k]) % sp[r - 1 - k]]).collect();
            h.push(1.0);
            for row in 0..r {
                out.push((0..=r).map(|k| th[row * (r + 1) + k] * h[k]).sum());
            }
        }
    }
    let mut dims = vec![s[0]];
    dims.extend(sp);
    dims.push(r);
    Ok(tensor(dims, Data::from_f64(theta.dtype(), &out)))
}
