//! ONNX import: ModelProto → [`kiln_ir::Graph`].
//!
//! The importer resolves opsets, decodes initializers, sorts nodes topologically, maps each node
//! through the table in [`ops`] and lets `kiln-ir` infer types as nodes are added. Subgraphs
//! (If/Loop) become closed graphs whose captured outer values are explicit inputs. Every
//! unsupported op of the model is reported at once.

mod attrs;
mod contrib;
mod lowerings;
mod node;
mod table;
pub mod tensor;
mod wire;

use kiln_ir::{DType, Dim, Graph, NodeError, Shape, Tensor, TensorType, ValueId};
use onnx_protobuf::{GraphProto, Message, ModelProto, NodeProto, ValueInfoProto};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use table::supported_op_types;
pub use tensor::{dtype_from_onnx, tensor_from_proto};

/// Nodes whose inputs are all constant are folded at import when no output exceeds this.
pub const FOLD_LIMIT: usize = 1 << 16;

/// Options that specialize the import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Concrete shapes for graph inputs (by name); symbolic dims of these inputs become known.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Values bound to graph inputs (by name): each becomes a constant of the graph, so that
    /// what depends on it folds as the model is read (an If on it imports only its taken
    /// branch). A value of another dtype than the input's converts when it does so exactly.
    pub input_values: HashMap<String, Tensor>,
}

/// The imported model.
#[derive(Debug, Clone)]
pub struct Model {
    pub graph: Graph,
    /// Opset version of the default domain.
    pub opset: i64,
    pub producer: String,
}

/// One node that kiln cannot import.
#[derive(Debug, Clone, PartialEq)]
pub struct UnsupportedOp {
    pub node: String,
    pub op_type: String,
    pub domain: String,
    pub opset: i64,
    pub reason: String,
}

impl fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = if self.domain.is_empty() { "ai.onnx" } else { &self.domain };
        write!(f, "node `{}`: {} (domain {domain}, opset {}): {}", self.node, self.op_type, self.opset, self.reason)
    }
}

/// Why a model could not be imported.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read `{path}`: {message}")]
    Io { path: String, message: String },
    #[error("malformed ONNX protobuf: {0}")]
    Parse(String),
    #[error("the model has no graph")]
    NoGraph,
    #[error("the model's graph has no outputs (is the file truncated?)")]
    NoOutputs,
    #[error("tensor `{name}`: {message}")]
    BadTensor { name: String, message: String },
    #[error("{what}: dtype {dtype} is not supported")]
    UnsupportedDType { what: String, dtype: String },
    #[error("{} unsupported op(s):\n  {}", .0.len(), .0.iter().map(|u| u.to_string()).collect::<Vec<_>>().join("\n  "))]
    Unsupported(Vec<UnsupportedOp>),
    #[error("node `{node}`: {op_type} (domain {domain}, opset {opset}): {message}")]
    InvalidNode { node: String, op_type: String, domain: String, opset: i64, message: String },
    #[error("node `{node}` ({op_type}): input `{name}` is not defined by any node, input or initializer")]
    MissingValue { node: String, op_type: String, name: String },
    #[error("the graph has a cycle through node `{0}`")]
    Cycle(String),
    #[error("graph output `{0}` is not produced by the graph")]
    MissingOutput(String),
    #[error("input `{name}`: {message}")]
    BadInput { name: String, message: String },
    #[error("{0}")]
    Type(#[from] NodeError),
}

/// Reads and imports an ONNX file; external data is resolved next to it.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<Model, ImportError> {
    let bytes = std::fs::read(path).map_err(|e| ImportError::Io { path: path.display().to_string(), message: e.to_string() })?;
    import_bytes(&bytes, path.parent().map(Path::to_path_buf), opts)
}

