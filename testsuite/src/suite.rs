//! Locating the ONNX node test suite (fetched by `testsuite/fetch-onnx-suite.sh`).

use std::path::PathBuf;

/// The `onnx/backend/test/data/node` directory of the pinned onnx 1.20.0 wheel: from
/// `KILN_ONNX_NODE_SUITE`, else the repository's `.venv`. Panics with the fix when absent, so a
/// test that needs it fails loudly instead of passing vacuously.
pub fn onnx_node_suite() -> PathBuf {
    if let Ok(p) = std::env::var("KILN_ONNX_NODE_SUITE") {
        return PathBuf::from(p);
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let lib = root.join(".venv/lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for e in entries.flatten() {
            let p = e.path().join("site-packages/onnx/backend/test/data/node");
            if p.is_dir() {
                return p;
            }
        }
    }
    panic!("the ONNX node suite is missing: run testsuite/fetch-onnx-suite.sh (or set KILN_ONNX_NODE_SUITE)")
}
