//! NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: one block of threads, each taking
//! (sample, position) pairs in turn. A pair's loss is `-logp[target] · weight[target]` (0 for
//! `ignore_index`); SoftmaxCrossEntropy computes the pair's log-softmax over the classes in
//! place (and writes it when its `log_prob` output is asked for). `none` stores each loss;
//! `sum` and `mean` (divided by the summed weights) reduce across the block. f32 arithmetic.
//! Losses are a training-time tail: one block is plenty.

use super::reduce::{block_reduce, Combine};
use super::{input, output};
use crate::codegen::llvm::{Em, Ix, R};
use crate::codegen::{unsupported, Cx, Param, Ty};
use inkwell::values::FloatValue;
use inkwell::IntPredicate;
use kiln_ir::ops::LossReduction;
use kiln_ir::{Node, Op};

const THREADS: i64 = 256;

pub fn lower<'c>(cx: &mut Cx<'c, '_>, node: &Node) -> R<()> {
    let (reduction, ignore, softmax) = match &node.op {
        Op::NegativeLogLikelihoodLoss { reduction, ignore_index } => (*reduction, *ignore_index, false),
        Op::SoftmaxCrossEntropyLoss { reduction, ignore_index } => (*reduction, *ignore_index, true),
        other => return unsupported(format!("{} in the loss family", other.kind_name())),
    };
    let (x, target) = (input(node, 0)?, input(node, 1)?);
    let weight = node.inputs.get(2).copied().flatten();
    let (xt, tt) = (cx.ty(x)?, cx.ty(target)?);
    if !super::is_f32_compute(xt.dtype) || xt.dims.len() < 2 || tt.dims.len() + 1 != xt.dims.len() {
        return unsupported(format!("{} on {} {:?}", node.op.kind_name(), xt.dtype, xt.dims));
    }
    let wt: Option<Ty> = weight.map(|w| cx.ty(w)).transpose()?;
    let (n, c) = (xt.dims[0] as i64, xt.dims[1] as i64);
    let inner: i64 = xt.dims[2..].iter().product::<usize>() as i64;
    let y = output(node, 0)?;
    let yt = cx.ty(y)?;
    let log_prob = node.outputs.get(1).copied().flatten().filter(|_| softmax);
    let mut params = vec![Param::Value(y), Param::Value(x), Param::Value(target)];
    params.extend(weight.map(Param::Value));
    let lp_at = params.len();
    params.extend(log_prob.map(Param::Value));
    let p = cx.begin("", &params)?;
    let scratch = cx.em.shared_array("scratch", cx.em.f32t().into(), 32);
    let em = &mut cx.em;
    let tid = em.sreg("tid.x")?;
    let (loss_sum, weight_sum) = (em.var(em.f32c(0.0).into())?, em.var(em.f32c(0.0).into())?);
    em.for_range(tid, em.ix(n * inner), em.ix(THREADS), |em, e| {
        let (i, k) = (em.divk(e, inner)?, em.remk(e, inner)?);
        // Element (i, class, k) of x.
        let at = |em: &Em<'c>, class: Ix<'c>| em.add(em.mulk(em.add(em.mulk(i, c)?, class)?, inner)?, k);
        let t = em.load(tt.dtype, p[2], e)?.into_int_value();
        let t = em.b.build_int_s_extend_or_bit_cast(t, em.i64t(), "")?;
        // Log-softmax over the classes of this pair: max, then log of the sum of exponentials.
        let (m, lse) = if softmax {
            let m = em.var(em.f32c(f64::NEG_INFINITY).into())?;
            em.for_n(c, |em, cl| {
                let v = em.load(xt.dtype, p[1], at(em, cl)?)?.into_float_value();
                em.set(m, em.fmax(em.get(m)?.into_float_value(), v)?.into())
            })?;
            let m = em.get(m)?.into_float_value();
            let s = em.var(em.f32c(0.0).into())?;
            em.for_n(c, |em, cl| {
                let v = em.load(xt.dtype, p[1], at(em, cl)?)?.into_float_value();
                em.set(s, em.fadd(em.get(s)?.into_float_value(), em.exp(em.fsub(v, m)?)?)?.into())
            })?;
            let lse = em.log(em.get(s)?.into_float_value())?;
            if log_prob.is_some() {
                em.for_n(c, |em, cl| {
                    let v = em.load(xt.dtype, p[1], at(em, cl)?)?.into_float_value();
                    em.store(xt.dtype, p[lp_at], at(em, cl)?, em.fsub(em.fsub(v, m)?, lse)?.into())
                })?;
            }
            (m, lse)
        } else {
            (em.f32c(0.0), em.f32c(0.0))
        };
        let ignored = match ignore {
            Some(ix) => em.icmp(IntPredicate::EQ, t, em.ix(ix))?,
            None => em.i1().const_zero(),
        };
        // Out-of-range targets (an error in the interpreter) read class 0, never outside x.
        let inside = em.and(em.icmp(IntPredicate::SGE, t, em.ix(0))?, em.icmp(IntPredicate::SLT, t, em.ix(c))?)?;
        let tc = em.select(inside, t, em.ix(0))?.into_int_value();
        let xv = em.load(xt.dtype, p[1], at(em, tc)?)?.into_float_value();
        let logp = if softmax { em.fsub(em.fsub(xv, m)?, lse)? } else { xv };
        let w: FloatValue = match &wt {
            Some(wt) => em.load(wt.dtype, p[3], tc)?.into_float_value(),
            None => em.f32c(1.0),
        };
        let w = em.select(ignored, em.f32c(0.0), w)?.into_float_value();
        let loss = em.fmul(em.fsub(em.f32c(0.0), logp)?, w)?;
        if reduction == LossReduction::None {
            em.store(yt.dtype, p[0], e, loss.into())?;
        }
        em.set(loss_sum, em.fadd(em.get(loss_sum)?.into_float_value(), loss)?.into())?;
        em.set(weight_sum, em.fadd(em.get(weight_sum)?.into_float_value(), w)?.into())
    })?;
    if reduction != LossReduction::None {
        let total = block_reduce(em, em.get(loss_sum)?.into_float_value(), Combine::Sum, scratch, THREADS)?;
        let wsum = block_reduce(em, em.get(weight_sum)?.into_float_value(), Combine::Sum, scratch, THREADS)?;
        let out = if reduction == LossReduction::Mean { em.fdiv(total, wsum)? } else { total };
        let first = em.icmp(IntPredicate::EQ, tid, em.ix(0))?;
        em.if_(first, |em| em.store(yt.dtype, p[0], em.ix(0), out.into()))?;
    }
    cx.launch([1, 1, 1], [THREADS as u32, 1, 1], 0)
}
