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

/// What a path holds, recognised by its content: the magic of a kiln artifact, the files of a
/// 910b bundle or a checkpoint directory, kiln's IR text; anything else is read as ONNX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Onnx,
    /// A compiled `model.kiln` (magic `KILNART\0`).
    Artifact,
    /// A 910b bundle directory (manifest.json and graph.air).
    Bundle,
    /// A directory with a Hugging Face config.json.
    Checkpoint,
    /// kiln's IR text (`compile --target ref -o` writes it).
    IrText,
}

pub fn kind(p: &Path) -> Kind {
    if p.is_dir() {
        return if p.join("graph.air").is_file() && p.join("manifest.json").is_file() { Kind::Bundle } else { Kind::Checkpoint };
    }
    let mut head = [0u8; 8];
    let n = std::fs::File::open(p).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
    match &head[..n] {
        h if h == kiln_artifact::artifact::MAGIC => Kind::Artifact,
        h if h.starts_with(b"graph \"") => Kind::IrText,
        _ => Kind::Onnx,
    }
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
        (Some(m), None, true) if kind(m) == Kind::Artifact => bail!(
            "{} is a compiled kiln artifact, not a model: `kiln run {0} --input ...` runs it on the GPU, `kiln inspect {0}` shows what it holds",
            m.display()
        ),
        (Some(m), None, true) if kind(m) == Kind::Bundle => bail!(
            "{} is a 910b bundle, not a model: `kiln run {0} --target 910b-sim --input ...` simulates it, `kiln inspect {0}` shows what it holds",
            m.display()
        ),
        (Some(m), None, true) if m.is_dir() => Ok(checkpoint(Source::dir(m))),
        (Some(m), None, true) if kind(m) == Kind::IrText => {
            bail!("{} is kiln IR text (what `kiln compile --target ref` writes), not a model: give the .onnx file it came from", m.display())
        }
        (Some(m), None, true) => {
            if ck.batch.is_some() || ck.seq.is_some() {
                bail!("--batch and --seq specialise a safetensors checkpoint; for an ONNX model use --input-shape NAME=DIMS");
            }
            Ok(Model::Onnx(m.to_path_buf()))
        }
    }
}
