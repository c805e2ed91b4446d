//! The reference interpreter: runs a graph node by node with each op's reference semantics.
//! It is the oracle every later stage is checked against.
//!
//! Numerics: elementwise float math is done per element in f64 and rounded once to the op's
//! dtype (f16, bf16 and float8 included); MatMul, Gemm and Conv accumulate in f32 for
//! f32/f16/bf16 inputs and in f64 for f64; reductions, normalizations, softmax and attention
//! accumulate in f64; integer ops are exact (i64, wrapping into the op's dtype); comparisons
//! and logic are exact. Every result is checked against the type inference recorded for its
//! node, so a disagreement between an op's inference and its semantics is an error
//! ([`OpError::Internal`]), never a silently wrong shape.

use crate::graph::Graph;
use crate::ops::OpError;
use crate::shape::Dim;
use crate::tensor::Tensor;
use std::collections::HashMap;

/// Why a run failed: bad inputs (naming the input) or an op failure (naming the node).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RunError {
    #[error("expected {expected} inputs, got {got}")]
    InputCount { expected: usize, got: usize },
    #[error("input `{name}`: expected dtype {expected}, got {got}")]
    InputDType { name: String, expected: String, got: String },
    #[error("input `{name}`: expected shape {expected}, got {got:?}")]
    InputShape { name: String, expected: String, got: Vec<usize> },
    #[error("node `{node}` ({op}): {source}")]
    Node {
        node: String,
        op: &'static str,
        #[source]
        source: OpError,
    },
}

/// Checks `inputs` against the graph's declared input types; symbolic dims must bind
/// consistently across inputs.
pub fn check_inputs(g: &Graph, inputs: &[Tensor]) -> Result<(), RunError> {
    if inputs.len() != g.inputs.len() {
        return Err(RunError::InputCount { expected: g.inputs.len(), got: inputs.len() });
    }
    let mut bound: HashMap<&str, usize> = HashMap::new();
    for (&id, t) in g.inputs.iter().zip(inputs) {
        let v = g.value(id);
        if v.ty.dtype != t.dtype() {
            return Err(RunError::InputDType { name: v.name.clone(), expected: v.ty.dtype.to_string(), got: t.dtype().to_string() });
        }
        let bad = || RunError::InputShape { name: v.name.clone(), expected: v.ty.shape.to_string(), got: t.dims().to_vec() };
        if v.ty.shape.rank() != t.rank() {
            return Err(bad());
        }
        for (d, &n) in v.ty.shape.0.iter().zip(t.dims()) {
            match d {
                Dim::Known(k) if *k != n => return Err(bad()),
                Dim::Sym(s) => {
                    if *bound.entry(s.as_str()).or_insert(n) != n {
                        return Err(bad());
                    }
                }
                Dim::Known(_) => {}
            }
        }
    }
    Ok(())
}

/// Runs the graph on `inputs` (in graph-input order) and returns its outputs.
pub fn run(g: &Graph, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, RunError> {
    run_observed(g, inputs, &mut |_, _| {})
}

/// Like [`run`], calling `observe(node_index, outputs)` after every node (for per-layer
/// comparisons).
pub fn run_observed(g: &Graph, inputs: Vec<Tensor>, observe: &mut dyn FnMut(usize, &[Option<Tensor>])) -> Result<Vec<Tensor>, RunError> {
    check_inputs(g, &inputs)?;
    let n = g.values.len();
    // Last node that reads each value; graph outputs are never freed.
    let mut last_use = vec![usize::MAX; n];
    for (i, node) in g.nodes.iter().enumerate() {
        for &v in node.inputs.iter().flatten() {
            last_use[v.0 as usize] = i;
        }
    }
    for &o in &g.outputs {
        last_use[o.0 as usize] = usize::MAX - 1;
    }
    let mut slots: Vec<Option<Tensor>> = vec![None; n];
    for (&id, t) in g.inputs.iter().zip(inputs) {
        slots[id.0 as usize] = Some(t);
    }
    for (i, node) in g.nodes.iter().enumerate() {
        let outs = {
            let ins: Vec<Option<&Tensor>> = node
                .inputs
                .iter()
                .map(|v| v.and_then(|id| slots[id.0 as usize].as_ref().or_else(|| g.consts.get(&id).map(|a| a.as_ref()))))
                .collect();
            node.op.eval(&ins, node.outputs.len()).map_err(|source| RunError::Node {
                node: node.name.clone(),
                op: node.op.kind_name(),
                source,
            })?
        };
        let mut produced: Vec<Option<Tensor>> = outs.into_iter().map(Some).collect();
        produced.resize(node.outputs.len(), None);
        // Every result must have the type inference recorded (known dims exactly).
        for (o, t) in node.outputs.iter().zip(&produced) {
            if let (Some(o), Some(t)) = (o, t) {
                let ty = &g.value(*o).ty;
                let fits = ty.dtype == t.dtype()
                    && ty.shape.rank() == t.rank()
                    && ty.shape.0.iter().zip(t.dims()).all(|(d, &n)| d.known().is_none_or(|k| k == n));
                if !fits {
                    let message = format!(
                        "`{}` was inferred as {}{} but evaluated to {}{:?}",
                        g.value(*o).name,
                        ty.dtype,
                        ty.shape,
                        t.dtype(),
                        t.dims()
                    );
                    return Err(RunError::Node { node: node.name.clone(), op: node.op.kind_name(), source: OpError::Internal(message) });
                }
            }
        }
        observe(i, &produced);
        for (o, t) in node.outputs.iter().zip(produced) {
            if let Some(o) = o {
                slots[o.0 as usize] = t;
            }
        }
        for &v in node.inputs.iter().flatten() {
            if last_use[v.0 as usize] == i {
                slots[v.0 as usize] = None;
            }
        }
    }
    // A value returned twice is cloned for all but its last position.
    g.outputs
        .iter()
        .enumerate()
        .map(|(k, &o)| {
            let slot = if g.outputs[k + 1..].contains(&o) { slots[o.0 as usize].clone() } else { slots[o.0 as usize].take() };
            slot.or_else(|| g.consts.get(&o).map(|a| a.as_ref().clone())).ok_or_else(|| RunError::Node {
                node: g.value(o).name.clone(),
                op: "output",
                source: OpError::Invalid("output was not produced".into()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, TensorType};

    #[test]
    fn a_value_returned_twice_is_returned_twice() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::fixed(DType::F32, &[2]));
        g.outputs = vec![x, x];
        let t = Tensor::from_f32s(vec![2], vec![1.0, 2.0]).expect("size");
        assert_eq!(run(&g, vec![t.clone()]).expect("runs"), vec![t.clone(), t]);
    }
}
