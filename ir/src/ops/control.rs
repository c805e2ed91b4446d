//! Control flow: If and Loop. Subgraphs are closed: every outer value a branch or body uses is
//! an explicit node input (after the op's own inputs) and an explicit subgraph input.

use super::{req, DimNamer, InType, OpError, TensorType};
use crate::graph::Graph;
use crate::interp;
use crate::shape::Shape;
use crate::tensor::Tensor;

fn output_types(g: &Graph) -> Vec<TensorType> {
    g.outputs.iter().map(|&v| g.value(v).ty.clone()).collect()
}

pub(crate) fn infer_if(then_g: &Graph, else_g: &Graph, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let (t, e) = (output_types(then_g), output_types(else_g));
    if let Some(c) = req(ins, 0)?.value.and_then(|v| v.to_i64().first().copied()) {
        return Ok(if c != 0 { t } else { e });
    }
    if t.len() != e.len() {
        return Err(OpError::Invalid(format!("If branches return {} and {} values", t.len(), e.len())));
    }
    Ok(t.into_iter()
        .zip(e)
        .map(|(a, b)| {
            if a == b {
                a
            } else {
                // Branches may differ in shape; only the rank (when equal) survives.
                let rank = if a.shape.rank() == b.shape.rank() { a.shape.rank() } else { 0 };
                TensorType::new(a.dtype, names.shape(rank))
            }
        })
        .collect())
}

pub(crate) fn eval_if(then_g: &Graph, else_g: &Graph, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let cond = req(ins, 0)?.to_i64().first().copied().unwrap_or(0) != 0;
    let g = if cond { then_g } else { else_g };
    // Captures follow the condition; each branch declares exactly the ones it uses, by name.
    let captures: Vec<&Tensor> = ins[1..].iter().flatten().copied().collect();
    let args = select_captures(g, then_g, else_g, &captures)?;
    interp::run(g, args).map_err(|e| OpError::Invalid(format!("in If branch: {e}")))
}

/// The If node's capture list is the union of both branches' inputs (then-branch first); pick
/// the ones `g` declares.
fn select_captures(g: &Graph, then_g: &Graph, else_g: &Graph, caps: &[&Tensor]) -> Result<Vec<Tensor>, OpError> {
    let mut union: Vec<&str> = then_g.inputs.iter().map(|&v| then_g.value(v).name.as_str()).collect();
    for &v in &else_g.inputs {
        let n = else_g.value(v).name.as_str();
        if !union.contains(&n) {
            union.push(n);
        }
    }
    g.inputs
        .iter()
        .map(|&v| {
            let name = g.value(v).name.as_str();
            let pos = union.iter().position(|&u| u == name).ok_or_else(|| OpError::Invalid(format!("If: capture {name} missing")))?;
            caps.get(pos).map(|t| (*t).clone()).ok_or(OpError::MissingInput { index: pos + 1 })
        })
        .collect()
}

pub(crate) fn infer_loop(
    body: &Graph,
    num_carried: i64,
    n_out: usize,
    ins: &[Option<InType>],
    names: &mut DimNamer,
) -> Result<Vec<TensorType>, OpError> {
    let k = num_carried as usize;
    let outs = output_types(body);
    if outs.len() < 1 + k {
        return Err(OpError::Invalid("Loop body returns fewer values than it carries".into()));
    }
    let mut res = Vec::with_capacity(n_out);
    for i in 0..k {
        let init = req(ins, 2 + i)?;
        let b = &outs[1 + i];
        res.push(if b.shape == *init.shape { b.clone() } else { TensorType::new(init.dtype, names.shape(init.shape.rank())) });
    }
    for scan in &outs[1 + k..] {
        let mut dims = vec![names.fresh()];
        dims.extend(scan.shape.0.iter().cloned());
        res.push(TensorType::new(scan.dtype, Shape(dims)));
    }
    res.truncate(n_out);
    Ok(res)
}

pub(crate) fn eval_loop(body: &Graph, num_carried: i64, ins: &[Option<&Tensor>], n_out: usize) -> Result<Vec<Tensor>, OpError> {
    let k = num_carried as usize;
    let max_trip = ins.first().copied().flatten().map(|t| t.to_i64()[0]);
    let mut cond = ins.get(1).copied().flatten().is_none_or(|t| t.to_i64()[0] != 0);
    let mut carried: Vec<Tensor> = (0..k).map(|i| req(ins, 2 + i).map(|t| (*t).clone())).collect::<Result<_, _>>()?;
    let captures: Vec<Tensor> = ins[2 + k..].iter().flatten().map(|t| (*t).clone()).collect();
    let n_scan = body.outputs.len() - 1 - k;
    let mut scans: Vec<Vec<Tensor>> = vec![vec![]; n_scan];
    let mut i = 0i64;
    while cond && max_trip.is_none_or(|m| i < m) {
        let mut args = vec![
            Tensor::scalar_i64(i),
            Tensor::new(vec![], crate::tensor::Data::Bool(vec![cond])).map_err(|e| OpError::Invalid(e.to_string()))?,
        ];
        args.extend(carried.iter().cloned());
        args.extend(captures.iter().cloned());
        let mut out = interp::run(body, args).map_err(|e| OpError::Invalid(format!("in Loop body: {e}")))?;
        let rest = out.split_off(1);
        cond = out[0].to_i64()[0] != 0;
        let (c, s) = rest.split_at(k);
        carried = c.to_vec();
        for (acc, t) in scans.iter_mut().zip(s) {
            acc.push(t.clone());
        }
        i += 1;
        if i > 1 << 24 {
            return Err(OpError::Invalid("Loop ran more than 2^24 iterations".into()));
        }
    }
    let mut res = carried;
    for (j, acc) in scans.into_iter().enumerate() {
        if acc.is_empty() {
            let ty = &body.value(body.outputs[1 + k + j]).ty;
            let mut d = vec![0];
            d.extend(ty.shape.as_fixed().unwrap_or_default());
            res.push(Tensor::zeros(ty.dtype, d));
            continue;
        }
        let parts: Vec<Tensor> = acc
            .iter()
            .map(|t| {
                let mut d = vec![1];
                d.extend(t.dims());
                t.reshaped(d)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        res.push(super::data_movement::eval_concat(0, &parts.iter().map(Some).collect::<Vec<_>>())?);
    }
    res.truncate(n_out);
    Ok(res)
}
