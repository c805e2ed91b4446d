//! A GE-graph simulator: executes a `graph.air` (one `ge.proto.ModelDef`) on the CPU by the
//! documented semantics of each CANN op the 910b lowering emits (../shared/ASCEND.md §1.7, §2),
//! stored formats included (NC1HWC0 and TransData), so that the bundle can be compared with the
//! reference interpreter on the source model. kiln's own AscendC custom ops run from their
//! sources on the CPU model of the AscendC API ([`cpu_model`]).
//!
//! What it proves: the graph is complete and acyclic, every edge reads an output that exists,
//! every op's attributes are present and mean, read as CANN documents them, what the source
//! model computes; every descriptor (dtype, dims, format) the graph declares is what the op
//! produces and what its consumer expects. What it does not prove: that ATC accepts the graph
//! or picks these semantics (attribute drift between CANN releases, the fp32 support of each
//! op), or anything about speed. Values are computed in f64 and rounded to each output's dtype
//! once per op, so fp16 graphs carry per-op rounding as the hardware does, not its exact bits.

pub mod cpu_model;
mod index;
mod movement;
mod nn;
mod ops;
mod quant;
mod resample;
mod table;

use crate::ge::dtype::from_proto;
use crate::ge::proto::{attr_def::Value as AttrValue, AttrDef, ModelDef, OpDef, TensorDescriptor};
use cpu_model::{Buffer, CpuOps, TempDir};
use kiln_ir::{DType, Data, Tensor};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("graph.air does not decode as a ge.proto.ModelDef: {0}")]
    Decode(String),
    #[error("op `{op}` ({ty}): {msg}")]
    Op { op: String, ty: String, msg: String },
    #[error("{0}")]
    Graph(String),
}

/// A value as the simulator holds it: dtype, stored dims and format, elements row-major over the
/// stored dims (as f64: every GE dtype kiln emits is exact in f64 except i64/u64 beyond 2^53).
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub dtype: DType,
    pub dims: Vec<usize>,
    pub format: String,
    pub data: Vec<f64>,
}

impl Value {
    pub fn new(dtype: DType, dims: Vec<usize>, data: Vec<f64>) -> Value {
        Value { dtype, dims, format: "ND".into(), data }
    }

    fn from_tensor(t: &Tensor) -> Value {
        Value::new(t.dtype(), t.dims().to_vec(), t.to_f64())
    }

    /// As a kiln tensor (dims as stored).
    pub fn to_tensor(&self) -> Result<Tensor, SimError> {
        Tensor::new(self.dims.clone(), Data::from_f64(self.dtype, &self.data)).map_err(|e| SimError::Graph(e.to_string()))
    }
}

/// `v` rounded to what dtype `d` can hold.
pub(crate) fn round(d: DType, v: f64) -> f64 {
    match d {
        DType::F32 => v as f32 as f64,
        DType::F16 => half::f16::from_f64(v).to_f64(),
        DType::BF16 => half::bf16::from_f64(v).to_f64(),
        DType::Bool => f64::from(u8::from(v != 0.0)),
        d if d.is_float() => v,
        // Integer results: the lowering only emits integer ops whose results are integers, but
        // a float-to-int Cast truncates toward zero.
        _ => v.trunc(),
    }
}

/// One op's inputs, attributes and declared outputs, as the op semantics read them.
pub(crate) struct OpCx<'a> {
    pub op: &'a OpDef,
    pub ins: Vec<Option<&'a Value>>,
}

