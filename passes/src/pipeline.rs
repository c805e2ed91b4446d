//! The pass manager: the classic passes in a fixed order, each named, with the option to stop
//! after any of them (`kiln compile --emit ir-after=PASS`).

use crate::{canonicalize, eliminate_common_subexpressions, eliminate_dead_code, fold_constants, FOLD_LIMIT};
use kiln_ir::{Graph, NodeError};

/// The passes, in the order they run.
pub const PASSES: [&str; 4] = ["fold-constants", "canonicalize", "cse", "dce"];

/// What a pipeline run did, per pass (nodes changed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineReport {
    pub changes: Vec<(&'static str, usize)>,
}

/// Runs every pass ([`PASSES`]) to a fixed point, stopping after `stop_after` in the first
/// round when it is given.
pub fn run_pipeline(g: &mut Graph, stop_after: Option<&str>) -> Result<PipelineReport, PipelineError> {
    run_passes(g, &PASSES, stop_after)
}

/// Runs the named passes in order to a fixed point (at most 8 rounds), stopping after
/// `stop_after` in the first round when it is given. Types are re-inferred after every pass.
pub fn run_passes(g: &mut Graph, passes: &[&'static str], stop_after: Option<&str>) -> Result<PipelineReport, PipelineError> {
    for p in passes.iter().copied().chain(stop_after) {
        if !PASSES.contains(&p) || (stop_after == Some(p) && !passes.contains(&p)) {
            return Err(PipelineError::UnknownPass(p.to_string()));
        }
    }
    let mut report = PipelineReport::default();
    for _round in 0..8 {
        let mut changed = 0;
        for &name in passes {
            let n = match name {
                "fold-constants" => fold_constants(g, FOLD_LIMIT),
                "canonicalize" => canonicalize(g),
                "cse" => eliminate_common_subexpressions(g),
                _ => eliminate_dead_code(g),
            };
            g.reinfer()?;
            report.changes.push((name, n));
            changed += n;
            if stop_after == Some(name) {
                return Ok(report);
            }
        }
        if changed == 0 {
            break;
        }
    }
    Ok(report)
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PipelineError {
    #[error("unknown pass `{0}` (passes: fold-constants, canonicalize, cse, dce)")]
    UnknownPass(String),
    #[error("{0}")]
    Type(#[from] NodeError),
}
