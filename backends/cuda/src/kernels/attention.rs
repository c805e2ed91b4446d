//! Attention (ONNX opset 23: 3-D with head counts or 4-D, GQA, causal, additive or boolean
//! masks, softcap) and RotaryEmbedding.
//!
//! f16/bf16 attention with a head dim that is a multiple of 16 (up to 128) runs the flash-style
//! tensor-core kernel of `attention_tc`. Otherwise (f32, other head dims) one block per (query
//! row, head, batch): scores for every key into shared memory, a block-wide max and sum, then
//! the weighted sum of V. Scores and softmax stay in f32. The key length is bounded by shared
//! memory there (at most 8192 keys).

use super::attention_tc;
use super::reduce::{block_reduce, Combine};
use super::{bcast_index, input, output};
use crate::codegen::llvm::{Em, Ix, R};
use crate::codegen::{blocks, unsupported, Cx, Param, Ty};
use inkwell::values::{FloatValue, PointerValue};
use inkwell::{FloatPredicate, IntPredicate};
use kiln_ir::{DType, Node, Op};

const THREADS: i64 = 128;
const MAX_KEYS: usize = 8192;

/// Index of (b, h, s, d) in a 3-D [B, S, H*D] or 4-D [B, H, S, D] tensor.
fn at<'c>(em: &Em<'c>, four_d: bool, dims: (usize, usize, usize), b: Ix<'c>, h: Ix<'c>, s: Ix<'c>, d: Ix<'c>) -> R<Ix<'c>> {
    let (heads, seq, hd) = (dims.0 as i64, dims.1 as i64, dims.2 as i64);
    if four_d {
        em.add(em.mulk(em.add(em.mulk(em.add(em.mulk(b, heads)?, h)?, seq)?, s)?, hd)?, d)
    } else {
        em.add(em.add(em.mulk(em.add(em.mulk(b, seq)?, s)?, heads * hd)?, em.mulk(h, hd)?)?, d)
    }
}

