//! Rule sets by theme. Each file opens with a before/after example in text IR; each rule is
//! named `theme/what-it-does` and has a test that it fires and one that it does not where it
//! must not. `docs/adding-a-rewrite.md` says how to add one.

pub mod algebra;
pub mod fusion;
pub mod heads;
pub mod layout;
pub mod patterns;
pub mod quant;

use crate::eqsat::analysis::{ClassData, EG};
use crate::eqsat::lang::Node;
use crate::eqsat::rule::Rule;
use egg::Id;
use kiln_ir::{BinaryOp, Graph, Op, Tensor, TensorType, UnaryOp, ValueId};
use std::collections::HashMap;
use std::sync::Arc;

/// Every target-independent rule, by theme.
pub fn all() -> Vec<Rule> {
    let mut r = algebra::RULES.to_vec();
    r.extend(patterns::RULES);
    r.extend(heads::RULES);
    r.extend(layout::RULES);
    r.extend(fusion::RULES);
    r.extend(quant::RULES);
    r
}

pub(crate) fn data(eg: &EG, c: Id) -> &ClassData {
    &eg[c].data
}

/// The single-output op nodes of an e-class.
pub(crate) fn ops(eg: &EG, c: Id) -> impl Iterator<Item = (&Op, &[Id])> {
    eg[c].nodes.iter().filter_map(|n| match n {
        Node::Op { op, outputs: 1, args } => Some((op.op(), args.as_slice())),
        _ => None,
    })
}

pub(crate) fn ty(eg: &EG, c: Id) -> Option<&TensorType> {
    data(eg, c).value()
}

pub(crate) fn konst(eg: &EG, c: Id) -> Option<&Arc<Tensor>> {
    data(eg, c).konst.as_ref()
}

/// The value of a one-element constant.
pub(crate) fn scalar(eg: &EG, c: Id) -> Option<f64> {
    konst(eg, c).filter(|t| t.numel() == 1 && t.dtype().is_float()).map(|t| t.to_f64()[0])
}

/// Whether class `c` is the one-element constant `v`, as its dtype stores it: within half a unit
/// in the last place of f16 or bf16 (a reduced-precision graph's 0.044715 is 0.04470825 in f16),
/// within 1e-6 relative for wider types.
pub(crate) fn is_scalar(eg: &EG, c: Id, v: f64) -> bool {
    let Some(t) = konst(eg, c).filter(|t| t.numel() == 1 && t.dtype().is_float()) else { return false };
    let tolerance = match t.dtype() {
        kiln_ir::DType::F16 => v.abs() / 2048.0,
        kiln_ir::DType::BF16 => v.abs() / 256.0,
        _ => 1e-6 * v.abs().max(1.0),
    };
    (t.to_f64()[0] - v).abs() <= tolerance
}

/// `(lhs, rhs)` of every `op` node in the class, both orders for commutative ops.
pub(crate) fn binary(eg: &EG, c: Id, op: BinaryOp) -> Vec<(Id, Id)> {
    let mut out = Vec::new();
    for (o, a) in ops(eg, c) {
        if *o == (Op::Binary { op }) && a.len() == 2 {
            out.push((a[0], a[1]));
            if matches!(op, BinaryOp::Add | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min) {
                out.push((a[1], a[0]));
            }
        }
    }
    out
}

/// The input of every `op` node in the class.
pub(crate) fn unary(eg: &EG, c: Id, op: UnaryOp) -> Vec<Id> {
    ops(eg, c).filter(|(o, a)| **o == (Op::Unary { op }) && a.len() == 1).map(|(_, a)| a[0]).collect()
}

/// The name of a weight in class `c` (for naming weights derived from it).
pub(crate) fn weight_name(eg: &EG, c: Id) -> String {
    eg[c]
        .nodes
        .iter()
        .find_map(|n| match n {
            Node::Weight(k) => Some(eg.analysis.const_names[*k as usize].clone()),
            _ => None,
        })
        .unwrap_or_else(|| "w".into())
}

/// The dims of class `c` when all are known.
pub(crate) fn fixed(eg: &EG, c: Id) -> Option<Vec<usize>> {
    ty(eg, c)?.shape.as_fixed()
}

