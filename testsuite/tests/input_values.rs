//! `--input-value`: an input bound at compile time is a constant of the imported graph, so an
//! If on it imports only the branch taken (the other may not even type-check for the shapes
//! given), and the model's outputs keep their declared names.

use kiln_driver::{compare, conformance, Model, Shapes, Values};
use kiln_ir::{interp, Op};
use kiln_testsuite::suite::onnx_node_suite;

#[test]
fn a_bound_if_condition_imports_only_the_taken_branch() {
    let dir = onnx_node_suite().join("test_if");
    let (_, inputs, expected) = conformance::import_case(&dir).unwrap_or_else(|e| panic!("test_if: {e:?}"));
    let model = Model::Onnx(dir.join("model.onnx"));
    let values: Values = [("cond".to_string(), inputs[0].clone())].into();
    let g = model.load_with(&Shapes::new(), &values).expect("loads");
    assert!(g.inputs.is_empty(), "cond is a constant now");
    assert!(!g.nodes.iter().any(|n| matches!(n.op, Op::If { .. })), "{}", kiln_ir::text::print(&g));
    assert_eq!(g.value(g.outputs[0]).name, "res", "the output keeps its declared name");
    let out = interp::run(&g, vec![]).expect("runs");
    compare::check(&out[0], &expected[0]).expect("the ONNX suite's expected output");
}

#[test]
fn bound_values_are_checked_against_the_input() {
    let model = Model::Onnx(onnx_node_suite().join("test_if").join("model.onnx"));
    let bind = |t: kiln_ir::Tensor| -> String {
        let values: Values = [("cond".to_string(), t)].into();
        model.load_with(&Shapes::new(), &values).map(|_| ()).map_err(|e| kiln_driver::error_chain(&e)).expect_err("refused")
    };
    let half = kiln_ir::Tensor::new(vec![], kiln_ir::Data::F64(vec![0.5])).expect("tensor");
    assert!(bind(half).contains("do not convert exactly to the input's bool"));
    let two = kiln_ir::Tensor::new(vec![2], kiln_ir::Data::F64(vec![1.0, 0.0])).expect("tensor");
    let e = bind(two);
    assert!(e.contains("--input-value gives rank 1"), "the message names the flag the user gave: {e}");
    let values: Values =
        [("sample_rate".to_string(), kiln_ir::Tensor::new(vec![], kiln_ir::Data::I64(vec![16000])).expect("tensor"))].into();
    let e = model.load_with(&Shapes::new(), &values).map(|_| ()).map_err(|e| e.to_string()).expect_err("no such input");
    assert!(e.contains("no input named `sample_rate`") && e.contains("cond"), "{e}");
}
