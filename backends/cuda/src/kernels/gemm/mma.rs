//! The tensor-core GEMM for f16/bf16 operands (sm_80 and later): `mma.sync.m16n8k16` with f32
//! accumulators, fragments read with `ldmatrix`, tiles streamed through a multi-stage
//! `cp.async` pipeline, and the product's fused epilogue applied to the accumulators.
//!
//! A block of `wm` x `wn` warps computes a `bm` x `bn` tile; each warp a (bm/wm) x (bn/wn) tile
//! of m16n8 fragments per part (2 x 4 warps: 64x32 per warp on a 128x128 tile). K advances 32
//! at a time. Shared-memory rows are
//! padded by 8 elements (16 bytes) so the 8 row addresses of an `ldmatrix` fall in distinct
//! banks. A is row-major (k contiguous); B is either k-major (`[K, N]`, read with
//! `ldmatrix.trans`) or n-major (`[N, K]`, Gemm's transB). Out-of-range 16-byte chunks are
//! zero-filled by `cp.async`'s source size, so ragged M, N and K need no separate path.
//!
//! Split products: when every output reads one part (GQA's Q, K and V), the parts are one
//! product whose columns each tile's epilogue maps back to their part (`Mode::Concat`); when an
//! output combines parts (SwiGLU), every thread holds the same columns of each part
//! (`Mode::Parts`).

use super::{Group, Product};
use crate::codegen::llvm::{Em, Ix, Var, R};
use crate::codegen::{blocks, Cx};
use inkwell::types::BasicTypeEnum;
use inkwell::values::{FloatValue, IntValue, PointerValue};
use inkwell::IntPredicate;
use kiln_ir::DType;

const BK: i64 = 32;
const PAD: i64 = 8;
/// Dynamic shared memory per block: two blocks fit on an SM of the A100 (164 KiB) and of the
/// H100/H200 (228 KiB).
const SMEM_LIMIT: i64 = 80 * 1024;
/// Pipeline depth: tiles in flight while one is multiplied.
const MAX_STAGES: i64 = 4;
/// Blocks that fill the GPU once (H100/H200 have 132 SMs; A100 108).
const WAVE: usize = 132;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Mode {
    Single,
    Concat,
    Parts,
}

#[derive(Clone, Debug)]
pub(crate) struct Plan {
    bm: i64,
    bn: i64,
    /// Warps along M and along N: each warp computes a (bm/wm) x (bn/wn) tile.
    wm: i64,
    wn: i64,
    stages: i64,
    /// B is `[K, N]` (n contiguous); otherwise `[N, K]`.
    b_kmajor: bool,
    mode: Mode,
}

impl Plan {
    fn threads(&self) -> i64 {
        32 * self.wm * self.wn
    }
    fn smem_parts(&self, parts: usize) -> i64 {
        if self.mode == Mode::Parts {
            parts as i64
        } else {
            1
        }
    }
    fn a_stage(&self) -> i64 {
        self.bm * (BK + PAD)
    }
    /// Elements of one part's B tile.
    fn b_part(&self) -> i64 {
        if self.b_kmajor {
            BK * (self.bn + PAD)
        } else {
            self.bn * (BK + PAD)
        }
    }
}

/// Whether both operands can be streamed in 16-byte chunks for the tensor cores: f16/bf16,
/// A with K contiguous, B with N (`[K, N]`: true) or K (`[N, K]`: false) contiguous.
pub(crate) fn streamable(pr: &Product) -> Option<bool> {
    let g = &pr.geo;
    let dt = pr.at.dtype;
    if !matches!(dt, DType::F16 | DType::BF16) || pr.bt.dtype != dt {
        return None;
    }
    if g.a_sk != 1 || g.a_sm != g.k as i64 || !g.k.is_multiple_of(8) {
        return None;
    }
    let b_n_contiguous = g.b_sn == 1;
    if !(b_n_contiguous || g.b_sk == 1) || (b_n_contiguous && !g.n.is_multiple_of(8)) {
        return None;
    }
    Some(b_n_contiguous)
}

