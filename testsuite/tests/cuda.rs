//! The CUDA target without and with a GPU.
//!
//! Everywhere (CI has no GPU): every golden model compiles for sm_90 and sm_80 and its PTX is
//! assembled by ptxas (the pinned nvidia-cuda-nvcc wheel that tools/ensure-deps.sh installs);
//! the artifact is byte-identical across compilations; small kernels' PTX is compared with
//! snapshots in testsuite/filetests/cuda (KILN_BLESS=1 regenerates them); an op without a
//! kernel is an error naming the node and the op.
//!
//! With a GPU: the golden models run through the runtime and match onnxruntime's outputs
//! (within 1e-4 of each output's scale and element by element within the f32 tolerance).
//! Without one the test prints why it skipped.

use kiln_artifact::artifact::sections;
use kiln_cuda::{compile, Arch, Options};
use kiln_driver::Target;
use kiln_driver::{compare, npy};
use kiln_frontend::onnx::{import_file, ImportOptions};
use kiln_ir::{DType, Graph, Op, Tensor, TensorType};
use kiln_runtime::{Error, HostTensor, Session};
use std::path::{Path, PathBuf};

const MODELS: [&str; 6] = ["resnet18_narrow", "mobilenet_v2_narrow", "bert_tiny", "gpt2_tiny", "llama_tiny", "qwen2_tiny"];

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden").join(name)
}

fn read_npy(p: &Path) -> Tensor {
    npy::read(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The golden model specialized to its inputs' shapes and optimized for `t`, with its inputs
/// and onnxruntime's outputs.
/// `reduced`: `--precision fp16|bf16`.
fn golden(name: &str, t: Target, reduced: Option<DType>) -> (Graph, Vec<Tensor>, Vec<Tensor>) {
    let d = dir(name);
    let probe = import_file(&d.join("model.onnx"), &ImportOptions::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut shapes = std::collections::HashMap::new();
    let mut inputs = vec![];
    for &i in &probe.graph.inputs {
        let n = &probe.graph.value(i).name;
        let x = read_npy(&d.join(format!("input_{n}.npy")));
        shapes.insert(n.clone(), x.dims().to_vec());
        inputs.push(x);
    }
    let m = import_file(&d.join("model.onnx"), &ImportOptions { input_shapes: shapes, ..Default::default() })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut g = m.graph;
    kiln_passes::simplify(&mut g).unwrap_or_else(|e| panic!("{name}: {e}"));
    if let Some(to) = reduced {
        kiln_passes::convert_precision(&mut g, to).unwrap_or_else(|e| panic!("{name} in {to}: {e}"));
    }
    let (g, _) = kiln_driver::optimize(&g, t, std::time::Instant::now()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let outputs = (0..).map(|k| d.join(format!("output_{k}.npy"))).take_while(|p| p.exists()).map(|p| read_npy(&p)).collect();
    (g, inputs, outputs)
}

fn opts(arch: Arch) -> Options {
    Options { arch, cubin: true, precision: "model".into() }
}

#[test]
fn golden_models_compile_and_their_ptx_assembles() {
    assert!(
        kiln_cuda::ptx::find_ptxas().is_some(),
        "ptxas not found: run tools/ensure-deps.sh --python (it installs the pinned nvidia-cuda-nvcc wheel) or set KILN_PTXAS"
    );
    // fp32 on both archs; reduced precision (the tensor-core kernels) fp16 on sm_90, bf16 on sm_80.
    for (t, arch, reduced) in [
        (Target::Sm90, Arch::Sm90, None),
        (Target::Sm80, Arch::Sm80, None),
        (Target::Sm90, Arch::Sm90, Some(DType::F16)),
        (Target::Sm80, Arch::Sm80, Some(DType::BF16)),
    ] {
        for name in MODELS {
            let (g, _, _) = golden(name, t, reduced);
            let c = compile(&g, &opts(arch)).unwrap_or_else(|e| panic!("{name} for {t} ({reduced:?}): {e}"));
            let a = &c.artifact;
            assert!(a.section(sections::CUBIN).is_some_and(|c| !c.is_empty()), "{name} for {t}: no cubin");
            assert!(c.ptx.contains(&format!(".target {}", arch.cpu())), "{name}: PTX target");
            // Every kernel of the manifest is an entry of the PTX, and one launch per kernel.
            for k in &a.manifest.kernels {
                assert!(c.ptx.contains(&format!(".entry {}(", k.name)), "{name}: kernel {} missing from the PTX", k.name);
            }
            if reduced.is_some() && name != "resnet18_narrow" && name != "mobilenet_v2_narrow" {
                assert!(c.ptx.contains("mma.sync.aligned.m16n8k16"), "{name} in {reduced:?}: no tensor-core kernel");
            }
            println!("{name} {t} {reduced:?}: {} kernels, {} PTX bytes", a.manifest.kernels.len(), c.ptx.len());
        }
    }
}

#[test]
fn artifacts_are_byte_identical_across_compilations() {
    let (g, _, _) = golden("llama_tiny", Target::Sm90, None);
    let a = compile(&g, &opts(Arch::Sm90)).expect("compiles").artifact.to_bytes();
    let b = compile(&g, &opts(Arch::Sm90)).expect("compiles").artifact.to_bytes();
    assert!(a == b, "two compilations differ");
}

/// Small graphs whose PTX is kept as text snapshots.
fn snapshot_graphs() -> Vec<(&'static str, Graph)> {
    use kiln_ir::ops::BinaryOp;
    let mut out = vec![];
    let mut g = Graph::new("add_relu");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[4, 8]));
    let b = g.add_input("b", TensorType::fixed(DType::F32, &[8]));
    let s = g.add_node("add", Op::Binary { op: BinaryOp::Add }, vec![Some(x), Some(b)], &[Some("s".into())]).expect("add")[0];
    let r = g.add_node("relu", Op::Unary { op: kiln_ir::UnaryOp::Relu }, vec![s], &[Some("r".into())]).expect("relu")[0];
    g.outputs = vec![r.expect("r")];
    out.push(("add_relu", g));
    let mut g = Graph::new("softmax");
    let x = g.add_input("x", TensorType::fixed(DType::F16, &[2, 100]));
    let y = g.add_node("softmax", Op::Softmax { axis: -1, legacy: false }, vec![Some(x)], &[Some("y".into())]).expect("softmax")[0];
    g.outputs = vec![y.expect("y")];
    out.push(("softmax_f16", g));
    let mut g = Graph::new("transpose");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 3, 4]));
    let y = g.add_node("t", Op::Transpose { perm: vec![2, 0, 1] }, vec![Some(x)], &[Some("y".into())]).expect("transpose")[0];
    g.outputs = vec![y.expect("y")];
    out.push(("transpose", g));
    out
}

