//! `--precision fp16|bf16`: the model computes in a reduced float type behind an unchanged
//! interface.
//!
//! Every f32 weight becomes `to` (values beyond f16's finite range saturate to ±65504, so a
//! `finfo(float32).min` attention-mask constant stays finite and `0 * min` stays 0), every f32
//! graph input is cast to `to` on entry, every `Cast` to f32 inside the graph casts to `to`
//! instead, and every output that became `to` is cast back to f32 under its original name. The
//! graph's inputs and outputs keep their names, shapes and dtypes.
//!
//! Only storage changes here: the CUDA kernels load f16/bf16 into f32 registers, so products
//! accumulate and norms and softmax compute in f32.
//!
//! Statistics stay in f32 (as autocast keeps sums, powers and norms): an accumulating
//! reduction (sum, mean, L1/L2, log-sum-exp, product), a square (past 256 it overflows f16: a
//! VAD's STFT magnitude `sqrt(re² + im²)` of raw audio), and every elementwise or
//! data-movement op computed from statistics and constants alone. A variance exported as
//! `E[x²] − E[x]²` (JAX and TF layer norms) cancels: in f16 each term carries 2⁻¹¹ of
//! relative error, as large as the variance itself when the mean dominates (a real file-type
//! classifier's output went to cosine 0.015 in f16), and a sum of squares overflows f16 above
//! 65504. Integers cast to floats stay f32 too (f16 holds them exactly only to 2048: rotary
//! positions, int8 products' i32 accumulators), as does a dynamic quantization's scale. A
//! statistic is cast to the reduced type where a reduced-precision op reads it, and what it
//! sums is cast to f32 on entry; the exporter patterns see through these casts. Control flow
//! (If, Loop, Scan) runs its subgraphs in the model's types, between casts. A batch norm whose
//! running variance is beyond f16's range has it folded into its scale first.

use kiln_ir::ops::E8M0Rounding;
use kiln_ir::{DType, Graph, NodeError, Op, Tensor, ValueId};
use std::collections::HashMap;
use std::sync::Arc;

/// Converts `g` to compute in `to` (F16 or BF16). Returns how many values changed dtype.
pub fn convert_precision(g: &mut Graph, to: DType) -> Result<usize, PrecisionError> {
    if !matches!(to, DType::F16 | DType::BF16) {
        return Err(PrecisionError::Target(to));
    }
    let before: Vec<DType> = g.values.iter().map(|v| v.ty.dtype).collect();
    rescale_batch_norms(g, to);
    let (pinned, f32_consts) = keep_statistics(g, to)?;
    // Weights.
    let ids: Vec<ValueId> = g.consts.keys().copied().collect();
    for id in ids {
        let t = &g.consts[&id];
        if t.dtype() != DType::F32 || f32_consts.contains(&id) {
            continue;
        }
        let t = saturating_cast(t, to);
        g.values[id.0 as usize].ty.dtype = to;
        g.consts.insert(id, Arc::new(t));
    }
    // Casts to f32 inside the graph, except those of the statistics.
    for (n, _) in g.nodes.iter_mut().zip(&pinned).filter(|(_, &p)| !p) {
        if let Op::Cast { to: t @ DType::F32, .. } = &mut n.op {
            *t = to;
        }
    }
    // Inputs: cast on entry.
    let mut entry = vec![];
    let mut renamed: HashMap<ValueId, ValueId> = HashMap::new();
    for i in 0..g.inputs.len() {
        let x = g.inputs[i];
        if g.value(x).ty.dtype != DType::F32 {
            continue;
        }
        let name = g.value(x).name.clone();
        let n_before = g.nodes.len();
        let out = g.add_node(format!("{name}/to_{to}"), cast(to), vec![Some(x)], &[Some(format!("{name}.{to}"))])?;
        entry.push(g.nodes.remove(n_before));
        renamed.insert(x, out[0].ok_or(PrecisionError::Internal)?);
    }
    // Statistics read the f32 inputs themselves.
    for (n, _) in g.nodes.iter_mut().zip(&pinned).filter(|(_, &p)| !p) {
        for v in n.inputs.iter_mut().flatten() {
            if let Some(&r) = renamed.get(v) {
                *v = r;
            }
        }
    }
    g.nodes.splice(0..0, entry);
    // Ops whose float outputs are f32 whatever their inputs (a dynamic quantization's scale)
    // meet reduced-precision values downstream: cast them to `to` where they do.
    let mut casts = 0;
    while let Err(e) = g.reinfer() {
        if casts >= g.nodes.len() || !narrow_mixed_inputs(g, &e.node, to)? {
            return Err(e.into());
        }
        casts += 1;
    }
    let changed = g.values.iter().zip(&before).filter(|(v, d)| v.ty.dtype != **d).count();
    // Outputs that were f32: back to f32 under their original names. (An input returned as an
    // output is still the f32 input itself.)
    for i in 0..g.outputs.len() {
        let o = g.outputs[i];
        if g.value(o).ty.dtype != to || before[o.0 as usize] != DType::F32 {
            continue;
        }
        let name = g.value(o).name.clone();
        g.values[o.0 as usize].name = format!("{name}.{to}");
        let out = g.add_node(format!("{name}/to_f32"), cast(DType::F32), vec![Some(o)], &[Some(name)])?;
        g.outputs[i] = out[0].ok_or(PrecisionError::Internal)?;
    }
    Ok(changed)
}

