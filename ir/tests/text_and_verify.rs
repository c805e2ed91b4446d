//! The verifier rejects broken graphs; the text parser rejects bad text with a position and
//! round-trips what the printer writes.

use kiln_ir::text::{parse, print};
use kiln_ir::{verify, BinaryOp, DType, Graph, Node, Op, Shape, TensorType, UnaryOp, ValueId, VerifyError};
use std::collections::HashMap;

fn f32s(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape::fixed(dims))
}

fn add_graph() -> Graph {
    let mut g = Graph::new("g");
    let x = g.add_input("x", f32s(&[2, 3]));
    let y = g.add_input("y", f32s(&[3]));
    let z = g.add_node("add", Op::Binary { op: BinaryOp::Add }, vec![Some(x), Some(y)], &[Some("z".into())]).expect("add");
    let r = g.add_node("relu", Op::Unary { op: UnaryOp::Relu }, vec![z[0]], &[Some("r".into())]).expect("relu");
    g.outputs = vec![r[0].expect("output")];
    g
}

#[test]
fn verifier_accepts_a_built_graph_and_rejects_use_before_def() {
    let mut g = add_graph();
    verify(&g).expect("valid");
    g.nodes.swap(0, 1);
    assert!(matches!(verify(&g), Err(VerifyError::UseBeforeDef { node, value }) if node == "relu" && value == "z"));
}

#[test]
fn verifier_rejects_duplicate_definitions_names_and_stale_types() {
    let mut g = add_graph();
    let extra =
        Node { name: "again".into(), op: Op::Unary { op: UnaryOp::Relu }, inputs: vec![Some(ValueId(0))], outputs: vec![Some(ValueId(2))] };
    g.nodes.push(extra);
    assert!(matches!(verify(&g), Err(VerifyError::Redefined(n)) if n == "z"));

    let mut g = add_graph();
    g.values[1].name = "x".into();
    assert!(matches!(verify(&g), Err(VerifyError::DuplicateName(n)) if n == "x"));

    let mut g = add_graph();
    g.values[2].ty = f32s(&[2, 2]);
    assert!(matches!(verify(&g), Err(VerifyError::TypeMismatch { node, .. }) if node == "add"));
}

#[test]
fn builder_rejects_a_shape_mismatch_naming_the_node() {
    let mut g = Graph::new("g");
    let x = g.add_input("x", f32s(&[2, 3]));
    let y = g.add_input("y", f32s(&[4]));
    let e = g.add_node("bad", Op::Binary { op: BinaryOp::Mul }, vec![Some(x), Some(y)], &[Some("z".into())]).expect_err("mismatch");
    assert_eq!(e.node, "bad");
    assert!(e.to_string().contains("cannot broadcast"), "{e}");
}

#[test]
fn text_round_trips_inline_constants_special_floats_quoted_names_and_subgraphs() {
    let src = r#"graph "demo" (%x: f32[N,3], %"in/put": bool[]) {
  %c = const f32[3] [1.5, nan, -inf]
  %k = const i64[1] [-2]
  %a = Add[add](%x, %c) : f32[N,3]
  %s = Softmax["soft/max"](%a) {axis=-1, legacy=false} : f32[N,3]
  %g = Gelu[g](%s) {approximate=tanh} : f32[N,3]
  %u = Unsqueeze[u](%g, %k) : f32[N,1,3]
  %o = If[if](%"in/put", %u) {then_branch=graph "then" (%u: f32[N,1,3]) {
      %t = Neg[n](%u) : f32[N,1,3]
      return %t
    }, else_branch=graph "else" (%u: f32[N,1,3]) {
      return %u
    }} : f32[N,1,3]
  return %o
}
"#;
    let g = parse(src, &HashMap::new()).expect("parse");
    verify(&g).expect("verify");
    assert_eq!(print(&g), src);
    assert_eq!(
        g.value(g.outputs[0]).ty,
        TensorType::new(DType::F32, Shape(vec![kiln_ir::Dim::Sym("N".into()), 1usize.into(), 3usize.into()]))
    );
}

