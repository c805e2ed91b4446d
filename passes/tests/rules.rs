//! Every rule: a graph where it fires (and the optimized graph computes the same thing in the
//! interpreter on random inputs) and one where it must not fire.

use kiln_ir::text::parse;
use kiln_ir::{interp, DType, Graph, Op, Tensor, TensorType};
use kiln_passes::eqsat::roofline::Peaks;
use kiln_passes::eqsat::{optimize, CostModel, EqsatReport, Limits};
use std::collections::HashMap;

/// A GPU-like roofline (H100 figures) so fusion pays.
struct Gpu;
impl CostModel for Gpu {
    fn name(&self) -> &'static str {
        "test-gpu"
    }
    fn op_cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        Peaks { bytes_per_us: 3.0e6, matrix_f16: 7.5e8, matrix_f32: 5.0e7, matrix_i8: 1.5e9, vector: 5.0e7, launch_us: 2.0 }
            .cost(op, ins, outs)
    }
}

/// Deterministic pseudo-random input for each graph input (floats in [-2, 2)).
pub fn random_inputs(g: &Graph, seed: u64) -> Vec<Tensor> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    g.inputs
        .iter()
        .map(|&i| {
            let ty = &g.value(i).ty;
            let dims = ty.shape.as_fixed().expect("static test shapes");
            let n: usize = dims.iter().product();
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
                })
                .collect();
            let v = if ty.dtype == DType::F32 { v } else { v.iter().map(|x| x.round()).collect() };
            Tensor::new(dims, kiln_ir::Data::from_f64(ty.dtype, &v)).expect("size")
        })
        .collect()
}

/// Optimizes `src` with every rule and checks the result against the original on random inputs.
fn run(src: &str) -> (Graph, EqsatReport) {
    let g = parse(src, &HashMap::new()).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let (opt, rep) = optimize(&g, &kiln_passes::rules::all(), &Gpu, Limits::default()).unwrap_or_else(|e| panic!("{e}"));
    kiln_ir::verify(&opt).unwrap_or_else(|e| panic!("{e}\n{}", kiln_ir::text::print(&opt)));
    for seed in 0..3 {
        let x = random_inputs(&g, seed);
        let want = interp::run(&g, x.clone()).expect("original runs");
        let got = interp::run(&opt, x).unwrap_or_else(|e| panic!("{e}\n{}", kiln_ir::text::print(&opt)));
        for (a, b) in got.iter().zip(&want) {
            assert_eq!(a.dims(), b.dims());
            for (p, q) in a.to_f64().iter().zip(b.to_f64()) {
                assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{p} vs {q}\n{}", kiln_ir::text::print(&opt));
            }
        }
    }
    (opt, rep)
}

fn fired(rep: &EqsatReport, rule: &str) -> usize {
    rep.rules_fired.get(rule).copied().unwrap_or(0)
}

fn kinds(g: &Graph) -> Vec<&'static str> {
    g.nodes.iter().map(|n| n.op.display_name()).collect()
}

const MLP: &str = r#"graph "g" (%x: f32[4,8], %r: f32[4,6]) {
  %w = const f32[8,6] [0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8]
  %b = const f32[6] [0.1, -0.2, 0.3, -0.4, 0.5, -0.6]
  %mm = MatMul[mm](%x, %w) : f32[4,6]
  %s = Add[s](%mm, %b) : f32[4,6]
  %a = Relu[a](%s) : f32[4,6]
  %y = Add[y](%a, %r) : f32[4,6]
  return %y
}
"#;

#[test]
fn matmul_epilogue_fuses_bias_activation_and_residual() {
    let (opt, rep) = run(MLP);
    assert!(fired(&rep, "fusion/matmul-epilogue") > 0);
    assert_eq!(kinds(&opt), ["MatMulFused"]);
}

