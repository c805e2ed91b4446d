//! The kiln op → CANN built-in op table. Every op of the IR has an arm: the CANN ops it
//! becomes (their prototypes are checked against `crate::prototypes`), or why it has none yet.
//! Attributes are written explicitly, defaults included, as TorchAir does.

use super::transformer::{self, AttentionAttrs};
use super::{index, movement, norm, quant};
use super::{unsupported, Cx, Fail};
use crate::ascendc::reduce::ReduceKind as Fused;
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::ops::{AutoPad, Format, GeluApprox, PoolKind, ReduceKind, Window};
use kiln_ir::{DType, Op, Tensor};

type Outs = Vec<Option<Port>>;

pub(super) fn input(ins: &[Option<Port>], i: usize) -> Result<Port, Fail> {
    ins.get(i).cloned().flatten().ok_or_else(|| Fail::Internal(format!("input {i} is missing")))
}

pub(super) fn output(outs: &[Option<Desc>], i: usize) -> Result<Desc, Fail> {
    outs.get(i).cloned().flatten().ok_or_else(|| Fail::Internal(format!("output {i} has no type")))
}

/// A constant input's values as integers.
fn const_ints(consts: &[Option<&Tensor>], i: usize, what: &str) -> Result<Vec<i64>, Fail> {
    match consts.get(i).copied().flatten() {
        Some(t) => Ok(t.to_i64()),
        None => unsupported(format!("{what} computed at run time: CANN's op takes them as attributes")),
    }
}

/// Exp and Log compute `f(shift + scale·x)` in base `base` (-1: e).
pub(super) fn exp_log_attrs() -> Vec<(&'static str, Attr)> {
    vec![("base", Attr::Float(-1.0)), ("scale", Attr::Float(1.0)), ("shift", Attr::Float(0.0))]
}

