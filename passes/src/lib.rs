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
//! let report = kiln_passes::simplify(&mut g, kiln_passes::FOLD_LIMIT).unwrap();
//! assert_eq!(report.folded, 1);
//! assert!(g.nodes.is_empty());
//! ```

mod canonicalize;
mod cse;
mod dce;
mod fold_constants;
mod forwarding;
mod memory_plan;
mod pipeline;

pub use canonicalize::canonicalize;
pub use cse::eliminate_common_subexpressions;
pub use dce::eliminate_dead_code;
pub use fold_constants::{fold_constants, FOLD_LIMIT};
pub use memory_plan::{plan_memory, Buffer, MemoryPlan, PlanError, ALIGN};
pub use pipeline::{run_pipeline, PipelineError, PipelineReport, PASSES};

use kiln_ir::NodeError;

/// What [`simplify`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimplifyReport {
    pub folded: usize,
    pub removed: usize,
}

/// Folds constants and removes dead nodes until nothing changes, re-inferring types so that
/// newly constant shapes propagate.
pub fn simplify(g: &mut kiln_ir::Graph, fold_limit: usize) -> Result<SimplifyReport, NodeError> {
    let mut report = SimplifyReport::default();
    loop {
        let f = fold_constants(g, fold_limit);
        let r = eliminate_dead_code(g);
        report.folded += f;
        report.removed += r;
        g.reinfer()?;
        if f == 0 && r == 0 {
            return Ok(report);
        }
    }
}
