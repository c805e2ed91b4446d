//! GE attribute values and their encoding (../shared/ASCEND.md §1.5): scalars in `i`, `f`, `b`,
//! `s`; dtypes in `dt` with the C++ numbering; lists in `list` with their `val_type` always set,
//! since GE drops a list attr whose `val_type` is 0 when it loads a graph.

use super::proto::{attr_def::Value, AttrDef, ListInt, ListListInt, ListValue, ListValueType, TensorDef};

/// An attribute value, typed as the operator prototype declares it.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Bool(bool),
    Str(String),
    /// A `Type` attr: the C++ `ge::DataType` number.
    Type(i64),
    ListInt(Vec<i64>),
    ListFloat(Vec<f32>),
    ListStr(Vec<String>),
    ListListInt(Vec<Vec<i64>>),
    Tensor(TensorDef),
}

impl Attr {
    pub fn str(s: &str) -> Attr {
        Attr::Str(s.to_string())
    }

    /// The prototype's name for this attr type (`Int`, `ListInt`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Attr::Int(_) => "Int",
            Attr::Float(_) => "Float",
            Attr::Bool(_) => "Bool",
            Attr::Str(_) => "String",
            Attr::Type(_) => "Type",
            Attr::ListInt(_) => "ListInt",
            Attr::ListFloat(_) => "ListFloat",
            Attr::ListStr(_) => "ListString",
            Attr::ListListInt(_) => "ListListInt",
            Attr::Tensor(_) => "Tensor",
        }
    }

    pub fn encode(&self) -> AttrDef {
        let list = |l: ListValue| Value::List(l);
        let value = match self {
            Attr::Int(i) => Value::I(*i),
            Attr::Float(f) => Value::F(*f),
            Attr::Bool(b) => Value::B(*b),
            Attr::Str(s) => Value::S(s.as_bytes().to_vec()),
            Attr::Type(t) => Value::Dt(*t),
            Attr::ListInt(v) => list(ListValue { i: v.clone(), val_type: ListValueType::Int as i32, ..ListValue::default() }),
            Attr::ListFloat(v) => list(ListValue { f: v.clone(), val_type: ListValueType::Float as i32, ..ListValue::default() }),
            Attr::ListStr(v) => list(ListValue {
                s: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
                val_type: ListValueType::String as i32,
                ..ListValue::default()
            }),
            Attr::ListListInt(v) => {
                Value::ListListInt(ListListInt { list_list_i: v.iter().map(|l| ListInt { list_i: l.clone() }).collect() })
            }
            Attr::Tensor(t) => Value::T(t.clone()),
        };
        AttrDef { value: Some(value) }
    }

    /// The value of an encoded attr; None for one kiln never writes.
    pub fn decode(a: &AttrDef) -> Option<Attr> {
        Some(match a.value.as_ref()? {
            Value::I(i) => Attr::Int(*i),
            Value::F(f) => Attr::Float(*f),
            Value::B(b) => Attr::Bool(*b),
            Value::S(s) => Attr::Str(String::from_utf8(s.clone()).ok()?),
            Value::Dt(t) => Attr::Type(*t),
            Value::List(l) => match ListValueType::try_from(l.val_type).ok()? {
                ListValueType::Int => Attr::ListInt(l.i.clone()),
                ListValueType::Float => Attr::ListFloat(l.f.clone()),
                ListValueType::String => Attr::ListStr(l.s.iter().map(|s| String::from_utf8(s.clone()).ok()).collect::<Option<_>>()?),
                _ => return None,
            },
            Value::ListListInt(l) => Attr::ListListInt(l.list_list_i.iter().map(|x| x.list_i.clone()).collect()),
            Value::T(t) => Attr::Tensor(t.clone()),
            Value::Bt(_) | Value::Func(_) | Value::Td(_) => return None,
        })
    }
}
