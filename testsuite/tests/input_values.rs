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

/// y = If(c, then: Identity(x), else: a trap), as the importer makes an If on an input whose
/// else branch does not fit the given shapes: a target that cannot run the If refuses it with
/// the trap's message, which says how to bind the condition.
#[test]
fn a_target_refuses_an_if_with_a_trap_branch_with_the_traps_message() {
    use kiln_ir::{DType, Graph, TensorType};
    let ty = TensorType::fixed(DType::F32, &[1, 4]);
    let mut then_g = Graph::new("then");
    let x_in = then_g.add_input("x", ty.clone());
    let t = then_g.add_node("keep", Op::Identity {}, vec![Some(x_in)], &[Some("t".into())]).expect("identity")[0].expect("t");
    then_g.outputs = vec![t];
    let mut else_g = Graph::new("else");
    let message = "node `by_rate` (If): its else branch cannot be imported for the model's input shapes (...)".to_string();
    let trap = Op::Trap { message: message.clone(), dtype: DType::F32, dims: vec![1, 4] };
    let e = else_g.add_node("by_rate/else_trap0", trap, vec![], &[Some("e".into())]).expect("trap")[0].expect("e");
    else_g.outputs = vec![e];
    let mut g = Graph::new("switch");
    let c = g.add_input("c", TensorType::fixed(DType::Bool, &[]));
    let x = g.add_input("x", ty);
    let op = Op::If { then_branch: Box::new(then_g), else_branch: Box::new(else_g) };
    let y = g.add_node("by_rate", op, vec![Some(c), Some(x)], &[Some("y".into())]).expect("if")[0].expect("y");
    g.outputs = vec![y];
    let xs = kiln_ir::Tensor::from_f32s(vec![1, 4], vec![1.0, 2.0, 3.0, 4.0]).expect("x");
    let yes = kiln_ir::Tensor::new(vec![], kiln_ir::Data::Bool(vec![true])).expect("c");
    assert_eq!(interp::run(&g, vec![yes, xs.clone()]).expect("then runs")[0].to_f64(), xs.to_f64());
    let no = kiln_ir::Tensor::new(vec![], kiln_ir::Data::Bool(vec![false])).expect("c");
    let e = interp::run(&g, vec![no, xs]).expect_err("the trap is taken").to_string();
    assert!(e.contains(&message) && e.contains("this run took it"), "{e}");
    for target in [kiln_driver::Target::Sm90, kiln_driver::Target::Ascend910B] {
        let e = kiln_driver::optimize(&g, target, std::time::Instant::now())
            .map(|(g, _)| kiln_ir::text::print(&g))
            .expect_err("refused")
            .to_string();
        assert!(e.contains(&message), "{target}: {e}");
    }
}
