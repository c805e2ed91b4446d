//! The rules the optimizer runs for CUDA targets: every target-independent rule set (algebra,
//! exporter patterns, fusion). NHWC layout rules for tensor-core convolution are not written yet.

use kiln_passes::eqsat::Rule;

pub fn rules() -> Vec<Rule> {
    kiln_passes::rules::all()
}
