//! `model.kiln`: one file holding everything the runtime needs to run a compiled model.
//!
//! ```text
//! offset 0   magic "KILNART\0"            8 bytes
//!        8   format version (u32 LE)      = FORMAT_VERSION
//!       12   reserved (u32, zero)
//!       16   manifest offset (u64 LE)     the manifest is JSON (serde), see [`Manifest`]
//!       24   manifest length (u64 LE)
//!       32   file length (u64 LE)         the whole file, header included
//!       40   checksum (u64 LE)            FNV-1a 64 of every byte after the header
//!       48   sections, each at an offset aligned to SECTION_ALIGN (weights: mmap-able)
//! ```
//!
//! The manifest names each section (offset, length) and describes inputs, outputs, the weights
//! table (each weight in the weights section or, in a weight-stripped artifact, referenced in
//! the model file it was compiled from: [`weights`]), the kernels and the launch sequence with every pointer argument as a [`Loc`] (arena,
//! weights or an input buffer). [`Artifact::parse`] checks the header, the checksum and every
//! offset and size in the manifest against the sections and the arena, so that a corrupt or
//! truncated file is an error at load time, never an out-of-bounds access at run time.
//! Writing is deterministic: the same manifest and sections give the same bytes.

use serde::{Deserialize, Serialize};
use std::fmt;

pub mod weights;
pub use weights::{SourceFile, Stripped, MIN_STRIPPED_BYTES};

pub const MAGIC: &[u8; 8] = b"KILNART\0";
/// 2: weights may be referenced in the source model (`Stored::Source`).
pub const FORMAT_VERSION: u32 = 2;
pub const HEADER_BYTES: usize = 48;
/// Sections start at multiples of this (a page, so the weights section can be mapped).
pub const SECTION_ALIGN: usize = 4096;

/// Element types an artifact's tensors may have, named as in kiln's IR text form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElemType {
    F32,
    F16,
    Bf16,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
    /// The float8 formats, one byte each.
    F8E4m3fn,
    F8E4m3fnuz,
    F8E5m2,
    F8E5m2fnuz,
    /// The sub-byte types, one element per byte: int4/int2 sign-extended, uint4/uint2 and
    /// float4 E2M1 in the low bits.
    I4,
    U4,
    I2,
    U2,
    F4e2m1,
}

impl ElemType {
    pub fn bytes(self) -> usize {
        match self {
            ElemType::I8 | ElemType::U8 | ElemType::Bool => 1,
            ElemType::F8E4m3fn | ElemType::F8E4m3fnuz | ElemType::F8E5m2 | ElemType::F8E5m2fnuz => 1,
            ElemType::I4 | ElemType::U4 | ElemType::I2 | ElemType::U2 | ElemType::F4e2m1 => 1,
            ElemType::F16 | ElemType::Bf16 | ElemType::I16 | ElemType::U16 => 2,
            ElemType::F32 | ElemType::I32 | ElemType::U32 => 4,
            ElemType::F64 | ElemType::I64 | ElemType::U64 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ElemType::F32 => "f32",
            ElemType::F16 => "f16",
            ElemType::Bf16 => "bf16",
            ElemType::F64 => "f64",
            ElemType::I8 => "i8",
            ElemType::U8 => "u8",
            ElemType::I16 => "i16",
            ElemType::U16 => "u16",
            ElemType::I32 => "i32",
            ElemType::U32 => "u32",
            ElemType::I64 => "i64",
            ElemType::U64 => "u64",
            ElemType::Bool => "bool",
            ElemType::F8E4m3fn => "f8e4m3fn",
            ElemType::F8E4m3fnuz => "f8e4m3fnuz",
            ElemType::F8E5m2 => "f8e5m2",
            ElemType::F8E5m2fnuz => "f8e5m2fnuz",
            ElemType::I4 => "i4",
            ElemType::U4 => "u4",
            ElemType::I2 => "i2",
            ElemType::U2 => "u2",
            ElemType::F4e2m1 => "f4e2m1",
        }
    }

