//! Soundness of the optimizer as a property: random small programs drawn from the ops the rule
//! sets touch (elementwise chains, matmuls by weights, transposes and reshapes that cancel,
//! scalar scales, GELU/SiLU decompositions, neutral elements, cast round trips, matmuls sharing
//! an input) compute the same thing after optimization for every target's rules and cost model,
//! within 1e-5 relative, on random inputs.

use kiln_driver::Target;
use kiln_driver::{backend, Costing};
use kiln_ir::{interp, BinaryOp, DType, Graph, Op, Tensor, TensorType, UnaryOp, ValueId};
use kiln_passes::eqsat::{optimize, Limits};
use proptest::prelude::*;
use std::sync::Arc;

const TARGETS: [Target; 3] = [Target::Sm90, Target::Ascend910B, Target::Cpu];

struct Builder {
    g: Graph,
    /// Values of shape [4, 8].
    vals: Vec<ValueId>,
    next: usize,
}

impl Builder {
    fn name(&mut self) -> String {
        self.next += 1;
        format!("v{}", self.next)
    }
    fn konst(&mut self, dims: &[usize], f: impl Fn(usize) -> f32) -> ValueId {
        let n: usize = dims.iter().product();
        let name = self.name();
        self.g.add_const(name, Arc::new(Tensor::from_f32s(dims.to_vec(), (0..n).map(f).collect()).expect("size")))
    }
    fn op(&mut self, op: Op, ins: &[ValueId]) -> ValueId {
        let name = self.name();
        self.g.add_node(name.clone(), op, ins.iter().map(|&v| Some(v)).collect(), &[Some(name)]).expect("valid program")[0].expect("output")
    }
    fn un(&mut self, op: UnaryOp, a: ValueId) -> ValueId {
        self.op(Op::Unary { op }, &[a])
    }
    fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> ValueId {
        self.op(Op::Binary { op }, &[a, b])
    }
    fn scalar(&mut self, v: f32) -> ValueId {
        self.konst(&[], |_| v)
    }
    fn weight(&mut self, seed: usize) -> ValueId {
        self.konst(&[8, 8], |i| (((i * 7 + seed * 13) % 17) as f32 - 8.0) / 16.0)
    }
}

