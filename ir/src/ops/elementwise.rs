//! Elementwise ops: unary functions, broadcast binary functions, Where, Cast, Mean.
//!
//! Float math runs per element in f64 and rounds once to the op's dtype (f16/bf16 included);
//! integer math is exact (i64 with wrapping into the op's dtype); comparisons yield bool.

use super::{invalid, req, InType, OpError, TensorType};
use crate::attr_enum;
use crate::dtype::DType;
use crate::shape::{broadcast, broadcast_sym, strides};
use crate::tensor::{Data, Elem, Tensor};
use half::{bf16, f16};

attr_enum!(
    /// Elementwise functions of one input.
    UnaryOp {
        Abs = "Abs", Neg = "Neg", Exp = "Exp", Log = "Log", Sqrt = "Sqrt", Reciprocal = "Reciprocal",
        Floor = "Floor", Ceil = "Ceil", Round = "Round", Sign = "Sign", Sin = "Sin", Cos = "Cos",
        Tan = "Tan", Asin = "Asin", Acos = "Acos", Atan = "Atan", Sinh = "Sinh", Cosh = "Cosh",
        Asinh = "Asinh", Acosh = "Acosh", Atanh = "Atanh", Erf = "Erf", Sigmoid = "Sigmoid",
        Tanh = "Tanh", Relu = "Relu", Softplus = "Softplus", Softsign = "Softsign", Mish = "Mish",
        HardSwish = "HardSwish", Not = "Not", BitwiseNot = "BitwiseNot", IsNaN = "IsNaN",
    }
);

attr_enum!(
    /// Elementwise functions of two broadcast inputs.
    BinaryOp {
        Add = "Add", Sub = "Sub", Mul = "Mul", Div = "Div", Pow = "Pow", Max = "Max", Min = "Min",
        /// Integer modulo with the divisor's sign (Python `%`).
        Mod = "Mod",
        /// Remainder with the dividend's sign (C `fmod`).
        FMod = "FMod",
        PRelu = "PRelu",
        Equal = "Equal", Less = "Less", LessOrEqual = "LessOrEqual", Greater = "Greater",
        GreaterOrEqual = "GreaterOrEqual", And = "And", Or = "Or", Xor = "Xor",
        BitwiseAnd = "BitwiseAnd", BitwiseOr = "BitwiseOr", BitwiseXor = "BitwiseXor",
        BitShiftLeft = "BitShiftLeft", BitShiftRight = "BitShiftRight",
    }
);

impl BinaryOp {
    fn is_comparison(self) -> bool {
        matches!(self, BinaryOp::Equal | BinaryOp::Less | BinaryOp::LessOrEqual | BinaryOp::Greater | BinaryOp::GreaterOrEqual)
    }
}

pub(crate) fn infer_unary(op: UnaryOp, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let dtype = match op {
        UnaryOp::IsNaN => DType::Bool,
        _ => x.dtype,
    };
    Ok(vec![TensorType::new(dtype, x.shape.clone())])
}

pub(crate) fn infer_binary(op: BinaryOp, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (a, b) = (req(ins, 0)?, req(ins, 1)?);
    if a.dtype != b.dtype && op != BinaryOp::Pow {
        return invalid(format!("{} needs equal dtypes, got {} and {}", op.name(), a.dtype, b.dtype));
    }
    let shape = if op == BinaryOp::PRelu {
        // Slope broadcasts to x (unidirectional).
        a.shape.clone()
    } else {
        broadcast_sym(a.shape, b.shape).ok_or_else(|| OpError::Invalid(format!("cannot broadcast {} with {}", a.shape, b.shape)))?
    };
    let dtype = if op.is_comparison() { DType::Bool } else { a.dtype };
    Ok(vec![TensorType::new(dtype, shape)])
}

pub(crate) fn infer_variadic(ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let first = req(ins, 0)?;
    let mut shape = first.shape.clone();
    for x in ins.iter().flatten().skip(1) {
        shape = broadcast_sym(&shape, x.shape).ok_or_else(|| OpError::Invalid(format!("cannot broadcast {} with {}", shape, x.shape)))?;
    }
    Ok(vec![TensorType::new(first.dtype, shape)])
}

pub(crate) fn infer_where(ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (c, a, b) = (req(ins, 0)?, req(ins, 1)?, req(ins, 2)?);
    if c.dtype != DType::Bool {
        return invalid("Where condition must be bool");
    }
    let s = broadcast_sym(c.shape, a.shape).and_then(|s| broadcast_sym(&s, b.shape));
    let s = s.ok_or_else(|| OpError::Invalid(format!("cannot broadcast {}, {}, {}", c.shape, a.shape, b.shape)))?;
    Ok(vec![TensorType::new(a.dtype, s)])
}

