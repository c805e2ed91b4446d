//! The optimizer on the golden models, for every target's rules and cost model: the optimized
//! graph verifies, computes what the original computes (within 1e-4 of each output's scale, in
//! the interpreter), fuses as the kernel budgets demand where they are met today, and
//! its memory plan stays within 1.1x of the liveness lower bound.

use kiln_driver::Target;
use kiln_driver::{compare::errors, npy};
use kiln_frontend::onnx::{import_file, ImportOptions};
use kiln_ir::{interp, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

const MODELS: [&str; 6] = ["resnet18_narrow", "mobilenet_v2_narrow", "bert_tiny", "gpt2_tiny", "llama_tiny", "qwen2_tiny"];
const TARGETS: [Target; 3] = [Target::Sm90, Target::Ascend910B, Target::Cpu];

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(name)
}

fn read_npy(p: &Path) -> Tensor {
    npy::read(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The golden model with its input shapes specialized to the golden inputs, and those inputs.
fn load(name: &str) -> (kiln_ir::Graph, Vec<Tensor>) {
    let d = dir(name);
    let g0 = import_file(&d.join("model.onnx"), &ImportOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}")).graph;
    let inputs: Vec<Tensor> = g0.inputs.iter().map(|&i| read_npy(&d.join(format!("input_{}.npy", g0.value(i).name)))).collect();
    let shapes: HashMap<String, Vec<usize>> =
        g0.inputs.iter().zip(&inputs).map(|(&i, t)| (g0.value(i).name.clone(), t.dims().to_vec())).collect();
    let mut g = import_file(&d.join("model.onnx"), &ImportOptions { input_shapes: shapes, ..Default::default() }).expect("import").graph;
    kiln_passes::simplify(&mut g).unwrap_or_else(|e| panic!("{name}: {e}"));
    (g, inputs)
}

#[test]
fn optimized_golden_models_compute_what_the_originals_compute() {
    for name in MODELS {
        let (g, inputs) = load(name);
        let want = interp::run(&g, inputs.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        for target in TARGETS {
            let (opt, rep) = kiln_driver::optimize(&g, target, Instant::now()).unwrap_or_else(|e| panic!("{name} {target}: {e:#}"));
            let got = interp::run(&opt, inputs.clone()).unwrap_or_else(|e| panic!("{name} {target}: {e}"));
            for (k, (a, b)) in got.iter().zip(&want).enumerate() {
                assert_eq!(a.dims(), b.dims(), "{name} {target} output {k}: shape");
                let (av, bv) = (a.to_f64(), b.to_f64());
                let scale = bv.iter().fold(0f64, |m, v| m.max(v.abs())).max(f64::MIN_POSITIVE);
                let rel = errors(&av, &bv).max_abs / scale;
                let e = &rep.eqsat;
                println!(
                    "{name} {target}: {} -> {} ops, {} kernels, {} ({} iterations, {:.0} ms), output {k} error {rel:.2e} of scale",
                    e.ops_before, e.ops_after, e.kernels, e.stop_reason, e.iterations, e.eqsat_ms
                );
                assert!(rel <= 1e-4, "{name} {target} output {k}: error {rel:.3e} of the output's scale");
            }
            let (arena, lb) = (rep.arena_bytes.expect("static shapes plan"), rep.arena_lower_bound_bytes.expect("plan"));
            assert!(arena as f64 <= 1.1 * lb as f64, "{name} {target}: arena {arena} B vs lower bound {lb} B");
        }
    }
}

/// resnet18 for sm_90 within the budget of 24 kernels (20 convolutions with their
/// BatchNorm, ReLU and residual add fused, max pool, global pool, classifier).
#[test]
fn resnet18_fuses_into_at_most_24_kernels_for_sm90() {
    let (g, _) = load("resnet18_narrow");
    let (_, rep) = kiln_driver::optimize(&g, Target::Sm90, Instant::now()).expect("optimize");
    println!("resnet18: {} kernels, rules {:?}", rep.eqsat.kernels, rep.eqsat.rules_fired);
    assert!(rep.eqsat.kernels <= 24, "{} kernels", rep.eqsat.kernels);
    assert!(rep.eqsat.rules_fired.get("fusion/conv-epilogue").is_some_and(|&n| n > 0));
}

/// The kernels of an optimized graph by op name (views are free and not listed).
fn kernel_ops(g: &kiln_ir::Graph) -> Vec<String> {
    g.nodes.iter().filter(|n| !n.op.is_view()).map(|n| n.op.display_name().to_string()).collect()
}

/// A transformer golden for sm_90: at most `per_layer` kernels per layer plus `outside` for
/// what is not in a layer, one Attention per layer, and no head data movement left.
fn transformer_budget(name: &str, layers: usize, per_layer: usize, outside: usize) -> Vec<String> {
    let (g, _) = load(name);
    let (opt, rep) = kiln_driver::optimize(&g, Target::Sm90, Instant::now()).expect("optimize");
    let ops = kernel_ops(&opt);
    println!("{name}: {} kernels {ops:?}", rep.eqsat.kernels);
    assert_eq!(ops.len(), rep.eqsat.kernels, "the report counts the graph's kernels");
    assert!(rep.eqsat.kernels <= layers * per_layer + outside, "{name}: {} kernels for {layers} layers", rep.eqsat.kernels);
    assert_eq!(ops.iter().filter(|o| *o == "Attention").count(), layers, "{name}: one Attention per layer");
    for moved in ["Transpose", "Expand", "Softmax", "Concat"] {
        assert!(!ops.iter().any(|o| o == moved), "{name}: a {moved} kernel is left");
    }
    ops
}

/// BERT: ≤ 8 kernels per encoder layer (QKV, attention, projection + residual, norm, FFN up +
/// GELU, FFN down + residual, norm); outside the layers: word-embedding gather, embedding sum,
/// embedding LayerNorm, and the padding mask's scaling.
#[test]
fn bert_layers_fuse_into_at_most_8_kernels_for_sm90() {
    let ops = transformer_budget("bert_tiny", 2, 8, 4);
    assert_eq!(ops.iter().filter(|o| *o == "LayerNormalization").count(), 2 * 2 + 1);
}

/// GPT-2 (its own budget, like BERT's: the causal mask built with Where, and QKV as one Gemm
/// split three ways): ≤ 8 kernels per layer; outside: token gather, position add, final
/// LayerNorm, lm_head.
#[test]
fn gpt2_layers_fuse_into_at_most_8_kernels_for_sm90() {
    let ops = transformer_budget("gpt2_tiny", 2, 8, 4);
    assert!(!ops.iter().any(|o| o == "Split" || o == "Where"), "{ops:?}");
}

/// Llama and Qwen2: ≤ 9 kernels per decoder layer (RMSNorm, QKV, rotary for Q and K,
/// attention, projection + residual, RMSNorm, gate/up + SwiGLU, down + residual); outside the
/// layers: embedding gather, final RMSNorm, lm_head.
#[test]
fn llama_and_qwen2_layers_fuse_into_at_most_9_kernels_for_sm90() {
    for name in ["llama_tiny", "qwen2_tiny"] {
        let ops = transformer_budget(name, 2, 9, 3);
        assert_eq!(ops.iter().filter(|o| *o == "RotaryEmbedding").count(), 2 * 2, "{name}: rotary for Q and K");
    }
}

/// A chain of 20,000 elementwise ops (the pathological case: 4,000 took 13 s, all
/// of it the e-graph growing one fusion per iteration) is cut into bodies before the e-graph,
/// which then saturates in one pass for every target; the result computes what the chain does.
#[test]
fn a_20000_op_elementwise_chain_saturates_for_every_target() {
    use kiln_ir::{BinaryOp, DType, Data, Op, TensorType, UnaryOp};
    let mut g = kiln_ir::Graph::new("chain");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[1, 64]));
    let mut v = x;
    for i in 0..20_000 {
        let (op, ins) = match i % 5 {
            0 => (Op::Binary { op: BinaryOp::Add }, vec![Some(v), Some(x)]),
            1 => (Op::Unary { op: UnaryOp::Tanh }, vec![Some(v)]),
            2 => (Op::Unary { op: UnaryOp::Sigmoid }, vec![Some(v)]),
            3 => (Op::Unary { op: UnaryOp::Neg }, vec![Some(v)]),
            _ => (Op::Unary { op: UnaryOp::Relu }, vec![Some(v)]),
        };
        v = g.add_node(format!("n{i}"), op, ins, &[Some(format!("v{i}"))]).expect("node")[0].expect("output");
    }
    g.outputs = vec![v];
    let input = Tensor::new(vec![1, 64], Data::F32((0..64).map(|i| i as f32 / 16.0 - 2.0).collect())).expect("input");
    let want = interp::run(&g, vec![input.clone()]).expect("run");
    for t in TARGETS {
        let (opt, report) = kiln_driver::optimize(&g, t, Instant::now()).unwrap_or_else(|e| panic!("{t}: {e}"));
        assert_eq!(report.eqsat.stop_reason.to_string(), "saturated", "{t}");
        assert_eq!(
            opt.nodes.len(),
            20_000usize.div_ceil(kiln_passes::rules::MAX_BODY),
            "{t}: one kernel per {} ops",
            kiln_passes::rules::MAX_BODY
        );
        assert_eq!(interp::run(&opt, vec![input.clone()]).expect("run"), want, "{t}");
    }
}