#[test]
fn small_kernels_match_their_ptx_snapshots() {
    let bless = std::env::var_os("KILN_BLESS").is_some();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("filetests/cuda");
    for (name, g) in snapshot_graphs() {
        let c =
            compile(&g, &Options { arch: Arch::Sm90, cubin: false, precision: "model".into() }).unwrap_or_else(|e| panic!("{name}: {e}"));
        let path = root.join(format!("{name}.ptx"));
        if bless {
            std::fs::write(&path, &c.ptx).expect("write snapshot");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (KILN_BLESS=1 creates it)", path.display()));
        assert!(c.ptx == want, "{name}: PTX differs from {} (KILN_BLESS=1 regenerates it after review)", path.display());
    }
}

/// Kernels build temporary constants (a convolution's weights reordered for the tensor cores,
/// Launches of the same code share one kernel: an unrolled recurrence's steps are thousands of
/// launches of a few hundred kernels (tashkeel's BiLSTM: 5875 launches, 170 kernels), and LLVM,
/// ptxas and the artifact see each kernel once. Four products of the same shape with their own
/// weights and a row reduction between: two kernels, each launch with its own operands, and
/// each kept kernel's shared memory its own.
#[test]
fn launches_of_the_same_code_share_one_kernel() {
    let mut g = Graph::new("repeat");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[64, 64]));
    let mut v = Some(x);
    for i in 0..4 {
        let w = g.add_const(format!("w{i}"), std::sync::Arc::new(random_tensor(DType::F32, &[64, 64], 90 + i as u64)));
        v = g.add_node(format!("mm{i}"), Op::MatMul {}, vec![v, Some(w)], &[Some(format!("m{i}"))]).expect("matmul")[0];
        let op = Op::Softmax { axis: -1, legacy: false };
        v = g.add_node(format!("sm{i}"), op, vec![v], &[Some(format!("s{i}"))]).expect("softmax")[0];
    }
    g.outputs = vec![v.expect("y")];
    let (opt, _) = kiln_driver::optimize(&g, Target::Sm90, std::time::Instant::now()).expect("optimizes");
    let compiled = compile(&opt, &opts(Arch::Sm90)).expect("compiles");
    let m = &compiled.artifact.manifest;
    assert_eq!(m.launches.len(), 8, "{:?}", m.kernels);
    let names: std::collections::BTreeSet<&str> = m.kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(compiled.ptx.matches(".entry ").count(), 2, "only the kept kernels reach the PTX");
    let nodes: std::collections::BTreeSet<&str> = m.kernels.iter().map(|k| k.node.as_str()).collect();
    assert_eq!(nodes.len(), 8, "each launch still names its node: {nodes:?}");
    let products = m.launches.iter().filter(|l| m.kernels[l.kernel as usize].node.starts_with("mm"));
    let args: std::collections::BTreeSet<String> = products.map(|l| format!("{:?}", l.args)).collect();
    assert_eq!(args.len(), 4, "each product reads its own weights");
    assert!(compiled.artifact.summary().starts_with("2 kernels, 8 launches"), "{}", compiled.artifact.summary());
}

/// epilogue scalars). Each must get its own bytes in the weights section: constants were once
/// placed by address, and a later temporary allocated where an earlier one had been freed read
/// the earlier one's weights (paddle OCR models in fp16 computed garbage from their fifth
/// tensor-core convolution on). Eight 16-bit 1x1 convolutions in NHWC with different weights:
/// every tensor-core kernel's B must lie at its own offset and hold its own weights.
#[test]
fn temporary_constants_of_different_kernels_get_their_own_weights() {
    let dt = DType::F16;
    let (c, n_conv) = (64, 8);
    let mut g = Graph::new("chain");
    let x = g.add_input("x", TensorType::fixed(dt, &[1, c, 96, 96]));
    let mut v = g.add_node("s", Op::Unary { op: kiln_ir::UnaryOp::Sigmoid }, vec![Some(x)], &[Some("s".into())]).expect("sigmoid")[0];
    for i in 0..n_conv {
        let w = g.add_const(format!("w{i}"), std::sync::Arc::new(random_tensor(dt, &[c, c, 1, 1], 70 + i as u64)));
        let op = Op::Conv {
            kernel_shape: vec![1, 1],
            strides: vec![1, 1],
            pads: vec![0; 4],
            dilations: vec![1, 1],
            group: 1,
            auto_pad: kiln_ir::ops::AutoPad::NotSet,
        };
        v = g.add_node(format!("conv{i}"), op, vec![v, Some(w)], &[Some(format!("c{i}"))]).expect("conv")[0];
    }
    let pool = Op::MaxPool {
        kernel_shape: vec![2, 2],
        strides: vec![2, 2],
        pads: vec![0; 4],
        dilations: vec![1, 1],
        ceil_mode: false,
        auto_pad: kiln_ir::ops::AutoPad::NotSet,
        storage_order: 0,
    };
    let y = g.add_node("pool", pool, vec![v], &[Some("y".into())]).expect("pool")[0];
    g.outputs = vec![y.expect("y")];
    let (opt, _) = kiln_driver::optimize(&g, Target::Sm90, std::time::Instant::now()).expect("optimizes");
    let compiled = compile(&opt, &opts(Arch::Sm90)).expect("compiles");
    let m = &compiled.artifact.manifest;
    let weights = &compiled.artifact.sections.iter().find(|(n, _)| n == sections::WEIGHTS).expect("a weights section").1;
    let mut b_params = vec![];
    for l in &m.launches {
        let k = &m.kernels[l.kernel as usize];
        if !k.name.ends_with("convfused_tc") {
            continue;
        }
        // Parameters: the output, A, then B (the reordered weights).
        match &l.args[2] {
            kiln_artifact::artifact::Arg::Ptr { loc: kiln_artifact::artifact::Loc::Weights { offset }, bytes } => {
                b_params.push((k.node.clone(), *offset as usize, *bytes as usize))
            }
            other => panic!("{}: B is not a weight: {other:?}", k.name),
        }
    }
    assert_eq!(
        b_params.len(),
        n_conv,
        "every convolution on the tensor cores: {:?}",
        m.kernels.iter().map(|k| &k.name).collect::<Vec<_>>()
    );
    // Each B holds one convolution's weights ([Cout, Cin] for a 1x1 kernel), and together
    // they are all eight.
    let sources: Vec<Vec<f64>> = (0..n_conv)
        .map(|i| {
            let id = g.consts.keys().find(|id| g.value(**id).name == format!("w{i}")).expect("weight");
            g.consts[id].to_f64()
        })
        .collect();
    let mut found: Vec<usize> = b_params
        .iter()
        .map(|(node, off, bytes)| {
            let got = kiln_ir::Data::from_le_bytes(dt, &weights[*off..off + bytes]).expect("bytes").to_f64();
            sources.iter().position(|w| *w == got).unwrap_or_else(|| panic!("{node}: B at {off} is no convolution's weights"))
        })
        .collect();
    found.sort_unstable();
    assert_eq!(found, (0..n_conv).collect::<Vec<_>>(), "convolutions read other convolutions' weights: {b_params:?}");
}

