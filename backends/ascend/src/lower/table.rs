//! The kiln op → CANN built-in op table. Every op of the IR has an arm: the CANN ops it
//! becomes (their prototypes are checked against `crate::ge::prototypes`), or why it has none
//! yet. An arm longer than a few lines is a function of its op family's file beside this one.
//! Attributes are written explicitly, defaults included, as TorchAir does.

use super::elementwise as ew;
use super::ops::{cast, concat, const_ints, input, one, output, reshape, Outs};
use super::transformer::{self, AttentionAttrs};
use super::{conv, fused, index, matmul, movement, norm, quant, reduce, resample};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::ops::{Format, GeluApprox};
use kiln_ir::{Op, Tensor};

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
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    let known = |i: usize| consts.get(i).copied().flatten();
    let kernel_or = |cx: &mut Cx, builtins: &dyn Fn(&mut Cx) -> Result<Outs, Fail>| match fused::single(cx, name, op, ins, consts, outs)? {
        Some(v) => Ok(v),
        None => builtins(cx),
    };
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
            None => kernel_or(cx, &|cx: &mut Cx| one(ew::composed_unary(cx, name, *u, x()?, y()?)?)),
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
        Split { axis } => movement::split(cx, name, axis, ins, consts, outs),
        Expand {} => {
            let out = y()?;
            one(cx.op1(name, "BroadcastToD", &[("x", Some(x()?))], out.clone(), vec![("shape", Attr::ListInt(out.dims))])?)
        }
        Cast { .. } | CastLike { .. } => one(cast(cx, name, x()?, y()?)?),
        MatMul {} => one(matmul::matmul(cx, name, ins, y()?)?),
        Gemm { alpha, beta, trans_a, trans_b } => matmul::gemm(cx, name, alpha, beta, trans_a, trans_b, ins, consts, outs),
        Conv { kernel_shape, strides, pads, dilations, group, auto_pad } => {
            let w = conv::window(kernel_shape, strides, pads, dilations, *auto_pad);
            one(conv::conv2d(cx, name, &w, *group, Format::Nchw, ins, y()?)?)
        }
        ConvFused { kernel_shape, strides, pads, dilations, group, auto_pad, format, align: _, body } => fused::conv_fused(
            cx,
            name,
            &conv::window(kernel_shape, strides, pads, dilations, *auto_pad),
            group,
            format,
            body,
            ins,
            consts,
            outs,
        ),
        MatMulFused { splits, body } => fused::matmul_fused(cx, name, splits, body, ins, consts, outs),
        FusedElementwise { body } => {
            let args = ins.iter().cloned().collect::<Option<Vec<Port>>>().ok_or_else(|| Fail::Internal("a missing input".into()))?;
            fused::epilogue(cx, name, body, args, outs)
        }
        ToFormat { format: Format::Nc1hwc0, .. } => {
            let xd = cx.desc(&x()?)?;
            let out = conv::nc1hwc0(&xd, &y()?);
            one(conv::transdata(cx, name, x()?, out, "NCHW", "NC1HWC0")?)
        }
        FromFormat { format: Format::Nc1hwc0, .. } => one(conv::transdata(cx, name, x()?, y()?.with_format("NCHW"), "NC1HWC0", "NCHW")?),
        ToFormat { format, .. } | FromFormat { format, .. } => unsupported(format!("conversion to {} is not a 910b format", format.name())),
        MaxPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, storage_order: _ } => {
            conv::max_pool(cx, name, &conv::window(kernel_shape, strides, pads, dilations, *auto_pad), ceil_mode, ins, consts, outs)
        }
        AveragePool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, count_include_pad } => {
            let w = conv::window(kernel_shape, strides, pads, dilations, *auto_pad);
            conv::average_pool(cx, name, &w, ceil_mode, count_include_pad, ins, consts, outs)
        }
        LpPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, p } => {
            conv::lp_pool_node(cx, name, &conv::window(kernel_shape, strides, pads, dilations, *auto_pad), ceil_mode, p, ins, consts, outs)
        }
        GlobalPool { kind, .. } => reduce::global_pool(cx, name, kind, ins, consts, outs),
        Reduce { kind, keepdims, noop_with_empty_axes } => {
            reduce::reduce_node(cx, name, kind, keepdims, noop_with_empty_axes, ins, consts, outs)
        }
        LayerNormalization { axis, epsilon } => norm::layer_norm(cx, name, axis, epsilon, ins, consts, outs),
        RMSNormalization { axis, epsilon } => norm::rms_norm(cx, name, axis, epsilon, ins, consts, outs),
        Softmax { axis, legacy } => norm::softmax(cx, name, false, axis, legacy, ins, consts, outs),
        LogSoftmax { axis, legacy } => norm::softmax(cx, name, true, axis, legacy, ins, consts, outs),
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
        Slice {} => movement::slice(cx, name, ins, consts, outs),
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
        // One AscendC kernel where it takes the operands, else CANN built-ins op by op.
        Mean {} => kernel_or(cx, &|cx: &mut Cx| one(ew::mean(cx, name, ins, y()?)?)),
        LeakyRelu { alpha } => kernel_or(cx, &|cx: &mut Cx| one(ew::leaky_relu(cx, name, *alpha, x()?, y()?)?)),
        Elu { alpha } => kernel_or(cx, &|cx: &mut Cx| one(ew::exp_linear(cx, name, *alpha, 1.0, 1.0, x()?, y()?)?)),
        Selu { alpha, gamma } => kernel_or(cx, &|cx: &mut Cx| one(ew::exp_linear(cx, name, *alpha, *gamma, 1.0, x()?, y()?)?)),
        Celu { alpha } => kernel_or(cx, &|cx: &mut Cx| one(ew::exp_linear(cx, name, *alpha, 1.0, *alpha, x()?, y()?)?)),
        HardSigmoid { alpha, beta } => kernel_or(cx, &|cx: &mut Cx| one(ew::hard_sigmoid(cx, name, *alpha, *beta, x()?, y()?)?)),
        Swish { alpha } => kernel_or(cx, &|cx: &mut Cx| one(ew::swish(cx, name, *alpha, x()?, y()?)?)),
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
            quant::conv_integer(cx, name, &conv::window(kernel_shape, strides, pads, dilations, *auto_pad), group, ins, consts, outs)
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
        CumSum { exclusive, reverse } => movement::cumsum(cx, name, exclusive, reverse, ins, consts, outs),
        AffineGrid { align_corners } => resample::affine_grid(cx, name, align_corners, ins, consts, outs),
        LSTM { .. } | GRU { .. } | RNN { .. } => super::recurrent::recurrent(cx, name, op, ins, outs),
        Col2Im { dilations, pads, strides } => one(movement::col2im(cx, name, dilations, pads, strides, ins, consts, y()?)?),
        Resize {
            mode,
            coordinate_transformation_mode: ctm,
            nearest_mode,
            cubic_coeff_a,
            exclude_outside,
            extrapolation_value,
            antialias,
            axes,
            keep_aspect_ratio_policy: policy,
        } => one(resample::resize(
            cx,
            name,
            mode,
            ctm,
            nearest_mode,
            cubic_coeff_a,
            exclude_outside,
            extrapolation_value,
            antialias,
            axes,
            policy,
            ins,
            consts,
            y()?,
        )?),
        GridSample { mode, padding_mode, align_corners } => {
            one(super::resample::grid_sample(cx, name, *mode, *padding_mode, *align_corners, ins, y()?)?)
        }
        QLinearConv { kernel_shape, strides, pads, dilations, group, auto_pad } => {
            quant::qlinear_conv(cx, name, &conv::window(kernel_shape, strides, pads, dilations, *auto_pad), group, ins, consts, outs)
        }
        NegativeLogLikelihoodLoss { reduction, ignore_index } => {
            super::loss::negative_log_likelihood(cx, name, *reduction, *ignore_index, ins, outs)
        }
        SoftmaxCrossEntropyLoss { reduction, ignore_index } => {
            super::loss::softmax_cross_entropy(cx, name, *reduction, *ignore_index, ins, outs)
        }
        If { .. } | Loop { .. } | Scan { .. } => unsupported("control flow: the 910b graph is static"),
        MatMulQ8 {} => super::quantized_products::matmul_q8(cx, name, ins, consts, outs),
        MatMulQ4 { group_size } => super::quantized_products::matmul_q4(cx, name, *group_size, ins, consts, outs),
        Trap { message, .. } => unsupported(format!("{message} (the 910b graph is static: only the interpreter runs such an If)")),
    }
}
