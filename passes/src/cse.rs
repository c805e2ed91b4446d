//! Common-subexpression elimination: a node computing the same op on the same inputs as an
//! earlier node is dropped and its uses read the earlier node's outputs.
//!
//! ```text
//! %a = Relu[r1](%x) : f32[4]          %a = Relu[r1](%x) : f32[4]
//! %b = Relu[r2](%x) : f32[4]    =>    %c = Add[add](%a, %a) : f32[4]
//! %c = Add[add](%a, %b) : f32[4]
//! ```

use crate::forwarding::{forwarded, remove_nodes};
use kiln_ir::{Graph, ValueId};
use std::collections::HashMap;

/// Returns the number of nodes removed. Control-flow ops (which hold subgraphs) are kept.
pub fn eliminate_common_subexpressions(g: &mut Graph) -> usize {
    let mut replace: HashMap<ValueId, ValueId> = HashMap::new();
    // Candidates by (kind, inputs); the op itself is compared in full (attributes included).
    let mut seen: HashMap<(&'static str, Vec<Option<ValueId>>), Vec<usize>> = HashMap::new();
    let mut keep = vec![true; g.nodes.len()];
    for (i, kept) in keep.iter_mut().enumerate() {
        let inputs = forwarded(&g.nodes[i].inputs, &replace);
        g.nodes[i].inputs = inputs.clone();
        let node = &g.nodes[i];
        if !node.op.subgraphs().is_empty() {
            continue;
        }
        let key = (node.op.kind_name(), inputs);
        let earlier = seen
            .get(&key)
            .and_then(|c| c.iter().copied().find(|&j| g.nodes[j].op == node.op && g.nodes[j].outputs.len() == node.outputs.len()));
        match earlier {
            Some(j) => {
                let pairs: Vec<(ValueId, ValueId)> = node.outputs.iter().zip(&g.nodes[j].outputs).filter_map(|(o, e)| o.zip(*e)).collect();
                // An output the earlier node left unused cannot stand in for a used one.
                if pairs.len() == node.outputs.iter().flatten().count() {
                    replace.extend(pairs);
                    *kept = false;
                }
            }
            None => seen.entry(key).or_default().push(i),
        }
    }
    for o in &mut g.outputs {
        *o = *replace.get(o).unwrap_or(o);
    }
    remove_nodes(g, keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::text::{parse, print};

    fn run(src: &str) -> (String, usize) {
        let mut g = parse(src, &HashMap::new()).expect("parse");
        let n = eliminate_common_subexpressions(&mut g);
        kiln_ir::verify(&g).expect("verify");
        (print(&g), n)
    }

    #[test]
    fn merges_identical_nodes_and_their_uses() {
        let (out, n) = run("graph \"g\" (%x: f32[4]) {\n  %a = Relu[r1](%x) : f32[4]\n  %b = Relu[r2](%x) : f32[4]\n  %c = Add[add](%a, %b) : f32[4]\n  return %c, %b\n}\n");
        assert_eq!(n, 1);
        assert_eq!(out, "graph \"g\" (%x: f32[4]) {\n  %a = Relu[r1](%x) : f32[4]\n  %c = Add[add](%a, %a) : f32[4]\n  return %c, %a\n}\n");
    }

    #[test]
    fn keeps_nodes_that_differ_in_attributes_or_inputs() {
        let src = "graph \"g\" (%x: f32[4], %y: f32[4]) {\n  %a = LeakyRelu[l1](%x) {alpha=0.1} : f32[4]\n  %b = LeakyRelu[l2](%x) {alpha=0.2} : f32[4]\n  %c = Sub[s1](%x, %y) : f32[4]\n  %d = Sub[s2](%y, %x) : f32[4]\n  return %a, %b, %c, %d\n}\n";
        let (out, n) = run(src);
        assert_eq!(n, 0);
        assert_eq!(out, src);
    }
}
