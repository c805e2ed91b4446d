//! Golden models (testsuite/golden, made by generate.py with PyTorch; expected outputs from
//! onnxruntime): each imports, verifies, runs in the reference interpreter and matches
//! onnxruntime within 1e-4 relative to the output's scale (max |kiln - ort| / max |ort|) and
//! element by element within the f32 tolerance of [`kiln_driver::compare::tolerance`].
//! Its IR text is a snapshot (`model.ir.txt`, regenerated with KILN_BLESS=1) and
//! print → parse → print round-trips.

use kiln_driver::{compare::errors, npy};
use kiln_frontend::onnx::{import_file, ImportOptions};
use kiln_ir::{interp, Tensor};
use std::path::{Path, PathBuf};

const MODELS: [&str; 6] = ["resnet18_narrow", "mobilenet_v2_narrow", "bert_tiny", "gpt2_tiny", "llama_tiny", "qwen2_tiny"];
const MAX_REL: f64 = 1e-4;

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(name)
}

fn read_npy(p: &Path) -> Tensor {
    npy::read(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn load(name: &str) -> (kiln_ir::Graph, Vec<Tensor>, Vec<Tensor>) {
    let d = dir(name);
    let model = import_file(&d.join("model.onnx"), &ImportOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut g = model.graph;
    let inputs: Vec<Tensor> = g.inputs.iter().map(|&i| read_npy(&d.join(format!("input_{}.npy", g.value(i).name)))).collect();
    let mut outputs = vec![];
    for k in 0.. {
        let p = d.join(format!("output_{k}.npy"));
        if !p.exists() {
            break;
        }
        outputs.push(read_npy(&p));
    }
    kiln_passes::simplify(&mut g).unwrap_or_else(|e| panic!("{name}: {e}"));
    kiln_ir::verify(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
    (g, inputs, outputs)
}

#[test]
fn golden_models_match_onnxruntime() {
    for name in MODELS {
        let (g, inputs, want) = load(name);
        let got = interp::run(&g, inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), want.len(), "{name}: output count");
        for (k, (a, b)) in got.iter().zip(&want).enumerate() {
            assert_eq!(a.dims(), b.dims(), "{name} output {k}: shape");
            let (av, bv) = (a.to_f64(), b.to_f64());
            let scale = bv.iter().fold(0f64, |m, v| m.max(v.abs()));
            let e = errors(&av, &bv);
            let rel = e.max_abs / scale;
            println!("{name} output {k}: max abs {:.3e}, relative to scale {rel:.3e}, cosine {:.9}", e.max_abs, e.cosine);
            assert!(rel <= MAX_REL, "{name} output {k}: error {rel:.3e} of the output's scale exceeds {MAX_REL:e}");
            // And element by element within the dtype's tolerance (f32: 1e-5 + 1e-3 * |ort|).
            kiln_driver::compare::check(a, b).unwrap_or_else(|e| panic!("{name} output {k}: {e}"));
        }
    }
}

#[test]
fn golden_model_ir_text_is_stable_and_round_trips() {
    let bless = std::env::var_os("KILN_BLESS").is_some();
    for name in MODELS {
        let (g, _, _) = load(name);
        let text = kiln_ir::text::print(&g);
        let snap = dir(name).join("model.ir.txt");
        if bless {
            std::fs::write(&snap, &text).expect("write snapshot");
        } else {
            let want = std::fs::read_to_string(&snap).unwrap_or_else(|e| panic!("{}: {e} (bless with KILN_BLESS=1)", snap.display()));
            assert!(want == text, "{name}: IR text differs from {} (review, then bless with KILN_BLESS=1)", snap.display());
        }
        let parsed = kiln_ir::text::parse(&text, &g.weights_by_name()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(kiln_ir::text::print(&parsed), text, "{name}: print → parse → print differs");
    }
}

/// The Llama golden with every initializer moved to one external data file (as exporters
/// write large models) imports to the same graph and gives bit-identical outputs.
#[test]
fn golden_model_with_external_data_gives_identical_outputs() {
    use onnx_protobuf::{tensor_proto::DataLocation, Message, ModelProto, StringStringEntryProto};
    let d = dir("llama_tiny");
    let mut m = ModelProto::parse_from_bytes(&std::fs::read(d.join("model.onnx")).expect("read")).expect("parse");
    let out = std::env::temp_dir().join(format!("kiln-golden-ext-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("mkdir");
    let mut blob: Vec<u8> = vec![];
    let entry = |k: &str, v: String| {
        let mut e = StringStringEntryProto::new();
        e.key = k.into();
        e.value = v;
        e
    };
    let g = m.graph.as_mut().expect("graph");
    let mut moved = 0;
    for t in g.initializer.iter_mut().filter(|t| t.raw_data.len() > 64) {
        t.external_data = vec![
            entry("location", "weights.bin".into()),
            entry("offset", blob.len().to_string()),
            entry("length", t.raw_data.len().to_string()),
        ];
        blob.append(&mut t.raw_data);
        t.data_location = DataLocation::EXTERNAL.into();
        moved += 1;
    }
    assert!(moved > 10, "only {moved} initializers moved");
    std::fs::write(out.join("weights.bin"), &blob).expect("write data");
    std::fs::write(out.join("model.onnx"), m.write_to_bytes().expect("serialize")).expect("write model");
    let (g, inputs, _) = load("llama_tiny");
    let ext = import_file(&out.join("model.onnx"), &ImportOptions::default()).expect("import external");
    let mut ext_g = ext.graph;
    kiln_passes::simplify(&mut ext_g).expect("simplify");
    assert_eq!(kiln_ir::text::print(&ext_g), kiln_ir::text::print(&g));
    let a = interp::run(&g, inputs.clone()).expect("run inline");
    let b = interp::run(&ext_g, inputs).expect("run external");
    assert_eq!(a, b);
    let _ = std::fs::remove_dir_all(out);
}

/// The classic pipeline (folding, CSE, DCE) changes no output bit of any golden model.
#[test]
fn classic_pipeline_keeps_golden_outputs_bit_identical() {
    for name in MODELS {
        let (g, inputs, _) = load(name);
        let mut opt = g.clone();
        let report = kiln_passes::run_pipeline(&mut opt, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        kiln_ir::verify(&opt).unwrap_or_else(|e| panic!("{name}: {e}"));
        let removed: usize = report.changes.iter().map(|c| c.1).sum();
        println!("{name}: {} nodes -> {} ({removed} changes)", g.nodes.len(), opt.nodes.len());
        assert!(opt.nodes.len() <= g.nodes.len());
        let a = interp::run(&g, inputs.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let b = interp::run(&opt, inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(a, b, "{name}: outputs changed");
    }
}

/// With shapes specialized to the golden inputs, every model gets a valid memory plan whose
/// arena is within 1.1x of the liveness lower bound.
#[test]
fn memory_plans_are_valid_and_near_the_liveness_lower_bound() {
    for name in MODELS {
        let d = dir(name);
        let (g0, inputs, _) = load(name);
        let shapes = g0.inputs.iter().zip(&inputs).map(|(&i, t)| (g0.value(i).name.clone(), t.dims().to_vec())).collect();
        let mut g =
            import_file(&d.join("model.onnx"), &ImportOptions { input_shapes: shapes, ..Default::default() }).expect("import").graph;
        kiln_passes::run_pipeline(&mut g, None).expect("pipeline");
        let plan = kiln_passes::plan_memory(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
        plan.check().unwrap_or_else(|e| panic!("{name}: {e}"));
        let ratio = plan.arena_bytes as f64 / plan.lower_bound_bytes.max(1) as f64;
        println!(
            "{name}: {} buffers for {} nodes, arena {} B, lower bound {} B, ratio {ratio:.3}",
            plan.buffers.len(),
            g.nodes.len(),
            plan.arena_bytes,
            plan.lower_bound_bytes
        );
        assert!(ratio <= 1.1, "{name}: arena is {ratio:.3}x the lower bound");
        // Every intermediate value the graph computes has a place (or aliases an input/weight).
        let planned = g.nodes.iter().flat_map(|n| n.outputs.iter().flatten()).filter(|v| plan.value_buffer.contains_key(v)).count();
        assert!(planned > 0);
    }
}
