//! Algebra: identities, view and cast cancellation, Gemm as MatMul + bias, weights folded
//! ahead of time (BatchNorm into Conv, scalar scales into MatMul weights), matmuls that read
//! the same input merged into one, a matmul split along its columns as one split matmul, and a
//! matmul over flattened leading dims as the matmul of the unflattened input.
//!
//! ```text
//! %q = MatMul[q](%x, %wq) : f32[4,8]          %qkv = MatMulFused[q](%x, %wq.merged) {splits=[8, 8],
//! %k = MatMul[k](%x, %wk) : f32[4,8]    =>        body=(%acc0, %acc1) { return %acc0, %acc1 }}
//!                                              %q = Get 0 of %qkv, %k = Get 1 of %qkv
//! %t = Transpose[t](%x) {perm=[1, 0]}
//! %u = Transpose[u](%t) {perm=[1, 0]}   =>    %u = %x
//! ```

use super::{binary, data, fixed, konst, ops, scalar, ty, weight_name, Body};
use crate::eqsat::analysis::EG;
use crate::eqsat::lang::Node;
use crate::eqsat::rule::{Ctx, Proposal, Rule, Term};
use egg::Id;
use kiln_ir::{BinaryOp, DType, Op, Tensor};
use std::sync::Arc;

pub const RULES: [Rule; 11] = [
    Rule { name: "algebra/view-noop", search: view_noop },
    Rule { name: "algebra/transpose-transpose", search: transpose_transpose },
    Rule { name: "algebra/reshape-reshape", search: reshape_reshape },
    Rule { name: "algebra/cast-roundtrip", search: cast_roundtrip },
    Rule { name: "algebra/neutral-element", search: neutral_element },
    Rule { name: "algebra/gemm-to-matmul", search: gemm_to_matmul },
    Rule { name: "algebra/batchnorm-into-conv", search: batchnorm_into_conv },
    Rule { name: "algebra/scale-into-weights", search: scale_into_weights },
    Rule { name: "algebra/merge-matmuls", search: merge_matmuls },
    Rule { name: "algebra/split-matmul", search: split_matmul },
    Rule { name: "algebra/matmul-flatten", search: matmul_flatten },
];

fn op_args(node: &Node) -> Option<(&Op, &[Id])> {
    match node {
        Node::Op { op, outputs: 1, args } => Some((op.op(), args)),
        _ => None,
    }
}

/// A view or conversion whose result has exactly its input's type is its input.
fn view_noop(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((op, args)) = op_args(node) else { return vec![] };
    let noop_kind = match op {
        o if o.is_view() => true,
        Op::Expand {} => true,
        Op::Cast { to, .. } => ty(eg, args[0]).is_some_and(|t| t.dtype == *to),
        Op::Transpose { perm } => !perm.is_empty() && perm.iter().enumerate().all(|(i, &p)| p == i as i64),
        _ => false,
    };
    let (Some(out), Some(x)) = (ty(eg, class), args.first().and_then(|&a| ty(eg, a))) else { return vec![] };
    if noop_kind && out.shape.as_fixed().is_some() && out == x {
        vec![(class, Term::Class(args[0]))]
    } else {
        vec![]
    }
}

fn perm_of(op: &Op, rank: usize) -> Option<Vec<usize>> {
    match op {
        Op::Transpose { perm } if perm.is_empty() => Some((0..rank).rev().collect()),
        Op::Transpose { perm } => perm.iter().map(|&p| usize::try_from(p).ok().filter(|&p| p < rank)).collect(),
        _ => None,
    }
}

fn transpose_transpose(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((op, args)) = op_args(node) else { return vec![] };
    let Some(rank) = ty(eg, class).map(|t| t.shape.rank()) else { return vec![] };
    let Some(outer) = perm_of(op, rank) else { return vec![] };
    let mut out = Vec::new();
    for (iop, iargs) in ops(eg, args[0]) {
        let Some(inner) = perm_of(iop, rank) else { continue };
        // out[i] = mid[outer[i]] = x[inner[outer[i]]].
        let composed: Vec<usize> = outer.iter().map(|&o| inner[o]).collect();
        let term = if composed.iter().enumerate().all(|(i, &p)| p == i) {
            Term::Class(iargs[0])
        } else {
            Term::Op(Op::Transpose { perm: composed.iter().map(|&p| p as i64).collect() }, vec![Term::Class(iargs[0])])
        };
        out.push((class, term));
    }
    out
}