/// The files that hold an ONNX model's initializer data and, in each, the (offset, length)
/// ranges of that data: the model file's inline `raw_data`, and external data files (resolved
/// next to the model, as the importer does). Paths are canonical. What a weight-stripped
/// artifact may reference instead of copying.
pub fn weight_sources(path: &Path) -> Result<Vec<(PathBuf, Vec<(u64, u64)>)>, ImportError> {
    let io = |p: &Path, e: std::io::Error| ImportError::Io { path: p.display().to_string(), message: e.to_string() };
    let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
    wire::check_framing(&bytes).map_err(ImportError::Parse)?;
    let data = wire::initializer_data(&bytes).map_err(ImportError::Parse)?;
    let mut out = vec![(path.canonicalize().map_err(|e| io(path, e))?, data.inline)];
    let dir = path.parent().unwrap_or(Path::new("."));
    for (loc, offset, length) in data.external {
        if Path::new(&loc).is_absolute() || loc.split(['/', '\\']).any(|c| c == "..") {
            continue;
        }
        let p = dir.join(&loc).canonicalize().map_err(|e| io(&dir.join(&loc), e))?;
        let size = std::fs::metadata(&p).map_err(|e| io(&p, e))?.len();
        let len = length.unwrap_or(size.saturating_sub(offset));
        if offset.checked_add(len).is_none_or(|e| e > size) {
            continue;
        }
        match out.iter_mut().find(|(q, _)| *q == p) {
            Some((_, r)) => r.push((offset, len)),
            None => out.push((p, vec![(offset, len)])),
        }
    }
    Ok(out)
}

/// Imports a serialized ModelProto. `dir` resolves external data files.
pub fn import_bytes(bytes: &[u8], dir: Option<PathBuf>, opts: &ImportOptions) -> Result<Model, ImportError> {
    wire::check_framing(bytes).map_err(ImportError::Parse)?;
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| ImportError::Parse(e.to_string()))?;
    import_model(&model, dir, opts)
}

pub fn import_model(model: &ModelProto, dir: Option<PathBuf>, opts: &ImportOptions) -> Result<Model, ImportError> {
    let gp = model.graph.as_ref().ok_or(ImportError::NoGraph)?;
    if gp.output.is_empty() {
        return Err(ImportError::NoOutputs);
    }
    let mut opsets = HashMap::new();
    for o in &model.opset_import {
        let d = if o.domain == "ai.onnx" { String::new() } else { o.domain.clone() };
        opsets.insert(d, o.version);
    }
    let opset = opsets.get("").copied().unwrap_or(1);
    let mut conv = Converter { frames: vec![], opsets, dir, opts, unsupported: vec![] };
    let graph = conv.convert_graph(gp, None)?;
    if !conv.unsupported.is_empty() {
        return Err(ImportError::Unsupported(conv.unsupported));
    }
    Ok(Model { graph, opset, producer: model.producer_name.clone() })
}

/// One graph being built, with its name scope and the outer values it captures.
struct Frame {
    graph: Graph,
    scope: HashMap<String, ValueId>,
    used_names: HashSet<String>,
    /// (outer name, inner input id) in capture order.
    captures: Vec<(String, ValueId)>,
}

pub(crate) struct Converter<'o> {
    frames: Vec<Frame>,
    opsets: HashMap<String, i64>,
    dir: Option<PathBuf>,
    opts: &'o ImportOptions,
    pub(crate) unsupported: Vec<UnsupportedOp>,
}

/// The declared dtype and (when given) shape of a value.
fn value_type(vi: &ValueInfoProto, what: &str) -> Result<Option<(DType, Option<Shape>)>, ImportError> {
    let Some(tp) = vi.type_.as_ref() else { return Ok(None) };
    let Some(tt) = tp.has_tensor_type().then(|| tp.tensor_type()) else {
        return Err(ImportError::UnsupportedDType { what: what.to_string(), dtype: "non-tensor (sequence, map or optional)".into() });
    };
    let dtype = dtype_from_onnx(tt.elem_type).map_err(|d| ImportError::UnsupportedDType { what: what.to_string(), dtype: d })?;
    let Some(sh) = tt.shape.as_ref() else { return Ok(Some((dtype, None))) };
    let dims = sh
        .dim
        .iter()
        .enumerate()
        .map(|(i, d)| {
            if d.has_dim_value() && d.dim_value() >= 0 {
                Dim::Known(d.dim_value() as usize)
            } else if d.has_dim_param() && !d.dim_param().is_empty() {
                Dim::Sym(d.dim_param().to_string())
            } else {
                Dim::Sym(format!("{}_d{i}", vi.name))
            }
        })
        .collect();
    Ok(Some((dtype, Some(Shape(dims)))))
}

