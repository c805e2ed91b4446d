//! The SSA graph: values defined once, nodes in topological order, weights stored once.

use crate::ops::{DimNamer, InType, Op, OpError, TensorType};
use crate::tensor::Tensor;
use indexmap::IndexMap;
use std::sync::Arc;

/// A value's index in its graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueId(pub u32);

/// A value: a graph input, a constant (weight) or a node output.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub name: String,
    pub ty: TensorType,
}

/// One operation. Absent optional inputs and unused optional outputs are `None`.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<Option<ValueId>>,
    pub outputs: Vec<Option<ValueId>>,
}

/// A graph. Constants live in `consts`, one `Arc` per weight: every use refers to the same
/// value id, so a weight is never copied per use.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Graph {
    pub name: String,
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<ValueId>,
    pub outputs: Vec<ValueId>,
    pub consts: IndexMap<ValueId, Arc<Tensor>>,
}

/// A node could not be added: which node, which op, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("node `{node}` ({op}): {source}")]
pub struct NodeError {
    pub node: String,
    pub op: &'static str,
    #[source]
    pub source: OpError,
}

impl Graph {
    /// Names output `i` `names[i]` (the model's names: an importer's aliasing and the
    /// optimizer's extraction name values otherwise). A value a node makes is renamed; a graph
    /// input, a weight or a value already an earlier output cannot be, so an Identity (a view)
    /// of that name becomes the output. A name another value holds is left as it is.
    pub fn name_outputs(&mut self, names: &[String]) -> Result<(), NodeError> {
        let mut taken: std::collections::HashSet<String> = self.values.iter().map(|v| v.name.clone()).collect();
        for (i, want) in names.iter().enumerate().take(self.outputs.len()) {
            let o = self.outputs[i];
            if taken.contains(want) {
                continue;
            }
            if self.inputs.contains(&o) || self.consts.contains_key(&o) || self.outputs[..i].contains(&o) {
                let made = self.add_node(format!("{want}/output"), crate::Op::Identity {}, vec![Some(o)], &[Some(want.clone())])?;
                if let Some(Some(v)) = made.first() {
                    self.outputs[i] = *v;
                }
            } else {
                self.values[o.0 as usize].name = want.clone();
            }
            taken.insert(want.clone());
        }
        Ok(())
    }

    pub fn new(name: impl Into<String>) -> Graph {
        Graph { name: name.into(), ..Graph::default() }
    }

    pub fn value(&self, id: ValueId) -> &Value {
        &self.values[id.0 as usize]
    }

    fn push_value(&mut self, name: String, ty: TensorType) -> ValueId {
        self.values.push(Value { name, ty });
        ValueId(self.values.len() as u32 - 1)
    }

    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> ValueId {
        let id = self.push_value(name.into(), ty);
        self.inputs.push(id);
        id
    }

    /// Adds a constant; the graph keeps the `Arc`, so sharing it elsewhere costs nothing.
    pub fn add_const(&mut self, name: impl Into<String>, t: Arc<Tensor>) -> ValueId {
        let ty = TensorType::fixed(t.dtype(), t.dims());
        let id = self.push_value(name.into(), ty);
        self.consts.insert(id, t);
        id
    }

    pub fn const_value(&self, id: ValueId) -> Option<&Arc<Tensor>> {
        self.consts.get(&id)
    }

    /// Infers the node's output types from its inputs and appends it.
    /// `outputs[i] = None` marks an unused optional output.
    pub fn add_node(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: Vec<Option<ValueId>>,
        outputs: &[Option<String>],
    ) -> Result<Vec<Option<ValueId>>, NodeError> {
        let name = name.into();
        let types = self.infer_node(&name, &op, &inputs, outputs.len())?;
        let ids = outputs.iter().zip(types).map(|(o, ty)| o.as_ref().map(|n| self.push_value(n.clone(), ty))).collect::<Vec<_>>();
        self.nodes.push(Node { name, op, inputs, outputs: ids.clone() });
        Ok(ids)
    }

    fn infer_node(&self, name: &str, op: &Op, inputs: &[Option<ValueId>], n_out: usize) -> Result<Vec<TensorType>, NodeError> {
        let ins: Vec<Option<InType>> = inputs
            .iter()
            .map(|i| {
                i.map(|id| {
                    let v = self.value(id);
                    InType { dtype: v.ty.dtype, shape: &v.ty.shape, value: self.consts.get(&id).map(|t| t.as_ref()) }
                })
            })
            .collect();
        let err = |source| NodeError { node: name.to_string(), op: op.kind_name(), source };
        let mut names = DimNamer::new(name);
        let types = op.infer(&ins, n_out, &mut names).map_err(err)?;
        if types.len() < n_out {
            return Err(err(OpError::Invalid(format!("op yields {} outputs, node has {n_out}", types.len()))));
        }
        Ok(types)
    }

