//! Det: determinants of the trailing square matrices, by LU decomposition with partial
//! pivoting in f64.

use super::elementwise::tensor;
use super::{invalid, req, InType, OpError, TensorType};
use crate::shape::Shape;
use crate::tensor::{Data, Tensor};

pub(crate) fn infer_det(ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let r = x.shape.rank();
    if r < 2 {
        return invalid("Det needs rank >= 2");
    }
    Ok(vec![TensorType::new(x.dtype, Shape(x.shape.0[..r - 2].to_vec()))])
}

fn det(mut m: Vec<f64>, n: usize) -> f64 {
    let mut d = 1.0;
    for c in 0..n {
        let p = (c..n).max_by(|&a, &b| m[a * n + c].abs().total_cmp(&m[b * n + c].abs())).unwrap_or(c);
        if m[p * n + c] == 0.0 {
            return 0.0;
        }
        if p != c {
            for k in 0..n {
                m.swap(p * n + k, c * n + k);
            }
            d = -d;
        }
        let piv = m[c * n + c];
        d *= piv;
        for r in c + 1..n {
            let f = m[r * n + c] / piv;
            for k in c..n {
                m[r * n + k] -= f * m[c * n + k];
            }
        }
    }
    d
}

pub(crate) fn eval_det(x: &Tensor) -> Result<Tensor, OpError> {
    let r = x.rank();
    if r < 2 || x.dims()[r - 1] != x.dims()[r - 2] {
        return invalid(format!("Det needs square trailing matrices, got {:?}", x.dims()));
    }
    if !x.dtype().is_float() {
        return Err(OpError::DType { index: 0, dtype: x.dtype() });
    }
    let n = x.dims()[r - 1];
    let v = x.to_f64();
    let out: Vec<f64> = v.chunks(n * n).map(|m| det(m.to_vec(), n)).collect();
    let out = if n == 0 { vec![1.0; x.dims()[..r - 2].iter().product()] } else { out };
    Ok(tensor(x.dims()[..r - 2].to_vec(), Data::from_f64(x.dtype(), &out)))
}
