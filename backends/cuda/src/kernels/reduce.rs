//! Row reductions: LayerNorm, RMSNorm, Softmax, LogSoftmax and Reduce*. One thread block per
//! row; threads stride over the row and combine through warp shuffles and a shared scratch of
//! one value per warp. Statistics accumulate in f32 whatever the storage dtype; LayerNorm reads
//! its row once for them (Welford's running mean and squared deviations, merged pairwise across
//! the block) and once more to normalize.

use super::{bcast_index, input, output};
use crate::codegen::llvm::{Em, Ix, R};
use crate::codegen::{blocks, unsupported, CodegenError, Cx, Param, Ty};
use inkwell::values::{FloatValue, PointerValue};
use inkwell::IntPredicate;
use kiln_ir::ops::{norm_axis, ReduceKind};
use kiln_ir::{Node, Op, ValueId};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Combine {
    Sum,
    Max,
    Min,
    Prod,
}

impl Combine {
    fn identity(self) -> f64 {
        match self {
            Combine::Sum => 0.0,
            Combine::Max => f64::NEG_INFINITY,
            Combine::Min => f64::INFINITY,
            Combine::Prod => 1.0,
        }
    }
    fn apply<'c>(self, em: &Em<'c>, a: FloatValue<'c>, b: FloatValue<'c>) -> R<FloatValue<'c>> {
        match self {
            Combine::Sum => em.fadd(a, b),
            Combine::Max => em.fmax(a, b),
            Combine::Min => em.fmin(a, b),
            Combine::Prod => em.fmul(a, b),
        }
    }
}

/// Threads per block for rows of `len` elements: a multiple of 32, at most 256.
pub fn threads_for(len: usize) -> i64 {
    (len.div_ceil(32) * 32).clamp(32, 256) as i64
}

/// Combines `v` across the block (`threads` threads); every thread gets the result.
pub fn block_reduce<'c>(em: &mut Em<'c>, v: FloatValue<'c>, op: Combine, scratch: PointerValue<'c>, threads: i64) -> R<FloatValue<'c>> {
    let r = block_merge(em, vec![v], &[op.identity()], scratch, threads, |em, a, b| Ok(vec![op.apply(em, a[0], b[0])?]))?;
    Ok(r[0])
}

/// Merges every thread's partial (`v`, one or more f32 values) across the block of `threads`
/// threads with `merge`: through warp shuffles, then lane 0 of each warp publishes its warp's
/// partial (value `k` of warp `w` at `scratch[32 k + w]`) and every warp merges the published
/// ones, lanes beyond the warps holding `identity`. Every thread gets the result.
fn block_merge<'c>(
    em: &mut Em<'c>,
    v: Vec<FloatValue<'c>>,
    identity: &[f64],
    scratch: PointerValue<'c>,
    threads: i64,
    merge: impl Fn(&Em<'c>, &[FloatValue<'c>], &[FloatValue<'c>]) -> R<Vec<FloatValue<'c>>>,
) -> R<Vec<FloatValue<'c>>> {
    let warp_merge = |em: &mut Em<'c>, mut v: Vec<FloatValue<'c>>| -> R<Vec<FloatValue<'c>>> {
        for m in [16, 8, 4, 2, 1] {
            let o = v.iter().map(|&x| em.shfl_xor(x, m)).collect::<R<Vec<_>>>()?;
            v = merge(em, &v, &o)?;
        }
        Ok(v)
    };
    let v = warp_merge(em, v)?;
    if threads <= 32 {
        return Ok(v);
    }
    let tid = em.sreg("tid.x")?;
    let lane = em.remk(tid, 32)?;
    let warp = em.divk(tid, 32)?;
    let slot = |em: &Em<'c>, i: Ix<'c>, k: usize| if k == 0 { Ok(i) } else { em.addk(i, 32 * k as i64) };
    let is0 = em.icmp(IntPredicate::EQ, lane, em.ix(0))?;
    // Lane 0 of each warp publishes its partial.
    em.if_(is0, |em| {
        for (k, &x) in v.iter().enumerate() {
            em.store_shared_f32(scratch, slot(em, warp, k)?, x)?;
        }
        Ok(())
    })?;
    em.barrier()?;
    let nw = threads / 32;
    let has = em.icmp(IntPredicate::SLT, lane, em.ix(nw))?;
    let lane_c = em.min_ix(lane, em.ix(nw - 1))?;
    let mut part = vec![];
    for (k, &id) in identity.iter().enumerate() {
        let x = em.load_shared_f32(scratch, slot(em, lane_c, k)?)?;
        part.push(em.select(has, x, em.f32c(id))?.into_float_value());
    }
    let r = warp_merge(em, part)?;
    em.barrier()?;
    Ok(r)
}

