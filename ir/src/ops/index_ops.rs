//! Index-producing and index-driven ops: Range, TopK, OneHot, Trilu, CumSum, NonZero, EyeLike.

use super::elementwise::tensor;
use super::reduce::split_at_axis;
use super::{invalid, norm_axis, req, DimNamer, InType, OpError, TensorType};
use crate::dtype::DType;
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};

fn scalar(t: Option<&InType>) -> Option<f64> {
    t.and_then(|t| t.value).and_then(|v| v.to_f64().first().copied())
}

fn range_len(start: f64, limit: f64, delta: f64) -> usize {
    // `as` saturates: a NaN or huge count becomes 0 or usize::MAX, which checked_numel rejects.
    ((limit - start) / delta).ceil().max(0.0) as usize
}

pub(crate) fn infer_range(ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let s = req(ins, 0)?;
    let n = match (scalar(ins[0].as_ref()), scalar(ins.get(1).and_then(|x| x.as_ref())), scalar(ins.get(2).and_then(|x| x.as_ref()))) {
        (Some(a), Some(b), Some(d)) if d != 0.0 => Dim::Known(range_len(a, b, d)),
        _ => names.fresh(),
    };
    Ok(vec![TensorType::new(s.dtype, Shape(vec![n]))])
}

pub(crate) fn eval_range(start: &Tensor, limit: &Tensor, delta: &Tensor) -> Result<Tensor, OpError> {
    let dt = start.dtype();
    if [start, limit, delta].iter().any(|t| t.numel() != 1) {
        return invalid("Range inputs must be scalars");
    }
    let first = |t: &Tensor| t.to_f64()[0];
    if dt.is_int() {
        let (s, l, d) = (start.to_i64()[0], limit.to_i64()[0], delta.to_i64()[0]);
        if d == 0 {
            return invalid("Range delta must not be 0");
        }
        let n = super::checked_numel(&[range_len(s as f64, l as f64, d as f64)])?;
        let v: Vec<i64> = (0..n as i64).map(|i| s + i * d).collect();
        return Ok(tensor(vec![n], Data::from_i64(dt, &v)));
    }
    let (s, l, d) = (first(start), first(limit), first(delta));
    if d == 0.0 {
        return invalid("Range delta must not be 0");
    }
    let n = super::checked_numel(&[range_len(s, l, d)])?;
    // Accumulate in the dtype, as the ONNX reference does.
    let mut v = Vec::with_capacity(n);
    let mut cur = Data::from_f64(dt, &[s]).to_f64()[0];
    let step = Data::from_f64(dt, &[d]).to_f64()[0];
    for _ in 0..n {
        v.push(cur);
        cur = Data::from_f64(dt, &[cur + step]).to_f64()[0];
    }
    Ok(tensor(vec![n], Data::from_f64(dt, &v)))
}

pub(crate) fn infer_topk(axis: i64, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let a = norm_axis(axis, x.shape.rank())?;
    let mut dims = x.shape.0.clone();
    dims[a] = match scalar(ins.get(1).and_then(|v| v.as_ref())) {
        Some(k) => Dim::Known(k as usize),
        None => names.fresh(),
    };
    Ok(vec![TensorType::new(x.dtype, Shape(dims.clone())), TensorType::new(DType::I64, Shape(dims))])
}

/// Results are always sorted (which every value of `sorted` allows); equal values keep the
/// lower index first.
pub(crate) fn eval_topk(axis: i64, largest: bool, x: &Tensor, k: &Tensor) -> Result<Vec<Tensor>, OpError> {
    let a = norm_axis(axis, x.rank())?;
    let k = k.to_i64().first().copied().unwrap_or(0);
    let (outer, len, inner) = split_at_axis(x.dims(), a);
    if k < 0 || k as usize > len {
        return invalid(format!("TopK: k={k} out of range for axis of size {len}"));
    }
    let k = k as usize;
    let xv = x.to_f64();
    let mut src = vec![0usize; outer * k * inner];
    let mut ind = vec![0i64; outer * k * inner];
    for o in 0..outer {
        for i in 0..inner {
            let at = |l: usize| (o * len + l) * inner + i;
            let mut order: Vec<usize> = (0..len).collect();
            order.sort_by(|&p, &q| {
                let c = xv[at(p)].partial_cmp(&xv[at(q)]).unwrap_or(std::cmp::Ordering::Equal);
                if largest {
                    c.reverse()
                } else {
                    c
                }
            });
            for (j, &l) in order.iter().take(k).enumerate() {
                src[(o * k + j) * inner + i] = at(l);
                ind[(o * k + j) * inner + i] = l as i64;
            }
        }
    }
    let mut dims = x.dims().to_vec();
    dims[a] = k;
    Ok(vec![tensor(dims.clone(), x.data().take(&src)), tensor(dims, Data::I64(ind))])
}

