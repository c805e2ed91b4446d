//! The 910b target's AscendC kernels. What these tests prove: each emitted op project (host
//! tiling, registration, vector kernel) compiles unmodified with g++ against kiln's CPU model
//! of the AscendC API (`testsuite/ascendc_model`), runs within the documented constraints the
//! model enforces (UB capacity, 32-byte DataCopy, queue discipline, GM bounds, 48 vector
//! cores), and computes what the fused body computes in the reference interpreter; and that the
//! model fails loudly when a kernel breaks a constraint. What they do not prove: that CANN's
//! compiler accepts the sources, or the device's exact bits and speed; that needs CANN and an NPU.

use kiln_ascend::ascendc::tiling::{UB_USABLE, VECTOR_CORES};
use kiln_ascend::ascendc::Kernel;
use kiln_ascend::bundle::{compile, Bundle, Options};
use kiln_ascend::sim;
use kiln_ascend::sim::cpu_model::{Buffer, CpuOps, TempDir};
use kiln_ir::{DType, Data, Graph, Tensor};
use std::path::Path;

fn parse(src: &str) -> Graph {
    kiln_ir::text::parse(src, &std::collections::HashMap::new()).unwrap_or_else(|e| panic!("{e}\n{src}"))
}

/// Deterministic inputs in [-4, 4) (a linear congruential generator), as `dtype`.
fn input(dtype: DType, dims: &[usize], seed: u64) -> Tensor {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 8.0 - 4.0
        })
        .collect();
    Tensor::new(dims.to_vec(), Data::from_f64(dtype, &v)).expect("tensor")
}

/// The bundle of `g`, its ops written to a fresh directory.
fn bundle(g: &Graph, tag: &str) -> (Bundle, TempDir) {
    let b = compile(g, &Options::default()).unwrap_or_else(|e| panic!("{tag}: {e}"));
    let dir = TempDir::new(&format!("test-{tag}")).expect("temp dir");
    b.write_ops(&dir.0).expect("writes ops/");
    (b, dir)
}

/// Inputs for the kernel alone, as its op takes them.
fn buffers(k: &Kernel, seed: u64) -> Vec<Buffer> {
    k.in_dims
        .iter()
        .zip(&k.program.inputs)
        .enumerate()
        .map(|(i, (dims, ki))| {
            let t = input(ki.dtype, dims, seed + i as u64);
            Buffer { dtype: ki.dtype, dims: dims.clone(), bytes: t.data().to_le_bytes().expect("bytes") }
        })
        .collect()
}

fn scaled_error(got: &Tensor, want: &Tensor) -> f64 {
    let (g, w) = (got.to_f64(), want.to_f64());
    assert_eq!(g.len(), w.len());
    let scale = w.iter().fold(0f64, |m, x| m.max(x.abs()));
    g.iter().zip(&w).fold(0f64, |m, (a, b)| m.max((a - b).abs())) / scale
}

/// Bias + erf GELU over 552,963 elements: the bias is broadcast (BroadcastToD) before the
/// kernel; 48 cores, several tiles each, a tail that is not whole 32-byte blocks.
const GELU: &str = r#"graph "gelu" (%x: f32[3,184321], %b: f32[184321]) {
  %y = FusedElementwise[bias_gelu](%x, %b) {body=graph "fused" (%in0: f32[3,184321], %in1: f32[184321]) {
    %n1 = Add[n1](%in0, %in1) : f32[3,184321]
    %n2 = Gelu[n2](%n1) {approximate=none} : f32[3,184321]
    return %n2
  }} : f32[3,184321]
  return %y
}
"#;

