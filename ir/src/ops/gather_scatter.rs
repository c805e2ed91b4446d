//! Gather, GatherElements, GatherND, ScatterND, ScatterElements.

use super::elementwise::tensor;
use super::{invalid, norm_axis, req, DimNamer, InType, OpError, ScatterReduction, TensorType};
use crate::shape::{strides, Dim, Shape};
use crate::tensor::{Data, Tensor};

fn index(i: i64, len: usize) -> Result<usize, OpError> {
    let v = if i < 0 { i + len as i64 } else { i };
    if v < 0 || v >= len as i64 {
        return invalid(format!("index {i} out of range for axis of size {len}"));
    }
    Ok(v as usize)
}

pub(crate) fn infer_gather(axis: i64, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (x, i) = (req(ins, 0)?, req(ins, 1)?);
    let a = norm_axis(axis, x.shape.rank())?;
    let mut dims = x.shape.0[..a].to_vec();
    dims.extend(i.shape.0.iter().cloned());
    dims.extend(x.shape.0[a + 1..].iter().cloned());
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

pub(crate) fn eval_gather(axis: i64, x: &Tensor, ind: &Tensor) -> Result<Tensor, OpError> {
    let a = norm_axis(axis, x.rank())?;
    let (outer, len, inner) = super::reduce::split_at_axis(x.dims(), a);
    let iv: Vec<usize> = ind.to_i64().into_iter().map(|i| index(i, len)).collect::<Result<_, _>>()?;
    let mut idx = Vec::with_capacity(outer * iv.len() * inner);
    for o in 0..outer {
        for &j in &iv {
            let base = (o * len + j) * inner;
            idx.extend(base..base + inner);
        }
    }
    let mut dims = x.dims()[..a].to_vec();
    dims.extend(ind.dims());
    dims.extend(&x.dims()[a + 1..]);
    Ok(tensor(dims, x.data().take(&idx)))
}

pub(crate) fn infer_like_input(i: usize, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    Ok(vec![TensorType::new(x.dtype, req(ins, i)?.shape.clone())])
}

pub(crate) fn eval_gather_elements(axis: i64, x: &Tensor, ind: &Tensor) -> Result<Tensor, OpError> {
    let a = norm_axis(axis, x.rank())?;
    if ind.rank() != x.rank() {
        return invalid("GatherElements: indices rank differs from data rank");
    }
    let (xs, is) = (x.strides(), ind.strides());
    let iv = ind.to_i64();
    let idx: Vec<usize> = (0..ind.numel())
        .map(|k| {
            let mut off = 0;
            for d in 0..x.rank() {
                let c = (k / is[d]) % ind.dims()[d];
                let c = if d == a { index(iv[k], x.dims()[a])? } else { c };
                off += c * xs[d];
            }
            Ok(off)
        })
        .collect::<Result<_, OpError>>()?;
    Ok(tensor(ind.dims().to_vec(), x.data().take(&idx)))
}

pub(crate) fn infer_gather_nd(b: i64, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let (x, i) = (req(ins, 0)?, req(ins, 1)?);
    let Some(Dim::Known(last)) = i.shape.0.last() else {
        return Ok(vec![TensorType::new(x.dtype, names.shape(1))]);
    };
    let b = b as usize;
    let mut dims = i.shape.0[..i.shape.rank() - 1].to_vec();
    dims.extend(x.shape.0.iter().skip(b + last).cloned());
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

pub(crate) fn eval_gather_nd(b: i64, x: &Tensor, ind: &Tensor) -> Result<Tensor, OpError> {
    let b = b as usize;
    let (xd, id) = (x.dims(), ind.dims());
    let Some(&last) = id.last() else { return invalid("GatherND indices must have rank >= 1") };
    if b + last > xd.len() {
        return invalid("GatherND: index tuples longer than data rank");
    }
    let xs = x.strides();
    let slice: usize = xd[b + last..].iter().product();
    let batch: usize = xd[..b].iter().product();
    let iv = ind.to_i64();
    let tuples = iv.len() / last.max(1);
    let per_batch = tuples / batch.max(1);
    let mut idx = Vec::with_capacity(tuples * slice);
    for t in 0..(if last == 0 { id[..id.len() - 1].iter().product() } else { tuples }) {
        let bi = t / per_batch.max(1);
        let mut off = 0;
        let mut rem = bi;
        for d in (0..b).rev() {
            off += (rem % xd[d]) * xs[d];
            rem /= xd[d];
        }
        for k in 0..last {
            off += index(iv[t * last + k], xd[b + k])? * xs[b + k];
        }
        idx.extend(off..off + slice);
    }
    let mut dims = id[..id.len() - 1].to_vec();
    dims.extend(&xd[b + last..]);
    Ok(tensor(dims, x.data().take(&idx)))
}

fn combine(red: ScatterReduction, dst: &mut [f64], i: usize, v: f64) {
    dst[i] = match red {
        ScatterReduction::None => v,
        ScatterReduction::Add => dst[i] + v,
        ScatterReduction::Mul => dst[i] * v,
        ScatterReduction::Max => dst[i].max(v),
        ScatterReduction::Min => dst[i].min(v),
    };
}

/// Applies (target offset, source element) pairs to a copy of `x`.
fn scatter(x: &Tensor, upd: &Tensor, pairs: &[(usize, usize)], red: ScatterReduction) -> Tensor {
    if red == ScatterReduction::None {
        let mut idx: Vec<usize> = (0..x.numel()).collect();
        for &(dst, src) in pairs {
            idx[dst] = x.numel() + src;
        }
        if let Some(all) = Data::concat(&[x.data(), upd.data()]) {
            return tensor(x.dims().to_vec(), all.take(&idx));
        }
    }
    let mut v = x.to_f64();
    let u = upd.to_f64();
    for &(dst, src) in pairs {
        combine(red, &mut v, dst, u[src]);
    }
    tensor(x.dims().to_vec(), Data::from_f64(x.dtype(), &v))
}

pub(crate) fn eval_scatter_nd(red: ScatterReduction, x: &Tensor, ind: &Tensor, upd: &Tensor) -> Result<Tensor, OpError> {
    let Some(&last) = ind.dims().last() else { return invalid("ScatterND indices must have rank >= 1") };
    if last > x.rank() {
        return invalid("ScatterND: index tuples longer than data rank");
    }
    let xs = x.strides();
    let slice: usize = x.dims()[last..].iter().product();
    let iv = ind.to_i64();
    let tuples = iv.len() / last.max(1);
    if upd.numel() != tuples * slice {
        return invalid("ScatterND: updates shape does not match indices");
    }
    let mut pairs = Vec::with_capacity(upd.numel());
    for t in 0..tuples {
        let mut off = 0;
        for k in 0..last {
            off += index(iv[t * last + k], x.dims()[k])? * xs[k];
        }
        pairs.extend((0..slice).map(|s| (off + s, t * slice + s)));
    }
    Ok(scatter(x, upd, &pairs, red))
}

pub(crate) fn eval_scatter_elements(axis: i64, red: ScatterReduction, x: &Tensor, ind: &Tensor, upd: &Tensor) -> Result<Tensor, OpError> {
    let a = norm_axis(axis, x.rank())?;
    if ind.dims() != upd.dims() || ind.rank() != x.rank() {
        return invalid("ScatterElements: indices and updates must have equal shapes and the data's rank");
    }
    let (xs, is) = (x.strides(), strides(ind.dims()));
    let iv = ind.to_i64();
    let pairs = (0..ind.numel())
        .map(|k| {
            let mut off = 0;
            for d in 0..x.rank() {
                let c = (k / is[d]) % ind.dims()[d];
                let c = if d == a { index(iv[k], x.dims()[a])? } else { c };
                off += c * xs[d];
            }
            Ok((off, k))
        })
        .collect::<Result<Vec<_>, OpError>>()?;
    Ok(scatter(x, upd, &pairs, red))
}

/// TensorScatter (opset 24): writes `update` into a copy of `cache` along `axis`, starting
/// per batch row at `write_indices[b]` (0 without it), wrapping around in circular mode.
pub(crate) fn eval_tensor_scatter(
    axis: i64,
    circular: bool,
    cache: &Tensor,
    update: &Tensor,
    write: Option<&Tensor>,
) -> Result<Tensor, OpError> {
    let r = cache.rank();
    let a = norm_axis(axis, r)?;
    if update.rank() != r || (0..r).any(|i| if i == a { update.dims()[i] > cache.dims()[i] } else { update.dims()[i] != cache.dims()[i] }) {
        return invalid(format!("TensorScatter: update {:?} does not fit cache {:?} on axis {a}", update.dims(), cache.dims()));
    }
    if update.dtype() != cache.dtype() {
        return invalid("TensorScatter: cache and update dtypes differ");
    }
    let starts = write.map(|w| w.to_i64());
    let (cs, us) = (cache.strides(), update.strides());
    let max_len = cache.dims()[a] as i64;
    let mut pairs = Vec::with_capacity(update.numel());
    for k in 0..update.numel() {
        let b = if r > 0 { (k / us[0]) % update.dims()[0] } else { 0 };
        let start = starts.as_ref().map_or(0, |s| s.get(b).copied().unwrap_or(0));
        let mut off = 0;
        for d in 0..r {
            let c = ((k / us[d]) % update.dims()[d]) as i64;
            let c = if d == a {
                let p = start + c;
                let p = if circular { p.rem_euclid(max_len.max(1)) } else { p };
                if p < 0 || p >= max_len {
                    return invalid(format!("TensorScatter: write position {p} outside the cache's {max_len}"));
                }
                p
            } else {
                c
            };
            off += c as usize * cs[d];
        }
        pairs.push((off, k));
    }
    Ok(scatter(cache, update, &pairs, ScatterReduction::None))
}