impl Converter<'_> {
    fn frame(&mut self) -> &mut Frame {
        let n = self.frames.len() - 1;
        &mut self.frames[n]
    }

    pub(crate) fn graph(&self) -> &Graph {
        &self.frames[self.frames.len() - 1].graph
    }

    /// Whether the graph being converted is the model's own (not a subgraph's).
    pub(crate) fn at_top(&self) -> bool {
        self.frames.len() == 1
    }

    pub(crate) fn opset_of(&self, domain: &str) -> Option<i64> {
        let d = if domain == "ai.onnx" { "" } else { domain };
        self.opsets.get(d).copied()
    }

    pub(crate) fn unique_name(&mut self, base: &str) -> String {
        let f = self.frame();
        let mut name = base.to_string();
        let mut k = 1;
        while f.used_names.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        f.used_names.insert(name.clone());
        name
    }

    pub(crate) fn add_const(&mut self, base: &str, t: Tensor) -> ValueId {
        let name = self.unique_name(base);
        self.frame().graph.add_const(name, Arc::new(t))
    }

    fn bind(&mut self, name: &str, id: ValueId) {
        self.frame().scope.insert(name.to_string(), id);
    }

    /// Finds `name` in the current graph, capturing it from enclosing graphs when needed.
    pub(crate) fn lookup(&mut self, name: &str) -> Option<ValueId> {
        self.lookup_at(self.frames.len() - 1, name)
    }

    fn lookup_at(&mut self, depth: usize, name: &str) -> Option<ValueId> {
        if let Some(&id) = self.frames[depth].scope.get(name) {
            return Some(id);
        }
        if depth == 0 {
            return None;
        }
        let outer = self.lookup_at(depth - 1, name)?;
        let outer_graph = &self.frames[depth - 1].graph;
        // Constants are copied by reference (the Arc), not captured as inputs.
        if let Some(t) = outer_graph.const_value(outer).cloned() {
            let f = &mut self.frames[depth];
            let id = f.graph.add_const(name, t);
            f.scope.insert(name.to_string(), id);
            f.used_names.insert(name.to_string());
            return Some(id);
        }
        let ty = outer_graph.value(outer).ty.clone();
        let f = &mut self.frames[depth];
        let id = f.graph.add_input(name, ty);
        f.scope.insert(name.to_string(), id);
        f.used_names.insert(name.to_string());
        f.captures.push((name.to_string(), id));
        Some(id)
    }

    /// Converts a graph. `inputs_override` gives the types of a subgraph's declared inputs
    /// when the proto leaves them out (Loop bodies).
    pub(crate) fn convert_graph(&mut self, gp: &GraphProto, inputs_override: Option<&[Option<TensorType>]>) -> Result<Graph, ImportError> {
        self.convert_subgraph(gp, inputs_override).map(|(g, _)| g)
    }

    /// Like [`Self::convert_graph`], also returning the outer names the graph captured.
    pub(crate) fn convert_subgraph(
        &mut self,
        gp: &GraphProto,
        inputs_override: Option<&[Option<TensorType>]>,
    ) -> Result<(Graph, Vec<String>), ImportError> {
        self.frames.push(Frame { graph: Graph::new(gp.name.clone()), scope: HashMap::new(), used_names: HashSet::new(), captures: vec![] });
        let before = self.unsupported.len();
        let res = self.convert_body(gp, inputs_override);
        let frame = self.frames.pop().ok_or(ImportError::NoGraph)?;
        res?;
        // Report a subgraph's unsupported ops through the node that owns it.
        if !self.frames.is_empty() && self.unsupported.len() > before {
            return Err(ImportError::Unsupported(self.unsupported.split_off(before)));
        }
        let mut g = frame.graph;
        // Captured inputs were appended as found; order inputs as declared, then captures.
        let caps: Vec<String> = frame.captures.iter().map(|(n, _)| n.clone()).collect();
        let cap_ids: HashSet<ValueId> = frame.captures.iter().map(|(_, id)| *id).collect();
        let mut inputs: Vec<ValueId> = g.inputs.iter().copied().filter(|i| !cap_ids.contains(i)).collect();
        inputs.extend(frame.captures.iter().map(|(_, id)| *id));
        g.inputs = inputs;
        Ok((g, caps))
    }

    /// Adds a graph's initializers to the current frame; returns their names.
    fn add_initializers(&mut self, gp: &GraphProto) -> Result<HashSet<String>, ImportError> {
        let dir = self.dir.clone();
        let mut init_names = HashSet::new();
        for t in &gp.initializer {
            let tensor = tensor_from_proto(t, dir.as_deref())?;
            let id = self.add_const(&t.name, tensor);
            self.bind(&t.name, id);
            init_names.insert(t.name.clone());
        }
        if !gp.sparse_initializer.is_empty() {
            return Err(ImportError::UnsupportedDType { what: "sparse initializer".into(), dtype: "sparse".into() });
        }
        Ok(init_names)
    }

    /// Imports the nodes of an input-less graph (a taken If branch) into the current graph and
    /// returns the values of its outputs; `None` when one of its ops is unsupported.
    pub(crate) fn inline_graph(&mut self, gp: &GraphProto) -> Result<Option<Vec<ValueId>>, ImportError> {
        self.add_initializers(gp)?;
        self.convert_nodes(gp)
    }

    fn convert_body(&mut self, gp: &GraphProto, inputs_override: Option<&[Option<TensorType>]>) -> Result<(), ImportError> {
        let init_names = self.add_initializers(gp)?;
        let top = self.frames.len() == 1;
        for (k, vi) in gp.input.iter().enumerate() {
            if init_names.contains(&vi.name) {
                continue;
            }
            let declared = value_type(vi, &format!("input `{}`", vi.name))?;
            let over = inputs_override.and_then(|o| o.get(k).cloned().flatten());
            let from_opts = if top { self.opts.input_shapes.get(&vi.name) } else { None };
            let mut ty = match (declared, over) {
                (Some((dt, Some(s))), Some(o)) if s.rank() == o.shape.rank() => TensorType::new(dt, s),
                (_, Some(o)) => o,
                (Some((dt, Some(s))), None) => TensorType::new(dt, s),
                (Some((dt, None)), None) => match from_opts {
                    Some(d) => TensorType::new(dt, Shape::fixed(d)),
                    None => {
                        return Err(ImportError::BadInput {
                            name: vi.name.clone(),
                            message: "input has no shape; give one with --input-shape".into(),
                        })
                    }
                },
                (None, None) => return Err(ImportError::BadInput { name: vi.name.clone(), message: "input has no type".into() }),
            };
            if top {
                if let Some(dims) = self.opts.input_shapes.get(&vi.name) {
                    // A bound value's dims come here too: name the flag the user gave.
                    let flag = if self.opts.input_values.contains_key(&vi.name) { "--input-value" } else { "--input-shape" };
                    if dims.len() != ty.shape.rank() {
                        return Err(ImportError::BadInput {
                            name: vi.name.clone(),
                            message: format!("{flag} gives rank {}, the model declares {}", dims.len(), ty.shape),
                        });
                    }
                    for (d, &n) in ty.shape.0.iter().zip(dims) {
                        if let Dim::Known(k) = d {
                            if *k != n {
                                return Err(ImportError::BadInput {
                                    name: vi.name.clone(),
                                    message: format!("{flag} {dims:?} conflicts with declared {}", ty.shape),
                                });
                            }
                        }
                    }
                    ty.shape = Shape::fixed(dims);
                }
            }
            // Inference multiplies dims: a declared size no tensor can have is refused here.
            let known = ty.shape.0.iter().filter_map(Dim::known).try_fold(1usize, |a, d| a.checked_mul(d));
            if known.is_none_or(|n| n > kiln_ir::ops::MAX_ELEMENTS) {
                return Err(ImportError::BadInput {
                    name: vi.name.clone(),
                    message: format!("shape {} holds more than 2^31 elements, the most kiln's tensors may have", ty.shape),
                });
            }
            let name = self.unique_name(&vi.name);
            let id = match self.opts.input_values.get(&vi.name).filter(|_| top) {
                Some(t) => {
                    let t = bound_value(&vi.name, t, &ty)?;
                    self.frame().graph.add_const(name, std::sync::Arc::new(t))
                }
                None => self.frame().graph.add_input(name, ty),
            };
            self.bind(&vi.name, id);
        }
        if let Some(outs) = self.convert_nodes(gp)? {
            self.frame().graph.outputs = outs;
            if top {
                // An If folded at import aliases its branch's values: the model's names win.
                let names: Vec<String> = gp.output.iter().map(|vi| vi.name.clone()).collect();
                self.frame().graph.name_outputs(&names)?;
            }
        }
        Ok(())
    }

    /// Converts a graph's nodes in topological order, then resolves its outputs (`None` when an
    /// unsupported op was recorded, so the outputs may be missing).
    fn convert_nodes(&mut self, gp: &GraphProto) -> Result<Option<Vec<ValueId>>, ImportError> {
        let before = self.unsupported.len();
        let order = topo_order(gp, &self.frames.last().map(|f| f.scope.keys().cloned().collect()).unwrap_or_default(), self)?;
        let mut failed: HashSet<String> = HashSet::new();
        for i in order {
            let node = &gp.node[i];
            // Skip nodes that read (directly or from a subgraph) what an unsupported node
            // failed to produce: the unsupported node is what gets reported.
            if node_deps(node).iter().any(|n| failed.contains(n)) {
                failed.extend(node.output.iter().cloned());
                continue;
            }
            match node::convert_node(self, node, i) {
                Ok(()) => {}
                Err(node::NodeFailure::Unsupported(u)) => {
                    self.unsupported.push(u);
                    failed.extend(node.output.iter().cloned());
                }
                Err(node::NodeFailure::Fatal(e)) => return Err(e),
            }
        }
        if self.unsupported.len() > before {
            return Ok(None);
        }
        let mut outs = vec![];
        for o in &gp.output {
            let id = self.lookup(&o.name).ok_or_else(|| ImportError::MissingOutput(o.name.clone()))?;
            outs.push(id);
        }
        Ok(Some(outs))
    }

    pub(crate) fn bind_outputs(&mut self, node: &NodeProto, ids: &[Option<ValueId>]) {
        for (name, id) in node.output.iter().zip(ids) {
            if let Some(id) = id {
                self.bind(name, *id);
            }
        }
    }

    pub(crate) fn add_node(
        &mut self,
        name: &str,
        op: kiln_ir::Op,
        inputs: Vec<Option<ValueId>>,
        outputs: &[String],
    ) -> Result<Vec<Option<ValueId>>, NodeError> {
        let outs: Vec<Option<String>> = outputs.iter().map(|o| (!o.is_empty()).then(|| self.unique_name(o))).collect();
        let ids = self.frame().graph.add_node(name, op, inputs, &outs)?;
        // Fold as we go, so shape arithmetic is constant for the nodes that follow.
        self.frame().graph.fold_last_node(FOLD_LIMIT);
        Ok(ids)
    }
}

