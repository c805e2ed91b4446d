//! Fusion: an elementwise consumer is absorbed into its producer, so that a chain of
//! elementwise ops, or a MatMul/Conv with what follows it, becomes one kernel.
//!
//! ```text
//! %mm = MatMul[mm](%x, %w) : f32[2,8]            %r = MatMulFused[r](%x, %w, %b) {splits=[],
//! %s  = Add[s](%mm, %b) : f32[2,8]         =>        body=(%acc0, %in1) { Add, Relu }} : f32[2,8]
//! %r  = Relu[r](%s) : f32[2,8]
//! ```
//!
//! The consumer stays in the e-graph next to the fused form; the extraction keeps whichever is
//! cheaper, so a producer that is also read elsewhere is only recomputed when that pays.

use super::{ops, ty, Body, MAX_BODY};
use crate::eqsat::analysis::EG;
use crate::eqsat::lang::Node;
use crate::eqsat::rule::{Ctx, Proposal, Rule, Term};
use egg::Id;
use kiln_ir::ops::Format;
use kiln_ir::{Graph, Op, ValueId};

pub const RULES: [Rule; 3] = [
    Rule { name: "fusion/elementwise-chain", search: elementwise_chain },
    Rule { name: "fusion/matmul-epilogue", search: matmul_epilogue },
    Rule { name: "fusion/conv-epilogue", search: conv_epilogue },
];

/// An elementwise op, or the largest fused elementwise program of its e-class, that can be
/// absorbed. Smaller fused variants are skipped so that a chain grows linearly, not by every
/// sub-chain.
fn consumer<'a>(eg: &'a EG, class: Id, node: &'a Node) -> Option<(&'a Op, &'a [Id])> {
    match node {
        Node::Op { op, outputs: 1, args } if is_fusable(op.op()) && is_representative(eg, class, op.op()) => Some((op.op(), args)),
        _ => None,
    }
}

fn body_size(op: &Op) -> Option<usize> {
    op.is_fused().then(|| op.subgraphs().first().map_or(0, |g| g.nodes.len()))
}

/// Plain ops always; a fused op only when no fused op of the same kind in its e-class has a
/// larger body (the first of equals).
fn is_representative(eg: &EG, class: Id, op: &Op) -> bool {
    let Some(n) = body_size(op) else { return true };
    let largest = ops(eg, class)
        .filter(|(o, _)| o.kind_name() == op.kind_name())
        .filter_map(|(o, _)| body_size(o).map(|s| (s, o)))
        .fold(None::<(usize, &Op)>, |best, (s, o)| if best.is_none_or(|b| s > b.0) { Some((s, o)) } else { best });
    largest.is_none_or(|(s, o)| s == n && std::ptr::eq(o, op))
}

/// Producer ops of an e-class worth absorbing into: representatives that do not read their own
/// e-class (a node like `x + 0` in the class of `x` is a fixed point, not a producer; absorbing
/// it would grow bodies forever).
fn producers(eg: &EG, p: Id) -> impl Iterator<Item = (&Op, &[Id])> {
    ops(eg, p).filter(move |(o, a)| is_representative(eg, p, o) && a.iter().all(|x| eg.find(*x) != p))
}

fn is_fusable(op: &Op) -> bool {
    matches!(op, Op::FusedElementwise { .. }) || (op.is_elementwise() && !matches!(op, Op::Identity {}))
}

/// The distinct input e-classes of a consumer in `class`, without `class` itself (an e-class
/// that reads itself, like `x = x + 0` after `x + 0 = x`, must not be fused into itself).
fn distinct(eg: &EG, class: Id, args: &[Id]) -> Vec<Id> {
    let mut v: Vec<Id> = args.iter().map(|a| eg.find(*a)).filter(|&a| a != eg.find(class)).collect();
    v.sort();
    v.dedup();
    v
}

/// The producer e-classes a consumer may absorb into as an anchor's epilogue: its inputs with
/// exactly its own shape (the epilogue runs once per anchor element, it must not broadcast it).
fn same_shape_inputs(eg: &EG, class: Id, nargs: &[Id]) -> Vec<Id> {
    let Some(out_ty) = ty(eg, class) else { return vec![] };
    distinct(eg, class, nargs).into_iter().filter(|&p| ty(eg, p).map(|t| &t.shape) == Some(&out_ty.shape)).collect()
}

/// Applies the consumer to what the body computes so far and closes the body; `None` when it
/// cannot be applied, grows past [`MAX_BODY`], or would read the consumer's own e-class.
fn close(mut b: Body, eg: &EG, class: Id, nop: &Op, nargs: &[Id]) -> Option<(Box<Graph>, Vec<Id>)> {
    let res = b.apply(eg, nop, nargs)?;
    if b.len() > MAX_BODY || b.extras.contains(&eg.find(class)) {
        return None;
    }
    Some(b.finish(res))
}

fn classes(ids: &[Id]) -> Vec<Term> {
    ids.iter().map(|&i| Term::Class(i)).collect()
}

