//! The Ascend 910B target. Today: the rules and the cost model the optimizer extracts under;
//! GE graph (AIR) and AscendC emission come with the Ascend issue.

pub mod cost;
pub mod rules;

pub use cost::AscendCost;
