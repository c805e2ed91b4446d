//! Data movement: every op here is a copy whose source index is an affine function of the
//! destination coordinates, per axis (`src = c * mul + add`, optionally wrapped, clamped or
//! bounds-checked for padding), plus the storage-format conversions and Gather.

use super::{coords, global_x, input, output, strides, ty_in};
use crate::codegen::llvm::R;
use crate::codegen::{blocks, unsupported, CodegenError, Cx, Param, Ty};
use inkwell::IntPredicate;
use kiln_ir::ops::{norm_axis, resolve_perm, slice_params, Format, PadMode};
use kiln_ir::{DType, Node, Op};

const BLOCK: i64 = 256;

/// How one destination axis reads the source.
#[derive(Clone, Debug)]
struct Axis {
    /// The destination coordinate `c` reads source coordinate `c * mul + add` ...
    mul: i64,
    add: i64,
    /// ... taken modulo this (Tile) ...
    wrap: Option<i64>,
    /// ... and is brought into `0..len` as `Bound` says.
    check: Option<(i64, Bound)>,
    /// Source stride of this axis.
    stride: i64,
}

/// How a source coordinate outside `0..len` reads (Pad's modes).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Bound {
    /// The pad value (constant padding).
    Pad,
    /// The nearest edge element (edge).
    Clamp,
    /// Mirrored about the edge elements, which are not repeated (reflect).
    Reflect,
    /// Modulo `len` (wrap).
    Wrap,
}

/// A copy over `domain` (the destination dims or a sub-box of them).
struct Copy {
    domain: Vec<usize>,
    axes: Vec<Axis>,
    /// Destination offset = base + sum(c_d * dst_strides[d]).
    dst_base: i64,
    dst_strides: Vec<i64>,
    pad: f64,
}

fn emit_copy(cx: &mut Cx, suffix: &str, src: Param, src_dtype: DType, dst: kiln_ir::ValueId, c: Copy) -> R<()> {
    let dt = cx.ty(dst)?.dtype;
    let n: usize = c.domain.iter().product();
    if n == 0 {
        return Ok(());
    }
    let p = cx.begin(suffix, &[Param::Value(dst), src])?;
    let em = &mut cx.em;
    let i = global_x(em, BLOCK)?;
    let inb = em.icmp(IntPredicate::ULT, i, em.ix(n as i64))?;
    em.if_(inb, |em| {
        let cs = coords(em, i, &c.domain)?;
        let mut off = em.ix(0);
        let mut valid = em.i1().const_int(1, false);
        let mut dst_off = em.ix(c.dst_base);
        for (d, a) in c.axes.iter().enumerate() {
            dst_off = em.add(dst_off, em.mulk(cs[d], c.dst_strides[d])?)?;
            let mut s = em.addk(em.mulk(cs[d], a.mul)?, a.add)?;
            if let Some(w) = a.wrap {
                s = em.remk(s, w)?;
            }
            if let Some((len, bound)) = a.check {
                if bound == Bound::Pad {
                    let ok = em.in_range(s, len)?;
                    valid = em.and(valid, ok)?;
                    s = em.select(ok, s, em.ix(0))?.into_int_value();
                } else {
                    if bound == Bound::Reflect {
                        // -s below 0, 2(len-1) - s past the end.
                        let neg = em.icmp(IntPredicate::SLT, s, em.ix(0))?;
                        let mirrored = em.sub(em.ix(0), s)?;
                        s = em.select(neg, mirrored, s)?.into_int_value();
                        let past = em.icmp(IntPredicate::SGE, s, em.ix(len))?;
                        let mirrored = em.sub(em.ix(2 * (len - 1)), s)?;
                        s = em.select(past, mirrored, s)?.into_int_value();
                    } else if bound == Bound::Wrap {
                        // remk is unsigned: shift by a multiple of len past the lowest
                        // coordinate (c * 1 + add, c >= 0) first.
                        let shift = if a.add < 0 { ((-a.add) / len + 1) * len } else { 0 };
                        s = em.addk(s, shift)?;
                        s = em.remk(s, len)?;
                    }
                    // Clamped in every mode: edge padding, and reflect's pads (at most len - 1
                    // by ONNX's rule) never read outside the source even when a model breaks it.
                    let lo = em.icmp(IntPredicate::SLT, s, em.ix(0))?;
                    s = em.select(lo, em.ix(0), s)?.into_int_value();
                    s = em.min_ix(s, em.ix(len - 1))?;
                }
            }
            off = em.add(off, em.mulk(s, a.stride)?)?;
        }
        let v = em.load(src_dtype, p[1], off)?;
        let v = if c.axes.iter().any(|a| matches!(a.check, Some((_, Bound::Pad)))) {
            let pad = super::program::scalar(em, dt, c.pad)?.v;
            em.select(valid, v, pad)?
        } else {
            v
        };
        em.store(dt, p[0], dst_off, v)
    })?;
    cx.launch([blocks(n, BLOCK as usize)?, 1, 1], [BLOCK as u32, 1, 1], 0)
}

