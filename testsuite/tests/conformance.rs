//! The ONNX node suite on the reference interpreter and on the 910b simulator, against the
//! committed expectation lists `testsuite/conformance/ref.txt` and `910b-sim.txt`. A listed case that no longer passes fails this test; a
//! newly passing case is reported so the list can be regenerated (and its diff reviewed) with
//! `KILN_BLESS=1 cargo test -p kiln-testsuite --test conformance`.

use kiln_driver::conformance::{run_suite, run_suite_with, Status, Summary};
use kiln_testsuite::suite::onnx_node_suite;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[test]
fn reference_interpreter_passes_every_listed_node_test() {
    let summary = run_suite(&onnx_node_suite(), None).expect("run the suite");
    assert_eq!(summary.cases.len(), 1653, "the onnx 1.20.0 node suite has 1653 cases");
    let listed = check_list(&summary, "ref.txt");
    assert!(listed >= 1250, "the expectation list must hold at least 1250 cases");
}

/// The node suite through the whole 910b path (optimized for the 910B, lowered to a GE graph,
/// encoded and decoded, run by the GE-graph simulator), against `conformance/910b-sim.txt`.
/// No case the interpreter passes may fail here: each either passes or names the op the 910b
/// lacks.
#[test]
fn the_910b_simulator_passes_every_listed_node_test() {
    let summary = run_suite_with(&onnx_node_suite(), None, &mut kiln_driver::sim::execute).expect("run the suite");
    let ref_text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance/ref.txt")).expect("ref.txt");
    let reference: BTreeSet<&str> = ref_text.lines().filter(|l| !l.is_empty()).collect();
    let wrong: Vec<String> = summary
        .cases
        .iter()
        .filter(|c| reference.contains(c.name.as_str()) && c.status == Status::Failed)
        .map(|c| format!("{}: {}", c.name, c.detail))
        .collect();
    assert!(wrong.is_empty(), "{} cases the interpreter passes fail on 910b-sim:\n{}", wrong.len(), wrong.join("\n"));
    check_list(&summary, "910b-sim.txt");
    // The target's bar: at least 80% of what the interpreter passes.
    let passing = summary.cases.iter().filter(|c| reference.contains(c.name.as_str()) && c.status == Status::Passed).count();
    assert!(passing * 5 >= reference.len() * 4, "910b-sim passes {passing} of the interpreter's {} cases, under 80%", reference.len());
}

/// Checks `summary` against the expectation list `conformance/NAME` (or rewrites the list under
/// KILN_BLESS); returns the number of listed cases.
fn check_list(summary: &Summary, name: &str) -> usize {
    let passing: BTreeSet<&str> = summary.cases.iter().filter(|c| c.status == Status::Passed).map(|c| c.name.as_str()).collect();
    let list = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance").join(name);
    if std::env::var_os("KILN_BLESS").is_some() {
        let text: String = passing.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(&list, text).expect("write expectation list");
        println!("blessed {} passing cases in {name} ({summary})", passing.len());
        return passing.len();
    }
    let expected_text = std::fs::read_to_string(&list).unwrap_or_else(|e| panic!("read testsuite/conformance/{name}: {e}"));
    let expected: BTreeSet<&str> = expected_text.lines().filter(|l| !l.is_empty()).collect();
    let regressed: Vec<String> = summary
        .cases
        .iter()
        .filter(|c| expected.contains(c.name.as_str()) && c.status != Status::Passed)
        .map(|c| format!("{} ({:?}): {}", c.name, c.status, c.detail))
        .collect();
    let newly: Vec<&&str> = passing.iter().filter(|n| !expected.contains(**n)).collect();
    println!("{name}: {summary}; {} listed, {} newly passing", expected.len(), newly.len());
    assert!(regressed.is_empty(), "{} cases listed in {name} no longer pass:\n{}", regressed.len(), regressed.join("\n"));
    expected.len()
}
