//! The rules the optimizer runs for the CPU: every target-independent rule set (algebra,
//! exporter patterns, fusion). The CPU has no layout rules.

use kiln_passes::eqsat::Rule;

pub fn rules() -> Vec<Rule> {
    kiln_passes::rules::all()
}
