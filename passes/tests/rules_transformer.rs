//! The transformer rules: attention heads (`heads/*`), rotary and masked attention
//! (`patterns/rotary`, `patterns/attention` with Where masks) and split projections
//! (`algebra/split-matmul`, `algebra/matmul-flatten`). Each fires where the exporter's data
//! movement can go, and not where the data would be permuted or masked differently.

mod common;
use common::rule_check::{fired, kinds, run};

/// `x·cos + rotate_half(x)·sin` on 4-D heads with HF-style tables (both halves equal).
const ROTARY: &str = r#"graph "g" (%x: f32[1,2,4,8]) {
  %cos = const f32[1,1,4,8] [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.540302, 0.995004, 0.99995, 1.0, 0.540302, 0.995004, 0.99995, 1.0, -0.416147, 0.980067, 0.9998, 0.999998, -0.416147, 0.980067, 0.9998, 0.999998, -0.989992, 0.955336, 0.99955, 0.999996, -0.989992, 0.955336, 0.99955, 0.999996]
  %sin = const f32[1,1,4,8] [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.841471, 0.099833, 0.01, 0.001, 0.841471, 0.099833, 0.01, 0.001, 0.909297, 0.198669, 0.019999, 0.002, 0.909297, 0.198669, 0.019999, 0.002, 0.14112, 0.29552, 0.029996, 0.003, 0.14112, 0.29552, 0.029996, 0.003]
  %zero = const i64[1] [0]
  %half = const i64[1] [4]
  %end = const i64[1] [9223372036854775807]
  %axis = const i64[1] [-1]
  %one = const i64[1] [1]
  %x1 = Slice[x1](%x, %zero, %half, %axis, %one) : f32[1,2,4,4]
  %x2 = Slice[x2](%x, %half, %end, %axis, %one) : f32[1,2,4,4]
  %n = Neg[n](%x2) : f32[1,2,4,4]
  %r = Concat[r](%n, %x1) {axis=-1} : f32[1,2,4,8]
  %a = Mul[a](%x, %cos) : f32[1,2,4,8]
  %b = Mul[b](%r, %sin) : f32[1,2,4,8]
  %y = Add[y](%a, %b) : f32[1,2,4,8]
  return %y
}
"#;

#[test]
fn rotary_is_recognized() {
    let (opt, rep) = run(ROTARY);
    assert_eq!(fired(&rep, "patterns/rotary"), 1);
    assert_eq!(kinds(&opt), ["RotaryEmbedding"]);
}

#[test]
fn rotary_with_the_halves_swapped_is_not_rotary() {
    // Concat(-x1, x2) rotates the other way round: not what RotaryEmbedding computes.
    let (_, rep) = run(&ROTARY
        .replace("Neg[n](%x2) : f32[1,2,4,4]", "Neg[n](%x1) : f32[1,2,4,4]")
        .replace("Concat[r](%n, %x1)", "Concat[r](%n, %x2)"));
    assert_eq!(fired(&rep, "patterns/rotary"), 0);
}

#[test]
fn rotary_with_tables_whose_halves_differ_is_not_rotary() {
    // RotaryEmbedding's cache holds one half; a table whose halves differ has no such cache.
    let (_, rep) = run(&ROTARY.replacen("[1.0, ", "[0.5, ", 1));
    assert_eq!(fired(&rep, "patterns/rotary"), 0);
}

/// 4-D attention over heads split from [1, 4, 16] projections and merged back.
const SPLIT_HEADS: &str = r#"graph "g" (%q: f32[1,4,16], %k: f32[1,4,16], %v: f32[1,4,16]) {
  %s4 = const i64[4] [1, 4, 2, 8]
  %s3 = const i64[3] [1, 4, 16]
  %q4 = Reshape[q4](%q, %s4) {allowzero=false} : f32[1,4,2,8]
  %qh = Transpose[qh](%q4) {perm=[0, 2, 1, 3]} : f32[1,2,4,8]
  %k4 = Reshape[k4](%k, %s4) {allowzero=false} : f32[1,4,2,8]
  %kh = Transpose[kh](%k4) {perm=[0, 2, 1, 3]} : f32[1,2,4,8]
  %v4 = Reshape[v4](%v, %s4) {allowzero=false} : f32[1,4,2,8]
  %vh = Transpose[vh](%v4) {perm=[0, 2, 1, 3]} : f32[1,2,4,8]
  %a = Attention[a](%qh, %kh, %vh) {is_causal=false, kv_num_heads=2, q_num_heads=2, qk_matmul_output_mode=0, scale=0.35355339, softcap=0.0, softmax_precision=null, zero_undefined_rows=false} : f32[1,2,4,8]
  %at = Transpose[at](%a) {perm=[0, 2, 1, 3]} : f32[1,4,2,8]
  %y = Reshape[y](%at, %s3) {allowzero=false} : f32[1,4,16]
  return %y
}
"#;

