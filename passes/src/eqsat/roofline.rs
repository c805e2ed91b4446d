//! The roofline every target's cost model is built from: an op costs a per-launch constant
//! plus the larger of its memory time (bytes moved over bandwidth) and its compute time (matrix
//! flops over the matrix unit's peak for its dtype, other flops over the vector peak). Views
//! cost nothing. Symbolic dims count as [`SYMBOLIC_DIM`] for costing only.

use kiln_ir::{DType, Op, TensorType};

/// The size assumed for a symbolic dim when costing.
pub const SYMBOLIC_DIM: usize = 128;

/// The op and, for a fused op, every op of its body: what a target must be able to run.
pub fn ops_within(op: &Op) -> Vec<&Op> {
    let mut v = vec![op];
    if op.is_fused() {
        for g in op.subgraphs() {
            v.extend(g.nodes.iter().map(|n| &n.op));
        }
    }
    v
}

/// Every dtype `op` reads, writes or computes in (fused bodies included).
pub fn dtypes_within(op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> Vec<DType> {
    let mut v: Vec<DType> = ins.iter().flatten().map(|t| t.dtype).chain(outs.iter().map(|t| t.dtype)).collect();
    if op.is_fused() {
        for g in op.subgraphs() {
            v.extend(g.values.iter().map(|x| x.ty.dtype));
        }
    }
    v
}

/// A target's peak figures.
#[derive(Clone, Copy, Debug)]
pub struct Peaks {
    /// Memory bandwidth, bytes per microsecond (TB/s × 1e6).
    pub bytes_per_us: f64,
    /// Matrix-unit flops per microsecond for 16-bit floats, f32 and 8-bit integers.
    pub matrix_f16: f64,
    pub matrix_f32: f64,
    pub matrix_i8: f64,
    /// Vector flops per microsecond.
    pub vector: f64,
    /// Fixed cost of one kernel launch, microseconds.
    pub launch_us: f64,
}

/// Bytes and flops of one op.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Work {
    pub bytes: f64,
    pub matrix_flops: f64,
    pub vector_flops: f64,
}

pub fn numel(t: &TensorType) -> f64 {
    t.shape.0.iter().map(|d| d.known().unwrap_or(SYMBOLIC_DIM) as f64).product()
}

fn bytes(t: &TensorType) -> f64 {
    numel(t) * t.dtype.bits() as f64 / 8.0
}

fn dim(t: &TensorType, i: usize) -> f64 {
    t.shape.0.get(i).map_or(1.0, |d| d.known().unwrap_or(SYMBOLIC_DIM) as f64)
}

/// The work of `op` on inputs `ins` producing `outs`.
pub fn work(op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> Work {
    let io: f64 = ins.iter().flatten().map(|t| bytes(t)).sum::<f64>() + outs.iter().map(bytes).sum::<f64>();
    let out_elems: f64 = outs.iter().map(numel).sum();
    let biggest = ins.iter().flatten().map(|t| numel(t)).fold(out_elems, f64::max);
    let body_len = |g: &kiln_ir::Graph| g.nodes.len().max(1) as f64;
    let (matrix_flops, vector_flops) = match op {
        Op::MatMul {}
        | Op::MatMulFused { .. }
        | Op::Gemm { .. }
        | Op::MatMulInteger {}
        | Op::QLinearMatMul {}
        | Op::MatMulQ8 {}
        | Op::MatMulQ4 { .. } => {
            let (a, b) = match op {
                Op::QLinearMatMul {} => (ins.first().copied().flatten(), ins.get(3).copied().flatten()),
                _ => (ins.first().copied().flatten(), ins.get(1).copied().flatten()),
            };
            let (Some(a), Some(b)) = (a, b) else { return Work { bytes: io, ..Work::default() } };
            let (ra, rb) = (a.shape.rank(), b.shape.rank());
            let k = dim(a, ra.saturating_sub(1));
            let m = if ra >= 2 { dim(a, ra - 2) } else { 1.0 };
            let n = if rb >= 2 { dim(b, rb - 1) } else { 1.0 };
            let batch = (numel(a) / (m * k).max(1.0)).max(numel(b) / (k * n).max(1.0));
            let acc = batch * m * n;
            let epilogue = match op {
                Op::MatMulFused { body, .. } => acc * body_len(body),
                _ => 0.0,
            };
            (2.0 * acc * k, epilogue)
        }
        Op::Conv { .. } | Op::ConvFused { .. } | Op::ConvInteger { .. } | Op::ConvTranspose { .. } => {
            let w = ins.get(1).copied().flatten();
            let per_out = w.map_or(1.0, |w| numel(w) / dim(w, 0).max(1.0));
            let conv_out = match op {
                Op::ConvTranspose { .. } => numel(ins[0].unwrap_or(&outs[0])) * w.map_or(1.0, |w| dim(w, 1)),
                _ => out_elems,
            };
            let epilogue = match op {
                Op::ConvFused { body, .. } => out_elems * body_len(body),
                _ => 0.0,
            };
            (2.0 * conv_out * per_out, epilogue)
        }
        Op::Attention { .. } => {
            // Q [b, h, sq, d] (or 3-D) against K [b, hk, sk, d]: QKᵀ and PV.
            let q = ins.first().copied().flatten();
            let k = ins.get(1).copied().flatten();
            let (Some(q), Some(k)) = (q, k) else { return Work { bytes: io, ..Work::default() } };
            let sk = dim(k, k.shape.rank().saturating_sub(2));
            let mm = 4.0 * numel(q) * sk;
            (mm, 5.0 * numel(q) / dim(q, q.shape.rank() - 1).max(1.0) * sk)
        }
        Op::FusedElementwise { body } => (0.0, out_elems * body_len(body)),
        _ => (0.0, 4.0 * biggest),
    };
    Work { bytes: io, matrix_flops, vector_flops }
}

impl Peaks {
    /// Cost of `op` in microseconds.
    pub fn cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        if op.is_view() {
            return 0.0;
        }
        let w = work(op, ins, outs);
        // A W8A8 product multiplies int8 (its activation is quantized as it runs).
        let dt = if matches!(op, Op::MatMulQ8 {}) { Some(DType::I8) } else { ins.iter().flatten().next().map(|t| t.dtype) };
        let matrix_peak = match dt {
            Some(DType::F16 | DType::BF16) => self.matrix_f16,
            Some(DType::I8 | DType::U8) => self.matrix_i8,
            _ => self.matrix_f32,
        };
        let t = (w.bytes / self.bytes_per_us).max(w.matrix_flops / matrix_peak + w.vector_flops / self.vector);
        self.launch_us + t
    }
}