/// A batch norm whose running variance is beyond f16's range (paddle's OCR detectors carry
/// variances of 1e7 to 1e8 after an unnormalized convolution) would saturate to 65504 and
/// scale by up to 40 times too much. The same function with the variance folded into the
/// scale: `scale / sqrt(var + eps)` and variance `1 - eps`, all within range, computed in f64.
fn rescale_batch_norms(g: &mut Graph, to: DType) {
    if to != DType::F16 {
        return;
    }
    for i in 0..g.nodes.len() {
        let Op::BatchNormalization { epsilon, training: false, .. } = g.nodes[i].op else { continue };
        let [_, Some(sc), Some(_), Some(_), Some(var)] = g.nodes[i].inputs[..] else { continue };
        let (Some(s), Some(v)) = (g.const_value(sc), g.const_value(var)) else { continue };
        let eps = epsilon as f64;
        let (s, v) = (s.to_f64(), v.to_f64());
        if s.len() != v.len() || !v.iter().any(|&x| x + eps > 65504.0) || eps >= 1.0 {
            continue;
        }
        let scale: Vec<f64> = s.iter().zip(&v).map(|(a, x)| a / (x + eps).sqrt()).collect();
        let unit = vec![1.0 - eps; v.len()];
        let dims = g.value(var).ty.shape.as_fixed().unwrap_or_else(|| vec![v.len()]);
        let make = |vals: &[f64]| Tensor::new(dims.clone(), kiln_ir::Data::from_f64(DType::F32, vals));
        let (Ok(scale), Ok(unit)) = (make(&scale), make(&unit)) else { continue };
        let base = g.nodes[i].name.clone();
        let sc = g.add_const(format!("{base}.scale_rescaled"), Arc::new(scale));
        let var = g.add_const(format!("{base}.var_unit"), Arc::new(unit));
        g.nodes[i].inputs[1] = Some(sc);
        g.nodes[i].inputs[4] = Some(var);
    }
}