/// `Reshape(view(x), s)` is `Reshape(x, s)`: a view (another reshape, a squeeze ...) moves no
/// bytes, so only the last shape counts.
fn reshape_reshape(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((Op::Reshape { .. }, args)) = op_args(node) else { return vec![] };
    // A 0 in the target shape copies a dim of the reshaped value, which would change meaning.
    if konst(eg, args[1]).is_none_or(|s| s.to_i64().contains(&0)) {
        return vec![];
    }
    let mut out = Vec::new();
    for (iop, iargs) in ops(eg, args[0]) {
        if iop.is_view() {
            out.push((class, Term::Op(Op::Reshape { allowzero: false }, vec![Term::Class(iargs[0]), Term::Class(args[1])])));
        }
    }
    out
}

/// Whether every value of `from` survives a round trip through `via`.
fn widens(from: DType, via: DType) -> bool {
    use DType::*;
    matches!(
        (from, via),
        (F16 | BF16, F32 | F64)
            | (F32, F64)
            | (I8 | U8 | I16 | U16, I32 | I64)
            | (I8 | I16 | U8 | U16, F32 | F64)
            | (I32 | U32, I64 | F64)
            | (Bool, _)
    ) && from != via
}

fn cast_roundtrip(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((Op::Cast { to, .. }, args)) = op_args(node) else { return vec![] };
    let mut out = Vec::new();
    for (iop, iargs) in ops(eg, args[0]) {
        if let Op::Cast { to: mid, .. } = iop {
            if ty(eg, iargs[0]).is_some_and(|t| t.dtype == *to && widens(*to, *mid)) {
                out.push((class, Term::Class(iargs[0])));
            }
        }
    }
    out
}

/// x + 0, x - 0, x * 1, x / 1 (when the constant does not broadcast x to a larger shape).
fn neutral_element(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((Op::Binary { op }, args)) = op_args(node) else { return vec![] };
    let (Some(out), Some(x)) = (ty(eg, class), ty(eg, args[0])) else { return vec![] };
    let neutral = |c: Id, v: f64| konst(eg, c).is_some_and(|t| t.dtype().is_float() && t.to_f64().iter().all(|&e| e == v));
    let mut res = Vec::new();
    let candidates: &[(usize, usize, f64)] = match op {
        BinaryOp::Add => &[(0, 1, 0.0), (1, 0, 0.0)],
        BinaryOp::Sub => &[(0, 1, 0.0)],
        BinaryOp::Mul => &[(0, 1, 1.0), (1, 0, 1.0)],
        BinaryOp::Div => &[(0, 1, 1.0)],
        _ => &[],
    };
    for &(keep, k, v) in candidates {
        let kept = if keep == 0 { x } else { ty(eg, args[1]).unwrap_or(x) };
        if neutral(args[k], v) && kept == out {
            res.push((class, Term::Class(args[keep])));
        }
    }
    res
}

fn transpose_2d(t: &Tensor) -> Option<Tensor> {
    Op::Transpose { perm: vec![1, 0] }.eval(&[Some(t)], 1).ok()?.pop()
}

/// Gemm(a, b, c) with alpha = beta = 1 and untransposed a: MatMul then bias add (b transposed
/// ahead of time when it is a weight).
fn gemm_to_matmul(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((Op::Gemm { alpha, beta, trans_a: false, trans_b }, args)) = op_args(node) else { return vec![] };
    if *alpha != 1.0 || has_op(eg, class, |o| matches!(o, Op::MatMul {} | Op::Binary { op: BinaryOp::Add })) {
        return vec![];
    }
    let b = if *trans_b {
        match konst(eg, args[1]).and_then(|t| transpose_2d(t)) {
            Some(t) => Term::Weight(format!("{}.t", weight_name(eg, args[1])), Arc::new(t)),
            None => Term::Op(Op::Transpose { perm: vec![1, 0] }, vec![Term::Class(args[1])]),
        }
    } else {
        Term::Class(args[1])
    };
    let mm = Term::Op(Op::MatMul {}, vec![Term::Class(args[0]), b]);
    let c = args.get(2).copied().filter(|&c| data(eg, c).value().is_some());
    let term = match c {
        None => mm,
        Some(c) if *beta == 1.0 => Term::Op(Op::Binary { op: BinaryOp::Add }, vec![mm, Term::Class(c)]),
        Some(_) => return vec![],
    };
    vec![(class, term)]
}

