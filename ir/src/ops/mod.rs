//! The op table: every op kiln knows, defined once with typed attributes.
//!
//! Each family file (`elementwise.rs`, `conv.rs`, ...) holds the type/shape inference and the
//! reference semantics of its ops side by side; [`Op::infer`] and [`Op::eval`] dispatch to them
//! with exhaustive matches, so a new variant makes the compiler list every place to visit.

#[macro_use]
mod define;

mod activation;
mod attention;
mod control;
mod conv;
mod data_movement;
mod detection;
mod elementwise;
mod fused;
mod gather_scatter;
mod gemm_kernel;
mod grid;
mod index_ops;
pub mod layout;
mod linalg;
mod loss;
mod matmul;
mod normalization;
mod pool;
mod props;
mod quant;
pub mod quant_matmul;
mod recurrent;
mod reduce;
mod resize;
mod shape_ops;
mod signal;

use crate::attr::{Attr, AttrValue};
use crate::attr_enum;
use crate::dtype::DType;
use crate::graph::Graph;
pub use crate::minifloat::E8M0Rounding;
use crate::shape::{Dim, Shape};
use crate::tensor::Tensor;

pub use conv::{resolve as resolve_window, transpose_geom, Resolved, TransposeGeom};
pub use data_movement::{resolve_perm, slice_params};
pub use elementwise::{erf, BinaryOp, UnaryOp};
pub use props::OpProps;
pub use quant::range_of as quantized_range;
pub use resize::{resize_taps, AxisTaps};
pub use shape_ops::shape_tensor;

attr_enum!(
    /// How ONNX `auto_pad` derives padding from the input size.
    AutoPad { NotSet = "notset", SameUpper = "same_upper", SameLower = "same_lower", Valid = "valid" }
);
attr_enum!(
    /// Storage format of a 4-D activation (see `layout`).
    Format { Nchw = "nchw", Nhwc = "nhwc", Nc1hwc0 = "nc1hwc0" }
);
attr_enum!(
    /// `Pad` modes.
    PadMode { Constant = "constant", Reflect = "reflect", Edge = "edge", Wrap = "wrap" }
);
attr_enum!(
    /// The combining function of a `Reduce` op.
    ReduceKind {
        Sum = "sum", Mean = "mean", Max = "max", Min = "min", Prod = "prod", L1 = "l1", L2 = "l2",
        LogSum = "log_sum", LogSumExp = "log_sum_exp", SumSquare = "sum_square",
    }
);
attr_enum!(
    /// How scatter ops combine an update with the existing element.
    ScatterReduction { None = "none", Add = "add", Mul = "mul", Max = "max", Min = "min" }
);
attr_enum!(
    /// GELU formula.
    GeluApprox { None = "none", Tanh = "tanh" }
);
attr_enum!(
    /// `Resize` interpolation.
    ResizeMode { Nearest = "nearest", Linear = "linear", Cubic = "cubic" }
);
attr_enum!(
    /// `Resize` coordinate transformation.
    CoordMode {
        HalfPixel = "half_pixel", HalfPixelSymmetric = "half_pixel_symmetric",
        PytorchHalfPixel = "pytorch_half_pixel", AlignCorners = "align_corners",
        Asymmetric = "asymmetric", TfCropAndResize = "tf_crop_and_resize",
    }
);
attr_enum!(
    /// `Resize` nearest rounding.
    NearestMode {
        RoundPreferFloor = "round_prefer_floor", RoundPreferCeil = "round_prefer_ceil",
        Floor = "floor", Ceil = "ceil",
    }
);
attr_enum!(
    /// `Resize` aspect-ratio policy when sizes are given.
    AspectPolicy { Stretch = "stretch", NotLarger = "not_larger", NotSmaller = "not_smaller" }
);
attr_enum!(
    /// `DepthToSpace` channel order.
    DepthToSpaceMode { Dcr = "dcr", Crd = "crd" }
);
attr_enum!(
    /// Recurrent direction.
    RnnDirection { Forward = "forward", Reverse = "reverse", Bidirectional = "bidirectional" }
);
attr_enum!(
    /// Window functions.
    WindowKind { Hann = "hann", Hamming = "hamming", Blackman = "blackman" }
);
attr_enum!(
    /// GridSample interpolation.
    GridMode { Nearest = "nearest", Linear = "linear", Cubic = "cubic" }
);
attr_enum!(
    /// GridSample handling of coordinates outside the input.
    GridPadding { Zeros = "zeros", Border = "border", Reflection = "reflection" }
);
attr_enum!(
    /// How a loss op reduces per-element losses.
    LossReduction { None = "none", Sum = "sum", Mean = "mean" }
);
attr_enum!(
    /// Global pooling function.
    PoolKind { Max = "max", Average = "average", Lp = "lp" }
);
attr_enum!(
    /// Recurrent activation functions (ONNX names).
    RnnActivation {
        Sigmoid = "sigmoid", Tanh = "tanh", Relu = "relu", HardSigmoid = "hard_sigmoid",
        Affine = "affine", LeakyRelu = "leaky_relu", ThresholdedRelu = "thresholded_relu",
        ScaledTanh = "scaled_tanh", Elu = "elu", Softsign = "softsign", Softplus = "softplus",
    }
);

/// Window attributes shared by the convolutions and poolings, gathered from an op's fields.
/// Empty lists mean the ONNX defaults (1s, 0s) for the spatial rank of the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    pub kernel_shape: Vec<i64>,
    pub strides: Vec<i64>,
    pub pads: Vec<i64>,
    pub dilations: Vec<i64>,
    pub auto_pad: AutoPad,
}

impl Window {
    pub fn new(kernel_shape: &[i64], strides: &[i64], pads: &[i64], dilations: &[i64], auto_pad: AutoPad) -> Window {
        Window {
            kernel_shape: kernel_shape.to_vec(),
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: dilations.to_vec(),
            auto_pad,
        }
    }

    /// A 1-D window over `[N, C, L]` as the 2-D window over `[N, C, 1, L]`: kernel, stride and
    /// dilation 1 and no padding along the new axis (empty lists stay empty: the defaults).
    pub fn as_2d(&self) -> Window {
        let one = |v: &[i64]| if v.is_empty() { vec![] } else { std::iter::once(1).chain(v.iter().copied()).collect() };
        let pads = match self.pads[..] {
            [b, e] => vec![0, b, 0, e],
            _ => self.pads.clone(),
        };
        Window {
            kernel_shape: one(&self.kernel_shape),
            strides: one(&self.strides),
            pads,
            dilations: one(&self.dilations),
            auto_pad: self.auto_pad,
        }
    }
}

