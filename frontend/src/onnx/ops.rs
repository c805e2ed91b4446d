//! The ONNX op mapping table: (op type, first opset) → lowering function. A lowering translates
//! attributes (with the spec's defaults for that opset) and inputs into one IR op; ops whose
//! older versions carried inputs as attributes get those as constants.

use super::attrs::Attrs;
use super::tensor::{dtype_from_onnx, tensor_from_proto};
use super::{node_name, Converter, ImportError, UnsupportedOp};
use kiln_ir::ops::{
    AspectPolicy, AutoPad, CoordMode, DepthToSpaceMode, GeluApprox, GridMode, GridPadding, LossReduction, NearestMode, PadMode, PoolKind,
    ReduceKind, ResizeMode, RnnActivation, RnnDirection, ScatterReduction, WindowKind,
};
use kiln_ir::{BinaryOp, DType, Data, Op, Tensor, TensorType, UnaryOp, ValueId};
use onnx_protobuf::NodeProto;

pub(crate) enum NodeFailure {
    Unsupported(UnsupportedOp),
    Fatal(ImportError),
}

/// Why a lowering refused a node.
pub(crate) enum LowerError {
    /// Valid ONNX that kiln does not handle (an attribute value, a dtype).
    Unsupported(String),
    /// The node itself is wrong.
    Invalid(String),
}

impl From<String> for LowerError {
    fn from(s: String) -> Self {
        LowerError::Invalid(s)
    }
}

fn unsupported<T>(msg: impl Into<String>) -> Result<T, LowerError> {
    Err(LowerError::Unsupported(msg.into()))
}

/// What a node becomes.
pub(crate) enum Out {
    Node(Op, Vec<Option<ValueId>>),
    Const(Tensor),
    /// The node's outputs are existing values (a folded If).
    Alias(Vec<Option<ValueId>>),
}

type R = Result<Out, LowerError>;

pub(crate) struct Cx<'c, 'o> {
    conv: &'c mut Converter<'o>,
    node: &'c NodeProto,
    name: String,
    opset: i64,
    a: Attrs<'c>,
    ins: Vec<Option<ValueId>>,
    emitted: usize,
}

impl Cx<'_, '_> {
    fn inp(&self, k: usize) -> Option<ValueId> {
        self.ins.get(k).copied().flatten()
    }
    fn req(&self, k: usize) -> Result<ValueId, LowerError> {
        self.inp(k).ok_or_else(|| LowerError::Invalid(format!("input {k} is required")))
    }
    fn all(&self) -> Vec<Option<ValueId>> {
        self.ins.clone()
    }
    fn dtype(&self, id: ValueId) -> DType {
        self.conv.graph().value(id).ty.dtype
    }
    fn konst(&mut self, suffix: &str, t: Tensor) -> ValueId {
        let base = format!("{}_{suffix}", self.name);
        self.conv.add_const(&base, t)
    }
    fn ints_const(&mut self, suffix: &str, v: &[i64]) -> ValueId {
        let t = Tensor::new(vec![v.len()], Data::I64(v.to_vec())).unwrap_or_else(|_| Tensor::scalar_i64(0));
        self.konst(suffix, t)
    }
    fn scalar_const(&mut self, suffix: &str, dtype: DType, v: f64) -> ValueId {
        let t = Tensor::new(vec![], Data::from_f64(dtype, &[v])).unwrap_or_else(|_| Tensor::scalar_i64(0));
        self.konst(suffix, t)
    }
    /// Adds an intermediate single-output node.
    fn emit(&mut self, op: Op, ins: Vec<Option<ValueId>>) -> Result<ValueId, LowerError> {
        self.emitted += 1;
        let out = format!("{}/t{}", self.name, self.emitted);
        let name = format!("{}/{}", self.name, self.emitted);
        let ids = self.conv.add_node(&name, op, ins, &[out]).map_err(|e| LowerError::Invalid(e.source.to_string()))?;
        ids[0].ok_or_else(|| LowerError::Invalid("internal: intermediate without output".into()))
    }
    fn i(&self, n: &str, d: i64) -> Result<i64, LowerError> {
        Ok(self.a.i(n, d)?)
    }
    fn f(&self, n: &str, d: f32) -> Result<f32, LowerError> {
        Ok(self.a.f(n, d)?)
    }
    fn b(&self, n: &str, d: bool) -> Result<bool, LowerError> {
        Ok(self.a.i(n, d as i64)? != 0)
    }
    fn ints(&self, n: &str) -> Result<Vec<i64>, LowerError> {
        Ok(self.a.ints(n)?.unwrap_or_default())
    }
    fn s(&self, n: &str, d: &str) -> Result<String, LowerError> {
        Ok(self.a.s(n)?.unwrap_or_else(|| d.to_string()))
    }
}

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
        Ok(Out::Node(Op::Cast { to, saturate: cx.b("saturate", true)? }, vec![Some(cx.req(0)?)]))
    }),
    ("CastLike", 15, |cx| Ok(Out::Node(Op::CastLike { saturate: cx.b("saturate", true)? }, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))),
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