pub fn lower<'c>(cx: &mut Cx<'c, '_>, node: &Node) -> R<()> {
    let Op::Attention {
        is_causal,
        kv_num_heads,
        q_num_heads,
        qk_matmul_output_mode,
        scale,
        softcap,
        softmax_precision: _,
        zero_undefined_rows,
    } = node.op.clone()
    else {
        return unsupported(format!("{} in the attention family", node.op.kind_name()));
    };
    if node.inputs.get(6).copied().flatten().is_some() {
        return unsupported("Attention with padding lengths (nonpad_kv_seqlen)");
    }
    let (past_k, past_v) = (node.inputs.get(4).copied().flatten(), node.inputs.get(5).copied().flatten());
    if past_k.is_some() != past_v.is_some() {
        return unsupported("Attention with only one of past_key and past_value");
    }
    let out_at = |i: usize| node.outputs.get(i).copied().flatten();
    let (present_k, present_v, qk_out) = (out_at(1), out_at(2), out_at(3));
    let (q, k, v) = (input(node, 0)?, input(node, 1)?, input(node, 2)?);
    let (qt, kt, vt) = (cx.ty(q)?, cx.ty(k)?, cx.ty(v)?);
    if !super::is_f32_compute(qt.dtype) {
        return unsupported(format!("Attention on {}", qt.dtype));
    }
    let four_d = qt.dims.len() == 4;
    let (b, hq, sq, d, hk, sk, dv) = if four_d {
        (qt.dims[0], qt.dims[1], qt.dims[2], qt.dims[3], kt.dims[1], kt.dims[2], vt.dims[3])
    } else {
        let (hq, hk) = (q_num_heads.max(1) as usize, kv_num_heads.max(1) as usize);
        (qt.dims[0], hq, qt.dims[1], qt.dims[2] / hq, hk, kt.dims[1], vt.dims[2] / hk)
    };
    // Keys 0..pl come from the past cache ([b, kv heads, pl, d]), the rest from K.
    let pl = past_k.map(|p| cx.ty(p)).transpose()?.map_or(0, |t| t.dims.get(2).copied().unwrap_or(0));
    let total = pl + sk;
    let mask = node.inputs.get(3).copied().flatten();
    let mt: Option<Ty> = mask.map(|m| cx.ty(m)).transpose()?;
    if mt.as_ref().is_some_and(|m| m.dims.last().copied().unwrap_or(total) != total || m.dims.len() > 4) {
        return unsupported("an attention mask shorter than the key length or of rank above 4");
    }
    let scale = scale.map_or(1.0 / (d as f64).sqrt(), |s| s as f64);
    let y = output(node, 0)?;
    let yt = cx.ty(y)?;
    let plain = pl == 0 && present_k.is_none() && present_v.is_none() && qk_out.is_none();
    if plain && attention_tc::applies(cx, qt.dtype, [&qt, &kt, &vt, &yt], d, dv, [q, k, v, y]) {
        let spec = attention_tc::Spec {
            y,
            q,
            k,
            v,
            mask: mask.zip(mt),
            dtype: qt.dtype,
            four_d,
            b,
            hq,
            sq,
            hk,
            sk,
            d,
            scale,
            softcap,
            is_causal,
            zero_undefined_rows,
        };
        return attention_tc::lower(cx, &spec);
    }
    if total > MAX_KEYS {
        return unsupported(format!("Attention over {total} keys (this kernel holds at most {MAX_KEYS} scores)"));
    }
    // present_key / present_value: the past cache followed by this step's K / V.
    for (present, past, cur, ct, width) in [(present_k, past_k, k, &kt, d), (present_v, past_v, v, &vt, dv)] {
        if let Some(pr) = present {
            write_present(cx, pr, past, cur, ct, four_d, (b, hk, pl, sk, width))?;
        }
    }
    let group = (hq / hk.max(1)).max(1) as i64;
    let mut params = vec![Param::Value(y), Param::Value(q), Param::Value(k), Param::Value(v)];
    let mask_at = params.len();
    params.extend(mask.map(Param::Value));
    let past_at = params.len();
    params.extend(past_k.map(Param::Value));
    params.extend(past_v.map(Param::Value));
    let qk_at = params.len();
    params.extend(qk_out.map(Param::Value));
    let qkt: Option<Ty> = qk_out.map(|o| cx.ty(o)).transpose()?;
    let p = cx.begin("", &params)?;
    let f32t = cx.em.f32t();
    let qs = cx.em.shared_array("q", f32t.into(), d as u32);
    let sc = cx.em.shared_array("scores", f32t.into(), total.max(1) as u32);
    let scratch = cx.em.shared_array("scratch", f32t.into(), 32);
    let em = &mut cx.em;
    let (i, h, bb) = (em.sreg("ctaid.x")?, em.sreg("ctaid.y")?, em.sreg("ctaid.z")?);
    let kh = em.divk(h, group)?;
    let tid = em.sreg("tid.x")?;
    let step = em.ix(THREADS);
    em.for_range(tid, em.ix(d as i64), step, |em, dd| {
        let x = em.load(qt.dtype, p[1], at(em, four_d, (hq, sq, d), bb, h, i, dd)?)?.into_float_value();
        em.store_shared_f32(qs, dd, em.fmul(x, em.f32c(scale))?)
    })?;
    em.barrier()?;
    let mx = em.var(em.f32c(f64::NEG_INFINITY).into())?;
    em.for_range(tid, em.ix(total as i64), step, |em, j| {
        let dot = em.var(em.f32c(0.0).into())?;
        em.for_n(d as i64, |em, dd| {
            let kv = kv_elem(em, p[2], past_k.map(|_| p[past_at]), kt.dtype, four_d, (bb, hk, pl, sk, d), kh, j, dd)?;
            let qv = em.load_shared_f32(qs, dd)?;
            let cur = em.get(dot)?.into_float_value();
            em.set(dot, em.fintr("fma", &[qv, kv, cur])?.into())
        })?;
        let mut s = em.get(dot)?.into_float_value();
        // The QK output row element of this score, when asked for.
        let qk_idx = em.add(em.mulk(em.add(em.mulk(em.add(em.mulk(bb, hq as i64)?, h)?, sq as i64)?, i)?, total as i64)?, j)?;
        let write_qk = |em: &Em<'c>, mode: i64, v: FloatValue<'c>| -> R<()> {
            match &qkt {
                Some(t) if qk_matmul_output_mode == mode => em.store(t.dtype, p[qk_at], qk_idx, v.into()),
                _ => Ok(()),
            }
        };
        write_qk(em, 0, s)?;
        // As the reference orders it: the mask and causality are added, then the soft cap.
        if let Some(mt) = &mt {
            let mi = bcast_index(em, qk_idx, &[b, hq, sq, total], &mt.dims)?;
            let m = em.load(mt.dtype, p[mask_at], mi)?;
            s = if mt.dtype == DType::Bool {
                em.select(m.into_int_value(), s, em.f32c(f64::NEG_INFINITY))?.into_float_value()
            } else {
                em.fadd(s, em.convert(m, mt.dtype, DType::F32)?.into_float_value())?
            };
        }
        if is_causal {
            // Query i sees the past and this step's keys up to i.
            let future = em.icmp(IntPredicate::SGT, em.addk(j, -(pl as i64))?, i)?;
            s = em.select(future, em.f32c(f64::NEG_INFINITY), s)?.into_float_value();
        }
        write_qk(em, 1, s)?;
        if softcap > 0.0 {
            let c = softcap as f64;
            s = em.fmul(em.tanh(em.fmul(s, em.f32c(1.0 / c))?)?, em.f32c(c))?;
        }
        write_qk(em, 2, s)?;
        em.store_shared_f32(sc, j, s)?;
        let m = em.get(mx)?.into_float_value();
        em.set(mx, em.fmax(m, s)?.into())
    })?;
    let m = block_reduce(em, em.get(mx)?.into_float_value(), Combine::Max, scratch, THREADS)?;
    let sum = em.var(em.f32c(0.0).into())?;
    em.for_range(tid, em.ix(total as i64), step, |em, j| {
        let s = em.load_shared_f32(sc, j)?;
        // exp(-inf - -inf) would be NaN for a fully masked row: those rows give NaN like the
        // reference; a masked key alone gives exactly 0.
        let e = em.exp(em.fsub(s, m)?)?;
        let masked = em.fcmp(FloatPredicate::OEQ, s, em.f32c(f64::NEG_INFINITY))?;
        let finite_m = em.fcmp(FloatPredicate::ONE, m, em.f32c(f64::NEG_INFINITY))?;
        let e = em.select(em.and(masked, finite_m)?, em.f32c(0.0), e)?.into_float_value();
        em.store_shared_f32(sc, j, e)?;
        let c = em.get(sum)?.into_float_value();
        em.set(sum, em.fadd(c, e)?.into())
    })?;
    let denom = block_reduce(em, em.get(sum)?.into_float_value(), Combine::Sum, scratch, THREADS)?;
    let inv = em.fdiv(em.f32c(1.0), denom)?;
    // The row's probabilities are all NaN exactly when their sum is.
    let undefined = em.fcmp(FloatPredicate::UNO, denom, denom)?;
    if let (Some(t), 3) = (&qkt, qk_matmul_output_mode) {
        // The probabilities themselves.
        em.for_range(tid, em.ix(total as i64), step, |em, j| {
            let row = em.add(em.mulk(em.add(em.mulk(em.add(em.mulk(bb, hq as i64)?, h)?, sq as i64)?, i)?, total as i64)?, j)?;
            em.store(t.dtype, p[qk_at], row, em.fmul(em.load_shared_f32(sc, j)?, inv)?.into())
        })?;
    }
    em.for_range(tid, em.ix(dv as i64), step, |em, dd| {
        let o = em.var(em.f32c(0.0).into())?;
        em.for_n(total as i64, |em, j| {
            let pj = em.load_shared_f32(sc, j)?;
            let vv = kv_elem(em, p[3], past_v.map(|_| p[past_at + 1]), vt.dtype, four_d, (bb, hk, pl, sk, dv), kh, j, dd)?;
            let cur = em.get(o)?.into_float_value();
            em.set(o, em.fintr("fma", &[pj, vv, cur])?.into())
        })?;
        let mut r = em.fmul(em.get(o)?.into_float_value(), inv)?;
        if zero_undefined_rows {
            r = em.select(undefined, em.f32c(0.0), r)?.into_float_value();
        }
        em.store(yt.dtype, p[0], at(em, four_d, (hq, sq, dv), bb, h, i, dd)?, r.into())
    })?;
    cx.launch([blocks(sq, 1)?, hq as u32, b as u32], [THREADS as u32, 1, 1], 0)
}

