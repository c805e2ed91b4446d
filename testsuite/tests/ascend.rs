//! The 910b target's GE graphs (graph.air). What these tests prove: the emitted bytes are a
//! `ge.proto.ModelDef` that an independent decoder (Python's protobuf over a schema written
//! from ../shared/ASCEND.md, `testsuite/ascend/decode_air.py`) reads into the same graph, and
//! GE's loader conventions hold (both checkers fail on graphs that break them). What they do
//! not prove: that CANN's ATC accepts the graph, or what the NPU computes; that needs CANN.

use kiln_ascend::bundle::{compile, Options};
use kiln_ascend::ge::proto::{attr_def::Value, ModelDef};
use kiln_frontend::onnx::{import_file, ImportOptions};
use kiln_target::Target;
use kiln_testsuite::optimizer;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(name).join("model.onnx")
}

/// The model imported with `shapes`, simplified and optimized for the 910b.
fn optimized(name: &str, shapes: &[(&str, Vec<usize>)]) -> kiln_ir::Graph {
    let opts = ImportOptions { input_shapes: shapes.iter().map(|(n, s)| (n.to_string(), s.clone())).collect() };
    let mut g = import_file(&golden(name), &opts).unwrap_or_else(|e| panic!("{name}: {e}")).graph;
    kiln_passes::simplify(&mut g).expect("simplifies");
    optimizer::optimize(&g, Target::Ascend910B, std::time::Instant::now()).expect("optimizes").0
}

