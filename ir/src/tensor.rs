//! Concrete tensors: a row-major buffer of one dtype plus its dimensions.

use crate::dtype::DType;
use crate::minifloat::{F4E2M1, F8E4M3FN, F8E4M3FNUZ, F8E5M2, F8E5M2FNUZ, F8E8M0};
use crate::shape::strides;
use half::{bf16, f16};

/// A typed, row-major element buffer. `I4`/`U4` hold one value per byte.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    F64(Vec<f64>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    Bool(Vec<bool>),
    I4(Vec<i8>),
    U4(Vec<u8>),
    I2(Vec<i8>),
    U2(Vec<u8>),
    F8E4M3FN(Vec<F8E4M3FN>),
    F8E4M3FNUZ(Vec<F8E4M3FNUZ>),
    F8E5M2(Vec<F8E5M2>),
    F8E5M2FNUZ(Vec<F8E5M2FNUZ>),
    F4E2M1(Vec<F4E2M1>),
    F8E8M0(Vec<F8E8M0>),
}

/// Runs `$e` with `$v` bound to the inner `Vec` of any [`Data`] variant.
#[macro_export]
macro_rules! each_data {
    ($d:expr, $v:ident => $e:expr) => {
        match $d {
            $crate::Data::F32($v) => $e,
            $crate::Data::F16($v) => $e,
            $crate::Data::BF16($v) => $e,
            $crate::Data::F64($v) => $e,
            $crate::Data::I8($v) => $e,
            $crate::Data::U8($v) => $e,
            $crate::Data::I16($v) => $e,
            $crate::Data::U16($v) => $e,
            $crate::Data::I32($v) => $e,
            $crate::Data::U32($v) => $e,
            $crate::Data::I64($v) => $e,
            $crate::Data::U64($v) => $e,
            $crate::Data::Bool($v) => $e,
            $crate::Data::I4($v) => $e,
            $crate::Data::U4($v) => $e,
            $crate::Data::I2($v) => $e,
            $crate::Data::U2($v) => $e,
            $crate::Data::F8E4M3FN($v) => $e,
            $crate::Data::F8E4M3FNUZ($v) => $e,
            $crate::Data::F8E5M2($v) => $e,
            $crate::Data::F8E5M2FNUZ($v) => $e,
            $crate::Data::F4E2M1($v) => $e,
            $crate::Data::F8E8M0($v) => $e,
        }
    };
}

/// Like [`each_data!`] but rebuilds the same variant from the `Vec` that `$e` returns.
#[macro_export]
macro_rules! map_data {
    ($d:expr, $v:ident => $e:expr) => {
        match $d {
            $crate::Data::F32($v) => $crate::Data::F32($e),
            $crate::Data::F16($v) => $crate::Data::F16($e),
            $crate::Data::BF16($v) => $crate::Data::BF16($e),
            $crate::Data::F64($v) => $crate::Data::F64($e),
            $crate::Data::I8($v) => $crate::Data::I8($e),
            $crate::Data::U8($v) => $crate::Data::U8($e),
            $crate::Data::I16($v) => $crate::Data::I16($e),
            $crate::Data::U16($v) => $crate::Data::U16($e),
            $crate::Data::I32($v) => $crate::Data::I32($e),
            $crate::Data::U32($v) => $crate::Data::U32($e),
            $crate::Data::I64($v) => $crate::Data::I64($e),
            $crate::Data::U64($v) => $crate::Data::U64($e),
            $crate::Data::Bool($v) => $crate::Data::Bool($e),
            $crate::Data::I4($v) => $crate::Data::I4($e),
            $crate::Data::U4($v) => $crate::Data::U4($e),
            $crate::Data::I2($v) => $crate::Data::I2($e),
            $crate::Data::U2($v) => $crate::Data::U2($e),
            $crate::Data::F8E4M3FN($v) => $crate::Data::F8E4M3FN($e),
            $crate::Data::F8E4M3FNUZ($v) => $crate::Data::F8E4M3FNUZ($e),
            $crate::Data::F8E5M2($v) => $crate::Data::F8E5M2($e),
            $crate::Data::F8E5M2FNUZ($v) => $crate::Data::F8E5M2FNUZ($e),
            $crate::Data::F4E2M1($v) => $crate::Data::F4E2M1($e),
            $crate::Data::F8E8M0($v) => $crate::Data::F8E8M0($e),
        }
    };
}

