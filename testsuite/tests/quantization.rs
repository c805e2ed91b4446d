//! `--quantize` in the reference interpreter, on the golden decoders (exported by PyTorch, see
//! golden/generate.py): the quantized logits against the fp32 ones on inputs the calibration
//! did not see, and on an **outlier** variant of the Llama and Qwen2 ones made by a function-preserving
//! transformation (a few hidden channels of every norm's weight ×50, the rows of the products
//! reading them ÷50), as real LLMs have outlier channels: there SmoothQuant must beat W8A8
//! without smoothing, and AWQ must beat round-to-nearest W4A16.

use kiln_driver::npy;
use kiln_frontend::onnx::{import_file, ImportOptions};
use kiln_ir::{interp, Data, Graph, Op, Tensor};
use kiln_passes::quant::{quantize, QuantOptions, Scheme};
use std::path::PathBuf;
use std::sync::Arc;

const DECODERS: [&str; 3] = ["llama_tiny", "qwen2_tiny", "gpt2_tiny"];
/// Hidden channels made outliers (all golden decoders have 64).
const OUTLIERS: [usize; 3] = [3, 17, 40];

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(name)
}

/// The decoder imported for its golden input's shape, classic passes run.
fn decoder(name: &str) -> (Graph, Tensor) {
    let d = dir(name);
    let x = npy::read(&std::fs::read(d.join("input_input_ids.npy")).expect("input")).expect("npy");
    let shapes = [("input_ids".to_string(), x.dims().to_vec())].into();
    let m = import_file(&d.join("model.onnx"), &ImportOptions { input_shapes: shapes, ..Default::default() }).expect("imports");
    let mut g = m.graph;
    kiln_passes::run_pipeline(&mut g, None).expect("classic passes");
    (g, x)
}

/// Token ids of the golden input's shape, from a seed (vocabulary 1000).
fn tokens(like: &Tensor, seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let v = (0..like.numel())
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % 1000) as i64
        })
        .collect();
    Tensor::new(like.dims().to_vec(), Data::I64(v)).expect("tokens")
}

/// Cosine similarity and relative L2 error of `got` against `want`.
fn compare(got: &Tensor, want: &Tensor) -> (f64, f64) {
    let (a, b) = (got.to_f64(), want.to_f64());
    let dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
    let (na, nb) = (a.iter().map(|x| x * x).sum::<f64>().sqrt(), b.iter().map(|x| x * x).sum::<f64>().sqrt());
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    (dot / (na * nb), diff / nb)
}

/// Quantizes a copy of `g` (calibrated on 8 sets) and compares its logits with `g`'s on 4 sets
/// it did not see: the worst cosine and the mean relative error.
fn quantized_error(g: &Graph, like: &Tensor, opts: &QuantOptions) -> (f64, f64, Vec<String>) {
    let calib: Vec<Vec<Tensor>> = (0..8).map(|i| vec![tokens(like, i)]).collect();
    let mut q = g.clone();
    let report = quantize(&mut q, opts, &calib).expect("quantizes");
    let (mut worst, mut err) = (1.0f64, 0.0);
    for i in 100..104 {
        let x = tokens(like, i);
        let want = interp::run(g, vec![x.clone()]).expect("fp32 runs");
        let got = interp::run(&q, vec![x]).expect("quantized runs");
        let (c, e) = compare(&got[0], &want[0]);
        worst = worst.min(c);
        err += e / 4.0;
    }
    (worst, err, report.lines())
}

fn options(scheme: Scheme, smooth: Option<f32>, group: usize) -> QuantOptions {
    QuantOptions { smooth_alpha: smooth, group_size: group, ..QuantOptions::new(scheme) }
}

