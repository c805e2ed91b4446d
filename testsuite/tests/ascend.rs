//! The 910b target's GE graphs (graph.air). What these tests prove: the emitted bytes are a
//! `ge.proto.ModelDef` that an independent decoder (Python's protobuf over a schema written
//! from ../shared/ASCEND.md, `testsuite/ascend/decode_air.py`) reads into the same graph, and
//! GE's loader conventions hold (both checkers fail on graphs that break them). What they do
//! not prove: that CANN's ATC accepts the graph, or what the NPU computes; that needs CANN.

use kiln_ascend::bundle::{compile, Options};
use kiln_ascend::ge::proto::{attr_def::Value, ModelDef};
use kiln_ascend::sim;
use kiln_driver::Target;
use kiln_frontend::onnx::{import_file, ImportOptions};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(name).join("model.onnx")
}

/// The model imported with `shapes`, simplified and optimized for the 910b.
fn optimized(name: &str, shapes: &[(&str, Vec<usize>)]) -> kiln_ir::Graph {
    let opts = ImportOptions { input_shapes: shapes.iter().map(|(n, s)| (n.to_string(), s.clone())).collect(), ..Default::default() };
    let mut g = import_file(&golden(name), &opts).unwrap_or_else(|e| panic!("{name}: {e}")).graph;
    kiln_passes::simplify(&mut g).expect("simplifies");
    kiln_driver::optimize(&g, Target::Ascend910B, std::time::Instant::now()).expect("optimizes").0
}

/// Runs the independent decoder on `air`: its JSON summary, or its stderr.
fn decode(air: &[u8], tag: &str) -> Result<serde_json::Value, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = root.join(".venv/bin/python");
    assert!(py.exists(), "{} is missing: run tools/ensure-deps.sh --python (the README's test command does)", py.display());
    // Unique per call: tests run in parallel threads of one process and decode the same models.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let f = std::env::temp_dir().join(format!("kiln-air-{tag}-{}-{call}.air", std::process::id()));
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

/// Compiling a model whose ops have no mapping yet fails, naming each node and op, the nodes
/// after an unmapped one included.
#[test]
fn unmapped_ops_are_listed_by_node() {
    let src = r#"graph "g" (%x: f32[4,4]) {
  %d = Det[first](%x) : f32[]
  %s = Mul[scaled](%x, %d) : f32[4,4]
  %t = Einsum[second](%s) {equation="ij->ji"} : f32[4,4]
  %y = Add[mapped](%t, %x) : f32[4,4]
  return %y
}
"#;
    let g = kiln_ir::text::parse(src, &std::collections::HashMap::new()).expect("parses");
    let e = compile(&g, &Options::default()).expect_err("Det and Einsum are not mapped").to_string();
    assert!(e.contains("node `first` (Det)") && e.contains("node `second` (Einsum)") && !e.contains("`mapped`"), "{e}");
    assert!(e.starts_with("2 op(s) have no Ascend lowering"), "{e}");
}

/// The golden model's inputs (from its .npy files), the source graph imported with their
/// shapes, and the graph optimized for the 910b.
fn golden_case(name: &str) -> (Vec<kiln_ir::Tensor>, kiln_ir::Graph, kiln_ir::Graph) {
    let dir = golden(name).parent().expect("dir").to_path_buf();
    let mut named = vec![];
    for e in std::fs::read_dir(&dir).expect("golden dir") {
        let p = e.expect("entry").path();
        let file = p.file_name().expect("name").to_string_lossy().into_owned();
        if let Some(n) = file.strip_prefix("input_").and_then(|f| f.strip_suffix(".npy")) {
            let t = kiln_driver::npy::read(&std::fs::read(&p).expect("npy")).expect("reads");
            named.push((n.to_string(), t));
        }
    }
    let shapes: Vec<(&str, Vec<usize>)> = named.iter().map(|(n, t)| (n.as_str(), t.dims().to_vec())).collect();
    let opts = ImportOptions { input_shapes: shapes.iter().map(|(n, s)| (n.to_string(), s.clone())).collect(), ..Default::default() };
    let src = import_file(&golden(name), &opts).unwrap_or_else(|e| panic!("{name}: {e}")).graph;
    let inputs = src
        .inputs
        .iter()
        .map(|&v| named.iter().find(|(n, _)| *n == src.value(v).name).map(|(_, t)| t.clone()).expect("an input file per input"))
        .collect();
    (inputs, src.clone(), optimized(name, &shapes))
}

