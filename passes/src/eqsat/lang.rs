//! The e-graph language: one e-node per IR op application, carrying the op itself with its typed
//! attributes (no strings, no positional attribute slots), plus leaves for graph inputs, weights
//! and absent optional inputs, and a projection for ops with several outputs.
//!
//! Ops are not `Hash`/`Ord` (they hold floats and subgraphs), so an e-node holds an [`OpKey`]:
//! the op behind an `Arc` with a fingerprint of its attributes, compared in full on equality.

use egg::{Id, Language};
use kiln_ir::Op;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// An op as an e-node payload: equal keys mean equal kind and attributes.
#[derive(Clone)]
pub struct OpKey {
    op: Arc<Op>,
    /// The attributes in a canonical text (the op's `Debug` form, which prints floats exactly).
    key: Arc<str>,
}

impl OpKey {
    pub fn new(op: Op) -> OpKey {
        let key: Arc<str> = format!("{op:?}").into();
        OpKey { op: Arc::new(op), key }
    }
    pub fn op(&self) -> &Op {
        &self.op
    }
}

impl PartialEq for OpKey {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.op, &other.op) || self.key == other.key
    }
}
impl Eq for OpKey {}
impl Hash for OpKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state)
    }
}
impl PartialOrd for OpKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for OpKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key.cmp(&other.key)
    }
}
impl std::fmt::Debug for OpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.op.display_name())
    }
}

/// An e-node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// The graph input at this position.
    Input(u32),
    /// A weight: an index into the analysis's constant table.
    Weight(u32),
    /// An optional input that is not given.
    Absent,
    /// Output `index` of a node with several outputs.
    Get { index: u32, tuple: [Id; 1] },
    /// An op applied to its inputs. `outputs` > 1 makes the e-class a tuple read through `Get`.
    Op { op: OpKey, outputs: u32, args: Vec<Id> },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Discriminant {
    Input(u32),
    Weight(u32),
    Absent,
    Get(u32),
    Op(OpKey, u32, usize),
}

impl Language for Node {
    type Discriminant = Discriminant;

    fn discriminant(&self) -> Discriminant {
        match self {
            Node::Input(i) => Discriminant::Input(*i),
            Node::Weight(i) => Discriminant::Weight(*i),
            Node::Absent => Discriminant::Absent,
            Node::Get { index, .. } => Discriminant::Get(*index),
            Node::Op { op, outputs, args } => Discriminant::Op(op.clone(), *outputs, args.len()),
        }
    }

    fn matches(&self, other: &Self) -> bool {
        self.discriminant() == other.discriminant()
    }

    fn children(&self) -> &[Id] {
        match self {
            Node::Input(_) | Node::Weight(_) | Node::Absent => &[],
            Node::Get { tuple, .. } => tuple,
            Node::Op { args, .. } => args,
        }
    }

    fn children_mut(&mut self) -> &mut [Id] {
        match self {
            Node::Input(_) | Node::Weight(_) | Node::Absent => &mut [],
            Node::Get { tuple, .. } => tuple,
            Node::Op { args, .. } => args,
        }
    }
}

impl Node {
    /// The op of an `Op` node.
    pub fn op(&self) -> Option<&Op> {
        match self {
            Node::Op { op, .. } => Some(op.op()),
            _ => None,
        }
    }
}