    /// Makes graph input `id` the constant `t` (of the input's dtype and a shape it admits)
    /// and re-infers every type: shapes that depended on its value become known.
    pub fn freeze_input(&mut self, id: ValueId, t: Tensor) -> Result<(), NodeError> {
        let v = self.value(id);
        let fits = v.ty.dtype == t.dtype()
            && v.ty.shape.rank() == t.rank()
            && v.ty.shape.0.iter().zip(t.dims()).all(|(d, &n)| d.known().is_none_or(|k| k == n));
        if !fits || !self.inputs.contains(&id) {
            let source = OpError::Invalid(format!(
                "`{}` is not an input of type {} {} that admits {:?} {}",
                v.name,
                v.ty.dtype,
                v.ty.shape,
                t.dims(),
                t.dtype()
            ));
            return Err(NodeError { node: v.name.clone(), op: "input", source });
        }
        self.values[id.0 as usize].ty = TensorType::new(t.dtype(), crate::Shape::fixed(t.dims()));
        self.inputs.retain(|&i| i != id);
        self.consts.insert(id, Arc::new(t));
        self.reinfer()
    }

    /// Re-runs type inference over every node (after input shapes or constants changed).
    pub fn reinfer(&mut self) -> Result<(), NodeError> {
        for i in 0..self.nodes.len() {
            let node = &self.nodes[i];
            let types = self.infer_node(&node.name, &node.op, &node.inputs, node.outputs.len())?;
            let outs = node.outputs.clone();
            for (o, ty) in outs.into_iter().zip(types) {
                if let Some(o) = o {
                    self.values[o.0 as usize].ty = ty;
                }
            }
        }
        Ok(())
    }

    /// The node's outputs when they are known without running the model: every input is a
    /// constant, or the node is `Shape`/`Size` of a statically shaped value. `None` when they
    /// are not, when evaluation fails, or when an output has more than `limit` elements.
    pub fn constant_outputs(&self, node: &Node, limit: usize) -> Option<Vec<Tensor>> {
        if !node.op.subgraphs().is_empty() {
            return None;
        }
        let first = node.inputs.first().copied().flatten();
        match &node.op {
            Op::Shape { start, end } => {
                let dims = self.value(first?).ty.shape.as_fixed()?;
                return Some(vec![crate::ops::shape_tensor(&dims, *start, *end)]);
            }
            Op::Size {} => {
                let n = self.value(first?).ty.shape.numel()?;
                return Some(vec![Tensor::scalar_i64(n as i64)]);
            }
            _ => {}
        }
        let ins = node
            .inputs
            .iter()
            .map(|i| match i {
                None => Some(None),
                Some(id) => self.const_value(*id).map(|t| Some(t.as_ref())),
            })
            .collect::<Option<Vec<_>>>()?;
        let outs = node.op.eval(&ins, node.outputs.len()).ok()?;
        (outs.len() >= node.outputs.len() && outs.iter().all(|t| t.numel() <= limit)).then_some(outs)
    }

    /// Replaces the last node by constants when [`Graph::constant_outputs`] knows them.
    /// Returns whether it did.
    pub fn fold_last_node(&mut self, limit: usize) -> bool {
        let Some(node) = self.nodes.last() else { return false };
        let Some(outs) = self.constant_outputs(node, limit) else { return false };
        let ids = node.outputs.clone();
        self.nodes.pop();
        for (o, t) in ids.into_iter().zip(outs) {
            if let Some(o) = o {
                self.consts.insert(o, Arc::new(t));
            }
        }
        true
    }

    /// Number of parameters and their bytes (packed) over all constants.
    pub fn parameter_count(&self) -> (usize, usize) {
        self.consts.values().fold((0, 0), |(n, b), t| (n + t.numel(), b + t.byte_size()))
    }

    /// Histogram of op kinds (Unary/Binary counted by their function), sorted by name.
    pub fn op_histogram(&self) -> std::collections::BTreeMap<String, usize> {
        let mut h = std::collections::BTreeMap::new();
        for n in &self.nodes {
            *h.entry(n.op.display_name().to_string()).or_insert(0) += 1;
        }
        h
    }

    /// Weights by value name, for the text parser.
    pub fn weights_by_name(&self) -> std::collections::HashMap<String, Arc<Tensor>> {
        let mut m = std::collections::HashMap::new();
        self.collect_weights(&mut m);
        m
    }

    fn collect_weights(&self, m: &mut std::collections::HashMap<String, Arc<Tensor>>) {
        for (id, t) in &self.consts {
            m.insert(self.value(*id).name.clone(), t.clone());
        }
        for n in &self.nodes {
            for g in n.op.subgraphs() {
                g.collect_weights(m);
            }
        }
    }
}

impl Op {
    /// The name shown to users: the function for Unary/Binary, the kind otherwise.
    pub fn display_name(&self) -> &'static str {
        match self {
            Op::Unary { op } => op.name(),
            Op::Binary { op } => op.name(),
            other => other.kind_name(),
        }
    }

    /// Subgraphs held by control-flow ops and fused ops' bodies.
    pub fn subgraphs(&self) -> Vec<&Graph> {
        match self {
            Op::If { then_branch, else_branch } => vec![then_branch, else_branch],
            Op::Loop { body, .. } | Op::Scan { body, .. } => vec![body],
            Op::FusedElementwise { body } | Op::MatMulFused { body, .. } | Op::ConvFused { body, .. } => vec![body],
            _ => vec![],
        }
    }
}
