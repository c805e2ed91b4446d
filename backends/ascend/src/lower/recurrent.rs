//! LSTM, GRU and RNN unrolled over their (static) sequence into built-ins: the input products
//! of every step in one MatMulV2 (`X·Wᵀ + Wb`), then per step the recurrent product
//! (`H·Rᵀ + Rb`), the gates split by SplitVD, and the cell update from Sigmoid, Tanh, Mul, Add
//! and Sub, in ONNX's gate orders (LSTM iofc, GRU zrh), with peepholes, input_forget and
//! linear_before_reset; each direction walks the steps in its own order. The outputs are
//! stacked with ConcatD and laid out as `layout` asks.
//!
//! With sequence_lens, a row's state stops at its length (SelectV2 of the new state or the old,
//! a zero output past the end); a reverse direction then walks each row's own prefix reversed
//! (ReverseSequence of X, and of the outputs back).
//!
//! Not mapped: activations other than the defaults, and `clip`. CANN's DynamicRNN/DynamicGRUV2
//! fuse the whole loop; they take other gate orders and layouts and are not used yet.

use super::ops::{concat, input, reshape, split_last, strided_slice, Outs};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::ops::{RnnActivation, RnnDirection};
use kiln_ir::{DType, Op, Tensor};

#[derive(Clone, Copy, PartialEq)]
enum Cell {
    Lstm { input_forget: bool },
    Gru { linear_before_reset: bool },
    Rnn,
}

impl Cell {
    fn gates(self) -> usize {
        match self {
            Cell::Lstm { .. } => 4,
            Cell::Gru { .. } => 3,
            Cell::Rnn => 1,
        }
    }
}

/// One node's op builder: shorthand for the ops of a step, named `node/d<dir>/t<step>/...`.
struct B<'a> {
    cx: &'a mut Cx,
    name: String,
    dt: DType,
}

impl B<'_> {
    fn n(&self, s: &str) -> String {
        format!("{}/{s}", self.name)
    }

    fn bin(&mut self, s: &str, ty: &str, a: Port, b: Port, dims: &[usize]) -> Result<Port, Fail> {
        let n = self.n(s);
        self.cx.op1(&n, ty, &[("x1", Some(a)), ("x2", Some(b))], Desc::nd(self.dt, dims), vec![])
    }

    fn un(&mut self, s: &str, ty: &str, a: Port, dims: &[usize]) -> Result<Port, Fail> {
        let n = self.n(s);
        self.cx.op1(&n, ty, &[("x", Some(a))], Desc::nd(self.dt, dims), vec![])
    }

    /// `a·bᵀ (+ bias)`: a `[m, k]`, b `[n, k]`.
    fn matmul_t(&mut self, s: &str, a: Port, b: Port, bias: Option<Port>, dims: &[usize]) -> Result<Port, Fail> {
        let n = self.n(s);
        let attrs = vec![("transpose_x1", Attr::Bool(false)), ("transpose_x2", Attr::Bool(true)), ("offset_x", Attr::Int(0))];
        let inputs = [("x1", Some(a)), ("x2", Some(b)), ("bias", bias), ("offset_w", None)];
        self.cx.op1(&n, "MatMulV2", &inputs, Desc::nd(self.dt, dims), attrs)
    }

    /// Rows `[lo, hi)` of a 2-D (or the leading axis of any) tensor of `dims`.
    fn rows(&mut self, s: &str, x: Port, dims: &[usize], lo: usize, hi: usize) -> Result<Port, Fail> {
        let mut begin = vec![0i64; dims.len()];
        let mut end: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        begin[0] = lo as i64;
        end[0] = hi as i64;
        let mut out = dims.to_vec();
        out[0] = hi - lo;
        let n = self.n(s);
        strided_slice(self.cx, &n, x, begin, end, vec![1; dims.len()], Desc::nd(self.dt, &out))
    }

    fn reshape(&mut self, s: &str, x: Port, dims: &[usize]) -> Result<Port, Fail> {
        let n = self.n(s);
        reshape(self.cx, &n, x, Desc::nd(self.dt, dims))
    }
}

