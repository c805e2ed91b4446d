//! Convolutions and pools: Conv2D (NCHW or NC1HWC0 with TransData around it), MaxPoolV3 and
//! AvgPoolV2 (1-D windows through `[N, C, 1, L]`), LpPool through AvgPoolV2.

use super::ops::{input, one, output, reshape, Outs};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::ops::{AutoPad, Format, Window};
use kiln_ir::Tensor;

/// `(top, bottom, left, right)` pads of a 2-D window over `input` (H, W): the model's own, or
/// for `auto_pad` the ones its output size implies.
pub(super) fn pads_2d(w: &Window, input: &[usize], ceil_mode: bool) -> Result<(kiln_ir::ops::Resolved, Vec<i64>), Fail> {
    let kernel: Vec<usize> = w.kernel_shape.iter().map(|&k| k as usize).collect();
    let r = kiln_ir::ops::resolve_window(w, input, &kernel, ceil_mode).map_err(|e| Fail::Internal(e.to_string()))?;
    if w.auto_pad == AutoPad::NotSet {
        let p = |i: usize| w.pads.get(i).copied().unwrap_or(0);
        return Ok((r, vec![p(0), p(2), p(1), p(3)]));
    }
    let end = |i: usize| {
        let span = (r.out[i] as i64 - 1) * r.strides[i] as i64 + (r.kernel[i] as i64 - 1) * r.dilations[i] as i64 + 1;
        (span - input[i] as i64 - r.pad_begin[i] as i64).max(0)
    };
    let pads = vec![r.pad_begin[0] as i64, end(0), r.pad_begin[1] as i64, end(1)];
    Ok((r, pads))
}

pub(super) fn window(kernel_shape: &[i64], strides: &[i64], pads: &[i64], dilations: &[i64], auto_pad: AutoPad) -> Window {
    Window { kernel_shape: kernel_shape.to_vec(), strides: strides.to_vec(), pads: pads.to_vec(), dilations: dilations.to_vec(), auto_pad }
}

/// The logical NCHW dims of a port (its origin shape where it is stored in a format).
pub(super) fn logical_dims(d: &Desc) -> Vec<usize> {
    d.origin_dims.iter().map(|&x| x as usize).collect()
}

/// Conv2D of x (NCHW, or NC1HWC0 when `format` says so) and filter (OIHW), with its bias.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv2d(
    cx: &mut Cx,
    name: &str,
    w: &Window,
    group: i64,
    format: Format,
    ins: &[Option<Port>],
    out: Desc,
) -> Result<Port, Fail> {
    let (x, f) = (input(ins, 0)?, input(ins, 1)?);
    let (xd, fd) = (cx.desc(&x)?, cx.desc(&f)?);
    // The window's kernel is the filter's spatial dims where the node gives none.
    let w = &weight_window(cx, &f, &w.kernel_shape, &w.strides, &w.pads, &w.dilations, w.auto_pad)?;
    if xd.origin_dims.len() == 3 && fd.dims.len() == 3 && format == Format::Nchw {
        return conv1d(cx, name, w, group, ins, out);
    }
    if xd.origin_dims.len() != 4 || fd.dims.len() != 4 {
        return unsupported(format!(
            "a {}-D convolution: CANN's Conv2D is 2-D (Conv3D is not mapped yet)",
            fd.dims.len().saturating_sub(2)
        ));
    }
    let (r, pads) = pads_2d(w, &logical_dims(&xd)[2..], false)?;
    let out = match format {
        Format::Nchw => out.with_format("NCHW"),
        Format::Nc1hwc0 => {
            let logical = [xd.origin_dims[0], fd.dims[0], r.out[0] as i64, r.out[1] as i64];
            Desc { format: "NC1HWC0", origin_format: "NCHW", origin_dims: logical.to_vec(), ..out }
        }
        Format::Nhwc => return unsupported("a convolution stored NHWC: the 910b rules offer NC1HWC0 only"),
    };
    let filter = Some(f);
    let inputs = [("x", Some(x)), ("filter", filter), ("bias", ins.get(2).cloned().flatten()), ("offset_w", None)];
    let s = |v: &[usize]| Attr::ListInt(vec![1, 1, v[0] as i64, v[1] as i64]);
    cx.op1(
        name,
        "Conv2D",
        &inputs,
        out,
        vec![
            ("strides", s(&r.strides)),
            ("pads", Attr::ListInt(pads)),
            ("dilations", s(&r.dilations)),
            ("groups", Attr::Int(group.max(1))),
            ("data_format", Attr::str("NCHW")),
            ("offset_x", Attr::Int(0)),
        ],
    )
}

