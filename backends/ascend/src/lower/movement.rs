//! Data movement beyond reshape/transpose/concat/split/slice: Tile, DepthToSpace,
//! SpaceToDepth, Pad → PadV3, CenterCropPad (StridedSliceD then PadV3), ReverseSequence,
//! Col2Im → Col2im (2-D), and EyeLike (a constant: its shape is static and its values do not
//! depend on the input's).

use super::ops::{const_ints, input, one, output, strided_slice, Outs};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::ops::{DepthToSpaceMode, PadMode};
use kiln_ir::{DType, Tensor};

fn internal(e: impl std::fmt::Display) -> Fail {
    Fail::Internal(e.to_string())
}

pub(super) fn tile(cx: &mut Cx, name: &str, x: Port, repeats: &[i64], out: Desc) -> Result<Port, Fail> {
    let m = cx.ints(&format!("{name}/multiples"), repeats)?;
    cx.op1(name, "Tile", &[("x", Some(x)), ("multiples", Some(m))], out, vec![])
}

pub(super) fn depth_to_space(cx: &mut Cx, name: &str, block: i64, mode: DepthToSpaceMode, x: Port, out: Desc) -> Result<Port, Fail> {
    let mode = match mode {
        DepthToSpaceMode::Dcr => "DCR",
        DepthToSpaceMode::Crd => "CRD",
    };
    let attrs = vec![("block_size", Attr::Int(block)), ("mode", Attr::str(mode)), ("data_format", Attr::str("NCHW"))];
    cx.op1(name, "DepthToSpace", &[("x", Some(x))], out.with_format("NCHW"), attrs)
}

pub(super) fn space_to_depth(cx: &mut Cx, name: &str, block: i64, x: Port, out: Desc) -> Result<Port, Fail> {
    let attrs = vec![("block_size", Attr::Int(block)), ("data_format", Attr::str("NCHW"))];
    cx.op1(name, "SpaceToDepth", &[("x", Some(x))], out.with_format("NCHW"), attrs)
}

/// PadV3 of `x` by `(begin, end)` per axis, with `value` (constant mode) as a scalar.
fn pad_v3(cx: &mut Cx, name: &str, x: Port, pads: &[(i64, i64)], mode: &str, value: Option<Port>, out: Desc) -> Result<Port, Fail> {
    let flat: Vec<i64> = pads.iter().flat_map(|&(b, e)| [b, e]).collect();
    let p = cx.ints(&format!("{name}/paddings"), &flat)?;
    let inputs = [("x", Some(x)), ("paddings", Some(p)), ("constant_values", value)];
    cx.op1(name, "PadV3", &inputs, out, vec![("mode", Attr::str(mode)), ("paddings_contiguous", Attr::Bool(true))])
}

