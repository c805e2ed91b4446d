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
    // Weights.
    let ids: Vec<ValueId> = g.consts.keys().copied().collect();
    for id in ids {
        let t = &g.consts[&id];
        if t.dtype() != DType::F32 {
            continue;
        }
        let t = saturating_cast(t, to);
        g.values[id.0 as usize].ty.dtype = to;
        g.consts.insert(id, Arc::new(t));
    }
    // Casts to f32 inside the graph.
    for n in &mut g.nodes {
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
    for n in &mut g.nodes {
        for v in n.inputs.iter_mut().flatten() {
            if let Some(&r) = renamed.get(v) {
                *v = r;
            }
        }
    }
    g.nodes.splice(0..0, entry);
    g.reinfer()?;
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

fn cast(to: DType) -> Op {
    Op::Cast { to, saturate: false, round_mode: E8M0Rounding::Up }
}

/// f32 → `to`, finite values beyond the target's range clamped to its largest finite value.
fn saturating_cast(t: &Tensor, to: DType) -> Tensor {
    let max = if to == DType::F16 { 65504.0 } else { 3.3895313892515355e38 };
    let v: Vec<f64> = t.to_f64().into_iter().map(|x| if x.is_finite() { x.clamp(-max, max) } else { x }).collect();
    // The element count is unchanged, so the size always matches.
    Tensor::new(t.dims().to_vec(), kiln_ir::Data::from_f64(to, &v)).unwrap_or_else(|_| t.cast(to))
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

    #[test]
    fn rejects_a_non_reduced_target() {
        let mut g = graph();
        assert_eq!(convert_precision(&mut g, DType::F64), Err(PrecisionError::Target(DType::F64)));
    }
}
