//! float8 and float4 values in kernels (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, E2M1): stored as a
//! byte each (E2M1 in its low four bits), computed as f32. Decoding reads a table of the
//! format's values; encoding rounds to nearest-even
//! by a binary search over the table of its non-negative magnitudes, with the same overflow,
//! NaN and negative-zero rules as `kiln_ir::minifloat::MiniFloat::encode` (whose definitions
//! build both tables). `Cast(saturate=1)` clamps before encoding.

use super::llvm::{Em, GLOBAL, R};
use super::CodegenError;
use inkwell::module::Linkage;
use inkwell::values::{BasicValueEnum, FloatValue, IntValue, PointerValue};
use inkwell::{AddressSpace, FloatPredicate as F, IntPredicate as I};
use kiln_ir::minifloat::{MiniFloat, Specials};
use kiln_ir::DType;

fn format(d: DType) -> R<MiniFloat> {
    d.minifloat().ok_or_else(|| CodegenError::Internal(format!("{d} is not a float8 or float4 format")))
}

impl<'c> Em<'c> {
    /// A module-level constant table of f32 values (created once per name).
    fn f32_table(&self, name: &str, values: impl Fn() -> Vec<f64>) -> PointerValue<'c> {
        if let Some(g) = self.m.get_global(name) {
            return g.as_pointer_value();
        }
        let vals: Vec<FloatValue> = values().into_iter().map(|v| self.f32c(v)).collect();
        let arr = self.f32t().const_array(&vals);
        let g = self.m.add_global(arr.get_type(), Some(AddressSpace::from(GLOBAL)), name);
        g.set_linkage(Linkage::Internal);
        g.set_constant(true);
        g.set_initializer(&arr);
        g.as_pointer_value()
    }

    fn table_f32(&self, table: PointerValue<'c>, i: IntValue<'c>) -> R<FloatValue<'c>> {
        let i = self.b.build_int_z_extend_or_bit_cast(i, self.i64t(), "")?;
        let p = self.offset_ptr(self.f32t().into(), table, i)?;
        Ok(self.b.build_load(self.f32t(), p, "")?.into_float_value())
    }

    /// A float8 or float4 code as f32.
    pub fn decode_minifloat(&self, d: DType, byte: IntValue<'c>) -> R<FloatValue<'c>> {
        let f = format(d)?;
        let codes = 2 * f.sign_bit() as u16;
        let table = self.f32_table(&format!("kiln_decode_{d}"), || (0..codes).map(|b| f.decode(b as u8)).collect());
        self.table_f32(table, byte)
    }

    /// An f32 or f64 to a float8 or float4 code, to nearest-even; overflow becomes infinity (E5M2), the
    /// largest magnitude (E2M1) or NaN.
    pub fn encode_minifloat(&self, d: DType, x: FloatValue<'c>) -> R<IntValue<'c>> {
        let f = format(d)?;
        let top = f.max_code();
        let mags = self.f32_table(&format!("kiln_magnitudes_{d}"), || (0..=top).map(|c| f.magnitude(c)).collect());
        let i8t = self.cx.i8_type();
        let byte = |v: u8| i8t.const_int(v as u64, false);
        let f64t = self.cx.f64_type();
        // f32 or f64 in: the sign from the bits, the magnitude compared in f64.
        let it = if x.get_type() == f64t { self.i64t() } else { self.i32t() };
        let bits = self.b.build_bit_cast(x, it, "")?.into_int_value();
        let negative = self.icmp(I::SLT, bits, it.const_zero())?;
        let sign = self.select(negative, byte(f.sign_bit()), byte(0))?.into_int_value();
        let a = self.b.build_float_cast(self.fintr("fabs", &[x])?, f64t, "")?;
        let mag = |c: IntValue<'c>| -> R<FloatValue<'c>> { Ok(self.b.build_float_ext(self.table_f32(mags, c)?, f64t, "")?) };
        // The largest code whose magnitude is at most a: a branch-free binary search.
        let (mut lo, mut hi) = (i8t.const_zero(), byte(top));
        for _ in 0..8 {
            let mid = self.b.build_int_add(
                lo,
                self.b.build_int_unsigned_div(self.b.build_int_add(self.b.build_int_sub(hi, lo, "")?, byte(1), "")?, byte(2), "")?,
                "",
            )?;
            let go = self.and(self.icmp(I::ULT, lo, hi)?, self.fcmp(F::OLE, mag(mid)?, a)?)?;
            let shrink = self.and(self.icmp(I::ULT, lo, hi)?, self.b.build_not(go, "")?)?;
            let new_lo = self.select(go, mid, lo)?.into_int_value();
            hi = self.select(shrink, self.b.build_int_sub(mid, byte(1), "")?, hi)?.into_int_value();
            lo = new_lo;
        }
        let below = lo;
        let even = |c: IntValue<'c>| -> R<IntValue<'c>> { self.icmp(I::EQ, self.b.build_and(c, byte(1), "")?, byte(0)) };
        // Between two codes: the nearer, ties to the even one.
        let next = self.b.build_int_add(below, byte(1), "")?;
        let next_safe = self.select(self.icmp(I::EQ, below, byte(top))?, below, next)?.into_int_value();
        let (d0, d1) = (self.fsub(a, mag(below)?)?, self.fsub(mag(next_safe)?, a)?);
        let keep = self.b.build_or(self.fcmp(F::OLT, d0, d1)?, self.and(self.fcmp(F::OEQ, d0, d1)?, even(below)?)?, "")?;
        let inner = self.select(keep, below, next)?.into_int_value();
        // At the top: within half a step above it rounds down, beyond it overflows.
        let ulp = f.magnitude(top) - f.magnitude(top - 1);
        let over = self.fsub(a, f64t.const_float(f.magnitude(top)))?;
        let top_even = top.is_multiple_of(2);
        let stays = self.b.build_or(
            self.fcmp(F::OLT, over, f64t.const_float(ulp / 2.0))?,
            self.and(self.fcmp(F::OEQ, over, f64t.const_float(ulp / 2.0))?, self.i1().const_int(top_even as u64, false))?,
            "",
        )?;
        let at_top = self.icmp(I::EQ, below, byte(top))?;
        let infinite = self.fcmp(F::OEQ, a, f64t.const_float(f64::INFINITY))?;
        let overflows = self.b.build_or(infinite, self.and(at_top, self.b.build_not(stays, "")?)?, "")?;
        let code = self.select(at_top, byte(top), inner)?.into_int_value();
        let mut out = self.b.build_or(sign, code, "")?;
        if f.specials == Specials::Fnuz {
            // No negative zero: -0 (and what rounds to it) is +0.
            let zero = self.icmp(I::EQ, code, byte(0))?;
            out = self.select(zero, byte(0), out)?.into_int_value();
        }
        let overflow: BasicValueEnum = match f.specials {
            Specials::Ieee => self.b.build_or(sign, byte(top + 1), "")?.into(),
            Specials::FiniteOnly => self.b.build_or(sign, byte(top), "")?.into(),
            _ => byte(f.nan()).into(),
        };
        let out = self.select(overflows, overflow, out.into())?.into_int_value();
        let nan = self.fcmp(F::UNO, x, x)?;
        Ok(self.select(nan, byte(f.nan()), out)?.into_int_value())
    }

    /// `Cast(saturate=1)` to a float8 or float4 format: clamps to its largest finite magnitude
    /// (NaN kept).
    pub fn saturate_minifloat(&self, d: DType, x: FloatValue<'c>) -> R<FloatValue<'c>> {
        let m = format(d)?.max();
        let clamped = self.fmin(self.fmax(x, self.f32c(-m))?, self.f32c(m))?;
        let nan = self.fcmp(F::UNO, x, x)?;
        Ok(self.select(nan, x, clamped)?.into_float_value())
    }
}
