//! Normalizations: BatchNormalization (inference), LayerNormalization, RMSNormalization,
//! InstanceNormalization, GroupNormalization, LpNormalization, MeanVarianceNormalization, LRN.
//! Statistics are computed in f64 and results rounded once to the input dtype.

use super::elementwise::{broadcast_to, tensor};
use super::reduce::reduce_axes_f64;
use super::{invalid, norm_axis, opt, req, InType, OpError, TensorType};
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};

fn float_input(x: &Tensor) -> Result<Vec<f64>, OpError> {
    if !x.dtype().is_float() {
        return Err(OpError::DType { index: 0, dtype: x.dtype() });
    }
    Ok(x.to_f64())
}

/// BatchNormalization. In training mode the batch statistics (population variance) normalize
/// `x` and the outputs include the updated running mean and variance.
pub(crate) fn eval_batch_norm(
    eps: f32,
    momentum: f32,
    training: bool,
    ins: &[Option<&Tensor>],
    n_out: usize,
) -> Result<Vec<Tensor>, OpError> {
    let x = *req(ins, 0)?;
    let xv = float_input(x)?;
    let [s, b, m, v] = [1, 2, 3, 4].map(|i| req(ins, i).map(|t| t.to_f64()));
    let (s, b, running_m, running_v) = (s?, b?, m?, v?);
    let c = if x.rank() > 1 { x.dims()[1] } else { 1 };
    let inner: usize = x.dims().get(2..).map_or(1, |d| d.iter().product());
    let (m, v) = if training {
        let count = (xv.len() / c.max(1)).max(1) as f64;
        let mut mean = vec![0f64; c];
        for (i, &xi) in xv.iter().enumerate() {
            mean[(i / inner.max(1)) % c] += xi / count;
        }
        let mut var = vec![0f64; c];
        for (i, &xi) in xv.iter().enumerate() {
            let ch = (i / inner.max(1)) % c;
            var[ch] += (xi - mean[ch]).powi(2) / count;
        }
        (mean, var)
    } else {
        (running_m.clone(), running_v.clone())
    };
    if [&s, &b, &m, &v].iter().any(|p| p.len() != c) {
        return invalid(format!("BatchNormalization: parameters must have {c} elements"));
    }
    let y: Vec<f64> = xv
        .iter()
        .enumerate()
        .map(|(i, &xi)| {
            let ch = (i / inner.max(1)) % c;
            (xi - m[ch]) / (v[ch] + eps as f64).sqrt() * s[ch] + b[ch]
        })
        .collect();
    let mut out = vec![tensor(x.dims().to_vec(), Data::from_f64(x.dtype(), &y))];
    if training && n_out > 1 {
        let mom = momentum as f64;
        let upd = |run: &[f64], cur: &[f64]| -> Vec<f64> { run.iter().zip(cur).map(|(r, c)| r * mom + c * (1.0 - mom)).collect() };
        out.push(tensor(vec![c], Data::from_f64(x.dtype(), &upd(&running_m, &m))));
        out.push(tensor(vec![c], Data::from_f64(x.dtype(), &upd(&running_v, &v))));
        out.truncate(n_out);
    }
    Ok(out)
}

pub(crate) fn infer_layer_norm(axis: i64, n_out: usize, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let a = norm_axis(axis, x.shape.rank())?;
    let mut out = vec![TensorType::new(x.dtype, x.shape.clone())];
    let mut stat = x.shape.0.clone();
    for d in &mut stat[a..] {
        *d = Dim::Known(1);
    }
    for _ in 1..n_out {
        out.push(TensorType::new(x.dtype, Shape(stat.clone())));
    }
    Ok(out)
}

