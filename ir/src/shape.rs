//! Tensor shapes with static and symbolic dimensions.

use std::fmt;

/// One dimension: a known size or a named symbol (`batch`, `seq`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dim {
    Known(usize),
    Sym(String),
}

impl Dim {
    pub fn known(&self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::Known(n)
    }
}

/// A shape: one [`Dim`] per axis; rank 0 is a scalar.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    pub fn fixed(dims: &[usize]) -> Shape {
        Shape(dims.iter().map(|&d| Dim::Known(d)).collect())
    }

    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The concrete sizes, when every dimension is known.
    pub fn as_fixed(&self) -> Option<Vec<usize>> {
        self.0.iter().map(Dim::known).collect()
    }

    pub fn is_fixed(&self) -> bool {
        self.0.iter().all(|d| d.known().is_some())
    }

    /// Element count when every dimension is known.
    pub fn numel(&self) -> Option<usize> {
        self.as_fixed().map(|d| d.iter().product())
    }

    /// Names of the symbolic dimensions, in order of first appearance.
    pub fn symbols(&self) -> impl Iterator<Item = &str> {
        self.0.iter().filter_map(|d| match d {
            Dim::Sym(s) => Some(s.as_str()),
            Dim::Known(_) => None,
        })
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Row-major strides, in elements, of a concrete shape.
pub fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Numpy-style broadcast of two concrete shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = if da == db || db == 1 {
            da
        } else if da == 1 {
            db
        } else {
            return None;
        };
    }
    Some(out)
}

/// Numpy-style broadcast of two symbolic shapes. Two different symbols broadcast to the
/// first one (the model promises they agree at run time); a known 1 yields to the other side.
pub fn broadcast_sym(a: &Shape, b: &Shape) -> Option<Shape> {
    let r = a.rank().max(b.rank());
    let one = Dim::Known(1);
    let mut out = Vec::with_capacity(r);
    for i in 0..r {
        let da = if i + a.rank() >= r { &a.0[i + a.rank() - r] } else { &one };
        let db = if i + b.rank() >= r { &b.0[i + b.rank() - r] } else { &one };
        out.push(match (da, db) {
            (x, y) if x == y => x.clone(),
            (x, Dim::Known(1)) => x.clone(),
            (Dim::Known(1), y) => y.clone(),
            (Dim::Known(_), Dim::Known(_)) => return None,
            (Dim::Sym(_), y @ Dim::Known(_)) => y.clone(),
            (x @ Dim::Known(_), Dim::Sym(_)) => x.clone(),
            (x @ Dim::Sym(_), Dim::Sym(_)) => x.clone(),
        });
    }
    Some(Shape(out))
}
