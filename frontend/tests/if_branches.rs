//! An If whose condition depends on a model input: when one branch does not fit the given
//! shapes (silero VAD's 8 kHz path at 16 kHz: onnxruntime runs only the branch taken), it
//! becomes a trap, an error when a run takes it that names the inputs the condition depends on
//! and the flag that binds them; with the input bound only the taken branch is read.

use kiln_frontend::onnx::{import_model, ImportOptions};
use kiln_ir::{interp, Tensor};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

fn node(op: &str, name: &str, ins: &[&str], out: &str) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        name: name.into(),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: vec![out.into()],
        ..Default::default()
    }
}

fn ints(name: &str, dims: &[i64], v: &[i64]) -> TensorProto {
    TensorProto { name: name.into(), data_type: 7, dims: dims.to_vec(), int64_data: v.to_vec(), ..Default::default() }
}

/// A value of element type `elem` (ONNX's numbering) and, when given, these dims.
fn value(name: &str, elem: i32, dims: Option<&[i64]>) -> ValueInfoProto {
    let shape = dims.map(|d| TensorShapeProto {
        dim: d.iter().map(|&n| Dimension { value: Some(dimension::Value::DimValue(n)), ..Default::default() }).collect(),
        ..Default::default()
    });
    let tensor = type_proto::Tensor { elem_type: elem, shape: shape.into(), ..Default::default() };
    let ty = TypeProto { value: Some(type_proto::Value::TensorType(tensor)), ..Default::default() };
    ValueInfoProto { name: name.into(), type_: Some(ty).into(), ..Default::default() }
}

fn branch(name: &str, g: GraphProto) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::GRAPH.into(), g: Some(g).into(), ..Default::default() }
}

/// y = If(sr == 16000, then: Identity(x), else: Reshape(x, [3, 3])) with x: f32[1, 4]; the
/// else branch cannot reshape 4 elements to 9.
fn model() -> ModelProto {
    let then_g = GraphProto {
        name: "then".into(),
        node: vec![node("Identity", "keep", &["x"], "t")],
        output: vec![value("t", 1, None)],
        ..Default::default()
    };
    let else_g = GraphProto {
        name: "else".into(),
        initializer: vec![ints("shape", &[2], &[3, 3])],
        node: vec![node("Reshape", "to_3x3", &["x", "shape"], "e")],
        output: vec![value("e", 1, None)],
        ..Default::default()
    };
    let mut ifn = node("If", "by_rate", &["cond"], "y");
    ifn.attribute = vec![branch("then_branch", then_g), branch("else_branch", else_g)];
    let g = GraphProto {
        name: "switch".into(),
        initializer: vec![ints("rate", &[], &[16000])],
        node: vec![node("Equal", "is_16k", &["sr", "rate"], "cond"), ifn],
        input: vec![value("sr", 7, Some(&[])), value("x", 1, Some(&[1, 4]))],
        output: vec![value("y", 1, None)],
        ..Default::default()
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17, ..Default::default() }],
        graph: Some(g).into(),
        ..Default::default()
    }
}

#[test]
fn an_if_on_an_input_whose_other_branch_does_not_fit_traps_when_that_branch_is_taken() {
    let model = model();
    let m = import_model(&model, None, &ImportOptions::default()).expect("the else branch becomes a trap");
    let x = Tensor::from_f32s(vec![1, 4], vec![1.0, -2.0, 3.5, 0.25]).expect("x");
    let y = interp::run(&m.graph, vec![Tensor::scalar_i64(16000), x.clone()]).expect("the then branch runs");
    assert_eq!(y[0].to_f64(), x.to_f64());
    assert_eq!(
        m.graph.value(m.graph.outputs[0]).ty,
        kiln_ir::TensorType::fixed(kiln_ir::DType::F32, &[1, 4]),
        "typed as the branch that imports"
    );
    let e = interp::run(&m.graph, vec![Tensor::scalar_i64(8000), x.clone()]).expect_err("the else branch is taken").to_string();
    assert!(e.contains("by_rate") && e.contains("else branch") && e.contains("to_3x3") && e.contains("--input-value sr="), "{e}");
    // The text form keeps the trap.
    let text = kiln_ir::text::print(&m.graph);
    let weights = m.graph.consts.iter().map(|(&id, t)| (m.graph.value(id).name.clone(), t.clone())).collect();
    let back = kiln_ir::text::parse(&text, &weights).expect("parses");
    assert_eq!(kiln_ir::text::print(&back), text);
}

#[test]
fn with_the_input_bound_only_the_taken_branch_is_read() {
    let model = model();
    let opts = ImportOptions { input_values: [("sr".to_string(), Tensor::scalar_i64(16000))].into(), ..Default::default() };
    let m = import_model(&model, None, &opts).expect("only the taken branch is read");
    assert!(!kiln_ir::text::print(&m.graph).contains("Trap"));
    let x = Tensor::from_f32s(vec![1, 4], vec![1.0, -2.0, 3.5, 0.25]).expect("x");
    let y = interp::run(&m.graph, vec![x.clone()]).expect("runs");
    assert_eq!(y[0].to_f64(), x.to_f64());
}

/// A branch that uses an op kiln lacks is still an import error (not a trap: kiln could not run
/// it even when taken), naming the input to bind so that only the other branch is read.
#[test]
fn a_branch_with_an_op_kiln_lacks_is_an_import_error_naming_the_input_to_bind() {
    let mut model = model();
    let g = model.graph.as_mut().expect("graph");
    let ifn = g.node.iter_mut().find(|n| n.op_type == "If").expect("If");
    let else_g = ifn.attribute[1].g.as_mut().expect("else");
    else_g.node[0].op_type = "NoSuchOp".into();
    let e = import_model(&model, None, &ImportOptions::default()).map(|_| ()).expect_err("unsupported").to_string();
    assert!(e.contains("NoSuchOp") && e.contains("`sr`") && e.contains("--input-value sr="), "{e}");
}
