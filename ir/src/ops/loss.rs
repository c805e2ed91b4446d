//! Losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (reductions none/sum/mean,
//! class weights, ignore_index), computed in f64.

use super::elementwise::tensor;
use super::reduce::{eval_softmax, SoftmaxKind};
use super::{invalid, opt, req, InType, LossReduction, OpError, TensorType};
use crate::shape::Shape;
use crate::tensor::{Data, Tensor};

pub(crate) fn infer(reduction: LossReduction, n_out: usize, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (x, t) = (req(ins, 0)?, req(ins, 1)?);
    let loss = match reduction {
        LossReduction::None => t.shape.clone(),
        _ => Shape(vec![]),
    };
    let mut out = vec![TensorType::new(x.dtype, loss)];
    if n_out > 1 {
        out.push(TensorType::new(x.dtype, x.shape.clone()));
    }
    Ok(out)
}

/// NLL on log-probabilities `x` [N, C, d...] and targets [N, d...].
fn nll(x: &Tensor, target: &Tensor, weight: Option<&Tensor>, reduction: LossReduction, ignore: Option<i64>) -> Result<Tensor, OpError> {
    if x.rank() < 2 || target.rank() + 1 != x.rank() {
        return invalid(format!("loss input {:?} and target {:?} have incompatible ranks", x.dims(), target.dims()));
    }
    let (n, c) = (x.dims()[0], x.dims()[1]);
    let inner: usize = x.dims()[2..].iter().product();
    let (xv, tv) = (x.to_f64(), target.to_i64());
    let wv = weight.map(|w| w.to_f64());
    let mut losses = vec![0f64; n * inner];
    let mut weights = vec![0f64; n * inner];
    for i in 0..n {
        for k in 0..inner {
            let t = tv[i * inner + k];
            if Some(t) == ignore {
                continue;
            }
            if t < 0 || t as usize >= c {
                return invalid(format!("target {t} outside [0, {c})"));
            }
            let w = wv.as_ref().map_or(1.0, |w| w[t as usize]);
            losses[i * inner + k] = -xv[(i * c + t as usize) * inner + k] * w;
            weights[i * inner + k] = w;
        }
    }
    let dt = x.dtype();
    Ok(match reduction {
        LossReduction::None => tensor(target.dims().to_vec(), Data::from_f64(dt, &losses)),
        LossReduction::Sum => tensor(vec![], Data::from_f64(dt, &[losses.iter().sum()])),
        LossReduction::Mean => {
            let denom: f64 = weights.iter().sum();
            tensor(vec![], Data::from_f64(dt, &[losses.iter().sum::<f64>() / denom]))
        }
    })
}

pub(crate) fn eval_nll(reduction: LossReduction, ignore: Option<i64>, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    nll(req(ins, 0)?, req(ins, 1)?, opt(ins, 2).copied(), reduction, ignore)
}

pub(crate) fn eval_sce(
    reduction: LossReduction,
    ignore: Option<i64>,
    ins: &[Option<&Tensor>],
    n_out: usize,
) -> Result<Vec<Tensor>, OpError> {
    let x = *req(ins, 0)?;
    let logp = eval_softmax(SoftmaxKind::LogSoftmax, 1, false, x)?;
    let loss = nll(&logp, req(ins, 1)?, opt(ins, 2).copied(), reduction, ignore)?;
    let mut out = vec![loss];
    if n_out > 1 {
        out.push(logp);
    }
    Ok(out)
}
