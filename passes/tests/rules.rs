//! Every rule: a graph where it fires (and the optimized graph computes the same thing in the
//! interpreter on random inputs) and one where it must not fire.

mod common;
use common::rule_check::{fired, kinds, run};

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

#[test]
fn transposes_that_cancel_disappear() {
    let src = r#"graph "g" (%x: f32[2,3,4]) {
  %t = Transpose[t](%x) {perm=[2, 0, 1]} : f32[4,2,3]
  %u = Transpose[u](%t) {perm=[1, 2, 0]} : f32[2,3,4]
  %y = Neg[y](%u) : f32[2,3,4]
  return %y
}
"#;
    let (opt, rep) = run(src);
    assert!(fired(&rep, "algebra/transpose-transpose") > 0);
    assert_eq!(kinds(&opt), ["Neg"]);
}

#[test]
fn transposes_that_do_not_cancel_compose_into_one() {
    let src = r#"graph "g" (%x: f32[2,3,4]) {
  %t = Transpose[t](%x) {perm=[2, 0, 1]} : f32[4,2,3]
  %u = Transpose[u](%t) {perm=[0, 2, 1]} : f32[4,3,2]
  return %u
}
"#;
    let (opt, rep) = run(src);
    assert!(fired(&rep, "algebra/transpose-transpose") > 0);
    assert_eq!(kinds(&opt), ["Transpose"]);
}

#[test]
fn reshape_of_reshape_reads_the_original() {
    let src = r#"graph "g" (%x: f32[2,6]) {
  %s1 = const i64[3] [2, 3, 2]
  %s2 = const i64[2] [3, 4]
  %a = Reshape[a](%x, %s1) {allowzero=false} : f32[2,3,2]
  %b = Reshape[b](%a, %s2) {allowzero=false} : f32[3,4]
  return %b
}
"#;
    let (opt, rep) = run(src);
    assert!(fired(&rep, "algebra/reshape-reshape") > 0);
    assert_eq!(kinds(&opt), ["Reshape"]);
}

#[test]
fn reshape_with_a_zero_dim_is_not_collapsed() {
    // A 0 copies the reshaped value's dim: collapsing would copy a different one.
    let src = r#"graph "g" (%x: f32[2,6]) {
  %s1 = const i64[3] [3, 2, 2]
  %s2 = const i64[2] [0, 4]
  %a = Reshape[a](%x, %s1) {allowzero=false} : f32[3,2,2]
  %b = Reshape[b](%a, %s2) {allowzero=false} : f32[3,4]
  return %b
}
"#;
    let (_, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/reshape-reshape"), 0);
}

#[test]
fn view_to_the_same_shape_is_its_input() {
    let src = r#"graph "g" (%x: f32[2,3]) {
  %s = const i64[2] [2, 3]
  %a = Reshape[a](%x, %s) {allowzero=false} : f32[2,3]
  %b = Exp[b](%a) : f32[2,3]
  return %b
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/view-noop"), 1);
    assert_eq!(kinds(&opt), ["Exp"]);
}

#[test]
fn view_that_changes_the_shape_stays() {
    let src = r#"graph "g" (%x: f32[2,3]) {
  %s = const i64[2] [3, 2]
  %a = Reshape[a](%x, %s) {allowzero=false} : f32[3,2]
  return %a
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/view-noop"), 0);
    assert_eq!(kinds(&opt), ["Reshape"]);
}

#[test]
fn widening_cast_round_trip_is_the_input() {
    let src = r#"graph "g" (%x: i32[4]) {
  %a = Cast[a](%x) {to=i64, saturate=true, round_mode=up} : i64[4]
  %b = Cast[b](%a) {to=i32, saturate=true, round_mode=up} : i32[4]
  %c = Neg[c](%b) : i32[4]
  return %c
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/cast-roundtrip"), 1);
    assert_eq!(kinds(&opt), ["Neg"]);
}

#[test]
fn narrowing_cast_round_trip_stays() {
    // f32 → f16 → f32 rounds: not an identity.
    let src = r#"graph "g" (%x: f32[4]) {
  %a = Cast[a](%x) {to=f16, saturate=true, round_mode=up} : f16[4]
  %b = Cast[b](%a) {to=f32, saturate=true, round_mode=up} : f32[4]
  return %b
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/cast-roundtrip"), 0);
    assert!(!opt.nodes.is_empty());
}