/// Welford's statistics of some elements: their count, mean and sum of squared deviations
/// from the mean.
#[derive(Clone, Copy)]
struct Welford<'c> {
    n: FloatValue<'c>,
    mean: FloatValue<'c>,
    m2: FloatValue<'c>,
}

impl<'c> Welford<'c> {
    /// The statistics of both sets (Chan, Golub and LeVeque's pairwise update); two empty sets
    /// give an empty one.
    fn merge(self, em: &Em<'c>, o: Welford<'c>) -> R<Welford<'c>> {
        let n = em.fadd(self.n, o.n)?;
        let d = em.fsub(o.mean, self.mean)?;
        let r = em.fdiv(o.n, em.fmax(n, em.f32c(1.0))?)?;
        let mean = em.fintr("fma", &[d, r, self.mean])?;
        let cross = em.fmul(em.fmul(d, d)?, em.fmul(self.n, r)?)?;
        Ok(Welford { n, mean, m2: em.fadd(em.fadd(self.m2, o.m2)?, cross)? })
    }

    fn from_slice(v: &[FloatValue<'c>]) -> Welford<'c> {
        Welford { n: v[0], mean: v[1], m2: v[2] }
    }
}

/// Merges every thread's statistics across the block (`scratch`: 3 x 32 f32); every thread
/// gets the row's.
fn block_welford<'c>(em: &mut Em<'c>, w: Welford<'c>, scratch: PointerValue<'c>, threads: i64) -> R<Welford<'c>> {
    let merge = |em: &Em<'c>, a: &[FloatValue<'c>], b: &[FloatValue<'c>]| {
        let m = Welford::from_slice(a).merge(em, Welford::from_slice(b))?;
        Ok(vec![m.n, m.mean, m.m2])
    };
    let r = block_merge(em, vec![w.n, w.mean, w.m2], &[0.0; 3], scratch, threads, merge)?;
    Ok(Welford::from_slice(&r))
}

/// A row of a reduction: `len` elements from `base` at stride `stride`.
struct Rows {
    count: usize,
    len: usize,
    inner: usize,
}

impl Rows {
    /// Row `r`'s first element and the stride between its elements.
    fn base<'c>(&self, em: &Em<'c>, r: Ix<'c>) -> R<Ix<'c>> {
        if self.inner == 1 {
            return em.mulk(r, self.len as i64);
        }
        let o = em.divk(r, self.inner as i64)?;
        let i = em.remk(r, self.inner as i64)?;
        em.add(em.mulk(o, (self.len * self.inner) as i64)?, i)
    }
}

/// Loops `j` over the row with the block's threads; `f(j, element index)`.
fn row_loop<'c>(
    em: &mut Em<'c>,
    rows: &Rows,
    base: Ix<'c>,
    threads: i64,
    mut f: impl FnMut(&mut Em<'c>, Ix<'c>, Ix<'c>) -> R<()>,
) -> R<()> {
    let tid = em.sreg("tid.x")?;
    let (end, step) = (em.ix(rows.len as i64), em.ix(threads));
    let inner = rows.inner as i64;
    em.for_range(tid, end, step, |em, j| {
        let idx = em.add(base, em.mulk(j, inner)?)?;
        f(em, j, idx)
    })
}

