//! Lowers an optimized kiln graph (static shapes) to a GE graph: graph inputs become Data ops,
//! weights Const ops, each node the CANN built-in ops of [`table`], fused nodes their anchor
//! (Conv2D, BatchMatMulV2) and their elementwise body op by op, and the outputs a NetOutput.
//!
//! Every node is visited even after one fails: an unsupported op is recorded and its outputs
//! stand in for the rest of the walk, so that one compile lists every op the target lacks.
//! A stand-in has the value's ND description, which is faithful except for a value a
//! convolution stores in NC1HWC0: failures downstream of such a stand-in are not reported
//! (they would follow from the stand-in), only counted on the root's line.

mod attention;
mod conv;
mod conv_transpose;
mod elementwise;
mod fused;
mod index;
mod loss;
mod matmul;
mod movement;
mod norm;
mod ops;
mod quant;
pub(crate) mod quantized_products;
mod recurrent;
mod reduce;
mod resample;
pub mod table;
mod transformer;

use crate::ascendc::reduce::ReduceKind;
use crate::ascendc::Kernel;
use crate::ge::builder::{Builder, Desc, Input, Port};
use crate::ge::proto::ModelDef;
use crate::ge::Attr;
use kiln_ir::ops::{DimNamer, Format};
use kiln_ir::{DType, Graph, InType, Node, Op, Shape, Tensor, TensorType, ValueId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Why a node could not be lowered.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unsupported {
    pub node: String,
    pub op: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LowerError {
    #[error("{} op(s) have no Ascend lowering:\n{}", .0.len(), .0.iter().map(|u| format!("  node `{}` ({}): {}", u.node, u.op, u.reason)).collect::<Vec<_>>().join("\n"))]
    Unsupported(Vec<Unsupported>),
    #[error("the 910b target needs static shapes: input `{0}` is {1} (give --input-shape)")]
    Dynamic(String, String),
    #[error("internal error lowering node `{node}`: {msg}")]
    Internal { node: String, msg: String },
}

/// How one kiln op was lowered: the CANN op types it became.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Mapping {
    /// kiln op name → CANN op types (sorted, deduplicated) and node count.
    pub ops: BTreeMap<String, (Vec<String>, usize)>,
    /// The op types among those that are kiln's AscendC kernels, not CANN built-ins.
    pub custom: BTreeSet<String>,
}

impl Mapping {
    /// "built-in", "AscendC", or "built-in + AscendC": what the CANN op types of a kiln op are.
    pub fn kind(&self, types: &[String]) -> &'static str {
        match (types.iter().any(|t| self.custom.contains(t)), types.iter().all(|t| self.custom.contains(t))) {
            (false, _) => "built-in",
            (true, true) => "AscendC",
            (true, false) => "built-in + AscendC",
        }
    }
}

/// A lowered graph: the GE model, how its ops map, and the AscendC kernels it references.
#[derive(Clone, Debug)]
pub struct Lowered {
    pub model: ModelDef,
    pub mapping: Mapping,
    pub kernels: Vec<Kernel>,
}

/// The GE model of `g` and how its ops map. `fp16_range`: the graph will run under ATC's
/// `force_fp16`, so fp32 constants beyond fp16's range are clamped to ±65504 (ATC's conversion
/// would make them infinite, and an additive mask of f32::MIN times 0 NaN).
pub fn lower(g: &Graph, fp16_range: bool) -> Result<Lowered, LowerError> {
    let (cx, unsupported) = walk(g, fp16_range)?;
    if !unsupported.is_empty() {
        return Err(LowerError::Unsupported(unsupported));
    }
    cx.finish(g)
}

/// What the 910b lacks in `g`: how each supported op maps to CANN ops, and every node that
/// has no lowering (`kiln ops --target 910b`).
pub fn support(g: &Graph) -> Result<(Mapping, Vec<Unsupported>), LowerError> {
    let (cx, unsupported) = walk(g, false)?;
    Ok((cx.mapping, unsupported))
}

