//! Sub-byte and 8-bit float formats (float8 E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ and float4 E2M1)
//! held as their bit patterns, with conversions that round to nearest-even.
//!
//! Overflow follows the formats' definitions (the ONNX reference, through ml_dtypes, agrees):
//! E5M2 has infinities; the FN and FNUZ formats turn overflow and infinity into NaN; E2M1 has
//! neither and saturates. [`MiniFloat::encode`] with `saturate` clamps to the largest finite
//! value first, as ONNX `Cast(saturate=1)` does.

/// How a format spends its special encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Specials {
    /// IEEE-like: exponent all ones is infinity (mantissa 0) or NaN.
    Ieee,
    /// No infinity; exponent and mantissa all ones is NaN (E4M3FN).
    FiniteNan,
    /// No infinity, no negative zero; the negative-zero pattern is NaN.
    Fnuz,
    /// No infinity, no NaN (E2M1).
    FiniteOnly,
}

/// A small float format: sign bit, `exp` exponent bits, `man` mantissa bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MiniFloat {
    pub exp: u32,
    pub man: u32,
    pub bias: i32,
    pub specials: Specials,
}

pub const E4M3FN: MiniFloat = MiniFloat { exp: 4, man: 3, bias: 7, specials: Specials::FiniteNan };
pub const E4M3FNUZ: MiniFloat = MiniFloat { exp: 4, man: 3, bias: 8, specials: Specials::Fnuz };
pub const E5M2: MiniFloat = MiniFloat { exp: 5, man: 2, bias: 15, specials: Specials::Ieee };
pub const E5M2FNUZ: MiniFloat = MiniFloat { exp: 5, man: 2, bias: 16, specials: Specials::Fnuz };
pub const E2M1: MiniFloat = MiniFloat { exp: 2, man: 1, bias: 1, specials: Specials::FiniteOnly };

impl MiniFloat {
    fn bits(self) -> u32 {
        1 + self.exp + self.man
    }
    pub fn sign_bit(self) -> u8 {
        1 << (self.exp + self.man)
    }
    /// Largest code whose magnitude is finite (and not NaN).
    pub fn max_code(self) -> u8 {
        let all = (1u16 << (self.exp + self.man)) as u8 - 1;
        match self.specials {
            Specials::Ieee => all - (1 << self.man) as u8,
            Specials::FiniteNan => all - 1,
            Specials::Fnuz | Specials::FiniteOnly => all,
        }
    }
    /// The NaN code (for the FNUZ formats, the negative-zero pattern).
    pub fn nan(self) -> u8 {
        match self.specials {
            Specials::Fnuz => self.sign_bit(),
            Specials::FiniteOnly => self.sign_bit(),
            _ => (1u16 << (self.bits() - 1)) as u8 - 1,
        }
    }

    /// The magnitude of a code without its sign bit (finite codes only).
    pub fn magnitude(self, code: u8) -> f64 {
        let e = (code >> self.man) as i32;
        let m = (code & ((1 << self.man) - 1)) as f64 / (1u32 << self.man) as f64;
        if e == 0 {
            m * 2f64.powi(1 - self.bias)
        } else {
            (1.0 + m) * 2f64.powi(e - self.bias)
        }
    }

    pub fn decode(self, bits: u8) -> f64 {
        let sign = if bits & self.sign_bit() != 0 { -1.0 } else { 1.0 };
        let code = bits & (self.sign_bit() - 1);
        match self.specials {
            Specials::Fnuz if bits == self.sign_bit() => return f64::NAN,
            Specials::FiniteNan if code == self.sign_bit() - 1 => return f64::NAN,
            Specials::Ieee if code > self.max_code() => {
                return if code == self.max_code() + 1 { sign * f64::INFINITY } else { f64::NAN };
            }
            _ => {}
        }
        sign * self.magnitude(code)
    }

    pub fn max(self) -> f64 {
        self.magnitude(self.max_code())
    }

