//! A Hugging Face checkpoint's weights: `model.safetensors`, or the shards that
//! `model.safetensors.index.json` lists (its `weight_map`, tensor name to file). Headers are
//! parsed with the `safetensors` crate; every tensor is checked against the shape the model
//! builder expects, and a tensor the builder never asks for is an error too (a checkpoint of a
//! different architecture or size), each naming the tensor and the file.
//!
//! Files are read into memory once (the workspace forbids `unsafe`, which mapping them needs);
//! each tensor is then decoded into the IR's typed storage.

use kiln_ir::{DType, Data, Tensor};
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read `{path}`: {msg}")]
    Io { path: String, msg: String },
    #[error("`{path}` is not a valid safetensors file: {msg}")]
    Format { path: String, msg: String },
    #[error("`{path}`: {msg}")]
    Index { path: String, msg: String },
    #[error("`{dir}` has neither {SINGLE_FILE} nor {INDEX_FILE}")]
    NoWeights { dir: String },
    #[error("tensor `{name}` is missing from the checkpoint")]
    Missing { name: String },
    #[error("tensor `{name}` (in `{path}`) has shape {got:?}; the config implies {want:?}")]
    Shape { name: String, path: String, got: Vec<usize>, want: Vec<usize> },
    #[error("tensor `{name}` (in `{path}`) has dtype {dtype}, which kiln does not read")]
    DType { name: String, path: String, dtype: String },
    #[error("tensor `{name}` is in both `{first}` and `{second}`")]
    Duplicate { name: String, first: String, second: String },
    #[error("{} tensor(s) of the checkpoint are not used by the model the config describes: {}", .0.len(), .0.join(", "))]
    Unused(Vec<String>),
}

/// One tensor of the checkpoint, decoded.
#[derive(Clone, Debug)]
struct Entry {
    path: String,
    tensor: Arc<Tensor>,
}

/// The tensors of a checkpoint, taken one by one by a model builder (a clone shares them).
#[derive(Clone, Debug)]
pub struct Checkpoint {
    tensors: BTreeMap<String, Entry>,
}

fn dtype(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F32 => DType::F32,
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F64 => DType::F64,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool,
        _ => return None,
    })
}

impl Checkpoint {
    /// The checkpoint in `dir`: `model.safetensors`, or the shards of its index.
    pub fn open_dir(dir: &Path) -> Result<Checkpoint, CheckpointError> {
        let single = dir.join(SINGLE_FILE);
        let index = dir.join(INDEX_FILE);
        if index.is_file() {
            let text = read(&index)?;
            let shown = index.display().to_string();
            let bad = |msg: String| CheckpointError::Index { path: shown.clone(), msg };
            let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
            let map = v.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| bad("no `weight_map` object".into()))?;
            let mut files: Vec<String> = vec![];
            for (name, f) in map {
                let f = f.as_str().ok_or_else(|| bad(format!("`weight_map.{name}` is not a file name")))?;
                if Path::new(f).is_absolute() || f.split(['/', '\\']).any(|c| c == "..") {
                    return Err(bad(format!("`weight_map.{name}` = `{f}` escapes the checkpoint directory")));
                }
                if !files.iter().any(|x| x == f) {
                    files.push(f.to_string());
                }
            }
            let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
            let c = Checkpoint::open_files(&paths)?;
            // The index and the shards must agree on where every tensor is.
            for (name, f) in map {
                let want = dir.join(f.as_str().unwrap_or_default()).display().to_string();
                match c.tensors.get(name) {
                    None => return Err(bad(format!("lists `{name}` in `{want}`, which does not hold it"))),
                    Some(e) if e.path != want => return Err(bad(format!("lists `{name}` in `{want}`, but it is in `{}`", e.path))),
                    _ => {}
                }
            }
            if let Some(extra) = c.tensors.keys().find(|n| !map.contains_key(*n)) {
                return Err(bad(format!("does not list `{extra}`, which a shard holds")));
            }
            return Ok(c);
        }
        if single.is_file() {
            return Checkpoint::open_files(&[single]);
        }
        Err(CheckpointError::NoWeights { dir: dir.display().to_string() })
    }

    /// The tensors of the given safetensors files (a tensor in two of them is an error).
    pub fn open_files(paths: &[PathBuf]) -> Result<Checkpoint, CheckpointError> {
        let mut tensors: BTreeMap<String, Entry> = BTreeMap::new();
        for p in paths {
            let bytes = read(p)?;
            let path = p.display().to_string();
            let st = SafeTensors::deserialize(&bytes).map_err(|e| CheckpointError::Format { path: path.clone(), msg: e.to_string() })?;
            for (name, view) in st.tensors() {
                let dt = dtype(view.dtype()).ok_or_else(|| CheckpointError::DType {
                    name: name.clone(),
                    path: path.clone(),
                    dtype: view.dtype().to_string(),
                })?;
                let data = Data::from_le_bytes(dt, view.data()).ok_or_else(|| CheckpointError::Format {
                    path: path.clone(),
                    msg: format!("tensor `{name}`: bytes that are not {dt}"),
                })?;
                let t = Tensor::new(view.shape().to_vec(), data)
                    .map_err(|e| CheckpointError::Format { path: path.clone(), msg: format!("tensor `{name}`: {e}") })?;
                if let Some(prev) = tensors.get(&name) {
                    return Err(CheckpointError::Duplicate { name, first: prev.path.clone(), second: path });
                }
                tensors.insert(name, Entry { path: path.clone(), tensor: Arc::new(t) });
            }
        }
        Ok(Checkpoint { tensors })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Takes tensor `name`, which must have shape `dims`.
    pub fn take(&mut self, name: &str, dims: &[usize]) -> Result<Arc<Tensor>, CheckpointError> {
        let e = self.tensors.remove(name).ok_or_else(|| CheckpointError::Missing { name: name.to_string() })?;
        if e.tensor.dims() != dims {
            return Err(CheckpointError::Shape {
                name: name.to_string(),
                path: e.path,
                got: e.tensor.dims().to_vec(),
                want: dims.to_vec(),
            });
        }
        Ok(e.tensor)
    }

    /// Drops tensors that carry no weights (buffers some checkpoints save, such as rotary
    /// frequencies), then fails if any tensor was not taken.
    pub fn finish(mut self, ignorable: impl Fn(&str) -> bool) -> Result<(), CheckpointError> {
        self.tensors.retain(|name, _| !ignorable(name));
        if self.tensors.is_empty() {
            Ok(())
        } else {
            Err(CheckpointError::Unused(self.tensors.into_keys().collect()))
        }
    }
}

fn read(p: &Path) -> Result<Vec<u8>, CheckpointError> {
    std::fs::read(p).map_err(|e| CheckpointError::Io { path: p.display().to_string(), msg: e.to_string() })
}
