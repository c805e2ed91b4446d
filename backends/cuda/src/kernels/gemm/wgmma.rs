//! The sm_90a tensor-core GEMM for large f16/bf16 products: `wgmma.mma_async` on operands
//! that shared-memory descriptors describe, f32 accumulators in registers, tiles streamed by
//! `cp.async` (16-byte chunks, zero-filled outside the matrices) through a 4-stage ring.
//!
//! A block of two warpgroups (256 threads) computes a 128 x `bn` tile (`bn` 256, 128 or 64:
//! the widest that still fills the GPU); each warpgroup issues `m64n{bn}k16` for its 64 rows,
//! four per 64-deep K tile. Split products share the tile as the `mma.sync` kernel's do
//! (`mma::Mode`): GQA's concatenated Q, K and V columns are one B, mapped back to their
//! outputs by the epilogue; SwiGLU's gate and up parts are one B tile each per stage, both
//! multiplied by the same A tile into their own accumulators, so `silu(gate) * up` is evaluated
//! in registers. Shared memory holds the tiles in the descriptors' 128-byte swizzle:
//! a K-major operand (A; B stored `[N, K]`) as 128-byte rows of 64 K, 16-byte chunk `c` of row
//! `r` at chunk `c ^ (r % 8)`, 8-row groups 1024 bytes apart (the stride byte offset); an
//! MN-major B (`[K, N]`, which the instruction transposes) as 64-column x 8-row atoms swizzled
//! the same way, atoms along K adjacent (stride offset 1024) and along N one K tile's atoms
//! apart (the leading offset). A 16-byte global chunk is one swizzled chunk, and the 8 chunks
//! that consecutive threads copy fill the 32 banks once. Measured on the H200 (4096^3): 72% of
//! cuBLAS, against 41% for `mma.sync` ([`super::mma`]), which still takes the smaller products; on
//! llama-8L's M = 512 products (128 x 64 tiles, SwiGLU in Parts mode) half its time.
//!
//! The ring prefetches two tiles ahead, not three, because `wgmma.wait_group 1` leaves the
//! previous tile's multiplications running: the stage they read is refilled one iteration
//! later, after every thread has passed the barrier that follows its wait.

use super::mma::{a_chunk, b_chunk, commit, copy16, lt, segments, tile_cols, wait_group, within, Chunk, Mode};
use super::Product;
use crate::codegen::llvm::{Em, Ix, Var, R};
use crate::codegen::{blocks, CodegenError, Cx};
use inkwell::types::BasicTypeEnum;
use inkwell::values::BasicValueEnum;
use kiln_ir::DType;

const BM: i64 = 128;
const BK: i64 = 64;
const STAGES: i64 = 4;
const THREADS: i64 = 256;
/// 128-byte swizzle: an 8-row group of 128-byte rows is 1024 bytes, its 16-byte chunk `c` of
/// row `r` stored at chunk `c ^ (r % 8)`.
const SWIZZLE_128B: i64 = 1 << 62;
const GROUP: i64 = 1024;
/// Bytes of one operand's tile per stage (128 rows or columns by 64 of K, 16-bit).
const A_BYTES: i64 = BM * BK * 2;
/// Below this many blocks the `mma.sync` kernel's smaller tiles fill the GPU better.
const MIN_BLOCKS: usize = 96;
/// Dynamic shared memory a block of the H100/H200 may use.
const SMEM_LIMIT: i64 = 227 * 1024;
/// Accumulator columns per warpgroup (of all parts): 128 f32 registers per thread.
const MAX_ACC_COLS: i64 = 256;

/// How the wgmma kernel runs a product.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// B is `[K, N]` (MN-major); otherwise `[N, K]`.
    b_mn_major: bool,
    /// Columns per block (of each part in Parts mode): 256, 128 or 64, the widest that still
    /// fills the GPU.
    bn: i64,
    mode: Mode,
}

impl Plan {
    /// B tiles per stage: one per part in Parts mode, else one.
    fn b_tiles(&self, pr: &Product) -> i64 {
        if self.mode == Mode::Parts {
            pr.parts.len() as i64
        } else {
            1
        }
    }
    fn stage_bytes(&self, pr: &Product) -> i64 {
        A_BYTES + self.b_tiles(pr) * self.bn * BK * 2
    }
}