pub(crate) fn same(eg: &EG, a: Id, b: Id) -> bool {
    eg.find(a) == eg.find(b)
}

/// Builds the body graph of a fused op from e-classes, ops and inlined bodies.
#[derive(Debug)]
pub(crate) struct Body {
    g: Graph,
    /// Outer e-class of each body input that is not an anchor part, in input order.
    pub extras: Vec<Id>,
    map: HashMap<Id, ValueId>,
    next: usize,
}

/// Constants up to this many elements are copied into a body instead of being read as inputs.
pub(crate) const INLINE_CONST: usize = 16;

/// Bodies larger than this are not grown further.
pub const MAX_BODY: usize = 48;

impl Body {
    pub fn new(name: &str) -> Body {
        Body { g: Graph::new(name), extras: Vec::new(), map: HashMap::new(), next: 0 }
    }

    pub fn len(&self) -> usize {
        self.g.nodes.len()
    }

    /// A body input that is no outer e-class (an anchor's result or part).
    pub fn anchor(&mut self, ty: TensorType) -> ValueId {
        let name = format!("acc{}", self.g.inputs.len());
        self.g.add_input(name, ty)
    }

    /// The body value standing for outer e-class `c`.
    pub fn outer(&mut self, eg: &EG, c: Id) -> Option<ValueId> {
        let c = eg.find(c);
        if let Some(v) = self.map.get(&c) {
            return Some(*v);
        }
        let v = match konst(eg, c).filter(|t| t.numel() <= INLINE_CONST) {
            Some(t) => {
                let name = format!("k{}", self.g.consts.len());
                self.g.add_const(name, t.clone())
            }
            None => {
                self.extras.push(c);
                let name = format!("in{}", self.g.inputs.len());
                self.g.add_input(name, ty(eg, c)?.clone())
            }
        };
        self.map.insert(c, v);
        Some(v)
    }

    /// Makes `v` stand for outer e-class `c` (a producer's output inside the body).
    pub fn bind(&mut self, eg: &EG, c: Id, v: ValueId) {
        self.map.insert(eg.find(c), v);
    }

    pub fn op(&mut self, op: Op, ins: Vec<Option<ValueId>>) -> Option<ValueId> {
        self.next += 1;
        let name = format!("n{}", self.next);
        self.g.add_node(name.clone(), op, ins, &[Some(name)]).ok()?[0]
    }

    /// Copies `body` in with its inputs bound to `args`; returns its outputs.
    pub fn inline(&mut self, body: &Graph, args: &[ValueId]) -> Option<Vec<ValueId>> {
        let mut m: HashMap<ValueId, ValueId> = body.inputs.iter().copied().zip(args.iter().copied()).collect();
        for (id, t) in &body.consts {
            let name = format!("k{}", self.g.consts.len());
            m.insert(*id, self.g.add_const(name, t.clone()));
        }
        for n in &body.nodes {
            let ins =
                n.inputs.iter().map(|i| i.map(|v| m.get(&v).copied()).map_or(Some(None), |x| x.map(Some))).collect::<Option<Vec<_>>>()?;
            let out = self.op(n.op.clone(), ins)?;
            m.insert(n.outputs[0]?, out);
        }
        body.outputs.iter().map(|o| m.get(o).copied()).collect()
    }

    /// Applies elementwise op or fused body `op` to the outer classes `args`.
    pub fn apply(&mut self, eg: &EG, op: &Op, args: &[Id]) -> Option<Vec<ValueId>> {
        let ins = args
            .iter()
            .map(|&a| if data(eg, a).value().is_none() { Some(None) } else { self.outer(eg, a).map(Some) })
            .collect::<Option<Vec<_>>>()?;
        match op {
            Op::FusedElementwise { body } => self.inline(body, &ins.into_iter().collect::<Option<Vec<_>>>()?),
            o if o.is_elementwise() => Some(vec![self.op(o.clone(), ins)?]),
            _ => None,
        }
    }

    pub fn finish(mut self, outputs: Vec<ValueId>) -> (Box<Graph>, Vec<Id>) {
        self.g.outputs = outputs;
        (Box::new(self.g), self.extras)
    }
}
