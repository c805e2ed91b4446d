//! The static split of a kernel's elements over the 910B2's vector cores and into tiles that
//! fit the Unified Buffer (ASCEND.md §3): 48 AIV cores, 192 KiB of UB each, less 256 B and the
//! 8 KiB AscendC may reserve. Core chunks start on 32-byte boundaries; each tile's queues are
//! double-buffered.

use super::program::Program;
use kiln_ir::DType;

/// Vector (AIV) cores of the 910B2.
pub const VECTOR_CORES: usize = 48;
/// Unified Buffer bytes per AIV core.
pub const UB_BYTES: usize = 196_608;
/// What a kernel may use of it: 256 B less, and 8 KiB less again for AscendC's reserve.
pub const UB_USABLE: usize = UB_BYTES - 256 - 8192;
/// Queue depth: two buffers per queue, so that copies overlap compute.
pub const BUFFER_NUM: usize = 2;
/// Fewest elements worth a core of their own.
const MIN_PER_CORE: usize = 1024;
/// Tiles are whole 256-byte vector repeats of fp16 (128 elements).
const TILE_QUANTUM: usize = 128;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tiling {
    /// Elements of the output.
    pub total: usize,
    /// Elements per core (the last core takes the rest).
    pub block_length: usize,
    /// Elements per tile.
    pub tile_length: usize,
    /// Cores launched.
    pub blocks: usize,
    /// UB bytes the kernel allocates.
    pub ub_bytes: usize,
}

/// Bytes one element of every input tile and the output tile take (each double-buffered),
/// plus the scratch and constant slots (one f32-sized element each).
fn bytes_per_element(p: &Program) -> usize {
    let io: usize = p.inputs.iter().filter(|i| !i.scalar).map(|i| i.dtype.bits() / 8).sum::<usize>() + p.out.bits() / 8;
    BUFFER_NUM * io + 4 * (p.temps.len() + p.consts.len())
}

fn round_up(x: usize, m: usize) -> usize {
    x.div_ceil(m) * m
}

/// The tiling of `p` over `total` elements.
pub fn tiling(p: &Program, total: usize) -> Result<Tiling, String> {
    if total == 0 {
        return Err("an empty output".into());
    }
    let narrow = p.inputs.iter().filter(|i| !i.scalar).map(|i| i.dtype).chain([p.out]).any(|d| d == DType::F16);
    // Elements per 32 bytes of the narrowest tensor: core chunks and full tiles start aligned.
    let align = if narrow { 16 } else { 8 };
    let want = total.div_ceil(MIN_PER_CORE).clamp(1, VECTOR_CORES);
    let block_length = round_up(total.div_ceil(want), align);
    let blocks = total.div_ceil(block_length);
    let per = bytes_per_element(p);
    let most = UB_USABLE / per / TILE_QUANTUM * TILE_QUANTUM;
    if most == 0 {
        return Err(format!("{per} bytes per element leave no tile in the Unified Buffer"));
    }
    let tile_length = most.min(block_length);
    Ok(Tiling { total, block_length, tile_length, blocks, ub_bytes: per * tile_length })
}
