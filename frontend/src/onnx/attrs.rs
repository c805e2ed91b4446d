//! Typed access to a NodeProto's attributes, with the ONNX default supplied by the caller.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, GraphProto, NodeProto, TensorProto};
use std::collections::HashMap;

pub(crate) struct Attrs<'a>(HashMap<&'a str, &'a AttributeProto>);

impl<'a> Attrs<'a> {
    pub fn new(n: &'a NodeProto) -> Attrs<'a> {
        Attrs(n.attribute.iter().map(|a| (a.name.as_str(), a)).collect())
    }

    fn get(&self, name: &str, ty: AttributeType) -> Result<Option<&'a AttributeProto>, String> {
        match self.0.get(name) {
            None => Ok(None),
            Some(a) if !a.ref_attr_name.is_empty() => {
                Err(format!("attribute `{name}` refers to a function attribute, which is not supported"))
            }
            Some(a) => match a.type_.enum_value() {
                Ok(t) if t == ty => Ok(Some(a)),
                // Some exporters leave the type unset; trust the field that is filled.
                Ok(AttributeType::UNDEFINED) => Ok(Some(a)),
                Ok(t) => Err(format!("attribute `{name}` has type {t:?}, expected {ty:?}")),
                Err(v) => Err(format!("attribute `{name}` has unknown type code {v}")),
            },
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn i(&self, name: &str, default: i64) -> Result<i64, String> {
        Ok(self.get(name, AttributeType::INT)?.map_or(default, |a| a.i))
    }

    pub fn opt_i(&self, name: &str) -> Result<Option<i64>, String> {
        Ok(self.get(name, AttributeType::INT)?.map(|a| a.i))
    }

    pub fn f(&self, name: &str, default: f32) -> Result<f32, String> {
        Ok(self.get(name, AttributeType::FLOAT)?.map_or(default, |a| a.f))
    }

    pub fn opt_f(&self, name: &str) -> Result<Option<f32>, String> {
        Ok(self.get(name, AttributeType::FLOAT)?.map(|a| a.f))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        Ok(self.get(name, AttributeType::INTS)?.map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, String> {
        Ok(self.get(name, AttributeType::FLOATS)?.map(|a| a.floats.clone()))
    }

    pub fn s(&self, name: &str) -> Result<Option<String>, String> {
        self.get(name, AttributeType::STRING)?
            .map(|a| String::from_utf8(a.s.clone()).map_err(|_| format!("attribute `{name}` is not UTF-8")))
            .transpose()
    }

    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, String> {
        self.get(name, AttributeType::STRINGS)?
            .map(|a| {
                a.strings.iter().map(|s| String::from_utf8(s.clone()).map_err(|_| format!("attribute `{name}` is not UTF-8"))).collect()
            })
            .transpose()
    }

    pub fn t(&self, name: &str) -> Result<Option<&'a TensorProto>, String> {
        Ok(self.get(name, AttributeType::TENSOR)?.and_then(|a| a.t.as_ref()))
    }

    pub fn g(&self, name: &str) -> Result<Option<&'a GraphProto>, String> {
        Ok(self.get(name, AttributeType::GRAPH)?.and_then(|a| a.g.as_ref()))
    }
}
