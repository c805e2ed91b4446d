//! The rule tests' harness: optimize a text-IR graph with every rule and with each rule
//! alone, and check each result against the original in the interpreter on random inputs.

use super::Gpu;
use kiln_ir::text::parse;
use kiln_ir::{interp, DType, Graph, Tensor};
use kiln_passes::eqsat::{optimize, EqsatReport, Limits};
use std::collections::HashMap;

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

/// Optimizes `src` with every rule and checks the result against the original on random inputs;
/// then does the same with each rule alone, so every rule's two sides are compared on their own.
pub fn run(src: &str) -> (Graph, EqsatReport) {
    let g = parse(src, &HashMap::new()).unwrap_or_else(|e| panic!("{e}\n{src}"));
    for rule in kiln_passes::rules::all() {
        let (opt, _) = optimize(&g, &[rule], &Gpu, Limits::default()).unwrap_or_else(|e| panic!("{}: {e}", rule.name));
        check_same(&g, &opt);
    }
    let (opt, rep) = optimize(&g, &kiln_passes::rules::all(), &Gpu, Limits::default()).unwrap_or_else(|e| panic!("{e}"));
    check_same(&g, &opt);
    (opt, rep)
}

pub fn check_same(g: &Graph, opt: &Graph) {
    kiln_ir::verify(opt).unwrap_or_else(|e| panic!("{e}\n{}", kiln_ir::text::print(opt)));
    for seed in 0..3 {
        let x = random_inputs(g, seed);
        let want = interp::run(g, x.clone()).expect("original runs");
        let got = interp::run(opt, x).unwrap_or_else(|e| panic!("{e}\n{}", kiln_ir::text::print(opt)));
        for (a, b) in got.iter().zip(&want) {
            assert_eq!(a.dims(), b.dims());
            for (p, q) in a.to_f64().iter().zip(b.to_f64()) {
                assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{p} vs {q}\n{}", kiln_ir::text::print(opt));
            }
        }
    }
}

pub fn fired(rep: &EqsatReport, rule: &str) -> usize {
    rep.rules_fired.get(rule).copied().unwrap_or(0)
}

pub fn kinds(g: &Graph) -> Vec<&'static str> {
    g.nodes.iter().map(|n| n.op.display_name()).collect()
}
