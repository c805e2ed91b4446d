//! Elementwise ops: the CANN built-ins of one or two inputs (TensorFlow-style names), and the
//! ONNX ops CANN has no built-in for, composed from them: Xor from the logical ops, PRelu,
//! ThresholdedRelu and Shrink from comparisons and SelectV2, one-signed IsInf, and Mod/FMod for
//! the dtypes their CANN ops do not list (computed in a wider integer type and cast back).

use super::ops::{cast, exp_log_attrs, input, output, Outs};
use super::transformer::cast_to;
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use kiln_ir::{BinaryOp, DType, UnaryOp};

/// The CANN op of a unary kiln op, where one computes it alone.
pub(super) fn unary_type(op: UnaryOp) -> Option<&'static str> {
    use UnaryOp::*;
    Some(match op {
        Abs => "Abs",
        Neg => "Neg",
        Exp => "Exp",
        Log => "Log",
        Sqrt => "Sqrt",
        Reciprocal => "Reciprocal",
        Floor => "Floor",
        Ceil => "Ceil",
        // CANN's Round rounds half to even, as ONNX's does.
        Round => "Round",
        Sign => "Sign",
        Sin => "Sin",
        Cos => "Cos",
        Tan => "Tan",
        Asin => "Asin",
        Acos => "Acos",
        Atan => "Atan",
        Sinh => "Sinh",
        Cosh => "Cosh",
        Asinh => "Asinh",
        Acosh => "Acosh",
        Atanh => "Atanh",
        Erf => "Erf",
        Sigmoid => "Sigmoid",
        Tanh => "Tanh",
        Relu => "Relu",
        Mish => "Mish",
        Not => "LogicalNot",
        BitwiseNot => "Invert",
        IsNaN => "IsNan",
        // No built-in: one-node AscendC kernels, else composed (`composed_unary`).
        Softplus | Softsign | HardSwish => return None,
    })
}

/// The CANN op of a binary kiln op on operands of dtype `d`, where one computes it alone.
pub(super) fn binary_type(op: BinaryOp, d: DType) -> Option<&'static str> {
    use BinaryOp::*;
    Some(match op {
        Add => "Add",
        Sub => "Sub",
        Mul => "Mul",
        // RealDiv is the float quotient; integer Div truncates as ONNX's does.
        Div if d.is_float() => "RealDiv",
        Div => "Div",
        Pow => "Pow",
        Max => "Maximum",
        Min => "Minimum",
        Equal => "Equal",
        Less => "Less",
        LessOrEqual => "LessEqual",
        Greater => "Greater",
        GreaterOrEqual => "GreaterEqual",
        And => "LogicalAnd",
        Or => "LogicalOr",
        BitwiseAnd => "BitwiseAnd",
        BitwiseOr => "BitwiseOr",
        BitwiseXor => "BitwiseXor",
        BitShiftLeft => "LeftShift",
        BitShiftRight => "RightShift",
        // FloorMod: the remainder with the divisor's sign (ONNX's integer Mod); Mod (TensorFlow's
        // truncating remainder): the dividend's sign (C fmod). Each for the dtypes its
        // prototype lists; others go through `wider`.
        Mod if matches!(d, DType::I32 | DType::I64 | DType::F32 | DType::F16) => "FloorMod",
        FMod if matches!(d, DType::I32 | DType::I64 | DType::I8 | DType::U8 | DType::F32 | DType::F16) => "Mod",
        Mod | FMod | PRelu | Xor => return None,
    })
}

/// The integer type a Mod/FMod of `d` is computed in when its CANN op does not list `d`.
fn wider(d: DType) -> Option<DType> {
    match d {
        DType::I8 | DType::U8 | DType::I16 | DType::U16 => Some(DType::I32),
        DType::U32 => Some(DType::I64),
        _ => None,
    }
}

fn two(cx: &mut Cx, name: &str, ty: &str, a: Port, b: Port, out: Desc) -> Result<Port, Fail> {
    cx.op1(name, ty, &[("x1", Some(a)), ("x2", Some(b))], out, vec![])
}

fn select(cx: &mut Cx, name: &str, c: Port, a: Port, b: Port, out: Desc) -> Result<Port, Fail> {
    cx.op1(name, "SelectV2", &[("condition", Some(c)), ("x1", Some(a)), ("x2", Some(b))], out, vec![])
}

fn bool_of(d: &Desc) -> Desc {
    Desc { dtype: DType::Bool, ..d.clone() }
}

