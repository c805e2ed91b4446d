//! The equality-saturation optimizer: the graph goes into an egg e-graph ([`lang`],
//! [`analysis`], [`convert`]), the rule sets grow it under limits ([`rule`]), and the cheapest
//! equivalent program under the target's cost model comes back out ([`extract`]).

pub mod analysis;
pub mod convert;
pub mod extract;
pub mod lang;
pub mod roofline;
pub mod rule;

use kiln_ir::{Graph, NodeError};
use std::collections::BTreeMap;
use std::time::Instant;

pub use egg::Id;
pub use extract::{CostModel, ExtractMethod, INFEASIBLE};
pub use rule::{Limits, Rule, StopReason};

/// What one optimizer run did.
#[derive(Clone, Debug)]
pub struct EqsatReport {
    pub ops_before: usize,
    pub ops_after: usize,
    /// Ops of the result that are not free views.
    pub kernels: usize,
    pub rules_fired: BTreeMap<&'static str, usize>,
    pub stop_reason: StopReason,
    pub iterations: usize,
    pub enodes: usize,
    pub eclasses: usize,
    pub extraction: ExtractMethod,
    /// The cost model's estimate of the result (microseconds).
    pub cost_us: f64,
    pub eqsat_ms: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimizeError {
    #[error("the {target} target cannot run: {ops}")]
    Infeasible { target: &'static str, ops: String },
    #[error("optimized graph does not type-check: {0}")]
    Type(#[from] NodeError),
    #[error("internal optimizer error (a kiln bug, please report it): {0}")]
    Internal(String),
}

/// Number of ops of `g` that are kernels (not free views).
pub fn kernel_count(g: &Graph) -> usize {
    g.nodes.iter().filter(|n| !n.op.is_view()).count()
}

/// Optimizes `g` with `rules` under `model`. Types are checked throughout: a rule that merges
/// values of different types, or builds an op that does not type-check, is an internal error.
pub fn optimize(g: &Graph, rules: &[Rule], model: &dyn CostModel, limits: Limits) -> Result<(Graph, EqsatReport), OptimizeError> {
    let start = Instant::now();
    // Everything that could panic on a kiln bug (a rule's type error, an extraction invariant)
    // runs under catch_unwind so that the user gets an error naming the problem.
    let run = || -> Result<_, OptimizeError> {
        let mut low = convert::to_egraph(g);
        let sat = rule::saturate(&mut low.eg, rules, limits);
        let ex = extract::extract(&low.eg, &low.outputs, model).map_err(|ops| OptimizeError::Infeasible { target: model.name(), ops })?;
        let mut out = convert::from_egraph(&low, &ex.choice)?;
        // Extraction names values after their nodes: give the outputs the model's names.
        out.name_outputs(&g.outputs.iter().map(|&o| g.value(o).name.clone()).collect::<Vec<_>>())?;
        Ok((out, sat, ex))
    };
    let (out, sat, ex) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).map_err(|p| {
        OptimizeError::Internal(
            p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default(),
        )
    })??;
    let report = EqsatReport {
        ops_before: g.nodes.len(),
        ops_after: out.nodes.len(),
        kernels: kernel_count(&out),
        rules_fired: sat.fired,
        stop_reason: sat.stop_reason,
        iterations: sat.iterations,
        enodes: sat.enodes,
        eclasses: sat.eclasses,
        extraction: ex.method,
        cost_us: ex.cost,
        eqsat_ms: start.elapsed().as_secs_f64() * 1e3,
    };
    Ok((out, report))
}
