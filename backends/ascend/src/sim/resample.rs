//! Resize, GridSampler2D and AffineGrid (below) as CANN documents them. Resize (ONNX's attributes; 4-D; nearest and linear), written from
//! ONNX's definition of the coordinate transformations: an output index x maps to
//! - half_pixel: (x + ½)/scale − ½
//! - pytorch_half_pixel: the same, or −½ where the resized length is 1
//! - align_corners: x·(in − 1)/(resized − 1), 0 where the resized length is 1
//! - asymmetric: x/scale
//! - tf_crop_and_resize: start·(in − 1) + x·(end − start)·(in − 1)/(resized − 1) (the middle of
//!   the roi where the resized length is 1); outside [0, in − 1] it is `extrapolation_value`
//!
//! with the resized length `scale·in` (the scale given, or sizes/in). Nearest rounds by
//! `nearest_mode`; linear weighs the two neighbours; indices past an edge read the edge.

use super::index::{coords, flat};
use super::{OpCx, SimError, Value};

pub(crate) fn eval(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    match cx.op.r#type.as_str() {
        "Resize" => Ok(vec![resize(cx)?]),
        "GridSampler2D" => Ok(vec![grid_sample(cx)?]),
        "AffineGrid" => Ok(vec![affine_grid(cx)?]),
        t => cx.err(format!("{t} is not an op of resample.rs")),
    }
}

/// One output index's taps along an axis: (input index, weight), or None outside the roi.
fn taps(cx: &OpCx, x: usize, len: usize, scale: f64, roi: (f64, f64)) -> Result<Option<Vec<(usize, f64)>>, SimError> {
    let (xf, n, resized) = (x as f64, len as f64, scale * len as f64);
    let ctm = cx.str("coordinate_transformation_mode")?;
    let o = match ctm.as_str() {
        "half_pixel" => (xf + 0.5) / scale - 0.5,
        "pytorch_half_pixel" if resized == 1.0 => -0.5,
        "pytorch_half_pixel" => (xf + 0.5) / scale - 0.5,
        "align_corners" if resized == 1.0 => 0.0,
        "align_corners" => xf * (n - 1.0) / (resized - 1.0),
        "asymmetric" => xf / scale,
        "tf_crop_and_resize" => {
            let o = if resized == 1.0 {
                (roi.1 - roi.0) * (n - 1.0) / 2.0 + roi.0 * (n - 1.0)
            } else {
                roi.0 * (n - 1.0) + xf * (roi.1 - roi.0) * (n - 1.0) / (resized - 1.0)
            };
            if o < 0.0 || o > n - 1.0 {
                return Ok(None);
            }
            o
        }
        m => return cx.err(format!("coordinate_transformation_mode \"{m}\"")),
    };
    let clamp = |i: f64| i.clamp(0.0, n - 1.0) as usize;
    let (lo, frac) = (o.floor(), o - o.floor());
    Ok(Some(match cx.str("mode")?.as_str() {
        "nearest" => {
            let up = match cx.str("nearest_mode")?.as_str() {
                "round_prefer_floor" => frac > 0.5,
                "round_prefer_ceil" => frac >= 0.5,
                "floor" => false,
                "ceil" => frac > 0.0,
                m => return cx.err(format!("nearest_mode \"{m}\"")),
            };
            vec![(clamp(if up { lo + 1.0 } else { lo }), 1.0)]
        }
        "linear" => vec![(clamp(lo), 1.0 - frac), (clamp(lo + 1.0), frac)],
        m => return cx.err(format!("mode \"{m}\": nearest and linear are simulated")),
    }))
}

