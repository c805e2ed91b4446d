//! kiln's test machinery: the ONNX node-suite conformance runner ([`conformance`]), numeric
//! comparison with dtype-aware tolerances ([`compare`]), and `.npy` files ([`npy`]).

pub mod compare;
pub mod conformance;
pub mod npy;
pub mod suite;