/// A 1-D convolution as Conv2D over `[N, C, 1, L]` with the filter as `[M, C/group, 1, k]`, its
/// result reshaped back to `[N, M, L']`.
fn conv1d(cx: &mut Cx, name: &str, w: &Window, group: i64, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let (x, f) = (input(ins, 0)?, input(ins, 1)?);
    let (xd, fd) = (cx.desc(&x)?, cx.desc(&f)?);
    let as_2d_dims = |d: &[i64]| -> Vec<usize> { vec![d[0] as usize, d[1] as usize, 1, d[2] as usize] };
    let x4 = reshape(cx, &format!("{name}/x_2d"), x, Desc::nd(xd.dtype, &as_2d_dims(&xd.dims)))?;
    let f4 = reshape(cx, &format!("{name}/filter_2d"), f, Desc::nd(fd.dtype, &as_2d_dims(&fd.dims)))?;
    let o4 = Desc::nd(out.dtype, &as_2d_dims(&out.dims));
    let y = conv2d(cx, &format!("{name}/conv"), &w.as_2d(), group, Format::Nchw, &[Some(x4), Some(f4), ins.get(2).cloned().flatten()], o4)?;
    reshape(cx, name, y, out)
}

/// The stored (format) descriptor of a logical NCHW tensor converted to NC1HWC0.
pub(super) fn nc1hwc0(d: &Desc, stored: &Desc) -> Desc {
    Desc { dtype: d.dtype, dims: stored.dims.clone(), format: "NC1HWC0", origin_format: "NCHW", origin_dims: d.dims.clone() }
}

/// TransData of `x` (src → dst).
pub(super) fn transdata(cx: &mut Cx, name: &str, x: Port, out: Desc, src: &str, dst: &str) -> Result<Port, Fail> {
    let v = cx.op(name, "TransData", &[("src", Some(x))], vec![("dst", out)], transdata_attrs(src, dst))?;
    v.into_iter().next().ok_or_else(|| Fail::Internal("TransData made no output".into()))
}

pub(super) fn transdata_attrs(src: &str, dst: &str) -> Vec<(&'static str, Attr)> {
    vec![
        ("src_format", Attr::str(src)),
        ("dst_format", Attr::str(dst)),
        ("src_subformat", Attr::Int(0)),
        ("dst_subformat", Attr::Int(0)),
        ("groups", Attr::Int(1)),
    ]
}

/// [`pool_2d`] of a 1-D or 2-D window (a 1-D one through `[N, C, 1, L]`).
#[allow(clippy::too_many_arguments)]
pub(super) fn pool(
    cx: &mut Cx,
    name: &str,
    ty: &str,
    w: &Window,
    ceil_mode: bool,
    exclusive: Option<bool>,
    ins: &[Option<Port>],
    out: Desc,
) -> Result<Port, Fail> {
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    if xd.origin_dims.len() != 3 {
        return pool_2d(cx, name, ty, w, ceil_mode, exclusive, ins, out);
    }
    let d = logical_dims(&xd);
    let x4 = reshape(cx, &format!("{name}/as_2d"), x, Desc::nd(xd.dtype, &[d[0], d[1], 1, d[2]]))?;
    let od = logical_dims(&out);
    let o4 = Desc::nd(out.dtype, &[od[0], od[1], 1, od[2]]);
    let p = pool_2d(cx, &format!("{name}/pool"), ty, &w.as_2d(), ceil_mode, exclusive, &[Some(x4)], o4)?;
    reshape(cx, name, p, out)
}

/// LpPool: `(Σ|x|^p)^(1/p)` over each window, the sum as AvgPoolV2 (padding counted) times
/// the window size.
pub(super) fn lp_pool(cx: &mut Cx, name: &str, w: &Window, ceil_mode: bool, p: i64, x: Port, out: Desc) -> Result<Port, Fail> {
    let xd = cx.desc(&x)?;
    let at = |s: &str| format!("{name}/{s}");
    let powered = match p {
        2 => cx.op1(&at("power"), "Mul", &[("x1", Some(x.clone())), ("x2", Some(x))], xd.clone(), vec![])?,
        _ => {
            let a = cx.op1(&at("abs"), "Abs", &[("x", Some(x))], xd.clone(), vec![])?;
            if p == 1 {
                a
            } else {
                let e = cx.scalar(&at("p"), xd.dtype, p as f64)?;
                cx.op1(&at("power"), "Pow", &[("x1", Some(a)), ("x2", Some(e))], xd.clone(), vec![])?
            }
        }
    };
    let mean = pool(cx, &at("mean"), "AvgPoolV2", w, ceil_mode, Some(false), &[Some(powered)], out.clone())?;
    let size = cx.scalar(&at("window"), out.dtype, w.kernel_shape.iter().product::<i64>() as f64)?;
    let sum = cx.op1(&at("sum"), "Mul", &[("x1", Some(mean)), ("x2", Some(size))], out.clone(), vec![])?;
    match p {
        1 => Ok(sum),
        2 => cx.op1(name, "Sqrt", &[("x", Some(sum))], out, vec![]),
        _ => {
            let e = cx.scalar(&at("inverse_p"), out.dtype, 1.0 / p as f64)?;
            cx.op1(name, "Pow", &[("x1", Some(sum)), ("x2", Some(e))], out, vec![])
        }
    }
}