/// Every norm weight that products read: OUTLIERS channels ×50, and the products' rows ÷50.
fn with_outliers(g: &Graph) -> Graph {
    let mut g = g.clone();
    let products: Vec<(usize, kiln_ir::ValueId, kiln_ir::ValueId)> = g
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| match (&n.op, &n.inputs[..]) {
            (Op::MatMul {}, [Some(x), Some(w)]) if g.const_value(*w).is_some() => Some((i, *x, *w)),
            _ => None,
        })
        .collect();
    let mut changed = 0;
    for (i, n) in g.nodes.clone().iter().enumerate() {
        let Some(out) = n.outputs.first().copied().flatten() else { continue };
        let readers: Vec<&(usize, kiln_ir::ValueId, kiln_ir::ValueId)> = products.iter().filter(|p| p.1 == out).collect();
        let all_read = g.nodes.iter().filter(|m| m.inputs.contains(&Some(out))).count();
        if readers.is_empty() || readers.len() != all_read {
            continue;
        }
        // The norm's weight: a [64] constant operand of a Mul, or a norm op's scale and bias.
        let slots: Vec<usize> = match &n.op {
            Op::Binary { op: kiln_ir::BinaryOp::Mul } => (0..2).collect(),
            Op::LayerNormalization { .. } | Op::RMSNormalization { .. } => vec![1, 2],
            _ => continue,
        };
        let mut scaled = false;
        for s in slots {
            let Some(Some(v)) = n.inputs.get(s).copied() else { continue };
            let Some(t) = g.const_value(v).cloned() else { continue };
            if t.numel() != 64 {
                continue;
            }
            let mut vals = t.to_f64();
            OUTLIERS.iter().for_each(|&j| vals[j] *= 50.0);
            let id = g.add_const(
                format!("{}.outliers", g.value(v).name),
                Arc::new(Tensor::new(vec![64], Data::from_f64(t.dtype(), &vals)).expect("t")),
            );
            g.nodes[i].inputs[s] = Some(id);
            scaled = true;
        }
        if !scaled {
            continue;
        }
        for &&(p, _, w) in &readers {
            let t = g.const_value(w).cloned().expect("a weight");
            let cols = t.dims()[1];
            let mut vals = t.to_f64();
            for &j in &OUTLIERS {
                vals[j * cols..(j + 1) * cols].iter_mut().for_each(|v| *v /= 50.0);
            }
            let id = g.add_const(
                format!("{}.outliers", g.value(w).name),
                Arc::new(Tensor::new(t.dims().to_vec(), Data::from_f64(t.dtype(), &vals)).expect("t")),
            );
            g.nodes[p].inputs[1] = Some(id);
        }
        changed += 1;
    }
    assert!(changed >= 4, "the decoder's norms feeding products were found ({changed})");
    g.reinfer().expect("types");
    g
}

#[test]
fn quantized_decoders_stay_close_to_fp32() {
    for name in DECODERS {
        let (g, like) = decoder(name);
        for (opts, floor) in [(options(Scheme::W8A8, Some(0.5), 128), 0.99), (options(Scheme::W4A16, None, 32), 0.98)] {
            let (cos, err, lines) = quantized_error(&g, &like, &opts);
            println!("{name} {}: worst cosine {cos:.5}, mean relative error {err:.4}", opts.scheme.name());
            assert!(lines.iter().filter(|l| l.starts_with("quantized")).count() >= 8, "{name}: {lines:#?}");
            assert!(lines.iter().any(|l| l.contains("LM head")), "{name}: the LM head stays: {lines:#?}");
            assert!(cos >= floor, "{name} {}: cosine {cos} < {floor}\n{lines:#?}", opts.scheme.name());
        }
    }
}