/// Casts to `to` the f32 inputs (not constants) of the node named `name` whose float inputs
/// mix f32 and `to`. Whether there was such a node.
fn narrow_mixed_inputs(g: &mut Graph, name: &str, to: DType) -> Result<bool, PrecisionError> {
    let dtype = |g: &Graph, v: ValueId| g.value(v).ty.dtype;
    let mixed = |g: &Graph, n: &kiln_ir::Node| {
        let ins: Vec<ValueId> = n.inputs.iter().flatten().copied().collect();
        ins.iter().any(|&v| dtype(g, v) == to) && ins.iter().any(|&v| dtype(g, v) == DType::F32)
    };
    let Some(i) = g.nodes.iter().position(|n| n.name == name && mixed(g, n)) else { return Ok(false) };
    let wide: Vec<ValueId> = g.nodes[i].inputs.iter().flatten().copied().filter(|&v| dtype(g, v) == DType::F32).collect();
    for v in wide {
        let name = g.value(v).name.clone();
        let out = g.add_node(format!("{name}/to_{to}"), cast(to), vec![Some(v)], &[Some(format!("{name}.{to}"))])?;
        let c = g.nodes.pop().ok_or(PrecisionError::Internal)?;
        let narrow = out[0].ok_or(PrecisionError::Internal)?;
        g.nodes.insert(i, c);
        for x in g.nodes[i + 1].inputs.iter_mut().flatten().filter(|x| **x == v) {
            *x = narrow;
        }
    }
    Ok(true)
}

/// Reductions whose result accumulates many terms (not max or min, which pick one).
fn accumulates(op: &Op) -> bool {
    use kiln_ir::ops::ReduceKind::*;
    matches!(op, Op::Reduce { kind: Sum | Mean | SumSquare | L1 | L2 | LogSum | LogSumExp | Prod, .. })
}

/// A cast of integers to f32: f16 holds integers exactly only to 2048 and not at all past
/// 65504 (positions for a rotary table, an int8 product's i32 accumulator).
fn exact_integers(g: &Graph, n: &kiln_ir::Node) -> bool {
    matches!(n.op, Op::Cast { to: DType::F32, .. }) && n.inputs.first().copied().flatten().is_some_and(|x| !g.value(x).ty.dtype.is_float())
}

/// `Pow(a, 2)` or `Mul(a, a)`.
fn is_square(g: &Graph, n: &kiln_ir::Node) -> bool {
    use kiln_ir::BinaryOp;
    match (&n.op, n.inputs.as_slice()) {
        (Op::Binary { op: BinaryOp::Mul }, [Some(a), Some(b)]) => a == b,
        (Op::Binary { op: BinaryOp::Pow }, [_, Some(e)]) => {
            g.const_value(*e).is_some_and(|t| t.numel() == 1 && t.to_f64().first() == Some(&2.0))
        }
        _ => false,
    }
}

