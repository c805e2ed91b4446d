//! Ops driven by indices: ArgMax/ArgMin → ArgMaxV2/ArgMin, Hardmax → ArgMaxV2 + OneHot,
//! GatherElements, GatherND → GatherNd, ScatterElements, ScatterND → TensorScatterUpdate/Add/Max/Min,
//! TopK → TopKV2 and OneHot.
//!
//! ONNX lets indices count back from the end of an axis; the CANN ops document indices in
//! `[0, n)`, so indices that are not known to be non-negative are wrapped first
//! (`i < 0 ? i + n : i`).

use super::ops::{cast, input, reshape, Outs};
use super::transformer::cast_to;
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::dtype::ge_type;
use crate::ge::Attr;
use kiln_ir::ops::ScatterReduction;
use kiln_ir::{DType, Tensor};

fn axis_of(a: i64, rank: usize) -> Result<usize, Fail> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    usize::try_from(a).ok().filter(|&a| a < rank).ok_or_else(|| Fail::Internal(format!("axis {a} of rank {rank}")))
}

fn dims_of(d: &Desc) -> Vec<usize> {
    d.dims.iter().map(|&x| x as usize).collect()
}

/// `idx` with negative entries wrapped by `sizes` (one size, or one per entry of the last
/// axis); `idx` itself when it is a constant with no negative entry.
fn wrap(cx: &mut Cx, name: &str, idx: Port, known: Option<&Tensor>, sizes: &[i64]) -> Result<Port, Fail> {
    if known.is_some_and(|t| t.to_i64().iter().all(|&i| i >= 0)) {
        return Ok(idx);
    }
    let d = cx.desc(&idx)?;
    let n = Tensor::new(vec![sizes.len()], kiln_ir::Data::from_f64(d.dtype, &sizes.iter().map(|&s| s as f64).collect::<Vec<_>>()))
        .map_err(|e| Fail::Internal(e.to_string()))?;
    let n = cx.constant(&format!("{name}/sizes"), &n)?;
    let zero = cx.scalar(&format!("{name}/zero"), d.dtype, 0.0)?;
    let b = Desc { dtype: DType::Bool, ..d.clone() };
    let neg = cx.op1(&format!("{name}/negative"), "Less", &[("x1", Some(idx.clone())), ("x2", Some(zero))], b, vec![])?;
    let up = cx.op1(&format!("{name}/wrapped"), "Add", &[("x1", Some(idx.clone())), ("x2", Some(n))], d.clone(), vec![])?;
    cx.op1(&format!("{name}/indices"), "SelectV2", &[("condition", Some(neg)), ("x1", Some(up)), ("x2", Some(idx))], d, vec![])
}

/// ArgMaxV2/ArgMin of `x` along `axis` as int64, without the axis.
fn arg(cx: &mut Cx, name: &str, ty: &str, x: Port, axis: usize) -> Result<Port, Fail> {
    let xd = cx.desc(&x)?;
    let mut dims = dims_of(&xd);
    dims.remove(axis);
    // `dimension` is a scalar (CANN documents it as int32).
    let dim = cx.scalar(&format!("{name}/dimension"), DType::I32, axis as f64)?;
    let int64 = ge_type(DType::I64).ok_or_else(|| Fail::Internal("int64".into()))?.cpp;
    cx.op1(name, ty, &[("x", Some(x)), ("dimension", Some(dim))], Desc::nd(DType::I64, &dims), vec![("dtype", Attr::Type(int64))])
}

/// ArgMax/ArgMin: the first extreme index (CANN's rule); the last one by reversing the axis
/// and counting back.
pub(super) fn arg_extreme(cx: &mut Cx, name: &str, max: bool, axis: i64, last: bool, x: Port, out: Desc) -> Result<Port, Fail> {
    let xd = cx.desc(&x)?;
    let a = axis_of(axis, xd.dims.len())?;
    let ty = if max { "ArgMaxV2" } else { "ArgMin" };
    let at = |s: &str| format!("{name}/{s}");
    let i = if last {
        let r = cx.op1(&at("reversed"), "ReverseV2D", &[("x", Some(x))], xd.clone(), vec![("axis", Attr::ListInt(vec![a as i64]))])?;
        let i = arg(cx, &at("arg"), ty, r, a)?;
        let id = cx.desc(&i)?;
        let top = cx.scalar(&at("last"), DType::I64, (xd.dims[a] - 1) as f64)?;
        cx.op1(&at("from_end"), "Sub", &[("x1", Some(top)), ("x2", Some(i))], id, vec![])?
    } else {
        arg(cx, &at("arg"), ty, x, a)?
    };
    reshape(cx, name, i, out)
}