pub fn lower(cx: &mut Cx, node: &Node) -> R<()> {
    let x = input(node, 0)?;
    let xt = cx.ty(x)?;
    let y = output(node, 0)?;
    let yt = cx.ty(y)?;
    let r = xt.dims.len();
    if let Op::CumSum { exclusive, reverse } = node.op {
        return cumsum(cx, node, &xt, exclusive, reverse);
    }
    if !super::is_f32_compute(xt.dtype) {
        return unsupported(format!("{} on {}", node.op.kind_name(), xt.dtype));
    }
    let ax = |a: i64| norm_axis(a, r).map_err(|e| CodegenError::Unsupported(e.to_string()));
    match &node.op {
        Op::LayerNormalization { axis, epsilon } | Op::RMSNormalization { axis, epsilon } => {
            let a = ax(*axis)?;
            let len: usize = xt.dims[a..].iter().product();
            let rows = Rows { count: xt.numel() / len.max(1), len, inner: 1 };
            let layer = matches!(node.op, Op::LayerNormalization { .. });
            norm(cx, node, &xt, &yt, rows, layer, *epsilon as f64, Affine::Broadcast)
        }
        Op::Softmax { axis, legacy } | Op::LogSoftmax { axis, legacy } => {
            let a = ax(*axis)?;
            let (len, inner) = if *legacy { (xt.dims[a..].iter().product(), 1) } else { (xt.dims[a], xt.dims[a + 1..].iter().product()) };
            let rows = Rows { count: xt.numel() / len.max(1) / inner.max(1) * inner, len, inner };
            softmax(cx, node, &xt, &yt, rows, matches!(node.op, Op::LogSoftmax { .. }))
        }
        Op::Reduce { kind, keepdims: _, noop_with_empty_axes } => {
            let axes = match node.inputs.get(1).copied().flatten() {
                None => vec![],
                Some(v) => match cx.konst(v) {
                    Some(t) => t.to_i64(),
                    None => return unsupported("Reduce with run-time axes"),
                },
            };
            let mut axes: Vec<usize> = axes.iter().map(|&a| ax(a)).collect::<R<_>>()?;
            if axes.is_empty() {
                if *noop_with_empty_axes {
                    return super::movement::lower_copy(cx, node);
                }
                axes = (0..r).collect();
            }
            axes.sort_unstable();
            axes.dedup();
            reduce(cx, node, &xt, &yt, &axes, *kind)
        }
        Op::InstanceNormalization { epsilon } | Op::GroupNormalization { epsilon, .. } => {
            if r < 2 {
                return unsupported(format!("{} on rank {r}", node.op.kind_name()));
            }
            let (c, inner) = (xt.dims[1], xt.dims[2..].iter().product::<usize>());
            let groups = match node.op {
                Op::GroupNormalization { num_groups, .. } => num_groups.max(1) as usize,
                _ => c,
            };
            if c % groups != 0 {
                return unsupported(format!("{c} channels in {groups} groups"));
            }
            let per_param = match node.inputs.get(1).copied().flatten().map(|s| cx.ty(s)).transpose()? {
                Some(st) if st.numel() == groups && groups != c => c / groups,
                _ => 1,
            };
            let len = c / groups * inner;
            let rows = Rows { count: xt.numel() / len.max(1), len, inner: 1 };
            norm(cx, node, &xt, &yt, rows, true, *epsilon as f64, Affine::Channel { channels: c, inner, per: per_param })
        }
        Op::ArgMax { axis, select_last_index, .. } | Op::ArgMin { axis, select_last_index, .. } => {
            let a = ax(*axis)?;
            arg(cx, node, &xt, a, matches!(node.op, Op::ArgMax { .. }), *select_last_index)
        }
        Op::TopK { axis, largest, .. } => {
            let a = ax(*axis)?;
            topk(cx, node, &xt, a, *largest)
        }
        Op::Hardmax { axis, legacy } => {
            let a = ax(*axis)?;
            let (len, inner) = if *legacy { (xt.dims[a..].iter().product(), 1) } else { (xt.dims[a], xt.dims[a + 1..].iter().product()) };
            hardmax(cx, node, &xt, &yt, Rows { count: xt.numel() / len.max(1), len, inner })
        }
        other => unsupported(format!("{} in the reduction family", other.kind_name())),
    }
}

