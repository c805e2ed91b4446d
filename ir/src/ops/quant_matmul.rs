//! Quantized products, the forms `--quantize` gives a model's products (see `kiln_passes::quant`):
//!
//! - `MatMulQ8` (W8A8, SmoothQuant's deployment form): the activation is quantized to int8 per
//!   token (each row of its last axis, symmetric, scale max|row| / 127) when the product runs, the
//!   weight is int8 per output channel (symmetric); the product accumulates in int32 and is
//!   scaled back by the row's and the column's scales.
//! - `MatMulQ4` (W4A16, AWQ's and round-to-nearest's form): the weight is 4-bit unsigned per group
//!   of `group_size` input channels with a scale and a zero point per group and output channel;
//!   the activation stays in floating point and the weight is dequantized for the product.
//!
//! Both compute in f32 and give the activation's dtype.

use super::{invalid, req, InType, OpError, TensorType};
use crate::dtype::DType;
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};

/// `A [..., K]` times a `[K, N]` weight: the output type, checking the weight's dims and dtype.
fn product_type(a: &InType, b: &InType, want: DType, what: &str) -> Result<TensorType, OpError> {
    if !a.dtype.is_float() {
        return invalid(format!("{what}: the activation must be floating point, got {}", a.dtype));
    }
    if b.dtype != want || b.shape.rank() != 2 {
        return invalid(format!("{what}: the weight must be {want}[K, N], got {}{}", b.dtype, b.shape));
    }
    let (Some(k), Some(last)) = (b.shape.0[0].known(), a.shape.0.last()) else {
        return invalid(format!("{what}: needs an activation of rank >= 1 and a weight of known K"));
    };
    if last.known().is_some_and(|x| x != k) {
        return invalid(format!("{what}: the activation's last dim {last} is not the weight's K {k}"));
    }
    let mut dims = a.shape.0.clone();
    *dims.last_mut().expect("rank >= 1") = b.shape.0[1].clone();
    Ok(TensorType::new(a.dtype, Shape(dims)))
}

/// A parameter of `n` values (dims checked when known).
fn check_param(p: &InType, dims: &[usize], what: &str) -> Result<(), OpError> {
    let known: Option<Vec<usize>> = p.shape.0.iter().map(Dim::known).collect();
    match known {
        Some(d) if d != dims => invalid(format!("{what} has dims {d:?}, want {dims:?}")),
        _ => Ok(()),
    }
}

pub(crate) fn infer_q8(ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (a, b, s) = (req(ins, 0)?, req(ins, 1)?, req(ins, 2)?);
    let out = product_type(a, b, DType::I8, "MatMulQ8")?;
    if let Some(n) = b.shape.0[1].known() {
        check_param(s, &[n], "MatMulQ8's weight scale")?;
    }
    if !s.dtype.is_float() {
        return invalid(format!("MatMulQ8's weight scale must be floating point, got {}", s.dtype));
    }
    Ok(vec![out])
}

pub(crate) fn infer_q4(group_size: i64, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (a, b, s, z) = (req(ins, 0)?, req(ins, 1)?, req(ins, 2)?, req(ins, 3)?);
    let out = product_type(a, b, DType::U4, "MatMulQ4")?;
    if group_size <= 0 {
        return invalid(format!("MatMulQ4: group_size {group_size} must be positive"));
    }
    if let (Some(k), Some(n)) = (b.shape.0[0].known(), b.shape.0[1].known()) {
        let groups = k.div_ceil(group_size as usize);
        check_param(s, &[groups, n], "MatMulQ4's scales")?;
        check_param(z, &[groups, n], "MatMulQ4's zero points")?;
    }
    if !s.dtype.is_float() || z.dtype != DType::U4 {
        return invalid(format!("MatMulQ4: scales must be floating point and zero points u4, got {} and {}", s.dtype, z.dtype));
    }
    Ok(vec![out])
}

/// Rows of `a` (every axis but the last) and its last dim.
fn rows(a: &Tensor) -> Result<(usize, usize), OpError> {
    let k = *a.dims().last().ok_or_else(|| OpError::Invalid("the activation must have rank >= 1".into()))?;
    Ok((a.numel().checked_div(k).unwrap_or(0), k))
}

fn output(a: &Tensor, n: usize, y: Vec<f32>) -> Result<Tensor, OpError> {
    let mut dims = a.dims().to_vec();
    *dims.last_mut().expect("rank >= 1") = n;
    let t = Tensor::new(dims, Data::F32(y)).map_err(|e| OpError::Internal(e.to_string()))?;
    Ok(t.cast(a.dtype()))
}

/// Symmetric int8 quantization of one row: its scale and values.
pub fn quantize_row_i8(row: &[f32]) -> (f32, Vec<i32>) {
    let max = row.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    (scale, row.iter().map(|v| (v / scale).round_ties_even().clamp(-127.0, 127.0) as i32).collect())
}

