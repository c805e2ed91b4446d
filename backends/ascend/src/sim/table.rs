//! The simulator's op table: every CANN op type it executes, with the family file whose
//! documented semantics run it, in one place. The graph-structure ops (Data, Const,
//! FileConstant, NetOutput) and kiln's AscendC custom ops are the walk's own (`mod.rs`). A test
//! holds the table to `ge::prototypes`: every op type the builder may emit has semantics here,
//! and nothing is simulated that the builder cannot emit.

use super::{index, movement, nn, ops, quant, resample, OpCx, SimError, Value};

type Eval = fn(&OpCx) -> Result<Vec<Value>, SimError>;

/// (CANN op type, the family that runs it), sorted by op type.
const TABLE: &[(&str, Eval)] = &[
    ("Abs", ops::eval),
    ("Acos", ops::eval),
    ("Acosh", ops::eval),
    ("Add", ops::eval),
    ("AffineGrid", resample::eval),
    ("ArgMaxV2", index::eval),
    ("ArgMin", index::eval),
    ("Asin", ops::eval),
    ("Asinh", ops::eval),
    ("Atan", ops::eval),
    ("Atanh", ops::eval),
    ("AvgPoolV2", nn::eval),
    ("BatchMatMulV2", nn::eval),
    ("BitwiseAnd", ops::eval),
    ("BitwiseOr", ops::eval),
    ("BitwiseXor", ops::eval),
    ("BroadcastToD", ops::eval),
    ("Cast", ops::eval),
    ("Ceil", ops::eval),
    ("ClipByValue", ops::eval),
    ("Col2im", movement::eval),
    ("ConcatD", ops::eval),
    ("Conv2D", nn::eval),
    ("Conv2DTranspose", nn::eval),
    ("Cos", ops::eval),
    ("Cosh", ops::eval),
    ("Cumsum", movement::eval),
    ("DepthToSpace", movement::eval),
    ("Div", ops::eval),
    ("DynamicQuant", quant::eval),
    ("Equal", ops::eval),
    ("Erf", ops::eval),
    ("Exp", ops::eval),
    ("FlashAttentionScore", nn::eval),
    ("Floor", ops::eval),
    ("FloorMod", ops::eval),
    ("GatherElements", index::eval),
    ("GatherNd", index::eval),
    ("GatherV2", ops::eval),
    ("GeluV2", ops::eval),
    ("Greater", ops::eval),
    ("GreaterEqual", ops::eval),
    ("GridSampler2D", resample::eval),
    ("Invert", ops::eval),
    ("IsInf", ops::eval),
    ("IsNan", ops::eval),
    ("LayerNorm", nn::eval),
    ("LayerNormV3", nn::eval),
    ("LeftShift", ops::eval),
    ("Less", ops::eval),
    ("LessEqual", ops::eval),
    ("Log", ops::eval),
    ("LogSoftmaxV2", nn::eval),
    ("LogicalAnd", ops::eval),
    ("LogicalNot", ops::eval),
    ("LogicalOr", ops::eval),
    ("MatMulV2", nn::eval),
    ("MaxPoolV3", nn::eval),
    ("Maximum", ops::eval),
    ("Minimum", ops::eval),
    ("Mish", ops::eval),
    ("Mod", ops::eval),
    ("Mul", ops::eval),
    ("NLLLoss", index::eval),
    ("Neg", ops::eval),
    ("OneHot", index::eval),
    ("PadV3", movement::eval),
    ("Pow", ops::eval),
    ("QuantBatchMatmulV3", quant::eval),
    ("RealDiv", ops::eval),
    ("Reciprocal", ops::eval),
    ("ReduceMaxD", ops::eval),
    ("ReduceMeanD", ops::eval),
    ("ReduceMinD", ops::eval),
    ("ReduceProdD", ops::eval),
    ("ReduceSumD", ops::eval),
    ("Relu", ops::eval),
    ("Reshape", ops::eval),
    ("Resize", resample::eval),
    ("ReverseSequence", movement::eval),
    ("ReverseV2D", index::eval),
    ("RightShift", ops::eval),
    ("RmsNorm", nn::eval),
    ("RotaryMul", nn::eval),
    ("Round", ops::eval),
    ("Rsqrt", ops::eval),
    ("ScatterElements", index::eval),
    ("SelectV2", ops::eval),
    ("Sigmoid", ops::eval),
    ("Sign", ops::eval),
    ("Sin", ops::eval),
    ("Sinh", ops::eval),
    ("SoftmaxV2", nn::eval),
    ("SpaceToDepth", movement::eval),
    ("SplitVD", ops::eval),
    ("Sqrt", ops::eval),
    ("StridedSliceD", ops::eval),
    ("Sub", ops::eval),
    ("Tan", ops::eval),
    ("Tanh", ops::eval),
    ("TensorScatterAdd", index::eval),
    ("TensorScatterMax", index::eval),
    ("TensorScatterMin", index::eval),
    ("TensorScatterUpdate", index::eval),
    ("Tile", movement::eval),
    ("TopKV2", index::eval),
    ("TransData", nn::eval),
    ("TransposeD", ops::eval),
    ("Tril", ops::eval),
    ("Triu", ops::eval),
    ("WeightQuantBatchMatmulV2", quant::eval),
];

/// The semantics of op type `t`, if the simulator has them.
pub(super) fn lookup(t: &str) -> Option<Eval> {
    TABLE.binary_search_by(|(k, _)| (*k).cmp(t)).ok().map(|i| TABLE[i].1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ge::prototypes;

    /// Ops the walk runs itself (`mod.rs`), not the table.
    const WALK: [&str; 4] = ["Data", "Const", "FileConstant", "NetOutput"];

    #[test]
    fn table_is_sorted_without_duplicates() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0), "the table must be sorted by op type, each once");
    }

    #[test]
    fn every_prototype_has_semantics_and_every_entry_a_prototype() {
        let protos = prototypes::types();
        let missing: Vec<&str> = protos.iter().copied().filter(|t| !WALK.contains(t) && lookup(t).is_none()).collect();
        assert!(missing.is_empty(), "op types the builder may emit that the simulator cannot run: {missing:?}");
        let extra: Vec<&str> = TABLE.iter().map(|(t, _)| *t).filter(|t| !protos.contains(t)).collect();
        assert!(extra.is_empty(), "op types simulated that have no prototype: {extra:?}");
    }

    /// Each entry names the family whose `eval` knows the op type: called on an op of that type
    /// with no inputs or attributes, it fails on what is missing, not on the type.
    #[test]
    fn every_entry_reaches_its_family() {
        for (t, eval) in TABLE {
            let op = crate::ge::proto::OpDef { r#type: t.to_string(), name: "n".into(), ..Default::default() };
            let cx = OpCx { op: &op, ins: vec![] };
            if let Err(e) = eval(&cx) {
                assert!(!e.to_string().contains("is not an op of"), "{t}: {e}");
            }
        }
    }
}
