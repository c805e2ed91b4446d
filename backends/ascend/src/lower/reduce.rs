//! Reductions: the five CANN has as Reduce*D ops, the others composed from them or, where the
//! reduced axes allow, one AscendC kernel; the global pools as reductions.

use super::ops::{const_ints, exp_log_attrs, input, one, output, reshape, Outs};
use super::{unsupported, Cx, Fail};
use crate::ascendc::reduce::ReduceKind as Fused;
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::ops::{PoolKind, ReduceKind};
use kiln_ir::Tensor;

/// A Reduce*D op over `axes` of `x`.
pub(super) fn reduce_d(cx: &mut Cx, name: &str, ty: &str, x: Port, axes: &[i64], keep: bool, out: Desc) -> Result<Port, Fail> {
    let mut attrs = vec![("axes", Attr::ListInt(axes.to_vec())), ("keep_dims", Attr::Bool(keep))];
    if ty == "ReduceMeanD" {
        attrs.push(("noop_with_empty_axes", Attr::Bool(false)));
    }
    cx.op1(name, ty, &[("x", Some(x))], out, attrs)
}

/// ONNX's reductions: the five CANN has, and the others composed from them and elementwise
/// ops (L1 = Σ|x|, L2 = √Σx², sum of squares, log Σx, and log Σeˣ shifted by the maximum).
pub(super) fn reduce(cx: &mut Cx, name: &str, kind: ReduceKind, x: Port, axes: &[i64], keep: bool, out: Desc) -> Result<Port, Fail> {
    let xd = cx.desc(&x)?;
    let rank = xd.dims.len() as i64;
    let kept: Vec<usize> = xd
        .dims
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.iter().any(|&a| (if a < 0 { a + rank } else { a }) == i as i64) { 1 } else { d as usize })
        .collect();
    let at = |s: &str| format!("{name}/{s}");
    let unary = |cx: &mut Cx, n: &str, ty: &str, p: Port, d: Desc| {
        let attrs = if ty == "Exp" || ty == "Log" { exp_log_attrs() } else { vec![] };
        cx.op1(n, ty, &[("x", Some(p))], d, attrs)
    };
    let binary = |cx: &mut Cx, n: &str, ty: &str, a: Port, b: Port, d: Desc| cx.op1(n, ty, &[("x1", Some(a)), ("x2", Some(b))], d, vec![]);
    // The reductions CANN computes only as several ops are one AscendC kernel where the reduced
    // axes are one contiguous block and at least 32 bytes stay contiguous per row.
    let fused = match kind {
        ReduceKind::SumSquare => Some(Fused::SumSquare),
        ReduceKind::L1 => Some(Fused::L1),
        ReduceKind::L2 => Some(Fused::L2),
        ReduceKind::LogSum => Some(Fused::LogSum),
        ReduceKind::LogSumExp => Some(Fused::LogSumExp),
        ReduceKind::Sum | ReduceKind::Mean | ReduceKind::Max | ReduceKind::Min | ReduceKind::Prod => None,
    };
    let mut norm: Vec<usize> = axes.iter().map(|&a| (if a < 0 { a + rank } else { a }) as usize).collect();
    norm.sort_unstable();
    norm.dedup();
    let block = norm.first().zip(norm.last()).filter(|(f, l)| *l - *f + 1 == norm.len()).map(|(f, l)| (*f, *l));
    if let (Some(f), Some((first, last))) = (fused, block) {
        let dims: Vec<usize> = xd.dims.iter().map(|&d| d as usize).collect();
        let view = [dims[..first].iter().product(), dims[first..=last].iter().product(), dims[last + 1..].iter().product()];
        if let Some(p) = cx.reduce_kernel(name, f, x.clone(), view, &out)? {
            return Ok(p);
        }
    }
    match kind {
        ReduceKind::Sum => reduce_d(cx, name, "ReduceSumD", x, axes, keep, out),
        ReduceKind::Mean => reduce_d(cx, name, "ReduceMeanD", x, axes, keep, out),
        ReduceKind::Max => reduce_d(cx, name, "ReduceMaxD", x, axes, keep, out),
        ReduceKind::Min => reduce_d(cx, name, "ReduceMinD", x, axes, keep, out),
        ReduceKind::Prod => reduce_d(cx, name, "ReduceProdD", x, axes, keep, out),
        ReduceKind::L1 => {
            let a = unary(cx, &at("abs"), "Abs", x, xd.clone())?;
            reduce_d(cx, name, "ReduceSumD", a, axes, keep, out)
        }
        ReduceKind::SumSquare => {
            let sq = binary(cx, &at("square"), "Mul", x.clone(), x, xd.clone())?;
            reduce_d(cx, name, "ReduceSumD", sq, axes, keep, out)
        }
        ReduceKind::L2 => {
            let sq = binary(cx, &at("square"), "Mul", x.clone(), x, xd.clone())?;
            let s = reduce_d(cx, &at("sum"), "ReduceSumD", sq, axes, keep, out.clone())?;
            unary(cx, name, "Sqrt", s, out)
        }
        ReduceKind::LogSum => {
            let s = reduce_d(cx, &at("sum"), "ReduceSumD", x, axes, keep, out.clone())?;
            unary(cx, name, "Log", s, out)
        }
        ReduceKind::LogSumExp => {
            let kd = Desc::nd(xd.dtype, &kept);
            let m = reduce_d(cx, &at("max"), "ReduceMaxD", x.clone(), axes, true, kd.clone())?;
            let z = binary(cx, &at("shift"), "Sub", x, m.clone(), xd.clone())?;
            let e = unary(cx, &at("exp"), "Exp", z, xd)?;
            let s = reduce_d(cx, &at("sum"), "ReduceSumD", e, axes, true, kd.clone())?;
            let l = unary(cx, &at("log"), "Log", s, kd.clone())?;
            let add_name = if keep { name.to_string() } else { at("unshift") };
            let r = binary(cx, &add_name, "Add", l, m, kd)?;
            if keep {
                Ok(r)
            } else {
                reshape(cx, name, r, out)
            }
        }
    }
}

/// The `GlobalPool` arm of [`super::table::lower_node`].
pub(super) fn global_pool(
    cx: &mut Cx,
    name: &str,
    kind: &PoolKind,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    let rank = cx.desc(&x()?)?.origin_dims.len() as i64;
    let ty = match kind {
        PoolKind::Average => "ReduceMeanD",
        PoolKind::Max => "ReduceMaxD",
        PoolKind::Lp => return unsupported("GlobalLpPool"),
    };
    one(reduce_d(cx, name, ty, x()?, &(2..rank).collect::<Vec<_>>(), true, y()?)?)
}

/// The `Reduce` arm of [`super::table::lower_node`].
pub(super) fn reduce_node(
    cx: &mut Cx,
    name: &str,
    kind: &ReduceKind,
    keepdims: &bool,
    noop_with_empty_axes: &bool,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    let xd = cx.desc(&x()?)?;
    let rank = xd.dims.len() as i64;
    let axes = match ins.get(1).cloned().flatten() {
        Some(_) => const_ints(consts, 1, "reduction axes")?,
        None => vec![],
    };
    let axes = match axes.is_empty() {
        true if *noop_with_empty_axes => return Ok(vec![Some(x()?)]),
        true => (0..rank).collect(),
        false => axes,
    };
    one(reduce(cx, name, *kind, x()?, &axes, *keepdims, y()?)?)
}