/// onnxruntime's dynamically quantized product (DynamicQuantizeLinear, MatMulInteger, the i32
/// accumulator cast and scaled) and a quantized model's u8 max pooling: the CUDA target has no
/// integer kernels, so the driver computes the integer ops in f32 (exact here); both compile,
/// ptxas assembles them, and with a GPU they match the interpreter on the source graph.
#[test]
fn integer_ops_run_as_float_on_the_gpu() {
    let mut q = Graph::new("dq_matmul");
    let x = q.add_input("x", TensorType::fixed(DType::F32, &[4, 64]));
    let w = random(64 * 16, 9).iter().map(|v| (v * 127.0).round()).collect::<Vec<f64>>();
    let w = q.add_const("w", std::sync::Arc::new(Tensor::new(vec![64, 16], kiln_ir::Data::from_f64(DType::I8, &w)).expect("w")));
    let ws = q.add_const("ws", std::sync::Arc::new(Tensor::from_f32s(vec![], vec![0.01]).expect("ws")));
    let names = [Some("xq".to_string()), Some("xs".into()), Some("xz".into())];
    let d = q.add_node("dq", Op::DynamicQuantizeLinear {}, vec![Some(x)], &names).expect("dq");
    let acc = q.add_node("mm", Op::MatMulInteger {}, vec![d[0], Some(w), d[2]], &[Some("acc".into())]).expect("mm")[0];
    let cast = Op::Cast { to: DType::F32, saturate: false, round_mode: kiln_ir::ops::E8M0Rounding::Up };
    let f = q.add_node("f", cast, vec![acc], &[Some("f".into())]).expect("cast")[0];
    let mul = |g: &mut Graph, n: &str, a, b| {
        g.add_node(n, Op::Binary { op: kiln_ir::BinaryOp::Mul }, vec![a, b], &[Some(n.into())]).expect("mul")[0]
    };
    let sc = mul(&mut q, "sc", d[1], Some(ws));
    let y = mul(&mut q, "y", f, sc);
    q.outputs = vec![y.expect("y")];
    let mut p = Graph::new("u8_pool");
    let xp = p.add_input("x", TensorType::fixed(DType::U8, &[1, 4, 8, 8]));
    let pool = Op::MaxPool {
        kernel_shape: vec![3, 3],
        strides: vec![2, 2],
        pads: vec![1; 4],
        dilations: vec![1, 1],
        ceil_mode: false,
        auto_pad: kiln_ir::ops::AutoPad::NotSet,
        storage_order: 0,
    };
    let yp = p.add_node("pool", pool, vec![Some(xp)], &[Some("y".into())]).expect("pool")[0];
    p.outputs = vec![yp.expect("y")];
    let xq = Tensor::from_f32s(vec![4, 64], random(256, 10).iter().map(|&v| (v * 3.0) as f32).collect()).expect("x");
    let xu = Tensor::new(
        vec![1, 4, 8, 8],
        kiln_ir::Data::from_f64(DType::U8, &random(256, 11).iter().map(|v| ((v + 1.0) * 127.0).round()).collect::<Vec<_>>()),
    )
    .expect("x");
    for (g, xin) in [(q, xq), (p, xu)] {
        let (opt, _) = kiln_driver::optimize(&g, Target::Sm90, std::time::Instant::now()).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert!(
            opt.nodes.iter().all(|n| !matches!(n.op, Op::DynamicQuantizeLinear {} | Op::MatMulInteger {})),
            "{}: integer ops left",
            g.name
        );
        let c = compile(&opt, &opts(Arch::Sm90)).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        let Some(mut s) = session(c.artifact) else { continue };
        let want = kiln_ir::interp::run(&g, vec![xin.clone()]).expect("interpreter");
        let got = s.run(&host_inputs(&[xin])).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        let gv = kiln_ir::Data::from_le_bytes(want[0].dtype(), &got[0].data).expect("bytes").to_f64();
        let e = compare::errors(&gv, &want[0].to_f64());
        println!("{}: max abs {:.3e}, cosine {:.9}", g.name, e.max_abs, e.cosine);
        assert!(e.max_abs <= 1e-5 * want[0].to_f64().iter().fold(1f64, |m, v| m.max(v.abs())), "{}: {e:?}", g.name);
    }
}

#[test]
fn an_op_without_a_kernel_is_an_error_naming_node_and_op() {
    let mut g = Graph::new("det");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[2, 3, 3]));
    let outs = g.add_node("my_det", Op::Det {}, vec![Some(x)], &[Some("d".into())]).expect("det");
    g.outputs = outs.into_iter().flatten().collect();
    let e = compile(&g, &opts(Arch::Sm90)).expect_err("Det has no kernel").to_string();
    assert!(e.contains("my_det") && e.contains("Det"), "{e}");
    assert!(kiln_cuda::family(&Op::Det {}).is_none());
}

#[test]
fn golden_models_run_on_the_gpu_and_match_onnxruntime() {
    // fp32: within 1e-4 of each output's scale and element by element within the f32
    // tolerance. fp16 and bf16 (weights and activations stored reduced, f32 accumulation):
    // cosine >= 0.999 on every output.
    for reduced in [None, Some(DType::F16), Some(DType::BF16)] {
        for name in MODELS {
            let (g, inputs, want) = golden(name, Target::Sm90, reduced);
            let c = compile(&g, &opts(Arch::Sm90)).unwrap_or_else(|e| panic!("{name}: {e}"));
            let Some(mut s) = session(c.artifact) else { return };
            let got = s.run(&host_inputs(&inputs)).unwrap_or_else(|e| panic!("{name}: {e}"));
            for (k, (h, w)) in got.iter().zip(&want).enumerate() {
                let gv: Vec<f64> = h.to_f32().expect("f32 output").iter().map(|&x| x as f64).collect();
                let wv = w.to_f64();
                let scale = wv.iter().fold(0f64, |m, v| m.max(v.abs()));
                let e = compare::errors(&gv, &wv);
                println!(
                    "{name} {reduced:?} output {k}: max abs {:.3e}, relative to scale {:.3e}, cosine {:.9}",
                    e.max_abs,
                    e.max_abs / scale,
                    e.cosine
                );
                if reduced.is_some() {
                    assert!(e.cosine >= 0.999, "{name} {reduced:?} output {k}: cosine {}", e.cosine);
                    continue;
                }
                assert!(e.max_abs / scale <= 1e-4, "{name} output {k}: {:.3e} of the output's scale", e.max_abs / scale);
                let gt = Tensor::from_f32s(h.dims.clone(), h.to_f32().expect("f32")).expect("tensor");
                compare::check(&gt, w).unwrap_or_else(|e| panic!("{name} output {k}: {e}"));
            }
        }
    }
}