define_ops! {
    elementwise {
    Identity {} [view],
    /// Elementwise function of one input.
    Unary { op: UnaryOp } [in_place],
    /// Elementwise function of two broadcast inputs.
    Binary { op: BinaryOp } [in_place],
    /// Mean of N broadcast inputs.
    Mean {},
    LeakyRelu { alpha: f32 } [in_place],
    Elu { alpha: f32 } [in_place],
    Selu { alpha: f32, gamma: f32 } [in_place],
    Celu { alpha: f32 } [in_place],
    HardSigmoid { alpha: f32, beta: f32 } [in_place],
    ThresholdedRelu { alpha: f32 } [in_place],
    Gelu { approximate: GeluApprox } [in_place],
    Shrink { bias: f32, lambd: f32 } [in_place],
    Swish { alpha: f32 } [in_place],
    IsInf { detect_negative: bool, detect_positive: bool },
    /// Inputs: x, min?, max?.
    Clip {} [in_place],
    Where {},
    /// `saturate`: out-of-range values become the largest finite value of a float8 target
    /// (ONNX's default) instead of infinity or NaN; `round_mode` applies to float8 E8M0.
    Cast { to: DType, saturate: bool, round_mode: E8M0Rounding },
    }
    others {
    /// Cast to the dtype of the second input (`saturate` and `round_mode` as for Cast).
    CastLike { saturate: bool, round_mode: E8M0Rounding },
    MatMul {},
    Gemm { alpha: f32, beta: f32, trans_a: bool, trans_b: bool },
    /// Inputs: A, B, a_zero_point?, b_zero_point?; i32 result.
    MatMulInteger {},
    /// Inputs: a, a_scale, a_zp, b, b_scale, b_zp, y_scale, y_zp.
    QLinearMatMul {},
    Conv { kernel_shape: Vec<i64>, strides: Vec<i64>, pads: Vec<i64>, dilations: Vec<i64>, group: i64, auto_pad: AutoPad },
    ConvInteger { kernel_shape: Vec<i64>, strides: Vec<i64>, pads: Vec<i64>, dilations: Vec<i64>, group: i64, auto_pad: AutoPad },
    QLinearConv { kernel_shape: Vec<i64>, strides: Vec<i64>, pads: Vec<i64>, dilations: Vec<i64>, group: i64, auto_pad: AutoPad },
    /// Inputs: X, W, offset, B?, mask?. 2-D.
    DeformConv { kernel_shape: Vec<i64>, strides: Vec<i64>, pads: Vec<i64>, dilations: Vec<i64>, group: i64, offset_group: i64 },
    ConvTranspose {
        kernel_shape: Vec<i64>, strides: Vec<i64>, pads: Vec<i64>, dilations: Vec<i64>, group: i64,
        auto_pad: AutoPad, output_padding: Vec<i64>, output_shape: Vec<i64>,
    },
    MaxPool { kernel_shape: Vec<i64>, strides: Vec<i64>, pads: Vec<i64>, dilations: Vec<i64>, auto_pad: AutoPad, ceil_mode: bool, storage_order: i64 },
    AveragePool { kernel_shape: Vec<i64>, strides: Vec<i64>, pads: Vec<i64>, dilations: Vec<i64>, auto_pad: AutoPad, ceil_mode: bool, count_include_pad: bool },
    LpPool { kernel_shape: Vec<i64>, strides: Vec<i64>, pads: Vec<i64>, dilations: Vec<i64>, auto_pad: AutoPad, ceil_mode: bool, p: i64 },
    GlobalPool { kind: PoolKind, p: i64 },
    /// Inputs: x, scale, bias, mean, var. `training`: normalize with the batch statistics and
    /// also output the running mean and variance updated with `momentum`.
    BatchNormalization { epsilon: f32, momentum: f32, training: bool },
    /// Outputs: y, mean?, inv_std_dev?. Statistics in f32 (f64 for f64 input).
    LayerNormalization { axis: i64, epsilon: f32 },
    RMSNormalization { axis: i64, epsilon: f32 },
    InstanceNormalization { epsilon: f32 },
    /// Inputs: x, scale [C], bias [C].
    GroupNormalization { num_groups: i64, epsilon: f32 },
    LpNormalization { axis: i64, p: i64 },
    MeanVarianceNormalization { axes: Vec<i64> },
    LRN { alpha: f32, beta: f32, bias: f32, size: i64 },
    /// Inputs: data, axes? (i64).
    Reduce { kind: ReduceKind, keepdims: bool, noop_with_empty_axes: bool },
    ArgMax { axis: i64, keepdims: bool, select_last_index: bool },
    ArgMin { axis: i64, keepdims: bool, select_last_index: bool },
    /// `legacy`: opset < 13 semantics (coerce to 2-D at `axis`).
    Softmax { axis: i64, legacy: bool },
    LogSoftmax { axis: i64, legacy: bool },
    Hardmax { axis: i64, legacy: bool },
    /// Inputs: data, shape (i64).
    Reshape { allowzero: bool } [view],
    Flatten { axis: i64 } [view],
    /// Empty `perm` reverses the axes.
    Transpose { perm: Vec<i64> },
    /// Inputs: data, axes? (i64).
    Squeeze {} [view],
    /// Inputs: data, axes (i64).
    Unsqueeze {} [view],
    Concat { axis: i64 },
    /// Inputs: data, split? (i64). Without `split`, equal parts over the node's outputs
    /// (the last smaller when the axis does not divide).
    Split { axis: i64 },
    /// Inputs: data, starts, ends, axes?, steps?.
    Slice {},
    Gather { axis: i64 },
    GatherElements { axis: i64 },
    GatherND { batch_dims: i64 },
    ScatterND { reduction: ScatterReduction },
    ScatterElements { axis: i64, reduction: ScatterReduction },
    /// Inputs: data, shape.
    Expand {},
    /// Inputs: data, repeats.
    Tile {},
    /// Inputs: data, pads, constant_value?, axes?.
    Pad { mode: PadMode },
    /// Inputs: X [N, C, *S], grid [N, *O, len(S)] of normalized coordinates.
    GridSample { mode: GridMode, padding_mode: GridPadding, align_corners: bool },
    /// Inputs: theta [N, r, r+1], size [N, C, *S] (i64). Output: grid [N, *S, r].
    AffineGrid { align_corners: bool },
    /// Inputs: data, shape (i64 targets for `axes`, all axes when empty).
    CenterCropPad { axes: Vec<i64> },
    /// Inputs: columns [N, C*prod(block), L], image_shape, block_shape.
    Col2Im { dilations: Vec<i64>, pads: Vec<i64>, strides: Vec<i64> },
    /// Inputs: size (scalar). A 1-D window of `dtype`.
    SignalWindow { kind: WindowKind, periodic: bool, dtype: DType },
    /// Inputs: x [..., n, 1|2], dft_length?, axis? (default -2). Output [..., m, 2].
    DFT { inverse: bool, onesided: bool },
    /// Inputs: signal [B, L, 1|2], frame_step, window?, frame_length?. Output [B, frames, bins, 2].
    STFT { onesided: bool },
    /// Inputs: num_mel_bins, dft_length, sample_rate, lower_edge_hertz, upper_edge_hertz.
    MelWeightMatrix { dtype: DType },
    /// Determinants of the trailing square matrices.
    Det {},
    /// Inputs: boxes [B, N, 4], scores [B, C, N], max_output_boxes_per_class?, iou_threshold?,
    /// score_threshold?. Output: selected (batch, class, box) triples [K, 3].
    NonMaxSuppression { center_point_box: bool },
    /// Inputs: X [N, C, H, W], rois [R, 4] (x1, y1, x2, y2), batch_indices [R].
    RoiAlign { half_pixel: bool, max_mode: bool, output_height: i64, output_width: i64, sampling_ratio: i64, spatial_scale: f32 },
    /// Outputs: values, indices, inverse_indices, counts.
    Unique { sorted: bool, axis: Option<i64> },
    /// Inputs: past cache, update, write_indices? [batch]. Output: the updated cache.
    TensorScatter { axis: i64, circular: bool },
    /// Inputs: X, indices (from MaxPool), output_shape?.
    MaxUnpool { kernel_shape: Vec<i64>, pads: Vec<i64>, strides: Vec<i64> },
    /// Inputs: x, roi?, scales?, sizes?.
    Resize {
        mode: ResizeMode, coordinate_transformation_mode: CoordMode, nearest_mode: NearestMode,
        cubic_coeff_a: f32, exclude_outside: bool, extrapolation_value: f32,
        antialias: bool, axes: Vec<i64>, keep_aspect_ratio_policy: AspectPolicy,
    },
    /// Inputs: x, k?.
    Trilu { upper: bool },
    /// Inputs: start, limit, delta (scalars).
    Range {},
    Shape { start: i64, end: Option<i64> },
    Size {},
    /// Input: shape (i64). `value` is a one-element tensor.
    ConstantOfShape { value: Tensor },
    /// Inputs: x, axis (scalar).
    CumSum { exclusive: bool, reverse: bool },
    /// Inputs: x, k (1-element i64). Outputs: values, indices.
    TopK { axis: i64, largest: bool, sorted: bool },
    /// Inputs: indices, depth, values [off, on].
    OneHot { axis: i64 },
    Einsum { equation: String },
    NonZero {},
    DepthToSpace { blocksize: i64, mode: DepthToSpaceMode },
    SpaceToDepth { blocksize: i64 },
    EyeLike { dtype: Option<DType>, k: i64 },
    /// Inputs: input, condition (bool 1-D).
    Compress { axis: Option<i64> },
    ReverseSequence { batch_axis: i64, time_axis: i64 },
    /// Inference mode: outputs x and an all-true mask. Inputs: data, ratio?, training_mode?.
    Dropout {},
    /// Inputs: X, W, R, B?, sequence_lens?, initial_h?, initial_c?, P?.
    /// `dynamic_quant` (onnxruntime's DynamicQuantizeLSTM): the activation input of each
    /// product (X for every step at once, H at each step, per direction) is quantized to u8
    /// with its own range, as DynamicQuantizeLinear does, and dequantized before the product.
    LSTM {
        direction: RnnDirection, hidden_size: i64, activations: Vec<RnnActivation>,
        activation_alpha: Vec<f32>, activation_beta: Vec<f32>, clip: Option<f32>,
        input_forget: bool, layout: i64, dynamic_quant: bool,
    },
    /// Inputs: X, W, R, B?, sequence_lens?, initial_h?.
    GRU {
        direction: RnnDirection, hidden_size: i64, activations: Vec<RnnActivation>,
        activation_alpha: Vec<f32>, activation_beta: Vec<f32>, clip: Option<f32>,
        linear_before_reset: bool, layout: i64,
    },
    /// Inputs: X, W, R, B?, sequence_lens?, initial_h?.
    RNN {
        direction: RnnDirection, hidden_size: i64, activations: Vec<RnnActivation>,
        activation_alpha: Vec<f32>, activation_beta: Vec<f32>, clip: Option<f32>, layout: i64,
    },
    /// Inputs: x, y_scale, y_zero_point?. `output_dtype` None: the zero point's dtype (u8 without one).
    QuantizeLinear { axis: i64, saturate: bool, block_size: i64, output_dtype: Option<DType> },
    /// Inputs: x, x_scale, x_zero_point?.
    DequantizeLinear { axis: i64, block_size: i64, output_dtype: Option<DType> },
    /// Outputs: y (u8), y_scale (f32), y_zero_point (u8).
    DynamicQuantizeLinear {},
    /// W8A8 product (kiln's, from `--quantize w8a8`). Inputs: A [..., K] (float), B i8 [K, N],
    /// B's scale [N] (float). A is quantized per token when it runs; see `quant_matmul`.
    MatMulQ8 {},
    /// W4A16 product (kiln's, from `--quantize w4a16`). Inputs: A [..., K] (float), B u4 [K, N],
    /// scales [ceil(K / group_size), N] (float), zero points u4 [same]; see `quant_matmul`.
    MatMulQ4 { group_size: i64 },
    /// Inputs: Q, K, V, attn_mask?, past_key?, past_value?, nonpad_kv_seqlen?.
    /// Outputs: Y, present_key?, present_value?, qk_matmul_output?.
    /// `zero_undefined_rows` (kiln's, not ONNX's; false on import): a query row whose softmax
    /// is undefined (every key masked, or a NaN or infinite score) gives zeros instead of NaN,
    /// as `Where(IsNaN(p), 0, p)` after the softmax does in PyTorch's exported SDPA.
    Attention {
        is_causal: bool, kv_num_heads: i64, q_num_heads: i64, qk_matmul_output_mode: i64,
        scale: Option<f32>, softcap: f32, softmax_precision: Option<DType>, zero_undefined_rows: bool,
    },
    /// Inputs: log-probabilities [N, C, d...], target [N, d...], weight? [C].
    NegativeLogLikelihoodLoss { reduction: LossReduction, ignore_index: Option<i64> },
    /// Inputs: scores [N, C, d...], labels [N, d...], weights? [C]. Outputs: loss, log_prob?.
    SoftmaxCrossEntropyLoss { reduction: LossReduction, ignore_index: Option<i64> },
    /// Inputs: X, cos_cache, sin_cache, position_ids?.
    RotaryEmbedding { interleaved: bool, num_heads: i64, rotary_embedding_dim: i64 },
    /// Inputs: cond (bool scalar), then the values the branches capture, in `captures` order.
    If { then_branch: Box<Graph>, else_branch: Box<Graph> } [control_flow],
    /// What a branch of an If computes when it could not be imported for the given shapes: one
    /// value of the given dtype and dims (-1: unknown) per output, and, when the branch is taken
    /// at run time, an error that says why. onnxruntime reads only the branch taken, so a model
    /// whose other branch does not fit (silero VAD's 8 kHz path at 16 kHz) still runs. No inputs.
    Trap { message: String, dtype: DType, dims: Vec<i64> },
    /// Inputs: M?, cond?, loop-carried values, then captured values. Body inputs:
    /// iteration, cond, loop-carried values, captured values.
    Loop { body: Box<Graph>, num_carried: i64 } [control_flow],
    /// Inputs: [sequence_lens? when `batched`], states, scan inputs, then captured values.
    /// Body inputs: states, one slice per scan input, captures. Outputs: final states, then
    /// the body's scan outputs stacked along `scan_output_axes`.
    Scan {
        body: Box<Graph>,
        num_states: i64,
        num_scan_inputs: i64,
        scan_input_axes: Vec<i64>,
        scan_input_directions: Vec<i64>,
        scan_output_axes: Vec<i64>,
        scan_output_directions: Vec<i64>,
        batched: bool,
    } [control_flow],
    /// An elementwise program made by fusion: `body`'s inputs are this op's inputs, its nodes
    /// are elementwise ops (see `ops/fused.rs`).
    FusedElementwise { body: Box<Graph> } [fused],
    /// MatMul(a, b) with an elementwise epilogue: `body`'s inputs are the product (split along
    /// its last axis into `splits` parts, or whole when empty), then the inputs after `b`.
    MatMulFused { splits: Vec<i64>, body: Box<Graph> } [fused],
    /// Conv(x, w, bias?) with an elementwise epilogue: `body`'s inputs are the convolution,
    /// then the inputs after the bias slot.
    /// In a storage `format` other than nchw, x and the result are stored values (see `layout`);
    /// the epilogue runs on stored values and the result's channel padding is zero.
    ConvFused {
        kernel_shape: Vec<i64>, strides: Vec<i64>, pads: Vec<i64>, dilations: Vec<i64>, group: i64, auto_pad: AutoPad,
        format: Format, align: i64, body: Box<Graph>,
    } [fused],
    /// A logical NCHW value converted to a storage format (channels zero-padded to `align`).
    ToFormat { format: Format, align: i64 },
    /// A stored value converted back to logical NCHW with `channels` channels.
    FromFormat { format: Format, align: i64, channels: i64 },
    }
}

