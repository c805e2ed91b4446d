//! Elementwise ops on one element, as LLVM instructions in the compute type of their dtype
//! (f32 for f16/bf16/f32). Transcendentals use PTX's `ex2.approx`/`lg2.approx` (about 2 ulp)
//! with range handling written here; there is no libm on the device.

use super::llvm::{Em, R};
use super::CodegenError;
use inkwell::values::{BasicValueEnum, FloatValue, IntValue};
use inkwell::{FloatPredicate as F, IntPredicate as I};
use kiln_ir::ops::GeluApprox;
use kiln_ir::{BinaryOp, DType, Elementwise as E, Op, UnaryOp};

/// One operand: its dtype, its value in compute form, and its value when it is a constant.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'c> {
    pub dtype: DType,
    pub v: BasicValueEnum<'c>,
    pub konst: Option<f64>,
}

const LOG2E: f64 = std::f64::consts::LOG2_E;
const LN2: f64 = std::f64::consts::LN_2;

impl<'c> Em<'c> {
    fn is_f64(&self, v: FloatValue<'c>) -> bool {
        v.get_type() != self.f32t()
    }
    fn fc(&self, like: FloatValue<'c>, x: f64) -> FloatValue<'c> {
        like.get_type().const_float(x)
    }

    /// 2^x.
    pub fn exp2(&self, x: FloatValue<'c>) -> R<FloatValue<'c>> {
        if self.is_f64(x) {
            return self.fintr("exp2", &[x]);
        }
        self.asm_f32("ex2.approx.f32 $0, $1;", &[x])
    }
    /// e^x.
    pub fn exp(&self, x: FloatValue<'c>) -> R<FloatValue<'c>> {
        if self.is_f64(x) {
            return self.fintr("exp", &[x]);
        }
        let y = self.fmul(x, self.f32c(LOG2E))?;
        self.exp2(y)
    }
    /// ln x.
    pub fn log(&self, x: FloatValue<'c>) -> R<FloatValue<'c>> {
        if self.is_f64(x) {
            return self.fintr("log", &[x]);
        }
        let l = self.asm_f32("lg2.approx.f32 $0, $1;", &[x])?;
        self.fmul(l, self.f32c(LN2))
    }
    /// tanh x: an odd Taylor polynomial near zero, 1 - 2/(e^{2|x|}+1) elsewhere.
    pub fn tanh(&self, x: FloatValue<'c>) -> R<FloatValue<'c>> {
        let ax = self.fintr("fabs", &[x])?;
        let two = self.fc(x, 2.0);
        let e = self.exp(self.fmul(ax, two)?)?;
        let one = self.fc(x, 1.0);
        let big = self.fsub(one, self.fdiv(two, self.fadd(e, one)?)?)?;
        let big = self.fintr("copysign", &[big, x])?;
        // x - x^3/3 + 2x^5/15 - 17x^7/315 for |x| < 0.1 (error below 1e-10).
        let x2 = self.fmul(x, x)?;
        let mut p = self.fc(x, -17.0 / 315.0);
        for c in [2.0 / 15.0, -1.0 / 3.0, 1.0] {
            p = self.fadd(self.fmul(p, x2)?, self.fc(x, c))?;
        }
        let small = self.fmul(p, x)?;
        let c = self.fcmp(F::OLT, ax, self.fc(x, 0.1))?;
        Ok(self.select(c, small, big)?.into_float_value())
    }
    /// erf x by Abramowitz & Stegun 7.1.26 (absolute error below 1.5e-7).
    pub fn erf(&self, x: FloatValue<'c>) -> R<FloatValue<'c>> {
        let ax = self.fintr("fabs", &[x])?;
        let one = self.fc(x, 1.0);
        let t = self.fdiv(one, self.fadd(one, self.fmul(ax, self.fc(x, 0.327_591_1))?)?)?;
        let mut p = self.fc(x, 1.061_405_429);
        for c in [-1.453_152_027, 1.421_413_741, -0.284_496_736, 0.254_829_592] {
            p = self.fadd(self.fmul(p, t)?, self.fc(x, c))?;
        }
        p = self.fmul(p, t)?;
        let neg_x2 = self.b.build_float_neg(self.fmul(ax, ax)?, "")?;
        let y = self.fsub(one, self.fmul(p, self.exp(neg_x2)?)?)?;
        self.fintr("copysign", &[y, x])
    }
    pub fn sigmoid(&self, x: FloatValue<'c>) -> R<FloatValue<'c>> {
        let one = self.fc(x, 1.0);
        let e = self.exp(self.b.build_float_neg(x, "")?)?;
        self.fdiv(one, self.fadd(one, e)?)
    }
    /// sin/cos with reduction to [-pi, pi] before PTX's approximate instructions.
    fn trig(&self, x: FloatValue<'c>, cos: bool) -> R<FloatValue<'c>> {
        if self.is_f64(x) {
            return self.fintr(if cos { "cos" } else { "sin" }, &[x]);
        }
        let tau = std::f64::consts::TAU;
        let k = self.fintr("rint", &[self.fmul(x, self.f32c(1.0 / tau))?])?;
        let r = self.fintr("fma", &[k, self.f32c(-tau), x])?;
        self.asm_f32(if cos { "cos.approx.f32 $0, $1;" } else { "sin.approx.f32 $0, $1;" }, &[r])
    }
    fn softplus(&self, x: FloatValue<'c>) -> R<FloatValue<'c>> {
        // log(1 + e^x), = x above 30 like the interpreter.
        let one = self.fc(x, 1.0);
        let sp = self.log(self.fadd(one, self.exp(x)?)?)?;
        let c = self.fcmp(F::OGT, x, self.fc(x, 30.0))?;
        Ok(self.select(c, x, sp)?.into_float_value())
    }

    fn fval(&self, o: &Operand<'c>) -> R<FloatValue<'c>> {
        match o.v {
            BasicValueEnum::FloatValue(f) => Ok(f),
            _ => Err(CodegenError::Internal(format!("expected a float operand, got {}", o.dtype))),
        }
    }
    fn ival(&self, o: &Operand<'c>) -> R<IntValue<'c>> {
        match o.v {
            BasicValueEnum::IntValue(i) => Ok(i),
            _ => Err(CodegenError::Internal(format!("expected an integer operand, got {}", o.dtype))),
        }
    }

    /// Converts a compute value between dtypes (Cast semantics: float to int truncates and
    /// saturates in PTX's cvt.rzi, int to bool is `!= 0`).
    pub fn convert(&self, v: BasicValueEnum<'c>, from: DType, to: DType) -> R<BasicValueEnum<'c>> {
        let tt = self.compute_type(to)?;
        let from_float = from.is_float();
        Ok(match (from_float, to.is_float(), to == DType::Bool, from == DType::Bool) {
            (true, true, _, _) => {
                let v = v.into_float_value();
                let t = tt.into_float_type();
                if v.get_type() == t {
                    v.into()
                } else {
                    self.b.build_float_cast(v, t, "")?.into()
                }
            }
            (true, false, true, _) => self.fcmp(F::UNE, v.into_float_value(), self.fc(v.into_float_value(), 0.0))?.into(),
            // To a sub-byte integer: truncate toward zero to 64 bits, keep the low bits.
            (true, false, false, _) if to.is_packed_int() => {
                let i = self.b.build_float_to_signed_int(v.into_float_value(), self.i64t(), "")?;
                self.wrap_packed(to, i)?.into()
            }
            (true, false, false, _) => {
                let t = tt.into_int_type();
                if to.is_signed_int() {
                    self.b.build_float_to_signed_int(v.into_float_value(), t, "")?.into()
                } else {
                    self.b.build_float_to_unsigned_int(v.into_float_value(), t, "")?.into()
                }
            }
            (false, true, _, is_bool) => {
                let t = tt.into_float_type();
                if from.is_signed_int() && !is_bool {
                    self.b.build_signed_int_to_float(v.into_int_value(), t, "")?.into()
                } else {
                    self.b.build_unsigned_int_to_float(v.into_int_value(), t, "")?.into()
                }
            }
            (false, false, true, _) => {
                let i = v.into_int_value();
                self.icmp(I::NE, i, i.get_type().const_zero())?.into()
            }
            (false, false, false, _) => {
                let t = tt.into_int_type();
                let signed = from.is_signed_int() && from != DType::Bool;
                let i = self.b.build_int_cast_sign_flag(v.into_int_value(), t, signed, "")?;
                if to.is_packed_int() {
                    self.wrap_packed(to, i)?.into()
                } else {
                    i.into()
                }
            }
        })
    }

    /// Emits elementwise `op` on `ins`, giving a value of dtype `out`.
    pub fn elementwise(&self, op: &Op, ins: &[Operand<'c>], out: DType) -> R<BasicValueEnum<'c>> {
        let unsupported =
            || Err(CodegenError::Unsupported(format!("{} on {} in a CUDA kernel", describe(op), ins.first().map_or(out, |o| o.dtype))));
        let x0 = || ins.first().ok_or_else(|| CodegenError::Internal(format!("{} without inputs", op.kind_name())));
        // CastLike is Cast to a dtype read from a second input: not a fused-body op, but the
        // same kernel.
        let e = match op {
            Op::CastLike { saturate, round_mode } => E::Cast { to: &out, saturate, round_mode },
            op => match op.as_elementwise() {
                Some(e) => e,
                None => return unsupported(),
            },
        };
        match e {
            E::Identity {} => Ok(x0()?.v),
            E::Cast { saturate, .. } => {
                let v = self.convert(x0()?.v, x0()?.dtype, out)?;
                if *saturate && out.minifloat().is_some() {
                    return Ok(self.saturate_minifloat(out, v.into_float_value())?.into());
                }
                Ok(v)
            }
            E::Unary { op: u } => {
                self.unary(*u, x0()?, out).or_else(|e| if matches!(e, CodegenError::Unsupported(_)) { unsupported() } else { Err(e) })
            }
            E::Binary { op: bop } => {
                let (a, b) = (x0()?, ins.get(1).ok_or_else(|| CodegenError::Internal("binary op with one input".into()))?);
                self.binary(*bop, a, b).or_else(|e| if matches!(e, CodegenError::Unsupported(_)) { unsupported() } else { Err(e) })
            }
            E::Where {} => {
                let (c, a, b) = (self.ival(&ins[0])?, ins[1].v, ins[2].v);
                self.select(c, a, b)
            }
            E::Mean {} => {
                let mut acc = self.fval(x0()?)?;
                for o in &ins[1..] {
                    acc = self.fadd(acc, self.fval(o)?)?;
                }
                Ok(self.fdiv(acc, self.fc(acc, ins.len() as f64))?.into())
            }
            E::Clip {} => {
                let x = x0()?;
                if x.dtype.is_float() {
                    let mut v = self.fval(x)?;
                    if let Some(lo) = ins.get(1) {
                        v = self.fmax(v, self.fval(lo)?)?;
                    }
                    if let Some(hi) = ins.get(2) {
                        v = self.fmin(v, self.fval(hi)?)?;
                    }
                    Ok(v.into())
                } else {
                    let signed = x.dtype.is_signed_int();
                    let mut v = self.ival(x)?;
                    if let Some(lo) = ins.get(1) {
                        let l = self.ival(lo)?;
                        let c = self.icmp(if signed { I::SLT } else { I::ULT }, v, l)?;
                        v = self.select(c, l, v)?.into_int_value();
                    }
                    if let Some(hi) = ins.get(2) {
                        let h = self.ival(hi)?;
                        let c = self.icmp(if signed { I::SGT } else { I::UGT }, v, h)?;
                        v = self.select(c, h, v)?.into_int_value();
                    }
                    Ok(v.into())
                }
            }
            _ if !x0()?.dtype.is_float() => unsupported(),
            E::LeakyRelu { alpha } => {
                let x = self.fval(x0()?)?;
                let c = self.fcmp(F::OLT, x, self.fc(x, 0.0))?;
                Ok(self.select(c, self.fmul(x, self.fc(x, *alpha as f64))?, x)?)
            }
            E::Elu { alpha } | E::Celu { alpha } => {
                let x = self.fval(x0()?)?;
                let a = *alpha as f64;
                let arg = if matches!(e, E::Celu { .. }) { self.fmul(x, self.fc(x, 1.0 / a))? } else { x };
                let em1 = self.fsub(self.exp(arg)?, self.fc(x, 1.0))?;
                let neg = self.fmul(em1, self.fc(x, a))?;
                let c = self.fcmp(F::OLT, x, self.fc(x, 0.0))?;
                Ok(self.select(c, neg, x)?)
            }
            E::Selu { alpha, gamma } => {
                let x = self.fval(x0()?)?;
                let em1 = self.fsub(self.exp(x)?, self.fc(x, 1.0))?;
                let neg = self.fmul(em1, self.fc(x, *alpha as f64))?;
                let c = self.fcmp(F::OLE, x, self.fc(x, 0.0))?;
                let v = self.select(c, neg, x)?.into_float_value();
                Ok(self.fmul(v, self.fc(x, *gamma as f64))?.into())
            }
            E::HardSigmoid { alpha, beta } => {
                let x = self.fval(x0()?)?;
                let v = self.fintr("fma", &[x, self.fc(x, *alpha as f64), self.fc(x, *beta as f64)])?;
                Ok(self.fmin(self.fmax(v, self.fc(x, 0.0))?, self.fc(x, 1.0))?.into())
            }
            E::ThresholdedRelu { alpha } => {
                let x = self.fval(x0()?)?;
                let c = self.fcmp(F::OGT, x, self.fc(x, *alpha as f64))?;
                Ok(self.select(c, x, self.fc(x, 0.0))?)
            }
            E::Gelu { approximate } => {
                let x = self.fval(x0()?)?;
                let half_x = self.fmul(x, self.fc(x, 0.5))?;
                let t = match approximate {
                    GeluApprox::None => self.erf(self.fmul(x, self.fc(x, std::f64::consts::FRAC_1_SQRT_2))?)?,
                    GeluApprox::Tanh => {
                        let x3 = self.fmul(self.fmul(x, x)?, x)?;
                        let inner = self.fintr("fma", &[x3, self.fc(x, 0.044715), x])?;
                        self.tanh(self.fmul(inner, self.fc(x, (2.0 / std::f64::consts::PI).sqrt()))?)?
                    }
                };
                Ok(self.fmul(half_x, self.fadd(t, self.fc(x, 1.0))?)?.into())
            }
            E::Shrink { bias, lambd } => {
                let x = self.fval(x0()?)?;
                let (b, l) = (*bias as f64, *lambd as f64);
                let lo = self.fcmp(F::OLT, x, self.fc(x, -l))?;
                let hi = self.fcmp(F::OGT, x, self.fc(x, l))?;
                let v = self.select(hi, self.fsub(x, self.fc(x, b))?, self.fc(x, 0.0))?.into_float_value();
                Ok(self.select(lo, self.fadd(x, self.fc(x, b))?, v)?)
            }
            E::Swish { alpha } => {
                let x = self.fval(x0()?)?;
                Ok(self.fmul(x, self.sigmoid(self.fmul(x, self.fc(x, *alpha as f64))?)?)?.into())
            }
            E::IsInf { detect_negative, detect_positive } => {
                let x = self.fval(x0()?)?;
                let pinf = self.fcmp(F::OEQ, x, self.fc(x, f64::INFINITY))?;
                let ninf = self.fcmp(F::OEQ, x, self.fc(x, f64::NEG_INFINITY))?;
                let f = self.i1().const_zero();
                let p = if *detect_positive { pinf } else { f };
                let n = if *detect_negative { ninf } else { f };
                Ok(self.b.build_or(p, n, "")?.into())
            }
        }
    }

    fn unary(&self, u: UnaryOp, x: &Operand<'c>, _out: DType) -> R<BasicValueEnum<'c>> {
        use UnaryOp::*;
        if !x.dtype.is_float() {
            let v = self.ival(x)?;
            let z = v.get_type().const_zero();
            let signed = x.dtype.is_signed_int();
            return Ok(match u {
                Not | BitwiseNot => self.b.build_not(v, "")?.into(),
                Neg => self.b.build_int_neg(v, "")?.into(),
                Abs if signed => {
                    let c = self.icmp(I::SLT, v, z)?;
                    self.select(c, self.b.build_int_neg(v, "")?, v)?
                }
                Abs | Floor | Ceil | Round => v.into(),
                Relu if signed => {
                    let c = self.icmp(I::SLT, v, z)?;
                    self.select(c, z, v)?
                }
                Relu => v.into(),
                Sign => {
                    let one = v.get_type().const_int(1, false);
                    let pos = self.icmp(if signed { I::SGT } else { I::UGT }, v, z)?;
                    let neg = self.icmp(I::SLT, v, z)?;
                    let s = self.select(pos, one, z)?.into_int_value();
                    if signed {
                        self.select(neg, v.get_type().const_all_ones(), s)?
                    } else {
                        s.into()
                    }
                }
                _ => return Err(CodegenError::Unsupported(String::new())),
            });
        }
        let v = self.fval(x)?;
        let one = self.fc(v, 1.0);
        let zero = self.fc(v, 0.0);
        Ok(match u {
            Abs => self.fintr("fabs", &[v])?.into(),
            Neg => self.b.build_float_neg(v, "")?.into(),
            Exp => self.exp(v)?.into(),
            Log => self.log(v)?.into(),
            Sqrt => self.fintr("sqrt", &[v])?.into(),
            Reciprocal => self.fdiv(one, v)?.into(),
            Floor => self.fintr("floor", &[v])?.into(),
            Ceil => self.fintr("ceil", &[v])?.into(),
            Round => self.fintr("rint", &[v])?.into(),
            Sign => {
                let pos = self.fcmp(F::OGT, v, zero)?;
                let neg = self.fcmp(F::OLT, v, zero)?;
                let s = self.select(pos, one, v)?.into_float_value();
                self.select(neg, self.fc(v, -1.0), s)?
            }
            Sin => self.trig(v, false)?.into(),
            Cos => self.trig(v, true)?.into(),
            Tan => self.fdiv(self.trig(v, false)?, self.trig(v, true)?)?.into(),
            Sinh | Cosh => {
                let (e, ie) = (self.exp(v)?, self.exp(self.b.build_float_neg(v, "")?)?);
                let d = if u == Sinh { self.fsub(e, ie)? } else { self.fadd(e, ie)? };
                self.fmul(d, self.fc(v, 0.5))?.into()
            }
            Erf => self.erf(v)?.into(),
            Sigmoid => self.sigmoid(v)?.into(),
            Tanh => self.tanh(v)?.into(),
            Relu => self.fmax(v, zero)?.into(),
            Softplus => self.softplus(v)?.into(),
            Softsign => self.fdiv(v, self.fadd(one, self.fintr("fabs", &[v])?)?)?.into(),
            Mish => self.fmul(v, self.tanh(self.softplus(v)?)?)?.into(),
            HardSwish => {
                let t = self.fintr("fma", &[v, self.fc(v, 1.0 / 6.0), self.fc(v, 0.5)])?;
                self.fmul(v, self.fmin(self.fmax(t, zero)?, one)?)?.into()
            }
            IsNaN => self.fcmp(F::UNO, v, v)?.into(),
            Atan if !self.is_f64(v) => self.atan(v)?.into(),
            Asin if !self.is_f64(v) => {
                // atan(x / sqrt((1 - x)(1 + x))): ±π/2 at ±1, NaN beyond.
                let r = self.fintr("sqrt", &[self.fmul(self.fsub(one, v)?, self.fadd(one, v)?)?])?;
                self.atan(self.fdiv(v, r)?)?.into()
            }
            Acos if !self.is_f64(v) => {
                // 2 atan(sqrt((1 - x) / (1 + x))): accurate near both ends.
                let t = self.fintr("sqrt", &[self.fdiv(self.fsub(one, v)?, self.fadd(one, v)?)?])?;
                self.fmul(self.fc(v, 2.0), self.atan(t)?)?.into()
            }
            Asinh if !self.is_f64(v) => {
                // sign(x) ln(|x| + sqrt(x² + 1)), odd by construction.
                let a = self.fintr("fabs", &[v])?;
                let r = self.log(self.fadd(a, self.fintr("sqrt", &[self.fintr("fma", &[a, a, one])?])?)?)?;
                self.fintr("copysign", &[r, v])?.into()
            }
            Acosh if !self.is_f64(v) => {
                // ln(x + sqrt((x - 1)(x + 1))); NaN below 1.
                let r = self.fintr("sqrt", &[self.fmul(self.fsub(v, one)?, self.fadd(v, one)?)?])?;
                self.log(self.fadd(v, r)?)?.into()
            }
            Atanh if !self.is_f64(v) => {
                // ln((1 + x) / (1 - x)) / 2.
                self.fmul(self.fc(v, 0.5), self.log(self.fdiv(self.fadd(one, v)?, self.fsub(one, v)?)?)?)?.into()
            }
            Asin | Acos | Atan | Asinh | Acosh | Atanh | Not | BitwiseNot => return Err(CodegenError::Unsupported(String::new())),
        })
    }

    /// atan x (f32): reduced to |x| <= tan(π/8) through π/2 - atan(1/x) and
    /// π/4 + atan((x - 1)/(x + 1)), then an odd polynomial (Cephes' atanf coefficients, about
    /// 1 ulp in f32).
    fn atan(&self, x: FloatValue<'c>) -> R<FloatValue<'c>> {
        let a = self.fintr("fabs", &[x])?;
        let big = self.fcmp(F::OGT, a, self.f32c(2.414_213_562_373_095))?;
        let mid = self.fcmp(F::OGT, a, self.f32c(0.414_213_562_373_095))?;
        let r_big = self.fdiv(self.f32c(-1.0), a)?;
        let r_mid = self.fdiv(self.fsub(a, self.f32c(1.0))?, self.fadd(a, self.f32c(1.0))?)?;
        let r = self.select(mid, r_mid, a)?.into_float_value();
        let r = self.select(big, r_big, r)?.into_float_value();
        let y0 = self.select(mid, self.f32c(std::f64::consts::FRAC_PI_4), self.f32c(0.0))?.into_float_value();
        let y0 = self.select(big, self.f32c(std::f64::consts::FRAC_PI_2), y0)?.into_float_value();
        let z = self.fmul(r, r)?;
        let mut p = self.f32c(8.053_744_495_38e-2);
        for c in [-1.387_768_560_32e-1, 1.997_771_064_78e-1, -3.333_294_915_39e-1] {
            p = self.fintr("fma", &[p, z, self.f32c(c)])?;
        }
        let y = self.fadd(y0, self.fintr("fma", &[self.fmul(p, z)?, r, r])?)?;
        self.fintr("copysign", &[y, x])
    }

    fn binary(&self, op: BinaryOp, a: &Operand<'c>, b: &Operand<'c>) -> R<BasicValueEnum<'c>> {
        use BinaryOp::*;
        if a.dtype.is_float() {
            let (x, y) = (
                self.fval(a)?,
                match b.dtype.is_float() {
                    true => self.fval(b)?,
                    false => self.convert(b.v, b.dtype, a.dtype)?.into_float_value(),
                },
            );
            let cmp = |p| -> R<BasicValueEnum<'c>> { Ok(self.fcmp(p, x, y)?.into()) };
            return Ok(match op {
                Add => self.fadd(x, y)?.into(),
                Sub => self.fsub(x, y)?.into(),
                Mul => self.fmul(x, y)?.into(),
                Div => self.fdiv(x, y)?.into(),
                Max | Min => {
                    let nan = self.b.build_or(self.fcmp(F::UNO, x, x)?, self.fcmp(F::UNO, y, y)?, "")?;
                    let m = if op == Max { self.fmax(x, y)? } else { self.fmin(x, y)? };
                    self.select(nan, self.fc(x, f64::NAN), m)?
                }
                Pow => self.pow(x, y, b.konst)?.into(),
                FMod => self.b.build_float_rem(x, y, "")?.into(),
                Mod => {
                    let r = self.b.build_float_rem(x, y, "")?;
                    let z = self.fc(x, 0.0);
                    let fix = self.b.build_and(
                        self.fcmp(F::ONE, r, z)?,
                        self.b.build_xor(self.fcmp(F::OLT, r, z)?, self.fcmp(F::OLT, y, z)?, "")?,
                        "",
                    )?;
                    self.select(fix, self.fadd(r, y)?, r)?
                }
                PRelu => {
                    let c = self.fcmp(F::OLT, x, self.fc(x, 0.0))?;
                    self.select(c, self.fmul(x, y)?, x)?
                }
                Equal => cmp(F::OEQ)?,
                Less => cmp(F::OLT)?,
                LessOrEqual => cmp(F::OLE)?,
                Greater => cmp(F::OGT)?,
                GreaterOrEqual => cmp(F::OGE)?,
                _ => return Err(CodegenError::Unsupported(String::new())),
            });
        }
        if b.dtype.is_float() {
            // An integer base with a float exponent (Pow): no exact kernel here.
            return Err(CodegenError::Unsupported(String::new()));
        }
        let (x, y) = (self.ival(a)?, self.ival(b)?);
        let s = a.dtype.is_signed_int();
        let pick = |c: IntValue<'c>| -> R<BasicValueEnum<'c>> { self.select(c, x, y) };
        Ok(match op {
            Add => self.b.build_int_add(x, y, "")?.into(),
            Sub => self.b.build_int_sub(x, y, "")?.into(),
            Mul => self.b.build_int_mul(x, y, "")?.into(),
            Div if s => self.b.build_int_signed_div(x, y, "")?.into(),
            Div => self.b.build_int_unsigned_div(x, y, "")?.into(),
            Max => pick(self.icmp(if s { I::SGT } else { I::UGT }, x, y)?)?,
            Min => pick(self.icmp(if s { I::SLT } else { I::ULT }, x, y)?)?,
            FMod if s => self.b.build_int_signed_rem(x, y, "")?.into(),
            Mod | FMod if !s => self.b.build_int_unsigned_rem(x, y, "")?.into(),
            FMod => self.b.build_int_signed_rem(x, y, "")?.into(),
            Mod => {
                let r = self.b.build_int_signed_rem(x, y, "")?;
                let z = x.get_type().const_zero();
                let fix = self.and(self.icmp(I::NE, r, z)?, self.b.build_xor(self.icmp(I::SLT, r, z)?, self.icmp(I::SLT, y, z)?, "")?)?;
                self.select(fix, self.b.build_int_add(r, y, "")?, r)?
            }
            Equal => self.icmp(I::EQ, x, y)?.into(),
            Less => self.icmp(if s { I::SLT } else { I::ULT }, x, y)?.into(),
            LessOrEqual => self.icmp(if s { I::SLE } else { I::ULE }, x, y)?.into(),
            Greater => self.icmp(if s { I::SGT } else { I::UGT }, x, y)?.into(),
            GreaterOrEqual => self.icmp(if s { I::SGE } else { I::UGE }, x, y)?.into(),
            And | BitwiseAnd => self.b.build_and(x, y, "")?.into(),
            Or | BitwiseOr => self.b.build_or(x, y, "")?.into(),
            Xor | BitwiseXor => self.b.build_xor(x, y, "")?.into(),
            BitShiftLeft => self.b.build_left_shift(x, y, "")?.into(),
            BitShiftRight => self.b.build_right_shift(x, y, false, "")?.into(),
            Pow | PRelu => return Err(CodegenError::Unsupported(String::new())),
        })
    }

    /// x^y; small constant integer exponents become multiplications.
    fn pow(&self, x: FloatValue<'c>, y: FloatValue<'c>, konst: Option<f64>) -> R<FloatValue<'c>> {
        match konst {
            Some(1.0) => return Ok(x),
            Some(2.0) => return self.fmul(x, x),
            Some(3.0) => return self.fmul(self.fmul(x, x)?, x),
            Some(0.5) => return self.fintr("sqrt", &[x]),
            _ => {}
        }
        // |x|^y = 2^(y log2|x|), negated for negative x and odd integer y; 0^y by cases.
        let ax = self.fintr("fabs", &[x])?;
        let l = if self.is_f64(x) { self.fintr("log2", &[ax])? } else { self.asm_f32("lg2.approx.f32 $0, $1;", &[ax])? };
        let r = self.exp2(self.fmul(y, l)?)?;
        let y_int = self.fcmp(F::OEQ, self.fintr("floor", &[y])?, y)?;
        let half = self.fmul(y, self.fc(y, 0.5))?;
        let y_odd = self.b.build_and(y_int, self.fcmp(F::ONE, self.fintr("floor", &[half])?, half)?, "")?;
        let neg = self.fcmp(F::OLT, x, self.fc(x, 0.0))?;
        let neg_odd = self.b.build_and(neg, y_odd, "")?;
        let r = self.select(neg_odd, self.b.build_float_neg(r, "")?, r)?.into_float_value();
        let bad = self.b.build_and(neg, self.b.build_not(y_int, "")?, "")?;
        let r = self.select(bad, self.fc(x, f64::NAN), r)?.into_float_value();
        let y0 = self.fcmp(F::OEQ, y, self.fc(y, 0.0))?;
        Ok(self.select(y0, self.fc(x, 1.0), r)?.into_float_value())
    }
}

fn describe(op: &Op) -> String {
    match op {
        Op::Unary { op } => op.name().to_string(),
        Op::Binary { op } => op.name().to_string(),
        other => other.kind_name().to_string(),
    }
}
