//! SmoothQuant (W8A8), AWQ and round-to-nearest (W4A16) for one group of products that read the
//! same activation.

use super::int::{fake_q4, quantize_q4, quantize_q8, tensor};
use super::{Fold, Product, QuantError, QuantOptions, QuantReport, Scheme, Stats};
use kiln_ir::{BinaryOp, Data, Graph, Node, Op, Tensor};
use std::sync::Arc;

/// AWQ's grid for α: 0, 0.05, ..., 1 (α = 0 is round to nearest).
const AWQ_GRID: usize = 20;
/// Calibration rows AWQ's error search multiplies (of the sampled ones).
const AWQ_ROWS: usize = 64;

/// Quantizes the group `list`; returns the nodes to insert (a Gemm's quantized product goes in
/// before the node, which becomes the bias's Add) by position.
pub(crate) fn apply(
    g: &mut Graph,
    opts: &QuantOptions,
    list: &[Product],
    fold: Option<Fold>,
    stats: Option<&Stats>,
    report: &mut QuantReport,
) -> Result<Vec<(usize, Node)>, QuantError> {
    let mut inserts = vec![];
    let k = list[0].w.dims()[0];
    let weights: Vec<Vec<f32>> = list.iter().map(|p| p.w.to_f64().iter().map(|&v| v as f32).collect()).collect();
    let stats = stats.filter(|s| s.absmax.len() == k && s.rows > 0);
    let (scales, how) = match (opts.scheme, fold, stats) {
        (Scheme::W8A8, Some(fold), Some(st)) if opts.smooth_alpha.is_some() => {
            let alpha = opts.smooth_alpha.unwrap_or(0.5);
            let s = smooth_scales(&st.absmax, list, &weights, alpha);
            (Some((fold, s)), format!("smoothed (SmoothQuant, α={alpha})"))
        }
        (Scheme::W8A8, None, _) if opts.smooth_alpha.is_some() => (None, "not smoothed: nothing before it takes the scales".to_string()),
        (Scheme::W8A8, ..) => (None, "not smoothed".to_string()),
        (Scheme::W4A16, Some(fold), Some(st)) => {
            let (alpha, s) = awq_scales(st, list, &weights, opts.group_size);
            (Some((fold, s)), format!("AWQ α={alpha:.2}, group {}", opts.group_size))
        }
        (Scheme::W4A16, None, Some(_)) => {
            (None, format!("round to nearest, group {} (nothing before it takes AWQ's scales)", opts.group_size))
        }
        (Scheme::W4A16, ..) => (None, format!("round to nearest, group {}", opts.group_size)),
    };
    if let Some((fold, s)) = &scales {
        fold_inverse(g, *fold, s);
    }
    for (p, w) in list.iter().zip(&weights) {
        let n = p.w.dims()[1];
        let w: Vec<f32> = match &scales {
            Some((_, s)) => w.iter().enumerate().map(|(i, &v)| v * s[i / n]).collect(),
            None => w.clone(),
        };
        let node = &g.nodes[p.node];
        let (name, wname) = (node.name.clone(), g.value(node.inputs[1].expect("a weight")).name.clone());
        let (op, params) = match opts.scheme {
            Scheme::W8A8 => {
                let (q, s) = quantize_q8(&w, k, n);
                (Op::MatMulQ8 {}, vec![("q8", tensor(vec![k, n], Data::I8(q))), ("scale", tensor(vec![n], Data::F32(s)))])
            }
            Scheme::W4A16 => {
                let (q, s, z) = quantize_q4(&w, k, n, opts.group_size);
                let groups = k.div_ceil(opts.group_size);
                let op = Op::MatMulQ4 { group_size: opts.group_size as i64 };
                (
                    op,
                    vec![
                        ("q4", tensor(vec![k, n], Data::U4(q))),
                        ("scales", tensor(vec![groups, n], Data::F16(s))),
                        ("zeros", tensor(vec![groups, n], Data::U4(z))),
                    ],
                )
            }
        };
        let mut inputs = vec![Some(p.x)];
        for (suffix, t) in params {
            inputs.push(Some(g.add_const(format!("{wname}.{suffix}"), Arc::new(t))));
        }
        match p.bias {
            None => {
                let node = &mut g.nodes[p.node];
                node.op = op;
                node.inputs = inputs;
            }
            Some((c, beta)) => {
                let c = if beta == 1.0 {
                    c
                } else {
                    let b = g.add_const(format!("{name}/beta"), Arc::new(Tensor::new(vec![], Data::F32(vec![beta])).expect("scalar")));
                    let scaled = format!("{name}/scaled_bias");
                    let v = g.add_node(scaled.clone(), Op::Binary { op: BinaryOp::Mul }, vec![Some(c), Some(b)], &[Some(scaled)])?[0];
                    let node = g.nodes.pop().expect("just added");
                    inserts.push((p.node, node));
                    v.expect("an output")
                };
                let product = format!("{name}/quantized");
                let y = g.add_node(product.clone(), op, inputs, &[Some(product)])?[0];
                inserts.push((p.node, g.nodes.pop().expect("just added")));
                let node = &mut g.nodes[p.node];
                node.op = Op::Binary { op: BinaryOp::Add };
                node.inputs = vec![y, Some(c)];
            }
        }
        report.quantized.push((name, k, n, how.clone()));
    }
    Ok(inserts)
}