/// What inference knows about one input: dtype, shape and, when it is a constant, its value.
#[derive(Clone, Copy, Debug)]
pub struct InType<'a> {
    pub dtype: DType,
    pub shape: &'a Shape,
    pub value: Option<&'a Tensor>,
}

/// The inferred type of one output.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: DType,
    pub shape: Shape,
}

impl TensorType {
    pub fn new(dtype: DType, shape: Shape) -> TensorType {
        TensorType { dtype, shape }
    }
    pub fn fixed(dtype: DType, dims: &[usize]) -> TensorType {
        TensorType { dtype, shape: Shape::fixed(dims) }
    }
}

/// Why an op cannot be inferred or evaluated on the given inputs.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpError {
    #[error("expected {expected} inputs, got {got}")]
    Arity { expected: String, got: usize },
    #[error("input {index} is required")]
    MissingInput { index: usize },
    #[error("input {index}: dtype {dtype} is not supported")]
    DType { index: usize, dtype: DType },
    #[error("{0}")]
    Invalid(String),
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A kiln bug surfaced while inferring or evaluating this op (never the model's fault).
    #[error("internal error (a kiln bug, please report it): {0}")]
    Internal(String),
}

/// Runs `f`, turning a panic (a kiln bug) into [`OpError::Internal`] so that one bad op
/// reports an error naming its node instead of taking the process down.
pub(crate) fn guard<T>(f: impl FnOnce() -> Result<T, OpError>) -> Result<T, OpError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            Err(OpError::Internal(msg))
        }
    }
}

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T, OpError> {
    Err(OpError::Invalid(msg.into()))
}

