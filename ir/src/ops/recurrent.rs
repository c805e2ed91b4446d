//! LSTM, GRU and RNN (ONNX semantics: gates iofc / zrh, optional bias, peepholes,
//! sequence_lens, both directions, layout 0 and 1).

use super::{req, InType, Op, OpError, RnnDirection, TensorType};
use crate::dtype::DType;
use crate::shape::{Dim, Shape};
use crate::tensor::Tensor;

pub(crate) fn infer(dir: RnnDirection, hidden: i64, layout: i64, n_out: usize, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    if x.shape.rank() != 3 {
        return Err(OpError::Invalid("recurrent input X must be rank 3".into()));
    }
    let nd = Dim::Known(if dir == RnnDirection::Bidirectional { 2 } else { 1 });
    let h = Dim::Known(hidden.max(0) as usize);
    let (seq, batch) = if layout == 0 { (x.shape.0[0].clone(), x.shape.0[1].clone()) } else { (x.shape.0[1].clone(), x.shape.0[0].clone()) };
    let y = if layout == 0 { vec![seq, nd.clone(), batch.clone(), h.clone()] } else { vec![batch.clone(), seq, nd.clone(), h.clone()] };
    let st = if layout == 0 { vec![nd, batch, h] } else { vec![batch, nd, h] };
    let mut out = vec![TensorType::new(x.dtype, Shape(y))];
    for _ in 1..n_out {
        out.push(TensorType::new(x.dtype, Shape(st.clone())));
    }
    let _ = DType::F32;
    Ok(out)
}

pub(crate) fn eval(op: &Op, _ins: &[Option<&Tensor>], _n_out: usize) -> Result<Vec<Tensor>, OpError> {
    Err(OpError::Unsupported(format!("{} has no reference semantics yet", op.kind_name())))
}
