//! The device weights buffer of an artifact, and weight stripping.
//!
//! A weight is stored in the artifact's weights section or, in a weight-stripped artifact
//! (`kiln compile --strip-weights`), referenced in the model file it was compiled from: a byte
//! range of that file whose content the compiler found equal to the weight, with its checksum.
//! Only weights that reach the device unchanged (the model's own dtype and layout, not folded,
//! merged, transposed or converted) can be referenced; the others stay in the section.
//! [`Artifact::weights_image`] assembles the buffer and fails, naming the weight and the file,
//! when a referenced file is missing, shorter or changed since compilation.

use super::{fnv1a64, sections, Artifact, ArtifactError, Stored};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Weights smaller than this stay in the artifact: a file read each costs more than it saves.
pub const MIN_STRIPPED_BYTES: u64 = 4096;
/// Weights in a compacted section start at multiples of this.
const SECTION_WEIGHT_ALIGN: u64 = 256;

/// A model file and the byte ranges of it that hold tensor data (ONNX initializers' raw data,
/// external data files): where a weight may be found.
pub struct SourceFile<'a> {
    /// Recorded in the artifact as given: an absolute path survives moving the artifact.
    pub path: String,
    pub bytes: &'a [u8],
    /// (offset, length) in `bytes`.
    pub ranges: Vec<(u64, u64)>,
}

impl std::fmt::Debug for SourceFile<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceFile")
            .field("path", &self.path)
            .field("bytes", &self.bytes.len())
            .field("ranges", &self.ranges.len())
            .finish()
    }
}

/// What stripping moved out of the artifact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stripped {
    pub weights: usize,
    pub bytes: u64,
}

impl Artifact {
    /// References every section-stored weight of at least [`MIN_STRIPPED_BYTES`] whose bytes
    /// equal one of the sources' ranges, and compacts the weights section to the rest.
    pub fn strip_weights(&mut self, sources: &[SourceFile]) -> Result<Stripped, ArtifactError> {
        let mut by_len: HashMap<u64, Vec<(usize, u64)>> = HashMap::new();
        for (f, src) in sources.iter().enumerate() {
            for &(off, len) in &src.ranges {
                if off.checked_add(len).is_some_and(|e| e <= src.bytes.len() as u64) {
                    by_len.entry(len).or_default().push((f, off));
                }
            }
        }
        // Where each weight goes, decided before anything changes: an error leaves the
        // artifact as it was.
        let section = self.section(sections::WEIGHTS).unwrap_or(&[]);
        let mut kept = vec![];
        let mut stripped = Stripped::default();
        let mut stored = Vec::with_capacity(self.manifest.weights.len());
        for w in &self.manifest.weights {
            let Stored::Section { offset } = w.stored else {
                stored.push(w.stored.clone());
                continue;
            };
            let bytes = section_range(section, offset, w.bytes, &w.name)?;
            let found = (w.bytes >= MIN_STRIPPED_BYTES)
                .then(|| by_len.get(&w.bytes))
                .flatten()
                .and_then(|c| c.iter().find(|&&(f, off)| &sources[f].bytes[off as usize..(off + w.bytes) as usize] == bytes));
            stored.push(match found {
                Some(&(f, off)) => {
                    stripped.weights += 1;
                    stripped.bytes += w.bytes;
                    Stored::Source { path: sources[f].path.clone(), offset: off, checksum: fnv1a64(bytes) }
                }
                None => {
                    let at = (kept.len() as u64).div_ceil(SECTION_WEIGHT_ALIGN) * SECTION_WEIGHT_ALIGN;
                    kept.resize(at as usize, 0);
                    kept.extend_from_slice(bytes);
                    Stored::Section { offset: at }
                }
            });
        }
        for (w, st) in self.manifest.weights.iter_mut().zip(stored) {
            w.stored = st;
        }
        if let Some((_, b)) = self.sections.iter_mut().find(|(name, _)| name == sections::WEIGHTS) {
            *b = kept;
        }
        self.validate()?;
        Ok(stripped)
    }

