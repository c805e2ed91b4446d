//! The IR's text form: a deterministic printer and a parser that round-trip.
//!
//! ```text
//! graph "tiny" (%x: f32[N,4]) {
//!   %w = weight f32[4,2]
//!   %axes = const i64[1] [0]
//!   %y = MatMul["mm"](%x, %w) : f32[N,2]
//!   %z = Relu["act"](%y) : f32[N,2]
//!   return %z
//! }
//! ```
//!
//! Constants of at most [`INLINE_LIMIT`] elements are printed inline; larger ones are printed as
//! `weight` and the parser takes their data from a weight table keyed by value name (see
//! [`crate::Graph::weights_by_name`]). The parser rebuilds the graph through [`Graph::add_node`],
//! so every printed output type is checked against inference.

use crate::attr::Attr;
use crate::dtype::DType;
use crate::graph::{Graph, ValueId};
use crate::ops::{BinaryOp, Op, TensorType, UnaryOp};
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

/// Constants with at most this many elements are written inline.
pub const INLINE_LIMIT: usize = 16;

/// Prints a graph in the text form.
pub fn print(g: &Graph) -> String {
    let mut out = String::new();
    print_graph(&mut out, g, 0);
    out.push('\n');
    out
}

fn is_plain(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !name.starts_with(|c: char| c.is_ascii_digit() || c == '.')
}

fn quote(s: &str) -> String {
    let mut q = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => q.push_str("\\\""),
            '\\' => q.push_str("\\\\"),
            '\n' => q.push_str("\\n"),
            c => q.push(c),
        }
    }
    q.push('"');
    q
}

fn vname(g: &Graph, id: ValueId) -> String {
    let n = &g.value(id).name;
    if is_plain(n) {
        format!("%{n}")
    } else {
        format!("%{}", quote(n))
    }
}

fn ty(t: &TensorType) -> String {
    let dims: Vec<String> = t
        .shape
        .0
        .iter()
        .map(|d| match d {
            Dim::Known(n) => n.to_string(),
            Dim::Sym(s) if is_plain(s) => s.clone(),
            Dim::Sym(s) => quote(s),
        })
        .collect();
    format!("{}[{}]", t.dtype, dims.join(","))
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        format!("{v:?}")
    }
}

fn tensor_values(t: &Tensor) -> String {
    let items: Vec<String> = match t.data() {
        Data::F32(v) => v.iter().map(|x| if x.is_finite() { format!("{x:?}") } else { float(*x as f64) }).collect(),
        Data::F64(v) => v.iter().map(|x| float(*x)).collect(),
        Data::F16(v) => v.iter().map(|x| float(x.to_f64())).collect(),
        Data::BF16(v) => v.iter().map(|x| float(x.to_f64())).collect(),
        Data::Bool(v) => v.iter().map(|x| x.to_string()).collect(),
        other if other.dtype().is_float() => other.to_f64().iter().map(|x| float(*x)).collect(),
        Data::U64(v) => v.iter().map(|x| x.to_string()).collect(),
        other => other.to_i64().iter().map(|x| x.to_string()).collect(),
    };
    format!("[{}]", items.join(", "))
}

