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
