//! kiln's test machinery: the ONNX node-suite conformance runner ([`conformance`]), numeric
//! comparison with dtype-aware tolerances ([`compare`]), `.npy` files ([`npy`]), and the
//! optimizer as each target configures it ([`optimizer`]), shared with the CLI.

pub mod ascend_sim;
pub mod ascendc_cpu;
pub mod compare;
pub mod conformance;
pub mod npy;
pub mod optimizer;
pub mod suite;
