//! The CPU target. Today: the rules and the cost model the optimizer extracts under; code
//! generation through cranelift comes later.

pub mod cost;
pub mod rules;

pub use cost::CpuCost;
