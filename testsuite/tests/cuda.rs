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

use kiln_cuda::{compile, Arch, Options};
use kiln_frontend::onnx::{import_file, ImportOptions};
use kiln_ir::{DType, Graph, Op, Tensor, TensorType};
use kiln_runtime::{Error, HostTensor, Session};
use kiln_target::artifact::sections;
use kiln_target::Target;
use kiln_testsuite::{compare, npy, optimizer};
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
fn golden(name: &str, t: Target) -> (Graph, Vec<Tensor>, Vec<Tensor>) {
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
    let m = import_file(&d.join("model.onnx"), &ImportOptions { input_shapes: shapes }).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut g = m.graph;
    kiln_passes::simplify(&mut g).unwrap_or_else(|e| panic!("{name}: {e}"));
    let (g, _) = optimizer::optimize(&g, t, std::time::Instant::now()).unwrap_or_else(|e| panic!("{name}: {e}"));
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
    for (t, arch) in [(Target::Sm90, Arch::Sm90), (Target::Sm80, Arch::Sm80)] {
        for name in MODELS {
            let (g, _, _) = golden(name, t);
            let c = compile(&g, &opts(arch)).unwrap_or_else(|e| panic!("{name} for {t}: {e}"));
            let a = &c.artifact;
            assert!(a.section(sections::CUBIN).is_some_and(|c| !c.is_empty()), "{name} for {t}: no cubin");
            assert!(c.ptx.contains(&format!(".target {}", arch.cpu())), "{name}: PTX target");
            // Every kernel of the manifest is an entry of the PTX, and one launch per kernel.
            for k in &a.manifest.kernels {
                assert!(c.ptx.contains(&format!(".entry {}(", k.name)), "{name}: kernel {} missing from the PTX", k.name);
            }
            println!("{name} {t}: {} kernels, {} PTX bytes", a.manifest.kernels.len(), c.ptx.len());
        }
    }
}

#[test]
fn artifacts_are_byte_identical_across_compilations() {
    let (g, _, _) = golden("llama_tiny", Target::Sm90);
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

#[test]
fn an_op_without_a_kernel_is_an_error_naming_node_and_op() {
    let mut g = Graph::new("topk");
    let x = g.add_input("x", TensorType::fixed(DType::F32, &[4, 8]));
    let k = g.add_const("k", std::sync::Arc::new(Tensor::from_i64s(vec![1], vec![2]).expect("k")));
    let outs = g
        .add_node(
            "my_topk",
            Op::TopK { axis: -1, largest: true, sorted: true },
            vec![Some(x), Some(k)],
            &[Some("v".into()), Some("i".into())],
        )
        .expect("topk");
    g.outputs = outs.into_iter().flatten().collect();
    let e = compile(&g, &opts(Arch::Sm90)).expect_err("TopK has no kernel").to_string();
    assert!(e.contains("my_topk") && e.contains("TopK"), "{e}");
    assert!(kiln_cuda::family(&Op::TopK { axis: 0, largest: true, sorted: true }).is_none());
}

#[test]
fn golden_models_run_on_the_gpu_and_match_onnxruntime() {
    for name in MODELS {
        let (g, inputs, want) = golden(name, Target::Sm90);
        let c = compile(&g, &opts(Arch::Sm90)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut s = match Session::from_artifact(c.artifact, 0) {
            Ok(s) => s,
            Err(Error::NoDevice(why)) => {
                println!("skipped: no GPU on this machine ({why})");
                return;
            }
            Err(e) => panic!("{name}: {e}"),
        };
        let host: Vec<HostTensor> = inputs
            .iter()
            .map(|t| {
                let e = kiln_cuda::codegen::elem_type(t.dtype()).expect("dtype");
                HostTensor::new(e, t.dims().to_vec(), kiln_cuda::codegen::tensor_bytes(t).expect("bytes")).expect("host")
            })
            .collect();
        let got = s.run(&host).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (k, (h, w)) in got.iter().zip(&want).enumerate() {
            let gv: Vec<f64> = h.to_f32().expect("f32 output").iter().map(|&x| x as f64).collect();
            let wv = w.to_f64();
            let scale = wv.iter().fold(0f64, |m, v| m.max(v.abs()));
            let e = compare::errors(&gv, &wv);
            println!("{name} output {k}: max abs {:.3e}, relative to scale {:.3e}, cosine {:.9}", e.max_abs, e.max_abs / scale, e.cosine);
            assert!(e.max_abs / scale <= 1e-4, "{name} output {k}: {:.3e} of the output's scale", e.max_abs / scale);
            let gt = Tensor::from_f32s(h.dims.clone(), h.to_f32().expect("f32")).expect("tensor");
            compare::check(&gt, w).unwrap_or_else(|e| panic!("{name} output {k}: {e}"));
        }
    }
}
