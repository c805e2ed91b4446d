//! The rules the optimizer runs for the Ascend 910B: every target-independent rule set (algebra,
//! exporter patterns, fusion). NC1HWC0 and FRACTAL_NZ layout rules are not written yet.

use kiln_passes::eqsat::Rule;

pub fn rules() -> Vec<Rule> {
    kiln_passes::rules::all()
}
