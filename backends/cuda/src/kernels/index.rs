//! Index-generated tensors and rearrangements, one thread per output element: OneHot, EyeLike,
//! DepthToSpace (DCR and CRD), SpaceToDepth, GatherND, ReverseSequence, and LpNormalization
//! (one thread per line: these ops sit outside a model's hot path).

use super::{coords, input, output, per_element, split_axis};
use crate::codegen::llvm::{Em, Ix, R};
use crate::codegen::{unsupported, CodegenError, Cx, Param, Ty};
use inkwell::IntPredicate;
use kiln_ir::ops::{norm_axis, DepthToSpaceMode};
use kiln_ir::{DType, Node, Op};

pub fn lower(cx: &mut Cx, node: &Node) -> R<()> {
    let y = output(node, 0)?;
    let yt = cx.ty(y)?;
    match node.op {
        Op::OneHot { axis } => one_hot(cx, node, &yt, axis),
        Op::EyeLike { k, .. } => {
            let [_, c] = yt.dims[..] else { return unsupported("EyeLike on other than 2-D") };
            let p = cx.begin("", &[Param::Value(y)])?;
            per_element(cx, yt.numel(), |em, t| {
                let (i, j) = (em.divk(t, c as i64)?, em.remk(t, c as i64)?);
                let on = em.icmp(IntPredicate::EQ, em.sub(j, i)?, em.ix(k))?;
                let v = em.convert(on.into(), DType::Bool, yt.dtype)?;
                em.store(yt.dtype, p[0], t, v)
            })
        }
        Op::DepthToSpace { blocksize, mode } => {
            let xt = cx.ty(input(node, 0)?)?;
            let [_, c, _, _] = yt.dims[..] else { return unsupported("DepthToSpace on other than 4-D") };
            let (xd, b) = (xt.dims.clone(), blocksize);
            let p = cx.begin("", &[Param::Value(y), Param::Value(input(node, 0)?)])?;
            per_element(cx, yt.numel(), |em, t| {
                let o = coords(em, t, &yt.dims)?;
                let (h, bh, w, bw) = (em.divk(o[2], b)?, em.remk(o[2], b)?, em.divk(o[3], b)?, em.remk(o[3], b)?);
                let blk = em.add(em.mulk(bh, b)?, bw)?;
                let ch = match mode {
                    DepthToSpaceMode::Dcr => em.add(em.mulk(blk, c as i64)?, o[1])?,
                    DepthToSpaceMode::Crd => em.add(em.mulk(o[1], b * b)?, blk)?,
                };
                let src = flat(em, &xd, [o[0], ch, h, w])?;
                em.store(xt.dtype, p[0], t, em.load(xt.dtype, p[1], src)?)
            })
        }
        Op::SpaceToDepth { blocksize } => {
            let xt = cx.ty(input(node, 0)?)?;
            let [_, c, _, _] = xt.dims[..] else { return unsupported("SpaceToDepth on other than 4-D") };
            let (xd, b) = (xt.dims.clone(), blocksize);
            let p = cx.begin("", &[Param::Value(y), Param::Value(input(node, 0)?)])?;
            per_element(cx, yt.numel(), |em, t| {
                let o = coords(em, t, &yt.dims)?;
                let (blk, ch) = (em.divk(o[1], c as i64)?, em.remk(o[1], c as i64)?);
                let (bh, bw) = (em.divk(blk, b)?, em.remk(blk, b)?);
                let src = flat(em, &xd, [o[0], ch, em.add(em.mulk(o[2], b)?, bh)?, em.add(em.mulk(o[3], b)?, bw)?])?;
                em.store(xt.dtype, p[0], t, em.load(xt.dtype, p[1], src)?)
            })
        }
        Op::LpNormalization { axis, p: pw } => lp_norm(cx, node, axis, pw),
        Op::GatherND { batch_dims } => gather_nd(cx, node, &yt, batch_dims),
        Op::ReverseSequence { batch_axis, time_axis } => reverse_sequence(cx, node, &yt, batch_axis, time_axis),
        ref other => unsupported(format!("{} in the index family", other.kind_name())),
    }
}

