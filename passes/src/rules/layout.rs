//! Layout: storage formats for convolution (NHWC for tensor cores, NC1HWC0 for Ascend's cube
//! unit) as explicit conversions that rules push through elementwise ops and cancel, so that a
//! chain of convolutions converts once at each end. Each target's rules say which format its
//! convolutions may use (`conv_in_format`); its cost model says whether that pays.
//!
//! ```text
//! %a = ConvFused[a](%x, %w1, %b1) {...}                %xs = ToFormat(%x) {format=nhwc, align=8}
//! %r = Relu[r](%a)                               =>    %as = ConvFused[a](%xs, %w1, %b1) {format=nhwc, ...}
//! %c = ConvFused[c](%r, %w2, %b2) {...}                %rs = Relu(%as)
//!                                                      %cs = ConvFused[c](%rs, %w2, %b2) {format=nhwc, ...}
//!                                                      %c = FromFormat(%cs) {format=nhwc, align=8, channels=16}
//! ```
//!
//! Channel padding must stay zero for a conversion pair to cancel: `layout/cancel` only removes
//! `ToFormat(FromFormat(y))` when y's padding is provably zero (no padding at all, or y comes
//! from a conversion or a formatted convolution through ops that map zeros to zero).

use super::{konst, ops, ty};
use crate::eqsat::analysis::EG;
use crate::eqsat::lang::Node;
use crate::eqsat::rule::{Ctx, Proposal, Rule, Term};
use egg::Id;
use kiln_ir::ops::Format;
use kiln_ir::{Dim, Graph, Op, Shape, Tensor, TensorType};

pub const RULES: [Rule; 2] =
    [Rule { name: "layout/cancel", search: cancel }, Rule { name: "layout/elementwise-through", search: elementwise_through }];

fn is_scalar_const(eg: &EG, c: Id) -> bool {
    konst(eg, c).is_some_and(|t| t.numel() == 1)
}

/// Whether elementwise `op` gives zero when every argument marked `zero` is zero (the others
/// are one-element constants, taken at their value).
fn keeps_zero(eg: &EG, op: &Op, args: &[Id], zero: &[bool]) -> bool {
    let mut ts = Vec::new();
    for (&a, &z) in args.iter().zip(zero) {
        let Some(t) = ty(eg, a) else { return false };
        let dims = vec![1; t.shape.rank()];
        let v = if z { Some(Tensor::zeros(t.dtype, dims)) } else { konst(eg, a).and_then(|k| k.reshaped(dims).ok()) };
        let Some(v) = v else { return false };
        ts.push(v);
    }
    let ins: Vec<Option<&Tensor>> = ts.iter().map(Some).collect();
    op.eval(&ins, 1).ok().and_then(|mut v| v.pop()).is_some_and(|y| y.to_f64().iter().all(|&x| x == 0.0))
}

/// Whether the channel padding of stored value `c` is provably zero: it is a conversion or a
/// formatted convolution, or an elementwise op that keeps zeros over such values (to `depth`).
pub fn zero_padded(eg: &EG, c: Id, depth: usize) -> bool {
    let Some(ct) = ty(eg, c) else { return false };
    eg[c].nodes.iter().any(|n| {
        let Node::Op { op, outputs: 1, args } = n else { return false };
        match op.op() {
            Op::ToFormat { .. } => true,
            Op::ConvFused { format, .. } => *format != Format::Nchw,
            o if depth > 0 && (o.is_elementwise() || matches!(o, Op::FusedElementwise { .. })) => {
                let mut zero = Vec::new();
                for &a in args.iter() {
                    if is_scalar_const(eg, a) {
                        zero.push(false);
                    } else if ty(eg, a) == Some(ct) && zero_padded(eg, a, depth - 1) {
                        zero.push(true);
                    } else {
                        return false;
                    }
                }
                keeps_zero(eg, o, args, &zero)
            }
            _ => false,
        }
    })
}

/// `FromFormat(y)` nodes in class `c`: (format, align, channels, y).
fn from_formats(eg: &EG, c: Id) -> Vec<(Format, i64, i64, Id)> {
    ops(eg, c)
        .filter_map(|(op, a)| match op {
            Op::FromFormat { format, align, channels } => Some((*format, *align, *channels, a[0])),
            _ => None,
        })
        .collect()
}

/// `ToFormat(FromFormat(y))` is y when y's padding is zero; `FromFormat(ToFormat(x))` is x.
fn cancel(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Node::Op { op, outputs: 1, args } = node else { return vec![] };
    match *op.op() {
        Op::ToFormat { format, align } => from_formats(eg, args[0])
            .into_iter()
            .filter(|&(f, a, ch, y)| f == format && a == align && ty(eg, y) == ty(eg, class) && (ch % a == 0 || zero_padded(eg, y, 3)))
            .map(|(.., y)| (class, Term::Class(y)))
            .take(1)
            .collect(),
        Op::FromFormat { format, align, .. } => ops(eg, args[0])
            .filter(|(o, a)| **o == Op::ToFormat { format, align } && ty(eg, a[0]) == ty(eg, class))
            .map(|(_, a)| (class, Term::Class(a[0])))
            .take(1)
            .collect(),
        _ => vec![],
    }
}