fn lookup(op_type: &str, opset: i64) -> Option<fn(&mut Cx) -> R> {
    let entries: Vec<&Entry> = TABLE.iter().filter(|e| e.0 == op_type).collect();
    entries.iter().rev().find(|e| e.1 <= opset).or(entries.first()).map(|e| e.2)
}

/// Converts ONNX node number `idx` of its graph (used to name unnamed nodes).
pub(crate) fn convert_node(conv: &mut Converter, node: &NodeProto, idx: usize) -> Result<(), NodeFailure> {
    let name = node_name(node, idx);
    let domain = node.domain.clone();
    let opset = conv.opset_of(&domain).unwrap_or(0);
    let unsup = |reason: String| UnsupportedOp { node: name.clone(), op_type: node.op_type.clone(), domain: domain.clone(), opset, reason };
    if !(domain.is_empty() || domain == "ai.onnx") {
        return Err(NodeFailure::Unsupported(unsup("only the default ONNX domain is supported".into())));
    }
    let Some(lower) = lookup(&node.op_type, opset) else {
        return Err(NodeFailure::Unsupported(unsup("no importer for this op".into())));
    };
    let mut ins = Vec::with_capacity(node.input.len());
    for i in &node.input {
        if i.is_empty() {
            ins.push(None);
            continue;
        }
        match conv.lookup(i) {
            Some(id) => ins.push(Some(id)),
            None => {
                return Err(NodeFailure::Fatal(ImportError::MissingValue {
                    node: name.clone(),
                    op_type: node.op_type.clone(),
                    name: i.clone(),
                }))
            }
        }
    }
    let invalid = |message: String| ImportError::InvalidNode {
        node: name.clone(),
        op_type: node.op_type.clone(),
        domain: domain.clone(),
        opset,
        message,
    };
    let mut cx = Cx { conv, node, name: name.clone(), opset, a: Attrs::new(node), ins, emitted: 0 };
    let out = match lower(&mut cx) {
        Ok(o) => o,
        Err(LowerError::Unsupported(m)) => return Err(NodeFailure::Unsupported(unsup(m))),
        Err(LowerError::Invalid(m)) => return Err(NodeFailure::Fatal(invalid(m))),
    };
    let ids = match out {
        Out::Node(op, inputs) => {
            // Name the input types in the error: they are what the user needs to see.
            let g = cx.conv.graph();
            let types: Vec<String> =
                inputs.iter().map(|i| i.map_or("_".into(), |i| format!("{}{}", g.value(i).ty.dtype, g.value(i).ty.shape))).collect();
            cx.conv.add_node(&name, op, inputs, &node.output).map_err(|e| match e.source {
                kiln_ir::OpError::Unsupported(m) => NodeFailure::Unsupported(unsup(m)),
                other => NodeFailure::Fatal(invalid(format!("{other} (inputs: {})", types.join(", ")))),
            })?
        }
        Out::Const(t) => {
            let out = node.output.first().cloned().unwrap_or_default();
            vec![Some(cx.conv.add_const(&out, t))]
        }
        Out::Alias(ids) => ids,
    };
    cx.conv.bind_outputs(node, &ids);
    Ok(())
}