/// Lowers every node it can, recording the others.
fn walk(g: &Graph, fp16_range: bool) -> Result<(Cx, Vec<Unsupported>), LowerError> {
    let mut cx = Cx {
        b: Builder::default(),
        vals: HashMap::new(),
        mapping: Mapping::default(),
        current: vec![],
        shared: HashMap::new(),
        lost: HashMap::new(),
        fp16_range,
        kernels: vec![],
    };
    for (i, &v) in g.inputs.iter().enumerate() {
        let val = g.value(v);
        let d = static_desc(&val.ty).ok_or_else(|| LowerError::Dynamic(val.name.clone(), format!("{}{}", val.ty.dtype, val.ty.shape)))?;
        if crate::ge::dtype::ge_type(d.dtype).is_none() {
            let reason = format!("a {} graph input: GE has no such type", d.dtype);
            return Err(LowerError::Unsupported(vec![Unsupported { node: val.name.clone(), op: "input".into(), reason }]));
        }
        let p = cx.b.data(&val.name, i, d).map_err(|msg| LowerError::Internal { node: val.name.clone(), msg })?;
        cx.vals.insert(v, p);
    }
    let mut unsupported = vec![];
    // Values computed from an unfaithful stand-in: a node reading one that fails is not
    // reported (its inputs are not what the model computes: the root failure is).
    // Each tainted value maps to the root failure (its index in `unsupported`).
    let mut tainted: HashMap<ValueId, usize> = HashMap::new();
    let mut hidden = vec![];
    for n in &g.nodes {
        cx.current.clear();
        let root = n.inputs.iter().flatten().find_map(|i| tainted.get(i).copied());
        if let Some(r) = root {
            tainted.extend(n.outputs.iter().flatten().map(|&o| (o, r)));
        }
        match cx.node(g, n) {
            Ok(()) => {
                let e = cx.mapping.ops.entry(n.op.display_name().to_string()).or_default();
                e.0.append(&mut cx.current);
                e.0.sort();
                e.0.dedup();
                e.1 += 1;
            }
            Err(Fail::Unsupported(reason)) => {
                match root {
                    Some(r) => hidden[r] += 1,
                    None => {
                        unsupported.push(Unsupported { node: n.name.clone(), op: n.op.display_name().to_string(), reason });
                        hidden.push(0);
                        // A stand-in is the value's logical ND description: faithful, except
                        // for a value stored in a convolution's NC1HWC0, whose readers would
                        // then fail for the stand-in's sake.
                        if matches!(n.op, Op::ConvFused { format: Format::Nc1hwc0, .. } | Op::ToFormat { format: Format::Nc1hwc0, .. }) {
                            let r = unsupported.len() - 1;
                            tainted.extend(n.outputs.iter().flatten().map(|&o| (o, r)));
                        }
                    }
                }
                // Stand-ins for the outputs, so that later nodes are lowered (and report too);
                // an output of unknown shape cannot be read (its readers are downstream).
                for (k, o) in n.outputs.iter().enumerate() {
                    let Some(o) = *o else { continue };
                    match static_desc(&g.value(o).ty) {
                        Some(d) => {
                            let p = cx.b.stand_in(&format!("<unsupported {}>", n.name), k, d);
                            cx.vals.insert(o, p);
                        }
                        None => {
                            cx.lost.insert(o, n.name.clone());
                        }
                    }
                }
            }
            Err(Fail::Internal(msg)) => return Err(LowerError::Internal { node: n.name.clone(), msg }),
        }
    }
    for (u, n) in unsupported.iter_mut().zip(hidden) {
        if n > 0 {
            u.reason += &format!(" ({n} later node(s) that read its result also failed and are not listed: they may follow from it)");
        }
    }
    Ok((cx, unsupported))
}