/// ArgMax/ArgMin along axis `a`: one thread per output scans the axis; the first extreme wins
/// (the last with `select_last_index`); comparisons are IEEE, so NaN never wins.
fn arg(cx: &mut Cx, node: &Node, xt: &Ty, a: usize, max: bool, last: bool) -> R<()> {
    let (outer, len, inner) = super::split_axis(&xt.dims, a);
    if len == 0 {
        return unsupported("ArgMax/ArgMin over an empty axis");
    }
    let p = cx.begin("", &[Param::Value(output(node, 0)?), Param::Value(input(node, 0)?)])?;
    super::per_element(cx, outer * inner, |em, t| {
        let (o, i) = (em.divk(t, inner as i64)?, em.remk(t, inner as i64)?);
        let base = em.add(em.mulk(o, (len * inner) as i64)?, i)?;
        let best = em.var(em.ix(0).into())?;
        let bv = em.var(em.load(xt.dtype, p[1], base)?)?;
        em.for_range(em.ix(1), em.ix(len as i64), em.ix(1), |em, l| {
            let v = em.load(xt.dtype, p[1], em.add(base, em.mulk(l, inner as i64)?)?)?.into_float_value();
            let b = em.get(bv)?.into_float_value();
            let pred = match (max, last) {
                (true, false) => inkwell::FloatPredicate::OGT,
                (true, true) => inkwell::FloatPredicate::OGE,
                (false, false) => inkwell::FloatPredicate::OLT,
                (false, true) => inkwell::FloatPredicate::OLE,
            };
            let better = em.fcmp(pred, v, b)?;
            em.set(bv, em.select(better, v, b)?)?;
            em.set(best, em.select(better, l, em.get(best)?.into_int_value())?)
        })?;
        em.store(kiln_ir::DType::I64, p[0], t, em.get(best)?)
    })
}

/// Hardmax: 1 at the first maximum of each row (NaN ignored, as `max` ignores it), 0 elsewhere;
/// one thread per row.
fn hardmax<'c>(cx: &mut Cx<'c, '_>, node: &Node, xt: &Ty, yt: &Ty, rows: Rows) -> R<()> {
    let p = cx.begin("", &[Param::Value(output(node, 0)?), Param::Value(input(node, 0)?)])?;
    super::per_element(cx, rows.count, |em, t| {
        let base = rows.base(em, t)?;
        let at = |em: &Em<'c>, l: Ix<'c>| em.add(base, em.mulk(l, rows.inner as i64)?);
        let m = em.var(em.f32c(f64::NEG_INFINITY).into())?;
        em.for_n(rows.len as i64, |em, l| {
            let v = em.load(xt.dtype, p[1], at(em, l)?)?.into_float_value();
            em.set(m, em.fmax(em.get(m)?.into_float_value(), v)?.into())
        })?;
        let mv = em.get(m)?.into_float_value();
        let found = em.var(em.i1().const_zero().into())?;
        em.for_n(rows.len as i64, |em, l| {
            let v = em.load(xt.dtype, p[1], at(em, l)?)?.into_float_value();
            let seen = em.get(found)?.into_int_value();
            let hit = em.and(em.fcmp(inkwell::FloatPredicate::OEQ, v, mv)?, em.b.build_not(seen, "")?)?;
            em.set(found, em.b.build_or(seen, hit, "")?.into())?;
            let one = em.select(hit, em.f32c(1.0), em.f32c(0.0))?;
            em.store(yt.dtype, p[0], at(em, l)?, one)
        })
    })
}

/// How a normalization's scale and bias index the input.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Affine {
    /// Broadcast to the input's dims (LayerNorm, RMSNorm).
    Broadcast,
    /// One value per channel (axis 1, `inner` elements per channel plane), or per group of
    /// `per` channels (GroupNormalization's opset-18 form).
    Channel { channels: usize, inner: usize, per: usize },
}

