//! onnxruntime's contrib ops (testsuite/contrib, made by generate.py with onnxruntime 1.20.1 as
//! the reference): every case imports, runs in the reference interpreter and matches
//! onnxruntime within 1e-4 of each output's scale (floats; integer outputs exactly), except the
//! cases listed in NOT_IMPORTED, which must fail to import with an error naming their op (and
//! are checked to still fail, so the list stays true). Every case also compiles for the 910b
//! and matches onnxruntime in the GE-graph simulator, and compiles for sm_90 (PTX through
//! ptxas; the integer products, which sm_90 has no kernel for, computed in f32 by the driver).

use kiln_driver::{compare::errors, npy};
use kiln_frontend::onnx::{import_file, ImportOptions};
use kiln_ir::{interp, Tensor};
use std::path::{Path, PathBuf};

const MAX_REL: f64 = 1e-4;

/// Contrib ops kiln does not import yet: (case prefix, why).
const NOT_IMPORTED: &[(&str, &str)] = &[];

fn read_npy(p: &Path) -> Tensor {
    npy::read(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn files(case: &serde_json::Value, key: &str) -> Vec<String> {
    case[key].as_array().map(|a| a.iter().filter_map(|i| i["file"].as_str().map(String::from)).collect()).unwrap_or_default()
}

/// A case's graph (imported, simplified, verified), its inputs and onnxruntime's outputs.
fn load(d: &Path) -> Result<(kiln_ir::Graph, Vec<Tensor>, Vec<Tensor>), String> {
    let case: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("case.json")).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let model = import_file(&d.join("model.onnx"), &ImportOptions::default()).map_err(|e| format!("import: {e}"))?;
    let mut g = model.graph;
    kiln_passes::simplify(&mut g).map_err(|e| format!("simplify: {e}"))?;
    kiln_ir::verify(&g).map_err(|e| format!("verify: {e}"))?;
    let inputs: Vec<Tensor> = files(&case, "inputs").iter().map(|f| read_npy(&d.join(f))).collect();
    let want: Vec<Tensor> = files(&case, "outputs").iter().map(|f| read_npy(&d.join(f))).collect();
    Ok((g, inputs, want))
}

/// Runs one case in the interpreter: Ok(worst relative error) or why it failed.
fn run_case(d: &Path) -> Result<f64, String> {
    let (g, inputs, want) = load(d)?;
    let got = interp::run(&g, inputs).map_err(|e| format!("run: {e}"))?;
    matches_onnxruntime(&got, &want)
}

/// The worst error relative to an output's scale (integer outputs exactly), or which is off.
fn matches_onnxruntime(got: &[Tensor], want: &[Tensor]) -> Result<f64, String> {
    if got.len() != want.len() {
        return Err(format!("{} outputs, onnxruntime {}", got.len(), want.len()));
    }
    let mut worst = 0f64;
    for (k, (a, b)) in got.iter().zip(want).enumerate() {
        if a.dims() != b.dims() || a.dtype() != b.dtype() {
            return Err(format!("output {k}: {}{:?}, onnxruntime {}{:?}", a.dtype(), a.dims(), b.dtype(), b.dims()));
        }
        let (av, bv) = (a.to_f64(), b.to_f64());
        if !b.dtype().is_float() {
            if let Some(i) = (0..av.len()).find(|&i| av[i] != bv[i]) {
                return Err(format!("output {k}: element {i} is {}, onnxruntime {}", av[i], bv[i]));
            }
            continue;
        }
        let scale = bv.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-3);
        let rel = errors(&av, &bv).max_abs / scale;
        if rel.is_nan() || rel > MAX_REL {
            return Err(format!("output {k}: error {rel:.3e} of the output's scale exceeds {MAX_REL:e}"));
        }
        worst = worst.max(rel);
    }
    Ok(worst)
}

/// The op a case's name lists as not imported yet.
fn not_imported(name: &str) -> Option<&'static str> {
    NOT_IMPORTED.iter().find(|(p, _)| name.starts_with(p)).map(|(_, op)| *op)
}

/// The case folders, sorted, with their names.
fn cases() -> Vec<(String, PathBuf)> {
    case_dirs().into_iter().map(|d| (d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), d)).collect()
}

fn case_dirs() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("testsuite/contrib")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("case.json").exists())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 60, "only {} contrib cases in {}", dirs.len(), root.display());
    dirs
}

#[test]
fn contrib_ops_match_onnxruntime() {
    let cases = cases();
    let mut failures = vec![];
    for (name, d) in &cases {
        match (run_case(d), not_imported(name)) {
            (Ok(rel), None) => println!("{name}: ok, {rel:.1e} of scale"),
            (Err(e), None) => failures.push(format!("{name}: {e}")),
            (Err(e), Some(op)) if e.contains(op) && e.starts_with("import") => println!("{name}: not imported yet ({op})"),
            (r, Some(op)) => failures.push(format!("{name}: listed as not imported ({op}) but gave {r:?}")),
        }
    }
    assert!(failures.is_empty(), "{} of {} contrib cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn contrib_ops_run_on_the_910b_simulator_and_compile_for_sm_90() {
    let cases = cases();
    let mut failures = vec![];
    for (name, d) in &cases {
        if not_imported(name).is_some() {
            continue;
        }
        let (g, inputs, want) = match load(d) {
            Ok(x) => x,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        match kiln_driver::sim::execute(&g, inputs) {
            kiln_driver::conformance::Outcome::Ran(got) => match matches_onnxruntime(&got, &want) {
                Ok(rel) => println!("{name}: 910b-sim {rel:.1e} of scale"),
                Err(e) => failures.push(format!("{name}: 910b-sim: {e}")),
            },
            kiln_driver::conformance::Outcome::Unsupported(e) | kiln_driver::conformance::Outcome::Failed(e) => {
                failures.push(format!("{name}: 910b-sim: {e}"))
            }
        }
        let compiled = kiln_driver::optimize(&g, kiln_driver::Target::Sm90, std::time::Instant::now())
            .map_err(|e| kiln_driver::error_chain(&e))
            .and_then(|(opt, _)| {
                let b = kiln_driver::backend(kiln_driver::Target::Sm90).map_err(|e| e.to_string())?;
                b.emit(&opt, &Default::default()).map(|_| ()).map_err(|e| kiln_driver::error_chain(&e))
            });
        if let Err(e) = compiled {
            failures.push(format!("{name}: sm_90: {e}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} contrib cases failed on a target:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
