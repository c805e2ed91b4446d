//! Control flow: If and Loop. Subgraphs are closed: every outer value a branch or body uses is
//! an explicit node input (after the op's own inputs) and an explicit subgraph input.

use super::{invalid, req, DimNamer, InType, OpError, TensorType};
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
    t.into_iter()
        .zip(e)
        .map(|(a, b)| {
            if a.dtype != b.dtype {
                return Err(OpError::Invalid(format!("If branches return {} and {}", a.dtype, b.dtype)));
            }
            if a.shape.rank() != b.shape.rank() {
                // The IR needs a known rank; this one depends on run-time data.
                return Err(OpError::Unsupported(format!(
                    "If branches return ranks {} and {} and the condition is not known at compile time",
                    a.shape.rank(),
                    b.shape.rank()
                )));
            }
            // Dims the branches agree on survive; the others depend on the condition.
            let dims = a.shape.0.iter().zip(&b.shape.0).map(|(x, y)| if x == y { x.clone() } else { names.fresh() }).collect();
            Ok(TensorType::new(a.dtype, Shape(dims)))
        })
        .collect()
}

/// A trap's one value: the dims it declares, a fresh symbol where one is unknown (-1).
pub(crate) fn infer_trap(dtype: crate::DType, dims: &[i64], names: &mut DimNamer) -> TensorType {
    let dims = dims.iter().map(|&d| if d >= 0 { crate::shape::Dim::Known(d as usize) } else { names.fresh() }).collect();
    TensorType::new(dtype, Shape(dims))
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
            // Zero iterations: an empty stack; dims the body leaves symbolic are 0 too.
            let mut d = vec![0];
            d.extend(ty.shape.0.iter().map(|d| d.known().unwrap_or(0)));
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

/// Scan attributes gathered from the op.
pub(crate) struct ScanSpec<'a> {
    pub body: &'a Graph,
    pub num_states: usize,
    pub num_scan_inputs: usize,
    pub input_axes: &'a [i64],
    pub input_reverse: &'a [i64],
    pub output_axes: &'a [i64],
    pub output_reverse: &'a [i64],
    /// Opset 8 form: input 0 is sequence_lens and every tensor has a leading batch axis.
    pub batched: bool,
}

pub(crate) fn infer_scan(s: &ScanSpec, n_out: usize, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let first = usize::from(s.batched);
    let n_states = s.num_states;
    let outs = output_types(s.body);
    let mut res = Vec::with_capacity(n_out);
    for i in 0..n_states.min(n_out) {
        let x = req(ins, first + i)?;
        res.push(TensorType::new(x.dtype, x.shape.clone()));
    }
    for (k, t) in outs.iter().enumerate().skip(n_states) {
        let j = k - n_states;
        let mut dims = t.shape.0.clone();
        let axis = s.output_axes.get(j).copied().unwrap_or(0);
        let at = if axis < 0 { axis + dims.len() as i64 + 1 } else { axis }.clamp(0, dims.len() as i64) as usize;
        dims.insert(at, names.fresh());
        if s.batched {
            dims.insert(0, names.fresh());
        }
        res.push(TensorType::new(t.dtype, Shape(dims)));
    }
    res.truncate(n_out);
    Ok(res)
}

