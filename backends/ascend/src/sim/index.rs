//! Ops driven by indices, as CANN documents them: ArgMaxV2/ArgMin, ReverseV2D, OneHot,
//! GatherElements, GatherNd, ScatterElements, TensorScatterUpdate/Add/Max/Min, TopKV2, and NLLLoss (a
//! gather of each row's target class). Indices outside their axis are errors: the lowering
//! wraps ONNX's negative indices before they reach these ops.

use super::{OpCx, SimError, Value};
use kiln_ir::DType;

pub(crate) fn eval(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    match cx.op.r#type.as_str() {
        "NLLLoss" => nll_loss(cx),
        "ArgMaxV2" => Ok(vec![arg(cx, true)?]),
        "ArgMin" => Ok(vec![arg(cx, false)?]),
        "ReverseV2D" => Ok(vec![reverse(cx)?]),
        "OneHot" => Ok(vec![one_hot(cx)?]),
        "GatherElements" => Ok(vec![gather_elements(cx)?]),
        "GatherNd" => Ok(vec![gather_nd(cx)?]),
        "ScatterElements" => Ok(vec![scatter_elements(cx)?]),
        t @ ("TensorScatterUpdate" | "TensorScatterAdd" | "TensorScatterMax" | "TensorScatterMin") => Ok(vec![tensor_scatter(cx, t)?]),
        "TopKV2" => top_k(cx),
        t => cx.err(format!("{t} is not an op of index.rs")),
    }
}

/// NLLLoss (PyTorch's): x `[N, C]`, target `[N]`, optional weight `[C]`. Row i's loss is
/// `-weight[t]·x[i, t]`, 0 where t is `ignore_index`; y is the losses (`[N]`, "none"), their sum
/// or their sum over the weights taken (`[1]`); total_weight is that weight sum (`[1]`).
fn nll_loss(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    let (x, t) = (cx.input(0)?, cx.input(1)?);
    let [n, c] = x.dims[..] else { return cx.err(format!("x is {:?}: simulated as [N, C]", x.dims)) };
    if t.dims != [n] {
        return cx.err(format!("target {:?} for x {:?}", t.dims, x.dims));
    }
    let w = cx.opt(2);
    if w.is_some_and(|w| w.dims != [c] || w.dtype != x.dtype) {
        return cx.err(format!("weight {:?} for {c} classes", w.map(|w| &w.dims)));
    }
    let ignore = cx.int("ignore_index")?;
    let (mut losses, mut total) = (vec![0.0; n], 0.0);
    for (i, l) in losses.iter_mut().enumerate() {
        let ti = t.data[i] as i64;
        if ti == ignore {
            continue;
        }
        if !(0..c as i64).contains(&ti) {
            return cx.err(format!("target {ti} of row {i} is outside [0, {c})"));
        }
        let wi = w.map_or(1.0, |w| w.data[ti as usize]);
        *l = -wi * x.data[i * c + ti as usize];
        total += wi;
    }
    let sum: f64 = losses.iter().sum();
    let y = match cx.str("reduction")?.as_str() {
        "none" => Value::new(x.dtype, vec![n], losses),
        "sum" => Value::new(x.dtype, vec![1], vec![sum]),
        "mean" => Value::new(x.dtype, vec![1], vec![sum / total]),
        r => return cx.err(format!("reduction \"{r}\"")),
    };
    Ok(vec![y, Value::new(x.dtype, vec![1], vec![total])])
}

/// `(outer, n, inner)` of `dims` around axis `a`.
fn split_at(dims: &[usize], a: usize) -> (usize, usize, usize) {
    (dims[..a].iter().product(), dims[a], dims[a + 1..].iter().product())
}

/// An index operand's value checked to lie in `[0, n)` (CANN documents no wrapping).
fn checked(cx: &OpCx, v: f64, n: usize, what: &str) -> Result<usize, SimError> {
    let i = v as i64;
    if !(0..n as i64).contains(&i) {
        return cx.err(format!("{what} {i} is outside [0, {n})"));
    }
    Ok(i as usize)
}

/// The one axis of an int input (`dimension`, `axis`), normalized.
fn axis_input(cx: &OpCx, i: usize, rank: usize) -> Result<usize, SimError> {
    let v = cx.input(i)?;
    let [a] = v.data[..] else { return cx.err(format!("input {i} holds {} values, not one axis", v.data.len())) };
    super::ops::axis(a as i64, rank).map_or_else(|| cx.err(format!("axis {a} of rank {rank}")), Ok)
}