/// A session on GPU 0, or None (printing why) where there is no GPU.
fn session(a: kiln_artifact::artifact::Artifact) -> Option<Session> {
    match Session::from_artifact(a, 0) {
        Ok(s) => Some(s),
        Err(Error::NoDevice(why)) => {
            println!("skipped: no GPU on this machine ({why})");
            None
        }
        Err(e) => panic!("{e}"),
    }
}

fn host_inputs(inputs: &[Tensor]) -> Vec<HostTensor> {
    inputs
        .iter()
        .map(|t| {
            let e = kiln_cuda::codegen::elem_type(t.dtype()).expect("dtype");
            HostTensor::new(e, t.dims().to_vec(), kiln_cuda::codegen::tensor_bytes(t).expect("bytes")).expect("host")
        })
        .collect()
}

/// Seeded values in [-1, 1).
fn random(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((x >> 33) % 2_000_000) as f64 / 1e6 - 1.0
        })
        .collect()
}

fn random_tensor(dt: DType, dims: &[usize], seed: u64) -> Tensor {
    Tensor::new(dims.to_vec(), kiln_ir::Data::from_f64(dt, &random(dims.iter().product(), seed))).expect("tensor")
}

/// Compiles `g` (optimized for sm_90) for `arch`, asserts that its PTX uses `kernel`, and with
/// a GPU compares its output with the interpreter's on input `x`: whether they agree (true
/// without a GPU).
fn product_agrees(label: &str, g: &Graph, x: &Tensor, arch: Arch, kernel: &str) -> bool {
    let c = compile(g, &opts(arch)).unwrap_or_else(|e| panic!("{label}: {e}"));
    assert!(c.ptx.contains(kernel), "{label}: the kernel with {kernel} was not used for {arch:?}");
    let Some(mut s) = session(c.artifact) else { return true };
    let want = kiln_ir::interp::run(g, vec![x.clone()]).expect("interpreter");
    let got = s.run(&host_inputs(std::slice::from_ref(x))).unwrap_or_else(|e| panic!("{label}: {e}"));
    let mut ok = true;
    for (k, (got, want)) in got.iter().zip(&want).enumerate() {
        let gv = kiln_ir::Data::from_le_bytes(want.dtype(), &got.data).expect("bytes").to_f64();
        let wv = want.to_f64();
        let e = compare::errors(&gv, &wv);
        let scale = wv.iter().fold(0f64, |m, v| m.max(v.abs()));
        println!("{label} {arch:?} output {k}: max abs / scale {:.3e}, cosine {:.9}", e.max_abs / scale, e.cosine);
        // Both round the f32/f64 sum once to the storage type: a few units in the last place.
        if !(e.max_abs / scale <= 1e-2 && e.cosine >= 0.9999) {
            println!("  got  {:?}\n  want {:?}", &gv[..8.min(gv.len())], &wv[..8.min(wv.len())]);
            ok = false;
        }
    }
    ok
}

const MMA_SYNC: &str = "mma.sync.aligned.m16n8k16";
const WGMMA: &str = "wgmma.mma_async.sync.aligned";

/// Products the tensor-core kernels take (f16/bf16, ragged M/N/K, batched and broadcast,
/// Gemm's transB with a bias) against the interpreter on the same graph: `mma.sync` (compiled
/// for sm_80, which the sm_90 GPU runs too) and sm_90a's `wgmma`.
#[test]
fn tensor_core_products_match_the_interpreter_on_the_gpu() {
    use kiln_ir::ops::BinaryOp;
    // (A dims, B dims, B transposed (Gemm), dtype)
    let cases: Vec<(Vec<usize>, Vec<usize>, bool, DType)> = vec![
        (vec![1, 64], vec![64, 64], false, DType::F16),
        (vec![16, 64], vec![64, 64], false, DType::F16),
        (vec![77, 40], vec![40, 136], false, DType::F16),
        (vec![256, 520], vec![520, 384], false, DType::BF16),
        (vec![300, 96], vec![96, 1000], false, DType::F16),
        (vec![3, 65, 72], vec![72, 24], false, DType::F16),
        (vec![2, 3, 33, 16], vec![2, 3, 16, 40], false, DType::BF16),
        (vec![130, 264], vec![200, 264], true, DType::F16),
        // A vocabulary projection: N not a multiple of 8, B re-laid out [N, K] at compile time.
        (vec![1, 5, 64], vec![64, 1001], false, DType::F16),
        // Enough blocks for each tile shape: 128x128, 64x128, 64x64 (the cases above take 32x64).
        (vec![1024, 264], vec![264, 1024], false, DType::BF16),
        (vec![768, 128], vec![128, 1408], false, DType::F16),
        (vec![640, 96], vec![96, 1024], false, DType::F16),
        // Large enough for sm_90's wgmma kernel (from here on): 128x256 tiles with ragged M, N
        // and K, B [K, N] and Gemm's [N, K]; then 128x128 and 128x64 tiles.
        (vec![2, 1000, 264], vec![264, 2056], false, DType::F16),
        (vec![2000, 264], vec![2056, 264], true, DType::BF16),
        (vec![1536, 200], vec![200, 1032], false, DType::BF16),
        (vec![500, 136], vec![136, 2056], false, DType::F16),
        (vec![500, 136], vec![2056, 136], true, DType::F16),
    ];
    const FIRST_WGMMA: usize = 12;
    let mut failed = vec![];
    for (i, (ad, bd, trans_b, dt)) in cases.into_iter().enumerate() {
        let mut g = Graph::new("product");
        let x = g.add_input("x", TensorType::fixed(dt, &ad));
        let w = g.add_const("w", std::sync::Arc::new(random_tensor(dt, &bd, 7 + i as u64)));
        let y = if trans_b {
            let bias = g.add_const("bias", std::sync::Arc::new(random_tensor(dt, &[bd[0]], 99)));
            let op = Op::Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: true };
            g.add_node("gemm", op, vec![Some(x), Some(w), Some(bias)], &[Some("y".into())]).expect("gemm")[0]
        } else {
            let p = g.add_node("mm", Op::MatMul {}, vec![Some(x), Some(w)], &[Some("p".into())]).expect("matmul")[0];
            let r = g.add_node("relu", Op::Unary { op: kiln_ir::UnaryOp::Relu }, vec![p], &[Some("r".into())]).expect("relu")[0];
            g.add_node("add", Op::Binary { op: BinaryOp::Add }, vec![r, p], &[Some("y".into())]).expect("add")[0]
        };
        g.outputs = vec![y.expect("y")];
        let (g, _) = kiln_driver::optimize(&g, Target::Sm90, std::time::Instant::now()).expect("optimizes");
        let (arch, kernel) = if i >= FIRST_WGMMA { (Arch::Sm90, WGMMA) } else { (Arch::Sm80, MMA_SYNC) };
        let xin = random_tensor(dt, &ad, 1000 + i as u64);
        if !product_agrees(&format!("case {i} {ad:?} x {bd:?} {dt}"), &g, &xin, arch, kernel) {
            failed.push(i);
        }
    }
    assert!(failed.is_empty(), "cases {failed:?} differ from the interpreter");
}