#[test]
fn text_errors_carry_line_and_column() {
    let undefined = "graph \"g\" (%x: f32[2]) {\n  %y = Relu[r](%nope) : f32[2]\n  return %y\n}\n";
    let e = parse(undefined, &HashMap::new()).expect_err("undefined value");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("%nope"), "{e}");

    let wrong_type = "graph \"g\" (%x: f32[2]) {\n  %y = Relu[r](%x) : f32[3]\n  return %y\n}\n";
    let e = parse(wrong_type, &HashMap::new()).expect_err("type mismatch");
    assert!(e.message.contains("inference gives f32[2]"), "{e}");

    let bad_dtype = "graph \"g\" (%x: f33[2]) {\n  return %x\n}\n";
    assert!(parse(bad_dtype, &HashMap::new()).expect_err("dtype").message.contains("unknown dtype `f33`"));

    let missing_weight = "graph \"g\" (%x: f32[2]) {\n  %w = weight f32[100]\n  return %x\n}\n";
    assert!(parse(missing_weight, &HashMap::new()).expect_err("weight").message.contains("no data for weight `w`"));

    let bad_attr = "graph \"g\" (%x: f32[2]) {\n  %y = LeakyRelu[l](%x) {alpha=3} : f32[2]\n  return %y\n}\n";
    assert!(parse(bad_attr, &HashMap::new()).expect_err("attr").message.contains("alpha"));
}

#[test]
fn value_driven_sizes_are_bounded() {
    use kiln_ir::{interp, Data, Tensor};
    let src =
        "graph \"g\" (%s: i64[2]) {\n  %y = ConstantOfShape[c](%s) {value=tensor<f32[1]>[0.0]} : f32[\"c_0\",\"c_1\"]\n  return %y\n}\n";
    let g = parse(src, &HashMap::new()).expect("parse");
    let huge = Tensor::new(vec![2], Data::I64(vec![1 << 40, 1 << 40])).expect("tensor");
    let e = interp::run(&g, vec![huge]).expect_err("too large");
    assert!(e.to_string().contains("too large"), "{e}");
    let ok = Tensor::new(vec![2], Data::I64(vec![2, 3])).expect("tensor");
    assert_eq!(interp::run(&g, vec![ok]).expect("small")[0].dims(), &[2, 3]);
}

#[test]
fn mutated_text_never_panics_the_parser() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../testsuite/golden/resnet18_narrow/model.ir.txt"))
        .expect("golden IR text");
    // Zero weights of the declared types, so that the unmutated text parses completely.
    let mut weights = HashMap::new();
    for line in src.lines().filter(|l| l.contains(" = weight ")) {
        let (name, ty) = line.trim().split_once(" = weight ").expect("weight line");
        let (dtype, dims) = ty.split_once('[').expect("type");
        let dims: Vec<usize> = dims.trim_end_matches(']').split(',').map(|d| d.parse().expect("dim")).collect();
        let t = kiln_ir::Tensor::zeros(DType::from_name(dtype).expect("dtype"), dims);
        weights.insert(name.trim_start_matches('%').trim_matches('"').to_string(), std::sync::Arc::new(t));
    }
    let g = parse(&src, &weights).expect("the golden text parses with its weights");
    assert_eq!(print(&g), src);
    let bytes: Vec<char> = src.chars().collect();
    let alphabet: Vec<char> = "%\"[](){}<>=,:_0123456789.-eifgraphweightconst \n".chars().collect();
    let mut state = 0x9E3779B97F4A7C15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut s = bytes.clone();
        for _ in 0..1 + next() % 4 {
            let i = (next() as usize) % s.len();
            match next() % 3 {
                0 => s[i] = alphabet[(next() as usize) % alphabet.len()],
                1 => {
                    s.remove(i);
                }
                _ => s.insert(i, alphabet[(next() as usize) % alphabet.len()]),
            }
        }
        let text: String = s.into_iter().collect();
        let _ = parse(&text, &weights);
        let cut = (next() as usize) % text.len();
        let _ = parse(&text[..text.char_indices().map(|(i, _)| i).take_while(|&i| i <= cut).last().unwrap_or(0)], &weights);
    }
}

