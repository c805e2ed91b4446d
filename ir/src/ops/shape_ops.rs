//! Ops that change only the shape (Reshape, Flatten, Squeeze, Unsqueeze, Shape, Size,
//! ConstantOfShape, Dropout in inference) plus shape inference for data-movement ops whose
//! output shape depends on constant inputs (Transpose, Concat, Split, Slice, Expand, Tile, Pad).

use super::data_movement::slice_params;
use super::elementwise::tensor;
use super::{invalid, norm_axis, opt, req, DimNamer, InType, Op, OpError, TensorType};
use crate::dtype::DType;
use crate::shape::{broadcast_sym, Dim, Shape};
use crate::tensor::{Data, Tensor};

/// Length of a 1-D (or scalar) list input such as axes or a target shape; higher ranks are
/// rejected (evaluation rejects them too, through [`ints_1d`]).
pub(crate) fn list_len(x: &InType, what: &str) -> Result<usize, OpError> {
    match x.shape.rank() {
        0 => Ok(1),
        1 => Ok(x.shape.0[0].known().unwrap_or(0)),
        r => invalid(format!("{what} must be 1-D, has rank {r}")),
    }
}

/// The values of a 1-D (or scalar) list input.
pub(crate) fn ints_1d(t: &Tensor, what: &str) -> Result<Vec<i64>, OpError> {
    if t.rank() > 1 {
        return invalid(format!("{what} must be 1-D, has shape {:?}", t.dims()));
    }
    Ok(t.to_i64())
}

/// The value of a constant i64 input, if inference knows it.
pub(crate) fn const_ints(x: Option<&InType>) -> Option<Vec<i64>> {
    x.and_then(|x| x.value).map(|t| t.to_i64())
}

pub(crate) fn infer_identity(op: &Op, ins: &[Option<InType>], n_out: usize) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let mut out = vec![TensorType::new(x.dtype, x.shape.clone())];
    if let Op::Dropout {} = op {
        if n_out > 1 {
            out.push(TensorType::new(DType::Bool, x.shape.clone()));
        }
    }
    Ok(out)
}

pub(crate) fn eval_dropout(ins: &[Option<&Tensor>], n_out: usize) -> Result<Vec<Tensor>, OpError> {
    let x = *req(ins, 0)?;
    let training = opt(ins, 2).is_some_and(|t| t.to_i64().first().copied().unwrap_or(0) != 0);
    let ratio = opt(ins, 1).and_then(|t| t.to_f64().first().copied()).unwrap_or(0.5);
    if training && ratio != 0.0 {
        // Dropping with a nonzero ratio is random: there is no reference value to reproduce.
        return Err(OpError::Unsupported("Dropout with training_mode=true and a nonzero ratio (random)".into()));
    }
    let mut out = vec![x.clone()];
    if n_out > 1 {
        out.push(tensor(x.dims().to_vec(), Data::Bool(vec![true; x.numel()])));
    }
    Ok(out)
}

/// Resolves a Reshape target (0 copies the input dim unless `allowzero`, -1 is inferred).
pub(crate) fn reshape_dims(allowzero: bool, input: &[usize], target: &[i64]) -> Result<Vec<usize>, OpError> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &t) in target.iter().enumerate() {
        match t {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                out.push(1);
            }
            0 if !allowzero => out
                .push(*input.get(i).ok_or_else(|| OpError::Invalid(format!("Reshape: 0 at axis {i} beyond input rank {}", input.len())))?),
            t if t >= 0 => out.push(t as usize),
            _ => return invalid(format!("Reshape: invalid target {target:?}")),
        }
    }
    if let Some(i) = infer_at {
        let rest: usize = out.iter().product();
        if rest == 0 || !total.is_multiple_of(rest) {
            return invalid(format!("Reshape: cannot reshape {input:?} to {target:?}"));
        }
        out[i] = total / rest;
    }
    if out.iter().product::<usize>() != total {
        return invalid(format!("Reshape: cannot reshape {input:?} ({total} elements) to {target:?}"));
    }
    Ok(out)
}