#[test]
fn matmul_epilogue_does_not_fuse_a_broadcasting_consumer() {
    // The add broadcasts the product [4,1] to [4,6]: the epilogue would run per output element.
    let src = r#"graph "g" (%x: f32[4,8], %w: f32[8,1], %r: f32[4,6]) {
  %mm = MatMul[mm](%x, %w) : f32[4,1]
  %y = Add[y](%mm, %r) : f32[4,6]
  return %y
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "fusion/matmul-epilogue"), 0);
    assert_eq!(kinds(&opt), ["MatMul", "Add"]);
}

#[test]
fn matmul_epilogue_is_not_chosen_when_the_product_is_also_read_elsewhere() {
    // Fusing would compute the product twice; the extraction keeps the plain MatMul.
    let src = r#"graph "g" (%x: f32[64,64], %w: f32[64,64]) {
  %mm = MatMul[mm](%x, %w) : f32[64,64]
  %a = Relu[a](%mm) : f32[64,64]
  return %a, %mm
}
"#;
    let (opt, rep) = run(src);
    assert!(fired(&rep, "fusion/matmul-epilogue") > 0, "the rule fires; the cost model decides");
    assert_eq!(kinds(&opt), ["MatMul", "Relu"]);
}

#[test]
fn elementwise_chain_becomes_one_kernel() {
    let src = r#"graph "g" (%x: f32[16], %y: f32[16]) {
  %a = Add[a](%x, %y) : f32[16]
  %b = Exp[b](%a) : f32[16]
  %c = Neg[c](%b) : f32[16]
  %d = Mul[d](%c, %x) : f32[16]
  return %d
}
"#;
    let (opt, rep) = run(src);
    assert!(fired(&rep, "fusion/elementwise-chain") > 0);
    assert_eq!(kinds(&opt), ["FusedElementwise"]);
}

#[test]
fn elementwise_chain_does_not_absorb_a_reduction() {
    let src = r#"graph "g" (%x: f32[4,16]) {
  %axes = const i64[1] [1]
  %e = Exp[e](%x) : f32[4,16]
  %s = Reduce[s](%e, %axes) {kind=sum, keepdims=true, noop_with_empty_axes=false} : f32[4,1]
  %l = Log[l](%s) : f32[4,1]
  return %l
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "fusion/elementwise-chain"), 0);
    assert_eq!(kinds(&opt), ["Exp", "Reduce", "Log"]);
}

const CONV: &str = r#"graph "g" (%x: f32[1,2,5,5], %r: f32[1,2,5,5]) {
  %w = const f32[2,2,1,1] [0.5, -1.0, 2.0, 0.25]
  %c = Conv[c](%x, %w) {kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1, auto_pad=notset} : f32[1,2,5,5]
  %s = Add[s](%c, %r) : f32[1,2,5,5]
  %y = Relu[y](%s) : f32[1,2,5,5]
  return %y
}
"#;

#[test]
fn conv_epilogue_fuses_residual_and_activation() {
    let (opt, rep) = run(CONV);
    assert!(fired(&rep, "fusion/conv-epilogue") > 0);
    assert_eq!(kinds(&opt), ["ConvFused"]);
}

#[test]
fn conv_epilogue_does_not_absorb_a_non_elementwise_consumer() {
    let src = r#"graph "g" (%x: f32[1,2,5,5], %w: f32[2,2,1,1]) {
  %c = Conv[c](%x, %w) {kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1, auto_pad=notset} : f32[1,2,5,5]
  %p = GlobalPool[p](%c) {kind=average, p=2} : f32[1,2,1,1]
  return %p
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "fusion/conv-epilogue"), 0);
    assert_eq!(kinds(&opt), ["Conv", "GlobalPool"]);
}