/// Scalar conversions every element type supports, with ONNX `Cast` semantics:
/// float to int truncates toward zero (saturating), int to int wraps, anything to bool is `!= 0`.
pub trait Elem: Copy + Send + Sync + PartialEq + std::fmt::Debug + 'static {
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
}

macro_rules! elem_int {
    ($($t:ty),*) => {$(
        impl Elem for $t {
            fn to_f64(self) -> f64 { self as f64 }
            fn from_f64(v: f64) -> Self { v as $t }
            fn to_i64(self) -> i64 { self as i64 }
            fn from_i64(v: i64) -> Self { v as $t }
        }
    )*};
}
elem_int!(i8, u8, i16, u16, i32, u32, i64, u64);

impl Elem for f32 {
    fn to_f64(self) -> f64 {
        self as f64
    }
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v as f32
    }
}
impl Elem for f64 {
    fn to_f64(self) -> f64 {
        self
    }
    fn from_f64(v: f64) -> Self {
        v
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v as f64
    }
}
impl Elem for f16 {
    fn to_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        // Round through f32 only when exact: f64 -> f16 directly avoids double rounding.
        f16::from_f64(v)
    }
    fn to_i64(self) -> i64 {
        f16::to_f32(self) as i64
    }
    fn from_i64(v: i64) -> Self {
        f16::from_f64(v as f64)
    }
}
impl Elem for bf16 {
    fn to_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    fn from_f64(v: f64) -> Self {
        bf16::from_f64(v)
    }
    fn to_i64(self) -> i64 {
        bf16::to_f32(self) as i64
    }
    fn from_i64(v: i64) -> Self {
        bf16::from_f64(v as f64)
    }
}
impl Elem for bool {
    fn to_f64(self) -> f64 {
        self as u8 as f64
    }
    fn from_f64(v: f64) -> Self {
        v != 0.0
    }
    fn to_i64(self) -> i64 {
        self as i64
    }
    fn from_i64(v: i64) -> Self {
        v != 0
    }
}

/// `v` rounded to the nearest value of float dtype `dtype` (identity for f64 and non-floats).
pub fn round_to(dtype: DType, v: f64) -> f64 {
    match dtype {
        DType::F32 => v as f32 as f64,
        DType::F16 => f16::from_f64(v).to_f64(),
        DType::BF16 => bf16::from_f64(v).to_f64(),
        DType::F8E8M0 => F8E8M0::encode(v, false, crate::minifloat::E8M0Rounding::Nearest).decode(),
        d => match d.minifloat() {
            Some(f) => f.decode(f.encode(v, false)),
            None => v,
        },
    }
}

fn wrap_i4(v: i64) -> i8 {
    (((v & 0xF) ^ 0x8) - 0x8) as i8
}

fn wrap_i2(v: i64) -> i8 {
    (((v & 0x3) ^ 0x2) - 0x2) as i8
}

/// A scalar that converts to every element type with cast semantics (f64 or i64).
trait Source: Copy {
    fn to<T: Elem>(self) -> T;
    /// The integer whose low bits a sub-byte integer keeps (truncating floats toward zero).
    fn bits(self) -> i64;
}

impl Source for f64 {
    fn to<T: Elem>(self) -> T {
        T::from_f64(self)
    }
    fn bits(self) -> i64 {
        self as i64
    }
}

impl Source for i64 {
    fn to<T: Elem>(self) -> T {
        T::from_i64(self)
    }
    fn bits(self) -> i64 {
        self
    }
}