/// The decoders whose norms feed the products directly (GPT-2's reach its Gemms through a
/// reshape, which `with_outliers` does not follow).
#[test]
fn smoothquant_and_awq_beat_plain_quantization_on_outlier_channels() {
    for name in ["llama_tiny", "qwen2_tiny"] {
        let (g, like) = decoder(name);
        let g = with_outliers(&g);
        // The transformation preserves the function.
        let x = tokens(&like, 7);
        let (c, _) =
            compare(&interp::run(&g, vec![x.clone()]).expect("runs")[0], &interp::run(&decoder(name).0, vec![x]).expect("runs")[0]);
        assert!(c > 0.99999, "{name}: the outlier variant computes the same ({c})");
        let (_, plain, _) = quantized_error(&g, &like, &options(Scheme::W8A8, None, 128));
        let (_, smooth, lines) = quantized_error(&g, &like, &options(Scheme::W8A8, Some(0.5), 128));
        println!("{name} outliers w8a8: relative error {plain:.4} unsmoothed, {smooth:.4} SmoothQuant");
        assert!(lines.iter().any(|l| l.contains("smoothed (SmoothQuant")), "{lines:#?}");
        assert!(smooth < 0.7 * plain, "{name}: SmoothQuant {smooth} vs unsmoothed {plain}");
        let rtn_opts = options(Scheme::W4A16, None, 32);
        let mut rtn_g = g.clone();
        let report = quantize(&mut rtn_g, &rtn_opts, &[]).expect("round to nearest needs no calibration");
        assert!(report.lines().iter().any(|l| l.contains("round to nearest")));
        let (mut rtn, mut awq) = (0.0, 0.0);
        let (_, awq_err, lines) = quantized_error(&g, &like, &rtn_opts);
        for i in 100..104 {
            let x = tokens(&like, i);
            let want = interp::run(&g, vec![x.clone()]).expect("runs");
            rtn += compare(&interp::run(&rtn_g, vec![x]).expect("runs")[0], &want[0]).1 / 4.0;
        }
        awq += awq_err;
        println!("{name} outliers w4a16 g32: relative error {rtn:.4} round to nearest, {awq:.4} AWQ");
        assert!(lines.iter().any(|l| l.contains("AWQ α=")), "{lines:#?}");
        assert!(awq < rtn, "{name}: AWQ {awq} vs round to nearest {rtn}");
    }
}

#[test]
fn w8a8_without_calibration_data_says_so() {
    let (mut g, _) = decoder("llama_tiny");
    let e = quantize(&mut g, &QuantOptions::new(Scheme::W8A8), &[]).expect_err("needs calibration").to_string();
    assert!(e.contains("--calibration"), "{e}");
}

/// The targets have no int8/int4 kernels yet: extraction takes the quantized products' float
/// forms (rules/quant.rs), which compute the quantized model's values. Checked on sm_90's
/// optimized graph in the interpreter and on the 910b bundle in the GE-graph simulator.
#[test]
fn targets_without_quantized_kernels_compute_the_quantized_models_values() {
    let (g, like) = decoder("llama_tiny");
    let calib: Vec<Vec<Tensor>> = (0..4).map(|i| vec![tokens(&like, i)]).collect();
    for opts in [options(Scheme::W8A8, Some(0.5), 128), options(Scheme::W4A16, None, 32)] {
        let mut q = g.clone();
        quantize(&mut q, &opts, &calib).expect("quantizes");
        let x = tokens(&like, 200);
        let want = interp::run(&q, vec![x.clone()]).expect("quantized runs");
        let (opt, _) = kiln_driver::optimize(&q, kiln_driver::Target::Sm90, std::time::Instant::now()).expect("optimizes for sm_90");
        assert!(!opt.nodes.iter().any(|n| matches!(n.op, Op::MatMulQ8 {} | Op::MatMulQ4 { .. })), "no quantized kernel on sm_90 yet");
        let got = interp::run(&opt, vec![x.clone()]).expect("optimized runs");
        let (c, e) = compare(&got[0], &want[0]);
        println!("llama_tiny {} sm_90 float form: cosine {c:.7}, relative error {e:.2e}", opts.scheme.name());
        assert!(e < 1e-4, "{}: {e}", opts.scheme.name());
        let (opt, _) = kiln_driver::optimize(&q, kiln_driver::Target::Ascend910B, std::time::Instant::now()).expect("optimizes for 910b");
        let b = kiln_ascend::bundle::compile(&opt, &kiln_ascend::bundle::Options::default()).expect("a 910b bundle");
        let ops = kiln_ascend::sim::custom_ops(&b).expect("writes ops/");
        let sim_opts = kiln_ascend::sim::Options { force_fp16: false, custom: ops.as_ref().map(|(c, _)| c), weights_dir: None };
        let got = kiln_ascend::sim::run_with(&b.model, &[x], sim_opts).expect("simulates");
        let (c, e) = compare(&got[0], &want[0]);
        println!("llama_tiny {} 910b-sim: cosine {c:.7}, relative error {e:.2e}", opts.scheme.name());
        assert!(e < 1e-4, "{}: {e}", opts.scheme.name());
    }
}