pub(crate) fn eval_scan(s: &ScanSpec, ins: &[Option<&Tensor>], n_out: usize) -> Result<Vec<Tensor>, OpError> {
    use super::data_movement::{eval_concat, narrow, permute};
    let first = usize::from(s.batched);
    let n_states = s.num_states;
    if s.body.outputs.len() < n_states || ins.len() < first + n_states + s.num_scan_inputs {
        return invalid("Scan: too few inputs or body outputs for its states");
    }
    let args: Vec<Tensor> =
        ins[first..].iter().map(|t| t.map(|t| (*t).clone()).ok_or(OpError::MissingInput { index: first })).collect::<Result<_, _>>()?;
    let (states, rest) = args.split_at(n_states);
    let (scans, captures) = rest.split_at(s.num_scan_inputs.min(rest.len()));
    let run_one = |states: Vec<Tensor>, scans: Vec<Tensor>, len: Option<usize>| -> Result<(Vec<Tensor>, Vec<Tensor>), OpError> {
        let axis_of = |k: usize, t: &Tensor| super::norm_axis(s.input_axes.get(k).copied().unwrap_or(0), t.rank());
        let seq = match scans.first() {
            Some(t) => t.dims()[axis_of(0, t)?],
            None => 0,
        };
        let seq = len.map_or(seq, |l| l.min(seq));
        let mut states = states;
        let n_scan_out = s.body.outputs.len() - n_states;
        let mut collected: Vec<Vec<Tensor>> = vec![vec![]; n_scan_out];
        for step in 0..seq {
            let mut call = states.clone();
            for (k, t) in scans.iter().enumerate() {
                let a = axis_of(k, t)?;
                let i = if s.input_reverse.get(k).copied().unwrap_or(0) != 0 { seq - 1 - step } else { step };
                let slice = narrow(t, a, i, 1);
                let mut d = slice.dims().to_vec();
                d.remove(a);
                call.push(slice.reshaped(d).map_err(|e| OpError::Invalid(e.to_string()))?);
            }
            call.extend(captures.iter().cloned());
            let mut out = interp::run(s.body, call).map_err(|e| OpError::Invalid(format!("in Scan body: {e}")))?;
            let scan_out = out.split_off(n_states);
            states = out;
            for (acc, t) in collected.iter_mut().zip(scan_out) {
                acc.push(t);
            }
        }
        let mut outs = vec![];
        for (j, mut parts) in collected.into_iter().enumerate() {
            if s.output_reverse.get(j).copied().unwrap_or(0) != 0 {
                parts.reverse();
            }
            let Some(p0) = parts.first() else {
                return Err(OpError::Unsupported("Scan over an empty sequence".into()));
            };
            let r = p0.rank();
            let axis = s.output_axes.get(j).copied().unwrap_or(0);
            let at = super::norm_axis(axis, r + 1)?;
            let stacked: Vec<Tensor> = parts
                .iter()
                .map(|t| {
                    let mut d = t.dims().to_vec();
                    d.insert(0, 1);
                    t.reshaped(d)
                })
                .collect::<Result<_, _>>()
                .map_err(|e| OpError::Invalid(e.to_string()))?;
            let cat = eval_concat(0, &stacked.iter().map(Some).collect::<Vec<_>>())?;
            let mut perm: Vec<usize> = (1..=r).collect();
            perm.insert(at, 0);
            outs.push(permute(&cat, &perm));
        }
        Ok((states, outs))
    };
    if !s.batched {
        let (mut st, sc) = run_one(states.to_vec(), scans.to_vec(), None)?;
        st.extend(sc);
        st.truncate(n_out);
        return Ok(st);
    }
    // Opset 8: run each batch row separately and restack along axis 0.
    let batch = args.first().map_or(0, |t| t.dims().first().copied().unwrap_or(0));
    let lens = ins.first().copied().flatten().map(|t| t.to_i64());
    let row = |t: &Tensor, b: usize| -> Result<Tensor, OpError> {
        let r = narrow(t, 0, b, 1);
        r.reshaped(r.dims()[1..].to_vec()).map_err(|e| OpError::Invalid(e.to_string()))
    };
    let mut per_batch: Vec<Vec<Tensor>> = vec![];
    for b in 0..batch {
        let st = states.iter().map(|t| row(t, b)).collect::<Result<Vec<_>, _>>()?;
        let sc = scans.iter().map(|t| row(t, b)).collect::<Result<Vec<_>, _>>()?;
        let len = lens.as_ref().and_then(|l| l.get(b)).map(|&l| l.max(0) as usize);
        let (mut o, so) = run_one(st, sc, len)?;
        o.extend(so);
        per_batch.push(o);
    }
    let n = per_batch.first().map_or(0, Vec::len);
    let mut res = vec![];
    for k in 0..n {
        let parts: Vec<Tensor> = per_batch
            .iter()
            .map(|o| {
                let mut d = o[k].dims().to_vec();
                d.insert(0, 1);
                o[k].reshaped(d)
            })
            .collect::<Result<_, _>>()
            .map_err(|e| OpError::Invalid(e.to_string()))?;
        res.push(eval_concat(0, &parts.iter().map(Some).collect::<Vec<_>>())?);
    }
    res.truncate(n_out);
    Ok(res)
}