#[test]
fn batchnorm_folds_into_a_conv_with_constant_weights() {
    let src = r#"graph "g" (%x: f32[1,2,3,3]) {
  %w = const f32[2,2,1,1] [0.5, -1.0, 2.0, 0.25]
  %b = const f32[2] [0.1, 0.2]
  %sc = const f32[2] [1.5, 0.5]
  %sh = const f32[2] [0.1, -0.1]
  %m = const f32[2] [0.2, -0.3]
  %v = const f32[2] [0.9, 1.1]
  %c = Conv[c](%x, %w, %b) {kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1, auto_pad=notset} : f32[1,2,3,3]
  %y = BatchNormalization[bn](%c, %sc, %sh, %m, %v) {epsilon=1e-5, momentum=0.9, training=false} : f32[1,2,3,3]
  return %y
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/batchnorm-into-conv"), 1);
    assert_eq!(kinds(&opt), ["Conv"]);
}

#[test]
fn batchnorm_does_not_fold_into_a_conv_with_runtime_weights() {
    let src = r#"graph "g" (%x: f32[1,2,3,3], %w: f32[2,2,1,1]) {
  %sc = const f32[2] [1.5, 0.5]
  %sh = const f32[2] [0.1, -0.1]
  %m = const f32[2] [0.2, -0.3]
  %v = const f32[2] [0.9, 1.1]
  %c = Conv[c](%x, %w) {kernel_shape=[1, 1], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1, auto_pad=notset} : f32[1,2,3,3]
  %y = BatchNormalization[bn](%c, %sc, %sh, %m, %v) {epsilon=1e-5, momentum=0.9, training=false} : f32[1,2,3,3]
  return %y
}
"#;
    let (_, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/batchnorm-into-conv"), 0);
}

const QKV: &str = r#"graph "g" (%x: f32[4,4]) {
  %wq = const f32[4,2] [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
  %wk = const f32[4,2] [-0.1, 0.2, -0.3, 0.4, -0.5, 0.6, -0.7, 0.8]
  %wv = const f32[4,2] [1.1, 0.2, 1.3, 0.4, 1.5, 0.6, 1.7, 0.8]
  %q = MatMul[q](%x, %wq) : f32[4,2]
  %k = MatMul[k](%x, %wk) : f32[4,2]
  %v = MatMul[v](%x, %wv) : f32[4,2]
  return %q, %k, %v
}
"#;

#[test]
fn matmuls_sharing_an_input_merge_into_one() {
    let (opt, rep) = run(QKV);
    assert_eq!(fired(&rep, "algebra/merge-matmuls"), 3);
    assert_eq!(kinds(&opt), ["MatMulFused"]);
    assert_eq!(opt.nodes[0].outputs.len(), 3);
}

#[test]
fn matmuls_with_different_inputs_do_not_merge() {
    let src = QKV.replace("%v = MatMul[v](%x, %wv)", "%v = MatMul[v](%q2, %wv)").replace("(%x: f32[4,4])", "(%x: f32[4,4], %q2: f32[4,4])");
    let (opt, rep) = run(&src);
    assert_eq!(fired(&rep, "algebra/merge-matmuls"), 2);
    assert_eq!(kinds(&opt).iter().filter(|k| **k == "MatMul").count(), 1);
}

#[test]
fn gemm_becomes_matmul_with_a_bias_epilogue() {
    let src = r#"graph "g" (%x: f32[2,3]) {
  %w = const f32[4,3] [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0]
  %b = const f32[4] [0.5, -0.5, 1.5, -1.5]
  %y = Gemm[fc](%x, %w, %b) {alpha=1.0, beta=1.0, trans_a=false, trans_b=true} : f32[2,4]
  return %y
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/gemm-to-matmul"), 1);
    assert_eq!(kinds(&opt), ["MatMulFused"]);
}

#[test]
fn gemm_with_a_scale_stays_gemm() {
    let src = r#"graph "g" (%x: f32[2,3], %w: f32[3,4]) {
  %y = Gemm[fc](%x, %w) {alpha=2.0, beta=1.0, trans_a=false, trans_b=false} : f32[2,4]
  return %y
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/gemm-to-matmul"), 0);
    assert_eq!(kinds(&opt), ["Gemm"]);
}
