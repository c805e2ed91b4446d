//! The CUDA target (sm_90, sm_80): the rules and cost model the optimizer extracts under, and
//! code generation: each node of the optimized graph becomes LLVM IR built with inkwell
//! ([`kernels`]), one module of kernels becomes PTX through LLVM's NVPTX backend and cubin
//! through `ptxas` ([`ptx`]), and [`compile`] packs them with the launch sequence, the memory
//! plan and the weights into a `model.kiln` artifact.

pub mod codegen;
pub mod compile;
pub mod cost;
pub mod kernels;
pub mod ptx;
pub mod rules;

pub use codegen::{family, CodegenError, Family};
pub use compile::{compile, Compiled, Options};
pub use cost::CudaCost;
pub use ptx::Arch;
