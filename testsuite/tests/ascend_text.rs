//! Snapshot tests of `graph.txt`, the readable dump of the GE graph a 910b bundle holds, for
//! node-suite models that exercise the lowering's compositions (NLLLoss with classes moved last,
//! attention over a KV cache, Resize, Conv2D, GridSampler2D, the quantized product, TopKV2
//! along a non-last axis, LayerNormV3). A lowering change shows up as a reviewed diff of the
//! `.snap` files (`cargo insta review`); the numbers these graphs compute are checked by the
//! 910b-sim conformance test, not here.

use kiln_driver::conformance::{freeze_shape_inputs, import_case};
use kiln_testsuite::suite::onnx_node_suite;

/// The graph.txt of node-suite case `case`, optimized for the 910B and lowered (inputs that
/// decide shapes, such as Resize's scales, fixed to the case's values as the conformance run
/// fixes them).
fn graph_text(case: &str) -> String {
    let (g, inputs, _) = import_case(&onnx_node_suite().join(case)).unwrap_or_else(|e| panic!("{case}: {e:?}"));
    let (g, _, _) = freeze_shape_inputs(&g, inputs).unwrap_or_else(|e| panic!("{case}: {e}"));
    let (opt, _) =
        kiln_driver::optimize(&g, kiln_driver::Target::Ascend910B, std::time::Instant::now()).unwrap_or_else(|e| panic!("{case}: {e:#}"));
    let bundle = kiln_ascend::bundle::compile(&opt, &kiln_ascend::bundle::Options::default()).unwrap_or_else(|e| panic!("{case}: {e}"));
    bundle.text()
}

macro_rules! snapshot {
    ($($test:ident: $case:literal,)*) => {$(
        #[test]
        fn $test() {
            insta::assert_snapshot!(graph_text($case));
        }
    )*};
}

snapshot! {
    nll_loss_over_spatial_dims: "test_nllloss_NCd1d2_with_weight_reduction_mean",
    attention_over_a_kv_cache: "test_attention_4d_with_past_and_present",
    resize_linear_align_corners: "test_resize_upsample_scales_linear_align_corners",
    conv_with_strides_and_padding: "test_conv_with_strides_padding",
    grid_sample_bicubic: "test_gridsample_bicubic",
    qlinear_matmul: "test_qlinearmatmul_2D_uint8_float32",
    top_k_on_a_negative_axis: "test_top_k_negative_axis",
    layer_norm_with_statistics: "test_layer_normalization_4d_axis1",
}
