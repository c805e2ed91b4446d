//! Safetensors checkpoints with a Hugging Face config.json, built into IR graphs and checked
//! against transformers: small random-weight Llama (Llama 3 rope scaling, untied head), Qwen2
//! (Q/K/V biases, tied embeddings) and Mistral (a sliding window shorter than the prompt)
//! decoders, 2 layers, hidden 256, 4 heads and 2 KV heads, vocabulary 1000, written by
//! `testsuite/golden/hf/generate.py` with the fp32 logits transformers computes.

use kiln_frontend::hf::{import_dir, Prefill};
use kiln_ir::{interp, Tensor};
use kiln_testsuite::{compare, npy};
use std::path::{Path, PathBuf};

const MODELS: [&str; 3] = ["llama", "qwen2", "mistral"];

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
        assert_eq!(out[1].dims(), &[p.batch, 2, p.seq, 64], "{name}: present.0.key");
    }
}

/// The kernels of an optimized graph by op name: views are free, and so is the transpose of a
/// constant (a tied LM head's embedding table), which the product reads in place (the CUDA
/// test `a_tied_lm_head_reads_the_embedding_in_place`); exports store a transposed copy instead.
fn kernel_ops(g: &kiln_ir::Graph) -> Vec<String> {
    let constant_transpose = |n: &kiln_ir::Node| {
        matches!(n.op, kiln_ir::Op::Transpose { .. }) && n.inputs.first().copied().flatten().is_some_and(|i| g.consts.contains_key(&i))
    };
    let mut ops: Vec<String> = g
        .nodes
        .iter()
        .filter(|n| !kiln_passes::eqsat::roofline::is_view(&n.op) && !constant_transpose(n))
        .map(|n| n.op.display_name().to_string())
        .collect();
    ops.sort();
    ops
}

/// A Llama or Qwen2 built here fuses for sm_90 into the same kernels as the ONNX export of the
/// same architecture (the `llama_tiny` and `qwen2_tiny` goldens, also 2 layers): 9 per layer
/// (Qwen2's biased Q, K and V projections merged into one product like the export's).
#[test]
fn built_decoders_fuse_like_their_onnx_exports() {
    use kiln_frontend::onnx::{import_file, ImportOptions};
    use kiln_testsuite::optimizer;
    for (name, onnx) in [("llama", "llama_tiny"), ("qwen2", "qwen2_tiny")] {
        let g = import_dir(&dir(name), Prefill { batch: 1, seq: 16 }).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (built, rep) = optimizer::optimize(&g, kiln_target::Target::Sm90, std::time::Instant::now()).expect("optimizes");
        let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(onnx);
        let shapes = [("input_ids".to_string(), vec![1, 16])].into_iter().collect();
        let m = import_file(&d.join("model.onnx"), &ImportOptions { input_shapes: shapes }).expect("imports");
        let mut eg = m.graph;
        kiln_passes::simplify(&mut eg).expect("simplifies");
        let (exported, erep) = optimizer::optimize(&eg, kiln_target::Target::Sm90, std::time::Instant::now()).expect("optimizes");
        let (a, b) = (kernel_ops(&built), kernel_ops(&exported));
        println!("{name}: {} kernels {a:?}\n{onnx}: {} kernels {b:?}", rep.eqsat.kernels, erep.eqsat.kernels);
        assert_eq!(a, b, "{name}: the built graph's kernels differ from the export's");
    }
}