/// The plan when the wgmma kernel runs `pr`.
pub(crate) fn plan(pr: &Product) -> Option<Plan> {
    let g = &pr.geo;
    let b_mn_major = super::mma::streamable(pr)?;
    let mode = super::mma::mode(pr, b_mn_major)?;
    let cols = super::mma::tile_cols(pr, &mode);
    let n_blocks = |bn: i64| cols.div_ceil(bn as usize) * g.m.div_ceil(BM as usize) * pr.batch_n();
    // 256 columns measured 17% faster than 128 on a 4096^3 product and 1% on llama-8L (H200).
    [256, 128, 64].into_iter().map(|bn| Plan { b_mn_major, bn, mode: mode.clone() }).find(|p| {
        let fits = STAGES * p.stage_bytes(pr) + GROUP <= SMEM_LIMIT;
        // Accumulators: 64 rows by `bn` per part, f32, over a warpgroup's 128 threads.
        fits && p.b_tiles(pr) * p.bn <= MAX_ACC_COLS && n_blocks(p.bn) >= MIN_BLOCKS
    })
}

/// The 64-bit descriptor of the interleaved operand starting at shared byte address `addr`.
fn descriptor<'c>(em: &Em<'c>, addr: Ix<'c>, lbo: i64, sbo: i64) -> R<Ix<'c>> {
    let start = em.b.build_right_shift(em.b.build_and(addr, em.ix(0x3ffff), "")?, em.ix(4), false, "")?;
    let fixed = ((lbo >> 4) << 16) | ((sbo >> 4) << 32) | SWIZZLE_128B;
    Ok(em.b.build_or(start, em.ix(fixed), "")?)
}

/// Byte offset, within a stage's tile, of the 16-byte chunk holding K elements `k`..`k+8` of
/// row `row` of a K-major operand (128 rows of 64 K: one 128-byte row each).
fn k_major_offset<'c>(em: &Em<'c>, row: Ix<'c>, k: Ix<'c>) -> R<Ix<'c>> {
    let chunk = em.b.build_xor(em.divk(k, 8)?, em.remk(row, 8)?, "")?;
    em.add(em.mulk(row, 128)?, em.mulk(chunk, 16)?)
}

/// The same for columns `n`..`n+8` of K row `k` of an MN-major (`[K, N]`) operand: 64-column
/// by 8-row atoms of 1024 bytes, those along K adjacent, those along N `MN_ATOM` apart.
fn mn_major_offset<'c>(em: &Em<'c>, k: Ix<'c>, n: Ix<'c>) -> R<Ix<'c>> {
    let atom = em.add(em.mulk(em.divk(n, 64)?, MN_ATOM)?, em.mulk(em.divk(k, 8)?, GROUP)?)?;
    let chunk = em.b.build_xor(em.divk(em.remk(n, 64)?, 8)?, em.remk(k, 8)?, "")?;
    em.add(atom, em.add(em.mulk(em.remk(k, 8)?, 128)?, em.mulk(chunk, 16)?)?)
}

/// Bytes between an MN-major tile's 64-column atoms: all of K's atoms of one atom column.
const MN_ATOM: i64 = BK / 8 * GROUP;

/// `wgmma.mma_async m64n{N}k16` accumulating into `acc`: N / 2 f32 per thread, N = 2 x `acc.len()`.
fn wgmma<'c>(em: &Em<'c>, dt: DType, a: Ix<'c>, b: Ix<'c>, b_mn_major: bool, acc: &[Var<'c>]) -> R<()> {
    let t = if dt == DType::F16 { "f16" } else { "bf16" };
    let n = acc.len();
    let regs: Vec<String> = (0..n).map(|i| format!("${i}")).collect();
    let text = format!(
        "{{\n.reg .pred p;\nsetp.ne.b32 p, ${s}, 0;\nwgmma.mma_async.sync.aligned.m64n{bn}k16.f32.{t}.{t} {{{regs}}}, ${a}, ${b}, p, 1, 1, 0, {tb};\n}}",
        s = n + 2,
        bn = 2 * n,
        regs = regs.join(", "),
        a = n,
        b = n + 1,
        tb = u8::from(b_mn_major),
    );
    let mut constraints: Vec<String> = (0..n).map(|_| "=f".to_string()).collect();
    constraints.extend(["l".to_string(), "l".to_string(), "r".to_string()]);
    constraints.extend((0..n).map(|i| i.to_string()));
    let mut args: Vec<BasicValueEnum> = vec![a.into(), b.into(), em.i32c(1).into()];
    for &v in acc {
        args.push(em.get(v)?);
    }
    let f: BasicTypeEnum = em.f32t().into();
    let ret = em.cx.struct_type(&vec![f; n], false).into();
    let d = em
        .asm(&text, &constraints.join(","), Some(ret), &args, true)?
        .ok_or_else(|| CodegenError::Internal("wgmma without a result".into()))?;
    for (i, &v) in acc.iter().enumerate() {
        em.set(v, em.field(d, i as u32)?)?;
    }
    Ok(())
}

