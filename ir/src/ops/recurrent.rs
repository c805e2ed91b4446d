//! LSTM, GRU and RNN with ONNX semantics: gate orders iofc (LSTM) and zrh (GRU), optional
//! biases, peepholes, clip, input_forget, linear_before_reset, sequence_lens, forward/reverse/
//! bidirectional, layouts 0 and 1. Computed in f64 per (direction, batch) row.

use super::elementwise::tensor;
use super::{invalid, opt, req, InType, Op, OpError, RnnActivation, RnnDirection, TensorType};
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};

pub(crate) fn infer(dir: RnnDirection, hidden: i64, layout: i64, n_out: usize, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    if x.shape.rank() != 3 {
        return invalid("recurrent input X must be rank 3");
    }
    let nd = Dim::Known(if dir == RnnDirection::Bidirectional { 2 } else { 1 });
    let h = Dim::Known(hidden.max(0) as usize);
    let (seq, batch) =
        if layout == 0 { (x.shape.0[0].clone(), x.shape.0[1].clone()) } else { (x.shape.0[1].clone(), x.shape.0[0].clone()) };
    let y = if layout == 0 { vec![seq, nd.clone(), batch.clone(), h.clone()] } else { vec![batch.clone(), seq, nd.clone(), h.clone()] };
    let st = if layout == 0 { vec![nd, batch, h] } else { vec![batch, nd, h] };
    let mut out = vec![TensorType::new(x.dtype, Shape(y))];
    for _ in 1..n_out {
        out.push(TensorType::new(x.dtype, Shape(st.clone())));
    }
    Ok(out)
}

#[derive(Clone, Copy)]
struct Act {
    f: RnnActivation,
    alpha: f64,
    beta: f64,
}

impl Act {
    fn apply(self, x: f64) -> f64 {
        let (a, b) = (self.alpha, self.beta);
        match self.f {
            RnnActivation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            RnnActivation::Tanh => x.tanh(),
            RnnActivation::Relu => x.max(0.0),
            RnnActivation::HardSigmoid => (a * x + b).clamp(0.0, 1.0),
            RnnActivation::Affine => a * x + b,
            RnnActivation::LeakyRelu => {
                if x < 0.0 {
                    a * x
                } else {
                    x
                }
            }
            RnnActivation::ThresholdedRelu => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            RnnActivation::ScaledTanh => a * (b * x).tanh(),
            RnnActivation::Elu => {
                if x < 0.0 {
                    a * (x.exp() - 1.0)
                } else {
                    x
                }
            }
            RnnActivation::Softsign => x / (1.0 + x.abs()),
            RnnActivation::Softplus => x.exp().ln_1p(),
        }
    }
}

/// Per-direction activations with their alpha/beta, ONNX defaults filled in.
fn activations(given: &[RnnActivation], alphas: &[f32], betas: &[f32], defaults: &[RnnActivation], dirs: usize) -> Vec<Act> {
    let n = defaults.len();
    let (mut ai, mut bi) = (0, 0);
    (0..n * dirs)
        .map(|k| {
            let f = given.get(k).copied().unwrap_or(defaults[k % n]);
            let (da, db) = match f {
                RnnActivation::HardSigmoid => (0.2, 0.5),
                RnnActivation::LeakyRelu => (0.01, 0.0),
                RnnActivation::ThresholdedRelu | RnnActivation::ScaledTanh | RnnActivation::Elu | RnnActivation::Affine => {
                    (1.0, if f == RnnActivation::Affine { 0.0 } else { 1.0 })
                }
                _ => (0.0, 0.0),
            };
            let uses_alpha = !matches!(
                f,
                RnnActivation::Sigmoid | RnnActivation::Tanh | RnnActivation::Relu | RnnActivation::Softsign | RnnActivation::Softplus
            );
            let uses_beta = matches!(f, RnnActivation::HardSigmoid | RnnActivation::Affine | RnnActivation::ScaledTanh);
            let alpha = if uses_alpha && !given.is_empty() {
                ai += 1;
                alphas.get(ai - 1).map_or(da, |&v| v as f64)
            } else {
                da
            };
            let beta = if uses_beta && !given.is_empty() {
                bi += 1;
                betas.get(bi - 1).map_or(db, |&v| v as f64)
            } else {
                db
            };
            Act { f, alpha, beta }
        })
        .collect()
}

