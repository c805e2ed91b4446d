//! The model a command reads: an ONNX file, or a Hugging Face checkpoint (a directory, or
//! `--config` and `--weights` files) specialised by `--batch` and `--seq`, imported and
//! simplified into a verified graph.

use anyhow::{bail, Context, Result};
use kiln_frontend::hf::{self, Prefill, Source, Weights};
use kiln_frontend::onnx::{import_file, ImportOptions};
use kiln_ir::Graph;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where a Hugging Face checkpoint is, when it is not one directory, and the shape its graph
/// is built for.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct CheckpointArgs {
    /// A Hugging Face config.json, with --weights (instead of a checkpoint directory).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A safetensors weights file, with --config (repeatable: the shards of one checkpoint).
    #[arg(long)]
    pub weights: Vec<PathBuf>,
    /// A checkpoint's batch (default: the first dimension of input_ids' --input-shape or
    /// --input, else 1).
    #[arg(long)]
    pub batch: Option<usize>,
    /// A checkpoint's sequence length (default: the second dimension of input_ids'
    /// --input-shape or --input).
    #[arg(long)]
    pub seq: Option<usize>,
}

/// A model to import.
#[derive(Debug, Clone)]
pub enum Model {
    Onnx(PathBuf),
    Checkpoint { source: Source, batch: Option<usize>, seq: Option<usize> },
}

impl Model {
    /// The model of a command's MODEL argument and checkpoint flags.
    pub fn new(model: Option<&Path>, ck: &CheckpointArgs) -> Result<Model> {
        let checkpoint = |source| Model::Checkpoint { source, batch: ck.batch, seq: ck.seq };
        match (model, &ck.config, ck.weights.is_empty()) {
            (Some(_), Some(_), _) | (Some(_), _, false) => {
                bail!("give a MODEL (an .onnx file or a checkpoint directory), or --config and --weights, not both")
            }
            (None, Some(c), false) => Ok(checkpoint(Source { config: c.clone(), weights: Weights::Files(ck.weights.clone()) })),
            (None, Some(_), true) => bail!("--config needs the checkpoint's safetensors files: --weights FILE (repeatable)"),
            (None, None, false) => bail!("--weights needs the checkpoint's config: --config config.json"),
            (None, None, true) => bail!("no model: give an .onnx file, a checkpoint directory, or --config and --weights"),
            (Some(m), None, true) if m.is_dir() => Ok(checkpoint(Source::dir(m))),
            (Some(m), None, true) => {
                if ck.batch.is_some() || ck.seq.is_some() {
                    bail!("--batch and --seq specialise a safetensors checkpoint; for an ONNX model use --input-shape NAME=DIMS");
                }
                Ok(Model::Onnx(m.to_path_buf()))
            }
        }
    }

    pub fn display(&self) -> String {
        match self {
            Model::Onnx(p) => p.display().to_string(),
            Model::Checkpoint { source: Source { weights: Weights::Dir(d), .. }, .. } => d.display().to_string(),
            Model::Checkpoint { source, .. } => source.config.display().to_string(),
        }
    }

    /// The imported, simplified and verified graph, its inputs specialised by `shapes`.
    pub fn load(&self, shapes: &HashMap<String, Vec<usize>>) -> Result<Graph> {
        let (mut g, what) = match self {
            Model::Onnx(path) => {
                let opts = ImportOptions { input_shapes: shapes.clone() };
                let m = import_file(path, &opts).with_context(|| format!("importing {}", path.display()))?;
                (m.graph, "imported")
            }
            Model::Checkpoint { source, batch, seq } => {
                let p = prefill_shape(*batch, *seq, shapes)?;
                (hf::import(source, p).with_context(|| format!("importing {}", self.display()))?, "built")
            }
        };
        for (name, dims) in shapes {
            let Some(&i) = g.inputs.iter().find(|&&i| g.value(i).name == *name) else {
                bail!("--input-shape: the model has no input named `{name}`");
            };
            let fixed = g.value(i).ty.shape.as_fixed();
            if matches!(self, Model::Checkpoint { .. }) && fixed.as_deref() != Some(dims.as_slice()) {
                bail!("input `{name}` is {}{} in the built graph, not {dims:?}", g.value(i).ty.dtype, g.value(i).ty.shape);
            }
        }
        kiln_passes::simplify(&mut g).with_context(|| format!("simplifying the {what} graph"))?;
        kiln_ir::verify(&g).with_context(|| format!("verifying the {what} graph"))?;
        Ok(g)
    }
}

/// A checkpoint graph's batch and sequence length: `--batch` and `--seq`, else input_ids'
/// given shape (batch 1 by default); the two must agree.
fn prefill_shape(batch: Option<usize>, seq: Option<usize>, shapes: &HashMap<String, Vec<usize>>) -> Result<Prefill> {
    let ids = match shapes.get("input_ids").map(Vec::as_slice) {
        None => None,
        Some(&[b, s]) => Some((b, s)),
        Some(d) => bail!("input_ids is [batch, seq], not {d:?}"),
    };
    let b = match (batch, ids) {
        (Some(b), Some((ib, _))) if b != ib => bail!("--batch {b} disagrees with input_ids' batch {ib}"),
        (Some(b), _) | (None, Some((b, _))) => b,
        (None, None) => 1,
    };
    let s = match (seq, ids) {
        (Some(s), Some((_, is))) if s != is => bail!("--seq {s} disagrees with input_ids' sequence length {is}"),
        (Some(s), _) | (None, Some((_, s))) => s,
        (None, None) => bail!("a safetensors checkpoint is built for one sequence length: give --seq S (and --batch B, default 1)"),
    };
    Ok(Prefill { batch: b, seq: s })
}
