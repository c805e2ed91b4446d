//! GE graphs (the IR CANN's graph engine loads; an AIR file is one serialized [`proto::ModelDef`]):
//! the wire messages, both dtype numberings, attribute encoding, and a builder that keeps GE's
//! conventions. ../shared/ASCEND.md §1 documents every fact used here.

pub mod attr;
pub mod builder;
pub mod conventions;
pub mod dtype;
pub mod proto;
pub mod prototypes;

pub use attr::Attr;