/// Element `dd` of key/value row `j` (0 ..= past + current length) of kv head `kh` in batch
/// `b`: from the past cache `[b, heads, pl, width]` for `j < pl`, else from the current K/V.
#[allow(clippy::too_many_arguments)]
fn kv_elem<'c>(
    em: &Em<'c>,
    cur: PointerValue<'c>,
    past: Option<PointerValue<'c>>,
    dt: DType,
    four_d: bool,
    (b, heads, pl, sk, width): (Ix<'c>, usize, usize, usize, usize),
    kh: Ix<'c>,
    j: Ix<'c>,
    dd: Ix<'c>,
) -> R<FloatValue<'c>> {
    let past = match past {
        Some(p) if pl > 0 => p,
        _ => return Ok(em.load(dt, cur, at(em, four_d, (heads, sk, width), b, kh, j, dd)?)?.into_float_value()),
    };
    let is_past = em.icmp(IntPredicate::SLT, j, em.ix(pl as i64))?;
    // Both addresses stay in bounds; the select picks the right one.
    let jp = em.min_ix(j, em.ix(pl as i64 - 1))?;
    let pi = em.add(em.mulk(em.add(em.mulk(em.add(em.mulk(b, heads as i64)?, kh)?, pl as i64)?, jp)?, width as i64)?, dd)?;
    let jc = em.select(is_past, em.ix(0), em.addk(j, -(pl as i64))?)?.into_int_value();
    let pv = em.load(dt, past, pi)?.into_float_value();
    let cv = em.load(dt, cur, at(em, four_d, (heads, sk, width), b, kh, jc, dd)?)?.into_float_value();
    Ok(em.select(is_past, pv, cv)?.into_float_value())
}

