//! onnxruntime's contrib ops (domain `com.microsoft`): what ORT's transformer optimizer,
//! quantization tools and LLM exporters write into real models. Each op becomes IR ops with
//! the same meaning, written from ORT's schemas (`onnxruntime/core/graph/contrib_ops/
//! bert_defs.cc`, `contrib_defs.cc`, `quantization_defs.cc`, `docs/ContribOperators.md`) and
//! checked against onnxruntime by the node tests in `testsuite/contrib/`.
//!
//! - [`transformer`]: attention, the fused norms and embeddings, GELU variants, rotary.
//! - [`quantized`]: the integer products, the QLinear elementwise family, MatMulNBits and
//!   DynamicQuantizeLSTM.

mod quantized;
mod transformer;

use super::node::{Cx, Out, R};
use kiln_ir::ops::GeluApprox;
use kiln_ir::{BinaryOp, Op};

/// onnxruntime's contrib domain.
pub(crate) const DOMAIN: &str = "com.microsoft";

type Entry = (&'static str, fn(&mut Cx) -> R);

/// Every contrib op kiln imports, sorted by op type. ORT versions them all as opset 1.
static TABLE: &[Entry] = &[
    ("Attention", transformer::attention),
    // BiasGelu (bert_defs.cc): Gelu(A + B), erf form.
    ("BiasGelu", |cx| {
        let s = cx.bin(BinaryOp::Add, cx.req(0)?, cx.req(1)?)?;
        Ok(Out::Node(Op::Gelu { approximate: GeluApprox::None }, vec![Some(s)]))
    }),
    ("DynamicQuantizeLSTM", quantized::dynamic_quantize_lstm),
    ("DynamicQuantizeMatMul", quantized::dynamic_quantize_matmul),
    ("EmbedLayerNormalization", transformer::embed_layer_norm),
    // FastGelu (bert_defs.cc): the tanh approximation of Gelu(X + bias).
    ("FastGelu", |cx| {
        let x = match cx.inp(1) {
            Some(b) => cx.bin(BinaryOp::Add, cx.req(0)?, b)?,
            None => cx.req(0)?,
        };
        Ok(Out::Node(Op::Gelu { approximate: GeluApprox::Tanh }, vec![Some(x)]))
    }),
    ("FusedMatMul", quantized::fused_matmul),
    // Gelu (contrib_defs.cc): the erf form, as ONNX's Gelu of opset 20.
    ("Gelu", |cx| Ok(Out::Node(Op::Gelu { approximate: GeluApprox::None }, vec![Some(cx.req(0)?)]))),
    ("GroupQueryAttention", transformer::group_query_attention),
    ("MatMulIntegerToFloat", quantized::matmul_integer_to_float),
    ("MatMulNBits", quantized::matmul_nbits),
    ("MultiHeadAttention", transformer::multi_head_attention),
    ("QLinearAdd", |cx| quantized::qlinear_binary(cx, BinaryOp::Add)),
    ("QLinearConcat", quantized::qlinear_concat),
    ("QLinearGlobalAveragePool", quantized::qlinear_global_average_pool),
    ("QLinearLeakyRelu", |cx| {
        let alpha = cx.f("alpha", 0.01)?;
        quantized::qlinear_unary(cx, Op::LeakyRelu { alpha })
    }),
    ("QLinearMul", |cx| quantized::qlinear_binary(cx, BinaryOp::Mul)),
    ("QLinearSigmoid", |cx| quantized::qlinear_unary(cx, Op::Unary { op: kiln_ir::UnaryOp::Sigmoid })),
    // QLinearSoftmax (quantization_defs.cc): `opset` is the opset of the Softmax it replaced
    // (before 13, Softmax flattens to 2-D at `axis`).
    ("QLinearSoftmax", |cx| {
        let legacy = cx.i("opset", 13)? < 13;
        let axis = cx.i("axis", if legacy { 1 } else { -1 })?;
        quantized::qlinear_unary(cx, Op::Softmax { axis, legacy })
    }),
    // QuickGelu (contrib_defs.cc): X * Sigmoid(alpha * X), alpha 1.702 by default: Swish.
    ("QuickGelu", |cx| Ok(Out::Node(Op::Swish { alpha: cx.f("alpha", 1.702)? }, vec![Some(cx.req(0)?)]))),
    ("RotaryEmbedding", transformer::rotary_embedding),
    ("SimplifiedLayerNormalization", transformer::simplified_layer_norm),
    ("SkipLayerNormalization", |cx| transformer::skip_layer_norm(cx, false)),
    ("SkipSimplifiedLayerNormalization", |cx| transformer::skip_layer_norm(cx, true)),
];

/// `x` converted to `to` (ONNX's Cast).
fn cast(cx: &mut Cx, x: kiln_ir::ValueId, to: kiln_ir::DType) -> Result<kiln_ir::ValueId, super::node::LowerError> {
    cx.emit(Op::Cast { to, saturate: true, round_mode: kiln_ir::ops::E8M0Rounding::Up }, vec![Some(x)])
}

pub(crate) fn lookup(op_type: &str) -> Option<fn(&mut Cx) -> R> {
    TABLE.binary_search_by(|e| e.0.cmp(op_type)).ok().map(|k| TABLE[k].1)
}

/// The contrib ops onnxruntime registers in the default ONNX domain (contrib_defs.cc:
/// SimplifiedLayerNormalization; its LayerNormalization predates ONNX's and matches it, so
/// ONNX's table serves it).
pub(crate) fn lookup_default_domain(op_type: &str) -> Option<fn(&mut Cx) -> R> {
    (op_type == "SimplifiedLayerNormalization").then_some(transformer::simplified_layer_norm as fn(&mut Cx) -> R)
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_is_sorted_without_duplicates() {
        for w in super::TABLE.windows(2) {
            assert!(w[0].0 < w[1].0, "{} must come before {}", w[0].0, w[1].0);
        }
    }
}
