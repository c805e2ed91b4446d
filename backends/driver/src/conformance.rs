//! The ONNX node-suite runner: imports each case's `model.onnx`, feeds `test_data_set_0`'s
//! inputs to an executor (the reference interpreter, or a compiled target) and compares every
//! output with the stored one.

use crate::compare::check;
use kiln_frontend::onnx::{import_file, tensor_from_proto, ImportError, ImportOptions};
use kiln_ir::{interp, Graph, OpError, Tensor};
use onnx_protobuf::{Message, TensorProto};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Outcome of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Unsupported,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub status: Status,
    /// Why it failed or is unsupported; empty when it passed.
    pub detail: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub unsupported: usize,
    pub cases: Vec<CaseResult>,
}

impl Summary {
    /// Counts and keeps one case's result.
    pub fn add(&mut self, r: CaseResult) {
        match r.status {
            Status::Passed => self.passed += 1,
            Status::Failed => self.failed += 1,
            Status::Unsupported => self.unsupported += 1,
        }
        self.cases.push(r);
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} passed, {} failed, {} unsupported", self.passed, self.failed, self.unsupported)
    }
}

fn read_pb(p: &Path) -> Result<Tensor, String> {
    let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    let t = TensorProto::parse_from_bytes(&bytes).map_err(|e| format!("{}: {e}", p.display()))?;
    tensor_from_proto(&t, None).map_err(|e| e.to_string())
}

fn numbered(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v = vec![];
    for i in 0.. {
        let p = dir.join(format!("{prefix}_{i}.pb"));
        if !p.exists() {
            break;
        }
        v.push(p);
    }
    v
}

/// Reads `{prefix}_0.pb`, `{prefix}_1.pb`, ... of a test data set.
fn read_all(data: &Path, prefix: &str) -> Result<Vec<Tensor>, String> {
    numbered(data, prefix).iter().map(|p| read_pb(p)).collect()
}

/// What an executor made of one imported case.
#[derive(Debug)]
pub enum Outcome {
    /// The outputs, in graph order.
    Ran(Vec<Tensor>),
    /// The executor has no way to run this graph (the message names what is missing).
    Unsupported(String),
    Failed(String),
}

/// Runs a graph on its inputs.
pub type Executor<'a> = dyn FnMut(&Graph, Vec<Tensor>) -> Outcome + 'a;

/// The reference interpreter as an executor.
pub fn interpreter(g: &Graph, inputs: Vec<Tensor>) -> Outcome {
    match interp::run(g, inputs) {
        Ok(o) => Outcome::Ran(o),
        Err(interp::RunError::Node { source: OpError::Unsupported(m), node, .. }) => Outcome::Unsupported(format!("node {node}: {m}")),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Operands (by position) that ONNX passes as inputs but that are parameters of the op: axes,
/// counts, pads, shapes, scales. Compiled kernels take them at compile time.
const PARAMETER_OPERANDS: [(&str, &[usize]); 16] = [
    ("CumSum", &[1]),
    ("Trilu", &[1]),
    ("OneHot", &[1]),
    ("TopK", &[1]),
    ("Pad", &[1, 2, 3]),
    ("Slice", &[1, 2, 3, 4]),
    ("Tile", &[1]),
    ("Expand", &[1]),
    ("Reshape", &[1]),
    ("Reduce", &[1]),
    ("Squeeze", &[1]),
    ("Unsqueeze", &[1]),
    ("Split", &[1]),
    ("Resize", &[1, 2, 3]),
    ("CenterCropPad", &[1]),
    ("Col2Im", &[1, 2]),
];

/// Compiled targets plan memory for static shapes, so an input whose *value* sets a shape (a
/// Reshape's shape, a Reduce's axes, Resize's scales, TopK's k, ...) must be known when
/// compiling; so must the parameters in [`PARAMETER_OPERANDS`]. For a conformance case they
/// are: each graph input read as such a parameter, or at an operand position after the first
/// by a node whose result has a symbolic shape, becomes a constant with the case's value, as a
/// user of a compiled model fixes such inputs. Not when that would make every non-constant
/// input of the node a constant (the node would be folded at compile time, and the target would
/// run nothing of it). Returns the graph, its remaining inputs and the names of the frozen ones.
pub fn freeze_shape_inputs(g: &Graph, inputs: Vec<Tensor>) -> Result<(Graph, Vec<Tensor>, Vec<String>), String> {
    let mut g = g.clone();
    let mut by_id: HashMap<kiln_ir::ValueId, Tensor> = g.inputs.iter().copied().zip(inputs).collect();
    let mut frozen = vec![];
    for _ in 0..4 {
        let mut pick: Vec<kiln_ir::ValueId> = vec![];
        for n in &g.nodes {
            let symbolic = n.outputs.iter().flatten().any(|&o| g.value(o).ty.shape.as_fixed().is_none());
            let params = PARAMETER_OPERANDS.iter().find(|(k, _)| *k == n.op.kind_name()).map_or(&[][..], |p| p.1);
            let live: Vec<kiln_ir::ValueId> = n.inputs.iter().flatten().copied().filter(|v| g.const_value(*v).is_none()).collect();
            let cand: Vec<kiln_ir::ValueId> = n
                .inputs
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(k, _)| symbolic || params.contains(k))
                .filter_map(|(_, v)| *v)
                .filter(|v| g.inputs.contains(v))
                .collect();
            if !cand.is_empty() && live.iter().any(|v| !cand.contains(v)) {
                pick.extend(cand);
            }
        }
        pick.sort_by_key(|v| v.0);
        pick.dedup();
        if pick.is_empty() {
            break;
        }
        for v in pick {
            let t = by_id.remove(&v).ok_or("a frozen input without a value")?;
            frozen.push(g.value(v).name.clone());
            g.freeze_input(v, t).map_err(|e| e.to_string())?;
        }
    }
    let rest = g.inputs.iter().map(|v| by_id.remove(v).ok_or_else(|| "an input without a value".to_string())).collect::<Result<_, _>>()?;
    Ok((g, rest, frozen))
}

/// Runs one case directory on the interpreter.
pub fn run_case(dir: &Path) -> CaseResult {
    run_case_with(dir, &mut interpreter)
}

/// Runs one case directory on `exec`.
pub fn run_case_with(dir: &Path, exec: &mut Executor) -> CaseResult {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (status, detail) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_case_inner(dir, exec))) {
        Ok(r) => r,
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            (Status::Failed, format!("panic: {msg}"))
        }
    };
    CaseResult { name, status, detail }
}