pub(crate) fn infer_cast(to: DType, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    Ok(vec![TensorType::new(to, req(ins, 0)?.shape.clone())])
}

/// Source index in an input of `in_dims` for every element of the broadcast output `out_dims`.
pub(crate) fn broadcast_index(out_dims: &[usize], in_dims: &[usize]) -> Vec<usize> {
    let n: usize = out_dims.iter().product();
    let r = out_dims.len();
    let pad = r - in_dims.len();
    let in_strides = strides(in_dims);
    // Stride per output axis in the input (0 where broadcast).
    let s: Vec<usize> = (0..r).map(|i| if i < pad || in_dims[i - pad] == 1 { 0 } else { in_strides[i - pad] }).collect();
    let mut idx = Vec::with_capacity(n);
    let mut counter = vec![0usize; r];
    let mut off = 0usize;
    for _ in 0..n {
        idx.push(off);
        for ax in (0..r).rev() {
            counter[ax] += 1;
            off += s[ax];
            if counter[ax] < out_dims[ax] {
                break;
            }
            off -= s[ax] * counter[ax];
            counter[ax] = 0;
        }
    }
    idx
}

/// Broadcasts `t` to `dims` (materialized); an error unless `t` broadcasts to exactly `dims`.
pub(crate) fn broadcast_to(t: &Tensor, dims: &[usize]) -> Result<Tensor, OpError> {
    if t.dims() == dims {
        return Ok(t.clone());
    }
    if broadcast(t.dims(), dims).as_deref() != Some(dims) {
        return invalid(format!("shape {:?} does not broadcast to {dims:?}", t.dims()));
    }
    let idx = broadcast_index(dims, t.dims());
    Tensor::new(dims.to_vec(), t.data().take(&idx)).map_err(|e| OpError::Invalid(e.to_string()))
}

/// Applies `f` to every float element (through f64), keeping the dtype.
pub(crate) fn map_float(t: &Tensor, f: impl Fn(f64) -> f64 + Sync) -> Result<Tensor, OpError> {
    fn go<T: Elem>(v: &[T], f: &(impl Fn(f64) -> f64 + Sync)) -> Vec<T> {
        v.iter().map(|&x| T::from_f64(f(x.to_f64()))).collect()
    }
    let data = match t.data() {
        Data::F32(v) => Data::F32(go(v, &f)),
        Data::F64(v) => Data::F64(go(v, &f)),
        Data::F16(v) => Data::F16(go::<f16>(v, &f)),
        Data::BF16(v) => Data::BF16(go::<bf16>(v, &f)),
        other if other.dtype().is_float() => Data::from_f64(other.dtype(), &other.to_f64().into_iter().map(f).collect::<Vec<_>>()),
        other => return Err(OpError::DType { index: 0, dtype: other.dtype() }),
    };
    Ok(tensor(t.dims().to_vec(), data))
}

pub(crate) fn tensor(dims: Vec<usize>, data: Data) -> Tensor {
    match Tensor::new(dims, data) {
        Ok(t) => t,
        // Every caller builds `data` with exactly product(dims) elements.
        Err(e) => unreachable!("internal: {e}"),
    }
}

/// erf with ~1e-16 relative accuracy: Taylor series near 0, continued fraction for erfc beyond.
pub fn erf(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let ax = x.abs();
    if ax < 2.5 {
        // erf(x) = 2/sqrt(pi) * sum_{n} (-1)^n x^(2n+1) / (n! (2n+1))
        let mut sum = 0.0;
        let mut term = ax;
        let x2 = ax * ax;
        let mut n = 0.0;
        loop {
            let t = term / (2.0 * n + 1.0);
            sum += t;
            if t.abs() < 1e-17 * sum.abs() {
                break;
            }
            n += 1.0;
            term *= -x2 / n;
            if n > 200.0 {
                break;
            }
        }
        let r = sum * std::f64::consts::FRAC_2_SQRT_PI;
        return if x < 0.0 { -r } else { r };
    }
    if ax > 6.0 {
        return x.signum();
    }
    // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) evaluated backwards.
    let mut f = 0.0;
    for k in (1..=60).rev() {
        f = (k as f64 / 2.0) / (ax + f);
    }
    let erfc = (-ax * ax).exp() / std::f64::consts::PI.sqrt() / (ax + f);
    let r = 1.0 - erfc;
    if x < 0.0 {
        -r
    } else {
        r
    }
}