fn build<S: Source>(dtype: DType, v: &[S]) -> Data {
    fn conv<S: Source, T: Elem>(v: &[S]) -> Vec<T> {
        v.iter().map(|&x| x.to()).collect()
    }
    match dtype {
        DType::F32 => Data::F32(conv(v)),
        DType::F16 => Data::F16(conv(v)),
        DType::BF16 => Data::BF16(conv(v)),
        DType::F64 => Data::F64(conv(v)),
        DType::I8 => Data::I8(conv(v)),
        DType::U8 => Data::U8(conv(v)),
        DType::I16 => Data::I16(conv(v)),
        DType::U16 => Data::U16(conv(v)),
        DType::I32 => Data::I32(conv(v)),
        DType::U32 => Data::U32(conv(v)),
        DType::I64 => Data::I64(conv(v)),
        DType::U64 => Data::U64(conv(v)),
        DType::Bool => Data::Bool(conv(v)),
        DType::I4 => Data::I4(v.iter().map(|&x| wrap_i4(x.bits())).collect()),
        DType::U4 => Data::U4(v.iter().map(|&x| (x.bits() & 0xF) as u8).collect()),
        DType::I2 => Data::I2(v.iter().map(|&x| wrap_i2(x.bits())).collect()),
        DType::U2 => Data::U2(v.iter().map(|&x| (x.bits() & 0x3) as u8).collect()),
        DType::F8E4M3FN => Data::F8E4M3FN(conv(v)),
        DType::F8E4M3FNUZ => Data::F8E4M3FNUZ(conv(v)),
        DType::F8E5M2 => Data::F8E5M2(conv(v)),
        DType::F8E5M2FNUZ => Data::F8E5M2FNUZ(conv(v)),
        DType::F4E2M1 => Data::F4E2M1(conv(v)),
        DType::F8E8M0 => Data::F8E8M0(conv(v)),
    }
}

impl Data {
    pub fn dtype(&self) -> DType {
        match self {
            Data::F32(_) => DType::F32,
            Data::F16(_) => DType::F16,
            Data::BF16(_) => DType::BF16,
            Data::F64(_) => DType::F64,
            Data::I8(_) => DType::I8,
            Data::U8(_) => DType::U8,
            Data::I16(_) => DType::I16,
            Data::U16(_) => DType::U16,
            Data::I32(_) => DType::I32,
            Data::U32(_) => DType::U32,
            Data::I64(_) => DType::I64,
            Data::U64(_) => DType::U64,
            Data::Bool(_) => DType::Bool,
            Data::I4(_) => DType::I4,
            Data::U4(_) => DType::U4,
            Data::I2(_) => DType::I2,
            Data::U2(_) => DType::U2,
            Data::F8E4M3FN(_) => DType::F8E4M3FN,
            Data::F8E4M3FNUZ(_) => DType::F8E4M3FNUZ,
            Data::F8E5M2(_) => DType::F8E5M2,
            Data::F8E5M2FNUZ(_) => DType::F8E5M2FNUZ,
            Data::F4E2M1(_) => DType::F4E2M1,
            Data::F8E8M0(_) => DType::F8E8M0,
        }
    }