impl Cx {
    /// The graph with its outputs.
    fn finish(mut self, g: &Graph) -> Result<Lowered, LowerError> {
        let outs = g
            .outputs
            .iter()
            .map(|&o| self.port(g, o))
            .collect::<Result<Vec<_>, Fail>>()
            .map_err(|e| LowerError::Internal { node: "NetOutput".into(), msg: e.message() })?;
        let model = self.b.finish(&g.name, &outs).map_err(|msg| LowerError::Internal { node: "NetOutput".into(), msg })?;
        Ok(Lowered { model, mapping: self.mapping, kernels: self.kernels })
    }
}

/// A node's lowering failed: the target lacks it (reported with the others), or kiln is wrong.
#[derive(Debug)]
pub(crate) enum Fail {
    Unsupported(String),
    Internal(String),
}

impl Fail {
    fn message(&self) -> String {
        match self {
            Fail::Unsupported(m) | Fail::Internal(m) => m.clone(),
        }
    }
}

pub(crate) fn unsupported<T>(why: impl Into<String>) -> Result<T, Fail> {
    Err(Fail::Unsupported(why.into()))
}

fn internal(e: impl std::fmt::Display) -> Fail {
    Fail::Internal(e.to_string())
}

/// A fixed-shape tensor type as a plain descriptor.
fn static_desc(t: &TensorType) -> Option<Desc> {
    t.shape.as_fixed().map(|d| Desc::nd(t.dtype, &d))
}

/// The lowering state: the GE graph so far, and where each kiln value is.
pub(crate) struct Cx {
    pub b: Builder,
    vals: HashMap<ValueId, Port>,
    mapping: Mapping,
    /// The CANN op types the current node became.
    current: Vec<String>,
    /// Ports derived once and shared by the nodes that need them (causal masks, rotary
    /// tables), by a key naming what they are computed from.
    pub shared: HashMap<String, Port>,
    /// Values of unknown shape made by unsupported nodes (named), which nothing can read.
    lost: HashMap<ValueId, String>,
    /// Clamp fp32 constants to fp16's range (see [`lower`]).
    fp16_range: bool,
    /// The AscendC kernels made so far.
    kernels: Vec<Kernel>,
}

impl Cx {
    /// The GE port of graph value `v`, making the Const of a weight on first use.
    fn port(&mut self, g: &Graph, v: ValueId) -> Result<Port, Fail> {
        if let Some(p) = self.vals.get(&v) {
            return Ok(p.clone());
        }
        if let Some(n) = self.lost.get(&v) {
            return unsupported(format!("it reads `{}`, made by the unsupported node `{n}`", g.value(v).name));
        }
        let t = g.consts.get(&v).ok_or_else(|| Fail::Internal(format!("value `{}` is used before it is made", g.value(v).name)))?;
        let p = self.constant(&g.value(v).name, t)?;
        self.vals.insert(v, p.clone());
        Ok(p)
    }

    /// A Const op holding `t`.
    pub fn constant(&mut self, name: &str, t: &Tensor) -> Result<Port, Fail> {
        if t.dtype().bits() < 8 {
            return unsupported(format!("a {} constant: GE packs sub-byte types, kiln does not yet", t.dtype()));
        }
        let clamped;
        let t = match t.data() {
            kiln_ir::Data::F32(v) if self.fp16_range && v.iter().any(|x| x.is_finite() && x.abs() > 65504.0) => {
                let v = v.iter().map(|&x| if x.is_finite() { x.clamp(-65504.0, 65504.0) } else { x }).collect();
                clamped = Tensor::new(t.dims().to_vec(), kiln_ir::Data::F32(v)).map_err(internal)?;
                &clamped
            }
            _ => t,
        };
        let bytes = t.data().to_le_bytes().ok_or_else(|| Fail::Internal(format!("constant `{name}` has no byte form")))?;
        self.b.constant(name, Desc::nd(t.dtype(), t.dims()), bytes).map_err(Fail::Unsupported)
    }

    /// An i64 vector constant (shapes, axes).
    pub fn ints(&mut self, name: &str, v: &[i64]) -> Result<Port, Fail> {
        let t = Tensor::from_i64s(vec![v.len()], v.to_vec()).map_err(internal)?;
        self.constant(name, &t)
    }