/// `out[j] = sum_k m[j, k] * v[k]` for a row-major [rows, cols] slice.
fn matvec(m: &[f64], v: &[f64], rows: usize) -> Vec<f64> {
    let cols = v.len();
    (0..rows).map(|j| m[j * cols..(j + 1) * cols].iter().zip(v).map(|(a, b)| a * b).sum()).collect()
}

pub(crate) fn eval(op: &Op, ins: &[Option<&Tensor>], n_out: usize) -> Result<Vec<Tensor>, OpError> {
    let (direction, hidden, acts, alpha, beta, clip, layout) = match op {
        Op::LSTM { direction, hidden_size, activations, activation_alpha, activation_beta, clip, layout, .. }
        | Op::GRU { direction, hidden_size, activations, activation_alpha, activation_beta, clip, layout, .. }
        | Op::RNN { direction, hidden_size, activations, activation_alpha, activation_beta, clip, layout } => {
            (*direction, *hidden_size as usize, activations, activation_alpha, activation_beta, *clip, *layout)
        }
        _ => return invalid("not a recurrent op"),
    };
    let (gates, defaults): (usize, &[RnnActivation]) = match op {
        Op::LSTM { .. } => (4, &[RnnActivation::Sigmoid, RnnActivation::Tanh, RnnActivation::Tanh]),
        Op::GRU { .. } => (3, &[RnnActivation::Sigmoid, RnnActivation::Tanh]),
        _ => (1, &[RnnActivation::Tanh]),
    };
    let x = *req(ins, 0)?;
    let [d0, d1, input] = *x.dims() else { return invalid("X must be rank 3") };
    let (seq, batch) = if layout == 0 { (d0, d1) } else { (d1, d0) };
    let dirs = if direction == RnnDirection::Bidirectional { 2 } else { 1 };
    let h = hidden;
    let (w, r) = (req(ins, 1)?.to_f64(), req(ins, 2)?.to_f64());
    if w.len() != dirs * gates * h * input || r.len() != dirs * gates * h * h {
        return invalid(format!("W/R sizes do not match {dirs} direction(s), {gates} gates, hidden {h}, input {input}"));
    }
    let b = opt(ins, 3).map(|t| t.to_f64()).unwrap_or_else(|| vec![0.0; dirs * 2 * gates * h]);
    let lens: Vec<usize> = opt(ins, 4).map_or(vec![seq; batch], |t| t.to_i64().iter().map(|&v| v.clamp(0, seq as i64) as usize).collect());
    // Initial states in [dirs, batch, H] order regardless of layout.
    let state = |t: Option<&&Tensor>| -> Vec<f64> {
        match t {
            None => vec![0.0; dirs * batch * h],
            Some(t) if layout == 0 => t.to_f64(),
            Some(t) => {
                let v = t.to_f64();
                (0..dirs * batch * h)
                    .map(|i| {
                        let (d, bb, k) = (i / (batch * h), (i / h) % batch, i % h);
                        v[(bb * dirs + d) * h + k]
                    })
                    .collect()
            }
        }
    };
    let h0 = state(opt(ins, 5));
    let c0 = if gates == 4 { state(opt(ins, 6)) } else { vec![] };
    let p = if gates == 4 { opt(ins, 7).map(|t| t.to_f64()) } else { None };
    let acts = activations(acts, alpha, beta, defaults, dirs);
    let dynamic_quant = matches!(op, Op::LSTM { dynamic_quant: true, .. });
    let xv = if dynamic_quant { super::quant::fake_quant_u8(&x.to_f64()) } else { x.to_f64() };
    let xt = |t: usize, bb: usize| -> &[f64] {
        let off = if layout == 0 { (t * batch + bb) * input } else { (bb * seq + t) * input };
        &xv[off..off + input]
    };
    let cl = |v: f64| clip.map_or(v, |c| v.clamp(-c as f64, c as f64));
    let mut y = vec![0f64; seq * dirs * batch * h];
    let mut yh = vec![0f64; dirs * batch * h];
    let mut yc = vec![0f64; dirs * batch * h];
    for d in 0..dirs {
        let reverse = direction == RnnDirection::Reverse || d == 1;
        let wd = &w[d * gates * h * input..(d + 1) * gates * h * input];
        let rd = &r[d * gates * h * h..(d + 1) * gates * h * h];
        let (wb, rb) = (&b[d * 2 * gates * h..d * 2 * gates * h + gates * h], &b[d * 2 * gates * h + gates * h..(d + 1) * 2 * gates * h]);
        let act = &acts[d * defaults.len()..(d + 1) * defaults.len()];
        // The whole batch steps together: dynamic quantization takes each step's H of every row.
        let mut hs: Vec<f64> = h0[d * batch * h..(d + 1) * batch * h].to_vec();
        let mut cs: Vec<f64> = if gates == 4 { c0[d * batch * h..(d + 1) * batch * h].to_vec() } else { vec![] };
        for step in 0..seq {
            let hq = if dynamic_quant { super::quant::fake_quant_u8(&hs) } else { hs.clone() };
            for bb in (0..batch).filter(|&bb| step < lens[bb]) {
                let t = if reverse { lens[bb] - 1 - step } else { step };
                let xw = matvec(wd, xt(t, bb), gates * h);
                let hr = matvec(rd, &hq[bb * h..(bb + 1) * h], gates * h);
                let hrow = &mut hs[bb * h..(bb + 1) * h];
                match op {
                    Op::LSTM { input_forget, .. } => {
                        let crow = &mut cs[bb * h..(bb + 1) * h];
                        let pre = |g: usize, k: usize| xw[g * h + k] + hr[g * h + k] + wb[g * h + k] + rb[g * h + k];
                        let pk = |g: usize, k: usize| p.as_ref().map_or(0.0, |p| p[d * 3 * h + g * h + k]);
                        for k in 0..h {
                            let i = act[0].apply(cl(pre(0, k) + pk(0, k) * crow[k]));
                            let f = if *input_forget { 1.0 - i } else { act[0].apply(cl(pre(2, k) + pk(2, k) * crow[k])) };
                            let c = act[1].apply(cl(pre(3, k)));
                            let cn = f * crow[k] + i * c;
                            let o = act[0].apply(cl(pre(1, k) + pk(1, k) * cn));
                            crow[k] = cn;
                            hrow[k] = o * act[2].apply(cn);
                        }
                    }
                    Op::GRU { linear_before_reset, .. } => {
                        let z: Vec<f64> = (0..h).map(|k| act[0].apply(cl(xw[k] + hr[k] + wb[k] + rb[k]))).collect();
                        let rg: Vec<f64> = (0..h).map(|k| act[0].apply(cl(xw[h + k] + hr[h + k] + wb[h + k] + rb[h + k]))).collect();
                        let hh: Vec<f64> = if *linear_before_reset {
                            (0..h)
                                .map(|k| act[1].apply(cl(xw[2 * h + k] + rg[k] * (hr[2 * h + k] + rb[2 * h + k]) + wb[2 * h + k])))
                                .collect()
                        } else {
                            let rh: Vec<f64> = rg.iter().zip(hrow.iter()).map(|(a, b)| a * b).collect();
                            let m = matvec(&rd[2 * h * h..], &rh, h);
                            (0..h).map(|k| act[1].apply(cl(xw[2 * h + k] + m[k] + rb[2 * h + k] + wb[2 * h + k]))).collect()
                        };
                        for k in 0..h {
                            hrow[k] = (1.0 - z[k]) * hh[k] + z[k] * hrow[k];
                        }
                    }
                    _ => {
                        for k in 0..h {
                            hrow[k] = act[0].apply(cl(xw[k] + hr[k] + wb[k] + rb[k]));
                        }
                    }
                }
                let off = if layout == 0 { ((t * dirs + d) * batch + bb) * h } else { ((bb * seq + t) * dirs + d) * h };
                y[off..off + h].copy_from_slice(hrow);
            }
        }
        for bb in 0..batch {
            let so = if layout == 0 { (d * batch + bb) * h } else { (bb * dirs + d) * h };
            yh[so..so + h].copy_from_slice(&hs[bb * h..(bb + 1) * h]);
            if gates == 4 {
                yc[so..so + h].copy_from_slice(&cs[bb * h..(bb + 1) * h]);
            }
        }
    }
    let dt = x.dtype();
    let (ydims, sdims) =
        if layout == 0 { (vec![seq, dirs, batch, h], vec![dirs, batch, h]) } else { (vec![batch, seq, dirs, h], vec![batch, dirs, h]) };
    let mut out = vec![tensor(ydims, Data::from_f64(dt, &y)), tensor(sdims.clone(), Data::from_f64(dt, &yh))];
    if gates == 4 {
        out.push(tensor(sdims, Data::from_f64(dt, &yc)));
    }
    out.truncate(n_out.max(1));
    Ok(out)
}
