//! Integer products and dynamic quantization as float ops, for a target without integer
//! kernels (the driver rewrites exactly the nodes its backend refuses), as onnxruntime's
//! `quantize_dynamic` models carry them:
//!
//! ```text
//! MatMulInteger(a, b, za, zb)  =>  Cast<i32>(MatMul(f32(a) - f32(za), f32(b) - f32(zb)))
//! ConvInteger(x, w, zx, zw)    =>  Cast<i32>(Conv(f32(x) - f32(zx), f32(w) - f32(zw)))
//! QLinearConv(x, sx, zx, w, sw, zw, sy, zy, B)
//!                              =>  q(Conv(f32(x) - f32(zx), f32(w) - f32(zw)) + f32(B), sx·sw / sy, zy)
//!                                  with q(a, m, z) = clip(round(a · m) + z, the output type's range)
//! DynamicQuantizeLinear(x)     =>  scale = (max(max x, 0) - min(min x, 0)) / 255
//!                                  zp = clip(round(-min(min x, 0) / scale), 0, 255)
//!                                  y = u8(clip(round(x / scale) + zp, 0, 255))
//! ```
//!
//! The products are exact while every partial sum stays below 2^24 in magnitude (f32's
//! integers): a u8 x s8 product of depth K is exact for K <= 513, and beyond that off by at
//! most a few units of 2^-24 of the sum, far below the dequantization's own rounding. A
//! 16-bit target then runs them on its tensor cores (u8 and s8 values are exact in f16). An
//! empty range (scale 0) quantizes to zero point 0, as the interpreter does. QLinearConv
//! requantizes in f32 where the interpreter (and ONNX's reference) multiply in f64: a value
//! within f32's rounding of a half-way point may land one unit away. These are not
//! int8 kernels: the bytes moved are f32's (or f16's), not int8's.

use crate::emitter::Emitter;
use kiln_ir::ops::ReduceKind;
use kiln_ir::{BinaryOp, DType, Graph, Node, NodeError, Op, Tensor, UnaryOp, ValueId};

/// Rewrites every node of the three ops that `refused(node, graph)` selects and the rewrite
/// covers (zero points per tensor, per row of a 2-D A or per output channel); returns how many.
pub fn integer_ops_as_float(g: &mut Graph, refused: impl Fn(&Node, &Graph) -> bool) -> Result<usize, NodeError> {
    let old = std::mem::take(&mut g.nodes);
    let mut count = 0;
    for n in old {
        if !covered(g, &n) || !refused(&n, g) {
            g.nodes.push(n);
            continue;
        }
        let mut e = Emitter::new(&mut *g, &n.name, "float");
        let results = match &n.op {
            Op::DynamicQuantizeLinear {} => e.dynamic_quantize(input(&n, 0)?)?,
            Op::MatMulInteger {} => vec![e.integer_product(&n, Op::MatMul {}, 1)?],
            Op::ConvInteger { .. } => vec![e.integer_product(&n, n.op.float_conv().expect("a convolution"), 0)?],
            Op::QLinearConv { .. } => vec![e.qlinear_conv(&n, n.op.float_conv().expect("a convolution"))?],
            _ => unreachable!("covered() admits these four ops only"),
        };
        // The node's own output values, so that its readers are unchanged.
        for (k, (o, v)) in n.outputs.iter().zip(results).enumerate() {
            if let Some(o) = o {
                e.g.nodes.push(Node {
                    name: format!("{}/out{k}", n.name),
                    op: Op::Identity {},
                    inputs: vec![Some(v)],
                    outputs: vec![Some(*o)],
                });
            }
        }
        count += 1;
    }
    Ok(count)
}