    /// A scalar constant of dtype `d`.
    pub fn scalar(&mut self, name: &str, d: DType, v: f64) -> Result<Port, Fail> {
        let t = Tensor::new(vec![], kiln_ir::Data::from_f64(d, &[v])).map_err(internal)?;
        self.constant(name, &t)
    }

    /// The descriptor of a port.
    pub fn desc(&self, p: &Port) -> Result<Desc, Fail> {
        self.b.desc(p).cloned().ok_or_else(|| Fail::Internal(format!("no descriptor for `{}`", p.edge())))
    }

    /// One CANN op; records its type for the node's mapping.
    pub fn op(
        &mut self,
        name: &str,
        ty: &str,
        inputs: &[Input],
        outputs: Vec<(&str, Desc)>,
        attrs: Vec<(&str, Attr)>,
    ) -> Result<Vec<Port>, Fail> {
        self.current.push(ty.to_string());
        self.b.op(name, ty, inputs, outputs, attrs).map_err(Fail::Internal)
    }

    /// A one-output CANN op.
    pub fn op1(&mut self, name: &str, ty: &str, inputs: &[Input], out: Desc, attrs: Vec<(&str, Attr)>) -> Result<Port, Fail> {
        let mut v = self.op(name, ty, inputs, vec![("y", out)], attrs)?;
        v.pop().ok_or_else(|| Fail::Internal(format!("{ty} made no output")))
    }

    fn node(&mut self, g: &Graph, n: &Node) -> Result<(), Fail> {
        // The weights of a quantized product are read as constants by its lowering, which stores
        // them as CANN's op takes them (4-bit values GE could not hold as they are): no Const op.
        let read_as_constant = |k: usize| matches!(n.op, Op::MatMulQ4 { .. } | Op::MatMulQ8 {}) && k > 0;
        let ins: Vec<Option<Port>> = n
            .inputs
            .iter()
            .enumerate()
            .map(|(k, i)| match i {
                Some(v) if read_as_constant(k) && g.consts.contains_key(v) => Ok(None),
                i => i.map(|v| self.port(g, v)).transpose(),
            })
            .collect::<Result<_, _>>()?;
        let outs: Vec<Option<Desc>> = n.outputs.iter().map(|o| o.and_then(|o| static_desc(&g.value(o).ty))).collect();
        if n.outputs.iter().zip(&outs).any(|(o, d)| o.is_some() && d.is_none()) {
            return unsupported("an output of unknown shape: the 910b target needs static shapes");
        }
        let consts: Vec<Option<&Tensor>> = n.inputs.iter().map(|i| i.and_then(|v| g.consts.get(&v).map(|t| t.as_ref()))).collect();
        let made = table::lower_node(self, &n.name, &n.op, &ins, &consts, &outs)?;
        if made.len() != n.outputs.len() {
            return Err(Fail::Internal(format!("lowered to {} outputs, the node has {}", made.len(), n.outputs.len())));
        }
        for (o, p) in n.outputs.iter().zip(made) {
            if let (Some(o), Some(p)) = (o, p) {
                self.vals.insert(*o, p);
            }
        }
        Ok(())
    }