/// Node indices in a topological order (stable for graphs already sorted).
fn topo_order(gp: &GraphProto, known: &HashSet<String>, conv: &mut Converter) -> Result<Vec<usize>, ImportError> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in gp.node.iter().enumerate() {
        for o in &n.output {
            if !o.is_empty() {
                producer.insert(o.as_str(), i);
            }
        }
    }
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state = vec![0u8; gp.node.len()];
    let mut order = Vec::with_capacity(gp.node.len());
    for start in 0..gp.node.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        state[start] = 1;
        while let Some(&mut (n, ref mut k)) = stack.last_mut() {
            let deps = node_deps(&gp.node[n]);
            if *k < deps.len() {
                let dep = deps[*k].clone();
                *k += 1;
                if let Some(&p) = producer.get(dep.as_str()) {
                    match state[p] {
                        0 => {
                            state[p] = 1;
                            stack.push((p, 0));
                        }
                        1 => return Err(ImportError::Cycle(node_name(&gp.node[p], p))),
                        _ => {}
                    }
                } else if !known.contains(&dep) && conv.frames.len() > 1 && conv.lookup_outer_exists(&dep) {
                    // Captured from an enclosing graph.
                } else if !known.contains(&dep) {
                    let node = &gp.node[n];
                    return Err(ImportError::MissingValue { node: node_name(node, n), op_type: node.op_type.clone(), name: dep });
                }
            } else {
                state[n] = 2;
                order.push(n);
                stack.pop();
            }
        }
    }
    Ok(order)
}

