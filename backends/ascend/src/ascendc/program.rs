//! A fused elementwise body as a straight-line program of AscendC vector instructions: the
//! level-2 "count" forms of ASCEND.md §4.2 (`Add(dst, a, b, n)`, `Adds(dst, a, s, n)`,
//! `Exp(dst, a, n)`, `Duplicate`, `Cast`), run once per tile. Functions the vector unit has no
//! instruction for are composed: sigmoid as 1/(1+e⁻ˣ), tanh as 2·sigmoid(2x)−1, erf by
//! Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7), GELU, ELU, leaky ReLU and hard sigmoid from those.
//!
//! A body the vector unit cannot run (integer or bool values, comparisons, Where, tensors
//! broadcast other than from one element, …) gets an `Err` naming why; the lowering then emits
//! it as CANN built-ins instead.

use kiln_ir::ops::GeluApprox;
use kiln_ir::{BinaryOp, DType, Elementwise as E, Graph, Op, UnaryOp, ValueId};
use std::collections::HashMap;

/// Where a tensor operand lives in the Unified Buffer: an input tile (from its VECIN queue),
/// the output tile (VECOUT), a scratch slot, or a slot filled once with a constant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loc {
    In(usize),
    Out,
    Tmp(usize),
    Const(usize),
}

/// A scalar operand, computed on the scalar unit: a literal, a one-element kernel input (read
/// from GM once per block), or arithmetic on those.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Lit(f32),
    Input(usize),
    Neg(Box<Scalar>),
    Inv(Box<Scalar>),
    Bin(BinaryOp, Box<Scalar>, Box<Scalar>),
}

impl Scalar {
    fn neg(self) -> Scalar {
        match self {
            Scalar::Lit(v) => Scalar::Lit(-v),
            s => Scalar::Neg(Box::new(s)),
        }
    }

    fn inv(self) -> Scalar {
        match self {
            Scalar::Lit(v) => Scalar::Lit(1.0 / v),
            s => Scalar::Inv(Box::new(s)),
        }
    }

    /// The C++ expression (a `float`).
    pub fn cpp(&self) -> String {
        match self {
            Scalar::Lit(v) => format!("{v:?}f"),
            Scalar::Input(k) => format!("s{k}_"),
            Scalar::Neg(s) => format!("(-{})", s.cpp()),
            Scalar::Inv(s) => format!("(1.0f / {})", s.cpp()),
            Scalar::Bin(op, a, b) => {
                let (a, b) = (a.cpp(), b.cpp());
                match op {
                    BinaryOp::Add => format!("({a} + {b})"),
                    BinaryOp::Sub => format!("({a} - {b})"),
                    BinaryOp::Mul => format!("({a} * {b})"),
                    BinaryOp::Div => format!("({a} / {b})"),
                    BinaryOp::Max => format!("({a} > {b} ? {a} : {b})"),
                    _ => format!("({a} < {b} ? {a} : {b})"),
                }
            }
        }
    }
}