    pub fn from_name(s: &str) -> Option<ElemType> {
        [
            ElemType::F32,
            ElemType::F16,
            ElemType::Bf16,
            ElemType::F64,
            ElemType::I8,
            ElemType::U8,
            ElemType::I16,
            ElemType::U16,
            ElemType::I32,
            ElemType::U32,
            ElemType::I64,
            ElemType::U64,
            ElemType::Bool,
            ElemType::F8E4m3fn,
            ElemType::F8E4m3fnuz,
            ElemType::F8E5m2,
            ElemType::F8E5m2fnuz,
            ElemType::I4,
            ElemType::U4,
            ElemType::I2,
            ElemType::U2,
            ElemType::F4e2m1,
        ]
        .into_iter()
        .find(|e| e.name() == s)
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a tensor lives on the device: a byte offset into the activation arena, into the
/// weights buffer, or into the buffer of model input `index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "space", rename_all = "lowercase")]
pub enum Loc {
    Arena { offset: u64 },
    Weights { offset: u64 },
    Input { index: u32, offset: u64 },
}

/// A model input or output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: ElemType,
    pub dims: Vec<u64>,
    pub loc: Loc,
}

impl TensorInfo {
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }

    pub fn bytes(&self) -> u64 {
        self.numel() * self.dtype.bytes() as u64
    }
}

/// One weight: `bytes` bytes at `offset` of the device weights buffer, stored in the
/// artifact's weights section or referenced in the model's source file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightInfo {
    pub name: String,
    pub dtype: ElemType,
    pub dims: Vec<u64>,
    pub offset: u64,
    pub bytes: u64,
    pub stored: Stored,
}

/// Where a weight's bytes are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "in", rename_all = "lowercase")]
pub enum Stored {
    /// At `offset` of the weights section.
    Section { offset: u64 },
    /// At `offset` of the file `path` (the model the artifact was compiled from; a weight-
    /// stripped artifact), with the FNV-1a 64 checksum of those bytes.
    Source { path: String, offset: u64, checksum: u64 },
}

/// What one launch runs: a kernel entry point of the code section and the node it computes
/// (one per launch, in launch order).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelInfo {
    /// The PTX `.entry` name; launches of the same code share it.
    pub name: String,
    /// The IR node it computes (for per-kernel reports).
    pub node: String,
    /// The IR op kind (`MatMulFused`, `Softmax`, ...).
    pub op: String,
    /// Where the node's first output lives, with its type, so that a verifier can read it.
    pub output: Option<TensorInfo>,
}

/// A kernel argument: a device pointer or a scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Arg {
    Ptr { loc: Loc, bytes: u64 },
    I64 { value: i64 },
}

/// One kernel launch of the sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Launch {
    pub kernel: u32,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub shared_bytes: u32,
    pub args: Vec<Arg>,
}

/// A named byte range of the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    pub name: String,
    pub offset: u64,
    pub bytes: u64,
}

/// Everything about the compiled model except the bulk bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The compiler that wrote it (`kiln 0.1.0`).
    pub producer: String,
    /// `sm_90`, `sm_80`.
    pub target: String,
    /// The compute precision asked for (`fp32`, `fp16`, `bf16`, `model`).
    pub precision: String,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub arena_bytes: u64,
    /// Size of the device weights buffer.
    pub weights_bytes: u64,
    pub weights: Vec<WeightInfo>,
    pub kernels: Vec<KernelInfo>,
    pub launches: Vec<Launch>,
    /// Filled in by [`Artifact::to_bytes`].
    pub sections: Vec<Section>,
}

/// Well-known section names.
pub mod sections {
    pub const PTX: &str = "ptx";
    pub const CUBIN: &str = "cubin";
    pub const WEIGHTS: &str = "weights";
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("not a kiln artifact (bad magic at offset 0)")]
    Magic,
    #[error("artifact format version {0} is not supported by this runtime (it reads version {FORMAT_VERSION})")]
    Version(u32),
    #[error("artifact is truncated: the header says {want} bytes, the file has {got}")]
    Truncated { want: u64, got: u64 },
    #[error("artifact checksum mismatch (stored {stored:#018x}, computed {computed:#018x}): the file is corrupt")]
    Checksum { stored: u64, computed: u64 },
    #[error("artifact manifest at offset {offset}: {msg}")]
    Manifest { offset: u64, msg: String },
    #[error("artifact is inconsistent: {0}")]
    Invalid(String),
    #[error("weight `{weight}` is referenced at offset {offset} of {path}: {msg}")]
    Source { weight: String, path: String, offset: u64, msg: String },
}