fn identity_axes(dims: &[usize]) -> Vec<Axis> {
    strides(dims).into_iter().map(|stride| Axis { mul: 1, add: 0, wrap: None, check: None, stride }).collect()
}

fn const_ints(cx: &Cx, node: &Node, i: usize) -> R<Option<Vec<i64>>> {
    match node.inputs.get(i).copied().flatten() {
        None => Ok(None),
        Some(v) => match cx.konst(v) {
            Some(t) => Ok(Some(t.to_i64())),
            None => unsupported(format!("{} with a run-time input {i} (`{}`)", node.op.kind_name(), cx.g.value(v).name)),
        },
    }
}

/// A plain copy (Dropout in inference).
pub fn lower_copy(cx: &mut Cx, node: &Node) -> R<()> {
    let (x, y) = (input(node, 0)?, output(node, 0)?);
    let t = cx.ty(x)?;
    if matches!(node.op, Op::Dropout {}) {
        // Inference: the identity. Training with a nonzero ratio drops at random, which has no
        // reference to reproduce; the mode must be known when compiling.
        let scalar = |i: usize| node.inputs.get(i).copied().flatten().map(|v| cx.konst(v).and_then(|k| k.to_f64().first().copied()));
        let (ratio, training) = (scalar(1), scalar(2));
        if matches!(training, Some(None)) || matches!(ratio, Some(None)) && training.is_some() {
            return unsupported("Dropout with a run-time training_mode or ratio");
        }
        if training.flatten().is_some_and(|t| t != 0.0) && ratio.flatten().unwrap_or(0.5) != 0.0 {
            return unsupported("Dropout with training_mode=true and a nonzero ratio (random)");
        }
    }
    let c = Copy { axes: identity_axes(&t.dims), dst_strides: strides(&t.dims), domain: t.dims.clone(), dst_base: 0, pad: 0.0 };
    emit_copy(cx, "", Param::Value(x), t.dtype, y, c)?;
    if let Some(mask) = node.outputs.get(1).copied().flatten() {
        // Nothing dropped: the mask is all true.
        let total = t.numel();
        let p = cx.begin("_mask", &[Param::Value(mask)])?;
        super::per_element(cx, total, |em, i| em.store(DType::Bool, p[0], i, em.i1().const_int(1, false).into()))?;
    }
    Ok(())
}

