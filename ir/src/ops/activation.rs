//! Parameterized activations (LeakyRelu, Elu, Selu, Celu, HardSigmoid, ThresholdedRelu, Gelu,
//! Shrink, Swish), IsInf and Clip.

use super::elementwise::{erf, map_float, tensor};
use super::{req, Elementwise as E, GeluApprox, InType, Op, OpError, TensorType};
use crate::dtype::DType;
use crate::tensor::{Data, Tensor};

pub(crate) fn infer(ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    Ok(vec![TensorType::new(x.dtype, x.shape.clone())])
}

pub(crate) fn infer_isinf(ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    Ok(vec![TensorType::new(DType::Bool, req(ins, 0)?.shape.clone())])
}

pub(crate) fn eval(op: &Op, x: &Tensor) -> Result<Tensor, OpError> {
    if let Op::IsInf { detect_negative, detect_positive } = *op {
        let v: Vec<bool> =
            x.to_f64().iter().map(|v| v.is_infinite() && ((*v > 0.0 && detect_positive) || (*v < 0.0 && detect_negative))).collect();
        return Ok(tensor(x.dims().to_vec(), Data::Bool(v)));
    }
    if !x.dtype().is_float() {
        return Err(OpError::DType { index: 0, dtype: x.dtype() });
    }
    let Some(e) = op.as_elementwise() else {
        return Err(OpError::Invalid(format!("{} is not an activation", op.kind_name())));
    };
    match e {
        E::LeakyRelu { alpha: &alpha } => {
            let a = alpha as f64;
            map_float(x, move |v| if v < 0.0 { a * v } else { v })
        }
        E::Elu { alpha: &alpha } => {
            let a = alpha as f64;
            map_float(x, move |v| if v < 0.0 { a * (v.exp() - 1.0) } else { v })
        }
        E::Selu { alpha: &alpha, gamma: &gamma } => {
            let (a, g) = (alpha as f64, gamma as f64);
            map_float(x, move |v| if v <= 0.0 { g * (a * v.exp() - a) } else { g * v })
        }
        E::Celu { alpha: &alpha } => {
            let a = alpha as f64;
            map_float(x, move |v| v.max(0.0) + (a * ((v / a).exp() - 1.0)).min(0.0))
        }
        E::HardSigmoid { alpha: &alpha, beta: &beta } => {
            let (a, b) = (alpha as f64, beta as f64);
            map_float(x, move |v| (a * v + b).clamp(0.0, 1.0))
        }
        E::ThresholdedRelu { alpha: &alpha } => {
            let a = alpha as f64;
            map_float(x, move |v| if v > a { v } else { 0.0 })
        }
        E::Gelu { approximate: &approximate } => match approximate {
            GeluApprox::None => map_float(x, |v| 0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2))),
            GeluApprox::Tanh => map_float(x, |v| {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())
            }),
        },
        E::Shrink { bias: &bias, lambd: &lambd } => {
            let (b, l) = (bias as f64, lambd as f64);
            map_float(x, move |v| {
                if v < -l {
                    v + b
                } else if v > l {
                    v - b
                } else {
                    0.0
                }
            })
        }
        E::Swish { alpha: &alpha } => {
            let a = alpha as f64;
            map_float(x, move |v| v / (1.0 + (-a * v).exp()))
        }
        E::Identity {} | E::Unary { .. } | E::Binary { .. } | E::Mean {} | E::IsInf { .. } | E::Clip {} | E::Where {} | E::Cast { .. } => {
            Err(OpError::Invalid(format!("{} is not an activation", op.kind_name())))
        }
    }
}

pub(crate) fn eval_clip(ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let bound = |i: usize| -> Result<Option<f64>, OpError> {
        match ins.get(i).copied().flatten() {
            None => Ok(None),
            Some(t) if t.numel() == 1 => Ok(t.to_f64().first().copied()),
            Some(t) => Err(OpError::Invalid(format!("Clip bound {i} must be a scalar, has shape {:?}", t.dims()))),
        }
    };
    let (lo, hi) = (bound(1)?, bound(2)?);
    if x.dtype().is_float() {
        return map_float(x, |v| {
            let v = match lo {
                Some(l) if v < l => l,
                _ => v,
            };
            match hi {
                Some(h) if v > h => h,
                _ => v,
            }
        });
    }
    let lo = lo.map(|v| v as i64);
    let hi = hi.map(|v| v as i64);
    let bl = ins.get(1).copied().flatten().map(|t| t.to_i64()[0]).or(lo);
    let bh = ins.get(2).copied().flatten().map(|t| t.to_i64()[0]).or(hi);
    let v: Vec<i64> = x
        .to_i64()
        .into_iter()
        .map(|v| {
            let v = bl.map_or(v, |l| v.max(l));
            bh.map_or(v, |h| v.min(h))
        })
        .collect();
    Ok(tensor(x.dims().to_vec(), Data::from_i64(x.dtype(), &v)))
}
