//! Roofline cost of one op on an NVIDIA GPU.
//!
//! | | sm_90 (H100 SXM) | sm_80 (A100 80 GB) |
//! |---|---|---|
//! | HBM bandwidth | 3.0 TB/s | 2.0 TB/s |
//! | fp16/bf16 tensor core | ~750 TFLOP/s | 312 TFLOP/s |
//! | fp32 (no TF32) | ~50 TFLOP/s | 19.5 TFLOP/s |
//! | int8 tensor core | ~1500 TOP/s | 624 TOP/s |
//! | launch | 2 µs | 2 µs |
//!
//! Convolution in 16-bit floats reaches the tensor cores only in NHWC (implicit GEMM over
//! channels-last tiles); in NCHW its flops run at the fp32 vector rate.
//!
//! What a GPU cannot run at all is not a cost: it is the backend's `op_support` (`lib.rs`).

use kiln_ir::ops::Format;
use kiln_ir::{DType, Op, TensorType};
use kiln_passes::eqsat::roofline::Peaks;

#[derive(Clone, Copy, Debug)]
pub struct CudaCost {
    pub arch: u32,
    peaks: Peaks,
}

impl CudaCost {
    pub fn sm90() -> CudaCost {
        CudaCost {
            arch: 90,
            peaks: Peaks { bytes_per_us: 3.0e6, matrix_f16: 7.5e8, matrix_f32: 5.0e7, matrix_i8: 1.5e9, vector: 5.0e7, launch_us: 2.0 },
        }
    }
    pub fn sm80() -> CudaCost {
        CudaCost {
            arch: 80,
            peaks: Peaks { bytes_per_us: 2.0e6, matrix_f16: 3.12e8, matrix_f32: 1.95e7, matrix_i8: 6.24e8, vector: 1.95e7, launch_us: 2.0 },
        }
    }
}

impl CudaCost {
    /// The roofline cost of one op (microseconds).
    pub fn cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        let nchw_conv = matches!(op, Op::Conv { .. } | Op::ConvFused { format: Format::Nchw, .. });
        if nchw_conv && outs.first().is_some_and(|t| matches!(t.dtype, DType::F16 | DType::BF16)) {
            return Peaks { matrix_f16: self.peaks.vector, ..self.peaks }.cost(op, ins, outs);
        }
        self.peaks.cost(op, ins, outs)
    }
}