/// The linear index of a 4-D coordinate.
fn flat<'c>(em: &Em<'c>, dims: &[usize], c: [Ix<'c>; 4]) -> R<Ix<'c>> {
    let mut at = em.ix(0);
    for (d, ci) in c.into_iter().enumerate() {
        at = em.add(em.mulk(at, dims[d] as i64)?, ci)?;
    }
    Ok(at)
}

/// OneHot: `values[1]` where the output's axis coordinate equals the index (negative indices
/// counted from `depth`), `values[0]` elsewhere; indices of any numeric dtype, truncated.
fn one_hot(cx: &mut Cx, node: &Node, yt: &Ty, axis: i64) -> R<()> {
    let (ind, vals) = (input(node, 0)?, input(node, 2)?);
    let it = cx.ty(ind)?;
    let a = norm_axis(axis, yt.dims.len()).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
    let (_, depth, inner) = split_axis(&yt.dims, a);
    let p = cx.begin("", &[Param::Value(output(node, 0)?), Param::Value(ind), Param::Value(vals)])?;
    let dt = yt.dtype;
    per_element(cx, yt.numel(), |em, t| {
        let (o, j, i) = (em.divk(t, (depth * inner) as i64)?, em.remk(em.divk(t, inner as i64)?, depth as i64)?, em.remk(t, inner as i64)?);
        let raw = em.load(it.dtype, p[1], em.add(em.mulk(o, inner as i64)?, i)?)?;
        let h = em.convert(raw, it.dtype, DType::I64)?.into_int_value();
        let neg = em.icmp(IntPredicate::SLT, h, em.ix(0))?;
        let h = em.select(neg, em.addk(h, depth as i64)?, h)?.into_int_value();
        let hit = em.icmp(IntPredicate::EQ, h, j)?;
        let v = em.select(hit, em.load(dt, p[2], em.ix(1))?, em.load(dt, p[2], em.ix(0))?)?;
        em.store(dt, p[0], t, v)
    })
}

/// LpNormalization (p = 1 or 2): each line along the axis divided by its norm (in f32).
fn lp_norm<'c>(cx: &mut Cx<'c, '_>, node: &Node, axis: i64, pw: i64) -> R<()> {
    let x = input(node, 0)?;
    let xt = cx.ty(x)?;
    if !super::is_f32_compute(xt.dtype) || !matches!(pw, 1 | 2) {
        return unsupported(format!("LpNormalization p = {pw} on {}", xt.dtype));
    }
    let a = norm_axis(axis, xt.dims.len()).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
    let (outer, len, inner) = split_axis(&xt.dims, a);
    let p = cx.begin("", &[Param::Value(output(node, 0)?), Param::Value(x)])?;
    per_element(cx, outer * inner, |em, t| {
        let (o, i) = (em.divk(t, inner as i64)?, em.remk(t, inner as i64)?);
        let base = em.add(em.mulk(o, (len * inner) as i64)?, i)?;
        let at = |em: &Em<'c>, l: Ix<'c>| em.add(base, em.mulk(l, inner as i64)?);
        let acc = em.var(em.f32c(0.0).into())?;
        em.for_n(len as i64, |em, l| {
            let v = em.load(xt.dtype, p[1], at(em, l)?)?.into_float_value();
            let term = if pw == 1 { em.fintr("fabs", &[v])? } else { em.fmul(v, v)? };
            em.set(acc, em.fadd(em.get(acc)?.into_float_value(), term)?.into())
        })?;
        let s = em.get(acc)?.into_float_value();
        let norm = if pw == 1 { s } else { em.fintr("sqrt", &[s])? };
        em.for_n(len as i64, |em, l| {
            let v = em.load(xt.dtype, p[1], at(em, l)?)?.into_float_value();
            em.store(xt.dtype, p[0], at(em, l)?, em.fdiv(v, norm)?.into())
        })
    })
}