/// Largest |a − b| over the largest |b|: the error relative to the output's scale.
fn scaled_error(got: &kiln_ir::Tensor, want: &kiln_ir::Tensor) -> f64 {
    let (g, w) = (got.to_f64(), want.to_f64());
    assert_eq!(g.len(), w.len());
    let scale = w.iter().fold(0f64, |m, x| m.max(x.abs()));
    g.iter().zip(&w).fold(0f64, |m, (a, b)| m.max((a - b).abs())) / scale
}

/// Every golden model compiles for the 910b into CANN built-ins (transformers through
/// FlashAttentionScore and the norm built-ins, no decomposed softmax; CNNs through Conv2D) and
/// AscendC kernels for the fused elementwise programs no built-in computes in one op; the
/// independent decoder accepts each graph.air; and the simulator, executing the decoded graph by
/// each CANN op's documented semantics and each kernel on the AscendC CPU model, reproduces the
/// interpreter on the source model: fp32 within 1e-4 of the output's scale, and compiled with
/// `--precision fp16` and run as ATC's force_fp16 would (every fp32 value held in fp16), cosine
/// ≥ 0.999.
#[test]
fn every_golden_model_simulates_to_the_interpreters_outputs() {
    let models = ["resnet18_narrow", "mobilenet_v2_narrow", "bert_tiny", "gpt2_tiny", "llama_tiny", "qwen2_tiny"];
    for name in models {
        let (inputs, src, g) = golden_case(name);
        let want = kiln_ir::interp::run(&src, inputs.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let b = compile(&g, &Options::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let counts = op_counts(&b.model);
        if name.ends_with("_narrow") {
            assert!(counts.contains_key("Conv2D"), "{name}: {counts:?}");
        } else {
            let norm = counts.get("LayerNorm").or(counts.get("RmsNorm")).copied().unwrap_or(0);
            assert!(counts.get("FlashAttentionScore") == Some(&2) && norm > 0, "{name}: {counts:?}");
            assert!(!counts.contains_key("SoftmaxV2"), "{name}: attention is decomposed: {counts:?}");
        }
        if name.starts_with("llama") || name.starts_with("qwen2") {
            assert_eq!(counts.get("RotaryMul"), Some(&4), "{name}: {counts:?}");
        }
        let air = b.air();
        decode(&air, name).unwrap_or_else(|e| panic!("{name}: the independent decoder rejects the graph:\n{e}"));
        let model = <ModelDef as prost::Message>::decode(air.as_slice()).expect("decodes");
        // The fused elementwise programs no built-in computes are AscendC kernels, run on the
        // CPU model of the AscendC API.
        let custom = counts.keys().filter(|t| t.starts_with("KilnFused")).count();
        assert_eq!(custom, b.kernels.len(), "{name}: {counts:?}");
        // bert's bias + GELU and the SwiGLU products of llama and qwen2 (the CNNs' epilogues
        // stay with Conv2D, gpt2's are one op each).
        if matches!(name, "bert_tiny" | "llama_tiny" | "qwen2_tiny") {
            assert!(custom > 0, "{name}: no AscendC kernel: {counts:?}");
        }
        println!("{name}: {custom} AscendC kernel(s), {} GE ops", b.model.graph[0].op.len());
        let ops = sim::custom_ops(&b).expect("writes ops/");
        let opts = sim::Options { force_fp16: false, custom: ops.as_ref().map(|(c, _)| c), weights_dir: None };
        let got = sim::run_with(&model, &inputs, opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), want.len(), "{name}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.dims(), w.dims(), "{name}");
            let err = scaled_error(g, w);
            assert!(err <= 1e-4, "{name}: fp32 error {err:.3e} of the output's scale");
            println!("{name}: fp32 max error {err:.2e} of scale");
        }
        // `--precision fp16`: the same graph with its constants kept within fp16's range.
        let b16 = compile(&g, &Options { precision: Some(kiln_ir::DType::F16), external_weights: false }).expect("compiles");
        let ops16 = sim::custom_ops(&b16).expect("writes ops/");
        let half = sim::run_with(
            &b16.model,
            &inputs,
            sim::Options { force_fp16: true, custom: ops16.as_ref().map(|(c, _)| c), weights_dir: None },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        for (g, w) in half.iter().zip(&want) {
            let c = kiln_driver::compare::errors(&g.to_f64(), &w.to_f64()).cosine;
            assert!(c >= 0.999, "{name}: force_fp16 cosine {c}");
            println!("{name}: force_fp16 cosine {c:.7}");
        }
    }
}

/// A graph that misstates what its ops compute is caught: each mutation of a correct graph
/// makes the simulator fail naming the op, or its outputs leave the interpreter's.
#[test]
fn the_simulator_catches_graphs_that_misstate_their_ops() {
    let (inputs, src, g) = golden_case("resnet18_narrow");
    let good = compile(&g, &Options::default()).expect("compiles").model;
    let want = kiln_ir::interp::run(&src, inputs.clone()).expect("runs");
    let first = |m: &mut ModelDef, ty: &str| -> usize { m.graph[0].op.iter().position(|o| o.r#type == ty).expect("has the op") };
    let set = |m: &mut ModelDef, i: usize, attr: &str, v: Value| {
        m.graph[0].op[i].attr.get_mut(attr).expect("has the attr").value = Some(v);
    };
    let list = |v: Vec<i64>| Value::List(kiln_ascend::ge::proto::ListValue { i: v, val_type: 2, ..Default::default() });
    type Mutation = Box<dyn Fn(&mut ModelDef)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "Conv2D pads in (top, left, bottom, right) order",
            Box::new(move |m| {
                let i = m.graph[0].op.iter().position(|o| o.r#type == "Conv2D" && o.name.contains("stem")).expect("stem conv");
                set(m, i, "pads", list(vec![3, 0, 3, 0]));
            }),
            "declares",
        ),
        (
            "a missing attribute",
            Box::new(move |m| {
                let i = first(m, "MaxPoolV3");
                m.graph[0].op[i].attr.remove("ceil_mode");
            }),
            "attribute `ceil_mode` is missing",
        ),
        (
            "a TransData left out",
            Box::new(move |m| {
                let i = first(m, "TransData");
                let src = m.graph[0].op[i].input[0].clone();
                let me = format!("{}:0", m.graph[0].op[i].name);
                for op in &mut m.graph[0].op {
                    op.input.iter_mut().filter(|e| **e == me).for_each(|e| *e = src.clone());
                }
            }),
            "is described as",
        ),
    ];
    for (what, mutate, expect) in cases {
        let mut m = good.clone();
        mutate(&mut m);
        let e = sim::run(&m, &inputs).expect_err(what).to_string();
        assert!(e.contains(expect), "{what}: {e}");
    }
    // Same shapes, other numbers: a stride read as a dilation.
    let mut m = good.clone();
    let i = m.graph[0].op.iter().position(|o| o.r#type == "Conv2D" && o.attr.contains_key("dilations")).expect("conv");
    set(&mut m, i, "dilations", list(vec![1, 1, 2, 2]));
    match sim::run(&m, &inputs) {
        Err(e) => assert!(e.to_string().contains("Conv2D"), "{e}"),
        Ok(got) => assert!(scaled_error(&got[0], &want[0]) > 1e-3, "a dilated convolution computes what the model computes"),
    }
}

/// The bundle's files: the graph, its readable dump, the manifest and the ATC script with the
/// precision mode `--precision` asks for.
#[test]
fn bundles_hold_graph_text_manifest_and_build_script() {
    let g = optimized("resnet18_narrow", &[]);
    let dir = std::env::temp_dir().join(format!("kiln-bundle-{}", std::process::id()));
    for (precision, mode) in [(None, "must_keep_origin_dtype"), (Some(kiln_ir::DType::F16), "force_fp16")] {
        let b = compile(&g, &Options { precision, external_weights: false }).expect("compiles");
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

/// `--external-weights`: every constant of 4 KiB or more leaves graph.air for a file under
/// weights/ that a FileConstant op names; the graph still decodes independently with GE's
/// conventions, and the simulator, reading the files from the bundle, computes exactly what the
/// inline graph computes. A weight file of the wrong size is an error naming it.
#[test]
fn external_weights_are_files_that_file_constants_read() {
    let (inputs, _, g) = golden_case("bert_tiny");
    let inline = compile(&g, &Options::default()).expect("compiles");
    let external = compile(&g, &Options { external_weights: true, ..Options::default() }).expect("compiles");
    let dir = kiln_ascend::sim::cpu_model::TempDir::new("external-weights").expect("temp dir");
    external.write(&dir.0).expect("writes");
    let ops = &external.model.graph[0].op;
    let files = ops.iter().filter(|o| o.r#type == "FileConstant").count();
    assert!(files > 0 && files == external.weights.len(), "{files} FileConstant ops, {} files", external.weights.len());
    let big_inline = |m: &ModelDef| {
        m.graph[0]
            .op
            .iter()
            .filter(|o| o.r#type == "Const")
            .filter(|o| matches!(o.attr.get("value").and_then(|a| a.value.as_ref()), Some(Value::T(t)) if t.data.len() >= 4096))
            .count()
    };
    assert_eq!(big_inline(&external.model), 0);
    assert_eq!(big_inline(&inline.model), files, "each large constant became one file");
    let on_disk: usize = external.weights.iter().map(|(p, _)| std::fs::metadata(dir.0.join(p)).expect("weight file").len() as usize).sum();
    let moved: usize = inline.model.graph[0]
        .op
        .iter()
        .filter_map(|o| match o.attr.get("value").and_then(|a| a.value.as_ref()) {
            Some(Value::T(t)) if o.r#type == "Const" && t.data.len() >= 4096 => Some(t.data.len()),
            _ => None,
        })
        .sum();
    assert_eq!(on_disk, moved, "the files hold the large constants' bytes");
    assert!(external.air().len() * 10 < inline.air().len(), "graph.air {} bytes, inline {}", external.air().len(), inline.air().len());
    let air = std::fs::read(dir.0.join("graph.air")).expect("air");
    let summary = decode(&air, "external").unwrap_or_else(|e| panic!("the independent decoder rejects the graph:\n{e}"));
    assert_eq!(summary["file_constants"], serde_json::json!(files), "{summary}");
    let ops_dir = sim::custom_ops(&inline).expect("writes ops/");
    let want = sim::run_with(&inline.model, &inputs, sim::Options { custom: ops_dir.as_ref().map(|(c, _)| c), ..Default::default() })
        .expect("runs");
    let bundle = sim::Bundle::load(&dir.0).expect("loads");
    let got = bundle.run(&inputs, false).expect("runs from the bundle");
    assert_eq!(got, want, "the external weights compute what the inline ones do");
    let (first, bytes) = &external.weights[0];
    std::fs::write(dir.0.join(first), &bytes[..bytes.len() - 4]).expect("truncates");
    let e = bundle.run(&inputs, false).expect_err("a short weight file").to_string();
    assert!(e.contains(first.as_str()) && e.contains("bytes do not hold"), "{e}");
}

/// ../shared/ASCEND.md, the project's collected facts about GE (outside the repository: this
/// test reads it where the checkout has it, and says so where it does not).
fn ascend_md() -> Option<String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = std::env::var_os("KILN_ASCEND_MD").map_or_else(|| root.join("shared/ASCEND.md"), PathBuf::from);
    std::fs::read_to_string(&path).ok()
}

/// kiln's prototype table (`ge::prototypes`, which the builder holds every op to) agrees with
/// the operator prototypes of ASCEND.md §1.7 for every op type both list: the same inputs and
/// outputs in the same order, and only attributes the document names.
#[test]
fn the_prototype_table_agrees_with_ascend_md() {
    let Some(md) = ascend_md() else {
        println!("skipped: ../shared/ASCEND.md is not in this checkout (set KILN_ASCEND_MD to its path)");
        return;
    };
    let start = md.find("### 1.7").expect("§1.7");
    let end = md[start..].find("\n## ").map_or(md.len(), |e| start + e);
    // `name:type=default`, `name!`, `x?`, `x*`, `(remarks)` → the bare names.
    let bare = |cell: &str| -> Vec<String> {
        let mut depth = 0;
        let mut parts = vec![String::new()];
        for c in cell.chars() {
            match c {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                ',' if depth == 0 => parts.push(String::new()),
                _ if depth == 0 => parts.last_mut().expect("part").push(c),
                _ => {}
            }
        }
        parts
            .iter()
            .map(|p| p.trim().trim_start_matches('*').split([':', '=', '!', '?', '*', ' ']).next().unwrap_or("").to_string())
            .filter(|p| !p.is_empty() && p != "—")
            .collect()
    };
    let mut compared = 0;
    for line in md[start..end].lines().filter(|l| l.starts_with("| ") && !l.starts_with("| Op type")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [types, inputs, outputs, attrs, ..] = cells[..] else { continue };
        for ty in types.split('/').map(|t| t.split('(').next().unwrap_or("").trim()) {
            let Some((ins, outs, kiln_attrs)) = kiln_ascend::ge::prototypes::get(ty) else { continue };
            let strip = |v: &[&str]| v.iter().map(|s| s.trim_end_matches(['*', '?']).to_string()).collect::<Vec<_>>();
            assert_eq!(strip(ins), bare(inputs), "{ty}: inputs");
            assert_eq!(strip(outs), bare(outputs), "{ty}: outputs");
            // "as MaxPoolV3 plus …" and "same" rows name only what they add; an attribute kiln
            // marks optional (`?`) is one that drifts between releases (§1.7 names them in prose).
            let documented = bare(attrs);
            if !attrs.starts_with("as ") && !attrs.starts_with("same") {
                let required: Vec<&str> = kiln_attrs.iter().copied().filter(|a| !a.ends_with('?')).collect();
                for a in strip(&required) {
                    assert!(documented.contains(&a), "{ty}: attribute `{a}` is not in ASCEND.md's {documented:?}");
                }
            }
            compared += 1;
        }
    }
    println!("{compared} op types compared with ASCEND.md §1.7");
    assert!(compared >= 20, "only {compared} op types compared: the table's layout changed?");
}

/// Recurrent ops unrolled into built-ins, in the cases the node suite does not reach: both
/// directions over rows of different lengths (the reverse direction reads each row's prefix
/// reversed and stops where the row does), LSTM with peepholes and GRU with
/// linear_before_reset, batch-major layout, against the interpreter.
#[test]
fn recurrent_ops_over_rows_of_different_lengths() {
    let cases = [
        (
            "lstm",
            r#"graph "lstm" (%x: f32[4,3,5], %w: f32[2,12,5], %r: f32[2,12,3], %b: f32[2,24], %lens: i32[3], %h0: f32[2,3,3], %c0: f32[2,3,3], %p: f32[2,9]) {
  %y, %yh, %yc = LSTM[lstm](%x, %w, %r, %b, %lens, %h0, %c0, %p) {direction=bidirectional, hidden_size=3, activations=[], activation_alpha=[], activation_beta=[], clip=null, input_forget=false, layout=0, dynamic_quant=false} : f32[4,2,3,3], f32[2,3,3], f32[2,3,3]
  return %y, %yh, %yc
}
"#,
        ),
        (
            "gru",
            r#"graph "gru" (%x: f32[3,4,5], %w: f32[2,12,5], %r: f32[2,12,4], %b: f32[2,24], %lens: i32[3]) {
  %y, %yh = GRU[gru](%x, %w, %r, %b, %lens) {direction=bidirectional, hidden_size=4, activations=[], activation_alpha=[], activation_beta=[], clip=null, linear_before_reset=true, layout=1} : f32[3,4,2,4], f32[3,2,4]
  return %y, %yh
}
"#,
        ),
    ];
    for (tag, src) in cases {
        let g = kiln_ir::text::parse(src, &std::collections::HashMap::new()).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let inputs: Vec<kiln_ir::Tensor> = g
            .inputs
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let t = &g.value(v).ty;
                let dims = t.shape.as_fixed().expect("static");
                let n: usize = dims.iter().product();
                let data = if t.dtype == kiln_ir::DType::I32 {
                    // Row lengths: the full 4 steps, 1, and 3.
                    kiln_ir::Data::I32(vec![4, 1, 3][..n].to_vec())
                } else {
                    kiln_ir::Data::from_f64(t.dtype, &(0..n).map(|k| (((k * 37 + i * 11) % 23) as f64 - 11.0) / 15.0).collect::<Vec<_>>())
                };
                kiln_ir::Tensor::new(dims, data).expect("tensor")
            })
            .collect();
        let want = kiln_ir::interp::run(&g, inputs.clone()).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let b = compile(&g, &Options::default()).unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert!(b.text().contains("ReverseSequence") && b.text().contains("SelectV2"), "{tag}: no masking:\n{}", b.text());
        let got = sim::run(&b.model, &inputs).unwrap_or_else(|e| panic!("{tag}: {e}"));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.dims(), w.dims(), "{tag} output {i}");
            let err = scaled_error(g, w);
            assert!(err <= 1e-6, "{tag} output {i}: error {err:.3e} of scale");
        }
    }
}

/// The activations no CANN built-in computes alone, in a convolution's epilogue: a small
/// convolution's result is stored NCHW, that of the first of two chained convolutions NC1HWC0
/// (20 channels: 12 of padding), and kiln's AscendC kernels take neither, so each activation is
/// composed from CANN built-ins that compute on such data as stored. Simulated against the
/// interpreter on the source graph.
#[test]
fn activations_after_a_convolution_compose_from_builtins() {
    let acts = [
        "HardSigmoid[a](%c) {alpha=0.2, beta=0.5}",
        "HardSwish[a](%c)",
        "Swish[a](%c) {alpha=1.5}",
        "LeakyRelu[a](%c) {alpha=0.1}",
        "Elu[a](%c) {alpha=0.7}",
        "Selu[a](%c) {alpha=1.67, gamma=1.05}",
        "Celu[a](%c) {alpha=0.8}",
        "Softplus[a](%c)",
        "Softsign[a](%c)",
        "Mean[a](%c, %c)",
    ];
    // Constant weights: the layout rule offers NC1HWC0 to convolutions whose filter is known.
    let values =
        |n: usize, seed: usize| (0..n).map(|k| format!("{}", (((k * 29 + seed) % 41) as f64 - 20.0) / 30.0)).collect::<Vec<_>>().join(", ");
    let conv = "{kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1, auto_pad=notset}";
    let nchw = format!(
        r#"graph "act" (%x: f32[1,3,8,8]) {{
  %w = const f32[20,3,3,3] [{}]
  %b = const f32[20] [{}]
  %c = Conv[conv](%x, %w, %b) {conv} : f32[1,20,8,8]
  %y = ACT : f32[1,20,8,8]
  return %y
}}
"#,
        values(20 * 3 * 3 * 3, 3),
        values(20, 5)
    );
    let nc1hwc0 = format!(
        r#"graph "act" (%x: f32[1,20,32,32]) {{
  %w = const f32[20,20,3,3] [{}]
  %b = const f32[20] [{}]
  %w2 = const f32[20,20,3,3] [{}]
  %c0 = Conv[conv0](%x, %w, %b) {conv} : f32[1,20,32,32]
  %c = Relu[r](%c0) : f32[1,20,32,32]
  %a = ACT : f32[1,20,32,32]
  %y = Conv[conv1](%a, %w2, %b) {conv} : f32[1,20,32,32]
  return %y
}}
"#,
        values(20 * 20 * 3 * 3, 3),
        values(20, 5),
        values(20 * 20 * 3 * 3, 11)
    );
    for (layout, template, x_dims, stored) in [
        ("NCHW", &nchw, vec![1, 3, 8, 8], "-> y: f32[1,20,8,8] NCHW"),
        ("NC1HWC0", &nc1hwc0, vec![1, 20, 32, 32], "-> y: f32[1,2,32,32,16] NC1HWC0"),
    ] {
        for act in acts {
            let tag = format!("{act} after a {layout} convolution");
            let g = kiln_ir::text::parse(&template.replace("ACT", act), &std::collections::HashMap::new())
                .unwrap_or_else(|e| panic!("{tag}: {e}"));
            let n: usize = x_dims.iter().product();
            let vals: Vec<f64> = (0..n).map(|k| ((k * 29 % 41) as f64 - 20.0) / 12.0).collect();
            let inputs = vec![kiln_ir::Tensor::new(x_dims.clone(), kiln_ir::Data::from_f64(kiln_ir::DType::F32, &vals)).expect("tensor")];
            let want = kiln_ir::interp::run(&g, inputs.clone()).unwrap_or_else(|e| panic!("{tag}: {e}"));
            let (opt, _) =
                kiln_driver::optimize(&g, Target::Ascend910B, std::time::Instant::now()).unwrap_or_else(|e| panic!("{tag}: {e}"));
            let b = compile(&opt, &Options::default()).unwrap_or_else(|e| panic!("{tag}: {e}"));
            assert!(b.text().contains(stored), "{tag}: the convolution's result is not stored {layout}:\n{}", b.text());
            assert!(b.kernels.is_empty(), "{tag}: expected CANN built-ins only, got {} AscendC kernel(s)", b.kernels.len());
            let got = sim::run(&b.model, &inputs).unwrap_or_else(|e| panic!("{tag}: {e}"));
            let err = scaled_error(&got[0], &want[0]);
            assert!(err <= 1e-6, "{tag}: error {err:.3e} of scale");
        }
    }
}