/// Whether the class already holds an op for which `f` holds (rules that compute weights check
/// this so that they compute them once).
fn has_op(eg: &EG, c: Id, f: impl Fn(&Op) -> bool) -> bool {
    ops(eg, c).any(|(o, _)| f(o))
}

/// BatchNorm(Conv(x, w, b)) in inference mode with constant statistics: one Conv with the
/// scale folded into w and the shift into b.
fn batchnorm_into_conv(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((Op::BatchNormalization { epsilon, training: false, .. }, args)) = op_args(node) else { return vec![] };
    let stats: Option<Vec<Vec<f64>>> = args[1..5.min(args.len())].iter().map(|&a| konst(eg, a).map(|t| t.to_f64())).collect();
    let Some(stats) = stats.filter(|s| s.len() == 4) else { return vec![] };
    if has_op(eg, class, |o| matches!(o, Op::Conv { .. })) {
        return vec![];
    }
    let mut out = Vec::new();
    for (cop, cargs) in ops(eg, args[0]) {
        let Op::Conv { .. } = cop else { continue };
        let Some(w) = konst(eg, cargs[1]) else { continue };
        if !w.dtype().is_float() || w.dims().first() != Some(&stats[0].len()) {
            continue;
        }
        let m = stats[0].len();
        let bias = match cargs.get(2).and_then(|&b| konst(eg, b)) {
            Some(b) => b.to_f64(),
            None if cargs.get(2).is_none_or(|&b| data(eg, b).value().is_none()) => vec![0.0; m],
            None => continue,
        };
        let s: Vec<f64> = (0..m).map(|o| stats[0][o] / (stats[3][o] + *epsilon as f64).sqrt()).collect();
        let per = w.numel() / m;
        let wv: Vec<f64> = w.to_f64().iter().enumerate().map(|(i, v)| v * s[i / per]).collect();
        let bv: Vec<f64> = (0..m).map(|o| (bias[o] - stats[2][o]) * s[o] + stats[1][o]).collect();
        let (Ok(w2), Ok(b2)) = (
            Tensor::new(w.dims().to_vec(), kiln_ir::Data::from_f64(w.dtype(), &wv)),
            Tensor::new(vec![m], kiln_ir::Data::from_f64(w.dtype(), &bv)),
        ) else {
            continue;
        };
        let name = weight_name(eg, cargs[1]);
        let args = vec![
            Term::Class(cargs[0]),
            Term::Weight(format!("{name}.bn"), Arc::new(w2)),
            Term::Weight(format!("{name}.bn_bias"), Arc::new(b2)),
        ];
        out.push((class, Term::Op(cop.clone(), args)));
    }
    out
}

/// MatMul(x, W) * s (or / s) with a constant scalar s: MatMul(x, W * s).
fn scale_into_weights(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((Op::Binary { op: op @ (BinaryOp::Mul | BinaryOp::Div) }, _)) = op_args(node) else { return vec![] };
    if has_op(eg, class, |o| matches!(o, Op::MatMul {})) {
        return vec![];
    }
    let mut out = Vec::new();
    for (mm, s) in binary(eg, class, *op) {
        let Some(sv) = scalar(eg, s) else { continue };
        let factor = if *op == BinaryOp::Div { 1.0 / sv } else { sv };
        if !factor.is_finite() || ty(eg, class) != ty(eg, mm) {
            continue;
        }
        for (mop, margs) in ops(eg, mm) {
            let Op::MatMul {} = mop else { continue };
            let Some(w) = konst(eg, margs[1]) else { continue };
            if !w.dtype().is_float() {
                continue;
            }
            let v: Vec<f64> = w.to_f64().iter().map(|x| x * factor).collect();
            let Ok(t) = Tensor::new(w.dims().to_vec(), kiln_ir::Data::from_f64(w.dtype(), &v)) else { continue };
            let name = format!("{}.scaled", weight_name(eg, margs[1]));
            out.push((class, Term::Op(Op::MatMul {}, vec![Term::Class(margs[0]), Term::Weight(name, Arc::new(t))])));
        }
    }
    out
}

