//! Attention on the tensor cores for f16/bf16 (sm_80 and later): one flash-style kernel.
//!
//! A block of `w` warps takes 16·w query rows of one head; each warp 16 of them. Q's fragments
//! are read once into registers. Keys stream through shared memory 64 at a time: the scores
//! S = Q·Kᵀ (`mma.sync.m16n8k16`, f32 accumulators) are scaled, masked (additive or boolean
//! mask, causal), soft-capped and cut at the last key in registers, the running row maximum and
//! sum are updated (online softmax, f32), and P·V accumulates into the output with P taken
//! straight from the score registers (an m16n8 accumulator pair is an m16k16 A fragment). The
//! next key tile is fetched by `cp.async` while the current one is used; V's tile while the
//! scores are computed. Under `is_causal` (without a soft cap, which the reference applies after
//! the causal bias) a block stops at its last query row's key tile.
//!
//! Q, K, V and the output are 3-D [batch, seq, heads·dim] or 4-D [batch, heads, seq, dim]; a
//! query head reads key/value head `h / (q heads / kv heads)` (GQA).

use super::gemm::mma::{commit, copy16, ldmatrix_x4, lt, mma, wait_group, within};
use crate::codegen::llvm::{Em, Ix, Var, R};
use crate::codegen::{blocks, Cx, Param, Ty};
use inkwell::types::BasicTypeEnum;
use inkwell::values::{BasicValueEnum, FloatValue, IntValue, PointerValue};
use inkwell::{FloatPredicate, IntPredicate};
use kiln_ir::{DType, ValueId};

/// Keys per tile.
const BC: i64 = 64;
/// Shared-memory row padding (elements): the 8 rows an `ldmatrix` reads fall in distinct banks.
const PAD: i64 = 8;
/// Blocks that fill the GPU once (H100/H200 have 132 SMs).
const WAVE: usize = 132;

/// One attention computation as the kernel sees it.
pub(super) struct Spec {
    pub y: ValueId,
    pub q: ValueId,
    pub k: ValueId,
    pub v: ValueId,
    pub mask: Option<(ValueId, Ty)>,
    pub dtype: DType,
    pub four_d: bool,
    /// batch, query heads, query length, key/value heads, key length, head dim.
    pub b: usize,
    pub hq: usize,
    pub sq: usize,
    pub hk: usize,
    pub sk: usize,
    pub d: usize,
    pub scale: f64,
    pub softcap: f32,
    pub is_causal: bool,
    pub zero_undefined_rows: bool,
}

/// Whether the kernel takes this attention: 16-bit floats, one head dim for Q, K and V that is
/// a multiple of 16 up to 128, rows 16-byte aligned.
pub(super) fn applies(cx: &Cx, dtype: DType, types: [&Ty; 4], d: usize, dv: usize, vals: [ValueId; 4]) -> bool {
    matches!(dtype, DType::F16 | DType::BF16)
        && types.iter().all(|t| t.dtype == dtype)
        && d == dv
        && d.is_multiple_of(16)
        && d <= 128
        && vals.iter().all(|&v| cx.is_aligned(v, 16))
}

/// Where one head's [seq, dim] rows of a 3-D or 4-D tensor start, and their stride.
fn head_rows<'c>(em: &Em<'c>, four_d: bool, heads: usize, seq: usize, d: usize, b: Ix<'c>, h: Ix<'c>) -> R<(Ix<'c>, i64)> {
    let (heads, seq, d) = (heads as i64, seq as i64, d as i64);
    if four_d {
        Ok((em.mulk(em.add(em.mulk(b, heads)?, h)?, seq * d)?, d))
    } else {
        Ok((em.add(em.mulk(b, seq * heads * d)?, em.mulk(h, d)?)?, heads * d))
    }
}

