//! Signal processing: the Hann, Hamming and Blackman windows and the DFT (real or complex
//! input, forward or inverse, one-sided, zero-padded or truncated to dft_length), in f64.

use super::elementwise::tensor;
use super::shape_ops::const_ints;
use super::{invalid, norm_axis, opt, req, DimNamer, InType, OpError, TensorType, WindowKind};
use crate::dtype::DType;
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};

pub(crate) fn infer_window(dtype: DType, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let n = match const_ints(opt(ins, 0)) {
        Some(v) => Dim::Known(v.first().copied().unwrap_or(0).max(0) as usize),
        None => names.fresh(),
    };
    Ok(vec![TensorType::new(dtype, Shape(vec![n]))])
}

pub(crate) fn eval_window(kind: WindowKind, periodic: bool, dtype: DType, size: &Tensor) -> Result<Tensor, OpError> {
    let n = size.to_i64().first().copied().unwrap_or(0);
    let n = super::checked_numel(&[n.max(0) as usize])?;
    let denom = if periodic { n as f64 } else { (n as f64 - 1.0).max(1.0) };
    let tau = 2.0 * std::f64::consts::PI;
    let v: Vec<f64> = (0..n)
        .map(|i| {
            let x = i as f64 / denom;
            match kind {
                WindowKind::Hann => (std::f64::consts::PI * x).sin().powi(2),
                WindowKind::Hamming => 25.0 / 46.0 - (21.0 / 46.0) * (tau * x).cos(),
                WindowKind::Blackman => 0.42 - 0.5 * (tau * x).cos() + 0.08 * (2.0 * tau * x).cos(),
            }
        })
        .collect();
    Ok(tensor(vec![n], Data::from_f64(dtype, &v)))
}

fn dft_axis(ins: &[Option<InType>], rank: usize) -> Result<Option<usize>, OpError> {
    match opt(ins, 2) {
        None => norm_axis(-2, rank).map(Some),
        Some(a) => match const_ints(Some(a)) {
            Some(v) => norm_axis(v.first().copied().unwrap_or(-2), rank).map(Some),
            None => Ok(None),
        },
    }
}

