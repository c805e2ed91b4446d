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
//! Infeasible: f64 math (neither cube nor vector units compute in f64; a Cast to or from f64 is
//! allowed, GE places it on the AI CPU), float8/float4 (not in the 910B's Mmad dtypes) and
//! control flow (If, Loop, Scan).

use kiln_ir::ops::Format;
use kiln_ir::{DType, Op, TensorType};
use kiln_passes::eqsat::roofline::{dtypes_within, Peaks};
use kiln_passes::eqsat::{CostModel, INFEASIBLE};

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

fn unsupported(d: DType) -> bool {
    matches!(d, DType::F64 | DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F8E8M0 | DType::F4E2M1)
}

impl CostModel for AscendCost {
    fn name(&self) -> &'static str {
        "910b"
    }

    fn op_cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        if op.is_control_flow() {
            return INFEASIBLE;
        }
        // Cast converts to and from f64 on the AI CPU (CANN registers an AI CPU Cast kernel
        // with DT_DOUBLE); every other op would compute in it.
        let converts = matches!(op, Op::Cast { .. } | Op::CastLike { .. });
        if dtypes_within(op, ins, outs).into_iter().any(|d| unsupported(d) && !(converts && d == DType::F64)) {
            return INFEASIBLE;
        }
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