fn round_half_even(x: f64) -> f64 {
    x.round_ties_even()
}

pub(crate) fn eval_unary(op: UnaryOp, x: &Tensor) -> Result<Tensor, OpError> {
    use UnaryOp::*;
    let dt = x.dtype();
    match op {
        Not => match x.data() {
            Data::Bool(v) => Ok(tensor(x.dims().to_vec(), Data::Bool(v.iter().map(|b| !b).collect()))),
            _ => Err(OpError::DType { index: 0, dtype: dt }),
        },
        BitwiseNot => {
            if !dt.is_int() {
                return Err(OpError::DType { index: 0, dtype: dt });
            }
            let v: Vec<i64> = x.to_i64().iter().map(|v| !v).collect();
            Ok(tensor(x.dims().to_vec(), Data::from_i64(dt, &v)))
        }
        IsNaN => {
            let v: Vec<bool> = x.to_f64().iter().map(|v| v.is_nan()).collect();
            Ok(tensor(x.dims().to_vec(), Data::Bool(v)))
        }
        Abs | Neg | Sign | Relu if dt.is_int() => {
            let f = |v: i64| match op {
                Abs => v.wrapping_abs(),
                Neg => v.wrapping_neg(),
                Sign => v.signum(),
                _ => v.max(0),
            };
            let v: Vec<i64> = x.to_i64().into_iter().map(f).collect();
            Ok(tensor(x.dims().to_vec(), Data::from_i64(dt, &v)))
        }
        Floor | Ceil | Round if dt.is_int() => Ok(x.clone()),
        _ => {
            if !dt.is_float() {
                return Err(OpError::DType { index: 0, dtype: dt });
            }
            let f: fn(f64) -> f64 = match op {
                Abs => f64::abs,
                Neg => |v| -v,
                Exp => f64::exp,
                Log => f64::ln,
                Sqrt => f64::sqrt,
                Reciprocal => |v| 1.0 / v,
                Floor => f64::floor,
                Ceil => f64::ceil,
                Round => round_half_even,
                Sign => |v| {
                    if v > 0.0 {
                        1.0
                    } else if v < 0.0 {
                        -1.0
                    } else {
                        v
                    }
                },
                Sin => f64::sin,
                Cos => f64::cos,
                Tan => f64::tan,
                Asin => f64::asin,
                Acos => f64::acos,
                Atan => f64::atan,
                Sinh => f64::sinh,
                Cosh => f64::cosh,
                Asinh => f64::asinh,
                Acosh => f64::acosh,
                Atanh => f64::atanh,
                Erf => erf,
                Sigmoid => |v| if v >= 0.0 { 1.0 / (1.0 + (-v).exp()) } else { v.exp() / (1.0 + v.exp()) },
                Tanh => f64::tanh,
                Relu => |v| if v > 0.0 { v } else { 0.0 },
                Softplus => |v| if v > 30.0 { v } else { v.exp().ln_1p() },
                Softsign => |v| v / (1.0 + v.abs()),
                Mish => |v| v * (if v > 30.0 { v } else { v.exp().ln_1p() }).tanh(),
                HardSwish => |v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0),
                Not | BitwiseNot | IsNaN => unreachable!("handled above"),
            };
            map_float(x, f)
        }
    }
}

/// Broadcasts `a` and `b`, returning the output dims and per-element source indices
/// (`None` when the input already has the output's shape).
pub(crate) fn broadcast_pair(a: &[usize], b: &[usize]) -> Result<(Vec<usize>, Option<Vec<usize>>, Option<Vec<usize>>), OpError> {
    let out = broadcast(a, b).ok_or_else(|| OpError::Invalid(format!("cannot broadcast {a:?} with {b:?}")))?;
    let ia = (a != out.as_slice()).then(|| broadcast_index(&out, a));
    let ib = (b != out.as_slice()).then(|| broadcast_index(&out, b));
    Ok((out, ia, ib))
}

fn zip_map<T: Copy, U>(a: &[T], b: &[T], ia: &Option<Vec<usize>>, ib: &Option<Vec<usize>>, n: usize, f: impl Fn(T, T) -> U) -> Vec<U> {
    match (ia, ib) {
        (None, None) => a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect(),
        (None, Some(ib)) => (0..n).map(|i| f(a[i], b[ib[i]])).collect(),
        (Some(ia), None) => (0..n).map(|i| f(a[ia[i]], b[i])).collect(),
        (Some(ia), Some(ib)) => (0..n).map(|i| f(a[ia[i]], b[ib[i]])).collect(),
    }
}