#[test]
fn adding_zero_and_multiplying_by_one_vanish() {
    let src = r#"graph "g" (%x: f32[2,3]) {
  %z = const f32[3] [0.0, 0.0, 0.0]
  %o = const f32[] [1.0]
  %a = Add[a](%x, %z) : f32[2,3]
  %b = Mul[b](%o, %a) : f32[2,3]
  %c = Exp[c](%b) : f32[2,3]
  return %c
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/neutral-element"), 2);
    assert_eq!(kinds(&opt), ["Exp"]);
}

#[test]
fn adding_zero_that_broadcasts_stays() {
    // x [3] + zeros [2,3] has shape [2,3]: not x.
    let src = r#"graph "g" (%x: f32[3]) {
  %z = const f32[2,3] [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
  %a = Add[a](%x, %z) : f32[2,3]
  return %a
}
"#;
    let (_, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/neutral-element"), 0);
}

#[test]
fn scalar_scale_of_a_matmul_goes_into_the_weights() {
    let src = r#"graph "g" (%x: f32[2,2]) {
  %w = const f32[2,2] [1.0, 2.0, 3.0, 4.0]
  %s = const f32[] [8.0]
  %m = MatMul[m](%x, %w) : f32[2,2]
  %d = Div[d](%m, %s) : f32[2,2]
  return %d
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/scale-into-weights"), 1);
    assert_eq!(kinds(&opt), ["MatMul"]);
}

#[test]
fn tensor_scale_of_a_matmul_stays_an_epilogue() {
    let src = r#"graph "g" (%x: f32[2,2]) {
  %w = const f32[2,2] [1.0, 2.0, 3.0, 4.0]
  %s = const f32[2] [8.0, 2.0]
  %m = MatMul[m](%x, %w) : f32[2,2]
  %d = Div[d](%m, %s) : f32[2,2]
  return %d
}
"#;
    let (_, rep) = run(src);
    assert_eq!(fired(&rep, "algebra/scale-into-weights"), 0);
}

const GELU_ERF: &str = r#"graph "g" (%x: f32[8]) {
  %r2 = const f32[] [1.4142135]
  %one = const f32[] [1.0]
  %half = const f32[] [0.5]
  %d = Div[d](%x, %r2) : f32[8]
  %e = Erf[e](%d) : f32[8]
  %a = Add[a](%e, %one) : f32[8]
  %m = Mul[m](%x, %a) : f32[8]
  %y = Mul[y](%m, %half) : f32[8]
  return %y
}
"#;

#[test]
fn erf_gelu_is_recognized() {
    let (opt, rep) = run(GELU_ERF);
    assert_eq!(fired(&rep, "patterns/gelu-erf"), 1);
    assert_eq!(kinds(&opt), ["Gelu"]);
}

#[test]
fn erf_gelu_with_another_constant_is_not_gelu() {
    let (_, rep) = run(&GELU_ERF.replace("[0.5]", "[0.25]"));
    assert_eq!(fired(&rep, "patterns/gelu-erf"), 0);
}

const GELU_TANH: &str = r#"graph "g" (%x: f32[8]) {
  %three = const f32[] [3.0]
  %c1 = const f32[] [0.044715]
  %c2 = const f32[] [0.7978846]
  %one = const f32[] [1.0]
  %half = const f32[] [0.5]
  %hx = Mul[hx](%half, %x) : f32[8]
  %p = Pow[p](%x, %three) : f32[8]
  %q = Mul[q](%c1, %p) : f32[8]
  %s = Add[s](%x, %q) : f32[8]
  %t = Mul[t](%c2, %s) : f32[8]
  %th = Tanh[th](%t) : f32[8]
  %a = Add[a](%one, %th) : f32[8]
  %y = Mul[y](%hx, %a) : f32[8]
  return %y
}
"#;

#[test]
fn tanh_gelu_is_recognized() {
    let (opt, rep) = run(GELU_TANH);
    assert_eq!(fired(&rep, "patterns/gelu-tanh"), 1);
    assert_eq!(kinds(&opt), ["Gelu"]);
}

