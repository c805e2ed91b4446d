//! Constant folding: a node whose inputs are all constants is evaluated by the reference
//! interpreter and its outputs become constants; `Shape` and `Size` of values whose shape is
//! fully known fold without evaluating anything.

use kiln_ir::{Graph, Op, Tensor};
use std::sync::Arc;

/// Outputs larger than this many elements are not folded (they would bloat the weights).
pub const FOLD_LIMIT: usize = 1 << 16;

/// Folds what it can; returns the number of nodes folded.
pub fn fold_constants(g: &mut Graph, limit: usize) -> usize {
    let mut folded = 0;
    let mut keep = Vec::with_capacity(g.nodes.len());
    let nodes = std::mem::take(&mut g.nodes);
    for node in nodes {
        match fold_node(g, &node.op, &node.inputs, node.outputs.len(), limit) {
            Some(outs) if outs.len() >= node.outputs.len() => {
                for (o, t) in node.outputs.iter().zip(outs) {
                    if let Some(o) = o {
                        g.consts.insert(*o, Arc::new(t));
                    }
                }
                folded += 1;
            }
            _ => keep.push(node),
        }
    }
    g.nodes = keep;
    folded
}

fn fold_node(g: &Graph, op: &Op, inputs: &[Option<kiln_ir::ValueId>], n_out: usize, limit: usize) -> Option<Vec<Tensor>> {
    if !op.subgraphs().is_empty() {
        return None;
    }
    match op {
        Op::Shape { start, end } => {
            let x = inputs.first().copied().flatten()?;
            let dims = g.value(x).ty.shape.as_fixed()?;
            return Some(vec![kiln_ir::ops::shape_tensor(&dims, *start, *end)]);
        }
        Op::Size {} => {
            let x = inputs.first().copied().flatten()?;
            let n = g.value(x).ty.shape.numel()?;
            return Some(vec![Tensor::scalar_i64(n as i64)]);
        }
        _ => {}
    }
    let mut ins = Vec::with_capacity(inputs.len());
    for i in inputs {
        match i {
            None => ins.push(None),
            Some(id) => ins.push(Some(g.const_value(*id)?.as_ref())),
        }
    }
    let outs = op.eval(&ins, n_out).ok()?;
    outs.iter().all(|t| t.numel() <= limit).then_some(outs)
}