/// The most elements one interpreter tensor may hold (2^31, 8 GiB of f32, 16 GiB of f64):
/// sizes computed from tensor *values* (ConstantOfShape, Expand, Tile, Range, Pad, Resize,
/// OneHot) are checked against it so that a bad model gets an error instead of an allocation
/// the machine cannot make (2^34 let an Expand to [2^31, 4] abort the process). The largest
/// tensors of real models are far below it (a 152k-token vocabulary's logits over 4096
/// positions: 2^29.2).
pub const MAX_ELEMENTS: usize = 1 << 31;

/// Element count of `dims`, or an error when it overflows or exceeds [`MAX_ELEMENTS`].
pub(crate) fn checked_numel(dims: &[usize]) -> Result<usize, OpError> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| OpError::Invalid(format!("output shape {dims:?} is too large")))
}

/// Makes fresh symbolic dims for output sizes that depend on run-time data.
pub struct DimNamer<'a> {
    prefix: &'a str,
    next: usize,
}

impl std::fmt::Debug for DimNamer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DimNamer({})", self.prefix)
    }
}

impl<'a> DimNamer<'a> {
    pub fn new(prefix: &'a str) -> DimNamer<'a> {
        DimNamer { prefix, next: 0 }
    }
    pub fn fresh(&mut self) -> Dim {
        self.next += 1;
        Dim::Sym(format!("{}_{}", self.prefix, self.next - 1))
    }
    pub fn shape(&mut self, rank: usize) -> Shape {
        Shape((0..rank).map(|_| self.fresh()).collect())
    }
}

/// Normalizes a possibly negative axis against `rank`.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, OpError> {
    let r = rank as i64;
    if axis < -r || axis >= r.max(1) && !(r == 0 && axis == 0) {
        return invalid(format!("axis {axis} out of range for rank {rank}"));
    }
    Ok(if axis < 0 { (axis + r) as usize } else { axis as usize })
}

