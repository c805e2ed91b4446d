//! Long elementwise chains fused before equality saturation, in one linear pass.
//!
//! The e-graph fuses an elementwise chain one link per iteration and keeps each fused
//! program next to its parts (fusion.rs), so a chain of n ops costs it about n iterations
//! over e-nodes that each hold a body: 250 chained ops took 2.9 s to saturate, 4,000 hit the
//! 10 s limit. A chain longer than [`LONG_CHAIN`] ops is cut here into
//! `FusedElementwise` nodes of [`MAX_BODY`] ops, what the e-graph's fusion would build from
//! it; shorter chains, which real models have (activations, residual adds, epilogues), are
//! left to the e-graph, where the cost model can still fuse them into a product's epilogue.
//!
//! A chain link: an elementwise op whose output has the shape of the op before it and is
//! read only by the next op (not by another node, not a graph output).

// Small constants are copied into a body as the e-graph's fusion copies them.
use crate::rules::{INLINE_CONST, MAX_BODY};
use kiln_ir::{Graph, Node, Op, ValueId};
use std::collections::HashMap;

/// Chains up to this many ops are left to the e-graph.
pub const LONG_CHAIN: usize = 2 * MAX_BODY;

fn is_link(op: &Op) -> bool {
    op.is_elementwise() && !matches!(op, Op::Identity {})
}

/// Fuses every chain longer than [`LONG_CHAIN`]; returns the number of nodes fused away.
pub fn fuse_long_chains(g: &mut Graph) -> usize {
    let mut readers: HashMap<ValueId, usize> = HashMap::new();
    for n in &g.nodes {
        for &i in n.inputs.iter().flatten() {
            *readers.entry(i).or_default() += 1;
        }
    }
    for &o in &g.outputs {
        *readers.entry(o).or_default() += 1;
    }
    let producer: HashMap<ValueId, usize> =
        g.nodes.iter().enumerate().filter_map(|(k, n)| Some((n.outputs.first().copied().flatten()?, k))).collect();
    // prev[k]: the node whose only reader is node k, when both are links of one shape.
    let mut prev: Vec<Option<usize>> = vec![None; g.nodes.len()];
    let mut has_next = vec![false; g.nodes.len()];
    for (k, n) in g.nodes.iter().enumerate() {
        if !is_link(&n.op) || n.outputs.len() != 1 {
            continue;
        }
        let Some(out) = n.outputs[0] else { continue };
        let shape = &g.value(out).ty.shape;
        let p = n.inputs.iter().flatten().filter_map(|i| producer.get(i).map(|&p| (i, p))).find(|&(i, p)| {
            let pn = &g.nodes[p];
            is_link(&pn.op) && pn.outputs.len() == 1 && readers.get(i) == Some(&1) && !has_next[p] && &g.value(*i).ty.shape == shape
        });
        if let Some((_, p)) = p {
            prev[k] = Some(p);
            has_next[p] = true;
        }
    }
    // Chains, from their last node back.
    let mut replace: HashMap<usize, Node> = HashMap::new();
    let mut remove = vec![false; g.nodes.len()];
    for last in (0..g.nodes.len()).filter(|&k| !has_next[k] && prev[k].is_some()) {
        let mut chain = vec![last];
        while let Some(p) = prev[*chain.last().unwrap_or(&last)] {
            chain.push(p);
        }
        if chain.len() <= LONG_CHAIN {
            continue;
        }
        chain.reverse();
        for piece in chain.chunks(MAX_BODY) {
            let Some(fused) = fuse(g, piece) else { continue };
            for &k in &piece[..piece.len() - 1] {
                remove[k] = true;
            }
            replace.insert(piece[piece.len() - 1], fused);
        }
    }
    let fused_away = remove.iter().filter(|&&r| r).count();
    for (k, n) in replace {
        g.nodes[k] = n;
    }
    crate::forwarding::remove_nodes(g, remove.iter().map(|r| !r).collect());
    fused_away
}

