//! LSTM, GRU and RNN unrolled into their steps' products and gate arithmetic, for a target
//! that has no recurrent kernel (the driver unrolls exactly the nodes its backend refuses).
//!
//! Per direction: the input products of every step in one MatMul (`X·Wᵀ + Wb`), then per
//! step the recurrent product (`H·Rᵀ + Rb`), the gates sliced from it in ONNX's orders
//! (LSTM iofc, GRU zrh) and the cell update; reverse directions walk the steps backwards.
//! The outputs are stacked with Concat and laid out as `layout` asks. What the unrolled form
//! does not cover keeps the node (and the target's refusal): activations other than the
//! defaults, `clip`, `sequence_lens`, and an X whose dims are not all known (give
//! `--input-shape`). A dynamically quantized LSTM (onnxruntime's DynamicQuantizeLSTM)
//! unrolls with DynamicQuantizeLinear and DequantizeLinear before each product.

use crate::emitter::Emitter;
use kiln_ir::ops::{RnnActivation, RnnDirection};
use kiln_ir::{BinaryOp, Data, Graph, Node, NodeError, Op, Tensor, TensorType, UnaryOp, ValueId};
use std::sync::Arc;

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Lstm { input_forget: bool },
    Gru { linear_before_reset: bool },
    Rnn,
}

/// What of the node the unrolled form needs, when it covers the node.
struct Plan {
    cell: Cell,
    /// The products' activation inputs quantized dynamically (DynamicQuantizeLSTM).
    dynamic_quant: bool,
    reverse_only: bool,
    dirs: usize,
    hidden: usize,
    layout: i64,
}

fn plan(op: &Op) -> Option<Plan> {
    use RnnActivation::{Sigmoid, Tanh};
    let (cell, direction, hidden, acts, clip, layout, defaults): (Cell, _, _, _, _, _, &[RnnActivation]) = match op {
        Op::LSTM { direction, hidden_size, activations, clip, input_forget, layout, .. } => {
            (Cell::Lstm { input_forget: *input_forget }, *direction, *hidden_size, activations, clip, *layout, &[Sigmoid, Tanh, Tanh])
        }
        Op::GRU { direction, hidden_size, activations, clip, linear_before_reset, layout, .. } => (
            Cell::Gru { linear_before_reset: *linear_before_reset },
            *direction,
            *hidden_size,
            activations,
            clip,
            *layout,
            &[Sigmoid, Tanh],
        ),
        Op::RNN { direction, hidden_size, activations, clip, layout, .. } => {
            (Cell::Rnn, *direction, *hidden_size, activations, clip, *layout, &[Tanh])
        }
        _ => return None,
    };
    let dirs = if direction == RnnDirection::Bidirectional { 2 } else { 1 };
    let default_acts = activations_are(acts, defaults, dirs);
    (clip.is_none() && default_acts && hidden > 0).then_some(Plan {
        cell,
        dynamic_quant: matches!(op, Op::LSTM { dynamic_quant: true, .. }),
        reverse_only: direction == RnnDirection::Reverse,
        dirs,
        hidden: hidden as usize,
        layout,
    })
}

fn activations_are(acts: &[RnnActivation], defaults: &[RnnActivation], dirs: usize) -> bool {
    acts.is_empty() || (acts.len() == defaults.len() * dirs && acts.chunks(defaults.len()).all(|c| c == defaults))
}

/// Unrolls every recurrent node the unrolled form covers and `refused(node, graph)` selects;
/// returns how many were unrolled.
pub fn unroll_recurrent(g: &mut Graph, refused: impl Fn(&Node, &Graph) -> bool) -> Result<usize, NodeError> {
    let old = std::mem::take(&mut g.nodes);
    let mut count = 0;
    for n in old {
        let static_x = n.inputs.first().copied().flatten().is_some_and(|x| g.value(x).ty.shape.as_fixed().is_some_and(|d| d.len() == 3));
        let covered = plan(&n.op)
            .filter(|_| static_x && n.inputs.get(4).copied().flatten().is_none() && n.inputs.iter().take(3).all(Option::is_some));
        match covered {
            Some(p) if refused(&n, g) => {
                unroll(g, &n, &p)?;
                count += 1;
            }
            _ => g.nodes.push(n),
        }
    }
    Ok(count)
}