/// The ops and zero-point layouts the rewrite covers.
fn covered(g: &Graph, n: &Node) -> bool {
    let rank = |k: usize| n.inputs.get(k).copied().flatten().map(|v| g.value(v).ty.shape.rank());
    let numel = |k: usize| n.inputs.get(k).copied().flatten().map(|v| g.value(v).ty.shape.numel());
    let scalar_or_vector = |k: usize| rank(k).is_none_or(|r| r <= 1);
    match n.op {
        Op::DynamicQuantizeLinear {} => n.inputs.first().copied().flatten().is_some_and(|x| g.value(x).ty.dtype == DType::F32),
        // A per-row zero point of A only for a 2-D A (a [M] vector then reads as [M, 1]).
        Op::MatMulInteger {} => {
            scalar_or_vector(2) && scalar_or_vector(3) && (numel(2).flatten().is_none_or(|k| k == 1) || rank(0) == Some(2))
        }
        Op::ConvInteger { .. } => numel(2).flatten().is_none_or(|k| k == 1) && scalar_or_vector(3),
        // Per-tensor input and output scales and zero points (the weights' may be per channel),
        // an 8-bit output.
        Op::QLinearConv { .. } => {
            [1, 2, 6, 7].iter().all(|&k| numel(k).flatten().is_none_or(|k| k == 1))
                && scalar_or_vector(4)
                && scalar_or_vector(5)
                && n.inputs.get(7).copied().flatten().is_none_or(|z| matches!(g.value(z).ty.dtype, DType::U8 | DType::I8))
        }
        _ => false,
    }
}

fn input(n: &Node, k: usize) -> Result<ValueId, NodeError> {
    n.inputs.get(k).copied().flatten().ok_or_else(|| NodeError {
        node: n.name.clone(),
        op: n.op.kind_name(),
        source: kiln_ir::OpError::Invalid(format!("input {k} is absent")),
    })
}

