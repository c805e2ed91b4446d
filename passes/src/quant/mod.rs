//! `--quantize`: a model's products with constant weights become quantized products
//! (`MatMulQ8`, `MatMulQ4` of `kiln_ir::ops::quant_matmul`), by the recipes of
//!
//! - **SmoothQuant** (Xiao et al., 2022) for W8A8: per input channel j,
//!   s_j = max|X_j|^α / max|W_j|^(1-α) moves the activation's outliers into the weight
//!   (X' = X / s, W' = diag(s) W, the product unchanged), then the weight is int8 per output
//!   channel and the activation int8 per token when the product runs;
//! - **AWQ** (Lin et al., 2023) for W4A16: per input channel s = mean|X|^α, α searched on a grid
//!   in [0, 1] for the least output error on the calibration rows, then the weight 4-bit per
//!   group of input channels (asymmetric, fp16 scales); without calibration data, round to
//!   nearest (α = 0).
//!
//! The scales are folded into what produces the activation, so the graph computes the same
//! function before quantization: the weight of the LayerNorm / RMSNorm (or of its decomposed
//! form's last `Mul` by a constant) whose output only products read. Where nothing can take
//! them, the product is quantized without scaling. Statistics come from running the reference
//! interpreter over the calibration inputs ([`calibrate`]).
//!
//! The e-graph then holds each quantized product beside its exact float form
//! (`rules/quant.rs`), and the target's cost model picks one; what to quantize is this pass's
//! decision. Not here yet: folding into a previous product (AWQ's v_proj → o_proj), static
//! per-tensor activation scales, Conv.

mod calibrate;
mod int;
mod recipes;

pub use calibrate::{calibrate, Stats};
pub use int::{quantize_q4, quantize_q8};

use kiln_ir::{Graph, Node, Op, Tensor, ValueId};
use std::collections::HashMap;
use std::sync::Arc;

/// What to quantize to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// int8 weights and activations (SmoothQuant).
    W8A8,
    /// 4-bit weights, 16-bit activations (AWQ; round to nearest without calibration).
    W4A16,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::W8A8 => "w8a8",
            Scheme::W4A16 => "w4a16",
        }
    }
}

#[derive(Clone, Debug)]
pub struct QuantOptions {
    pub scheme: Scheme,
    /// SmoothQuant's migration strength α (W8A8); `None`: no smoothing.
    pub smooth_alpha: Option<f32>,
    /// Input channels per 4-bit group (W4A16).
    pub group_size: usize,
    /// Products whose node or weight name contains one of these are left in floating point.
    pub exclude: Vec<String>,
}

impl QuantOptions {
    pub fn new(scheme: Scheme) -> QuantOptions {
        QuantOptions { scheme, smooth_alpha: Some(0.5), group_size: 128, exclude: vec![] }
    }
}

/// What the pass did with each product.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantReport {
    /// (node, K, N, how it was quantized: SmoothQuant's α, AWQ's α, round to nearest, unscaled).
    pub quantized: Vec<(String, usize, usize, String)>,
    /// (node, why it stays in floating point).
    pub kept: Vec<(String, String)>,
}

impl QuantReport {
    /// One line per product.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.quantized.iter().map(|(n, k, m, how)| format!("quantized {n} [{k}x{m}]: {how}")).collect();
        out.extend(self.kept.iter().map(|(n, why)| format!("kept {n} in floating point: {why}")));
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    #[error("calibration: {0}")]
    Calibration(String),
    #[error("{0}")]
    Usage(String),
    #[error("the quantized graph does not type-check: {0}")]
    Type(#[from] kiln_ir::NodeError),
}

/// A product with a constant 2-D float weight: `MatMul(x, W)` or `Gemm(x, W, bias?)` (alpha 1,
/// A not transposed), W [K, N] (transposed here for a `trans_b` Gemm).
#[derive(Clone, Debug)]
pub(crate) struct Product {
    pub node: usize,
    pub x: ValueId,
    pub w: Arc<Tensor>,
    /// A Gemm's C, added after the quantized product (times beta).
    pub bias: Option<(ValueId, f32)>,
}

/// Where a group's per-input-channel scales can be folded: the activation is `Mul(y, gamma)`
/// with gamma a constant [K] (`input` is gamma's position), or a LayerNormalization /
/// RMSNormalization over the last axis with a constant scale (and bias).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Fold {
    Mul { node: usize, input: usize },
    Norm { node: usize },
}