fn resize(cx: &OpCx) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    if x.dims.len() != 4 {
        return cx.err(format!("x {:?} is not 4-D", x.dims));
    }
    let r = x.dims.len();
    let (dt, out) = cx.out_desc(0)?;
    let scales: Vec<f64> = match (cx.opt(2), cx.opt(3)) {
        (Some(s), _) if s.data.len() == r => s.data.clone(),
        (_, Some(z)) if z.data.len() == r => z.data.iter().zip(&x.dims).map(|(&o, &i)| o / i as f64).collect(),
        _ => return cx.err("neither scales nor sizes has one value per axis"),
    };
    for (a, (&s, (&i, &o))) in scales.iter().zip(x.dims.iter().zip(&out)).enumerate() {
        let want = if cx.opt(2).is_some() { (i as f64 * s).floor() as usize } else { (i as f64 * s).round() as usize };
        if s <= 0.0 || (cx.str("coordinate_transformation_mode")? != "tf_crop_and_resize" && want != o) {
            return cx.err(format!("axis {a}: {i} resized by {s} is not the declared {o}"));
        }
    }
    let roi: Vec<(f64, f64)> = match cx.opt(1) {
        Some(v) if v.data.len() == 2 * r => (0..r).map(|a| (v.data[a], v.data[a + r])).collect(),
        Some(_) => return cx.err("roi does not hold a start and an end per axis"),
        None => vec![(0.0, 1.0); r],
    };
    let per_axis: Vec<Vec<Option<Vec<(usize, f64)>>>> =
        (0..r).map(|a| (0..out[a]).map(|o| taps(cx, o, x.dims[a], scales[a], roi[a])).collect()).collect::<Result<_, _>>()?;
    let extrapolation = cx.float("extrapolation_value")?;
    let n: usize = out.iter().product();
    let mut y = Vec::with_capacity(n);
    for f in 0..n {
        let c = coords(f, &out);
        let axes: Option<Vec<&Vec<(usize, f64)>>> = c.iter().enumerate().map(|(a, &i)| per_axis[a][i].as_ref()).collect();
        let Some(axes) = axes else {
            y.push(extrapolation);
            continue;
        };
        // Σ over every combination of one tap per axis of the product of their weights.
        let mut sum = 0.0;
        let count: usize = axes.iter().map(|t| t.len()).product();
        for k in 0..count {
            let mut rest = k;
            let (mut idx, mut w) = (vec![0; r], 1.0);
            for (a, t) in axes.iter().enumerate().rev() {
                let (i, wt) = t[rest % t.len()];
                rest /= t.len();
                idx[a] = i;
                w *= wt;
            }
            if w != 0.0 {
                sum += w * x.data[flat(&idx, &x.dims)];
            }
        }
        y.push(sum);
    }
    Ok(Value::new(dt, out, y))
}