/// Products that read one input split into parts, on both tensor-core kernels: GQA's Q, K
/// and V projections merged into one product whose outputs each read one part (concatenated
/// columns), and SwiGLU's `silu(x Wg) * (x Wu)`, whose one output reads both parts.
#[test]
fn split_products_match_the_interpreter_on_the_gpu() {
    use kiln_ir::ops::BinaryOp;
    use kiln_ir::UnaryOp;
    // (rows of x, K, part widths, SwiGLU)
    let cases: [(usize, usize, &[usize], bool); 3] =
        [(600, 200, &[1024, 256, 256], false), (1500, 200, &[1032, 1032], true), (1100, 136, &[1032, 1032], true)];
    let mut failed = vec![];
    for (i, &(m, k, widths, swiglu)) in cases.iter().enumerate() {
        let dt = DType::F16;
        let mut g = Graph::new("split");
        let x = g.add_input("x", TensorType::fixed(dt, &[m, k]));
        let mut parts = vec![];
        for (s, &w) in widths.iter().enumerate() {
            let wt = g.add_const(format!("w{s}"), std::sync::Arc::new(random_tensor(dt, &[k, w], 40 + (i * 4 + s) as u64)));
            parts.push(g.add_node(format!("mm{s}"), Op::MatMul {}, vec![Some(x), Some(wt)], &[Some(format!("p{s}"))]).expect("matmul")[0]);
        }
        g.outputs = if swiglu {
            let sg = g.add_node("sig", Op::Unary { op: UnaryOp::Sigmoid }, vec![parts[0]], &[Some("sg".into())]).expect("sigmoid")[0];
            let si = g.add_node("silu", Op::Binary { op: BinaryOp::Mul }, vec![parts[0], sg], &[Some("si".into())]).expect("mul")[0];
            let y = g.add_node("glu", Op::Binary { op: BinaryOp::Mul }, vec![si, parts[1]], &[Some("y".into())]).expect("mul")[0];
            vec![y.expect("y")]
        } else {
            parts.iter().map(|p| p.expect("part")).collect()
        };
        let (g, _) = kiln_driver::optimize(&g, Target::Sm90, std::time::Instant::now()).expect("optimizes");
        let fused = g.nodes.iter().filter(|n| matches!(&n.op, Op::MatMulFused { splits, .. } if splits.len() == widths.len())).count();
        assert_eq!(fused, 1, "case {i}: the products were not merged:\n{}", kiln_ir::text::print(&g));
        let xin = random_tensor(dt, &[m, k], 900 + i as u64);
        for (arch, kernel) in [(Arch::Sm80, MMA_SYNC), (Arch::Sm90, WGMMA)] {
            if !product_agrees(&format!("split case {i} {m}x{k} {widths:?}"), &g, &xin, arch, kernel) {
                failed.push((i, arch));
            }
        }
    }
    assert!(failed.is_empty(), "cases {failed:?} differ from the interpreter");
}

/// Convolutions the implicit-GEMM tensor-core kernel takes (NHWC after the optimizer's layout
/// choice): strides, padding, dilation, input channels padded from 3, output channels not a
/// multiple of 8, bias and ReLU, against the interpreter on the source graph. (Sizes where the
/// cost model prefers NHWC: for tiny convolutions the layout conversions cost more.)
#[test]
fn tensor_core_convolutions_match_the_interpreter_on_the_gpu() {
    // (N, Cin, H, W, Cout, kernel, stride, pad, dilation, dtype)
    let cases = [
        (4, 3, 224, 224, 64, 7, 2, 3, 1, DType::F16),
        (4, 64, 56, 56, 64, 3, 1, 1, 1, DType::F16),
        (16, 128, 28, 28, 100, 3, 2, 2, 2, DType::BF16),
        (8, 256, 28, 28, 256, 1, 1, 0, 1, DType::F16),
    ];
    let mut failed = vec![];
    for (i, &(n, cin, h, w, cout, k, stride, pad, dil, dt)) in cases.iter().enumerate() {
        let mut g = Graph::new("conv");
        let x = g.add_input("x", TensorType::fixed(dt, &[n, cin, h, w]));
        let wv = g.add_const("w", std::sync::Arc::new(random_tensor(dt, &[cout, cin, k, k], 3 + i as u64)));
        let b = g.add_const("b", std::sync::Arc::new(random_tensor(dt, &[cout], 50 + i as u64)));
        let op = Op::Conv {
            kernel_shape: vec![k as i64, k as i64],
            strides: vec![stride as i64; 2],
            pads: vec![pad as i64; 4],
            dilations: vec![dil as i64; 2],
            group: 1,
            auto_pad: kiln_ir::ops::AutoPad::NotSet,
        };
        let c = g.add_node("conv", op, vec![Some(x), Some(wv), Some(b)], &[Some("c".into())]).expect("conv")[0];
        let y = g.add_node("relu", Op::Unary { op: kiln_ir::UnaryOp::Relu }, vec![c], &[Some("y".into())]).expect("relu")[0];
        g.outputs = vec![y.expect("y")];
        let src = g.clone();
        let (g, _) = kiln_driver::optimize(&g, Target::Sm90, std::time::Instant::now()).expect("optimizes");
        let c = compile(&g, &opts(Arch::Sm90)).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert!(c.ptx.contains("convfused_tc"), "case {i}: the tensor-core convolution was not used:\n{}", kiln_ir::text::print(&g));
        let xin = random_tensor(dt, &[n, cin, h, w], 500 + i as u64);
        let Some(mut s) = session(c.artifact) else { continue };
        let want = kiln_ir::interp::run(&src, vec![xin.clone()]).expect("interpreter");
        let got = s.run(&host_inputs(&[xin])).unwrap_or_else(|e| panic!("case {i}: {e}"));
        let gv = kiln_ir::Data::from_le_bytes(dt, &got[0].data).expect("bytes").to_f64();
        let wv = want[0].to_f64();
        let e = compare::errors(&gv, &wv);
        let scale = wv.iter().fold(0f64, |m, v| m.max(v.abs()));
        println!("conv case {i} {:?}: max abs / scale {:.3e}, cosine {:.9}", cases[i], e.max_abs / scale, e.cosine);
        if !(e.max_abs / scale <= 1e-2 && e.cosine >= 0.9999) {
            failed.push(i);
        }
    }
    assert!(failed.is_empty(), "cases {failed:?} differ from the interpreter");
}

