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