fn elementwise_chain(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((nop, nargs)) = consumer(eg, class, node) else { return vec![] };
    let mut out = Vec::new();
    for p in distinct(eg, class, nargs) {
        for (pop, pargs) in producers(eg, p) {
            if !is_fusable(pop) {
                continue;
            }
            let mut b = Body::new("fused");
            let Some(pout) = b.apply(eg, pop, pargs) else { continue };
            b.bind(eg, p, pout[0]);
            let Some((body, extras)) = close(b, eg, class, nop, nargs) else { continue };
            out.push((class, Term::Op(Op::FusedElementwise { body }, classes(&extras))));
        }
    }
    out
}

/// The parts of an anchor's result as body inputs, then the producer's own epilogue inlined.
fn anchor_body(eg: &EG, b: &mut Body, p: Id, splits: &[i64], inner: Option<(&Graph, &[Id])>) -> Option<Vec<ValueId>> {
    let acc = match inner {
        // A fused producer: its body's leading inputs are the parts.
        Some((g, _)) => g.inputs.iter().take(splits.len().max(1)).map(|&i| g.value(i).ty.clone()).collect::<Vec<_>>(),
        None => vec![ty(eg, p)?.clone()],
    };
    let parts: Vec<ValueId> = acc.into_iter().map(|t| b.anchor(t)).collect();
    match inner {
        None => Some(parts),
        Some((g, extras)) => {
            let mut args = parts;
            for &e in extras {
                args.push(b.outer(eg, e)?);
            }
            b.inline(g, &args)
        }
    }
}

fn matmul_epilogue(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((nop, nargs)) = consumer(eg, class, node) else { return vec![] };
    let mut out = Vec::new();
    for p in same_shape_inputs(eg, class, nargs) {
        // Producers: a MatMul or single-output MatMulFused in `p`, or one output of a
        // MatMulFused with several outputs (then every output the consumer reads is bound).
        let mut candidates: Vec<(&Op, &[Id], Option<Id>)> = producers(eg, p).map(|(o, a)| (o, a, None)).collect();
        for n in &eg[p].nodes {
            if let Node::Get { tuple, .. } = n {
                for t in &eg[tuple[0]].nodes {
                    if let Node::Op { op, outputs, args } = t {
                        if *outputs > 1 {
                            candidates.push((op.op(), args, Some(eg.find(tuple[0]))));
                        }
                    }
                }
            }
        }
        for (pop, pargs, tuple) in candidates {
            let (splits, inner) = match pop {
                Op::MatMul {} if tuple.is_none() => (vec![], None),
                Op::MatMulFused { splits, body } => (splits.clone(), Some((body.as_ref(), &pargs[2..]))),
                _ => continue,
            };
            let mut b = Body::new("epilogue");
            let Some(pout) = anchor_body(eg, &mut b, p, &splits, inner) else { continue };
            match tuple {
                None => b.bind(eg, p, pout[0]),
                Some(t) => {
                    for &q in nargs {
                        for n in &eg[q].nodes {
                            if let Node::Get { index, tuple } = n {
                                if eg.find(tuple[0]) == t && (*index as usize) < pout.len() {
                                    b.bind(eg, q, pout[*index as usize]);
                                }
                            }
                        }
                    }
                }
            }
            let Some((body, extras)) = close(b, eg, class, nop, nargs) else { continue };
            let mut args = vec![Term::Class(pargs[0]), Term::Class(pargs[1])];
            args.extend(classes(&extras));
            out.push((class, Term::Op(Op::MatMulFused { splits, body }, args)));
        }
    }
    out
}

fn conv_epilogue(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Some((nop, nargs)) = consumer(eg, class, node) else { return vec![] };
    let mut out = Vec::new();
    for p in same_shape_inputs(eg, class, nargs) {
        for (pop, pargs) in producers(eg, p) {
            let (format, align, inner) = match pop {
                Op::Conv { .. } => (Format::Nchw, 1, None),
                Op::ConvFused { format, align, body, .. } => {
                    // A formatted result's padding is zero: the consumer's must be too.
                    if *format != Format::Nchw && !super::layout::zero_padded(eg, class, 3) {
                        continue;
                    }
                    (*format, *align, Some((body.as_ref(), &pargs[3.min(pargs.len())..])))
                }
                _ => continue,
            };
            let mut b = Body::new("epilogue");
            let Some(pout) = anchor_body(eg, &mut b, p, &[], inner) else { continue };
            b.bind(eg, p, pout[0]);
            let Some((body, extras)) = close(b, eg, class, nop, nargs) else { continue };
            let bias = match pargs.get(2).copied().or_else(|| eg.lookup(Node::Absent)) {
                Some(c) => Term::Class(c),
                None => continue,
            };
            let mut args = vec![Term::Class(pargs[0]), Term::Class(pargs[1]), bias];
            args.extend(classes(&extras));
            let Some(op) = pop.with_conv_epilogue(format, align, body) else { continue };
            out.push((class, Term::Op(op, args)));
        }
    }
    out
}
