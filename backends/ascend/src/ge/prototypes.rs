//! The prototypes (`REG_OP`: input, output and attribute names) of every CANN built-in op kiln
//! emits, transcribed from the GE operator library headers (`op_proto/inc/*.h`; the ones also in
//! ../shared/ASCEND.md §1.7 agree with it). [`check`] holds each op the builder makes to its
//! prototype: GE binds inputs and outputs by these names and drops what it does not know, so a
//! misnamed port or attribute is a graph that silently computes something else.
//!
//! Notation: `x*` is a dynamic input or output (`x0`, `x1`, ...); an attribute ending in `?`
//! may be left out (one whose meaning differs between CANN releases: it is written only where
//! kiln needs it, see FlashAttentionScore's `pse_type`).

struct Proto {
    ty: &'static str,
    inputs: &'static [&'static str],
    outputs: &'static [&'static str],
    attrs: &'static [&'static str],
}

const fn p(ty: &'static str, inputs: &'static [&'static str], outputs: &'static [&'static str], attrs: &'static [&'static str]) -> Proto {
    Proto { ty, inputs, outputs, attrs }
}

/// Ops of one input `x` and one output `y`, without attributes.
const UNARY: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Asin",
    "Asinh",
    "Atan",
    "Atanh",
    "Ceil",
    "Cos",
    "Cosh",
    "Erf",
    "Floor",
    "Invert",
    "IsInf",
    "IsNan",
    "LogicalNot",
    "Mish",
    "Neg",
    "Reciprocal",
    "Relu",
    "Round",
    "Rsqrt",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Sqrt",
    "Tan",
    "Tanh",
];

/// Ops of inputs `x1`, `x2` and output `y`, without attributes (broadcasting).
const BINARY: &[&str] = &[
    "Add",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
    "Div",
    "Equal",
    "FloorMod",
    "Greater",
    "GreaterEqual",
    "Less",
    "LessEqual",
    "LogicalAnd",
    "LogicalOr",
    "Maximum",
    "Minimum",
    "Mod",
    "Mul",
    "Pow",
    "RealDiv",
    "Sub",
];

const POOL: &[&str] = &["ksize", "strides", "padding_mode", "pads", "data_format", "global_pooling", "ceil_mode"];
const REDUCE_D: &[&str] = &["axes", "keep_dims"];
const LAYER_NORM: &[&str] = &["begin_norm_axis", "begin_params_axis", "epsilon"];

const TABLE: &[Proto] = &[
    p("AffineGrid", &["theta", "output_size"], &["y"], &["align_corners"]),
    p("ArgMaxV2", &["x", "dimension"], &["y"], &["dtype"]),
    p("ArgMin", &["x", "dimension"], &["y"], &["dtype"]),
    p(
        "AvgPoolV2",
        &["x"],
        &["y"],
        &["ksize", "strides", "padding_mode", "pads", "data_format", "global_pooling", "ceil_mode", "exclusive", "divisor_override"],
    ),
    p("BatchMatMulV2", &["x1", "x2", "bias", "offset_w"], &["y"], &["adj_x1", "adj_x2", "offset_x"]),
    p("BroadcastToD", &["x"], &["y"], &["shape"]),
    p("Cast", &["x"], &["y"], &["dst_type"]),
    p("ClipByValue", &["x", "clip_value_min", "clip_value_max"], &["y"], &[]),
    p("Col2im", &["x", "output_size"], &["y"], &["kernel_size", "dilation", "padding", "stride"]),
    p("ConcatD", &["x*"], &["y"], &["concat_dim", "N"]),
    p("Conv2D", &["x", "filter", "bias", "offset_w"], &["y"], &["strides", "pads", "dilations", "groups", "data_format", "offset_x"]),
    p(
        "Conv2DTranspose",
        &["input_size", "x", "filter", "bias", "offset_w"],
        &["y"],
        &["strides", "pads", "dilations", "groups", "data_format", "output_padding", "offset_x"],
    ),
    p("Cumsum", &["x", "axis"], &["y"], &["exclusive", "reverse"]),
    p("DepthToSpace", &["x"], &["y"], &["block_size", "mode", "data_format"]),
    p("DynamicQuant", &["x", "smooth_scales", "group_index"], &["y", "scale"], &["dst_type"]),
    p("Exp", &["x"], &["y"], &["base", "scale", "shift"]),
    p(
        "FlashAttentionScore",
        &[
            "query",
            "key",
            "value",
            "real_shift",
            "drop_mask",
            "padding_mask",
            "atten_mask",
            "prefix",
            "actual_seq_qlen",
            "actual_seq_kvlen",
            "q_start_idx",
            "kv_start_idx",
        ],
        &["softmax_max", "softmax_sum", "softmax_out", "attention_out"],
        &[
            "scale_value",
            "keep_prob",
            "pre_tockens",
            "next_tockens",
            "head_num",
            "input_layout",
            "inner_precise",
            "sparse_mode",
            "pse_type?",
        ],
    ),
    p("FileConstant", &[], &["y"], &["file_path", "file_id", "shape", "dtype"]),
    p("GatherElements", &["x", "index"], &["y"], &["dim"]),
    p("GatherNd", &["x", "indices"], &["y"], &[]),
    p("GatherV2", &["x", "indices", "axis"], &["y"], &["batch_dims", "is_preprocessed", "negative_index_support"]),
    p("GeluV2", &["x"], &["y"], &["approximate"]),
    p("GridSampler2D", &["x", "grid"], &["y"], &["interpolation_mode", "padding_mode", "align_corners"]),
    p("LayerNorm", &["x", "gamma", "beta"], &["y", "mean", "variance"], LAYER_NORM),
    p("LayerNormV3", &["x", "gamma", "beta"], &["y", "mean", "rstd"], LAYER_NORM),
    p("LeftShift", &["x", "y"], &["z"], &[]),
    p("Log", &["x"], &["y"], &["base", "scale", "shift"]),
    p("LogSoftmaxV2", &["logits"], &["logsoftmax"], &["axes"]),
    p("MatMulV2", &["x1", "x2", "bias", "offset_w"], &["y"], &["transpose_x1", "transpose_x2", "offset_x"]),
    p("MaxPoolV3", &["x"], &["y"], POOL),
    p("NLLLoss", &["x", "target", "weight"], &["y", "total_weight"], &["reduction", "ignore_index"]),
    p("OneHot", &["x", "depth", "on_value", "off_value"], &["y"], &["axis"]),
    p("PadV3", &["x", "paddings", "constant_values"], &["y"], &["mode", "paddings_contiguous"]),
    p("QuantBatchMatmulV3", &["x1", "x2", "scale", "offset", "bias", "pertoken_scale"], &["y"], &["dtype", "transpose_x1", "transpose_x2"]),
    p("ReduceMaxD", &["x"], &["y"], REDUCE_D),
    p("ReduceMeanD", &["x"], &["y"], &["axes", "keep_dims", "noop_with_empty_axes"]),
    p("ReduceMinD", &["x"], &["y"], REDUCE_D),
    p("ReduceProdD", &["x"], &["y"], REDUCE_D),
    p("ReduceSumD", &["x"], &["y"], REDUCE_D),
    p("Reshape", &["x", "shape"], &["y"], &["axis", "num_axes"]),
    p(
        "Resize",
        &["x", "roi", "scales", "sizes"],
        &["y"],
        &["coordinate_transformation_mode", "cubic_coeff_a", "exclude_outside", "extrapolation_value", "mode", "nearest_mode"],
    ),
    p("ReverseSequence", &["x", "seq_lengths"], &["y"], &["seq_dim", "batch_dim"]),
    p("ReverseV2D", &["x"], &["y"], &["axis"]),
    p("RightShift", &["x", "y"], &["z"], &[]),
    p("RmsNorm", &["x", "gamma"], &["y", "rstd"], &["epsilon"]),
    p("RotaryMul", &["x", "r1", "r2"], &["y"], &[]),
    p("ScatterElements", &["data", "indices", "updates"], &["y"], &["axis", "reduction"]),
    p("SelectV2", &["condition", "x1", "x2"], &["y"], &[]),
    p("SoftmaxV2", &["x"], &["y"], &["axes", "half_to_float"]),
    p("SpaceToDepth", &["x"], &["y"], &["block_size", "data_format"]),
    p("SplitVD", &["x"], &["y*"], &["size_splits", "split_dim", "num_split"]),
    p(
        "StridedSliceD",
        &["x"],
        &["y"],
        &["begin", "end", "strides", "begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"],
    ),
    p("TensorScatterAdd", &["x", "indices", "updates"], &["y"], &[]),
    p("TensorScatterMax", &["input", "indices", "updates"], &["output"], &[]),
    p("TensorScatterMin", &["input", "indices", "updates"], &["output"], &[]),
    p("TensorScatterUpdate", &["x", "indices", "updates"], &["y"], &[]),
    p("Tile", &["x", "multiples"], &["y"], &[]),
    p("TopKV2", &["x", "k"], &["values", "indices"], &["sorted", "dim", "largest", "indices_dtype"]),
    p("TransData", &["src"], &["dst"], &["src_format", "dst_format", "src_subformat", "dst_subformat", "groups"]),
    p("TransposeD", &["x"], &["y"], &["perm"]),
    p("Tril", &["x"], &["y"], &["diagonal"]),
    p("Triu", &["x"], &["y"], &["diagonal"]),
    p(
        "WeightQuantBatchMatmulV2",
        &["x", "weight", "antiquant_scale", "antiquant_offset", "quant_scale", "quant_offset", "bias"],
        &["y"],
        &["transpose_x", "transpose_weight", "antiquant_group_size?", "dtype?", "inner_precise?"],
    ),
];

/// Whether `names` (the op's, in order) are the prototype's `want`, a dynamic `x*` matching
/// `x0`, `x1`, ... (at least one).
fn ports_match(want: &[&str], names: &[&str]) -> bool {
    if let [one] = want {
        if let Some(stem) = one.strip_suffix('*') {
            return !names.is_empty() && names.iter().enumerate().all(|(i, n)| *n == format!("{stem}{i}"));
        }
    }
    want == names
}

type Ports = &'static [&'static str];

/// The prototype of `ty`: input, output and attribute names (notation as above).
pub fn get(ty: &str) -> Option<(Ports, Ports, Ports)> {
    if UNARY.contains(&ty) {
        Some((&["x"], &["y"], &[]))
    } else if BINARY.contains(&ty) {
        Some((&["x1", "x2"], &["y"], &[]))
    } else {
        TABLE.iter().find(|p| p.ty == ty).map(|p| (p.inputs, p.outputs, p.attrs))
    }
}

/// Every op type with a prototype here.
pub fn types() -> Vec<&'static str> {
    UNARY.iter().chain(BINARY).copied().chain(TABLE.iter().map(|p| p.ty)).collect()
}