/// `(top, bottom, left, right)` pads of a 2-D window over `input` (H, W): the model's own, or
/// for `auto_pad` the ones its output size implies.
fn pads_2d(w: &Window, input: &[usize], ceil_mode: bool) -> Result<(kiln_ir::ops::Resolved, Vec<i64>), Fail> {
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

fn window(kernel_shape: &[i64], strides: &[i64], pads: &[i64], dilations: &[i64], auto_pad: AutoPad) -> Window {
    Window { kernel_shape: kernel_shape.to_vec(), strides: strides.to_vec(), pads: pads.to_vec(), dilations: dilations.to_vec(), auto_pad }
}

/// The logical NCHW dims of a port (its origin shape where it is stored in a format).
fn logical_dims(d: &Desc) -> Vec<usize> {
    d.origin_dims.iter().map(|&x| x as usize).collect()
}

/// Conv2D of x (NCHW, or NC1HWC0 when `format` says so) and filter (OIHW), with its bias.
#[allow(clippy::too_many_arguments)]
fn conv2d(cx: &mut Cx, name: &str, w: &Window, group: i64, format: Format, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let (x, f) = (input(ins, 0)?, input(ins, 1)?);
    let (xd, fd) = (cx.desc(&x)?, cx.desc(&f)?);
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

/// The stored (format) descriptor of a logical NCHW tensor converted to NC1HWC0.
fn nc1hwc0(d: &Desc, stored: &Desc) -> Desc {
    Desc { dtype: d.dtype, dims: stored.dims.clone(), format: "NC1HWC0", origin_format: "NCHW", origin_dims: d.dims.clone() }
}

/// The dims of a product of `a` and `b` (at least 2-D each; batch dims broadcast).
fn matmul_dims(a: &[i64], b: &[i64]) -> Option<Vec<usize>> {
    let (ra, rb) = (a.len(), b.len());
    if ra < 2 || rb < 2 || a[ra - 1] != b[rb - 2] {
        return None;
    }
    let batch = |d: &[i64]| d.iter().map(|&x| x as usize).collect::<Vec<_>>();
    let mut out = kiln_ir::shape::broadcast(&batch(&a[..ra - 2]), &batch(&b[..rb - 2]))?;
    out.extend([a[ra - 2] as usize, b[rb - 1] as usize]);
    Some(out)
}

/// SplitVD of `x` along its last axis into parts of `sizes`.
pub(super) fn split_last(cx: &mut Cx, name: &str, x: Port, sizes: &[i64]) -> Result<Vec<Port>, Fail> {
    let d = cx.desc(&x)?;
    let last = d.dims.len().checked_sub(1).ok_or_else(|| Fail::Internal("a scalar product".into()))?;
    let names: Vec<String> = (0..sizes.len()).map(|i| format!("y{i}")).collect();
    let outs = sizes
        .iter()
        .zip(&names)
        .map(|(&s, n)| {
            let mut dims = d.dims.clone();
            dims[last] = s;
            (n.as_str(), Desc { dims: dims.clone(), origin_dims: dims, ..d.clone() })
        })
        .collect();
    let attrs = vec![
        ("size_splits", Attr::ListInt(sizes.to_vec())),
        ("split_dim", Attr::Int(last as i64)),
        ("num_split", Attr::Int(sizes.len() as i64)),
    ];
    cx.op(name, "SplitVD", &[("x", Some(x))], outs, attrs)
}

/// BatchMatMulV2 of x1 and x2 (no transposes), out as `out`. A 1-D operand is a row (x1) or
/// a column (x2), as in numpy: reshaped to 2-D, and the result reshaped back to `out`.
fn matmul(cx: &mut Cx, name: &str, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let (mut a, mut b) = (input(ins, 0)?, input(ins, 1)?);
    let (ad, bd) = (cx.desc(&a)?, cx.desc(&b)?);
    if ad.dims.len() == 1 {
        let d = Desc::nd(ad.dtype, &[1, ad.dims[0] as usize]);
        a = reshape(cx, &format!("{name}/row"), a, d)?;
    }
    if bd.dims.len() == 1 {
        let d = Desc::nd(bd.dtype, &[bd.dims[0] as usize, 1]);
        b = reshape(cx, &format!("{name}/column"), b, d)?;
    }
    let (ad2, bd2) = (cx.desc(&a)?, cx.desc(&b)?);
    let inputs = [("x1", Some(a)), ("x2", Some(b)), ("bias", None), ("offset_w", None)];
    let attrs = vec![("adj_x1", Attr::Bool(false)), ("adj_x2", Attr::Bool(false)), ("offset_x", Attr::Int(0))];
    if ad.dims.len() > 1 && bd.dims.len() > 1 {
        return cx.op1(name, "BatchMatMulV2", &inputs, out, attrs);
    }
    let dims = matmul_dims(&ad2.dims, &bd2.dims).ok_or_else(|| Fail::Internal("operands that do not multiply".into()))?;
    let p = cx.op1(&format!("{name}/matmul"), "BatchMatMulV2", &inputs, Desc::nd(out.dtype, &dims), attrs)?;
    reshape(cx, name, p, out)
}

/// Reshape to `out`'s dims (Reshape, Flatten, Squeeze, Unsqueeze).
pub(super) fn reshape(cx: &mut Cx, name: &str, x: Port, out: Desc) -> Result<Port, Fail> {
    let shape = cx.ints(&format!("{name}/shape"), &out.dims)?;
    cx.op1(name, "Reshape", &[("x", Some(x)), ("shape", Some(shape))], out, vec![("axis", Attr::Int(0)), ("num_axes", Attr::Int(-1))])
}

/// Lowers one node (or one op of a fused body): its outputs' ports.
pub(crate) fn lower_node(
    cx: &mut Cx,
    name: &str,
    op: &Op,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    use Op::*;
    let one = |p: Port| Ok(vec![Some(p)]);
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    let known = |i: usize| consts.get(i).copied().flatten();
    match op {
        Identity {} | Dropout {} => {
            if ins.get(2).is_some_and(Option::is_some) {
                let training = consts.get(2).copied().flatten().map(|t| t.to_i64().first().copied().unwrap_or(0) != 0);
                let ratio = consts.get(1).copied().flatten().map_or(Some(0.5), |t| t.to_f64().first().copied());
                if training != Some(false) && ratio != Some(0.0) {
                    return unsupported("Dropout in training mode (random) or with a training_mode computed at run time");
                }
            }
            let mut v = vec![Some(x()?)];
            if let Some(Some(mask)) = outs.get(1) {
                v.push(Some(movement::keep_all(cx, &format!("{name}/mask"), mask)?));
            }
            v.resize(outs.len(), None);
            Ok(v)
        }
        Unary { op: u } => match super::elementwise::unary(cx, name, *u, ins, outs)? {
            Some(v) => Ok(v),
            None => single(cx, name, op, ins, consts, outs, &format!("{} has no CANN built-in mapped yet", u.name())),
        },
        Binary { op: b } => super::elementwise::binary(cx, name, *b, ins, outs),
        ThresholdedRelu { alpha } => one(super::elementwise::thresholded_relu(cx, name, *alpha, x()?, y()?)?),
        Shrink { bias, lambd } => one(super::elementwise::shrink(cx, name, *bias, *lambd, x()?, y()?)?),
        IsInf { detect_negative, detect_positive } => {
            one(super::elementwise::is_inf(cx, name, *detect_negative, *detect_positive, x()?, y()?)?)
        }
        Gelu { approximate } => {
            let a = match approximate {
                GeluApprox::None => "none",
                GeluApprox::Tanh => "tanh",
            };
            one(cx.op1(name, "GeluV2", &[("x", Some(x()?))], y()?, vec![("approximate", Attr::str(a))])?)
        }
        Clip {} => {
            let d = cx.desc(&x()?)?.dtype;
            let (lo, hi) = if d.is_float() { (f64::NEG_INFINITY, f64::INFINITY) } else { (i64::MIN as f64, i64::MAX as f64) };
            let lo = match ins.get(1).cloned().flatten() {
                Some(p) => p,
                None => cx.scalar(&format!("{name}/min"), d, lo)?,
            };
            let hi = match ins.get(2).cloned().flatten() {
                Some(p) => p,
                None => cx.scalar(&format!("{name}/max"), d, hi)?,
            };
            let inputs = [("x", Some(x()?)), ("clip_value_min", Some(lo)), ("clip_value_max", Some(hi))];
            one(cx.op1(name, "ClipByValue", &inputs, y()?, vec![])?)
        }
        Where {} => {
            let inputs = [("condition", Some(x()?)), ("x1", Some(input(ins, 1)?)), ("x2", Some(input(ins, 2)?))];
            one(cx.op1(name, "SelectV2", &inputs, y()?, vec![])?)
        }
        Split { axis } => {
            let xd = cx.desc(&x()?)?;
            let Some(a) = usize::try_from(if *axis < 0 { axis + xd.dims.len() as i64 } else { *axis }).ok().filter(|&a| a < xd.dims.len())
            else {
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
        Expand {} => {
            let out = y()?;
            one(cx.op1(name, "BroadcastToD", &[("x", Some(x()?))], out.clone(), vec![("shape", Attr::ListInt(out.dims))])?)
        }
        Cast { .. } | CastLike { .. } => one(cast(cx, name, x()?, y()?)?),
        MatMul {} => one(matmul(cx, name, ins, y()?)?),
        Gemm { alpha, beta, trans_a, trans_b } => {
            let mut c = ins.get(2).cloned().flatten();
            let out = y()?;
            // β·C, where β is not 1.
            if let (Some(cp), true) = (c.clone(), *beta != 1.0) {
                let cd = cx.desc(&cp)?;
                let b = cx.scalar(&format!("{name}/beta"), cd.dtype, f64::from(*beta))?;
                c = Some(cx.op1(&format!("{name}/beta_c"), "Mul", &[("x1", Some(cp)), ("x2", Some(b))], cd, vec![])?);
            }
            // MatMulV2's bias is one value per column, added before any α; any other C (a
            // scalar, a row, a matrix) is added after the product.
            let n = out.dims.last().copied().unwrap_or(0);
            let (bias, after) = match c {
                Some(c) if *alpha == 1.0 && cx.desc(&c)?.dims == [n] => (Some(c), None),
                other => (None, other),
            };
            let inputs = [("x1", Some(x()?)), ("x2", Some(input(ins, 1)?)), ("bias", bias), ("offset_w", None)];
            let attrs = vec![("transpose_x1", Attr::Bool(*trans_a)), ("transpose_x2", Attr::Bool(*trans_b)), ("offset_x", Attr::Int(0))];
            let mut p = cx.op1(&format!("{name}/matmul"), "MatMulV2", &inputs, out.clone(), attrs)?;
            if *alpha != 1.0 {
                let a = cx.scalar(&format!("{name}/alpha"), out.dtype, f64::from(*alpha))?;
                let n = if after.is_some() { format!("{name}/alpha_ab") } else { name.to_string() };
                p = cx.op1(&n, "Mul", &[("x1", Some(p)), ("x2", Some(a))], out.clone(), vec![])?;
            }
            match after {
                Some(c) => one(cx.op1(name, "Add", &[("x1", Some(p)), ("x2", Some(c))], out, vec![])?),
                None => one(p),
            }
        }
        Conv { kernel_shape, strides, pads, dilations, group, auto_pad } => {
            let w = window(kernel_shape, strides, pads, dilations, *auto_pad);
            one(conv2d(cx, name, &w, *group, Format::Nchw, ins, y()?)?)
        }
        ConvFused { kernel_shape, strides, pads, dilations, group, auto_pad, format, align: _, body } => {
            let w = window(kernel_shape, strides, pads, dilations, *auto_pad);
            // The convolution's own result: the body's first input, in the stored format.
            let first = body.inputs.first().ok_or_else(|| Fail::Internal("an empty body".into()))?;
            let acc_dtype = body.value(*first).ty.dtype;
            let out = y()?;
            let acc = Desc { dtype: acc_dtype, ..out.clone() };
            let acc = conv2d(cx, &format!("{name}/conv"), &w, *group, *format, &ins[..ins.len().min(3)], acc)?;
            let mut args = vec![acc];
            for i in 3..ins.len() {
                args.push(input(ins, i)?);
            }
            Ok(cx.body(name, body, args)?.into_iter().map(Some).collect())
        }
        MatMulFused { splits, body } => {
            let first = body.inputs.first().ok_or_else(|| Fail::Internal("an empty body".into()))?;
            let acc_dtype = body.value(*first).ty.dtype;
            let a = cx.desc(&x()?)?;
            let b = cx.desc(&input(ins, 1)?)?;
            let Some(dims) = matmul_dims(&a.dims, &b.dims) else {
                return unsupported("a fused product with a 1-D operand is not mapped yet");
            };
            let acc = matmul(cx, &format!("{name}/matmul"), ins, Desc::nd(acc_dtype, &dims))?;
            let mut args = if splits.is_empty() { vec![acc] } else { split_last(cx, &format!("{name}/split"), acc, splits)? };
            for i in 2..ins.len() {
                args.push(input(ins, i)?);
            }
            epilogue(cx, name, body, args, outs)
        }
        FusedElementwise { body } => {
            let args = ins.iter().cloned().collect::<Option<Vec<Port>>>().ok_or_else(|| Fail::Internal("a missing input".into()))?;
            epilogue(cx, name, body, args, outs)
        }
        ToFormat { format: Format::Nc1hwc0, .. } => {
            let xd = cx.desc(&x()?)?;
            let out = nc1hwc0(&xd, &y()?);
            one(transdata(cx, name, x()?, out, "NCHW", "NC1HWC0")?)
        }
        FromFormat { format: Format::Nc1hwc0, .. } => one(transdata(cx, name, x()?, y()?.with_format("NCHW"), "NC1HWC0", "NCHW")?),
        ToFormat { format, .. } | FromFormat { format, .. } => unsupported(format!("conversion to {} is not a 910b format", format.name())),
        MaxPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, storage_order: _ } => {
            if dilations.iter().any(|&d| d != 1) {
                return unsupported("a dilated MaxPool");
            }
            if outs.len() > 1 && outs[1].is_some() {
                return unsupported("MaxPool's indices output");
            }
            let w = window(kernel_shape, strides, pads, dilations, *auto_pad);
            pool(cx, name, "MaxPoolV3", &w, *ceil_mode, None, ins, y()?).map(|p| vec![Some(p)])
        }
        AveragePool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, count_include_pad } => {
            if dilations.iter().any(|&d| d != 1) {
                return unsupported("a dilated AveragePool");
            }
            let w = window(kernel_shape, strides, pads, dilations, *auto_pad);
            pool(cx, name, "AvgPoolV2", &w, *ceil_mode, Some(!*count_include_pad), ins, y()?).map(|p| vec![Some(p)])
        }
        LpPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, p } => {
            if dilations.iter().any(|&d| d != 1) {
                return unsupported("a dilated LpPool");
            }
            let w = window(kernel_shape, strides, pads, dilations, *auto_pad);
            one(lp_pool(cx, name, &w, *ceil_mode, *p, x()?, y()?)?)
        }
        GlobalPool { kind, .. } => {
            let rank = cx.desc(&x()?)?.origin_dims.len() as i64;
            let ty = match kind {
                PoolKind::Average => "ReduceMeanD",
                PoolKind::Max => "ReduceMaxD",
                PoolKind::Lp => return unsupported("GlobalLpPool"),
            };
            one(reduce_d(cx, name, ty, x()?, &(2..rank).collect::<Vec<_>>(), true, y()?)?)
        }
        Reduce { kind, keepdims, noop_with_empty_axes } => {
            let xd = cx.desc(&x()?)?;
            let rank = xd.dims.len() as i64;
            let axes = match ins.get(1).cloned().flatten() {
                Some(_) => const_ints(consts, 1, "reduction axes")?,
                None => vec![],
            };
            let axes = match axes.is_empty() {
                true if *noop_with_empty_axes => return Ok(vec![Some(x()?)]),
                true => (0..rank).collect(),
                false => axes,
            };
            one(reduce(cx, name, *kind, x()?, &axes, *keepdims, y()?)?)
        }
        LayerNormalization { axis, epsilon } => {
            let xd = cx.desc(&x()?)?;
            let stats = outs.iter().skip(1).any(Option::is_some);
            if stats && outs.iter().skip(1).flatten().any(|d| d.dtype != xd.dtype) {
                return unsupported("LayerNormalization's statistics in a dtype other than x's (LayerNormV3 gives them x's)");
            }
            let rank = xd.dims.len() as i64;
            let axis = if *axis < 0 { axis + rank } else { *axis };
            let norm: Vec<usize> = xd.dims[axis as usize..].iter().map(|&d| d as usize).collect();
            let beta = match ins.get(2).cloned().flatten() {
                Some(b) => b,
                None => {
                    let zeros = Tensor::new(norm.clone(), kiln_ir::Data::from_f64(xd.dtype, &vec![0.0; norm.iter().product()]))
                        .map_err(|e| Fail::Internal(e.to_string()))?;
                    cx.constant(&format!("{name}/beta"), &zeros)?
                }
            };
            // LayerNorm's prototype gives mean and variance the type list of x: kiln declares them
            // in x's dtype (RmsNorm's rstd is fp32).
            let stat =
                Desc::nd(xd.dtype, &xd.dims[..axis as usize].iter().map(|&d| d as usize).chain(norm.iter().map(|_| 1)).collect::<Vec<_>>());
            let inputs = [("x", Some(x()?)), ("gamma", Some(input(ins, 1)?)), ("beta", Some(beta))];
            let attrs =
                vec![("begin_norm_axis", Attr::Int(axis)), ("begin_params_axis", Attr::Int(axis)), ("epsilon", Attr::Float(*epsilon))];
            if stats {
                // LayerNormV3 returns the mean and 1/√(var + ε), ONNX's two statistics.
                let v = cx.op(name, "LayerNormV3", &inputs, vec![("y", y()?), ("mean", stat.clone()), ("rstd", stat)], attrs)?;
                return Ok(v.into_iter().take(outs.len()).zip(outs).map(|(p, o)| o.as_ref().map(|_| p)).collect());
            }
            let v = cx.op(name, "LayerNorm", &inputs, vec![("y", y()?), ("mean", stat.clone()), ("variance", stat)], attrs)?;
            Ok(std::iter::once(v.into_iter().next()).chain(std::iter::repeat_n(None, outs.len().saturating_sub(1))).collect())
        }
        RMSNormalization { axis, epsilon } => {
            let xd = cx.desc(&x()?)?;
            let rank = xd.dims.len() as i64;
            let axis = if *axis < 0 { axis + rank } else { *axis };
            let gd = cx.desc(&input(ins, 1)?)?;
            if gd.dims.len() as i64 != rank - axis {
                return unsupported("RMSNormalization whose scale does not cover every normalized axis");
            }
            let stat = Desc::nd(
                DType::F32,
                &xd.dims.iter().enumerate().map(|(i, &d)| if (i as i64) < axis { d as usize } else { 1 }).collect::<Vec<_>>(),
            );
            let inputs = [("x", Some(x()?)), ("gamma", Some(input(ins, 1)?))];
            let v = cx.op(name, "RmsNorm", &inputs, vec![("y", y()?), ("rstd", stat)], vec![("epsilon", Attr::Float(*epsilon))])?;
            Ok(vec![v.into_iter().next()])
        }
        Softmax { axis, legacy } | LogSoftmax { axis, legacy } => {
            let rank = cx.desc(&x()?)?.dims.len() as i64;
            let axis = if *axis < 0 { axis + rank } else { *axis };
            if *legacy && axis != rank - 1 {
                return unsupported("opset < 13 softmax over flattened trailing axes");
            }
            if matches!(op, Softmax { .. }) {
                let attrs = vec![("axes", Attr::ListInt(vec![axis])), ("half_to_float", Attr::Bool(false))];
                one(cx.op1(name, "SoftmaxV2", &[("x", Some(x()?))], y()?, attrs)?)
            } else {
                let v = cx.op(
                    name,
                    "LogSoftmaxV2",
                    &[("logits", Some(x()?))],
                    vec![("logsoftmax", y()?)],
                    vec![("axes", Attr::ListInt(vec![axis]))],
                )?;
                Ok(vec![v.into_iter().next()])
            }
        }
        Reshape { .. } | Flatten { .. } | Squeeze {} | Unsqueeze {} => one(reshape(cx, name, x()?, y()?)?),
        Transpose { perm } => {
            let rank = cx.desc(&x()?)?.dims.len();
            let perm = if perm.is_empty() { (0..rank as i64).rev().collect() } else { perm.clone() };
            one(cx.op1(name, "TransposeD", &[("x", Some(x()?))], y()?, vec![("perm", Attr::ListInt(perm))])?)
        }
        Concat { axis } => {
            let xs = ins.iter().cloned().collect::<Option<Vec<Port>>>().ok_or_else(|| Fail::Internal("a missing input".into()))?;
            one(concat(cx, name, xs, *axis, y()?)?)
        }
        Gather { axis } => {
            let axis = cx.ints(&format!("{name}/axis"), &[*axis])?;
            let inputs = [("x", Some(x()?)), ("indices", Some(input(ins, 1)?)), ("axis", Some(axis))];
            let attrs =
                vec![("batch_dims", Attr::Int(0)), ("is_preprocessed", Attr::Bool(false)), ("negative_index_support", Attr::Bool(true))];
            one(cx.op1(name, "GatherV2", &inputs, y()?, attrs)?)
        }
        Slice {} => {
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
                let (s, n) = kiln_ir::ops::slice_params(xd.dims[a] as usize, starts[i], ends[i], steps[i])
                    .map_err(|e| Fail::Internal(e.to_string()))?;
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
                false => {
                    cx.op1(&format!("{name}/reversed"), "ReverseV2D", &[("x", Some(x()?))], xd, vec![("axis", Attr::ListInt(reversed))])?
                }
            };
            one(strided_slice(cx, name, x, begin, end, strides, y()?)?)
        }
        Attention {
            is_causal,
            kv_num_heads,
            q_num_heads,
            qk_matmul_output_mode,
            scale,
            softcap,
            softmax_precision: _,
            zero_undefined_rows,
        } => {
            let a = AttentionAttrs {
                is_causal: *is_causal,
                q_heads: *q_num_heads,
                kv_heads: *kv_num_heads,
                scale: *scale,
                softcap: *softcap,
                qk_output_mode: *qk_matmul_output_mode,
                zero_undefined_rows: *zero_undefined_rows,
            };
            transformer::attention(cx, name, &a, ins, outs)
        }
        RotaryEmbedding { interleaved, num_heads, rotary_embedding_dim } => {
            transformer::rotary(cx, name, *interleaved, *num_heads, *rotary_embedding_dim, ins, outs)
        }
        Trilu { upper } => {
            let k = match ins.get(1).cloned().flatten() {
                Some(_) => const_ints(consts, 1, "Trilu's k")?.first().copied().unwrap_or(0),
                None => 0,
            };
            let ty = if *upper { "Triu" } else { "Tril" };
            one(cx.op1(name, ty, &[("x", Some(x()?))], y()?, vec![("diagonal", Attr::Int(k))])?)
        }
        Mean {} | LeakyRelu { .. } | Elu { .. } | Selu { .. } | Celu { .. } | HardSigmoid { .. } | Swish { .. } => {
            single(cx, name, op, ins, consts, outs, &format!("{} has no CANN mapping yet", op.display_name()))
        }
        DeformConv { .. }
        | SignalWindow { .. }
        | DFT { .. }
        | STFT { .. }
        | MelWeightMatrix { .. }
        | Det {}
        | NonMaxSuppression { .. }
        | RoiAlign { .. }
        | Unique { .. }
        | TensorScatter { .. }
        | MaxUnpool { .. }
        | Range {}
        | Shape { .. }
        | Size {}
        | ConstantOfShape { .. }
        | Einsum { .. }
        | NonZero {}
        | Compress { .. } => unsupported(format!("{} has no CANN mapping yet", op.display_name())),
        ArgMax { axis, keepdims: _, select_last_index } => one(index::arg_extreme(cx, name, true, *axis, *select_last_index, x()?, y()?)?),
        ArgMin { axis, keepdims: _, select_last_index } => one(index::arg_extreme(cx, name, false, *axis, *select_last_index, x()?, y()?)?),
        Hardmax { axis, legacy } => one(index::hardmax(cx, name, *axis, *legacy, x()?, y()?)?),
        GatherElements { axis } => one(index::gather_elements(cx, name, *axis, ins, known(1), y()?)?),
        GatherND { batch_dims } => one(index::gather_nd(cx, name, *batch_dims, ins, known(1), y()?)?),
        ScatterElements { axis, reduction } => one(index::scatter_elements(cx, name, *axis, *reduction, ins, known(1), y()?)?),
        ScatterND { reduction } => one(index::scatter_nd(cx, name, *reduction, ins, known(1), y()?)?),
        TopK { axis, largest, sorted } => index::top_k(cx, name, *axis, *largest, *sorted, ins, known(1), outs),
        OneHot { axis } => one(index::onnx_one_hot(cx, name, *axis, ins, consts, y()?)?),
        BatchNormalization { epsilon, momentum: _, training } => one(norm::batch_norm(cx, name, *epsilon, *training, ins, y()?)?),
        InstanceNormalization { epsilon } => one(norm::instance_norm(cx, name, *epsilon, ins, y()?)?),
        GroupNormalization { num_groups, epsilon } => one(norm::group_norm(cx, name, *num_groups, *epsilon, ins, y()?)?),
        LpNormalization { axis, p } => one(norm::lp_norm(cx, name, *axis, *p, x()?, y()?)?),
        MeanVarianceNormalization { axes } => one(norm::mean_variance(cx, name, axes, x()?, y()?)?),
        LRN { alpha, beta, bias, size } => one(norm::lrn(cx, name, *alpha, *beta, *bias, *size, x()?, y()?)?),
        Tile {} => one(movement::tile(cx, name, x()?, &const_ints(consts, 1, "Tile's repeats")?, y()?)?),
        Pad { mode } => one(movement::pad(cx, name, *mode, ins, consts, y()?)?),
        CenterCropPad { .. } => one(movement::center_crop_pad(cx, name, x()?, y()?)?),
        DepthToSpace { blocksize, mode } => one(movement::depth_to_space(cx, name, *blocksize, *mode, x()?, y()?)?),
        SpaceToDepth { blocksize } => one(movement::space_to_depth(cx, name, *blocksize, x()?, y()?)?),
        ReverseSequence { batch_axis, time_axis } => one(movement::reverse_sequence(cx, name, *batch_axis, *time_axis, ins, y()?)?),
        EyeLike { k, .. } => one(movement::eye_like(cx, name, *k, y()?)?),
        QuantizeLinear { axis, saturate: _, block_size, output_dtype: _ } => one(quant::quantize(cx, name, *axis, *block_size, ins, y()?)?),
        DequantizeLinear { axis, block_size, output_dtype: _ } => one(quant::dequantize(cx, name, *axis, *block_size, ins, y()?)?),
        DynamicQuantizeLinear {} => quant::dynamic_quantize(cx, name, x()?, outs),
        MatMulInteger {} => one(quant::matmul_integer(cx, name, ins, y()?)?),
        QLinearMatMul {} => one(quant::qlinear_matmul(cx, name, ins, y()?)?),
        ConvInteger { kernel_shape, strides, pads, dilations, group, auto_pad } => {
            // Without kernel_shape, the weight's spatial dims.
            let kernel = match kernel_shape.is_empty() {
                true => cx.desc(&input(ins, 1)?)?.dims.get(2..).map(<[i64]>::to_vec).unwrap_or_default(),
                false => kernel_shape.clone(),
            };
            let w = window(&kernel, strides, pads, dilations, *auto_pad);
            let conv =
                |cx: &mut Cx, ins: &[Option<Port>], out: Desc| conv2d(cx, &format!("{name}/conv"), &w, *group, Format::Nchw, ins, out);
            one(quant::conv_integer(cx, name, conv, ins, y()?)?)
        }
        ConvTranspose { kernel_shape, strides, pads, dilations, group, auto_pad, output_padding, output_shape } => {
            let p = super::conv_transpose::Params {
                kernel_shape,
                strides,
                pads,
                dilations,
                group: *group,
                auto_pad: *auto_pad,
                output_padding,
                output_shape,
            };
            one(super::conv_transpose::conv_transpose(cx, name, &p, ins, y()?)?)
        }
        CumSum { exclusive, reverse } => {
            let Some(&axis) = const_ints(consts, 1, "CumSum's axis")?.first() else {
                return Err(Fail::Internal("CumSum without an axis".into()));
            };
            let axis = cx.scalar(&format!("{name}/axis"), DType::I64, axis as f64)?;
            let attrs = vec![("exclusive", Attr::Bool(*exclusive)), ("reverse", Attr::Bool(*reverse))];
            one(cx.op1(name, "Cumsum", &[("x", Some(x()?)), ("axis", Some(axis))], y()?, attrs)?)
        }
        AffineGrid { align_corners } => {
            let size = const_ints(consts, 1, "AffineGrid's size")?;
            let size = Tensor::new(vec![size.len()], kiln_ir::Data::I32(size.iter().map(|&v| v as i32).collect()))
                .map_err(|e| Fail::Internal(e.to_string()))?;
            let size = cx.constant(&format!("{name}/output_size"), &size)?;
            let inputs = [("theta", Some(x()?)), ("output_size", Some(size))];
            one(cx.op1(name, "AffineGrid", &inputs, y()?, vec![("align_corners", Attr::Bool(*align_corners))])?)
        }
        LSTM { .. } | GRU { .. } | RNN { .. } => super::recurrent::recurrent(cx, name, op, ins, outs),
        Col2Im { dilations, pads, strides } => one(movement::col2im(cx, name, dilations, pads, strides, ins, consts, y()?)?),
        Resize { .. } => one(super::resample::resize(cx, name, op, ins, consts, y()?)?),
        GridSample { mode, padding_mode, align_corners } => {
            one(super::resample::grid_sample(cx, name, *mode, *padding_mode, *align_corners, ins, y()?)?)
        }
        QLinearConv { kernel_shape, strides, pads, dilations, group, auto_pad } => {
            let kernel = match kernel_shape.is_empty() {
                true => cx.desc(&input(ins, 3)?)?.dims.get(2..).map(<[i64]>::to_vec).unwrap_or_default(),
                false => kernel_shape.clone(),
            };
            let w = window(&kernel, strides, pads, dilations, *auto_pad);
            let conv =
                |cx: &mut Cx, ins: &[Option<Port>], out: Desc| conv2d(cx, &format!("{name}/conv"), &w, *group, Format::Nchw, ins, out);
            one(quant::qlinear_conv(cx, name, conv, ins, y()?)?)
        }
        NegativeLogLikelihoodLoss { reduction, ignore_index } => {
            super::loss::negative_log_likelihood(cx, name, *reduction, *ignore_index, ins, outs)
        }
        SoftmaxCrossEntropyLoss { reduction, ignore_index } => {
            super::loss::softmax_cross_entropy(cx, name, *reduction, *ignore_index, ins, outs)
        }
        If { .. } | Loop { .. } | Scan { .. } => unsupported("control flow: the 910b graph is static"),
    }
}