    /// The device weights buffer: section-stored weights copied, referenced ones read from
    /// their files (a relative path, or an absolute one that no longer exists, is also looked
    /// up by file name in `dir`, the artifact's directory) and checked against their checksums.
    /// An artifact whose section already is the buffer (nothing stripped) lends it.
    pub fn weights_image(&self, dir: Option<&Path>) -> Result<Cow<'_, [u8]>, ArtifactError> {
        let section = self.section(sections::WEIGHTS).unwrap_or(&[]);
        let in_place = |w: &super::WeightInfo| matches!(w.stored, Stored::Section { offset } if offset == w.offset);
        if section.len() as u64 == self.manifest.weights_bytes && self.manifest.weights.iter().all(in_place) {
            return Ok(Cow::Borrowed(section));
        }
        let n = self.manifest.weights_bytes as usize;
        let mut image = Vec::new();
        image.try_reserve_exact(n).map_err(|e| ArtifactError::Invalid(format!("a weights buffer of {n} bytes: {e}")))?;
        image.resize(n, 0);
        let mut files: HashMap<String, std::fs::File> = HashMap::new();
        for w in &self.manifest.weights {
            let dst = &mut image[w.offset as usize..(w.offset + w.bytes) as usize];
            match &w.stored {
                Stored::Section { offset } => dst.copy_from_slice(section_range(section, *offset, w.bytes, &w.name)?),
                Stored::Source { path, offset, checksum } => {
                    let err = |msg: String| ArtifactError::Source { weight: w.name.clone(), path: path.clone(), offset: *offset, msg };
                    if !files.contains_key(path) {
                        let f = open_source(path, dir).map_err(|e| err(format!("cannot open it ({e})")))?;
                        files.insert(path.clone(), f);
                    }
                    let f = files.get_mut(path).ok_or_else(|| err("the file was not opened".into()))?;
                    f.seek(SeekFrom::Start(*offset))
                        .and_then(|_| f.read_exact(dst))
                        .map_err(|e| err(format!("cannot read {} bytes ({e})", w.bytes)))?;
                    let got = fnv1a64(dst);
                    if got != *checksum {
                        return Err(err(format!(
                            "checksum {got:#018x}, {checksum:#018x} when compiled: the file changed since compilation"
                        )));
                    }
                }
            }
        }
        Ok(Cow::Owned(image))
    }
}

fn section_range<'a>(section: &'a [u8], offset: u64, bytes: u64, name: &str) -> Result<&'a [u8], ArtifactError> {
    offset.checked_add(bytes).filter(|&e| e <= section.len() as u64).map(|e| &section[offset as usize..e as usize]).ok_or_else(|| {
        ArtifactError::Invalid(format!("weight `{name}`: {bytes} bytes at section offset {offset} exceed the weights section"))
    })
}