/// Pad (data, pads, constant_value?, axes?): ONNX's pads are all begins then all ends, for
/// `axes` (every axis when absent).
pub(super) fn pad(
    cx: &mut Cx,
    name: &str,
    mode: PadMode,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    out: Desc,
) -> Result<Port, Fail> {
    let x = input(ins, 0)?;
    let rank = cx.desc(&x)?.dims.len();
    let Some(pads) = consts.get(1).copied().flatten().map(Tensor::to_i64) else { return unsupported("pads computed at run time") };
    let axes: Vec<usize> = match ins.get(3).cloned().flatten() {
        Some(_) => match consts.get(3).copied().flatten() {
            Some(t) => t.to_i64().iter().map(|&a| (if a < 0 { a + rank as i64 } else { a }) as usize).collect(),
            None => return unsupported("pad axes computed at run time"),
        },
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() || axes.iter().any(|&a| a >= rank) {
        return Err(Fail::Internal(format!("pads {pads:?} for axes {axes:?}")));
    }
    if pads.iter().any(|&p| p < 0) {
        return unsupported("negative pads (cropping): PadV3 only pads");
    }
    let mut per = vec![(0, 0); rank];
    for (i, &a) in axes.iter().enumerate() {
        per[a] = (pads[i], pads[i + axes.len()]);
    }
    let mode = match mode {
        PadMode::Constant => "constant",
        PadMode::Reflect => "reflect",
        PadMode::Edge => "edge",
        PadMode::Wrap => return unsupported("wrap padding: PadV3 pads constant, reflect or edge"),
    };
    let value = if mode == "constant" { ins.get(2).cloned().flatten() } else { None };
    let value = match value {
        Some(v) if cx.desc(&v)?.dims.iter().product::<i64>() == 1 => {
            let d = cx.desc(&v)?;
            Some(super::ops::reshape(cx, &format!("{name}/value"), v, Desc::nd(d.dtype, &[]))?)
        }
        Some(_) => return Err(Fail::Internal("a pad value that is not a scalar".into())),
        None if mode == "constant" => Some(cx.scalar(&format!("{name}/zero"), out.dtype, 0.0)?),
        None => None,
    };
    pad_v3(cx, name, x, &per, mode, value, out)
}

/// CenterCropPad: each axis cropped to its centre (start ⌊(n - t)/2⌋) or zero-padded around
/// it (⌊(t - n)/2⌋ before).
pub(super) fn center_crop_pad(cx: &mut Cx, name: &str, x: Port, out: Desc) -> Result<Port, Fail> {
    let xd = cx.desc(&x)?;
    let (n, t) = (xd.dims.clone(), out.dims.clone());
    let begin: Vec<i64> = n.iter().zip(&t).map(|(&a, &b)| if a > b { (a - b) / 2 } else { 0 }).collect();
    let kept: Vec<i64> = n.iter().zip(&t).map(|(&a, &b)| a.min(b)).collect();
    let x = if kept != n {
        let end: Vec<i64> = begin.iter().zip(&kept).map(|(b, k)| b + k).collect();
        let d = Desc::nd(xd.dtype, &kept.iter().map(|&v| v as usize).collect::<Vec<_>>());
        strided_slice(cx, &format!("{name}/crop"), x, begin, end, vec![1; n.len()], d)?
    } else {
        x
    };
    if kept == t {
        return Ok(x);
    }
    let pads: Vec<(i64, i64)> = kept.iter().zip(&t).map(|(&k, &w)| ((w - k) / 2, w - k - (w - k) / 2)).collect();
    let zero = cx.scalar(&format!("{name}/zero"), xd.dtype, 0.0)?;
    pad_v3(cx, name, x, &pads, "constant", Some(zero), out)
}

pub(super) fn reverse_sequence(cx: &mut Cx, name: &str, batch: i64, time: i64, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let inputs = [("x", Some(input(ins, 0)?)), ("seq_lengths", Some(input(ins, 1)?))];
    cx.op1(name, "ReverseSequence", &inputs, out, vec![("seq_dim", Attr::Int(time)), ("batch_dim", Attr::Int(batch))])
}

/// EyeLike: ones on diagonal `k` (column − row = k), zeros elsewhere, as a constant.
pub(super) fn eye_like(cx: &mut Cx, name: &str, k: i64, out: Desc) -> Result<Port, Fail> {
    let [r, c] = out.dims[..] else { return Err(Fail::Internal(format!("EyeLike of {:?}", out.dims))) };
    let v: Vec<f64> = (0..r * c).map(|f| f64::from(u8::from(f % c - f / c == k))).collect();
    let t = Tensor::new(vec![r as usize, c as usize], kiln_ir::Data::from_f64(out.dtype, &v)).map_err(internal)?;
    cx.constant(name, &t)
}

/// Dropout's mask outside training: all true.
pub(super) fn keep_all(cx: &mut Cx, name: &str, out: &Desc) -> Result<Port, Fail> {
    let n = out.dims.iter().product::<i64>() as usize;
    let t = Tensor::new(out.dims.iter().map(|&v| v as usize).collect(), kiln_ir::Data::Bool(vec![true; n])).map_err(internal)?;
    cx.constant(name, &t)
}

/// Col2Im (columns `[N, C·kh·kw, L]`, image_shape, block_shape) → Col2im, which takes the
/// columns as `[N, C, kh·kw, L]` and one pad per spatial axis (both sides alike).
#[allow(clippy::too_many_arguments)]
pub(super) fn col2im(
    cx: &mut Cx,
    name: &str,
    dilations: &[i64],
    pads: &[i64],
    strides: &[i64],
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    out: Desc,
) -> Result<Port, Fail> {
    let (Some(image), Some(block)) = (consts.get(1).copied().flatten(), consts.get(2).copied().flatten()) else {
        return unsupported("Col2Im with image or block shapes computed at run time");
    };
    let (image, block) = (image.to_i64(), block.to_i64());
    if image.len() != 2 || block.len() != 2 {
        return unsupported(format!("a {}-D Col2Im: CANN's Col2im is 2-D", image.len()));
    }
    let pick = |v: &[i64], n: usize, d: i64| if v.is_empty() { vec![d; n] } else { v.to_vec() };
    let (dil, st, p) = (pick(dilations, 2, 1), pick(strides, 2, 1), pick(pads, 4, 0));
    if p[0] != p[2] || p[1] != p[3] {
        return unsupported("Col2Im with different pads at the two ends of an axis: Col2im pads both alike");
    }
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    let &[n, ckk, l] = xd.dims.as_slice() else { return Err(Fail::Internal(format!("columns {:?} are not 3-D", xd.dims))) };
    let k = block[0] * block[1];
    if k <= 0 || ckk % k != 0 {
        return Err(Fail::Internal(format!("{ckk} column rows for a {block:?} block")));
    }
    let four = Desc::nd(xd.dtype, &[n as usize, (ckk / k) as usize, k as usize, l as usize]);
    let x4 = super::ops::reshape(cx, &format!("{name}/columns"), x, four)?;
    let size = Tensor::new(vec![2], kiln_ir::Data::I32(image.iter().map(|&v| v as i32).collect())).map_err(internal)?;
    let size = cx.constant(&format!("{name}/output_size"), &size)?;
    let attrs = vec![
        ("kernel_size", Attr::ListInt(block)),
        ("dilation", Attr::ListInt(dil)),
        ("padding", Attr::ListInt(p[..2].to_vec())),
        ("stride", Attr::ListInt(st)),
    ];
    cx.op1(name, "Col2im", &[("x", Some(x4)), ("output_size", Some(size))], out.with_format("NCHW"), attrs)
}

/// The `Split` arm of [`super::table::lower_node`].
pub(super) fn split(
    cx: &mut Cx,
    name: &str,
    axis: &i64,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let xd = cx.desc(&x()?)?;
    let Some(a) = usize::try_from(if *axis < 0 { axis + xd.dims.len() as i64 } else { *axis }).ok().filter(|&a| a < xd.dims.len()) else {
        return Err(Fail::Internal(format!("split axis {axis}")));
    };
    let mut sizes = vec![];
    let mut descs = vec![];
    for (i, o) in outs.iter().enumerate() {
        let d = o.clone().ok_or_else(|| Fail::Internal(format!("split output {i} has no type")))?;
        sizes.push(d.dims[a]);
        descs.push((format!("y{i}"), d));
    }
    let attrs = vec![
        ("size_splits", Attr::ListInt(sizes.clone())),
        ("split_dim", Attr::Int(a as i64)),
        ("num_split", Attr::Int(sizes.len() as i64)),
    ];
    let outputs = descs.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
    Ok(cx.op(name, "SplitVD", &[("x", Some(x()?))], outputs, attrs)?.into_iter().map(Some).collect())
}

/// The `Slice` arm of [`super::table::lower_node`].
pub(super) fn slice(
    cx: &mut Cx,
    name: &str,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    let xd = cx.desc(&x()?)?;
    let rank = xd.dims.len();
    let starts = const_ints(consts, 1, "slice starts")?;
    let ends = const_ints(consts, 2, "slice ends")?;
    let axes = match ins.get(3).cloned().flatten() {
        Some(_) => const_ints(consts, 3, "slice axes")?,
        None => (0..starts.len() as i64).collect(),
    };
    let steps = match ins.get(4).cloned().flatten() {
        Some(_) => const_ints(consts, 4, "slice steps")?,
        None => vec![1; starts.len()],
    };
    let (mut begin, mut end, mut strides) = (vec![0i64; rank], xd.dims.clone(), vec![1i64; rank]);
    // A negative step walks a reversed axis forwards: index i is n − 1 − i there.
    let mut reversed = vec![];
    for (i, &a) in axes.iter().enumerate() {
        let a = if a < 0 { a + rank as i64 } else { a } as usize;
        let (s, n) =
            kiln_ir::ops::slice_params(xd.dims[a] as usize, starts[i], ends[i], steps[i]).map_err(|e| Fail::Internal(e.to_string()))?;
        let (s, k) = if steps[i] < 0 {
            reversed.push(a as i64);
            (xd.dims[a] - 1 - s, -steps[i])
        } else {
            (s, steps[i])
        };
        begin[a] = s;
        end[a] = s + n as i64 * k;
        strides[a] = k;
    }
    let x = match reversed.is_empty() {
        true => x()?,
        false => cx.op1(&format!("{name}/reversed"), "ReverseV2D", &[("x", Some(x()?))], xd, vec![("axis", Attr::ListInt(reversed))])?,
    };
    one(strided_slice(cx, name, x, begin, end, strides, y()?)?)
}

/// The `CumSum` arm of [`super::table::lower_node`].
pub(super) fn cumsum(
    cx: &mut Cx,
    name: &str,
    exclusive: &bool,
    reverse: &bool,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    let Some(&axis) = const_ints(consts, 1, "CumSum's axis")?.first() else {
        return Err(Fail::Internal("CumSum without an axis".into()));
    };
    let axis = cx.scalar(&format!("{name}/axis"), DType::I64, axis as f64)?;
    let attrs = vec![("exclusive", Attr::Bool(*exclusive)), ("reverse", Attr::Bool(*reverse))];
    one(cx.op1(name, "Cumsum", &[("x", Some(x()?)), ("axis", Some(axis))], y()?, attrs)?)
}
