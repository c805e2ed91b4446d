//! The rules the optimizer runs for the CPU: every target-independent rule set (algebra,
//! exporter patterns, heads, layout, fusion). The CPU offers no storage formats of its own.

use kiln_passes::eqsat::Rule;

pub fn rules() -> Vec<Rule> {
    kiln_passes::rules::all()
}
