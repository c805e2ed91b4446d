//! Shared mechanics of the passes that remove nodes: reading a value through the replacements
//! made so far, and dropping nodes by a keep-mask.

use kiln_ir::{Graph, ValueId};
use std::collections::HashMap;

/// `inputs` with every replaced value read through `replace`.
pub(crate) fn forwarded(inputs: &[Option<ValueId>], replace: &HashMap<ValueId, ValueId>) -> Vec<Option<ValueId>> {
    inputs.iter().map(|v| v.map(|v| *replace.get(&v).unwrap_or(&v))).collect()
}

/// Removes the nodes whose `keep` entry is false; returns how many were removed.
pub(crate) fn remove_nodes(g: &mut Graph, keep: Vec<bool>) -> usize {
    let removed = keep.iter().filter(|k| !**k).count();
    let mut k = keep.into_iter();
    g.nodes.retain(|_| k.next().unwrap_or(true));
    removed
}
