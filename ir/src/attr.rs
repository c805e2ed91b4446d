//! Attribute values: the typed fields of ops, and their untyped mirror [`Attr`] used only by
//! the text form (printer and parser). Ops never hold an `Attr`.

use crate::dtype::DType;
use crate::graph::Graph;
use crate::tensor::Tensor;

/// An attribute value as the text form sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Bool(bool),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Str(String),
    /// An enum case or a dtype, written as a bare identifier.
    Ident(String),
    /// A list of enum cases.
    Idents(Vec<String>),
    Tensor(Tensor),
    Graph(Box<Graph>),
    None,
}

/// A Rust type usable as an op attribute field.
pub trait AttrValue: Sized {
    fn to_attr(&self) -> Attr;
    fn from_attr(a: &Attr) -> Option<Self>;
}

impl AttrValue for i64 {
    fn to_attr(&self) -> Attr {
        Attr::Int(*self)
    }
    fn from_attr(a: &Attr) -> Option<Self> {
        match a {
            Attr::Int(v) => Some(*v),
            _ => None,
        }
    }
}

impl AttrValue for f32 {
    fn to_attr(&self) -> Attr {
        Attr::Float(*self)
    }
    fn from_attr(a: &Attr) -> Option<Self> {
        match a {
            Attr::Float(v) => Some(*v),
            _ => None,
        }
    }
}

impl AttrValue for bool {
    fn to_attr(&self) -> Attr {
        Attr::Bool(*self)
    }
    fn from_attr(a: &Attr) -> Option<Self> {
        match a {
            Attr::Bool(v) => Some(*v),
            _ => None,
        }
    }
}

impl AttrValue for Vec<i64> {
    fn to_attr(&self) -> Attr {
        Attr::Ints(self.clone())
    }
    fn from_attr(a: &Attr) -> Option<Self> {
        match a {
            Attr::Ints(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl AttrValue for Vec<f32> {
    fn to_attr(&self) -> Attr {
        Attr::Floats(self.clone())
    }
    fn from_attr(a: &Attr) -> Option<Self> {
        match a {
            Attr::Floats(v) => Some(v.clone()),
            Attr::Ints(v) if v.is_empty() => Some(vec![]),
            _ => None,
        }
    }
}

impl AttrValue for String {
    fn to_attr(&self) -> Attr {
        Attr::Str(self.clone())
    }
    fn from_attr(a: &Attr) -> Option<Self> {
        match a {
            Attr::Str(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl AttrValue for DType {
    fn to_attr(&self) -> Attr {
        Attr::Ident(self.name().to_string())
    }
    fn from_attr(a: &Attr) -> Option<Self> {
        match a {
            Attr::Ident(v) => DType::from_name(v),
            _ => None,
        }
    }
}

impl AttrValue for Tensor {
    fn to_attr(&self) -> Attr {
        Attr::Tensor(self.clone())
    }
    fn from_attr(a: &Attr) -> Option<Self> {
        match a {
            Attr::Tensor(t) => Some(t.clone()),
            _ => None,
        }
    }
}

impl AttrValue for Box<Graph> {
    fn to_attr(&self) -> Attr {
        Attr::Graph(self.clone())
    }
    fn from_attr(a: &Attr) -> Option<Self> {
        match a {
            Attr::Graph(g) => Some(g.clone()),
            _ => None,
        }
    }
}

impl<T: AttrValue> AttrValue for Option<T> {
    fn to_attr(&self) -> Attr {
        match self {
            Some(v) => v.to_attr(),
            None => Attr::None,
        }
    }
    fn from_attr(a: &Attr) -> Option<Self> {
        match a {
            Attr::None => Some(None),
            other => T::from_attr(other).map(Some),
        }
    }
}

/// Declares a closed enum used as an attribute, with its text-form identifiers.
#[macro_export]
macro_rules! attr_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $var),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$var),*];
            pub fn name(self) -> &'static str {
                match self { $($name::$var => $text),* }
            }
            pub fn from_name(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$var),)* _ => None }
            }
        }
        impl $crate::attr::AttrValue for $name {
            fn to_attr(&self) -> $crate::attr::Attr {
                $crate::attr::Attr::Ident(self.name().to_string())
            }
            fn from_attr(a: &$crate::attr::Attr) -> Option<Self> {
                match a { $crate::attr::Attr::Ident(s) => $name::from_name(s), _ => None }
            }
        }
        impl $crate::attr::AttrValue for Vec<$name> {
            fn to_attr(&self) -> $crate::attr::Attr {
                $crate::attr::Attr::Idents(self.iter().map(|v| v.name().to_string()).collect())
            }
            fn from_attr(a: &$crate::attr::Attr) -> Option<Self> {
                match a {
                    $crate::attr::Attr::Idents(v) => v.iter().map(|s| $name::from_name(s)).collect(),
                    $crate::attr::Attr::Ints(v) if v.is_empty() => Some(vec![]),
                    _ => None,
                }
            }
        }
    };
}