fn float_binary(op: BinaryOp) -> Option<fn(f64, f64) -> f64> {
    use BinaryOp::*;
    Some(match op {
        Add => |a, b| a + b,
        Sub => |a, b| a - b,
        Mul => |a, b| a * b,
        Div => |a, b| a / b,
        Pow => f64::powf,
        Max => |a: f64, b: f64| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) },
        Min => |a: f64, b: f64| if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) },
        FMod => |a: f64, b: f64| a % b,
        Mod => |a: f64, b: f64| {
            let r = a % b;
            if r != 0.0 && (r < 0.0) != (b < 0.0) {
                r + b
            } else {
                r
            }
        },
        PRelu => |x, s| if x < 0.0 { x * s } else { x },
        _ => return None,
    })
}

fn int_binary(op: BinaryOp, dt: DType) -> Option<fn(i64, i64) -> i64> {
    use BinaryOp::*;
    let unsigned = !dt.is_signed_int();
    Some(match op {
        Add => i64::wrapping_add,
        Sub => i64::wrapping_sub,
        Mul => i64::wrapping_mul,
        Div if unsigned => |a, b| if b == 0 { 0 } else { ((a as u64) / (b as u64)) as i64 },
        Div => |a, b| if b == 0 { 0 } else { a.wrapping_div(b) },
        Max => |a, b| a.max(b),
        Min => |a, b| a.min(b),
        Mod => |a, b| if b == 0 { 0 } else { a.rem_euclid(b) + if b < 0 && a.rem_euclid(b) != 0 { b } else { 0 } },
        FMod => |a, b| if b == 0 { 0 } else { a.wrapping_rem(b) },
        PRelu => |x, s| if x < 0 { x.wrapping_mul(s) } else { x },
        BitwiseAnd => |a, b| a & b,
        BitwiseOr => |a, b| a | b,
        BitwiseXor => |a, b| a ^ b,
        BitShiftLeft => |a, b| if (0..64).contains(&b) { ((a as u64) << b) as i64 } else { 0 },
        BitShiftRight => |a, b| if (0..64).contains(&b) { ((a as u64) >> b) as i64 } else { 0 },
        _ => return None,
    })
}

pub(crate) fn eval_binary(op: BinaryOp, a: &Tensor, b: &Tensor) -> Result<Tensor, OpError> {
    use BinaryOp::*;
    let dt = a.dtype();
    if dt != b.dtype() && op != Pow {
        return invalid(format!("{} needs equal dtypes, got {} and {}", op.name(), dt, b.dtype()));
    }
    let (out, ia, ib) = if op == PRelu {
        let ib = (b.dims() != a.dims()).then(|| broadcast_index(a.dims(), b.dims()));
        if broadcast(a.dims(), b.dims()).as_deref() != Some(a.dims()) {
            return invalid(format!("PRelu slope {:?} does not broadcast to {:?}", b.dims(), a.dims()));
        }
        (a.dims().to_vec(), None, ib)
    } else {
        broadcast_pair(a.dims(), b.dims())?
    };
    let n: usize = out.iter().product();
    if op.is_comparison() {
        let cmp: fn(std::cmp::Ordering) -> bool = match op {
            Equal => |o| o.is_eq(),
            Less => |o| o.is_lt(),
            LessOrEqual => |o| o.is_le(),
            Greater => |o| o.is_gt(),
            _ => |o| o.is_ge(),
        };
        let v: Vec<bool> = if dt.is_float() {
            zip_map(&a.to_f64(), &b.to_f64(), &ia, &ib, n, |x, y| x.partial_cmp(&y).is_some_and(cmp))
        } else if let (Data::U64(x), Data::U64(y)) = (a.data(), b.data()) {
            zip_map(x, y, &ia, &ib, n, |x, y| cmp(x.cmp(&y)))
        } else {
            zip_map(&a.to_i64(), &b.to_i64(), &ia, &ib, n, |x, y| cmp(x.cmp(&y)))
        };
        return Ok(tensor(out, Data::Bool(v)));
    }
    if matches!(op, And | Or | Xor) {
        let (Data::Bool(x), Data::Bool(y)) = (a.data(), b.data()) else {
            return Err(OpError::DType { index: 0, dtype: dt });
        };
        let f: fn(bool, bool) -> bool = match op {
            And => |x, y| x && y,
            Or => |x, y| x || y,
            _ => |x, y| x ^ y,
        };
        return Ok(tensor(out, Data::Bool(zip_map(x, y, &ia, &ib, n, f))));
    }
    if dt.is_float() {
        let f = float_binary(op).ok_or(OpError::DType { index: 0, dtype: dt })?;
        // Fast path for the common f32 arithmetic on hot tensors.
        if let (Data::F32(x), Data::F32(y)) = (a.data(), b.data()) {
            let v = match op {
                Add => zip_map(x, y, &ia, &ib, n, |p, q| p + q),
                Sub => zip_map(x, y, &ia, &ib, n, |p, q| p - q),
                Mul => zip_map(x, y, &ia, &ib, n, |p, q| p * q),
                Div => zip_map(x, y, &ia, &ib, n, |p, q| p / q),
                _ => zip_map(x, y, &ia, &ib, n, |p, q| f(p as f64, q as f64) as f32),
            };
            return Ok(tensor(out, Data::F32(v)));
        }
        let v = zip_map(&a.to_f64(), &b.to_f64(), &ia, &ib, n, f);
        return Ok(tensor(out, Data::from_f64(dt, &v)));
    }
    if dt == DType::Bool {
        return Err(OpError::DType { index: 0, dtype: dt });
    }
    if op == Pow {
        let (x, y) = (a.to_f64(), b.to_f64());
        let v = zip_map(&x, &y, &ia, &ib, n, f64::powf);
        let v: Vec<i64> = v.into_iter().map(|f| f as i64).collect();
        return Ok(tensor(out, Data::from_i64(dt, &v)));
    }
    let f = int_binary(op, dt).ok_or(OpError::DType { index: 0, dtype: dt })?;
    let v = zip_map(&a.to_i64(), &b.to_i64(), &ia, &ib, n, f);
    Ok(tensor(out, Data::from_i64(dt, &v)))
}

