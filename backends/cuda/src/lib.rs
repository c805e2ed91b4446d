//! The CUDA target (sm_90, sm_80). Today: the rules and the cost model the optimizer extracts
//! under; kernel generation through LLVM's NVPTX backend comes with the CUDA issue.

pub mod cost;
pub mod rules;

pub use cost::CudaCost;