/// An elementwise op no CANN built-in computes, as an AscendC kernel of its own (a body of one
/// node); unsupported with `why` where the vector kernels cannot compute it either.
fn single(
    cx: &mut Cx,
    name: &str,
    op: &Op,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
    why: &str,
) -> Result<Outs, Fail> {
    let [Some(out)] = outs else { return unsupported(why) };
    let mut body = kiln_ir::Graph::new("single");
    let mut args = vec![];
    let mut vals = vec![];
    for (i, p) in ins.iter().enumerate() {
        let Some(p) = p else {
            vals.push(None);
            continue;
        };
        let d = cx.desc(p)?;
        let shape = kiln_ir::Shape::fixed(&d.shape());
        let v = match consts.get(i).copied().flatten() {
            Some(t) if t.numel() == 1 => body.add_const(format!("k{i}"), std::sync::Arc::new(t.clone())),
            _ => {
                args.push(p.clone());
                body.add_input(format!("in{i}"), kiln_ir::TensorType::new(d.dtype, shape))
            }
        };
        vals.push(Some(v));
    }
    let made = body.add_node("n", op.clone(), vals, &[Some("y".into())]).map_err(|e| Fail::Internal(e.to_string()))?;
    body.outputs = made.into_iter().flatten().collect();
    match cx.kernel(name, &body, args, out, 1)? {
        Some(p) => Ok(vec![Some(p)]),
        None => unsupported(why),
    }
}