fn attr(out: &mut String, a: &Attr, indent: usize) {
    match a {
        Attr::Int(v) => write!(out, "{v}").unwrap_or(()),
        Attr::Float(v) => out.push_str(&if v.is_finite() { format!("{v:?}") } else { float(*v as f64) }),
        Attr::Bool(v) => write!(out, "{v}").unwrap_or(()),
        Attr::Ints(v) => out.push_str(&format!("[{}]", v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "))),
        Attr::Floats(v) => out.push_str(&format!(
            "[{}]",
            v.iter().map(|x| if x.is_finite() { format!("{x:?}") } else { float(*x as f64) }).collect::<Vec<_>>().join(", ")
        )),
        Attr::Str(s) => out.push_str(&quote(s)),
        Attr::Ident(s) => out.push_str(s),
        Attr::Idents(v) => out.push_str(&format!("[{}]", v.join(", "))),
        Attr::Tensor(t) => out.push_str(&format!("tensor<{}{}>{}", t.dtype(), Shape::fixed(t.dims()), tensor_values(t))),
        Attr::Graph(g) => print_graph(out, g, indent),
        Attr::None => out.push_str("null"),
    }
}

/// Writes `g` with its body one level deeper than `indent` and no trailing newline.
fn print_graph(out: &mut String, g: &Graph, indent: usize) {
    let pad = "  ".repeat(indent);
    let body = "  ".repeat(indent + 1);
    let ins: Vec<String> = g.inputs.iter().map(|&i| format!("{}: {}", vname(g, i), ty(&g.value(i).ty))).collect();
    let _ = writeln!(out, "graph {} ({}) {{", quote(&g.name), ins.join(", "));
    for (&id, t) in &g.consts {
        let ty = ty(&g.value(id).ty);
        if t.numel() <= INLINE_LIMIT {
            let _ = writeln!(out, "{body}{} = const {ty} {}", vname(g, id), tensor_values(t));
        } else {
            let _ = writeln!(out, "{body}{} = weight {ty}", vname(g, id));
        }
    }
    for n in &g.nodes {
        let outs: Vec<String> = n.outputs.iter().map(|o| o.map_or("_".into(), |o| vname(g, o))).collect();
        let ins: Vec<String> = n.inputs.iter().map(|i| i.map_or("_".into(), |i| vname(g, i))).collect();
        let nm = if is_plain(&n.name) { n.name.clone() } else { quote(&n.name) };
        let _ = write!(out, "{body}{} = {}[{nm}]({})", outs.join(", "), n.op.display_name(), ins.join(", "));
        let attrs = match &n.op {
            Op::Unary { .. } | Op::Binary { .. } => vec![],
            op => op.attrs(),
        };
        if !attrs.is_empty() {
            out.push_str(" {");
            for (k, (name, a)) in attrs.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{name}=");
                attr(out, a, indent + 2);
            }
            out.push('}');
        }
        let tys: Vec<String> = n.outputs.iter().flatten().map(|&o| ty(&g.value(o).ty)).collect();
        let _ = writeln!(out, " : {}", tys.join(", "));
    }
    let rets: Vec<String> = g.outputs.iter().map(|&o| vname(g, o)).collect();
    let _ = writeln!(out, "{body}return {}", rets.join(", "));
    let _ = write!(out, "{pad}}}");
}

/// A parse failure with its 1-based line and column.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {col}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Value(String),
    Ident(String),
    Num(String),
    Str(String),
    Punct(char),
}

struct Lexer {
    toks: Vec<(Tok, usize, usize)>,
    pos: usize,
}

fn lex(src: &str) -> Result<Vec<(Tok, usize, usize)>, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut col) = (0, 1, 1);
    let mut toks = vec![];
    let err = |line, col, m: &str| ParseError { line, col, message: m.to_string() };
    let read_str = |i: &mut usize, col: &mut usize| -> Result<String, String> {
        let mut s = String::new();
        *i += 1;
        while *i < chars.len() {
            let c = chars[*i];
            *i += 1;
            *col += 1;
            match c {
                '"' => return Ok(s),
                '\\' => {
                    let e = chars.get(*i).copied().ok_or("unterminated escape")?;
                    *i += 1;
                    s.push(match e {
                        'n' => '\n',
                        other => other,
                    });
                }
                c => s.push(c),
            }
        }
        Err("unterminated string".into())
    };
    while i < chars.len() {
        let c = chars[i];
        let (l, cl) = (line, col);
        if c == '\n' {
            line += 1;
            col = 1;
            i += 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            col += 1;
            continue;
        }
        if c == '%' {
            i += 1;
            col += 1;
            if chars.get(i) == Some(&'"') {
                let s = read_str(&mut i, &mut col).map_err(|m| err(l, cl, &m))?;
                toks.push((Tok::Value(s), l, cl));
            } else {
                let start = i;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.') {
                    i += 1;
                }
                toks.push((Tok::Value(chars[start..i].iter().collect()), l, cl));
                col += i - start;
            }
            continue;
        }
        if c == '"' {
            let s = read_str(&mut i, &mut col).map_err(|m| err(l, cl, &m))?;
            toks.push((Tok::Str(s), l, cl));
            continue;
        }
        if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit() || *n == 'i')) {
            let start = i;
            i += 1;
            // Digits, letters (e, inf), '.', '+', and '-' only as an exponent sign.
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || chars[i] == '+'
                    || (chars[i] == '-' && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            toks.push((Tok::Num(chars[start..i].iter().collect()), l, cl));
            col += i - start;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push((Tok::Ident(chars[start..i].iter().collect()), l, cl));
            col += i - start;
            continue;
        }
        if "()[]{},=:<>".contains(c) {
            toks.push((Tok::Punct(c), l, cl));
            i += 1;
            col += 1;
            continue;
        }
        return Err(err(l, cl, &format!("unexpected character `{c}`")));
    }
    Ok(toks)
}