/// Quantizes `g`'s products per `opts`; `sets` are calibration inputs (in graph-input order),
/// needed for SmoothQuant and AWQ (without them W4A16 rounds to nearest).
pub fn quantize(g: &mut Graph, opts: &QuantOptions, sets: &[Vec<Tensor>]) -> Result<QuantReport, QuantError> {
    if opts.scheme == Scheme::W8A8 && opts.smooth_alpha.is_some() && sets.is_empty() {
        return Err(QuantError::Usage(
            "w8a8 needs calibration data (--calibration DIR): SmoothQuant's scales come from the activations' ranges (or --no-smooth)"
                .into(),
        ));
    }
    if opts.group_size == 0 {
        return Err(QuantError::Usage("--group-size must be positive".into()));
    }
    if let Some(a) = opts.smooth_alpha.filter(|a| !(0.0..=1.0).contains(a)) {
        return Err(QuantError::Usage(format!("--smooth-alpha {a} must lie in [0, 1]")));
    }
    let mut report = QuantReport::default();
    let products = find_products(g, opts, &mut report);
    // Products reading the same activation share its scales.
    let mut groups: Vec<(ValueId, Vec<Product>)> = vec![];
    for p in products {
        match groups.iter_mut().find(|(x, _)| *x == p.x) {
            Some((_, list)) => list.push(p),
            None => groups.push((p.x, vec![p])),
        }
    }
    let stats = if sets.is_empty() {
        HashMap::new()
    } else {
        let xs: Vec<ValueId> = groups.iter().map(|(x, _)| *x).collect();
        calibrate(g, &xs, sets).map_err(QuantError::Calibration)?
    };
    let mut inserts = vec![];
    for (x, list) in &groups {
        let fold = fold_site(g, *x, list);
        inserts.extend(recipes::apply(g, opts, list, fold, stats.get(x), &mut report)?);
    }
    // A Gemm's bias becomes an Add after its quantized product, which goes in before it.
    inserts.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    for (i, node) in inserts {
        g.nodes.insert(i, node);
    }
    g.reinfer()?;
    Ok(report)
}

/// Every `MatMul` with a constant 2-D float weight, less the excluded ones and the LM head (a
/// product whose result is a graph output, through shape-only ops).
fn find_products(g: &Graph, opts: &QuantOptions, report: &mut QuantReport) -> Vec<Product> {
    let mut out = vec![];
    for (i, n) in g.nodes.iter().enumerate() {
        let (x, w, bias, trans) = match (&n.op, &n.inputs[..]) {
            (Op::MatMul {}, [Some(x), Some(w)]) => (*x, *w, None, false),
            (Op::Gemm { alpha, beta, trans_a: false, trans_b }, [Some(x), Some(w), rest @ ..]) if *alpha == 1.0 => {
                (*x, *w, rest.first().copied().flatten().map(|c| (c, *beta)), *trans_b)
            }
            _ => continue,
        };
        let Some(wt) = g.const_value(w) else { continue };
        if wt.rank() != 2 || !wt.dtype().is_float() || !g.value(x).ty.dtype.is_float() {
            continue;
        }
        let wt = if trans { Arc::new(transpose(wt)) } else { wt.clone() };
        let wname = &g.value(w).name;
        if let Some(p) = opts.exclude.iter().find(|p| n.name.contains(p.as_str()) || wname.contains(p.as_str())) {
            report.kept.push((n.name.clone(), format!("excluded by --quant-exclude {p}")));
            continue;
        }
        if is_lm_head(g, n) {
            report.kept.push((n.name.clone(), "the LM head (its result is a model output) stays in 16 bits".into()));
            continue;
        }
        out.push(Product { node: i, x, w: wt, bias });
    }
    out
}

