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
        // No built-in: one-node AscendC kernels (see `table::single`).
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
