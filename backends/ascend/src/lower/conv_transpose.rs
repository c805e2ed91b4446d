//! ConvTranspose → Conv2DTranspose (NCHW; the ONNX weight `[C_in, C_out/group, kH, kW]` as
//! CANN's filter), 1-D through `[N, C, 1, L]`. The window is resolved by the IR's
//! `transpose_geom` (auto_pad, output_shape, output_padding), and CANN's end pads are chosen so
//! that its size rule `in = (out + pad_top + pad_bottom − ((k−1)·d + 1) − output_padding)/s + 1`
//! gives the resolved output.

use super::ops::{input, reshape};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::ops::{transpose_geom, AutoPad, Window};

pub(super) struct Params<'a> {
    pub kernel_shape: &'a [i64],
    pub strides: &'a [i64],
    pub pads: &'a [i64],
    pub dilations: &'a [i64],
    pub group: i64,
    pub auto_pad: AutoPad,
    pub output_padding: &'a [i64],
    pub output_shape: &'a [i64],
}

/// A 1-D list as the 2-D one of `[N, C, 1, L]` (`fill` on the new axis); pads `[b, e]` →
/// `[0, b, 0, e]`.
fn lift(v: &[i64], fill: i64) -> Vec<i64> {
    if v.is_empty() {
        vec![]
    } else {
        std::iter::once(fill).chain(v.iter().copied()).collect()
    }
}

pub(super) fn conv_transpose(cx: &mut Cx, name: &str, p: &Params, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let (x, w) = (input(ins, 0)?, input(ins, 1)?);
    let (xd, wd) = (cx.desc(&x)?, cx.desc(&w)?);
    let spatial = xd.dims.len().saturating_sub(2);
    if spatial == 1 {
        let at = |s: &str| format!("{name}/{s}");
        let dims = |d: &Desc| -> Vec<usize> {
            let v: Vec<usize> = d.dims.iter().map(|&v| v as usize).collect();
            vec![v[0], v[1], 1, v[2]]
        };
        let x4 = reshape(cx, &at("x_2d"), x, Desc::nd(xd.dtype, &dims(&xd)))?;
        let w4 = reshape(cx, &at("w_2d"), w, Desc::nd(wd.dtype, &dims(&wd)))?;
        let pads = match p.pads {
            [b, e] => vec![0, *b, 0, *e],
            other => other.to_vec(),
        };
        let lifted = Params {
            kernel_shape: &lift(p.kernel_shape, 1),
            strides: &lift(p.strides, 1),
            pads: &pads,
            dilations: &lift(p.dilations, 1),
            group: p.group,
            auto_pad: p.auto_pad,
            output_padding: &lift(p.output_padding, 0),
            output_shape: &lift(p.output_shape, 1),
        };
        let o4 = Desc::nd(out.dtype, &dims(&out));
        let ins4 = [Some(x4), Some(w4), ins.get(2).cloned().flatten()];
        let y = conv_transpose(cx, &at("conv"), &lifted, &ins4, o4)?;
        return reshape(cx, name, y, out);
    }
    if spatial != 2 {
        return unsupported(format!("a {spatial}-D ConvTranspose: Conv3DTranspose is not mapped yet"));
    }
    let input_dims: Vec<usize> = xd.dims[2..].iter().map(|&v| v as usize).collect();
    let kernel: Vec<usize> = wd.dims[2..].iter().map(|&v| v as usize).collect();
    let win = Window {
        kernel_shape: p.kernel_shape.to_vec(),
        strides: p.strides.to_vec(),
        pads: p.pads.to_vec(),
        dilations: p.dilations.to_vec(),
        auto_pad: p.auto_pad,
    };
    let g = transpose_geom(&win, &input_dims, &kernel, p.output_padding, p.output_shape).map_err(|e| Fail::Internal(e.to_string()))?;
    let op: Vec<i64> = (0..2).map(|i| p.output_padding.get(i).copied().unwrap_or(0)).collect();
    let mut pads = vec![];
    for i in 0..2 {
        let full = g.strides[i] * input_dims[i].saturating_sub(1) + op[i] as usize + kernel[i].saturating_sub(1) * g.dilations[i] + 1;
        let end = full as i64 - g.out[i] as i64 - g.pad_begin[i] as i64;
        if end < 0 {
            return unsupported("a ConvTranspose output larger than its window covers");
        }
        pads.extend([g.pad_begin[i] as i64, end]);
    }
    let size = cx.ints(&format!("{name}/input_size"), &out.dims)?;
    let four = |v: &[usize]| Attr::ListInt(vec![1, 1, v[0] as i64, v[1] as i64]);
    let inputs =
        [("input_size", Some(size)), ("x", Some(x)), ("filter", Some(w)), ("bias", ins.get(2).cloned().flatten()), ("offset_w", None)];
    let attrs = vec![
        ("strides", four(&g.strides)),
        ("pads", Attr::ListInt(pads)),
        ("dilations", four(&g.dilations)),
        ("groups", Attr::Int(p.group.max(1))),
        ("data_format", Attr::str("NCHW")),
        ("output_padding", Attr::ListInt(vec![0, 0, op[0], op[1]])),
        ("offset_x", Attr::Int(0)),
    ];
    cx.op1(name, "Conv2DTranspose", &inputs, out.with_format("NCHW"), attrs)
}