/// GatherND: output element (tuple t, slice position s) reads data at the batch offset of t's
/// batch, plus the tuple's indices (negative ones counted from the end, clamped), plus s.
fn gather_nd(cx: &mut Cx, node: &Node, yt: &Ty, batch_dims: i64) -> R<()> {
    let (x, ind) = (input(node, 0)?, input(node, 1)?);
    let (xt, it) = (cx.ty(x)?, cx.ty(ind)?);
    let b = batch_dims.max(0) as usize;
    let Some(&last) = it.dims.last() else { return unsupported("GatherND with rank-0 indices") };
    if b + last > xt.dims.len() || it.dims.len() <= b {
        return unsupported(format!("GatherND of {:?} by {:?} with batch_dims {b}", xt.dims, it.dims));
    }
    let xs = super::strides(&xt.dims);
    let slice: usize = xt.dims[b + last..].iter().product();
    let batch: usize = xt.dims[..b].iter().product();
    let tuples: usize = it.dims[..it.dims.len() - 1].iter().product();
    let per_batch = (tuples / batch.max(1)).max(1);
    let xd = xt.dims.clone();
    let p = cx.begin("", &[Param::Value(output(node, 0)?), Param::Value(x), Param::Value(ind)])?;
    per_element(cx, yt.numel(), |em, t| {
        let (tu, s) = (em.divk(t, slice as i64)?, em.remk(t, slice as i64)?);
        let mut rem = em.divk(tu, per_batch as i64)?;
        let mut at = s;
        for d in (0..b).rev() {
            at = em.add(at, em.mulk(em.remk(rem, xd[d] as i64)?, xs[d])?)?;
            rem = em.divk(rem, xd[d] as i64)?;
        }
        for k in 0..last {
            let j = super::axis_index(em, it.dtype, p[2], em.addk(em.mulk(tu, last as i64)?, k as i64)?, xd[b + k])?;
            at = em.add(at, em.mulk(j, xs[b + k])?)?;
        }
        em.store(xt.dtype, p[0], t, em.load(xt.dtype, p[1], at)?)
    })
}

/// ReverseSequence: along the time axis, the first `lens[b]` elements (clamped to the axis) of
/// each batch entry reversed, the rest copied.
fn reverse_sequence(cx: &mut Cx, node: &Node, yt: &Ty, batch_axis: i64, time_axis: i64) -> R<()> {
    let (x, lens) = (input(node, 0)?, input(node, 1)?);
    let lt = cx.ty(lens)?;
    let r = yt.dims.len();
    let (ba, ta) = (
        norm_axis(batch_axis, r).map_err(|e| CodegenError::Unsupported(e.to_string()))?,
        norm_axis(time_axis, r).map_err(|e| CodegenError::Unsupported(e.to_string()))?,
    );
    let st = super::strides(&yt.dims);
    let (nb, nt) = (yt.dims[ba] as i64, yt.dims[ta] as i64);
    let dt = yt.dtype;
    let p = cx.begin("", &[Param::Value(output(node, 0)?), Param::Value(x), Param::Value(lens)])?;
    per_element(cx, yt.numel(), |em, i| {
        let b = em.remk(em.divk(i, st[ba])?, nb)?;
        let t = em.remk(em.divk(i, st[ta])?, nt)?;
        let l = em.convert(em.load(lt.dtype, p[2], b)?, lt.dtype, DType::I64)?.into_int_value();
        let l = em.select(em.icmp(IntPredicate::SLT, l, em.ix(0))?, em.ix(0), l)?.into_int_value();
        let l = em.min_ix(l, em.ix(nt))?;
        let flip = em.icmp(IntPredicate::SLT, t, l)?;
        let moved = em.add(em.sub(i, em.mulk(t, st[ta])?)?, em.mulk(em.sub(em.addk(l, -1)?, t)?, st[ta])?)?;
        let src = em.select(flip, moved, i)?.into_int_value();
        em.store(dt, p[0], i, em.load(dt, p[1], src)?)
    })
}
