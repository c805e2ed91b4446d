//! Safetensors checkpoints with a Hugging Face config.json, built into IR graphs and checked
//! against transformers: small random-weight Llama (Llama 3 rope scaling, untied head), Qwen2
//! (Q/K/V biases, tied embeddings) and Mistral (a sliding window shorter than the prompt)
//! decoders with 4 heads and 2 KV heads, GPT-2 and a BERT encoder (4 heads); 2 layers, hidden
//! 256, vocabulary 1000; written by `testsuite/golden/hf/generate.py` with the fp32 outputs and
//! the greedy tokens transformers computes.

use kiln_driver::{compare, npy};
use kiln_frontend::hf::{import_dir, Prefill};
use kiln_ir::{interp, Tensor};
use std::path::{Path, PathBuf};

const MODELS: [&str; 4] = ["llama", "qwen2", "mistral", "gpt2"];

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/hf").join(name)
}

fn read_npy(p: &Path) -> Tensor {
    npy::read(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The prefill graph's logits in the reference interpreter against transformers' (fp32, the
/// same bf16-stored weights): within 1e-4 of the logits' scale.
#[test]
fn prefill_logits_match_transformers_in_the_interpreter() {
    for name in MODELS {
        let d = dir(name);
        let ids = read_npy(&d.join("input_ids.npy"));
        let want = read_npy(&d.join("logits.npy"));
        let p = Prefill { batch: ids.dims()[0], seq: ids.dims()[1] };
        let g = import_dir(&d, p).unwrap_or_else(|e| panic!("{name}: {e}"));
        kiln_ir::verify(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
        let out = interp::run(&g, vec![ids]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.len(), 1 + 2 * 2, "{name}: logits and two layers' keys and values");
        assert_eq!(out[0].dims(), want.dims(), "{name}");
        let (gv, wv) = (out[0].to_f64(), want.to_f64());
        let e = compare::errors(&gv, &wv);
        let scale = wv.iter().fold(0f64, |m, v| m.max(v.abs()));
        println!("{name}: logits max abs {:.3e} (scale {scale:.3}), cosine {:.9}", e.max_abs, e.cosine);
        assert!(e.max_abs <= 1e-4 * scale, "{name}: logits differ from transformers' by {:.3e} (scale {scale:.3})", e.max_abs);
        let cfg = kiln_frontend::hf::read_config(&d).expect("config");
        assert_eq!(out[1].dims(), &[p.batch, cfg.num_kv_heads, p.seq, cfg.head_dim], "{name}: present.0.key");
    }
}

/// The BERT encoder's outputs in the reference interpreter against transformers' (fp32, the same
/// bf16-stored weights) for two sequences, the second padded, with two token types: the last
/// hidden state and the pooler output within 1e-4 of their scale.
#[test]
fn bert_encoder_matches_transformers_in_the_interpreter() {
    let d = dir("bert");
    let inputs: Vec<Tensor> =
        ["input_ids", "attention_mask", "token_type_ids"].iter().map(|f| read_npy(&d.join(format!("{f}.npy")))).collect();
    let p = Prefill { batch: inputs[0].dims()[0], seq: inputs[0].dims()[1] };
    let g = import_dir(&d, p).unwrap_or_else(|e| panic!("bert: {e}"));
    kiln_ir::verify(&g).expect("verifies");
    let names: Vec<&str> = g.inputs.iter().map(|&v| g.value(v).name.as_str()).collect();
    assert_eq!(names, ["input_ids", "attention_mask", "token_type_ids"]);
    let outs: Vec<&str> = g.outputs.iter().map(|&v| g.value(v).name.as_str()).collect();
    assert_eq!(outs, ["last_hidden_state", "pooler_output"]);
    let got = interp::run(&g, inputs).expect("runs");
    for (out, file) in got.iter().zip(["last_hidden_state", "pooler_output"]) {
        let want = read_npy(&d.join(format!("{file}.npy")));
        assert_eq!(out.dims(), want.dims(), "{file}");
        let (gv, wv) = (out.to_f64(), want.to_f64());
        let e = compare::errors(&gv, &wv);
        let scale = wv.iter().fold(0f64, |m, v| m.max(v.abs()));
        println!("bert {file}: max abs {:.3e} (scale {scale:.3}), cosine {:.9}", e.max_abs, e.cosine);
        assert!(e.max_abs <= 1e-4 * scale, "bert {file}: differs from transformers' by {:.3e} (scale {scale:.3})", e.max_abs);
    }
}

/// A BERT checkpoint saved by a task model (`bert.` prefix, the masked-LM head under `cls.`,
/// LayerNorm's older `gamma` and `beta` names, the position-id buffer) builds the same encoder;
/// configs kiln does not build as an encoder, and sequences past the position table, are
/// errors naming the key.
#[test]
fn bert_task_checkpoints_build_the_encoder_and_bad_configs_are_errors() {
    let inputs: Vec<Tensor> =
        ["input_ids", "attention_mask", "token_type_ids"].iter().map(|f| read_npy(&dir("bert").join(format!("{f}.npy")))).collect();
    let want = read_npy(&dir("bert").join("last_hidden_state.npy"));
    let p = Prefill { batch: 2, seq: 16 };
    let d = temp_copy("bert", "task");
    rewrite(&d, |ts| {
        for t in ts.iter_mut() {
            t.0 = format!("bert.{}", t.0).replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta");
        }
        ts.push(("cls.predictions.bias".into(), safetensors::Dtype::F32, vec![2], vec![0; 8]));
        ts.push(("bert.embeddings.position_ids".into(), safetensors::Dtype::I64, vec![1, 1], vec![0; 8]));
    });
    let g = import_dir(&d, p).expect("a task checkpoint builds the encoder");
    let got = interp::run(&g, inputs).expect("runs");
    let e = compare::errors(&got[0].to_f64(), &want.to_f64());
    assert!(e.max_abs < 1e-4, "the task checkpoint's encoder differs by {:.3e}", e.max_abs);

    let err = |d: &Path, p: Prefill| import_dir(d, p).expect_err("must fail").to_string();
    rewrite(&d, |ts| ts.push(("bert.pooler.extra".into(), safetensors::Dtype::F32, vec![2], vec![0; 8])));
    let e = err(&d, p);
    assert!(e.contains("not used") && e.contains("bert.pooler.extra"), "{e}");
    let e = err(&d, Prefill { batch: 1, seq: 300 });
    assert!(e.contains("max_position_embeddings = 256"), "{e}");
    let cfg = std::fs::read_to_string(d.join("config.json")).expect("config");
    for (from, to, key) in [
        ("\"model_type\"", "\"is_decoder\": true, \"model_type\"", "`is_decoder`"),
        ("\"absolute\"", "\"relative_key\"", "`position_embedding_type`"),
        ("\"gelu\"", "\"swish\"", "`hidden_act`"),
    ] {
        std::fs::write(d.join("config.json"), cfg.replace(from, to)).expect("write");
        let e = err(&d, p);
        assert!(e.contains(key), "{key}: {e}");
    }
    std::fs::write(d.join("config.json"), &cfg).expect("write");
    let gen = kiln_frontend::hf::import_for_generation(
        &kiln_frontend::hf::Source::dir(&d),
        p,
        kiln_frontend::hf::Decode { batch: 2, max_len: 32 },
    );
    assert!(gen.expect_err("an encoder does not generate").to_string().contains("BERT"));
}

/// The kernels of an optimized graph by op name: views are free, and so is the transpose of a
/// constant (a tied LM head's embedding table), which the product reads in place (the CUDA
/// test `a_tied_lm_head_reads_the_embedding_in_place`); exports store a transposed copy instead.
fn kernel_ops(g: &kiln_ir::Graph) -> Vec<String> {
    let constant_transpose = |n: &kiln_ir::Node| {
        matches!(n.op, kiln_ir::Op::Transpose { .. }) && n.inputs.first().copied().flatten().is_some_and(|i| g.consts.contains_key(&i))
    };
    let mut ops: Vec<String> =
        g.nodes.iter().filter(|n| !n.op.is_view() && !constant_transpose(n)).map(|n| n.op.display_name().to_string()).collect();
    ops.sort();
    ops
}

/// A Llama or Qwen2 built here fuses for sm_90 into the same kernels as the ONNX export of the
/// same architecture (the `llama_tiny` and `qwen2_tiny` goldens, also 2 layers): 9 per layer
/// (Qwen2's biased Q, K and V projections merged into one product like the export's).
#[test]
fn built_decoders_fuse_like_their_onnx_exports() {
    use kiln_frontend::onnx::{import_file, ImportOptions};

    for (name, onnx) in [("llama", "llama_tiny"), ("qwen2", "qwen2_tiny"), ("gpt2", "gpt2_tiny")] {
        let g = import_dir(&dir(name), Prefill { batch: 1, seq: 16 }).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (built, rep) = kiln_driver::optimize(&g, kiln_driver::Target::Sm90, std::time::Instant::now()).expect("optimizes");
        let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(onnx);
        let shapes = [("input_ids".to_string(), vec![1, 16])].into_iter().collect();
        let m = import_file(&d.join("model.onnx"), &ImportOptions { input_shapes: shapes, ..Default::default() }).expect("imports");
        let mut eg = m.graph;
        kiln_passes::simplify(&mut eg).expect("simplifies");
        let (exported, erep) = kiln_driver::optimize(&eg, kiln_driver::Target::Sm90, std::time::Instant::now()).expect("optimizes");
        let (a, b) = (kernel_ops(&built), kernel_ops(&exported));
        println!("{name}: {} kernels {a:?}\n{onnx}: {} kernels {b:?}", rep.eqsat.kernels, erep.eqsat.kernels);
        assert_eq!(a, b, "{name}: the built graph's kernels differ from the export's");
    }
}

fn temp_copy(name: &str, tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kiln-hf-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(dir(name).join(f), d.join(f)).expect("copy");
    }
    d
}

/// Rewrites the checkpoint's tensors through `edit` (name, dtype, shape, bytes).
fn rewrite(d: &Path, edit: impl Fn(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>)) {
    let bytes = std::fs::read(d.join("model.safetensors")).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("parses");
    let mut ts: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> =
        st.tensors().into_iter().map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    edit(&mut ts);
    let views: Vec<(String, safetensors::tensor::TensorView)> =
        ts.iter().map(|(n, dt, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*dt, s.clone(), b).expect("view"))).collect();
    std::fs::write(d.join("model.safetensors"), safetensors::serialize(views, None).expect("serialize")).expect("write");
}

/// Bad checkpoints are errors that name the tensor, key or file: a missing, an extra, a
/// misshapen or an unreadable tensor, a truncated header, a config the weights do not fit,
/// an unknown model_type, a shard index that disagrees with its shards.
#[test]
fn bad_checkpoints_are_errors_naming_the_tensor_or_key() {
    let p = Prefill { batch: 1, seq: 8 };
    let err = |d: &Path| import_dir(d, p).expect_err("must fail").to_string();

    let d = temp_copy("qwen2", "missing");
    rewrite(&d, |ts| ts.retain(|t| t.0 != "model.layers.1.mlp.up_proj.weight"));
    let e = err(&d);
    assert!(e.contains("`model.layers.1.mlp.up_proj.weight` is missing"), "{e}");

    let d = temp_copy("qwen2", "extra");
    rewrite(&d, |ts| ts.push(("model.layers.2.mlp.up_proj.weight".into(), safetensors::Dtype::F32, vec![2], vec![0; 8])));
    let e = err(&d);
    assert!(e.contains("not used") && e.contains("model.layers.2.mlp.up_proj.weight"), "{e}");

    let d = temp_copy("llama", "shape");
    rewrite(&d, |ts| {
        if let Some(t) = ts.iter_mut().find(|t| t.0 == "model.norm.weight") {
            t.2 = vec![128, 2];
        }
    });
    let e = err(&d);
    assert!(e.contains("`model.norm.weight`") && e.contains("[128, 2]") && e.contains("[256]"), "{e}");

    let d = temp_copy("llama", "dtype");
    rewrite(&d, |ts| {
        if let Some(t) = ts.iter_mut().find(|t| t.0 == "model.norm.weight") {
            t.1 = safetensors::Dtype::F8_E5M2;
            t.2 = vec![512];
        }
    });
    let e = err(&d);
    assert!(e.contains("`model.norm.weight`") && e.contains("F8_E5M2"), "{e}");

    let d = temp_copy("llama", "truncated");
    let b = std::fs::read(d.join("model.safetensors")).expect("read");
    std::fs::write(d.join("model.safetensors"), &b[..100]).expect("cut");
    let e = err(&d);
    assert!(e.contains("model.safetensors") && e.contains("not a valid safetensors file"), "{e}");
    std::fs::write(d.join("model.safetensors"), &b[..b.len() - 10]).expect("cut");
    let e = err(&d);
    assert!(e.contains("not a valid safetensors file"), "{e}");

    let d = temp_copy("llama", "config");
    let cfg = std::fs::read_to_string(d.join("config.json")).expect("config");
    std::fs::write(d.join("config.json"), cfg.replace("\"intermediate_size\": 512", "\"intermediate_size\": 640")).expect("write");
    let e = err(&d);
    assert!(e.contains("gate_proj.weight") && e.contains("[640, 256]"), "{e}");
    std::fs::write(d.join("config.json"), cfg.replace("\"model_type\": \"llama\"", "\"model_type\": \"falcon\"")).expect("write");
    let e = err(&d);
    assert!(e.contains("`model_type`") && e.contains("falcon"), "{e}");
    std::fs::remove_file(d.join("model.safetensors")).expect("rm");
    std::fs::write(d.join("config.json"), &cfg).expect("write");
    assert!(err(&d).contains("neither model.safetensors nor model.safetensors.index.json"));

    // Shards: the index must agree with them.
    let d = temp_copy("mistral", "shards");
    std::fs::rename(d.join("model.safetensors"), d.join("model-00001-of-00001.safetensors")).expect("mv");
    let b = std::fs::read(d.join("model-00001-of-00001.safetensors")).expect("read");
    let st = safetensors::SafeTensors::deserialize(&b).expect("parses");
    let mut map: Vec<String> = st.names().iter().map(|n| format!("\"{n}\": \"model-00001-of-00001.safetensors\"")).collect();
    map.sort();
    std::fs::write(d.join("model.safetensors.index.json"), format!("{{\"weight_map\": {{{}}}}}", map.join(", "))).expect("index");
    let ids = read_npy(&dir("mistral").join("input_ids.npy"));
    let g = import_dir(&d, Prefill { batch: 1, seq: 16 }).expect("sharded checkpoint");
    let out = interp::run(&g, vec![ids]).expect("runs");
    let want = read_npy(&dir("mistral").join("logits.npy"));
    assert!(compare::errors(&out[0].to_f64(), &want.to_f64()).max_abs < 1e-3, "the sharded checkpoint computes the same logits");
    let wrong = map
        .iter()
        .map(|e| e.replace("model.norm.weight\": \"model-00001-of-00001", "model.norm.weight\": \"model-00002-of-00002"))
        .collect::<Vec<_>>();
    std::fs::write(d.join("model.safetensors.index.json"), format!("{{\"weight_map\": {{{}}}}}", wrong.join(", "))).expect("index");
    let e = err(&d);
    assert!(e.contains("model-00002-of-00002.safetensors"), "{e}");
    map.retain(|e| !e.contains("model.norm.weight"));
    std::fs::write(d.join("model.safetensors.index.json"), format!("{{\"weight_map\": {{{}}}}}", map.join(", "))).expect("index");
    let e = err(&d);
    assert!(e.contains("does not list `model.norm.weight`"), "{e}");
    std::fs::write(d.join("model.safetensors.index.json"), "{\"weight_map\": {\"x\": \"../../etc/passwd\"}}").expect("index");
    assert!(err(&d).contains("escapes"));
}

/// Greedy decoding with the prefill graph and the decode graph (KV caches as inputs and
/// outputs, 32 positions) in the interpreter chooses exactly transformers' 16 `generate()`
/// tokens, Mistral's window of 8 included.
#[test]
fn greedy_decoding_matches_transformers_generate_in_the_interpreter() {
    use kiln_frontend::hf::{generate, import_for_generation, Decode};
    for name in MODELS {
        let d = dir(name);
        let ids = read_npy(&d.join("input_ids.npy")).to_i64();
        let want = read_npy(&d.join("generated.npy")).to_i64();
        let n = want.len() - ids.len();
        let (pre, dec, shape) = import_for_generation(
            &kiln_frontend::hf::Source::dir(&d),
            Prefill { batch: 1, seq: ids.len() },
            Decode { batch: 1, max_len: 32 },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        kiln_ir::verify(&dec).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut run_pre = |x: Vec<Tensor>| interp::run(&pre, x).map_err(|e| e.to_string());
        let mut run_dec = |x: Vec<Tensor>| interp::run(&dec, x).map_err(|e| e.to_string());
        let got = generate::greedy(&ids, n, shape, &mut run_pre, &mut run_dec).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!("{name}: {got:?}");
        assert_eq!(got, want[ids.len()..], "{name}: the greedy tokens differ from transformers'");
    }
}
