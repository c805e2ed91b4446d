//! Initializers stored in external data files: read at their offset and length, sizes checked,
//! and locations that escape the model's directory refused.

use kiln_frontend::onnx::{import_file, ImportError, ImportOptions};
use kiln_ir::{interp, Data, Tensor};
use onnx_protobuf::{
    tensor_proto::DataLocation, tensor_proto::DataType, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, ValueInfoProto,
};
use std::path::PathBuf;

fn entry(k: &str, v: &str) -> StringStringEntryProto {
    let mut e = StringStringEntryProto::new();
    e.key = k.into();
    e.value = v.into();
    e
}

fn write_model(dir: &std::path::Path, location: &str, offset: usize, length: usize) -> PathBuf {
    let mut w = TensorProto::new();
    w.name = "w".into();
    w.dims = vec![3];
    w.data_type = DataType::FLOAT as i32;
    w.data_location = DataLocation::EXTERNAL.into();
    w.external_data = vec![entry("location", location), entry("offset", &offset.to_string()), entry("length", &length.to_string())];
    let mut n = NodeProto::new();
    n.name = "add".into();
    n.op_type = "Add".into();
    n.input = vec!["w".into(), "w".into()];
    n.output = vec!["y".into()];
    let mut out = ValueInfoProto::new();
    out.name = "y".into();
    let mut g = GraphProto::new();
    g.node = vec![n];
    g.initializer = vec![w];
    g.output = vec![out];
    let mut m = ModelProto::new();
    m.ir_version = 8;
    let mut op = OperatorSetIdProto::new();
    op.version = 17;
    m.opset_import = vec![op];
    m.graph = Some(g).into();
    let path = dir.join("model.onnx");
    std::fs::write(&path, m.write_to_bytes().expect("serialize")).expect("write model");
    path
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-ext-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

#[test]
fn external_initializer_is_read_at_its_offset() {
    let d = temp_dir("ok");
    let mut blob = vec![0xAAu8; 8];
    for v in [1.0f32, 2.5, -4.0] {
        blob.extend(v.to_le_bytes());
    }
    std::fs::write(d.join("weights.bin"), &blob).expect("write data");
    let path = write_model(&d, "weights.bin", 8, 12);
    let m = import_file(&path, &ImportOptions::default()).expect("import");
    let out = interp::run(&m.graph, vec![]).expect("run");
    assert_eq!(out[0], Tensor::new(vec![3], Data::F32(vec![2.0, 5.0, -8.0])).expect("tensor"));
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn external_data_out_of_range_or_escaping_is_refused() {
    let d = temp_dir("bad");
    std::fs::write(d.join("short.bin"), [0u8; 10]).expect("write data");
    let path = write_model(&d, "short.bin", 0, 12);
    match import_file(&path, &ImportOptions::default()) {
        Err(e @ ImportError::BadTensor { .. }) => assert!(e.to_string().contains("outside"), "{e}"),
        other => panic!("expected BadTensor, got {other:?}"),
    }
    let path = write_model(&d, "../etc/passwd", 0, 12);
    match import_file(&path, &ImportOptions::default()) {
        Err(e @ ImportError::BadTensor { .. }) => assert!(e.to_string().contains("escapes"), "{e}"),
        other => panic!("expected BadTensor, got {other:?}"),
    }
    let path = write_model(&d, "missing.bin", 0, 12);
    assert!(matches!(import_file(&path, &ImportOptions::default()), Err(ImportError::Io { .. })));
    let _ = std::fs::remove_dir_all(d);
}