fn constant(cx: &mut Cx) -> R {
    let a = &cx.a;
    if let Some(t) = a.t("value")? {
        return Ok(Out::Const(tensor_from_proto(t, None).map_err(|e| match e {
            ImportError::UnsupportedDType { dtype, .. } => LowerError::Unsupported(format!("constant of dtype {dtype}")),
            other => LowerError::Invalid(other.to_string()),
        })?));
    }
    let t = if let Some(f) = a.opt_f("value_float")? {
        Tensor::new(vec![], Data::F32(vec![f]))
    } else if let Some(v) = a.floats("value_floats")? {
        Tensor::new(vec![v.len()], Data::F32(v))
    } else if let Some(i) = a.opt_i("value_int")? {
        Tensor::new(vec![], Data::I64(vec![i]))
    } else if let Some(v) = a.ints("value_ints")? {
        Tensor::new(vec![v.len()], Data::I64(v))
    } else if a.has("value_string") || a.has("value_strings") {
        return unsupported("string constants");
    } else if a.has("sparse_value") {
        return unsupported("sparse constants");
    } else {
        return Err(LowerError::Invalid("Constant without a value attribute".into()));
    };
    Ok(Out::Const(t.map_err(|e| LowerError::Invalid(e.to_string()))?))
}

fn variadic(cx: &mut Cx, op: BinaryOp) -> R {
    let ins: Vec<ValueId> = cx.ins.iter().flatten().copied().collect();
    match ins.len() {
        0 => Err(LowerError::Invalid("needs at least one input".into())),
        1 => Ok(Out::Node(Op::Identity {}, vec![Some(ins[0])])),
        n => {
            let mut acc = ins[0];
            for &x in &ins[1..n - 1] {
                acc = cx.emit(Op::Binary { op }, vec![Some(acc), Some(x)])?;
            }
            Ok(Out::Node(Op::Binary { op }, vec![Some(acc), Some(ins[n - 1])]))
        }
    }
}

fn arg(cx: &mut Cx, max: bool) -> R {
    let (axis, keepdims, select_last_index) = (cx.i("axis", 0)?, cx.b("keepdims", true)?, cx.b("select_last_index", false)?);
    let op = if max { Op::ArgMax { axis, keepdims, select_last_index } } else { Op::ArgMin { axis, keepdims, select_last_index } };
    Ok(Out::Node(op, vec![Some(cx.req(0)?)]))
}

fn softmax(cx: &mut Cx, which: u8) -> R {
    let legacy = cx.opset < 13;
    let axis = cx.i("axis", if legacy { 1 } else { -1 })?;
    let op = match which {
        0 => Op::Softmax { axis, legacy },
        1 => Op::LogSoftmax { axis, legacy },
        _ => Op::Hardmax { axis, legacy },
    };
    Ok(Out::Node(op, vec![Some(cx.req(0)?)]))
}

fn reduce(cx: &mut Cx, kind: ReduceKind, axes_input_since: i64) -> R {
    let keepdims = cx.b("keepdims", true)?;
    let noop_with_empty_axes = cx.b("noop_with_empty_axes", false)?;
    let axes = if cx.opset < axes_input_since { cx.a.ints("axes")?.map(|a| cx.ints_const("axes", &a)) } else { cx.inp(1) };
    Ok(Out::Node(Op::Reduce { kind, keepdims, noop_with_empty_axes }, vec![Some(cx.req(0)?), axes]))
}