/// A matmul of `x` by a 2-D weight: (class, weight class, epilogue body, epilogue extras).
type Member<'a> = (Id, Id, Option<&'a kiln_ir::Graph>, &'a [Id]);

/// Matmuls of one input by different 2-D weights become one matmul by the concatenated
/// weights, split into the original results (each with its own epilogue, when fused). Fires
/// once per input, from the reader with the smallest e-class id.
fn merge_matmuls(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((op, args)) = op_args(node) else { return vec![] };
    if !matches!(op, Op::MatMul {} | Op::MatMulFused { .. }) || args.len() < 2 {
        return vec![];
    }
    let x = eg.find(args[0]);
    let Some(readers) = cx.users.get(&x) else { return vec![] };
    let mut rs: Vec<Id> = readers.iter().map(|r| eg.find(*r)).filter(|r| member(eg, *r, x).is_some()).collect();
    rs.sort();
    rs.dedup();
    // One search per input: from the smallest matmul reader.
    if rs.first() != Some(&eg.find(class)) {
        return vec![];
    }
    let merged = |r: Id| eg[r].nodes.iter().any(|n| matches!(n, Node::Get { .. }));
    let mut raw: Vec<Member> = Vec::new();
    let mut fused: Vec<Member> = Vec::new();
    for r in rs {
        if let Some((w, body, extras)) = member(eg, r, x) {
            match body {
                None => raw.push((r, w, None, extras)),
                Some(_) => fused.push((r, w, body, extras)),
            }
        }
    }
    let mut out = Vec::new();
    for set in [raw, fused] {
        // One member per weight.
        let mut seen = Vec::new();
        let set: Vec<Member> = set
            .into_iter()
            .filter(|m| {
                !seen.contains(&eg.find(m.1)) && {
                    seen.push(eg.find(m.1));
                    true
                }
            })
            .collect();
        // None once merged: the raw products merge first, their fused forms (a bias
        // epilogue each) once fusion has made them.
        if set.len() < 2 || set.iter().any(|m| merged(m.0)) {
            continue;
        }
        out.extend(merge(eg, x, &set));
    }
    out
}

/// Whether class `r` holds `MatMul(x, W)` or a single-output `MatMulFused(x, W, ...)` without
/// splits, W a 2-D weight.
fn member(eg: &EG, r: Id, x: Id) -> Option<(Id, Option<&kiln_ir::Graph>, &[Id])> {
    let mut best: Option<(Id, Option<&kiln_ir::Graph>, &[Id])> = None;
    for (op, args) in ops(eg, r) {
        if args.len() < 2 || eg.find(args[0]) != x || konst(eg, args[1]).is_none_or(|w| w.rank() != 2) {
            continue;
        }
        match op {
            Op::MatMul {} if best.is_none() => best = Some((args[1], None, &[])),
            Op::MatMulFused { splits, body }
                if splits.is_empty()
                    && body.outputs.len() == 1
                    && best.is_none_or(|b| b.1.is_none_or(|g| g.nodes.len() < body.nodes.len())) =>
            {
                best = Some((args[1], Some(body), &args[2..]));
            }
            _ => {}
        }
    }
    best
}