/// Marks the statistics (see the module comment) and rewires the graph so that they compute in
/// f32: casts to f32 where they read reduced-precision values, casts to `to` where
/// reduced-precision ops read them, and f32 copies of the constants they read. Returns, per
/// node of the rewired graph, whether it keeps f32 (its f32 casts stay), and the f32 copies.
fn keep_statistics(g: &mut Graph, to: DType) -> Result<(Vec<bool>, std::collections::HashSet<ValueId>), PrecisionError> {
    use std::collections::HashSet;
    let f32_value = |g: &Graph, v: ValueId| g.value(v).ty.dtype == DType::F32;
    let mut kept: Vec<bool> = vec![false; g.nodes.len()];
    // Values computed in f32: the statistics, and the float outputs of control flow.
    let mut stat: HashSet<ValueId> = HashSet::new();
    let mut wide: HashSet<ValueId> = HashSet::new();
    for (n, keep) in g.nodes.iter().zip(kept.iter_mut()) {
        let float_outs: Vec<ValueId> = n.outputs.iter().flatten().copied().filter(|&o| f32_value(g, o)).collect();
        if float_outs.is_empty() {
            continue;
        }
        if n.op.is_control_flow() {
            // Subgraphs keep the model's types: they run in f32 between casts.
            *keep = true;
            wide.extend(float_outs);
            continue;
        }
        let seed = accumulates(&n.op) || is_square(g, n) || exact_integers(g, n) || matches!(n.op, Op::DynamicQuantizeLinear {});
        let movable = n.op.is_elementwise()
            || n.op.is_view()
            || matches!(n.op, Op::Reduce { .. } | Op::Transpose { .. } | Op::Concat { .. } | Op::Slice {} | Op::Expand {});
        let floats: Vec<ValueId> = n.inputs.iter().flatten().copied().filter(|&v| f32_value(g, v)).collect();
        let joins = movable
            && float_outs.len() == n.outputs.iter().flatten().count()
            && floats.iter().any(|v| stat.contains(v))
            && floats.iter().all(|v| stat.contains(v) || g.consts.contains_key(v) || g.inputs.contains(v));
        if !(seed || joins) {
            continue;
        }
        *keep = true;
        stat.extend(float_outs);
    }
    wide.extend(stat.iter().copied());
    if !kept.iter().any(|&k| k) {
        return Ok((vec![false; g.nodes.len()], HashSet::new()));
    }
    // f32 copies of the constants statistics read.
    let mut copies: HashMap<ValueId, ValueId> = HashMap::new();
    for i in (0..g.nodes.len()).filter(|&i| kept[i]) {
        for k in 0..g.nodes[i].inputs.len() {
            let Some(v) = g.nodes[i].inputs[k] else { continue };
            let Some(t) = g.consts.get(&v).filter(|t| t.dtype() == DType::F32).cloned() else { continue };
            let name = format!("{}.f32", g.value(v).name);
            // Clamped to `to`'s range like every other constant: a mask's finfo(f32).min
            // times 0 or 1, cast to `to`, is then finite.
            let c = *copies.entry(v).or_insert_with(|| g.add_const(name, Arc::new(clamp_to_range(&t, to))));
            g.nodes[i].inputs[k] = Some(c);
        }
    }
    // The rewired node list: a statistic's reduced-precision inputs (not yet reduced: the
    // casts are f32 -> f32 until the conversion below) cast to f32 before it; a statistic read
    // by a reduced-precision op cast to `to` after it.
    let mut readers_outside: HashSet<ValueId> = HashSet::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if !kept[i] {
            readers_outside.extend(n.inputs.iter().flatten().copied().filter(|v| wide.contains(v)));
        }
    }
    let old = std::mem::take(&mut g.nodes);
    let mut nodes = Vec::with_capacity(old.len());
    let mut pinned = Vec::with_capacity(old.len());
    let mut widened: HashMap<ValueId, ValueId> = HashMap::new();
    let mut narrowed: HashMap<ValueId, ValueId> = HashMap::new();
    for (mut n, keep) in old.into_iter().zip(kept) {
        if keep {
            for v in n.inputs.iter_mut().flatten() {
                if wide.contains(v) || g.consts.contains_key(v) || g.inputs.contains(v) || !f32_value(g, *v) {
                    continue;
                }
                if !widened.contains_key(v) {
                    let name = g.value(*v).name.clone();
                    let out = g.add_node(format!("{name}/to_f32"), cast(DType::F32), vec![Some(*v)], &[Some(format!("{name}.f32"))])?;
                    nodes.push(g.nodes.pop().ok_or(PrecisionError::Internal)?);
                    pinned.push(true);
                    widened.insert(*v, out[0].ok_or(PrecisionError::Internal)?);
                }
                *v = widened[v];
            }
        } else {
            for v in n.inputs.iter_mut().flatten() {
                if let Some(&r) = narrowed.get(v) {
                    *v = r;
                }
            }
        }
        let outs: Vec<ValueId> = n.outputs.iter().flatten().copied().collect();
        nodes.push(n);
        pinned.push(keep);
        for o in outs.into_iter().filter(|o| keep && readers_outside.contains(o)) {
            let name = g.value(o).name.clone();
            let out = g.add_node(format!("{name}/to_{to}"), cast(to), vec![Some(o)], &[Some(format!("{name}.{to}"))])?;
            nodes.push(g.nodes.pop().ok_or(PrecisionError::Internal)?);
            pinned.push(false);
            narrowed.insert(o, out[0].ok_or(PrecisionError::Internal)?);
        }
    }
    g.nodes = nodes;
    Ok((pinned, copies.into_values().collect()))
}

fn cast(to: DType) -> Op {
    Op::Cast { to, saturate: false, round_mode: E8M0Rounding::Up }
}

