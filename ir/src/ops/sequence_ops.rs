//! Transformer building blocks with ONNX (opset 23) semantics: Attention and RotaryEmbedding.

use super::{req, DimNamer, InType, Op, OpError, TensorType};
use crate::shape::{Dim, Shape};
use crate::tensor::Tensor;

pub(crate) fn infer_attention(q_heads: i64, _kv_heads: i64, n_out: usize, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let (q, v) = (req(ins, 0)?, req(ins, 2)?);
    let y = match (q.shape.rank(), v.shape.rank()) {
        (4, 4) => Shape(vec![q.shape.0[0].clone(), q.shape.0[1].clone(), q.shape.0[2].clone(), v.shape.0[3].clone()]),
        (3, 3) => {
            let hv = match (&v.shape.0[2], q_heads) {
                (Dim::Known(n), h) if h > 0 => Dim::Known(n / _kv_heads.max(1) as usize * h as usize),
                _ => names.fresh(),
            };
            Shape(vec![q.shape.0[0].clone(), q.shape.0[1].clone(), hv])
        }
        _ => return Err(OpError::Invalid("Attention Q and V must both be rank 3 or rank 4".into())),
    };
    let mut out = vec![TensorType::new(q.dtype, y)];
    for _ in 1..n_out {
        out.push(TensorType::new(q.dtype, names.shape(4)));
    }
    Ok(out)
}

pub(crate) fn eval_attention(op: &Op, _ins: &[Option<&Tensor>], _n_out: usize) -> Result<Vec<Tensor>, OpError> {
    Err(OpError::Unsupported(format!("{} has no reference semantics yet", op.kind_name())))
}

pub(crate) fn eval_rotary(_interleaved: bool, _heads: i64, _dim: i64, _ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    Err(OpError::Unsupported("RotaryEmbedding has no reference semantics yet".into()))
}