    pub fn len(&self) -> usize {
        each_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `n` zero elements of `dtype`.
    pub fn zeros(dtype: DType, n: usize) -> Data {
        Data::from_f64(dtype, &vec![0.0; n])
    }

    /// Builds data of `dtype` from f64 values with cast semantics.
    pub fn from_f64(dtype: DType, v: &[f64]) -> Data {
        build(dtype, v)
    }

    /// Builds data of `dtype` from i64 values with cast semantics (exact for every int type).
    pub fn from_i64(dtype: DType, v: &[i64]) -> Data {
        build(dtype, v)
    }

    pub fn to_f64(&self) -> Vec<f64> {
        each_data!(self, v => v.iter().map(|x| x.to_f64()).collect())
    }

    pub fn to_i64(&self) -> Vec<i64> {
        each_data!(self, v => v.iter().map(|x| x.to_i64()).collect())
    }

    /// Elements at `idx`, in that order (the core of every data-movement op).
    pub fn take(&self, idx: &[usize]) -> Data {
        map_data!(self, v => idx.iter().map(|&i| v[i]).collect())
    }

    /// Concatenation of buffers of one dtype; `None` if dtypes differ.
    pub fn concat(parts: &[&Data]) -> Option<Data> {
        let first = parts.first()?;
        let mut out = Data::zeros(first.dtype(), 0);
        for p in parts {
            out.extend(p)?;
        }
        Some(out)
    }

    fn extend(&mut self, other: &Data) -> Option<()> {
        macro_rules! ext {
            ($($var:ident),*) => {
                match (self, other) {
                    $((Data::$var(a), Data::$var(b)) => a.extend_from_slice(b),)*
                    _ => return None,
                }
            };
        }
        ext!(
            F32, F16, BF16, F64, I8, U8, I16, U16, I32, U32, I64, U64, Bool, I4, U4, I2, U2, F8E4M3FN, F8E4M3FNUZ, F8E5M2, F8E5M2FNUZ,
            F4E2M1
        );
        Some(())
    }

    /// Casts to `dtype` with ONNX `Cast` semantics.
    pub fn cast(&self, dtype: DType) -> Data {
        if self.dtype() == dtype {
            return self.clone();
        }
        if self.dtype().is_float() || dtype.is_float() {
            let v = self.to_f64();
            if dtype.is_int() && !dtype.is_packed_int() {
                // Float to int: truncate toward zero; NaN becomes 0 (as `as` does).
                return Data::from_f64(dtype, &v);
            }
            if dtype.is_packed_int() {
                // ONNX Cast to 4- and 2-bit integers truncates and wraps (it does not saturate).
                let t: Vec<i64> = v.iter().map(|x| *x as i64).collect();
                return Data::from_i64(dtype, &t);
            }
            return Data::from_f64(dtype, &v);
        }
        if let Data::U64(v) = self {
            // u64 does not fit i64: convert through u64 directly.
            let w: Vec<i64> = v.iter().map(|&x| x as i64).collect();
            return Data::from_i64(dtype, &w);
        }
        Data::from_i64(dtype, &self.to_i64())
    }
}

/// A concrete tensor: dims plus a row-major buffer whose length is their product.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    dims: Vec<usize>,
    data: Data,
}

/// The buffer length does not match the dims.
#[derive(Debug, thiserror::Error)]
#[error("tensor of shape {dims:?} needs {expected} elements, buffer has {actual}")]
pub struct SizeMismatch {
    pub dims: Vec<usize>,
    pub expected: usize,
    pub actual: usize,
}

impl Tensor {
    /// This tensor in `dtype` when every value converts exactly (16000 as i64, 1 as bool);
    /// None when one would change.
    pub fn converted_exactly(&self, dtype: DType) -> Option<Tensor> {
        if self.dtype() == dtype {
            return Some(self.clone());
        }
        let vals = self.to_f64();
        let t = Tensor::new(self.dims().to_vec(), Data::from_f64(dtype, &vals)).ok()?;
        (t.to_f64() == vals).then_some(t)
    }

    pub fn new(dims: Vec<usize>, data: Data) -> Result<Tensor, SizeMismatch> {
        let expected: usize = dims.iter().product();
        if expected != data.len() {
            return Err(SizeMismatch { dims, expected, actual: data.len() });
        }
        Ok(Tensor { dims, data })
    }

    pub fn zeros(dtype: DType, dims: Vec<usize>) -> Tensor {
        let n = dims.iter().product();
        Tensor { dims, data: Data::zeros(dtype, n) }
    }

    pub fn scalar_i64(v: i64) -> Tensor {
        Tensor { dims: vec![], data: Data::I64(vec![v]) }
    }

    pub fn from_i64s(dims: Vec<usize>, v: Vec<i64>) -> Result<Tensor, SizeMismatch> {
        Tensor::new(dims, Data::I64(v))
    }

    pub fn from_f32s(dims: Vec<usize>, v: Vec<f32>) -> Result<Tensor, SizeMismatch> {
        Tensor::new(dims, Data::F32(v))
    }

    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    pub fn data(&self) -> &Data {
        &self.data
    }

    pub fn into_data(self) -> Data {
        self.data
    }

    pub fn strides(&self) -> Vec<usize> {
        strides(&self.dims)
    }