/// GELU's constants as a reduced-precision graph stores them (`--precision fp16` converts
/// before the optimizer runs): f16's nearest values to 0.044715 and √(2/π).
#[test]
fn tanh_gelu_in_f16_is_recognized() {
    let src = GELU_TANH.replace("f32", "f16").replace("[0.044715]", "[0.04470825]").replace("[0.7978846]", "[0.7978516]");
    let g = kiln_ir::text::parse(&src, &Default::default()).expect("parses");
    let rules = kiln_passes::rules::all();
    let (opt, rep) = kiln_passes::eqsat::optimize(&g, &rules, &common::Gpu, Default::default()).expect("optimizes");
    assert_eq!(fired(&rep, "patterns/gelu-tanh"), 1);
    assert_eq!(kinds(&opt), ["Gelu"]);
    // A constant beyond f16's rounding of 0.044715 is another function.
    let other = src.replace("[0.04470825]", "[0.0448]");
    let g = kiln_ir::text::parse(&other, &Default::default()).expect("parses");
    let (_, rep) = kiln_passes::eqsat::optimize(&g, &rules, &common::Gpu, Default::default()).expect("optimizes");
    assert_eq!(fired(&rep, "patterns/gelu-tanh"), 0);
}

#[test]
fn tanh_gelu_with_a_square_is_not_gelu() {
    let (_, rep) = run(&GELU_TANH.replace("[3.0]", "[2.0]"));
    assert_eq!(fired(&rep, "patterns/gelu-tanh"), 0);
}

const RMS: &str = r#"graph "g" (%x: f32[2,4]) {
  %two = const f32[] [2.0]
  %axes = const i64[1] [-1]
  %eps = const f32[] [1e-6]
  %one = const f32[] [1.0]
  %w = const f32[4] [1.0, 0.5, -1.0, 2.0]
  %p = Pow[p](%x, %two) : f32[2,4]
  %m = Reduce[m](%p, %axes) {kind=mean, keepdims=true, noop_with_empty_axes=false} : f32[2,1]
  %a = Add[a](%m, %eps) : f32[2,1]
  %s = Sqrt[s](%a) : f32[2,1]
  %r = Div[r](%one, %s) : f32[2,1]
  %n = Mul[n](%x, %r) : f32[2,4]
  %y = Mul[y](%w, %n) : f32[2,4]
  return %y
}
"#;

#[test]
fn rms_norm_is_recognized() {
    let (opt, rep) = run(RMS);
    assert_eq!(fired(&rep, "patterns/rms-norm"), 1);
    assert_eq!(kinds(&opt), ["RMSNormalization"]);
}

#[test]
fn mean_over_another_axis_is_not_rms_norm() {
    let src = RMS
        .replace("%x: f32[2,4]", "%x: f32[4,4]")
        .replace("[2,4]", "[4,4]")
        .replace("%axes = const i64[1] [-1]", "%axes = const i64[1] [0]")
        .replace("f32[2,1]", "f32[1,4]");
    let (_, rep) = run(&src);
    assert_eq!(fired(&rep, "patterns/rms-norm"), 0);
}

#[test]
fn silu_is_recognized() {
    let src = r#"graph "g" (%x: f32[8]) {
  %s = Sigmoid[s](%x) : f32[8]
  %y = Mul[y](%x, %s) : f32[8]
  return %y
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "patterns/silu"), 1);
    assert_eq!(kinds(&opt), ["Swish"]);
}

#[test]
fn gated_sigmoid_is_not_silu() {
    let src = r#"graph "g" (%x: f32[8], %g: f32[8]) {
  %s = Sigmoid[s](%g) : f32[8]
  %y = Mul[y](%x, %s) : f32[8]
  return %y
}
"#;
    let (_, rep) = run(src);
    assert_eq!(fired(&rep, "patterns/silu"), 0);
}

const ATTENTION: &str = r#"graph "g" (%q: f32[1,2,4,8], %k: f32[1,2,4,8], %v: f32[1,2,4,8], %mask: f32[1,1,4,4]) {
  %c = const f32[] [2.828427]
  %kt = Transpose[kt](%k) {perm=[0, 1, 3, 2]} : f32[1,2,8,4]
  %s = MatMul[s](%q, %kt) : f32[1,2,4,4]
  %d = Div[d](%s, %c) : f32[1,2,4,4]
  %a = Add[a](%d, %mask) : f32[1,2,4,4]
  %p = Softmax[p](%a) {axis=-1, legacy=false} : f32[1,2,4,4]
  %y = MatMul[y](%p, %v) : f32[1,2,4,8]
  return %y
}
"#;