#[allow(clippy::too_many_arguments)]
fn norm<'c>(cx: &mut Cx<'c, '_>, node: &Node, xt: &Ty, yt: &Ty, rows: Rows, layer: bool, eps: f64, affine: Affine) -> R<()> {
    let x = input(node, 0)?;
    let scale = node.inputs.get(1).copied().flatten();
    let bias = if layer { node.inputs.get(2).copied().flatten() } else { None };
    let st = scale.map(|s| cx.ty(s)).transpose()?;
    let bt = bias.map(|b| cx.ty(b)).transpose()?;
    // LayerNormalization's optional Mean and InvStdDev outputs: one value per row.
    let stats: Vec<(usize, ValueId, Ty)> = node
        .outputs
        .iter()
        .enumerate()
        .skip(1)
        .filter_map(|(k, o)| o.map(|o| (k, o)))
        .map(|(k, o)| Ok((k, o, cx.ty(o)?)))
        .collect::<R<_>>()?;
    let mut params = vec![Param::Value(output(node, 0)?), Param::Value(x)];
    params.extend(scale.map(Param::Value));
    params.extend(bias.map(Param::Value));
    let first_stat = params.len();
    params.extend(stats.iter().map(|s| Param::Value(s.1)));
    let threads = threads_for(rows.len);
    let p = cx.begin("", &params)?;
    let scratch = cx.em.shared_array("scratch", cx.em.f32t().into(), 3 * 32);
    let em = &mut cx.em;
    let row = em.sreg("ctaid.x")?;
    let base = rows.base(em, row)?;
    let len = rows.len as f64;
    let dims = xt.dims.clone();
    // One pass for the statistics: Welford's running mean and sum of squared deviations
    // (LayerNorm), or the mean of squares (RMSNorm).
    let (mean, var) = if layer {
        let zero = em.f32c(0.0);
        let (n, mean, m2) = (em.var(zero.into())?, em.var(zero.into())?, em.var(zero.into())?);
        row_loop(em, &rows, base, threads, |em, _, idx| {
            let v = em.load(xt.dtype, p[1], idx)?.into_float_value();
            let k = em.fadd(em.get(n)?.into_float_value(), em.f32c(1.0))?;
            let mu = em.get(mean)?.into_float_value();
            let d = em.fsub(v, mu)?;
            let mu = em.fadd(mu, em.fdiv(d, k)?)?;
            let m2v = em.fintr("fma", &[d, em.fsub(v, mu)?, em.get(m2)?.into_float_value()])?;
            em.set(n, k.into())?;
            em.set(mean, mu.into())?;
            em.set(m2, m2v.into())
        })?;
        let part = Welford { n: em.get(n)?.into_float_value(), mean: em.get(mean)?.into_float_value(), m2: em.get(m2)?.into_float_value() };
        let w = block_welford(em, part, scratch, threads)?;
        (w.mean, em.fdiv(w.m2, em.f32c(len))?)
    } else {
        let acc = em.var(em.f32c(0.0).into())?;
        row_loop(em, &rows, base, threads, |em, _, idx| {
            let v = em.load(xt.dtype, p[1], idx)?.into_float_value();
            let a = em.get(acc)?.into_float_value();
            em.set(acc, em.fintr("fma", &[v, v, a])?.into())
        })?;
        let s = block_reduce(em, em.get(acc)?.into_float_value(), Combine::Sum, scratch, threads)?;
        (em.f32c(0.0), em.fdiv(s, em.f32c(len))?)
    };
    let inv = em.fdiv(em.f32c(1.0), em.fintr("sqrt", &[em.fadd(var, em.f32c(eps))?])?)?;
    if !stats.is_empty() {
        let first = em.icmp(IntPredicate::EQ, em.sreg("tid.x")?, em.ix(0))?;
        em.if_(first, |em| {
            for (i, (k, _, t)) in stats.iter().enumerate() {
                let v = if *k == 1 { mean } else { inv };
                em.store(t.dtype, p[first_stat + i], row, v.into())?;
            }
            Ok(())
        })?;
    }
    let ns = 2;
    let nb = 2 + scale.is_some() as usize;
    row_loop(em, &rows, base, threads, |em, _, idx| {
        let v = em.load(xt.dtype, p[1], idx)?.into_float_value();
        let mut o = em.fmul(em.fsub(v, mean)?, inv)?;
        let param_index = |em: &Em<'c>, pdims: &[usize]| -> R<Ix<'c>> {
            match affine {
                Affine::Broadcast => bcast_index(em, idx, &dims, pdims),
                Affine::Channel { channels, inner, per } => em.divk(em.remk(em.divk(idx, inner as i64)?, channels as i64)?, per as i64),
            }
        };
        if let Some(st) = &st {
            let si = param_index(em, &st.dims)?;
            o = em.fmul(o, em.load(st.dtype, p[ns], si)?.into_float_value())?;
        }
        if let Some(bt) = &bt {
            let bi = param_index(em, &bt.dims)?;
            o = em.fadd(o, em.load(bt.dtype, p[nb], bi)?.into_float_value())?;
        }
        em.store(yt.dtype, p[0], idx, o.into())
    })?;
    cx.launch([blocks(rows.count, 1)?, 1, 1], [threads as u32, 1, 1], 0)
}