    /// Same data, new dims with the same element count.
    pub fn reshaped(&self, dims: Vec<usize>) -> Result<Tensor, SizeMismatch> {
        Tensor::new(dims, self.data.clone())
    }

    pub fn to_f64(&self) -> Vec<f64> {
        self.data.to_f64()
    }

    pub fn to_i64(&self) -> Vec<i64> {
        self.data.to_i64()
    }

    pub fn cast(&self, dtype: DType) -> Tensor {
        Tensor { dims: self.dims.clone(), data: self.data.cast(dtype) }
    }

    /// Size in bytes when packed (int4 two per byte).
    pub fn byte_size(&self) -> usize {
        self.dtype().bytes_for(self.numel())
    }
}

impl Data {
    /// Little-endian bytes, each element in [`DType::element_bytes`]: bool as one byte, the
    /// float8 formats as their bits, and the sub-byte types unpacked, one element per byte
    /// (int4/int2 sign-extended, uint4/uint2 and float4 in the low bits). This is kiln's
    /// device and runtime layout; ONNX's packed layout is the frontend's business.
    pub fn to_le_bytes(&self) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len() * 8);
        match self {
            Data::F32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Data::F64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Data::F16(v) => v.iter().for_each(|x| out.extend(x.to_bits().to_le_bytes())),
            Data::BF16(v) => v.iter().for_each(|x| out.extend(x.to_bits().to_le_bytes())),
            Data::I8(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Data::U8(v) => out.extend(v),
            Data::I16(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Data::U16(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Data::I32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Data::U32(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Data::I64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Data::U64(v) => v.iter().for_each(|x| out.extend(x.to_le_bytes())),
            Data::Bool(v) => v.iter().for_each(|&x| out.push(x as u8)),
            Data::F8E4M3FN(v) => out.extend(v.iter().map(|x| x.0)),
            Data::F8E4M3FNUZ(v) => out.extend(v.iter().map(|x| x.0)),
            Data::F8E5M2(v) => out.extend(v.iter().map(|x| x.0)),
            Data::F8E5M2FNUZ(v) => out.extend(v.iter().map(|x| x.0)),
            Data::I4(v) | Data::I2(v) => out.extend(v.iter().map(|&x| x as u8)),
            Data::U4(v) | Data::U2(v) => out.extend(v),
            Data::F4E2M1(v) => out.extend(v.iter().map(|x| x.0)),
            Data::F8E8M0(v) => out.extend(v.iter().map(|x| x.0)),
        }
        Some(out)
    }

    /// The inverse of [`Data::to_le_bytes`]: `None` for those dtypes, or when `bytes` is not a
    /// whole number of elements.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Option<Data> {
        macro_rules! le {
            ($t:ty, $w:expr) => {{
                if !bytes.len().is_multiple_of($w) {
                    return None;
                }
                bytes.chunks_exact($w).map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $w]))).collect::<Vec<$t>>()
            }};
        }
        Some(match dtype {
            DType::F32 => Data::F32(le!(f32, 4)),
            DType::F64 => Data::F64(le!(f64, 8)),
            DType::F16 => Data::F16(le!(u16, 2).into_iter().map(f16::from_bits).collect()),
            DType::BF16 => Data::BF16(le!(u16, 2).into_iter().map(bf16::from_bits).collect()),
            DType::I8 => Data::I8(bytes.iter().map(|&b| b as i8).collect()),
            DType::U8 => Data::U8(bytes.to_vec()),
            DType::I16 => Data::I16(le!(i16, 2)),
            DType::U16 => Data::U16(le!(u16, 2)),
            DType::I32 => Data::I32(le!(i32, 4)),
            DType::U32 => Data::U32(le!(u32, 4)),
            DType::I64 => Data::I64(le!(i64, 8)),
            DType::U64 => Data::U64(le!(u64, 8)),
            DType::Bool => Data::Bool(bytes.iter().map(|&b| b != 0).collect()),
            DType::F8E4M3FN => Data::F8E4M3FN(bytes.iter().map(|&b| F8E4M3FN(b)).collect()),
            DType::F8E4M3FNUZ => Data::F8E4M3FNUZ(bytes.iter().map(|&b| F8E4M3FNUZ(b)).collect()),
            DType::F8E5M2 => Data::F8E5M2(bytes.iter().map(|&b| F8E5M2(b)).collect()),
            DType::F8E5M2FNUZ => Data::F8E5M2FNUZ(bytes.iter().map(|&b| F8E5M2FNUZ(b)).collect()),
            DType::F8E8M0 => Data::F8E8M0(bytes.iter().map(|&b| F8E8M0(b)).collect()),
            // The sub-byte types: a byte outside the type's range is not one of its elements.
            DType::I4 | DType::I2 => {
                let wrap = if dtype == DType::I4 { wrap_i4 } else { wrap_i2 };
                let v: Vec<i8> = bytes.iter().map(|&b| b as i8).collect();
                if v.iter().any(|&x| wrap(x as i64) != x) {
                    return None;
                }
                if dtype == DType::I4 {
                    Data::I4(v)
                } else {
                    Data::I2(v)
                }
            }
            DType::U4 | DType::U2 | DType::F4E2M1 => {
                let top = if dtype == DType::U2 { 3 } else { 15 };
                if bytes.iter().any(|&b| b > top) {
                    return None;
                }
                match dtype {
                    DType::U4 => Data::U4(bytes.to_vec()),
                    DType::U2 => Data::U2(bytes.to_vec()),
                    _ => Data::F4E2M1(bytes.iter().map(|&b| F4E2M1(b)).collect()),
                }
            }
        })
    }
}

