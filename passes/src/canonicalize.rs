//! Canonicalization: ops that provably leave their input unchanged are removed and their uses
//! read the input: Identity, inference Dropout, Cast/CastLike to the same dtype, Reshape,
//! Flatten, Squeeze, Unsqueeze and Expand whose output type equals the input's, Transpose with
//! the identity permutation, Concat and Mean of one input. A graph output keeps its node, so the
//! model's output names do not change.
//!
//! ```text
//! %a = Cast[c](%x) {to=f32, ...} : f32[4]
//! %b = Reshape[r](%a, %s) : f32[4]          =>   %y = Relu[relu](%x) : f32[4]
//! %y = Relu[relu](%b) : f32[4]
//! ```

use crate::forwarding::{forwarded, remove_nodes};
use kiln_ir::{Graph, Op, ValueId};
use std::collections::{HashMap, HashSet};

/// The input whose value the node's first output equals, if the node is a no-op.
fn passthrough(g: &Graph, op: &Op, inputs: &[Option<ValueId>], outputs: &[Option<ValueId>]) -> Option<ValueId> {
    let x = inputs.first().copied().flatten()?;
    let out = outputs.first().copied().flatten()?;
    let same_type = g.value(x).ty == g.value(out).ty && g.value(x).ty.shape.is_fixed();
    let only_output = outputs.iter().skip(1).all(Option::is_none);
    let yes = match op {
        Op::Identity {} => true,
        Op::Dropout {} => {
            // Inference mode only: no training flag, or a constant false one; no mask used.
            let training = inputs.get(2).copied().flatten();
            only_output && training.is_none_or(|t| g.const_value(t).is_some_and(|t| t.to_i64().iter().all(|&v| v == 0)))
        }
        Op::Cast { to, .. } => g.value(x).ty.dtype == *to,
        Op::CastLike { .. } => g.value(x).ty.dtype == g.value(out).ty.dtype,
        Op::Reshape { .. } | Op::Flatten { .. } | Op::Squeeze {} | Op::Unsqueeze {} | Op::Expand {} => same_type,
        Op::Transpose { perm } => !perm.is_empty() && perm.iter().enumerate().all(|(i, &p)| p == i as i64),
        Op::Concat { .. } | Op::Mean {} => inputs.iter().flatten().count() == 1,
        _ => false,
    };
    (yes && only_output && g.value(x).ty == g.value(out).ty).then_some(x)
}

/// Returns the number of nodes removed.
pub fn canonicalize(g: &mut Graph) -> usize {
    let graph_outputs: HashSet<ValueId> = g.outputs.iter().copied().collect();
    let mut replace: HashMap<ValueId, ValueId> = HashMap::new();
    let mut keep = vec![true; g.nodes.len()];
    for (i, kept) in keep.iter_mut().enumerate() {
        let inputs = forwarded(&g.nodes[i].inputs, &replace);
        g.nodes[i].inputs = inputs;
        let node = &g.nodes[i];
        if node.outputs.iter().flatten().any(|o| graph_outputs.contains(o)) {
            continue;
        }
        if let Some(x) = passthrough(g, &node.op, &node.inputs, &node.outputs) {
            if let Some(out) = node.outputs.first().copied().flatten() {
                replace.insert(out, x);
                *kept = false;
            }
        }
    }
    remove_nodes(g, keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::text::{parse, print};

    fn run(src: &str) -> (String, usize) {
        let mut g = parse(src, &HashMap::new()).expect("parse");
        let n = canonicalize(&mut g);
        kiln_ir::verify(&g).expect("verify");
        (print(&g), n)
    }

    #[test]
    fn removes_no_op_casts_reshapes_and_transposes() {
        let (out, n) = run("graph \"g\" (%x: f32[2,3]) {\n  %s = const i64[2] [2, 3]\n  %a = Cast[c](%x) {to=f32, saturate=true, round_mode=up} : f32[2,3]\n  %b = Reshape[r](%a, %s) {allowzero=false} : f32[2,3]\n  %t = Transpose[t](%b) {perm=[0, 1]} : f32[2,3]\n  %y = Relu[relu](%t) : f32[2,3]\n  return %y\n}\n");
        assert_eq!(n, 3);
        assert_eq!(out, "graph \"g\" (%x: f32[2,3]) {\n  %s = const i64[2] [2, 3]\n  %y = Relu[relu](%x) : f32[2,3]\n  return %y\n}\n");
    }

    #[test]
    fn keeps_ops_that_change_something_and_graph_outputs() {
        let src = "graph \"g\" (%x: f32[2,3]) {\n  %s = const i64[2] [3, 2]\n  %a = Cast[c](%x) {to=f16, saturate=true, round_mode=up} : f16[2,3]\n  %b = Reshape[r](%x, %s) {allowzero=false} : f32[3,2]\n  %t = Transpose[t](%x) {perm=[1, 0]} : f32[3,2]\n  %i = Identity[i](%x) : f32[2,3]\n  return %a, %b, %t, %i\n}\n";
        let (out, n) = run(src);
        assert_eq!(n, 0);
        assert_eq!(out, src);
    }
}
