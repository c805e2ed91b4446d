//! Storage formats chosen by each target's cost model: NHWC (channels padded to 8) for 16-bit
//! convolutions on sm_90, NC1HWC0 on the 910B, plain NCHW where formats do not pay. Every
//! optimized graph computes what the original computes in the interpreter, and no conversion
//! in it cancels a neighbour.

use kiln_driver::Target;
use kiln_ir::ops::Format;
use kiln_ir::text::parse;
use kiln_ir::{interp, Data, Graph, Op, Tensor};

use std::collections::HashMap;
use std::time::Instant;

/// Two 3×3 convolutions with ReLU and a residual add, 3 input channels (padded in any format),
/// large enough (64 channels, 64×64) that tensor cores repay two conversions on sm_90.
fn conv_chain(dt: &str) -> Graph {
    let src = r#"graph "g" (%x: DT[1,3,64,64], %w1: DT[64,3,3,3], %w2: DT[64,64,3,3]) {
  %c1 = Conv[c1](%x, %w1) {kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1, auto_pad=notset} : DT[1,64,64,64]
  %r1 = Relu[r1](%c1) : DT[1,64,64,64]
  %c2 = Conv[c2](%r1, %w2) {kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1, auto_pad=notset} : DT[1,64,64,64]
  %a = Add[a](%c2, %r1) : DT[1,64,64,64]
  %y = Relu[y](%a) : DT[1,64,64,64]
  return %y
}
"#;
    parse(&src.replace("DT", dt), &HashMap::new()).expect("parses")
}

fn inputs(g: &Graph) -> Vec<Tensor> {
    let mut s = 0x2545_f491_4f6c_dd1du64;
    g.inputs
        .iter()
        .map(|&i| {
            let t = &g.value(i).ty;
            let dims = t.shape.as_fixed().expect("static");
            let v: Vec<f64> = (0..dims.iter().product::<usize>())
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % 2001) as f64 / 1000.0 - 1.0
                })
                .collect();
            Tensor::new(dims, Data::from_f64(t.dtype, &v)).expect("size")
        })
        .collect()
}

fn formats(g: &Graph) -> Vec<Format> {
    g.nodes
        .iter()
        .filter_map(|n| match n.op {
            Op::ConvFused { format, .. } => Some(format),
            _ => None,
        })
        .collect()
}

fn count(g: &Graph, kind: &str) -> usize {
    g.nodes.iter().filter(|n| n.op.kind_name() == kind).count()
}

/// No conversion reads the result of the opposite conversion.
fn assert_no_cancelling_pair(g: &Graph) {
    let producer: HashMap<_, _> = g.nodes.iter().flat_map(|n| n.outputs.iter().flatten().map(move |o| (*o, &n.op))).collect();
    for n in &g.nodes {
        let input = n.inputs.first().copied().flatten().and_then(|i| producer.get(&i));
        let pair = matches!(
            (&n.op, input),
            (Op::ToFormat { .. }, Some(Op::FromFormat { .. })) | (Op::FromFormat { .. }, Some(Op::ToFormat { .. }))
        );
        assert!(!pair, "`{}` converts back what its input converted", n.name);
    }
}

fn optimized_matches(g: &Graph, target: Target, tol: f64) -> Graph {
    let x = inputs(g);
    let want = interp::run(g, x.clone()).expect("original runs");
    let (opt, _) = kiln_driver::optimize(g, target, Instant::now()).expect("optimizes");
    let got = interp::run(&opt, x).unwrap_or_else(|e| panic!("{e}\n{}", kiln_ir::text::print(&opt)));
    for (a, b) in got.iter().zip(&want) {
        assert_eq!(a.dims(), b.dims());
        for (p, q) in a.to_f64().iter().zip(b.to_f64()) {
            assert!((p - q).abs() <= tol * (1.0 + q.abs()), "{target}: {p} vs {q}");
        }
    }
    assert_no_cancelling_pair(&opt);
    opt
}

#[test]
fn sixteen_bit_convolutions_run_in_nhwc_on_sm90() {
    let opt = optimized_matches(&conv_chain("f16"), Target::Sm90, 2e-3);
    assert_eq!(formats(&opt), [Format::Nhwc, Format::Nhwc], "{}", kiln_ir::text::print(&opt));
    assert_eq!((count(&opt, "ToFormat"), count(&opt, "FromFormat")), (1, 1), "one conversion at each end");
}

#[test]
fn f32_convolutions_stay_nchw_on_sm90() {
    // No tensor cores for f32 in the cost model: conversions would only add work.
    let opt = optimized_matches(&conv_chain("f32"), Target::Sm90, 1e-5);
    assert_eq!(formats(&opt), [Format::Nchw, Format::Nchw]);
    assert_eq!(count(&opt, "ToFormat") + count(&opt, "FromFormat"), 0);
}

#[test]
fn convolutions_run_in_nc1hwc0_on_the_910b() {
    for dt in ["f16", "f32"] {
        let opt = optimized_matches(&conv_chain(dt), Target::Ascend910B, if dt == "f16" { 2e-3 } else { 1e-5 });
        assert_eq!(formats(&opt), [Format::Nc1hwc0, Format::Nc1hwc0], "{dt}");
        let c0 = opt.nodes.iter().find_map(|n| match n.op {
            Op::ToFormat { align, .. } => Some(align),
            _ => None,
        });
        assert_eq!(c0, Some(16), "{dt}: C0 = 16 (GE's cube size for 16- and 32-bit types)");
    }
}

#[test]
fn the_cpu_keeps_nchw() {
    let opt = optimized_matches(&conv_chain("f32"), Target::Cpu, 1e-5);
    assert_eq!(count(&opt, "ToFormat") + count(&opt, "FromFormat"), 0);
}

#[test]
fn resnet18_on_the_910b_converts_once_each_way() {
    let d = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden/resnet18_narrow");
    let mut g = kiln_frontend::onnx::import_file(&d.join("model.onnx"), &Default::default()).expect("import").graph;
    kiln_passes::simplify(&mut g).expect("simplify");
    let opt = optimized_matches(&g, Target::Ascend910B, 1e-4);
    let f = formats(&opt);
    println!("{f:?}");
    assert!(f.iter().filter(|x| **x == Format::Nc1hwc0).count() >= 16, "{f:?}");
    assert_eq!((count(&opt, "ToFormat"), count(&opt, "FromFormat")), (1, 1));
}
