//! kiln's runtime: loads compiled artifacts (`model.kiln`) and runs them on a device.
//!
//! This crate is intentionally empty until the CUDA target lands: no artifact format exists yet,
//! so there is nothing to load. It is in the workspace so that the dependency rule (the runtime
//! never depends on LLVM or on the passes) is enforced from the start.

pub use kiln_target::Target;
