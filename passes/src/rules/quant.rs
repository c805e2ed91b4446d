//! Quantized products and their floating-point equivalents, so that the target's cost model
//! decides which runs: where a target has no kernel for `MatMulQ4` / `MatMulQ8` (or where the
//! float form is cheaper), extraction takes the float form, which computes the same values.
//!
//! `quant/dequantize-weights`, a W4A16 product with constant weights is the product with the
//! dequantized weight (exactly what `MatMulQ4` computes):
//!
//! ```text
//! %y = MatMulQ4(%x, %q, %s, %z) {group_size=32}   =>   %y = MatMul(%x, %w)   (%w = (q - z) * s)
//! ```
//!
//! `quant/per-token-int8-as-float`, a W8A8 product is its per-token quantization written in
//! float ops (the int8 values are integers in float; the int32 accumulation is exact in f32
//! while every partial sum stays below 2^24, that is K * 127 * 127 < 2^24, K <= 1040, which the
//! rule checks):
//!
//! ```text
//! %y = MatMulQ8(%x, %q, %s)   =>   %m = ReduceMax(Abs(%x), [-1], keepdims)
//!                                   %r = Where(%m == 0, 1, %m / 127)
//!                                   %y = MatMul(Clip(Round(%x / %r), -127, 127), float(%q)) * %r * %s
//! ```

use super::{konst, ops, ty, weight_name};
use crate::eqsat::analysis::EG;
use crate::eqsat::lang::Node;
use crate::eqsat::rule::{Ctx, Proposal, Rule, Term};
use egg::Id;
use kiln_ir::ops::quant_matmul::dequantize_q4;
use kiln_ir::ops::{E8M0Rounding, ReduceKind};
use kiln_ir::{BinaryOp, DType, Data, Op, Tensor, UnaryOp};
use std::sync::Arc;

pub const RULES: &[Rule] = &[
    Rule { name: "quant/dequantize-weights", search: dequantize_weights },
    Rule { name: "quant/per-token-int8-as-float", search: per_token_int8_as_float },
];

/// The largest K whose int32 sums the f32 form computes exactly (K * 127^2 < 2^24).
const EXACT_K: usize = (1 << 24) / (127 * 127);

fn op_args(node: &Node) -> Option<(&Op, &[Id])> {
    match node {
        Node::Op { op, outputs: 1, args } => Some((op.op(), args)),
        _ => None,
    }
}

fn has_matmul(eg: &EG, class: Id) -> bool {
    ops(eg, class).any(|(o, _)| matches!(o, Op::MatMul {} | Op::Binary { op: BinaryOp::Mul }))
}

fn weight(name: String, dims: Vec<usize>, d: Data) -> Option<Term> {
    Some(Term::Weight(name, Arc::new(Tensor::new(dims, d).ok()?)))
}

fn scalar(name: &str, dt: DType, v: f64) -> Option<Term> {
    weight(name.into(), vec![], Data::from_f64(dt, &[v]))
}

fn dequantize_weights(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((Op::MatMulQ4 { group_size }, [x, q, s, z])) = op_args(node) else { return vec![] };
    if has_matmul(eg, class) || *group_size <= 0 {
        return vec![];
    }
    let (Some(qt), Some(st), Some(zt), Some(xt)) = (konst(eg, *q), konst(eg, *s), konst(eg, *z), ty(eg, *x)) else { return vec![] };
    let Ok(w) = dequantize_q4(*group_size as usize, qt, st, zt) else { return vec![] };
    let data = Data::from_f64(xt.dtype, &w.iter().map(|&v| v as f64).collect::<Vec<_>>());
    let Some(w) = weight(format!("{}.dequantized", weight_name(eg, *q)), qt.dims().to_vec(), data) else { return vec![] };
    vec![(class, Term::Op(Op::MatMul {}, vec![Term::Class(*x), w]))]
}

fn per_token_int8_as_float(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((Op::MatMulQ8 {}, [x, q, s])) = op_args(node) else { return vec![] };
    if has_matmul(eg, class) {
        return vec![];
    }
    let (Some(qt), Some(xt), Some(st)) = (konst(eg, *q), ty(eg, *x), ty(eg, *s)) else { return vec![] };
    if qt.dims().first().is_none_or(|&k| k > EXACT_K) || !xt.dtype.is_float() {
        return vec![];
    }
    let dt = xt.dtype;
    let build = || -> Option<Term> {
        let op = |o: Op, args: Vec<Term>| Term::Op(o, args);
        let bin = |b: BinaryOp, l: Term, r: Term| Term::Op(Op::Binary { op: b }, vec![l, r]);
        let x = || Term::Class(*x);
        let axes = weight("quant.last_axis".into(), vec![1], Data::I64(vec![-1]))?;
        let reduce = Op::Reduce { kind: ReduceKind::Max, keepdims: true, noop_with_empty_axes: false };
        let m = op(reduce, vec![op(Op::Unary { op: UnaryOp::Abs }, vec![x()]), axes]);
        let zero = bin(BinaryOp::Equal, m.clone(), scalar("quant.zero", dt, 0.0)?);
        let r = op(Op::Where {}, vec![zero, scalar("quant.one", dt, 1.0)?, bin(BinaryOp::Div, m, scalar("quant.127", dt, 127.0)?)]);
        let rounded = op(Op::Unary { op: UnaryOp::Round }, vec![bin(BinaryOp::Div, x(), r.clone())]);
        let clipped = op(Op::Clip {}, vec![rounded, scalar("quant.-127", dt, -127.0)?, scalar("quant.127", dt, 127.0)?]);
        let wq = weight(format!("{}.as_float", weight_name(eg, *q)), qt.dims().to_vec(), Data::from_f64(dt, &qt.to_f64()))?;
        let acc = op(Op::MatMul {}, vec![clipped, wq]);
        let s = if st.dtype == dt {
            Term::Class(*s)
        } else {
            op(Op::Cast { to: dt, saturate: false, round_mode: E8M0Rounding::Up }, vec![Term::Class(*s)])
        };
        Some(bin(BinaryOp::Mul, bin(BinaryOp::Mul, acc, r), s))
    };
    build().map(|t| vec![(class, t)]).unwrap_or_default()
}