/// How the parts of a product share a tensor-core tile, where they can (`b_kmajor`: B is
/// `[K, N]`, streamed in 16-byte rows of N, so every part must start and end on 8 columns).
pub(crate) fn mode(pr: &Product, b_kmajor: bool) -> Option<Mode> {
    if b_kmajor && pr.parts.iter().any(|&(off, w)| off % 8 != 0 || !w.is_multiple_of(8)) {
        return None;
    }
    let s_count = pr.parts.len();
    let groups = pr.groups();
    if s_count == 1 {
        return (groups.len() == 1 && groups[0].width == pr.geo.n).then_some(Mode::Single);
    }
    let one_part = pr.out_tys.iter().enumerate().all(|(o, t)| {
        let deps: Vec<usize> = pr.prog.arg_deps(o).into_iter().filter(|&k| k < s_count).collect();
        deps.len() == 1 && pr.width(t) == pr.parts[deps[0]].1
    });
    let w0 = pr.parts[0].1;
    if one_part {
        Some(Mode::Concat)
    } else if pr.parts.iter().all(|p| p.1 == w0) && groups.len() == 1 && groups[0].width == w0 {
        Some(Mode::Parts)
    } else {
        None
    }
}

/// Columns a tile covers: in Parts mode each part's own (all parts are this wide), else the
/// whole product's.
pub(crate) fn tile_cols(pr: &Product, mode: &Mode) -> usize {
    if *mode == Mode::Parts {
        pr.parts[0].1
    } else {
        pr.geo.n
    }
}

/// A run of tile columns `lo..lo + width` whose outputs (`group`) read the accumulators of
/// `reads` (the parts' indices).
pub(crate) struct Segment {
    pub lo: i64,
    pub width: usize,
    pub group: Group,
    pub reads: Vec<usize>,
}

/// The epilogue's segments: one in Single and Parts modes; in Concat mode one per part that
/// some output reads.
pub(crate) fn segments(pr: &Product, mode: &Mode) -> R<Vec<Segment>> {
    let s_count = pr.parts.len();
    let first = || pr.groups().into_iter().next().ok_or_else(|| crate::codegen::CodegenError::Internal("a product without outputs".into()));
    Ok(match mode {
        Mode::Single => vec![Segment { lo: 0, width: pr.geo.n, group: first()?, reads: vec![0] }],
        Mode::Parts => vec![Segment { lo: 0, width: pr.parts[0].1, group: first()?, reads: (0..s_count).collect() }],
        Mode::Concat => pr
            .parts
            .iter()
            .enumerate()
            .filter_map(|(s, &(off, w))| {
                let members: Vec<usize> = (0..pr.outs.len()).filter(|&o| pr.prog.arg_deps(o).contains(&s)).collect();
                if members.is_empty() {
                    return None;
                }
                let needed = members.iter().flat_map(|&o| pr.prog.arg_deps(o)).collect();
                Some(Segment { lo: off, width: w, group: Group { width: w, members, needed }, reads: vec![s] })
            })
            .collect(),
    })
}