pub fn lower(cx: &mut Cx, node: &Node) -> R<()> {
    let x = input(node, 0)?;
    let xt = ty_in(cx, node, 0)?;
    let xs = strides(&xt.dims);
    match &node.op {
        Op::Transpose { perm } => {
            let y = output(node, 0)?;
            let yt = cx.ty(y)?;
            let perm = resolve_perm(perm, xt.dims.len()).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
            let axes = perm.iter().map(|&p| Axis { mul: 1, add: 0, wrap: None, check: None, stride: xs[p] }).collect();
            let c = Copy { axes, dst_strides: strides(&yt.dims), domain: yt.dims, dst_base: 0, pad: 0.0 };
            emit_copy(cx, "", Param::Value(x), xt.dtype, y, c)
        }
        Op::Expand {} | Op::Tile {} => {
            let y = output(node, 0)?;
            let yt = cx.ty(y)?;
            let shift = yt.dims.len() - xt.dims.len();
            let axes = (0..yt.dims.len())
                .map(|d| match d.checked_sub(shift) {
                    None => Axis { mul: 0, add: 0, wrap: None, check: None, stride: 0 },
                    Some(s) if matches!(node.op, Op::Tile {}) => {
                        Axis { mul: 1, add: 0, wrap: Some(xt.dims[s] as i64), check: None, stride: xs[s] }
                    }
                    Some(s) => Axis { mul: if xt.dims[s] == 1 { 0 } else { 1 }, add: 0, wrap: None, check: None, stride: xs[s] },
                })
                .collect();
            let c = Copy { axes, dst_strides: strides(&yt.dims), domain: yt.dims, dst_base: 0, pad: 0.0 };
            emit_copy(cx, "", Param::Value(x), xt.dtype, y, c)
        }
        Op::Slice {} => {
            let y = output(node, 0)?;
            let yt = cx.ty(y)?;
            let starts = const_ints(cx, node, 1)?.unwrap_or_default();
            let ends = const_ints(cx, node, 2)?.unwrap_or_default();
            let r = xt.dims.len();
            let axes_l = const_ints(cx, node, 3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = const_ints(cx, node, 4)?.unwrap_or_else(|| vec![1; starts.len()]);
            let mut axes = identity_axes(&xt.dims);
            for k in 0..starts.len().min(ends.len()).min(axes_l.len()).min(steps.len()) {
                let a = norm_axis(axes_l[k], r).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
                let (first, _) =
                    slice_params(xt.dims[a], starts[k], ends[k], steps[k]).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
                axes[a].mul = steps[k];
                axes[a].add = first;
            }
            let c = Copy { axes, dst_strides: strides(&yt.dims), domain: yt.dims, dst_base: 0, pad: 0.0 };
            emit_copy(cx, "", Param::Value(x), xt.dtype, y, c)
        }
        Op::Pad { mode } => {
            let y = output(node, 0)?;
            let yt = cx.ty(y)?;
            let r = xt.dims.len();
            let pads = const_ints(cx, node, 1)?.unwrap_or_default();
            let value = match node.inputs.get(2).copied().flatten() {
                None => 0.0,
                Some(v) => match cx.konst(v) {
                    Some(t) if t.numel() == 1 => t.to_f64()[0],
                    Some(_) => return unsupported("Pad with a non-scalar constant_value"),
                    None => return unsupported("Pad with a run-time constant_value"),
                },
            };
            let ax: Vec<usize> = match const_ints(cx, node, 3)? {
                Some(a) => {
                    a.iter().map(|&v| norm_axis(v, r)).collect::<Result<_, _>>().map_err(|e| CodegenError::Unsupported(e.to_string()))?
                }
                None => (0..r).collect(),
            };
            let bound = match mode {
                PadMode::Constant => Bound::Pad,
                PadMode::Edge => Bound::Clamp,
                PadMode::Reflect => Bound::Reflect,
                PadMode::Wrap => Bound::Wrap,
            };
            let mut axes = identity_axes(&xt.dims);
            for (k, &a) in ax.iter().enumerate() {
                let before = pads.get(k).copied().unwrap_or(0);
                axes[a].add = -before;
                axes[a].check = Some((xt.dims[a] as i64, bound));
            }
            let c = Copy { axes, dst_strides: strides(&yt.dims), domain: yt.dims, dst_base: 0, pad: value };
            emit_copy(cx, "", Param::Value(x), xt.dtype, y, c)
        }
        Op::Concat { axis } => {
            let y = output(node, 0)?;
            let yt = cx.ty(y)?;
            let a = norm_axis(*axis, yt.dims.len()).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
            let ys = strides(&yt.dims);
            let mut at = 0i64;
            for (k, v) in node.inputs.iter().flatten().enumerate() {
                let t = cx.ty(*v)?;
                let c =
                    Copy { axes: identity_axes(&t.dims), dst_strides: ys.clone(), domain: t.dims.clone(), dst_base: at * ys[a], pad: 0.0 };
                at += t.dims[a] as i64;
                emit_copy(cx, &format!("_{k}"), Param::Value(*v), t.dtype, y, c)?;
            }
            Ok(())
        }
        Op::Split { axis } => {
            let a = norm_axis(*axis, xt.dims.len()).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
            let mut at = 0i64;
            for (k, y) in node.outputs.iter().enumerate() {
                let Some(y) = *y else { continue };
                let yt = cx.ty(y)?;
                let mut axes = identity_axes(&xt.dims);
                axes[a].add = at;
                at += yt.dims[a] as i64;
                let c = Copy { axes, dst_strides: strides(&yt.dims), domain: yt.dims, dst_base: 0, pad: 0.0 };
                emit_copy(cx, &format!("_{k}"), Param::Value(x), xt.dtype, y, c)?;
            }
            Ok(())
        }
        Op::ToFormat { format, align } => to_format(cx, node, *format, *align, true),
        Op::FromFormat { format, align, .. } => to_format(cx, node, *format, *align, false),
        Op::Gather { axis } => gather(cx, node, *axis),
        Op::Trilu { upper } => trilu(cx, node, &xt, *upper),
        Op::ScatterElements { .. } | Op::ScatterND { .. } => super::scatter::lower(cx, node),
        Op::GatherElements { axis } => {
            let a = norm_axis(*axis, xt.dims.len()).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
            gather_elements(cx, node, &xt, a)
        }
        other => unsupported(format!("{} in the data-movement family", other.kind_name())),
    }
}

/// NCHW <-> NHWC / NC1HWC0 with zero channel padding: one thread per stored element (to) or
/// per logical element (from).
fn to_format(cx: &mut Cx, node: &Node, format: Format, align: i64, to: bool) -> R<()> {
    let (x, y) = (input(node, 0)?, output(node, 0)?);
    let (xt, yt) = (cx.ty(x)?, cx.ty(y)?);
    let (logical, stored) = if to { (xt.clone(), yt.clone()) } else { (yt.clone(), xt.clone()) };
    let [_, c, h, w] = logical.dims[..] else { return unsupported("formats of non-4-D values") };
    if format == Format::Nhwc {
        return nhwc_transpose(cx, node, &logical, &stored, to);
    }
    let total = stored.numel();
    let p = cx.begin("", &[Param::Value(y), Param::Value(x)])?;
    let em = &mut cx.em;
    let i = global_x(em, BLOCK)?;
    let inb = em.icmp(IntPredicate::ULT, i, em.ix(total as i64))?;
    let (c, h, w) = (c as i64, h as i64, w as i64);
    em.if_(inb, |em| {
        let [nn, ch, hh, ww] = super::conv::logical_coords(em, format, align, i, &stored.dims)?;
        let valid = em.icmp(IntPredicate::SLT, ch, em.ix(c))?;
        let chc = em.min_ix(ch, em.ix(c - 1))?;
        let lin = em.add(em.mulk(em.add(em.mulk(em.add(em.mulk(nn, c)?, chc)?, h)?, hh)?, w)?, ww)?;
        if to {
            let v = em.load(logical.dtype, p[1], lin)?;
            let z = super::program::scalar(em, logical.dtype, 0.0)?.v;
            let v = em.select(valid, v, z)?;
            em.store(stored.dtype, p[0], i, v)
        } else {
            em.if_(valid, |em| {
                let v = em.load(stored.dtype, p[1], i)?;
                em.store(logical.dtype, p[0], lin, v)
            })
        }
    })?;
    cx.launch([blocks(total, BLOCK as usize)?, 1, 1], [BLOCK as u32, 1, 1], 0)
}

/// NCHW <-> NHWC (channels padded with zeros) as a transpose of [N, C, HW] and [N, HW, Cp]
/// through a 32 x 32 shared-memory tile, so reads and writes are both coalesced.
fn nhwc_transpose<'c>(cx: &mut Cx<'c, '_>, node: &Node, logical: &crate::codegen::Ty, stored: &crate::codegen::Ty, to: bool) -> R<()> {
    const T: i64 = 32;
    let (x, y) = (input(node, 0)?, output(node, 0)?);
    let (n, c, hw) = (logical.dims[0], logical.dims[1] as i64, (logical.dims[2] * logical.dims[3]) as i64);
    let cp = *stored.dims.last().unwrap_or(&1) as i64;
    let p = cx.begin("_tiled", &[Param::Value(y), Param::Value(x)])?;
    let f32t = cx.em.f32t();
    let tile = cx.em.shared_array("tile", f32t.into(), (T * (T + 1)) as u32);
    let em = &mut cx.em;
    let tid = em.sreg("tid.x")?;
    let (tx, ty) = (em.remk(tid, T)?, em.divk(tid, T)?);
    let hw0 = em.mulk(em.sreg("ctaid.x")?, T)?;
    let c0 = em.mulk(em.sreg("ctaid.y")?, T)?;
    let nn = em.sreg("ctaid.z")?;
    let lin_logical = |em: &crate::codegen::llvm::Em<'c>, ch: crate::codegen::llvm::Ix<'c>, pix: crate::codegen::llvm::Ix<'c>| {
        em.add(em.mulk(em.add(em.mulk(nn, c)?, ch)?, hw)?, pix)
    };
    let (ld, sd) = (logical.dtype, stored.dtype);
    // Channel `ch` below `cn` and pixel `pix` in the image.
    let inside = |em: &crate::codegen::llvm::Em<'c>, ch, cn: i64, pix| {
        em.and(em.icmp(IntPredicate::SLT, ch, em.ix(cn))?, em.icmp(IntPredicate::SLT, pix, em.ix(hw))?)
    };
    // Tile element (row, col) is (channel, pixel) when `to`, (pixel, channel) otherwise: the
    // load walks the source's contiguous axis with tx, the store the destination's.
    for j in 0..T / 8 {
        let row = em.addk(ty, 8 * j)?;
        let v = if to {
            let (ch, pix) = (em.add(c0, row)?, em.add(hw0, tx)?);
            let ok = inside(em, ch, c, pix)?;
            let idx = lin_logical(em, em.min_ix(ch, em.ix(c - 1))?, em.min_ix(pix, em.ix(hw - 1))?)?;
            em.load_guarded(ld, p[1], ok, idx)?
        } else {
            let (pix, ch) = (em.add(hw0, row)?, em.add(c0, tx)?);
            let ok = inside(em, ch, cp, pix)?;
            let idx = em.add(em.mulk(em.add(em.mulk(nn, hw)?, pix)?, cp)?, ch)?;
            em.load_guarded(sd, p[1], ok, idx)?
        };
        em.store_shared_f32(tile, em.add(em.mulk(row, T + 1)?, tx)?, v)?;
    }
    em.barrier()?;
    for j in 0..T / 8 {
        let row = em.addk(ty, 8 * j)?;
        let v = em.load_shared_f32(tile, em.add(em.mulk(tx, T + 1)?, row)?)?;
        if to {
            let (pix, ch) = (em.add(hw0, row)?, em.add(c0, tx)?);
            let ok = inside(em, ch, cp, pix)?;
            em.if_(ok, |em| {
                let idx = em.add(em.mulk(em.add(em.mulk(nn, hw)?, pix)?, cp)?, ch)?;
                em.store(sd, p[0], idx, em.convert(v.into(), DType::F32, sd)?)
            })?;
        } else {
            let (ch, pix) = (em.add(c0, row)?, em.add(hw0, tx)?);
            let ok = inside(em, ch, c, pix)?;
            em.if_(ok, |em| {
                let idx = lin_logical(em, ch, pix)?;
                em.store(ld, p[0], idx, em.convert(v.into(), DType::F32, ld)?)
            })?;
        }
    }
    let grid = [blocks(hw as usize, T as usize)?, blocks(cp as usize, T as usize)?, n as u32];
    cx.launch(grid, [(T * 8) as u32, 1, 1], 0)
}