/// A Reshape whose shape is a graph input has a symbolic result; freezing that input to a value
/// makes it known, and a value that the input's type does not admit is refused.
#[test]
fn freezing_a_shape_input_makes_the_shape_known() {
    let mut g = Graph::new("g");
    let x = g.add_input("x", f32s(&[2, 6]));
    let s = g.add_input("s", TensorType::new(DType::I64, Shape::fixed(&[2])));
    let y = g.add_node("r", Op::Reshape { allowzero: false }, vec![Some(x), Some(s)], &[Some("y".into())]).expect("reshape")[0].expect("y");
    g.outputs = vec![y];
    assert!(g.value(y).ty.shape.as_fixed().is_none(), "{}", g.value(y).ty.shape);
    let wrong = kiln_ir::Tensor::from_i64s(vec![3], vec![3, 4, 1]).expect("tensor");
    assert!(g.freeze_input(s, wrong).is_err(), "a [3] value for a [2] input");
    g.freeze_input(s, kiln_ir::Tensor::from_i64s(vec![2], vec![3, 4]).expect("tensor")).expect("freezes");
    assert_eq!(g.value(y).ty.shape.as_fixed(), Some(vec![3, 4]));
    assert_eq!(g.inputs, vec![x]);
    verify(&g).expect("still a valid graph");
}

/// Concat of rank-0 tensors is an error naming the op, not a panic (it joins along an axis).
#[test]
fn concat_of_scalars_is_refused() {
    let src = "graph \"g\" (%a: f32[], %b: f32[]) {\n  %c = Concat[c](%a, %b) {axis=0} : f32[2]\n  return %c\n}\n";
    let e = kiln_ir::text::parse(src, &std::collections::HashMap::new()).expect_err("refused").to_string();
    assert!(e.contains("rank-0"), "{e}");
}

/// A shape computed from a value that would need more memory than a machine has is an error
/// naming the op, before anything is allocated (Expand to [2^31, 4]: 32 GiB of f32).
#[test]
fn huge_computed_shapes_are_refused_before_allocating() {
    let src =
        "graph \"g\" (%x: f32[1]) {\n  %s = const i64[2] [2147483648, 4]\n  %y = Expand[e](%x, %s) : f32[2147483648,4]\n  return %y\n}\n";
    let g = kiln_ir::text::parse(src, &std::collections::HashMap::new()).expect("parses");
    let x = kiln_ir::Tensor::new(vec![1], kiln_ir::Data::F32(vec![1.0])).expect("tensor");
    let e = kiln_ir::interp::run(&g, vec![x]).expect_err("too large").to_string();
    assert!(e.contains("too large"), "{e}");
}

/// Convolution pads of 2^31 are an error when run (the output would be too large), not an
/// overflow of the index arithmetic.
#[test]
fn convolution_pads_of_two_to_the_31_are_refused() {
    let src = "graph \"g\" (%x: f32[1,1,4,4], %w: f32[1,1,3,3]) {\n  %y = Conv[c](%x, %w) {kernel_shape=[3, 3], strides=[1, 1], pads=[2147483648, 0, 2147483648, 0], dilations=[1, 1], group=1, auto_pad=notset} : f32[1,1,4294967298,2]\n  return %y\n}\n";
    let g = kiln_ir::text::parse(src, &std::collections::HashMap::new()).expect("parses");
    let x = kiln_ir::Tensor::new(vec![1, 1, 4, 4], kiln_ir::Data::F32(vec![1.0; 16])).expect("tensor");
    let w = kiln_ir::Tensor::new(vec![1, 1, 3, 3], kiln_ir::Data::F32(vec![1.0; 9])).expect("tensor");
    let r = std::panic::catch_unwind(|| kiln_ir::interp::run(&g, vec![x, w]).map(|_| ()));
    assert!(matches!(r, Ok(Err(_))), "{r:?}");
}
