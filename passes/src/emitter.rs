//! Appending a rewrite's nodes to a graph in order, each named after the node it replaces: what
//! the driver's rewrites of refused ops (`unroll_recurrent`, `integer_as_float`) build with.
//! Each adds its own helpers in an `impl Emitter` of its module.

use kiln_ir::{BinaryOp, Data, Graph, NodeError, Op, Tensor, UnaryOp, ValueId};
use std::sync::Arc;

pub(crate) struct Emitter<'g> {
    pub g: &'g mut Graph,
    /// The replaced node's name.
    pub base: String,
    /// What the rewrite's node names say after it (`{base}/{tag}{k}`).
    pub tag: &'static str,
    pub k: usize,
}

impl<'g> Emitter<'g> {
    pub fn new(g: &'g mut Graph, base: &str, tag: &'static str) -> Emitter<'g> {
        Emitter { g, base: base.to_string(), tag, k: 0 }
    }
    /// The next node name.
    pub fn name(&mut self) -> String {
        self.k += 1;
        format!("{}/{}{}", self.base, self.tag, self.k)
    }
    /// A one-output node.
    pub fn op(&mut self, op: Op, ins: Vec<Option<ValueId>>) -> Result<ValueId, NodeError> {
        let name = self.name();
        let out = self.g.add_node(name.clone(), op, ins, &[Some(name)])?;
        Ok(out[0].expect("a node's first output"))
    }
    pub fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> Result<ValueId, NodeError> {
        self.op(Op::Binary { op }, vec![Some(a), Some(b)])
    }
    pub fn un(&mut self, op: UnaryOp, a: ValueId) -> Result<ValueId, NodeError> {
        self.op(Op::Unary { op }, vec![Some(a)])
    }
    /// A constant.
    pub fn konst(&mut self, t: Tensor) -> ValueId {
        self.k += 1;
        self.g.add_const(format!("{}/k{}", self.base, self.k), Arc::new(t))
    }
    /// A 1-D i64 constant.
    pub fn ints(&mut self, v: &[i64]) -> ValueId {
        self.konst(Tensor::new(vec![v.len()], Data::I64(v.to_vec())).expect("a 1-D tensor"))
    }
}