/// A fused elementwise body over `args`: one AscendC kernel where the vector kernels compute
/// it, CANN built-ins op by op otherwise.
fn epilogue(cx: &mut Cx, name: &str, body: &kiln_ir::Graph, args: Vec<Port>, outs: &[Option<Desc>]) -> Result<Outs, Fail> {
    if let [Some(out)] = outs {
        if let Some(p) = cx.kernel(name, body, args.clone(), out, 2)? {
            return Ok(vec![Some(p)]);
        }
    }
    Ok(cx.body(name, body, args)?.into_iter().map(Some).collect())
}

/// TransData of `x` (src → dst).
fn transdata(cx: &mut Cx, name: &str, x: Port, out: Desc, src: &str, dst: &str) -> Result<Port, Fail> {
    let v = cx.op(name, "TransData", &[("src", Some(x))], vec![("dst", out)], transdata_attrs(src, dst))?;
    v.into_iter().next().ok_or_else(|| Fail::Internal("TransData made no output".into()))
}

fn transdata_attrs(src: &str, dst: &str) -> Vec<(&'static str, Attr)> {
    vec![
        ("src_format", Attr::str(src)),
        ("dst_format", Attr::str(dst)),
        ("src_subformat", Attr::Int(0)),
        ("dst_subformat", Attr::Int(0)),
        ("groups", Attr::Int(1)),
    ]
}