/// Rows `row0..row0 + rows` of one head (`base`, `stride`) into a shared tile of row stride
/// `d + PAD`, as 16-byte `cp.async` chunks; rows at or past `seq` are zero-filled.
#[allow(clippy::too_many_arguments)]
fn load_rows<'c>(
    em: &mut Em<'c>,
    tile: PointerValue<'c>,
    src: PointerValue<'c>,
    (base, stride): (Ix<'c>, i64),
    row0: Ix<'c>,
    rows: i64,
    seq: usize,
    d: i64,
    threads: i64,
    dt: DType,
) -> R<()> {
    let h: BasicTypeEnum = em.cx.i16_type().into();
    let tid = em.sreg("tid.x")?;
    let chunks = rows * d / 8;
    for c in 0..(chunks + threads - 1) / threads {
        let ci = em.addk(tid, c * threads)?;
        within(em, ci, c * threads, threads, chunks, |em| {
            let (row, col) = (em.divk(ci, d / 8)?, em.mulk(em.remk(ci, d / 8)?, 8)?);
            let g = em.add(row0, row)?;
            let ok = lt(em, g, seq)?;
            let from = em.add(base, em.add(em.mulk(g, stride)?, col)?)?;
            copy16(em, tile, em.add(em.mulk(row, d + PAD)?, col)?, src, from, ok, h, dt)
        })?;
    }
    Ok(())
}

/// Waits until at most `n` committed groups are in flight, then a block barrier.
fn wait_then_sync(em: &Em, n: i64) -> R<()> {
    wait_group(em, n)?;
    em.barrier()
}

/// Two f32 as one register of two 16-bit floats, `lo` in the low half.
fn pack<'c>(em: &Em<'c>, dt: DType, lo: FloatValue<'c>, hi: FloatValue<'c>) -> R<IntValue<'c>> {
    let text = format!("cvt.rn.{}x2.f32 $0, $1, $2;", if dt == DType::F16 { "f16" } else { "bf16" });
    let v = em
        .asm(&text, "=r,f,f", Some(em.i32t().into()), &[hi.into(), lo.into()], false)?
        .ok_or_else(|| crate::codegen::CodegenError::Internal("cvt without a result".into()))?;
    Ok(v.into_int_value())
}

fn float<'c>(em: &Em<'c>, v: Var<'c>) -> R<FloatValue<'c>> {
    Ok(em.get(v)?.into_float_value())
}