impl Segment {
    /// The epilogue for tile column `col` of row `m` where both lie in this segment: `acc(s)`
    /// is the accumulator of part `s` (in Parts mode; else the product's one).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn emit<'c>(
        &self,
        em: &mut Em<'c>,
        pr: &Product,
        p: &[PointerValue<'c>],
        z: Ix<'c>,
        m: Ix<'c>,
        col: Ix<'c>,
        acc: impl Fn(&Em<'c>, usize) -> R<FloatValue<'c>>,
    ) -> R<()> {
        let (lo, hi) = (self.lo, self.lo + self.width as i64);
        let ok = em
            .and(lt(em, m, pr.geo.m)?, em.and(em.icmp(IntPredicate::SGE, col, em.ix(lo))?, em.icmp(IntPredicate::SLT, col, em.ix(hi))?)?)?;
        let mut vals: Vec<Option<FloatValue>> = vec![None; pr.parts.len()];
        for &s in &self.reads {
            vals[s] = Some(acc(em, s)?);
        }
        let jj = em.addk(col, -lo)?;
        em.if_(ok, |em| pr.emit_element(em, p, z, m, jj, &self.group, &vals))
    }

    /// Whether the tile of columns `j0..j0 + bn` overlaps this segment.
    pub(crate) fn touches<'c>(&self, em: &Em<'c>, j0: Ix<'c>, bn: i64) -> R<IntValue<'c>> {
        let (lo, hi) = (self.lo, self.lo + self.width as i64);
        em.and(em.icmp(IntPredicate::SLT, j0, em.ix(hi))?, em.icmp(IntPredicate::SGT, em.addk(j0, bn)?, em.ix(lo))?)
    }
}

/// The plan when the tensor-core kernel applies.
pub(crate) fn plan(pr: &Product) -> Option<Plan> {
    let g = &pr.geo;
    let b_kmajor = streamable(pr)?;
    let mode = mode(pr, b_kmajor)?;
    let s_count = pr.parts.len();
    let cols = tile_cols(pr, &mode);
    let batch = pr.batch_n();
    let mut best: Option<Plan> = None;
    // Largest tiles first; the first that fills the GPU is taken. (Four warps on a 128x128 tile,
    // 64x64 per warp, measured 3% faster on a 4096^3 product and 7% slower on resnet18's
    // convolutions on the H200: eight warps everywhere.)
    let tiles: [(i64, i64, i64, i64); 4] = [(128, 128, 2, 4), (64, 128, 2, 4), (64, 64, 2, 4), (32, 64, 2, 4)];
    for (bm, bn, wm, wn) in tiles {
        let mut p = Plan { bm, bn, wm, wn, stages: 0, b_kmajor, mode: mode.clone() };
        let stage_bytes = 2 * (p.a_stage() + p.smem_parts(s_count) * p.b_part());
        p.stages = (SMEM_LIMIT / stage_bytes).min(MAX_STAGES);
        if p.stages < 2 {
            continue;
        }
        let n_blocks = cols.div_ceil(bn as usize) * g.m.div_ceil(bm as usize) * batch;
        best = Some(p);
        if n_blocks >= WAVE {
            break;
        }
    }
    best
}

pub(crate) fn lower<'c>(cx: &mut Cx<'c, '_>, pr: &Product, plan: &Plan) -> R<()> {
    let g = &pr.geo;
    let dt = pr.at.dtype;
    let (bm, bn, stages) = (plan.bm, plan.bn, plan.stages);
    let s_count = pr.parts.len();
    let smem_parts = plan.smem_parts(s_count);
    let (mt_n, nt_n) = (bm / plan.wm / 16, bn / plan.wn / 8);
    let threads = plan.threads();
    let cols = tile_cols(pr, &plan.mode);
    let no = pr.outs.len();
    let p = cx.begin("_tc", &pr.params())?;
    let h: BasicTypeEnum = cx.em.cx.i16_type().into();
    let a_elems = stages * plan.a_stage();
    let smem_bytes = 2 * (a_elems + stages * smem_parts * plan.b_part());
    let a_s = cx.em.dynamic_shared(h);
    let b_s = cx.em.offset_ptr(h, a_s, cx.em.ix(a_elems))?;
    let em = &mut cx.em;
    let tid = em.sreg("tid.x")?;
    let lane = em.remk(tid, 32)?;
    let warp = em.divk(tid, 32)?;
    let wm0 = em.mulk(em.divk(warp, plan.wn)?, bm / plan.wm)?;
    let wn0 = em.mulk(em.remk(warp, plan.wn)?, bn / plan.wn)?;
    let j0 = em.mulk(em.sreg("ctaid.x")?, bn)?;
    let m0 = em.mulk(em.sreg("ctaid.y")?, bm)?;
    let z = em.sreg("ctaid.z")?;
    let a_base = em.mulk(crate::kernels::bcast_index(em, z, &g.batch, &g.a_batch)?, (g.m * g.k) as i64)?;
    let b_base = em.mulk(crate::kernels::bcast_index(em, z, &g.batch, &g.b_batch)?, (g.k * g.n) as i64)?;
    let k_tiles = (g.k as i64 + BK - 1) / BK;
    let (a_ptr, b_ptr) = (p[no], p[no + 1]);

