//! Weight quantization: int8 symmetric per output channel, 4-bit asymmetric per group.

use half::f16;
use kiln_ir::{Data, Tensor};

/// `w` [K, N] (row-major) as int8 per output channel: the values [K, N] and the scales [N]
/// (max |w[:, n]| / 127; 1 for a zero column).
pub fn quantize_q8(w: &[f32], k: usize, n: usize) -> (Vec<i8>, Vec<f32>) {
    let scales: Vec<f32> = (0..n)
        .map(|c| {
            let m = (0..k).fold(0f32, |m, r| m.max(w[r * n + c].abs()));
            if m > 0.0 {
                m / 127.0
            } else {
                1.0
            }
        })
        .collect();
    let q = (0..k * n).map(|i| (w[i] / scales[i % n]).round_ties_even().clamp(-127.0, 127.0) as i8).collect();
    (q, scales)
}

/// `w` [K, N] as 4-bit unsigned per group of `group` input channels (as AutoAWQ's
/// pseudo-quantization: scale (max - min) / 15 in fp16, zero point round(-min / scale), with the
/// range widened to hold 0), as
/// (values [K, N], scales [G, N] f16, zero points [G, N]) with G = ceil(K / group).
pub fn quantize_q4(w: &[f32], k: usize, n: usize, group: usize) -> (Vec<u8>, Vec<f16>, Vec<u8>) {
    let groups = k.div_ceil(group);
    let mut scales = vec![f16::ONE; groups * n];
    let mut zeros = vec![0u8; groups * n];
    let mut q = vec![0u8; k * n];
    for gi in 0..groups {
        let rows = gi * group..((gi + 1) * group).min(k);
        for c in 0..n {
            // The range holds 0, so that the zero point lies in [0, 15] (a group of one sign
            // would otherwise clamp it, and its values with it).
            let (mut lo, mut hi) = (0f32, 0f32);
            for r in rows.clone() {
                lo = lo.min(w[r * n + c]);
                hi = hi.max(w[r * n + c]);
            }
            let s = f16::from_f32(((hi - lo) / 15.0).max(1e-5)).to_f32();
            let z = (-lo / s).round_ties_even().clamp(0.0, 15.0);
            scales[gi * n + c] = f16::from_f32(s);
            zeros[gi * n + c] = z as u8;
            for r in rows.clone() {
                q[r * n + c] = ((w[r * n + c] / s).round_ties_even() + z).clamp(0.0, 15.0) as u8;
            }
        }
    }
    (q, scales, zeros)
}

/// What [`quantize_q4`] gives back after dequantization, [K, N].
pub(crate) fn fake_q4(w: &[f32], k: usize, n: usize, group: usize) -> Vec<f32> {
    let (q, s, z) = quantize_q4(w, k, n, group);
    (0..k * n).map(|i| (q[i] as f32 - z[(i / n / group) * n + i % n] as f32) * s[(i / n / group) * n + i % n].to_f32()).collect()
}

pub(crate) fn tensor(dims: Vec<usize>, d: Data) -> Tensor {
    Tensor::new(dims, d).expect("dims match the data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_round_trips_within_half_a_step_per_channel() {
        let (k, n) = (5, 3);
        let w: Vec<f32> = (0..k * n).map(|i| ((i * 37 % 11) as f32 - 5.0) * [0.1, 2.0, 0.0][i % n]).collect();
        let (q, s) = quantize_q8(&w, k, n);
        assert_eq!(s[2], 1.0, "a zero column keeps scale 1");
        for i in 0..k * n {
            assert!((q[i] as f32 * s[i % n] - w[i]).abs() <= s[i % n] / 2.0 + 1e-6, "{i}");
        }
        assert_eq!(q.iter().map(|v| v.unsigned_abs()).max(), Some(127), "the largest value maps to 127");
    }

    #[test]
    /// Within one step: half for rounding the value, and the zero point's rounding can push the
    /// group's extreme one step over the range, where it is clamped.
    fn q4_groups_cover_each_range_and_round_trip_within_a_step() {
        let (k, n, g) = (10, 2, 4);
        let w: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.37).sin() * if i % n == 0 { 1.0 } else { 0.01 }).collect();
        let (q, s, z) = quantize_q4(&w, k, n, g);
        assert_eq!((s.len(), z.len()), (3 * n, 3 * n), "ceil(10 / 4) groups");
        assert!(q.iter().all(|&v| v <= 15));
        let back = fake_q4(&w, k, n, g);
        for i in 0..k * n {
            let step = s[(i / n / g) * n + i % n].to_f32();
            assert!((back[i] - w[i]).abs() <= step + 1e-6, "{i}: {} vs {} (step {step})", back[i], w[i]);
        }
    }
}
