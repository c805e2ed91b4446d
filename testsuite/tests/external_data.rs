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

/// `weight_sources` (what `--strip-weights` may reference): the model file's inline raw data
/// and the external file's range, each holding exactly the initializer's bytes.
#[test]
fn weight_sources_locate_inline_and_external_data() {
    let d = temp_dir("sources");
    let mut blob = vec![0xAAu8; 8];
    for v in [1.0f32, 2.5, -4.0] {
        blob.extend(v.to_le_bytes());
    }
    std::fs::write(d.join("weights.bin"), &blob).expect("write data");
    let path = write_model(&d, "weights.bin", 8, 12);
    // Add an inline initializer to the same model.
    let mut m = ModelProto::parse_from_bytes(&std::fs::read(&path).expect("read")).expect("parse");
    let mut inline = TensorProto::new();
    inline.name = "v".into();
    inline.dims = vec![2];
    inline.data_type = DataType::FLOAT as i32;
    inline.raw_data = [7.0f32, -0.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    m.graph.as_mut().expect("graph").initializer.push(inline.clone());
    let bytes = m.write_to_bytes().expect("serialize");
    std::fs::write(&path, &bytes).expect("write model");

    let sources = kiln_frontend::onnx::weight_sources(&path).expect("sources");
    assert_eq!(sources.len(), 2, "{sources:?}");
    let (model, ranges) = &sources[0];
    assert_eq!(ranges.len(), 1);
    let (o, l) = ranges[0];
    assert_eq!(&std::fs::read(model).expect("model")[o as usize..(o + l) as usize], inline.raw_data.as_slice());
    let (ext, ranges) = &sources[1];
    assert!(ext.ends_with("weights.bin"));
    assert_eq!(ranges, &vec![(8, 12)]);

    // A truncated model file is an error naming the offset, not a shorter list.
    std::fs::write(&path, &bytes[..bytes.len() - 3]).expect("write cut");
    let e = kiln_frontend::onnx::weight_sources(&path).expect_err("truncated").to_string();
    assert!(e.contains("offset"), "{e}");
    let _ = std::fs::remove_dir_all(d);
}