/// Every composed function and scalar form: a run-time scalar input, tensor∘scalar and
/// scalar∘tensor arithmetic, sigmoid, tanh, ELU, leaky ReLU, hard sigmoid, swish, clip, powers,
/// log, sqrt, reciprocal.
const MANY: &str = r#"graph "many" (%x: f32[1000,37], %z: f32[1000,37], %s: f32[]) {
  %y = FusedElementwise[many](%x, %z, %s) {body=graph "fused" (%in0: f32[1000,37], %in1: f32[1000,37], %in2: f32[]) {
    %k0 = const f32[] [0.5]
    %k1 = const f32[] [2.0]
    %k2 = const f32[] [-1.5]
    %k3 = const f32[] [3.0]
    %n1 = Sigmoid[n1](%in0) : f32[1000,37]
    %n2 = Tanh[n2](%in1) : f32[1000,37]
    %n3 = Mul[n3](%n1, %n2) : f32[1000,37]
    %n4 = Sub[n4](%in2, %n3) : f32[1000,37]
    %n5 = Div[n5](%n4, %in2) : f32[1000,37]
    %n6 = LeakyRelu[n6](%n5) {alpha=0.1} : f32[1000,37]
    %n7 = Elu[n7](%in0) {alpha=1.0} : f32[1000,37]
    %n8 = HardSigmoid[n8](%in1) {alpha=0.2, beta=0.5} : f32[1000,37]
    %n9 = Add[n9](%n7, %n8) : f32[1000,37]
    %n10 = Max[n10](%n6, %n9) : f32[1000,37]
    %n11 = Min[n11](%n10, %k1) : f32[1000,37]
    %n12 = Pow[n12](%n11, %k1) : f32[1000,37]
    %n13 = Abs[n13](%in1) : f32[1000,37]
    %n14 = Add[n14](%n13, %k0) : f32[1000,37]
    %n15 = Log[n15](%n14) : f32[1000,37]
    %n16 = Sqrt[n16](%n14) : f32[1000,37]
    %n17 = Div[n17](%k3, %n14) : f32[1000,37]
    %n18 = Reciprocal[n18](%n16) : f32[1000,37]
    %n19 = Neg[n19](%n15) : f32[1000,37]
    %n20 = Clip[n20](%n12, %k2, %k3) : f32[1000,37]
    %n21 = Swish[n21](%in0) {alpha=1.702} : f32[1000,37]
    %n22 = Sub[n22](%n21, %k2) : f32[1000,37]
    %n23 = Add[n23](%n17, %n18) : f32[1000,37]
    %n24 = Add[n24](%n19, %n20) : f32[1000,37]
    %n25 = Add[n25](%n22, %n23) : f32[1000,37]
    %n26 = Add[n26](%n24, %n25) : f32[1000,37]
    %n27 = Exp[n27](%n19) : f32[1000,37]
    %n28 = Mul[n28](%n26, %n27) : f32[1000,37]
    return %n28
  }} : f32[1000,37]
  return %y
}
"#;

/// fp16 in and out: casts to f32 and back around a tanh GELU, then fp16 arithmetic.
const HALF: &str = r#"graph "half" (%x: f16[4099], %w: f16[4099]) {
  %y = FusedElementwise[half](%x, %w) {body=graph "fused" (%in0: f16[4099], %in1: f16[4099]) {
    %n1 = Cast[n1](%in0) {to=f32, saturate=true, round_mode=up} : f32[4099]
    %n2 = Cast[n2](%in1) {to=f32, saturate=true, round_mode=up} : f32[4099]
    %n3 = Mul[n3](%n1, %n2) : f32[4099]
    %n4 = Gelu[n4](%n3) {approximate=tanh} : f32[4099]
    %n5 = Cast[n5](%n4) {to=f16, saturate=true, round_mode=up} : f16[4099]
    %n6 = Add[n6](%n5, %in0) : f16[4099]
    return %n6
  }} : f16[4099]
  return %y
}
"#;

/// Each body becomes one AscendC kernel; run on the CPU model it reproduces the interpreter
/// (f32 within 1e-6 of the output's scale, f16 within 2e-3), and the UB the model measured is
/// what kiln's tiling planned, within the 910B2's limits.
#[test]
fn kernels_compute_what_their_bodies_compute() {
    let cases: [(&str, &str, f64); 3] = [("gelu", GELU, 1e-6), ("many", MANY, 1e-6), ("half", HALF, 2e-3)];
    for (tag, src, bound) in cases {
        let g = parse(src);
        let inputs: Vec<Tensor> = g
            .inputs
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let t = &g.value(v).ty;
                let dims = t.shape.as_fixed().expect("static");
                // The run-time scalar is kept away from zero: the body divides by it.
                if dims.is_empty() {
                    Tensor::new(vec![], Data::from_f64(t.dtype, &[1.75])).expect("scalar")
                } else {
                    input(t.dtype, &dims, i as u64 + 1)
                }
            })
            .collect();
        let want = kiln_ir::interp::run(&g, inputs.clone()).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let (b, dir) = bundle(&g, tag);
        assert_eq!(b.kernels.len(), 1, "{tag}: the body is not one kernel: {:?}", b.mapping);
        let k = &b.kernels[0];
        let ops = CpuOps::new(&dir.0.join("ops"));
        let got = sim::run_with(&b.model, &inputs, sim::Options { force_fp16: false, custom: Some(&ops), weights_dir: None })
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
        let err = scaled_error(&got[0], &want[0]);
        println!(
            "{tag}: {} elements, {} blocks of {}, tiles of {}: error {err:.2e} of scale",
            k.tiling.total, k.tiling.blocks, k.tiling.block_length, k.tiling.tile_length
        );
        assert!(err <= bound, "{tag}: error {err:.3e} of the output's scale");
        // The kernel alone, for the model's report.
        let (_, report) = ops.run(&k.op_type, &buffers(k, 40), (k.program.out, &k.out_dims)).unwrap_or_else(|e| panic!("{tag}: {e}"));
        assert_eq!(report.blocks as usize, k.tiling.blocks, "{tag}");
        assert_eq!(report.ub_peak, k.tiling.ub_bytes, "{tag}: the model measured other UB use than the tiling planned");
        assert!(report.ub_peak <= UB_USABLE && k.tiling.blocks <= VECTOR_CORES, "{tag}: {report:?}");
        // The big case spans every core, several tiles per core and an unaligned tail.
        if tag == "gelu" {
            let t = k.tiling;
            assert!(
                t.blocks == VECTOR_CORES && t.block_length > 2 * t.tile_length && (t.total - (t.blocks - 1) * t.block_length) % 8 != 0,
                "{t:?}"
            );
        }
    }
}

