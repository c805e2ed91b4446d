//! Converting one ONNX node: the context a lowering works in ([`Cx`]: typed attributes, inputs,
//! constants and intermediate nodes), what a lowering returns ([`Out`]) and [`convert_node`],
//! which looks the node up in the table, runs its lowering and adds the result to the graph.

use super::attrs::Attrs;
use super::{node_name, Converter, ImportError, UnsupportedOp};
use kiln_ir::{BinaryOp, DType, Data, Op, Tensor, ValueId};
use onnx_protobuf::NodeProto;
use std::sync::Arc;

pub(crate) enum NodeFailure {
    Unsupported(UnsupportedOp),
    Fatal(ImportError),
}

/// Why a lowering refused a node.
pub(crate) enum LowerError {
    /// Valid ONNX that kiln does not handle (an attribute value, a dtype).
    Unsupported(String),
    /// The node itself is wrong.
    Invalid(String),
}

impl From<String> for LowerError {
    fn from(s: String) -> Self {
        LowerError::Invalid(s)
    }
}

pub(crate) fn unsupported<T>(msg: impl Into<String>) -> Result<T, LowerError> {
    Err(LowerError::Unsupported(msg.into()))
}

/// What a node becomes.
pub(crate) enum Out {
    Node(Op, Vec<Option<ValueId>>),
    Const(Tensor),
    /// The node's outputs are existing values (a folded If).
    Alias(Vec<Option<ValueId>>),
}

pub(crate) type R = Result<Out, LowerError>;

pub(crate) struct Cx<'c, 'o> {
    pub(crate) conv: &'c mut Converter<'o>,
    pub(crate) node: &'c NodeProto,
    pub(crate) name: String,
    pub(crate) opset: i64,
    pub(crate) a: Attrs<'c>,
    pub(crate) ins: Vec<Option<ValueId>>,
    emitted: usize,
}

impl Cx<'_, '_> {
    pub(crate) fn inp(&self, k: usize) -> Option<ValueId> {
        self.ins.get(k).copied().flatten()
    }
    pub(crate) fn req(&self, k: usize) -> Result<ValueId, LowerError> {
        self.inp(k).ok_or_else(|| LowerError::Invalid(format!("input {k} is required")))
    }
    pub(crate) fn all(&self) -> Vec<Option<ValueId>> {
        self.ins.clone()
    }
    pub(crate) fn dtype(&self, id: ValueId) -> DType {
        self.conv.graph().value(id).ty.dtype
    }
    pub(crate) fn konst(&mut self, suffix: &str, t: Tensor) -> ValueId {
        let base = format!("{}_{suffix}", self.name);
        self.conv.add_const(&base, t)
    }
    pub(crate) fn ints_const(&mut self, suffix: &str, v: &[i64]) -> ValueId {
        let t = Tensor::new(vec![v.len()], Data::I64(v.to_vec())).unwrap_or_else(|_| Tensor::scalar_i64(0));
        self.konst(suffix, t)
    }
    pub(crate) fn scalar_const(&mut self, suffix: &str, dtype: DType, v: f64) -> ValueId {
        let t = Tensor::new(vec![], Data::from_f64(dtype, &[v])).unwrap_or_else(|_| Tensor::scalar_i64(0));
        self.konst(suffix, t)
    }
    /// Adds an intermediate single-output node.
    pub(crate) fn emit(&mut self, op: Op, ins: Vec<Option<ValueId>>) -> Result<ValueId, LowerError> {
        Ok(self.emit_n(op, ins, 1)?[0])
    }
    /// Adds an intermediate node with `n` outputs.
    pub(crate) fn emit_n(&mut self, op: Op, ins: Vec<Option<ValueId>>, n: usize) -> Result<Vec<ValueId>, LowerError> {
        self.emitted += 1;
        let outs: Vec<String> = (0..n).map(|k| format!("{}/t{}_{k}", self.name, self.emitted)).collect();
        let name = format!("{}/{}", self.name, self.emitted);
        let ids = self.conv.add_node(&name, op, ins, &outs).map_err(|e| match e.source {
            kiln_ir::OpError::Unsupported(m) => LowerError::Unsupported(m),
            other => LowerError::Invalid(other.to_string()),
        })?;
        ids.into_iter().map(|i| i.ok_or_else(|| LowerError::Invalid("internal: intermediate without output".into()))).collect()
    }
    /// `a op b`, broadcast.
    pub(crate) fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> Result<ValueId, LowerError> {
        self.emit(Op::Binary { op }, vec![Some(a), Some(b)])
    }
    /// The value's dims, when all are known.
    pub(crate) fn dims(&self, id: ValueId) -> Option<Vec<usize>> {
        self.conv.graph().value(id).ty.shape.as_fixed()
    }
    pub(crate) fn rank(&self, id: ValueId) -> usize {
        self.conv.graph().value(id).ty.shape.rank()
    }
    /// The value's contents, when it is a constant (an initializer, or folded at import).
    pub(crate) fn const_of(&self, id: ValueId) -> Option<Arc<Tensor>> {
        self.conv.graph().const_value(id).cloned()
    }
    /// Whether the node's output `k` is used (named).
    pub(crate) fn wants_output(&self, k: usize) -> bool {
        self.node.output.get(k).is_some_and(|o| !o.is_empty())
    }
    pub(crate) fn i(&self, n: &str, d: i64) -> Result<i64, LowerError> {
        Ok(self.a.i(n, d)?)
    }
    pub(crate) fn f(&self, n: &str, d: f32) -> Result<f32, LowerError> {
        Ok(self.a.f(n, d)?)
    }
    pub(crate) fn b(&self, n: &str, d: bool) -> Result<bool, LowerError> {
        Ok(self.a.i(n, d as i64)? != 0)
    }
    pub(crate) fn ints(&self, n: &str) -> Result<Vec<i64>, LowerError> {
        Ok(self.a.ints(n)?.unwrap_or_default())
    }
    pub(crate) fn s(&self, n: &str, d: &str) -> Result<String, LowerError> {
        Ok(self.a.s(n)?.unwrap_or_else(|| d.to_string()))
    }
}