#[test]
fn attention_takes_heads_split_from_the_projections() {
    let (opt, rep) = run(SPLIT_HEADS);
    assert_eq!(fired(&rep, "heads/attention-3d"), 1);
    assert_eq!(kinds(&opt), ["Attention"]);
}

#[test]
fn attention_over_a_reshape_that_is_no_head_split_stays_4d() {
    // %v is [4, 1, 16]: reshaping it to [1, 4, 2, 8] mixes batch and sequence, so it is not
    // the head split of a [batch, seq, hidden] tensor.
    let src = SPLIT_HEADS.replace("%v: f32[1,4,16]", "%v: f32[4,1,16]");
    let (opt, rep) = run(&src);
    assert_eq!(fired(&rep, "heads/attention-3d"), 0);
    assert!(kinds(&opt).contains(&"Transpose"));
}

/// Grouped-query attention: one KV head repeated for two query heads, as HF's repeat_kv does.
const GQA: &str = r#"graph "g" (%q: f32[1,4,4,8], %k: f32[1,2,4,8], %v: f32[1,2,4,8]) {
  %ax = const i64[1] [2]
  %e5 = const i64[5] [1, 2, 2, 4, 8]
  %s4 = const i64[4] [1, 4, 4, 8]
  %ku = Unsqueeze[ku](%k, %ax) : f32[1,2,1,4,8]
  %ke = Expand[ke](%ku, %e5) : f32[1,2,2,4,8]
  %kr = Reshape[kr](%ke, %s4) {allowzero=false} : f32[1,4,4,8]
  %vu = Unsqueeze[vu](%v, %ax) : f32[1,2,1,4,8]
  %ve = Expand[ve](%vu, %e5) : f32[1,2,2,4,8]
  %vr = Reshape[vr](%ve, %s4) {allowzero=false} : f32[1,4,4,8]
  %y = Attention[y](%q, %kr, %vr) {is_causal=false, kv_num_heads=4, q_num_heads=4, qk_matmul_output_mode=0, scale=0.35355339, softcap=0.0, softmax_precision=null, zero_undefined_rows=false} : f32[1,4,4,8]
  return %y
}
"#;

#[test]
fn attention_reads_repeated_kv_heads_once() {
    let (opt, rep) = run(GQA);
    assert_eq!(fired(&rep, "heads/gqa-repeat"), 1);
    assert_eq!(kinds(&opt), ["Attention"]);
}

#[test]
fn kv_heads_tiled_instead_of_repeated_are_not_grouped() {
    // Unsqueezing before the heads axis tiles them (h = r·2 + kh), while Attention groups
    // neighbouring query heads on one KV head (kh = h / 2).
    let src = GQA
        .replace("%ax = const i64[1] [2]", "%ax = const i64[1] [1]")
        .replace("Unsqueeze[ku](%k, %ax) : f32[1,2,1,4,8]", "Unsqueeze[ku](%k, %ax) : f32[1,1,2,4,8]")
        .replace("Unsqueeze[vu](%v, %ax) : f32[1,2,1,4,8]", "Unsqueeze[vu](%v, %ax) : f32[1,1,2,4,8]");
    let (opt, rep) = run(&src);
    assert_eq!(fired(&rep, "heads/gqa-repeat"), 0);
    assert!(kinds(&opt).contains(&"Expand"));
}