/// The unrolled form's own helpers, on the rewrites' shared emitter.
impl Emitter<'_> {
    /// `v` quantized to u8 with its own range and back (DynamicQuantizeLinear, then
    /// DequantizeLinear): what the dynamically quantized LSTM's products read.
    fn requantized(&mut self, v: ValueId) -> Result<ValueId, NodeError> {
        let name = self.name();
        let names: Vec<Option<String>> = (0..3).map(|j| Some(format!("{name}_{j}"))).collect();
        let q = self.g.add_node(name, Op::DynamicQuantizeLinear {}, vec![Some(v)], &names)?;
        let dq = Op::DequantizeLinear { axis: 1, block_size: 0, output_dtype: None };
        self.op(dq, q)
    }
    fn scalar_i64(&mut self, v: i64) -> ValueId {
        self.konst(Tensor::scalar_i64(v))
    }
    /// `x[.., lo..hi]` on the last axis.
    fn cols(&mut self, x: ValueId, lo: usize, hi: usize) -> Result<ValueId, NodeError> {
        let (s, e, a) = (self.ints(&[lo as i64]), self.ints(&[hi as i64]), self.ints(&[-1]));
        self.op(Op::Slice {}, vec![Some(x), Some(s), Some(e), Some(a)])
    }
    /// `x[i]` (the first axis removed).
    fn index(&mut self, x: ValueId, i: usize) -> Result<ValueId, NodeError> {
        let k = self.scalar_i64(i as i64);
        self.op(Op::Gather { axis: 0 }, vec![Some(x), Some(k)])
    }
    fn unsqueeze(&mut self, x: ValueId, axis: i64) -> Result<ValueId, NodeError> {
        let a = self.ints(&[axis]);
        self.op(Op::Unsqueeze {}, vec![Some(x), Some(a)])
    }
    fn transpose(&mut self, x: ValueId, perm: &[i64]) -> Result<ValueId, NodeError> {
        self.op(Op::Transpose { perm: perm.to_vec() }, vec![Some(x)])
    }
    fn stack(&mut self, xs: &[ValueId], axis: i64) -> Result<ValueId, NodeError> {
        let parts = xs.iter().map(|&x| self.unsqueeze(x, axis).map(Some)).collect::<Result<Vec<_>, _>>()?;
        self.op(Op::Concat { axis }, parts)
    }
}

