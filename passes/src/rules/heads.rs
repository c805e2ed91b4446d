//! Attention heads: the exporter splits heads with Reshape + Transpose, repeats KV heads for
//! grouped-query attention with Unsqueeze + Expand + Reshape, and merges heads back with
//! Transpose + Reshape. Attention and RotaryEmbedding take [batch, seq, heads·dim] directly
//! (`q_num_heads`, `kv_num_heads`, `num_heads`) and read shared KV heads, so all of that data
//! movement disappears.
//!
//! ```text
//! %q4 = Reshape(%q, [1,16,4,16]); %qh = Transpose(%q4) {perm=[0, 2, 1, 3]}     (same for k, v)
//! %ku = Unsqueeze(%kh, [2]); %ke = Expand(%ku, [1,2,2,16,16]); %kr = Reshape(%ke, [1,4,16,16])
//! %a = Attention(%qh, %kr, %vr) {q_num_heads=4, kv_num_heads=4}
//! %at = Transpose(%a) {perm=[0, 2, 1, 3]}; %y = Reshape(%at, [1,16,64])
//!                                  =>
//! %y = Attention(%q, %k, %v) {q_num_heads=4, kv_num_heads=2} : f32[1,16,64]
//! ```
//!
//! The rules state each equality one step at a time (the 4-D op equals the head split of the
//! 3-D op); `algebra/transpose-transpose`, `algebra/reshape-reshape` and `algebra/view-noop`
//! then cancel the head merge against it.

use super::{fixed, ops, ty};
use crate::eqsat::analysis::EG;
use crate::eqsat::lang::Node;
use crate::eqsat::rule::{Ctx, Proposal, Rule, Term};
use egg::Id;
use kiln_ir::{Op, Tensor};
use std::sync::Arc;

pub const RULES: [Rule; 3] = [
    Rule { name: "heads/attention-3d", search: attention_3d },
    Rule { name: "heads/gqa-repeat", search: gqa_repeat },
    Rule { name: "heads/rotary-3d", search: rotary_3d },
];

const SWAP_HEADS: [i64; 4] = [0, 2, 1, 3];

/// A head split `Transpose(Reshape(x, [b,s,h,d]), [0,2,1,3])` with `x: [b,s,h·d]` in class `c`:
/// the x and h.
fn head_split(eg: &EG, c: Id) -> Option<(Id, usize)> {
    for (op, args) in ops(eg, c) {
        if !matches!(op, Op::Transpose { perm } if perm[..] == SWAP_HEADS) {
            continue;
        }
        for (rop, rargs) in ops(eg, args[0]) {
            if !matches!(rop, Op::Reshape { .. } | Op::Unsqueeze {}) {
                continue;
            }
            let (Some([b, s, h, d]), Some([xb, xs, hd])) = (
                fixed(eg, args[0]).and_then(|v| <[usize; 4]>::try_from(v).ok()),
                fixed(eg, rargs[0]).and_then(|v| <[usize; 3]>::try_from(v).ok()),
            ) else {
                continue;
            };
            if (b, s, h * d) == (xb, xs, hd) && ty(eg, rargs[0]).map(|t| t.dtype) == ty(eg, c).map(|t| t.dtype) {
                return Some((rargs[0], h));
            }
        }
    }
    None
}

