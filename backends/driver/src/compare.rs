//! Numeric comparison of tensors with dtype-aware tolerances.

use kiln_ir::{DType, Tensor};

/// Tolerances |a - b| <= atol + rtol * |b| per dtype; integers and bools must match exactly.
pub fn tolerance(d: DType) -> (f64, f64) {
    match d {
        DType::F64 => (1e-7, 1e-5),
        DType::F32 => (1e-5, 1e-3),
        DType::F16 => (1e-3, 1e-2),
        DType::BF16 => (1e-2, 2e-2),
        _ => (0.0, 0.0),
    }
}

/// Max absolute and relative error, and cosine similarity, between two float buffers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Errors {
    pub max_abs: f64,
    pub max_rel: f64,
    pub cosine: f64,
}

pub fn errors(got: &[f64], want: &[f64]) -> Errors {
    let (mut max_abs, mut max_rel, mut dot, mut ng, mut nw) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        if g == w || (g.is_nan() && w.is_nan()) {
            continue;
        }
        let d = (g - w).abs();
        max_abs = max_abs.max(d);
        max_rel = max_rel.max(d / w.abs().max(1e-30));
        dot += g * w;
        ng += g * g;
        nw += w * w;
    }
    let cosine = if ng == 0.0 && nw == 0.0 { 1.0 } else { dot / (ng.sqrt() * nw.sqrt()).max(1e-300) };
    Errors { max_abs, max_rel, cosine }
}

/// Checks `got` against the reference `want`; `Err` says what differs.
pub fn check(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.dtype() != want.dtype() {
        return Err(format!("dtype {} != expected {}", got.dtype(), want.dtype()));
    }
    if got.dims() != want.dims() {
        return Err(format!("shape {:?} != expected {:?}", got.dims(), want.dims()));
    }
    let d = want.dtype();
    if !d.is_float() {
        let (g, w) = (got.to_i64(), want.to_i64());
        return match g.iter().zip(&w).position(|(a, b)| a != b) {
            None => Ok(()),
            Some(i) => Err(format!("element {i}: {} != expected {}", g[i], w[i])),
        };
    }
    let (atol, rtol) = tolerance(d);
    let (g, w) = (got.to_f64(), want.to_f64());
    for (i, (&a, &b)) in g.iter().zip(&w).enumerate() {
        let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
        if !ok {
            return Err(format!("element {i}: {a} != expected {b} (atol {atol}, rtol {rtol})"));
        }
    }
    Ok(())
}