/// GridSampler2D (PyTorch's grid_sample): x `[N, C, H, W]`, grid `[N, Ho, Wo, 2]` of (x, y) in
/// [−1, 1]. A coordinate g maps to the pixel `(g + 1)/2·(n − 1)` (align_corners) or
/// `((g + 1)·n − 1)/2`. Nearest (half to even) and bilinear read the coordinate after padding
/// (border: clamped; reflection: reflected about the edges, −½ and n − ½ without
/// align_corners, then clamped); bicubic (A = −0.75) pads each of its 4×4 taps. A tap outside
/// the image reads 0.
fn grid_sample(cx: &OpCx) -> Result<Value, SimError> {
    let (x, g) = (cx.input(0)?, cx.input(1)?);
    let [n, c, h, w] = x.dims[..] else { return cx.err(format!("x {:?} is not 4-D", x.dims)) };
    let [gn, ho, wo, two] = g.dims[..] else { return cx.err(format!("grid {:?} is not 4-D", g.dims)) };
    if gn != n || two != 2 {
        return cx.err(format!("grid {:?} for x {:?}", g.dims, x.dims));
    }
    let align = cx.bool("align_corners")?;
    let (mode, padding) = (cx.str("interpolation_mode")?, cx.str("padding_mode")?);
    let unnormalize = |v: f64, len: usize| {
        let l = len as f64;
        if align {
            (v + 1.0) / 2.0 * (l - 1.0)
        } else {
            ((v + 1.0) * l - 1.0) / 2.0
        }
    };
    let reflect = |v: f64, lo: f64, hi: f64| {
        if hi <= lo {
            return 0.0;
        }
        let span = hi - lo;
        let d = (v - lo).abs();
        let flips = (d / span).floor();
        let extra = d - flips * span;
        if flips as i64 % 2 == 0 {
            lo + extra
        } else {
            hi - extra
        }
    };
    let pad = |v: f64, len: usize| -> f64 {
        let l = len as f64;
        match padding.as_str() {
            "border" => v.clamp(0.0, l - 1.0),
            "reflection" => {
                let r = if align { reflect(v, 0.0, l - 1.0) } else { reflect(v, -0.5, l - 0.5) };
                r.clamp(0.0, l - 1.0)
            }
            _ => v,
        }
    };
    let cubic = |t: f64| -> [f64; 4] {
        let a = -0.75;
        let near = |x: f64| ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        let far = |x: f64| ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
        [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
    };
    if !matches!(padding.as_str(), "zeros" | "border" | "reflection") || !matches!(mode.as_str(), "nearest" | "bilinear" | "bicubic") {
        return cx.err(format!("interpolation_mode \"{mode}\", padding_mode \"{padding}\""));
    }
    let mut y = vec![0.0; n * c * ho * wo];
    for b in 0..n {
        for i in 0..ho {
            for j in 0..wo {
                let gi = ((b * ho + i) * wo + j) * 2;
                let (gx, gy) = (unnormalize(g.data[gi], w), unnormalize(g.data[gi + 1], h));
                // (row, column, weight) taps; a tap off the image reads 0.
                let mut taps: Vec<(i64, i64, f64)> = vec![];
                match mode.as_str() {
                    "bicubic" => {
                        let (x0, y0) = (gx.floor(), gy.floor());
                        let (wx, wy) = (cubic(gx - x0), cubic(gy - y0));
                        for (r, wr) in wy.iter().enumerate() {
                            for (q, wq) in wx.iter().enumerate() {
                                let yy = pad(y0 - 1.0 + r as f64, h);
                                let xx = pad(x0 - 1.0 + q as f64, w);
                                taps.push((yy as i64, xx as i64, wr * wq));
                            }
                        }
                    }
                    "nearest" => {
                        let (xx, yy) = (pad(gx, w).round_ties_even(), pad(gy, h).round_ties_even());
                        taps.push((yy as i64, xx as i64, 1.0));
                    }
                    _ => {
                        let (px, py) = (pad(gx, w), pad(gy, h));
                        let (x0, y0) = (px.floor(), py.floor());
                        let (tx, ty) = (px - x0, py - y0);
                        for (dy, wy) in [(0.0, 1.0 - ty), (1.0, ty)] {
                            for (dx, wx) in [(0.0, 1.0 - tx), (1.0, tx)] {
                                taps.push(((y0 + dy) as i64, (x0 + dx) as i64, wy * wx));
                            }
                        }
                    }
                }
                for ch in 0..c {
                    let mut v = 0.0;
                    for &(r, q, wt) in &taps {
                        if (0..h as i64).contains(&r) && (0..w as i64).contains(&q) && wt != 0.0 {
                            v += wt * x.data[((b * c + ch) * h + r as usize) * w + q as usize];
                        }
                    }
                    y[((b * c + ch) * ho + i) * wo + j] = v;
                }
            }
        }
    }
    Ok(Value::new(x.dtype, vec![n, c, ho, wo], y))
}

/// AffineGrid (theta `[N, r, r+1]`, output_size `[N, C, *S]` with r = |S| of 2 or 3; PyTorch's
/// affine_grid): for each output position the normalized coordinates (x, y[, z]) in [−1, 1],
/// the i-th of n at `−1 + 2i/(n − 1)` (align_corners) or `(2i + 1)/n − 1`, mapped by theta.
/// Output `[N, *S, r]`, the coordinates ordered x (width) first.
fn affine_grid(cx: &OpCx) -> Result<Value, SimError> {
    let (theta, size) = (cx.input(0)?, cx.input(1)?);
    let size: Vec<usize> = size.data.iter().map(|&v| v as usize).collect();
    let r = size.len().saturating_sub(2);
    if !(2..=3).contains(&r) || theta.dims != [size[0], r, r + 1] {
        return cx.err(format!("theta {:?} for output_size {size:?}", theta.dims));
    }
    let align = cx.bool("align_corners")?;
    let coord = |i: usize, n: usize| {
        if align {
            if n > 1 {
                -1.0 + 2.0 * i as f64 / (n - 1) as f64
            } else {
                0.0
            }
        } else {
            (2 * i + 1) as f64 / n as f64 - 1.0
        }
    };
    // The spatial dims slowest first (D, H, W): the base point is (x=W, y=H[, z=D]).
    let spatial = &size[2..];
    let points: usize = spatial.iter().product();
    let mut y = Vec::with_capacity(size[0] * points * r);
    for b in 0..size[0] {
        let t = &theta.data[b * r * (r + 1)..(b + 1) * r * (r + 1)];
        for p in 0..points {
            let c = coords(p, spatial);
            let base: Vec<f64> = (0..r).map(|k| coord(c[r - 1 - k], spatial[r - 1 - k])).chain(std::iter::once(1.0)).collect();
            for row in 0..r {
                y.push((0..=r).map(|j| t[row * (r + 1) + j] * base[j]).sum());
            }
        }
    }
    let mut dims = vec![size[0]];
    dims.extend(spatial);
    dims.push(r);
    Ok(Value::new(theta.dtype, dims, y))
}