    /// Rounds to nearest-even; see the module docs for overflow and `saturate`.
    pub fn encode(self, x: f64, saturate: bool) -> u8 {
        let x = if saturate && !x.is_nan() { x.clamp(-self.max(), self.max()) } else { x };
        let sign = if x.is_sign_negative() { self.sign_bit() } else { 0 };
        if x.is_nan() {
            return self.nan();
        }
        let a = x.abs();
        let top = self.max_code();
        let overflow = || match self.specials {
            Specials::Ieee => sign | (top + 1),
            Specials::FiniteOnly => sign | top,
            _ => self.nan(),
        };
        if a.is_infinite() {
            return overflow();
        }
        // Binary search the largest code with magnitude <= a.
        let (mut lo, mut hi) = (0u8, top);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if self.magnitude(mid) <= a {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let below = lo;
        let code = if below == top {
            let ulp = self.magnitude(top) - self.magnitude(top - 1);
            let over = a - self.magnitude(top);
            if over < ulp / 2.0 || (over == ulp / 2.0 && top.is_multiple_of(2)) {
                top
            } else {
                return overflow();
            }
        } else {
            let (d0, d1) = (a - self.magnitude(below), self.magnitude(below + 1) - a);
            if d0 < d1 || (d0 == d1 && below.is_multiple_of(2)) {
                below
            } else {
                below + 1
            }
        };
        if code == 0 && self.specials == Specials::Fnuz {
            return 0;
        }
        sign | code
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_finite_code_round_trips() {
        for f in [E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, E2M1] {
            for b in 0..(1u16 << f.bits()) {
                let b = b as u8;
                let v = f.decode(b);
                if v.is_nan() || (f.specials == Specials::Fnuz && b == 0) {
                    continue;
                }
                assert_eq!(f.encode(v, false), b, "{f:?} code {b:#x} = {v}");
            }
        }
    }

    #[test]
    fn format_maxima_are_the_documented_ones() {
        assert_eq!(E4M3FN.max(), 448.0);
        assert_eq!(E4M3FNUZ.max(), 240.0);
        assert_eq!(E5M2.max(), 57344.0);
        assert_eq!(E5M2FNUZ.max(), 57344.0);
        assert_eq!(E2M1.max(), 6.0);
    }

    #[test]
    fn ties_go_to_even_and_overflow_follows_the_format() {
        assert_eq!(E4M3FN.decode(E4M3FN.encode(100.0, false)), 96.0);
        assert_eq!(E4M3FN.decode(E4M3FN.encode(464.0, false)), 448.0);
        assert!(E4M3FN.decode(E4M3FN.encode(465.0, false)).is_nan());
        assert_eq!(E4M3FN.decode(E4M3FN.encode(465.0, true)), 448.0);
        assert_eq!(E5M2.decode(E5M2.encode(1e6, false)), f64::INFINITY);
        assert!(E5M2FNUZ.decode(E5M2FNUZ.encode(f64::INFINITY, false)).is_nan());
        assert_eq!(E2M1.decode(E2M1.encode(5.0, false)), 4.0);
        assert_eq!(E2M1.decode(E2M1.encode(100.0, false)), 6.0);
        assert_eq!(E4M3FNUZ.encode(-0.0, false), 0);
    }

    #[test]
    fn e8m0_is_a_biased_power_of_two() {
        use super::{E8M0Rounding as R, F8E8M0};
        assert_eq!(F8E8M0::encode(1.0, true, R::Up).0, 127);
        assert_eq!(F8E8M0(127).decode(), 1.0);
        assert_eq!(F8E8M0(130).decode(), 8.0);
        assert_eq!(F8E8M0::encode(1.5, true, R::Up).decode(), 2.0);
        assert_eq!(F8E8M0::encode(1.5, true, R::Down).decode(), 1.0);
        assert_eq!(F8E8M0::encode(1.75, true, R::Nearest).decode(), 2.0);
        assert_eq!(F8E8M0::encode(1.25, true, R::Nearest).decode(), 1.0);
        assert!(F8E8M0::encode(f64::NAN, true, R::Up).decode().is_nan());
        // The largest exponent does not round up into NaN when saturating.
        assert_eq!(F8E8M0::encode(3.0e38, true, R::Up).0, 0xFE);
        assert_eq!(F8E8M0::encode(3.0e38, false, R::Up).0, 0xFF);
    }
}

macro_rules! minifloat_elem {
    ($(#[$m:meta])* $t:ident, $fmt:expr) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub struct $t(pub u8);
        impl crate::tensor::Elem for $t {
            fn to_f64(self) -> f64 {
                $fmt.decode(self.0)
            }
            fn from_f64(v: f64) -> Self {
                $t($fmt.encode(v, false))
            }
            fn to_i64(self) -> i64 {
                self.to_f64() as i64
            }
            fn from_i64(v: i64) -> Self {
                $t($fmt.encode(v as f64, false))
            }
        }
    };
}

minifloat_elem!(
    /// float8 E4M3FN bits.
    F8E4M3FN,
    E4M3FN
);
minifloat_elem!(
    /// float8 E4M3FNUZ bits.
    F8E4M3FNUZ,
    E4M3FNUZ
);
minifloat_elem!(
    /// float8 E5M2 bits.
    F8E5M2,
    E5M2
);
minifloat_elem!(
    /// float8 E5M2FNUZ bits.
    F8E5M2FNUZ,
    E5M2FNUZ
);
minifloat_elem!(
    /// float4 E2M1 bits (low nibble).
    F4E2M1,
    E2M1
);

crate::attr_enum!(
    /// How a value rounds to float8 E8M0 (a power of two): ONNX Cast's `round_mode`.
    E8M0Rounding { Up = "up", Down = "down", Nearest = "nearest" }
);

/// float8 E8M0 (the MX scale format): an 8-bit exponent, value 2^(e - 127); 0xFF is NaN.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct F8E8M0(pub u8);

impl F8E8M0 {
    pub fn decode(self) -> f64 {
        if self.0 == 0xFF {
            f64::NAN
        } else {
            2f64.powi(self.0 as i32 - 127)
        }
    }

    /// Encodes from the value's f32 bits as the ONNX reference does: the f32 exponent field,
    /// raised by one when rounding up (`Up` looks at mantissa mask 0x4FFFFF, as the reference
    /// does); NaN and infinity become 0xFF; `saturate` keeps 0xFE from rounding up to NaN.
    pub fn encode(v: f64, saturate: bool, mode: E8M0Rounding) -> F8E8M0 {
        let bits = (v as f32).to_bits();
        let exp = (bits >> 23) & 0xFF;
        if exp == 0xFF {
            return F8E8M0(0xFF);
        }
        let round_up = match mode {
            E8M0Rounding::Down => false,
            E8M0Rounding::Up => bits & 0x4F_FFFF != 0,
            E8M0Rounding::Nearest => {
                let (g, r, s) = (bits & 0x40_0000 != 0, bits & 0x20_0000 != 0, bits & 0x1F_FFFF != 0);
                g && (r || s || exp > 0)
            }
        };
        let bump = round_up && !(saturate && exp == 0xFE);
        F8E8M0((exp + u32::from(bump)) as u8)
    }
}

impl crate::tensor::Elem for F8E8M0 {
    fn to_f64(self) -> f64 {
        self.decode()
    }
    fn from_f64(v: f64) -> Self {
        F8E8M0::encode(v, true, E8M0Rounding::Up)
    }
    fn to_i64(self) -> i64 {
        self.decode() as i64
    }
    fn from_i64(v: i64) -> Self {
        F8E8M0::encode(v as f64, true, E8M0Rounding::Up)
    }
}
