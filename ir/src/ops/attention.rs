//! Transformer building blocks with ONNX (opset 23) semantics: Attention and RotaryEmbedding.
//! Scores, softmax and the weighted sum are computed in f64 and rounded once to Q's dtype.

use super::data_movement::permute;
use super::elementwise::{broadcast_to, tensor};
use super::{invalid, opt, req, DimNamer, InType, Op, OpError, TensorType};
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};

pub(crate) fn infer_attention(
    q_heads: i64,
    kv_heads: i64,
    n_out: usize,
    ins: &[Option<InType>],
    names: &mut DimNamer,
) -> Result<Vec<TensorType>, OpError> {
    let (q, k, v) = (req(ins, 0)?, req(ins, 1)?, req(ins, 2)?);
    let past = opt(ins, 4).map(|p| p.shape.0.get(2).cloned().unwrap_or(Dim::Known(0)));
    let total = |kv: &Dim, names: &mut DimNamer| match (past.as_ref(), kv) {
        (None, d) => d.clone(),
        (Some(Dim::Known(p)), Dim::Known(n)) => Dim::Known(p + n),
        _ => names.fresh(),
    };
    // The QK output is [batch, q heads, q length, total kv length].
    let (y, qk, pk, pv) = match (q.shape.rank(), k.shape.rank(), v.shape.rank()) {
        (4, 4, 4) => {
            let (qs, ks, vs) = (&q.shape.0, &k.shape.0, &v.shape.0);
            let t = total(&ks[2], names);
            (
                Shape(vec![qs[0].clone(), qs[1].clone(), qs[2].clone(), vs[3].clone()]),
                Shape(vec![qs[0].clone(), qs[1].clone(), qs[2].clone(), t.clone()]),
                Shape(vec![ks[0].clone(), ks[1].clone(), t.clone(), ks[3].clone()]),
                Shape(vec![vs[0].clone(), vs[1].clone(), t, vs[3].clone()]),
            )
        }
        (3, 3, 3) => {
            if q_heads <= 0 || kv_heads <= 0 {
                return invalid("3-D Attention needs q_num_heads and kv_num_heads");
            }
            let (qs, ks, vs) = (&q.shape.0, &k.shape.0, &v.shape.0);
            let per = |d: &Dim, h: i64, names: &mut DimNamer| d.known().map_or_else(|| names.fresh(), |n| Dim::Known(n / h as usize));
            let dv = per(&vs[2], kv_heads, names);
            let yh = match &dv {
                Dim::Known(n) => Dim::Known(n * q_heads as usize),
                _ => names.fresh(),
            };
            let t = total(&ks[1], names);
            let dk = per(&ks[2], kv_heads, names);
            let kvh = Dim::Known(kv_heads as usize);
            (
                Shape(vec![qs[0].clone(), qs[1].clone(), yh]),
                Shape(vec![qs[0].clone(), Dim::Known(q_heads as usize), qs[1].clone(), t.clone()]),
                Shape(vec![ks[0].clone(), kvh.clone(), t.clone(), dk]),
                Shape(vec![vs[0].clone(), kvh, t, dv]),
            )
        }
        _ => return invalid("Attention Q, K and V must all be rank 3 or all rank 4"),
    };
    let mut out = vec![TensorType::new(q.dtype, y), TensorType::new(k.dtype, pk), TensorType::new(v.dtype, pv)];
    if n_out > 3 {
        out.push(TensorType::new(q.dtype, qk));
    }
    out.truncate(n_out.max(1));
    Ok(out)
}

/// [B, S, H*D] → [B, H, S, D].
fn split_heads(t: &Tensor, heads: usize) -> Result<Tensor, OpError> {
    let [b, s, hd] = *t.dims() else { return invalid("expected a rank-3 tensor") };
    if heads == 0 || hd % heads != 0 {
        return invalid(format!("hidden size {hd} is not divisible by {heads} heads"));
    }
    Ok(permute(&tensor(vec![b, s, heads, hd / heads], t.data().clone()), &[0, 2, 1, 3]))
}