/// ArgMaxV2/ArgMin (x, dimension): the first index of the extreme along the axis, which is
/// removed; `dtype` int32 or int64.
fn arg(cx: &OpCx, max: bool) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    let a = axis_input(cx, 1, x.dims.len())?;
    let dt = cx.dtype("dtype")?;
    if !matches!(dt, DType::I32 | DType::I64) {
        return cx.err(format!("dtype {dt}: int32 or int64"));
    }
    let (outer, n, inner) = split_at(&x.dims, a);
    let mut y = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let at = |j: usize| x.data[(o * n + j) * inner + i];
            let mut best = 0;
            for j in 1..n {
                if (max && at(j) > at(best)) || (!max && at(j) < at(best)) {
                    best = j;
                }
            }
            y.push(best as f64);
        }
    }
    let mut dims = x.dims.clone();
    dims.remove(a);
    Ok(Value::new(dt, dims, y))
}

/// ReverseV2D: `x` reversed along each axis of `axis`.
fn reverse(cx: &OpCx) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    let mut y = x.clone();
    for a in cx.ints("axis")? {
        let Some(a) = super::ops::axis(a, x.dims.len()) else { return cx.err(format!("axis {a}")) };
        let (outer, n, inner) = split_at(&x.dims, a);
        let src = y.data.clone();
        for o in 0..outer {
            for j in 0..n {
                for i in 0..inner {
                    y.data[(o * n + j) * inner + i] = src[(o * n + (n - 1 - j)) * inner + i];
                }
            }
        }
    }
    Ok(y)
}

/// OneHot (x, depth, on_value, off_value; axis): on where the index equals the position along
/// the new axis, off elsewhere (an index outside `[0, depth)` gives a row of off).
fn one_hot(cx: &OpCx) -> Result<Value, SimError> {
    let (x, depth, on, off) = (cx.input(0)?, cx.input(1)?, cx.input(2)?, cx.input(3)?);
    if !matches!(x.dtype, DType::I32 | DType::U8 | DType::I64) || depth.data.len() != 1 || on.data.len() != 1 || off.data.len() != 1 {
        return cx.err("x must be int32/uint8/int64 and depth, on_value and off_value scalars");
    }
    let d = depth.data[0] as usize;
    let rank = x.dims.len() + 1;
    let a = cx.int("axis")?;
    let a = if a == -1 { rank - 1 } else { super::ops::axis(a, rank).map_or_else(|| cx.err(format!("axis {a}")), Ok)? };
    let outer: usize = x.dims[..a].iter().product();
    let inner: usize = x.dims[a..].iter().product();
    let mut y = vec![off.data[0]; outer * d * inner];
    for o in 0..outer {
        for i in 0..inner {
            let h = x.data[o * inner + i];
            if h >= 0.0 && (h as usize) < d {
                y[(o * d + h as usize) * inner + i] = on.data[0];
            }
        }
    }
    let mut dims = x.dims.clone();
    dims.insert(a, d);
    Ok(Value::new(on.dtype, dims, y))
}

/// The coordinates of flat position `f` in `dims`.
pub(crate) fn coords(mut f: usize, dims: &[usize]) -> Vec<usize> {
    let mut c = vec![0; dims.len()];
    for (k, &d) in dims.iter().enumerate().rev() {
        c[k] = f % d.max(1);
        f /= d.max(1);
    }
    c
}

