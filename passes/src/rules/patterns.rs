//! Exporter patterns: the decompositions PyTorch's ONNX exporter emits, recognized as the single
//! ops they stand for (which then have one kernel, or a CANN built-in, on every target).
//!
//! ```text
//! %p = Pow[p](%x, 2.0)                                  %y = RMSNormalization[y](%x, %w)
//! %m = Reduce[m](%p, [-1]) {kind=mean, keepdims=true}         {axis=-1, epsilon=1e-6}
//! %a = Add[a](%m, 1e-6)                           =>
//! %s = Sqrt[s](%a); %r = Div[r](1.0, %s)
//! %n = Mul[n](%x, %r); %y = Mul[y](%w, %n)
//!
//! %kt = Transpose(%k) {perm=[0, 1, 3, 2]}                %y = Attention[y](%q, %k, %v, %mask)
//! %s = MatMul(%q, %kt); %d = Div(%s, 8.0)         =>        {scale=0.125, q_num_heads=h, ...}
//! %a = Add(%d, %mask); %p = Softmax(%a) {axis=-1}
//! %y = MatMul(%p, %v)
//!
//! %x1 = Slice(%x, [0], [8], [-1]); %x2 = Slice(%x, [8], [16], [-1])    %y = RotaryEmbedding(%x,
//! %r = Concat(Neg(%x2), %x1) {axis=-1}                          =>          %cos[:, :8], %sin[:, :8])
//! %y = Add(Mul(%x, %cos), Mul(%r, %sin))         (cos and sin: constant [seq, 16] tables, halves equal)
//! ```

use super::{binary, fixed, is_scalar, konst, ops, same, scalar, ty, unary, weight_name};
use crate::eqsat::analysis::EG;
use crate::eqsat::lang::Node;
use crate::eqsat::rule::{Ctx, Proposal, Rule, Term};
use egg::Id;
use kiln_ir::ops::{GeluApprox, ReduceKind};
use kiln_ir::{BinaryOp, Dim, Op, TensorType, UnaryOp};

