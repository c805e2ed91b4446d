//! Resampling: Resize → CANN's Resize (ONNX's attributes and inputs, 4-D, nearest and linear:
//! the modes CANN documents it computing) with ONNX's `axes` expanded to every axis, and
//! GridSample → GridSampler2D.

use super::ops::{const_ints, input, one, output, Outs};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::ops::{AspectPolicy, CoordMode, GridMode, GridPadding, NearestMode, ResizeMode};
use kiln_ir::{DType, Tensor};

fn internal(e: impl std::fmt::Display) -> Fail {
    Fail::Internal(e.to_string())
}

/// Resize of a 4-D x by constant scales or sizes (with `axes`, the others kept as they are).
pub(super) fn resize(
    cx: &mut Cx,
    name: &str,
    mode: &ResizeMode,
    ctm: &CoordMode,
    nearest_mode: &NearestMode,
    cubic_coeff_a: &f32,
    exclude_outside: &bool,
    extrapolation_value: &f32,
    antialias: &bool,
    axes: &[i64],
    keep_aspect_ratio_policy: &AspectPolicy,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    out: Desc,
) -> Result<Port, Fail> {
    let x = input(ins, 0)?;
    let xd = cx.desc(&x)?;
    let rank = xd.dims.len();
    if rank != 4 {
        return unsupported(format!("a {rank}-D Resize: CANN's Resize takes 4-D tensors"));
    }
    let mode = match mode {
        ResizeMode::Nearest => "nearest",
        ResizeMode::Linear => "linear",
        ResizeMode::Cubic => return unsupported("cubic Resize: CANN documents its Resize for nearest and linear"),
    };
    if *antialias {
        return unsupported("an antialiased Resize");
    }
    if *keep_aspect_ratio_policy != AspectPolicy::Stretch {
        return unsupported("Resize with keep_aspect_ratio_policy other than stretch");
    }
    let ctm = match ctm {
        CoordMode::HalfPixel => "half_pixel",
        CoordMode::PytorchHalfPixel => "pytorch_half_pixel",
        CoordMode::AlignCorners => "align_corners",
        CoordMode::Asymmetric => "asymmetric",
        CoordMode::TfCropAndResize => "tf_crop_and_resize",
        CoordMode::HalfPixelSymmetric => return unsupported("half_pixel_symmetric: not among CANN Resize's modes"),
    };
    let nearest = match nearest_mode {
        NearestMode::RoundPreferFloor => "round_prefer_floor",
        NearestMode::RoundPreferCeil => "round_prefer_ceil",
        NearestMode::Floor => "floor",
        NearestMode::Ceil => "ceil",
    };
    let axes: Vec<usize> = match axes.is_empty() {
        true => (0..rank).collect(),
        false => axes.iter().map(|&a| (if a < 0 { a + rank as i64 } else { a }) as usize).collect(),
    };
    let at = |s: &str| format!("{name}/{s}");
    // Per-axis values for every axis: the node's for its axes, `keep` for the others.
    let full = |vals: &[f64], keep: &dyn Fn(usize) -> f64| -> Result<Vec<f64>, Fail> {
        if vals.len() != axes.len() {
            return Err(Fail::Internal(format!("{} values for axes {axes:?}", vals.len())));
        }
        let mut v: Vec<f64> = (0..rank).map(keep).collect();
        for (i, &a) in axes.iter().enumerate() {
            v[a] = vals[i];
        }
        Ok(v)
    };
    let known = |i: usize| consts.get(i).copied().flatten().filter(|t| t.numel() > 0);
    let present = |i: usize| ins.get(i).is_some_and(Option::is_some);
    let (scales, sizes) = match (known(2), known(3)) {
        (Some(s), _) => {
            let v: Vec<f32> = full(&s.to_f64(), &|_| 1.0)?.iter().map(|&v| v as f32).collect();
            let t = Tensor::new(vec![rank], kiln_ir::Data::F32(v)).map_err(internal)?;
            (Some(cx.constant(&at("scales"), &t)?), None)
        }
        (None, Some(s)) => {
            let v: Vec<i64> = full(&s.to_f64(), &|i| xd.dims[i] as f64)?.iter().map(|&v| v as i64).collect();
            (None, Some(cx.ints(&at("sizes"), &v)?))
        }
        (None, None) if present(2) || present(3) => return unsupported("Resize scales or sizes computed at run time"),
        (None, None) => return Err(Fail::Internal("a Resize without scales or sizes".into())),
    };
    let roi = match (ctm, known(1)) {
        ("tf_crop_and_resize", Some(r)) => {
            let v = r.to_f64();
            let h = v.len() / 2;
            let starts = full(&v[..h], &|_| 0.0)?;
            let ends = full(&v[h..], &|_| 1.0)?;
            let t = Tensor::new(vec![2 * rank], kiln_ir::Data::from_f64(xd.dtype, &[starts, ends].concat())).map_err(internal)?;
            Some(cx.constant(&at("roi"), &t)?)
        }
        ("tf_crop_and_resize", None) => return unsupported("a tf_crop_and_resize roi computed at run time"),
        _ => None,
    };
    if !matches!(xd.dtype, DType::F32 | DType::F16) && mode == "linear" {
        return unsupported(format!("linear Resize of {}", xd.dtype));
    }
    let inputs = [("x", Some(x)), ("roi", roi), ("scales", scales), ("sizes", sizes)];
    let attrs = vec![
        ("coordinate_transformation_mode", Attr::str(ctm)),
        ("cubic_coeff_a", Attr::Float(*cubic_coeff_a)),
        ("exclude_outside", Attr::Int(i64::from(*exclude_outside))),
        ("extrapolation_value", Attr::Float(*extrapolation_value)),
        ("mode", Attr::str(mode)),
        ("nearest_mode", Attr::str(nearest)),
    ];
    cx.op1(name, "Resize", &inputs, out, attrs)
}

