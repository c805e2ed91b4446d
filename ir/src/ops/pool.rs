//! MaxPool (with indices), AveragePool, LpPool and the global pools.

use super::conv::{infer_spatial, resolve};
use super::elementwise::tensor;
use super::{invalid, req, DimNamer, InType, Op, OpError, PoolKind, TensorType, Window};
use crate::dtype::DType;
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};

fn kernel(w: &Window) -> Result<Vec<usize>, OpError> {
    if w.kernel_shape.is_empty() || w.kernel_shape.iter().any(|&k| k <= 0) {
        return invalid("pooling needs a positive kernel_shape");
    }
    Ok(w.kernel_shape.iter().map(|&k| k as usize).collect())
}

pub(crate) fn infer_pool(
    w: &Window,
    ceil_mode: bool,
    n_out: usize,
    ins: &[Option<InType>],
    names: &mut DimNamer,
) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    if x.shape.rank() < 3 {
        return invalid("pooling input must have rank >= 3");
    }
    let mut dims = x.shape.0[..2].to_vec();
    dims.extend(infer_spatial(w, &x.shape.0[2..], &kernel(w)?, ceil_mode, names)?);
    let mut out = vec![TensorType::new(x.dtype, Shape(dims.clone()))];
    if n_out > 1 {
        out.push(TensorType::new(DType::I64, Shape(dims)));
    }
    Ok(out)
}

pub(crate) fn eval_pool(op: &Op, x: &Tensor, n_out: usize) -> Result<Vec<Tensor>, OpError> {
    let (w, ceil_mode) = match op {
        Op::MaxPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, .. }
        | Op::AveragePool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, .. }
        | Op::LpPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, .. } => {
            (Window::new(kernel_shape, strides, pads, dilations, *auto_pad), *ceil_mode)
        }
        _ => return invalid("not a pooling op"),
    };
    let xd = x.dims();
    if xd.len() < 3 {
        return invalid("pooling input must have rank >= 3");
    }
    let k = kernel(&w)?;
    let r = resolve(&w, &xd[2..], &k, ceil_mode)?;
    let nd = xd.len() - 2;
    let sp: Vec<usize> = xd[2..].to_vec();
    let in_sz: usize = sp.iter().product();
    let out_sz: usize = r.out.iter().product();
    let kprod: usize = k.iter().product();
    let planes = xd[0] * xd[1];
    let xv = x.to_f64();
    let mut y = vec![0f64; planes * out_sz];
    let mut ind = vec![0i64; planes * out_sz];
    let in_str = crate::shape::strides(&sp);
    let pads_all = if w.pads.is_empty() { vec![0usize; 2 * nd] } else { w.pads.iter().map(|&p| p.max(0) as usize).collect() };
    for plane in 0..planes {
        let src = &xv[plane * in_sz..(plane + 1) * in_sz];
        for o in 0..out_sz {
            let mut ocoord = vec![0; nd];
            let mut t = o;
            for d in (0..nd).rev() {
                ocoord[d] = t % r.out[d];
                t /= r.out[d];
            }
            let (mut best, mut best_i) = (f64::NEG_INFINITY, -1i64);
            let (mut sum, mut count, mut count_pad) = (0f64, 0usize, 0usize);
            for kk in 0..kprod {
                let mut t = kk;
                let mut off = 0usize;
                let mut inside = true;
                let mut in_padded = true;
                for d in (0..nd).rev() {
                    let kd = t % k[d];
                    t /= k[d];
                    let pos = (ocoord[d] * r.strides[d] + kd * r.dilations[d]) as isize - r.pad_begin[d] as isize;
                    if pos < 0 || pos as usize >= sp[d] {
                        inside = false;
                        // Positions in the explicit padding count for count_include_pad;
                        // positions added only by ceil_mode do not.
                        let pe = if matches!(w.auto_pad, super::AutoPad::NotSet) { pads_all[d + nd] } else { 0 };
                        if pos >= (sp[d] + pe) as isize {
                            in_padded = false;
                        }
                    } else {
                        off += pos as usize * in_str[d];
                    }
                }
                if in_padded {
                    count_pad += 1;
                }
                if !inside {
                    continue;
                }
                let v = src[off];
                count += 1;
                match op {
                    Op::MaxPool { .. } => {
                        if v > best || best_i < 0 {
                            best = v;
                            best_i = off as i64;
                        }
                    }
                    Op::LpPool { p, .. } => sum += v.abs().powi(*p as i32),
                    _ => sum += v,
                }
            }
            let idx = plane * out_sz + o;
            y[idx] = match op {
                Op::MaxPool { .. } => best,
                Op::LpPool { p, .. } => sum.powf(1.0 / *p as f64),
                Op::AveragePool { count_include_pad, .. } => sum / (if *count_include_pad { count_pad } else { count }).max(1) as f64,
                _ => 0.0,
            };
            if let Op::MaxPool { storage_order, .. } = op {
                let mut i = best_i.max(0) as usize;
                if *storage_order == 1 && nd == 2 {
                    let (h, wd) = (i / sp[1], i % sp[1]);
                    i = wd * sp[0] + h;
                }
                ind[idx] = (plane * in_sz + i) as i64;
            }
        }
    }
    let mut dims = xd[..2].to_vec();
    dims.extend(&r.out);
    let mut out = vec![tensor(dims.clone(), Data::from_f64(x.dtype(), &y))];
    if n_out > 1 {
        out.push(tensor(dims, Data::I64(ind)));
    }
    Ok(out)
}