/// A parsed and validated artifact: the manifest and the section bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifact {
    pub manifest: Manifest,
    /// (name, bytes) in file order.
    pub sections: Vec<(String, Vec<u8>)>,
}

/// FNV-1a, 64 bits: detects corruption (not an authenticity check).
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn align_up(n: usize) -> usize {
    n.div_ceil(SECTION_ALIGN) * SECTION_ALIGN
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

impl Artifact {
    pub fn section(&self, name: &str) -> Option<&[u8]> {
        self.sections.iter().find(|(n, _)| n == name).map(|(_, b)| b.as_slice())
    }

    /// What the artifact holds, in a few words: kernels, launches, arena, weights, code.
    pub fn summary(&self) -> String {
        let m = &self.manifest;
        let code = if self.section(sections::CUBIN).is_some() { "PTX + cubin" } else { "PTX" };
        let weights = self.section(sections::WEIGHTS).map_or(0, |w| w.len());
        // Launches of the same code share one kernel (one name).
        let kernels: std::collections::HashSet<&str> = m.kernels.iter().map(|k| k.name.as_str()).collect();
        format!("{} kernels, {} launches, arena {} bytes, weights {weights} bytes, {code}", kernels.len(), m.launches.len(), m.arena_bytes)
    }

    /// Serializes: header, sections at aligned offsets, then the manifest.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![0u8; HEADER_BYTES];
        let mut manifest = self.manifest.clone();
        manifest.sections.clear();
        for (name, bytes) in &self.sections {
            out.resize(align_up(out.len()), 0);
            manifest.sections.push(Section { name: name.clone(), offset: out.len() as u64, bytes: bytes.len() as u64 });
            out.extend_from_slice(bytes);
        }
        let text = serde_json::to_vec(&manifest).unwrap_or_default();
        let manifest_offset = out.len() as u64;
        out.extend_from_slice(&text);
        let len = out.len() as u64;
        out[0..8].copy_from_slice(MAGIC);
        out[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[16..24].copy_from_slice(&manifest_offset.to_le_bytes());
        out[24..32].copy_from_slice(&(text.len() as u64).to_le_bytes());
        out[32..40].copy_from_slice(&len.to_le_bytes());
        let sum = fnv1a64(&out[HEADER_BYTES..]);
        out[40..48].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// Parses and validates an artifact.
    pub fn parse(bytes: &[u8]) -> Result<Artifact, ArtifactError> {
        if bytes.len() < HEADER_BYTES || &bytes[0..8] != MAGIC {
            if bytes.len() >= 8 && &bytes[0..8] == MAGIC {
                return Err(ArtifactError::Truncated { want: HEADER_BYTES as u64, got: bytes.len() as u64 });
            }
            return Err(ArtifactError::Magic);
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != FORMAT_VERSION {
            return Err(ArtifactError::Version(version));
        }
        let (m_off, m_len, len) = (le_u64(bytes, 16), le_u64(bytes, 24), le_u64(bytes, 32));
        if len != bytes.len() as u64 {
            return Err(ArtifactError::Truncated { want: len, got: bytes.len() as u64 });
        }
        let (stored, computed) = (le_u64(bytes, 40), fnv1a64(&bytes[HEADER_BYTES..]));
        if stored != computed {
            return Err(ArtifactError::Checksum { stored, computed });
        }
        let end = m_off.checked_add(m_len).filter(|&e| e <= len && m_off >= HEADER_BYTES as u64);
        let end = end.ok_or(ArtifactError::Manifest { offset: m_off, msg: format!("{m_len} bytes do not fit in the file") })?;
        let manifest: Manifest = serde_json::from_slice(&bytes[m_off as usize..end as usize])
            .map_err(|e| ArtifactError::Manifest { offset: m_off, msg: e.to_string() })?;
        let mut sections = vec![];
        for s in &manifest.sections {
            let e = s.offset.checked_add(s.bytes).filter(|&e| e <= m_off && s.offset >= HEADER_BYTES as u64);
            let e = e.ok_or_else(|| {
                ArtifactError::Invalid(format!("section `{}` ({} bytes at {}) lies outside the file", s.name, s.bytes, s.offset))
            })?;
            sections.push((s.name.clone(), bytes[s.offset as usize..e as usize].to_vec()));
        }
        let a = Artifact { manifest, sections };
        a.validate()?;
        Ok(a)
    }

    /// Checks every reference of the manifest: kernels, locations and sizes.
    pub fn validate(&self) -> Result<(), ArtifactError> {
        let m = &self.manifest;
        let bad = |msg: String| Err(ArtifactError::Invalid(msg));
        let weights_len = m.weights_bytes;
        let section_len = self.section(sections::WEIGHTS).map_or(0, |w| w.len()) as u64;
        if self.section(sections::PTX).is_none() && self.section(sections::CUBIN).is_none() {
            return bad("no code section (ptx or cubin)".into());
        }
        let input_bytes: Vec<u64> = m.inputs.iter().map(TensorInfo::bytes).collect();
        let fits = |loc: &Loc, bytes: u64| -> Result<(), String> {
            let (space, offset, cap) = match *loc {
                Loc::Arena { offset } => ("arena", offset, m.arena_bytes),
                Loc::Weights { offset } => ("weights", offset, weights_len),
                Loc::Input { index, offset } => {
                    let cap = *input_bytes.get(index as usize).ok_or(format!("input index {index} out of range"))?;
                    ("input", offset, cap)
                }
            };
            match offset.checked_add(bytes) {
                Some(e) if e <= cap => Ok(()),
                _ => Err(format!("{bytes} bytes at {space} offset {offset} exceed the {space} ({cap} bytes)")),
            }
        };
        for (what, list) in [("input", &m.inputs), ("output", &m.outputs)] {
            for t in list {
                if let Err(e) = fits(&t.loc, t.bytes()) {
                    return bad(format!("{what} `{}`: {e}", t.name));
                }
            }
        }
        for w in &m.weights {
            if w.dims.iter().product::<u64>() * w.dtype.bytes() as u64 != w.bytes {
                return bad(format!("weight `{}`: {} bytes for {}{:?}", w.name, w.bytes, w.dtype, w.dims));
            }
            if let Err(e) = fits(&Loc::Weights { offset: w.offset }, w.bytes) {
                return bad(format!("weight `{}`: {e}", w.name));
            }
            match &w.stored {
                Stored::Section { offset } if offset.checked_add(w.bytes).is_none_or(|e| e > section_len) => {
                    return bad(format!(
                        "weight `{}`: {} bytes at section offset {offset} exceed the weights section ({section_len} bytes)",
                        w.name, w.bytes
                    ));
                }
                Stored::Source { path, .. } if path.is_empty() => return bad(format!("weight `{}`: an empty source path", w.name)),
                _ => {}
            }
        }
        let end = m.weights.iter().map(|w| w.offset.saturating_add(w.bytes)).max().unwrap_or(0);
        if m.weights_bytes != end {
            return bad(format!("the weights buffer is {} bytes, its weights end at {end}", m.weights_bytes));
        }
        for k in &m.kernels {
            if let Some(t) = &k.output {
                if let Err(e) = fits(&t.loc, t.bytes()) {
                    return bad(format!("kernel `{}` output: {e}", k.name));
                }
            }
        }
        for (i, l) in m.launches.iter().enumerate() {
            if l.kernel as usize >= m.kernels.len() {
                return bad(format!("launch {i}: kernel index {} out of range ({} kernels)", l.kernel, m.kernels.len()));
            }
            let threads = l.block.iter().map(|&b| b as u64).product::<u64>();
            if l.grid.contains(&0) || l.block.contains(&0) || threads > 1024 || l.grid[1] > 65535 || l.grid[2] > 65535 {
                return bad(format!("launch {i}: grid {:?} block {:?} is not a valid launch", l.grid, l.block));
            }
            if l.shared_bytes > 227 * 1024 {
                return bad(format!("launch {i}: {} bytes of shared memory exceed 227 KiB", l.shared_bytes));
            }
            for a in &l.args {
                if let Arg::Ptr { loc, bytes } = a {
                    if let Err(e) = fits(loc, *bytes) {
                        return bad(format!("launch {i} (kernel `{}`): {e}", m.kernels[l.kernel as usize].name));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Artifact {
        let t = |name: &str, loc| TensorInfo { name: name.into(), dtype: ElemType::F32, dims: vec![2, 4], loc };
        Artifact {
            manifest: Manifest {
                producer: "kiln test".into(),
                target: "sm_90".into(),
                precision: "model".into(),
                inputs: vec![t("x", Loc::Input { index: 0, offset: 0 })],
                outputs: vec![t("y", Loc::Arena { offset: 0 })],
                arena_bytes: 64,
                weights_bytes: 16,
                weights: vec![WeightInfo {
                    name: "w".into(),
                    dtype: ElemType::F32,
                    dims: vec![4],
                    offset: 0,
                    bytes: 16,
                    stored: Stored::Section { offset: 0 },
                }],
                kernels: vec![KernelInfo { name: "k0".into(), node: "add".into(), op: "Add".into(), output: None }],
                launches: vec![Launch {
                    kernel: 0,
                    grid: [1, 1, 1],
                    block: [128, 1, 1],
                    shared_bytes: 0,
                    args: vec![
                        Arg::Ptr { loc: Loc::Arena { offset: 0 }, bytes: 32 },
                        Arg::Ptr { loc: Loc::Input { index: 0, offset: 0 }, bytes: 32 },
                        Arg::Ptr { loc: Loc::Weights { offset: 0 }, bytes: 16 },
                    ],
                }],
                sections: vec![],
            },
            sections: vec![(sections::PTX.into(), b".version 8.0".to_vec()), (sections::WEIGHTS.into(), vec![7u8; 16])],
        }
    }

    #[test]
    fn round_trips_byte_identically() {
        let a = sample();
        let bytes = a.to_bytes();
        let b = Artifact::parse(&bytes).expect("parses");
        assert_eq!(b.section(sections::WEIGHTS), Some(&[7u8; 16][..]));
        assert_eq!(b.manifest.launches, a.manifest.launches);
        assert_eq!(b.to_bytes(), bytes);
        let w = b.manifest.sections.iter().find(|s| s.name == sections::WEIGHTS).map(|s| s.offset);
        assert_eq!(w.map(|o| o % SECTION_ALIGN as u64), Some(0), "weights are page-aligned for mmap");
    }

    #[test]
    fn every_truncation_and_bit_flip_is_an_error() {
        let bytes = sample().to_bytes();
        for cut in [0, 7, 8, 47, 48, bytes.len() / 2, bytes.len() - 1] {
            assert!(Artifact::parse(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        for at in (0..bytes.len()).step_by(97).chain([9, 20, 41]) {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            assert!(Artifact::parse(&b).is_err(), "flipped byte {at}");
        }
    }

    /// A manifest that is well-formed JSON but points outside its buffers: rejected even with
    /// a valid checksum (a buggy or hostile producer).
    #[test]
    fn out_of_range_references_are_rejected() {
        let cases: Vec<(Box<dyn Fn(&mut Manifest)>, &str)> = vec![
            (Box::new(|m| m.launches[0].kernel = 3), "kernel index 3"),
            (Box::new(|m| m.launches[0].args[0] = Arg::Ptr { loc: Loc::Arena { offset: 48 }, bytes: 32 }), "exceed the arena"),
            (Box::new(|m| m.launches[0].args[2] = Arg::Ptr { loc: Loc::Weights { offset: 8 }, bytes: 16 }), "exceed the weights"),
            (Box::new(|m| m.launches[0].args[1] = Arg::Ptr { loc: Loc::Input { index: 2, offset: 0 }, bytes: 4 }), "input index 2"),
            (Box::new(|m| m.launches[0].block = [2048, 1, 1]), "not a valid launch"),
            (Box::new(|m| m.weights[0].bytes = 12), "weight `w`"),
            (Box::new(|m| m.outputs[0].dims = vec![1000]), "output `y`"),
        ];
        for (edit, want) in cases {
            let mut a = sample();
            edit(&mut a.manifest);
            let err = Artifact::parse(&a.to_bytes()).expect_err(want).to_string();
            assert!(err.contains(want), "{err} should mention {want}");
        }
    }

    #[test]
    fn a_newer_version_is_refused_by_name() {
        let mut b = sample().to_bytes();
        b[8] = 9;
        assert_eq!(Artifact::parse(&b), Err(ArtifactError::Version(9)));
    }
}