    // One stage's loads: 16-byte chunks, zero-filled outside the matrices.
    let load_tile = |em: &mut Em<'c>, stage: Ix<'c>, kt: Ix<'c>| -> R<()> {
        let k0 = em.mulk(kt, BK)?;
        let chunks = bm * BK / 8;
        for q in 0..(chunks + threads - 1) / threads {
            let c = em.addk(tid, q * threads)?;
            within(em, c, q * threads, threads, chunks, |em| {
                let Chunk { row, col: kc, src, ok } = a_chunk(em, pr, c, BK, m0, k0, a_base)?;
                let dst = em.add(em.mulk(stage, plan.a_stage())?, em.add(em.mulk(row, BK + PAD)?, kc)?)?;
                copy16(em, a_s, dst, a_ptr, src, ok, h, dt)
            })?;
        }
        for (s, &(off, _)) in pr.parts.iter().enumerate().take(smem_parts as usize) {
            // Concat mode loads the whole product's columns; Parts mode each part's own.
            let (off, w) = if plan.mode == Mode::Parts { (off, pr.parts[s].1) } else { (0, g.n) };
            let part_base = em.add(em.mulk(stage, smem_parts * plan.b_part())?, em.ix(s as i64 * plan.b_part()))?;
            let chunks = bn * BK / 8;
            for q in 0..(chunks + threads - 1) / threads {
                let c = em.addk(tid, q * threads)?;
                within(em, c, q * threads, threads, chunks, |em| {
                    let Chunk { row, col, src, ok } = b_chunk(em, pr, c, BK, bn, plan.b_kmajor, j0, k0, b_base, (off, w))?;
                    let dst = em.add(em.mulk(row, if plan.b_kmajor { bn + PAD } else { BK + PAD })?, col)?;
                    copy16(em, b_s, em.add(part_base, dst)?, b_ptr, src, ok, h, dt)
                })?;
            }
        }
        Ok(())
    };

    let mut acc: Vec<Var> = vec![];
    for _ in 0..smem_parts * mt_n * nt_n * 4 {
        acc.push(em.var(em.f32c(0.0).into())?);
    }
    let acc_at = |s: i64, mt: i64, nt: i64, r: i64| (((s * mt_n + mt) * nt_n + nt) * 4 + r) as usize;
    // Prologue: stages - 1 tiles in flight.
    for st in 0..stages - 1 {
        let ok = lt(em, em.ix(st), k_tiles as usize)?;
        em.if_(ok, |em| load_tile(em, em.ix(st), em.ix(st)))?;
        commit(em)?;
    }
    let lrow = em.add(em.remk(lane, 8)?, em.mulk(em.remk(em.divk(lane, 8)?, 2)?, 8)?)?;
    let lcol = em.mulk(em.divk(lane, 16)?, 8)?;
    em.for_n(k_tiles, |em, kt| {
        wait_group(em, stages - 2)?;
        em.barrier()?;
        let next = em.addk(kt, stages - 1)?;
        let ok = lt(em, next, k_tiles as usize)?;
        em.if_(ok, |em| {
            let st = em.remk(next, stages)?;
            load_tile(em, st, next)
        })?;
        commit(em)?;
        let st = em.remk(kt, stages)?;
        let a_stage = em.mulk(st, plan.a_stage())?;
        for kk in 0..BK / 16 {
            let mut a_frag = vec![];
            for mt in 0..mt_n {
                let row = em.add(wm0, em.addk(lrow, mt * 16)?)?;
                let idx = em.add(a_stage, em.add(em.mulk(row, BK + PAD)?, em.addk(lcol, kk * 16)?)?)?;
                a_frag.push(ldmatrix_x4(em, a_s, idx, h, false)?);
            }
            for s in 0..smem_parts {
                let part = em.add(em.mulk(st, smem_parts * plan.b_part())?, em.ix(s * plan.b_part()))?;
                let mut b_frag: Vec<[IntValue; 2]> = vec![];
                for np in 0..nt_n / 2 {
                    let idx = if plan.b_kmajor {
                        let k = em.addk(lrow, kk * 16)?;
                        let n = em.add(wn0, em.addk(lcol, np * 16)?)?;
                        em.add(em.mulk(k, bn + PAD)?, n)?
                    } else {
                        let n = em.add(wn0, em.addk(em.add(em.remk(lane, 8)?, lcol)?, np * 16)?)?;
                        let k = em.addk(em.mulk(em.remk(em.divk(lane, 8)?, 2)?, 8)?, kk * 16)?;
                        em.add(em.mulk(n, BK + PAD)?, k)?
                    };
                    let r = ldmatrix_x4(em, b_s, em.add(part, idx)?, h, plan.b_kmajor)?;
                    b_frag.push([r[0], r[1]]);
                    b_frag.push([r[2], r[3]]);
                }
                for (mt, a) in a_frag.iter().enumerate() {
                    for (nt, b) in b_frag.iter().enumerate() {
                        let at = |r| acc_at(s, mt as i64, nt as i64, r);
                        let c = |r| em.get(acc[at(r)]).map(|v| v.into_float_value());
                        let c = [c(0)?, c(1)?, c(2)?, c(3)?];
                        let d = mma(em, dt, a, b, c)?;
                        for (r, v) in d.into_iter().enumerate() {
                            em.set(acc[at(r as i64)], v.into())?;
                        }
                    }
                }
            }
        }
        Ok(())
    })?;
    wait_group(em, 0)?;

    // Epilogue: segments of columns, each with the outputs it writes and the parts it reads.
    let gq = em.divk(lane, 4)?;
    let tq = em.mulk(em.remk(lane, 4)?, 2)?;
    for seg in segments(pr, &plan.mode)? {
        let touches = seg.touches(em, j0, bn)?;
        em.if_(touches, |em| {
            for mt in 0..mt_n {
                for nt in 0..nt_n {
                    for r in 0..4 {
                        let m = em.add(m0, em.add(wm0, em.addk(gq, mt * 16 + 8 * (r / 2))?)?)?;
                        let col = em.add(j0, em.add(wn0, em.addk(tq, nt * 8 + r % 2)?)?)?;
                        let slot = |s: usize| if plan.mode == Mode::Parts { s as i64 } else { 0 };
                        seg.emit(em, pr, &p, z, m, col, |em, s| Ok(em.get(acc[acc_at(slot(s), mt, nt, r)])?.into_float_value()))?;
                    }
                }
            }
            Ok(())
        })?;
    }
    let grid = [blocks(cols, bn as usize)?, blocks(g.m, bm as usize)?, pr.batch_n() as u32];
    cx.launch(grid, [threads as u32, 1, 1], smem_bytes as u32)
}