/// The float forms' own helpers, on the rewrites' shared emitter.
impl Emitter<'_> {
    fn cast(&mut self, v: ValueId, to: DType) -> Result<ValueId, NodeError> {
        self.op(Op::Cast { to, saturate: false, round_mode: kiln_ir::ops::E8M0Rounding::Up }, vec![Some(v)])
    }
    fn f32(&mut self, v: f32) -> ValueId {
        self.konst(Tensor::from_f32s(vec![], vec![v]).expect("a scalar"))
    }
    /// `clip(v, lo, hi)` with scalar bounds.
    fn clip(&mut self, v: ValueId, lo: f32, hi: f32) -> Result<ValueId, NodeError> {
        let (l, h) = (self.f32(lo), self.f32(hi));
        self.op(Op::Clip {}, vec![Some(v), Some(l), Some(h)])
    }
    /// The minimum or maximum of every element of `x`, as a scalar.
    fn extreme(&mut self, x: ValueId, kind: ReduceKind) -> Result<ValueId, NodeError> {
        self.op(Op::Reduce { kind, keepdims: false, noop_with_empty_axes: false }, vec![Some(x)])
    }

    /// DynamicQuantizeLinear's three outputs: y (u8), scale (f32 scalar), zero point (u8 scalar).
    fn dynamic_quantize(&mut self, x: ValueId) -> Result<Vec<ValueId>, NodeError> {
        let zero = self.f32(0.0);
        let hi = self.extreme(x, ReduceKind::Max)?;
        let hi = self.bin(BinaryOp::Max, hi, zero)?;
        let lo = self.extreme(x, ReduceKind::Min)?;
        let lo = self.bin(BinaryOp::Min, lo, zero)?;
        let range = self.bin(BinaryOp::Sub, hi, lo)?;
        let q = self.f32(255.0);
        let scale = self.bin(BinaryOp::Div, range, q)?;
        // An empty range divides by 1 instead: x is all zeros, and so are y and the zero point.
        let empty = self.bin(BinaryOp::Equal, scale, zero)?;
        let one = self.f32(1.0);
        let safe = self.op(Op::Where {}, vec![Some(empty), Some(one), Some(scale)])?;
        let neg = self.bin(BinaryOp::Sub, zero, lo)?;
        let zp = self.bin(BinaryOp::Div, neg, safe)?;
        let zp = self.un(UnaryOp::Round, zp)?;
        let zp = self.clip(zp, 0.0, 255.0)?;
        let y = self.bin(BinaryOp::Div, x, safe)?;
        let y = self.un(UnaryOp::Round, y)?;
        let y = self.bin(BinaryOp::Add, y, zp)?;
        let y = self.clip(y, 0.0, 255.0)?;
        let y = self.cast(y, DType::U8)?;
        let zp = self.cast(zp, DType::U8)?;
        Ok(vec![y, scale, zp])
    }

    /// `op(f32(a) - f32(za), f32(b) - f32(zb))` cast to i32. `row_axis_a`: 1 when A's zero
    /// point may be one per row (MatMulInteger: a [M] vector reads as [M, 1]); 0 when only a
    /// scalar. B's is per column (MatMulInteger, broadcast as is) or per output channel
    /// (ConvInteger: [M] reads as [M, 1, 1, ...]).
    fn integer_product(&mut self, n: &Node, op: Op, row_axis_a: usize) -> Result<ValueId, NodeError> {
        let is_conv = matches!(op, Op::Conv { .. });
        let (a, b) = (input(n, 0)?, input(n, 1)?);
        let a = self.centered(a, n.inputs.get(2).copied().flatten(), row_axis_a)?;
        let b_rank = self.g.value(b).ty.shape.rank();
        let b = self.centered(b, n.inputs.get(3).copied().flatten(), if is_conv { b_rank - 1 } else { 0 })?;
        let p = self.op(op, vec![Some(a), Some(b)])?;
        self.cast(p, DType::I32)
    }

    /// QLinearConv: the integer product in f32, its bias added, requantized to the output's
    /// 8-bit type with the per-tensor or per-channel multiplier `sx * sw / sy`.
    fn qlinear_conv(&mut self, n: &Node, conv: Op) -> Result<ValueId, NodeError> {
        let (x, sx, w, sw, sy) = (input(n, 0)?, input(n, 1)?, input(n, 3)?, input(n, 4)?, input(n, 6)?);
        let w_rank = self.g.value(w).ty.shape.rank();
        let xc = self.centered(x, n.inputs.get(2).copied().flatten(), 0)?;
        let wc = self.centered(w, n.inputs.get(5).copied().flatten(), w_rank - 1)?;
        let mut acc = self.op(conv, vec![Some(xc), Some(wc)])?;
        let per_channel = |e: &mut Self, v: ValueId| -> Result<ValueId, NodeError> {
            let t = &e.g.value(v).ty.shape;
            if t.rank() == 1 && t.numel() != Some(1) {
                let mut shape = vec![-1i64];
                shape.extend(std::iter::repeat_n(1, w_rank - 2));
                let s = e.ints(&shape);
                e.op(Op::Reshape { allowzero: false }, vec![Some(v), Some(s)])
            } else {
                Ok(v)
            }
        };
        if let Some(b) = n.inputs.get(8).copied().flatten() {
            let bf = self.cast(b, DType::F32)?;
            let bf = per_channel(self, bf)?;
            acc = self.bin(BinaryOp::Add, acc, bf)?;
        }
        let swc = per_channel(self, sw)?;
        let m = self.bin(BinaryOp::Mul, sx, swc)?;
        let m = self.bin(BinaryOp::Div, m, sy)?;
        let v = self.bin(BinaryOp::Mul, acc, m)?;
        let v = self.un(UnaryOp::Round, v)?;
        let out = match n.inputs.get(7).copied().flatten() {
            Some(zy) => {
                let z = self.cast(zy, DType::F32)?;
                let v = self.bin(BinaryOp::Add, v, z)?;
                (v, self.g.value(zy).ty.dtype)
            }
            None => (v, self.g.value(x).ty.dtype),
        };
        let (lo, hi) = if out.1 == DType::I8 { (-128.0, 127.0) } else { (0.0, 255.0) };
        let v = self.clip(out.0, lo, hi)?;
        self.cast(v, out.1)
    }

    /// `f32(v) - f32(zp)`; a vector zero point gains `trailing` unit axes to broadcast.
    fn centered(&mut self, v: ValueId, zp: Option<ValueId>, trailing: usize) -> Result<ValueId, NodeError> {
        let vf = self.cast(v, DType::F32)?;
        let Some(zp) = zp else { return Ok(vf) };
        let mut z = self.cast(zp, DType::F32)?;
        let zt = &self.g.value(zp).ty.shape;
        if zt.rank() == 1 && zt.numel() != Some(1) && trailing > 0 {
            let mut shape = vec![-1i64];
            shape.extend(std::iter::repeat_n(1, trailing));
            let s = self.ints(&shape);
            z = self.op(Op::Reshape { allowzero: false }, vec![Some(z), Some(s)])?;
        }
        self.bin(BinaryOp::Sub, vf, z)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{interp, Data, Shape, TensorType};
    use std::sync::Arc;

    fn all(_: &Node, _: &Graph) -> bool {
        true
    }

    fn seeded(n: usize, seed: u64, lo: i64, hi: i64) -> Vec<i64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                lo + ((s >> 33) as i64).rem_euclid(hi - lo + 1)
            })
            .collect()
    }

    fn tensor(dt: DType, dims: &[usize], v: &[i64]) -> Tensor {
        Tensor::new(dims.to_vec(), Data::from_i64(dt, v)).expect("test")
    }

    /// The rewritten graph computes exactly what the interpreter computes for the op.
    fn same_outputs(g: &Graph, inputs: Vec<Tensor>) {
        let want = interp::run(g, inputs.clone()).expect("the op");
        let mut h = g.clone();
        assert_eq!(integer_ops_as_float(&mut h, all).expect("rewrites"), 1);
        kiln_ir::verify(&h).expect("well-formed");
        assert!(h.nodes.iter().all(|n| !matches!(
            n.op,
            Op::MatMulInteger {} | Op::ConvInteger { .. } | Op::DynamicQuantizeLinear {} | Op::QLinearConv { .. }
        )));
        let got = interp::run(&h, inputs).expect("the rewrite");
        for (k, (w, o)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w.dtype(), o.dtype(), "output {k}");
            assert_eq!(w.dims(), o.dims(), "output {k}");
            assert_eq!(w.to_f64(), o.to_f64(), "output {k}");
        }
    }

    #[test]
    fn matmul_integer_with_per_row_and_per_column_zero_points() {
        for (za, zb) in [(vec![3], vec![-2]), (seeded(5, 1, 0, 255), seeded(7, 2, -128, 127))] {
            let mut g = Graph::new("g");
            let a = g.add_input("a", TensorType::new(DType::U8, Shape::fixed(&[5, 300])));
            let b = g.add_const("b", Arc::new(tensor(DType::I8, &[300, 7], &seeded(2100, 3, -128, 127))));
            let za = g.add_const("za", Arc::new(tensor(DType::U8, if za.len() == 1 { &[] } else { &[5] }, &za)));
            let zb = g.add_const("zb", Arc::new(tensor(DType::I8, if zb.len() == 1 { &[] } else { &[7] }, &zb)));
            let y =
                g.add_node("mm", Op::MatMulInteger {}, vec![Some(a), Some(b), Some(za), Some(zb)], &[Some("y".into())]).expect("test")[0];
            g.outputs = vec![y.expect("test")];
            same_outputs(&g, vec![tensor(DType::U8, &[5, 300], &seeded(1500, 4, 0, 255))]);
        }
    }

    #[test]
    fn conv_integer_with_per_channel_weight_zero_points() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::new(DType::U8, Shape::fixed(&[1, 8, 9, 9])));
        let w = g.add_const("w", Arc::new(tensor(DType::U8, &[6, 4, 3, 3], &seeded(216, 5, 0, 255))));
        let zx = g.add_const("zx", Arc::new(tensor(DType::U8, &[], &[128])));
        let zw = g.add_const("zw", Arc::new(tensor(DType::U8, &[6], &seeded(6, 6, 0, 255))));
        let op = Op::ConvInteger {
            kernel_shape: vec![3, 3],
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 1],
            group: 2,
            auto_pad: kiln_ir::ops::AutoPad::NotSet,
        };
        let y = g.add_node("conv", op, vec![Some(x), Some(w), Some(zx), Some(zw)], &[Some("y".into())]).expect("test")[0];
        g.outputs = vec![y.expect("test")];
        same_outputs(&g, vec![tensor(DType::U8, &[1, 8, 9, 9], &seeded(648, 7, 0, 255))]);
    }

    /// QLinearConv requantizes in f32 (the interpreter in f64): equal but for values within
    /// f32's rounding of a half-way point, one unit away.
    #[test]
    fn qlinear_conv_with_per_channel_weight_scales_and_a_bias() {
        for out in [DType::U8, DType::I8] {
            let mut g = Graph::new("g");
            let x = g.add_input("x", TensorType::new(DType::U8, Shape::fixed(&[1, 8, 9, 9])));
            let scalar = |g: &mut Graph, n: &str, v: f32| g.add_const(n, Arc::new(Tensor::from_f32s(vec![], vec![v]).expect("test")));
            let sx = scalar(&mut g, "sx", 0.0213);
            let zx = g.add_const("zx", Arc::new(tensor(DType::U8, &[], &[121])));
            let w = g.add_const("w", Arc::new(tensor(DType::I8, &[6, 8, 3, 3], &seeded(432, 8, -128, 127))));
            let sw =
                g.add_const("sw", Arc::new(Tensor::from_f32s(vec![6], vec![0.003, 0.0041, 0.0022, 0.005, 0.0035, 0.0019]).expect("test")));
            let zw = g.add_const("zw", Arc::new(tensor(DType::I8, &[6], &[0; 6])));
            let sy = scalar(&mut g, "sy", 0.094);
            let zy = g.add_const("zy", Arc::new(tensor(out, &[], &[if out == DType::U8 { 128 } else { -3 }])));
            let b = g.add_const("b", Arc::new(tensor(DType::I32, &[6], &seeded(6, 9, -3000, 3000))));
            let op = Op::QLinearConv {
                kernel_shape: vec![3, 3],
                strides: vec![1, 1],
                pads: vec![1, 1, 1, 1],
                dilations: vec![1, 1],
                group: 1,
                auto_pad: kiln_ir::ops::AutoPad::NotSet,
            };
            let ins = [x, sx, zx, w, sw, zw, sy, zy, b].map(Some).to_vec();
            let y = g.add_node("qc", op, ins, &[Some("y".into())]).expect("test")[0];
            g.outputs = vec![y.expect("test")];
            let xin = tensor(DType::U8, &[1, 8, 9, 9], &seeded(648, 10, 0, 255));
            let want = interp::run(&g, vec![xin.clone()]).expect("the op")[0].to_f64();
            let mut h = g.clone();
            assert_eq!(integer_ops_as_float(&mut h, all).expect("rewrites"), 1);
            let got = interp::run(&h, vec![xin]).expect("the rewrite");
            assert_eq!(got[0].dtype(), out);
            let got = got[0].to_f64();
            let off: Vec<f64> = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).filter(|&d| d > 0.0).collect();
            assert!(
                off.iter().all(|&d| d <= 1.0) && off.len() * 100 <= want.len(),
                "{out}: {} of {} differ: {off:?}",
                off.len(),
                want.len()
            );
            assert!(
                want.iter().any(|&v| v == if out == DType::U8 { 255.0 } else { 127.0 }) || want.iter().any(|&v| v != want[0]),
                "{out}: a degenerate case"
            );
        }
    }

    #[test]
    fn dynamic_quantize_linear_including_an_empty_and_a_positive_range() {
        let cases: [Vec<f32>; 3] = [
            (0..64).map(|i| ((i * 37 % 64) as f32 - 20.0) * 0.173).collect(),
            vec![0.0; 64],
            (0..64).map(|i| 0.5 + i as f32 * 0.01).collect(),
        ];
        for x in cases {
            let mut g = Graph::new("g");
            let xi = g.add_input("x", TensorType::new(DType::F32, Shape::fixed(&[4, 16])));
            let names = [Some("y".into()), Some("s".into()), Some("z".into())];
            let outs = g.add_node("dq", Op::DynamicQuantizeLinear {}, vec![Some(xi)], &names).expect("test");
            g.outputs = outs.into_iter().flatten().collect();
            same_outputs(&g, vec![Tensor::from_f32s(vec![4, 16], x).expect("test")]);
        }
    }
}
