//! The e-graph core: unsound rules fail loudly, limits stop saturation with the right reason,
//! sharing survives the round trip, the extraction is DAG-aware, and ops a target cannot run
//! are reported.

use egg::Id;
use kiln_ir::text::parse;
use kiln_ir::{Graph, Op, TensorType, UnaryOp};
use kiln_passes::eqsat::lang::Node;
use kiln_passes::eqsat::rule::{Ctx, Proposal, Term};
use kiln_passes::eqsat::{optimize, CostModel, ExtractMethod, Limits, OptimizeError, Rule, StopReason, INFEASIBLE};
use std::collections::HashMap;
use std::time::Duration;

mod common;
use common::Gpu;

/// A target that cannot run Sin.
struct NoSin;
impl CostModel for NoSin {
    fn name(&self) -> &'static str {
        "no-sin"
    }
    fn op_cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        if kiln_passes::eqsat::roofline::ops_within(op).iter().any(|o| **o == (Op::Unary { op: UnaryOp::Sin })) {
            INFEASIBLE
        } else {
            Gpu.op_cost(op, ins, outs)
        }
    }
}

fn graph(src: &str) -> Graph {
    parse(src, &HashMap::new()).unwrap_or_else(|e| panic!("{e}"))
}

const CHAIN: &str = "graph \"g\" (%x: f32[2,3]) {\n  %a = Neg[a](%x) : f32[2,3]\n  %b = Sin[b](%a) : f32[2,3]\n  return %b\n}\n";

/// Claims `Neg(x) = Transpose(x)`: a different shape.
fn unsound_shape(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let _ = cx;
    match node {
        Node::Op { op, args, .. } if *op.op() == (Op::Unary { op: UnaryOp::Neg }) => {
            vec![(class, Term::Op(Op::Transpose { perm: vec![1, 0] }, vec![Term::Class(args[0])]))]
        }
        _ => vec![],
    }
}

/// Builds a MatMul of a [2,3] by itself, which does not type-check.
fn ill_typed(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let _ = cx;
    match node {
        Node::Op { op, args, .. } if *op.op() == (Op::Unary { op: UnaryOp::Neg }) => {
            vec![(class, Term::Op(Op::MatMul {}, vec![Term::Class(args[0]), Term::Class(args[0])]))]
        }
        _ => vec![],
    }
}

/// x = (x + 1) - 1 for every x: each application makes a new e-class `x + 1`, so it never
/// saturates.
fn add_sub_one(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    let _ = node;
    let one = || Term::Weight("one".into(), std::sync::Arc::new(kiln_ir::Tensor::from_f32s(vec![], vec![1.0]).expect("scalar")));
    let bin = |op, a, b| Term::Op(Op::Binary { op }, vec![a, b]);
    if cx.eg[class].data.value().is_some_and(|t| t.dtype == kiln_ir::DType::F32) {
        vec![(class, bin(kiln_ir::BinaryOp::Sub, bin(kiln_ir::BinaryOp::Add, Term::Class(class), one()), one()))]
    } else {
        vec![]
    }
}

#[test]
fn a_rule_merging_different_shapes_fails_loudly() {
    let rule = Rule { name: "test/unsound", search: unsound_shape };
    let err = optimize(&graph(CHAIN), &[rule], &Gpu, Limits::default()).expect_err("unsound rule must fail");
    let OptimizeError::Internal(msg) = err else { panic!("{err}") };
    assert!(msg.contains("unsound rewrite merged e-classes"), "{msg}");
}

#[test]
fn a_rule_building_an_ill_typed_op_fails_loudly() {
    let rule = Rule { name: "test/ill-typed", search: ill_typed };
    let err = optimize(&graph(CHAIN), &[rule], &Gpu, Limits::default()).expect_err("must fail");
    assert!(err.to_string().contains("does not type-check"), "{err}");
}