/// Writes a copy of the op project with `edit` applied to one of its files, and runs it.
fn run_mutated(b: &Bundle, dir: &Path, file: &str, edit: &dyn Fn(String) -> String) -> Result<(), String> {
    let k = &b.kernels[0];
    let copy = dir.join("mutated");
    let _ = std::fs::remove_dir_all(&copy);
    let project = copy.join("ops").join(&k.snake);
    for (path, text) in k.files() {
        let p = project.join(&path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let text = if path.ends_with(file) { edit(text) } else { text };
        std::fs::write(p, text).expect("write");
    }
    CpuOps::new(&copy.join("ops")).run(&k.op_type, &buffers(k, 7), (k.program.out, &k.out_dims)).map(|_| ())
}

/// Each broken constraint ends the run with the model's message naming it: a DataCopy of a
/// tail that is not whole 32-byte blocks, a Unified Buffer over its capacity, a FreeTensor left
/// out, more blocks than vector cores, and a read past the core's share of GM.
#[test]
fn the_cpu_model_fails_loudly_on_broken_constraints() {
    let (b, dir) = bundle(&parse(GELU), "mutations");
    let snake = b.kernels[0].snake.clone();
    let kernel = format!("{snake}.cpp");
    run_mutated(&b, &dir.0, &kernel, &|s| s).expect("the kernel as emitted runs");
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, String, Edit, &str)> = vec![
        (
            "DataCopy of the unaligned tail",
            format!("op_kernel/{kernel}"),
            Box::new(|s: String| s.replace("if ((n * sizeof(T)) % 32 == 0) {", "if (true) {")),
            "not whole 32-byte blocks",
        ),
        (
            "tiles too big for the UB",
            format!("op_kernel/{kernel}"),
            Box::new(|s: String| s.replace("InitBuffer(yQ_, BUFFER_NUM, tileLength_", "InitBuffer(yQ_, BUFFER_NUM, 8 * tileLength_")),
            "exceed the 188160 usable",
        ),
        (
            "a FreeTensor left out",
            format!("op_kernel/{kernel}"),
            Box::new(|s: String| s.replace("x0Q_.FreeTensor(x0);", "")),
            "AllocTensor: all 2 buffers of queue",
        ),
        (
            "more blocks than vector cores",
            format!("op_host/{kernel}"),
            Box::new(|s: String| s.replace("context->SetBlockDim(48);", "context->SetBlockDim(64);")),
            "1 to 48",
        ),
        (
            "a core reading past its share",
            format!("op_kernel/{kernel}"),
            Box::new(|s: String| {
                s.replace(
                    "x0Gm_.SetGlobalBuffer((__gm__ float*)x0 + start, length_);",
                    "x0Gm_.SetGlobalBuffer((__gm__ float*)x0 + start + 64, length_);",
                )
            }),
            "outside every buffer",
        ),
    ];
    for (what, file, edit, expect) in cases {
        let path = dir.0.join("mutated").join("ops").join(&snake).join(&file);
        let e = run_mutated(&b, &dir.0, &file, &edit).expect_err(what);
        assert!(e.contains(expect), "{what} ({}): {e}", path.display());
        println!("{what}: {}", e.lines().last().unwrap_or_default());
    }
}

/// A body the vector kernels cannot run (comparisons and Where on bool values) stays CANN
/// built-ins, op by op.
#[test]
fn bodies_the_vector_unit_cannot_run_stay_built_ins() {
    let src = r#"graph "g" (%x: f32[64], %m: f32[64]) {
  %y = FusedElementwise[masked](%x, %m) {body=graph "fused" (%in0: f32[64], %in1: f32[64]) {
    %n1 = Greater[n1](%in1, %in0) : bool[64]
    %n2 = Where[n2](%n1, %in0, %in1) : f32[64]
    %n3 = Exp[n3](%n2) : f32[64]
    return %n3
  }} : f32[64]
  return %y
}
"#;
    let b = compile(&parse(src), &Options::default()).expect("compiles");
    assert!(b.kernels.is_empty());
    let types: Vec<&str> = b.model.graph[0].op.iter().map(|o| o.r#type.as_str()).collect();
    assert!(types.contains(&"Greater") && types.contains(&"SelectV2") && types.contains(&"Exp"), "{types:?}");
    assert_eq!(b.mapping.kind(&b.mapping.ops["FusedElementwise"].0), "built-in");
}

