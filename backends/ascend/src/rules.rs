//! The rules the optimizer runs for the Ascend 910B: every target-independent rule set (algebra,
//! exporter patterns, heads, layout, fusion) and `layout/conv-nc1hwc0`, which offers each 2-D
//! convolution in NC1HWC0 (5HD), the cube unit's activation format. The cost model decides:
//! a convolution left in NCHW pays for the TransData pair GE would insert around it.
//! FRACTAL_NZ for matmul weights is not a rule: weights are constants, emitted in ND, and GE
//! chooses their storage format when it compiles the graph.

use kiln_ir::ops::Format;
use kiln_ir::DType;
use kiln_passes::eqsat::lang::Node;
use kiln_passes::eqsat::rule::{Ctx, Proposal};
use kiln_passes::eqsat::Rule;
use kiln_passes::rules::layout::conv_in_format;

/// C0: 32 bytes of 1-byte types, 16 elements otherwise (GE's `GetCubeSizeByDataType`, which
/// uses 16 for fp32 as well; ../shared/ASCEND.md §2).
pub fn c0(d: DType) -> i64 {
    if d.bits() == 8 {
        32
    } else {
        16
    }
}

fn conv_nc1hwc0(cx: &Ctx, class: kiln_passes::eqsat::Id, node: &Node) -> Vec<Proposal> {
    conv_in_format(cx, class, node, Format::Nc1hwc0, c0)
}

pub fn rules() -> Vec<Rule> {
    let mut r = kiln_passes::rules::all();
    r.push(Rule { name: "layout/conv-nc1hwc0", search: conv_nc1hwc0 });
    r
}