/// `d = a·b + c` for one m16n8k16 tile: A as four registers of two 16-bit elements (row-major
/// fragment), B as two (column-major), C and D as four f32 per thread.
pub(crate) fn mma<'c>(
    em: &Em<'c>,
    dt: DType,
    a: &[IntValue<'c>; 4],
    b: &[IntValue<'c>; 2],
    c: [FloatValue<'c>; 4],
) -> R<[FloatValue<'c>; 4]> {
    let text = format!(
        "mma.sync.aligned.m16n8k16.row.col.f32.{t}.{t}.f32 {{$0, $1, $2, $3}}, {{$4, $5, $6, $7}}, {{$8, $9}}, {{$10, $11, $12, $13}};",
        t = if dt == DType::F16 { "f16" } else { "bf16" }
    );
    let mut args: Vec<inkwell::values::BasicValueEnum> = a.iter().map(|&v| v.into()).collect();
    args.extend(b.iter().map(|&v| inkwell::values::BasicValueEnum::from(v)));
    args.extend(c.iter().map(|&v| inkwell::values::BasicValueEnum::from(v)));
    let f = em.f32t().into();
    let ret = em.cx.struct_type(&[f, f, f, f], false).into();
    let d = em
        .asm(&text, "=f,=f,=f,=f,r,r,r,r,r,r,f,f,f,f", Some(ret), &args, true)?
        .ok_or_else(|| crate::codegen::CodegenError::Internal("mma without a result".into()))?;
    Ok([
        em.field(d, 0)?.into_float_value(),
        em.field(d, 1)?.into_float_value(),
        em.field(d, 2)?.into_float_value(),
        em.field(d, 3)?.into_float_value(),
    ])
}

/// Chunk `c` of a stage's operand tile: its row and first column within the tile (16-byte
/// chunks of 8 elements along the contiguous dimension), where it is read from and whether
/// it lies inside the matrix (zero-filled where not).
pub(crate) struct Chunk<'c> {
    pub row: Ix<'c>,
    pub col: Ix<'c>,
    pub src: Ix<'c>,
    pub ok: IntValue<'c>,
}

/// Chunk `c` of A's `[rows, bk]` tile at rows `m0..`, K `k0..` (A is K-contiguous, or a
/// convolution's input read as im2col).
pub(crate) fn a_chunk<'c>(em: &mut Em<'c>, pr: &Product, c: Ix<'c>, bk: i64, m0: Ix<'c>, k0: Ix<'c>, a_base: Ix<'c>) -> R<Chunk<'c>> {
    let g = &pr.geo;
    let (row, kc) = (em.divk(c, bk / 8)?, em.mulk(em.remk(c, bk / 8)?, 8)?);
    let (gm, gk) = (em.add(m0, row)?, em.add(k0, kc)?);
    let ok = em.and(lt(em, gm, g.m)?, lt(em, gk, g.k)?)?;
    let (src, ok) = match &pr.im2col {
        None => (em.add(a_base, em.add(em.mulk(gm, g.k as i64)?, gk)?)?, ok),
        Some(im) => im.source(em, gm, gk, ok)?,
    };
    Ok(Chunk { row, col: kc, src, ok })
}

