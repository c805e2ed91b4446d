//! Storage formats of 4-D activations, and the conversions between them. A value in a format
//! other than `nchw` has the format's stored shape; channels are zero-padded up to a multiple
//! of `align`, and every op that produces a formatted value keeps that padding zero (the
//! optimizer's layout rules rely on it to cancel conversions).
//!
//! | format | stored shape of logical [N, C, H, W] |
//! |---|---|
//! | `nchw` | [N, C, H, W] |
//! | `nhwc` | [N, H, W, Cp], Cp = C rounded up to `align` |
//! | `nc1hwc0` | [N, C1, H, W, C0], C0 = `align`, C1 = ⌈C / C0⌉ (Ascend 5HD) |
//!
//! ```text
//! %s = ToFormat[s](%x) {format=nhwc, align=8} : f16[1,32,32,8]          (%x : f16[1,3,32,32])
//! %y = FromFormat[y](%s) {format=nhwc, align=8, channels=3} : f16[1,3,32,32]
//! ```

use super::data_movement::permute;
use super::elementwise::tensor;
use super::{invalid, req, Format, InType, OpError, TensorType};
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};

fn padded(c: usize, align: usize) -> usize {
    c.div_ceil(align) * align
}

fn check_align(format: Format, align: i64) -> Result<usize, OpError> {
    match (format, align) {
        (Format::Nchw, 1) => Ok(1),
        (Format::Nchw, _) => invalid("format nchw takes align 1"),
        (_, a) if (1..=256).contains(&a) => Ok(a as usize),
        (_, a) => invalid(format!("align {a} must be in 1..=256")),
    }
}

/// The stored shape of logical NCHW dims in `format`.
pub fn stored_dims(format: Format, align: i64, logical: &[Dim]) -> Result<Vec<Dim>, OpError> {
    let a = check_align(format, align)?;
    // NCHW is the logical layout itself, of any rank (a 1-D or 3-D convolution's N, C, spatial).
    if format == Format::Nchw {
        return Ok(logical.to_vec());
    }
    let [n, c, h, w] = logical else { return invalid(format!("formats apply to 4-D NCHW values, not rank {}", logical.len())) };
    let cp = |c: &Dim| c.known().map_or_else(|| c.clone(), |c| Dim::Known(padded(c, a)));
    Ok(match format {
        Format::Nchw => logical.to_vec(),
        Format::Nhwc => vec![n.clone(), h.clone(), w.clone(), cp(c)],
        Format::Nc1hwc0 => match c.known() {
            Some(c) => vec![n.clone(), Dim::Known(c.div_ceil(a)), h.clone(), w.clone(), Dim::Known(a)],
            None => return invalid("nc1hwc0 needs a known channel count"),
        },
    })
}

/// The logical NCHW dims of a stored value with `channels` channels.
fn logical_dims(format: Format, align: i64, channels: i64, stored: &[Dim]) -> Result<Vec<Dim>, OpError> {
    let a = check_align(format, align)?;
    let c = usize::try_from(channels).map_err(|_| OpError::Invalid(format!("channels {channels} must be positive")))?;
    let (dims, cdim) = match (format, stored) {
        (Format::Nchw, [_, sc, ..]) => (stored.to_vec(), sc.known().map(|s| s == c)),
        (Format::Nhwc, [n, h, w, cp]) => (vec![n.clone(), Dim::Known(c), h.clone(), w.clone()], cp.known().map(|s| s == padded(c, a))),
        (Format::Nc1hwc0, [n, c1, h, w, c0]) => {
            let ok = c1.known().zip(c0.known()).map(|(c1, c0)| c1 == c.div_ceil(a) && c0 == a);
            (vec![n.clone(), Dim::Known(c), h.clone(), w.clone()], ok)
        }
        _ => return invalid(format!("a {} value has rank {}", format.name(), stored.len())),
    };
    if cdim == Some(false) {
        return invalid(format!(
            "stored shape {:?} does not hold {channels} channels in {} (align {align})",
            Shape(stored.to_vec()),
            format.name()
        ));
    }
    Ok(dims)
}

pub(crate) fn infer_to(format: Format, align: i64, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    Ok(vec![TensorType::new(x.dtype, Shape(stored_dims(format, align, &x.shape.0)?))])
}

pub(crate) fn infer_from(format: Format, align: i64, channels: i64, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    Ok(vec![TensorType::new(x.dtype, Shape(logical_dims(format, align, channels, &x.shape.0)?))])
}

/// Logical NCHW → stored, padding channels with zeros.
pub fn to_format(format: Format, align: i64, x: &Tensor) -> Result<Tensor, OpError> {
    let a = check_align(format, align)?;
    let [n, c, h, w] = *x.dims() else { return invalid(format!("formats apply to 4-D NCHW values, not {:?}", x.dims())) };
    if format == Format::Nchw {
        return Ok(x.clone());
    }
    let cp = padded(c, a);
    // Pad channels: [N, Cp, H, W], zeros in the new channels.
    let mut idx = Vec::with_capacity(n * cp * h * w);
    let zero_at = x.numel();
    for ni in 0..n {
        for ci in 0..cp {
            for p in 0..h * w {
                idx.push(if ci < c { (ni * c + ci) * h * w + p } else { zero_at });
            }
        }
    }
    let with_zero =
        Data::concat(&[x.data(), &Data::zeros(x.dtype(), 1)]).ok_or_else(|| OpError::Invalid("cannot pad this dtype".into()))?;
    let p = tensor(vec![n, cp, h, w], with_zero.take(&idx));
    Ok(match format {
        Format::Nchw => p,
        Format::Nhwc => permute(&p, &[0, 2, 3, 1]),
        Format::Nc1hwc0 => permute(&tensor(vec![n, cp / a, a, h, w], p.into_data()), &[0, 1, 3, 4, 2]),
    })
}

/// Stored → logical NCHW with `channels` channels (the padding dropped).
pub fn from_format(format: Format, align: i64, channels: i64, x: &Tensor) -> Result<Tensor, OpError> {
    let dims: Vec<Dim> = x.dims().iter().map(|&d| Dim::Known(d)).collect();
    let logical = logical_dims(format, align, channels, &dims)?;
    let [n, c, h, w] = [0, 1, 2, 3].map(|i| logical[i].known().unwrap_or(0));
    let p = match format {
        Format::Nchw => return Ok(x.clone()),
        Format::Nhwc => permute(x, &[0, 3, 1, 2]),
        Format::Nc1hwc0 => {
            let [_, c1, _, _, c0] = *x.dims() else { return invalid("nc1hwc0 values are 5-D") };
            tensor(vec![n, c1 * c0, h, w], permute(x, &[0, 1, 4, 2, 3]).into_data())
        }
    };
    let cp = p.dims()[1];
    let idx: Vec<usize> = (0..n).flat_map(|ni| (0..c).flat_map(move |ci| (0..h * w).map(move |q| (ni * cp + ci) * h * w + q))).collect();
    Ok(tensor(vec![n, c, h, w], p.data().take(&idx)))
}
