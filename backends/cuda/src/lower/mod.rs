//! Lowering of an optimized graph to one LLVM module of kernels and a launch sequence: every
//! node either is a view (no kernel: the memory plan gives it its input's bytes) or lowers
//! through the op table ([`table`]), whose `match` over `Op` is exhaustive.

pub mod table;

use crate::codegen::llvm::{Em, R};
use crate::codegen::{CodegenError, Cx, Lowered};
use inkwell::context::Context;
use kiln_ir::{Graph, Op, Tensor, ValueId};
use std::collections::HashMap;
use std::sync::Arc;

pub use table::{family, Family};

/// Lowers `g` (optimized, static shapes) into kernels of one module.
pub fn lower<'c>(context: &'c Context, g: &Graph, arch: crate::ptx::Arch) -> R<(Em<'c>, Lowered)> {
    let mut cx = Cx::new(context, g, arch, transposed_b_operands(g))?;
    for (i, node) in g.nodes.iter().enumerate() {
        if !cx.begin_node(i, node)? {
            continue;
        }
        table::lower_node(&mut cx, node).map_err(|e| match e {
            e @ CodegenError::Node { .. } => e,
            e => CodegenError::Node { node: node.name.clone(), op: node.op.kind_name(), source: Box::new(e) },
        })?;
    }
    Ok(cx.finish())
}

/// `Transpose{[1, 0]}(c)` of a 2-D constant whose every reader is a MatMul or MatMulFused
/// taking it as B (a tied embedding read as the LM head): the products read `c` n-major
/// instead, so the transpose needs neither a kernel nor a copy of the weight.
fn transposed_b_operands(g: &Graph) -> HashMap<ValueId, Arc<Tensor>> {
    let mut readers: HashMap<ValueId, Vec<(usize, &Op)>> = HashMap::new();
    for n in &g.nodes {
        for (i, v) in n.inputs.iter().enumerate() {
            if let Some(v) = v {
                readers.entry(*v).or_default().push((i, &n.op));
            }
        }
    }
    let mut out = HashMap::new();
    for n in &g.nodes {
        let (Op::Transpose { perm }, [Some(src)], [Some(y)]) = (&n.op, &n.inputs[..], &n.outputs[..]) else { continue };
        let Some(c) = g.const_value(*src) else { continue };
        let only_b =
            readers.get(y).is_some_and(|r| r.iter().all(|(i, op)| *i == 1 && matches!(op, Op::MatMul {} | Op::MatMulFused { .. })));
        if perm[..] == [1, 0] && c.rank() == 2 && only_b && !g.outputs.contains(y) {
            out.insert(*y, c.clone());
        }
    }
    out
}