/// One vector instruction over the tile's `n` elements.
#[derive(Clone, Debug, PartialEq)]
pub enum Instr {
    /// `Add|Sub|Mul|Div|Max|Min(dst, a, b, n)`.
    Bin { op: &'static str, dst: Loc, a: Loc, b: Loc },
    /// `Adds|Muls|Maxs|Mins(dst, a, s, n)`.
    Scal { op: &'static str, dst: Loc, a: Loc, s: Scalar },
    /// `Exp|Ln|Abs|Sqrt|Relu(dst, a, n)`.
    Un { op: &'static str, dst: Loc, a: Loc },
    /// `Duplicate(dst, s, n)`.
    Dup { dst: Loc, s: Scalar },
    /// `Cast(dst, a, RoundMode::round, n)`.
    Cast { dst: Loc, a: Loc, round: &'static str },
}

/// A kernel input: its dtype, and whether it is one element (a scalar read once) or a tensor
/// of the output's element count (read tile by tile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KInput {
    pub dtype: DType,
    pub scalar: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub inputs: Vec<KInput>,
    pub out: DType,
    /// Scratch slots, by dtype (each holds one tile).
    pub temps: Vec<DType>,
    /// Constant slots: dtype and value, filled once per block.
    pub consts: Vec<(DType, f32)>,
    pub code: Vec<Instr>,
}

impl Program {
    pub fn dtype(&self, l: Loc) -> DType {
        match l {
            Loc::In(k) => self.inputs[k].dtype,
            Loc::Out => self.out,
            Loc::Tmp(i) => self.temps[i],
            Loc::Const(i) => self.consts[i].0,
        }
    }
}

#[derive(Clone, Debug)]
enum Val {
    T(Loc, DType),
    S(Scalar),
}

struct Tr {
    p: Program,
    free: Vec<usize>,
}

// Abramowitz & Stegun 7.1.26.
const ERF_P: f32 = 0.327_591_1;
const ERF_A: [f32; 5] = [0.254_829_6, -0.284_496_72, 1.421_413_8, -1.453_152_1, 1.061_405_4];
/// Keeps x/(|x|+ε) finite at 0, where erf is 0 either way.
const SIGN_EPS: f32 = 1e-30;

impl Tr {
    fn tmp(&mut self, d: DType) -> Loc {
        if let Some(pos) = self.free.iter().position(|&i| self.p.temps[i] == d) {
            return Loc::Tmp(self.free.remove(pos));
        }
        self.p.temps.push(d);
        Loc::Tmp(self.p.temps.len() - 1)
    }

    fn release(&mut self, l: Loc) {
        if let Loc::Tmp(i) = l {
            if !self.free.contains(&i) {
                self.free.push(i);
            }
        }
    }

    fn constant(&mut self, d: DType, v: f32) -> Loc {
        match self.p.consts.iter().position(|&(cd, cv)| cd == d && cv.to_bits() == v.to_bits()) {
            Some(i) => Loc::Const(i),
            None => {
                self.p.consts.push((d, v));
                Loc::Const(self.p.consts.len() - 1)
            }
        }
    }

    fn bin(&mut self, op: &'static str, dst: Loc, a: Loc, b: Loc) {
        self.p.code.push(Instr::Bin { op, dst, a, b });
    }

    fn scal(&mut self, op: &'static str, dst: Loc, a: Loc, s: f32) {
        self.p.code.push(Instr::Scal { op, dst, a, s: Scalar::Lit(s) });
    }

    fn un(&mut self, op: &'static str, dst: Loc, a: Loc) {
        self.p.code.push(Instr::Un { op, dst, a });
    }

    /// dst = 1 / (1 + e^(-k·a)).
    fn sigmoid(&mut self, dst: Loc, a: Loc, k: f32, d: DType) {
        let one = self.constant(d, 1.0);
        self.scal("Muls", dst, a, -k);
        self.un("Exp", dst, dst);
        self.scal("Adds", dst, dst, 1.0);
        self.bin("Div", dst, one, dst);
    }

    /// dst = tanh(a) = 2·sigmoid(2a) − 1.
    fn tanh(&mut self, dst: Loc, a: Loc, d: DType) {
        self.sigmoid(dst, a, 2.0, d);
        self.scal("Muls", dst, dst, 2.0);
        self.scal("Adds", dst, dst, -1.0);
    }

    /// dst = erf(a) (f32 only: the polynomial and ε need its range).
    fn erf(&mut self, dst: Loc, a: Loc, d: DType) -> Result<(), String> {
        if d != DType::F32 {
            return Err(format!("erf on {d} (the kernel's erf is f32)"));
        }
        let one = self.constant(d, 1.0);
        let (t, q) = (self.tmp(d), self.tmp(d));
        self.un("Abs", t, a);
        self.scal("Muls", t, t, ERF_P);
        self.scal("Adds", t, t, 1.0);
        self.bin("Div", t, one, t);
        self.scal("Muls", q, t, ERF_A[4]);
        for c in ERF_A[..4].iter().rev() {
            self.scal("Adds", q, q, *c);
            self.bin("Mul", q, q, t);
        }
        self.bin("Mul", t, a, a);
        self.scal("Muls", t, t, -1.0);
        self.un("Exp", t, t);
        self.bin("Mul", q, q, t);
        self.scal("Muls", q, q, -1.0);
        self.scal("Adds", q, q, 1.0);
        self.un("Abs", t, a);
        self.scal("Adds", t, t, SIGN_EPS);
        self.bin("Div", dst, a, t);
        self.bin("Mul", dst, dst, q);
        self.release(t);
        self.release(q);
        Ok(())
    }

    fn gelu(&mut self, dst: Loc, a: Loc, approx: GeluApprox, d: DType) -> Result<(), String> {
        let s = self.tmp(d);
        match approx {
            GeluApprox::None => {
                self.scal("Muls", s, a, std::f32::consts::FRAC_1_SQRT_2);
                self.erf(dst, s, d)?;
            }
            GeluApprox::Tanh => {
                self.bin("Mul", s, a, a);
                self.bin("Mul", s, s, a);
                self.scal("Muls", s, s, 0.044_715);
                self.bin("Add", s, s, a);
                self.scal("Muls", s, s, (2.0 / std::f32::consts::PI).sqrt());
                self.tanh(dst, s, d);
            }
        }
        self.release(s);
        self.scal("Adds", dst, dst, 1.0);
        self.bin("Mul", dst, dst, a);
        self.scal("Muls", dst, dst, 0.5);
        Ok(())
    }

    /// dst = max(a, 0) + f(min(a, 0)), with `f` given the scratch slot holding min(a, 0).
    fn split_at_zero(&mut self, dst: Loc, a: Loc, d: DType, f: impl FnOnce(&mut Tr, Loc)) {
        let s = self.tmp(d);
        self.scal("Mins", s, a, 0.0);
        f(self, s);
        self.scal("Maxs", dst, a, 0.0);
        self.bin("Add", dst, dst, s);
        self.release(s);
    }

    fn unary(&mut self, op: UnaryOp, dst: Loc, a: Loc, d: DType) -> Result<(), String> {
        match op {
            UnaryOp::Abs => self.un("Abs", dst, a),
            UnaryOp::Exp => self.un("Exp", dst, a),
            UnaryOp::Log => self.un("Ln", dst, a),
            UnaryOp::Sqrt => self.un("Sqrt", dst, a),
            UnaryOp::Relu => self.un("Relu", dst, a),
            UnaryOp::Neg => self.scal("Muls", dst, a, -1.0),
            UnaryOp::Reciprocal => {
                let one = self.constant(d, 1.0);
                self.bin("Div", dst, one, a);
            }
            UnaryOp::Sigmoid => self.sigmoid(dst, a, 1.0, d),
            UnaryOp::Tanh => self.tanh(dst, a, d),
            UnaryOp::Erf => self.erf(dst, a, d)?,
            // max(x, 0) + ln(1 + e^-|x|): no overflow for large |x|.
            UnaryOp::Softplus => {
                let t = self.tmp(d);
                self.un("Abs", t, a);
                self.scal("Muls", t, t, -1.0);
                self.un("Exp", t, t);
                self.scal("Adds", t, t, 1.0);
                self.un("Ln", t, t);
                self.scal("Maxs", dst, a, 0.0);
                self.bin("Add", dst, dst, t);
                self.release(t);
            }
            UnaryOp::Softsign => {
                let t = self.tmp(d);
                self.un("Abs", t, a);
                self.scal("Adds", t, t, 1.0);
                self.bin("Div", dst, a, t);
                self.release(t);
            }
            UnaryOp::HardSwish => {
                let t = self.tmp(d);
                self.scal("Muls", t, a, 1.0 / 6.0);
                self.scal("Adds", t, t, 0.5);
                self.scal("Mins", t, t, 1.0);
                self.scal("Maxs", t, t, 0.0);
                self.bin("Mul", dst, a, t);
                self.release(t);
            }
            other => return Err(format!("{other:?} has no vector-unit form in kiln's kernels yet")),
        }
        Ok(())
    }

    fn binary(&mut self, op: BinaryOp, dst: Loc, a: &Val, b: &Val, d: DType) -> Result<(), String> {
        let name = |op: BinaryOp| -> Result<&'static str, String> {
            Ok(match op {
                BinaryOp::Add => "Add",
                BinaryOp::Sub => "Sub",
                BinaryOp::Mul => "Mul",
                BinaryOp::Div => "Div",
                BinaryOp::Max => "Max",
                BinaryOp::Min => "Min",
                other => return Err(format!("{other:?} has no vector-unit form in kiln's kernels yet")),
            })
        };
        match (a, b) {
            (Val::T(x, _), Val::T(y, _)) if op != BinaryOp::Pow => {
                let n = name(op)?;
                self.bin(n, dst, *x, *y);
            }
            (Val::T(x, _), Val::S(Scalar::Lit(e))) if op == BinaryOp::Pow => match *e {
                1.0 => self.scal("Muls", dst, *x, 1.0),
                2.0 => self.bin("Mul", dst, *x, *x),
                3.0 => {
                    self.bin("Mul", dst, *x, *x);
                    self.bin("Mul", dst, dst, *x);
                }
                0.5 => self.un("Sqrt", dst, *x),
                -1.0 => {
                    let one = self.constant(d, 1.0);
                    self.bin("Div", dst, one, *x);
                }
                e => return Err(format!("Pow with exponent {e}")),
            },
            (Val::T(x, _), Val::S(s)) => {
                let (ty, s) = match op {
                    BinaryOp::Add => ("Adds", s.clone()),
                    BinaryOp::Sub => ("Adds", s.clone().neg()),
                    BinaryOp::Mul => ("Muls", s.clone()),
                    BinaryOp::Div => ("Muls", s.clone().inv()),
                    BinaryOp::Max => ("Maxs", s.clone()),
                    BinaryOp::Min => ("Mins", s.clone()),
                    other => return Err(format!("{other:?} of a tensor and a scalar")),
                };
                self.p.code.push(Instr::Scal { op: ty, dst, a: *x, s });
            }
            (Val::S(s), Val::T(y, _)) => match op {
                BinaryOp::Add | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min => {
                    let ty = match op {
                        BinaryOp::Add => "Adds",
                        BinaryOp::Mul => "Muls",
                        BinaryOp::Max => "Maxs",
                        _ => "Mins",
                    };
                    self.p.code.push(Instr::Scal { op: ty, dst, a: *y, s: s.clone() });
                }
                BinaryOp::Sub => {
                    self.scal("Muls", dst, *y, -1.0);
                    self.p.code.push(Instr::Scal { op: "Adds", dst, a: dst, s: s.clone() });
                }
                BinaryOp::Div => {
                    self.p.code.push(Instr::Dup { dst, s: s.clone() });
                    self.bin("Div", dst, dst, *y);
                }
                other => return Err(format!("{other:?} of a scalar and a tensor")),
            },
            (Val::S(_), Val::S(_)) | (Val::T(..), Val::T(..)) => return Err(format!("{op:?} of these operands")),
        }
        Ok(())
    }
}

fn float(d: DType) -> Result<DType, String> {
    match d {
        DType::F32 | DType::F16 => Ok(d),
        other => Err(format!("a {other} value (the kernels compute f32 and f16)")),
    }
}

/// The program of `body`, whose input `k` is one element when `scalar[k]` (a tensor of the
/// output's element count otherwise). Its one output must be computed by a node.
pub fn translate(body: &Graph, scalar: &[bool]) -> Result<Program, String> {
    if body.outputs.len() != 1 {
        return Err(format!("a body with {} outputs", body.outputs.len()));
    }
    let out_id = body.outputs[0];
    let out = float(body.value(out_id).ty.dtype)?;
    let mut inputs = vec![];
    let mut vals: HashMap<ValueId, Val> = HashMap::new();
    for (k, &v) in body.inputs.iter().enumerate() {
        let d = float(body.value(v).ty.dtype)?;
        let s = scalar.get(k).copied().unwrap_or(false);
        inputs.push(KInput { dtype: d, scalar: s });
        vals.insert(v, if s { Val::S(Scalar::Input(k)) } else { Val::T(Loc::In(k), d) });
    }
    for (&v, t) in &body.consts {
        if t.numel() != 1 {
            return Err("a constant of more than one element".into());
        }
        let x = t.to_f64()[0] as f32;
        if !x.is_finite() {
            return Err("a non-finite constant".into());
        }
        vals.insert(v, Val::S(Scalar::Lit(x)));
    }
    // Remaining reads of each value, to free scratch slots after their last use.
    let mut uses: HashMap<ValueId, usize> = HashMap::new();
    for n in &body.nodes {
        for v in n.inputs.iter().flatten() {
            *uses.entry(*v).or_default() += 1;
        }
    }
    let mut tr = Tr { p: Program { inputs, out, temps: vec![], consts: vec![], code: vec![] }, free: vec![] };
    for n in &body.nodes {
        let [Some(o)] = n.outputs[..] else { return Err(format!("node `{}` has {} outputs", n.name, n.outputs.len())) };
        let d = float(body.value(o).ty.dtype)?;
        let args: Vec<Option<Val>> = n
            .inputs
            .iter()
            .map(|i| {
                i.map(|v| vals.get(&v).cloned().ok_or_else(|| format!("body value `{}` is undefined", body.value(v).name))).transpose()
            })
            .collect::<Result<_, _>>()?;
        let arg = |i: usize| args.get(i).cloned().flatten();
        let is_out = o == out_id;
        // Scalar arithmetic stays on the scalar unit.
        if let (Op::Binary { op }, Some(Val::S(a)), Some(Val::S(b))) = (&n.op, arg(0), arg(1)) {
            if is_out {
                return Err("a scalar result".into());
            }
            if !matches!(op, BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Max | BinaryOp::Min) {
                return Err(format!("{op:?} of two scalars"));
            }
            vals.insert(o, Val::S(Scalar::Bin(*op, Box::new(a), Box::new(b))));
            continue;
        }
        let tensor = |i: usize| match arg(i) {
            Some(Val::T(l, _)) => Ok(l),
            _ => Err(format!("{} of a scalar", n.op.display_name())),
        };
        // Ops that compute nothing name the value they pass on (scalars stay f32 whatever
        // their cast); the body's output is still copied into the output tile.
        let alias = match (&n.op, arg(0)) {
            (Op::Identity {}, a) | (Op::Cast { .. }, a @ Some(Val::S(_))) => a,
            (Op::Cast { to, .. }, a @ Some(Val::T(_, ad))) if ad == *to => a,
            _ => None,
        };
        if let (Some(a), false) = (alias, is_out) {
            vals.insert(o, a);
            continue;
        }
        let dst = if is_out { Loc::Out } else { tr.tmp(d) };
        let Some(e) = n.op.as_elementwise() else { return Err(format!("{} in a fused body", n.op.display_name())) };
        match e {
            E::Identity {} => tr.scal("Muls", dst, tensor(0)?, 1.0),
            E::Cast { to, .. } => {
                let a = tensor(0)?;
                match (tr.p.dtype(a), *to) {
                    (x, y) if x == y => tr.scal("Muls", dst, a, 1.0),
                    (DType::F32, DType::F16) => tr.p.code.push(Instr::Cast { dst, a, round: "CAST_RINT" }),
                    (DType::F16, DType::F32) => tr.p.code.push(Instr::Cast { dst, a, round: "CAST_NONE" }),
                    (x, y) => return Err(format!("a cast from {x} to {y}")),
                }
            }
            E::Unary { op } => tr.unary(*op, dst, tensor(0)?, d)?,
            E::Binary { op } => {
                let (Some(a), Some(b)) = (arg(0), arg(1)) else { return Err("a missing operand".into()) };
                tr.binary(*op, dst, &a, &b, d)?;
            }
            E::Gelu { approximate } => tr.gelu(dst, tensor(0)?, *approximate, d)?,
            E::Swish { alpha } => {
                let a = tensor(0)?;
                tr.sigmoid(dst, a, *alpha, d);
                tr.bin("Mul", dst, dst, a);
            }
            E::LeakyRelu { alpha } => {
                let alpha = *alpha;
                tr.split_at_zero(dst, tensor(0)?, d, |tr, s| tr.scal("Muls", s, s, alpha));
            }
            E::Elu { alpha } => {
                let alpha = *alpha;
                tr.split_at_zero(dst, tensor(0)?, d, |tr, s| {
                    tr.un("Exp", s, s);
                    tr.scal("Adds", s, s, -1.0);
                    tr.scal("Muls", s, s, alpha);
                });
            }
            E::Selu { alpha, gamma } => {
                let alpha = *alpha;
                tr.split_at_zero(dst, tensor(0)?, d, |tr, s| {
                    tr.un("Exp", s, s);
                    tr.scal("Adds", s, s, -1.0);
                    tr.scal("Muls", s, s, alpha);
                });
                tr.scal("Muls", dst, dst, *gamma);
            }
            E::Celu { alpha } => {
                let alpha = *alpha;
                tr.split_at_zero(dst, tensor(0)?, d, |tr, s| {
                    tr.scal("Muls", s, s, 1.0 / alpha);
                    tr.un("Exp", s, s);
                    tr.scal("Adds", s, s, -1.0);
                    tr.scal("Muls", s, s, alpha);
                });
            }
            E::Mean {} => {
                let xs = (0..n.inputs.len()).map(tensor).collect::<Result<Vec<_>, _>>()?;
                let Some((first, rest)) = xs.split_first() else { return Err("Mean of nothing".into()) };
                match rest.split_first() {
                    None => tr.scal("Muls", dst, *first, 1.0),
                    Some((second, more)) => {
                        tr.bin("Add", dst, *first, *second);
                        for x in more {
                            tr.bin("Add", dst, dst, *x);
                        }
                    }
                }
                tr.scal("Muls", dst, dst, 1.0 / xs.len() as f32);
            }
            E::HardSigmoid { alpha, beta } => {
                tr.scal("Muls", dst, tensor(0)?, *alpha);
                tr.scal("Adds", dst, dst, *beta);
                tr.scal("Mins", dst, dst, 1.0);
                tr.scal("Maxs", dst, dst, 0.0);
            }
            E::Clip {} => {
                let mut src = tensor(0)?;
                for (i, ty) in [(1, "Maxs"), (2, "Mins")] {
                    match arg(i) {
                        None => {}
                        Some(Val::S(s)) => {
                            tr.p.code.push(Instr::Scal { op: ty, dst, a: src, s });
                            src = dst;
                        }
                        Some(Val::T(..)) => return Err("Clip with tensor bounds".into()),
                    }
                }
                if src != dst {
                    tr.scal("Muls", dst, src, 1.0);
                }
            }
            E::ThresholdedRelu { .. } | E::Shrink { .. } | E::IsInf { .. } | E::Where {} => {
                return Err(format!("{} has no vector-unit form in kiln's kernels yet", n.op.display_name()))
            }
        }
        vals.insert(o, Val::T(dst, d));
        for v in n.inputs.iter().flatten() {
            let left = uses.get_mut(v).map(|u| {
                *u -= 1;
                *u
            });
            if let (Some(0), Some(Val::T(l, _))) = (left, vals.get(v)) {
                let l = *l;
                // A value may be named by several ids (aliases): free only when none is live.
                let live = vals.iter().any(|(id, val)| matches!(val, Val::T(x, _) if *x == l) && uses.get(id).copied().unwrap_or(0) > 0);
                if !live {
                    tr.release(l);
                }
            }
        }
    }
    match vals.get(&out_id) {
        Some(Val::T(Loc::Out, _)) => Ok(tr.p),
        _ => Err("the body's output is not computed by it".into()),
    }
}
