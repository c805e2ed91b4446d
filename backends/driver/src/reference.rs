//! The reference target (`--target ref`): the graph optimized as for a CPU, verified, and
//! written as IR text, which the reference interpreter runs.

use kiln_backend::{Backend, BackendError, EmitOptions, Emitted, Output, SupportReport, Target};
use kiln_ir::{Dim, Graph, Op, TensorType};
use kiln_passes::eqsat::Rule;

/// The reference interpreter as a target: it runs every op.
#[derive(Debug, Default)]
pub struct Reference {
    cost: kiln_cpu::CpuCost,
}

impl Backend for Reference {
    fn target(&self) -> Target {
        Target::Ref
    }

    fn op_support(&self, _: &Op, _: &[Option<&TensorType>], _: &[TensorType]) -> Result<(), String> {
        Ok(())
    }

    fn rules(&self) -> Vec<Rule> {
        kiln_cpu::rules::rules()
    }

    fn op_cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        self.cost.cost(op, ins, outs)
    }

    fn support(&self, g: &Graph) -> Result<SupportReport, BackendError> {
        Ok(SupportReport::every_op(g, "interpreted"))
    }

    fn emit(&self, g: &Graph, _: &EmitOptions) -> Result<Emitted, BackendError> {
        let symbolic = g.inputs.iter().any(|&i| g.value(i).ty.shape.0.iter().any(|d| matches!(d, Dim::Sym(_))));
        let summary = format!("{} nodes{}", g.nodes.len(), if symbolic { ", symbolic input dims" } else { "" });
        Ok(Emitted { output: Output::Text(kiln_ir::text::print(g)), summary, notes: vec![] })
    }
}
