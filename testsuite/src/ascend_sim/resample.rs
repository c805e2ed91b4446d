//! Resize as CANN documents it (ONNX's attributes; 4-D; nearest and linear), written from
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
        t => cx.err(format!("the simulator has no semantics for op type {t}")),
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