impl Converter<'_> {
    fn lookup_outer_exists(&self, name: &str) -> bool {
        self.frames[..self.frames.len() - 1].iter().any(|f| f.scope.contains_key(name))
    }
}

/// Names a node reads, including names its subgraphs read from this scope.
fn node_deps(n: &NodeProto) -> Vec<String> {
    let mut v: Vec<String> = n.input.iter().filter(|s| !s.is_empty()).cloned().collect();
    for a in &n.attribute {
        for g in a.g.as_ref().into_iter().chain(a.graphs.iter()) {
            v.extend(free_names(g));
        }
    }
    v
}

/// Names a subgraph reads that it does not define itself.
fn free_names(g: &GraphProto) -> Vec<String> {
    let mut defined: HashSet<&str> = g.input.iter().map(|i| i.name.as_str()).collect();
    defined.extend(g.initializer.iter().map(|t| t.name.as_str()));
    for n in &g.node {
        defined.extend(n.output.iter().map(|s| s.as_str()));
    }
    let mut out = vec![];
    for n in &g.node {
        for d in node_deps(n) {
            if !defined.contains(d.as_str()) {
                out.push(d);
            }
        }
    }
    for o in &g.output {
        if !defined.contains(o.name.as_str()) {
            out.push(o.name.clone());
        }
    }
    out
}