pub(crate) fn infer_global(ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    if x.shape.rank() < 3 {
        return invalid("global pooling input must have rank >= 3");
    }
    let mut dims = x.shape.0[..2].to_vec();
    dims.extend((2..x.shape.rank()).map(|_| Dim::Known(1)));
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

pub(crate) fn eval_global(kind: PoolKind, p: i64, x: &Tensor) -> Result<Tensor, OpError> {
    let xd = x.dims();
    if xd.len() < 3 {
        return invalid("global pooling input must have rank >= 3");
    }
    let sz: usize = xd[2..].iter().product();
    let xv = x.to_f64();
    let y: Vec<f64> = xv
        .chunks(sz.max(1))
        .take(xd[0] * xd[1])
        .map(|c| match kind {
            PoolKind::Max => c.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            PoolKind::Average => c.iter().sum::<f64>() / sz as f64,
            PoolKind::Lp => c.iter().map(|v| v.abs().powi(p as i32)).sum::<f64>().powf(1.0 / p as f64),
        })
        .collect();
    let mut dims = xd[..2].to_vec();
    dims.extend(std::iter::repeat_n(1, xd.len() - 2));
    Ok(tensor(dims, Data::from_f64(x.dtype(), &y)))
}

pub(crate) fn infer_max_unpool(
    kernel: &[i64],
    pads: &[i64],
    strides: &[i64],
    ins: &[Option<InType>],
    names: &mut DimNamer,
) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    if let Some(v) = super::shape_ops::const_ints(super::opt(ins, 2)) {
        return Ok(vec![TensorType::new(x.dtype, Shape(v.iter().map(|&d| Dim::Known(d.max(0) as usize)).collect()))]);
    }
    match x.shape.as_fixed() {
        Some(d) if super::opt(ins, 2).is_none() => {
            Ok(vec![TensorType::new(x.dtype, Shape::fixed(&unpool_shape(kernel, pads, strides, &d)?))])
        }
        _ => Ok(vec![TensorType::new(x.dtype, names.shape(x.shape.rank()))]),
    }
}

fn unpool_shape(kernel: &[i64], pads: &[i64], strides: &[i64], x: &[usize]) -> Result<Vec<usize>, OpError> {
    let n = x.len().saturating_sub(2);
    if kernel.len() != n {
        return invalid("MaxUnpool kernel_shape does not match the input's spatial rank");
    }
    let mut out = x[..2].to_vec();
    for d in 0..n {
        let s = strides.get(d).copied().unwrap_or(1);
        let p = pads.get(d).copied().unwrap_or(0) + pads.get(n + d).copied().unwrap_or(0);
        let v = (x[2 + d] as i64 - 1) * s - p + kernel[d];
        if v < 0 {
            return invalid("MaxUnpool output size is negative");
        }
        out.push(v as usize);
    }
    Ok(out)
}

/// MaxUnpool: scatters X to the flat positions in `indices` (as MaxPool produced them) in a
/// zero tensor of the unpooled shape, then places it at the origin of `output_shape` if given.
pub(crate) fn eval_max_unpool(kernel: &[i64], pads: &[i64], strides: &[i64], ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let (x, ind) = (*req(ins, 0)?, *req(ins, 1)?);
    let inferred = unpool_shape(kernel, pads, strides, x.dims())?;
    let n = super::checked_numel(&inferred)?;
    if ind.numel() != x.numel() {
        return invalid("MaxUnpool: indices and X differ in size");
    }
    let (xv, iv) = (x.to_f64(), ind.to_i64());
    let mut y = vec![0f64; n];
    for (v, &i) in xv.iter().zip(&iv) {
        let i = usize::try_from(i)
            .ok()
            .filter(|&i| i < n)
            .ok_or_else(|| OpError::Invalid(format!("MaxUnpool: index {i} outside the output")))?;
        y[i] = *v;
    }
    let y = tensor(inferred.clone(), Data::from_f64(x.dtype(), &y));
    let Some(shape) = super::opt(ins, 2) else { return Ok(y) };
    let target: Vec<usize> = shape.to_i64().iter().map(|&d| d.max(0) as usize).collect();
    if target.len() != inferred.len() || target.iter().zip(&inferred).any(|(t, i)| t < i) {
        return invalid(format!("MaxUnpool: output_shape {target:?} smaller than {inferred:?}"));
    }
    let pads: Vec<i64> = inferred.iter().map(|_| 0).chain(target.iter().zip(&inferred).map(|(t, i)| (t - i) as i64)).collect();
    let pt = tensor(vec![pads.len()], Data::I64(pads));
    super::data_movement::eval_pad(super::PadMode::Constant, &[Some(&y), Some(&pt)])
}