/// Runs the independent decoder on `air`: its JSON summary, or its stderr.
fn decode(air: &[u8], tag: &str) -> Result<serde_json::Value, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = root.join(".venv/bin/python");
    assert!(py.exists(), "{} is missing: run tools/ensure-deps.sh --python (the README's test command does)", py.display());
    let f = std::env::temp_dir().join(format!("kiln-air-{tag}-{}.air", std::process::id()));
    std::fs::write(&f, air).expect("write");
    let o = std::process::Command::new(py).arg(root.join("testsuite/ascend/decode_air.py")).arg(&f).output().expect("python runs");
    let _ = std::fs::remove_file(&f);
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr).into_owned());
    }
    serde_json::from_slice(&o.stdout).map_err(|e| format!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

fn op_counts(m: &ModelDef) -> BTreeMap<String, u64> {
    let mut c = BTreeMap::new();
    for op in &m.graph[0].op {
        *c.entry(op.r#type.clone()).or_default() += 1;
    }
    c
}

/// resnet18 and mobilenet_v2 compile for the 910b into CANN built-ins only (Conv2D for every
/// convolution, with its bias; one TransData each way around the NC1HWC0 convolutions); the
/// independent decoder reads the same ops, inputs, outputs and weight bytes, and finds every
/// convention kept.
#[test]
fn cnn_graphs_decode_independently_with_every_convention() {
    for name in ["resnet18_narrow", "mobilenet_v2_narrow"] {
        let g = optimized(name, &[]);
        let b = compile(&g, &Options::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let counts = op_counts(&b.model);
        let convs = g.nodes.iter().filter(|n| matches!(n.op, kiln_ir::Op::Conv { .. } | kiln_ir::Op::ConvFused { .. })).count() as u64;
        assert_eq!(counts.get("Conv2D"), Some(&convs), "{name}: one Conv2D per convolution");
        assert_eq!(counts.get("TransData"), Some(&2), "{name}: into NC1HWC0 once, out once");
        let summary = decode(&b.air(), name).unwrap_or_else(|e| panic!("{name}: the independent decoder rejects the graph:\n{e}"));
        let py_counts: BTreeMap<String, u64> = serde_json::from_value(summary["ops"].clone()).expect("counts");
        assert_eq!(py_counts, counts, "{name}: the decoders disagree on the ops");
        let weights: usize = g.consts.values().map(|t| t.data().to_le_bytes().map_or(0, |b| b.len())).sum();
        let const_bytes = summary["const_bytes"].as_u64().expect("bytes") as usize;
        // Every weight is a Const (the lowering adds small ones: shapes, axes, clip bounds).
        assert!(const_bytes >= weights && const_bytes < weights + 4096, "{name}: {const_bytes} constant bytes for {weights} weight bytes");
        assert_eq!(summary["inputs"], serde_json::json!(["input"]), "{name}");
        println!("{name}: {} GE ops {counts:?}, {const_bytes} constant bytes", b.model.graph[0].op.len());
    }
}

/// Each convention, broken in an emitted graph, is reported by kiln's checker and by the
/// independent decoder.
#[test]
fn broken_conventions_are_caught_by_both_checkers() {
    let g = optimized("resnet18_narrow", &[]);
    let good = compile(&g, &Options::default()).expect("compiles").model;
    type Break = fn(&mut ModelDef);
    let breaks: [(&str, &str, Break); 5] = [
        ("list attr `strides` has no val_type", "has val_type 0", |m| {
            let op = m.graph[0].op.iter_mut().find(|o| o.r#type == "Conv2D").expect("a Conv2D");
            if let Some(Value::List(l)) = op.attr.get_mut("strides").and_then(|a| a.value.as_mut()) {
                l.val_type = 0;
            }
        }),
        ("is used twice", "duplicate op name", |m| {
            let name = m.graph[0].op[1].name.clone();
            m.graph[0].op[2].name = name;
        }),
        ("needs an `index`", "Data indices", |m| {
            m.graph[0].op[0].attr.remove("index");
        }),
        ("not an output of an earlier op", "not an earlier op's output", |m| {
            let op = m.graph[0].op.iter_mut().find(|o| o.r#type == "Relu").expect("a Relu");
            op.input[0] = "nowhere:0".into();
        }),
        ("NetOutput ops, not one", "NetOutput ops", |m| {
            m.graph[0].op.retain(|o| o.r#type != "NetOutput");
        }),
    ];
    for (rust, python, f) in breaks {
        let mut m = good.clone();
        f(&mut m);
        let errs = kiln_ascend::ge::conventions::check(&m).expect_err("kiln's checker must fail").join("\n");
        assert!(errs.contains(rust), "kiln's checker, for `{rust}`:\n{errs}");
        let e = decode(&prost::Message::encode_to_vec(&m), "broken").expect_err("the independent decoder must fail");
        assert!(e.contains(python), "the independent decoder, for `{python}`:\n{e}");
    }
}

/// Compiling a model whose ops have no mapping yet fails, naming each node and op.
#[test]
fn unmapped_ops_are_listed_by_node() {
    let g = optimized("llama_tiny", &[("input_ids", vec![1, 16])]);
    let e = compile(&g, &Options::default()).expect_err("RotaryEmbedding is not mapped yet").to_string();
    let rotary = g.nodes.iter().filter(|n| matches!(n.op, kiln_ir::Op::RotaryEmbedding { .. })).count();
    assert!(rotary > 1 && e.matches("(RotaryEmbedding)").count() == rotary, "{e}");
}

/// The bundle's files: the graph, its readable dump, the manifest and the ATC script with the
/// precision mode `--precision` asks for.
#[test]
fn bundles_hold_graph_text_manifest_and_build_script() {
    let g = optimized("resnet18_narrow", &[]);
    let dir = std::env::temp_dir().join(format!("kiln-bundle-{}", std::process::id()));
    for (precision, mode) in [(None, "must_keep_origin_dtype"), (Some(kiln_ir::DType::F16), "force_fp16")] {
        let b = compile(&g, &Options { precision }).expect("compiles");
        b.write(&dir).expect("writes");
        let air = std::fs::read(dir.join("graph.air")).expect("air");
        let back = <ModelDef as prost::Message>::decode(air.as_slice()).expect("decodes");
        assert_eq!(back, b.model);
        let text = std::fs::read_to_string(dir.join("graph.txt")).expect("text");
        assert!(text.contains("= Conv2D(x=") && text.contains("NC1HWC0 (origin NCHW[1,8,16,16])"), "{text}");
        let script = std::fs::read_to_string(dir.join("build.sh")).expect("script");
        assert!(script.contains("atc --framework=1 --model=graph.air") && script.contains(&format!("--precision_mode={mode}")), "{script}");
        let m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).expect("manifest")).expect("json");
        assert_eq!(m["inputs"][0]["shape"], serde_json::json!([1, 3, 64, 64]));
        assert_eq!(m["precision_mode"], mode);
        let conv = m["ops"].as_array().expect("ops").iter().find(|o| o["kiln"] == "ConvFused").expect("ConvFused");
        assert!(conv["cann"].as_array().expect("cann").contains(&serde_json::json!("Conv2D")));
    }
    let _ = std::fs::remove_dir_all(Path::new(&dir));
}