    /// Lowers a fused node's elementwise body over `args` (the anchor's result, then the extra
    /// inputs); returns the body's outputs.
    pub fn body(&mut self, name: &str, body: &Graph, args: Vec<Port>) -> Result<Vec<Port>, Fail> {
        if args.len() != body.inputs.len() {
            return Err(Fail::Internal(format!("the body takes {} inputs, it was given {}", body.inputs.len(), args.len())));
        }
        let mut vals: HashMap<ValueId, Port> = body.inputs.iter().copied().zip(args).collect();
        for n in &body.nodes {
            // Each input's port, descriptor and shape (made constants on first use).
            let mut args: Vec<Option<(Port, Desc, Shape)>> = vec![];
            for i in &n.inputs {
                let Some(v) = i else {
                    args.push(None);
                    continue;
                };
                let p = match (vals.get(v), body.consts.get(v)) {
                    (Some(p), _) => p.clone(),
                    (None, Some(t)) => {
                        let p = self.constant(&format!("{name}/{}", body.value(*v).name), t)?;
                        vals.insert(*v, p.clone());
                        p
                    }
                    (None, None) => return Err(Fail::Internal(format!("body value `{}` is undefined", body.value(*v).name))),
                };
                let d = self.desc(&p)?;
                let shape = Shape::fixed(&d.shape());
                args.push(Some((p, d, shape)));
            }
            let consts: Vec<Option<&Tensor>> = n.inputs.iter().map(|i| i.and_then(|v| body.consts.get(&v).map(|t| t.as_ref()))).collect();
            // Body values keep their dtypes; their dims are the ones the actual inputs give.
            let in_types: Vec<Option<InType>> = args
                .iter()
                .zip(&consts)
                .map(|(a, c)| a.as_ref().map(|(_, d, shape)| InType { dtype: d.dtype, shape, value: *c }))
                .collect();
            let ty =
                n.op.infer(&in_types, 1, &mut DimNamer::new("body")).map_err(|e| Fail::Internal(format!("body node `{}`: {e}", n.name)))?;
            let out =
                ty.first().and_then(static_desc).ok_or_else(|| Fail::Internal(format!("body node `{}` has no static type", n.name)))?;
            // A body value in a stored format keeps the format of the tensor it was made from.
            let out = match args.iter().flatten().find(|(_, d, _)| d.format != "ND" && d.dims == out.dims) {
                Some((_, d, _)) => Desc { dtype: out.dtype, ..d.clone() },
                None => out,
            };
            let ins: Vec<Option<Port>> = args.into_iter().map(|a| a.map(|(p, _, _)| p)).collect();
            let made = table::lower_node(self, &format!("{name}/{}", n.name), &n.op, &ins, &consts, &[Some(out)])?;
            if let (Some(Some(o)), Some(Some(p))) = (n.outputs.first(), made.into_iter().next()) {
                vals.insert(*o, p);
            }
        }
        body.outputs
            .iter()
            .map(|o| vals.get(o).cloned().ok_or_else(|| Fail::Internal(format!("body output `{}` is undefined", body.value(*o).name))))
            .collect()
    }

    /// A body of at least `min_nodes` nodes as one AscendC custom op over `args`, when the
    /// vector kernels can compute it (None otherwise: the caller emits built-ins). Inputs
    /// broadcast from more than one element are expanded with BroadcastToD first.
    pub fn kernel(&mut self, name: &str, body: &Graph, args: Vec<Port>, out: &Desc, min_nodes: usize) -> Result<Option<Port>, Fail> {
        if body.nodes.len() < min_nodes || out.format != "ND" {
            return Ok(None);
        }
        let out_dims = out.shape();
        let total: usize = out_dims.iter().product();
        let mut descs = vec![];
        for a in &args {
            let d = self.desc(a)?;
            if d.format != "ND" {
                return Ok(None);
            }
            descs.push(d);
        }
        // What the kernel reads: one element, or the output's elements in the output's order;
        // an input broadcast from more than one element is expanded first.
        let expand: Vec<bool> = descs
            .iter()
            .map(|d| {
                let n: usize = d.shape().iter().product();
                n != 1 && n != total
            })
            .collect();
        let in_dims: Vec<Vec<usize>> = descs.iter().zip(&expand).map(|(d, &e)| if e { out_dims.clone() } else { d.shape() }).collect();
        let index = self.kernels.len();
        let Ok(k) = Kernel::plan(index, name, body, &in_dims, &out_dims) else { return Ok(None) };
        if k.program.out != out.dtype {
            return Err(Fail::Internal(format!("the kernel computes {}, the node declares {}", k.program.out, out.dtype)));
        }
        let op_type = self.register(k);
        let mut inputs = vec![];
        for (i, (a, &e)) in args.into_iter().zip(&expand).enumerate() {
            let a = if e { transformer::broadcast(self, &format!("{name}/broadcast{i}"), a, &out.dims)? } else { a };
            inputs.push((format!("x{i}"), Some(a)));
        }
        let inputs: Vec<Input> = inputs.iter().map(|(n, p)| (n.as_str(), p.clone())).collect();
        self.op1(name, &op_type, &inputs, out.clone(), vec![]).map(Some)
    }