#[cfg(test)]
mod byte_tests {
    use super::*;

    #[test]
    fn le_bytes_round_trip_and_reject_partial_elements() {
        let cases = [
            Data::F32(vec![1.5, -0.0, f32::INFINITY]),
            Data::F16(vec![f16::from_f32(0.25), f16::from_f32(-2.0)]),
            Data::BF16(vec![bf16::from_f32(3.0)]),
            Data::I8(vec![-1, 7]),
            Data::I64(vec![i64::MIN, 42]),
            Data::Bool(vec![true, false, true]),
            Data::F8E4M3FN(vec![F8E4M3FN(0x7e), F8E4M3FN(0x80)]),
            Data::F8E5M2FNUZ(vec![F8E5M2FNUZ(0x01)]),
        ];
        for d in cases {
            let b = d.to_le_bytes().expect("has a byte layout");
            assert_eq!(b.len(), d.len() * d.dtype().bits().div_ceil(8));
            assert_eq!(Data::from_le_bytes(d.dtype(), &b), Some(d.clone()));
            if d.dtype().bits() > 8 {
                assert_eq!(Data::from_le_bytes(d.dtype(), &b[..b.len() - 1]), None);
            }
        }
        assert_eq!(Data::F32(vec![1.0]).to_le_bytes(), Some(1f32.to_le_bytes().to_vec()));
    }

    #[test]
    fn sub_byte_types_take_a_byte_each_and_reject_out_of_range_bytes() {
        let cases = [
            Data::I4(vec![-8, 7, -1, 0]),
            Data::U4(vec![0, 15, 9]),
            Data::I2(vec![-2, 1, -1]),
            Data::U2(vec![0, 3]),
            Data::F4E2M1(vec![F4E2M1(0x0f), F4E2M1(0x01)]),
            Data::F8E8M0(vec![F8E8M0(0xff), F8E8M0(127)]),
        ];
        for d in cases {
            let b = d.to_le_bytes().expect("has a byte layout");
            assert_eq!(b.len(), d.len() * d.dtype().element_bytes());
            assert_eq!(Data::from_le_bytes(d.dtype(), &b), Some(d.clone()));
        }
        assert_eq!(Data::I4(vec![-1]).to_le_bytes(), Some(vec![0xff]));
        for (dtype, bad) in
            [(DType::I4, 0x08u8), (DType::I4, 0xf0), (DType::U4, 0x10), (DType::I2, 0x02), (DType::U2, 4), (DType::F4E2M1, 0x10)]
        {
            assert_eq!(Data::from_le_bytes(dtype, &[bad]), None, "{dtype} byte {bad:#x}");
        }
    }
}