fn auto_pad(cx: &Cx) -> Result<AutoPad, LowerError> {
    Ok(match cx.s("auto_pad", "NOTSET")?.as_str() {
        "NOTSET" | "" => AutoPad::NotSet,
        "SAME_UPPER" => AutoPad::SameUpper,
        "SAME_LOWER" => AutoPad::SameLower,
        "VALID" => AutoPad::Valid,
        other => return Err(LowerError::Invalid(format!("unknown auto_pad `{other}`"))),
    })
}

fn conv(cx: &mut Cx, kind: &str) -> R {
    let (kernel_shape, strides, pads, dilations) = (cx.ints("kernel_shape")?, cx.ints("strides")?, cx.ints("pads")?, cx.ints("dilations")?);
    let (group, auto_pad) = (cx.i("group", 1)?, auto_pad(cx)?);
    let op = match kind {
        "conv" => Op::Conv { kernel_shape, strides, pads, dilations, group, auto_pad },
        "integer" => Op::ConvInteger { kernel_shape, strides, pads, dilations, group, auto_pad },
        _ => Op::QLinearConv { kernel_shape, strides, pads, dilations, group, auto_pad },
    };
    Ok(Out::Node(op, cx.all()))
}

fn conv_transpose(cx: &mut Cx) -> R {
    let op = Op::ConvTranspose {
        kernel_shape: cx.ints("kernel_shape")?,
        strides: cx.ints("strides")?,
        pads: cx.ints("pads")?,
        dilations: cx.ints("dilations")?,
        group: cx.i("group", 1)?,
        auto_pad: auto_pad(cx)?,
        output_padding: cx.ints("output_padding")?,
        output_shape: cx.ints("output_shape")?,
    };
    Ok(Out::Node(op, cx.all()))
}

fn pool(cx: &mut Cx, kind: &str) -> R {
    let (kernel_shape, strides, pads, dilations) = (cx.ints("kernel_shape")?, cx.ints("strides")?, cx.ints("pads")?, cx.ints("dilations")?);
    let (auto_pad, ceil_mode) = (auto_pad(cx)?, cx.b("ceil_mode", false)?);
    let op = match kind {
        "max" => Op::MaxPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, storage_order: cx.i("storage_order", 0)? },
        "avg" => Op::AveragePool {
            kernel_shape,
            strides,
            pads,
            dilations,
            auto_pad,
            ceil_mode,
            count_include_pad: cx.b("count_include_pad", false)?,
        },
        _ => Op::LpPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, p: cx.i("p", 2)? },
    };
    Ok(Out::Node(op, vec![Some(cx.req(0)?)]))
}

fn batch_norm(cx: &mut Cx) -> R {
    // Before opset 14 training mode was signalled by the extra outputs (opsets 9-13).
    let training = cx.b("training_mode", false)? || (cx.opset < 14 && cx.opset >= 9 && cx.node.output.len() > 1);
    if training && cx.opset < 14 {
        return unsupported("training-mode BatchNormalization before opset 14 (saved mean/variance outputs)");
    }
    let ins: Vec<Option<ValueId>> = cx.ins.iter().take(5).copied().collect();
    Ok(Out::Node(Op::BatchNormalization { epsilon: cx.f("epsilon", 1e-5)?, momentum: cx.f("momentum", 0.9)?, training }, ins))
}

fn pad(cx: &mut Cx) -> R {
    let mode = match cx.s("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        m => return Err(LowerError::Invalid(format!("unknown mode `{m}`"))),
    };
    let x = cx.req(0)?;
    if cx.opset < 11 {
        let pads = cx.a.ints("pads")?.or(cx.a.ints("paddings")?).unwrap_or_default();
        let p = cx.ints_const("pads", &pads);
        let dt = cx.dtype(x);
        let v = cx.f("value", 0.0)? as f64;
        let c = cx.scalar_const("value", dt, v);
        return Ok(Out::Node(Op::Pad { mode }, vec![Some(x), Some(p), Some(c)]));
    }
    Ok(Out::Node(Op::Pad { mode }, cx.all()))
}