/// Parses the text form. `weights` supplies the data of constants printed as `weight`.
pub fn parse(src: &str, weights: &HashMap<String, Arc<Tensor>>) -> Result<Graph, ParseError> {
    let mut lx = Lexer { toks: lex(src)?, pos: 0 };
    let g = lx.graph(weights)?;
    if lx.pos < lx.toks.len() {
        return Err(lx.err("trailing input after the graph"));
    }
    Ok(g)
}

impl Lexer {
    fn err(&self, m: impl Into<String>) -> ParseError {
        let (line, col) = self.toks.get(self.pos).or(self.toks.last()).map_or((1, 1), |t| (t.1, t.2));
        ParseError { line, col, message: m.into() }
    }
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }
    fn next(&mut self) -> Result<Tok, ParseError> {
        let t = self.toks.get(self.pos).map(|t| t.0.clone()).ok_or_else(|| self.err("unexpected end of input"))?;
        self.pos += 1;
        Ok(t)
    }
    fn punct(&mut self, c: char) -> Result<(), ParseError> {
        match self.next()? {
            Tok::Punct(p) if p == c => Ok(()),
            other => {
                self.pos -= 1;
                Err(self.err(format!("expected `{c}`, found {other:?}")))
            }
        }
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Tok::Punct(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn keyword(&mut self, k: &str) -> Result<(), ParseError> {
        match self.next()? {
            Tok::Ident(s) if s == k => Ok(()),
            other => {
                self.pos -= 1;
                Err(self.err(format!("expected `{k}`, found {other:?}")))
            }
        }
    }
    fn ident(&mut self) -> Result<String, ParseError> {
        match self.next()? {
            Tok::Ident(s) => Ok(s),
            other => {
                self.pos -= 1;
                Err(self.err(format!("expected a name, found {other:?}")))
            }
        }
    }
    fn value_name(&mut self) -> Result<Option<String>, ParseError> {
        match self.next()? {
            Tok::Value(s) => Ok(Some(s)),
            Tok::Ident(s) if s == "_" => Ok(None),
            other => {
                self.pos -= 1;
                Err(self.err(format!("expected a %value or `_`, found {other:?}")))
            }
        }
    }
    /// Comma-separated items up to `close` (the opening bracket already consumed).
    fn list<T>(&mut self, close: char, mut item: impl FnMut(&mut Self) -> Result<T, ParseError>) -> Result<Vec<T>, ParseError> {
        let mut items = vec![];
        while !self.eat(close) {
            if !items.is_empty() {
                self.punct(',')?;
            }
            items.push(item(self)?);
        }
        Ok(items)
    }
    fn ty(&mut self) -> Result<TensorType, ParseError> {
        let d = self.ident()?;
        let dtype = DType::from_name(&d).ok_or_else(|| self.err(format!("unknown dtype `{d}`")))?;
        self.punct('[')?;
        let dims = self.list(']', |p| match p.next()? {
            Tok::Num(n) => Ok(Dim::Known(n.parse().map_err(|_| p.err(format!("bad dimension `{n}`")))?)),
            Tok::Ident(s) | Tok::Str(s) => Ok(Dim::Sym(s)),
            other => Err(p.err(format!("bad dimension {other:?}"))),
        })?;
        Ok(TensorType::new(dtype, Shape(dims)))
    }
    fn number(&mut self) -> Result<String, ParseError> {
        match self.next()? {
            Tok::Num(n) => Ok(n),
            Tok::Ident(s) if s == "nan" || s == "inf" || s == "true" || s == "false" => Ok(s),
            other => Err(self.err(format!("expected a number, found {other:?}"))),
        }
    }
    fn values(&mut self, ty: &TensorType) -> Result<Tensor, ParseError> {
        let dims = ty.shape.as_fixed().ok_or_else(|| self.err("constants need a fixed shape"))?;
        self.punct('[')?;
        let items = self.list(']', Self::number)?;
        let data = if ty.dtype == DType::Bool {
            Data::Bool(items.iter().map(|s| s == "true").collect())
        } else if ty.dtype.is_float() {
            let v: Vec<f64> =
                items.iter().map(|s| parse_float(s).ok_or_else(|| self.err(format!("bad number `{s}`")))).collect::<Result<_, _>>()?;
            Data::from_f64(ty.dtype, &v)
        } else if ty.dtype == DType::U64 {
            Data::U64(items.iter().map(|s| s.parse().map_err(|_| self.err(format!("bad integer `{s}`")))).collect::<Result<_, _>>()?)
        } else {
            let v: Vec<i64> =
                items.iter().map(|s| s.parse().map_err(|_| self.err(format!("bad integer `{s}`")))).collect::<Result<_, _>>()?;
            Data::from_i64(ty.dtype, &v)
        };
        Tensor::new(dims, data).map_err(|e| self.err(e.to_string()))
    }
    fn attr(&mut self, weights: &HashMap<String, Arc<Tensor>>) -> Result<Attr, ParseError> {
        Ok(match self.next()? {
            Tok::Num(n) if n.contains(['.', 'e', 'E']) || n.ends_with("inf") => {
                Attr::Float(parse_float(&n).ok_or_else(|| self.err(format!("bad float `{n}`")))? as f32)
            }
            Tok::Num(n) => Attr::Int(n.parse().map_err(|_| self.err(format!("bad integer `{n}`")))?),
            Tok::Str(s) => Attr::Str(s),
            Tok::Ident(s) => match s.as_str() {
                "true" => Attr::Bool(true),
                "false" => Attr::Bool(false),
                "null" => Attr::None,
                "nan" => Attr::Float(f32::NAN),
                "inf" => Attr::Float(f32::INFINITY),
                "tensor" => {
                    self.punct('<')?;
                    let ty = self.ty()?;
                    self.punct('>')?;
                    Attr::Tensor(self.values(&ty)?)
                }
                "graph" => {
                    self.pos -= 1;
                    Attr::Graph(Box::new(self.graph(weights)?))
                }
                _ => Attr::Ident(s),
            },
            Tok::Punct('[') => {
                let items = self.list(']', Self::next)?;
                if items.iter().all(|t| matches!(t, Tok::Ident(_))) && !items.is_empty() {
                    Attr::Idents(items.into_iter().map(|t| if let Tok::Ident(s) = t { s } else { String::new() }).collect())
                } else if items
                    .iter()
                    .any(|t| matches!(t, Tok::Num(n) if n.contains(['.', 'e', 'E']) || n.ends_with("inf")) || matches!(t, Tok::Ident(_)))
                {
                    let v = items
                        .iter()
                        .map(|t| match t {
                            Tok::Num(n) => parse_float(n),
                            Tok::Ident(s) => parse_float(s),
                            _ => None,
                        })
                        .collect::<Option<Vec<f64>>>()
                        .ok_or_else(|| self.err("bad float list"))?;
                    Attr::Floats(v.into_iter().map(|x| x as f32).collect())
                } else {
                    Attr::Ints(
                        items
                            .iter()
                            .map(|t| match t {
                                Tok::Num(n) => n.parse().ok(),
                                _ => None,
                            })
                            .collect::<Option<Vec<i64>>>()
                            .ok_or_else(|| self.err("bad integer list"))?,
                    )
                }
            }
            other => return Err(self.err(format!("bad attribute value {other:?}"))),
        })
    }
    fn graph(&mut self, weights: &HashMap<String, Arc<Tensor>>) -> Result<Graph, ParseError> {
        self.keyword("graph")?;
        let name = match self.next()? {
            Tok::Str(s) => s,
            _ => return Err(self.err("expected the graph's quoted name")),
        };
        let mut g = Graph::new(name);
        let mut scope: HashMap<String, ValueId> = HashMap::new();
        self.punct('(')?;
        let inputs = self.list(')', |p| {
            let n = p.value_name()?.ok_or_else(|| p.err("inputs need names"))?;
            p.punct(':')?;
            Ok((n, p.ty()?))
        })?;
        for (n, t) in inputs {
            scope.insert(n.clone(), g.add_input(n, t));
        }
        self.punct('{')?;
        loop {
            if let Some(Tok::Ident(k)) = self.peek() {
                if k == "return" {
                    self.pos += 1;
                    break;
                }
            }
            let mut outs = vec![self.value_name()?];
            while self.eat(',') {
                outs.push(self.value_name()?);
            }
            self.punct('=')?;
            let head = self.ident()?;
            if head == "const" || head == "weight" {
                let name = outs.first().cloned().flatten().ok_or_else(|| self.err("constants need a name"))?;
                let ty = self.ty()?;
                let t = if head == "const" {
                    Arc::new(self.values(&ty)?)
                } else {
                    let t = weights.get(&name).ok_or_else(|| self.err(format!("no data for weight `{name}`")))?;
                    if t.dtype() != ty.dtype || Some(t.dims().to_vec()) != ty.shape.as_fixed() {
                        return Err(self.err(format!(
                            "weight `{name}` has {}{:?}, text says {}{}",
                            t.dtype(),
                            t.dims(),
                            ty.dtype,
                            ty.shape
                        )));
                    }
                    Arc::clone(t)
                };
                scope.insert(name.clone(), g.add_const(name, t));
                continue;
            }
            self.punct('[')?;
            let node_name = match self.next()? {
                Tok::Ident(s) | Tok::Str(s) => s,
                other => return Err(self.err(format!("expected the node name, found {other:?}"))),
            };
            self.punct(']')?;
            self.punct('(')?;
            let ins = self.list(')', |p| match p.value_name()? {
                None => Ok(None),
                Some(n) => scope.get(&n).map(|&id| Some(id)).ok_or_else(|| p.err(format!("undefined value %{n}"))),
            })?;
            let mut attrs: HashMap<String, Attr> = HashMap::new();
            if self.eat('{') {
                let pairs = self.list('}', |p| {
                    let k = p.ident()?;
                    p.punct('=')?;
                    Ok((k, p.attr(weights)?))
                })?;
                attrs.extend(pairs);
            }
            let op = if let Some(u) = UnaryOp::from_name(&head) {
                Op::Unary { op: u }
            } else if let Some(b) = BinaryOp::from_name(&head) {
                Op::Binary { op: b }
            } else {
                Op::from_attrs(&head, &mut |k| attrs.get(k).cloned()).map_err(|m| self.err(m))?
            };
            self.punct(':')?;
            let mut tys = vec![self.ty()?];
            while self.eat(',') {
                tys.push(self.ty()?);
            }
            let ids = g.add_node(node_name, op, ins, &outs).map_err(|e| self.err(e.to_string()))?;
            let present: Vec<ValueId> = ids.iter().flatten().copied().collect();
            if present.len() != tys.len() {
                return Err(self.err(format!("{} output types for {} outputs", tys.len(), present.len())));
            }
            for ((id, t), n) in present.iter().zip(&tys).zip(outs.iter().flatten()) {
                if g.value(*id).ty != *t {
                    return Err(self.err(format!(
                        "%{n}: text says {}{}, inference gives {}{}",
                        t.dtype,
                        t.shape,
                        g.value(*id).ty.dtype,
                        g.value(*id).ty.shape
                    )));
                }
                scope.insert(n.clone(), *id);
            }
        }
        let mut outs = vec![];
        loop {
            let n = self.value_name()?.ok_or_else(|| self.err("return needs values"))?;
            outs.push(*scope.get(&n).ok_or_else(|| self.err(format!("undefined value %{n}")))?);
            if !self.eat(',') {
                break;
            }
        }
        g.outputs = outs;
        self.punct('}')?;
        Ok(g)
    }
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "nan" => Some(f64::NAN),
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        s => s.parse().ok(),
    }
}
