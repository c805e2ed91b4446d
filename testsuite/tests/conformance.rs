//! The ONNX node suite on the reference interpreter, against the committed expectation list
//! `testsuite/conformance/ref.txt`. A listed case that no longer passes fails this test; a
//! newly passing case is reported so the list can be regenerated (and its diff reviewed) with
//! `KILN_BLESS=1 cargo test -p kiln-testsuite --test conformance`.

use kiln_testsuite::conformance::{run_suite, Status};
use kiln_testsuite::suite::onnx_node_suite;
use std::collections::BTreeSet;
use std::path::PathBuf;

#[test]
fn reference_interpreter_passes_every_listed_node_test() {
    let summary = run_suite(&onnx_node_suite(), None).expect("run the suite");
    assert_eq!(summary.cases.len(), 1653, "the onnx 1.20.0 node suite has 1653 cases");
    let passing: BTreeSet<&str> = summary.cases.iter().filter(|c| c.status == Status::Passed).map(|c| c.name.as_str()).collect();
    let list = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance/ref.txt");
    if std::env::var_os("KILN_BLESS").is_some() {
        let text: String = passing.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(&list, text).expect("write expectation list");
        println!("blessed {} passing cases ({summary})", passing.len());
        return;
    }
    let expected_text = std::fs::read_to_string(&list).expect("read testsuite/conformance/ref.txt");
    let expected: BTreeSet<&str> = expected_text.lines().filter(|l| !l.is_empty()).collect();
    let regressed: Vec<String> = summary
        .cases
        .iter()
        .filter(|c| expected.contains(c.name.as_str()) && c.status != Status::Passed)
        .map(|c| format!("{} ({:?}): {}", c.name, c.status, c.detail))
        .collect();
    let newly: Vec<&&str> = passing.iter().filter(|n| !expected.contains(**n)).collect();
    println!("{summary}; {} listed, {} newly passing", expected.len(), newly.len());
    assert!(regressed.is_empty(), "{} listed cases no longer pass:\n{}", regressed.len(), regressed.join("\n"));
    assert!(expected.len() >= 1250, "the expectation list must hold at least 1250 cases");
}