fn open_source(path: &str, dir: Option<&Path>) -> std::io::Result<std::fs::File> {
    let p = PathBuf::from(path);
    let candidates =
        [(p.is_relative()).then(|| dir.map(|d| d.join(&p))).flatten(), Some(p.clone()), p.file_name().and_then(|n| dir.map(|d| d.join(n)))];
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "not found");
    for c in candidates.into_iter().flatten() {
        match std::fs::File::open(&c) {
            Ok(f) => return Ok(f),
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::super::{ElemType, Manifest, WeightInfo};
    use super::*;

    /// Two weights: `big` (8 KiB, counting bytes) and `small` (16 bytes), both in the section.
    fn artifact() -> Artifact {
        let big: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut section = big.clone();
        section.extend([9u8; 16]);
        let w = |name: &str, offset: u64, bytes: u64| WeightInfo {
            name: name.into(),
            dtype: ElemType::U8,
            dims: vec![bytes],
            offset,
            bytes,
            stored: Stored::Section { offset },
        };
        let manifest = Manifest {
            producer: "kiln test".into(),
            target: "sm_90".into(),
            precision: "model".into(),
            inputs: vec![],
            outputs: vec![],
            arena_bytes: 1,
            weights_bytes: 8192 + 16,
            weights: vec![w("big", 0, 8192), w("small", 8192, 16)],
            kernels: vec![],
            launches: vec![],
            sections: vec![],
        };
        Artifact { manifest, sections: vec![(sections::PTX.into(), b".version 8.0".to_vec()), (sections::WEIGHTS.into(), section)] }
    }

    fn temp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("kiln-strip-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn stripped_weights_are_read_back_from_their_file_and_checked() {
        let a = artifact();
        let want = a.weights_image(None).expect("image");
        let d = temp("ok");
        // The source: a header, the big weight at offset 100, a decoy of the same length.
        let mut file = vec![1u8; 100];
        file.extend_from_slice(&want[..8192]);
        file.extend(vec![0u8; 8192]);
        file.extend([9u8; 16]);
        let path = d.join("model.onnx");
        std::fs::write(&path, &file).expect("write");
        let mut s = a.clone();
        let src = SourceFile { path: path.display().to_string(), bytes: &file, ranges: vec![(100 + 8192, 8192), (100, 8192), (16484, 16)] };
        let got = s.strip_weights(&[src]).expect("strips");
        assert_eq!(got, Stripped { weights: 1, bytes: 8192 }, "the 16-byte weight stays below MIN_STRIPPED_BYTES");
        assert!(matches!(&s.manifest.weights[0].stored, Stored::Source { offset: 100, .. }));
        assert_eq!(s.section(sections::WEIGHTS).map(<[u8]>::len), Some(16), "the section keeps only the small weight");
        let s = Artifact::parse(&s.to_bytes()).expect("round trip");
        assert_eq!(s.weights_image(None).expect("image"), want);

        // Moved next to the artifact: found by file name in its directory.
        let moved = temp("moved");
        std::fs::write(moved.join("model.onnx"), &file).expect("write");
        std::fs::remove_file(&path).expect("rm");
        assert_eq!(s.weights_image(Some(&moved)).expect("found by name"), want);
        let e = s.weights_image(None).expect_err("missing").to_string();
        assert!(e.contains("weight `big`") && e.contains("model.onnx") && e.contains("cannot open"), "{e}");

        // Changed or cut short since compilation.
        file[150] ^= 1;
        std::fs::write(moved.join("model.onnx"), &file).expect("write");
        let e = s.weights_image(Some(&moved)).expect_err("changed").to_string();
        assert!(e.contains("weight `big`") && e.contains("offset 100") && e.contains("changed since compilation"), "{e}");
        std::fs::write(moved.join("model.onnx"), &file[..5000]).expect("write");
        let e = s.weights_image(Some(&moved)).expect_err("short").to_string();
        assert!(e.contains("cannot read 8192 bytes"), "{e}");
        let _ = std::fs::remove_dir_all(d);
        let _ = std::fs::remove_dir_all(moved);
    }

    #[test]
    fn nothing_matches_nothing_is_stripped() {
        let mut a = artifact();
        let file = vec![3u8; 9000];
        let src = SourceFile { path: "/nonexistent/m.onnx".into(), bytes: &file, ranges: vec![(0, 8192), (8000, 8192)] };
        assert_eq!(a.strip_weights(&[src]).expect("strips"), Stripped::default());
        assert_eq!(a.weights_image(None).expect("image"), artifact().weights_image(None).expect("image"));
    }

    #[test]
    fn a_weights_buffer_that_disagrees_with_its_weights_is_rejected() {
        let mut a = artifact();
        a.manifest.weights_bytes = 1 << 40;
        let e = Artifact::parse(&a.to_bytes()).expect_err("too big").to_string();
        assert!(e.contains("its weights end at 8208"), "{e}");
        let mut a = artifact();
        a.manifest.weights[1].stored = Stored::Section { offset: 8200 };
        let e = Artifact::parse(&a.to_bytes()).expect_err("outside the section").to_string();
        assert!(e.contains("weight `small`") && e.contains("exceed the weights section"), "{e}");
    }
}
