//! Resize (nearest, linear; all coordinate transformation modes) on N-D tensors.

use super::{req, DimNamer, InType, Op, OpError, TensorType};
use crate::tensor::Tensor;

pub(crate) fn infer(_op: &Op, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    Ok(vec![TensorType::new(x.dtype, names.shape(x.shape.rank()))])
}

pub(crate) fn eval(_op: &Op, _ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    Err(OpError::Unsupported("Resize has no reference semantics yet".into()))
}
