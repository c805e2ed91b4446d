//! Reductions (all Reduce* kinds), ArgMax/ArgMin and the softmax family.

use super::data_movement::strided_index;
use super::elementwise::tensor;
use super::shape_ops::const_ints;
use super::{invalid, norm_axis, opt, req, DimNamer, InType, OpError, ReduceKind, TensorType};
use crate::dtype::DType;
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};

/// Reduces `axes` of a row-major buffer with `f`, returning values in kept-axes order.
pub(crate) fn reduce_axes_f64(xv: &[f64], dims: &[usize], axes: &[usize], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let (idx, chunk) = reduce_order(dims, axes);
    let gathered: Vec<f64> = idx.iter().map(|&i| xv[i]).collect();
    if chunk == 0 {
        let outer: usize = dims.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).product();
        return (0..outer).map(|_| f(&[])).collect();
    }
    gathered.chunks(chunk).map(f).collect()
}

/// Source indices ordering kept axes first and reduced axes last, plus the reduced chunk size.
fn reduce_order(dims: &[usize], axes: &[usize]) -> (Vec<usize>, usize) {
    let s = crate::shape::strides(dims);
    let order: Vec<usize> = (0..dims.len()).filter(|i| !axes.contains(i)).chain(axes.iter().copied()).collect();
    let od: Vec<usize> = order.iter().map(|&i| dims[i]).collect();
    let st: Vec<isize> = order.iter().map(|&i| s[i] as isize).collect();
    let chunk = axes.iter().map(|&a| dims[a]).product();
    (strided_index(&od, &st, 0), chunk)
}

fn axes_of(rank: usize, axes: Option<Vec<i64>>, noop: bool) -> Result<Option<Vec<usize>>, OpError> {
    match axes {
        Some(a) if !a.is_empty() => {
            let mut v: Vec<usize> = a.iter().map(|&x| norm_axis(x, rank)).collect::<Result<_, _>>()?;
            v.sort_unstable();
            v.dedup();
            Ok(Some(v))
        }
        _ if noop => Ok(None),
        _ => Ok(Some((0..rank).collect())),
    }
}

pub(crate) fn infer_reduce(keepdims: bool, noop: bool, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let axes = match opt(ins, 1) {
        None => None,
        Some(a) => match const_ints(Some(a)) {
            Some(v) => Some(v),
            None => {
                // Runtime axes: their count (the axes input's length) fixes the rank.
                let len = super::shape_ops::list_len(a, "Reduce axes")?;
                let known = a.shape.rank() == 0 || a.shape.0[0].known().is_some();
                let r = match (keepdims, known, len) {
                    (true, _, _) => x.shape.rank(),
                    (false, false, _) => return invalid("Reduce without keepdims needs axes of known length"),
                    (false, true, 0) if noop => x.shape.rank(),
                    (false, true, 0) => 0,
                    (false, true, k) => x.shape.rank().saturating_sub(k),
                };
                return Ok(vec![TensorType::new(x.dtype, names.shape(r))]);
            }
        },
    };
    let Some(axes) = axes_of(x.shape.rank(), axes, noop)? else {
        return Ok(vec![TensorType::new(x.dtype, x.shape.clone())]);
    };
    let dims: Vec<Dim> = x
        .shape
        .0
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match (axes.contains(&i), keepdims) {
            (false, _) => Some(d.clone()),
            (true, true) => Some(Dim::Known(1)),
            (true, false) => None,
        })
        .collect();
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

