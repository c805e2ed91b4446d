//! Writing what a backend emitted, and referencing an artifact's weights in the model's own
//! files instead of copying them (`--strip-weights`).

use crate::error::DriverError;
use crate::model::Model;
use kiln_artifact::artifact::{Artifact, SourceFile};
use kiln_backend::Output;
use std::path::Path;

/// Writes `out` to `path` (a file, or a directory for [`Output::Files`]); the bytes written.
pub fn write(out: &Output, path: &Path) -> Result<u64, DriverError> {
    let err = |p: &Path| {
        let path = p.display().to_string();
        move |source| DriverError::Write { path, source }
    };
    match out {
        Output::Artifact(a) => {
            let bytes = a.to_bytes();
            std::fs::write(path, &bytes).map_err(err(path))?;
            Ok(bytes.len() as u64)
        }
        Output::Text(t) => {
            std::fs::write(path, t).map_err(err(path))?;
            Ok(t.len() as u64)
        }
        Output::Files(files) => kiln_backend::write_files(files, path).map_err(err(path)),
    }
}

/// What [`strip_weights`] referenced.
#[derive(Debug, Clone)]
pub struct Stripped {
    pub weights: usize,
    pub bytes: u64,
    pub files: Vec<String>,
}

/// References the artifact's weights found unchanged in `model`'s files (ONNX initializers,
/// inline or external data) instead of carrying them.
pub fn strip_weights(a: &mut Artifact, model: &Model) -> Result<Stripped, DriverError> {
    let Model::Onnx(model) = model else {
        return Err(DriverError::Usage(
            "--strip-weights references ONNX initializers; for a safetensors checkpoint it is not done yet".into(),
        ));
    };
    let sources = kiln_frontend::onnx::weight_sources(model)
        .map_err(|e| DriverError::Model { context: format!("locating the weights in {}", model.display()), source: e.into() })?;
    let mut bytes = vec![];
    for (p, _) in &sources {
        bytes.push(std::fs::read(p).map_err(|e| DriverError::Model { context: format!("reading {}", p.display()), source: e.into() })?);
    }
    let files: Vec<SourceFile> = sources
        .iter()
        .zip(&bytes)
        .map(|((p, ranges), b)| SourceFile { path: p.display().to_string(), bytes: b, ranges: ranges.clone() })
        .collect();
    let s = a.strip_weights(&files).map_err(|e| DriverError::pass("stripping the weights", e))?;
    Ok(Stripped { weights: s.weights, bytes: s.bytes, files: sources.iter().map(|(p, _)| p.display().to_string()).collect() })
}