fn softmax(cx: &mut Cx, node: &Node, xt: &Ty, yt: &Ty, rows: Rows, log: bool) -> R<()> {
    let params = [Param::Value(output(node, 0)?), Param::Value(input(node, 0)?)];
    let threads = threads_for(rows.len);
    let p = cx.begin("", &params)?;
    let scratch = cx.em.shared_array("scratch", cx.em.f32t().into(), 32);
    let em = &mut cx.em;
    let row = em.sreg("ctaid.x")?;
    let base = rows.base(em, row)?;
    let mx = em.var(em.f32c(f64::NEG_INFINITY).into())?;
    row_loop(em, &rows, base, threads, |em, _, idx| {
        let v = em.load(xt.dtype, p[1], idx)?.into_float_value();
        let m = em.get(mx)?.into_float_value();
        em.set(mx, em.fmax(m, v)?.into())
    })?;
    let m = block_reduce(em, em.get(mx)?.into_float_value(), Combine::Max, scratch, threads)?;
    let sum = em.var(em.f32c(0.0).into())?;
    row_loop(em, &rows, base, threads, |em, _, idx| {
        let v = em.load(xt.dtype, p[1], idx)?.into_float_value();
        let e = em.exp(em.fsub(v, m)?)?;
        let s = em.get(sum)?.into_float_value();
        em.set(sum, em.fadd(s, e)?.into())
    })?;
    let s = block_reduce(em, em.get(sum)?.into_float_value(), Combine::Sum, scratch, threads)?;
    let (inv, logs) = (em.fdiv(em.f32c(1.0), s)?, em.log(s)?);
    row_loop(em, &rows, base, threads, |em, _, idx| {
        let v = em.load(xt.dtype, p[1], idx)?.into_float_value();
        let d = em.fsub(v, m)?;
        let o = if log { em.fsub(d, logs)? } else { em.fmul(em.exp(d)?, inv)? };
        em.store(yt.dtype, p[0], idx, o.into())
    })?;
    cx.launch([blocks(rows.count, 1)?, 1, 1], [threads as u32, 1, 1], 0)
}

fn reduce(cx: &mut Cx, node: &Node, xt: &Ty, yt: &Ty, axes: &[usize], kind: ReduceKind) -> R<()> {
    let xs = super::strides(&xt.dims);
    let kept: Vec<usize> = (0..xt.dims.len()).filter(|d| !axes.contains(d)).collect();
    let kept_dims: Vec<usize> = kept.iter().map(|&d| xt.dims[d]).collect();
    let red_dims: Vec<usize> = axes.iter().map(|&d| xt.dims[d]).collect();
    let count: usize = kept_dims.iter().product();
    let len: usize = red_dims.iter().product();
    let threads = threads_for(len);
    let p = cx.begin("", &[Param::Value(output(node, 0)?), Param::Value(input(node, 0)?)])?;
    let scratch = cx.em.shared_array("scratch", cx.em.f32t().into(), 32);
    let em = &mut cx.em;
    let o = em.sreg("ctaid.x")?;
    let kc = super::coords(em, o, &kept_dims)?;
    let mut base = em.ix(0);
    for (k, &d) in kept.iter().enumerate() {
        base = em.add(base, em.mulk(kc[k], xs[d])?)?;
    }
    use ReduceKind::*;
    let combine = match kind {
        Max => Combine::Max,
        Min => Combine::Min,
        Prod => Combine::Prod,
        _ => Combine::Sum,
    };
    // LogSumExp needs the maximum first.
    let shift = if kind == LogSumExp {
        let mx = em.var(em.f32c(f64::NEG_INFINITY).into())?;
        red_loop(em, &red_dims, axes, &xs, base, threads, |em, idx| {
            let v = em.load(xt.dtype, p[1], idx)?.into_float_value();
            let m = em.get(mx)?.into_float_value();
            em.set(mx, em.fmax(m, v)?.into())
        })?;
        Some(block_reduce(em, em.get(mx)?.into_float_value(), Combine::Max, scratch, threads)?)
    } else {
        None
    };
    let acc = em.var(em.f32c(combine.identity()).into())?;
    red_loop(em, &red_dims, axes, &xs, base, threads, |em, idx| {
        let v = em.load(xt.dtype, p[1], idx)?.into_float_value();
        let t = match kind {
            L1 => em.fintr("fabs", &[v])?,
            L2 | SumSquare => em.fmul(v, v)?,
            LogSumExp => em.exp(em.fsub(v, shift.unwrap_or(v))?)?,
            _ => v,
        };
        let a = em.get(acc)?.into_float_value();
        em.set(acc, combine.apply(em, a, t)?.into())
    })?;
    let r = block_reduce(em, em.get(acc)?.into_float_value(), combine, scratch, threads)?;
    let out = match kind {
        Mean => em.fdiv(r, em.f32c(len as f64))?,
        L2 => em.fintr("sqrt", &[r])?,
        LogSum => em.log(r)?,
        LogSumExp => em.fadd(em.log(r)?, shift.unwrap_or(r))?,
        _ => r,
    };
    let tid = em.sreg("tid.x")?;
    let first = em.icmp(IntPredicate::EQ, tid, em.ix(0))?;
    em.if_(first, |em| em.store(yt.dtype, p[0], o, out.into()))?;
    cx.launch([blocks(count, 1)?, 1, 1], [threads as u32, 1, 1], 0)
}

