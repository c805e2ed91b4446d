//! The ONNX op mapping table: (op type, first opset) → lowering. One-line lowerings live in the
//! table; longer ones in [`super::lowerings`]. Sorted by op type then opset (a test checks).

use super::lowerings::*;
use super::node::{unsupported, Cx, LowerError, Out, R};
use super::tensor::{dtype_from_onnx, tensor_from_proto};
use kiln_ir::ops::{DepthToSpaceMode, GeluApprox, GridMode, GridPadding, PoolKind, ReduceKind, ScatterReduction, WindowKind};
use kiln_ir::{BinaryOp, Data, Op, Tensor, UnaryOp};

/// (op type, first opset this lowering applies to, lowering).
type Entry = (&'static str, i64, fn(&mut Cx) -> R);

fn unary(op: UnaryOp) -> impl Fn(&mut Cx) -> R {
    move |cx| Ok(Out::Node(Op::Unary { op }, vec![Some(cx.req(0)?)]))
}

macro_rules! un {
    ($name:literal, $op:ident) => {
        ($name, 1, |cx: &mut Cx| unary(UnaryOp::$op)(cx))
    };
}
macro_rules! bin {
    ($name:literal, $op:ident) => {
        ($name, 1, |cx: &mut Cx| Ok(Out::Node(Op::Binary { op: BinaryOp::$op }, vec![Some(cx.req(0)?), Some(cx.req(1)?)])))
    };
}

/// Every ONNX op kiln imports. Keep sorted by op type, then opset.
static TABLE: &[Entry] = &[
    un!("Abs", Abs),
    un!("Acos", Acos),
    un!("Acosh", Acosh),
    bin!("Add", Add),
    ("AffineGrid", 20, |cx| {
        Ok(Out::Node(Op::AffineGrid { align_corners: cx.b("align_corners", false)? }, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))
    }),
    bin!("And", And),
    ("ArgMax", 1, |cx| arg(cx, true)),
    ("ArgMin", 1, |cx| arg(cx, false)),
    un!("Asin", Asin),
    un!("Asinh", Asinh),
    un!("Atan", Atan),
    un!("Atanh", Atanh),
    ("Attention", 23, attention),
    ("AveragePool", 1, |cx| pool(cx, "avg")),
    ("BatchNormalization", 1, batch_norm),
    ("BitShift", 11, |cx| {
        let op = if cx.s("direction", "")? == "LEFT" { BinaryOp::BitShiftLeft } else { BinaryOp::BitShiftRight };
        Ok(Out::Node(Op::Binary { op }, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))
    }),
    bin!("BitwiseAnd", BitwiseAnd),
    un!("BitwiseNot", BitwiseNot),
    bin!("BitwiseOr", BitwiseOr),
    bin!("BitwiseXor", BitwiseXor),
    ("BlackmanWindow", 17, |cx| window(cx, WindowKind::Blackman)),
    ("Cast", 1, |cx| {
        let to = dtype_from_onnx(cx.i("to", 0)? as i32).map_err(|d| LowerError::Unsupported(format!("Cast to {d}")))?;
        Ok(Out::Node(Op::Cast { to, saturate: cx.b("saturate", true)?, round_mode: round_mode(cx)? }, vec![Some(cx.req(0)?)]))
    }),
    ("CastLike", 15, |cx| {
        Ok(Out::Node(
            Op::CastLike { saturate: cx.b("saturate", true)?, round_mode: round_mode(cx)? },
            vec![Some(cx.req(0)?), Some(cx.req(1)?)],
        ))
    }),
    un!("Ceil", Ceil),
    ("Celu", 12, |cx| Ok(Out::Node(Op::Celu { alpha: cx.f("alpha", 1.0)? }, vec![Some(cx.req(0)?)]))),
    ("CenterCropPad", 18, |cx| Ok(Out::Node(Op::CenterCropPad { axes: cx.ints("axes")? }, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))),
    ("Clip", 1, |cx| {
        let x = cx.req(0)?;
        let dt = cx.dtype(x);
        let lo = cx.f("min", f32::NEG_INFINITY)? as f64;
        let hi = cx.f("max", f32::INFINITY)? as f64;
        let (l, h) = (cx.scalar_const("min", dt, lo), cx.scalar_const("max", dt, hi));
        Ok(Out::Node(Op::Clip {}, vec![Some(x), Some(l), Some(h)]))
    }),
    ("Clip", 11, |cx| Ok(Out::Node(Op::Clip {}, cx.all()))),
    ("Col2Im", 18, |cx| {
        Ok(Out::Node(Op::Col2Im { dilations: cx.ints("dilations")?, pads: cx.ints("pads")?, strides: cx.ints("strides")? }, cx.all()))
    }),
    ("Compress", 9, |cx| Ok(Out::Node(Op::Compress { axis: cx.a.opt_i("axis")? }, cx.all()))),
    ("Concat", 1, |cx| Ok(Out::Node(Op::Concat { axis: cx.i("axis", 1)? }, cx.all()))),
    ("Concat", 4, |cx| {
        Ok(Out::Node(
            Op::Concat {
                axis: cx.i("axis", i64::MIN).and_then(|a| {
                    if a == i64::MIN {
                        Err(LowerError::Invalid("attribute `axis` is required".into()))
                    } else {
                        Ok(a)
                    }
                })?,
            },
            cx.all(),
        ))
    }),
    ("Constant", 1, constant),
    ("ConstantOfShape", 9, |cx| {
        let value = match cx.a.t("value")? {
            Some(t) => tensor_from_proto(t, None).map_err(|e| LowerError::Invalid(e.to_string()))?,
            None => Tensor::new(vec![1], Data::F32(vec![0.0])).map_err(|e| LowerError::Invalid(e.to_string()))?,
        };
        Ok(Out::Node(Op::ConstantOfShape { value }, vec![Some(cx.req(0)?)]))
    }),
    ("Conv", 1, |cx| conv(cx, "conv")),
    ("ConvInteger", 10, |cx| conv(cx, "integer")),
    ("ConvTranspose", 1, conv_transpose),
    un!("Cos", Cos),
    un!("Cosh", Cosh),
    ("CumSum", 11, |cx| {
        Ok(Out::Node(
            Op::CumSum { exclusive: cx.b("exclusive", false)?, reverse: cx.b("reverse", false)? },
            vec![Some(cx.req(0)?), Some(cx.req(1)?)],
        ))
    }),
    ("DFT", 17, |cx| {
        let axis = cx.i("axis", 1)?;
        let a = cx.ints_const("axis", &[axis]);
        Ok(Out::Node(
            Op::DFT { inverse: cx.b("inverse", false)?, onesided: cx.b("onesided", false)? },
            vec![Some(cx.req(0)?), cx.inp(1), Some(a)],
        ))
    }),
    ("DFT", 20, |cx| Ok(Out::Node(Op::DFT { inverse: cx.b("inverse", false)?, onesided: cx.b("onesided", false)? }, cx.all()))),
    ("DeformConv", 19, |cx| {
        let op = Op::DeformConv {
            kernel_shape: cx.ints("kernel_shape")?,
            strides: cx.ints("strides")?,
            pads: cx.ints("pads")?,
            dilations: cx.ints("dilations")?,
            group: cx.i("group", 1)?,
            offset_group: cx.i("offset_group", 1)?,
        };
        Ok(Out::Node(op, cx.all()))
    }),
    ("DepthToSpace", 1, |cx| {
        let mode = match cx.s("mode", "DCR")?.as_str() {
            "DCR" => DepthToSpaceMode::Dcr,
            "CRD" => DepthToSpaceMode::Crd,
            m => return unsupported(format!("mode `{m}`")),
        };
        Ok(Out::Node(Op::DepthToSpace { blocksize: cx.i("blocksize", 0)?, mode }, vec![Some(cx.req(0)?)]))
    }),
    ("DequantizeLinear", 10, |cx| {
        let output_dtype = match cx.i("output_dtype", 0)? {
            0 => None,
            c => Some(dtype_from_onnx(c as i32).map_err(LowerError::Unsupported)?),
        };
        Ok(Out::Node(Op::DequantizeLinear { axis: cx.i("axis", 1)?, block_size: cx.i("block_size", 0)?, output_dtype }, cx.all()))
    }),
    ("Det", 11, |cx| Ok(Out::Node(Op::Det {}, vec![Some(cx.req(0)?)]))),
    bin!("Div", Div),
    ("Dropout", 1, |cx| Ok(Out::Node(Op::Dropout {}, cx.all()))),
    ("DynamicQuantizeLinear", 11, |cx| Ok(Out::Node(Op::DynamicQuantizeLinear {}, vec![Some(cx.req(0)?)]))),
    ("Einsum", 12, |cx| Ok(Out::Node(Op::Einsum { equation: cx.s("equation", "")? }, cx.all()))),
    ("Elu", 1, |cx| Ok(Out::Node(Op::Elu { alpha: cx.f("alpha", 1.0)? }, vec![Some(cx.req(0)?)]))),
    bin!("Equal", Equal),
    un!("Erf", Erf),
    un!("Exp", Exp),
    ("Expand", 8, |cx| Ok(Out::Node(Op::Expand {}, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))),
    ("EyeLike", 9, |cx| {
        let dtype = match cx.a.opt_i("dtype")? {
            Some(c) => Some(dtype_from_onnx(c as i32).map_err(LowerError::Unsupported)?),
            None => None,
        };
        Ok(Out::Node(Op::EyeLike { dtype, k: cx.i("k", 0)? }, vec![Some(cx.req(0)?)]))
    }),
    ("Flatten", 1, |cx| Ok(Out::Node(Op::Flatten { axis: cx.i("axis", 1)? }, vec![Some(cx.req(0)?)]))),
    un!("Floor", Floor),
    ("GRU", 7, |cx| recurrent(cx, "gru")),
    ("Gather", 1, |cx| Ok(Out::Node(Op::Gather { axis: cx.i("axis", 0)? }, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))),
    ("GatherElements", 11, |cx| Ok(Out::Node(Op::GatherElements { axis: cx.i("axis", 0)? }, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))),
    ("GatherND", 11, |cx| Ok(Out::Node(Op::GatherND { batch_dims: cx.i("batch_dims", 0)? }, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))),
    ("Gelu", 20, |cx| {
        let approximate = match cx.s("approximate", "none")?.as_str() {
            "none" => GeluApprox::None,
            "tanh" => GeluApprox::Tanh,
            m => return unsupported(format!("approximate `{m}`")),
        };
        Ok(Out::Node(Op::Gelu { approximate }, vec![Some(cx.req(0)?)]))
    }),
    ("Gemm", 1, |cx| {
        let op = Op::Gemm {
            alpha: cx.f("alpha", 1.0)?,
            beta: cx.f("beta", 1.0)?,
            trans_a: cx.b("transA", false)?,
            trans_b: cx.b("transB", false)?,
        };
        Ok(Out::Node(op, cx.all()))
    }),
    ("GlobalAveragePool", 1, |cx| Ok(Out::Node(Op::GlobalPool { kind: PoolKind::Average, p: 2 }, vec![Some(cx.req(0)?)]))),
    ("GlobalLpPool", 1, |cx| Ok(Out::Node(Op::GlobalPool { kind: PoolKind::Lp, p: cx.i("p", 2)? }, vec![Some(cx.req(0)?)]))),
    ("GlobalMaxPool", 1, |cx| Ok(Out::Node(Op::GlobalPool { kind: PoolKind::Max, p: 2 }, vec![Some(cx.req(0)?)]))),
    bin!("Greater", Greater),
    bin!("GreaterOrEqual", GreaterOrEqual),
    ("GridSample", 16, |cx| {
        let mode = match cx.s("mode", if cx.opset < 20 { "bilinear" } else { "linear" })?.as_str() {
            "bilinear" | "linear" => GridMode::Linear,
            "nearest" => GridMode::Nearest,
            "bicubic" | "cubic" => GridMode::Cubic,
            m => return Err(LowerError::Invalid(format!("unknown mode `{m}`"))),
        };
        let p = cx.s("padding_mode", "zeros")?;
        let padding_mode = GridPadding::from_name(&p).ok_or_else(|| LowerError::Invalid(format!("unknown padding_mode `{p}`")))?;
        Ok(Out::Node(
            Op::GridSample { mode, padding_mode, align_corners: cx.b("align_corners", false)? },
            vec![Some(cx.req(0)?), Some(cx.req(1)?)],
        ))
    }),
    ("GroupNormalization", 18, |cx| {
        Ok(Out::Node(Op::GroupNormalization { num_groups: cx.i("num_groups", 1)?, epsilon: cx.f("epsilon", 1e-5)? }, cx.all()))
    }),
    ("HammingWindow", 17, |cx| window(cx, WindowKind::Hamming)),
    ("HannWindow", 17, |cx| window(cx, WindowKind::Hann)),
    ("HardSigmoid", 1, |cx| {
        Ok(Out::Node(Op::HardSigmoid { alpha: cx.f("alpha", 0.2)?, beta: cx.f("beta", 0.5)? }, vec![Some(cx.req(0)?)]))
    }),
    un!("HardSwish", HardSwish),
    ("Hardmax", 1, |cx| softmax(cx, 2)),
    ("Identity", 1, |cx| Ok(Out::Node(Op::Identity {}, vec![Some(cx.req(0)?)]))),
    ("If", 1, if_op),
    ("InstanceNormalization", 1, |cx| Ok(Out::Node(Op::InstanceNormalization { epsilon: cx.f("epsilon", 1e-5)? }, cx.all()))),
    ("IsInf", 10, |cx| {
        Ok(Out::Node(
            Op::IsInf { detect_negative: cx.b("detect_negative", true)?, detect_positive: cx.b("detect_positive", true)? },
            vec![Some(cx.req(0)?)],
        ))
    }),
    un!("IsNaN", IsNaN),
    ("LRN", 1, |cx| {
        Ok(Out::Node(
            Op::LRN { alpha: cx.f("alpha", 1e-4)?, beta: cx.f("beta", 0.75)?, bias: cx.f("bias", 1.0)?, size: cx.i("size", 1)? },
            vec![Some(cx.req(0)?)],
        ))
    }),
    ("LSTM", 7, |cx| recurrent(cx, "lstm")),
    ("LayerNormalization", 17, |cx| {
        Ok(Out::Node(Op::LayerNormalization { axis: cx.i("axis", -1)?, epsilon: cx.f("epsilon", 1e-5)? }, cx.all()))
    }),
    ("LeakyRelu", 1, |cx| Ok(Out::Node(Op::LeakyRelu { alpha: cx.f("alpha", 0.01)? }, vec![Some(cx.req(0)?)]))),
    bin!("Less", Less),
    bin!("LessOrEqual", LessOrEqual),
    un!("Log", Log),
    ("LogSoftmax", 1, |cx| softmax(cx, 1)),
    ("Loop", 1, loop_op),
    ("LpNormalization", 1, |cx| Ok(Out::Node(Op::LpNormalization { axis: cx.i("axis", -1)?, p: cx.i("p", 2)? }, vec![Some(cx.req(0)?)]))),
    ("LpPool", 1, |cx| pool(cx, "lp")),
    ("MatMul", 1, |cx| Ok(Out::Node(Op::MatMul {}, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))),
    ("MatMulInteger", 10, |cx| Ok(Out::Node(Op::MatMulInteger {}, cx.all()))),
    ("Max", 1, |cx| variadic(cx, BinaryOp::Max)),
    ("MaxPool", 1, |cx| pool(cx, "max")),
    ("MaxUnpool", 9, |cx| {
        Ok(Out::Node(
            Op::MaxUnpool { kernel_shape: cx.ints("kernel_shape")?, pads: cx.ints("pads")?, strides: cx.ints("strides")? },
            cx.all(),
        ))
    }),
    ("Mean", 1, |cx| Ok(Out::Node(Op::Mean {}, cx.all()))),
    ("MeanVarianceNormalization", 9, |cx| {
        let axes = cx.a.ints("axes")?.unwrap_or_else(|| vec![0, 2, 3]);
        Ok(Out::Node(Op::MeanVarianceNormalization { axes }, vec![Some(cx.req(0)?)]))
    }),
    ("MelWeightMatrix", 17, |cx| {
        let dtype = dtype_from_onnx(cx.i("output_datatype", 1)? as i32).map_err(LowerError::Unsupported)?;
        Ok(Out::Node(Op::MelWeightMatrix { dtype }, cx.all()))
    }),
    ("Min", 1, |cx| variadic(cx, BinaryOp::Min)),
    un!("Mish", Mish),
    ("Mod", 10, |cx| {
        let op = if cx.b("fmod", false)? { BinaryOp::FMod } else { BinaryOp::Mod };
        Ok(Out::Node(Op::Binary { op }, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))
    }),
    bin!("Mul", Mul),
    un!("Neg", Neg),
    ("NegativeLogLikelihoodLoss", 12, |cx| {
        Ok(Out::Node(Op::NegativeLogLikelihoodLoss { reduction: loss_reduction(cx)?, ignore_index: cx.a.opt_i("ignore_index")? }, cx.all()))
    }),
    ("NonMaxSuppression", 10, |cx| Ok(Out::Node(Op::NonMaxSuppression { center_point_box: cx.b("center_point_box", false)? }, cx.all()))),
    ("NonZero", 9, |cx| Ok(Out::Node(Op::NonZero {}, vec![Some(cx.req(0)?)]))),
    un!("Not", Not),
    ("OneHot", 9, |cx| Ok(Out::Node(Op::OneHot { axis: cx.i("axis", -1)? }, cx.all()))),
    bin!("Or", Or),
    bin!("PRelu", PRelu),
    ("Pad", 1, pad),
    bin!("Pow", Pow),
    ("QLinearConv", 10, |cx| conv(cx, "qlinear")),
    ("QLinearMatMul", 10, |cx| Ok(Out::Node(Op::QLinearMatMul {}, cx.all()))),
    ("QuantizeLinear", 10, |cx| {
        let output_dtype = match cx.i("output_dtype", 0)? {
            0 => None,
            c => Some(dtype_from_onnx(c as i32).map_err(LowerError::Unsupported)?),
        };
        Ok(Out::Node(
            Op::QuantizeLinear {
                axis: cx.i("axis", 1)?,
                saturate: cx.b("saturate", true)?,
                block_size: cx.i("block_size", 0)?,
                output_dtype,
            },
            cx.all(),
        ))
    }),
    ("RMSNormalization", 23, |cx| {
        Ok(Out::Node(Op::RMSNormalization { axis: cx.i("axis", -1)?, epsilon: cx.f("epsilon", 1e-5)? }, cx.all()))
    }),
    ("RNN", 7, |cx| recurrent(cx, "rnn")),
    ("Range", 11, |cx| Ok(Out::Node(Op::Range {}, cx.all()))),
    un!("Reciprocal", Reciprocal),
    ("ReduceL1", 1, |cx| reduce(cx, ReduceKind::L1, 18)),
    ("ReduceL2", 1, |cx| reduce(cx, ReduceKind::L2, 18)),
    ("ReduceLogSum", 1, |cx| reduce(cx, ReduceKind::LogSum, 18)),
    ("ReduceLogSumExp", 1, |cx| reduce(cx, ReduceKind::LogSumExp, 18)),
    ("ReduceMax", 1, |cx| reduce(cx, ReduceKind::Max, 18)),
    ("ReduceMean", 1, |cx| reduce(cx, ReduceKind::Mean, 18)),
    ("ReduceMin", 1, |cx| reduce(cx, ReduceKind::Min, 18)),
    ("ReduceProd", 1, |cx| reduce(cx, ReduceKind::Prod, 18)),
    ("ReduceSum", 1, |cx| reduce(cx, ReduceKind::Sum, 13)),
    ("ReduceSumSquare", 1, |cx| reduce(cx, ReduceKind::SumSquare, 18)),
    un!("Relu", Relu),
    ("Reshape", 5, |cx| Ok(Out::Node(Op::Reshape { allowzero: cx.b("allowzero", false)? }, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))),
    ("Resize", 10, resize),
    ("ReverseSequence", 10, |cx| {
        Ok(Out::Node(Op::ReverseSequence { batch_axis: cx.i("batch_axis", 1)?, time_axis: cx.i("time_axis", 0)? }, cx.all()))
    }),
    ("RoiAlign", 10, |cx| {
        let ctm = cx.s("coordinate_transformation_mode", if cx.opset < 16 { "output_half_pixel" } else { "half_pixel" })?;
        let half_pixel = match ctm.as_str() {
            "half_pixel" => true,
            "output_half_pixel" => false,
            m => return Err(LowerError::Invalid(format!("unknown coordinate_transformation_mode `{m}`"))),
        };
        let max_mode = match cx.s("mode", "avg")?.as_str() {
            "avg" => false,
            "max" => true,
            m => return Err(LowerError::Invalid(format!("unknown mode `{m}`"))),
        };
        let op = Op::RoiAlign {
            half_pixel,
            max_mode,
            output_height: cx.i("output_height", 1)?,
            output_width: cx.i("output_width", 1)?,
            sampling_ratio: cx.i("sampling_ratio", 0)?,
            spatial_scale: cx.f("spatial_scale", 1.0)?,
        };
        Ok(Out::Node(op, cx.all()))
    }),
    ("RotaryEmbedding", 23, |cx| {
        let op = Op::RotaryEmbedding {
            interleaved: cx.b("interleaved", false)?,
            num_heads: cx.i("num_heads", 0)?,
            rotary_embedding_dim: cx.i("rotary_embedding_dim", 0)?,
        };
        Ok(Out::Node(op, cx.all()))
    }),
    un!("Round", Round),
    ("STFT", 17, |cx| Ok(Out::Node(Op::STFT { onesided: cx.b("onesided", true)? }, cx.all()))),
    ("Scan", 8, scan_op),
    ("Scatter", 9, |cx| Ok(Out::Node(Op::ScatterElements { axis: cx.i("axis", 0)?, reduction: ScatterReduction::None }, cx.all()))),
    ("ScatterElements", 11, |cx| {
        Ok(Out::Node(Op::ScatterElements { axis: cx.i("axis", 0)?, reduction: scatter_reduction(cx)? }, cx.all()))
    }),
    ("ScatterND", 11, |cx| Ok(Out::Node(Op::ScatterND { reduction: scatter_reduction(cx)? }, cx.all()))),
    ("Selu", 1, |cx| {
        Ok(Out::Node(Op::Selu { alpha: cx.f("alpha", 1.673_263_2)?, gamma: cx.f("gamma", 1.050_701)? }, vec![Some(cx.req(0)?)]))
    }),
    ("Shape", 1, |cx| Ok(Out::Node(Op::Shape { start: cx.i("start", 0)?, end: cx.a.opt_i("end")? }, vec![Some(cx.req(0)?)]))),
    ("Shrink", 9, |cx| Ok(Out::Node(Op::Shrink { bias: cx.f("bias", 0.0)?, lambd: cx.f("lambd", 0.5)? }, vec![Some(cx.req(0)?)]))),
    un!("Sigmoid", Sigmoid),
    un!("Sign", Sign),
    un!("Sin", Sin),
    un!("Sinh", Sinh),
    ("Size", 1, |cx| Ok(Out::Node(Op::Size {}, vec![Some(cx.req(0)?)]))),
    ("Slice", 1, |cx| {
        let starts = cx.ints("starts")?;
        let ends = cx.ints("ends")?;
        let axes: Vec<i64> = cx.a.ints("axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let (s, e, a) = (cx.ints_const("starts", &starts), cx.ints_const("ends", &ends), cx.ints_const("axes", &axes));
        Ok(Out::Node(Op::Slice {}, vec![Some(cx.req(0)?), Some(s), Some(e), Some(a)]))
    }),
    ("Slice", 10, |cx| Ok(Out::Node(Op::Slice {}, cx.all()))),
    ("Softmax", 1, |cx| softmax(cx, 0)),
    ("SoftmaxCrossEntropyLoss", 12, |cx| {
        Ok(Out::Node(Op::SoftmaxCrossEntropyLoss { reduction: loss_reduction(cx)?, ignore_index: cx.a.opt_i("ignore_index")? }, cx.all()))
    }),
    un!("Softplus", Softplus),
    un!("Softsign", Softsign),
    ("SpaceToDepth", 1, |cx| Ok(Out::Node(Op::SpaceToDepth { blocksize: cx.i("blocksize", 0)? }, vec![Some(cx.req(0)?)]))),
    ("Split", 1, |cx| {
        let x = cx.req(0)?;
        let split = match cx.a.ints("split")? {
            Some(s) => Some(cx.ints_const("split", &s)),
            None => cx.inp(1),
        };
        Ok(Out::Node(Op::Split { axis: cx.i("axis", 0)? }, vec![Some(x), split]))
    }),
    ("Split", 13, |cx| Ok(Out::Node(Op::Split { axis: cx.i("axis", 0)? }, vec![Some(cx.req(0)?), cx.inp(1)]))),
    un!("Sqrt", Sqrt),
    ("Squeeze", 1, |cx| {
        let axes = cx.a.ints("axes")?.map(|a| cx.ints_const("axes", &a));
        Ok(Out::Node(Op::Squeeze {}, vec![Some(cx.req(0)?), axes]))
    }),
    ("Squeeze", 13, |cx| Ok(Out::Node(Op::Squeeze {}, vec![Some(cx.req(0)?), cx.inp(1)]))),
    bin!("Sub", Sub),
    ("Sum", 1, |cx| variadic(cx, BinaryOp::Add)),
    ("Swish", 24, |cx| Ok(Out::Node(Op::Swish { alpha: cx.f("alpha", 1.0)? }, vec![Some(cx.req(0)?)]))),
    un!("Tan", Tan),
    un!("Tanh", Tanh),
    ("TensorScatter", 24, |cx| {
        let circular = match cx.s("mode", "linear")?.as_str() {
            "linear" => false,
            "circular" => true,
            m => return Err(LowerError::Invalid(format!("unknown mode `{m}`"))),
        };
        Ok(Out::Node(Op::TensorScatter { axis: cx.i("axis", -2)?, circular }, cx.all()))
    }),
    ("ThresholdedRelu", 10, |cx| Ok(Out::Node(Op::ThresholdedRelu { alpha: cx.f("alpha", 1.0)? }, vec![Some(cx.req(0)?)]))),
    ("Tile", 6, |cx| Ok(Out::Node(Op::Tile {}, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))),
    ("TopK", 1, |cx| {
        let k = cx.ints_const("k", &[cx.i("k", 0)?]);
        Ok(Out::Node(Op::TopK { axis: cx.i("axis", -1)?, largest: true, sorted: true }, vec![Some(cx.req(0)?), Some(k)]))
    }),
    ("TopK", 10, |cx| {
        Ok(Out::Node(
            Op::TopK { axis: cx.i("axis", -1)?, largest: cx.b("largest", true)?, sorted: cx.b("sorted", true)? },
            vec![Some(cx.req(0)?), Some(cx.req(1)?)],
        ))
    }),
    ("Transpose", 1, |cx| Ok(Out::Node(Op::Transpose { perm: cx.ints("perm")? }, vec![Some(cx.req(0)?)]))),
    ("Trilu", 14, |cx| Ok(Out::Node(Op::Trilu { upper: cx.b("upper", true)? }, cx.all()))),
    ("Unique", 11, |cx| Ok(Out::Node(Op::Unique { sorted: cx.b("sorted", true)?, axis: cx.a.opt_i("axis")? }, vec![Some(cx.req(0)?)]))),
    ("Unsqueeze", 1, |cx| {
        let axes = cx.ints("axes")?;
        let a = cx.ints_const("axes", &axes);
        Ok(Out::Node(Op::Unsqueeze {}, vec![Some(cx.req(0)?), Some(a)]))
    }),
    ("Unsqueeze", 13, |cx| Ok(Out::Node(Op::Unsqueeze {}, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))),
    ("Upsample", 7, upsample),
    ("Where", 9, |cx| Ok(Out::Node(Op::Where {}, vec![Some(cx.req(0)?), Some(cx.req(1)?), Some(cx.req(2)?)]))),
    bin!("Xor", Xor),
];

/// The ONNX op types kiln imports (for `kiln ops` and docs).
pub fn supported_op_types() -> Vec<&'static str> {
    let mut v: Vec<&str> = TABLE.iter().map(|e| e.0).collect();
    v.dedup();
    v
}

pub(crate) fn lookup(op_type: &str, opset: i64) -> Option<fn(&mut Cx) -> R> {
    let entries: Vec<&Entry> = TABLE.iter().filter(|e| e.0 == op_type).collect();
    entries.iter().rev().find(|e| e.1 <= opset).or(entries.first()).map(|e| e.2)
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_is_sorted_by_op_type_then_opset_without_duplicates() {
        for w in super::TABLE.windows(2) {
            assert!((w[0].0, w[0].1) < (w[1].0, w[1].1), "{} {} must come before {} {}", w[0].0, w[0].1, w[1].0, w[1].1);
        }
    }
}