pub(super) fn lower<'c>(cx: &mut Cx<'c, '_>, sp: &Spec) -> R<()> {
    let dt = sp.dtype;
    let d = sp.d as i64;
    let ld = d + PAD;
    let q_blocks = |w: usize| sp.sq.div_ceil(16 * w) * sp.hq * sp.b;
    let warps = [4usize, 2].into_iter().find(|&w| q_blocks(w) >= WAVE).unwrap_or(1) as i64;
    let (br, threads) = (16 * warps, 32 * warps);
    let group = (sp.hq / sp.hk.max(1)).max(1) as i64;
    let mut params = vec![Param::Value(sp.y), Param::Value(sp.q), Param::Value(sp.k), Param::Value(sp.v)];
    params.extend(sp.mask.as_ref().map(|m| Param::Value(m.0)));
    let p = cx.begin("_tc", &params)?;
    let h16: BasicTypeEnum = cx.em.cx.i16_type().into();
    let k_s = cx.em.shared_array("Ks", h16, (BC * ld) as u32);
    // V's tile holds Q's rows first (br <= BC), until they are in registers.
    let v_s = cx.em.shared_array("Vs", h16, (BC * ld) as u32);
    let em = &mut cx.em;
    let tid = em.sreg("tid.x")?;
    let lane = em.remk(tid, 32)?;
    let warp = em.divk(tid, 32)?;
    let (gq, tq) = (em.divk(lane, 4)?, em.mulk(em.remk(lane, 4)?, 2)?);
    // ldmatrix row and column of this lane within a 16x16 tile.
    let lrow = em.add(em.remk(lane, 8)?, em.mulk(em.remk(em.divk(lane, 8)?, 2)?, 8)?)?;
    let lcol = em.mulk(em.divk(lane, 16)?, 8)?;
    let (qb, h, bb) = (em.sreg("ctaid.x")?, em.sreg("ctaid.y")?, em.sreg("ctaid.z")?);
    let q0 = em.mulk(qb, br)?;
    let kh = em.divk(h, group)?;
    let q_rows = head_rows(em, sp.four_d, sp.hq, sp.sq, sp.d, bb, h)?;
    let k_rows = head_rows(em, sp.four_d, sp.hk, sp.sk, sp.d, bb, kh)?;

    // Prologue: Q's rows and the first key tile in flight; Q's fragments into registers.
    load_rows(em, v_s, p[1], q_rows, q0, br, sp.sq, d, threads, dt)?;
    commit(em)?;
    load_rows(em, k_s, p[2], k_rows, em.ix(0), BC, sp.sk, d, threads, dt)?;
    commit(em)?;
    wait_then_sync(em, 1)?;
    let mut q_frag = vec![];
    for kk in 0..d / 16 {
        let row = em.add(em.mulk(warp, 16)?, lrow)?;
        q_frag.push(ldmatrix_x4(em, v_s, em.add(em.mulk(row, ld)?, em.addk(lcol, kk * 16)?)?, h16, false)?);
    }
    em.barrier()?;

    // Running state per thread: its two rows (gq and gq + 8 of the warp's 16).
    let neg_inf = em.f32c(f64::NEG_INFINITY);
    let m = [em.var(neg_inf.into())?, em.var(neg_inf.into())?];
    let l = [em.var(em.f32c(0.0).into())?, em.var(em.f32c(0.0).into())?];
    let mut o: Vec<Var> = vec![];
    for _ in 0..d / 8 * 4 {
        o.push(em.var(em.f32c(0.0).into())?);
    }
    // Query row of this thread's first (half 0) or second (half 1) row.
    let row_of = |em: &Em<'c>, half: i64| -> R<Ix<'c>> { em.add(q0, em.add(em.mulk(warp, 16)?, em.addk(gq, 8 * half)?)?) };
    let all_tiles = (sp.sk as i64 + BC - 1) / BC;
    let tiles = if sp.is_causal && sp.softcap <= 0.0 {
        // Query row i sees keys 0..=i: the block's last row bounds its key tiles. (With a soft
        // cap the reference caps the causal -inf to a finite score, so every key counts.)
        let last = em.addk(q0, br - 1)?;
        em.min_ix(em.ix(all_tiles), em.addk(em.divk(last, BC)?, 1)?)?
    } else {
        em.ix(all_tiles)
    };
    let mask_strides = sp.mask.as_ref().map(|(_, mt)| broadcast_strides(&mt.dims));

    em.for_range(em.ix(0), tiles, em.ix(1), |em, j| {
        let k0 = em.mulk(j, BC)?;
        load_rows(em, v_s, p[3], k_rows, k0, BC, sp.sk, d, threads, dt)?;
        commit(em)?;
        wait_then_sync(em, 1)?;
        // S = Q·Kᵀ for this warp's 16 rows and the tile's 64 keys.
        let zero = em.f32c(0.0);
        let mut s = vec![[zero; 4]; (BC / 8) as usize];
        for (kk, qf) in q_frag.iter().enumerate() {
            for np in 0..BC / 16 {
                let n = em.add(em.remk(lane, 8)?, em.addk(lcol, np * 16)?)?;
                let kc = em.addk(em.mulk(em.remk(em.divk(lane, 8)?, 2)?, 8)?, kk as i64 * 16)?;
                let r = ldmatrix_x4(em, k_s, em.add(em.mulk(n, ld)?, kc)?, h16, false)?;
                let i = 2 * np as usize;
                s[i] = mma(em, dt, qf, &[r[0], r[1]], s[i])?;
                s[i + 1] = mma(em, dt, qf, &[r[2], r[3]], s[i + 1])?;
            }
        }
        em.barrier()?;
        let next = em.addk(j, 1)?;
        let more = em.icmp(IntPredicate::SLT, next, tiles)?;
        em.if_(more, |em| load_rows(em, k_s, p[2], k_rows, em.mulk(next, BC)?, BC, sp.sk, d, threads, dt))?;
        commit(em)?;

        // Scores to probabilities, rescaling what has accumulated.
        for half in 0..2usize {
            let row = row_of(em, half as i64)?;
            let mut tile_max = neg_inf;
            for (nt, acc) in s.iter_mut().enumerate() {
                for e in 0..2usize {
                    let key = em.add(k0, em.addk(tq, nt as i64 * 8 + e as i64)?)?;
                    let x = score(em, sp, &p, mask_strides.as_ref(), acc[2 * half + e], (bb, h, row, key))?;
                    acc[2 * half + e] = x;
                    tile_max = em.fmax(tile_max, x)?;
                }
            }
            tile_max = em.fmax(tile_max, em.shfl_xor(tile_max, 1)?)?;
            tile_max = em.fmax(tile_max, em.shfl_xor(tile_max, 2)?)?;
            let m_old = float(em, m[half])?;
            let m_new = em.fmax(m_old, tile_max)?;
            // A row with no unmasked key so far keeps probabilities 0 instead of NaN.
            let none = em.fcmp(FloatPredicate::OEQ, m_new, neg_inf)?;
            let m_use = em.select(none, em.f32c(0.0), m_new)?.into_float_value();
            let alpha = em.exp(em.fsub(m_old, m_use)?)?;
            let mut sum = em.f32c(0.0);
            for acc in s.iter_mut() {
                for e in 0..2usize {
                    let pr = em.exp(em.fsub(acc[2 * half + e], m_use)?)?;
                    acc[2 * half + e] = pr;
                    sum = em.fadd(sum, pr)?;
                }
            }
            em.set(l[half], em.fadd(em.fmul(float(em, l[half])?, alpha)?, sum)?.into())?;
            em.set(m[half], m_new.into())?;
            for nt in 0..(d / 8) as usize {
                for e in 0..2usize {
                    let slot = o[nt * 4 + 2 * half + e];
                    em.set(slot, em.fmul(float(em, slot)?, alpha)?.into())?;
                }
            }
        }

        // O += P·V.
        wait_then_sync(em, 1)?;
        for kk in 0..(BC / 16) as usize {
            let (a, b) = (s[2 * kk], s[2 * kk + 1]);
            let pa = [pack(em, dt, a[0], a[1])?, pack(em, dt, a[2], a[3])?, pack(em, dt, b[0], b[1])?, pack(em, dt, b[2], b[3])?];
            for np in 0..d / 16 {
                let kr = em.addk(lrow, kk as i64 * 16)?;
                let n = em.addk(lcol, np * 16)?;
                let r = ldmatrix_x4(em, v_s, em.add(em.mulk(kr, ld)?, n)?, h16, true)?;
                for (t, frag) in [[r[0], r[1]], [r[2], r[3]]].iter().enumerate() {
                    let base = (2 * np as usize + t) * 4;
                    let c = [float(em, o[base])?, float(em, o[base + 1])?, float(em, o[base + 2])?, float(em, o[base + 3])?];
                    let dd = mma(em, dt, &pa, frag, c)?;
                    for (i, v) in dd.into_iter().enumerate() {
                        em.set(o[base + i], v.into())?;
                    }
                }
            }
        }
        em.barrier()
    })?;
    wait_group(em, 0)?;

    // Normalize and store this thread's two rows.
    for half in 0..2usize {
        let row = row_of(em, half as i64)?;
        let mut total = float(em, l[half])?;
        total = em.fadd(total, em.shfl_xor(total, 1)?)?;
        total = em.fadd(total, em.shfl_xor(total, 2)?)?;
        let inv = em.fdiv(em.f32c(1.0), total)?;
        // Undefined rows (every key masked, or a NaN/inf score) have a sum of 0 or NaN.
        let undefined = em.fcmp(FloatPredicate::ULE, total, em.f32c(0.0))?;
        let inside = lt(em, row, sp.sq)?;
        em.if_(inside, |em| {
            for nt in 0..d / 8 {
                for e in 0..2i64 {
                    let col = em.addk(tq, nt * 8 + e)?;
                    let mut y = em.fmul(float(em, o[(nt * 4) as usize + 2 * half + e as usize])?, inv)?;
                    if sp.zero_undefined_rows {
                        y = em.select(undefined, em.f32c(0.0), y)?.into_float_value();
                    }
                    let at = em.add(q_rows.0, em.add(em.mulk(row, q_rows.1)?, col)?)?;
                    em.store(dt, p[0], at, y.into())?;
                }
            }
            Ok(())
        })?;
    }
    let grid = [blocks(sp.sq, br as usize)?, sp.hq as u32, sp.b as u32];
    cx.launch(grid, [threads as u32, 1, 1], 0)
}