/// A reduction over `axes` of an input `dtype[dims]` (after Abs for the log of the sum, whose
/// argument must be positive), keeping the reduced axes or not.
fn reduction(kind: &str, dtype: &str, dims: &[usize], axes: &[i64], keep: bool, out: &[usize]) -> String {
    let d = |v: &[usize]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
    let a = axes.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
    let (pre, arg) =
        if kind == "log_sum" { (format!("  %a = Abs[abs](%x) : {dtype}[{}]\n", d(dims)), "%a") } else { (String::new(), "%x") };
    format!(
        "graph \"{kind}\" (%x: {dtype}[{}]) {{\n  %axes = const i64[{}] [{a}]\n{pre}  %y = Reduce[reduce](%{}, %axes) {{kind={kind}, keepdims={keep}, noop_with_empty_axes=false}} : {dtype}[{}]\n  return %y\n}}\n",
        d(dims),
        axes.len(),
        &arg[1..],
        d(out)
    )
}

/// The reductions CANN computes only as several built-ins are one AscendC kernel each when the
/// reduced axes are one block with at least 32 contiguous bytes kept per row; on the CPU model
/// each reproduces the interpreter (f32 within 1e-6 of the output's scale, f16 within 2e-3), with
/// the UB and cores its plan names. Log-sum-exp spans rows longer than a tile (9 tiles per row).
#[test]
fn reductions_are_kernels_that_compute_what_the_interpreter_computes() {
    let cases: [(&str, &str, &[usize], &[i64], bool, &[usize], f64); 5] = [
        ("l2", "f32", &[5, 37, 200], &[1], true, &[5, 1, 200], 1e-6),
        ("l1", "f32", &[3, 4, 6, 50], &[1, 2], false, &[3, 50], 1e-6),
        ("sum_square", "f16", &[6, 9, 64], &[-2], true, &[6, 1, 64], 2e-3),
        ("log_sum", "f32", &[4, 10, 24], &[1], false, &[4, 24], 1e-6),
        ("log_sum_exp", "f32", &[2, 3, 70000], &[1], true, &[2, 1, 70000], 1e-6),
    ];
    for (kind, dtype, dims, axes, keep, out, bound) in cases {
        let g = parse(&reduction(kind, dtype, dims, axes, keep, out));
        let x = input(if dtype == "f16" { DType::F16 } else { DType::F32 }, dims, 3);
        let want = kiln_ir::interp::run(&g, vec![x.clone()]).unwrap_or_else(|e| panic!("{kind}: {e}"));
        let (b, dir) = bundle(&g, kind);
        assert_eq!(b.kernels.len(), 1, "{kind}: {:?}", b.mapping);
        let k = &b.kernels[0];
        let plan = k.reduce.unwrap_or_else(|| panic!("{kind}: not a reduction kernel"));
        assert!(!b.text().contains("Reduce"), "{kind}: a Reduce built-in is left:\n{}", b.text());
        let ops = CpuOps::new(&dir.0.join("ops"));
        let got = sim::run_with(&b.model, &[x], sim::Options { custom: Some(&ops), ..Default::default() })
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let err = scaled_error(&got[0], &want[0]);
        println!("{kind}: {plan:?}: error {err:.2e} of scale");
        assert!(err <= bound, "{kind}: error {err:.3e} of the output's scale");
        let (_, report) = ops.run(&k.op_type, &buffers(k, 11), (k.program.out, &k.out_dims)).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!((report.blocks as usize, report.ub_peak), (plan.blocks, plan.ub_bytes), "{kind}: {report:?}");
        if kind == "log_sum_exp" {
            assert!(plan.tiles_per_row > 1 && plan.blocks == plan.items, "{plan:?}");
        }
    }
}

/// A reduction that keeps fewer than 32 contiguous bytes per row, or reduces axes that are not
/// one block, stays CANN built-ins.
#[test]
fn reductions_without_contiguous_rows_stay_built_ins() {
    for (dims, axes, out) in [(&[4usize, 6, 3][..], &[1i64][..], &[4usize, 1, 3][..]), (&[4, 6, 64], &[0, 2], &[1, 6, 1])] {
        let g = parse(&reduction("l2", "f32", dims, axes, true, out));
        let b = compile(&g, &Options::default()).expect("compiles");
        assert!(b.kernels.is_empty() && b.text().contains("ReduceSumD"), "{dims:?} over {axes:?}:\n{}", b.text());
    }
}