/// 1-D convolutions (speech and text models) run as Conv2D over `[N, C, 1, L]`: strided,
/// dilated, grouped, with and without `kernel_shape` (the filter's dims give the window), with
/// a fused epilogue; simulated against the interpreter.
#[test]
fn one_d_convolutions_run_as_conv2d() {
    let values =
        |n: usize, seed: usize| (0..n).map(|k| format!("{}", (((k * 31 + seed) % 37) as f64 - 18.0) / 20.0)).collect::<Vec<_>>().join(", ");
    for (tag, attrs, len) in [
        ("strided", "{kernel_shape=[3], strides=[2], pads=[1, 2], dilations=[1], group=2, auto_pad=notset}", 10),
        ("dilated", "{kernel_shape=[3], strides=[1], pads=[0, 0], dilations=[2], group=1, auto_pad=notset}", 15),
        ("no kernel_shape", "{kernel_shape=[], strides=[], pads=[], dilations=[], group=1, auto_pad=same_upper}", 19),
    ] {
        let src = format!(
            r#"graph "conv1d" (%x: f32[2,4,19]) {{
  %w = const f32[6,{}, 3] [{}]
  %b = const f32[6] [{}]
  %c = Conv[conv](%x, %w, %b) {attrs} : f32[2,6,{len}]
  %y = Relu[r](%c) : f32[2,6,{len}]
  return %y
}}
"#,
            if tag == "strided" { 2 } else { 4 },
            values(if tag == "strided" { 6 * 2 * 3 } else { 6 * 4 * 3 }, 1),
            values(6, 2)
        );
        let mut g = kiln_ir::text::parse(&src, &std::collections::HashMap::new()).unwrap_or_else(|e| panic!("{tag}: {e}"));
        kiln_passes::simplify(&mut g).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let vals: Vec<f64> = (0..2 * 4 * 19).map(|k| ((k * 29 % 41) as f64 - 20.0) / 12.0).collect();
        let inputs = vec![kiln_ir::Tensor::new(vec![2, 4, 19], kiln_ir::Data::from_f64(kiln_ir::DType::F32, &vals)).expect("tensor")];
        let want = kiln_ir::interp::run(&g, inputs.clone()).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let (opt, _) = kiln_driver::optimize(&g, Target::Ascend910B, std::time::Instant::now()).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let b = compile(&opt, &Options::default()).unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert!(b.text().contains("Conv2D"), "{tag}:\n{}", b.text());
        let got = sim::run(&b.model, &inputs).unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(got[0].dims(), want[0].dims(), "{tag}");
        let err = scaled_error(&got[0], &want[0]);
        assert!(err <= 1e-6, "{tag}: error {err:.3e} of scale");
    }
}