/// Rotary over a head split: a 3-D RotaryEmbedding on the projection.
const ROTARY_SPLIT: &str = r#"graph "g" (%q: f32[1,4,16]) {
  %c = const f32[4,4] [1.0, 1.0, 1.0, 1.0, 0.540302, 0.995004, 0.99995, 1.0, -0.416147, 0.980067, 0.9998, 0.999998, -0.989992, 0.955336, 0.99955, 0.999996]
  %s = const f32[4,4] [0.0, 0.0, 0.0, 0.0, 0.841471, 0.099833, 0.01, 0.001, 0.909297, 0.198669, 0.019999, 0.002, 0.14112, 0.29552, 0.029996, 0.003]
  %s4 = const i64[4] [1, 4, 2, 8]
  %q4 = Reshape[q4](%q, %s4) {allowzero=false} : f32[1,4,2,8]
  %qh = Transpose[qh](%q4) {perm=[0, 2, 1, 3]} : f32[1,2,4,8]
  %r = RotaryEmbedding[r](%qh, %c, %s) {interleaved=false, num_heads=0, rotary_embedding_dim=0} : f32[1,2,4,8]
  %rt = Transpose[rt](%r) {perm=[0, 2, 1, 3]} : f32[1,4,2,8]
  return %rt
}
"#;

#[test]
fn rotary_runs_on_the_projection_before_the_head_split() {
    let (opt, rep) = run(ROTARY_SPLIT);
    assert_eq!(fired(&rep, "heads/rotary-3d"), 1);
    assert_eq!(kinds(&opt), ["RotaryEmbedding", "Reshape"]);
}

#[test]
fn rotary_over_other_transposes_stays_4d() {
    // perm [0, 2, 3, 1] does not split heads off a [batch, seq, hidden] tensor.
    let src = ROTARY_SPLIT
        .replace("%s4 = const i64[4] [1, 4, 2, 8]", "%s4 = const i64[4] [1, 4, 8, 2]")
        .replace("Reshape[q4](%q, %s4) {allowzero=false} : f32[1,4,2,8]", "Reshape[q4](%q, %s4) {allowzero=false} : f32[1,4,8,2]")
        .replace("Transpose[qh](%q4) {perm=[0, 2, 1, 3]}", "Transpose[qh](%q4) {perm=[0, 3, 1, 2]}");
    let (_, rep) = run(&src);
    assert_eq!(fired(&rep, "heads/rotary-3d"), 0);
}

/// GPT-2's causal attention: the scores selected by a lower-triangular Where.
const CAUSAL: &str = r#"graph "g" (%q: f32[1,2,4,8], %k: f32[1,2,4,8], %v: f32[1,2,4,8]) {
  %m = const bool[1,1,4,4] [MASK]
  %fill = const f32[] [-3.4028235e38]
  %c = const f32[] [2.828427]
  %kt = Transpose[kt](%k) {perm=[0, 1, 3, 2]} : f32[1,2,8,4]
  %s = MatMul[s](%q, %kt) : f32[1,2,4,4]
  %d = Div[d](%s, %c) : f32[1,2,4,4]
  %w = Where[w](%m, %d, %fill) : f32[1,2,4,4]
  %p = Softmax[p](%w) {axis=-1, legacy=false} : f32[1,2,4,4]
  %y = MatMul[y](%p, %v) : f32[1,2,4,8]
  return %y
}
"#;