fn transpose(t: &Tensor) -> Tensor {
    let (r, c) = (t.dims()[0], t.dims()[1]);
    let v = t.to_f64();
    let out: Vec<f64> = (0..r * c).map(|i| v[(i % r) * c + i / r]).collect();
    Tensor::new(vec![c, r], kiln_ir::Data::from_f64(t.dtype(), &out)).expect("same size")
}

fn is_lm_head(g: &Graph, n: &Node) -> bool {
    let mut v = match n.outputs.first().copied().flatten() {
        Some(v) => v,
        None => return false,
    };
    for _ in 0..8 {
        if g.outputs.contains(&v) {
            return true;
        }
        let readers: Vec<&Node> = g.nodes.iter().filter(|m| m.inputs.contains(&Some(v))).collect();
        match readers[..] {
            [m] if matches!(
                m.op,
                Op::Reshape { .. } | Op::Transpose { .. } | Op::Identity {} | Op::Cast { .. } | Op::Squeeze {} | Op::Unsqueeze {}
            ) =>
            {
                match m.outputs.first().copied().flatten() {
                    Some(o) => v = o,
                    None => return false,
                }
            }
            _ => return false,
        }
    }
    false
}

/// Where the scales of the products reading `x` can go (see [`Fold`]): only when those products
/// are all that read `x` and `x` is not a model output.
fn fold_site(g: &Graph, x: ValueId, list: &[Product]) -> Option<Fold> {
    let readers = g.nodes.iter().filter(|n| n.inputs.contains(&Some(x))).count();
    if readers != list.len() || g.outputs.contains(&x) {
        return None;
    }
    let k = list[0].w.dims()[0];
    let mut x = x;
    let (mut i, mut n) = g.nodes.iter().enumerate().find(|(_, n)| n.outputs.contains(&Some(x)))?;
    // Through a reshape that keeps rows whole (GPT-2's Conv1D flattens tokens before its Gemm).
    while let (Op::Reshape { .. }, Some(Some(src))) = (&n.op, n.inputs.first()) {
        let keeps_rows = g.value(*src).ty.shape.0.last().and_then(|d| d.known()) == Some(k);
        let only_reader = g.nodes.iter().filter(|m| m.inputs.contains(&Some(*src))).count() == 1;
        if !keeps_rows || !only_reader || g.outputs.contains(src) {
            return None;
        }
        x = *src;
        (i, n) = g.nodes.iter().enumerate().find(|(_, n)| n.outputs.contains(&Some(x)))?;
    }
    let is_k = |v: &Option<ValueId>| v.and_then(|v| g.const_value(v)).is_some_and(|t| t.numel() == k && t.dims().last() == Some(&k));
    match &n.op {
        Op::Binary { op: kiln_ir::BinaryOp::Mul } => {
            let (a, b) = (is_k(&n.inputs[0]), is_k(&n.inputs[1]));
            match (a, b) {
                (false, true) => Some(Fold::Mul { node: i, input: 1 }),
                (true, false) => Some(Fold::Mul { node: i, input: 0 }),
                _ => None,
            }
        }
        Op::LayerNormalization { axis, .. } | Op::RMSNormalization { axis, .. } => {
            let rank = g.value(x).ty.shape.rank() as i64;
            let last = *axis == -1 || *axis == rank - 1;
            let bias_ok = n.inputs.get(2).copied().flatten().is_none() || is_k(&n.inputs[2]);
            (last && is_k(&n.inputs[1]) && bias_ok).then_some(Fold::Norm { node: i })
        }
        _ => None,
    }
}