/// Chunk `c` of B's tile for tile columns `j0..j0 + bn` of the part at column `off`, `w` wide,
/// K `k0..k0 + bk`: with `k_rows` (B `[K, N]`) rows of K and columns of N, else (B `[N, K]`)
/// rows of N and columns of K.
#[allow(clippy::too_many_arguments)]
pub(crate) fn b_chunk<'c>(
    em: &mut Em<'c>,
    pr: &Product,
    c: Ix<'c>,
    bk: i64,
    bn: i64,
    k_rows: bool,
    j0: Ix<'c>,
    k0: Ix<'c>,
    b_base: Ix<'c>,
    (off, w): (i64, usize),
) -> R<Chunk<'c>> {
    let g = &pr.geo;
    if k_rows {
        let (kr, nc) = (em.divk(c, bn / 8)?, em.mulk(em.remk(c, bn / 8)?, 8)?);
        let (gk, gj) = (em.add(k0, kr)?, em.add(j0, nc)?);
        let ok = em.and(lt(em, gk, g.k)?, lt(em, gj, w)?)?;
        let src = em.add(b_base, em.add(em.mulk(gk, g.n as i64)?, em.addk(gj, off)?)?)?;
        Ok(Chunk { row: kr, col: nc, src, ok })
    } else {
        let (nr, kc) = (em.divk(c, bk / 8)?, em.mulk(em.remk(c, bk / 8)?, 8)?);
        let (gj, gk) = (em.add(j0, nr)?, em.add(k0, kc)?);
        let ok = em.and(lt(em, gk, g.k)?, lt(em, gj, w)?)?;
        let src = em.add(b_base, em.add(em.mulk(em.addk(gj, off)?, g.k as i64)?, gk)?)?;
        Ok(Chunk { row: nr, col: kc, src, ok })
    }
}

