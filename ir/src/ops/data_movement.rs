//! Data movement: Transpose, Concat, Split, Slice, Expand, Tile, Pad, DepthToSpace,
//! SpaceToDepth, Compress, ReverseSequence. All are dtype-agnostic: they compute source
//! indices and gather with [`Data::take`].

use super::elementwise::{broadcast_to, tensor};
use super::shape_ops::{const_ints, split_sizes};
use super::{invalid, norm_axis, opt, req, DepthToSpaceMode, DimNamer, InType, OpError, PadMode, TensorType};
use crate::shape::{broadcast, strides, Dim, Shape};
use crate::tensor::{Data, Tensor};

/// Source offsets for an output of `out_dims` that reads the source at
/// `base + sum(i_k * step_k)`.
pub(crate) fn strided_index(out_dims: &[usize], steps: &[isize], base: isize) -> Vec<usize> {
    let n: usize = out_dims.iter().product();
    let r = out_dims.len();
    let mut idx = Vec::with_capacity(n);
    if n == 0 {
        return idx;
    }
    let mut counter = vec![0usize; r];
    let mut off = base;
    for _ in 0..n {
        idx.push(off as usize);
        for ax in (0..r).rev() {
            counter[ax] += 1;
            off += steps[ax];
            if counter[ax] < out_dims[ax] {
                break;
            }
            off -= steps[ax] * counter[ax] as isize;
            counter[ax] = 0;
        }
    }
    idx
}

/// A Transpose permutation (empty: reversed) checked against `rank`.
pub fn resolve_perm(perm: &[i64], rank: usize) -> Result<Vec<usize>, OpError> {
    if perm.is_empty() {
        return Ok((0..rank).rev().collect());
    }
    if perm.len() != rank {
        return invalid(format!("Transpose perm {perm:?} does not match rank {rank}"));
    }
    let p: Vec<usize> = perm.iter().map(|&a| norm_axis(a, rank)).collect::<Result<_, _>>()?;
    let mut seen = vec![false; rank];
    for &a in &p {
        if std::mem::replace(&mut seen[a], true) {
            return invalid(format!("Transpose perm {perm:?} is not a permutation"));
        }
    }
    Ok(p)
}

pub(crate) fn eval_transpose(perm: &[i64], x: &Tensor) -> Result<Tensor, OpError> {
    let p = resolve_perm(perm, x.rank())?;
    Ok(permute(x, &p))
}

pub(crate) fn permute(x: &Tensor, p: &[usize]) -> Tensor {
    let s = x.strides();
    let out: Vec<usize> = p.iter().map(|&i| x.dims()[i]).collect();
    let steps: Vec<isize> = p.iter().map(|&i| s[i] as isize).collect();
    let idx = strided_index(&out, &steps, 0);
    tensor(out, x.data().take(&idx))
}

pub(crate) fn eval_concat(axis: i64, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let parts: Vec<&Tensor> = ins.iter().flatten().copied().collect();
    let first = parts.first().ok_or(OpError::MissingInput { index: 0 })?;
    let a = norm_axis(axis, first.rank())?;
    let mut dims = first.dims().to_vec();
    dims[a] = 0;
    for p in &parts {
        if p.rank() != first.rank() || p.dtype() != first.dtype() {
            return invalid("Concat inputs differ in rank or dtype");
        }
        for (i, (&d, &e)) in p.dims().iter().zip(first.dims()).enumerate() {
            if i != a && d != e {
                return invalid(format!("Concat: shapes {:?} and {:?} differ off the axis", p.dims(), first.dims()));
            }
        }
        dims[a] += p.dims()[a];
    }
    let outer: usize = dims[..a].iter().product();
    let mut idx = Vec::with_capacity(dims.iter().product());
    let mut base = 0;
    let bases: Vec<usize> = parts
        .iter()
        .map(|p| {
            let b = base;
            base += p.numel();
            b
        })
        .collect();
    for o in 0..outer {
        for (p, &b) in parts.iter().zip(&bases) {
            let chunk: usize = p.dims()[a..].iter().product();
            idx.extend(b + o * chunk..b + (o + 1) * chunk);
        }
    }
    let all = Data::concat(&parts.iter().map(|p| p.data()).collect::<Vec<_>>()).ok_or(OpError::DType { index: 0, dtype: first.dtype() })?;
    Ok(tensor(dims, all.take(&idx)))
}

/// Gathers the slab [start, start+len) along `axis`.
pub(crate) fn narrow(x: &Tensor, axis: usize, start: usize, len: usize) -> Tensor {
    let s = x.strides();
    let mut dims = x.dims().to_vec();
    dims[axis] = len;
    let steps: Vec<isize> = s.iter().map(|&v| v as isize).collect();
    let idx = strided_index(&dims, &steps, (start * s[axis]) as isize);
    tensor(dims, x.data().take(&idx))
}