#[test]
fn saturation_stops_at_each_limit_and_says_which() {
    let rule = Rule { name: "test/add-sub-one", search: add_sub_one };
    let g = graph(CHAIN);
    let (_, rep) =
        optimize(&g, &[rule], &Gpu, Limits { nodes: 1_000_000, iterations: 3, time: Duration::from_secs(60) }).expect("optimize");
    assert_eq!(rep.stop_reason, StopReason::IterationLimit(3));
    let (_, rep) = optimize(&g, &[rule], &Gpu, Limits { nodes: 50, iterations: 1000, time: Duration::from_secs(60) }).expect("optimize");
    assert_eq!(rep.stop_reason, StopReason::NodeLimit(50));
    let (out, rep) =
        optimize(&g, &[rule], &Gpu, Limits { nodes: usize::MAX, iterations: usize::MAX, time: Duration::ZERO }).expect("optimize");
    assert!(matches!(rep.stop_reason, StopReason::TimeLimit(_)));
    // Whatever stopped it, the extraction keeps the cheapest: the original two ops.
    assert_eq!(out.nodes.len(), 2);
}

/// A rule whose every search takes 2 ms: an iteration over the 200-op chain below takes 0.4 s.
fn slow_search(cx: &Ctx, class: Id, node: &Node) -> Vec<Proposal> {
    std::thread::sleep(Duration::from_millis(2));
    add_sub_one(cx, class, node)
}

#[test]
fn the_time_limit_cuts_an_iteration_short() {
    let mut src = String::from("graph \"g\" (%x: f32[2,3]) {\n  %v0 = Neg[n0](%x) : f32[2,3]\n");
    for i in 1..200 {
        src += &format!("  %v{i} = Neg[n{i}](%v{}) : f32[2,3]\n", i - 1);
    }
    src += "  return %v199\n}\n";
    let rule = Rule { name: "test/slow", search: slow_search };
    let limits = Limits { nodes: usize::MAX, iterations: 1, time: Duration::from_millis(20) };
    let (out, rep) = optimize(&graph(&src), &[rule], &Gpu, limits).expect("optimize");
    assert!(matches!(rep.stop_reason, StopReason::TimeLimit(_)), "{:?}", rep.stop_reason);
    assert!(rep.eqsat_ms < 300.0, "one iteration ran to its end: {} ms", rep.eqsat_ms);
    assert_eq!(out.nodes.len(), 200);
}

#[test]
fn without_rules_saturation_stops_at_once_and_the_graph_comes_back() {
    let (out, rep) = optimize(&graph(CHAIN), &[], &Gpu, Limits::default()).expect("optimize");
    assert_eq!(rep.stop_reason, StopReason::Saturated);
    assert_eq!(kiln_ir::text::print(&out), CHAIN);
}

#[test]
fn shared_values_stay_shared_and_duplicates_merge() {
    // %a is read twice; %c duplicates %a.
    let src = "graph \"g\" (%x: f32[4]) {\n  %a = Exp[a](%x) : f32[4]\n  %c = Exp[c](%x) : f32[4]\n  %b = Add[b](%a, %c) : f32[4]\n  %d = Mul[d](%a, %b) : f32[4]\n  return %d, %a\n}\n";
    let (out, _) = optimize(&graph(src), &[], &Gpu, Limits::default()).expect("optimize");
    let names: Vec<&str> = out.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "d"]);
    assert_eq!(out.outputs[1], out.nodes[0].outputs[0].expect("a"));
}

#[test]
fn extraction_is_exact_on_small_graphs_and_dag_aware_on_large_ones() {
    // Three matmuls of one input: merging pays only when all three read the merged product,
    // which a per-use (tree) cost never sees.
    let qkv = |chain: usize| {
        let mut s = String::from("graph \"g\" (%x0: f32[4,4]) {\n");
        for i in 0..chain {
            s += &format!("  %x{} = Tanh[t{i}](%x{i}) : f32[4,4]\n  %y{i} = Neg[n{i}](%x{}) : f32[4,4]\n", i + 1, i + 1);
        }
        s += &format!("  %wq = const f32[4,2] [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]\n  %wk = const f32[4,2] [-0.1, 0.2, -0.3, 0.4, -0.5, 0.6, -0.7, 0.8]\n  %wv = const f32[4,2] [1.1, 0.2, 1.3, 0.4, 1.5, 0.6, 1.7, 0.8]\n  %q = MatMul[q](%x{chain}, %wq) : f32[4,2]\n  %k = MatMul[k](%x{chain}, %wk) : f32[4,2]\n  %v = MatMul[v](%x{chain}, %wv) : f32[4,2]\n");
        let ys: Vec<String> = (0..chain).map(|i| format!("%y{i}")).collect();
        s += &format!("  return %q, %k, %v{}{}\n}}\n", if ys.is_empty() { "" } else { ", " }, ys.join(", "));
        graph(&s)
    };
    let rules = kiln_passes::rules::all();
    let (small, rep) = optimize(&qkv(0), &rules, &Gpu, Limits::default()).expect("optimize");
    assert_eq!(rep.extraction, ExtractMethod::Exact);
    assert_eq!(small.nodes.len(), 1, "{}", kiln_ir::text::print(&small));
    let (large, rep) = optimize(&qkv(14), &rules, &Gpu, Limits::default()).expect("optimize");
    assert_eq!(rep.extraction, ExtractMethod::GreedyDag);
    assert_eq!(
        large.nodes.iter().filter(|n| matches!(n.op, Op::MatMul {} | Op::MatMulFused { .. })).count(),
        1,
        "{}",
        kiln_ir::text::print(&large)
    );
}

