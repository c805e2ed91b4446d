//! Bad models and bad run inputs: each gives the documented error, naming what is wrong,
//! and never panics.

use kiln_frontend::onnx::{import_bytes, ImportError, ImportOptions};
use kiln_ir::{interp, Data, Tensor};
use onnx_protobuf::{
    tensor_proto::DataType, type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for &d in dims {
        let mut dim = onnx_protobuf::tensor_shape_proto::Dimension::new();
        dim.set_dim_value(d);
        shape.dim.push(dim);
    }
    let mut tt = type_proto::Tensor::new();
    tt.elem_type = DataType::FLOAT as i32;
    tt.shape = Some(shape).into();
    let mut tp = TypeProto::new();
    tp.set_tensor_type(tt);
    let mut vi = ValueInfoProto::new();
    vi.name = name.into();
    vi.type_ = Some(tp).into();
    vi
}

fn node(name: &str, op: &str, ins: &[&str], outs: &[&str]) -> NodeProto {
    let mut n = NodeProto::new();
    n.name = name.into();
    n.op_type = op.into();
    n.input = ins.iter().map(|s| s.to_string()).collect();
    n.output = outs.iter().map(|s| s.to_string()).collect();
    n
}

fn model(nodes: Vec<NodeProto>, inputs: Vec<ValueInfoProto>, outputs: &[&str], inits: Vec<TensorProto>) -> Vec<u8> {
    let mut g = GraphProto::new();
    g.name = "bad".into();
    g.node = nodes;
    g.input = inputs;
    g.output = outputs.iter().map(|o| value_info(o, &[])).collect();
    g.initializer = inits;
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut op = OperatorSetIdProto::new();
    op.version = 17;
    m.opset_import.push(op);
    m.graph = Some(g).into();
    m.write_to_bytes().expect("serialize")
}

fn import(bytes: &[u8]) -> Result<kiln_frontend::onnx::Model, ImportError> {
    import_bytes(bytes, None, &ImportOptions::default())
}

fn relu_model() -> Vec<u8> {
    model(vec![node("r", "Relu", &["x"], &["y"])], vec![value_info("x", &[2, 3])], &["y"], vec![])
}

#[test]
fn truncated_protobuf_is_a_parse_error() {
    let bytes = relu_model();
    // A cut inside the graph (a length-delimited field) is malformed protobuf.
    for cut in [bytes.len() - 1, bytes.len() - 3] {
        match import(&bytes[..cut]) {
            Err(ImportError::Parse(m)) => assert!(!m.is_empty()),
            other => panic!("cut at {cut}: expected a parse error, got {other:?}"),
        }
    }
    // Any other prefix may parse as a smaller message; it must still be rejected cleanly.
    for cut in 0..bytes.len() {
        assert!(import(&bytes[..cut]).is_err(), "prefix of {cut} bytes was accepted");
    }
    assert!(import(&bytes).is_ok(), "the untruncated model imports");
}

#[test]
fn wrong_initializer_size_names_the_tensor() {
    let mut w = TensorProto::new();
    w.name = "w".into();
    w.dims = vec![2, 3];
    w.data_type = DataType::FLOAT as i32;
    w.float_data = vec![1.0; 5];
    let bytes = model(vec![node("add", "Add", &["x", "w"], &["y"])], vec![value_info("x", &[2, 3])], &["y"], vec![w]);
    match import(&bytes) {
        Err(e @ ImportError::BadTensor { .. }) => {
            let s = e.to_string();
            assert!(s.contains("`w`") && s.contains("5 values") && s.contains('6'), "{s}");
        }
        other => panic!("expected BadTensor, got {other:?}"),
    }
    let mut raw = TensorProto::new();
    raw.name = "r".into();
    raw.dims = vec![4];
    raw.data_type = DataType::FLOAT as i32;
    raw.raw_data = vec![0; 15];
    let bytes = model(vec![node("add", "Add", &["x", "r"], &["y"])], vec![value_info("x", &[4])], &["y"], vec![raw]);
    assert!(matches!(import(&bytes), Err(ImportError::BadTensor { name, .. }) if name == "r"));
}

#[test]
fn missing_initializer_names_node_and_value() {
    let bytes = model(vec![node("mm", "MatMul", &["x", "weights"], &["y"])], vec![value_info("x", &[2, 3])], &["y"], vec![]);
    match import(&bytes) {
        Err(ImportError::MissingValue { node, op_type, name }) => {
            assert_eq!((node.as_str(), op_type.as_str(), name.as_str()), ("mm", "MatMul", "weights"))
        }
        other => panic!("expected MissingValue, got {other:?}"),
    }
}

#[test]
fn cyclic_graph_is_reported() {
    let bytes =
        model(vec![node("a", "Add", &["x", "c"], &["b"]), node("b", "Relu", &["b"], &["c"])], vec![value_info("x", &[2])], &["c"], vec![]);
    match import(&bytes) {
        Err(ImportError::Cycle(n)) => assert!(n == "a" || n == "b"),
        other => panic!("expected Cycle, got {other:?}"),
    }
}

#[test]
fn shape_mismatch_names_the_node() {
    let bytes =
        model(vec![node("bad_add", "Add", &["x", "z"], &["y"])], vec![value_info("x", &[2, 3]), value_info("z", &[4])], &["y"], vec![]);
    match import(&bytes) {
        Err(e @ ImportError::InvalidNode { .. }) => {
            let s = e.to_string();
            assert!(s.contains("bad_add") && s.contains("Add") && s.contains("broadcast"), "{s}");
        }
        other => panic!("expected InvalidNode, got {other:?}"),
    }
}

