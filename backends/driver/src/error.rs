//! The driver's errors: whose fault it is (the model, the user's options, the target, kiln).

use kiln_backend::{BackendError, Target, TargetError};
use kiln_passes::eqsat::OptimizeError;

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The model could not be read or built (the context names the file, the source where).
    #[error("{context}")]
    Model {
        context: String,
        #[source]
        source: Source,
    },
    /// The options do not fit the model (an input name it lacks, shapes that disagree ...).
    #[error("{0}")]
    Usage(String),
    /// A classic pass or the precision conversion failed (the context says which).
    #[error("{context}")]
    Pass {
        context: String,
        #[source]
        source: Source,
    },
    /// The optimizer failed: the target cannot run some op (the message names them), or a
    /// kiln bug.
    #[error(transparent)]
    Optimize(OptimizeError),
    #[error("internal error: the optimized graph does not verify: {0}")]
    Internal(String),
    /// The backend could not emit the optimized graph.
    #[error("compiling for {target}")]
    Backend {
        target: Target,
        #[source]
        source: BackendError,
    },
    #[error("writing {path}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl DriverError {
    /// Whether the target cannot run something in the model (rather than a failure).
    pub fn is_unsupported(&self) -> bool {
        match self {
            DriverError::Optimize(OptimizeError::Infeasible { .. }) => true,
            DriverError::Backend { source, .. } => source.is_unsupported(),
            _ => false,
        }
    }

    pub(crate) fn pass(context: impl Into<String>, source: impl Into<Source>) -> DriverError {
        DriverError::Pass { context: context.into(), source: source.into() }
    }
}