pub const RULES: [Rule; 7] = [
    Rule { name: "patterns/attention", search: attention },
    Rule { name: "patterns/layer-norm", search: layer_norm },
    Rule { name: "patterns/rotary", search: rotary },
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

/// The inputs of `mean(·, last axis, keepdims)` nodes in class `m`.
fn last_axis_means(eg: &EG, m: Id) -> Vec<Id> {
    let Some(rank) = ty(eg, m).map(|t| t.shape.rank() as i64) else { return vec![] };
    ops(eg, m)
        .filter(|(op, args)| {
            matches!(op, Op::Reduce { kind: ReduceKind::Mean, keepdims: true, .. })
                && args.get(1).and_then(|&ax| konst(eg, ax)).is_some_and(|t| t.to_i64() == [-1] || t.to_i64() == [rank - 1])
        })
        .map(|(_, args)| args[0])
        .collect()
}

/// `mean(x², last axis, keepdims) + eps`: the eps.
fn mean_square_plus_eps(eg: &EG, a: Id, x: Id) -> Option<f64> {
    for (m, e) in binary(eg, a, BinaryOp::Add) {
        let Some(eps) = scalar(eg, e) else { continue };
        for sq in last_axis_means(eg, m) {
            let squared = binary(eg, sq, BinaryOp::Pow).iter().any(|(b, p)| same_uncast(eg, *b, x) && is_scalar(eg, *p, 2.0))
                || binary(eg, sq, BinaryOp::Mul).iter().any(|(p, q)| same_uncast(eg, *p, x) && same_uncast(eg, *q, x));
            if squared {
                return Some(eps);
            }
        }
    }
    None
}

/// `(x - mean(x)) / sqrt(mean((x - mean(x))²) + eps) · w + b` over the last axis, as PyTorch
/// exports LayerNorm below opset 17: one LayerNormalization.
fn layer_norm(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    if !matches!(node.op(), Some(Op::Binary { op: BinaryOp::Add })) {
        return vec![];
    }
    let Some(xt) = ty(eg, class) else { return vec![] };
    let last = xt.shape.0.last().and_then(|d| d.known());
    let vector = |c: Id| konst(eg, c).is_some_and(|t| t.rank() == 1 && Some(t.dims()[0]) == last && t.dtype() == xt.dtype);
    for (y, b) in binary(eg, class, BinaryOp::Add) {
        if !vector(b) {
            continue;
        }
        for (n, w) in binary(eg, y, BinaryOp::Mul) {
            if !vector(w) {
                continue;
            }
            for (d, s) in binary(eg, n, BinaryOp::Div) {
                for (x, m) in binary(eg, d, BinaryOp::Sub) {
                    let means = uncast(eg, m).into_iter().flat_map(|m| last_axis_means(eg, m));
                    if ty(eg, x) != Some(xt) || !means.into_iter().any(|mx| same_uncast(eg, mx, x)) {
                        continue;
                    }
                    for a in uncast(eg, s).into_iter().flat_map(|s| unary(eg, s, UnaryOp::Sqrt)) {
                        if let Some(eps) = mean_square_plus_eps(eg, a, d) {
                            let op = Op::LayerNormalization { axis: -1, epsilon: eps as f32 };
                            return vec![(class, Term::Op(op, vec![Term::Class(x), Term::Class(w), Term::Class(b)]))];
                        }
                    }
                }
            }
        }
    }
    vec![]
}

/// Class `c` and, where it is a float cast of a float value, that value: `--precision` keeps a
/// norm's statistics in f32 between casts (see `precision.rs`), and the norm is the same.
fn uncast(eg: &EG, c: Id) -> Vec<Id> {
    let float = |c: Id| ty(eg, c).is_some_and(|t| t.dtype.is_float());
    let mut v = vec![c];
    if float(c) {
        v.extend(ops(eg, c).filter(|(op, a)| matches!(op, Op::Cast { .. }) && a.len() == 1 && float(a[0])).map(|(_, a)| a[0]));
    }
    v
}

/// Whether `a` and `b` are one value, either possibly through a float cast (a statistic reads
/// an f32 graph input that the rest of the norm reads cast to f16).
fn same_uncast(eg: &EG, a: Id, b: Id) -> bool {
    let bs = uncast(eg, b);
    uncast(eg, a).into_iter().any(|a| bs.iter().any(|&b| same(eg, a, b)))
}

/// `1 / sqrt(a)` written as Div(1, Sqrt) or Reciprocal(Sqrt), either possibly cast: the a.
fn rsqrt_of(eg: &EG, r: Id) -> Vec<Id> {
    uncast(eg, r).into_iter().flat_map(|r| rsqrt_of_uncast(eg, r)).collect()
}

fn rsqrt_of_uncast(eg: &EG, r: Id) -> Vec<Id> {
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

/// K as a term and its type, given `Kᵀ = Transpose{perm}(k0)`: K is `k0` transposed by `perm`
/// with its last two axes swapped back (just `k0` when that is the identity).
fn untransposed(eg: &EG, perm: &[i64], k0: Id) -> Option<(Term, TensorType)> {
    let k0t = ty(eg, k0)?;
    if perm.len() != 4 || k0t.shape.rank() != 4 {
        return None;
    }
    let q = [perm[0], perm[1], perm[3], perm[2]];
    let dims = q.iter().map(|&a| usize::try_from(a).ok().and_then(|a| k0t.shape.0.get(a).cloned())).collect::<Option<Vec<Dim>>>()?;
    let t = TensorType::new(k0t.dtype, kiln_ir::Shape(dims));
    if q == [0, 1, 2, 3] {
        Some((Term::Class(k0), t))
    } else {
        Some((Term::Op(Op::Transpose { perm: q.to_vec() }, vec![Term::Class(k0)]), t))
    }
}

/// `Kᵀ` given as `Reshape(Transpose{[0,2,1]}(k3), [b,h,d,s])` with `k3: [b·h, s, d]` (the
/// dynamo exporter's form): K as `Reshape(k3, [b,h,s,d])` and its type.
fn untransposed_3d(eg: &EG, kt: Id) -> Option<(Term, TensorType)> {
    let [b, h, d, s] = <[usize; 4]>::try_from(fixed(eg, kt)?).ok()?;
    for (rop, ra) in ops(eg, kt) {
        if !matches!(rop, Op::Reshape { .. }) {
            continue;
        }
        for (top, ta) in ops(eg, ra[0]) {
            if !matches!(top, Op::Transpose { perm } if perm[..] == [0, 2, 1]) || fixed(eg, ta[0]) != Some(vec![b * h, s, d]) {
                continue;
            }
            let dt = ty(eg, ta[0])?.dtype;
            let k = Term::Op(Op::Reshape { allowzero: false }, vec![Term::Class(ta[0]), super::heads::shape_const(&[b, h, s, d])?]);
            return Some((k, TensorType::new(dt, kiln_ir::Shape([b, h, s, d].iter().map(|&n| Dim::Known(n)).collect()))));
        }
    }
    None
}

/// `x` and a constant factor: `(x, 1)` itself and `(y, f)` for every `x = y · f` with f scalar.
/// The factored forms come first, so the Attention built reads the unscaled tensor.
fn scaled(eg: &EG, x: Id) -> Vec<(Id, f64)> {
    let mut out: Vec<(Id, f64)> = binary(eg, x, BinaryOp::Mul).into_iter().filter_map(|(y, c)| scalar(eg, c).map(|f| (y, f))).collect();
    out.push((x, 1.0));
    out
}

/// Scores `Q·Kᵀ`, possibly scaled by a constant (dividing the product, or multiplying it or
/// either factor): (q, K as a term, K's type, scale).
fn scaled_scores(eg: &EG, t: Id) -> Vec<(Id, Term, TensorType, f64)> {
    let qk = |c: Id| -> Vec<(Id, Term, TensorType, f64)> {
        let mut v = Vec::new();
        for (o, a) in ops(eg, c) {
            if !matches!(o, Op::MatMul {}) || a.len() != 2 {
                continue;
            }
            for (q, fq) in scaled(eg, a[0]) {
                for (kt, fk) in scaled(eg, a[1]) {
                    for (to, ka) in ops(eg, kt) {
                        if let Op::Transpose { perm } = to {
                            if let Some((k, ty)) = untransposed(eg, perm, ka[0]) {
                                v.push((q, k, ty, fq * fk));
                            }
                        }
                    }
                    if let Some((k, ty)) = untransposed_3d(eg, kt) {
                        v.push((q, k, ty, fq * fk));
                    }
                }
            }
        }
        v
    };
    let mut out: Vec<(Id, Term, TensorType, f64)> = qk(t);
    for (m, c) in binary(eg, t, BinaryOp::Div) {
        if let Some(d) = scalar(eg, c).filter(|d| *d != 0.0) {
            out.extend(qk(m).into_iter().map(|(q, k, kt, f)| (q, k, kt, f / d)));
        }
    }
    for (m, c) in binary(eg, t, BinaryOp::Mul) {
        if let Some(g) = scalar(eg, c) {
            out.extend(qk(m).into_iter().map(|(q, k, kt, f)| (q, k, kt, f * g)));
        }
    }
    out
}

/// Whether `m` broadcasts to `target` (right-aligned, each dim 1 or equal).
fn broadcasts_to(m: &TensorType, target: &TensorType) -> bool {
    m.shape.rank() <= target.shape.rank()
        && m.shape.0.iter().rev().zip(target.shape.0.iter().rev()).all(|(a, b)| a == &Dim::Known(1) || a == b)
}

/// How the scores are masked before the softmax.
#[derive(Clone, Debug)]
enum Masking {
    /// An additive mask (an e-class) and whether a lower-triangular `Where` also applies.
    Additive(Option<Id>, bool),
    /// A constant boolean `Where` mask that is not causal, as an additive constant.
    Selected(kiln_ir::Tensor),
}

/// `Where(cond, t, fill)` with a constant boolean cond and a fill so negative that softmax gives
/// it no weight: (t, cond, fill).
fn where_masks(eg: &EG, c: Id) -> Vec<(Id, Id, f64)> {
    ops(eg, c)
        .filter(|(op, a)| matches!(op, Op::Where {}) && a.len() == 3)
        .filter_map(|(_, a)| {
            let cond = konst(eg, a[0]).filter(|t| t.dtype() == kiln_ir::DType::Bool)?;
            let fill = scalar(eg, a[2]).filter(|f| *f <= -1e30)?;
            (cond.rank() >= 2).then_some((a[1], a[0], fill))
        })
        .collect()
}

/// Whether boolean `cond` ([.., sq, sk], leading dims 1) keeps exactly the causal positions
/// `j <= i` of square scores.
fn is_causal_mask(cond: &kiln_ir::Tensor) -> bool {
    let d = cond.dims();
    let (sq, sk) = (d[d.len() - 2], d[d.len() - 1]);
    sq == sk && d[..d.len() - 2].iter().all(|&x| x == 1) && cond.to_f64().iter().enumerate().all(|(n, &v)| (v != 0.0) == (n % sk <= n / sk))
}

/// Whether additive `bias` ([.., sq, sk], leading dims 1, sq = sk = the scores' last dims) is 0
/// at the causal positions `j <= i` and at most -65504 elsewhere: so negative that softmax gives
/// those keys no weight (f32's lowest saturates to -65504 in f16).
fn is_causal_bias(bias: &kiln_ir::Tensor, scores: Option<&TensorType>) -> bool {
    let d = bias.dims();
    let Some(st) = scores.and_then(|t| t.shape.as_fixed()) else { return false };
    if d.len() < 2 || st.len() < 2 || d[d.len() - 2..] != st[st.len() - 2..] {
        return false;
    }
    let (sq, sk) = (d[d.len() - 2], d[d.len() - 1]);
    sq == sk
        && d[..d.len() - 2].iter().all(|&x| x == 1)
        && bias.to_f64().iter().enumerate().all(|(n, &v)| if n % sk <= n / sk { v == 0.0 } else { v <= -65504.0 })
}

/// The masked forms of softmax input `s`: (unmasked scores, masking).
fn masked_forms(eg: &EG, s: Id) -> Vec<(Id, Masking)> {
    let st = ty(eg, s).cloned();
    let add_ok = |m: Id| ty(eg, m).zip(st.as_ref()).is_some_and(|(mt, st)| mt.dtype == st.dtype && broadcasts_to(mt, st));
    let mut heads: Vec<(Id, Option<Id>)> = vec![(s, None)];
    heads.extend(binary(eg, s, BinaryOp::Add).into_iter().filter(|(_, m)| add_ok(*m)).map(|(t, m)| (t, Some(m))));
    let mut out = Vec::new();
    for (t, mask) in heads {
        let causal_bias = mask.and_then(|m| konst(eg, m)).is_some_and(|c| is_causal_bias(c, st.as_ref()));
        out.push((t, if causal_bias { Masking::Additive(None, true) } else { Masking::Additive(mask, false) }));
        for (inner, cond, fill) in where_masks(eg, t) {
            let (Some(c), Some(st)) = (konst(eg, cond), st.as_ref()) else { continue };
            let cond_ty = TensorType::new(st.dtype, kiln_ir::Shape(c.dims().iter().map(|&d| Dim::Known(d)).collect()));
            if !broadcasts_to(&cond_ty, st) {
                continue;
            }
            if is_causal_mask(c) && c.dims().last().map(|&k| Dim::Known(k)) == st.shape.0.last().cloned() {
                out.push((inner, Masking::Additive(mask, true)));
            } else if mask.is_none() {
                let v: Vec<f64> = c.to_f64().iter().map(|&b| if b != 0.0 { 0.0 } else { fill }).collect();
                if let Ok(t) = kiln_ir::Tensor::new(c.dims().to_vec(), kiln_ir::Data::from_f64(st.dtype, &v)) {
                    out.push((inner, Masking::Selected(t)));
                }
            }
        }
    }
    out
}

/// The softmax inputs of probabilities `p` over the last axis, and whether NaN probabilities
/// (whole rows: every key masked, or a NaN or infinite score) are replaced by 0, as
/// `Where(IsNaN(softmax(s)), 0, softmax(s))` does.
fn probabilities(eg: &EG, p: Id) -> Vec<(Id, bool)> {
    let softmax = |c: Id| -> Vec<Id> {
        ops(eg, c).filter(|(op, a)| matches!(op, Op::Softmax { axis: -1 | 3, legacy: false }) && a.len() == 1).map(|(_, a)| a[0]).collect()
    };
    let mut out: Vec<(Id, bool)> = softmax(p).into_iter().map(|s| (s, false)).collect();
    for (op, a) in ops(eg, p) {
        if !matches!(op, Op::Where {}) || a.len() != 3 || !is_scalar(eg, a[1], 0.0) {
            continue;
        }
        if unary(eg, a[0], UnaryOp::IsNaN).iter().any(|&x| same(eg, x, a[2])) {
            out.extend(softmax(a[2]).into_iter().map(|s| (s, true)));
        }
    }
    out
}

/// softmax(Q·Kᵀ·scale + mask) · V over 4-D [batch, heads, seq, head_dim] tensors: one Attention.
/// The mask may be added, selected by a constant `Where` (a lower-triangular one becomes
/// `is_causal`), or both.
fn attention(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    let Node::Op { op, outputs: 1, args: pv } = node else { return vec![] };
    if !matches!(op.op(), Op::MatMul {}) || pv.len() != 2 {
        return vec![];
    }
    let (p, v) = (pv[0], pv[1]);
    let (Some(vt), Some(out)) = (ty(eg, v), ty(eg, class)) else { return vec![] };
    if vt.shape.rank() != 4 || !matches!(vt.dtype, kiln_ir::DType::F32 | kiln_ir::DType::F16 | kiln_ir::DType::BF16) {
        return vec![];
    }
    for (sm, zero_undefined_rows) in probabilities(eg, p) {
        for (t, masking) in masked_forms(eg, sm) {
            for (q, k, kt, scale) in scaled_scores(eg, t) {
                let Some(qt) = ty(eg, q) else { continue };
                let (Some(h), Some(hk)) = (qt.shape.0.get(1).and_then(|d| d.known()), kt.shape.0.get(1).and_then(|d| d.known())) else {
                    continue;
                };
                // Attention's result is [batch, q heads, q seq, v head dim]: it must be the product's type.
                let y = [&qt.shape.0[0], &qt.shape.0[1], &qt.shape.0[2], &vt.shape.0[3]];
                if kt.shape.rank() != 4
                    || qt.dtype != vt.dtype
                    || kt.dtype != vt.dtype
                    || vt.shape.0[1] != Dim::Known(hk)
                    || h % hk != 0
                    || out.shape.0.iter().zip(y).any(|(a, b)| a != b)
                {
                    continue;
                }
                let (mask, is_causal) = match &masking {
                    Masking::Additive(m, causal) => (m.map(Term::Class), *causal),
                    Masking::Selected(t) => (Some(Term::Weight("attention.mask".into(), std::sync::Arc::new(t.clone()))), false),
                };
                let op = Op::Attention {
                    is_causal,
                    kv_num_heads: hk as i64,
                    q_num_heads: h as i64,
                    qk_matmul_output_mode: 0,
                    scale: Some(scale as f32),
                    softcap: 0.0,
                    softmax_precision: None,
                    zero_undefined_rows,
                };
                let mut args = vec![Term::Class(q), k, Term::Class(v)];
                args.extend(mask);
                return vec![(class, Term::Op(op, args))];
            }
        }
    }
    vec![]
}

/// The slice of `x` along its last axis with step 1 in class `c`: (first, length).
fn last_axis_slice(eg: &EG, c: Id, x: Id) -> Option<(usize, usize)> {
    let (xt, ct) = (fixed(eg, x)?, fixed(eg, c)?);
    let r = xt.len();
    for (op, a) in ops(eg, c) {
        if !matches!(op, Op::Slice {}) || !same(eg, a[0], x) || a.len() < 4 {
            continue;
        }
        let int = |i: usize| a.get(i).and_then(|&c| konst(eg, c)).map(|t| t.to_i64());
        let (Some(starts), Some(axes)) = (int(1), int(3)) else { continue };
        let steps = if a.len() > 4 { int(4) } else { Some(vec![1]) };
        if starts.len() != 1 || steps != Some(vec![1]) || !(axes == [-1] || axes == [r as i64 - 1]) {
            continue;
        }
        let len = xt[r - 1] as i64;
        let first = if starts[0] < 0 { starts[0] + len } else { starts[0] }.clamp(0, len) as usize;
        if ct[..r - 1] == xt[..r - 1] {
            return Some((first, ct[r - 1]));
        }
    }
    None
}

/// `Concat(Neg(x[..., h:]), x[..., :h])` along the last axis with `h` half of it.
fn is_rotate_half(eg: &EG, c: Id, x: Id) -> bool {
    let Some(d) = fixed(eg, x).and_then(|v| v.last().copied()) else { return false };
    let r = ty(eg, x).map_or(0, |t| t.shape.rank()) as i64;
    ops(eg, c).any(|(op, a)| {
        matches!(op, Op::Concat { axis } if *axis == -1 || *axis == r - 1)
            && a.len() == 2
            && d % 2 == 0
            && unary(eg, a[0], UnaryOp::Neg).into_iter().any(|n| last_axis_slice(eg, n, x) == Some((d / 2, d / 2)))
            && last_axis_slice(eg, a[1], x) == Some((0, d / 2))
    })
}

/// A constant cos/sin table broadcasting to `x` ([.., seq, dim], leading dims 1) whose two
/// halves agree along the last axis: its first halves as a [seq, dim/2] cache.
fn half_table(eg: &EG, c: Id, x: Id) -> Option<kiln_ir::Tensor> {
    let t = konst(eg, c)?;
    let xt = ty(eg, x)?;
    let xd = xt.shape.as_fixed()?;
    let r = xd.len();
    let dims = t.dims();
    if t.dtype() != xt.dtype || !(3..=4).contains(&r) || dims.len() < 2 || dims.len() > r {
        return None;
    }
    let (s, d) = (dims[dims.len() - 2], dims[dims.len() - 1]);
    if (s, d) != (xd[r - 2], xd[r - 1]) || dims[..dims.len() - 2].iter().any(|&k| k != 1) || d % 2 != 0 {
        return None;
    }
    let v = t.to_f64();
    let h = d / 2;
    let mut half = Vec::with_capacity(s * h);
    for row in v.chunks(d) {
        if row[..h].iter().zip(&row[h..]).any(|(a, b)| a.to_bits() != b.to_bits()) {
            return None;
        }
        half.extend_from_slice(&row[..h]);
    }
    kiln_ir::Tensor::new(vec![s, h], kiln_ir::Data::from_f64(t.dtype(), &half)).ok()
}

/// `x·cos + rotate_half(x)·sin` with constant tables: one RotaryEmbedding (non-interleaved,
/// the whole head dim rotated).
fn rotary(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let eg = cx.eg;
    if !matches!(node.op(), Some(Op::Binary { op: BinaryOp::Add })) {
        return vec![];
    }
    for (a, b) in binary(eg, class, BinaryOp::Add) {
        for (x, cos) in binary(eg, a, BinaryOp::Mul) {
            if ty(eg, x) != ty(eg, class) || ty(eg, x).is_none_or(|t| !t.dtype.is_float()) {
                continue;
            }
            let Some(cos_half) = half_table(eg, cos, x) else { continue };
            for (r, sin) in binary(eg, b, BinaryOp::Mul) {
                let Some(sin_half) = half_table(eg, sin, x) else { continue };
                if !is_rotate_half(eg, r, x) {
                    continue;
                }
                let name = weight_name(eg, cos);
                let sname = weight_name(eg, sin);
                // A 3-D x is one head per position; a 4-D x is [batch, heads, seq, dim].
                let num_heads = if ty(eg, x).is_some_and(|t| t.shape.rank() == 3) { 1 } else { 0 };
                let op = Op::RotaryEmbedding { interleaved: false, num_heads, rotary_embedding_dim: 0 };
                let args = vec![
                    Term::Class(x),
                    Term::Weight(format!("{name}.half"), std::sync::Arc::new(cos_half)),
                    Term::Weight(format!("{sname}.half"), std::sync::Arc::new(sin_half)),
                ];
                return vec![(class, Term::Op(op, args))];
            }
        }
    }
    vec![]
}