/// A constant i64 shape tensor.
pub(crate) fn shape_const(dims: &[usize]) -> Option<Term> {
    let v: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let name = format!("heads.shape.{}", dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x"));
    Some(Term::Weight(name, Arc::new(Tensor::from_i64s(vec![v.len()], v).ok()?)))
}

/// `Transpose(Reshape(t3, [b,s,h,d]), [0,2,1,3])`: the head split of a 3-D term, for a class of
/// 4-D type [b,h,s,d].
fn split_of(t3: Term, out4: &[usize]) -> Option<Term> {
    let [b, h, s, d] = out4[..] else { return None };
    let r = Term::Op(Op::Reshape { allowzero: false }, vec![t3, shape_const(&[b, s, h, d])?]);
    Some(Term::Op(Op::Transpose { perm: SWAP_HEADS.to_vec() }, vec![r]))
}

/// 4-D Attention over head-split Q, K and V (no past state) = head split of the 3-D Attention.
fn attention_3d(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Node::Op { op, outputs: 1, args } = node else { return vec![] };
    let Op::Attention { q_num_heads, kv_num_heads, .. } = op.op() else { return vec![] };
    let Some(out) = fixed(eg, class).filter(|d| d.len() == 4) else { return vec![] };
    if !(3..=4).contains(&args.len()) || fixed(eg, args[0]).is_none_or(|d| d.len() != 4) {
        return vec![];
    }
    let (Some((q, hq)), Some((k, hk)), Some((v, hv))) = (head_split(eg, args[0]), head_split(eg, args[1]), head_split(eg, args[2])) else {
        return vec![];
    };
    if hk != hv || hq as i64 != *q_num_heads || hk as i64 != *kv_num_heads {
        return vec![];
    }
    let mut op3 = op.op().clone();
    if let Op::Attention { q_num_heads, kv_num_heads, .. } = &mut op3 {
        (*q_num_heads, *kv_num_heads) = (hq as i64, hk as i64);
    }
    let mut a = vec![Term::Class(q), Term::Class(k), Term::Class(v)];
    a.extend(args.get(3).map(|&m| Term::Class(m)));
    split_of(Term::Op(op3, a), &out).map(|t| (class, t)).into_iter().collect()
}

/// `Reshape(Expand(Unsqueeze(x)))` repeating each of x's heads `rep` times: the x.
fn repeated_heads(eg: &EG, c: Id) -> Option<Id> {
    let [b, h, s, d] = fixed(eg, c)?[..] else { return None };
    for (rop, rargs) in ops(eg, c) {
        if !matches!(rop, Op::Reshape { .. }) {
            continue;
        }
        for (eop, eargs) in ops(eg, rargs[0]) {
            let Some([eb, kvh, rep, es, ed]) = fixed(eg, rargs[0]).and_then(|v| <[usize; 5]>::try_from(v).ok()) else { continue };
            if !matches!(eop, Op::Expand {})
                || (eb, kvh * rep, es, ed) != (b, h, s, d)
                || fixed(eg, eargs[0]) != Some(vec![b, kvh, 1, s, d])
            {
                continue;
            }
            for (uop, uargs) in ops(eg, eargs[0]) {
                if matches!(uop, Op::Unsqueeze {} | Op::Reshape { .. }) && fixed(eg, uargs[0]) == Some(vec![b, kvh, s, d]) {
                    return Some(uargs[0]);
                }
            }
        }
    }
    None
}

/// 4-D Attention whose K and V repeat their heads = Attention reading the shared heads.
fn gqa_repeat(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Node::Op { op, outputs: 1, args } = node else { return vec![] };
    let Op::Attention { .. } = op.op() else { return vec![] };
    if !(3..=4).contains(&args.len()) || fixed(eg, args[0]).is_none_or(|d| d.len() != 4) {
        return vec![];
    }
    let (Some(k), Some(v)) = (repeated_heads(eg, args[1]), repeated_heads(eg, args[2])) else { return vec![] };
    let (Some(kd), Some(vd)) = (fixed(eg, k), fixed(eg, v)) else { return vec![] };
    if kd[1] != vd[1] {
        return vec![];
    }
    let mut op4 = op.op().clone();
    if let Op::Attention { kv_num_heads, .. } = &mut op4 {
        *kv_num_heads = kd[1] as i64;
    }
    let mut a = vec![Term::Class(args[0]), Term::Class(k), Term::Class(v)];
    a.extend(args.get(3).map(|&m| Term::Class(m)));
    vec![(class, Term::Op(op4, a))]
}

/// 4-D RotaryEmbedding of a head split = head split of the 3-D RotaryEmbedding.
fn rotary_3d(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Node::Op { op, outputs: 1, args } = node else { return vec![] };
    let Op::RotaryEmbedding { interleaved, num_heads: 0, rotary_embedding_dim } = *op.op() else { return vec![] };
    let Some(out) = fixed(eg, class).filter(|d| d.len() == 4) else { return vec![] };
    let Some((x, h)) = head_split(eg, args[0]) else { return vec![] };
    let op3 = Op::RotaryEmbedding { interleaved, num_heads: h as i64, rotary_embedding_dim };
    let mut a = vec![Term::Class(x)];
    a.extend(args[1..].iter().map(|&c| Term::Class(c)));
    split_of(Term::Op(op3, a), &out).map(|t| (class, t)).into_iter().collect()
}