/// Gather along `axis`: out[pre, idx..., post] = data[pre, indices[idx...], post]. Negative
/// indices count from the end; out-of-range ones are clamped (the interpreter rejects them).
fn gather(cx: &mut Cx, node: &Node, axis: i64) -> R<()> {
    let (x, ix, y) = (input(node, 0)?, input(node, 1)?, output(node, 0)?);
    let (xt, it, yt) = (cx.ty(x)?, cx.ty(ix)?, cx.ty(y)?);
    if !matches!(it.dtype, DType::I64 | DType::I32) {
        return unsupported(format!("Gather indices of dtype {}", it.dtype));
    }
    let a = norm_axis(axis, xt.dims.len()).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
    let dim = xt.dims[a] as i64;
    let post: usize = xt.dims[a + 1..].iter().product();
    let nidx = it.numel();
    let total = yt.numel();
    let p = cx.begin("", &[Param::Value(y), Param::Value(x), Param::Value(ix)])?;
    let em = &mut cx.em;
    let i = global_x(em, BLOCK)?;
    let inb = em.icmp(IntPredicate::ULT, i, em.ix(total as i64))?;
    em.if_(inb, |em| {
        let q = em.remk(i, post as i64)?;
        let r = em.divk(i, post as i64)?;
        let k = em.remk(r, nidx as i64)?;
        let pre = em.divk(r, nidx as i64)?;
        let fixed = super::axis_index(em, it.dtype, p[2], k, dim as usize)?;
        let src = em.add(em.mulk(em.add(em.mulk(pre, dim)?, fixed)?, post as i64)?, q)?;
        let v = em.load(xt.dtype, p[1], src)?;
        em.store(yt.dtype, p[0], i, v)
    })?;
    cx.launch([blocks(total, BLOCK as usize)?, 1, 1], [BLOCK as u32, 1, 1], 0)
}