impl OpCx<'_> {
    pub fn err<T>(&self, msg: impl Into<String>) -> Result<T, SimError> {
        Err(SimError::Op { op: self.op.name.clone(), ty: self.op.r#type.clone(), msg: msg.into() })
    }

    pub fn input(&self, i: usize) -> Result<&Value, SimError> {
        match self.ins.get(i).copied().flatten() {
            Some(v) => Ok(v),
            None => self.err(format!("input {i} ({}) is not fed", self.op.input_desc.get(i).map_or("?", |d| d.name.as_str()))),
        }
    }

    pub fn opt(&self, i: usize) -> Option<&Value> {
        self.ins.get(i).copied().flatten()
    }

    fn attr(&self, name: &str) -> Result<&AttrValue, SimError> {
        match self.op.attr.get(name).and_then(|a: &AttrDef| a.value.as_ref()) {
            Some(v) => Ok(v),
            None => self.err(format!("attribute `{name}` is missing (every attribute is written explicitly)")),
        }
    }

    pub fn int(&self, name: &str) -> Result<i64, SimError> {
        match self.attr(name)? {
            AttrValue::I(i) => Ok(*i),
            other => self.err(format!("attribute `{name}` is {other:?}, not an Int")),
        }
    }

    pub fn float(&self, name: &str) -> Result<f64, SimError> {
        match self.attr(name)? {
            AttrValue::F(f) => Ok(*f as f64),
            other => self.err(format!("attribute `{name}` is {other:?}, not a Float")),
        }
    }

    pub fn bool(&self, name: &str) -> Result<bool, SimError> {
        match self.attr(name)? {
            AttrValue::B(b) => Ok(*b),
            other => self.err(format!("attribute `{name}` is {other:?}, not a Bool")),
        }
    }

    /// A `Type` attribute: its C++ `ge::DataType` number as a kiln dtype.
    pub fn dtype(&self, name: &str) -> Result<DType, SimError> {
        match self.attr(name)? {
            AttrValue::Dt(t) => crate::ge::dtype::from_cpp(*t).map_or_else(|| self.err(format!("`{name}` = {t}: no dtype")), Ok),
            other => self.err(format!("attribute `{name}` is {other:?}, not a Type")),
        }
    }

    pub fn str(&self, name: &str) -> Result<String, SimError> {
        match self.attr(name)? {
            AttrValue::S(s) => Ok(String::from_utf8_lossy(s).into_owned()),
            other => self.err(format!("attribute `{name}` is {other:?}, not a String")),
        }
    }

    pub fn ints(&self, name: &str) -> Result<Vec<i64>, SimError> {
        match self.attr(name)? {
            // val_type 2 is VT_LIST_INT; GE drops a list without it.
            AttrValue::List(l) if l.val_type == 2 => Ok(l.i.clone()),
            other => self.err(format!("attribute `{name}` is {other:?}, not a ListInt with val_type")),
        }
    }

    /// Declared output `i`: dtype and stored dims.
    pub fn out_desc(&self, i: usize) -> Result<(DType, Vec<usize>), SimError> {
        let Some(d) = self.op.output_desc.get(i) else { return self.err(format!("no output descriptor {i}")) };
        desc(d).map_err(|m| SimError::Op { op: self.op.name.clone(), ty: self.op.r#type.clone(), msg: m })
    }

    /// Declared output `i`'s format.
    pub fn out_format(&self, i: usize) -> String {
        self.op.output_desc.get(i).map_or_else(|| "ND".into(), |d| d.layout.clone())
    }
}

fn desc(d: &TensorDescriptor) -> Result<(DType, Vec<usize>), String> {
    let dt =
        from_proto(d.dtype).ok_or_else(|| format!("descriptor `{}` has dtype {}, which is not a GE dtype kiln knows", d.name, d.dtype))?;
    let dims = d.shape.as_ref().map(|s| s.dim.clone()).unwrap_or_default();
    let dims =
        dims.iter().map(|&x| usize::try_from(x).map_err(|_| format!("descriptor `{}` has dim {x}", d.name))).collect::<Result<_, _>>()?;
    Ok((dt, dims))
}

/// A decoded graph.air.
pub fn load(path: &Path) -> Result<ModelDef, SimError> {
    let bytes = std::fs::read(path).map_err(|e| SimError::Io(path.display().to_string(), e))?;
    ModelDef::decode(bytes.as_slice()).map_err(|e| SimError::Decode(e.to_string()))
}

/// The graph's inputs (Data ops by `index`): name, dtype and dims.
pub fn inputs(model: &ModelDef) -> Result<Vec<(String, DType, Vec<usize>)>, SimError> {
    let g = model.graph.first().ok_or_else(|| SimError::Graph("the model has no graph".into()))?;
    let mut v = BTreeMap::new();
    for op in g.op.iter().filter(|o| o.r#type == "Data") {
        let cx = OpCx { op, ins: vec![] };
        let idx = cx.int("index")?;
        let (dt, dims) = cx.out_desc(0)?;
        if v.insert(idx, (op.name.clone(), dt, dims)).is_some() {
            return Err(SimError::Graph(format!("two Data ops have index {idx}")));
        }
    }
    for (k, i) in v.keys().enumerate() {
        if *i != k as i64 {
            return Err(SimError::Graph(format!("Data indices are not 0..{}: {:?}", v.len(), v.keys().collect::<Vec<_>>())));
        }
    }
    Ok(v.into_values().collect())
}

/// How the graph is executed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options<'a> {
    /// ATC's `--precision_mode=force_fp16` (what `kiln compile --precision fp16` asks for):
    /// every fp32 value, weights and inputs included, holds only what fp16 can.
    pub force_fp16: bool,
    /// The bundle's AscendC custom ops, run on the CPU model of the AscendC API. A graph that
    /// references a custom op type needs them.
    pub custom: Option<&'a CpuOps>,
    /// The bundle directory FileConstant ops read their `file_path` from (ATC runs in it).
    pub weights_dir: Option<&'a Path>,
}

/// Runs the graph on `inputs` (in Data index order); its NetOutput's inputs, in order.
pub fn run(model: &ModelDef, inputs: &[Tensor]) -> Result<Vec<Tensor>, SimError> {
    run_with(model, inputs, Options::default())
}

/// [`run`] with options.
pub fn run_with(model: &ModelDef, inputs: &[Tensor], opts: Options<'_>) -> Result<Vec<Tensor>, SimError> {
    let g = model.graph.first().ok_or_else(|| SimError::Graph("the model has no graph".into()))?;
    let by_name: HashMap<&str, &OpDef> = g.op.iter().map(|o| (o.name.as_str(), o)).collect();
    if by_name.len() != g.op.len() {
        return Err(SimError::Graph("two ops share a name".into()));
    }
    let order = topo_order(&g.op, &by_name)?;
    let mut vals: HashMap<String, Value> = HashMap::new();
    let mut outputs = None;
    for op in order {
        let mut ins = vec![];
        for (i, e) in op.input.iter().enumerate() {
            if e.is_empty() {
                ins.push(None);
                continue;
            }
            let v = vals.get(e).ok_or_else(|| SimError::Op {
                op: op.name.clone(),
                ty: op.r#type.clone(),
                msg: format!("input {i} reads `{e}`, which no op makes"),
            })?;
            check_edge(op, i, v)?;
            ins.push(Some(v));
        }
        if let Some(i) = ins.iter().position(|v| v.is_some_and(|v| v.format == "NC1HWC0")) {
            if !ops::reads_nc1hwc0(&op.r#type) {
                return Err(SimError::Op {
                    op: op.name.clone(),
                    ty: op.r#type.clone(),
                    msg: format!("input {i} is stored NC1HWC0, which this op does not read (a TransData is missing)"),
                });
            }
        }
        let cx = OpCx { op, ins };
        let outs = match op.r#type.as_str() {
            "Data" => {
                let idx = cx.int("index")?;
                let t = usize::try_from(idx).ok().and_then(|i| inputs.get(i));
                let Some(t) = t else { return cx.err(format!("graph input {idx} was not given ({} given)", inputs.len())) };
                vec![Value::from_tensor(t)]
            }
            "Const" => vec![constant(&cx)?],
            "FileConstant" => vec![file_constant(&cx, opts.weights_dir)?],
            "NetOutput" => {
                outputs = Some(cx.ins.iter().map(|v| v.map(|v| v.to_tensor()).transpose()).collect::<Result<Vec<_>, _>>()?);
                continue;
            }
            t if t.starts_with(crate::ascendc::OP_TYPE_PREFIX) => custom(&cx, opts.custom)?,
            t => match table::lookup(t) {
                Some(eval) => eval(&cx)?,
                None => return cx.err(format!("the simulator has no semantics for op type {t}")),
            },
        };
        if outs.len() != op.output_desc.len() {
            return cx.err(format!("made {} outputs; the graph declares {}", outs.len(), op.output_desc.len()));
        }
        let mut checked = vec![];
        for (i, mut v) in outs.into_iter().enumerate() {
            let (dt, dims) = cx.out_desc(i)?;
            if v.dtype != dt || v.dims != dims {
                return cx.err(format!("output {i} is {}{:?} by the op's semantics; the graph declares {dt}{dims:?}", v.dtype, v.dims));
            }
            // The layout the op's semantics produced must be the one declared.
            let declared = cx.out_format(i);
            if (v.format == "NC1HWC0") != (declared == "NC1HWC0") {
                return cx.err(format!("output {i} is {} by the op's semantics; the graph declares {declared}", v.format));
            }
            v.format = declared;
            let stored = if opts.force_fp16 && dt == DType::F32 { DType::F16 } else { dt };
            for x in &mut v.data {
                *x = round(stored, *x);
            }
            checked.push(v);
        }
        drop(cx);
        for (i, v) in checked.into_iter().enumerate() {
            vals.insert(format!("{}:{i}", op.name), v);
        }
    }
    outputs
        .ok_or_else(|| SimError::Graph("the graph has no NetOutput".into()))?
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| SimError::Graph("NetOutput has an unfed input".into()))
}

