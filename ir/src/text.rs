//! placeholder
use crate::graph::Graph;
pub fn print(g: &Graph) -> String { format!("{g:?}") }
