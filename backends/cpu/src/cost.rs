//! Roofline cost of one op on a small x86-64 host (the 2-core machine kiln is developed on):
//! 20 GB/s of memory bandwidth, 100 GFLOP/s for matrix math in any dtype (AVX2 FMA on two
//! cores), 25 GFLOP/s for other math, 1 µs per op of dispatch. Every op is feasible: the
//! reference semantics run anywhere.

use kiln_ir::{Op, TensorType};
use kiln_passes::eqsat::roofline::Peaks;

#[derive(Clone, Copy, Debug)]
pub struct CpuCost {
    peaks: Peaks,
}

impl Default for CpuCost {
    fn default() -> CpuCost {
        CpuCost {
            peaks: Peaks { bytes_per_us: 2.0e4, matrix_f16: 1.0e5, matrix_f32: 1.0e5, matrix_i8: 1.0e5, vector: 2.5e4, launch_us: 1.0 },
        }
    }
}

impl CpuCost {
    /// The roofline cost of one op (microseconds).
    pub fn cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        self.peaks.cost(op, ins, outs)
    }
}