pub(super) fn unary(cx: &mut Cx, name: &str, u: UnaryOp, ins: &[Option<Port>], outs: &[Option<Desc>]) -> Result<Option<Outs>, Fail> {
    let x = input(ins, 0)?;
    let y = output(outs, 0)?;
    Ok(match unary_type(u) {
        Some(t @ ("Exp" | "Log")) => Some(vec![Some(cx.op1(name, t, &[("x", Some(x))], y, exp_log_attrs())?)]),
        Some(t) => Some(vec![Some(cx.op1(name, t, &[("x", Some(x))], y, vec![])?)]),
        None => None,
    })
}

pub(super) fn binary(cx: &mut Cx, name: &str, b: BinaryOp, ins: &[Option<Port>], outs: &[Option<Desc>]) -> Result<Outs, Fail> {
    let x1 = input(ins, 0)?;
    let d = cx.desc(&x1)?.dtype;
    let mut x2 = input(ins, 1)?;
    // ONNX's Pow takes an exponent of any numeric type; CANN's takes x1's.
    if b == BinaryOp::Pow && cx.desc(&x2)?.dtype != d {
        x2 = cast_to(cx, &format!("{name}/exponent"), x2, d)?;
    }
    let out = output(outs, 0)?;
    let at = |s: &str| format!("{name}/{s}");
    let p = match (binary_type(b, d), b) {
        (Some(t @ ("LeftShift" | "RightShift")), _) => {
            let z = cx.op(name, t, &[("x", Some(x1)), ("y", Some(x2))], vec![("z", out)], vec![])?;
            z.into_iter().next().ok_or_else(|| Fail::Internal(format!("{t} made no output")))?
        }
        (Some(t), _) => two(cx, name, t, x1, x2, out)?,
        // a ⊕ b = (a ∨ b) ∧ ¬(a ∧ b), from the logical ops CANN has.
        (None, BinaryOp::Xor) => {
            let any = two(cx, &at("or"), "LogicalOr", x1.clone(), x2.clone(), out.clone())?;
            let both = two(cx, &at("and"), "LogicalAnd", x1, x2, out.clone())?;
            let not_both = cx.op1(&at("not"), "LogicalNot", &[("x", Some(both))], out.clone(), vec![])?;
            two(cx, name, "LogicalAnd", any, not_both, out)?
        }
        // PRelu(x, slope) = x < 0 ? x·slope : x, the slope broadcast to x. CANN's PRelu takes
        // one slope per channel of dim 1 only; ONNX's broadcasts from the trailing dims.
        (None, BinaryOp::PRelu) => {
            let zero = cx.scalar(&at("zero"), d, 0.0)?;
            let neg = two(cx, &at("negative"), "Less", x1.clone(), zero, bool_of(&out))?;
            let scaled = two(cx, &at("scaled"), "Mul", x1.clone(), x2, out.clone())?;
            select(cx, name, neg, scaled, x1, out)?
        }
        (None, BinaryOp::Mod | BinaryOp::FMod) => {
            let Some(w) = wider(d) else { return unsupported(format!("{} of {d}: no CANN op computes it", b.name())) };
            let ty = binary_type(b, w).ok_or_else(|| Fail::Internal(format!("{} of {w}", b.name())))?;
            let a = cast_to(cx, &at("x1_wide"), x1, w)?;
            let c = cast_to(cx, &at("x2_wide"), x2, w)?;
            let r = two(cx, &at("wide"), ty, a, c, Desc { dtype: w, ..out.clone() })?;
            cast(cx, name, r, out)?
        }
        (None, _) => return unsupported(format!("{} has no CANN built-in mapped yet", b.name())),
    };
    Ok(vec![Some(p)])
}

/// ThresholdedRelu: x > α ? x : 0.
pub(super) fn thresholded_relu(cx: &mut Cx, name: &str, alpha: f32, x: Port, out: Desc) -> Result<Port, Fail> {
    let d = out.dtype;
    let a = cx.scalar(&format!("{name}/alpha"), d, f64::from(alpha))?;
    let zero = cx.scalar(&format!("{name}/zero"), d, 0.0)?;
    let above = two(cx, &format!("{name}/above"), "Greater", x.clone(), a, bool_of(&out))?;
    select(cx, name, above, x, zero, out)
}