/// An elementwise op over values converted from one format: the op on the stored values,
/// converted once (operands that are not converted values are converted; scalars stay).
fn elementwise_through(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Node::Op { op, outputs: 1, args } = node else { return vec![] };
    let op = op.op();
    if !(op.is_elementwise() || matches!(op, Op::FusedElementwise { .. })) || args.is_empty() {
        return vec![];
    }
    let Some(out) = ty(eg, class) else { return vec![] };
    let Some((format, align, channels, _)) = args.iter().find_map(|&a| from_formats(eg, a).into_iter().next()) else { return vec![] };
    let mut new_args = Vec::new();
    for &a in args.iter() {
        if is_scalar_const(eg, a) && ty(eg, a).is_some_and(|t| t.shape.rank() == 0) {
            new_args.push(Term::Class(a));
            continue;
        }
        if ty(eg, a) != Some(out) {
            return vec![];
        }
        match from_formats(eg, a).into_iter().find(|&(f, al, ch, _)| (f, al, ch) == (format, align, channels)) {
            Some((.., y)) => new_args.push(Term::Class(y)),
            None => new_args.push(Term::Op(Op::ToFormat { format, align }, vec![Term::Class(a)])),
        }
    }
    let op = match op {
        Op::FusedElementwise { body } => match restated(body, format, align, out) {
            Some(body) => Op::FusedElementwise { body },
            None => return vec![],
        },
        o => o.clone(),
    };
    let inner = Term::Op(op, new_args);
    vec![(class, Term::Op(Op::FromFormat { format, align, channels }, vec![inner]))]
}

/// The proposal of a target's convolution rule: a 2-D Conv or nchw ConvFused in class `class`
/// as the same convolution in `format` with channels padded to `align(dtype)`, between
/// conversions. Epilogue inputs of the result's shape are converted too; any other epilogue
/// input but a scalar (a per-channel bias) keeps the op in nchw.
pub fn conv_in_format(cx: &Ctx, class: Id, node: &Node, format: Format, align: fn(kiln_ir::DType) -> i64) -> Vec<Proposal> {
    let eg = cx.eg;
    let Node::Op { op, outputs: 1, args } = node else { return vec![] };
    let (Some(out), Some(xt)) = (ty(eg, class), args.first().and_then(|&a| ty(eg, a))) else { return vec![] };
    if out.shape.rank() != 4 || xt.shape.rank() != 4 || !out.shape.is_fixed() || !xt.shape.is_fixed() {
        return vec![];
    }
    let a = align(out.dtype);
    let body = match op.op() {
        Op::Conv { .. } => identity_body(out, format, a),
        Op::ConvFused { format: Format::Nchw, body, .. } => restated(body, format, a, out),
        _ => return vec![],
    };
    let Some(fused) = body.and_then(|b| op.op().with_conv_epilogue(format, a, b)) else { return vec![] };
    let Some(bias) = args.get(2).copied().or_else(|| eg.lookup(Node::Absent)) else { return vec![] };
    let convert = |c: Id| Term::Op(Op::ToFormat { format, align: a }, vec![Term::Class(c)]);
    let mut new_args = vec![convert(args[0]), Term::Class(args[1]), Term::Class(bias)];
    for &e in args.iter().skip(3) {
        match ty(eg, e) {
            Some(t) if t == out => new_args.push(convert(e)),
            _ if is_scalar_const(eg, e) => new_args.push(Term::Class(e)),
            _ => return vec![],
        }
    }
    let channels = out.shape.0[1].known().unwrap_or(0) as i64;
    vec![(class, Term::Op(Op::FromFormat { format, align: a, channels }, vec![Term::Op(fused, new_args)]))]
}

/// An epilogue that returns the convolution unchanged, typed for the stored result.
fn identity_body(out: &TensorType, format: Format, align: i64) -> Option<Box<Graph>> {
    let stored = kiln_ir::ops::layout::stored_dims(format, align, &out.shape.0).ok()?;
    let mut g = Graph::new("epilogue");
    let acc = g.add_input("acc0", TensorType::new(out.dtype, Shape(stored)));
    g.outputs = vec![acc];
    Some(Box::new(g))
}

/// An nchw epilogue re-declared for stored values (elementwise, so only declared shapes
/// change): values of the convolution's shape take the stored shape, one-element values stay;
/// anything else (a per-channel constant) has no stored form here.
fn restated(body: &Graph, format: Format, align: i64, out: &TensorType) -> Option<Box<Graph>> {
    let stored = Shape(kiln_ir::ops::layout::stored_dims(format, align, &out.shape.0).ok()?);
    let mut g = body.clone();
    let one = |s: &Shape| s.0.iter().all(|d| *d == Dim::Known(1));
    if g.consts.values().any(|t| t.numel() != 1) {
        return None;
    }
    for v in g.values.iter_mut() {
        if v.ty.shape == out.shape {
            v.ty.shape = stored.clone();
        } else if !one(&v.ty.shape) {
            return None;
        }
    }
    Some(Box::new(g))
}