pub(crate) fn infer_dft(onesided: bool, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let r = x.shape.rank();
    if r < 2 {
        return invalid("DFT input needs a trailing real/complex axis");
    }
    let mut dims = x.shape.0.clone();
    dims[r - 1] = Dim::Known(2);
    match dft_axis(ins, r)? {
        Some(a) => {
            let len = match opt(ins, 1) {
                Some(l) => const_ints(Some(l)).and_then(|v| v.first().copied()).map(|v| Dim::Known(v.max(0) as usize)),
                None => Some(dims[a].clone()),
            };
            dims[a] = match (len, onesided) {
                (Some(Dim::Known(n)), true) => Dim::Known(n / 2 + 1),
                (Some(d), false) => d,
                _ => names.fresh(),
            };
        }
        None => return Ok(vec![TensorType::new(x.dtype, names.shape(r))]),
    }
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

pub(crate) fn eval_dft(inverse: bool, onesided: bool, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let r = x.rank();
    let comp = x.dims().last().copied().unwrap_or(0);
    if r < 2 || !(comp == 1 || comp == 2) {
        return invalid("DFT input's last axis must be 1 (real) or 2 (complex)");
    }
    let a = norm_axis(opt(ins, 2).and_then(|t| t.to_i64().first().copied()).unwrap_or(-2), r)?;
    if a == r - 1 {
        return invalid("DFT axis cannot be the real/complex axis");
    }
    let len_in = x.dims()[a];
    let n = match opt(ins, 1) {
        Some(l) => l.to_i64().first().copied().unwrap_or(0).max(0) as usize,
        None => len_in,
    };
    let n_out = if onesided { n / 2 + 1 } else { n };
    let outer: usize = x.dims()[..a].iter().product();
    let inner: usize = x.dims()[a + 1..r - 1].iter().product();
    let xv = x.to_f64();
    let at = |o: usize, k: usize, i: usize| -> (f64, f64) {
        if k >= len_in {
            return (0.0, 0.0);
        }
        let base = ((o * len_in + k) * inner + i) * comp;
        (xv[base], if comp == 2 { xv[base + 1] } else { 0.0 })
    };
    let sign = if inverse { 1.0 } else { -1.0 };
    let mut out = vec![0f64; outer * n_out * inner * 2];
    for o in 0..outer {
        for i in 0..inner {
            for f in 0..n_out {
                let (mut re, mut im) = (0.0, 0.0);
                for k in 0..n {
                    let (xr, xi) = at(o, k, i);
                    let ang = sign * 2.0 * std::f64::consts::PI * ((f * k) % n.max(1)) as f64 / n as f64;
                    let (s, c) = ang.sin_cos();
                    re += xr * c - xi * s;
                    im += xr * s + xi * c;
                }
                if inverse {
                    re /= n as f64;
                    im /= n as f64;
                }
                let dst = ((o * n_out + f) * inner + i) * 2;
                out[dst] = re;
                out[dst + 1] = im;
            }
        }
    }
    let mut dims = x.dims().to_vec();
    dims[a] = n_out;
    dims[r - 1] = 2;
    Ok(tensor(dims, Data::from_f64(x.dtype(), &out)))
}

/// The `n`-point DFT of a (zero-padded or truncated) complex sequence, first `n_out` bins.
fn dft_1d(x: &[(f64, f64)], n: usize, n_out: usize) -> Vec<(f64, f64)> {
    (0..n_out)
        .map(|f| {
            let (mut re, mut im) = (0.0, 0.0);
            for (k, &(xr, xi)) in x.iter().take(n).enumerate() {
                let ang = -2.0 * std::f64::consts::PI * ((f * k) % n.max(1)) as f64 / n as f64;
                let (s, c) = ang.sin_cos();
                re += xr * c - xi * s;
                im += xr * s + xi * c;
            }
            (re, im)
        })
        .collect()
}

pub(crate) fn infer_stft(onesided: bool, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    if x.shape.rank() != 3 {
        return invalid("STFT signal must be [batch, length, 1|2]");
    }
    let frame_len = match (opt(ins, 3), opt(ins, 2)) {
        (Some(f), _) => const_ints(Some(f)).and_then(|v| v.first().map(|&n| n.max(0) as usize)),
        (None, Some(w)) => w.shape.0.first().and_then(Dim::known),
        (None, None) => x.shape.0[1].known(),
    };
    let step = const_ints(opt(ins, 1)).and_then(|v| v.first().copied());
    let frames = match (x.shape.0[1].known(), frame_len, step) {
        (Some(l), Some(f), Some(s)) if s > 0 && l >= f => Dim::Known((l - f) / s as usize + 1),
        _ => names.fresh(),
    };
    let bins = frame_len.map_or_else(|| names.fresh(), |f| Dim::Known(if onesided { f / 2 + 1 } else { f }));
    Ok(vec![TensorType::new(x.dtype, Shape(vec![x.shape.0[0].clone(), frames, bins, Dim::Known(2)]))])
}

/// STFT: frames of `frame_length` samples every `frame_step`, weighted by `window` (ones
/// without one), each transformed by a `frame_length`-point DFT.
pub(crate) fn eval_stft(onesided: bool, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let [b, len, comp] = *x.dims() else { return invalid("STFT signal must be [batch, length, 1|2]") };
    if !(comp == 1 || comp == 2) {
        return invalid("STFT signal's last axis must be 1 (real) or 2 (complex)");
    }
    let step = req(ins, 1)?.to_i64().first().copied().unwrap_or(0);
    let window = opt(ins, 2).map(|w| w.to_f64());
    let frame_len = match (opt(ins, 3), &window) {
        (Some(f), _) => f.to_i64().first().copied().unwrap_or(0).max(0) as usize,
        (None, Some(w)) => w.len(),
        (None, None) => len,
    };
    if step <= 0 || frame_len == 0 || frame_len > len || window.as_ref().is_some_and(|w| w.len() != frame_len) {
        return invalid(format!("STFT: frame_step {step}, frame_length {frame_len}, window and signal length {len} do not fit"));
    }
    let frames = (len - frame_len) / step as usize + 1;
    let bins = if onesided { frame_len / 2 + 1 } else { frame_len };
    let xv = x.to_f64();
    let mut out = Vec::with_capacity(b * frames * bins * 2);
    for bi in 0..b {
        for f in 0..frames {
            let start = f * step as usize;
            let seg: Vec<(f64, f64)> = (0..frame_len)
                .map(|k| {
                    let w = window.as_ref().map_or(1.0, |w| w[k]);
                    let base = (bi * len + start + k) * comp;
                    (xv[base] * w, if comp == 2 { xv[base + 1] * w } else { 0.0 })
                })
                .collect();
            for (re, im) in dft_1d(&seg, frame_len, bins) {
                out.push(re);
                out.push(im);
            }
        }
    }
    Ok(tensor(vec![b, frames, bins, 2], Data::from_f64(x.dtype(), &out)))
}

pub(crate) fn infer_mel(dtype: DType, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let mels = const_ints(opt(ins, 0)).and_then(|v| v.first().copied()).map_or_else(|| names.fresh(), |n| Dim::Known(n.max(0) as usize));
    let bins =
        const_ints(opt(ins, 1)).and_then(|v| v.first().copied()).map_or_else(|| names.fresh(), |n| Dim::Known(n.max(0) as usize / 2 + 1));
    Ok(vec![TensorType::new(dtype, Shape(vec![bins, mels]))])
}

/// MelWeightMatrix: triangular filters on the mel scale, [dft_length / 2 + 1, num_mel_bins],
/// with bin edges computed as the ONNX reference does (floor of (dft_length + 1) * f / rate).
pub(crate) fn eval_mel(dtype: DType, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let scalar = |i: usize| -> Result<f64, OpError> { req(ins, i)?.to_f64().first().copied().ok_or(OpError::MissingInput { index: i }) };
    let (mels, dft_len, rate, lo, hi) = (scalar(0)?, scalar(1)?, scalar(2)?, scalar(3)?, scalar(4)?);
    if mels < 0.0 || dft_len < 0.0 || rate <= 0.0 {
        return invalid("MelWeightMatrix: negative bin counts or non-positive sample rate");
    }
    let (mels, n_bins) = (mels as usize, dft_len as usize / 2 + 1);
    super::checked_numel(&[n_bins, mels])?;
    let to_mel = |hz: f64| 2595.0 * (1.0 + hz / 700.0).log10();
    let (lo_mel, hi_mel) = (to_mel(lo), to_mel(hi));
    let step = (hi_mel - lo_mel) / (mels + 2) as f64;
    let edges: Vec<i64> = (0..mels + 2)
        .map(|i| {
            let hz = 700.0 * (10f64.powf((i as f64 * step + lo_mel) / 2595.0) - 1.0);
            (((dft_len + 1.0) * hz) / rate).floor() as i64
        })
        .collect();
    let mut w = vec![0f64; n_bins * mels];
    let mut set = |j: i64, i: usize, v: f64| {
        if (0..n_bins as i64).contains(&j) {
            w[j as usize * mels + i] = v;
        }
    };
    for i in 0..mels {
        let (l, c, h) = (edges[i], edges[i + 1], edges[i + 2]);
        if c == l {
            set(c, i, 1.0);
        } else {
            for j in l..=c {
                set(j, i, (j - l) as f64 / (c - l) as f64);
            }
        }
        if h > c {
            for j in c..h {
                set(j, i, (h - j) as f64 / (h - c) as f64);
            }
        }
    }
    Ok(tensor(vec![n_bins, mels], Data::from_f64(dtype, &w)))
}