/// Attention shapes the flash-style tensor-core kernel takes (3-D and 4-D, GQA, causal, ragged
/// lengths, additive and boolean masks, soft-capping, a single query, undefined rows as NaN or
/// zeros), against the interpreter on the same graph.
#[test]
fn tensor_core_attention_matches_the_interpreter_on_the_gpu() {
    #[derive(Clone, Copy)]
    enum Mask {
        None,
        /// Additive [b, 1, 1, sk] of this dtype: the last quarter of the keys at -10000.
        Padding(DType),
        /// Constant boolean [sq, sk], random, with query row 5 fully masked.
        Bool,
    }
    // (dtype, 4-D, batch, q heads, kv heads, q len, kv len, head dim, causal, mask, softcap, zero undefined rows)
    #[rustfmt::skip]
    let cases = [
        (DType::F16, true, 2, 4, 4, 128, 128, 64, false, Mask::None, 0.0, false),
        (DType::F16, false, 1, 8, 2, 200, 200, 128, true, Mask::None, 0.0, true),
        (DType::BF16, true, 2, 2, 2, 70, 300, 32, false, Mask::Padding(DType::F32), 0.0, false),
        (DType::F16, true, 1, 2, 1, 1, 33, 16, false, Mask::None, 5.0, false),
        (DType::F16, true, 1, 1, 1, 96, 96, 64, false, Mask::Bool, 0.0, true),
        (DType::F16, true, 1, 1, 1, 96, 96, 64, false, Mask::Bool, 0.0, false),
        (DType::F16, false, 8, 12, 12, 128, 128, 64, false, Mask::Padding(DType::F16), 0.0, false),
        (DType::BF16, true, 1, 32, 4, 320, 320, 64, true, Mask::None, 0.0, true),
        // Causal with a soft cap: the reference caps the causal bias too, so no key is skipped.
        (DType::F16, true, 1, 2, 2, 100, 100, 32, true, Mask::None, 2.0, false),
    ];
    let mut failed = vec![];
    for (i, &(dt, four_d, b, hq, hk, sq, sk, d, is_causal, mask, softcap, zero_undefined_rows)) in cases.iter().enumerate() {
        let dims = |h: usize, s: usize| if four_d { vec![b, h, s, d] } else { vec![b, s, h * d] };
        let mut g = Graph::new("attention");
        let mut inputs = vec![];
        let mut ins = vec![];
        for (n, (name, h, s)) in [("q", hq, sq), ("k", hk, sk), ("v", hk, sk)].into_iter().enumerate() {
            ins.push(Some(g.add_input(name, TensorType::fixed(dt, &dims(h, s)))));
            inputs.push(random_tensor(dt, &dims(h, s), 40 * i as u64 + n as u64));
        }
        match mask {
            Mask::None => {}
            Mask::Padding(mdt) => {
                ins.push(Some(g.add_input("mask", TensorType::fixed(mdt, &[b, 1, 1, sk]))));
                let v: Vec<f64> = (0..b * sk).map(|j| if j % sk >= sk * 3 / 4 { -10000.0 } else { 0.0 }).collect();
                inputs.push(Tensor::new(vec![b, 1, 1, sk], kiln_ir::Data::from_f64(mdt, &v)).expect("mask"));
            }
            Mask::Bool => {
                let v: Vec<bool> = random(sq * sk, 77).iter().enumerate().map(|(n, &x)| n / sk != 5 && x > -0.5).collect();
                let t = Tensor::new(vec![sq, sk], kiln_ir::Data::Bool(v)).expect("mask");
                ins.push(Some(g.add_const("mask", std::sync::Arc::new(t))));
            }
        }
        let op = Op::Attention {
            is_causal,
            kv_num_heads: hk as i64,
            q_num_heads: hq as i64,
            qk_matmul_output_mode: 0,
            scale: None,
            softcap,
            softmax_precision: None,
            zero_undefined_rows,
        };
        let y = g.add_node("attention", op, ins, &[Some("y".into())]).expect("attention")[0];
        g.outputs = vec![y.expect("y")];
        let want = kiln_ir::interp::run(&g, inputs.clone()).expect("interpreter");
        let (g, _) = kiln_driver::optimize(&g, Target::Sm90, std::time::Instant::now()).expect("optimizes");
        let c = compile(&g, &opts(Arch::Sm90)).unwrap_or_else(|e| panic!("case {i}: {e}"));
        assert!(c.ptx.contains("attention_tc"), "case {i}: the tensor-core attention was not used");
        let Some(mut s) = session(c.artifact) else { return };
        let got = s.run(&host_inputs(&inputs)).unwrap_or_else(|e| panic!("case {i}: {e}"));
        let gv = kiln_ir::Data::from_le_bytes(dt, &got[0].data).expect("bytes").to_f64();
        let wv = want[0].to_f64();
        // Undefined rows: NaN in both, or zeros in both.
        let nan_agree = gv.iter().zip(&wv).all(|(g, w)| g.is_nan() == w.is_nan());
        let (gf, wf): (Vec<f64>, Vec<f64>) = gv.iter().zip(&wv).filter(|(g, w)| !g.is_nan() && !w.is_nan()).unzip();
        let e = compare::errors(&gf, &wf);
        let scale = wf.iter().fold(0f64, |m, v| m.max(v.abs()));
        let nans = wv.iter().filter(|x| x.is_nan()).count();
        println!(
            "attention case {i}: max abs / scale {:.3e}, cosine {:.9}, {nans} NaN, NaN positions agree: {nan_agree}",
            e.max_abs / scale,
            e.cosine
        );
        if !(nan_agree && e.max_abs / scale <= 1e-2 && e.cosine >= 0.9999) {
            failed.push(i);
        }
        if matches!(mask, Mask::Bool) {
            // Row 5 has every key masked: zeros, or NaN like the interpreter.
            let row5 = &gv[5 * d..6 * d];
            assert!(
                if zero_undefined_rows { row5.iter().all(|&x| x == 0.0) } else { row5.iter().all(|x| x.is_nan()) },
                "case {i}: {row5:?}"
            );
        }
    }
    assert!(failed.is_empty(), "cases {failed:?} differ from the interpreter");
}