/// ONNX Cast: `saturate` clamps to a float8 target's finite range before rounding;
/// `round_mode` says how a value becomes a float8 E8M0 power of two.
pub(crate) fn cast(x: &Tensor, to: DType, saturate: bool, round_mode: crate::minifloat::E8M0Rounding) -> Tensor {
    if to == DType::F8E8M0 && x.dtype() != to {
        let v = x.to_f64().into_iter().map(|v| crate::minifloat::F8E8M0::encode(v, saturate, round_mode)).collect();
        return tensor(x.dims().to_vec(), Data::F8E8M0(v));
    }
    match to.minifloat() {
        Some(f) if saturate && matches!(to, DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ) => {
            let m = f.max();
            let v: Vec<f64> = x.to_f64().into_iter().map(|v| if v.is_nan() { v } else { v.clamp(-m, m) }).collect();
            tensor(x.dims().to_vec(), Data::from_f64(to, &v))
        }
        _ => x.cast(to),
    }
}

pub(crate) fn eval_mean(ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let parts: Vec<&Tensor> = ins.iter().flatten().copied().collect();
    let first = parts.first().ok_or(OpError::MissingInput { index: 0 })?;
    let mut acc = (*first).clone();
    for p in &parts[1..] {
        acc = eval_binary(BinaryOp::Add, &acc, p)?;
    }
    let k = parts.len() as f64;
    map_float(&acc, |v| v / k)
}

pub(crate) fn eval_where(c: &Tensor, a: &Tensor, b: &Tensor) -> Result<Tensor, OpError> {
    let Data::Bool(cv) = c.data() else {
        return Err(OpError::DType { index: 0, dtype: c.dtype() });
    };
    if a.dtype() != b.dtype() {
        return invalid("Where branches need equal dtypes");
    }
    let out = broadcast(c.dims(), a.dims())
        .and_then(|s| broadcast(&s, b.dims()))
        .ok_or_else(|| OpError::Invalid(format!("cannot broadcast {:?}, {:?}, {:?}", c.dims(), a.dims(), b.dims())))?;
    let (ic, ia, ib) = (broadcast_index(&out, c.dims()), broadcast_index(&out, a.dims()), broadcast_index(&out, b.dims()));
    let n = ic.len();
    // Index into the concatenation [a, b].
    let idx: Vec<usize> = (0..n).map(|i| if cv[ic[i]] { ia[i] } else { a.numel() + ib[i] }).collect();
    let both = Data::concat(&[a.data(), b.data()]).ok_or(OpError::DType { index: 2, dtype: b.dtype() })?;
    Ok(tensor(out, both.take(&idx)))
}