/// MaxPoolV3 or AvgPoolV2 (`exclusive` given) over a 2-D NCHW window.
#[allow(clippy::too_many_arguments)]
pub(super) fn pool_2d(
    cx: &mut Cx,
    name: &str,
    ty: &str,
    w: &Window,
    ceil_mode: bool,
    exclusive: Option<bool>,
    ins: &[Option<Port>],
    out: Desc,
) -> Result<Port, Fail> {
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    let dims = logical_dims(&xd);
    if dims.len() != 4 {
        return unsupported(format!("a {}-D pool: the mapped CANN pools are 2-D", dims.len().saturating_sub(2)));
    }
    let (r, pads) = pads_2d(w, &dims[2..], ceil_mode)?;
    let s = |v: &[usize]| Attr::ListInt(vec![1, 1, v[0] as i64, v[1] as i64]);
    if xd.format != "ND" && xd.format != "NCHW" {
        return unsupported(format!("a pool over a tensor stored {}", xd.format));
    }
    let out = out.with_format("NCHW");
    let mut attrs = vec![
        ("ksize", s(&r.kernel)),
        ("strides", s(&r.strides)),
        ("padding_mode", Attr::str("CALCULATED")),
        ("pads", Attr::ListInt(pads)),
        ("data_format", Attr::str("NCHW")),
        ("global_pooling", Attr::Bool(false)),
        ("ceil_mode", Attr::Bool(ceil_mode)),
    ];
    if let Some(e) = exclusive {
        attrs.push(("exclusive", Attr::Bool(e)));
        attrs.push(("divisor_override", Attr::Int(0)));
    }
    cx.op1(name, ty, &[("x", Some(x))], out, attrs)
}

/// The `MaxPool` arm of [`super::table::lower_node`].
pub(super) fn max_pool(
    cx: &mut Cx,
    name: &str,
    w: &Window,
    ceil_mode: &bool,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let y = || output(outs, 0);
    if w.dilations.iter().any(|&d| d != 1) {
        return unsupported("a dilated MaxPool");
    }
    if outs.len() > 1 && outs[1].is_some() {
        return unsupported("MaxPool's indices output");
    }
    pool(cx, name, "MaxPoolV3", w, *ceil_mode, None, ins, y()?).map(|p| vec![Some(p)])
}

/// The `AveragePool` arm of [`super::table::lower_node`].
pub(super) fn average_pool(
    cx: &mut Cx,
    name: &str,
    w: &Window,
    ceil_mode: &bool,
    count_include_pad: &bool,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let y = || output(outs, 0);
    if w.dilations.iter().any(|&d| d != 1) {
        return unsupported("a dilated AveragePool");
    }
    pool(cx, name, "AvgPoolV2", w, *ceil_mode, Some(!*count_include_pad), ins, y()?).map(|p| vec![Some(p)])
}

/// The `LpPool` arm of [`super::table::lower_node`].
pub(super) fn lp_pool_node(
    cx: &mut Cx,
    name: &str,
    w: &Window,
    ceil_mode: &bool,
    p: &i64,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    if w.dilations.iter().any(|&d| d != 1) {
        return unsupported("a dilated LpPool");
    }
    one(lp_pool(cx, name, w, *ceil_mode, *p, x()?, y()?)?)
}

/// The window of a convolution with weight `w`: `kernel_shape`, or the weight's spatial dims
/// where the node gives none.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_window(
    cx: &Cx,
    w: &Port,
    kernel_shape: &[i64],
    strides: &[i64],
    pads: &[i64],
    dilations: &[i64],
    auto_pad: AutoPad,
) -> Result<Window, Fail> {
    let kernel = match kernel_shape.is_empty() {
        true => cx.desc(w)?.dims.get(2..).map(<[i64]>::to_vec).unwrap_or_default(),
        false => kernel_shape.to_vec(),
    };
    Ok(window(&kernel, strides, pads, dilations, auto_pad))
}
