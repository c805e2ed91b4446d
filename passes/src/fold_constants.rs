//! Constant folding: a node whose inputs are all constants is evaluated by the reference
//! interpreter and its outputs become constants; `Shape` and `Size` of values whose shape is
//! fully known fold without evaluating anything.

use kiln_ir::Graph;
use std::sync::Arc;

/// Outputs larger than this many elements are not folded (they would bloat the weights).
pub const FOLD_LIMIT: usize = 1 << 16;

/// Folds what it can; returns the number of nodes folded.
pub fn fold_constants(g: &mut Graph, limit: usize) -> usize {
    let mut folded = 0;
    let mut keep = Vec::with_capacity(g.nodes.len());
    let nodes = std::mem::take(&mut g.nodes);
    for node in nodes {
        match g.constant_outputs(&node, limit) {
            Some(outs) => {
                for (o, t) in node.outputs.iter().zip(outs) {
                    if let Some(o) = o {
                        g.consts.insert(*o, Arc::new(t));
                    }
                }
                folded += 1;
            }
            None => keep.push(node),
        }
    }
    g.nodes = keep;
    folded
}