/// Greedy decoding of the golden checkpoints (kiln's own graph builders) quantized, against
/// fp32 in the interpreter, 32 new tokens. These tiny random decoders' top logits are close, so
/// one flipped choice changes the whole rest of a free-running sequence (printed, with fp16's);
/// what is measured is the choice at each step given fp32's history (teacher forcing: the
/// prefill graph over the prompt and fp32's tokens, the argmax at each of the 32 positions).
/// Calibrated recipes see 8 random token sets of that length; the calibration-free ones
/// (`generate --quantize`) are printed beside them.
#[test]
fn quantized_greedy_decoding_keeps_the_fp32_tokens() {
    use kiln_frontend::hf::{generate, import_for_generation, Decode, Prefill, Source};
    const NEW: usize = 32;
    for name in ["llama", "qwen2", "mistral", "gpt2"] {
        let d = dir("hf").join(name);
        let ids = npy::read(&std::fs::read(d.join("input_ids.npy")).expect("ids")).expect("npy").to_i64();
        let build = |seq: usize| {
            let (mut pre, mut dec, shape) =
                import_for_generation(&Source::dir(&d), Prefill { batch: 1, seq }, Decode { batch: 1, max_len: seq + NEW })
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
            kiln_passes::simplify(&mut pre).expect("simplify");
            kiln_passes::simplify(&mut dec).expect("simplify");
            (pre, dec, shape)
        };
        let greedy = |pre: &Graph, dec: &Graph, shape| {
            let mut p = |x: Vec<Tensor>| interp::run(pre, x).map_err(|e| e.to_string());
            let mut q = |x: Vec<Tensor>| interp::run(dec, x).map_err(|e| e.to_string());
            generate::greedy(&ids, NEW, shape, &mut p, &mut q).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let same = |a: &[i64], b: &[i64]| a.iter().zip(b).filter(|(x, y)| x == y).count();
        let (pre, dec, shape) = build(ids.len());
        let want = greedy(&pre, &dec, shape);
        // The next token chosen after each prefix of prompt + fp32's tokens.
        let history: Vec<i64> = ids.iter().chain(&want[..NEW - 1]).copied().collect();
        let forced = |pre: &Graph| -> Vec<i64> {
            let x = Tensor::new(vec![1, history.len()], Data::I64(history.clone())).expect("ids");
            let logits = interp::run(pre, vec![x]).expect("prefill runs").remove(0);
            let v = *logits.dims().last().expect("vocab");
            let l = logits.to_f64();
            (ids.len() - 1..history.len())
                .map(|t| (0..v).max_by(|&a, &b| l[t * v + a].total_cmp(&l[t * v + b])).expect("a token") as i64)
                .collect()
        };
        let (long, _, _) = build(history.len());
        assert_eq!(forced(&long), want, "{name}: teacher forcing reproduces fp32's greedy tokens");
        let mut half = (pre.clone(), dec.clone());
        kiln_passes::convert_precision(&mut half.0, kiln_ir::DType::F16).expect("fp16");
        kiln_passes::convert_precision(&mut half.1, kiln_ir::DType::F16).expect("fp16");
        println!("{name} fp16: free-running {} of {NEW}", same(&greedy(&half.0, &half.1, shape), &want));
        let like = Tensor::new(vec![1, history.len()], Data::I64(history.clone())).expect("ids");
        let calib: Vec<Vec<Tensor>> = (0..8).map(|i| vec![tokens(&like, i)]).collect();
        // (recipe, calibrated, the least share of steps asserted, in 32nds)
        for (opts, calibrated, floor) in [
            (options(Scheme::W8A8, Some(0.5), 128), true, 26),
            (options(Scheme::W8A8, None, 128), false, 24),
            (options(Scheme::W4A16, None, 32), true, 8),
            (options(Scheme::W4A16, None, 32), false, 8),
        ] {
            let mut q = long.clone();
            quantize(&mut q, &opts, if calibrated { &calib } else { &[] }).expect("quantizes");
            let agree = same(&forced(&q), &want);
            let free = if calibrated {
                String::new()
            } else {
                let (mut p, mut d, shape) = build(ids.len());
                quantize(&mut p, &opts, &[]).expect("quantizes");
                quantize(&mut d, &opts, &[]).expect("quantizes");
                format!("; free-running {} of {NEW}", same(&greedy(&p, &d, shape), &want))
            };
            let recipe = match (opts.scheme, calibrated) {
                (Scheme::W8A8, true) => "w8a8 SmoothQuant",
                (Scheme::W8A8, false) => "w8a8 unsmoothed",
                (Scheme::W4A16, true) => "w4a16 g32 AWQ",
                (Scheme::W4A16, false) => "w4a16 g32 round to nearest",
            };
            println!("{name} {recipe}: {agree} of {NEW} steps choose fp32's token given its history{free}");
            assert!(agree >= floor, "{name} {recipe}: {agree} of {NEW} (at least {floor})");
        }
    }
}

/// In fp16 the 910b runs quantized products on CANN's quantized matmuls where its cost model
/// finds them cheaper than the float forms (which fuse epilogues): the bundle holds them and the
/// GE-graph simulator, running their documented semantics, stays with the interpreter's fp16
/// quantized model. W8A8 on llama_tiny (DynamicQuant + QuantBatchMatmulV3); W4A16 on a
/// 2048x2048 product before a ReLU (WeightQuantBatchMatmulV2, a quarter of the weight bytes):
/// smaller ones (llama_tiny's) keep their float forms, which fuse what follows and save a
/// launch (3 µs) worth more than their weights cost.
#[test]
fn the_910b_runs_quantized_products_on_canns_quantized_matmuls_in_fp16() {
    let (g, like) = decoder("llama_tiny");
    let calib: Vec<Vec<Tensor>> = (0..4).map(|i| vec![tokens(&like, i)]).collect();
    let mut wide = Graph::new("wide");
    let x = wide.add_input("x", kiln_ir::TensorType::fixed(kiln_ir::DType::F32, &[8, 2048]));
    let w: Vec<f32> = (0..2048 * 2048).map(|i| ((i as f32 * 0.618).fract() - 0.5) * 0.1).collect();
    let w = wide.add_const("w", Arc::new(Tensor::from_f32s(vec![2048, 2048], w).expect("w")));
    let y = wide.add_node("fc", Op::MatMul {}, vec![Some(x), Some(w)], &[Some("y".into())]).expect("matmul")[0];
    // Not a model output itself (that would be an LM head, kept in 16 bits).
    let r = wide.add_node("act", Op::Unary { op: kiln_ir::UnaryOp::Relu }, vec![y], &[Some("r".into())]).expect("relu")[0];
    wide.outputs = vec![r.expect("r")];
    let wide_x = Tensor::from_f32s(vec![8, 2048], (0..8 * 2048).map(|i| ((i as f32 * 0.377).fract() - 0.5) * 4.0).collect()).expect("x");
    let cases = [
        (g, tokens(&like, 300), calib, options(Scheme::W8A8, Some(0.5), 128), "QuantBatchMatmulV3", 14),
        (wide, wide_x, vec![], options(Scheme::W4A16, None, 128), "WeightQuantBatchMatmulV2", 1),
    ];
    for (g, x, calib, opts, op, count) in cases {
        let mut q = g.clone();
        quantize(&mut q, &opts, &calib).expect("quantizes");
        kiln_passes::convert_precision(&mut q, kiln_ir::DType::F16).expect("fp16");
        let want = interp::run(&q, vec![x.clone()]).expect("quantized fp16 runs");
        let (opt, _) = kiln_driver::optimize(&q, kiln_driver::Target::Ascend910B, std::time::Instant::now()).expect("optimizes for 910b");
        let kept = opt.nodes.iter().filter(|n| matches!(n.op, Op::MatMulQ8 {} | Op::MatMulQ4 { .. })).count();
        assert_eq!(kept, count, "{}: the quantized products stay quantized", opts.scheme.name());
        let b = kiln_ascend::bundle::compile(
            &opt,
            &kiln_ascend::bundle::Options { precision: Some(kiln_ir::DType::F16), external_weights: false },
        )
        .expect("a 910b bundle");
        let ops: Vec<&str> = b.model.graph[0].op.iter().map(|o| o.r#type.as_str()).collect();
        assert_eq!(ops.iter().filter(|t| **t == op).count(), count, "{ops:?}");
        let custom = kiln_ascend::sim::custom_ops(&b).expect("writes ops/");
        let sim_opts = kiln_ascend::sim::Options { force_fp16: true, custom: custom.as_ref().map(|(c, _)| c), weights_dir: None };
        let got = kiln_ascend::sim::run_with(&b.model, &[x], sim_opts).expect("simulates");
        let (c, e) = compare(&got[0], &want[0]);
        println!("{} fp16 910b-sim with {op}: cosine {c:.7}, relative error {e:.2e}", opts.scheme.name());
        assert!(c > 0.9999, "{}: cosine {c}", opts.scheme.name());
    }
}

/// An AWQ checkpoint (AutoAWQ's "gemm" packing, written by golden/hf/make_awq.py with numpy from
/// the golden Llama, 4-bit groups of 32) loads with its projections as `MatMulQ4` and computes
/// what its dequantized fp32 twin (written by the same script) computes.
#[test]
fn an_awq_checkpoint_loads_and_matches_its_dequantized_twin() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let py = root.join(".venv/bin/python");
    assert!(py.exists(), "{} is missing: run tools/ensure-deps.sh --python (the README's test command does)", py.display());
    let out = std::env::temp_dir().join(format!("kiln-awq-{}", std::process::id()));
    let o = std::process::Command::new(py)
        .arg(dir("hf").join("make_awq.py"))
        .arg(dir("hf").join("llama"))
        .arg(&out)
        .arg("32")
        .output()
        .expect("python runs");
    assert!(o.status.success(), "make_awq.py: {}", String::from_utf8_lossy(&o.stderr));
    let ids = npy::read(&std::fs::read(dir("hf").join("llama/input_ids.npy")).expect("ids")).expect("npy");
    let prefill = kiln_frontend::hf::Prefill { batch: 1, seq: ids.numel() };
    let x = Tensor::new(vec![1, ids.numel()], Data::I64(ids.to_i64())).expect("ids");
    let awq = kiln_frontend::hf::import_dir(&out.join("awq"), prefill).expect("the AWQ checkpoint loads");
    let q4 = awq.nodes.iter().filter(|n| matches!(n.op, Op::MatMulQ4 { group_size: 32 })).count();
    assert_eq!(q4, 14, "every decoder-layer projection is 4-bit");
    let twin = kiln_frontend::hf::import_dir(&out.join("twin"), prefill).expect("the twin loads");
    let got = interp::run(&awq, vec![x.clone()]).expect("runs").remove(0);
    let want = interp::run(&twin, vec![x]).expect("runs").remove(0);
    let (c, e) = compare(&got, &want);
    println!("AWQ llama against its dequantized twin: cosine {c:.9}, relative error {e:.2e}");
    assert!(e < 1e-5, "relative error {e}");
    let _ = std::fs::remove_dir_all(out);
}