#[test]
fn attention_is_recognized() {
    let (opt, rep) = run(ATTENTION);
    assert_eq!(fired(&rep, "patterns/attention"), 1);
    assert_eq!(kinds(&opt), ["Attention"]);
}

#[test]
fn attention_over_keys_transposed_with_the_heads_is_recognized() {
    // The exporter merges "split heads" and "transpose K" into one Transpose of [b, s, h, d].
    let src = r#"graph "g" (%q: f32[1,2,4,8], %k0: f32[1,4,2,8], %v: f32[1,2,4,8]) {
  %kt = Transpose[kt](%k0) {perm=[0, 2, 3, 1]} : f32[1,2,8,4]
  %s = MatMul[s](%q, %kt) : f32[1,2,4,4]
  %p = Softmax[p](%s) {axis=-1, legacy=false} : f32[1,2,4,4]
  %y = MatMul[y](%p, %v) : f32[1,2,4,8]
  return %y
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "patterns/attention"), 1);
    assert!(kinds(&opt).contains(&"Attention"));
}

#[test]
fn softmax_over_another_axis_is_not_attention() {
    let (_, rep) = run(&ATTENTION.replace("{axis=-1, legacy=false}", "{axis=2, legacy=false}"));
    assert_eq!(fired(&rep, "patterns/attention"), 0);
}

#[test]
fn a_mask_that_broadcasts_the_scores_is_not_an_attention_mask() {
    // A mask with batch 2 over scores with batch 1 makes the scores (and the result) batch 2:
    // an Attention op would return batch 1.
    let src = ATTENTION.replace("%mask: f32[1,1,4,4]", "%mask: f32[2,1,4,4]").replace(": f32[1,2,4,4]\n  %p", ": f32[2,2,4,4]\n  %p");
    let src = src
        .replace("%p = Softmax[p](%a) {axis=-1, legacy=false} : f32[1,2,4,4]", "%p = Softmax[p](%a) {axis=-1, legacy=false} : f32[2,2,4,4]")
        .replace("%y = MatMul[y](%p, %v) : f32[1,2,4,8]", "%y = MatMul[y](%p, %v) : f32[2,2,4,8]");
    let (_, rep) = run(&src);
    assert_eq!(fired(&rep, "patterns/attention"), 0);
}

/// LayerNorm as PyTorch exports it below opset 17.
const LAYER_NORM: &str = r#"graph "g" (%x: f32[2,4]) {
  %two = const f32[] [2.0]
  %axes = const i64[1] [-1]
  %eps = const f32[] [1e-5]
  %w = const f32[4] [1.0, 0.5, -1.0, 2.0]
  %b = const f32[4] [0.1, 0.2, 0.3, -0.4]
  %m = Reduce[m](%x, %axes) {kind=mean, keepdims=true, noop_with_empty_axes=false} : f32[2,1]
  %d = Sub[d](%x, %m) : f32[2,4]
  %p = Pow[p](%d, %two) : f32[2,4]
  %v = Reduce[v](%p, %axes) {kind=mean, keepdims=true, noop_with_empty_axes=false} : f32[2,1]
  %a = Add[a](%v, %eps) : f32[2,1]
  %s = Sqrt[s](%a) : f32[2,1]
  %n = Div[n](%d, %s) : f32[2,4]
  %y = Mul[y](%n, %w) : f32[2,4]
  %z = Add[z](%y, %b) : f32[2,4]
  return %z
}
"#;

#[test]
fn decomposed_layer_norm_is_recognized() {
    let (opt, rep) = run(LAYER_NORM);
    assert_eq!(fired(&rep, "patterns/layer-norm"), 1);
    assert_eq!(kinds(&opt), ["LayerNormalization"]);
}