pub(crate) fn eval_split(axis: i64, x: &Tensor, split: Option<&Tensor>, n_out: usize) -> Result<Vec<Tensor>, OpError> {
    let a = norm_axis(axis, x.rank())?;
    let sizes = split_sizes(x.dims()[a], split.map(|s| s.to_i64()), n_out)?;
    let mut start = 0;
    Ok(sizes
        .into_iter()
        .map(|len| {
            let t = narrow(x, a, start, len);
            start += len;
            t
        })
        .collect())
}

/// Clamps ONNX slice bounds on an axis of length `len`; returns (first index, count).
/// The first index and the element count of a Slice along one axis of length `len`.
pub fn slice_params(len: usize, start: i64, end: i64, step: i64) -> Result<(i64, usize), OpError> {
    if step == 0 {
        return invalid("Slice step must not be 0");
    }
    let l = len as i64;
    let fix = |v: i64| if v < 0 { v.saturating_add(l) } else { v };
    let (s, e) = (fix(start), fix(end));
    let (s, e) = if step > 0 { (s.clamp(0, l), e.clamp(0, l)) } else { (s.clamp(-1, l - 1), e.clamp(-1, l - 1)) };
    let n = if step > 0 {
        if e > s {
            (e - s + step - 1) / step
        } else {
            0
        }
    } else if s > e {
        (s - e + (-step) - 1) / (-step)
    } else {
        0
    };
    Ok((s, n as usize))
}

pub(crate) fn eval_slice(ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let starts = req(ins, 1)?.to_i64();
    let ends = req(ins, 2)?.to_i64();
    let r = x.rank();
    let axes: Vec<i64> = opt(ins, 3).map_or_else(|| (0..starts.len() as i64).collect(), |t| t.to_i64());
    let steps: Vec<i64> = opt(ins, 4).map_or_else(|| vec![1; starts.len()], |t| t.to_i64());
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return invalid("Slice: starts, ends, axes and steps differ in length");
    }
    let s = x.strides();
    let mut dims = x.dims().to_vec();
    let mut st: Vec<isize> = s.iter().map(|&v| v as isize).collect();
    let mut base = 0isize;
    for k in 0..starts.len() {
        let a = norm_axis(axes[k], r)?;
        let (first, n) = slice_params(x.dims()[a], starts[k], ends[k], steps[k])?;
        dims[a] = n;
        if n > 0 {
            base += first as isize * s[a] as isize;
        }
        st[a] = steps[k] as isize * s[a] as isize;
    }
    let idx = strided_index(&dims, &st, base);
    Ok(tensor(dims, x.data().take(&idx)))
}

pub(crate) fn eval_expand(x: &Tensor, shape: &Tensor) -> Result<Tensor, OpError> {
    let target: Vec<usize> = shape.to_i64().iter().map(|&d| d.max(0) as usize).collect();
    let out =
        broadcast(x.dims(), &target).ok_or_else(|| OpError::Invalid(format!("Expand: cannot broadcast {:?} to {target:?}", x.dims())))?;
    super::checked_numel(&out)?;
    broadcast_to(x, &out)
}

pub(crate) fn eval_tile(x: &Tensor, reps: &Tensor) -> Result<Tensor, OpError> {
    let reps = reps.to_i64();
    if reps.len() != x.rank() || reps.iter().any(|&r| r < 0) {
        return invalid(format!("Tile: repeats {reps:?} invalid for rank {}", x.rank()));
    }
    let out: Vec<usize> = x.dims().iter().zip(&reps).map(|(&d, &r)| d.saturating_mul(r as usize)).collect();
    let s = x.strides();
    let n = super::checked_numel(&out)?;
    let os = strides(&out);
    let idx: Vec<usize> = (0..n).map(|i| (0..out.len()).map(|a| ((i / os[a]) % out[a]) % x.dims()[a] * s[a]).sum()).collect();
    Ok(tensor(out, x.data().take(&idx)))
}