fn sync(em: &Em, text: &str) -> R<()> {
    em.asm(text, "~{memory}", None, &[], true).map(|_| ())
}

pub(crate) fn lower<'c>(cx: &mut Cx<'c, '_>, pr: &Product, plan: Plan) -> R<()> {
    let (b_mn_major, bn) = (plan.b_mn_major, plan.bn);
    let b_tiles = plan.b_tiles(pr);
    let stage_bytes = plan.stage_bytes(pr);
    let b_bytes = bn * BK * 2;
    let cols = tile_cols(pr, &plan.mode);
    let g = &pr.geo;
    let dt = pr.at.dtype;
    let no = pr.outs.len();
    let p = cx.begin("_wgmma", &pr.params())?;
    let h: BasicTypeEnum = cx.em.cx.i16_type().into();
    // Stage s: A's tile at s * stage_bytes, B's tiles (one per part in Parts mode) after it.
    // The swizzle repeats every 1024 bytes: tiles start on a multiple (the base is rounded up).
    let smem_bytes = STAGES * stage_bytes + GROUP;
    let smem = cx.em.dynamic_shared(h);
    let em = &mut cx.em;
    let tid = em.sreg("tid.x")?;
    let (wg, lane) = (em.divk(tid, 128)?, em.remk(tid, 32)?);
    let warp = em.remk(em.divk(tid, 32)?, 4)?;
    let j0 = em.mulk(em.sreg("ctaid.x")?, bn)?;
    let m0 = em.mulk(em.sreg("ctaid.y")?, BM)?;
    let z = em.sreg("ctaid.z")?;
    let a_base = em.mulk(crate::kernels::bcast_index(em, z, &g.batch, &g.a_batch)?, (g.m * g.k) as i64)?;
    let b_base = em.mulk(crate::kernels::bcast_index(em, z, &g.batch, &g.b_batch)?, (g.k * g.n) as i64)?;
    let k_tiles = (g.k as i64 + BK - 1) / BK;
    let (a_ptr, b_ptr) = (p[no], p[no + 1]);
    let raw = em.addr(h, smem, em.ix(0))?;
    let pad = em.b.build_and(em.sub(em.ix(GROUP), em.b.build_and(raw, em.ix(GROUP - 1), "")?)?, em.ix(GROUP - 1), "")?;
    let smem_addr = em.add(raw, pad)?;
    let smem_pad = em.divk(pad, 2)?;
    // B's column ranges per tile: each part's own in Parts mode, else the whole product's.
    let b_ranges: Vec<(i64, usize)> = if plan.mode == Mode::Parts { pr.parts.clone() } else { vec![(0, g.n)] };

    let load_tile = |em: &mut Em<'c>, stage: Ix<'c>, kt: Ix<'c>| -> R<()> {
        let k0 = em.mulk(kt, BK)?;
        let a_stage = em.mulk(stage, stage_bytes)?;
        let chunks = BM * BK / 8;
        for q in 0..chunks / THREADS {
            let c = em.addk(tid, q * THREADS)?;
            within(em, c, q * THREADS, THREADS, chunks, |em| {
                let Chunk { row, col: kc, src, ok } = a_chunk(em, pr, c, BK, m0, k0, a_base)?;
                let dst = em.add(smem_pad, em.divk(em.add(a_stage, k_major_offset(em, row, kc)?)?, 2)?)?;
                copy16(em, smem, dst, a_ptr, src, ok, h, dt)
            })?;
        }
        let chunks = bn * BK / 8;
        for (t, &(off, w)) in b_ranges.iter().enumerate() {
            let b_stage = em.addk(a_stage, A_BYTES + t as i64 * b_bytes)?;
            for q in 0..chunks / THREADS {
                let c = em.addk(tid, q * THREADS)?;
                within(em, c, q * THREADS, THREADS, chunks, |em| {
                    let Chunk { row, col, src, ok } = b_chunk(em, pr, c, BK, bn, b_mn_major, j0, k0, b_base, (off, w))?;
                    let dst = if b_mn_major { mn_major_offset(em, row, col)? } else { k_major_offset(em, row, col)? };
                    let dst = em.add(smem_pad, em.divk(em.add(b_stage, dst)?, 2)?)?;
                    copy16(em, smem, dst, b_ptr, src, ok, h, dt)
                })?;
            }
        }
        Ok(())
    };

    // Part t's accumulators: acc[t * bn / 2..(t + 1) * bn / 2].
    let per_tile = (bn / 2) as usize;
    let acc: Vec<Var> = (0..b_tiles * bn / 2).map(|_| em.var(em.f32c(0.0).into())).collect::<R<_>>()?;
    for st in 0..STAGES - 2 {
        let ok = lt(em, em.ix(st), k_tiles as usize)?;
        em.if_(ok, |em| load_tile(em, em.ix(st), em.ix(st)))?;
        commit(em)?;
    }
    em.for_n(k_tiles, |em, kt| {
        wait_group(em, STAGES - 3)?;
        sync(em, "fence.proxy.async.shared::cta;")?;
        em.barrier()?;
        let next = em.addk(kt, STAGES - 2)?;
        let ok = lt(em, next, k_tiles as usize)?;
        em.if_(ok, |em| load_tile(em, em.remk(next, STAGES)?, next))?;
        commit(em)?;
        let a_stage = em.add(smem_addr, em.mulk(em.remk(kt, STAGES)?, stage_bytes)?)?;
        let a_rows = em.add(a_stage, em.mulk(wg, 64 * 128)?)?;
        sync(em, "wgmma.fence.sync.aligned;")?;
        for s in 0..BK / 16 {
            // K-major: a k16 step is 32 bytes along the swizzled rows (the leading offset is
            // unused); MN-major: two 8-row atoms.
            let da = descriptor(em, em.addk(a_rows, s * 32)?, 16, GROUP)?;
            for t in 0..b_tiles {
                let b_stage = em.addk(a_stage, A_BYTES + t * b_bytes)?;
                let db = if b_mn_major {
                    descriptor(em, em.addk(b_stage, s * 2 * GROUP)?, MN_ATOM, GROUP)?
                } else {
                    descriptor(em, em.addk(b_stage, s * 32)?, 16, GROUP)?
                };
                let part = &acc[t as usize * per_tile..(t as usize + 1) * per_tile];
                wgmma(em, dt, da, db, b_mn_major, part)?;
            }
        }
        sync(em, "wgmma.commit_group.sync.aligned;")?;
        sync(em, "wgmma.wait_group.sync.aligned 1;")
    })?;
    sync(em, "wgmma.wait_group.sync.aligned 0;")?;
    wait_group(em, 0)?;

    // Epilogue: register 4c + r of a part holds row 16 * warp + lane / 4 + 8 * (r / 2) of the
    // warpgroup's 64, column 8c + 2 * (lane % 4) + r % 2.
    let row0 = em.add(em.add(m0, em.mulk(wg, 64)?)?, em.add(em.mulk(warp, 16)?, em.divk(lane, 4)?)?)?;
    let col0 = em.add(j0, em.mulk(em.remk(lane, 4)?, 2)?)?;
    for seg in segments(pr, &plan.mode)? {
        let touches = seg.touches(em, j0, bn)?;
        em.if_(touches, |em| {
            for j in 0..per_tile {
                let (c, r) = (j as i64 / 4, j as i64 % 4);
                let m = em.addk(row0, 8 * (r / 2))?;
                let col = em.addk(col0, 8 * c + r % 2)?;
                let slot = |s: usize| if plan.mode == Mode::Parts { s } else { 0 };
                seg.emit(em, pr, &p, z, m, col, |em, s| Ok(em.get(acc[slot(s) * per_tile + j])?.into_float_value()))?;
            }
            Ok(())
        })?;
    }
    let grid = [blocks(cols, bn as usize)?, blocks(g.m, BM as usize)?, pr.batch_n() as u32];
    cx.launch(grid, [THREADS as u32, 1, 1], smem_bytes as u32)
}
