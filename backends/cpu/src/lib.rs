//! The CPU target. Today: the rules and the cost model the optimizer extracts under (so
//! `kiln compile --target cpu --emit opt-ir` shows what a CPU would run); code generation
//! through Cranelift is not built yet, and [`Cpu`]'s `emit` says so.

pub mod cost;
pub mod rules;

pub use cost::CpuCost;

use kiln_backend::{Backend, BackendError, EmitOptions, Emitted, SupportReport, Target, TargetError};
use kiln_ir::{Graph, Op, TensorType};
use kiln_passes::eqsat::Rule;

/// The host CPU as a kiln target.
#[derive(Debug, Default)]
pub struct Cpu {
    cost: CpuCost,
}

impl Backend for Cpu {
    fn target(&self) -> Target {
        Target::Cpu
    }

    /// Every op: the reference semantics run anywhere.
    fn op_support(&self, _: &Op, _: &[Option<&TensorType>], _: &[TensorType]) -> Result<(), String> {
        Ok(())
    }

    fn rules(&self) -> Vec<Rule> {
        rules::rules()
    }

    fn op_cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        self.cost.cost(op, ins, outs)
    }

    fn support(&self, g: &Graph) -> Result<SupportReport, BackendError> {
        Ok(SupportReport::every_op(g, "no code generator yet (Cranelift)"))
    }

    fn emit(&self, _: &Graph, _: &EmitOptions) -> Result<Emitted, BackendError> {
        Err(BackendError::Unsupported(Box::new(TargetError::NotBuilt(Target::Cpu))))
    }
}
