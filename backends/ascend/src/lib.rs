//! The Ascend 910B target: the rules and the cost model the optimizer extracts under
//! ([`rules`], [`cost`]), GE graph emission ([`ge`], [`lower`]) and the bundle that
//! `kiln compile --target 910b` writes ([`bundle`]), with AscendC kernels for the fused
//! elementwise programs no built-in computes in one op ([`ascendc`]).

pub mod ascendc;
pub mod bundle;
pub mod cost;
pub mod ge;
pub mod lower;
pub mod rules;

pub use cost::AscendCost;
