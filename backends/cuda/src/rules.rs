//! The rules the optimizer runs for CUDA targets: every target-independent rule set (algebra,
//! exporter patterns, heads, layout, fusion) and `layout/conv-nhwc`, which offers each 2-D
//! convolution in NHWC with channels padded to a multiple of 8 (what tensor-core implicit GEMM
//! reads). The cost model decides: 16-bit convolutions only reach the tensor cores in NHWC.

use kiln_ir::ops::Format;
use kiln_ir::DType;
use kiln_passes::eqsat::lang::Node;
use kiln_passes::eqsat::rule::{Ctx, Proposal};
use kiln_passes::eqsat::Rule;
use kiln_passes::rules::layout::conv_in_format;

/// Channels per tensor-core fragment row: 16 bytes of 16-bit values (8 for every dtype, as
/// cuDNN pads them).
fn align(_: DType) -> i64 {
    8
}

fn conv_nhwc(cx: &Ctx, class: kiln_passes::eqsat::Id, node: &Node) -> Vec<Proposal> {
    conv_in_format(cx, class, node, Format::Nhwc, align)
}

pub fn rules() -> Vec<Rule> {
    let mut r = kiln_passes::rules::all();
    r.push(Rule { name: "layout/conv-nhwc", search: conv_nhwc });
    r
}