/// Trilu: elements above (`upper`) or below the k-th diagonal of the last two axes kept, the
/// rest zero; any dtype. k is compiled in when constant, else read from its input.
fn trilu(cx: &mut Cx, node: &Node, xt: &Ty, upper: bool) -> R<()> {
    let n = xt.dims.len();
    if n < 2 {
        return unsupported("Trilu on fewer than 2 axes");
    }
    let (rows, cols) = (xt.dims[n - 2] as i64, xt.dims[n - 1] as i64);
    let k_in = node.inputs.get(1).copied().flatten();
    let k_const = k_in.map(|k| cx.konst(k).map(|t| t.to_i64().first().copied().unwrap_or(0)));
    let mut params = vec![Param::Value(output(node, 0)?), Param::Value(input(node, 0)?)];
    if let (Some(k), Some(None)) = (k_in, k_const) {
        params.push(Param::Value(k));
    }
    let total = xt.numel();
    let p = cx.begin("", &params)?;
    super::per_element(cx, total, |em, t| {
        let k = match k_const {
            Some(Some(k)) => em.ix(k),
            Some(None) => em.load(DType::I64, p[2], em.ix(0))?.into_int_value(),
            None => em.ix(0),
        };
        let col = em.remk(t, cols.max(1))?;
        let row = em.remk(em.divk(t, cols.max(1))?, rows.max(1))?;
        let diff = em.sub(col, row)?;
        let keep = em.icmp(if upper { IntPredicate::SGE } else { IntPredicate::SLE }, diff, k)?;
        let v = em.load(xt.dtype, p[1], t)?;
        let out = em.select(keep, v, v.get_type().const_zero())?;
        em.store(xt.dtype, p[0], t, out)
    })
}

/// GatherElements: `y[i] = x[i with its axis coordinate replaced by indices[i]]`, negative
/// indices counted from the end; out-of-range indices (an error in the interpreter) are clamped
/// so the kernel never reads outside `x`.
fn gather_elements(cx: &mut Cx, node: &Node, xt: &Ty, axis: usize) -> R<()> {
    let it = ty_in(cx, node, 1)?;
    let params = [Param::Value(output(node, 0)?), Param::Value(input(node, 0)?), Param::Value(input(node, 1)?)];
    let xs = strides(&xt.dims);
    let total = it.numel();
    let dims = it.dims.clone();
    let n = xt.dims[axis] as i64;
    let p = cx.begin("", &params)?;
    super::per_element(cx, total, |em, t| {
        let c = coords(em, t, &dims)?;
        let j = super::axis_index(em, it.dtype, p[2], t, n as usize)?;
        let mut src = em.ix(0);
        for (d, &cd) in c.iter().enumerate() {
            let coord = if d == axis { j } else { cd };
            src = em.add(src, em.mulk(coord, xs[d])?)?;
        }
        let v = em.load(xt.dtype, p[1], src)?;
        em.store(xt.dtype, p[0], t, v)
    })
}
