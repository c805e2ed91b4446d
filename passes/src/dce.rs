//! Dead-code elimination: removes nodes none of whose outputs reach a graph output, and
//! constants nothing uses.

use kiln_ir::{Graph, ValueId};
use std::collections::HashSet;

/// Returns the number of nodes removed.
pub fn eliminate_dead_code(g: &mut Graph) -> usize {
    let mut live: HashSet<ValueId> = g.outputs.iter().copied().collect();
    let mut keep = vec![false; g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate().rev() {
        if n.outputs.iter().flatten().any(|o| live.contains(o)) {
            keep[i] = true;
            live.extend(n.inputs.iter().flatten().copied());
        }
    }
    g.consts.retain(|id, _| live.contains(id));
    crate::forwarding::remove_nodes(g, keep)
}