/// OneHot of int32 `indices` (in `[0, depth)`) inserted at `axis`, as `out`.
fn one_hot(cx: &mut Cx, name: &str, indices: Port, depth: usize, on: Port, off: Port, axis: i64, out: Desc) -> Result<Port, Fail> {
    let depth_t = Tensor::new(vec![], kiln_ir::Data::I32(vec![depth as i32])).map_err(|e| Fail::Internal(e.to_string()))?;
    let depth = cx.constant(&format!("{name}/depth"), &depth_t)?;
    let inputs = [("x", Some(indices)), ("depth", Some(depth)), ("on_value", Some(on)), ("off_value", Some(off))];
    cx.op1(name, "OneHot", &inputs, out, vec![("axis", Attr::Int(axis))])
}

/// Hardmax: 1 at the first maximum along `axis`, 0 elsewhere (opset < 13: over the 2-D view
/// that flattens the dims from `axis` on).
pub(super) fn hardmax(cx: &mut Cx, name: &str, axis: i64, legacy: bool, x: Port, out: Desc) -> Result<Port, Fail> {
    let xd = cx.desc(&x)?;
    let dims = dims_of(&xd);
    let a = axis_of(axis, dims.len())?;
    let at = |s: &str| format!("{name}/{s}");
    let (x, a) = if legacy {
        let rows: usize = dims[..a].iter().product();
        let cols: usize = dims[a..].iter().product();
        (reshape(cx, &at("matrix"), x, Desc::nd(xd.dtype, &[rows, cols]))?, 1)
    } else {
        (x, a)
    };
    let view = cx.desc(&x)?;
    let i = arg(cx, &at("arg"), "ArgMaxV2", x, a)?;
    let i = cast_to(cx, &at("arg32"), i, DType::I32)?;
    let on = cx.scalar(&at("on"), xd.dtype, 1.0)?;
    let off = cx.scalar(&at("off"), xd.dtype, 0.0)?;
    let h = one_hot(cx, &at("one_hot"), i, view.dims[a] as usize, on, off, a as i64, Desc { format: "ND", ..view })?;
    reshape(cx, name, h, out)
}

pub(super) fn gather_elements(
    cx: &mut Cx,
    name: &str,
    axis: i64,
    ins: &[Option<Port>],
    known: Option<&Tensor>,
    out: Desc,
) -> Result<Port, Fail> {
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    let a = axis_of(axis, xd.dims.len())?;
    let idx = wrap(cx, name, input(ins, 1)?, known, &[xd.dims[a]])?;
    cx.op1(name, "GatherElements", &[("x", Some(x)), ("index", Some(idx))], out, vec![("dim", Attr::Int(a as i64))])
}

pub(super) fn gather_nd(
    cx: &mut Cx,
    name: &str,
    batch_dims: i64,
    ins: &[Option<Port>],
    known: Option<&Tensor>,
    out: Desc,
) -> Result<Port, Fail> {
    if batch_dims != 0 {
        return unsupported("GatherND with batch_dims: CANN's GatherNd has none");
    }
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    let idx = input(ins, 1)?;
    let k = cx.desc(&idx)?.dims.last().copied().unwrap_or(0) as usize;
    let sizes = xd.dims.get(..k).ok_or_else(|| Fail::Internal(format!("index tuples of {k} into {:?}", xd.dims)))?.to_vec();
    let idx = wrap(cx, name, idx, known, &sizes)?;
    cx.op1(name, "GatherNd", &[("x", Some(x)), ("indices", Some(idx))], out, vec![])
}

pub(super) fn scatter_elements(
    cx: &mut Cx,
    name: &str,
    axis: i64,
    reduction: ScatterReduction,
    ins: &[Option<Port>],
    known: Option<&Tensor>,
    out: Desc,
) -> Result<Port, Fail> {
    let r = match reduction {
        ScatterReduction::None => "none",
        ScatterReduction::Add => "add",
        ScatterReduction::Mul => "mul",
        ScatterReduction::Max | ScatterReduction::Min => return unsupported("ScatterElements with max/min: CANN's takes none, add or mul"),
    };
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    let a = axis_of(axis, xd.dims.len())?;
    let idx = wrap(cx, name, input(ins, 1)?, known, &[xd.dims[a]])?;
    let inputs = [("data", Some(x)), ("indices", Some(idx)), ("updates", Some(input(ins, 2)?))];
    cx.op1(name, "ScatterElements", &inputs, out, vec![("axis", Attr::Int(a as i64)), ("reduction", Attr::str(r))])
}