/// Shrink: x < -λ ? x + bias : x > λ ? x - bias : 0.
pub(super) fn shrink(cx: &mut Cx, name: &str, bias: f32, lambd: f32, x: Port, out: Desc) -> Result<Port, Fail> {
    let d = out.dtype;
    let at = |s: &str| format!("{name}/{s}");
    let (l, nl) = (cx.scalar(&at("lambd"), d, f64::from(lambd))?, cx.scalar(&at("neg_lambd"), d, -f64::from(lambd))?);
    let (b, zero) = (cx.scalar(&at("bias"), d, f64::from(bias))?, cx.scalar(&at("zero"), d, 0.0)?);
    let up = two(cx, &at("up"), "Sub", x.clone(), b.clone(), out.clone())?;
    let down = two(cx, &at("down"), "Add", x.clone(), b, out.clone())?;
    let above = two(cx, &at("above"), "Greater", x.clone(), l, bool_of(&out))?;
    let below = two(cx, &at("below"), "Less", x, nl, bool_of(&out))?;
    let low = select(cx, &at("low"), below, down, zero, out.clone())?;
    select(cx, name, above, up, low, out)
}

/// IsInf with ONNX's sign selection: IsInf alone for both signs, and with the sign tested for one.
pub(super) fn is_inf(cx: &mut Cx, name: &str, negative: bool, positive: bool, x: Port, out: Desc) -> Result<Port, Fail> {
    let d = cx.desc(&x)?.dtype;
    let sign = match (negative, positive) {
        (true, true) => return cx.op1(name, "IsInf", &[("x", Some(x))], out, vec![]),
        (false, true) => "Greater",
        (true, false) => "Less",
        (false, false) => return unsupported("IsInf detecting neither sign"),
    };
    let inf = cx.op1(&format!("{name}/inf"), "IsInf", &[("x", Some(x.clone()))], out.clone(), vec![])?;
    let zero = cx.scalar(&format!("{name}/zero"), d, 0.0)?;
    let signed = two(cx, &format!("{name}/sign"), sign, x, zero, out.clone())?;
    two(cx, name, "LogicalAnd", inf, signed, out)
}

// The parameterized activations from CANN built-ins that compute on NC1HWC0 data as stored
// (Mul, Add, Sub, Maximum, Minimum, Exp, Sigmoid, ClipByValue with scalar operands), for data
// an AscendC kernel of kiln's does not take (a convolution's NCHW or NC1HWC0 result).

/// `x ∘ s` for a scalar `s` of the output's dtype.
fn with_scalar(cx: &mut Cx, name: &str, ty: &str, x: Port, s: f64, out: &Desc) -> Result<Port, Fail> {
    let k = cx.scalar(&format!("{name}/k"), out.dtype, s)?;
    two(cx, name, ty, x, k, out.clone())
}

/// HardSigmoid: clip(α·x + β, 0, 1).
pub(super) fn hard_sigmoid(cx: &mut Cx, name: &str, alpha: f32, beta: f32, x: Port, out: Desc) -> Result<Port, Fail> {
    let at = |s: &str| format!("{name}/{s}");
    let ax = with_scalar(cx, &at("scaled"), "Mul", x, f64::from(alpha), &out)?;
    let s = with_scalar(cx, &at("shifted"), "Add", ax, f64::from(beta), &out)?;
    let (lo, hi) = (cx.scalar(&at("zero"), out.dtype, 0.0)?, cx.scalar(&at("one"), out.dtype, 1.0)?);
    cx.op1(name, "ClipByValue", &[("x", Some(s)), ("clip_value_min", Some(lo)), ("clip_value_max", Some(hi))], out, vec![])
}

/// Swish: x·sigmoid(α·x).
pub(super) fn swish(cx: &mut Cx, name: &str, alpha: f32, x: Port, out: Desc) -> Result<Port, Fail> {
    let at = |s: &str| format!("{name}/{s}");
    let arg = if alpha == 1.0 { x.clone() } else { with_scalar(cx, &at("scaled"), "Mul", x.clone(), f64::from(alpha), &out)? };
    let s = cx.op1(&at("sigmoid"), "Sigmoid", &[("x", Some(arg))], out.clone(), vec![])?;
    two(cx, name, "Mul", x, s, out)
}