/// One FusedElementwise node computing the chain `piece` (node indices in order), with the
/// last node's name and output; `None` if a body op does not type-check.
fn fuse(g: &Graph, piece: &[usize]) -> Option<Node> {
    let last = &g.nodes[*piece.last()?];
    let mut body = Graph::new(format!("{}_chain", last.name));
    let mut map: HashMap<ValueId, ValueId> = HashMap::new();
    let mut outer: Vec<Option<ValueId>> = vec![];
    for (j, &k) in piece.iter().enumerate() {
        let n = &g.nodes[k];
        let mut ins = vec![];
        for i in &n.inputs {
            let Some(i) = *i else {
                ins.push(None);
                continue;
            };
            let v = match map.get(&i) {
                Some(&v) => v,
                None => {
                    let v = match g.const_value(i).filter(|t| t.numel() <= INLINE_CONST) {
                        Some(t) => body.add_const(format!("k{}", body.consts.len()), t.clone()),
                        None => {
                            outer.push(Some(i));
                            body.add_input(format!("in{}", body.inputs.len()), g.value(i).ty.clone())
                        }
                    };
                    map.insert(i, v);
                    v
                }
            };
            ins.push(Some(v));
        }
        let name = format!("n{j}");
        let out = body.add_node(name.clone(), n.op.clone(), ins, &[Some(name)]).ok()?[0]?;
        map.insert(n.outputs[0]?, out);
    }
    body.outputs = vec![*map.get(&last.outputs[0]?)?];
    Some(Node { name: last.name.clone(), op: Op::FusedElementwise { body: Box::new(body) }, inputs: outer, outputs: last.outputs.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{interp, BinaryOp, DType, Data, Tensor, TensorType, UnaryOp};

    /// x -> n ops (Relu, Tanh, Add x, ...) -> y
    fn chain(n: usize) -> Graph {
        let mut g = Graph::new("chain");
        let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 3]));
        let mut v = x;
        for i in 0..n {
            let (op, ins) = match i % 3 {
                0 => (Op::Unary { op: UnaryOp::Tanh }, vec![Some(v)]),
                1 => (Op::Binary { op: BinaryOp::Add }, vec![Some(v), Some(x)]),
                _ => (Op::Unary { op: UnaryOp::Relu }, vec![Some(v)]),
            };
            v = g.add_node(format!("n{i}"), op, ins, &[Some(format!("v{i}"))]).expect("node")[0].expect("output");
        }
        g.outputs = vec![v];
        g
    }

    #[test]
    fn long_chains_become_bodies_of_max_body_ops_computing_the_same() {
        let x = Tensor::new(vec![2, 3], Data::F32(vec![-1.5, -0.2, 0.0, 0.3, 0.9, 2.0])).expect("x");
        for n in [LONG_CHAIN, LONG_CHAIN + 1, 1000] {
            let g0 = chain(n);
            let mut g = g0.clone();
            let fused = fuse_long_chains(&mut g);
            g.reinfer().expect("types");
            kiln_ir::verify(&g).expect("verify");
            if n <= LONG_CHAIN {
                assert_eq!((fused, g.nodes.len()), (0, n), "a chain of {n} is left to the e-graph");
                continue;
            }
            assert_eq!(g.nodes.len(), n.div_ceil(MAX_BODY), "{n} ops");
            assert_eq!(fused, n - g.nodes.len());
            assert!(g.nodes.iter().all(|k| matches!(&k.op, Op::FusedElementwise { body } if body.nodes.len() <= MAX_BODY)));
            assert_eq!(interp::run(&g, vec![x.clone()]).expect("run"), interp::run(&g0, vec![x.clone()]).expect("run"));
        }
    }

    #[test]
    fn a_value_read_twice_or_an_output_ends_a_chain() {
        let mut g = chain(3 * LONG_CHAIN);
        // Node LONG_CHAIN's output is also a graph output: the chain is cut there.
        let mid = g.nodes[LONG_CHAIN].outputs[0].expect("output");
        g.outputs.push(mid);
        fuse_long_chains(&mut g);
        g.reinfer().expect("types");
        assert!(g.nodes.iter().any(|n| n.outputs[0] == Some(mid)), "the output stays a node's output");
        assert!(g.outputs.iter().all(|o| g.nodes.iter().any(|n| n.outputs[0] == Some(*o))));
    }
}