/// Loops over the reduced coordinates with the block's threads; `f(source index)`.
fn red_loop<'c>(
    em: &mut Em<'c>,
    red_dims: &[usize],
    axes: &[usize],
    xs: &[i64],
    base: Ix<'c>,
    threads: i64,
    mut f: impl FnMut(&mut Em<'c>, Ix<'c>) -> R<()>,
) -> R<()> {
    let tid = em.sreg("tid.x")?;
    let len: usize = red_dims.iter().product();
    if len == 0 {
        // An empty reduction: every output is the combination's identity, transformed.
        return Ok(());
    }
    let (end, step) = (em.ix(len as i64), em.ix(threads));
    em.for_range(tid, end, step, |em, j| {
        let rc = super::coords(em, j, red_dims)?;
        let mut idx = base;
        for (k, &d) in axes.iter().enumerate() {
            idx = em.add(idx, em.mulk(rc[k], xs[d])?)?;
        }
        f(em, idx)
    })
}

/// CumSum along a constant axis: one thread per line, f32 sums for 16/32-bit floats, f64 for
/// f64, wrapping i64 sums for integers.
fn cumsum(cx: &mut Cx, node: &Node, xt: &Ty, exclusive: bool, reverse: bool) -> R<()> {
    let Some(axis) = cx.konst(input(node, 1)?).and_then(|t| t.to_i64().first().copied()) else {
        return unsupported("CumSum with a run-time axis");
    };
    let a = norm_axis(axis, xt.dims.len()).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
    let int = xt.dtype.is_int();
    if !int && !super::is_f32_compute(xt.dtype) && xt.dtype != kiln_ir::DType::F64 {
        return unsupported(format!("CumSum on {}", xt.dtype));
    }
    let (outer, len, inner) = super::split_axis(&xt.dims, a);
    let p = cx.begin("", &[Param::Value(output(node, 0)?), Param::Value(input(node, 0)?)])?;
    let acc_dt = match xt.dtype {
        d if d.is_int() => kiln_ir::DType::I64,
        kiln_ir::DType::F64 => kiln_ir::DType::F64,
        _ => kiln_ir::DType::F32,
    };
    super::per_element(cx, outer * inner, |em, t| {
        let (o, i) = (em.divk(t, inner as i64)?, em.remk(t, inner as i64)?);
        let base = em.add(em.mulk(o, (len * inner) as i64)?, i)?;
        let zero = em.compute_type(acc_dt)?.const_zero();
        let acc = em.var(zero)?;
        em.for_n(len as i64, |em, step| {
            let l = if reverse { em.sub(em.ix(len as i64 - 1), step)? } else { step };
            let idx = em.add(base, em.mulk(l, inner as i64)?)?;
            let v = em.convert(em.load(xt.dtype, p[1], idx)?, xt.dtype, acc_dt)?;
            let before = em.get(acc)?;
            let after = if int {
                em.b.build_int_add(before.into_int_value(), v.into_int_value(), "")?.into()
            } else {
                em.fadd(before.into_float_value(), v.into_float_value())?.into()
            };
            em.set(acc, after)?;
            let out = if exclusive { before } else { after };
            em.store(xt.dtype, p[0], idx, em.convert(out, acc_dt, xt.dtype)?)
        })
    })
}