pub(crate) fn infer_reshape(allowzero: bool, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let s = req(ins, 1)?;
    let Some(target) = const_ints(Some(s)) else {
        let rank = s.shape.0.first().and_then(Dim::known).unwrap_or(0);
        return Ok(vec![TensorType::new(x.dtype, names.shape(rank))]);
    };
    if let Some(dims) = x.shape.as_fixed() {
        let d = reshape_dims(allowzero, &dims, &target)?;
        return Ok(vec![TensorType::new(x.dtype, Shape::fixed(&d))]);
    }
    // Symbolic input: copy 0s, keep known sizes, name -1 freshly.
    let dims = target
        .iter()
        .enumerate()
        .map(|(i, &t)| match t {
            0 if !allowzero => x.shape.0.get(i).cloned().unwrap_or(Dim::Known(0)),
            t if t > 0 => Dim::Known(t as usize),
            0 => Dim::Known(0),
            _ => names.fresh(),
        })
        .collect();
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

pub(crate) fn eval_reshape(allowzero: bool, x: &Tensor, shape: &Tensor) -> Result<Tensor, OpError> {
    let d = reshape_dims(allowzero, x.dims(), &shape.to_i64())?;
    Ok(tensor(d, x.data().clone()))
}

fn product(dims: &[Dim], names: &mut Option<&mut DimNamer>) -> Dim {
    let mut p = 1usize;
    for d in dims {
        match d {
            Dim::Known(n) => p *= n,
            Dim::Sym(s) if dims.len() == 1 => return Dim::Sym(s.clone()),
            Dim::Sym(_) => return names.as_mut().map_or(Dim::Sym("?".into()), |n| n.fresh()),
        }
    }
    Dim::Known(p)
}

pub(crate) fn infer_flatten(axis: i64, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let r = x.shape.rank();
    let a = if axis < 0 { axis + r as i64 } else { axis };
    if a < 0 || a > r as i64 {
        return invalid(format!("Flatten axis {axis} out of range for rank {r}"));
    }
    let a = a as usize;
    let mut none = None;
    let d0 = product(&x.shape.0[..a], &mut none);
    let d1 = product(&x.shape.0[a..], &mut none);
    Ok(vec![TensorType::new(x.dtype, Shape(vec![d0, d1]))])
}

pub(crate) fn eval_flatten(axis: i64, x: &Tensor) -> Result<Tensor, OpError> {
    let r = x.rank();
    let a = if axis < 0 { axis + r as i64 } else { axis };
    if a < 0 || a > r as i64 {
        return invalid(format!("Flatten axis {axis} out of range for rank {r}"));
    }
    let d0: usize = x.dims()[..a as usize].iter().product();
    Ok(tensor(vec![d0, x.numel() / d0.max(1)], x.data().clone()))
}

pub(crate) fn infer_transpose(perm: &[i64], ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let p = super::data_movement::resolve_perm(perm, x.shape.rank())?;
    Ok(vec![TensorType::new(x.dtype, Shape(p.iter().map(|&i| x.shape.0[i].clone()).collect()))])
}

fn squeeze_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, OpError> {
    let mut v = axes.iter().map(|&a| norm_axis(a, rank)).collect::<Result<Vec<_>, _>>()?;
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

pub(crate) fn infer_squeeze(ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let dims = match opt(ins, 1) {
        Some(a) => match const_ints(Some(a)) {
            Some(axes) => {
                let axes = squeeze_axes(&axes, x.shape.rank())?;
                x.shape.0.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, d)| d.clone()).collect()
            }
            None => {
                let n = list_len(a, "Squeeze axes")?;
                return Ok(vec![TensorType::new(x.dtype, names.shape(x.shape.rank().saturating_sub(n)))]);
            }
        },
        None => {
            // Symbolic dims are assumed not to be 1 (they would be squeezed at run time).
            x.shape.0.iter().filter(|d| **d != Dim::Known(1)).cloned().collect()
        }
    };
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

pub(crate) fn eval_squeeze(x: &Tensor, axes: Option<&Tensor>) -> Result<Tensor, OpError> {
    let dims: Vec<usize> = match axes {
        Some(a) => {
            let axes = squeeze_axes(&ints_1d(a, "Squeeze axes")?, x.rank())?;
            for &a in &axes {
                if x.dims()[a] != 1 {
                    return invalid(format!("Squeeze: axis {a} has size {}", x.dims()[a]));
                }
            }
            x.dims().iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
        }
        None => x.dims().iter().copied().filter(|&d| d != 1).collect(),
    };
    Ok(tensor(dims, x.data().clone()))
}

fn unsqueeze_dims<D: Clone>(dims: &[D], axes: &[i64], one: D) -> Result<Vec<D>, OpError> {
    let r = dims.len() + axes.len();
    let mut ax = squeeze_axes(axes, r)?;
    if ax.len() != axes.len() {
        return invalid("Unsqueeze: repeated axis");
    }
    ax.sort_unstable();
    let mut out = Vec::with_capacity(r);
    let mut src = dims.iter();
    for i in 0..r {
        if ax.contains(&i) {
            out.push(one.clone());
        } else {
            out.push(src.next().cloned().ok_or_else(|| OpError::Invalid("Unsqueeze: bad axes".into()))?);
        }
    }
    Ok(out)
}

pub(crate) fn infer_unsqueeze(ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let a = req(ins, 1)?;
    match const_ints(Some(a)) {
        Some(axes) => Ok(vec![TensorType::new(x.dtype, Shape(unsqueeze_dims(&x.shape.0, &axes, Dim::Known(1))?))]),
        None => {
            let n = list_len(a, "Unsqueeze axes")?;
            Ok(vec![TensorType::new(x.dtype, names.shape(x.shape.rank() + n))])
        }
    }
}

pub(crate) fn eval_unsqueeze(x: &Tensor, axes: &Tensor) -> Result<Tensor, OpError> {
    Ok(tensor(unsqueeze_dims(x.dims(), &ints_1d(axes, "Unsqueeze axes")?, 1)?, x.data().clone()))
}

pub(crate) fn infer_concat(axis: i64, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let first = req(ins, 0)?;
    let r = first.shape.rank();
    if r == 0 {
        return invalid("Concat of rank-0 tensors: it joins tensors of rank 1 or more along an axis");
    }
    let a = norm_axis(axis, r)?;
    let mut dims = first.shape.0.clone();
    let mut total = Some(0usize);
    for x in ins.iter().flatten() {
        if x.shape.rank() != r || x.dtype != first.dtype {
            return invalid(format!("Concat: inputs {} {} and {} {} differ in rank or dtype", first.dtype, first.shape, x.dtype, x.shape));
        }
        total = match (total, &x.shape.0[a]) {
            (Some(t), Dim::Known(n)) => {
                Some(t.checked_add(*n).ok_or_else(|| OpError::Invalid("Concat: the joined axis overflows".into()))?)
            }
            _ => None,
        };
    }
    dims[a] = match total {
        Some(t) => Dim::Known(t),
        None => names.fresh(),
    };
    Ok(vec![TensorType::new(first.dtype, Shape(dims))])
}

pub(crate) fn split_sizes(len: usize, split: Option<Vec<i64>>, n_out: usize) -> Result<Vec<usize>, OpError> {
    match split {
        Some(s) => {
            if s.iter().any(|&v| v < 0) || s.iter().sum::<i64>() as usize != len {
                return invalid(format!("Split sizes {s:?} do not sum to {len}"));
            }
            Ok(s.into_iter().map(|v| v as usize).collect())
        }
        None => {
            if n_out == 0 {
                return invalid("Split with no outputs");
            }
            let chunk = len.div_ceil(n_out);
            Ok((0..n_out).map(|i| chunk.min(len.saturating_sub(i * chunk))).collect())
        }
    }
}

pub(crate) fn infer_split(axis: i64, n_out: usize, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let a = norm_axis(axis, x.shape.rank())?;
    let split = match opt(ins, 1) {
        Some(s) => match const_ints(Some(s)) {
            Some(v) => Some(v),
            None => return Ok((0..n_out).map(|_| TensorType::new(x.dtype, names.shape(x.shape.rank()))).collect()),
        },
        None => None,
    };
    let sizes: Vec<Dim> = match x.shape.0[a].known() {
        Some(len) => split_sizes(len, split, n_out)?.into_iter().map(Dim::Known).collect(),
        None => match split {
            Some(s) => s.into_iter().map(|v| Dim::Known(v as usize)).collect(),
            None => (0..n_out).map(|_| names.fresh()).collect(),
        },
    };
    Ok(sizes
        .into_iter()
        .map(|d| {
            let mut s = x.shape.clone();
            s.0[a] = d;
            TensorType::new(x.dtype, s)
        })
        .collect())
}

pub(crate) fn infer_slice(ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let r = x.shape.rank();
    let known = |i| match opt(ins, i) {
        None => Some(None),
        Some(v) => const_ints(Some(v)).map(Some),
    };
    let (Some(Some(starts)), Some(Some(ends)), Some(axes), Some(steps)) = (known(1), known(2), known(3), known(4)) else {
        return Ok(vec![TensorType::new(x.dtype, names.shape(r))]);
    };
    let axes: Vec<i64> = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let mut dims = x.shape.0.clone();
    for (k, &ax) in axes.iter().enumerate() {
        let a = norm_axis(ax, r)?;
        if let Dim::Known(len) = dims[a] {
            let step = steps.as_ref().map_or(1, |s| s[k]);
            let (_, n) = slice_params(len, starts[k], ends[k], step)?;
            dims[a] = Dim::Known(n);
        } else {
            dims[a] = names.fresh();
        }
    }
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

pub(crate) fn infer_expand(ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let s = req(ins, 1)?;
    match const_ints(Some(s)) {
        Some(v) => {
            let target = Shape(v.iter().map(|&d| Dim::Known(d.max(0) as usize)).collect());
            let out = broadcast_sym(x.shape, &target)
                .ok_or_else(|| OpError::Invalid(format!("Expand: cannot broadcast {} to {v:?}", x.shape)))?;
            Ok(vec![TensorType::new(x.dtype, out)])
        }
        None => {
            // Unknown target: an input dim known to differ from 1 survives broadcasting as is.
            let n = s.shape.0.first().and_then(Dim::known).unwrap_or(0);
            let r = n.max(x.shape.rank());
            let pad = r - x.shape.rank();
            let dims = (0..r)
                .map(|i| match i.checked_sub(pad).map(|j| &x.shape.0[j]) {
                    Some(Dim::Known(d)) if *d != 1 => Dim::Known(*d),
                    _ => names.fresh(),
                })
                .collect();
            Ok(vec![TensorType::new(x.dtype, Shape(dims))])
        }
    }
}

pub(crate) fn infer_tile(ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    match const_ints(opt(ins, 1)) {
        Some(reps) if reps.len() == x.shape.rank() => {
            let dims = x.shape.0.iter().zip(&reps).map(|(d, &r)| match d {
                Dim::Known(n) => Dim::Known(n * r.max(0) as usize),
                Dim::Sym(_) if r == 1 => d.clone(),
                Dim::Sym(_) => names.fresh(),
            });
            Ok(vec![TensorType::new(x.dtype, Shape(dims.collect()))])
        }
        Some(reps) => invalid(format!("Tile: {} repeats for rank {}", reps.len(), x.shape.rank())),
        None => Ok(vec![TensorType::new(x.dtype, names.shape(x.shape.rank()))]),
    }
}

pub(crate) fn infer_pad(ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let r = x.shape.rank();
    let (Some(pads), axes) = (const_ints(opt(ins, 1)), const_ints(opt(ins, 3))) else {
        return Ok(vec![TensorType::new(x.dtype, names.shape(r))]);
    };
    if opt(ins, 3).is_some() && axes.is_none() {
        return Ok(vec![TensorType::new(x.dtype, names.shape(r))]);
    }
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&v| norm_axis(v, r)).collect::<Result<_, _>>()?,
        None => (0..r).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return invalid(format!("Pad: {} pads for {} axes", pads.len(), axes.len()));
    }
    let mut dims = x.shape.0.clone();
    for (k, &a) in axes.iter().enumerate() {
        dims[a] = match &dims[a] {
            Dim::Known(n) => {
                let v = *n as i64 + pads[k] + pads[k + axes.len()];
                if v < 0 {
                    return invalid("Pad: negative output size");
                }
                Dim::Known(v as usize)
            }
            d if pads[k] == 0 && pads[k + axes.len()] == 0 => d.clone(),
            _ => names.fresh(),
        };
    }
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

fn shape_range(start: i64, end: Option<i64>, r: usize) -> (usize, usize) {
    let clampi = |v: i64| -> usize { (if v < 0 { v + r as i64 } else { v }).clamp(0, r as i64) as usize };
    let s = clampi(start);
    let e = end.map_or(r, clampi);
    (s, e.max(s))
}

pub(crate) fn infer_shape_op(start: i64, end: Option<i64>, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let (s, e) = shape_range(start, end, x.shape.rank());
    Ok(vec![TensorType::fixed(DType::I64, &[e - s])])
}

pub(crate) fn eval_shape(start: i64, end: Option<i64>, x: &Tensor) -> Result<Tensor, OpError> {
    Ok(shape_tensor(x.dims(), start, end))
}

/// The result of `Shape {start, end}` on a value with concrete `dims`.
pub fn shape_tensor(dims: &[usize], start: i64, end: Option<i64>) -> Tensor {
    let (s, e) = shape_range(start, end, dims.len());
    let v: Vec<i64> = dims[s..e].iter().map(|&d| d as i64).collect();
    tensor(vec![e - s], Data::I64(v))
}

pub(crate) fn infer_constant_of_shape(value: &Tensor, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let s = req(ins, 0)?;
    let shape = match const_ints(Some(s)) {
        Some(v) => Shape(v.iter().map(|&d| Dim::Known(d.max(0) as usize)).collect()),
        None => names.shape(list_len(s, "ConstantOfShape shape")?),
    };
    Ok(vec![TensorType::new(value.dtype(), shape)])
}

pub(crate) fn eval_constant_of_shape(value: &Tensor, shape: &Tensor) -> Result<Tensor, OpError> {
    let dims: Vec<usize> = ints_1d(shape, "ConstantOfShape shape")?.iter().map(|&d| d.max(0) as usize).collect();
    let n = super::checked_numel(&dims)?;
    if value.numel() != 1 {
        return invalid("ConstantOfShape value must have one element");
    }
    Ok(tensor(dims, value.data().take(&vec![0; n])))
}