/// A custom op, run by its AscendC sources on the CPU model.
fn custom(cx: &OpCx, ops: Option<&CpuOps>) -> Result<Vec<Value>, SimError> {
    let Some(ops) = ops else { return cx.err("a custom op: run the graph with its bundle's ops/ (the AscendC CPU model)") };
    let mut bufs = vec![];
    for i in 0..cx.ins.len() {
        let v = cx.input(i)?;
        let t = v.to_tensor()?;
        let bytes = t.data().to_le_bytes().ok_or_else(|| SimError::Graph(format!("input {i} has no byte form")))?;
        bufs.push(Buffer { dtype: v.dtype, dims: v.dims.clone(), bytes });
    }
    let (dt, dims) = cx.out_desc(0)?;
    let (out, _) = ops.run(&cx.op.r#type, &bufs, (dt, &dims)).map_err(|m| SimError::Op {
        op: cx.op.name.clone(),
        ty: cx.op.r#type.clone(),
        msg: m,
    })?;
    let data = Data::from_le_bytes(dt, &out.bytes).ok_or_else(|| SimError::Graph("the custom op's output does not decode".into()))?;
    Ok(vec![Value::new(dt, dims, data.to_f64())])
}

/// The consumer's input descriptor must describe the value it reads.
fn check_edge(op: &OpDef, i: usize, v: &Value) -> Result<(), SimError> {
    let fail = |msg: String| Err(SimError::Op { op: op.name.clone(), ty: op.r#type.clone(), msg });
    let Some(d) = op.input_desc.get(i) else { return fail(format!("input {i} has no descriptor")) };
    let (dt, dims) = desc(d).map_err(|m| SimError::Op { op: op.name.clone(), ty: op.r#type.clone(), msg: m })?;
    if dt != v.dtype || dims != v.dims || d.layout != v.format {
        return fail(format!(
            "input {i} (`{}`) is described as {dt}{dims:?} {}, but reads {}{:?} {}",
            d.name, d.layout, v.dtype, v.dims, v.format
        ));
    }
    Ok(())
}

fn constant(cx: &OpCx) -> Result<Value, SimError> {
    let t = match cx.attr("value")? {
        AttrValue::T(t) => t,
        other => return cx.err(format!("`value` is {other:?}, not a Tensor")),
    };
    let Some(d) = &t.desc else { return cx.err("`value` has no descriptor") };
    let (dt, dims) = desc(d).map_err(|m| SimError::Op { op: cx.op.name.clone(), ty: "Const".into(), msg: m })?;
    let n: usize = dims.iter().product();
    let data = Data::from_le_bytes(dt, &t.data).filter(|d| d.len() == n).ok_or_else(|| SimError::Op {
        op: cx.op.name.clone(),
        ty: "Const".into(),
        msg: format!("{} bytes do not hold {n} {dt} elements", t.data.len()),
    })?;
    let t = Tensor::new(dims, data).map_err(|e| SimError::Graph(e.to_string()))?;
    let mut v = Value::from_tensor(&t);
    v.format = d.layout.clone();
    Ok(v)
}

/// A FileConstant: `shape` elements of `dtype` read from `file_path` (relative to the bundle),
/// which must hold exactly that many bytes and be what the output declares.
fn file_constant(cx: &OpCx, dir: Option<&Path>) -> Result<Value, SimError> {
    let Some(dir) = dir else { return cx.err("a FileConstant: run the graph from its bundle directory") };
    let path = dir.join(cx.str("file_path")?);
    let dims: Vec<usize> = cx.ints("shape")?.iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect();
    let dt = cx.dtype("dtype")?;
    let (out_dt, out_dims) = cx.out_desc(0)?;
    if (dt, &dims) != (out_dt, &out_dims) {
        return cx.err(format!("shape and dtype say {dt}{dims:?}; the output is {out_dt}{out_dims:?}"));
    }
    let bytes = std::fs::read(&path).map_err(|e| SimError::Io(path.display().to_string(), e))?;
    let n: usize = dims.iter().product();
    let data = Data::from_le_bytes(dt, &bytes).filter(|d| d.len() == n);
    let Some(data) = data else { return cx.err(format!("{}: {} bytes do not hold {n} {dt} elements", path.display(), bytes.len())) };
    let t = Tensor::new(dims, data).map_err(|e| SimError::Graph(e.to_string()))?;
    Ok(Value::from_tensor(&t))
}

/// Ops in an order where each comes after the ops it reads (Kahn's algorithm); a cycle or an
/// edge to a missing op is an error.
fn topo_order<'a>(ops: &'a [OpDef], by_name: &HashMap<&str, &'a OpDef>) -> Result<Vec<&'a OpDef>, SimError> {
    let mut pending: HashMap<&str, usize> = HashMap::new();
    let mut users: HashMap<&str, Vec<&str>> = HashMap::new();
    for op in ops {
        let mut n = 0;
        for e in op.input.iter().filter(|e| !e.is_empty()) {
            let src = e.rsplit_once(':').map_or(e.as_str(), |(s, _)| s);
            if !by_name.contains_key(src) {
                return Err(SimError::Op {
                    op: op.name.clone(),
                    ty: op.r#type.clone(),
                    msg: format!("reads `{e}`: there is no op `{src}`"),
                });
            }
            users.entry(src).or_default().push(op.name.as_str());
            n += 1;
        }
        pending.insert(op.name.as_str(), n);
    }
    let mut ready: Vec<&str> = ops.iter().filter(|o| pending[o.name.as_str()] == 0).map(|o| o.name.as_str()).rev().collect();
    let mut order = vec![];
    while let Some(n) = ready.pop() {
        order.push(by_name[n]);
        for u in users.get(n).map(Vec::as_slice).unwrap_or_default() {
            let c = pending.entry(u).or_default();
            *c -= 1;
            if *c == 0 {
                ready.push(u);
            }
        }
    }
    if order.len() != ops.len() {
        return Err(SimError::Graph(format!("the graph has a cycle through {} ops", ops.len() - order.len())));
    }
    Ok(order)
}

/// A bundle directory (`kiln compile --target 910b -o DIR`): its graph and the model's input
/// and output names from `manifest.json`, in order.
#[derive(Debug)]
pub struct Bundle {
    pub model: ModelDef,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// Its custom ops (`ops/`), where it has any.
    pub custom: Option<CpuOps>,
    /// The bundle directory (external weights are read from it).
    pub dir: std::path::PathBuf,
}

impl Bundle {
    pub fn load(dir: &Path) -> Result<Bundle, SimError> {
        let path = dir.join("manifest.json");
        let text = std::fs::read_to_string(&path).map_err(|e| SimError::Io(path.display().to_string(), e))?;
        let m: serde_json::Value = serde_json::from_str(&text).map_err(|e| SimError::Graph(format!("{}: {e}", path.display())))?;
        let names = |key: &str| -> Result<Vec<String>, SimError> {
            m[key]
                .as_array()
                .ok_or_else(|| SimError::Graph(format!("{}: no `{key}` list", path.display())))?
                .iter()
                .map(|v| {
                    v["name"]
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| SimError::Graph(format!("{}: an unnamed {key} entry", path.display())))
                })
                .collect()
        };
        let graph = m["graph"].as_str().unwrap_or("graph.air");
        let model = load(&dir.join(graph))?;
        let ops = dir.join("ops");
        let custom = ops.is_dir().then(|| CpuOps::new(&ops));
        Ok(Bundle { inputs: names("inputs")?, outputs: names("outputs")?, model, custom, dir: dir.to_path_buf() })
    }

    /// Runs the graph (custom ops on the AscendC CPU model).
    pub fn run(&self, inputs: &[Tensor], force_fp16: bool) -> Result<Vec<Tensor>, SimError> {
        run_with(&self.model, inputs, Options { force_fp16, custom: self.custom.as_ref(), weights_dir: Some(&self.dir) })
    }
}

/// Writes `bundle`'s custom ops into a fresh temporary directory (None when it has none).
pub fn custom_ops(bundle: &crate::bundle::Bundle) -> Result<Option<(CpuOps, TempDir)>, SimError> {
    if bundle.kernels.is_empty() {
        return Ok(None);
    }
    let dir = TempDir::new("sim-ops").map_err(SimError::Graph)?;
    bundle.write_ops(&dir.0).map_err(|e| SimError::Io(dir.0.display().to_string(), e))?;
    Ok(Some((CpuOps::new(&dir.0.join("ops")), dir)))
}