fn loss_reduction(cx: &Cx) -> Result<LossReduction, LowerError> {
    let r = cx.s("reduction", "mean")?;
    LossReduction::from_name(&r).ok_or_else(|| LowerError::Invalid(format!("unknown reduction `{r}`")))
}

fn scatter_reduction(cx: &Cx) -> Result<ScatterReduction, LowerError> {
    let r = cx.s("reduction", "none")?;
    ScatterReduction::from_name(&r).ok_or_else(|| LowerError::Invalid(format!("unknown reduction `{r}`")))
}

fn resize(cx: &mut Cx) -> R {
    let mode = match cx.s("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" => ResizeMode::Linear,
        "cubic" => ResizeMode::Cubic,
        m => return Err(LowerError::Invalid(format!("unknown mode `{m}`"))),
    };
    let ctm = cx.s("coordinate_transformation_mode", if cx.opset < 11 { "asymmetric" } else { "half_pixel" })?;
    let coordinate_transformation_mode =
        CoordMode::from_name(&ctm).ok_or_else(|| LowerError::Unsupported(format!("coordinate_transformation_mode `{ctm}`")))?;
    // Opset 10 had no nearest_mode; it behaved like `floor` (Upsample's semantics).
    let nm = cx.s("nearest_mode", if cx.opset < 11 { "floor" } else { "round_prefer_floor" })?;
    let nearest_mode = NearestMode::from_name(&nm).ok_or_else(|| LowerError::Invalid(format!("unknown nearest_mode `{nm}`")))?;
    let kp = cx.s("keep_aspect_ratio_policy", "stretch")?;
    let keep_aspect_ratio_policy =
        AspectPolicy::from_name(&kp).ok_or_else(|| LowerError::Invalid(format!("unknown keep_aspect_ratio_policy `{kp}`")))?;
    let op = Op::Resize {
        mode,
        coordinate_transformation_mode,
        nearest_mode,
        cubic_coeff_a: cx.f("cubic_coeff_a", -0.75)?,
        exclude_outside: cx.b("exclude_outside", false)?,
        extrapolation_value: cx.f("extrapolation_value", 0.0)?,
        antialias: cx.b("antialias", false)?,
        axes: cx.ints("axes")?,
        keep_aspect_ratio_policy,
    };
    let ins = if cx.opset < 11 { vec![Some(cx.req(0)?), None, cx.inp(1), None] } else { cx.all() };
    Ok(Out::Node(op, ins))
}

fn window(cx: &mut Cx, kind: WindowKind) -> R {
    let dtype = dtype_from_onnx(cx.i("output_datatype", 1)? as i32).map_err(LowerError::Unsupported)?;
    Ok(Out::Node(Op::SignalWindow { kind, periodic: cx.b("periodic", true)?, dtype }, vec![Some(cx.req(0)?)]))
}

/// Upsample (opsets 7-9) is Resize with asymmetric coordinates and floor rounding.
fn upsample(cx: &mut Cx) -> R {
    let mode = match cx.s("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" | "bilinear" => ResizeMode::Linear,
        m => return Err(LowerError::Invalid(format!("unknown mode `{m}`"))),
    };
    let scales = match cx.a.floats("scales")? {
        Some(s) => {
            let t = Tensor::new(vec![s.len()], Data::F32(s)).map_err(|e| LowerError::Invalid(e.to_string()))?;
            Some(cx.konst("scales", t))
        }
        None => cx.inp(1),
    };
    let op = Op::Resize {
        mode,
        coordinate_transformation_mode: CoordMode::Asymmetric,
        nearest_mode: NearestMode::Floor,
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        antialias: false,
        axes: vec![],
        keep_aspect_ratio_policy: AspectPolicy::Stretch,
    };
    Ok(Out::Node(op, vec![Some(cx.req(0)?), None, scales, None]))
}