pub(crate) fn eval_reduce(kind: ReduceKind, keepdims: bool, noop: bool, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let axes = opt(ins, 1).map(|t| super::shape_ops::ints_1d(t, "Reduce axes")).transpose()?;
    let Some(axes) = axes_of(x.rank(), axes, noop)? else {
        return Ok(x.clone());
    };
    let out_dims: Vec<usize> = x
        .dims()
        .iter()
        .enumerate()
        .filter_map(|(i, &d)| match (axes.contains(&i), keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    let dt = x.dtype();
    use ReduceKind::*;
    if dt.is_int() && matches!(kind, Sum | Prod | Max | Min | L1 | SumSquare) {
        let (idx, chunk) = reduce_order(x.dims(), &axes);
        let xv = x.to_i64();
        let outer = out_dims.iter().product::<usize>();
        let v: Vec<i64> = (0..outer)
            .map(|o| {
                let it = idx[o * chunk..(o + 1) * chunk].iter().map(|&i| xv[i]);
                match kind {
                    Sum => it.fold(0i64, i64::wrapping_add),
                    Prod => it.fold(1i64, i64::wrapping_mul),
                    Max => it.max().unwrap_or(i64::MIN),
                    Min => it.min().unwrap_or(i64::MAX),
                    L1 => it.map(i64::wrapping_abs).fold(0, i64::wrapping_add),
                    _ => it.map(|v| v.wrapping_mul(v)).fold(0, i64::wrapping_add),
                }
            })
            .collect();
        let v = if matches!(kind, Max | Min) && chunk == 0 {
            // Empty reductions give the dtype's extreme value.
            let ext = Data::from_f64(dt, &[if kind == Max { f64::NEG_INFINITY } else { f64::INFINITY }]).to_i64()[0];
            vec![ext; v.len()]
        } else {
            v
        };
        return Ok(tensor(out_dims, Data::from_i64(dt, &v)));
    }
    if dt == DType::Bool && !matches!(kind, Max | Min) {
        return Err(OpError::DType { index: 0, dtype: dt });
    }
    let xv = x.to_f64();
    let v = reduce_axes_f64(&xv, x.dims(), &axes, |s| {
        let n = s.len() as f64;
        match kind {
            Sum => s.iter().sum(),
            Mean => s.iter().sum::<f64>() / n,
            Max => s.iter().copied().fold(f64::NEG_INFINITY, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) }),
            Min => s.iter().copied().fold(f64::INFINITY, |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) }),
            Prod => s.iter().product(),
            L1 => s.iter().map(|v| v.abs()).sum(),
            L2 => s.iter().map(|v| v * v).sum::<f64>().sqrt(),
            LogSum => s.iter().sum::<f64>().ln(),
            LogSumExp => {
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                if m.is_infinite() {
                    return m;
                }
                m + s.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
            }
            SumSquare => s.iter().map(|v| v * v).sum(),
        }
    });
    let v = if dt == DType::Bool && v.iter().any(|x| x.is_infinite()) {
        // Empty boolean reductions: Max gives false, Min gives true.
        v.iter().map(|x| if x.is_infinite() { f64::from(*x > 0.0) } else { *x }).collect()
    } else {
        v
    };
    Ok(tensor(out_dims, Data::from_f64(dt, &v)))
}

pub(crate) fn infer_arg(axis: i64, keepdims: bool, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let a = norm_axis(axis, x.shape.rank())?;
    let mut dims = x.shape.0.clone();
    if keepdims {
        dims[a] = Dim::Known(1);
    } else {
        dims.remove(a);
    }
    Ok(vec![TensorType::new(DType::I64, Shape(dims))])
}

/// (outer, len, inner) of `axis` in `dims`.
pub(crate) fn split_at_axis(dims: &[usize], a: usize) -> (usize, usize, usize) {
    (dims[..a].iter().product(), dims[a], dims[a + 1..].iter().product())
}

pub(crate) fn eval_arg(max: bool, axis: i64, keepdims: bool, last: bool, x: &Tensor) -> Result<Tensor, OpError> {
    let a = norm_axis(axis, x.rank())?;
    let (outer, len, inner) = split_at_axis(x.dims(), a);
    if len == 0 {
        return invalid("ArgMax/ArgMin over an empty axis");
    }
    let xv = x.to_f64();
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let mut best = 0usize;
            for l in 1..len {
                let (v, b) = (xv[(o * len + l) * inner + i], xv[(o * len + best) * inner + i]);
                let better = if max { v > b || (last && v == b) } else { v < b || (last && v == b) };
                if better {
                    best = l;
                }
            }
            out.push(best as i64);
        }
    }
    let mut dims = x.dims().to_vec();
    if keepdims {
        dims[a] = 1;
    } else {
        dims.remove(a);
    }
    Ok(tensor(dims, Data::I64(out)))
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum SoftmaxKind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

pub(crate) fn eval_softmax(kind: SoftmaxKind, axis: i64, legacy: bool, x: &Tensor) -> Result<Tensor, OpError> {
    if !x.dtype().is_float() {
        return Err(OpError::DType { index: 0, dtype: x.dtype() });
    }
    let a = norm_axis(axis, x.rank())?;
    let (outer, len, inner) = if legacy {
        let o: usize = x.dims()[..a].iter().product();
        (o, x.dims()[a..].iter().product(), 1)
    } else {
        split_at_axis(x.dims(), a)
    };
    let xv = x.to_f64();
    let mut y = vec![0f64; xv.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |l: usize| (o * len + l) * inner + i;
            let m = (0..len).map(|l| xv[at(l)]).fold(f64::NEG_INFINITY, f64::max);
            match kind {
                SoftmaxKind::Hardmax => {
                    if let Some(first) = (0..len).find(|&l| xv[at(l)] == m) {
                        y[at(first)] = 1.0;
                    }
                }
                _ => {
                    let s: f64 = (0..len).map(|l| (xv[at(l)] - m).exp()).sum();
                    for l in 0..len {
                        y[at(l)] = if kind == SoftmaxKind::Softmax { (xv[at(l)] - m).exp() / s } else { xv[at(l)] - m - s.ln() };
                    }
                }
            }
        }
    }
    Ok(tensor(x.dims().to_vec(), Data::from_f64(x.dtype(), &y)))
}