fn concat_seq(past: Option<&Tensor>, cur: Tensor) -> Result<Tensor, OpError> {
    match past {
        None => Ok(cur),
        Some(p) => super::data_movement::eval_concat(2, &[Some(p), Some(&cur)]),
    }
}

pub(crate) fn eval_attention(op: &Op, ins: &[Option<&Tensor>], n_out: usize) -> Result<Vec<Tensor>, OpError> {
    let Op::Attention {
        is_causal,
        kv_num_heads,
        q_num_heads,
        qk_matmul_output_mode,
        scale,
        softcap,
        softmax_precision: _,
        zero_undefined_rows,
    } = *op
    else {
        return invalid("not an Attention op");
    };
    let (q, k, v) = (*req(ins, 0)?, *req(ins, 1)?, *req(ins, 2)?);
    let three_d = q.rank() == 3;
    let (q, k, v) = if three_d {
        if q_num_heads <= 0 || kv_num_heads <= 0 {
            return invalid("3-D Attention needs q_num_heads and kv_num_heads");
        }
        (split_heads(q, q_num_heads as usize)?, split_heads(k, kv_num_heads as usize)?, split_heads(v, kv_num_heads as usize)?)
    } else {
        (q.clone(), k.clone(), v.clone())
    };
    let (past_k, past_v) = (opt(ins, 4).copied(), opt(ins, 5).copied());
    let past_len = past_k.map_or(0, |p| p.dims().get(2).copied().unwrap_or(0));
    let present_k = concat_seq(past_k, k)?;
    let present_v = concat_seq(past_v, v)?;
    let dims4 = |t: &Tensor| -> Result<[usize; 4], OpError> {
        t.dims().try_into().map_err(|_| OpError::Invalid("Attention inputs must be rank 4 after head split".into()))
    };
    let ([b, hq, sq, d], [_, hk, sk, dk], [_, hv, sv, dv]) = (dims4(&q)?, dims4(&present_k)?, dims4(&present_v)?);
    if d != dk || sk != sv || hk != hv || hk == 0 || hq % hk != 0 {
        return invalid(format!("Attention shapes do not agree: Q {:?}, K {:?}, V {:?}", q.dims(), present_k.dims(), present_v.dims()));
    }
    let scale = scale.map_or(1.0 / (d as f64).sqrt(), |s| s as f64);
    // Additive bias [B, Hq, Sq, Sk] from the mask, causality and padding lengths.
    let mut bias = vec![0f64; b * hq * sq * sk];
    if let Some(m) = opt(ins, 3) {
        let mut m = (*m).clone();
        let last = m.dims().last().copied().unwrap_or(0);
        if last < sk {
            let pad_val = if m.dtype() == crate::DType::Bool { 0.0 } else { f64::NEG_INFINITY };
            let mut pads = vec![0i64; 2 * m.rank()];
            pads[2 * m.rank() - 1] = (sk - last) as i64;
            let pv = tensor(vec![], Data::from_f64(m.dtype(), &[pad_val]));
            let pt = tensor(vec![pads.len()], Data::I64(pads));
            m = super::data_movement::eval_pad(super::PadMode::Constant, &[Some(&m), Some(&pt), Some(&pv)])?;
        }
        let mb = broadcast_to(&m, &[b, hq, sq, sk])?;
        let vals: Vec<f64> = match mb.data() {
            Data::Bool(v) => v.iter().map(|&x| if x { 0.0 } else { f64::NEG_INFINITY }).collect(),
            _ => mb.to_f64(),
        };
        for (a, v) in bias.iter_mut().zip(vals) {
            *a += v;
        }
    }
    if is_causal {
        for (idx, a) in bias.iter_mut().enumerate() {
            let (i, j) = ((idx / sk) % sq, idx % sk);
            if j >= past_len && j - past_len > i {
                *a = f64::NEG_INFINITY;
            }
        }
    }
    if let Some(lens) = opt(ins, 6) {
        let lens = lens.to_i64();
        for (idx, a) in bias.iter_mut().enumerate() {
            let (bi, j) = (idx / (hq * sq * sk), idx % sk);
            if (j as i64) >= lens.get(bi).copied().unwrap_or(sk as i64) {
                *a = f64::NEG_INFINITY;
            }
        }
    }
    let (qv, kv, vv) = (q.to_f64(), present_k.to_f64(), present_v.to_f64());
    let group = hq / hk;
    let mut y = vec![0f64; b * hq * sq * dv];
    let mut qk_out = vec![0f64; b * hq * sq * sk];
    let mut row = vec![0f64; sk];
    for bi in 0..b {
        for h in 0..hq {
            let kh = h / group;
            for i in 0..sq {
                let qrow = &qv[((bi * hq + h) * sq + i) * d..][..d];
                let brow = &bias[((bi * hq + h) * sq + i) * sk..][..sk];
                let orow = &mut qk_out[((bi * hq + h) * sq + i) * sk..][..sk];
                for j in 0..sk {
                    let krow = &kv[((bi * hk + kh) * sk + j) * d..][..d];
                    let raw = qrow.iter().zip(krow).map(|(a, b)| a * b).sum::<f64>() * scale;
                    let mut s = raw + brow[j];
                    if qk_matmul_output_mode == 1 {
                        orow[j] = s;
                    }
                    if softcap > 0.0 {
                        s = (s / softcap as f64).tanh() * softcap as f64;
                    }
                    if qk_matmul_output_mode == 2 {
                        orow[j] = s;
                    }
                    if qk_matmul_output_mode == 0 {
                        orow[j] = raw;
                    }
                    row[j] = s;
                }
                let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = row.iter().map(|s| (s - m).exp()).sum();
                let yrow = &mut y[((bi * hq + h) * sq + i) * dv..][..dv];
                // The row's probabilities are all NaN exactly when the sum is.
                let zero_row = zero_undefined_rows && sum.is_nan();
                for j in 0..sk {
                    let p = if zero_row { 0.0 } else { (row[j] - m).exp() / sum };
                    if qk_matmul_output_mode == 3 {
                        orow[j] = p;
                    }
                    let vrow = &vv[((bi * hk + kh) * sk + j) * dv..][..dv];
                    for (o, x) in yrow.iter_mut().zip(vrow) {
                        *o += p * x;
                    }
                }
            }
        }
    }
    let dt = q.dtype();
    let mut out = tensor(vec![b, hq, sq, dv], Data::from_f64(dt, &y));
    if three_d {
        let t = permute(&out, &[0, 2, 1, 3]);
        out = tensor(vec![b, sq, hq * dv], t.into_data());
    }
    let mut res = vec![out, present_k, present_v];
    if n_out > 3 {
        res.push(tensor(vec![b, hq, sq, sk], Data::from_f64(dt, &qk_out)));
    }
    res.truncate(n_out.max(1));
    Ok(res)
}

