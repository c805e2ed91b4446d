//! The model a command reads: an ONNX file, or a Hugging Face checkpoint (a directory, or
//! `--config` and `--weights` files) specialised by `--batch` and `--seq`. Importing it is the
//! driver's ([`kiln_driver::Model`]).

use anyhow::{bail, Result};
use kiln_driver::Model;
use kiln_frontend::hf::{Source, Weights};
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

/// The model of a command's MODEL argument and checkpoint flags.
pub fn model(model: Option<&Path>, ck: &CheckpointArgs) -> Result<Model> {
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
