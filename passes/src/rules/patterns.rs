//! Exporter patterns: the decompositions PyTorch's ONNX exporter emits, recognized as the single
//! ops they stand for (which then have one kernel, or a CANN built-in, on every target).
//!
//! ```text
//! %p = Pow[p](%x, 2.0)                                  %y = RMSNormalization[y](%x, %w)
//! %m = Reduce[m](%p, [-1]) {kind=mean, keepdims=true}         {axis=-1, epsilon=1e-6}
//! %a = Add[a](%m, 1e-6)                           =>
//! %s = Sqrt[s](%a); %r = Div[r](1.0, %s)
//! %n = Mul[n](%x, %r); %y = Mul[y](%w, %n)
//! ```

use super::{binary, is_scalar, konst, ops, same, scalar, ty, unary};
use crate::eqsat::analysis::EG;
use crate::eqsat::lang::Node;
use crate::eqsat::rule::{Ctx, Proposal, Rule, Term};
use egg::Id;
use kiln_ir::ops::{GeluApprox, ReduceKind};
use kiln_ir::{BinaryOp, Op, UnaryOp};

pub const RULES: [Rule; 4] = [
    Rule { name: "patterns/gelu-erf", search: gelu_erf },
    Rule { name: "patterns/gelu-tanh", search: gelu_tanh },
    Rule { name: "patterns/rms-norm", search: rms_norm },
    Rule { name: "patterns/silu", search: silu },
];

fn is_mul(node: &Node) -> bool {
    matches!(node.op(), Some(Op::Binary { op: BinaryOp::Mul }))
}

/// Ways to read `class` as a product of three factors (any association, any order).
fn three_factors(eg: &EG, class: Id) -> Vec<[Id; 3]> {
    let mut out = Vec::new();
    for (u, v) in binary(eg, class, BinaryOp::Mul) {
        for (p, q) in binary(eg, u, BinaryOp::Mul) {
            out.push([p, q, v]);
        }
    }
    out
}

/// `x * 0.5 * inner(x)` for some x, in any association: the x for which `inner` holds.
fn half_x_times(eg: &EG, class: Id, inner: impl Fn(Id, Id) -> bool) -> Option<Id> {
    for f in three_factors(eg, class) {
        for h in 0..3 {
            if !is_scalar(eg, f[h], 0.5) {
                continue;
            }
            let (a, b) = (f[(h + 1) % 3], f[(h + 2) % 3]);
            if inner(b, a) {
                return Some(a);
            }
            if inner(a, b) {
                return Some(b);
            }
        }
    }
    None
}

/// `1 + f(s)` with `f` a unary op: the s.
fn one_plus(eg: &EG, c: Id, f: UnaryOp) -> Vec<Id> {
    binary(eg, c, BinaryOp::Add).into_iter().filter(|(_, one)| is_scalar(eg, *one, 1.0)).flat_map(|(e, _)| unary(eg, e, f)).collect()
}

/// `x / √2` or `x * (1/√2)`.
fn is_x_over_sqrt2(eg: &EG, s: Id, x: Id) -> bool {
    binary(eg, s, BinaryOp::Div).iter().any(|(a, k)| same(eg, *a, x) && is_scalar(eg, *k, std::f64::consts::SQRT_2))
        || binary(eg, s, BinaryOp::Mul).iter().any(|(a, k)| same(eg, *a, x) && is_scalar(eg, *k, std::f64::consts::FRAC_1_SQRT_2))
}

fn gelu_erf(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    if !is_mul(node) {
        return vec![];
    }
    let x = half_x_times(eg, class, |e, x| one_plus(eg, e, UnaryOp::Erf).iter().any(|&s| is_x_over_sqrt2(eg, s, x)));
    match x {
        Some(x) if ty(eg, x) == ty(eg, class) => vec![(class, Term::Op(Op::Gelu { approximate: GeluApprox::None }, vec![Term::Class(x)]))],
        _ => vec![],
    }
}