/// Normalizes contiguous chunks of `chunk` elements: returns (y, mean, inv_std) before affine.
fn normalize_chunks(xv: &[f64], chunk: usize, eps: f64, center: bool) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut y = vec![0f64; xv.len()];
    let groups = xv.len().checked_div(chunk).unwrap_or(0);
    let mut means = Vec::with_capacity(groups);
    let mut invs = Vec::with_capacity(groups);
    for (src, dst) in xv.chunks(chunk.max(1)).zip(y.chunks_mut(chunk.max(1))) {
        let n = src.len() as f64;
        let mean = if center { src.iter().sum::<f64>() / n } else { 0.0 };
        let var = src.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
        let inv = 1.0 / (var + eps).sqrt();
        for (d, s) in dst.iter_mut().zip(src) {
            *d = (s - mean) * inv;
        }
        means.push(mean);
        invs.push(inv);
    }
    (y, means, invs)
}

fn affine(y: &mut [f64], dims: &[usize], scale: Option<&Tensor>, bias: Option<&Tensor>) -> Result<(), OpError> {
    for (t, add) in [(scale, false), (bias, true)] {
        if let Some(t) = t {
            let b = broadcast_to(t, dims)?.to_f64();
            for (v, p) in y.iter_mut().zip(&b) {
                if add {
                    *v += p
                } else {
                    *v *= p
                }
            }
        }
    }
    Ok(())
}

pub(crate) fn eval_layer_norm(axis: i64, eps: f32, ins: &[Option<&Tensor>], n_out: usize) -> Result<Vec<Tensor>, OpError> {
    let x = *req(ins, 0)?;
    let a = norm_axis(axis, x.rank())?;
    let chunk: usize = x.dims()[a..].iter().product();
    let (mut y, mean, inv) = normalize_chunks(&float_input(x)?, chunk, eps as f64, true);
    affine(&mut y, x.dims(), opt(ins, 1).copied(), opt(ins, 2).copied())?;
    let mut out = vec![tensor(x.dims().to_vec(), Data::from_f64(x.dtype(), &y))];
    let mut sd = x.dims().to_vec();
    for d in &mut sd[a..] {
        *d = 1;
    }
    if n_out > 1 {
        out.push(tensor(sd.clone(), Data::from_f64(x.dtype(), &mean)));
    }
    if n_out > 2 {
        out.push(tensor(sd, Data::from_f64(x.dtype(), &inv)));
    }
    Ok(out)
}

pub(crate) fn eval_rms_norm(axis: i64, eps: f32, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let a = norm_axis(axis, x.rank())?;
    let chunk: usize = x.dims()[a..].iter().product();
    let (mut y, _, _) = normalize_chunks(&float_input(x)?, chunk, eps as f64, false);
    affine(&mut y, x.dims(), opt(ins, 1).copied(), None)?;
    Ok(tensor(x.dims().to_vec(), Data::from_f64(x.dtype(), &y)))
}

/// Per-channel affine for [N, C, ...] tensors normalized in chunks of `chunk`.
fn channel_affine(y: &mut [f64], dims: &[usize], s: &[f64], b: &[f64]) -> Result<(), OpError> {
    let c = dims.get(1).copied().unwrap_or(1);
    if s.len() != c || b.len() != c {
        return invalid(format!("scale and bias must have {c} elements"));
    }
    let inner: usize = dims.get(2..).map_or(1, |d| d.iter().product());
    for (i, v) in y.iter_mut().enumerate() {
        let ch = (i / inner.max(1)) % c;
        *v = *v * s[ch] + b[ch];
    }
    Ok(())
}

pub(crate) fn eval_instance_norm(eps: f32, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let inner: usize = x.dims().get(2..).map_or(1, |d| d.iter().product());
    let (mut y, _, _) = normalize_chunks(&float_input(x)?, inner, eps as f64, true);
    channel_affine(&mut y, x.dims(), &req(ins, 1)?.to_f64(), &req(ins, 2)?.to_f64())?;
    Ok(tensor(x.dims().to_vec(), Data::from_f64(x.dtype(), &y)))
}