pub(super) fn recurrent(cx: &mut Cx, name: &str, op: &Op, ins: &[Option<Port>], outs: &[Option<Desc>]) -> Result<Outs, Fail> {
    let (cell, direction, hidden, acts, clip, layout) = match op {
        Op::LSTM { dynamic_quant: true, .. } => return unsupported("an LSTM with dynamically quantized products"),
        Op::LSTM { direction, hidden_size, activations, clip, input_forget, layout, .. } => {
            (Cell::Lstm { input_forget: *input_forget }, *direction, *hidden_size, activations, *clip, *layout)
        }
        Op::GRU { direction, hidden_size, activations, clip, linear_before_reset, layout, .. } => {
            (Cell::Gru { linear_before_reset: *linear_before_reset }, *direction, *hidden_size, activations, *clip, *layout)
        }
        Op::RNN { direction, hidden_size, activations, clip, layout, .. } => {
            (Cell::Rnn, *direction, *hidden_size, activations, *clip, *layout)
        }
        _ => return Err(Fail::Internal("not a recurrent op".into())),
    };
    use RnnActivation::{Sigmoid, Tanh};
    let defaults: &[RnnActivation] = match cell {
        Cell::Lstm { .. } => &[Sigmoid, Tanh, Tanh],
        Cell::Gru { .. } => &[Sigmoid, Tanh],
        Cell::Rnn => &[Tanh],
    };
    if !acts.is_empty() && acts.chunks(defaults.len()).any(|c| c != defaults) {
        return unsupported("recurrent activations other than ONNX's defaults");
    }
    if clip.is_some() {
        return unsupported("a recurrent op with clip");
    }
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    let dt = xd.dtype;
    let &[d0, d1, inp] = xd.dims.as_slice() else { return Err(Fail::Internal("X of rank other than 3".into())) };
    let (seq, batch, inp) = if layout == 0 { (d0 as usize, d1 as usize, inp as usize) } else { (d1 as usize, d0 as usize, inp as usize) };
    let lens = ins.get(4).cloned().flatten();
    let dirs = if direction == RnnDirection::Bidirectional { 2 } else { 1 };
    let (h, g) = (hidden as usize, cell.gates());
    let mut b = B { cx, name: name.to_string(), dt };
    // X as [seq·batch, input], time-major.
    let x = if layout == 0 {
        x
    } else {
        let n = b.n("x_time_major");
        b.cx.op1(&n, "TransposeD", &[("x", Some(x))], Desc::nd(dt, &[seq, batch, inp]), vec![("perm", Attr::ListInt(vec![1, 0, 2]))])?
    };
    let x2 = b.reshape("x_rows", x.clone(), &[seq * batch, inp])?;
    // A row's length as [batch, 1], to compare with each step.
    let lens_col = match &lens {
        Some(l) => {
            let ld = b.cx.desc(l)?;
            let n = b.n("lens_column");
            Some((reshape(b.cx, &n, l.clone(), Desc::nd(ld.dtype, &[batch, 1]))?, ld.dtype))
        }
        None => None,
    };
    let reverse_sequence = |b: &mut B, s: &str, v: Port, dims: &[usize]| -> Result<Port, Fail> {
        let l = lens.clone().ok_or_else(|| Fail::Internal("no lengths".into()))?;
        let n = b.n(s);
        let inputs = [("x", Some(v)), ("seq_lengths", Some(l))];
        b.cx.op1(&n, "ReverseSequence", &inputs, Desc::nd(dt, dims), vec![("seq_dim", Attr::Int(0)), ("batch_dim", Attr::Int(1))])
    };
    let (w, r) = (input(ins, 1)?, input(ins, 2)?);
    let bias = ins.get(3).cloned().flatten();
    // The initial states as [dirs, batch, h].
    let state = |b: &mut B, i: usize, what: &str| -> Result<Option<Port>, Fail> {
        let Some(p) = ins.get(i).cloned().flatten() else { return Ok(None) };
        if layout == 0 {
            return Ok(Some(p));
        }
        let n = b.n(what);
        Ok(Some(b.cx.op1(
            &n,
            "TransposeD",
            &[("x", Some(p))],
            Desc::nd(dt, &[dirs, batch, h]),
            vec![("perm", Attr::ListInt(vec![1, 0, 2]))],
        )?))
    };
    let h0 = state(&mut b, 5, "initial_h")?;
    let c0 = if g == 4 { state(&mut b, 6, "initial_c")? } else { None };
    let peep = if g == 4 { ins.get(7).cloned().flatten() } else { None };
    let mut ys = vec![];
    let (mut last_h, mut last_c) = (vec![], vec![]);
    for d in 0..dirs {
        let reverse = direction == RnnDirection::Reverse || d == 1;
        let at = |s: &str| format!("d{d}/{s}");
        let wd = b.rows(&at("w"), w.clone(), &[dirs, g * h, inp], d, d + 1)?;
        let wd = b.reshape(&at("w2"), wd, &[g * h, inp])?;
        let rd = b.rows(&at("r"), r.clone(), &[dirs, g * h, h], d, d + 1)?;
        let rd = b.reshape(&at("r2"), rd, &[g * h, h])?;
        let (wb, rb) = match &bias {
            Some(p) => {
                let bd = b.rows(&at("b"), p.clone(), &[dirs, 2 * g * h], d, d + 1)?;
                let bd = b.reshape(&at("b1"), bd, &[2 * g * h])?;
                let mut parts = split_last(b.cx, &b.n(&at("b_split")), bd, &[(g * h) as i64, (g * h) as i64])?.into_iter();
                (parts.next(), parts.next())
            }
            None => (None, None),
        };
        // Every step's input product at once, with the input bias.
        // With lengths, a reverse direction reads each row's prefix reversed and walks forwards.
        let (walk_back, flip) = (reverse && lens.is_none(), reverse && lens.is_some());
        let xs = if flip {
            let xr = reverse_sequence(&mut b, &at("x_reversed"), x.clone(), &[seq, batch, inp])?;
            b.reshape(&at("x_reversed_rows"), xr, &[seq * batch, inp])?
        } else {
            x2.clone()
        };
        let xw = b.matmul_t(&at("xw"), xs, wd, wb, &[seq * batch, g * h])?;
        let zeros = |b: &mut B, s: &str| -> Result<Port, Fail> {
            let z = Tensor::new(vec![batch, h], kiln_ir::Data::from_f64(dt, &vec![0.0; batch * h]))
                .map_err(|e| Fail::Internal(e.to_string()))?;
            let n = b.n(&at(s));
            b.cx.constant(&n, &z)
        };
        let mut hs = match &h0 {
            Some(p) => {
                let s = b.rows(&at("h0"), p.clone(), &[dirs, batch, h], d, d + 1)?;
                b.reshape(&at("h0_2"), s, &[batch, h])?
            }
            None => zeros(&mut b, "h0_zero")?,
        };
        let mut cs = match (&c0, g) {
            (Some(p), _) => {
                let s = b.rows(&at("c0"), p.clone(), &[dirs, batch, h], d, d + 1)?;
                Some(b.reshape(&at("c0_2"), s, &[batch, h])?)
            }
            (None, 4) => Some(zeros(&mut b, "c0_zero")?),
            _ => None,
        };
        // Peephole weights of this direction, [3, h] as i, o, f rows of [1, h].
        let peeps = match &peep {
            Some(p) => {
                let pd = b.rows(&at("p"), p.clone(), &[dirs, 3 * h], d, d + 1)?;
                let v = split_last(b.cx, &b.n(&at("p_split")), pd, &[h as i64, h as i64, h as i64])?;
                Some(v)
            }
            None => None,
        };
        let (r_h, rb_h) = match cell {
            Cell::Gru { linear_before_reset: false } => {
                let r_h = b.rows(&at("r_h"), rd.clone(), &[g * h, h], 2 * h, 3 * h)?;
                let rb_h = match &rb {
                    Some(p) => Some(b.rows(&at("rb_h"), p.clone(), &[g * h], 2 * h, 3 * h)?),
                    None => None,
                };
                (Some(r_h), rb_h)
            }
            _ => (None, None),
        };
        let mut steps = vec![None; seq];
        let bh = [batch, h];
        for step in 0..seq {
            let t = if walk_back { seq - 1 - step } else { step };
            let (h_prev, c_prev) = (hs.clone(), cs.clone());
            let st = |s: &str| format!("d{d}/t{t}/{s}");
            let xt = b.rows(&st("xw"), xw.clone(), &[seq * batch, g * h], t * batch, (t + 1) * batch)?;
            let hr = b.matmul_t(&st("hr"), hs.clone(), rd.clone(), rb.clone(), &[batch, g * h])?;
            let parts = |b: &mut B, s: &str, p: Port| -> Result<Vec<Port>, Fail> {
                if g == 1 {
                    return Ok(vec![p]);
                }
                let n = b.n(&st(s));
                split_last(b.cx, &n, p, &vec![h as i64; g])
            };
            match cell {
                Cell::Lstm { input_forget } => {
                    let pre = b.bin(&st("pre"), "Add", xt, hr, &[batch, g * h])?;
                    let p = parts(&mut b, "gates", pre)?;
                    let c = cs.clone().ok_or_else(|| Fail::Internal("an LSTM without a cell state".into()))?;
                    let peep_add = |b: &mut B, s: &str, pre: Port, k: usize, c: &Port| -> Result<Port, Fail> {
                        match &peeps {
                            Some(v) => {
                                let m = b.bin(&st(&format!("{s}_peep")), "Mul", c.clone(), v[k].clone(), &bh)?;
                                b.bin(&st(&format!("{s}_pre")), "Add", pre, m, &bh)
                            }
                            None => Ok(pre),
                        }
                    };
                    let ip = peep_add(&mut b, "i", p[0].clone(), 0, &c)?;
                    let i = b.un(&st("i"), "Sigmoid", ip, &bh)?;
                    let f = if input_forget {
                        let one = b.scalar_one(&st("one"))?;
                        b.bin(&st("f"), "Sub", one, i.clone(), &bh)?
                    } else {
                        let fp = peep_add(&mut b, "f", p[2].clone(), 2, &c)?;
                        b.un(&st("f"), "Sigmoid", fp, &bh)?
                    };
                    let cand = b.un(&st("c_candidate"), "Tanh", p[3].clone(), &bh)?;
                    let kept = b.bin(&st("c_kept"), "Mul", f, c, &bh)?;
                    let new = b.bin(&st("c_new"), "Mul", i, cand, &bh)?;
                    let cn = b.bin(&st("c"), "Add", kept, new, &bh)?;
                    let op = peep_add(&mut b, "o", p[1].clone(), 1, &cn)?;
                    let o = b.un(&st("o"), "Sigmoid", op, &bh)?;
                    let tc = b.un(&st("c_tanh"), "Tanh", cn.clone(), &bh)?;
                    hs = b.bin(&st("h"), "Mul", o, tc, &bh)?;
                    cs = Some(cn);
                }
                Cell::Gru { linear_before_reset } => {
                    let xp = parts(&mut b, "x_gates", xt)?;
                    let hp = parts(&mut b, "h_gates", hr)?;
                    let zp = b.bin(&st("z_pre"), "Add", xp[0].clone(), hp[0].clone(), &bh)?;
                    let z = b.un(&st("z"), "Sigmoid", zp, &bh)?;
                    let rp = b.bin(&st("r_pre"), "Add", xp[1].clone(), hp[1].clone(), &bh)?;
                    let rg = b.un(&st("r"), "Sigmoid", rp, &bh)?;
                    let hh = if linear_before_reset {
                        b.bin(&st("rh"), "Mul", rg, hp[2].clone(), &bh)?
                    } else {
                        let rh = b.bin(&st("r_times_h"), "Mul", rg, hs.clone(), &bh)?;
                        let r_h = r_h.clone().ok_or_else(|| Fail::Internal("R_h".into()))?;
                        b.matmul_t(&st("rh"), rh, r_h, rb_h.clone(), &bh)?
                    };
                    let cp = b.bin(&st("h_pre"), "Add", xp[2].clone(), hh, &bh)?;
                    let cand = b.un(&st("h_candidate"), "Tanh", cp, &bh)?;
                    // (1 − z)·h̃ + z·H = h̃ + z·(H − h̃)
                    let diff = b.bin(&st("h_diff"), "Sub", hs.clone(), cand.clone(), &bh)?;
                    let zd = b.bin(&st("h_gated"), "Mul", z, diff, &bh)?;
                    hs = b.bin(&st("h"), "Add", cand, zd, &bh)?;
                }
                Cell::Rnn => {
                    let pre = b.bin(&st("pre"), "Add", xt, hr, &bh)?;
                    hs = b.un(&st("h"), "Tanh", pre, &bh)?;
                }
            }
            let mut y_t = hs.clone();
            if let Some((l, ldt)) = &lens_col {
                // Rows whose length is past this step keep their state and output zeros.
                let tc = b.cx.scalar(&b.n(&st("t")), *ldt, t as f64)?;
                let n = b.n(&st("valid"));
                let valid =
                    b.cx.op1(&n, "Greater", &[("x1", Some(l.clone())), ("x2", Some(tc))], Desc::nd(DType::Bool, &[batch, 1]), vec![])?;
                let select = |b: &mut B, s: &str, a: Port, c: Port| -> Result<Port, Fail> {
                    let n = b.n(&st(s));
                    let inputs = [("condition", Some(valid.clone())), ("x1", Some(a)), ("x2", Some(c))];
                    b.cx.op1(&n, "SelectV2", &inputs, Desc::nd(dt, &bh), vec![])
                };
                let zero = zeros(&mut b, &format!("t{t}_zero"))?;
                y_t = select(&mut b, "y_masked", hs.clone(), zero)?;
                hs = select(&mut b, "h_masked", hs, h_prev)?;
                if let (Some(c), Some(cp)) = (cs.clone(), c_prev) {
                    cs = Some(select(&mut b, "c_masked", c, cp)?);
                }
            }
            steps[t] = Some(b.reshape(&st("y"), y_t, &[1, 1, batch, h])?);
        }
        let steps: Vec<Port> = steps.into_iter().collect::<Option<_>>().ok_or_else(|| Fail::Internal("a missing step".into()))?;
        let n = b.n(&at("y"));
        let mut yd = if seq == 1 { steps[0].clone() } else { concat(b.cx, &n, steps, 0, Desc::nd(dt, &[seq, 1, batch, h]))? };
        if flip {
            let y3 = b.reshape(&at("y_steps"), yd, &[seq, batch, h])?;
            let y3 = reverse_sequence(&mut b, &at("y_reversed"), y3, &[seq, batch, h])?;
            yd = b.reshape(&at("y_back"), y3, &[seq, 1, batch, h])?;
        }
        ys.push(yd);
        last_h.push(b.reshape(&at("y_h"), hs, &[1, batch, h])?);
        if let Some(c) = cs {
            last_c.push(b.reshape(&at("y_c"), c, &[1, batch, h])?);
        }
    }
    let join = |b: &mut B, what: &str, v: Vec<Port>, axis: i64, dims: &[usize]| -> Result<Port, Fail> {
        if v.len() == 1 {
            return v.into_iter().next().ok_or_else(|| Fail::Internal("empty".into()));
        }
        let n = b.n(what);
        concat(b.cx, &n, v, axis, Desc::nd(dt, dims))
    };
    let y = join(&mut b, "y", ys, 1, &[seq, dirs, batch, h])?;
    let yh = join(&mut b, "y_h", last_h, 0, &[dirs, batch, h])?;
    let yc = if last_c.is_empty() { None } else { Some(join(&mut b, "y_c", last_c, 0, &[dirs, batch, h])?) };
    let mut result = vec![];
    for (i, p) in [Some(y), Some(yh), yc].into_iter().enumerate().take(outs.len()) {
        let (Some(p), Some(Some(want))) = (p, outs.get(i)) else {
            result.push(None);
            continue;
        };
        let p = if layout == 0 {
            p
        } else {
            let perm = if i == 0 { vec![2, 0, 1, 3] } else { vec![1, 0, 2] };
            let n = b.n(&format!("out{i}_batch_major"));
            b.cx.op1(&n, "TransposeD", &[("x", Some(p))], want.clone(), vec![("perm", Attr::ListInt(perm))])?
        };
        result.push(Some(p));
    }
    Ok(result)
}

impl B<'_> {
    fn scalar_one(&mut self, s: &str) -> Result<Port, Fail> {
        let n = self.n(s);
        self.cx.scalar(&n, self.dt, 1.0)
    }
}