pub(crate) fn eval_pad(mode: PadMode, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let r = x.rank();
    let pads = req(ins, 1)?.to_i64();
    let axes: Vec<usize> = match opt(ins, 3) {
        Some(a) => a.to_i64().iter().map(|&v| norm_axis(v, r)).collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return invalid(format!("Pad: {} pads for {} axes", pads.len(), axes.len()));
    }
    let mut before = vec![0i64; r];
    let mut after = vec![0i64; r];
    for (k, &a) in axes.iter().enumerate() {
        before[a] = pads[k];
        after[a] = pads[k + axes.len()];
    }
    let out: Vec<usize> = (0..r)
        .map(|a| {
            let v = x.dims()[a] as i64 + before[a] + after[a];
            if v < 0 {
                Err(OpError::Invalid("Pad: negative output size".into()))
            } else {
                Ok(v as usize)
            }
        })
        .collect::<Result<_, _>>()?;
    let n = super::checked_numel(&out)?;
    let os = strides(&out);
    let s = x.strides();
    if x.numel() == 0 && mode != PadMode::Constant && n > 0 {
        return invalid("Pad: cannot pad an empty tensor in a non-constant mode");
    }
    // Index n (one past the data) selects the constant value.
    let fill = x.numel();
    let mut idx = Vec::with_capacity(n);
    'outer: for i in 0..n {
        let mut off = 0usize;
        for a in 0..r {
            let d = x.dims()[a] as i64;
            let mut c = ((i / os[a]) % out[a]) as i64 - before[a];
            if c < 0 || c >= d {
                match mode {
                    PadMode::Constant => {
                        idx.push(fill);
                        continue 'outer;
                    }
                    PadMode::Edge => c = c.clamp(0, d - 1),
                    PadMode::Wrap => c = c.rem_euclid(d),
                    PadMode::Reflect => {
                        if d == 1 {
                            c = 0;
                        } else {
                            let period = 2 * (d - 1);
                            c = c.rem_euclid(period);
                            if c >= d {
                                c = period - c;
                            }
                        }
                    }
                }
            }
            off += c as usize * s[a];
        }
        idx.push(off);
    }
    let cval = match opt(ins, 2) {
        Some(v) if v.numel() > 0 => v.cast(x.dtype()).into_data().take(&[0]),
        _ => Data::zeros(x.dtype(), 1),
    };
    let all = Data::concat(&[x.data(), &cval]).ok_or(OpError::DType { index: 2, dtype: x.dtype() })?;
    Ok(tensor(out, all.take(&idx)))
}

fn rank4<'a>(ins: &'a [Option<InType<'a>>]) -> Result<(&'a InType<'a>, &'a [Dim]), OpError> {
    let x = req(ins, 0)?;
    if x.shape.rank() != 4 {
        return invalid("expected a rank-4 NCHW input");
    }
    Ok((x, &x.shape.0))
}

fn dim_mul(d: &Dim, k: usize, div: bool) -> Dim {
    match d {
        Dim::Known(n) if div => Dim::Known(n / k),
        Dim::Known(n) => Dim::Known(n * k),
        Dim::Sym(s) => Dim::Sym(format!("{s}{}{k}", if div { "/" } else { "*" })),
    }
}

pub(crate) fn infer_depth_to_space(b: i64, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (x, d) = rank4(ins)?;
    let b = b.max(1) as usize;
    let s = Shape(vec![d[0].clone(), dim_mul(&d[1], b * b, true), dim_mul(&d[2], b, false), dim_mul(&d[3], b, false)]);
    Ok(vec![TensorType::new(x.dtype, s)])
}

pub(crate) fn infer_space_to_depth(b: i64, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (x, d) = rank4(ins)?;
    let b = b.max(1) as usize;
    let s = Shape(vec![d[0].clone(), dim_mul(&d[1], b * b, false), dim_mul(&d[2], b, true), dim_mul(&d[3], b, true)]);
    Ok(vec![TensorType::new(x.dtype, s)])
}

pub(crate) fn eval_depth_to_space(b: i64, mode: DepthToSpaceMode, x: &Tensor) -> Result<Tensor, OpError> {
    let [n, c, h, w] = *x.dims() else { return invalid("DepthToSpace needs rank 4") };
    let b = b as usize;
    if b == 0 || c % (b * b) != 0 {
        return invalid("DepthToSpace: channels not divisible by blocksize^2");
    }
    let c2 = c / (b * b);
    let (tmp, perm): (Vec<usize>, [usize; 6]) = match mode {
        DepthToSpaceMode::Dcr => (vec![n, b, b, c2, h, w], [0, 3, 4, 1, 5, 2]),
        DepthToSpaceMode::Crd => (vec![n, c2, b, b, h, w], [0, 1, 4, 2, 5, 3]),
    };
    let t = permute(&tensor(tmp, x.data().clone()), &perm);
    Ok(tensor(vec![n, c2, h * b, w * b], t.into_data()))
}

pub(crate) fn eval_space_to_depth(b: i64, x: &Tensor) -> Result<Tensor, OpError> {
    let [n, c, h, w] = *x.dims() else { return invalid("SpaceToDepth needs rank 4") };
    let b = b as usize;
    if b == 0 || h % b != 0 || w % b != 0 {
        return invalid("SpaceToDepth: spatial dims not divisible by blocksize");
    }
    let t = permute(&tensor(vec![n, c, h / b, b, w / b, b], x.data().clone()), &[0, 3, 5, 1, 2, 4]);
    Ok(tensor(vec![n, c * b * b, h / b, w / b], t.into_data()))
}