/// TopK along axis `a` with a constant k: one thread per line picks the k best in order (value
/// first, then the lower index), each pick the best of the elements ranked after the previous
/// one: O(k·len) comparisons and no scratch memory. Always sorted, as the interpreter is.
fn topk<'c>(cx: &mut Cx<'c, '_>, node: &Node, xt: &Ty, a: usize, largest: bool) -> R<()> {
    let Some(k) = cx.konst(input(node, 1)?).and_then(|t| t.to_i64().first().copied()) else {
        return unsupported("TopK with a run-time k");
    };
    let (outer, len, inner) = super::split_axis(&xt.dims, a);
    if k < 0 || k as usize > len {
        return unsupported(format!("TopK with k = {k} on an axis of {len}"));
    }
    let k = k as usize;
    let values = output(node, 0)?;
    let indices = node.outputs.get(1).copied().flatten();
    let mut params = vec![Param::Value(input(node, 0)?), Param::Value(values)];
    params.extend(indices.map(Param::Value));
    let p = cx.begin("", &params)?;
    let (better, worse) = if largest {
        (inkwell::FloatPredicate::OGT, inkwell::FloatPredicate::OLT)
    } else {
        (inkwell::FloatPredicate::OLT, inkwell::FloatPredicate::OGT)
    };
    super::per_element(cx, outer * inner, |em, t| {
        let (o, i) = (em.divk(t, inner as i64)?, em.remk(t, inner as i64)?);
        let at = |em: &Em<'c>, l: Ix<'c>| em.add(em.mulk(em.add(em.mulk(o, len as i64)?, l)?, inner as i64)?, i);
        let out_at = |em: &Em<'c>, j: Ix<'c>| em.add(em.mulk(em.add(em.mulk(o, k as i64)?, j)?, inner as i64)?, i);
        // The previous pick: (value, index); nothing ranks before the first.
        let (pv, pi) = (em.var(em.f32c(0.0).into())?, em.var(em.ix(-1).into())?);
        em.for_n(k as i64, |em, j| {
            let (bv, bi) = (em.var(em.f32c(0.0).into())?, em.var(em.ix(-1).into())?);
            em.for_n(len as i64, |em, l| {
                let v = em.load(xt.dtype, p[0], at(em, l)?)?.into_float_value();
                let (prev_v, prev_i) = (em.get(pv)?.into_float_value(), em.get(pi)?.into_int_value());
                // Ranked after the previous pick: worse, or equal with a higher index.
                let after_prev = em.b.build_or(
                    em.fcmp(worse, v, prev_v)?,
                    em.and(em.fcmp(inkwell::FloatPredicate::OEQ, v, prev_v)?, em.icmp(IntPredicate::SGT, l, prev_i)?)?,
                    "",
                )?;
                let first_pick = em.icmp(IntPredicate::SLT, prev_i, em.ix(0))?;
                let eligible = em.b.build_or(first_pick, after_prev, "")?;
                let (cur_v, cur_i) = (em.get(bv)?.into_float_value(), em.get(bi)?.into_int_value());
                let none_yet = em.icmp(IntPredicate::SLT, cur_i, em.ix(0))?;
                let beats = em.b.build_or(none_yet, em.fcmp(better, v, cur_v)?, "")?;
                let take = em.and(eligible, beats)?;
                em.set(bv, em.select(take, v, cur_v)?)?;
                em.set(bi, em.select(take, l, cur_i)?)
            })?;
            let (v, l) = (em.get(bv)?, em.get(bi)?);
            em.set(pv, v)?;
            em.set(pi, l)?;
            em.store(xt.dtype, p[1], out_at(em, j)?, v)?;
            if indices.is_some() {
                em.store(kiln_ir::DType::I64, p[2], out_at(em, j)?, l)?;
            }
            Ok(())
        })
    })
}
