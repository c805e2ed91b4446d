//! The model a compile starts from: an ONNX file, or a Hugging Face checkpoint (a directory, or
//! a config.json and safetensors files) specialised to a batch and sequence length, imported and
//! simplified into a verified graph.

use crate::error::DriverError;
use kiln_frontend::hf::{self, Prefill, Source, Weights};
use kiln_frontend::onnx::{import_file, ImportOptions};
use kiln_ir::{Graph, Tensor, TensorType};
use std::collections::HashMap;
use std::path::PathBuf;

/// A model to import.
#[derive(Debug, Clone)]
pub enum Model {
    Onnx(PathBuf),
    Checkpoint { source: Source, batch: Option<usize>, seq: Option<usize> },
}

/// Input shapes by input name: `input_ids` → `[1, 128]`.
pub type Shapes = HashMap<String, Vec<usize>>;

/// Input values bound at compile time, by input name (`--input-value sr=16000`): the input
/// becomes a constant, so that what depends on it (a sample-rate switch, an If) folds.
pub type Values = HashMap<String, Tensor>;

impl Model {
    pub fn display(&self) -> String {
        match self {
            Model::Onnx(p) => p.display().to_string(),
            Model::Checkpoint { source: Source { weights: Weights::Dir(d), .. }, .. } => d.display().to_string(),
            Model::Checkpoint { source, .. } => source.config.display().to_string(),
        }
    }

    /// The imported, simplified and verified graph, its inputs specialised by `shapes`.
    pub fn load(&self, shapes: &Shapes) -> Result<Graph, DriverError> {
        self.load_with(shapes, &Values::new())
    }

    /// [`Model::load`] with the inputs named in `values` bound to those values (constants of
    /// the graph, no longer inputs) before simplification folds what depends on them.
    pub fn load_with(&self, shapes: &Shapes, values: &Values) -> Result<Graph, DriverError> {
        let mut shapes = shapes.clone();
        for (name, t) in values {
            match shapes.get(name) {
                Some(d) if d.as_slice() != t.dims() => {
                    return Err(DriverError::Usage(format!("--input-value {name} has shape {:?}, --input-shape says {d:?}", t.dims())))
                }
                _ => shapes.insert(name.clone(), t.dims().to_vec()),
            };
        }
        let shapes = &shapes;
        let model_err = |context: String| move |e: Box<dyn std::error::Error + Send + Sync>| DriverError::Model { context, source: e };
        let (mut g, what) = match self {
            Model::Onnx(path) => {
                let opts = ImportOptions { input_shapes: shapes.clone(), input_values: values.clone() };
                let m = import_file(path, &opts).map_err(|e| model_err(format!("importing {}", path.display()))(e.into()))?;
                (m.graph, "imported")
            }
            Model::Checkpoint { source, batch, seq } => {
                let p = prefill_shape(*batch, *seq, shapes)?;
                (hf::import(source, p).map_err(|e| model_err(format!("importing {}", self.display()))(e.into()))?, "built")
            }
        };
        for name in values.keys() {
            if matches!(self, Model::Onnx(_)) && !g.consts.keys().any(|&c| g.value(c).name == *name) {
                let names: Vec<&str> = g.inputs.iter().map(|&i| g.value(i).name.as_str()).collect();
                return Err(DriverError::Usage(format!(
                    "--input-value: the model has no input named `{name}` (its inputs: {})",
                    names.join(", ")
                )));
            }
        }
        for (name, dims) in shapes.iter().filter(|(n, _)| !values.contains_key(*n)) {
            let Some(&i) = g.inputs.iter().find(|&&i| g.value(i).name == *name) else {
                // Named by --input-shape, or by --input (whose arrays give the shapes).
                let inputs: Vec<String> =
                    g.inputs.iter().map(|&i| format!("`{}` {}{}", g.value(i).name, g.value(i).ty.dtype, g.value(i).ty.shape)).collect();
                return Err(DriverError::Usage(format!("the model has no input named `{name}`; its inputs: {}", inputs.join(", "))));
            };
            let fixed = g.value(i).ty.shape.as_fixed();
            if matches!(self, Model::Checkpoint { .. }) && fixed.as_deref() != Some(dims.as_slice()) {
                let v = g.value(i);
                return Err(DriverError::Usage(format!("input `{name}` is {}{} in the built graph, not {dims:?}", v.ty.dtype, v.ty.shape)));
            }
        }
        if matches!(self, Model::Checkpoint { .. }) {
            bind_inputs(&mut g, values)?;
        }
        kiln_passes::simplify(&mut g).map_err(|e| DriverError::pass(format!("simplifying the {what} graph"), e))?;
        kiln_ir::verify(&g).map_err(|e| DriverError::pass(format!("verifying the {what} graph"), e))?;
        Ok(g)
    }
}

/// A checkpoint graph's batch and sequence length: `batch` and `seq`, else input_ids' given
/// shape (batch 1 by default); the two must agree.
fn prefill_shape(batch: Option<usize>, seq: Option<usize>, shapes: &Shapes) -> Result<Prefill, DriverError> {
    let usage = |m: String| Err(DriverError::Usage(m));
    let ids = match shapes.get("input_ids").map(Vec::as_slice) {
        None => None,
        Some(&[b, s]) => Some((b, s)),
        Some(d) => return usage(format!("input_ids is [batch, seq], not {d:?}")),
    };
    let b = match (batch, ids) {
        (Some(b), Some((ib, _))) if b != ib => return usage(format!("--batch {b} disagrees with input_ids' batch {ib}")),
        (Some(b), _) | (None, Some((b, _))) => b,
        (None, None) => 1,
    };
    let s = match (seq, ids) {
        (Some(s), Some((_, is))) if s != is => return usage(format!("--seq {s} disagrees with input_ids' sequence length {is}")),
        (Some(s), _) | (None, Some((_, s))) => s,
        (None, None) => {
            return usage("a safetensors checkpoint is built for one sequence length: give --seq S (and --batch B, default 1)".into())
        }
    };
    Ok(Prefill { batch: b, seq: s })
}

/// Makes each input named in `values` a constant of that value.
fn bind_inputs(g: &mut Graph, values: &Values) -> Result<(), DriverError> {
    for (name, t) in values {
        let Some(pos) = g.inputs.iter().position(|&i| g.value(i).name == *name) else {
            let names: Vec<&str> = g.inputs.iter().map(|&i| g.value(i).name.as_str()).collect();
            return Err(DriverError::Usage(format!(
                "--input-value: the model has no input named `{name}` (its inputs: {})",
                names.join(", ")
            )));
        };
        let v = g.inputs[pos];
        let want = g.value(v).ty.dtype;
        // A value of another dtype converts when it does so exactly (16000 for an i64 input).
        let t = t.converted_exactly(want).ok_or_else(|| {
            DriverError::Usage(format!("--input-value {name}: {} values do not convert exactly to the input's {want}", t.dtype()))
        })?;
        g.inputs.remove(pos);
        g.values[v.0 as usize].ty = TensorType::fixed(want, t.dims());
        g.consts.insert(v, std::sync::Arc::new(t));
    }
    Ok(())
}