/// Element strides of a mask of dims `m` (rank at most 4) broadcast to [batch, heads, query,
/// key], right-aligned; 0 where the mask's dim is 1 or absent.
fn broadcast_strides(m: &[usize]) -> [i64; 4] {
    let mut out = [0i64; 4];
    let mut stride = 1i64;
    for (i, &n) in m.iter().enumerate().rev() {
        if n != 1 {
            out[4 - (m.len() - i)] = stride;
        }
        stride *= n as i64;
    }
    out
}

/// One score: the raw product scaled, masked (mask and causality), soft-capped; keys past the
/// end are -inf.
fn score<'c>(
    em: &mut Em<'c>,
    sp: &Spec,
    p: &[PointerValue<'c>],
    strides: Option<&[i64; 4]>,
    raw: FloatValue<'c>,
    (b, h, row, key): (Ix<'c>, Ix<'c>, Ix<'c>, Ix<'c>),
) -> R<FloatValue<'c>> {
    let neg_inf = em.f32c(f64::NEG_INFINITY);
    let mut x = em.fmul(raw, em.f32c(sp.scale))?;
    if let (Some((_, mt)), Some(st)) = (&sp.mask, strides) {
        // Clamped coordinates: rows and keys past the end read a valid element.
        let r = em.min_ix(row, em.ix(sp.sq as i64 - 1))?;
        let k = em.min_ix(key, em.ix(sp.sk as i64 - 1))?;
        let mut at = em.ix(0);
        for (c, s) in [b, h, r, k].into_iter().zip(st) {
            if *s != 0 {
                at = em.add(at, em.mulk(c, *s)?)?;
            }
        }
        let mv: BasicValueEnum = em.load(mt.dtype, p[4], at)?;
        x = if mt.dtype == DType::Bool {
            em.select(mv.into_int_value(), x, neg_inf)?.into_float_value()
        } else {
            em.fadd(x, em.convert(mv, mt.dtype, DType::F32)?.into_float_value())?
        };
    }
    // As the reference orders it: causality is part of the bias, added before the soft cap.
    if sp.is_causal {
        let future = em.icmp(IntPredicate::SGT, key, row)?;
        x = em.select(future, neg_inf, x)?.into_float_value();
    }
    if sp.softcap > 0.0 {
        let c = sp.softcap as f64;
        x = em.fmul(em.tanh(em.fmul(x, em.f32c(1.0 / c))?)?, em.f32c(c))?;
    }
    // Keys past the end of the tile are no keys at all.
    let beyond = em.icmp(IntPredicate::SGE, key, em.ix(sp.sk as i64))?;
    Ok(em.select(beyond, neg_inf, x)?.into_float_value())
}