pub(crate) fn eval_q8(ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let (a, b, s) = (req(ins, 0)?, req(ins, 1)?, req(ins, 2)?);
    let (m, k) = rows(a)?;
    let Data::I8(w) = b.data() else { return invalid("MatMulQ8's weight must be i8") };
    let n = b.dims()[1];
    let ws: Vec<f32> = s.to_f64().iter().map(|&v| v as f32).collect();
    let av: Vec<f32> = a.to_f64().iter().map(|&v| v as f32).collect();
    let mut y = vec![0f32; m * n];
    for r in 0..m {
        let (sa, q) = quantize_row_i8(&av[r * k..(r + 1) * k]);
        let mut acc = vec![0i32; n];
        for (kk, &qa) in q.iter().enumerate() {
            if qa != 0 {
                for (c, acc) in acc.iter_mut().enumerate() {
                    *acc += qa * w[kk * n + c] as i32;
                }
            }
        }
        for c in 0..n {
            y[r * n + c] = acc[c] as f32 * sa * ws[c];
        }
    }
    Ok(vec![output(a, n, y)?])
}

/// The f32 weight `[K, N]` a MatMulQ4 multiplies by.
pub fn dequantize_q4(group_size: usize, b: &Tensor, scales: &Tensor, zeros: &Tensor) -> Result<Vec<f32>, OpError> {
    let (Data::U4(q), Data::U4(z)) = (b.data(), zeros.data()) else { return invalid("MatMulQ4's weight and zero points must be u4") };
    let (k, n) = (b.dims()[0], b.dims()[1]);
    let s = scales.to_f64();
    if s.len() != k.div_ceil(group_size) * n || z.len() != s.len() {
        return invalid("MatMulQ4's scales and zero points must have one value per group and output channel");
    }
    Ok((0..k * n)
        .map(|i| {
            let (kk, c) = (i / n, i % n);
            let g = (kk / group_size) * n + c;
            (q[i] as f32 - z[g] as f32) * s[g] as f32
        })
        .collect())
}

pub(crate) fn eval_q4(group_size: i64, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let (a, b, s, z) = (req(ins, 0)?, req(ins, 1)?, req(ins, 2)?, req(ins, 3)?);
    if group_size <= 0 {
        return invalid("MatMulQ4: group_size must be positive");
    }
    let w = dequantize_q4(group_size as usize, b, s, z)?;
    let (m, k) = rows(a)?;
    let n = b.dims()[1];
    let av: Vec<f32> = a.to_f64().iter().map(|&v| v as f32).collect();
    let mut y = vec![0f32; m * n];
    for r in 0..m {
        for kk in 0..k {
            let x = av[r * k + kk];
            if x != 0.0 {
                for c in 0..n {
                    y[r * n + c] += x * w[kk * n + c];
                }
            }
        }
    }
    Ok(vec![output(a, n, y)?])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(dims: Vec<usize>, d: Data) -> Tensor {
        Tensor::new(dims, d).expect("dims")
    }

    /// Per token: a row of A is scaled by its own max |a| / 127 (a row of zeros by 1), so a
    /// row whose values are multiples of its step is exact, whatever the other rows hold.
    #[test]
    fn q8_quantizes_each_row_with_its_own_scale() {
        let a = t(vec![2, 3], Data::F32(vec![127.0, -63.5, 0.0, 0.0, 0.0, 0.0]));
        let b = t(vec![3, 2], Data::I8(vec![1, 2, 3, 4, 5, 6]));
        let s = t(vec![2], Data::F32(vec![0.5, 0.25]));
        let y = eval_q8(&[Some(&a), Some(&b), Some(&s)]).expect("runs")[0].to_f64();
        // Row 0: scale 1, q = [127, -64 (ties to even of -63.5), 0].
        let want0 = (127.0 * 1.0 - 64.0 * 3.0) * 0.5;
        let want1 = (127.0 * 2.0 - 64.0 * 4.0) * 0.25;
        assert_eq!(y, vec![want0, want1, 0.0, 0.0]);
    }

    #[test]
    fn q4_is_the_product_with_the_dequantized_weight() {
        // K = 3, N = 2, groups of 2: group 0 rows 0-1, group 1 row 2.
        let b = t(vec![3, 2], Data::U4(vec![0, 15, 8, 7, 3, 12]));
        let s = t(vec![2, 2], Data::F32(vec![0.5, 0.25, 2.0, 1.0]));
        let z = t(vec![2, 2], Data::U4(vec![8, 7, 1, 12]));
        let a = t(vec![1, 3], Data::F32(vec![1.0, -2.0, 0.5]));
        let y = eval_q4(2, &[Some(&a), Some(&b), Some(&s), Some(&z)]).expect("runs")[0].to_f64();
        let w =
            [[(0.0 - 8.0) * 0.5, (15.0 - 7.0) * 0.25], [(8.0 - 8.0) * 0.5, (7.0 - 7.0) * 0.25], [(3.0 - 1.0) * 2.0, (12.0 - 12.0) * 1.0]];
        let want: Vec<f64> = (0..2).map(|c| 1.0 * w[0][c] - 2.0 * w[1][c] + 0.5 * w[2][c]).collect();
        assert_eq!(y, want);
    }
}
