//! The compile pipeline after import: the classic passes, equality saturation under the
//! target's rules and cost (its [`Backend`]), verification and memory planning, with the report
//! `kiln compile --report` writes.

use crate::error::DriverError;
use kiln_backend::{Backend, Costing, Target};
use kiln_ir::Graph;
use kiln_passes::eqsat::{self, EqsatReport, Limits};
use std::time::Instant;

/// What the optimizer did (`kiln compile --report`).
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

/// The classic pipeline, then equality saturation for `backend`, then memory planning (when
/// shapes are static). `started` is when compilation began (import included), for `compile_ms`.
pub fn optimize_for(g: &Graph, backend: &dyn Backend, started: Instant) -> Result<(Graph, Report), DriverError> {
    let mut g = g.clone();
    let t = Instant::now();
    kiln_passes::run_pipeline(&mut g, None).map_err(|e| DriverError::pass("running the classic passes", e))?;
    tracing::info!("classic passes: {} nodes, {:.0} ms", g.nodes.len(), t.elapsed().as_secs_f64() * 1e3);
    // Ops the target has no kernel for but that decompose into ops it may have.
    let refused = |n: &kiln_ir::Node, g: &Graph| {
        let ins: Vec<Option<&kiln_ir::TensorType>> = n.inputs.iter().map(|i| i.map(|v| &g.value(v).ty)).collect();
        let outs: Vec<kiln_ir::TensorType> = n.outputs.iter().flatten().map(|&o| g.value(o).ty.clone()).collect();
        backend.op_support(&n.op, &ins, &outs).is_err()
    };
    // An If the target cannot run: both branches and a select, where their types agree (again
    // for the Ifs an inlined branch held, a few levels deep).
    for _ in 0..4 {
        if kiln_passes::if_to_select(&mut g, refused).map_err(|e| DriverError::Internal(format!("selecting an If's branches: {e}")))? == 0 {
            break;
        }
        g.reinfer().map_err(|e| DriverError::Internal(format!("selecting If branches: {e}")))?;
    }
    let unrolled =
        kiln_passes::unroll_recurrent(&mut g, refused).map_err(|e| DriverError::Internal(format!("unrolling a recurrent op: {e}")))?;
    if unrolled > 0 {
        g.reinfer().map_err(|e| DriverError::Internal(format!("unrolling recurrent ops: {e}")))?;
        tracing::info!("{unrolled} recurrent op(s) unrolled for {}: {} nodes", backend.target(), g.nodes.len());
    }
    // After unrolling: a dynamically quantized LSTM unrolls into DynamicQuantizeLinear.
    if kiln_passes::integer_ops_as_float(&mut g, refused).map_err(|e| DriverError::Internal(format!("integer products as float: {e}")))? > 0
    {
        g.reinfer().map_err(|e| DriverError::Internal(format!("integer products as float: {e}")))?;
    }
    if kiln_passes::fuse_long_chains(&mut g) > 0 {
        g.reinfer().map_err(|e| DriverError::Internal(format!("fusing long elementwise chains: {e}")))?;
    }
    let (out, eqsat) = eqsat::optimize(&g, &backend.rules(), &Costing(backend), Limits::default()).map_err(DriverError::Optimize)?;
    tracing::info!(
        "e-graph for {}: {} → {} ops, {} kernels; {} iterations ({}), {} e-nodes, {:.0} ms",
        backend.target(),
        eqsat.ops_before,
        eqsat.ops_after,
        eqsat.kernels,
        eqsat.iterations,
        eqsat.stop_reason,
        eqsat.enodes,
        eqsat.eqsat_ms
    );
    kiln_ir::verify(&out).map_err(|e| DriverError::Internal(e.to_string()))?;
    let plan = kiln_passes::plan_memory(&out).ok();
    let report = Report {
        target: backend.target(),
        eqsat,
        arena_bytes: plan.as_ref().map(|p| p.arena_bytes),
        arena_lower_bound_bytes: plan.as_ref().map(|p| p.lower_bound_bytes),
        compile_ms: started.elapsed().as_secs_f64() * 1e3,
    };
    Ok((out, report))
}

/// [`optimize_for`] the backend of `target`.
pub fn optimize(g: &Graph, target: Target, started: Instant) -> Result<(Graph, Report), DriverError> {
    optimize_for(g, crate::backend(target)?, started)
}

/// How each op of `g` (imported and simplified) runs on `backend` after optimization; when the
/// optimizer finds no program the target can run, how each op of the graph before
/// optimization does, so that every node the target cannot run is named with the reason.
pub fn support(g: &Graph, backend: &dyn Backend) -> Result<kiln_backend::SupportReport, DriverError> {
    let g = match optimize_for(g, backend, Instant::now()) {
        Ok((opt, _)) => opt,
        Err(DriverError::Optimize(eqsat::OptimizeError::Infeasible { .. })) => {
            let mut g = g.clone();
            kiln_passes::run_pipeline(&mut g, None).map_err(|e| DriverError::pass("running the classic passes", e))?;
            g
        }
        Err(e) => return Err(e),
    };
    backend.support(&g).map_err(|source| DriverError::Backend { target: backend.target(), source })
}