pub(crate) fn eval_rotary(interleaved: bool, heads: i64, rot_dim: i64, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let (cos, sin) = (*req(ins, 1)?, *req(ins, 2)?);
    // Work in [B, S, H, D].
    let x4 = match x.rank() {
        4 => permute(x, &[0, 2, 1, 3]),
        3 => {
            let [b, s, hd] = *x.dims() else { return invalid("bad rank") };
            if heads <= 0 || hd % heads as usize != 0 {
                return invalid("3-D RotaryEmbedding needs num_heads dividing the hidden size");
            }
            tensor(vec![b, s, heads as usize, hd / heads as usize], x.data().clone())
        }
        _ => return invalid("RotaryEmbedding input must be rank 3 or 4"),
    };
    let [b, s, h, d] = x4.dims().try_into().unwrap_or([0; 4]);
    let rd = if rot_dim == 0 { d } else { rot_dim as usize };
    if rd > d || rd % 2 != 0 {
        return invalid(format!("rotary_embedding_dim {rd} invalid for head size {d}"));
    }
    let half = rd / 2;
    let (cv, sv) = (cos.to_f64(), sin.to_f64());
    let pos = opt(ins, 3).map(|p| p.to_i64());
    // Cache row for (batch, position).
    let cache_row = |bi: usize, si: usize| -> Result<usize, OpError> {
        match &pos {
            Some(p) => {
                let r = p.get(bi * s + si).copied().unwrap_or(0);
                if r < 0 || (r as usize + 1) * half > cv.len() {
                    return invalid(format!("position id {r} outside the cos/sin cache"));
                }
                Ok(r as usize)
            }
            None => Ok(if cos.rank() == 3 { bi * s + si } else { si }),
        }
    };
    if cv.len() < half || cv.len() != sv.len() || cos.dims().last() != Some(&half) {
        return invalid(format!("cos/sin cache last dimension must be {half}"));
    }
    let xv = x4.to_f64();
    let mut y = xv.clone();
    for bi in 0..b {
        for si in 0..s {
            let r = cache_row(bi, si)?;
            for hi in 0..h {
                let base = ((bi * s + si) * h + hi) * d;
                for k in 0..half {
                    let (i1, i2) = if interleaved { (base + 2 * k, base + 2 * k + 1) } else { (base + k, base + k + half) };
                    let (c, sn) = (cv[r * half + k], sv[r * half + k]);
                    let (x1, x2) = (xv[i1], xv[i2]);
                    y[i1] = c * x1 - sn * x2;
                    y[i2] = sn * x1 + c * x2;
                }
            }
        }
    }
    let y4 = tensor(vec![b, s, h, d], Data::from_f64(x.dtype(), &y));
    Ok(match x.rank() {
        4 => permute(&y4, &[0, 2, 1, 3]),
        _ => tensor(x.dims().to_vec(), y4.into_data()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attention(zero_undefined_rows: bool) -> Op {
        Op::Attention {
            is_causal: false,
            kv_num_heads: 0,
            q_num_heads: 0,
            qk_matmul_output_mode: 0,
            scale: None,
            softcap: 0.0,
            softmax_precision: None,
            zero_undefined_rows,
        }
    }

    /// Query row 0 has every key masked, row 1 none: the flag decides only row 0.
    #[test]
    fn undefined_rows_are_nan_or_zero() {
        let t = |dims: Vec<usize>, v: Vec<f32>| Tensor::new(dims, Data::F32(v)).expect("tensor");
        let q = t(vec![1, 1, 2, 2], vec![0.5, -1.0, 2.0, 0.25]);
        let k = t(vec![1, 1, 3, 2], vec![1.0, 0.0, 0.0, 1.0, -1.0, 1.0]);
        let v = t(vec![1, 1, 3, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let mask = Tensor::new(vec![2, 3], Data::Bool(vec![false, false, false, true, true, true])).expect("mask");
        let ins = [Some(&q), Some(&k), Some(&v), Some(&mask)];
        let nan = eval_attention(&attention(false), &ins, 1).expect("eval")[0].to_f64();
        let zero = eval_attention(&attention(true), &ins, 1).expect("eval")[0].to_f64();
        assert!(nan[..2].iter().all(|x| x.is_nan()), "{nan:?}");
        assert_eq!(zero[..2], [0.0, 0.0]);
        // Row 1 is the ordinary softmax-weighted mean of V in both.
        let s: Vec<f64> = [2.0, 0.25, -1.75].iter().map(|x: &f64| (x / 2f64.sqrt()).exp()).collect();
        let total: f64 = s.iter().sum();
        let want = [(s[0] + 3.0 * s[1] + 5.0 * s[2]) / total, (2.0 * s[0] + 4.0 * s[1] + 6.0 * s[2]) / total];
        for r in [&nan, &zero] {
            assert!((r[2] - want[0]).abs() < 1e-6 && (r[3] - want[1]).abs() < 1e-6, "{r:?} vs {want:?}");
        }
    }
}