fn attention_attrs(g: &kiln_ir::Graph) -> Vec<(bool, usize)> {
    g.nodes
        .iter()
        .filter_map(|n| match n.op {
            kiln_ir::Op::Attention { is_causal, .. } => Some((is_causal, n.inputs.len())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_lower_triangular_where_is_causal_attention() {
    let (opt, rep) = run(
        &CAUSAL.replace("MASK", "true, false, false, false, true, true, false, false, true, true, true, false, true, true, true, true")
    );
    assert_eq!(fired(&rep, "patterns/attention"), 1);
    assert_eq!(attention_attrs(&opt), [(true, 3)], "is_causal and no mask input");
}

#[test]
fn another_where_mask_becomes_an_additive_mask() {
    let (opt, rep) = run(
        &CAUSAL.replace("MASK", "true, true, false, false, true, true, true, false, false, true, true, true, false, false, true, true")
    );
    assert_eq!(fired(&rep, "patterns/attention"), 1);
    assert_eq!(attention_attrs(&opt), [(false, 4)], "a constant mask input");
}

#[test]
fn a_where_that_fills_with_zero_is_not_a_mask() {
    // Filling with 0 keeps weight on the masked positions: not an attention mask.
    let src = CAUSAL
        .replace("MASK", "true, false, false, false, true, true, false, false, true, true, true, false, true, true, true, true")
        .replace("[-3.4028235e38]", "[0.0]");
    let (opt, rep) = run(&src);
    assert_eq!(fired(&rep, "patterns/attention"), 0);
    assert!(kinds(&opt).contains(&"Softmax"));
}

/// PyTorch's exported scaled_dot_product_attention (dynamo): √scale on Q and on Kᵀ, Kᵀ by a
/// 3-D transpose between reshapes, an additive bias, and NaN probabilities zeroed.
const SDPA: &str = r#"graph "g" (%q: f32[1,2,4,8], %k: f32[1,2,4,8], %v: f32[1,2,4,8]) {
  %s3 = const i64[3] [2, 4, 8]
  %s4 = const i64[4] [1, 2, 8, 4]
  %c = const f32[] [0.4204482]
  %zero = const f32[] [0.0]
  %bias = const f32[1,1,4,4] [BIAS]
  %k3 = Reshape[k3](%k, %s3) {allowzero=false} : f32[2,4,8]
  %kt3 = Transpose[kt3](%k3) {perm=[0, 2, 1]} : f32[2,8,4]
  %kt = Reshape[kt](%kt3, %s4) {allowzero=false} : f32[1,2,8,4]
  %qs = Mul[qs](%q, %c) : f32[1,2,4,8]
  %ks = Mul[ks](%kt, %c) : f32[1,2,8,4]
  %s = MatMul[s](%qs, %ks) : f32[1,2,4,4]
  %a = Add[a](%s, %bias) : f32[1,2,4,4]
  %p = Softmax[p](%a) {axis=-1, legacy=false} : f32[1,2,4,4]
  %n = IsNaN[n](%p) : bool[1,2,4,4]
  %w = Where[w](%n, %zero, %p) : f32[1,2,4,4]
  %y = MatMul[y](%w, %v) : f32[1,2,4,8]
  return %y
}
"#;

const MIN: &str = "-3.4028235e38";

fn sdpa(bias: [&str; 16]) -> String {
    SDPA.replace("BIAS", &bias.join(", "))
}

fn zero_rows_and_scale(g: &kiln_ir::Graph) -> Vec<(bool, f32)> {
    g.nodes
        .iter()
        .filter_map(|n| match n.op {
            kiln_ir::Op::Attention { zero_undefined_rows, scale, .. } => Some((zero_undefined_rows, scale.unwrap_or(0.0))),
            _ => None,
        })
        .collect()
}

#[test]
fn exported_sdpa_with_a_causal_bias_is_causal_attention() {
    let (opt, rep) = run(&sdpa(["0.0", MIN, MIN, MIN, "0.0", "0.0", MIN, MIN, "0.0", "0.0", "0.0", MIN, "0.0", "0.0", "0.0", "0.0"]));
    assert_eq!(fired(&rep, "patterns/attention"), 1);
    assert_eq!(kinds(&opt), ["Attention"]);
    assert_eq!(attention_attrs(&opt), [(true, 3)], "is_causal and no mask input");
    let z = zero_rows_and_scale(&opt);
    assert!(z[0].0 && (z[0].1 - 0.4204482f32 * 0.4204482).abs() < 1e-6, "{z:?}: zeroed undefined rows, both factors in the scale");
}

#[test]
fn exported_sdpa_with_a_fully_masked_row_gives_its_zeros() {
    // Row 0 masks every key: its softmax is NaN, which the Where turns into zeros; the harness
    // compares the fused graph with the original on that row too.
    let (opt, rep) = run(&sdpa([MIN, MIN, MIN, MIN, "0.0", "0.0", MIN, "0.0", "0.0", "0.0", "0.0", MIN, "0.0", MIN, "0.0", "0.0"]));
    assert_eq!(fired(&rep, "patterns/attention"), 1);
    assert_eq!(attention_attrs(&opt), [(false, 4)], "the bias as a mask input");
}

#[test]
fn a_where_that_replaces_nan_by_another_value_is_not_attention() {
    let src = sdpa(["0.0", MIN, MIN, MIN, "0.0", "0.0", MIN, MIN, "0.0", "0.0", "0.0", MIN, "0.0", "0.0", "0.0", "0.0"])
        .replace("%zero = const f32[] [0.0]", "%zero = const f32[] [0.5]");
    let (opt, rep) = run(&src);
    assert_eq!(fired(&rep, "patterns/attention"), 0);
    assert!(kinds(&opt).contains(&"Softmax"));
}

/// A fused QKV projection exported as one Gemm split three ways, through 2-D reshapes.
const SPLIT_QKV: &str = r#"graph "g" (%x: f32[1,4,8]) {
  %w = const f32[8,12] [-0.60, -0.10, 0.40, -0.40, 0.10, 0.60, -0.20, 0.30, -0.50, 0.00, 0.50, -0.30, 0.20, -0.60, -0.10, 0.40, -0.40, 0.10, 0.60, -0.20, 0.30, -0.50, 0.00, 0.50, -0.30, 0.20, -0.60, -0.10, 0.40, -0.40, 0.10, 0.60, -0.20, 0.30, -0.50, 0.00, 0.50, -0.30, 0.20, -0.60, -0.10, 0.40, -0.40, 0.10, 0.60, -0.20, 0.30, -0.50, 0.00, 0.50, -0.30, 0.20, -0.60, -0.10, 0.40, -0.40, 0.10, 0.60, -0.20, 0.30, -0.50, 0.00, 0.50, -0.30, 0.20, -0.60, -0.10, 0.40, -0.40, 0.10, 0.60, -0.20, 0.30, -0.50, 0.00, 0.50, -0.30, 0.20, -0.60, -0.10, 0.40, -0.40, 0.10, 0.60, -0.20, 0.30, -0.50, 0.00, 0.50, -0.30, 0.20, -0.60, -0.10, 0.40, -0.40, 0.10]
  %s2 = const i64[2] [4, 8]
  %s3 = const i64[3] [1, 4, 12]
  %parts = const i64[3] [4, 4, 4]
  %x2 = Reshape[x2](%x, %s2) {allowzero=false} : f32[4,8]
  %mm = MatMul[mm](%x2, %w) : f32[4,12]
  %m3 = Reshape[m3](%mm, %s3) {allowzero=false} : f32[1,4,12]
  %a, %b, %c = Split[sp](%m3, %parts) {axis=-1} : f32[1,4,4], f32[1,4,4], f32[1,4,4]
  %ra = Relu[ra](%a) : f32[1,4,4]
  %y = Add[y](%ra, %b) : f32[1,4,4]
  %z = Mul[z](%y, %c) : f32[1,4,4]
  return %z
}
"#;

#[test]
fn a_split_matmul_is_one_kernel_with_its_epilogue() {
    let (opt, rep) = run(SPLIT_QKV);
    assert_eq!(fired(&rep, "algebra/matmul-flatten"), 1);
    assert_eq!(fired(&rep, "algebra/split-matmul"), 3);
    assert_eq!(kinds(&opt), ["MatMulFused"]);
}

#[test]
fn a_matmul_over_mixed_leading_dims_is_not_flattened_away() {
    // [1,4,8] -> [4,8] -> product [4,12] -> [2,2,12]: the leading dims change.
    let src = SPLIT_QKV
        .replace("%s3 = const i64[3] [1, 4, 12]", "%s3 = const i64[3] [2, 2, 12]")
        .replace("Reshape[m3](%mm, %s3) {allowzero=false} : f32[1,4,12]", "Reshape[m3](%mm, %s3) {allowzero=false} : f32[2,2,12]")
        .replace("f32[1,4,4]", "f32[2,2,4]");
    let (_, rep) = run(&src);
    assert_eq!(fired(&rep, "algebra/matmul-flatten"), 0);
}

#[test]
fn a_split_across_rows_is_not_a_split_matmul() {
    let src = r#"graph "g" (%x: f32[4,8]) {
  %w = const f32[8,4] [W32]
  %parts = const i64[2] [2, 2]
  %mm = MatMul[mm](%x, %w) : f32[4,4]
  %a, %b = Split[sp](%mm, %parts) {axis=0} : f32[2,4], f32[2,4]
  %y = Add[y](%a, %b) : f32[2,4]
  return %y
}
"#;
    let w: Vec<String> = (0..32).map(|i| format!("{:.2}", ((i * 7) % 11) as f64 / 10.0 - 0.5)).collect();
    let (_, rep) = run(&src.replace("W32", &w.join(", ")));
    assert_eq!(fired(&rep, "algebra/split-matmul"), 0);
}