/// `body()` for chunk `c` of a tile's `chunks`, loaded in rounds of `threads` (this round's
/// first chunk is `first`): guarded when the round is partial.
pub(crate) fn within<'c>(
    em: &mut Em<'c>,
    c: Ix<'c>,
    first: i64,
    threads: i64,
    chunks: i64,
    body: impl FnOnce(&mut Em<'c>) -> R<()>,
) -> R<()> {
    if first + threads <= chunks {
        return body(em);
    }
    let inside = em.icmp(IntPredicate::SLT, c, em.ix(chunks))?;
    em.if_(inside, body)
}

/// Closes the group of `cp.async` copies issued since the last commit.
pub(crate) fn commit(em: &Em) -> R<()> {
    em.asm("cp.async.commit_group;", "~{memory}", None, &[], true).map(|_| ())
}

/// Waits until at most `n` committed `cp.async` groups are still in flight.
pub(crate) fn wait_group(em: &Em, n: i64) -> R<()> {
    em.asm(&format!("cp.async.wait_group {n};"), "~{memory}", None, &[], true).map(|_| ())
}

/// `i < n` (signed).
pub(crate) fn lt<'c>(em: &Em<'c>, i: Ix<'c>, n: usize) -> R<IntValue<'c>> {
    em.icmp(IntPredicate::SLT, i, em.ix(n as i64))
}

/// `cp.async` of 16 bytes from element `src` of `global` (dtype `dt`) to element `dst` of the
/// shared array; zero-filled (and reading nothing) where `!ok`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy16<'c>(
    em: &mut Em<'c>,
    shared: PointerValue<'c>,
    dst: Ix<'c>,
    global: PointerValue<'c>,
    src: Ix<'c>,
    ok: IntValue<'c>,
    h: BasicTypeEnum<'c>,
    dt: DType,
) -> R<()> {
    let d = em.addr(h, shared, dst)?;
    let safe = em.select(ok, src, em.ix(0))?.into_int_value();
    let s = em.addr(em.storage_type(dt)?, global, safe)?;
    let bytes = em.select(ok, em.i32c(16), em.i32c(0))?;
    em.asm("cp.async.cg.shared.global [$0], [$1], 16, $2;", "l,l,r,~{memory}", None, &[d.into(), s.into(), bytes], true)?;
    Ok(())
}

/// `ldmatrix.x4` (optionally `.trans`) at element `idx` of a shared array: four 32-bit
/// registers, each two 16-bit elements.
pub(crate) fn ldmatrix_x4<'c>(
    em: &mut Em<'c>,
    arr: PointerValue<'c>,
    idx: Ix<'c>,
    h: BasicTypeEnum<'c>,
    trans: bool,
) -> R<[IntValue<'c>; 4]> {
    let a = em.addr(h, arr, idx)?;
    let i = em.i32t().into();
    let ret = em.cx.struct_type(&[i, i, i, i], false).into();
    let text = format!("ldmatrix.sync.aligned.m8n8.x4{}.shared.b16 {{$0, $1, $2, $3}}, [$4];", if trans { ".trans" } else { "" });
    let v = em
        .asm(&text, "=r,=r,=r,=r,l,~{memory}", Some(ret), &[a.into()], true)?
        .ok_or_else(|| crate::codegen::CodegenError::Internal("ldmatrix without a result".into()))?;
    Ok([
        em.field(v, 0)?.into_int_value(),
        em.field(v, 1)?.into_int_value(),
        em.field(v, 2)?.into_int_value(),
        em.field(v, 3)?.into_int_value(),
    ])
}