fn unroll(g: &mut Graph, n: &Node, p: &Plan) -> Result<(), NodeError> {
    let ty = |g: &Graph, v: ValueId| -> TensorType { g.value(v).ty.clone() };
    let input = |k: usize| n.inputs.get(k).copied().flatten();
    let (Some(x), Some(w), Some(r)) = (input(0), input(1), input(2)) else { return Err(internal(n, "X, W and R are required")) };
    let (bias, h0, c0, peep) = (input(3), input(5), input(6), input(7));
    let xt = ty(g, x);
    let dt = xt.dtype;
    let xd = xt.shape.as_fixed().filter(|d| d.len() == 3).ok_or_else(|| internal(n, "X must have static rank-3 dims to unroll"))?;
    let (seq, batch) = if p.layout == 0 { (xd[0], xd[1]) } else { (xd[1], xd[0]) };
    let h = p.hidden;
    let gates = match p.cell {
        Cell::Lstm { .. } => 4,
        Cell::Gru { .. } => 3,
        Cell::Rnn => 1,
    };
    let mut e = Emitter::new(g, &n.name, "unrolled");
    let x = if p.layout == 0 { x } else { e.transpose(x, &[1, 0, 2])? };
    // X is quantized once for every step (onnxruntime's input product covers them all).
    let x = if p.dynamic_quant { e.requantized(x)? } else { x };
    let state = |e: &mut Emitter, s: Option<ValueId>| -> Result<Option<ValueId>, NodeError> {
        match s {
            Some(s) if p.layout != 0 => e.transpose(s, &[1, 0, 2]).map(Some),
            other => Ok(other),
        }
    };
    let (h0, c0) = (state(&mut e, h0)?, state(&mut e, c0)?);
    let zeros = {
        e.k += 1;
        let t = Tensor::new(vec![batch, h], Data::from_f64(dt, &vec![0.0; batch * h])).expect("zeros");
        e.g.add_const(format!("{}/zeros", e.base), Arc::new(t))
    };
    let one = {
        e.k += 1;
        let t = Tensor::new(vec![], Data::from_f64(dt, &[1.0])).expect("one");
        e.g.add_const(format!("{}/one", e.base), Arc::new(t))
    };
    let (mut ys, mut yh, mut yc) = (vec![], vec![], vec![]);
    for d in 0..p.dirs {
        let reverse = p.reverse_only || d == 1;
        let wt = e.index(w, d)?;
        let wt = e.transpose(wt, &[1, 0])?; // [input, G*H]
        let rt = e.index(r, d)?;
        let rt = e.transpose(rt, &[1, 0])?; // [H, G*H]
        let mut xw = e.op(Op::MatMul {}, vec![Some(x), Some(wt)])?; // [seq, batch, G*H]
        let rb = match bias {
            Some(b) => {
                let bd = e.index(b, d)?;
                let wb = e.cols(bd, 0, gates * h)?;
                xw = e.bin(BinaryOp::Add, xw, wb)?;
                Some(e.cols(bd, gates * h, 2 * gates * h)?)
            }
            None => None,
        };
        let mut hs = match h0 {
            Some(s) => e.index(s, d)?,
            None => zeros,
        };
        let mut cs = match c0 {
            Some(s) => e.index(s, d)?,
            None => zeros,
        };
        let peeps = match peep {
            Some(pv) if matches!(p.cell, Cell::Lstm { .. }) => {
                let pd = e.index(pv, d)?;
                Some([e.cols(pd, 0, h)?, e.cols(pd, h, 2 * h)?, e.cols(pd, 2 * h, 3 * h)?])
            }
            _ => None,
        };
        let mut outs = vec![None; seq];
        for step in 0..seq {
            let t = if reverse { seq - 1 - step } else { step };
            let xg = e.index(xw, t)?; // [batch, G*H]
            match p.cell {
                Cell::Gru { linear_before_reset } => {
                    let mut hr = e.op(Op::MatMul {}, vec![Some(hs), Some(rt)])?;
                    if let Some(rb) = rb {
                        hr = e.bin(BinaryOp::Add, hr, rb)?;
                    }
                    let (xz, xr, xh) = (e.cols(xg, 0, h)?, e.cols(xg, h, 2 * h)?, e.cols(xg, 2 * h, 3 * h)?);
                    let (hz, hrr) = (e.cols(hr, 0, h)?, e.cols(hr, h, 2 * h)?);
                    let z = e.bin(BinaryOp::Add, xz, hz)?;
                    let z = e.un(UnaryOp::Sigmoid, z)?;
                    let rg = e.bin(BinaryOp::Add, xr, hrr)?;
                    let rg = e.un(UnaryOp::Sigmoid, rg)?;
                    let hh = if linear_before_reset {
                        let hh = e.cols(hr, 2 * h, 3 * h)?;
                        e.bin(BinaryOp::Mul, rg, hh)?
                    } else {
                        // (r ⊙ H)·Rhᵀ + Rbh.
                        let rh = e.bin(BinaryOp::Mul, rg, hs)?;
                        let rht = e.cols(rt, 2 * h, 3 * h)?;
                        let m = e.op(Op::MatMul {}, vec![Some(rh), Some(rht)])?;
                        match rb {
                            Some(rb) => {
                                let rbh = e.cols(rb, 2 * h, 3 * h)?;
                                e.bin(BinaryOp::Add, m, rbh)?
                            }
                            None => m,
                        }
                    };
                    let hh = e.bin(BinaryOp::Add, xh, hh)?;
                    let hh = e.un(UnaryOp::Tanh, hh)?;
                    // H' = (1 - z) ⊙ h̃ + z ⊙ H
                    let keep = e.bin(BinaryOp::Sub, one, z)?;
                    let a = e.bin(BinaryOp::Mul, keep, hh)?;
                    let b = e.bin(BinaryOp::Mul, z, hs)?;
                    hs = e.bin(BinaryOp::Add, a, b)?;
                }
                cell => {
                    let hq = if p.dynamic_quant { e.requantized(hs)? } else { hs };
                    let mut pre = e.op(Op::MatMul {}, vec![Some(hq), Some(rt)])?;
                    pre = e.bin(BinaryOp::Add, xg, pre)?;
                    if let Some(rb) = rb {
                        pre = e.bin(BinaryOp::Add, pre, rb)?;
                    }
                    if let Cell::Lstm { input_forget } = cell {
                        let gate = |e: &mut Emitter, k: usize, peep: Option<(ValueId, ValueId)>| -> Result<ValueId, NodeError> {
                            let mut v = e.cols(pre, k * h, (k + 1) * h)?;
                            if let Some((pv, c)) = peep {
                                let m = e.bin(BinaryOp::Mul, pv, c)?;
                                v = e.bin(BinaryOp::Add, v, m)?;
                            }
                            e.un(UnaryOp::Sigmoid, v)
                        };
                        let i = gate(&mut e, 0, peeps.map(|q| (q[0], cs)))?;
                        let f = if input_forget { e.bin(BinaryOp::Sub, one, i)? } else { gate(&mut e, 2, peeps.map(|q| (q[2], cs)))? };
                        let c = e.cols(pre, 3 * h, 4 * h)?;
                        let c = e.un(UnaryOp::Tanh, c)?;
                        let fc = e.bin(BinaryOp::Mul, f, cs)?;
                        let ic = e.bin(BinaryOp::Mul, i, c)?;
                        cs = e.bin(BinaryOp::Add, fc, ic)?;
                        let o = gate(&mut e, 1, peeps.map(|q| (q[1], cs)))?;
                        let tc = e.un(UnaryOp::Tanh, cs)?;
                        hs = e.bin(BinaryOp::Mul, o, tc)?;
                    } else {
                        hs = e.un(UnaryOp::Tanh, pre)?;
                    }
                }
            }
            outs[t] = Some(hs);
        }
        let outs: Vec<ValueId> = outs.into_iter().map(|o| o.expect("every step")).collect();
        ys.push(e.stack(&outs, 0)?); // [seq, batch, H]
        yh.push(hs);
        yc.push(cs);
    }
    // Y [seq, dirs, batch, H], Y_h and Y_c [dirs, batch, H]; layout 1 puts batch first.
    let mut results = vec![e.stack(&ys, 1)?, e.stack(&yh, 0)?];
    if matches!(p.cell, Cell::Lstm { .. }) {
        results.push(e.stack(&yc, 0)?);
    }
    if p.layout != 0 {
        results[0] = e.transpose(results[0], &[2, 0, 1, 3])?;
        for s in results.iter_mut().skip(1) {
            *s = e.transpose(*s, &[1, 0, 2])?;
        }
    }
    // The node's own output values, so that its readers are unchanged.
    for (k, o) in n.outputs.iter().enumerate() {
        if let (Some(o), Some(&v)) = (o, results.get(k)) {
            e.g.nodes.push(Node {
                name: format!("{}/out{k}", n.name),
                op: Op::Identity {},
                inputs: vec![Some(v)],
                outputs: vec![Some(*o)],
            });
        }
    }
    Ok(())
}