pub(crate) fn req<T>(inputs: &[Option<T>], i: usize) -> Result<&T, OpError> {
    inputs.get(i).and_then(|x| x.as_ref()).ok_or(OpError::MissingInput { index: i })
}

pub(crate) fn opt<T>(inputs: &[Option<T>], i: usize) -> Option<&T> {
    inputs.get(i).and_then(|x| x.as_ref())
}

impl Op {
    fn scan_spec(&self) -> Result<control::ScanSpec<'_>, OpError> {
        match self {
            Op::Scan {
                body,
                num_states,
                num_scan_inputs,
                scan_input_axes,
                scan_input_directions,
                scan_output_axes,
                scan_output_directions,
                batched,
            } => Ok(control::ScanSpec {
                body,
                num_states: (*num_states).max(0) as usize,
                num_scan_inputs: (*num_scan_inputs).max(0) as usize,
                input_axes: scan_input_axes,
                input_reverse: scan_input_directions,
                output_axes: scan_output_axes,
                output_reverse: scan_output_directions,
                batched: *batched,
            }),
            _ => invalid("not a Scan op"),
        }
    }

    /// Infers the output types from the input types (and constant input values, where known).
    pub fn infer(&self, ins: &[Option<InType>], n_out: usize, names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
        guard(|| self.infer_unguarded(ins, n_out, names))
    }

    /// Runs the op's reference semantics. `n_out` is how many outputs the node has.
    pub fn eval(&self, ins: &[Option<&Tensor>], n_out: usize) -> Result<Vec<Tensor>, OpError> {
        guard(|| self.eval_unguarded(ins, n_out))
    }

    fn infer_unguarded(&self, ins: &[Option<InType>], n_out: usize, names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
        use Op::*;
        match self {
            Identity {} | Dropout {} => shape_ops::infer_identity(self, ins, n_out),
            Unary { op } => elementwise::infer_unary(*op, ins),
            Binary { op } => elementwise::infer_binary(*op, ins),
            Mean {} => elementwise::infer_variadic(ins),
            LeakyRelu { .. }
            | Elu { .. }
            | Selu { .. }
            | Celu { .. }
            | HardSigmoid { .. }
            | ThresholdedRelu { .. }
            | Gelu { .. }
            | Shrink { .. }
            | Swish { .. } => activation::infer(ins),
            IsInf { .. } => activation::infer_isinf(ins),
            Clip {} => activation::infer(ins),
            Where {} => elementwise::infer_where(ins),
            Cast { to, .. } => elementwise::infer_cast(*to, ins),
            CastLike { .. } => elementwise::infer_cast(req(ins, 1)?.dtype, ins),
            MatMul {} | MatMulInteger {} | QLinearMatMul {} => matmul::infer_matmul(self, ins),
            Gemm { trans_a, trans_b, .. } => matmul::infer_gemm(*trans_a, *trans_b, ins),
            Conv { kernel_shape, strides, pads, dilations, group: _, auto_pad }
            | ConvInteger { kernel_shape, strides, pads, dilations, group: _, auto_pad }
            | QLinearConv { kernel_shape, strides, pads, dilations, group: _, auto_pad } => {
                let w = Window::new(kernel_shape, strides, pads, dilations, *auto_pad);
                conv::infer_conv(self, &w, ins, names)
            }
            DeformConv { kernel_shape, strides, pads, dilations, .. } => {
                let w = Window::new(kernel_shape, strides, pads, dilations, AutoPad::NotSet);
                conv::infer_conv(self, &w, ins, names)
            }
            ConvTranspose { kernel_shape, strides, pads, dilations, group, auto_pad, output_padding, output_shape } => {
                let w = Window::new(kernel_shape, strides, pads, dilations, *auto_pad);
                conv::infer_conv_transpose(&w, *group, output_padding, output_shape, ins, names)
            }
            MaxPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, .. }
            | AveragePool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, .. }
            | LpPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, .. } => {
                let w = Window::new(kernel_shape, strides, pads, dilations, *auto_pad);
                pool::infer_pool(&w, *ceil_mode, n_out, ins, names)
            }
            GlobalPool { .. } => pool::infer_global(ins),
            BatchNormalization { training: true, .. } => {
                let x = req(ins, 0)?;
                let c = x.shape.0.get(1).cloned().unwrap_or(crate::shape::Dim::Known(1));
                let mut out = vec![TensorType::new(x.dtype, x.shape.clone())];
                out.extend((1..n_out.min(3)).map(|_| TensorType::new(x.dtype, Shape(vec![c.clone()]))));
                Ok(out)
            }
            BatchNormalization { .. }
            | InstanceNormalization { .. }
            | GroupNormalization { .. }
            | LpNormalization { .. }
            | MeanVarianceNormalization { .. }
            | LRN { .. }
            | RMSNormalization { .. } => shape_ops::infer_identity(self, ins, 1),
            LayerNormalization { axis, .. } => normalization::infer_layer_norm(*axis, n_out, ins),
            Reduce { keepdims, noop_with_empty_axes, .. } => reduce::infer_reduce(*keepdims, *noop_with_empty_axes, ins, names),
            ArgMax { axis, keepdims, .. } | ArgMin { axis, keepdims, .. } => reduce::infer_arg(*axis, *keepdims, ins),
            Softmax { .. } | LogSoftmax { .. } | Hardmax { .. } => shape_ops::infer_identity(self, ins, 1),
            Reshape { allowzero } => shape_ops::infer_reshape(*allowzero, ins, names),
            Flatten { axis } => shape_ops::infer_flatten(*axis, ins),
            Transpose { perm } => shape_ops::infer_transpose(perm, ins),
            Squeeze {} => shape_ops::infer_squeeze(ins, names),
            Unsqueeze {} => shape_ops::infer_unsqueeze(ins, names),
            Concat { axis } => shape_ops::infer_concat(*axis, ins, names),
            Split { axis } => shape_ops::infer_split(*axis, n_out, ins, names),
            Slice {} => shape_ops::infer_slice(ins, names),
            Gather { axis } => gather_scatter::infer_gather(*axis, ins),
            GatherElements { .. } => gather_scatter::infer_like_input(1, ins),
            GatherND { batch_dims } => gather_scatter::infer_gather_nd(*batch_dims, ins, names),
            ScatterND { .. } | ScatterElements { .. } => gather_scatter::infer_like_input(0, ins),
            Expand {} => shape_ops::infer_expand(ins, names),
            Tile {} => shape_ops::infer_tile(ins, names),
            Pad { .. } => shape_ops::infer_pad(ins, names),
            Resize { .. } => resize::infer(self, ins, names),
            GridSample { .. } => grid::infer(ins),
            TensorScatter { .. } => gather_scatter::infer_like_input(0, ins),
            MaxUnpool { kernel_shape, pads, strides } => pool::infer_max_unpool(kernel_shape, pads, strides, ins, names),
            AffineGrid { .. } => grid::infer_affine(ins, names),
            CenterCropPad { axes } => data_movement::infer_center_crop_pad(axes, ins, names),
            Col2Im { .. } => conv::infer_col2im(ins, names),
            SignalWindow { dtype, .. } => signal::infer_window(*dtype, ins, names),
            DFT { onesided, .. } => signal::infer_dft(*onesided, ins, names),
            Det {} => linalg::infer_det(ins),
            STFT { onesided } => signal::infer_stft(*onesided, ins, names),
            MelWeightMatrix { dtype } => signal::infer_mel(*dtype, ins, names),
            NonMaxSuppression { .. } => detection::infer_nms(names),
            RoiAlign { output_height, output_width, .. } => detection::infer_roi_align(*output_height, *output_width, ins),
            Unique { axis, .. } => index_ops::infer_unique(*axis, n_out, ins, names),
            Trilu { .. } => shape_ops::infer_identity(self, ins, 1),
            Range {} => index_ops::infer_range(ins, names),
            Shape { start, end } => shape_ops::infer_shape_op(*start, *end, ins),
            Size {} => Ok(vec![TensorType::fixed(DType::I64, &[])]),
            ConstantOfShape { value } => shape_ops::infer_constant_of_shape(value, ins, names),
            CumSum { .. } => shape_ops::infer_identity(self, ins, 1),
            TopK { axis, .. } => index_ops::infer_topk(*axis, ins, names),
            OneHot { axis } => index_ops::infer_onehot(*axis, ins, names),
            Einsum { equation } => matmul::infer_einsum(equation, ins),
            NonZero {} => {
                let x = req(ins, 0)?;
                Ok(vec![TensorType::new(DType::I64, Shape(vec![Dim::Known(x.shape.rank()), names.fresh()]))])
            }
            DepthToSpace { blocksize, .. } => data_movement::infer_depth_to_space(*blocksize, ins),
            SpaceToDepth { blocksize } => data_movement::infer_space_to_depth(*blocksize, ins),
            EyeLike { dtype, .. } => {
                let x = req(ins, 0)?;
                Ok(vec![TensorType::new(dtype.unwrap_or(x.dtype), x.shape.clone())])
            }
            Compress { axis } => data_movement::infer_compress(*axis, ins, names),
            ReverseSequence { .. } => shape_ops::infer_identity(self, ins, 1),
            LSTM { direction, hidden_size, layout, .. } => recurrent::infer(*direction, *hidden_size, *layout, n_out, ins),
            GRU { direction, hidden_size, layout, .. } | RNN { direction, hidden_size, layout, .. } => {
                recurrent::infer(*direction, *hidden_size, *layout, n_out.min(2), ins)
            }
            QuantizeLinear { output_dtype, .. } => quant::infer_quantize(*output_dtype, ins),
            DequantizeLinear { output_dtype, .. } => quant::infer_dequantize(*output_dtype, ins),
            DynamicQuantizeLinear {} => quant::infer_dynamic(ins),
            MatMulQ8 {} => quant_matmul::infer_q8(ins),
            MatMulQ4 { group_size } => quant_matmul::infer_q4(*group_size, ins),
            Attention { q_num_heads, kv_num_heads, .. } => attention::infer_attention(*q_num_heads, *kv_num_heads, n_out, ins, names),
            RotaryEmbedding { .. } => shape_ops::infer_identity(self, ins, 1),
            NegativeLogLikelihoodLoss { reduction, .. } => loss::infer(*reduction, 1, ins),
            SoftmaxCrossEntropyLoss { reduction, .. } => loss::infer(*reduction, n_out, ins),
            If { then_branch, else_branch } => control::infer_if(then_branch, else_branch, ins, names),
            Trap { dtype, dims, .. } => Ok(vec![control::infer_trap(*dtype, dims, names)]),
            Loop { body, num_carried } => control::infer_loop(body, *num_carried, n_out, ins, names),
            Scan { .. } => control::infer_scan(&self.scan_spec()?, n_out, ins, names),
            FusedElementwise { body } => fused::infer_elementwise(body, ins),
            MatMulFused { splits, body } => fused::infer_matmul_fused(splits, body, ins),
            ConvFused { kernel_shape, strides, pads, dilations, auto_pad, format, align, body, .. } => {
                let w = Window::new(kernel_shape, strides, pads, dilations, *auto_pad);
                fused::infer_conv_fused(self, &w, (*format, *align), body, ins, names)
            }
            ToFormat { format, align } => layout::infer_to(*format, *align, ins),
            FromFormat { format, align, channels } => layout::infer_from(*format, *align, *channels, ins),
        }
    }

    fn eval_unguarded(&self, ins: &[Option<&Tensor>], n_out: usize) -> Result<Vec<Tensor>, OpError> {
        use Op::*;
        match self {
            Identity {} => Ok(vec![(*req(ins, 0)?).clone()]),
            Dropout {} => shape_ops::eval_dropout(ins, n_out),
            Unary { op } => elementwise::eval_unary(*op, req(ins, 0)?).map(|t| vec![t]),
            Binary { op } => elementwise::eval_binary(*op, req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            Mean {} => elementwise::eval_mean(ins).map(|t| vec![t]),
            LeakyRelu { .. }
            | Elu { .. }
            | Selu { .. }
            | Celu { .. }
            | HardSigmoid { .. }
            | ThresholdedRelu { .. }
            | Gelu { .. }
            | Shrink { .. }
            | Swish { .. }
            | IsInf { .. } => activation::eval(self, req(ins, 0)?).map(|t| vec![t]),
            Clip {} => activation::eval_clip(ins).map(|t| vec![t]),
            Where {} => elementwise::eval_where(req(ins, 0)?, req(ins, 1)?, req(ins, 2)?).map(|t| vec![t]),
            Cast { to, saturate, round_mode } => Ok(vec![elementwise::cast(req(ins, 0)?, *to, *saturate, *round_mode)]),
            CastLike { saturate, round_mode } => Ok(vec![elementwise::cast(req(ins, 0)?, req(ins, 1)?.dtype(), *saturate, *round_mode)]),
            MatMul {} => matmul::eval_matmul(req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            Gemm { alpha, beta, trans_a, trans_b } => matmul::eval_gemm(*alpha, *beta, *trans_a, *trans_b, ins).map(|t| vec![t]),
            MatMulInteger {} => quant::eval_matmul_integer(ins).map(|t| vec![t]),
            QLinearMatMul {} => quant::eval_qlinear_matmul(ins).map(|t| vec![t]),
            Conv { kernel_shape, strides, pads, dilations, group, auto_pad }
            | ConvInteger { kernel_shape, strides, pads, dilations, group, auto_pad }
            | QLinearConv { kernel_shape, strides, pads, dilations, group, auto_pad } => {
                let w = Window::new(kernel_shape, strides, pads, dilations, *auto_pad);
                match self {
                    ConvInteger { .. } => quant::eval_conv_integer(&w, *group, ins),
                    QLinearConv { .. } => quant::eval_qlinear_conv(&w, *group, ins),
                    _ => conv::eval_conv(&w, *group, req(ins, 0)?, req(ins, 1)?, opt(ins, 2).copied()),
                }
                .map(|t| vec![t])
            }
            DeformConv { kernel_shape, strides, pads, dilations, group, offset_group } => {
                let w = Window::new(kernel_shape, strides, pads, dilations, AutoPad::NotSet);
                conv::eval_deform_conv(&w, *group, *offset_group, ins).map(|t| vec![t])
            }
            ConvTranspose { kernel_shape, strides, pads, dilations, group, auto_pad, output_padding, output_shape } => {
                let w = Window::new(kernel_shape, strides, pads, dilations, *auto_pad);
                conv::eval_conv_transpose(&w, *group, output_padding, output_shape, ins).map(|t| vec![t])
            }
            MaxPool { .. } | AveragePool { .. } | LpPool { .. } => pool::eval_pool(self, req(ins, 0)?, n_out),
            GlobalPool { kind, p } => pool::eval_global(*kind, *p, req(ins, 0)?).map(|t| vec![t]),
            BatchNormalization { epsilon, momentum, training } => {
                normalization::eval_batch_norm(*epsilon, *momentum, *training, ins, n_out)
            }
            LayerNormalization { axis, epsilon } => normalization::eval_layer_norm(*axis, *epsilon, ins, n_out),
            RMSNormalization { axis, epsilon } => normalization::eval_rms_norm(*axis, *epsilon, ins).map(|t| vec![t]),
            InstanceNormalization { epsilon } => normalization::eval_instance_norm(*epsilon, ins).map(|t| vec![t]),
            GroupNormalization { num_groups, epsilon } => normalization::eval_group_norm(*num_groups, *epsilon, ins).map(|t| vec![t]),
            LpNormalization { axis, p } => normalization::eval_lp_norm(*axis, *p, req(ins, 0)?).map(|t| vec![t]),
            MeanVarianceNormalization { axes } => normalization::eval_mvn(axes, req(ins, 0)?).map(|t| vec![t]),
            LRN { alpha, beta, bias, size } => normalization::eval_lrn(*alpha, *beta, *bias, *size, req(ins, 0)?).map(|t| vec![t]),
            Reduce { kind, keepdims, noop_with_empty_axes } => {
                reduce::eval_reduce(*kind, *keepdims, *noop_with_empty_axes, ins).map(|t| vec![t])
            }
            ArgMax { axis, keepdims, select_last_index } => {
                reduce::eval_arg(true, *axis, *keepdims, *select_last_index, req(ins, 0)?).map(|t| vec![t])
            }
            ArgMin { axis, keepdims, select_last_index } => {
                reduce::eval_arg(false, *axis, *keepdims, *select_last_index, req(ins, 0)?).map(|t| vec![t])
            }
            Softmax { axis, legacy } => reduce::eval_softmax(reduce::SoftmaxKind::Softmax, *axis, *legacy, req(ins, 0)?).map(|t| vec![t]),
            LogSoftmax { axis, legacy } => {
                reduce::eval_softmax(reduce::SoftmaxKind::LogSoftmax, *axis, *legacy, req(ins, 0)?).map(|t| vec![t])
            }
            Hardmax { axis, legacy } => reduce::eval_softmax(reduce::SoftmaxKind::Hardmax, *axis, *legacy, req(ins, 0)?).map(|t| vec![t]),
            Reshape { allowzero } => shape_ops::eval_reshape(*allowzero, req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            Flatten { axis } => shape_ops::eval_flatten(*axis, req(ins, 0)?).map(|t| vec![t]),
            Transpose { perm } => data_movement::eval_transpose(perm, req(ins, 0)?).map(|t| vec![t]),
            Squeeze {} => shape_ops::eval_squeeze(req(ins, 0)?, opt(ins, 1).copied()).map(|t| vec![t]),
            Unsqueeze {} => shape_ops::eval_unsqueeze(req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            Concat { axis } => data_movement::eval_concat(*axis, ins).map(|t| vec![t]),
            Split { axis } => data_movement::eval_split(*axis, req(ins, 0)?, opt(ins, 1).copied(), n_out),
            Slice {} => data_movement::eval_slice(ins).map(|t| vec![t]),
            Gather { axis } => gather_scatter::eval_gather(*axis, req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            GatherElements { axis } => gather_scatter::eval_gather_elements(*axis, req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            GatherND { batch_dims } => gather_scatter::eval_gather_nd(*batch_dims, req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            ScatterND { reduction } => {
                gather_scatter::eval_scatter_nd(*reduction, req(ins, 0)?, req(ins, 1)?, req(ins, 2)?).map(|t| vec![t])
            }
            ScatterElements { axis, reduction } => {
                gather_scatter::eval_scatter_elements(*axis, *reduction, req(ins, 0)?, req(ins, 1)?, req(ins, 2)?).map(|t| vec![t])
            }
            Expand {} => data_movement::eval_expand(req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            Tile {} => data_movement::eval_tile(req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            Pad { mode } => data_movement::eval_pad(*mode, ins).map(|t| vec![t]),
            Resize { .. } => resize::eval(self, ins).map(|t| vec![t]),
            GridSample { mode, padding_mode, align_corners } => {
                grid::eval(*mode, *padding_mode, *align_corners, req(ins, 0)?, req(ins, 1)?).map(|t| vec![t])
            }
            TensorScatter { axis, circular } => {
                gather_scatter::eval_tensor_scatter(*axis, *circular, req(ins, 0)?, req(ins, 1)?, opt(ins, 2).copied()).map(|t| vec![t])
            }
            MaxUnpool { kernel_shape, pads, strides } => pool::eval_max_unpool(kernel_shape, pads, strides, ins).map(|t| vec![t]),
            AffineGrid { align_corners } => grid::eval_affine(*align_corners, req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            CenterCropPad { axes } => data_movement::eval_center_crop_pad(axes, req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            Col2Im { dilations, pads, strides } => conv::eval_col2im(dilations, pads, strides, ins).map(|t| vec![t]),
            SignalWindow { kind, periodic, dtype } => signal::eval_window(*kind, *periodic, *dtype, req(ins, 0)?).map(|t| vec![t]),
            DFT { inverse, onesided } => signal::eval_dft(*inverse, *onesided, ins).map(|t| vec![t]),
            Det {} => linalg::eval_det(req(ins, 0)?).map(|t| vec![t]),
            STFT { onesided } => signal::eval_stft(*onesided, ins).map(|t| vec![t]),
            MelWeightMatrix { dtype } => signal::eval_mel(*dtype, ins).map(|t| vec![t]),
            NonMaxSuppression { center_point_box } => detection::eval_nms(*center_point_box, ins).map(|t| vec![t]),
            RoiAlign { half_pixel, max_mode, output_height, output_width, sampling_ratio, spatial_scale } => {
                detection::eval_roi_align(*half_pixel, *max_mode, *output_height, *output_width, *sampling_ratio, *spatial_scale, ins)
                    .map(|t| vec![t])
            }
            Unique { sorted, axis } => index_ops::eval_unique(*sorted, *axis, req(ins, 0)?, n_out),
            Trilu { upper } => index_ops::eval_trilu(*upper, req(ins, 0)?, opt(ins, 1).copied()).map(|t| vec![t]),
            Range {} => index_ops::eval_range(req(ins, 0)?, req(ins, 1)?, req(ins, 2)?).map(|t| vec![t]),
            Shape { start, end } => shape_ops::eval_shape(*start, *end, req(ins, 0)?).map(|t| vec![t]),
            Size {} => Ok(vec![Tensor::scalar_i64(req(ins, 0)?.numel() as i64)]),
            ConstantOfShape { value } => shape_ops::eval_constant_of_shape(value, req(ins, 0)?).map(|t| vec![t]),
            CumSum { exclusive, reverse } => index_ops::eval_cumsum(*exclusive, *reverse, req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            TopK { axis, largest, .. } => index_ops::eval_topk(*axis, *largest, req(ins, 0)?, req(ins, 1)?),
            OneHot { axis } => index_ops::eval_onehot(*axis, req(ins, 0)?, req(ins, 1)?, req(ins, 2)?).map(|t| vec![t]),
            Einsum { equation } => matmul::eval_einsum(equation, ins).map(|t| vec![t]),
            NonZero {} => index_ops::eval_nonzero(req(ins, 0)?).map(|t| vec![t]),
            DepthToSpace { blocksize, mode } => data_movement::eval_depth_to_space(*blocksize, *mode, req(ins, 0)?).map(|t| vec![t]),
            SpaceToDepth { blocksize } => data_movement::eval_space_to_depth(*blocksize, req(ins, 0)?).map(|t| vec![t]),
            EyeLike { dtype, k } => index_ops::eval_eye_like(*dtype, *k, req(ins, 0)?).map(|t| vec![t]),
            Compress { axis } => data_movement::eval_compress(*axis, req(ins, 0)?, req(ins, 1)?).map(|t| vec![t]),
            ReverseSequence { batch_axis, time_axis } => {
                data_movement::eval_reverse_sequence(*batch_axis, *time_axis, req(ins, 0)?, req(ins, 1)?).map(|t| vec![t])
            }
            LSTM { .. } | GRU { .. } | RNN { .. } => recurrent::eval(self, ins, n_out),
            QuantizeLinear { axis, saturate, block_size, output_dtype } => {
                quant::eval_quantize(*axis, *saturate, *block_size, *output_dtype, ins).map(|t| vec![t])
            }
            DequantizeLinear { axis, block_size, output_dtype } => {
                quant::eval_dequantize(*axis, *block_size, *output_dtype, ins).map(|t| vec![t])
            }
            DynamicQuantizeLinear {} => quant::eval_dynamic(req(ins, 0)?),
            MatMulQ8 {} => quant_matmul::eval_q8(ins),
            MatMulQ4 { group_size } => quant_matmul::eval_q4(*group_size, ins),
            Attention { .. } => attention::eval_attention(self, ins, n_out),
            RotaryEmbedding { interleaved, num_heads, rotary_embedding_dim } => {
                attention::eval_rotary(*interleaved, *num_heads, *rotary_embedding_dim, ins).map(|t| vec![t])
            }
            NegativeLogLikelihoodLoss { reduction, ignore_index } => loss::eval_nll(*reduction, *ignore_index, ins).map(|t| vec![t]),
            SoftmaxCrossEntropyLoss { reduction, ignore_index } => loss::eval_sce(*reduction, *ignore_index, ins, n_out),
            If { then_branch, else_branch } => control::eval_if(then_branch, else_branch, ins),
            Trap { message, .. } => Err(OpError::Invalid(format!("{message}, and this run took it"))),
            Loop { body, num_carried } => control::eval_loop(body, *num_carried, ins, n_out),
            Scan { .. } => control::eval_scan(&self.scan_spec()?, ins, n_out),
            FusedElementwise { body } => fused::eval_elementwise(body, ins),
            MatMulFused { splits, body } => fused::eval_matmul_fused(splits, body, ins),
            ConvFused { kernel_shape, strides, pads, dilations, group, auto_pad, format, align, body } => {
                let w = Window::new(kernel_shape, strides, pads, dilations, *auto_pad);
                fused::eval_conv_fused(&w, *group, (*format, *align), body, ins)
            }
            ToFormat { format, align } => layout::to_format(*format, *align, req(ins, 0)?).map(|t| vec![t]),
            FromFormat { format, align, channels } => layout::from_format(*format, *align, *channels, req(ins, 0)?).map(|t| vec![t]),
        }
    }
}
