//! Builders of the CANN ops every op family uses (Reshape, ConcatD, StridedSliceD, SplitVD,
//! Cast) and the small accessors of a node's ports and constant inputs.

use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::Tensor;

/// A node's lowered outputs, in order (None: an output nothing reads).
pub(crate) type Outs = Vec<Option<Port>>;

/// One output.
pub(super) fn one(p: Port) -> Result<Outs, Fail> {
    Ok(vec![Some(p)])
}

pub(super) fn input(ins: &[Option<Port>], i: usize) -> Result<Port, Fail> {
    ins.get(i).cloned().flatten().ok_or_else(|| Fail::Internal(format!("input {i} is missing")))
}

pub(super) fn output(outs: &[Option<Desc>], i: usize) -> Result<Desc, Fail> {
    outs.get(i).cloned().flatten().ok_or_else(|| Fail::Internal(format!("output {i} has no type")))
}

/// A constant input's values as integers.
pub(super) fn const_ints(consts: &[Option<&Tensor>], i: usize, what: &str) -> Result<Vec<i64>, Fail> {
    match consts.get(i).copied().flatten() {
        Some(t) => Ok(t.to_i64()),
        None => unsupported(format!("{what} computed at run time: CANN's op takes them as attributes")),
    }
}

/// Exp and Log compute `f(shift + scale·x)` in base `base` (-1: e).
pub(super) fn exp_log_attrs() -> Vec<(&'static str, Attr)> {
    vec![("base", Attr::Float(-1.0)), ("scale", Attr::Float(1.0)), ("shift", Attr::Float(0.0))]
}

/// Reshape to `out`'s dims (Reshape, Flatten, Squeeze, Unsqueeze).
pub(super) fn reshape(cx: &mut Cx, name: &str, x: Port, out: Desc) -> Result<Port, Fail> {
    let shape = cx.ints(&format!("{name}/shape"), &out.dims)?;
    cx.op1(name, "Reshape", &[("x", Some(x)), ("shape", Some(shape))], out, vec![("axis", Attr::Int(0)), ("num_axes", Attr::Int(-1))])
}

/// ConcatD of `xs` along `axis`.
pub(super) fn concat(cx: &mut Cx, name: &str, xs: Vec<Port>, axis: i64, out: Desc) -> Result<Port, Fail> {
    let names: Vec<String> = (0..xs.len()).map(|i| format!("x{i}")).collect();
    let attrs = vec![("concat_dim", Attr::Int(axis)), ("N", Attr::Int(xs.len() as i64))];
    let inputs: Vec<(&str, Option<Port>)> = names.iter().map(|n| n.as_str()).zip(xs.into_iter().map(Some)).collect();
    cx.op1(name, "ConcatD", &inputs, out, attrs)
}

/// StridedSliceD of `x` (no masks: every axis has its begin, end and stride).
pub(super) fn strided_slice(
    cx: &mut Cx,
    name: &str,
    x: Port,
    begin: Vec<i64>,
    end: Vec<i64>,
    strides: Vec<i64>,
    out: Desc,
) -> Result<Port, Fail> {
    let attrs = vec![
        ("begin", Attr::ListInt(begin)),
        ("end", Attr::ListInt(end)),
        ("strides", Attr::ListInt(strides)),
        ("begin_mask", Attr::Int(0)),
        ("end_mask", Attr::Int(0)),
        ("ellipsis_mask", Attr::Int(0)),
        ("new_axis_mask", Attr::Int(0)),
        ("shrink_axis_mask", Attr::Int(0)),
    ];
    cx.op1(name, "StridedSliceD", &[("x", Some(x))], out, attrs)
}

/// Cast of `x` to `out` (its dtype in the C++ numbering, as `dst_type` takes it).
pub(super) fn cast(cx: &mut Cx, name: &str, x: Port, out: Desc) -> Result<Port, Fail> {
    let Some(g) = crate::ge::dtype::ge_type(out.dtype) else { return unsupported(format!("GE has no {} type", out.dtype)) };
    cx.op1(name, "Cast", &[("x", Some(x))], out, vec![("dst_type", Attr::Int(g.cpp))])
}

/// SplitVD of `x` along its last axis into parts of `sizes`.
pub(super) fn split_last(cx: &mut Cx, name: &str, x: Port, sizes: &[i64]) -> Result<Vec<Port>, Fail> {
    let d = cx.desc(&x)?;
    let last = d.dims.len().checked_sub(1).ok_or_else(|| Fail::Internal("a scalar product".into()))?;
    let names: Vec<String> = (0..sizes.len()).map(|i| format!("y{i}")).collect();
    let outs = sizes
        .iter()
        .zip(&names)
        .map(|(&s, n)| {
            let mut dims = d.dims.clone();
            dims[last] = s;
            (n.as_str(), Desc { dims: dims.clone(), origin_dims: dims, ..d.clone() })
        })
        .collect();
    let attrs = vec![
        ("size_splits", Attr::ListInt(sizes.to_vec())),
        ("split_dim", Attr::Int(last as i64)),
        ("num_split", Attr::Int(sizes.len() as i64)),
    ];
    cx.op(name, "SplitVD", &[("x", Some(x))], outs, attrs)
}
