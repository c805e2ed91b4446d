//! The op table of the CUDA target: every op's kernel family, or `None` where the target has
//! none yet (exhaustive: a new op must be placed here), and the dispatch to the families'
//! kernel builders in `kernels/`.

use crate::codegen::llvm::R;
use crate::codegen::{unsupported, Cx};
use crate::kernels;
use kiln_ir::{Node, Op};

/// The kernel families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    View,
    Elementwise,
    Gemm,
    Conv,
    Pool,
    Reduce,
    Attention,
    Rotary,
    Movement,
    Copy,
    Loss,
    Quant,
    Resize,
    Index,
    ConvTranspose,
    Grid,
    StaticGather,
    ChannelNorm,
}

/// The kernel family of each op, `None` where the CUDA target has none yet. Exhaustive: a new
/// op must be placed here.
pub fn family(op: &Op) -> Option<Family> {
    use Op::*;
    Some(match op {
        Identity {} | Reshape { .. } | Flatten { .. } | Squeeze {} | Unsqueeze {} => Family::View,
        Unary { .. }
        | Binary { .. }
        | Mean {}
        | LeakyRelu { .. }
        | Elu { .. }
        | Selu { .. }
        | Celu { .. }
        | HardSigmoid { .. }
        | ThresholdedRelu { .. }
        | Gelu { .. }
        | Shrink { .. }
        | Swish { .. }
        | IsInf { .. }
        | Clip {}
        | Where {}
        | Cast { .. }
        | CastLike { .. }
        | FusedElementwise { .. } => Family::Elementwise,
        MatMul {} | Gemm { .. } | MatMulFused { .. } => Family::Gemm,
        Conv { .. } | ConvFused { .. } => Family::Conv,
        MaxPool { .. } | AveragePool { .. } | LpPool { .. } | GlobalPool { .. } => Family::Pool,
        LayerNormalization { .. }
        | RMSNormalization { .. }
        | Softmax { .. }
        | LogSoftmax { .. }
        | Reduce { .. }
        | ArgMax { .. }
        | ArgMin { .. }
        | Hardmax { .. }
        | CumSum { .. }
        | TopK { .. }
        | InstanceNormalization { .. }
        | GroupNormalization { .. } => Family::Reduce,
        Attention { .. } => Family::Attention,
        RotaryEmbedding { .. } => Family::Rotary,
        Transpose { .. }
        | Concat { .. }
        | Split { .. }
        | Slice {}
        | Expand {}
        | Tile {}
        | Pad { .. }
        | ToFormat { .. }
        | FromFormat { .. }
        | Trilu { .. }
        | GatherElements { .. }
        | ScatterElements { .. }
        | ScatterND { .. }
        | Gather { .. } => Family::Movement,
        Dropout {} => Family::Copy,
        NegativeLogLikelihoodLoss { .. } | SoftmaxCrossEntropyLoss { .. } => Family::Loss,
        QuantizeLinear { .. } | DequantizeLinear { .. } => Family::Quant,
        Resize { .. } => Family::Resize,
        ConvTranspose { .. } => Family::ConvTranspose,
        GridSample { .. } | AffineGrid { .. } => Family::Grid,
        OneHot { .. }
        | EyeLike { .. }
        | DepthToSpace { .. }
        | SpaceToDepth { .. }
        | LpNormalization { .. }
        | GatherND { .. }
        | ReverseSequence { .. } => Family::Index,
        CenterCropPad { .. } | Compress { .. } => Family::StaticGather,
        BatchNormalization { training: false, .. } | LRN { .. } => Family::ChannelNorm,
        MatMulInteger {}
        | QLinearMatMul {}
        | ConvInteger { .. }
        | QLinearConv { .. }
        | DeformConv { .. }
        | BatchNormalization { training: true, .. }
        | MeanVarianceNormalization { .. }
        | Col2Im { .. }
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
        | LSTM { .. }
        | GRU { .. }
        | RNN { .. }
        | DynamicQuantizeLinear {}
        | If { .. }
        | Trap { .. }
        | MatMulQ8 {}
        | MatMulQ4 { .. }
        | Loop { .. }
        | Scan { .. } => return None,
    })
}

pub(crate) fn lower_node(cx: &mut Cx, node: &Node) -> R<()> {
    let Some(f) = family(&node.op) else {
        if let Op::Trap { message, .. } = &node.op {
            return unsupported(format!("{message} (compiled code computes both branches of such an If: only the interpreter runs it)"));
        }
        return unsupported(format!("op {} has no CUDA kernel yet", node.op.kind_name()));
    };
    match f {
        Family::View => Ok(()),
        Family::Elementwise => kernels::elementwise::lower(cx, node),
        Family::Gemm => kernels::gemm::lower(cx, node),
        Family::Conv => kernels::conv::lower(cx, node),
        Family::Pool => kernels::pool::lower(cx, node),
        Family::Reduce => kernels::reduce::lower(cx, node),
        Family::Attention => kernels::attention::lower(cx, node),
        Family::Rotary => kernels::attention::lower_rotary(cx, node),
        Family::Movement => kernels::movement::lower(cx, node),
        Family::Copy => kernels::movement::lower_copy(cx, node),
        Family::Loss => kernels::loss::lower(cx, node),
        Family::Quant => kernels::quant::lower(cx, node),
        Family::Resize => kernels::resize::lower(cx, node),
        Family::Index => kernels::index::lower(cx, node),
        Family::ConvTranspose => kernels::conv_transpose::lower(cx, node),
        Family::Grid => kernels::grid::lower(cx, node),
        Family::StaticGather => kernels::static_gather::lower(cx, node),
        Family::ChannelNorm => kernels::channel_norm::lower(cx, node),
    }
}
