//! A Hugging Face checkpoint's weights: `model.safetensors`, or the shards that
//! `model.safetensors.index.json` lists (its `weight_map`, tensor name to file). Headers are
//! parsed with the `safetensors` crate; every tensor is checked against the shape the model
//! builder expects, and a tensor the builder never asks for is an error too (a checkpoint of a
//! different architecture or size), each naming the tensor and the file.
//!
//! Files are memory-mapped, not read: opening a checkpoint parses and checks the headers only,
//! and a tensor's bytes are decoded into the IR's typed storage when the builder takes it, so a
//! checkpoint is never held in memory a second time beside the graph's weights.

use kiln_ir::{DType, Data, Tensor};
use memmap2::Mmap;
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

/// A mapped checkpoint file.
#[derive(Debug)]
struct File {
    path: String,
    map: Mmap,
}

/// One tensor of the checkpoint: where its bytes are, and what they hold.
#[derive(Clone, Debug)]
struct Entry {
    file: Arc<File>,
    dtype: DType,
    dims: Vec<usize>,
    /// Byte range in the file.
    start: usize,
    end: usize,
}

impl Entry {
    fn decode(&self, name: &str) -> Result<Tensor, CheckpointError> {
        let path = &self.file.path;
        let bytes = self.file.map.get(self.start..self.end).ok_or_else(|| CheckpointError::Format {
            path: path.clone(),
            msg: format!("tensor `{name}`: bytes {}..{} are past the end of the file", self.start, self.end),
        })?;
        let data = Data::from_le_bytes(self.dtype, bytes).ok_or_else(|| CheckpointError::Format {
            path: path.clone(),
            msg: format!("tensor `{name}`: bytes that are not {}", self.dtype),
        })?;
        Tensor::new(self.dims.clone(), data)
            .map_err(|e| CheckpointError::Format { path: path.clone(), msg: format!("tensor `{name}`: {e}") })
    }
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
                    Some(e) if e.file.path != want => {
                        return Err(bad(format!("lists `{name}` in `{want}`, but it is in `{}`", e.file.path)))
                    }
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
            let file = Arc::new(File { path: p.display().to_string(), map: map(p)? });
            let path = &file.path;
            let st = SafeTensors::deserialize(&file.map).map_err(|e| CheckpointError::Format { path: path.clone(), msg: e.to_string() })?;
            let base = file.map.as_ptr() as usize;
            for (name, view) in st.tensors() {
                let dtype = dtype(view.dtype()).ok_or_else(|| CheckpointError::DType {
                    name: name.clone(),
                    path: path.clone(),
                    dtype: view.dtype().to_string(),
                })?;
                // The view borrows the mapping: its offset in the file is its address's.
                let start = view.data().as_ptr() as usize - base;
                let entry = Entry { file: file.clone(), dtype, dims: view.shape().to_vec(), start, end: start + view.data().len() };
                if let Some(prev) = tensors.get(&name) {
                    return Err(CheckpointError::Duplicate { name, first: prev.file.path.clone(), second: path.clone() });
                }
                tensors.insert(name, entry);
            }
        }
        Ok(Checkpoint { tensors })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Takes tensor `name`, which must have shape `dims`, decoded from its file.
    pub fn take(&mut self, name: &str, dims: &[usize]) -> Result<Tensor, CheckpointError> {
        let e = self.tensors.remove(name).ok_or_else(|| CheckpointError::Missing { name: name.to_string() })?;
        if e.dims != dims {
            return Err(CheckpointError::Shape { name: name.to_string(), path: e.file.path.clone(), got: e.dims, want: dims.to_vec() });
        }
        e.decode(name)
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

/// Maps file `p` read-only.
fn map(p: &Path) -> Result<Mmap, CheckpointError> {
    let io = |e: std::io::Error| CheckpointError::Io { path: p.display().to_string(), msg: e.to_string() };
    let f = std::fs::File::open(p).map_err(io)?;
    // SAFETY: the mapping is read-only and private to this process; its bytes are only read,
    // through bounds-checked slices. A file truncated or rewritten by another process while it
    // is mapped is the one hazard (a fault, or changed bytes), as for every tool that maps
    // checkpoints; kiln itself never writes a checkpoint it has open.
    #[allow(unsafe_code)]
    let m = unsafe { Mmap::map(&f) }.map_err(io)?;
    Ok(m)
}