/// ConcatD of `xs` along `axis`.
pub(super) fn concat(cx: &mut Cx, name: &str, xs: Vec<Port>, axis: i64, out: Desc) -> Result<Port, Fail> {
    let names: Vec<String> = (0..xs.len()).map(|i| format!("x{i}")).collect();
    let attrs = vec![("concat_dim", Attr::Int(axis)), ("N", Attr::Int(xs.len() as i64))];
    let inputs: Vec<(&str, Option<Port>)> = names.iter().map(|n| n.as_str()).zip(xs.into_iter().map(Some)).collect();
    cx.op1(name, "ConcatD", &inputs, out, attrs)
}

/// StridedSliceD of `x` (no masks: every axis has its begin, end and stride).
pub(super) fn strided_slice(
    cx: &mut Cx,
    name: &str,
    x: Port,
    begin: Vec<i64>,
    end: Vec<i64>,
    strides: Vec<i64>,
    out: Desc,
) -> Result<Port, Fail> {
    let attrs = vec![
        ("begin", Attr::ListInt(begin)),
        ("end", Attr::ListInt(end)),
        ("strides", Attr::ListInt(strides)),
        ("begin_mask", Attr::Int(0)),
        ("end_mask", Attr::Int(0)),
        ("ellipsis_mask", Attr::Int(0)),
        ("new_axis_mask", Attr::Int(0)),
        ("shrink_axis_mask", Attr::Int(0)),
    ];
    cx.op1(name, "StridedSliceD", &[("x", Some(x))], out, attrs)
}

