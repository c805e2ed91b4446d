//! Graph-to-graph passes over [`kiln_ir::Graph`].
//!
//! Today: [`fold_constants`] (evaluates nodes whose inputs are all constants, and `Shape`/`Size`
//! of statically shaped values, so Shape → Gather → Concat → Reshape chains become constants
//! once input shapes are known), [`canonicalize`] (drops ops that change nothing),
//! [`eliminate_common_subexpressions`] and [`eliminate_dead_code`]. [`simplify`] runs folding and DCE to a fixed point; [`run_pipeline`]
//! runs every classic pass by name and can stop after any of them. The equality-saturation
//! optimizer lands here later.
//!
//! ```
//! use kiln_ir::{DType, Graph, Op, Shape, TensorType};
//! let mut g = Graph::new("g");
//! let x = g.add_input("x", TensorType::new(DType::F32, Shape::fixed(&[2, 3])));
//! let s = g.add_node("shape", Op::Shape { start: 0, end: None }, vec![Some(x)], &[Some("s".into())]).unwrap();
//! g.outputs = vec![s[0].unwrap()];
//! let report = kiln_passes::simplify(&mut g).unwrap();
//! assert_eq!(report.changes[0], ("fold-constants", 1));
//! assert!(g.nodes.is_empty());
//! ```

mod canonicalize;
mod chain_fusion;
mod cse;
mod dce;
mod emitter;
pub mod eqsat;
mod fold_constants;
mod forwarding;
mod if_to_select;
mod integer_as_float;
mod memory_plan;
mod pipeline;
mod precision;
pub mod quant;
pub mod rules;
mod unroll_recurrent;

pub use canonicalize::canonicalize;
pub use chain_fusion::{fuse_long_chains, LONG_CHAIN};
pub use cse::eliminate_common_subexpressions;
pub use dce::eliminate_dead_code;
pub use fold_constants::{fold_constants, FOLD_LIMIT};
pub use if_to_select::if_to_select;
pub use integer_as_float::integer_ops_as_float;
pub use memory_plan::{plan_memory, Buffer, MemoryPlan, PlanError, ALIGN};
pub use pipeline::{run_passes, run_pipeline, PipelineError, PipelineReport, PASSES};
pub use precision::{convert_precision, PrecisionError};
pub use unroll_recurrent::unroll_recurrent;

/// Import cleanup: constant folding and dead-code elimination to a fixed point (the
/// pipeline's `fold-constants` and `dce` passes), types re-inferred after each.
pub fn simplify(g: &mut kiln_ir::Graph) -> Result<PipelineReport, PipelineError> {
    run_passes(g, &["fold-constants", "dce"], None)
}