/// A case's graph (imported with the shapes of its test inputs), inputs and expected outputs;
/// or why it cannot be run.
pub fn import_case(dir: &Path) -> Result<(Graph, Vec<Tensor>, Vec<Tensor>), (Status, String)> {
    // The first pass learns the input names; shapes then come from the test's inputs.
    let names = match input_names(&dir.join("model.onnx")) {
        Ok(n) => n,
        Err(e) if e.starts_with("unsupported") => return Err((Status::Unsupported, e)),
        Err(e) => return Err((Status::Failed, e)),
    };
    let data = dir.join("test_data_set_0");
    let (inputs, expected) = match (read_all(&data, "input"), read_all(&data, "output")) {
        (Ok(i), Ok(o)) => (i, o),
        (Err(e), _) | (_, Err(e)) if e.contains("not supported") => return Err((Status::Unsupported, e)),
        (Err(e), _) | (_, Err(e)) => return Err((Status::Failed, e)),
    };
    let input_shapes = names.iter().zip(&inputs).map(|(n, t)| (n.clone(), t.dims().to_vec())).collect::<HashMap<_, _>>();
    let opts = ImportOptions { input_shapes, ..Default::default() };
    match import_file(&dir.join("model.onnx"), &opts) {
        Ok(m) => Ok((m.graph, inputs, expected)),
        Err(e @ (ImportError::Unsupported(_) | ImportError::UnsupportedDType { .. })) => Err((Status::Unsupported, e.to_string())),
        Err(e) => Err((Status::Failed, e.to_string())),
    }
}

fn run_case_inner(dir: &Path, exec: &mut Executor) -> (Status, String) {
    let (graph, inputs, expected) = match import_case(dir) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let outs = match exec(&graph, inputs) {
        Outcome::Ran(o) => o,
        Outcome::Unsupported(m) => return (Status::Unsupported, m),
        Outcome::Failed(m) => return (Status::Failed, m),
    };
    if outs.len() != expected.len() {
        return (Status::Failed, format!("{} outputs, expected {}", outs.len(), expected.len()));
    }
    for (i, (g, w)) in outs.iter().zip(&expected).enumerate() {
        if let Err(e) = check(g, w) {
            return (Status::Failed, format!("output {i}: {e}"));
        }
    }
    (Status::Passed, String::new())
}

/// Names of the graph inputs that are not initializers, in order.
fn input_names(model: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(model).map_err(|e| format!("{}: {e}", model.display()))?;
    let m = onnx_protobuf::ModelProto::parse_from_bytes(&bytes).map_err(|e| e.to_string())?;
    let g = m.graph.as_ref().ok_or("no graph")?;
    let inits: std::collections::HashSet<&str> = g.initializer.iter().map(|t| t.name.as_str()).collect();
    for v in g.input.iter().chain(&g.output) {
        if v.type_.as_ref().is_some_and(|t| !t.has_tensor_type()) {
            return Err(format!("unsupported: `{}` is a sequence, map or optional, not a tensor", v.name));
        }
    }
    Ok(g.input.iter().filter(|i| !inits.contains(i.name.as_str())).map(|i| i.name.clone()).collect())
}

/// Runs every case directory under `suite` (sorted by name) on the interpreter, optionally
/// filtered by substring.
pub fn run_suite(suite: &Path, filter: Option<&str>) -> Result<Summary, String> {
    run_suite_with(suite, filter, &mut interpreter)
}

/// The case directories under `suite` whose name contains `filter`, sorted by name.
pub fn case_dirs(suite: &Path, filter: Option<&str>) -> Result<Vec<PathBuf>, String> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(suite)
        .map_err(|e| format!("{}: {e}", suite.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").exists())
        .filter(|p| filter.is_none_or(|f| p.file_name().is_some_and(|n| n.to_string_lossy().contains(f))))
        .collect();
    dirs.sort();
    Ok(dirs)
}

/// Runs every case directory under `suite` (sorted by name) on `exec`.
pub fn run_suite_with(suite: &Path, filter: Option<&str>, exec: &mut Executor) -> Result<Summary, String> {
    let mut s = Summary::default();
    for d in case_dirs(suite, filter)? {
        s.add(run_case_with(&d, exec));
    }
    Ok(s)
}
