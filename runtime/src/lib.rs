//! kiln's runtime: loads a compiled `model.kiln` and runs it on an NVIDIA GPU.
//!
//! The artifact is parsed and validated completely before anything touches the GPU (every
//! launch argument lies inside the arena, the weights or an input buffer). Weights are uploaded
//! once, activations live in one arena sized by the compiler's memory plan, and each run copies
//! the inputs in, replays the launch sequence (optionally as a captured CUDA graph) and copies
//! the outputs out. Wrong input names, dtypes or shapes, a corrupt file or a machine without a
//! GPU are errors, never undefined behaviour. The runtime does not depend on LLVM.
//!
//! ```no_run
//! use kiln_runtime::{HostTensor, Session};
//!
//! # fn main() -> Result<(), kiln_runtime::Error> {
//! let mut session = Session::load("model.kiln")?;
//! for i in session.inputs() {
//!     println!("input {}: {}{:?}", i.name, i.dtype, i.dims);
//! }
//! let x = HostTensor::from_f32(vec![1, 3, 64, 64], &vec![0.5; 3 * 64 * 64]);
//! session.set_cuda_graph(true); // replay the launches as one CUDA graph
//! let outputs = session.run(&[x])?;
//! println!("{:?}", outputs[0].to_f32()?.iter().take(4).collect::<Vec<_>>());
//! # Ok(())
//! # }
//! ```

mod device;

pub use device::{check_device, Session};
pub use kiln_artifact::artifact::{Artifact, ArtifactError, ElemType, Manifest, TensorInfo};

/// A tensor in host memory: little-endian bytes of `dtype`, row-major `dims`.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub dtype: ElemType,
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

impl HostTensor {
    pub fn new(dtype: ElemType, dims: Vec<usize>, data: Vec<u8>) -> Result<HostTensor, Error> {
        let want = dims.iter().product::<usize>() * dtype.bytes();
        if data.len() != want {
            return Err(Error::Input(format!("{} bytes for {dtype}{dims:?}, which needs {want}", data.len())));
        }
        // The sub-byte types take a byte each; one outside the type's range is not an element.
        let fits: Option<fn(u8) -> bool> = match dtype {
            ElemType::I4 => Some(|b| (b as i8) >= -8 && (b as i8) <= 7),
            ElemType::I2 => Some(|b| (b as i8) >= -2 && (b as i8) <= 1),
            ElemType::U4 | ElemType::F4e2m1 => Some(|b| b <= 15),
            ElemType::U2 => Some(|b| b <= 3),
            _ => None,
        };
        if let Some(at) = fits.and_then(|fits| data.iter().position(|&b| !fits(b))) {
            return Err(Error::Input(format!("byte {at} ({:#04x}) is not a {dtype} element (one per byte)", data[at])));
        }
        Ok(HostTensor { dtype, dims, data })
    }

    pub fn from_f32(dims: Vec<usize>, v: &[f32]) -> HostTensor {
        HostTensor { dtype: ElemType::F32, dims, data: v.iter().flat_map(|x| x.to_le_bytes()).collect() }
    }

    pub fn from_i64(dims: Vec<usize>, v: &[i64]) -> HostTensor {
        HostTensor { dtype: ElemType::I64, dims, data: v.iter().flat_map(|x| x.to_le_bytes()).collect() }
    }

    /// The values of an f32 tensor.
    pub fn to_f32(&self) -> Result<Vec<f32>, Error> {
        if self.dtype != ElemType::F32 {
            return Err(Error::Input(format!("to_f32 on a {} tensor", self.dtype)));
        }
        Ok(self.data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error("artifact for target `{0}`: this runtime runs sm_90 and sm_80 artifacts")]
    Target(String),
    #[error("no CUDA device: {0}")]
    NoDevice(String),
    #[error("CUDA: {0}")]
    Cuda(String),
    #[error("input: {0}")]
    Input(String),
}

/// Checks `given` against the artifact's inputs: names are positional, dtypes and shapes exact.
pub fn check_inputs(want: &[TensorInfo], given: &[HostTensor]) -> Result<(), Error> {
    if given.len() != want.len() {
        let names: Vec<&str> = want.iter().map(|t| t.name.as_str()).collect();
        return Err(Error::Input(format!("the model takes {} inputs ({}), {} given", want.len(), names.join(", "), given.len())));
    }
    for (w, g) in want.iter().zip(given) {
        let dims: Vec<usize> = w.dims.iter().map(|&d| d as usize).collect();
        if g.dtype != w.dtype || g.dims != dims {
            return Err(Error::Input(format!("input `{}` must be {}{:?}, got {}{:?}", w.name, w.dtype, dims, g.dtype, g.dims)));
        }
        if g.data.len() as u64 != w.bytes() {
            return Err(Error::Input(format!("input `{}` has {} bytes, {} expected", w.name, g.data.len(), w.bytes())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_artifact::artifact::Loc;

    fn info(name: &str, dtype: ElemType, dims: Vec<u64>) -> TensorInfo {
        TensorInfo { name: name.into(), dtype, dims, loc: Loc::Input { index: 0, offset: 0 } }
    }

    #[test]
    fn inputs_are_checked_by_count_dtype_and_shape() {
        let want = vec![info("ids", ElemType::I64, vec![1, 4])];
        assert!(check_inputs(&want, &[HostTensor::from_i64(vec![1, 4], &[1, 2, 3, 4])]).is_ok());
        let e = check_inputs(&want, &[]).expect_err("missing").to_string();
        assert!(e.contains("takes 1 inputs (ids), 0 given"), "{e}");
        let e = check_inputs(&want, &[HostTensor::from_f32(vec![1, 4], &[0.0; 4])]).expect_err("dtype").to_string();
        assert!(e.contains("`ids` must be i64[1, 4], got f32[1, 4]"), "{e}");
        let e = check_inputs(&want, &[HostTensor::from_i64(vec![4], &[1, 2, 3, 4])]).expect_err("shape").to_string();
        assert!(e.contains("got i64[4]"), "{e}");
    }

    #[test]
    fn host_tensors_know_their_size() {
        assert!(HostTensor::new(ElemType::F16, vec![2, 2], vec![0; 8]).is_ok());
        assert!(HostTensor::new(ElemType::F16, vec![2, 2], vec![0; 7]).is_err());
        assert!(HostTensor::new(ElemType::I4, vec![3], vec![0xf8, 7, 0]).is_ok());
        let e = HostTensor::new(ElemType::I4, vec![3], vec![0xf8, 8, 0]).expect_err("8 is not an int4");
        assert!(e.to_string().contains("byte 1 (0x08)"), "{e}");
        assert!(HostTensor::new(ElemType::U2, vec![1], vec![4]).is_err());
        assert!(HostTensor::new(ElemType::F4e2m1, vec![1], vec![0x0f]).is_ok());
    }

    #[test]
    fn a_corrupt_artifact_is_an_error_before_any_gpu_work() {
        let dir = std::env::temp_dir().join(format!("kiln-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp");
        let p = dir.join("bad.kiln");
        std::fs::write(&p, b"KILNART\0 this is not an artifact").expect("write");
        let e = Session::load(&p).expect_err("corrupt").to_string();
        assert!(e.contains("truncated") || e.contains("checksum") || e.contains("magic"), "{e}");
        let e = Session::load(dir.join("missing.kiln")).expect_err("missing").to_string();
        assert!(e.contains("missing.kiln"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
