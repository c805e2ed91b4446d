//! The optimizer as a target configures it: its rules and cost model, then the classic pipeline,
//! equality saturation and memory planning, with the report `kiln compile --report` writes.

use kiln_ir::Graph;
use kiln_passes::eqsat::{self, CostModel, EqsatReport, Limits, Rule};
use kiln_target::Target;
use std::time::Instant;

/// The rules and cost model of `target` (`ref` optimizes like `cpu`).
pub fn for_target(target: Target) -> (Vec<Rule>, Box<dyn CostModel>) {
    match target {
        Target::Sm90 => (kiln_cuda::rules::rules(), Box::new(kiln_cuda::CudaCost::sm90())),
        Target::Sm80 => (kiln_cuda::rules::rules(), Box::new(kiln_cuda::CudaCost::sm80())),
        Target::Ascend910B => (kiln_ascend::rules::rules(), Box::new(kiln_ascend::AscendCost::default())),
        Target::Ref | Target::Cpu => (kiln_cpu::rules::rules(), Box::new(kiln_cpu::CpuCost::default())),
    }
}

/// What `kiln compile --report` writes.
#[derive(Debug, Clone)]
pub struct Report {
    pub target: Target,
    pub eqsat: EqsatReport,
    pub arena_bytes: Option<usize>,
    pub arena_lower_bound_bytes: Option<usize>,
    pub compile_ms: f64,
}

impl Report {
    pub fn to_json(&self) -> serde_json::Value {
        let e = &self.eqsat;
        serde_json::json!({
            "target": self.target.name(),
            "ops_before": e.ops_before,
            "ops_after": e.ops_after,
            "kernels": e.kernels,
            "rules_fired": e.rules_fired,
            "stop_reason": e.stop_reason.to_string(),
            "iterations": e.iterations,
            "enodes": e.enodes,
            "eclasses": e.eclasses,
            "extraction": e.extraction.name(),
            "estimated_cost_us": e.cost_us,
            "eqsat_ms": e.eqsat_ms,
            "compile_ms": self.compile_ms,
            "arena_bytes": self.arena_bytes,
            "arena_lower_bound_bytes": self.arena_lower_bound_bytes,
        })
    }
}

/// Classic pipeline, then equality saturation for `target`, then memory planning (when shapes
/// are static). `started` is when compilation began (import included) for `compile_ms`.
pub fn optimize(g: &Graph, target: Target, started: Instant) -> anyhow::Result<(Graph, Report)> {
    let mut g = g.clone();
    kiln_passes::run_pipeline(&mut g, None)?;
    let (rules, model) = for_target(target);
    let (out, eqsat) = eqsat::optimize(&g, &rules, model.as_ref(), Limits::default())?;
    kiln_ir::verify(&out).map_err(|e| anyhow::anyhow!("internal error: the optimized graph does not verify: {e}"))?;
    let plan = kiln_passes::plan_memory(&out).ok();
    let report = Report {
        target,
        eqsat,
        arena_bytes: plan.as_ref().map(|p| p.arena_bytes),
        arena_lower_bound_bytes: plan.as_ref().map(|p| p.lower_bound_bytes),
        compile_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    Ok((out, report))
}

/// Whether `optimize` failed because the target has no kernel for some op (rather than for a
/// bug): the message names the ops.
pub fn is_infeasible(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<kiln_passes::eqsat::OptimizeError>(), Some(kiln_passes::eqsat::OptimizeError::Infeasible { .. }))
}
