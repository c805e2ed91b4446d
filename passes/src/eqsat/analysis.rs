//! The e-class analysis: every e-class knows its dtype and shape (one type per output for a
//! tuple) and, for weights, its value. Merging two classes whose types disagree is a bug in a
//! rule, so [`TypeAnalysis::merge`] panics with both types; the optimizer turns that panic into
//! an internal error naming the rule set, and tests see it fail loudly.

use super::lang::Node;
use egg::{Analysis, DidMerge, EGraph, Id};
use kiln_ir::ops::DimNamer;
use kiln_ir::shape::{Dim, Shape};
use kiln_ir::{InType, Tensor, TensorType};
use std::sync::Arc;

pub type EG = EGraph<Node, TypeAnalysis>;

/// What an e-class is.
#[derive(Clone, Debug, PartialEq)]
pub enum ClassType {
    Value(TensorType),
    /// The outputs of an op with several outputs, read through `Get`.
    Tuple(Vec<TensorType>),
    /// An optional input left out.
    Absent,
}

#[derive(Clone, Debug)]
pub struct ClassData {
    pub ty: ClassType,
    /// The value, when the class is a weight.
    pub konst: Option<Arc<Tensor>>,
}

impl ClassData {
    /// The type of a value class.
    pub fn value(&self) -> Option<&TensorType> {
        match &self.ty {
            ClassType::Value(t) => Some(t),
            _ => None,
        }
    }
}

/// Weights and graph-input types the e-graph's leaves refer to.
#[derive(Debug, Default)]
pub struct TypeAnalysis {
    pub consts: Vec<Arc<Tensor>>,
    pub const_names: Vec<String>,
    pub input_types: Vec<TensorType>,
    /// Weights by a hash of their contents, so equal weights made by rules share one leaf.
    by_content: std::collections::HashMap<u64, Vec<u32>>,
}

impl TypeAnalysis {
    /// Registers a weight; returns its index for `Node::Weight`.
    pub fn add_const(&mut self, name: String, t: Arc<Tensor>) -> u32 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (t.dtype().name(), t.dims()).hash(&mut h);
        let head: Vec<usize> = (0..t.numel().min(4096)).collect();
        for v in t.data().take(&head).to_f64() {
            v.to_bits().hash(&mut h);
        }
        let key = h.finish();
        let same = self.by_content.get(&key).and_then(|ks| ks.iter().copied().find(|&k| self.consts[k as usize] == t));
        if let Some(k) = same {
            return k;
        }
        self.by_content.entry(key).or_default().push(self.consts.len() as u32);
        self.consts.push(t);
        self.const_names.push(name);
        self.consts.len() as u32 - 1
    }
}

/// Types of `node`'s inputs as inference sees them; panics on a tuple used as a value.
pub fn in_types<'a>(eg: &'a EG, args: &[Id]) -> Vec<Option<InType<'a>>> {
    args.iter()
        .map(|&a| {
            let d = &eg[a].data;
            match &d.ty {
                ClassType::Value(t) => Some(InType { dtype: t.dtype, shape: &t.shape, value: d.konst.as_deref() }),
                ClassType::Absent => None,
                ClassType::Tuple(_) => panic!("eqsat: a tuple e-class is used as an op input"),
            }
        })
        .collect()
}

fn agree(a: &TensorType, b: &TensorType) -> bool {
    a.dtype == b.dtype
        && a.shape.rank() == b.shape.rank()
        && a.shape.0.iter().zip(&b.shape.0).all(|(x, y)| match (x, y) {
            (Dim::Known(p), Dim::Known(q)) => p == q,
            // Symbolic names are per node (fresh names differ between equal programs).
            _ => true,
        })
}

/// `a` with every symbolic dim that `b` knows filled in; true when something changed.
fn refine(a: &mut TensorType, b: &TensorType) -> bool {
    let mut changed = false;
    let dims: Vec<Dim> = a
        .shape
        .0
        .iter()
        .zip(&b.shape.0)
        .map(|(x, y)| match (x, y) {
            (Dim::Sym(_), Dim::Known(k)) => {
                changed = true;
                Dim::Known(*k)
            }
            _ => x.clone(),
        })
        .collect();
    a.shape = Shape(dims);
    changed
}

impl Analysis<Node> for TypeAnalysis {
    type Data = ClassData;

    fn make(eg: &mut EG, node: &Node) -> ClassData {
        let value = |ty| ClassData { ty: ClassType::Value(ty), konst: None };
        match node {
            Node::Input(i) => value(eg.analysis.input_types[*i as usize].clone()),
            Node::Weight(i) => {
                let t = eg.analysis.consts[*i as usize].clone();
                ClassData { ty: ClassType::Value(TensorType::fixed(t.dtype(), t.dims())), konst: Some(t) }
            }
            Node::Absent => ClassData { ty: ClassType::Absent, konst: None },
            Node::Get { index, tuple } => match &eg[tuple[0]].data.ty {
                ClassType::Tuple(ts) if (*index as usize) < ts.len() => value(ts[*index as usize].clone()),
                other => panic!("eqsat: Get {index} of {other:?}"),
            },
            Node::Op { op, outputs, args } => {
                let ins = in_types(eg, args);
                let mut names = DimNamer::new("eqsat");
                let mut types = match op.op().infer(&ins, *outputs as usize, &mut names) {
                    Ok(t) => t,
                    Err(e) => {
                        let given: Vec<String> =
                            ins.iter().map(|i| i.map_or("none".into(), |t| format!("{}{}", t.dtype, t.shape))).collect();
                        panic!("eqsat: a rule built {} on inputs ({}) that does not type-check: {e}", op.op().kind_name(), given.join(", "))
                    }
                };
                types.truncate(*outputs as usize);
                if *outputs == 1 {
                    value(types.remove(0))
                } else {
                    ClassData { ty: ClassType::Tuple(types), konst: None }
                }
            }
        }
    }

    fn merge(&mut self, a: &mut ClassData, b: ClassData) -> DidMerge {
        let ok = match (&a.ty, &b.ty) {
            (ClassType::Value(x), ClassType::Value(y)) => agree(x, y),
            (ClassType::Tuple(x), ClassType::Tuple(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| agree(p, q)),
            (ClassType::Absent, ClassType::Absent) => true,
            _ => false,
        };
        assert!(ok, "eqsat: unsound rewrite merged e-classes of types {:?} and {:?}", a.ty, b.ty);
        let mut changed_a = false;
        match (&mut a.ty, &b.ty) {
            (ClassType::Value(x), ClassType::Value(y)) => changed_a |= refine(x, y),
            (ClassType::Tuple(xs), ClassType::Tuple(ys)) => {
                for (x, y) in xs.iter_mut().zip(ys) {
                    changed_a |= refine(x, y);
                }
            }
            _ => {}
        }
        if a.konst.is_none() && b.konst.is_some() {
            a.konst = b.konst.clone();
            changed_a = true;
        }
        let b_less = match (&a.ty, &b.ty) {
            (ClassType::Value(x), ClassType::Value(y)) => x != y,
            (ClassType::Tuple(x), ClassType::Tuple(y)) => x != y,
            _ => false,
        } || (b.konst.is_none() && a.konst.is_some());
        DidMerge(changed_a, b_less)
    }
}