/// present_key / present_value `[b, heads, pl + sk, width]`: the past cache, then the current
/// K / V (3-D or 4-D).
fn write_present(
    cx: &mut Cx,
    present: kiln_ir::ValueId,
    past: Option<kiln_ir::ValueId>,
    cur: kiln_ir::ValueId,
    ct: &Ty,
    four_d: bool,
    (b, heads, pl, sk, width): (usize, usize, usize, usize, usize),
) -> R<()> {
    let mut params = vec![Param::Value(present), Param::Value(cur)];
    params.extend(past.map(Param::Value));
    let total = b * heads * (pl + sk) * width;
    let p = cx.begin("_present", &params)?;
    super::per_element(cx, total, |em, t| {
        let c = super::coords(em, t, &[b, heads, pl + sk, width])?;
        let v = kv_elem(em, p[1], past.map(|_| p[2]), ct.dtype, four_d, (c[0], heads, pl, sk, width), c[1], c[2], c[3])?;
        em.store(ct.dtype, p[0], t, v.into())
    })
}

pub fn lower_rotary(cx: &mut Cx, node: &Node) -> R<()> {
    let Op::RotaryEmbedding { interleaved, num_heads, rotary_embedding_dim } = node.op.clone() else {
        return unsupported(format!("{} in the rotary family", node.op.kind_name()));
    };
    let (x, cos, sin) = (input(node, 0)?, input(node, 1)?, input(node, 2)?);
    let pos = node.inputs.get(3).copied().flatten();
    let (xt, ct) = (cx.ty(x)?, cx.ty(cos)?);
    if !super::is_f32_compute(xt.dtype) {
        return unsupported(format!("RotaryEmbedding on {}", xt.dtype));
    }
    let four_d = xt.dims.len() == 4;
    let (b, h, s, d) = if four_d {
        (xt.dims[0], xt.dims[1], xt.dims[2], xt.dims[3])
    } else {
        let h = num_heads.max(1) as usize;
        (xt.dims[0], h, xt.dims[1], xt.dims[2] / h)
    };
    let rd = if rotary_embedding_dim == 0 { d } else { rotary_embedding_dim as usize };
    let half = (rd / 2) as i64;
    let y = output(node, 0)?;
    let yt = cx.ty(y)?;
    let total = xt.numel();
    let mut params = vec![Param::Value(y), Param::Value(x), Param::Value(cos), Param::Value(sin)];
    params.extend(pos.map(Param::Value));
    let pt = pos.map(|v| cx.ty(v)).transpose()?;
    let rows = ct.dims.iter().rev().nth(1).copied().unwrap_or(1) as i64;
    let p = cx.begin("", &params)?;
    super::per_element(cx, total, |em, t| {
        // Coordinates in the stored layout.
        let (bi, si, di) = if four_d {
            let c = super::coords(em, t, &[b, h, s, d])?;
            (c[0], c[2], c[3])
        } else {
            let c = super::coords(em, t, &[b, s, h, d])?;
            (c[0], c[1], c[3])
        };
        let xv = em.load(xt.dtype, p[1], t)?.into_float_value();
        let rotated = em.icmp(IntPredicate::SLT, di, em.ix(rd as i64))?;
        let out = em.if_else(
            rotated,
            em.f32t().into(),
            |em| {
                // Pair index k and whether this element is the first of its pair.
                let (k, first, partner) = if interleaved {
                    let k = em.divk(di, 2)?;
                    let first = em.icmp(IntPredicate::EQ, em.remk(di, 2)?, em.ix(0))?;
                    let partner = em.select(first, em.addk(t, 1)?, em.addk(t, -1)?)?.into_int_value();
                    (k, first, partner)
                } else {
                    let first = em.icmp(IntPredicate::SLT, di, em.ix(half))?;
                    let k = em.select(first, di, em.addk(di, -half)?)?.into_int_value();
                    let partner = em.select(first, em.addk(t, half)?, em.addk(t, -half)?)?.into_int_value();
                    (k, first, partner)
                };
                let row = match (&pt, ct.dims.len()) {
                    (Some(pt), _) => {
                        let pv = em.load(pt.dtype, p[4], em.add(em.mulk(bi, s as i64)?, si)?)?.into_int_value();
                        let pv = em.b.build_int_s_extend_or_bit_cast(pv, em.i64t(), "")?;
                        let lo = em.icmp(IntPredicate::SLT, pv, em.ix(0))?;
                        let pv = em.select(lo, em.ix(0), pv)?.into_int_value();
                        em.min_ix(pv, em.ix(rows - 1))?
                    }
                    (None, 3) => em.add(em.mulk(bi, s as i64)?, si)?,
                    _ => si,
                };
                let ci = em.add(em.mulk(row, half)?, k)?;
                let c = em.load(ct.dtype, p[2], ci)?.into_float_value();
                let sn = em.load(ct.dtype, p[3], ci)?.into_float_value();
                let other = em.load(xt.dtype, p[1], partner)?.into_float_value();
                // first: c*x1 - s*x2; second: s*x1 + c*x2 (x1 is the partner then).
                let a = em.fmul(c, xv)?;
                let bterm = em.fmul(sn, other)?;
                let r = em.select(first, em.fsub(a, bterm)?, em.fadd(a, bterm)?)?;
                Ok(r)
            },
            |_| Ok(xv.into()),
        )?;
        em.store(yt.dtype, p[0], t, out)
    })
}