/// LeakyRelu: max(x, 0) + α·min(x, 0).
pub(super) fn leaky_relu(cx: &mut Cx, name: &str, alpha: f32, x: Port, out: Desc) -> Result<Port, Fail> {
    let at = |s: &str| format!("{name}/{s}");
    let pos = with_scalar(cx, &at("positive"), "Maximum", x.clone(), 0.0, &out)?;
    let neg = with_scalar(cx, &at("negative"), "Minimum", x, 0.0, &out)?;
    let neg = with_scalar(cx, &at("sloped"), "Mul", neg, f64::from(alpha), &out)?;
    two(cx, name, "Add", pos, neg, out)
}

/// The exponential linear family: γ·(max(x, 0) + α·(exp(min(x, 0)/s) − 1)), which is Elu
/// (γ = s = 1), Selu (s = 1) and Celu (γ = 1, s = α).
pub(super) fn exp_linear(cx: &mut Cx, name: &str, alpha: f32, gamma: f32, s: f32, x: Port, out: Desc) -> Result<Port, Fail> {
    let at = |n: &str| format!("{name}/{n}");
    let pos = with_scalar(cx, &at("positive"), "Maximum", x.clone(), 0.0, &out)?;
    let mut neg = with_scalar(cx, &at("negative"), "Minimum", x, 0.0, &out)?;
    if s != 1.0 {
        neg = with_scalar(cx, &at("scaled"), "Mul", neg, 1.0 / f64::from(s), &out)?;
    }
    let e = cx.op1(&at("exp"), "Exp", &[("x", Some(neg))], out.clone(), exp_log_attrs())?;
    let em1 = with_scalar(cx, &at("expm1"), "Sub", e, 1.0, &out)?;
    let tail = with_scalar(cx, &at("tail"), "Mul", em1, f64::from(alpha), &out)?;
    if gamma == 1.0 {
        return two(cx, name, "Add", pos, tail, out);
    }
    let sum = two(cx, &at("sum"), "Add", pos, tail, out.clone())?;
    with_scalar(cx, name, "Mul", sum, f64::from(gamma), &out)
}

/// Mean of the inputs: their sum over their count.
pub(super) fn mean(cx: &mut Cx, name: &str, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let xs: Vec<Port> = ins.iter().flatten().cloned().collect();
    let Some((first, rest)) = xs.split_first() else { return Err(Fail::Internal("Mean of no inputs".into())) };
    let mut acc = first.clone();
    for (i, x) in rest.iter().enumerate() {
        acc = two(cx, &format!("{name}/sum{i}"), "Add", acc, x.clone(), out.clone())?;
    }
    with_scalar(cx, name, "Mul", acc, 1.0 / xs.len() as f64, &out)
}

/// The unary ops no CANN built-in computes alone, from ones that do: HardSwish as
/// x·HardSigmoid(x; 1/6, ½), Softplus as max(x, 0) + log(1 + exp(−|x|)) (no overflow for large
/// x), Softsign as x / (1 + |x|).
pub(super) fn composed_unary(cx: &mut Cx, name: &str, u: UnaryOp, x: Port, out: Desc) -> Result<Port, Fail> {
    let at = |s: &str| format!("{name}/{s}");
    match u {
        UnaryOp::HardSwish => {
            let h = hard_sigmoid(cx, &at("gate"), 1.0 / 6.0, 0.5, x.clone(), out.clone())?;
            two(cx, name, "Mul", x, h, out)
        }
        UnaryOp::Softplus => {
            let pos = with_scalar(cx, &at("positive"), "Maximum", x.clone(), 0.0, &out)?;
            let abs = cx.op1(&at("abs"), "Abs", &[("x", Some(x))], out.clone(), vec![])?;
            let neg = cx.op1(&at("neg"), "Neg", &[("x", Some(abs))], out.clone(), vec![])?;
            let e = cx.op1(&at("exp"), "Exp", &[("x", Some(neg))], out.clone(), exp_log_attrs())?;
            let e1 = with_scalar(cx, &at("plus_one"), "Add", e, 1.0, &out)?;
            let l = cx.op1(&at("log"), "Log", &[("x", Some(e1))], out.clone(), exp_log_attrs())?;
            two(cx, name, "Add", pos, l, out)
        }
        UnaryOp::Softsign => {
            let abs = cx.op1(&at("abs"), "Abs", &[("x", Some(x.clone()))], out.clone(), vec![])?;
            let den = with_scalar(cx, &at("plus_one"), "Add", abs, 1.0, &out)?;
            two(cx, name, "RealDiv", x, den, out)
        }
        other => unsupported(format!("{} has no CANN built-in mapped yet", other.name())),
    }
}