#[test]
fn ops_the_target_cannot_run_are_named() {
    let err = optimize(&graph(CHAIN), &kiln_passes::rules::all(), &NoSin, Limits::default()).expect_err("infeasible");
    assert_eq!(err.to_string(), "the no-sin target cannot run: Sin");
}

/// Outputs keep the model's names: one that is an input passed through, a weight, or the same
/// value as an earlier output gets an Identity (a view) named as the model names it.
#[test]
fn outputs_keep_the_models_names_when_they_are_inputs_weights_or_repeated() {
    let g = graph(
        "graph \"g\" (%x: f32[2,3]) {\n  %w = const f32[3] [1, 2, 3]\n  %x_out = Identity[i](%x) : f32[2,3]\n  %w_out = Identity[j](%w) : f32[3]\n  %n = Neg[n](%x) : f32[2,3]\n  %n_again = Identity[k](%n) : f32[2,3]\n  return %x_out, %w_out, %n, %n_again\n}\n",
    );
    let rules = kiln_passes::rules::all();
    let (out, _) = optimize(&g, &rules, &Gpu, Limits::default()).expect("optimizes");
    let names: Vec<&str> = out.outputs.iter().map(|&o| out.value(o).name.as_str()).collect();
    assert_eq!(names, ["x_out", "w_out", "n", "n_again"], "{}", kiln_ir::text::print(&out));
    kiln_ir::verify(&out).expect("verifies");
}

/// A Gemm whose C does not broadcast one way to (M, N) ([5,1,1,2] against [1,10]) is refused
/// by type inference, naming the op; before, the epilogue rules built a broadcast of it that did
/// not type-check and the optimizer panicked.
#[test]
fn a_gemm_bias_that_does_not_broadcast_to_the_product_is_refused() {
    let src = "graph \"g\" (%a: f32[1,3], %b: f32[3,10], %c: f32[5,1,1,2]) {\n  %y = Gemm[gemm](%a, %b, %c) {alpha=1.0, beta=1.0, trans_a=false, trans_b=false} : f32[1,10]\n  %r = Relu[r](%y) : f32[1,10]\n  return %r\n}\n";
    let e = parse(src, &HashMap::new()).expect_err("refused").to_string();
    assert!(e.contains("does not broadcast to the product"), "{e}");
}

/// A Gemm of u8 operands with an epilogue optimizes to a verified graph or is refused; the
/// optimizer does not panic on it.
#[test]
fn a_u8_gemm_optimizes_without_panicking() {
    let src = "graph \"g\" (%a: u8[2,3], %b: u8[3,4]) {\n  %y = Gemm[gemm](%a, %b) {alpha=1.0, beta=1.0, trans_a=false, trans_b=false} : u8[2,4]\n  %r = Relu[r](%y) : u8[2,4]\n  return %r\n}\n";
    let g = parse(src, &HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
    let rules = kiln_passes::rules::all();
    match optimize(&g, &rules, &Gpu, Limits::default()) {
        Ok((o, _)) => kiln_ir::verify(&o).expect("verifies"),
        Err(OptimizeError::Internal(m)) => panic!("internal error: {m}"),
        Err(_) => {}
    }
}