/// Converts ONNX node number `idx` of its graph (the number names unnamed nodes).
pub(crate) fn convert_node(conv: &mut Converter, node: &NodeProto, idx: usize) -> Result<(), NodeFailure> {
    let name = node_name(node, idx);
    let domain = node.domain.clone();
    let opset = conv.opset_of(&domain).unwrap_or(0);
    let unsup = |reason: String| UnsupportedOp { node: name.clone(), op_type: node.op_type.clone(), domain: domain.clone(), opset, reason };
    let lower = match domain.as_str() {
        // onnxruntime registers a few of its own ops in the default domain
        // (SimplifiedLayerNormalization): the contrib table answers after ONNX's.
        "" | "ai.onnx" => super::table::lookup(&node.op_type, opset).or_else(|| super::contrib::lookup_default_domain(&node.op_type)),
        super::contrib::DOMAIN => super::contrib::lookup(&node.op_type),
        _ => {
            return Err(NodeFailure::Unsupported(unsup(
                "a domain kiln does not import (it imports ONNX's and onnxruntime's com.microsoft)".into(),
            )))
        }
    };
    let Some(lower) = lower else {
        return Err(NodeFailure::Unsupported(unsup("no importer for this op".into())));
    };
    let mut ins = Vec::with_capacity(node.input.len());
    for i in &node.input {
        if i.is_empty() {
            ins.push(None);
            continue;
        }
        match conv.lookup(i) {
            Some(id) => ins.push(Some(id)),
            None => {
                return Err(NodeFailure::Fatal(ImportError::MissingValue {
                    node: name.clone(),
                    op_type: node.op_type.clone(),
                    name: i.clone(),
                }))
            }
        }
    }
    let invalid = |message: String| ImportError::InvalidNode {
        node: name.clone(),
        op_type: node.op_type.clone(),
        domain: domain.clone(),
        opset,
        message,
    };
    let mut cx = Cx { conv, node, name: name.clone(), opset, a: Attrs::new(node), ins, emitted: 0 };
    let out = match lower(&mut cx) {
        Ok(o) => o,
        Err(LowerError::Unsupported(m)) => return Err(NodeFailure::Unsupported(unsup(m))),
        Err(LowerError::Invalid(m)) => return Err(NodeFailure::Fatal(invalid(m))),
    };
    let ids = match out {
        Out::Node(op, inputs) => {
            // Name the input types in the error: they are what the user needs to see.
            let g = cx.conv.graph();
            let types: Vec<String> =
                inputs.iter().map(|i| i.map_or("_".into(), |i| format!("{}{}", g.value(i).ty.dtype, g.value(i).ty.shape))).collect();
            cx.conv.add_node(&name, op, inputs, &node.output).map_err(|e| match e.source {
                kiln_ir::OpError::Unsupported(m) => NodeFailure::Unsupported(unsup(m)),
                other => NodeFailure::Fatal(invalid(format!("{other} (inputs: {})", types.join(", ")))),
            })?
        }
        Out::Const(t) => {
            let out = node.output.first().cloned().unwrap_or_default();
            vec![Some(cx.conv.add_const(&out, t))]
        }
        Out::Alias(ids) => ids,
    };
    cx.conv.bind_outputs(node, &ids);
    Ok(())
}