/// Cast of `x` to `out` (its dtype in the C++ numbering, as `dst_type` takes it).
pub(super) fn cast(cx: &mut Cx, name: &str, x: Port, out: Desc) -> Result<Port, Fail> {
    let Some(g) = crate::ge::dtype::ge_type(out.dtype) else { return unsupported(format!("GE has no {} type", out.dtype)) };
    cx.op1(name, "Cast", &[("x", Some(x))], out, vec![("dst_type", Attr::Int(g.cpp))])
}

/// A Reduce*D op over `axes` of `x`.
fn reduce_d(cx: &mut Cx, name: &str, ty: &str, x: Port, axes: &[i64], keep: bool, out: Desc) -> Result<Port, Fail> {
    let mut attrs = vec![("axes", Attr::ListInt(axes.to_vec())), ("keep_dims", Attr::Bool(keep))];
    if ty == "ReduceMeanD" {
        attrs.push(("noop_with_empty_axes", Attr::Bool(false)));
    }
    cx.op1(name, ty, &[("x", Some(x))], out, attrs)
}

/// ONNX's reductions: the five CANN has, and the others composed from them and elementwise
/// ops (L1 = Σ|x|, L2 = √Σx², sum of squares, log Σx, and log Σeˣ shifted by the maximum).
fn reduce(cx: &mut Cx, name: &str, kind: ReduceKind, x: Port, axes: &[i64], keep: bool, out: Desc) -> Result<Port, Fail> {
    let xd = cx.desc(&x)?;
    let rank = xd.dims.len() as i64;
    let kept: Vec<usize> = xd
        .dims
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.iter().any(|&a| (if a < 0 { a + rank } else { a }) == i as i64) { 1 } else { d as usize })
        .collect();
    let at = |s: &str| format!("{name}/{s}");
    let unary = |cx: &mut Cx, n: &str, ty: &str, p: Port, d: Desc| {
        let attrs = if ty == "Exp" || ty == "Log" { exp_log_attrs() } else { vec![] };
        cx.op1(n, ty, &[("x", Some(p))], d, attrs)
    };
    let binary = |cx: &mut Cx, n: &str, ty: &str, a: Port, b: Port, d: Desc| cx.op1(n, ty, &[("x1", Some(a)), ("x2", Some(b))], d, vec![]);
    // The reductions CANN computes only as several ops are one AscendC kernel where the reduced
    // axes are one contiguous block and at least 32 bytes stay contiguous per row.
    let fused = match kind {
        ReduceKind::SumSquare => Some(Fused::SumSquare),
        ReduceKind::L1 => Some(Fused::L1),
        ReduceKind::L2 => Some(Fused::L2),
        ReduceKind::LogSum => Some(Fused::LogSum),
        ReduceKind::LogSumExp => Some(Fused::LogSumExp),
        ReduceKind::Sum | ReduceKind::Mean | ReduceKind::Max | ReduceKind::Min | ReduceKind::Prod => None,
    };
    let mut norm: Vec<usize> = axes.iter().map(|&a| (if a < 0 { a + rank } else { a }) as usize).collect();
    norm.sort_unstable();
    norm.dedup();
    let block = norm.first().zip(norm.last()).filter(|(f, l)| *l - *f + 1 == norm.len()).map(|(f, l)| (*f, *l));
    if let (Some(f), Some((first, last))) = (fused, block) {
        let dims: Vec<usize> = xd.dims.iter().map(|&d| d as usize).collect();
        let view = [dims[..first].iter().product(), dims[first..=last].iter().product(), dims[last + 1..].iter().product()];
        if let Some(p) = cx.reduce_kernel(name, f, x.clone(), view, &out)? {
            return Ok(p);
        }
    }
    match kind {
        ReduceKind::Sum => reduce_d(cx, name, "ReduceSumD", x, axes, keep, out),
        ReduceKind::Mean => reduce_d(cx, name, "ReduceMeanD", x, axes, keep, out),
        ReduceKind::Max => reduce_d(cx, name, "ReduceMaxD", x, axes, keep, out),
        ReduceKind::Min => reduce_d(cx, name, "ReduceMinD", x, axes, keep, out),
        ReduceKind::Prod => reduce_d(cx, name, "ReduceProdD", x, axes, keep, out),
        ReduceKind::L1 => {
            let a = unary(cx, &at("abs"), "Abs", x, xd.clone())?;
            reduce_d(cx, name, "ReduceSumD", a, axes, keep, out)
        }
        ReduceKind::SumSquare => {
            let sq = binary(cx, &at("square"), "Mul", x.clone(), x, xd.clone())?;
            reduce_d(cx, name, "ReduceSumD", sq, axes, keep, out)
        }
        ReduceKind::L2 => {
            let sq = binary(cx, &at("square"), "Mul", x.clone(), x, xd.clone())?;
            let s = reduce_d(cx, &at("sum"), "ReduceSumD", sq, axes, keep, out.clone())?;
            unary(cx, name, "Sqrt", s, out)
        }
        ReduceKind::LogSum => {
            let s = reduce_d(cx, &at("sum"), "ReduceSumD", x, axes, keep, out.clone())?;
            unary(cx, name, "Log", s, out)
        }
        ReduceKind::LogSumExp => {
            let kd = Desc::nd(xd.dtype, &kept);
            let m = reduce_d(cx, &at("max"), "ReduceMaxD", x.clone(), axes, true, kd.clone())?;
            let z = binary(cx, &at("shift"), "Sub", x, m.clone(), xd.clone())?;
            let e = unary(cx, &at("exp"), "Exp", z, xd)?;
            let s = reduce_d(cx, &at("sum"), "ReduceSumD", e, axes, true, kd.clone())?;
            let l = unary(cx, &at("log"), "Log", s, kd.clone())?;
            let add_name = if keep { name.to_string() } else { at("unshift") };
            let r = binary(cx, &add_name, "Add", l, m, kd)?;
            if keep {
                Ok(r)
            } else {
                reshape(cx, name, r, out)
            }
        }
    }
}

