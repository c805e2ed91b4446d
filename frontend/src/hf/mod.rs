//! Hugging Face checkpoints: a `config.json` ([`config`]) and safetensors weights
//! ([`checkpoint`]) built into an IR graph by the architecture's builder ([`decoder`] for
//! Llama, Qwen2 and Mistral, [`gpt2`], [`bert`]); [`generate`] decodes greedily with the prefill and
//! decode graphs.
//!
//! ```no_run
//! use kiln_frontend::hf::{import_dir, Prefill};
//! let g = import_dir("Qwen2-0.5B".as_ref(), Prefill { batch: 1, seq: 128 })?;
//! println!("{} nodes", g.nodes.len());
//! # Ok::<(), kiln_frontend::hf::HfError>(())
//! ```

pub mod bert;
pub mod checkpoint;
pub mod config;
pub mod decoder;
pub mod generate;
pub mod gpt2;

pub use checkpoint::{Checkpoint, CheckpointError};
pub use config::{Arch, ConfigError, HfConfig};
pub use decoder::{Decode, Prefill};

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HfError {
    #[error("cannot read `{path}`: {msg}")]
    Io { path: String, msg: String },
    #[error("`{path}`: {source}")]
    InConfig {
        path: String,
        #[source]
        source: ConfigError,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("building the graph: {0}")]
    Build(String),
}

/// Where a checkpoint is: its `config.json` and its safetensors weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub config: PathBuf,
    pub weights: Weights,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Weights {
    /// `model.safetensors`, or the shards `model.safetensors.index.json` lists, in a directory.
    Dir(PathBuf),
    /// These safetensors files (the shards of one checkpoint: a tensor in two is an error).
    Files(Vec<PathBuf>),
}

impl Source {
    /// The checkpoint in `dir`: `dir/config.json` and the weights there.
    pub fn dir(dir: &Path) -> Source {
        Source { config: dir.join("config.json"), weights: Weights::Dir(dir.to_path_buf()) }
    }

    /// Reads and checks the config.
    pub fn read_config(&self) -> Result<HfConfig, HfError> {
        let p = &self.config;
        let text = std::fs::read_to_string(p).map_err(|e| HfError::Io { path: p.display().to_string(), msg: e.to_string() })?;
        HfConfig::parse(&text).map_err(|e| HfError::InConfig { path: p.display().to_string(), source: e })
    }

    /// Opens (maps) the weights and parses their headers.
    pub fn checkpoint(&self) -> Result<Checkpoint, HfError> {
        Ok(match &self.weights {
            Weights::Dir(d) => Checkpoint::open_dir(d)?,
            Weights::Files(f) => Checkpoint::open_files(f)?,
        })
    }
}

/// Reads `dir/config.json`.
pub fn read_config(dir: &Path) -> Result<HfConfig, HfError> {
    Source::dir(dir).read_config()
}

/// Tensors of an `arch` checkpoint that the graph does not use and that are not an error:
/// buffers that carry no weights (rotary frequencies, GPT-2's causal mask and masked-score
/// constant, BERT's id buffers) and BERT's pre-training heads.
fn ignorable(arch: Arch) -> impl Fn(&str) -> bool {
    move |name: &str| match arch {
        Arch::Llama | Arch::Qwen2 | Arch::Mistral => name.ends_with("rotary_emb.inv_freq"),
        Arch::Gpt2 => name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias"),
        Arch::Bert => bert::ignorable(name),
    }
}

/// The graph of `kind` for the architecture `cfg` describes.
fn graph(cfg: &HfConfig, ck: &mut Checkpoint, kind: decoder::Kind) -> Result<kiln_ir::Graph, HfError> {
    match cfg.arch {
        Arch::Llama | Arch::Qwen2 | Arch::Mistral => decoder::build(cfg, ck, kind),
        Arch::Gpt2 => gpt2::build(cfg, ck, kind),
        Arch::Bert => match kind {
            decoder::Kind::Prefill(p) => bert::build(cfg, ck, p.batch, p.seq),
            decoder::Kind::Decode(_) => Err(HfError::Unsupported("a decode graph of BERT, an encoder".into())),
        },
    }
}

/// The prefill graph (BERT: the encoder graph) of the checkpoint in `dir` (`config.json` and
/// its safetensors).
pub fn import_dir(dir: &Path, p: Prefill) -> Result<kiln_ir::Graph, HfError> {
    import(&Source::dir(dir), p)
}

/// The prefill graph (BERT: the encoder graph) of the checkpoint `src`.
pub fn import(src: &Source, p: Prefill) -> Result<kiln_ir::Graph, HfError> {
    let cfg = src.read_config()?;
    let mut ck = src.checkpoint()?;
    build(&cfg, &mut ck, p).and_then(|g| ck.finish(ignorable(cfg.arch)).map(|_| g).map_err(HfError::from))
}

/// The prefill and decode graphs of the checkpoint `src` (the decode graph's caches hold
/// `d.max_len` positions), and the decode graph's cache geometry.
pub fn import_for_generation(
    src: &Source,
    p: Prefill,
    d: Decode,
) -> Result<(kiln_ir::Graph, kiln_ir::Graph, generate::CacheShape), HfError> {
    let cfg = src.read_config()?;
    if cfg.arch == Arch::Bert {
        return Err(HfError::Unsupported("generation with BERT, an encoder".into()));
    }
    let ck = src.checkpoint()?;
    let mut a = ck.clone();
    let prefill = graph(&cfg, &mut a, decoder::Kind::Prefill(p))?;
    a.finish(ignorable(cfg.arch))?;
    let mut b = ck;
    let decode = graph(&cfg, &mut b, decoder::Kind::Decode(d))?;
    b.finish(ignorable(cfg.arch))?;
    let shape = generate::CacheShape { layers: cfg.num_layers, kv_heads: cfg.num_kv_heads, head_dim: cfg.head_dim, max_len: d.max_len };
    Ok((prefill, decode, shape))
}

/// The prefill graph of `cfg` with the weights of `ck` (which keeps what the model does not use).
pub fn build(cfg: &HfConfig, ck: &mut Checkpoint, p: Prefill) -> Result<kiln_ir::Graph, HfError> {
    graph(cfg, ck, decoder::Kind::Prefill(p))
}