/// Checks an op of type `ty` with these input, output and attribute names against its
/// prototype; the error names what differs. Types kiln has no prototype for are errors too.
pub fn check(ty: &str, inputs: &[&str], outputs: &[&str], attrs: &[&str]) -> Result<(), String> {
    let Some((want_in, want_out, want_attrs)) = get(ty) else { return Err(format!("op type {ty} has no prototype in ge::prototypes")) };
    if !ports_match(want_in, inputs) {
        return Err(format!("{ty} takes inputs {want_in:?}, not {inputs:?}"));
    }
    if !ports_match(want_out, outputs) {
        return Err(format!("{ty} makes outputs {want_out:?}, not {outputs:?}"));
    }
    let required: Vec<&str> = want_attrs.iter().filter(|a| !a.ends_with('?')).copied().collect();
    let known = |a: &str| want_attrs.iter().any(|w| w.trim_end_matches('?') == a);
    if let Some(a) = attrs.iter().find(|a| !known(a)) {
        return Err(format!("{ty} has no attribute `{a}` (its attributes: {want_attrs:?})"));
    }
    if let Some(a) = required.iter().find(|a| !attrs.contains(a)) {
        return Err(format!("{ty}'s attribute `{a}` is not written (every attribute is written explicitly)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_type_is_listed_once() {
        let mut all = types();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "an op type is listed twice");
    }

    #[test]
    fn mismatches_are_named() {
        assert!(check("Add", &["x1", "x2"], &["y"], &[]).is_ok());
        assert!(check("ConcatD", &["x0", "x1"], &["y"], &["concat_dim", "N"]).is_ok());
        assert!(check("ConcatD", &["x0", "x2"], &["y"], &["concat_dim", "N"]).is_err());
        let e = check("LeftShift", &["x", "y"], &["y"], &[]).expect_err("LeftShift's output is z");
        assert!(e.contains("[\"z\"]"), "{e}");
        let e = check("TransposeD", &["x"], &["y"], &[]).expect_err("perm is required");
        assert!(e.contains("`perm`"), "{e}");
        let e = check("Relu", &["x"], &["y"], &["alpha"]).expect_err("Relu has no attributes");
        assert!(e.contains("`alpha`"), "{e}");
        assert!(check("FlashAttentionScore", &[], &[], &[]).is_err());
        assert!(check("Softmax", &["x"], &["y"], &[]).expect_err("there is no Softmax").contains("no prototype"));
    }
}