pub(crate) fn infer_onehot(axis: i64, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let (i, v) = (req(ins, 0)?, req(ins, 2)?);
    let r = i.shape.rank() + 1;
    let a = norm_axis(axis, r)?;
    let mut dims = i.shape.0.clone();
    let depth = match scalar(ins.get(1).and_then(|x| x.as_ref())) {
        Some(d) => Dim::Known(d as usize),
        None => names.fresh(),
    };
    dims.insert(a, depth);
    Ok(vec![TensorType::new(v.dtype, Shape(dims))])
}

pub(crate) fn eval_onehot(axis: i64, ind: &Tensor, depth: &Tensor, values: &Tensor) -> Result<Tensor, OpError> {
    let r = ind.rank() + 1;
    let a = norm_axis(axis, r)?;
    let depth = depth.to_f64().first().copied().unwrap_or(0.0) as i64;
    if depth <= 0 || values.numel() != 2 {
        return invalid("OneHot: depth must be positive and values must have 2 elements");
    }
    let d = depth as usize;
    super::checked_numel(&[ind.numel(), d])?;
    let iv = ind.to_f64();
    let (outer, inner) = (ind.dims()[..a].iter().product::<usize>(), ind.dims()[a..].iter().product::<usize>());
    let mut sel = vec![0usize; outer * d * inner];
    for o in 0..outer {
        for i in 0..inner {
            let mut h = iv[o * inner + i] as i64;
            if h < 0 {
                h += depth;
            }
            if (0..depth).contains(&h) {
                sel[(o * d + h as usize) * inner + i] = 1;
            }
        }
    }
    let mut dims = ind.dims().to_vec();
    dims.insert(a, d);
    Ok(tensor(dims, values.data().take(&sel)))
}

pub(crate) fn eval_trilu(upper: bool, x: &Tensor, k: Option<&Tensor>) -> Result<Tensor, OpError> {
    if x.rank() < 2 {
        return invalid("Trilu needs rank >= 2");
    }
    let k = k.and_then(|t| t.to_i64().first().copied()).unwrap_or(0);
    let (r, c) = (x.dims()[x.rank() - 2], x.dims()[x.rank() - 1]);
    let zero = x.numel();
    let idx: Vec<usize> = (0..x.numel())
        .map(|i| {
            let (row, col) = (((i / c.max(1)) % r.max(1)) as i64, (i % c.max(1)) as i64);
            let keep = if upper { col - row >= k } else { col - row <= k };
            if keep {
                i
            } else {
                zero
            }
        })
        .collect();
    let all = Data::concat(&[x.data(), &Data::zeros(x.dtype(), 1)]).ok_or(OpError::DType { index: 0, dtype: x.dtype() })?;
    Ok(tensor(x.dims().to_vec(), all.take(&idx)))
}

pub(crate) fn eval_cumsum(exclusive: bool, reverse: bool, x: &Tensor, axis: &Tensor) -> Result<Tensor, OpError> {
    let a = norm_axis(axis.to_i64().first().copied().unwrap_or(0), x.rank())?;
    let (outer, len, inner) = split_at_axis(x.dims(), a);
    let int = x.dtype().is_int();
    let (fv, iv) = if int { (vec![], x.to_i64()) } else { (x.to_f64(), vec![]) };
    let mut fo = vec![0f64; if int { 0 } else { x.numel() }];
    let mut io = vec![0i64; if int { x.numel() } else { 0 }];
    for o in 0..outer {
        for i in 0..inner {
            let (mut fs, mut is) = (0f64, 0i64);
            for step in 0..len {
                let l = if reverse { len - 1 - step } else { step };
                let p = (o * len + l) * inner + i;
                if int {
                    if exclusive {
                        io[p] = is;
                        is = is.wrapping_add(iv[p]);
                    } else {
                        is = is.wrapping_add(iv[p]);
                        io[p] = is;
                    }
                } else if exclusive {
                    fo[p] = fs;
                    fs += fv[p];
                } else {
                    fs += fv[p];
                    fo[p] = fs;
                }
            }
        }
    }
    let data = if int { Data::from_i64(x.dtype(), &io) } else { Data::from_f64(x.dtype(), &fo) };
    Ok(tensor(x.dims().to_vec(), data))
}