/// Builds the program: each step is (opcode, operand, operand).
fn program(steps: &[(u8, u8, u8)]) -> Graph {
    let mut b = Builder { g: Graph::new("prop"), vals: vec![], next: 0 };
    let row = TensorType::fixed(DType::F32, &[4, 8]);
    b.vals.push(b.g.add_input("x0", row.clone()));
    b.vals.push(b.g.add_input("x1", row));
    let bias = b.g.add_input("bias", TensorType::fixed(DType::F32, &[8]));
    for (k, &(code, i, j)) in steps.iter().enumerate() {
        let a = b.vals[i as usize % b.vals.len()];
        let c = b.vals[j as usize % b.vals.len()];
        let v = match code % 18 {
            0 => b.un(UnaryOp::Tanh, a),
            1 => b.un(UnaryOp::Sigmoid, a),
            2 => b.un(UnaryOp::Neg, a),
            3 => b.un(UnaryOp::Relu, a),
            4 => b.bin(BinaryOp::Add, a, c),
            5 => b.bin(BinaryOp::Mul, a, c),
            6 => b.bin(BinaryOp::Sub, a, bias),
            7 => b.bin(BinaryOp::Max, a, c),
            8 => {
                let w = b.weight(k);
                b.op(Op::MatMul {}, &[a, w])
            }
            9 => {
                let t = b.op(Op::Transpose { perm: vec![1, 0] }, &[a]);
                b.op(Op::Transpose { perm: vec![1, 0] }, &[t])
            }
            10 => {
                let s1 = b.g.add_const(format!("s{k}a"), Arc::new(Tensor::from_i64s(vec![2], vec![8, 4]).expect("shape")));
                let s2 = b.g.add_const(format!("s{k}b"), Arc::new(Tensor::from_i64s(vec![2], vec![4, 8]).expect("shape")));
                let r = b.op(Op::Reshape { allowzero: false }, &[a, s1]);
                b.op(Op::Reshape { allowzero: false }, &[r, s2])
            }
            11 => {
                let s = b.scalar(0.5);
                b.bin(BinaryOp::Mul, a, s)
            }
            12 => {
                let s = b.un(UnaryOp::Sigmoid, a);
                b.bin(BinaryOp::Mul, a, s)
            }
            13 => {
                let r2 = b.scalar(std::f32::consts::SQRT_2);
                let one = b.scalar(1.0);
                let half = b.scalar(0.5);
                let d = b.bin(BinaryOp::Div, a, r2);
                let e = b.un(UnaryOp::Erf, d);
                let p = b.bin(BinaryOp::Add, e, one);
                let m = b.bin(BinaryOp::Mul, a, p);
                b.bin(BinaryOp::Mul, m, half)
            }
            14 => {
                let z = b.konst(&[8], |_| 0.0);
                b.bin(BinaryOp::Add, a, z)
            }
            15 => {
                let up = b.op(Op::Cast { to: DType::F64, saturate: true, round_mode: kiln_ir::ops::E8M0Rounding::Up }, &[a]);
                b.op(Op::Cast { to: DType::F32, saturate: true, round_mode: kiln_ir::ops::E8M0Rounding::Up }, &[up])
            }
            16 => {
                let w = b.weight(k);
                let m = b.op(Op::MatMul {}, &[a, w]);
                let s = b.scalar(0.25);
                b.bin(BinaryOp::Mul, m, s)
            }
            _ => {
                let (w1, w2) = (b.weight(k), b.weight(k + 1));
                let m1 = b.op(Op::MatMul {}, &[a, w1]);
                let m2 = b.op(Op::MatMul {}, &[a, w2]);
                b.bin(BinaryOp::Add, m1, m2)
            }
        };
        b.vals.push(v);
    }
    let last = *b.vals.last().expect("values");
    let other = b.vals[steps.first().map_or(0, |s| s.2 as usize) % b.vals.len()];
    b.g.outputs = if other == last { vec![last] } else { vec![last, other] };
    b.g
}

fn inputs(g: &Graph, seed: u64) -> Vec<Tensor> {
    let mut s = seed.wrapping_add(0x9E3779B97F4A7C15);
    g.inputs
        .iter()
        .map(|&i| {
            let dims = g.value(i).ty.shape.as_fixed().expect("static");
            let n: usize = dims.iter().product();
            let v = (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    (s % 4001) as f32 / 1000.0 - 2.0
                })
                .collect();
            Tensor::from_f32s(dims, v).expect("size")
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn optimized_programs_compute_what_the_originals_compute(steps in prop::collection::vec((0u8..18, any::<u8>(), any::<u8>()), 1..10), seed in any::<u64>()) {
        let g = program(&steps);
        let x = inputs(&g, seed);
        let want = interp::run(&g, x.clone()).expect("original runs");
        for target in TARGETS {
            let b = backend(target).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (opt, _) = optimize(&g, &b.rules(), &Costing(b), Limits::default()).map_err(|e| TestCaseError::fail(format!("{target}: {e}")))?;
            kiln_ir::verify(&opt).map_err(|e| TestCaseError::fail(format!("{target}: {e}")))?;
            let got = interp::run(&opt, x.clone()).map_err(|e| TestCaseError::fail(format!("{target}: {e}")))?;
            for (a, b) in got.iter().zip(&want) {
                prop_assert_eq!(a.dims(), b.dims());
                for (p, q) in a.to_f64().iter().zip(b.to_f64()) {
                    prop_assert!((p - q).abs() <= 1e-5 * (1.0 + q.abs()), "{}: {} vs {}\n{}", target, p, q, kiln_ir::text::print(&opt));
                }
            }
        }
    }
}