pub(crate) fn eval_group_norm(groups: i64, eps: f32, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let c = x.dims().get(1).copied().unwrap_or(1);
    let g = groups.max(1) as usize;
    if c % g != 0 {
        return invalid(format!("GroupNormalization: {c} channels not divisible into {g} groups"));
    }
    let inner: usize = x.dims().get(2..).map_or(1, |d| d.iter().product());
    let (mut y, _, _) = normalize_chunks(&float_input(x)?, c / g * inner, eps as f64, true);
    let (mut s, mut b) = (req(ins, 1)?.to_f64(), req(ins, 2)?.to_f64());
    if s.len() == g && g != c {
        // Opset 18 form: one scale/bias per group.
        s = (0..c).map(|i| s[i / (c / g)]).collect();
        b = (0..c).map(|i| b[i / (c / g)]).collect();
    }
    channel_affine(&mut y, x.dims(), &s, &b)?;
    Ok(tensor(x.dims().to_vec(), Data::from_f64(x.dtype(), &y)))
}

pub(crate) fn eval_lp_norm(axis: i64, p: i64, x: &Tensor) -> Result<Tensor, OpError> {
    let a = norm_axis(axis, x.rank())?;
    let xv = float_input(x)?;
    let norms = reduce_axes_f64(&xv, x.dims(), &[a], |s| match p {
        1 => s.iter().map(|v| v.abs()).sum(),
        _ => s.iter().map(|v| v * v).sum::<f64>().sqrt(),
    });
    let mut nd = x.dims().to_vec();
    nd[a] = 1;
    let nb = broadcast_to(&tensor(nd, Data::F64(norms)), x.dims())?.to_f64();
    let y: Vec<f64> = xv.iter().zip(&nb).map(|(v, n)| v / n).collect();
    Ok(tensor(x.dims().to_vec(), Data::from_f64(x.dtype(), &y)))
}

pub(crate) fn eval_mvn(axes: &[i64], x: &Tensor) -> Result<Tensor, OpError> {
    let ax: Vec<usize> = axes.iter().map(|&a| norm_axis(a, x.rank())).collect::<Result<_, _>>()?;
    let xv = float_input(x)?;
    let mut rd = x.dims().to_vec();
    for &a in &ax {
        rd[a] = 1;
    }
    let count: usize = ax.iter().map(|&a| x.dims()[a]).product();
    let mean = reduce_axes_f64(&xv, x.dims(), &ax, |s| s.iter().sum::<f64>() / count as f64);
    let mb = broadcast_to(&tensor(rd.clone(), Data::F64(mean)), x.dims())?.to_f64();
    let centered: Vec<f64> = xv.iter().zip(&mb).map(|(v, m)| v - m).collect();
    let var = reduce_axes_f64(&centered, x.dims(), &ax, |s| s.iter().map(|v| v * v).sum::<f64>() / count as f64);
    let vb = broadcast_to(&tensor(rd, Data::F64(var)), x.dims())?.to_f64();
    let y: Vec<f64> = centered.iter().zip(&vb).map(|(c, v)| c / (v.sqrt() + 1e-9)).collect();
    Ok(tensor(x.dims().to_vec(), Data::from_f64(x.dtype(), &y)))
}

pub(crate) fn eval_lrn(alpha: f32, beta: f32, bias: f32, size: i64, x: &Tensor) -> Result<Tensor, OpError> {
    let xv = float_input(x)?;
    let d = x.dims();
    if d.len() < 2 || size <= 0 {
        return invalid("LRN needs rank >= 2 and a positive size");
    }
    let (c, inner) = (d[1], d[2..].iter().product::<usize>());
    let lo = (size as usize - 1) / 2;
    let hi = (size as usize - 1).div_ceil(2);
    let y: Vec<f64> = (0..xv.len())
        .map(|i| {
            let ch = (i / inner) % c;
            let base = i - ch * inner;
            let (s, e) = (ch.saturating_sub(lo), (ch + hi).min(c - 1));
            let sq: f64 = (s..=e).map(|k| xv[base + k * inner].powi(2)).sum();
            xv[i] / (bias as f64 + alpha as f64 / size as f64 * sq).powf(beta as f64)
        })
        .collect();
    Ok(tensor(d.to_vec(), Data::from_f64(x.dtype(), &y)))
}