/// SmoothQuant: s_j = max|X_j|^α / max|W_j|^(1-α), W_j the j-th input row of every product of
/// the group; 1 where either is zero.
fn smooth_scales(absmax: &[f32], list: &[Product], weights: &[Vec<f32>], alpha: f32) -> Vec<f32> {
    (0..absmax.len())
        .map(|j| {
            let wmax = list.iter().zip(weights).fold(0f32, |m, (p, w)| {
                let n = p.w.dims()[1];
                w[j * n..(j + 1) * n].iter().fold(m, |m, v| m.max(v.abs()))
            });
            let a = absmax[j];
            if a > 0.0 && wmax > 0.0 {
                (a.powf(alpha) / wmax.powf(1.0 - alpha)).clamp(1e-5, 1e5)
            } else {
                1.0
            }
        })
        .collect()
}

/// AWQ: for α on the grid, s = mean|X|^α (normalized by sqrt(max s · min s)); the α whose
/// group-quantized, scaled weights give the least squared error on the calibration rows.
fn awq_scales(st: &Stats, list: &[Product], weights: &[Vec<f32>], group: usize) -> (f32, Vec<f32>) {
    let k = st.absmax.len();
    let mean = st.absmean();
    let rows: Vec<&Vec<f32>> = st.sample.iter().take(AWQ_ROWS).collect();
    let exact: Vec<Vec<f32>> = list.iter().zip(weights).flat_map(|(p, w)| rows.iter().map(move |r| matvec(r, w, p.w.dims()[1]))).collect();
    let mut best = (f64::INFINITY, 0.0, vec![1.0; k]);
    for step in 0..=AWQ_GRID {
        let alpha = step as f32 / AWQ_GRID as f32;
        let mut s: Vec<f32> = mean.iter().map(|m| m.max(1e-4).powf(alpha)).collect();
        let (hi, lo) = s.iter().fold((0f32, f32::INFINITY), |(h, l), &v| (h.max(v), l.min(v)));
        let norm = (hi * lo).sqrt();
        s.iter_mut().for_each(|v| *v /= norm);
        let mut err = 0f64;
        let mut e = exact.iter();
        for (p, w) in list.iter().zip(weights) {
            let n = p.w.dims()[1];
            let scaled: Vec<f32> = w.iter().enumerate().map(|(i, &v)| v * s[i / n]).collect();
            let q = fake_q4(&scaled, k, n, group);
            for r in &rows {
                let xs: Vec<f32> = r.iter().zip(&s).map(|(x, s)| x / s).collect();
                let y = matvec(&xs, &q, n);
                let want = e.next().expect("one exact row per product and row");
                err += y.iter().zip(want).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>();
            }
        }
        if err < best.0 {
            best = (err, alpha, s);
        }
    }
    (best.1, best.2)
}

fn matvec(x: &[f32], w: &[f32], n: usize) -> Vec<f32> {
    let mut y = vec![0f32; n];
    for (j, &xv) in x.iter().enumerate() {
        if xv != 0.0 {
            for (c, yv) in y.iter_mut().enumerate() {
                *yv += xv * w[j * n + c];
            }
        }
    }
    y
}

/// Divides what produces the activation by `s` per channel (the products' weights are multiplied
/// by it), as fresh constants so that nothing else sharing the old ones changes.
fn fold_inverse(g: &mut Graph, fold: Fold, s: &[f32]) {
    let (node, inputs) = match fold {
        Fold::Mul { node, input } => (node, vec![input]),
        Fold::Norm { node } => (node, vec![1, 2]),
    };
    for i in inputs {
        let Some(Some(v)) = g.nodes[node].inputs.get(i).copied() else { continue };
        let Some(t) = g.const_value(v).cloned() else { continue };
        let k = s.len();
        let vals: Vec<f64> = t.to_f64().iter().enumerate().map(|(j, &x)| x / s[j % k] as f64).collect();
        let scaled = Tensor::new(t.dims().to_vec(), Data::from_f64(t.dtype(), &vals)).expect("same dims");
        let name = format!("{}.smoothed", g.value(v).name);
        let id = g.add_const(name, Arc::new(scaled));
        g.nodes[node].inputs[i] = Some(id);
    }
}
