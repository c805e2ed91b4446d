//! Roofline cost of one op on an Ascend 910B2 (figures from ../shared/ASCEND.md §3):
//!
//! | | 910B2 |
//! |---|---|
//! | GM bandwidth | ≈1.5 TB/s |
//! | cube fp16/bf16 | ≈300 TFLOP/s practical (353.9 derived peak) |
//! | cube int8 | ≈600 TOP/s (2× fp16, derived) |
//! | cube fp32 | ≈75 TFLOP/s (assumed ¼ of fp16: Mmad takes f32 at a lower rate; not a vendor figure) |
//! | vector | ≈11 TFLOP/s (fp16, derived) |
//! | launch | 3 µs (assumed; no public figure) |
//!
//! The cube unit reads convolution activations in NC1HWC0: a convolution left in NCHW pays for
//! the TransData pair GE inserts around it (input to 5HD, result back).
//!
//! What the 910B cannot run at all is not a cost: it is the backend's `op_support` (`lib.rs`).

use kiln_ir::ops::Format;
use kiln_ir::{Op, TensorType};
use kiln_passes::eqsat::roofline::Peaks;

#[derive(Clone, Copy, Debug)]
pub struct AscendCost {
    peaks: Peaks,
}

impl Default for AscendCost {
    fn default() -> AscendCost {
        AscendCost {
            peaks: Peaks { bytes_per_us: 1.5e6, matrix_f16: 3.0e8, matrix_f32: 7.5e7, matrix_i8: 6.0e8, vector: 1.1e7, launch_us: 3.0 },
        }
    }
}

impl AscendCost {
    /// The roofline cost of one op (microseconds).
    pub fn cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        let conv = self.peaks.cost(op, ins, outs);
        match (op, ins.first().copied().flatten(), outs.first()) {
            (Op::Conv { .. } | Op::ConvFused { format: Format::Nchw, .. }, Some(x), Some(y)) if x.shape.rank() == 4 => {
                let to = Op::ToFormat { format: Format::Nc1hwc0, align: crate::rules::c0(x.dtype) };
                let channels = y.shape.0.get(1).and_then(|d| d.known()).unwrap_or(0) as i64;
                let from = Op::FromFormat { format: Format::Nc1hwc0, align: crate::rules::c0(y.dtype), channels };
                // The converted shapes differ from x and y by padding only; their bytes are close enough.
                conv + self.peaks.cost(&to, &[Some(x)], std::slice::from_ref(x))
                    + self.peaks.cost(&from, &[Some(y)], std::slice::from_ref(y))
            }
            _ => conv,
        }
    }
}