/// A tied LM head: one [vocab, hidden] constant gathered as the embedding and, transposed,
/// multiplied as the output projection (vocab not a multiple of 8). The product reads the
/// constant in place: no transpose kernel, one copy of the weight, no arena buffer for it.
#[test]
fn a_tied_lm_head_reads_the_embedding_in_place() {
    let (vocab, hidden, seq) = (1001, 128, 5);
    let dt = DType::F16;
    let mut g = Graph::new("tied");
    let ids = g.add_input("ids", TensorType::fixed(DType::I64, &[1, seq]));
    let x = g.add_input("x", TensorType::fixed(dt, &[1, seq, hidden]));
    let w = g.add_const("wte", std::sync::Arc::new(random_tensor(dt, &[vocab, hidden], 5)));
    let e = g.add_node("embed", Op::Gather { axis: 0 }, vec![Some(w), Some(ids)], &[Some("e".into())]).expect("gather")[0];
    let wt = g.add_node("wt", Op::Transpose { perm: vec![1, 0] }, vec![Some(w)], &[Some("wt".into())]).expect("transpose")[0];
    let y = g.add_node("head", Op::MatMul {}, vec![Some(x), wt], &[Some("logits".into())]).expect("matmul")[0];
    g.outputs = vec![e.expect("e"), y.expect("y")];
    let (g, _) = kiln_driver::optimize(&g, Target::Sm90, std::time::Instant::now()).expect("optimizes");
    let c = compile(&g, &opts(Arch::Sm90)).expect("compiles");
    assert!(!c.ptx.contains("transpose"), "the transpose was not absorbed");
    assert!(c.ptx.contains("mma.sync.aligned.m16n8k16"), "the LM head is not on the tensor cores");
    let m = &c.artifact.manifest;
    assert_eq!(m.weights.len(), 1, "one copy of the tied weight: {:?}", m.weights);
    let logits_bytes = (seq * vocab * 2) as u64;
    assert!(m.arena_bytes < logits_bytes + (seq * hidden * 2) as u64 + 4096, "arena {} holds a transposed copy", m.arena_bytes);
    let idv: Vec<i64> = vec![0, 1000, 17, 500, 17];
    let inputs = vec![Tensor::from_i64s(vec![1, seq], idv).expect("ids"), random_tensor(dt, &[1, seq, hidden], 9)];
    let want = kiln_ir::interp::run(&g, inputs.clone()).expect("interpreter");
    let Some(mut s) = session(c.artifact) else { return };
    let got = s.run(&host_inputs(&inputs)).expect("runs");
    let emb = kiln_ir::Data::from_le_bytes(dt, &got[0].data).expect("bytes").to_f64();
    assert_eq!(emb, want[0].to_f64(), "the gathered rows");
    let gv = kiln_ir::Data::from_le_bytes(dt, &got[1].data).expect("bytes").to_f64();
    let wv = want[1].to_f64();
    let e = compare::errors(&gv, &wv);
    let scale = wv.iter().fold(0f64, |m, v| m.max(v.abs()));
    println!("tied LM head: max abs / scale {:.3e}, cosine {:.9}", e.max_abs / scale, e.cosine);
    assert!(e.max_abs / scale <= 1e-2 && e.cosine >= 0.9999);
}