    /// `x` (viewed as `[outer, rows, inner]`) reduced over `rows` by `kind` as one AscendC
    /// kernel, its result shaped `out`; None where the reduction does not qualify.
    pub fn reduce_kernel(&mut self, name: &str, kind: ReduceKind, x: Port, view: [usize; 3], out: &Desc) -> Result<Option<Port>, Fail> {
        let xd = self.desc(&x)?;
        if xd.format != "ND" || out.format != "ND" || xd.dtype != out.dtype {
            return Ok(None);
        }
        let index = self.kernels.len();
        let Ok(k) = Kernel::plan_reduce(index, name, kind, xd.dtype, view, &xd.shape(), &out.shape()) else { return Ok(None) };
        let op_type = self.register(k);
        self.op1(name, &op_type, &[("x0", Some(x))], out.clone(), vec![]).map(Some)
    }

    /// The op type of kernel `k`: an identical kernel's, or `k`'s own, registered now.
    fn register(&mut self, k: Kernel) -> String {
        if let Some(e) = self.kernels.iter().find(|e| e.same_op(&k)) {
            return e.op_type.clone();
        }
        let op_type = k.op_type.clone();
        self.mapping.custom.insert(op_type.clone());
        self.kernels.push(k);
        op_type
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::ops::{AspectPolicy, CoordMode, NearestMode, ResizeMode};
    use kiln_ir::{BinaryOp, Data, Op, UnaryOp};
    use std::sync::Arc;

    /// A cubic Resize (unmapped) and, after ops reading its result, another: its stand-in is
    /// faithful (a plain ND value), so the second is reported too, on its own line.
    #[test]
    fn failures_after_a_faithful_stand_in_are_each_reported() {
        let mut g = Graph::new("cascade");
        let x = g.add_input("x", TensorType::fixed(DType::F32, &[1, 4, 8, 8]));
        let scales = g.add_const("scales", Arc::new(Tensor::new(vec![4], Data::F32(vec![1.0, 1.0, 2.0, 2.0])).expect("scales")));
        let resize = Op::Resize {
            mode: ResizeMode::Cubic,
            coordinate_transformation_mode: CoordMode::HalfPixel,
            nearest_mode: NearestMode::RoundPreferFloor,
            cubic_coeff_a: -0.75,
            exclude_outside: false,
            extrapolation_value: 0.0,
            antialias: false,
            axes: vec![],
            keep_aspect_ratio_policy: AspectPolicy::Stretch,
        };
        let y =
            g.add_node("resize", resize.clone(), vec![Some(x), None, Some(scales)], &[Some("y".into())]).expect("resize")[0].expect("y");
        let r = g.add_node("relu", Op::Unary { op: UnaryOp::Relu }, vec![Some(y)], &[Some("r".into())]).expect("relu")[0].expect("r");
        let s =
            g.add_node("sum", Op::Binary { op: BinaryOp::Add }, vec![Some(r), Some(y)], &[Some("s".into())]).expect("sum")[0].expect("s");
        let again = g.add_node("resize2", resize, vec![Some(s), None, Some(scales)], &[Some("t".into())]).expect("resize2")[0].expect("t");
        g.outputs = vec![again];
        let (_, unsupported) = support(&g).expect("walk");
        assert_eq!(unsupported.iter().map(|u| u.node.as_str()).collect::<Vec<_>>(), ["resize", "resize2"], "{unsupported:?}");
        assert!(unsupported.iter().all(|u| !u.reason.contains("later node")), "{unsupported:?}");
    }
}