fn internal(n: &Node, msg: &str) -> NodeError {
    NodeError { node: n.name.clone(), op: n.op.kind_name(), source: kiln_ir::OpError::Invalid(msg.into()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{interp, DType};

    fn rand(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    /// The recurrent op of `cell` (lstm, lstm_dq, gru, gru_lbr, rnn) with default activations,
    /// and its output count.
    fn recurrent_op(cell: &str, direction: RnnDirection, hidden_size: i64, layout: i64) -> (Op, usize) {
        let (activations, activation_alpha, activation_beta, clip) = (vec![], vec![], vec![], None);
        match cell {
            "lstm" | "lstm_dq" => {
                let dynamic_quant = cell == "lstm_dq";
                let input_forget = false;
                let op = Op::LSTM {
                    direction,
                    hidden_size,
                    activations,
                    activation_alpha,
                    activation_beta,
                    clip,
                    input_forget,
                    layout,
                    dynamic_quant,
                };
                (op, 3)
            }
            "rnn" => (Op::RNN { direction, hidden_size, activations, activation_alpha, activation_beta, clip, layout }, 2),
            _ => {
                let linear_before_reset = cell == "gru_lbr";
                (Op::GRU { direction, hidden_size, activations, activation_alpha, activation_beta, clip, linear_before_reset, layout }, 2)
            }
        }
    }

    fn input(g: &mut Graph, name: &str, dims: &[usize]) -> ValueId {
        g.add_input(name, TensorType::fixed(DType::F32, dims))
    }

    /// Every cell, direction, layout, with and without initial states and peepholes: the
    /// unrolled graph computes what the recurrent op computes (the interpreter's op is the
    /// reference, itself checked against the ONNX node suite).
    #[test]
    fn unrolled_recurrences_compute_what_the_ops_compute() {
        let (seq, batch, inp, h) = (4, 3, 5, 6);
        for (cell, gates) in [("lstm", 4), ("lstm_dq", 4), ("gru", 3), ("gru_lbr", 3), ("rnn", 1)] {
            for direction in [RnnDirection::Forward, RnnDirection::Reverse, RnnDirection::Bidirectional] {
                for layout in [0i64, 1] {
                    let dirs = if direction == RnnDirection::Bidirectional { 2 } else { 1 };
                    let mut g = Graph::new("rnn");
                    let xd = if layout == 0 { [seq, batch, inp] } else { [batch, seq, inp] };
                    let sd = if layout == 0 { [dirs, batch, h] } else { [batch, dirs, h] };
                    let x = input(&mut g, "x", &xd);
                    let w = input(&mut g, "w", &[dirs, gates * h, inp]);
                    let r = input(&mut g, "r", &[dirs, gates * h, h]);
                    let b = input(&mut g, "b", &[dirs, 2 * gates * h]);
                    let h0 = input(&mut g, "h0", &sd);
                    let mut ins = vec![Some(x), Some(w), Some(r), Some(b), None, Some(h0)];
                    if cell.starts_with("lstm") {
                        let c0 = input(&mut g, "c0", &sd);
                        let p = input(&mut g, "p", &[dirs, 3 * h]);
                        ins.extend([Some(c0), Some(p)]);
                    }
                    let (op, n_out) = recurrent_op(cell, direction, h as i64, layout);
                    let names: Vec<Option<String>> = (0..n_out).map(|k| Some(format!("y{k}"))).collect();
                    let outs = g.add_node("rec", op, ins, &names).expect("node");
                    g.outputs = outs.into_iter().flatten().collect();
                    let inputs: Vec<Tensor> = g
                        .inputs
                        .iter()
                        .enumerate()
                        .map(|(k, &i)| {
                            let d = g.value(i).ty.shape.as_fixed().expect("dims");
                            Tensor::new(d.clone(), Data::F32(rand(d.iter().product(), k as u64 + 7))).expect("tensor")
                        })
                        .collect();
                    let want = interp::run(&g, inputs.clone()).expect("run");
                    let mut u = g.clone();
                    assert_eq!(unroll_recurrent(&mut u, |_, _| true).expect("unroll"), 1);
                    kiln_ir::verify(&u).expect("verify");
                    assert!(u.nodes.iter().all(|n| !matches!(n.op, Op::LSTM { .. } | Op::GRU { .. } | Op::RNN { .. })));
                    let got = interp::run(&u, inputs).expect("run");
                    for (a, b) in got.iter().zip(&want) {
                        assert_eq!(a.dims(), b.dims(), "{cell} {direction:?} layout {layout}");
                        let err = a.to_f64().iter().zip(b.to_f64()).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
                        assert!(err < 1e-5, "{cell} {direction:?} layout {layout}: {err}");
                    }
                }
            }
        }
    }
}