/// `--precision fp16` keeps a norm's statistics in f32 between casts: the exporter patterns
/// still see the norm, and nothing of the decomposition is left.
#[test]
fn norms_are_recognized_in_a_reduced_precision_graph() {
    for (src, rule, want, variance) in
        [(RMS, "patterns/rms-norm", "RMSNormalization", "m"), (LAYER_NORM, "patterns/layer-norm", "LayerNormalization", "v")]
    {
        let mut g = kiln_ir::text::parse(src, &Default::default()).expect("parses");
        kiln_passes::convert_precision(&mut g, kiln_ir::DType::F16).expect("converts");
        let v = g.values.iter().find(|v| v.name == variance).expect("the mean square");
        assert_eq!(v.ty.dtype, kiln_ir::DType::F32, "{want}: the mean square is not kept f32");
        let rules = kiln_passes::rules::all();
        let (opt, rep) = kiln_passes::eqsat::optimize(&g, &rules, &common::Gpu, Default::default()).expect("optimizes");
        assert_eq!(fired(&rep, rule), 1, "{want}");
        let k = kinds(&opt);
        assert!(k.contains(&want) && !k.iter().any(|&k| k == "Reduce" || k == "Sqrt"), "{want}: {k:?}");
    }
}

#[test]
fn variance_of_the_input_instead_of_the_centred_input_is_not_layer_norm() {
    // mean(x²) is not the variance unless x is centred.
    let (_, rep) = run(&LAYER_NORM.replace("Pow[p](%d, %two)", "Pow[p](%x, %two)"));
    assert_eq!(fired(&rep, "patterns/layer-norm"), 0);
}

const Q4: &str = r#"graph "g" (%x: f32[3,4]) {
  %q = const u4[4,2] [0, 15, 8, 7, 3, 12, 1, 9]
  %s = const f16[2,2] [0.5, 0.25, 2.0, 1.0]
  %z = const u4[2,2] [8, 7, 1, 12]
  %y = MatMulQ4[fc](%x, %q, %s, %z) {group_size=2} : f32[3,2]
  return %y
}
"#;

#[test]
fn a_w4a16_product_with_constant_weights_is_the_product_with_the_dequantized_weight() {
    let (_, rep) = run(Q4);
    assert_eq!(fired(&rep, "quant/dequantize-weights"), 1);
}

#[test]
fn a_w4a16_product_with_weights_given_at_run_time_keeps_its_form() {
    let src = r#"graph "g" (%x: f32[3,4], %q: u4[4,2]) {
  %s = const f16[2,2] [0.5, 0.25, 2.0, 1.0]
  %z = const u4[2,2] [8, 7, 1, 12]
  %y = MatMulQ4[fc](%x, %q, %s, %z) {group_size=2} : f32[3,2]
  return %y
}
"#;
    let (opt, rep) = run(src);
    assert_eq!(fired(&rep, "quant/dequantize-weights"), 0);
    assert_eq!(kinds(&opt), ["MatMulQ4"]);
}

#[test]
fn a_w8a8_product_is_its_per_token_quantization_in_float_ops() {
    let src = r#"graph "g" (%x: f32[3,4]) {
  %q = const i8[4,2] [127, -3, 5, 64, -127, 0, 9, -100]
  %s = const f32[2] [0.01, 0.002]
  %y = MatMulQ8[fc](%x, %q, %s) : f32[3,2]
  return %y
}
"#;
    let (_, rep) = run(src);
    assert_eq!(fired(&rep, "quant/per-token-int8-as-float"), 1);
}

#[test]
fn a_w8a8_product_whose_sums_f32_cannot_hold_exactly_keeps_its_form() {
    // K = 1100: sums of 127 * 127 products reach past 2^24.
    let q: Vec<String> = (0..1100 * 2).map(|i| ((i * 37 % 255) as i64 - 127).to_string()).collect();
    let src = format!(
        "graph \"g\" (%x: f32[2,1100]) {{\n  %q = const i8[1100,2] [{}]\n  %s = const f32[2] [0.01, 0.002]\n  %y = MatMulQ8[fc](%x, %q, %s) : f32[2,2]\n  return %y\n}}\n",
        q.join(", ")
    );
    let (opt, rep) = run(&src);
    assert_eq!(fired(&rep, "quant/per-token-int8-as-float"), 0);
    assert_eq!(kinds(&opt), ["MatMulQ8"]);
}