fn recurrent(cx: &mut Cx, kind: &str) -> R {
    let direction = match cx.s("direction", "forward")?.as_str() {
        "forward" => RnnDirection::Forward,
        "reverse" => RnnDirection::Reverse,
        "bidirectional" => RnnDirection::Bidirectional,
        d => return Err(LowerError::Invalid(format!("unknown direction `{d}`"))),
    };
    let activations: Vec<RnnActivation> =
        cx.a.strings("activations")?
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let snake: String = s
                    .chars()
                    .enumerate()
                    .flat_map(|(i, c)| {
                        let lower = c.to_ascii_lowercase();
                        if c.is_ascii_uppercase() && i > 0 {
                            vec!['_', lower]
                        } else {
                            vec![lower]
                        }
                    })
                    .collect();
                RnnActivation::from_name(&snake).ok_or_else(|| LowerError::Unsupported(format!("activation `{s}`")))
            })
            .collect::<Result<_, _>>()?;
    let (hidden_size, layout) = (cx.i("hidden_size", 0)?, cx.i("layout", 0)?);
    let (activation_alpha, activation_beta) =
        (cx.a.floats("activation_alpha")?.unwrap_or_default(), cx.a.floats("activation_beta")?.unwrap_or_default());
    let clip = cx.a.opt_f("clip")?;
    let op = match kind {
        "lstm" => Op::LSTM {
            direction,
            hidden_size,
            activations,
            activation_alpha,
            activation_beta,
            clip,
            input_forget: cx.b("input_forget", false)?,
            layout,
        },
        "gru" => Op::GRU {
            direction,
            hidden_size,
            activations,
            activation_alpha,
            activation_beta,
            clip,
            linear_before_reset: cx.b("linear_before_reset", false)?,
            layout,
        },
        _ => Op::RNN { direction, hidden_size, activations, activation_alpha, activation_beta, clip, layout },
    };
    Ok(Out::Node(op, cx.all()))
}

fn attention(cx: &mut Cx) -> R {
    let softmax_precision = match cx.a.opt_i("softmax_precision")? {
        Some(c) => Some(dtype_from_onnx(c as i32).map_err(LowerError::Unsupported)?),
        None => None,
    };
    let op = Op::Attention {
        is_causal: cx.b("is_causal", false)?,
        kv_num_heads: cx.i("kv_num_heads", 0)?,
        q_num_heads: cx.i("q_num_heads", 0)?,
        qk_matmul_output_mode: cx.i("qk_matmul_output_mode", 0)?,
        scale: cx.a.opt_f("scale")?,
        softcap: cx.f("softcap", 0.0)?,
        softmax_precision,
    };
    Ok(Out::Node(op, cx.all()))
}