/// Every ONNX node-suite case the interpreter passes (testsuite/conformance/ref.txt), optimized
/// and compiled for sm_90: each either lowers, with PTX that ptxas assembles, or is refused as
/// unsupported naming what is missing; the compiler never fails otherwise; and every case that
/// passed on the GPU (testsuite/conformance/sm_90.txt) still compiles. (Running them on the GPU
/// is `kiln conformance --target sm_90 --cases testsuite/conformance/ref.txt`.)
#[test]
fn conformance_cases_compile_for_sm_90_or_are_refused_as_unsupported() {
    let suite = kiln_testsuite::suite::onnx_node_suite();
    let list = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance/ref.txt")).expect("ref.txt");
    let (mut compiled, mut unsupported, mut failed) = (0, 0, vec![]);
    let mut compiled_names = std::collections::HashSet::new();
    let mut why_not: std::collections::HashMap<String, String> = Default::default();
    let mut missing: std::collections::BTreeMap<String, usize> = Default::default();
    for name in list.lines().filter(|l| !l.is_empty()) {
        let (g, inputs, _) = kiln_driver::conformance::import_case(&suite.join(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let (g, inputs, _) = kiln_driver::conformance::freeze_shape_inputs(&g, inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        let (g, _) = match kiln_driver::optimize(&g, Target::Sm90, std::time::Instant::now()) {
            Ok(x) => x,
            Err(e) if e.is_unsupported() => {
                unsupported += 1;
                why_not.insert(name.to_string(), format!("{e:#}"));
                *missing.entry(format!("{e:#}").chars().take(60).collect()).or_default() += 1;
                continue;
            }
            Err(e) => {
                failed.push(format!("{name}: optimizing: {e:#}"));
                continue;
            }
        };
        match compile(&g, &opts(Arch::Sm90)) {
            Ok(c) => {
                compiled += 1;
                compiled_names.insert(name.to_string());
                // The inputs and outputs must cross to and from the device as bytes too.
                let io = inputs.iter().map(|t| kiln_cuda::codegen::tensor_bytes(t).map(|_| ())).chain(
                    c.artifact.manifest.outputs.iter().map(|o| {
                        let dt = kiln_ir::DType::from_name(o.dtype.name());
                        match dt.and_then(|d| kiln_ir::Data::from_le_bytes(d, &vec![0; o.bytes() as usize])) {
                            Some(_) => Ok(()),
                            None => Err(kiln_cuda::CodegenError::Internal(format!("output {} has no byte layout", o.name))),
                        }
                    }),
                );
                if let Err(e) = io.collect::<Result<Vec<()>, _>>() {
                    failed.push(format!("{name}: {e}"));
                }
            }
            Err(e) if e.is_unsupported() => {
                unsupported += 1;
                let why = e.to_string();
                why_not.insert(name.to_string(), why.clone());
                let key = why.rsplit(": ").next().unwrap_or(&why).chars().take(60).collect::<String>();
                *missing.entry(key).or_default() += 1;
            }
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    // The cases that passed on the GPU (`kiln conformance --target sm_90`, recorded in
    // testsuite/conformance/sm_90.txt) must all still compile.
    let passed_on_gpu =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("conformance/sm_90.txt")).expect("sm_90.txt");
    let lost: Vec<String> = passed_on_gpu
        .lines()
        .filter(|n| !n.is_empty() && !compiled_names.contains(*n))
        .map(|n| format!("{n}: {}", why_not.get(n).map_or("not compiled", String::as_str)))
        .collect();
    assert!(lost.is_empty(), "{} cases that passed on the GPU no longer compile: {lost:?}", lost.len());
    if let Ok(path) = std::env::var("KILN_WHY_NOT") {
        let mut all: Vec<_> = why_not.iter().map(|(n, w)| format!("{n}\t{w}")).collect();
        all.sort();
        std::fs::write(path, all.join("\n")).expect("write KILN_WHY_NOT");
    }
    let mut top: Vec<_> = missing.into_iter().collect();
    top.sort_by_key(|b| std::cmp::Reverse(b.1));
    println!("sm_90: {compiled} compiled, {unsupported} unsupported, {} failed; most common gaps:", failed.len());
    for (why, n) in top.iter().take(25) {
        println!("  {n:4}  {why}");
    }
    assert!(failed.is_empty(), "{} cases failed to compile:\n{}", failed.len(), failed.join("\n"));
}

/// `kiln compile --strip-weights`: the weights that reach the GPU unchanged are referenced in
/// the golden model's ONNX file instead of copied; the runtime's weights buffer is the same
/// bytes, and with a GPU the stripped artifact's outputs equal the full one's.
#[test]
fn stripped_artifacts_read_their_weights_from_the_model_file() {
    for name in ["gpt2_tiny", "llama_tiny"] {
        let (g, inputs, _) = golden(name, Target::Sm90, None);
        let full = compile(&g, &opts(Arch::Sm90)).unwrap_or_else(|e| panic!("{name}: {e}")).artifact;
        let sources = kiln_frontend::onnx::weight_sources(&dir(name).join("model.onnx")).expect("sources");
        let bytes: Vec<Vec<u8>> = sources.iter().map(|(p, _)| std::fs::read(p).expect("read")).collect();
        let files: Vec<kiln_artifact::artifact::SourceFile> = sources
            .iter()
            .zip(&bytes)
            .map(|((p, r), b)| kiln_artifact::artifact::SourceFile { path: p.display().to_string(), bytes: b, ranges: r.clone() })
            .collect();
        let mut stripped = full.clone();
        let s = stripped.strip_weights(&files).expect("strips");
        let (before, after) = (full.to_bytes().len(), stripped.to_bytes().len());
        println!("{name}: {} weights ({} bytes) referenced; artifact {before} -> {after} bytes", s.weights, s.bytes);
        assert!(s.weights > 0 && after < before, "{name}: nothing was stripped");
        let stripped = kiln_artifact::artifact::Artifact::parse(&stripped.to_bytes()).expect("parses");
        assert!(stripped.weights_image(None).expect("image") == full.weights_image(None).expect("image"), "{name}: the buffers differ");
        let (Some(mut a), Some(mut b)) = (session(full), session(stripped)) else { continue };
        let (x, y) = (a.run(&host_inputs(&inputs)).expect("full"), b.run(&host_inputs(&inputs)).expect("stripped"));
        assert!(x == y, "{name}: the stripped artifact's outputs differ");
    }
}

/// The safetensors models (`testsuite/golden/hf`: Llama, Qwen2, Mistral and GPT-2 decoders, a
/// BERT encoder) built, optimized and compiled for sm_90 in fp32 and fp16 (PTX assembled
/// everywhere); with a GPU their outputs (the decoders' logits, BERT's last hidden state and
/// pooler output) match transformers': fp32 within 1e-3 of the output's scale, cosine ≥ 0.999
/// in both.
#[test]
fn hf_models_compile_and_match_transformers_on_the_gpu() {
    let hf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/hf");
    for name in ["llama", "qwen2", "mistral", "gpt2", "bert"] {
        let d = hf.join(name);
        let (ins, outs): (&[&str], &[&str]) = match name {
            "bert" => (&["input_ids", "attention_mask", "token_type_ids"], &["last_hidden_state", "pooler_output"]),
            _ => (&["input_ids"], &["logits"]),
        };
        let inputs: Vec<Tensor> = ins.iter().map(|f| read_npy(&d.join(format!("{f}.npy")))).collect();
        let p = kiln_frontend::hf::Prefill { batch: inputs[0].dims()[0], seq: inputs[0].dims()[1] };
        for reduced in [None, Some(DType::F16)] {
            let mut g = kiln_frontend::hf::import_dir(&d, p).unwrap_or_else(|e| panic!("{name}: {e}"));
            kiln_passes::simplify(&mut g).expect("simplifies");
            if let Some(to) = reduced {
                kiln_passes::convert_precision(&mut g, to).expect("converts");
            }
            let (g, _) = kiln_driver::optimize(&g, Target::Sm90, std::time::Instant::now()).expect("optimizes");
            let c = compile(&g, &opts(Arch::Sm90)).unwrap_or_else(|e| panic!("{name} {reduced:?}: {e}"));
            let Some(mut s) = session(c.artifact) else { continue };
            let got = s.run(&host_inputs(&inputs)).unwrap_or_else(|e| panic!("{name}: {e}"));
            for (i, file) in outs.iter().enumerate() {
                let want = read_npy(&d.join(format!("{file}.npy"))).to_f64();
                let gv = kiln_ir::Data::from_le_bytes(DType::F32, &got[i].data).expect("f32 output").to_f64();
                let e = compare::errors(&gv, &want);
                let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
                println!("hf {name} {file} {reduced:?}: max abs {:.3e} (scale {scale:.3}), cosine {:.9}", e.max_abs, e.cosine);
                assert!(e.cosine >= 0.999, "{name} {file} {reduced:?}: cosine {}", e.cosine);
                if reduced.is_none() {
                    assert!(e.max_abs <= 1e-3 * scale, "{name} {file}: fp32 output differs by {:.3e}", e.max_abs);
                }
            }
        }
    }
}

/// Greedy decoding on the GPU: the safetensors decoders' prefill and decode graphs (KV caches
/// of 32 positions as inputs and outputs) compiled for sm_90 in fp32 (everywhere: the PTX
/// assembles); with a GPU the 16 tokens equal transformers' `generate()`.
#[test]
fn hf_greedy_decoding_on_the_gpu_matches_transformers() {
    use kiln_frontend::hf::{generate, import_for_generation, Decode, Prefill};
    let hf = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/hf");
    for name in ["llama", "qwen2", "mistral", "gpt2"] {
        let d = hf.join(name);
        let ids = read_npy(&d.join("input_ids.npy")).to_i64();
        let want = read_npy(&d.join("generated.npy")).to_i64();
        let (pre, dec, shape) = import_for_generation(
            &kiln_frontend::hf::Source::dir(&d),
            Prefill { batch: 1, seq: ids.len() },
            Decode { batch: 1, max_len: 32 },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut artifacts = vec![];
        for mut g in [pre, dec] {
            kiln_passes::simplify(&mut g).expect("simplifies");
            let (g, _) = kiln_driver::optimize(&g, Target::Sm90, std::time::Instant::now()).expect("optimizes");
            artifacts.push(compile(&g, &opts(Arch::Sm90)).unwrap_or_else(|e| panic!("{name}: {e}")).artifact);
        }
        let dec_art = artifacts.pop().expect("decode");
        let (Some(mut sp), Some(mut sd)) = (session(artifacts.pop().expect("prefill")), session(dec_art)) else { continue };
        let run = |s: &mut Session, x: Vec<Tensor>| -> Result<Vec<Tensor>, String> {
            let outs = s.run(&host_inputs(&x)).map_err(|e| e.to_string())?;
            Ok(outs
                .iter()
                .map(|h| {
                    let dt = if h.dtype == kiln_artifact::artifact::ElemType::I64 { DType::I64 } else { DType::F32 };
                    Tensor::new(h.dims.clone(), kiln_ir::Data::from_le_bytes(dt, &h.data).expect("bytes")).expect("tensor")
                })
                .collect())
        };
        let mut p = |x: Vec<Tensor>| run(&mut sp, x);
        let mut dd = |x: Vec<Tensor>| run(&mut sd, x);
        let got = generate::greedy(&ids, want.len() - ids.len(), shape, &mut p, &mut dd).unwrap_or_else(|e| panic!("{name}: {e}"));
        println!("hf greedy {name} on sm_90: {got:?}");
        assert_eq!(got, want[ids.len()..], "{name}: the GPU's greedy tokens differ from transformers'");
    }
}