pub(crate) fn flat(c: &[usize], dims: &[usize]) -> usize {
    c.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// GatherElements (x, index; dim): y[c] = x[c with c[dim] = index[c]].
fn gather_elements(cx: &OpCx) -> Result<Value, SimError> {
    let (x, idx) = (cx.input(0)?, cx.input(1)?);
    let Some(a) = super::ops::axis(cx.int("dim")?, x.dims.len()) else { return cx.err("dim out of range") };
    if idx.dims.len() != x.dims.len() {
        return cx.err(format!("index {:?} and x {:?} differ in rank", idx.dims, x.dims));
    }
    let mut y = Vec::with_capacity(idx.data.len());
    for (f, &v) in idx.data.iter().enumerate() {
        let mut c = coords(f, &idx.dims);
        c[a] = checked(cx, v, x.dims[a], "index")?;
        if c.iter().zip(&x.dims).any(|(&i, &d)| i >= d) {
            return cx.err(format!("index shape {:?} exceeds x {:?}", idx.dims, x.dims));
        }
        y.push(x.data[flat(&c, &x.dims)]);
    }
    Ok(Value::new(x.dtype, idx.dims.clone(), y))
}

/// For GatherNd and the TensorScatter ops: each index tuple's flat offset into `x` and the
/// size of the slice it names.
fn nd_offsets(cx: &OpCx, x: &Value, idx: &Value) -> Result<(Vec<usize>, usize), SimError> {
    let Some(&k) = idx.dims.last() else { return cx.err("indices of rank 0") };
    if k > x.dims.len() {
        return cx.err(format!("index tuples of {k} into rank {}", x.dims.len()));
    }
    let slice: usize = x.dims[k..].iter().product();
    let mut offs = vec![];
    for t in idx.data.chunks(k.max(1)) {
        let mut c = vec![];
        for (j, &v) in t.iter().enumerate().take(k) {
            c.push(checked(cx, v, x.dims[j], "index")?);
        }
        offs.push(flat(&c, &x.dims[..k]) * slice);
    }
    if k == 0 {
        offs = vec![0; idx.data.len().max(1)];
    }
    Ok((offs, slice))
}

fn gather_nd(cx: &OpCx) -> Result<Value, SimError> {
    let (x, idx) = (cx.input(0)?, cx.input(1)?);
    let (offs, slice) = nd_offsets(cx, x, idx)?;
    let k = idx.dims.last().copied().unwrap_or(0);
    let y = offs.iter().flat_map(|&o| x.data[o..o + slice].iter().copied()).collect();
    let dims = idx.dims[..idx.dims.len() - 1].iter().chain(&x.dims[k..]).copied().collect();
    Ok(Value::new(x.dtype, dims, y))
}

/// TensorScatterUpdate/Add/Max/Min (x or input, indices, updates): a copy of x with each
/// indexed slice replaced by its update, increased by it, or the larger or smaller of the two,
/// in index order.
fn tensor_scatter(cx: &OpCx, ty: &str) -> Result<Value, SimError> {
    let (x, idx, upd) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let (offs, slice) = nd_offsets(cx, x, idx)?;
    if upd.data.len() != offs.len() * slice {
        return cx.err(format!("updates {:?} for {} slices of {slice}", upd.dims, offs.len()));
    }
    let mut y = x.clone();
    for (u, &o) in offs.iter().enumerate() {
        for j in 0..slice {
            let v = upd.data[u * slice + j];
            let old = y.data[o + j];
            y.data[o + j] = match ty {
                "TensorScatterAdd" => old + v,
                "TensorScatterMax" => old.max(v),
                "TensorScatterMin" => old.min(v),
                _ => v,
            };
        }
    }
    Ok(y)
}

/// ScatterElements (data, indices, updates; axis, reduction none/add/mul).
fn scatter_elements(cx: &OpCx) -> Result<Value, SimError> {
    let (x, idx, upd) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let Some(a) = super::ops::axis(cx.int("axis")?, x.dims.len()) else { return cx.err("axis out of range") };
    if idx.dims != upd.dims || idx.dims.len() != x.dims.len() {
        return cx.err(format!("indices {:?}, updates {:?}, data {:?}", idx.dims, upd.dims, x.dims));
    }
    let red = cx.str("reduction")?;
    let mut y = x.clone();
    for (f, &v) in idx.data.iter().enumerate() {
        let mut c = coords(f, &idx.dims);
        c[a] = checked(cx, v, x.dims[a], "index")?;
        let o = flat(&c, &x.dims);
        let u = upd.data[f];
        y.data[o] = match red.as_str() {
            "none" => u,
            "add" => y.data[o] + u,
            "mul" => y.data[o] * u,
            r => return cx.err(format!("reduction \"{r}\"")),
        };
    }
    Ok(y)
}

/// TopKV2 (x, k; sorted, dim -1, largest, indices_dtype): the k largest (smallest) along the
/// last axis, in order, equal values by lower index first.
fn top_k(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    let (x, k) = (cx.input(0)?, cx.input(1)?);
    if cx.int("dim")? != -1 && cx.int("dim")? != x.dims.len() as i64 - 1 {
        return cx.err("dim: TopKV2 works along the last axis");
    }
    let [k] = k.data[..] else { return cx.err("k is not a scalar") };
    let k = k as usize;
    let Some(&n) = x.dims.last() else { return cx.err("x of rank 0") };
    if k > n {
        return cx.err(format!("k = {k} of {n}"));
    }
    let largest = cx.bool("largest")?;
    let (mut vals, mut idxs) = (vec![], vec![]);
    for row in x.data.chunks(n.max(1)) {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&i, &j| {
            let o = row[i].total_cmp(&row[j]);
            (if largest { o.reverse() } else { o }).then(i.cmp(&j))
        });
        for &i in &order[..k] {
            vals.push(row[i]);
            idxs.push(i as f64);
        }
    }
    let mut dims = x.dims.clone();
    if let Some(last) = dims.last_mut() {
        *last = k;
    }
    // The indices' dtype: `indices_dtype` where the graph declares it.
    let it = cx.out_desc(1)?.0;
    if !matches!(it, DType::I32 | DType::I64) || crate::ge::dtype::from_cpp(cx.int("indices_dtype")?) != Some(it) {
        return cx.err(format!("indices declared {it}, indices_dtype {}", cx.int("indices_dtype")?));
    }
    Ok(vec![Value::new(x.dtype, dims.clone(), vals), Value::new(it, dims, idxs)])
}
