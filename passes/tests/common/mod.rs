//! Shared by the optimizer's tests: a GPU-like cost model (H100 figures) so that fusion pays.

#![allow(dead_code)] // each test binary uses part of this module

pub mod rule_check;

use kiln_ir::{Op, TensorType};
use kiln_passes::eqsat::roofline::Peaks;
use kiln_passes::eqsat::CostModel;

pub struct Gpu;

impl CostModel for Gpu {
    fn name(&self) -> &'static str {
        "test-gpu"
    }
    fn op_cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        Peaks { bytes_per_us: 3.0e6, matrix_f16: 7.5e8, matrix_f32: 5.0e7, matrix_i8: 1.5e9, vector: 5.0e7, launch_us: 2.0 }
            .cost(op, ins, outs)
    }
}