pub(crate) fn eval_nonzero(x: &Tensor) -> Result<Tensor, OpError> {
    let v = x.to_f64();
    let s = x.strides();
    let nz: Vec<usize> = (0..v.len()).filter(|&i| v[i] != 0.0).collect();
    let r = x.rank();
    let mut out = vec![0i64; r * nz.len()];
    for (j, &i) in nz.iter().enumerate() {
        for d in 0..r {
            out[d * nz.len() + j] = ((i / s[d]) % x.dims()[d]) as i64;
        }
    }
    Ok(tensor(vec![r, nz.len()], Data::I64(out)))
}

pub(crate) fn eval_eye_like(dtype: Option<DType>, k: i64, x: &Tensor) -> Result<Tensor, OpError> {
    let [r, c] = *x.dims() else { return invalid("EyeLike needs a 2-D input") };
    let v: Vec<i64> = (0..r * c).map(|i| i64::from((i % c) as i64 - (i / c) as i64 == k)).collect();
    Ok(tensor(vec![r, c], Data::from_i64(dtype.unwrap_or(x.dtype()), &v)))
}

pub(crate) fn infer_unique(
    axis: Option<i64>,
    n_out: usize,
    ins: &[Option<InType>],
    names: &mut DimNamer,
) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let k = names.fresh();
    let y = match axis {
        None => Shape(vec![k.clone()]),
        Some(a) => {
            let a = norm_axis(a, x.shape.rank())?;
            let mut s = x.shape.clone();
            s.0[a] = k.clone();
            s
        }
    };
    let n = match axis {
        None => x.shape.numel().map_or_else(|| names.fresh(), Dim::Known),
        Some(a) => x.shape.0[norm_axis(a, x.shape.rank())?].clone(),
    };
    let mut out = vec![TensorType::new(x.dtype, y), TensorType::new(DType::I64, Shape(vec![k.clone()]))];
    out.push(TensorType::new(DType::I64, Shape(vec![n])));
    out.push(TensorType::new(DType::I64, Shape(vec![k])));
    out.truncate(n_out.max(1));
    Ok(out)
}

/// Unique elements (or slices along `axis`): sorted ascending, or in order of first occurrence.
/// Outputs: values, first-occurrence indices, inverse indices, counts.
pub(crate) fn eval_unique(sorted: bool, axis: Option<i64>, x: &Tensor, n_out: usize) -> Result<Vec<Tensor>, OpError> {
    let (src, a) = match axis {
        None => (tensor(vec![x.numel()], x.data().clone()), 0),
        Some(a) => (x.clone(), norm_axis(a, x.rank())?),
    };
    let (outer, len, inner) = split_at_axis(src.dims(), a);
    let v = src.to_f64();
    let slice = |l: usize| -> Vec<f64> {
        (0..outer).flat_map(|o| (0..inner).map(move |i| (o, i))).map(|(o, i)| v[(o * len + l) * inner + i]).collect()
    };
    let keys: Vec<Vec<f64>> = (0..len).map(slice).collect();
    let cmp =
        |p: &Vec<f64>, q: &Vec<f64>| p.iter().zip(q).map(|(a, b)| a.total_cmp(b)).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal);
    // First occurrence of each distinct key, in order of appearance.
    let mut firsts: Vec<usize> = vec![];
    let mut inverse = vec![0usize; len];
    for l in 0..len {
        match firsts.iter().position(|&f| cmp(&keys[f], &keys[l]).is_eq()) {
            Some(p) => inverse[l] = p,
            None => {
                inverse[l] = firsts.len();
                firsts.push(l);
            }
        }
    }
    let mut order: Vec<usize> = (0..firsts.len()).collect();
    if sorted {
        order.sort_by(|&p, &q| cmp(&keys[firsts[p]], &keys[firsts[q]]));
    }
    let mut rank = vec![0usize; order.len()];
    for (r, &p) in order.iter().enumerate() {
        rank[p] = r;
    }
    let indices: Vec<i64> = order.iter().map(|&p| firsts[p] as i64).collect();
    let inverse: Vec<i64> = inverse.iter().map(|&p| rank[p] as i64).collect();
    let counts: Vec<i64> = order.iter().map(|&p| inverse.iter().filter(|&&r| r as usize == rank[p]).count() as i64).collect();
    let k = indices.len();
    let idx: Vec<usize> =
        (0..outer).flat_map(|o| indices.iter().flat_map(move |&l| (0..inner).map(move |i| (o * len + l as usize) * inner + i))).collect();
    let mut ydims = src.dims().to_vec();
    ydims[a] = k;
    let mut out = vec![
        tensor(ydims, src.data().take(&idx)),
        tensor(vec![k], Data::I64(indices)),
        tensor(vec![len], Data::I64(inverse)),
        tensor(vec![k], Data::I64(counts)),
    ];
    out.truncate(n_out.max(1));
    Ok(out)
}
