//! The interface between kiln's compile pipeline and its targets.
//!
//! A target is a [`Backend`]: it answers whether it can run an op (and why not), gives the
//! rewrite rules and the roofline cost the optimizer extracts under, reports how each node of an
//! optimized graph runs on it, and emits the optimized graph as what the target loads (a
//! `model.kiln` artifact, a bundle directory, IR text). The driver (`kiln-driver`) holds the
//! registry of backends and runs the pipeline; each backend crate (`backends/cuda`,
//! `backends/ascend`, ...) implements this trait in its `lib.rs`.
//!
//! One answer to "can the target run this": [`Backend::op_support`] is what makes an op
//! infeasible for the optimizer ([`Costing`]), what `kiln ops` prints and what the compile
//! error names.
//!
//! ```
//! use kiln_backend::Target;
//! let t: Target = "sm_90".parse().unwrap();
//! assert_eq!(t, Target::Sm90);
//! assert_eq!(t.name(), "sm_90");
//! assert!("sm_75".parse::<Target>().is_err());
//! ```

mod target;

pub use target::{Target, TargetError};

use kiln_artifact::artifact::Artifact;
use kiln_ir::{DType, Graph, Op, TensorType};
use kiln_passes::eqsat::{CostModel, Rule, INFEASIBLE};

/// A target kiln compiles for.
pub trait Backend: Send + Sync + std::fmt::Debug {
    fn target(&self) -> Target;

    /// `Err(reason)` when the target cannot run `op` with these input and output types. The
    /// optimizer never extracts such an op ([`Costing`]); `kiln ops` and compile errors give the
    /// reason.
    fn op_support(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> Result<(), String>;

    /// The rewrite rules the optimizer runs for this target (the target-independent sets and
    /// the target's own).
    fn rules(&self) -> Vec<Rule>;

    /// The roofline cost of one supported op (microseconds).
    fn op_cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64;

    /// How each op of an optimized graph runs on the target, and the nodes it cannot run.
    fn support(&self, g: &Graph) -> Result<SupportReport, BackendError>;

    /// The text forms `kiln compile --emit` can print besides the IR (`ptx` for CUDA).
    fn texts(&self) -> &'static [&'static str] {
        &[]
    }

    /// One of [`Backend::texts`] for an optimized graph.
    fn emit_text(&self, g: &Graph, what: &str, opts: &EmitOptions) -> Result<String, BackendError> {
        let _ = (g, opts);
        Err(BackendError::Unsupported(format!("--emit {what} on {}: it emits {}", self.target(), list_or_none(self.texts())).into()))
    }

    /// What the target loads, for an optimized graph with static shapes.
    fn emit(&self, g: &Graph, opts: &EmitOptions) -> Result<Emitted, BackendError>;
}

fn list_or_none(v: &[&str]) -> String {
    if v.is_empty() {
        "no text forms".into()
    } else {
        v.join(", ")
    }
}

/// A backend as the optimizer's cost model: ops the backend cannot run are [`INFEASIBLE`].
#[derive(Debug)]
pub struct Costing<'a>(pub &'a dyn Backend);

impl CostModel for Costing<'_> {
    fn name(&self) -> &'static str {
        self.0.target().name()
    }

    fn op_cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        match self.0.op_support(op, ins, outs) {
            Ok(()) => self.0.op_cost(op, ins, outs),
            Err(_) => INFEASIBLE,
        }
    }

    fn refusal(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> Option<String> {
        self.0.op_support(op, ins, outs).err()
    }
}

/// How code is emitted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmitOptions {
    /// `--precision`: None keeps the model's dtypes; F16 or BF16 when the graph was converted.
    pub precision: Option<DType>,
    /// Assemble native code (a cubin) where the tools for it are found; off for text output.
    pub native: bool,
    /// 910b: weights as files beside the graph (`--external-weights`).
    pub external_weights: bool,
}

/// What a backend emits.
#[derive(Debug)]
pub struct Emitted {
    pub output: Output,
    /// What was emitted, in a few words for the user (kernels, launches, sizes ...).
    pub summary: String,
    /// Things the user should know (a missing assembler ...).
    pub notes: Vec<String>,
}

/// The form of what a backend emits.
#[derive(Debug)]
pub enum Output {
    /// A `model.kiln` artifact, which kiln's runtime loads.
    Artifact(Box<Artifact>),
    /// A directory of files (path relative to the directory, bytes, executable), which the
    /// target's own toolchain builds (a 910b bundle).
    Files(Vec<OutFile>),
    /// Text written as one file (the reference target's IR).
    Text(String),
}

/// One file of an [`Output::Files`] directory.
#[derive(Debug, Clone)]
pub struct OutFile {
    pub path: String,
    pub bytes: Vec<u8>,
    pub executable: bool,
}

/// Writes `files` under `dir` (created if absent, as are the files' folders); the bytes written.
pub fn write_files(files: &[OutFile], dir: &std::path::Path) -> std::io::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let mut total = 0;
    for f in files {
        let p = dir.join(&f.path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, &f.bytes)?;
        #[cfg(unix)]
        if f.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
        total += f.bytes.len() as u64;
    }
    Ok(total)
}

/// How each op of an optimized graph runs on a target (`kiln ops`).
#[derive(Debug, Clone, Default)]
pub struct SupportReport {
    /// One row per op kind the target runs, in name order.
    pub ops: Vec<OpSupport>,
    /// Every node the target cannot run, with the reason.
    pub unsupported: Vec<Unsupported>,
}

impl SupportReport {
    /// Every op kind of `g` with its node count, all with `status`: a target that runs every op.
    pub fn every_op(g: &Graph, status: &str) -> SupportReport {
        let mut rows: std::collections::BTreeMap<&'static str, usize> = Default::default();
        for n in &g.nodes {
            *rows.entry(n.op.kind_name()).or_default() += 1;
        }
        let ops = rows
            .into_iter()
            .map(|(op, count)| OpSupport { op: op.to_string(), count, status: status.to_string(), lowered_to: vec![], generated: vec![] })
            .collect();
        SupportReport { ops, unsupported: vec![] }
    }
}

/// How the nodes of one op kind run.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSupport {
    pub op: String,
    pub count: usize,
    /// In a few words: `kernel`, `view (no kernel)`, `CANN built-in`, ...
    pub status: String,
    /// What the op becomes on the target (CANN ops ...), when there is more to say.
    pub lowered_to: Vec<String>,
    /// Those of `lowered_to` that are kernels kiln generates, not the target's built-ins.
    pub generated: Vec<String>,
}

/// A node the target cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    pub node: String,
    pub op: String,
    pub reason: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node `{}` ({}): {}", self.node, self.op, self.reason)
    }
}

/// Why a backend could not emit a graph: the backend's own error, kept as the source so that
/// its message reaches the user unchanged.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The target cannot run something in the graph (the message names it).
    #[error(transparent)]
    Unsupported(Box<dyn std::error::Error + Send + Sync>),
    /// A kiln bug or an environment problem (the message says which).
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl BackendError {
    /// Whether the target lacks support for something, rather than the compiler failing.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, BackendError::Unsupported(_))
    }
}
