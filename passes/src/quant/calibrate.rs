//! Calibration: the model runs in the reference interpreter over the calibration inputs, and
//! every product activation gets its per-input-channel statistics.

use kiln_ir::{interp, Graph, Tensor, ValueId};
use std::collections::HashMap;

/// Rows of an activation kept for AWQ's error search (the first ones seen).
pub const SAMPLE_ROWS: usize = 256;

/// Per input channel (the activation's last axis) statistics over every row of every set.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// max |x_j|
    pub absmax: Vec<f32>,
    /// Σ |x_j| (divide by `rows` for the mean)
    pub abssum: Vec<f64>,
    pub rows: usize,
    /// Up to [`SAMPLE_ROWS`] rows, each of the channel count.
    pub sample: Vec<Vec<f32>>,
}

impl Stats {
    fn add(&mut self, t: &Tensor) {
        let Some(&k) = t.dims().last() else { return };
        if k == 0 {
            return;
        }
        if self.absmax.len() != k {
            *self = Stats { absmax: vec![0.0; k], abssum: vec![0.0; k], rows: 0, sample: vec![] };
        }
        let v = t.to_f64();
        for row in v.chunks(k) {
            for (j, &x) in row.iter().enumerate() {
                self.absmax[j] = self.absmax[j].max(x.abs() as f32);
                self.abssum[j] += x.abs();
            }
            self.rows += 1;
            if self.sample.len() < SAMPLE_ROWS {
                self.sample.push(row.iter().map(|&x| x as f32).collect());
            }
        }
    }

    /// mean |x_j|
    pub fn absmean(&self) -> Vec<f32> {
        self.abssum.iter().map(|s| (s / self.rows.max(1) as f64) as f32).collect()
    }
}

/// Statistics of the values `watch` over the calibration `sets` (inputs in graph-input order).
pub fn calibrate(g: &Graph, watch: &[ValueId], sets: &[Vec<Tensor>]) -> Result<HashMap<ValueId, Stats>, String> {
    let mut stats: HashMap<ValueId, Stats> = watch.iter().map(|&v| (v, Stats::default())).collect();
    for (i, set) in sets.iter().enumerate() {
        for (&v, t) in g.inputs.iter().zip(set) {
            if let Some(s) = stats.get_mut(&v) {
                s.add(t);
            }
        }
        interp::run_observed(g, set.clone(), &mut |n, outs| {
            for (o, t) in g.nodes[n].outputs.iter().zip(outs) {
                if let (Some(o), Some(t)) = (o, t) {
                    if let Some(s) = stats.get_mut(o) {
                        s.add(t);
                    }
                }
            }
        })
        .map_err(|e| format!("input set {i}: {e}"))?;
    }
    Ok(stats)
}
