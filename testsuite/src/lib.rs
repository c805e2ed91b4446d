//! kiln's test machinery beyond what the driver offers every user (numeric comparison, `.npy`
//! files and the conformance runner live in `kiln-driver`): locating the ONNX node suite
//! ([`suite`]).

pub mod suite;