fn merge(eg: &EG, x: Id, set: &[Member]) -> Vec<Proposal> {
    let ws: Vec<&Arc<Tensor>> = set.iter().filter_map(|m| konst(eg, m.1)).collect();
    if ws.len() != set.len() || ws.iter().any(|w| w.dtype() != ws[0].dtype() || w.dims()[0] != ws[0].dims()[0]) {
        return vec![];
    }
    let refs: Vec<Option<&Tensor>> = ws.iter().map(|w| Some(w.as_ref())).collect();
    let Some(cat) = Op::Concat { axis: 1 }.eval(&refs, 1).ok().and_then(|mut v| v.pop()) else { return vec![] };
    let splits: Vec<i64> = ws.iter().map(|w| w.dims()[1] as i64).collect();
    let mut b = Body::new("split");
    let Some(xt) = ty(eg, x) else { return vec![] };
    let parts: Vec<_> = ws
        .iter()
        .map(|w| {
            let mut d = xt.shape.0.clone();
            if let Some(last) = d.last_mut() {
                *last = kiln_ir::Dim::Known(w.dims()[1]);
            }
            b.anchor(kiln_ir::TensorType::new(xt.dtype, kiln_ir::Shape(d)))
        })
        .collect();
    let mut outs = Vec::new();
    for (m, part) in set.iter().zip(&parts) {
        match m.2 {
            None => outs.push(*part),
            Some(g) => {
                let mut a = vec![*part];
                for &e in m.3 {
                    let Some(v) = b.outer(eg, e) else { return vec![] };
                    a.push(v);
                }
                let Some(o) = b.inline(g, &a) else { return vec![] };
                outs.push(o[0]);
            }
        }
    }
    let (body, extras) = b.finish(outs);
    let op = Op::MatMulFused { splits, body };
    let name = format!("{}.merged", weight_name(eg, set[0].1));
    let mut args = vec![Term::Class(x), Term::Weight(name, Arc::new(cat))];
    args.extend(extras.iter().map(|&e| Term::Class(e)));
    let n = set.len() as u32;
    set.iter().enumerate().map(|(i, m)| (m.0, Term::Get { index: i as u32, op: op.clone(), outputs: n, args: args.clone() })).collect()
}

/// `Split(MatMul(x, W))` along the last axis: one MatMulFused whose parts are the pieces (the
/// form merge-matmuls produces, so a fused QKV projection exported as one Gemm and a Split gets
/// the same kernels as three projections).
fn split_matmul(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Node::Get { index, tuple } = node else { return vec![] };
    let super::super::eqsat::analysis::ClassType::Tuple(parts) = &data(eg, tuple[0]).ty else { return vec![] };
    let mut out = Vec::new();
    for n in &eg[tuple[0]].nodes {
        let Node::Op { op, outputs, args } = n else { continue };
        let Op::Split { axis } = op.op() else { continue };
        let Some(mt) = ty(eg, args[0]) else { continue };
        let r = mt.shape.rank() as i64;
        if !(*axis == -1 || *axis == r - 1) || parts.len() != *outputs as usize {
            continue;
        }
        let Some(splits) = parts.iter().map(|p| p.shape.0.last().and_then(|d| d.known()).map(|d| d as i64)).collect::<Option<Vec<i64>>>()
        else {
            continue;
        };
        for (mop, margs) in ops(eg, args[0]) {
            if !matches!(mop, Op::MatMul {}) || konst(eg, margs[1]).is_none_or(|w| w.rank() != 2) {
                continue;
            }
            let mut b = Body::new("split");
            let accs: Vec<_> = parts.iter().map(|p| b.anchor(p.clone())).collect();
            let (body, _) = b.finish(accs);
            let op = Op::MatMulFused { splits: splits.clone(), body };
            let args = vec![Term::Class(margs[0]), Term::Class(margs[1])];
            out.push((class, Term::Get { index: *index, op, outputs: *outputs, args }));
        }
    }
    out
}

/// `Reshape(MatMul(Reshape(x, [m, k]), W), [.., n])` with x = [.., k] and the outer reshape
/// restoring x's leading dims: `MatMul(x, W)` (a 2-D weight multiplies any leading dims).
fn matmul_flatten(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((Op::Reshape { .. }, args)) = op_args(node) else { return vec![] };
    let Some(out) = fixed(eg, class) else { return vec![] };
    let mut res = Vec::new();
    for (mop, margs) in ops(eg, args[0]) {
        if !matches!(mop, Op::MatMul {}) || konst(eg, margs[1]).is_none_or(|w| w.rank() != 2) {
            continue;
        }
        for (rop, rargs) in ops(eg, margs[0]) {
            if !matches!(rop, Op::Reshape { .. } | Op::Flatten { .. }) {
                continue;
            }
            let Some(x) = fixed(eg, rargs[0]) else { continue };
            if x.len() == out.len()
                && x.len() >= 2
                && x[..x.len() - 1] == out[..out.len() - 1]
                && fixed(eg, margs[0]).is_some_and(|r| r.len() == 2 && r[1] == x[x.len() - 1])
            {
                res.push((class, Term::Op(Op::MatMul {}, vec![Term::Class(rargs[0]), Term::Class(margs[1])])));
            }
        }
    }
    res
}
