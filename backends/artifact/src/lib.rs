//! `model.kiln`, the file kiln's compiled targets write and the runtime reads: a versioned
//! header and checksum, a manifest (inputs, outputs, kernels, launch sequence, buffer plan),
//! code sections and weights aligned for mmap ([`artifact`]). Nothing of the compiler: the
//! runtime links this crate alone.

pub mod artifact;