pub(crate) fn node_name(n: &NodeProto, i: usize) -> String {
    if n.name.is_empty() {
        format!("{}_{i}", n.op_type)
    } else {
        n.name.clone()
    }
}

/// ONNX dtype code of a kiln dtype (the inverse of [`dtype_from_onnx`]).
pub fn dtype_to_onnx(d: DType) -> i32 {
    match d {
        DType::F32 => 1,
        DType::U8 => 2,
        DType::I8 => 3,
        DType::U16 => 4,
        DType::I16 => 5,
        DType::I32 => 6,
        DType::I64 => 7,
        DType::Bool => 9,
        DType::F16 => 10,
        DType::F64 => 11,
        DType::U32 => 12,
        DType::U64 => 13,
        DType::BF16 => 16,
        DType::U4 => 21,
        DType::I4 => 22,
        DType::F8E4M3FN => 17,
        DType::F8E4M3FNUZ => 18,
        DType::F8E5M2 => 19,
        DType::F8E5M2FNUZ => 20,
        DType::F4E2M1 => 23,
        DType::U2 => 25,
        DType::I2 => 26,
        DType::F8E8M0 => 24,
    }
}

/// A value bound to an input of type `ty`: its shape must be the input's (fixed by then), its
/// values convert to the input's dtype exactly.
fn bound_value(name: &str, t: &Tensor, ty: &TensorType) -> Result<Tensor, ImportError> {
    let bad = |message: String| ImportError::BadInput { name: name.to_string(), message };
    if ty.shape.as_fixed().as_deref() != Some(t.dims()) {
        return Err(bad(format!("--input-value has shape {:?}, the input is {}", t.dims(), ty.shape)));
    }
    t.converted_exactly(ty.dtype)
        .ok_or_else(|| bad(format!("--input-value: {} values do not convert exactly to the input's {}", t.dtype(), ty.dtype)))
}
