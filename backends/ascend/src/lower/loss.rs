//! NegativeLogLikelihoodLoss → NLLLoss, and SoftmaxCrossEntropyLoss → LogSoftmaxV2 + NLLLoss.
//!
//! CANN's NLLLoss (PyTorch's) takes x as `[N, C]` and the targets as `[N]`, with the optional
//! class weights, `reduction` and `ignore_index`; its y is `[N]` for "none" and `[1]`
//! otherwise, with `total_weight` `[1]`. ONNX's x `[N, C, d1, ...]` is brought to that form by
//! moving C last and flattening the rest, and y is reshaped back to the node's output.

use super::ops::{input, output, reshape, Outs};
use super::{Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::ops::LossReduction;

/// NLLLoss's default `ignore_index`; no valid class index is negative, so it ignores nothing
/// when the ONNX node names no index.
const NO_IGNORE: i64 = -100;

fn reduction_name(r: LossReduction) -> &'static str {
    match r {
        LossReduction::None => "none",
        LossReduction::Sum => "sum",
        LossReduction::Mean => "mean",
    }
}

/// The NLL of log-probabilities `x` `[N, C, d...]` at `target` `[N, d...]`, as `out`.
fn nll(
    cx: &mut Cx,
    name: &str,
    x: Port,
    target: Port,
    weight: Option<Port>,
    r: LossReduction,
    ignore: Option<i64>,
    out: Desc,
) -> Result<Port, Fail> {
    let at = |s: &str| format!("{name}/{s}");
    let xd = cx.desc(&x)?;
    let dims: Vec<usize> = xd.dims.iter().map(|&d| d as usize).collect();
    let &[n, c, ..] = dims.as_slice() else { return Err(Fail::Internal(format!("loss input {dims:?} of rank under 2"))) };
    let rows = n * dims[2..].iter().product::<usize>();
    let (x2, t1) = if dims.len() == 2 {
        (x, target)
    } else {
        let rank = dims.len() as i64;
        let perm: Vec<i64> = std::iter::once(0).chain(2..rank).chain(std::iter::once(1)).collect();
        let moved: Vec<usize> = perm.iter().map(|&p| dims[p as usize]).collect();
        let t =
            cx.op1(&at("classes_last"), "TransposeD", &[("x", Some(x))], Desc::nd(xd.dtype, &moved), vec![("perm", Attr::ListInt(perm))])?;
        let x2 = reshape(cx, &at("rows"), t, Desc::nd(xd.dtype, &[rows, c]))?;
        let td = cx.desc(&target)?;
        let t1 = reshape(cx, &at("targets"), target, Desc::nd(td.dtype, &[rows]))?;
        (x2, t1)
    };
    let y = if r == LossReduction::None { Desc::nd(xd.dtype, &[rows]) } else { Desc::nd(xd.dtype, &[1]) };
    let inputs = [("x", Some(x2)), ("target", Some(t1)), ("weight", weight)];
    let attrs = vec![("reduction", Attr::str(reduction_name(r))), ("ignore_index", Attr::Int(ignore.unwrap_or(NO_IGNORE)))];
    let made = cx.op(&at("nll"), "NLLLoss", &inputs, vec![("y", y), ("total_weight", Desc::nd(xd.dtype, &[1]))], attrs)?;
    let y = made.into_iter().next().ok_or_else(|| Fail::Internal("NLLLoss made no y".into()))?;
    reshape(cx, name, y, out)
}

pub(super) fn negative_log_likelihood(
    cx: &mut Cx,
    name: &str,
    r: LossReduction,
    ignore: Option<i64>,
    ins: &[Option<Port>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let weight = ins.get(2).cloned().flatten();
    Ok(vec![Some(nll(cx, name, input(ins, 0)?, input(ins, 1)?, weight, r, ignore, output(outs, 0)?)?)])
}

/// The loss over log-softmax(scores) along the classes (axis 1), and the log-probabilities
/// when the node outputs them.
pub(super) fn softmax_cross_entropy(
    cx: &mut Cx,
    name: &str,
    r: LossReduction,
    ignore: Option<i64>,
    ins: &[Option<Port>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    let log_prob = cx.op(
        &format!("{name}/log_prob"),
        "LogSoftmaxV2",
        &[("logits", Some(x))],
        vec![("logsoftmax", xd)],
        vec![("axes", Attr::ListInt(vec![1]))],
    )?;
    let log_prob = log_prob.into_iter().next().ok_or_else(|| Fail::Internal("LogSoftmaxV2 made no output".into()))?;
    let weight = ins.get(2).cloned().flatten();
    let loss = nll(cx, name, log_prob.clone(), input(ins, 1)?, weight, r, ignore, output(outs, 0)?)?;
    let mut v = vec![Some(loss)];
    if outs.len() > 1 {
        v.push(outs[1].as_ref().map(|_| log_prob));
    }
    Ok(v)
}