/// A 1-D window `[N, C, L]` as the 2-D window `[N, C, 1, L]`: kernel, stride and dilation 1
/// and no padding along the new axis.
fn as_2d(w: &Window) -> Window {
    let one = |v: &[i64], fill: i64| if v.is_empty() { vec![] } else { std::iter::once(fill).chain(v.iter().copied()).collect() };
    let pads = match w.pads[..] {
        [b, e] => vec![0, b, 0, e],
        _ => w.pads.clone(),
    };
    Window {
        kernel_shape: one(&w.kernel_shape, 1),
        strides: one(&w.strides, 1),
        pads,
        dilations: one(&w.dilations, 1),
        auto_pad: w.auto_pad,
    }
}

/// [`pool_2d`] of a 1-D or 2-D window (a 1-D one through `[N, C, 1, L]`).
#[allow(clippy::too_many_arguments)]
fn pool(
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
    let p = pool_2d(cx, &format!("{name}/pool"), ty, &as_2d(w), ceil_mode, exclusive, &[Some(x4)], o4)?;
    reshape(cx, name, p, out)
}

/// LpPool: `(Σ|x|^p)^(1/p)` over each window, the sum as AvgPoolV2 (padding counted) times
/// the window size.
fn lp_pool(cx: &mut Cx, name: &str, w: &Window, ceil_mode: bool, p: i64, x: Port, out: Desc) -> Result<Port, Fail> {
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
fn pool_2d(
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
