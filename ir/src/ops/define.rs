//! `define_ops!`, the macro the op table in `mod.rs` is written in: from one list of ops with
//! their typed attributes and properties it makes the `Op` enum, its `Elementwise` form (the
//! table's first group), the text form's names and attributes, and `Op::props`.

macro_rules! define_ops {
    (
        elementwise { $( $(#[$em:meta])* $ew:ident { $($ef:ident : $ety:ty),* $(,)? } $([$($eprop:ident),*])? ),* $(,)? }
        others { $( $(#[$m:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? } $([$($prop:ident),*])? ),* $(,)? }
    ) => {
        /// An elementwise op (the table's first group) with its attributes borrowed: what code
        /// generators for fused bodies match, exhaustively.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum Elementwise<'a> {
            $( $(#[$em])* $ew { $($ef: &'a $ety),* } ),*
        }

        impl Op {
            /// The elementwise form of this op, when it is elementwise.
            pub fn as_elementwise(&self) -> Option<Elementwise<'_>> {
                match self {
                    $(Op::$ew { $($ef),* } => Some(Elementwise::$ew { $($ef),* }),)*
                    _ => None,
                }
            }

            /// What the op is (declared beside it in the table).
            pub fn props(&self) -> OpProps {
                match self {
                    $(Op::$ew { .. } => OpProps { elementwise: true, $($($eprop: true,)*)? ..OpProps::NONE },)*
                    $(Op::$name { .. } => OpProps { $($($prop: true,)*)? ..OpProps::NONE }),*
                }
            }
        }

        define_ops!(@table $( $(#[$em])* $ew { $($ef : $ety),* } ),* , $( $(#[$m])* $name { $($field : $ty),* } ),*);
    };
    (@table $( $(#[$m:meta])* $name:ident { $($field:ident : $ty:ty),* } ),*) => {
        /// An IR operation with its typed attributes.
        #[derive(Clone, Debug, PartialEq)]
        pub enum Op {
            $( $(#[$m])* $name { $($field: $ty),* } ),*
        }

        impl Op {
            /// The op's name in the text form.
            pub fn kind_name(&self) -> &'static str {
                match self { $(Op::$name { .. } => stringify!($name)),* }
            }

            /// Names of every op kind, in table order.
            pub const KINDS: &'static [&'static str] = &[$(stringify!($name)),*];

            /// Attributes as (name, value) pairs in declaration order.
            pub fn attrs(&self) -> Vec<(&'static str, Attr)> {
                match self {
                    $(Op::$name { $($field),* } => vec![$((stringify!($field), $field.to_attr())),*]),*
                }
            }

            /// Rebuilds an op from its kind name and attributes (the text parser's entry).
            pub fn from_attrs(kind: &str, get: &mut dyn FnMut(&str) -> Option<Attr>) -> Result<Op, String> {
                match kind {
                    $(stringify!($name) => Ok(Op::$name {
                        $($field: {
                            let a = get(stringify!($field))
                                .ok_or_else(|| format!("{}: missing attribute `{}`", kind, stringify!($field)))?;
                            <$ty as AttrValue>::from_attr(&a)
                                .ok_or_else(|| format!("{}: bad value for attribute `{}`: {:?}", kind, stringify!($field), a))?
                        }),*
                    }),)*
                    other => Err(format!("unknown op `{other}`")),
                }
            }
        }
    };
}