fn if_op(cx: &mut Cx) -> R {
    let (Some(tg), Some(eg)) = (cx.a.g("then_branch")?, cx.a.g("else_branch")?) else {
        return Err(LowerError::Invalid("If needs then_branch and else_branch".into()));
    };
    // A condition known at import selects its branch now; the other is never imported.
    let cond = cx.req(0)?;
    if let Some(c) = cx.conv.graph().const_value(cond).and_then(|t| t.to_i64().first().copied()) {
        let branch = if c != 0 { tg } else { eg };
        let before = cx.conv.unsupported.len();
        return match cx.conv.inline_graph(branch).map_err(sub_err)? {
            Some(outs) if outs.len() == cx.node.output.len() => Ok(Out::Alias(outs.into_iter().map(Some).collect())),
            Some(outs) => Err(LowerError::Invalid(format!("If branch returns {} values for {} outputs", outs.len(), cx.node.output.len()))),
            None => {
                let list = cx.conv.unsupported.split_off(before);
                Err(LowerError::Unsupported(list.iter().map(|u| u.to_string()).collect::<Vec<_>>().join("; ")))
            }
        };
    }
    let (then_branch, then_caps) = cx.conv.convert_subgraph(tg, None).map_err(sub_err)?;
    let (else_branch, else_caps) = cx.conv.convert_subgraph(eg, None).map_err(sub_err)?;
    let mut caps = then_caps;
    for c in else_caps {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    let mut ins = vec![Some(cx.req(0)?)];
    for c in &caps {
        ins.push(Some(cx.conv.lookup(c).ok_or_else(|| LowerError::Invalid(format!("captured value `{c}` not found")))?));
    }
    Ok(Out::Node(Op::If { then_branch: Box::new(then_branch), else_branch: Box::new(else_branch) }, ins))
}

fn sub_err(e: ImportError) -> LowerError {
    match e {
        ImportError::Unsupported(list) => LowerError::Unsupported(list.iter().map(|u| u.to_string()).collect::<Vec<_>>().join("; ")),
        other => LowerError::Invalid(format!("in subgraph: {other}")),
    }
}

fn scan_op(cx: &mut Cx) -> R {
    let Some(body) = cx.a.g("body")? else { return Err(LowerError::Invalid("Scan needs a body".into())) };
    let batched = cx.opset < 9;
    let m = cx.i("num_scan_inputs", 0)?;
    let first = usize::from(batched);
    let n = cx.ins.len().saturating_sub(first);
    if m < 0 || m as usize > n {
        return Err(LowerError::Invalid(format!("num_scan_inputs {m} exceeds the {n} inputs")));
    }
    let n_states = n - m as usize;
    let in_axes = cx.ints("scan_input_axes")?;
    // Body input types: states as given; scan inputs without their scan (and batch) axis.
    let mut over: Vec<Option<TensorType>> = vec![];
    for k in 0..n {
        over.push(cx.inp(first + k).map(|id| {
            let mut t = cx.conv.graph().value(id).ty.clone();
            if batched && !t.shape.0.is_empty() {
                t.shape.0.remove(0);
            }
            if k >= n_states {
                let r = t.shape.rank() as i64;
                let a = in_axes.get(k - n_states).copied().unwrap_or(0);
                let a = if a < 0 { a + r } else { a };
                if (0..r).contains(&a) {
                    t.shape.0.remove(a as usize);
                }
            }
            t
        }));
    }
    let (g, caps) = cx.conv.convert_subgraph(body, Some(&over)).map_err(sub_err)?;
    let mut ins = cx.all();
    for c in &caps {
        ins.push(Some(cx.conv.lookup(c).ok_or_else(|| LowerError::Invalid(format!("captured value `{c}` not found")))?));
    }
    let op = Op::Scan {
        body: Box::new(g),
        num_states: n_states as i64,
        num_scan_inputs: m,
        scan_input_axes: in_axes,
        scan_input_directions: if batched { cx.ints("directions")? } else { cx.ints("scan_input_directions")? },
        scan_output_axes: cx.ints("scan_output_axes")?,
        scan_output_directions: cx.ints("scan_output_directions")?,
        batched,
    };
    Ok(Out::Node(op, ins))
}

fn loop_op(cx: &mut Cx) -> R {
    let Some(body) = cx.a.g("body")? else { return Err(LowerError::Invalid("Loop needs a body".into())) };
    let k = cx.ins.len().saturating_sub(2);
    let mut over: Vec<Option<TensorType>> = vec![Some(TensorType::fixed(DType::I64, &[])), Some(TensorType::fixed(DType::Bool, &[]))];
    for i in 0..k {
        over.push(cx.inp(2 + i).map(|id| cx.conv.graph().value(id).ty.clone()));
    }
    let (g, caps) = cx.conv.convert_subgraph(body, Some(&over)).map_err(sub_err)?;
    let mut ins = cx.all();
    for c in &caps {
        ins.push(Some(cx.conv.lookup(c).ok_or_else(|| LowerError::Invalid(format!("captured value `{c}` not found")))?));
    }
    Ok(Out::Node(Op::Loop { body: Box::new(g), num_carried: k as i64 }, ins))
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
