//! Print → parse → print round-trips the IR of every ONNX node-suite model that imports.

use kiln_frontend::onnx::{import_file, ImportOptions};
use kiln_testsuite::suite::onnx_node_suite;

#[test]
fn every_importable_suite_model_round_trips_through_text() {
    let suite = onnx_node_suite();
    let mut dirs: Vec<_> = std::fs::read_dir(&suite).expect("read suite").filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    let mut checked = 0;
    let mut failures = vec![];
    for d in dirs {
        let Ok(m) = import_file(&d.join("model.onnx"), &ImportOptions::default()) else { continue };
        let text = kiln_ir::text::print(&m.graph);
        match kiln_ir::text::parse(&text, &m.graph.weights_by_name()) {
            Ok(g) => {
                let again = kiln_ir::text::print(&g);
                if again != text {
                    failures.push(format!("{}: text differs after parse", d.display()));
                }
            }
            Err(e) => failures.push(format!("{}: {e}\n{text}", d.display())),
        }
        checked += 1;
    }
    assert!(checked > 1000, "only {checked} suite models imported");
    assert!(
        failures.is_empty(),
        "{} of {checked} failed:\n{}",
        failures.len(),
        failures.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
}