/// GridSample of a 4-D x → GridSampler2D (PyTorch's grid_sample, which ONNX's follows).
pub(super) fn grid_sample(
    cx: &mut Cx,
    name: &str,
    mode: GridMode,
    padding: GridPadding,
    align_corners: bool,
    ins: &[Option<Port>],
    out: Desc,
) -> Result<Port, Fail> {
    let (x, grid) = (input(ins, 0)?, input(ins, 1)?);
    let xd = cx.desc(&x)?;
    if xd.dims.len() != 4 {
        return unsupported(format!("a {}-D GridSample: GridSampler3D is not mapped yet", xd.dims.len().saturating_sub(2)));
    }
    if !matches!(xd.dtype, DType::F32 | DType::F16) || cx.desc(&grid)?.dtype != xd.dtype {
        return unsupported(format!("GridSample of {}: GridSampler2D takes float16/float32 x and grid alike", xd.dtype));
    }
    let mode = match mode {
        GridMode::Nearest => "nearest",
        GridMode::Linear => "bilinear",
        GridMode::Cubic => "bicubic",
    };
    let padding = match padding {
        GridPadding::Zeros => "zeros",
        GridPadding::Border => "border",
        GridPadding::Reflection => "reflection",
    };
    let attrs =
        vec![("interpolation_mode", Attr::str(mode)), ("padding_mode", Attr::str(padding)), ("align_corners", Attr::Bool(align_corners))];
    cx.op1(name, "GridSampler2D", &[("x", Some(x)), ("grid", Some(grid))], out.with_format("NCHW"), attrs)
}

/// The `AffineGrid` arm of [`super::table::lower_node`].
pub(super) fn affine_grid(
    cx: &mut Cx,
    name: &str,
    align_corners: &bool,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    let size = const_ints(consts, 1, "AffineGrid's size")?;
    let size = Tensor::new(vec![size.len()], kiln_ir::Data::I32(size.iter().map(|&v| v as i32).collect()))
        .map_err(|e| Fail::Internal(e.to_string()))?;
    let size = cx.constant(&format!("{name}/output_size"), &size)?;
    let inputs = [("theta", Some(x()?)), ("output_size", Some(size))];
    one(cx.op1(name, "AffineGrid", &inputs, y()?, vec![("align_corners", Attr::Bool(*align_corners))])?)
}