pub(crate) fn infer_compress(axis: Option<i64>, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let cond = const_ints(opt(ins, 1));
    let n = match cond {
        Some(c) => Dim::Known(c.iter().filter(|&&v| v != 0).count()),
        None => names.fresh(),
    };
    let shape = match axis {
        None => Shape(vec![n]),
        Some(a) => {
            let a = norm_axis(a, x.shape.rank())?;
            let mut s = x.shape.clone();
            s.0[a] = n;
            s
        }
    };
    Ok(vec![TensorType::new(x.dtype, shape)])
}

pub(crate) fn eval_compress(axis: Option<i64>, x: &Tensor, cond: &Tensor) -> Result<Tensor, OpError> {
    let c = cond.to_i64();
    let (src, a) = match axis {
        None => (tensor(vec![x.numel()], x.data().clone()), 0),
        Some(a) => (x.clone(), norm_axis(a, x.rank())?),
    };
    let keep: Vec<usize> = (0..src.dims()[a].min(c.len())).filter(|&i| c[i] != 0).collect();
    let parts: Vec<Tensor> = keep.iter().map(|&i| narrow(&src, a, i, 1)).collect();
    if parts.is_empty() {
        let mut d = src.dims().to_vec();
        d[a] = 0;
        return Ok(Tensor::zeros(x.dtype(), d));
    }
    eval_concat(a as i64, &parts.iter().map(Some).collect::<Vec<_>>())
}

pub(crate) fn eval_reverse_sequence(batch_axis: i64, time_axis: i64, x: &Tensor, lens: &Tensor) -> Result<Tensor, OpError> {
    let (ba, ta) = (norm_axis(batch_axis, x.rank())?, norm_axis(time_axis, x.rank())?);
    let lens = lens.to_i64();
    let s = x.strides();
    let n = x.numel();
    let idx: Vec<usize> = (0..n)
        .map(|i| {
            let b = (i / s[ba]) % x.dims()[ba];
            let t = (i / s[ta]) % x.dims()[ta];
            let l = lens.get(b).copied().unwrap_or(0).clamp(0, x.dims()[ta] as i64) as usize;
            if t < l {
                i - t * s[ta] + (l - 1 - t) * s[ta]
            } else {
                i
            }
        })
        .collect();
    Ok(tensor(x.dims().to_vec(), x.data().take(&idx)))
}

/// CenterCropPad: each listed axis is cropped or zero-padded to its target length, centered
/// (a crop starts at (d - t) / 2; a pad puts (t - d) / 2 zeros before).
pub(crate) fn eval_center_crop_pad(axes: &[i64], x: &Tensor, shape: &Tensor) -> Result<Tensor, OpError> {
    let r = x.rank();
    let target = shape.to_i64();
    let axes: Vec<usize> =
        if axes.is_empty() { (0..r).collect() } else { axes.iter().map(|&a| norm_axis(a, r)).collect::<Result<_, _>>()? };
    if target.len() != axes.len() || target.iter().any(|&t| t < 0) {
        return invalid(format!("CenterCropPad: shape {target:?} does not match axes {axes:?}"));
    }
    let mut out = x.dims().to_vec();
    let mut shift = vec![0i64; r];
    for (&a, &t) in axes.iter().zip(&target) {
        let d = x.dims()[a] as i64;
        shift[a] = if t < d { (d - t) / 2 } else { -((t - d) / 2) };
        out[a] = t as usize;
    }
    let n = super::checked_numel(&out)?;
    let (os, s) = (strides(&out), x.strides());
    let fill = x.numel();
    let idx: Vec<usize> = (0..n)
        .map(|i| {
            let mut off = 0;
            for a in 0..r {
                let c = ((i / os[a]) % out[a]) as i64 + shift[a];
                if c < 0 || c >= x.dims()[a] as i64 {
                    return fill;
                }
                off += c as usize * s[a];
            }
            off
        })
        .collect();
    let all = Data::concat(&[x.data(), &Data::zeros(x.dtype(), 1)]).ok_or(OpError::DType { index: 0, dtype: x.dtype() })?;
    Ok(tensor(out, all.take(&idx)))
}

pub(crate) fn infer_center_crop_pad(axes: &[i64], ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let r = x.shape.rank();
    let Some(target) = const_ints(opt(ins, 1)) else {
        return Ok(vec![TensorType::new(x.dtype, names.shape(r))]);
    };
    let axes: Vec<usize> =
        if axes.is_empty() { (0..r).collect() } else { axes.iter().map(|&a| norm_axis(a, r)).collect::<Result<_, _>>()? };
    if target.len() != axes.len() {
        return invalid(format!("CenterCropPad: shape {target:?} does not match axes {axes:?}"));
    }
    let mut dims = x.shape.0.clone();
    for (&a, &t) in axes.iter().zip(&target) {
        dims[a] = Dim::Known(t.max(0) as usize);
    }
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}