#[test]
fn every_unknown_op_is_listed_at_once() {
    let bytes = model(
        vec![node("f1", "FancyOp", &["x"], &["a"]), node("r", "Relu", &["a"], &["b"]), node("f2", "OtherOp", &["x"], &["c"])],
        vec![value_info("x", &[2])],
        &["b", "c"],
        vec![],
    );
    match import(&bytes) {
        Err(e @ ImportError::Unsupported(_)) => {
            let ImportError::Unsupported(list) = &e else { unreachable!() };
            let ops: Vec<&str> = list.iter().map(|u| u.op_type.as_str()).collect();
            assert_eq!(ops, ["FancyOp", "OtherOp"]);
            let s = e.to_string();
            assert!(s.contains("f1") && s.contains("f2") && s.contains("opset 17") && s.contains("ai.onnx"), "{s}");
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn unsupported_attribute_value_names_the_attribute() {
    let mut cast = node("to_string", "Cast", &["x"], &["y"]);
    let mut to = AttributeProto::new();
    to.name = "to".into();
    to.type_ = onnx_protobuf::attribute_proto::AttributeType::INT.into();
    to.i = DataType::STRING as i64;
    cast.attribute.push(to);
    let bytes = model(vec![cast], vec![value_info("x", &[2])], &["y"], vec![]);
    match import(&bytes) {
        Err(ImportError::Unsupported(list)) => {
            assert_eq!(list.len(), 1);
            assert_eq!(list[0].node, "to_string");
            assert!(list[0].reason.contains("string"), "{}", list[0].reason);
        }
        other => panic!("expected Unsupported, got {other:?}"),
    }
    let mut d2s = node("d2s", "DepthToSpace", &["x"], &["y"]);
    let mut mode = AttributeProto::new();
    mode.name = "mode".into();
    mode.type_ = onnx_protobuf::attribute_proto::AttributeType::STRING.into();
    mode.s = b"DIAGONAL".to_vec();
    d2s.attribute.push(mode);
    let bytes = model(vec![d2s], vec![value_info("x", &[1, 4, 2, 2])], &["y"], vec![]);
    match import(&bytes) {
        Err(ImportError::Unsupported(list)) => assert!(list[0].reason.contains("DIAGONAL"), "{}", list[0].reason),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn wrong_run_input_dtype_or_shape_is_an_error() {
    let g = import(&relu_model()).expect("import").graph;
    let ok = Tensor::new(vec![2, 3], Data::F32(vec![0.0; 6])).expect("tensor");
    assert!(interp::run(&g, vec![ok]).is_ok());
    let wrong_dtype = Tensor::new(vec![2, 3], Data::I64(vec![0; 6])).expect("tensor");
    match interp::run(&g, vec![wrong_dtype]) {
        Err(e @ interp::RunError::InputDType { .. }) => assert!(e.to_string().contains("`x`"), "{e}"),
        other => panic!("expected InputDType, got {other:?}"),
    }
    let wrong_shape = Tensor::new(vec![3, 2], Data::F32(vec![0.0; 6])).expect("tensor");
    assert!(matches!(interp::run(&g, vec![wrong_shape]), Err(interp::RunError::InputShape { name, .. }) if name == "x"));
    assert!(matches!(interp::run(&g, vec![]), Err(interp::RunError::InputCount { expected: 1, got: 0 })));
}

#[test]
fn garbage_bytes_never_panic() {
    // Deterministic pseudo-random mutations of a valid model: any result but a panic is fine.
    let base = relu_model();
    let mut state = 0x2545F4914F6CDD1Du64;
    for _ in 0..2000 {
        let mut b = base.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state as usize) % b.len();
            b[i] = (state >> 32) as u8;
        }
        if let Ok(m) = import(&b) {
            let _ = kiln_ir::verify(&m.graph);
        }
    }
}

#[test]
fn an_input_too_large_for_any_tensor_is_refused_by_name() {
    // 2^40 x 2^40 overflows the element count; 2^32 alone exceeds the 2^31 limit.
    for dims in [vec![1i64 << 40, 1 << 40], vec![1 << 32]] {
        let bytes = model(vec![node("r", "Relu", &["x"], &["y"])], vec![value_info("x", &dims)], &["y"], vec![]);
        match import(&bytes) {
            Err(ImportError::BadInput { name, message }) => {
                assert_eq!(name, "x");
                assert!(message.contains("2^31"), "{message}");
            }
            other => panic!("{dims:?}: expected BadInput, got {other:?}"),
        }
    }
}

#[test]
fn gemm_with_mismatched_inner_dims_or_dtypes_is_an_import_error() {
    let gemm = |b_dims: &[i64]| {
        model(vec![node("g", "Gemm", &["a", "b"], &["y"])], vec![value_info("a", &[2, 3]), value_info("b", b_dims)], &["y"], vec![])
    };
    assert!(import(&gemm(&[3, 4])).is_ok());
    match import(&gemm(&[5, 4])) {
        Err(e) => assert!(e.to_string().contains("inner dims differ"), "{e}"),
        Ok(_) => panic!("Gemm [2,3] x [5,4] was accepted"),
    }
}
