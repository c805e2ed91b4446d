//! The messages of GE's IR (`package ge.proto`), written here from the field tables of
//! ../shared/ASCEND.md §1.2 and encoded with prost. An AIR file is one serialized [`ModelDef`]
//! with no header. Only the fields kiln writes or the simulator reads are declared: a decoder
//! skips the others, and the numbers of those declared are the documented ones.
//!
//! Maps are `BTreeMap`s so that the encoding is deterministic (sorted keys).

use std::collections::BTreeMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct ModelDef {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub version: u32,
    #[prost(string, tag = "3")]
    pub custom_version: String,
    #[prost(message, repeated, tag = "7")]
    pub graph: Vec<GraphDef>,
    #[prost(btree_map = "string, message", tag = "11")]
    pub attr: BTreeMap<String, AttrDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct GraphDef {
    #[prost(string, tag = "1")]
    pub name: String,
    /// `"data_node:0"` per graph input.
    #[prost(string, repeated, tag = "4")]
    pub input: Vec<String>,
    /// `"node:index"` per graph output.
    #[prost(string, repeated, tag = "5")]
    pub output: Vec<String>,
    #[prost(message, repeated, tag = "6")]
    pub op: Vec<OpDef>,
    #[prost(btree_map = "string, message", tag = "11")]
    pub attr: BTreeMap<String, AttrDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct OpDef {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub r#type: String,
    /// `"src:out_index"` per data input in IR order (`""` for an unfed optional input), then
    /// `"src:-1"` per control input.
    #[prost(string, repeated, tag = "5")]
    pub input: Vec<String>,
    #[prost(btree_map = "string, message", tag = "10")]
    pub attr: BTreeMap<String, AttrDef>,
    #[prost(message, repeated, tag = "33")]
    pub input_desc: Vec<TensorDescriptor>,
    #[prost(message, repeated, tag = "34")]
    pub output_desc: Vec<TensorDescriptor>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorDescriptor {
    /// The IR port name (`x`, `x1`, `y`, ...).
    #[prost(string, tag = "1")]
    pub name: String,
    /// The proto `DataType` numbering ([`super::dtype::proto`]).
    #[prost(int32, tag = "2")]
    pub dtype: i32,
    #[prost(message, optional, tag = "3")]
    pub shape: Option<ShapeDef>,
    /// The format name: `ND`, `NCHW`, `NC1HWC0`, ...
    #[prost(string, tag = "4")]
    pub layout: String,
    #[prost(btree_map = "string, message", tag = "5")]
    pub attr: BTreeMap<String, AttrDef>,
    #[prost(string, tag = "14")]
    pub device_type: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ShapeDef {
    #[prost(int64, repeated, tag = "1")]
    pub dim: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorDef {
    #[prost(message, optional, tag = "1")]
    pub desc: Option<TensorDescriptor>,
    /// Raw little-endian element bytes, row-major.
    #[prost(bytes = "vec", tag = "2")]
    pub data: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct NamedAttrs {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(btree_map = "string, message", tag = "2")]
    pub attr: BTreeMap<String, AttrDef>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AttrDef {
    #[prost(oneof = "attr_def::Value", tags = "1, 2, 3, 4, 5, 7, 10, 11, 12, 14, 15")]
    pub value: Option<attr_def::Value>,
}

pub mod attr_def {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Value {
        #[prost(message, tag = "1")]
        List(super::ListValue),
        /// String (UTF-8 bytes).
        #[prost(bytes = "vec", tag = "2")]
        S(Vec<u8>),
        #[prost(int64, tag = "3")]
        I(i64),
        #[prost(float, tag = "4")]
        F(f32),
        #[prost(bool, tag = "5")]
        B(bool),
        #[prost(bytes = "vec", tag = "7")]
        Bt(Vec<u8>),
        #[prost(message, tag = "10")]
        Func(super::NamedAttrs),
        #[prost(message, tag = "11")]
        Td(super::TensorDescriptor),
        #[prost(message, tag = "12")]
        T(super::TensorDef),
        #[prost(message, tag = "14")]
        ListListInt(super::ListListInt),
        /// A C++ `ge::DataType` value ([`super::super::dtype::cpp`]).
        #[prost(int64, tag = "15")]
        Dt(i64),
    }
}

/// `ListValue.val_type`: GE skips a list attr whose type is `None` (0) when it loads a graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum ListValueType {
    None = 0,
    String = 1,
    Int = 2,
    Float = 3,
    Bool = 4,
    Bytes = 5,
    TensorDesc = 6,
    Tensor = 7,
    Graph = 8,
    NamedAttrs = 9,
    DataType = 10,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListValue {
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub s: Vec<Vec<u8>>,
    #[prost(int64, repeated, tag = "3")]
    pub i: Vec<i64>,
    #[prost(float, repeated, tag = "4")]
    pub f: Vec<f32>,
    #[prost(bool, repeated, tag = "5")]
    pub b: Vec<bool>,
    #[prost(int64, repeated, tag = "12")]
    pub dt: Vec<i64>,
    #[prost(enumeration = "ListValueType", tag = "20")]
    pub val_type: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListInt {
    #[prost(int64, repeated, tag = "1")]
    pub list_i: Vec<i64>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListListInt {
    #[prost(message, repeated, tag = "1")]
    pub list_list_i: Vec<ListInt>,
}