/// f32 → `to`, finite values beyond the target's range clamped to its largest finite value.
fn saturating_cast(t: &Tensor, to: DType) -> Tensor {
    clamped(t, to, to)
}

/// An f32 constant with finite values clamped to `to`'s range, kept f32.
fn clamp_to_range(t: &Tensor, to: DType) -> Tensor {
    clamped(t, to, DType::F32)
}

fn clamped(t: &Tensor, range: DType, store: DType) -> Tensor {
    let max = if range == DType::F16 { 65504.0 } else { 3.3895313892515355e38 };
    let v: Vec<f64> = t.to_f64().into_iter().map(|x| if x.is_finite() { x.clamp(-max, max) } else { x }).collect();
    // The element count is unchanged, so the size always matches.
    Tensor::new(t.dims().to_vec(), kiln_ir::Data::from_f64(store, &v)).unwrap_or_else(|_| t.cast(store))
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrecisionError {
    #[error("--precision: reduced precision is f16 or bf16, not {0}")]
    Target(DType),
    #[error("the model does not type-check in reduced precision: {0}")]
    Type(#[from] NodeError),
    #[error("internal error: a cast without an output")]
    Internal,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_ir::{interp, Shape, TensorType};

    /// y = x * w + (-3.4e38 * m), z = Cast<f32>(x): interface unchanged, values close.
    fn graph() -> Graph {
        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::new(DType::F32, Shape::fixed(&[2, 3])));
        let m = g.add_input("m", TensorType::new(DType::I64, Shape::fixed(&[2, 3])));
        let w = g.add_const("w", Arc::new(Tensor::from_f32s(vec![3], vec![0.5, -2.0, 1e-3]).expect("test")));
        let big = g.add_const("big", Arc::new(Tensor::from_f32s(vec![], vec![-3.4e38]).expect("test")));
        let mul = |a| Op::Binary { op: a };
        let xw = g.add_node("xw", mul(kiln_ir::ops::BinaryOp::Mul), vec![Some(x), Some(w)], &[Some("xw".into())]).expect("test")[0];
        let mf = g.add_node("mf", cast(DType::F32), vec![Some(m)], &[Some("mf".into())]).expect("test")[0];
        let pen = g.add_node("pen", mul(kiln_ir::ops::BinaryOp::Mul), vec![mf, Some(big)], &[Some("pen".into())]).expect("test")[0];
        let y = g.add_node("y", mul(kiln_ir::ops::BinaryOp::Add), vec![xw, pen], &[Some("y".into())]).expect("test")[0];
        g.outputs = vec![y.expect("test"), x];
        g
    }

    #[test]
    fn keeps_the_interface_and_saturates_constants() {
        let g0 = graph();
        for to in [DType::F16, DType::BF16] {
            let mut g = g0.clone();
            assert!(convert_precision(&mut g, to).expect("test") > 0);
            kiln_ir::verify(&g).expect("test");
            let sig =
                |g: &Graph, ids: &[ValueId]| ids.iter().map(|&v| (g.value(v).name.clone(), g.value(v).ty.clone())).collect::<Vec<_>>();
            assert_eq!(sig(&g, &g.inputs), sig(&g0, &g0.inputs));
            assert_eq!(sig(&g, &g.outputs), sig(&g0, &g0.outputs));
            let x = Tensor::from_f32s(vec![2, 3], vec![1.0, 2.0, 3.0, -1.0, 0.25, 100.0]).expect("test");
            let m = Tensor::from_i64s(vec![2, 3], vec![0, 1, 0, 0, 0, 1]).expect("test");
            let want = interp::run(&g0, vec![x.clone(), m.clone()]).expect("test");
            let got = interp::run(&g, vec![x, m]).expect("test");
            let (w, o) = (want[0].to_f64(), got[0].to_f64());
            for (a, b) in w.iter().zip(&o) {
                if *a > -1e30 {
                    assert!((a - b).abs() <= 1e-2 * a.abs().max(1e-3), "{to}: {a} vs {b}");
                } else {
                    // Masked: finite and strongly negative, never -inf or NaN.
                    assert!(b.is_finite() && *b < -6e4, "{to}: masked value {b}");
                }
            }
            assert_eq!(want[1].to_f64(), got[1].to_f64());
        }
    }

    /// Layer norm with the variance as `E[x²] − E[x]²` (as JAX exports it) over rows of mean
    /// 100 and deviation 1: in f16, E[x²] ≈ 10001 is stored to ±4 and the variance (1) is lost;
    /// with the statistics in f32 the result is within f16's rounding of x (ulp 0.0625 at 100).
    #[test]
    fn statistics_keep_f32_so_a_variance_does_not_cancel() {
        let src = r#"graph "g" (%x: f32[4,256]) {
  %axes = const i64[1] [-1]
  %inv = const f32[] [0.00390625]
  %zero = const f32[] [0.0]
  %eps = const f32[] [1e-6]
  %s = Reduce[s](%x, %axes) {kind=sum, keepdims=true, noop_with_empty_axes=false} : f32[4,1]
  %q = Mul[q](%x, %x) : f32[4,256]
  %s2 = Reduce[s2](%q, %axes) {kind=sum, keepdims=true, noop_with_empty_axes=false} : f32[4,1]
  %m = Mul[m](%s, %inv) : f32[4,1]
  %e2 = Mul[e2](%s2, %inv) : f32[4,1]
  %m2 = Mul[m2](%m, %m) : f32[4,1]
  %v = Sub[v](%e2, %m2) : f32[4,1]
  %vm = Max[vm](%v, %zero) : f32[4,1]
  %a = Add[a](%vm, %eps) : f32[4,1]
  %r = Sqrt[r](%a) : f32[4,1]
  %rr = Reciprocal[rr](%r) : f32[4,1]
  %d = Sub[d](%x, %m) : f32[4,256]
  %y = Mul[y](%d, %rr) : f32[4,256]
  return %y
}
"#;
        let g0 = kiln_ir::text::parse(src, &Default::default()).expect("parses");
        let mut state = 12345u64;
        let x: Vec<f32> = (0..4 * 256)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                100.0 + ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.46
            })
            .collect();
        let x = Tensor::from_f32s(vec![4, 256], x).expect("test");
        let want = interp::run(&g0, vec![x.clone()]).expect("f32")[0].to_f64();
        for to in [DType::F16, DType::BF16] {
            let mut g = g0.clone();
            convert_precision(&mut g, to).expect("converts");
            kiln_ir::verify(&g).expect("well-formed");
            // The sums, their scaling and the variance's square root stay f32.
            for name in ["s", "s2", "v", "rr"] {
                let v = g.values.iter().find(|v| v.name == name).expect("value");
                assert_eq!(v.ty.dtype, DType::F32, "{to}: {name}");
            }
            let got = interp::run(&g, vec![x.clone()]).expect("reduced")[0].to_f64();
            // x itself is stored in `to`: f16 keeps 100 ± 1 to 1/16, bf16 to 1/2.
            let tol = if to == DType::F16 { 0.1 } else { 0.6 };
            let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
            assert!(worst <= tol, "{to}: normalized values off by {worst}");
        }
    }

    /// A dynamically quantized product (onnxruntime's quantize_dynamic): the i32 accumulator
    /// cast to float (up to 64 * 255 * 127 here, past f16's range) and the activation scale
    /// (f32 whatever the model's precision) stay f32 until the dequantized result meets the
    /// reduced-precision graph, which then type-checks and matches f32.
    #[test]
    fn integer_products_dequantize_in_f32() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::new(DType::F32, Shape::fixed(&[4, 64])));
        let w: Vec<f64> = (0..64 * 8).map(|i| ((i * 37) % 255) as f64 - 127.0).collect();
        let w = Tensor::new(vec![64, 8], kiln_ir::Data::from_f64(DType::I8, &w)).expect("test");
        let w = g.add_const("w", Arc::new(w));
        let ws = g.add_const("ws", Arc::new(Tensor::from_f32s(vec![], vec![0.02]).expect("test")));
        let out = |g: &mut Graph, n: &str, op: Op, ins: Vec<Option<ValueId>>, k: usize| -> Vec<Option<ValueId>> {
            let names: Vec<Option<String>> = (0..k).map(|i| Some(format!("{n}{i}"))).collect();
            g.add_node(n, op, ins, &names).expect("test")
        };
        let bin = |op| Op::Binary { op };
        let q = out(&mut g, "q", Op::DynamicQuantizeLinear {}, vec![Some(x)], 3);
        let acc = out(&mut g, "acc", Op::MatMulInteger {}, vec![q[0], Some(w), q[2]], 1)[0];
        let f = out(&mut g, "f", cast(DType::F32), vec![acc], 1)[0];
        let sc = out(&mut g, "sc", bin(kiln_ir::BinaryOp::Mul), vec![q[1], Some(ws)], 1)[0];
        let y = out(&mut g, "y", bin(kiln_ir::BinaryOp::Mul), vec![f, sc], 1)[0];
        let s = out(&mut g, "s", Op::Unary { op: kiln_ir::UnaryOp::Sigmoid }, vec![Some(x)], 1)[0];
        g.outputs = vec![y.expect("test"), s.expect("test"), f.expect("test")];
        let xin = Tensor::from_f32s(vec![4, 64], (0..256).map(|i| ((i * 13) % 97) as f32 / 10.0 - 4.0).collect()).expect("test");
        let want = interp::run(&g, vec![xin.clone()]).expect("f32");
        let accumulated = want[2].to_f64().iter().fold(0f64, |m, v| m.max(v.abs()));
        assert!(accumulated > 65504.0, "the accumulator stays in f16's range ({accumulated}): no test");
        let mut h = g.clone();
        convert_precision(&mut h, DType::F16).expect("converts");
        let got = interp::run(&h, vec![xin]).expect("f16")[0].to_f64();
        let want = want[0].to_f64();
        let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        let worst = want.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
        assert!(worst <= 1e-3 * scale, "worst {worst} of scale {scale}");
    }

    /// If runs its branches in the model's types: inputs cast to f32 before it, outputs back.
    #[test]
    fn control_flow_keeps_its_branch_types() {
        let branch = |op: kiln_ir::BinaryOp, k: f32| {
            let mut b = Graph::new("branch");
            let x = b.add_input("x", TensorType::new(DType::F32, Shape::fixed(&[4])));
            let c = b.add_const("k", Arc::new(Tensor::from_f32s(vec![], vec![k]).expect("test")));
            let y = b.add_node("y", Op::Binary { op }, vec![Some(x), Some(c)], &[Some("y".into())]).expect("test")[0];
            b.outputs = vec![y.expect("test")];
            Box::new(b)
        };
        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::new(DType::F32, Shape::fixed(&[4])));
        let c = g.add_input("c", TensorType::new(DType::Bool, Shape::fixed(&[])));
        let s = g.add_node("s", Op::Unary { op: kiln_ir::UnaryOp::Sigmoid }, vec![Some(x)], &[Some("s".into())]).expect("test")[0];
        let op = Op::If { then_branch: branch(kiln_ir::BinaryOp::Mul, 2.0), else_branch: branch(kiln_ir::BinaryOp::Add, 1.0) };
        let y = g.add_node("if", op, vec![Some(c), s], &[Some("y".into())]).expect("test")[0];
        let z = g.add_node("z", Op::Binary { op: kiln_ir::BinaryOp::Mul }, vec![y, s], &[Some("z".into())]).expect("test")[0];
        g.outputs = vec![z.expect("test")];
        let mut h = g.clone();
        convert_precision(&mut h, DType::F16).expect("converts");
        kiln_ir::verify(&h).expect("well-formed");
        let xin = Tensor::from_f32s(vec![4], vec![-1.0, 0.0, 0.5, 3.0]).expect("test");
        for cond in [true, false] {
            let cin = Tensor::new(vec![], kiln_ir::Data::from_f64(DType::Bool, &[cond as u8 as f64])).expect("test");
            let want = interp::run(&g, vec![xin.clone(), cin.clone()]).expect("f32")[0].to_f64();
            let got = interp::run(&h, vec![xin.clone(), cin]).expect("f16")[0].to_f64();
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() <= 2e-3 * a.abs().max(1.0), "cond {cond}: {a} vs {b}");
            }
        }
    }

    /// A batch norm with running variances of 1e7 and 1e8 (beyond f16's 65504) after a layer
    /// whose outputs are in the thousands: the same normalized values in f16.
    #[test]
    fn batch_norm_variances_beyond_f16_are_folded_into_the_scale() {
        let mut g = Graph::new("g");
        let x = g.add_input("x", TensorType::new(DType::F32, Shape::fixed(&[1, 2, 2, 2])));
        let c = |g: &mut Graph, n: &str, v: Vec<f32>| g.add_const(n, Arc::new(Tensor::from_f32s(vec![2], v).expect("test")));
        let (sc, b, mean, var) = (
            c(&mut g, "sc", vec![0.9, 1.1]),
            c(&mut g, "b", vec![0.1, -0.2]),
            c(&mut g, "m", vec![-500.0, 250.0]),
            c(&mut g, "v", vec![1e7, 1e8]),
        );
        let op = Op::BatchNormalization { epsilon: 1e-5, momentum: 0.9, training: false };
        let y = g.add_node("bn", op, vec![Some(x), Some(sc), Some(b), Some(mean), Some(var)], &[Some("y".into())]).expect("test")[0];
        g.outputs = vec![y.expect("test")];
        let xin = Tensor::from_f32s(vec![1, 2, 2, 2], vec![2000.0, -3000.0, 100.0, -800.0, 9000.0, -7000.0, 250.0, 12000.0]).expect("test");
        let want = interp::run(&g, vec![xin.clone()]).expect("f32")[0].to_f64();
        let mut h = g.clone();
        convert_precision(&mut h, DType::F16).expect("converts");
        let got = interp::run(&h, vec![xin]).expect("f16")[0].to_f64();
        for (a, b) in want.iter().zip(&got) {
            assert!((a - b).abs() <= 5e-3 * a.abs().max(0.1), "{a} vs {b}");
        }
    }

    /// An STFT magnitude `sqrt(re² + im²)` of values in the thousands (raw audio samples):
    /// the squares overflow f16; kept f32, the magnitude is within f16's rounding.
    #[test]
    fn squares_keep_f32_so_a_magnitude_does_not_overflow() {
        let src = r#"graph "g" (%x: f32[2,8]) {
  %two = const f32[] [2.0]
  %re = Mul[re](%x, %x) : f32[2,8]
  %h = Sigmoid[h](%x) : f32[2,8]
  %im = Pow[im](%h, %two) : f32[2,8]
  %s = Add[s](%re, %im) : f32[2,8]
  %m = Sqrt[m](%s) : f32[2,8]
  %y = Mul[y](%m, %h) : f32[2,8]
  return %y
}
"#;
        let g0 = kiln_ir::text::parse(src, &Default::default()).expect("parses");
        let x = Tensor::from_f32s(vec![2, 8], (0..16).map(|i| (i as f32 - 7.5) * 900.0).collect()).expect("test");
        let want = interp::run(&g0, vec![x.clone()]).expect("f32")[0].to_f64();
        let mut g = g0.clone();
        convert_precision(&mut g, DType::F16).expect("converts");
        let got = interp::run(&g, vec![x]).expect("f16")[0].to_f64();
        for (a, b) in want.iter().zip(&got) {
            assert!(b.is_finite() && (a - b).abs() <= 2e-3 * a.abs().max(1.0), "{a} vs {b}");
        }
    }

    #[test]
    fn rejects_a_non_reduced_target() {
        let mut g = graph();
        assert_eq!(convert_precision(&mut g, DType::F64), Err(PrecisionError::Target(DType::F64)));
    }
}