pub(super) fn scatter_nd(
    cx: &mut Cx,
    name: &str,
    reduction: ScatterReduction,
    ins: &[Option<Port>],
    known: Option<&Tensor>,
    out: Desc,
) -> Result<Port, Fail> {
    // TensorScatterMax/Min name their ports input/output, the others x/y.
    let (ty, port_in, port_out) = match reduction {
        ScatterReduction::None => ("TensorScatterUpdate", "x", "y"),
        ScatterReduction::Add => ("TensorScatterAdd", "x", "y"),
        ScatterReduction::Max => ("TensorScatterMax", "input", "output"),
        ScatterReduction::Min => ("TensorScatterMin", "input", "output"),
        ScatterReduction::Mul => return unsupported("ScatterND with mul: CANN's TensorScatter ops update, add, max or min"),
    };
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    let idx = input(ins, 1)?;
    let k = cx.desc(&idx)?.dims.last().copied().unwrap_or(0) as usize;
    let sizes = xd.dims.get(..k).ok_or_else(|| Fail::Internal(format!("index tuples of {k} into {:?}", xd.dims)))?.to_vec();
    let idx = wrap(cx, name, idx, known, &sizes)?;
    let made =
        cx.op(name, ty, &[(port_in, Some(x)), ("indices", Some(idx)), ("updates", Some(input(ins, 2)?))], vec![(port_out, out)], vec![])?;
    made.into_iter().next().ok_or_else(|| Fail::Internal(format!("{ty} made no output")))
}

/// TopK along `axis` → TopKV2 over the last axis (the axis moved last and back), its int32
/// indices cast to ONNX's int64.
pub(super) fn top_k(
    cx: &mut Cx,
    name: &str,
    axis: i64,
    largest: bool,
    sorted: bool,
    ins: &[Option<Port>],
    k: Option<&Tensor>,
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let Some(k) = k.and_then(|t| t.to_i64().first().copied()) else { return unsupported("TopK with k computed at run time") };
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    let rank = xd.dims.len();
    let a = axis_of(axis, rank)?;
    let at = |s: &str| format!("{name}/{s}");
    let mut perm: Vec<i64> = (0..rank as i64).collect();
    perm.swap(a, rank - 1);
    let moved = |d: &[i64]| -> Vec<usize> { perm.iter().map(|&p| d[p as usize] as usize).collect() };
    let x = if a + 1 == rank {
        x
    } else {
        let d = Desc::nd(xd.dtype, &moved(&xd.dims));
        cx.op1(&at("axis_last"), "TransposeD", &[("x", Some(x))], d, vec![("perm", Attr::ListInt(perm.clone()))])?
    };
    let mut kd = moved(&xd.dims);
    kd[rank - 1] = k as usize;
    let kt = Tensor::new(vec![], kiln_ir::Data::I32(vec![k as i32])).map_err(|e| Fail::Internal(e.to_string()))?;
    let kp = cx.constant(&at("k"), &kt)?;
    let int32 = ge_type(DType::I32).ok_or_else(|| Fail::Internal("int32".into()))?.cpp;
    let made = cx.op(
        &at("top_k"),
        "TopKV2",
        &[("x", Some(x)), ("k", Some(kp))],
        vec![("values", Desc::nd(xd.dtype, &kd)), ("indices", Desc::nd(DType::I32, &kd))],
        vec![("sorted", Attr::Bool(sorted)), ("dim", Attr::Int(-1)), ("largest", Attr::Bool(largest)), ("indices_dtype", Attr::Int(int32))],
    )?;
    let mut result = vec![];
    for (i, (p, what)) in made.into_iter().zip(["values", "indices"]).enumerate() {
        let Some(Some(want)) = outs.get(i) else {
            result.push(None);
            continue;
        };
        let p = if a + 1 == rank {
            p
        } else {
            let d = Desc { dtype: cx.desc(&p)?.dtype, ..want.clone() };
            cx.op1(&at(&format!("{what}_back")), "TransposeD", &[("x", Some(p))], d, vec![("perm", Attr::ListInt(perm.clone()))])?
        };
        let p = if i == 1 { cast(cx, &at("indices_int64"), p, want.clone())? } else { p };
        result.push(Some(p));
    }
    Ok(result)
}

/// ONNX OneHot(indices, depth, [off, on]) → OneHot with the indices wrapped and as int32.
pub(super) fn onnx_one_hot(
    cx: &mut Cx,
    name: &str,
    axis: i64,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    out: Desc,
) -> Result<Port, Fail> {
    let Some(depth) = consts.get(1).copied().flatten().and_then(|t| t.to_f64().first().copied()) else {
        return unsupported("OneHot with a depth computed at run time");
    };
    let Some(values) = consts.get(2).copied().flatten().filter(|t| t.numel() == 2) else {
        return unsupported("OneHot with values computed at run time");
    };
    let at = |s: &str| format!("{name}/{s}");
    let depth = depth as i64;
    let v = values.to_f64();
    let off = cx.scalar(&at("off"), out.dtype, v[0])?;
    let on = cx.scalar(&at("on"), out.dtype, v[1])?;
    // Float or int64 indices → int32 (a float index truncates, as ONNX's cast to int64 does).
    let idx = cast_to(cx, &at("indices32"), input(ins, 0)?, DType::I32)?;
    let idx = wrap(cx, name, idx, None, &[depth])?;
    let rank = out.dims.len();
    let a = axis_of(axis, rank)?;
    one_hot(cx, name, idx, depth as usize, on, off, a as i64, out)
}
