//! The interpreter's matrix multiply: row-major `C[m,n] += A[m,k] * B[k,n]`, blocked so that a
//! tile of C stays in L1 while rows of B stream through, parallel over row blocks with rayon.
//! Accumulation is in the element type (f32 for f32/f16/bf16 inputs, f64 for f64, i64 for ints).

use rayon::prelude::*;
use std::ops::{Add, Mul};

const ROWS: usize = 8;
const COLS: usize = 512;

pub(crate) fn gemm<T>(m: usize, n: usize, k: usize, a: &[T], b: &[T], c: &mut [T])
where
    T: Copy + Send + Sync + Add<Output = T> + Mul<Output = T> + Default,
{
    debug_assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    let work = m * n * k;
    let body = |(bi, cblock): (usize, &mut [T])| {
        let i0 = bi * ROWS;
        let rows = cblock.len() / n;
        for j0 in (0..n).step_by(COLS) {
            let j1 = (j0 + COLS).min(n);
            for kk in 0..k {
                let brow = &b[kk * n + j0..kk * n + j1];
                for r in 0..rows {
                    let av = a[(i0 + r) * k + kk];
                    let crow = &mut cblock[r * n + j0..r * n + j1];
                    for (cv, &bv) in crow.iter_mut().zip(brow) {
                        *cv = *cv + av * bv;
                    }
                }
            }
        }
    };
    if work < 1 << 16 {
        c[..m * n].chunks_mut(ROWS * n).enumerate().for_each(body);
    } else {
        c[..m * n].par_chunks_mut(ROWS * n).enumerate().for_each(body);
    }
}
