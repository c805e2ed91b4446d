//! The CPU target. Today: the rules and the cost model the optimizer extracts under (so
//! `kiln compile --target cpu --emit opt-ir` shows what a CPU would run); code generation
//! through Cranelift is not built yet, and [`Cpu`]'s `emit` says so.

pub mod cost;
pub mod rules;

pub use cost::CpuCost;

use kiln_backend::{Backend, BackendError, EmitOptions, Emitted, SupportReport, Target, TargetError, Unsupported};
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

    /// Nothing runs yet: every node is reported, with the reason.
    fn support(&self, g: &Graph) -> Result<SupportReport, BackendError> {
        let reason = "the cpu target's code generator (Cranelift) is not built yet";
        let unsupported =
            g.nodes.iter().map(|n| Unsupported { node: n.name.clone(), op: n.op.kind_name().into(), reason: reason.into() }).collect();
        Ok(SupportReport { ops: vec![], unsupported })
    }

    fn emit(&self, _: &Graph, _: &EmitOptions) -> Result<Emitted, BackendError> {
        Err(BackendError::Unsupported(Box::new(TargetError::NotBuilt(Target::Cpu))))
    }
}