/// `√(2/π) * (x + 0.044715 * x³)`.
fn is_tanh_arg(eg: &EG, t: Id, x: Id) -> bool {
    let cube = |c: Id| binary(eg, c, BinaryOp::Pow).iter().any(|(b, e)| same(eg, *b, x) && is_scalar(eg, *e, 3.0));
    binary(eg, t, BinaryOp::Mul).iter().any(|(inner, k)| {
        is_scalar(eg, *k, (2.0 / std::f64::consts::PI).sqrt())
            && binary(eg, *inner, BinaryOp::Add).iter().any(|(a, m)| {
                same(eg, *a, x) && binary(eg, *m, BinaryOp::Mul).iter().any(|(p3, c)| is_scalar(eg, *c, 0.044715) && cube(*p3))
            })
    })
}

fn gelu_tanh(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    if !is_mul(node) {
        return vec![];
    }
    let x = half_x_times(eg, class, |e, x| one_plus(eg, e, UnaryOp::Tanh).iter().any(|&t| is_tanh_arg(eg, t, x)));
    match x {
        Some(x) if ty(eg, x) == ty(eg, class) => vec![(class, Term::Op(Op::Gelu { approximate: GeluApprox::Tanh }, vec![Term::Class(x)]))],
        _ => vec![],
    }
}

/// `mean(x², last axis, keepdims) + eps`: the eps.
fn mean_square_plus_eps(eg: &EG, a: Id, x: Id) -> Option<f64> {
    let rank = ty(eg, x)?.shape.rank() as i64;
    for (m, e) in binary(eg, a, BinaryOp::Add) {
        let Some(eps) = scalar(eg, e) else { continue };
        for (op, args) in ops(eg, m) {
            let Op::Reduce { kind: ReduceKind::Mean, keepdims: true, .. } = op else { continue };
            let last =
                args.get(1).and_then(|&ax| konst(eg, ax)).is_some_and(|t| matches!(t.to_i64()[..], [-1]) || t.to_i64() == [rank - 1]);
            let squared = binary(eg, args[0], BinaryOp::Pow).iter().any(|(b, p)| same(eg, *b, x) && is_scalar(eg, *p, 2.0))
                || binary(eg, args[0], BinaryOp::Mul).iter().any(|(p, q)| same(eg, *p, x) && same(eg, *q, x));
            if last && squared {
                return Some(eps);
            }
        }
    }
    None
}

/// `1 / sqrt(a)` written as Div(1, Sqrt) or Reciprocal(Sqrt): the a.
fn rsqrt_of(eg: &EG, r: Id) -> Vec<Id> {
    let mut v: Vec<Id> = binary(eg, r, BinaryOp::Div)
        .into_iter()
        .filter(|(one, _)| is_scalar(eg, *one, 1.0))
        .flat_map(|(_, s)| unary(eg, s, UnaryOp::Sqrt))
        .collect();
    v.extend(unary(eg, r, UnaryOp::Reciprocal).into_iter().flat_map(|s| unary(eg, s, UnaryOp::Sqrt)));
    v
}

fn rms_norm(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    if !is_mul(node) {
        return vec![];
    }
    let mut out = Vec::new();
    for (w, n) in binary(eg, class, BinaryOp::Mul) {
        let (Some(wt), Some(xt)) = (konst(eg, w), ty(eg, class)) else { continue };
        let last = xt.shape.0.last().and_then(|d| d.known());
        if wt.rank() != 1 || Some(wt.dims()[0]) != last || wt.dtype() != xt.dtype {
            continue;
        }
        for (x, r) in binary(eg, n, BinaryOp::Mul) {
            if ty(eg, x) != Some(xt) {
                continue;
            }
            for a in rsqrt_of(eg, r) {
                if let Some(eps) = mean_square_plus_eps(eg, a, x) {
                    let op = Op::RMSNormalization { axis: -1, epsilon: eps as f32 };
                    out.push((class, Term::Op(op, vec![Term::Class(x), Term::Class(w)])));
                }
            }
        }
    }
    out.truncate(1);
    out
}

fn silu(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    if !is_mul(node) {
        return vec![];
    }
    for (x, s) in binary(eg, class, BinaryOp::Mul) {
        if unary(eg, s, UnaryOp::Sigmoid).iter().any(|&y| same(eg, x, y)) && ty(eg, x) == ty(eg, class) {
            return vec![(class, Term::Op(Op::Swish { alpha: 1.0 }, vec![Term::Class(x)]))];
        }
    }
    vec![]
}
