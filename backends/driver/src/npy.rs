//! Reading and writing NumPy `.npy` files (format versions 1.0-3.0, little-endian, C order).
//! Written by hand: the format is a short header plus raw data, and the crates that read it
//! pull in ndarray, which kiln does not otherwise need.

use half::f16;
use kiln_ir::{DType, Data, Tensor};

fn descr(d: DType) -> Option<&'static str> {
    Some(match d {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::F16 => "<f2",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I16 => "<i2",
        DType::U16 => "<u2",
        DType::I32 => "<i4",
        DType::U32 => "<u4",
        DType::I64 => "<i8",
        DType::U64 => "<u8",
        DType::Bool => "|b1",
        DType::BF16 | DType::I4 | DType::U4 | DType::I2 | DType::U2 => return None,
        DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F4E2M1 | DType::F8E8M0 => return None,
    })
}

/// Serializes a tensor as `.npy` (bf16 is widened to f32, int4 to int8, which numpy lacks).
pub fn write(t: &Tensor) -> Vec<u8> {
    // numpy has no bf16, float8, float4 or sub-byte integers: widen them.
    let t = match t.dtype() {
        d if d == DType::BF16 || d == DType::F8E8M0 || d.minifloat().is_some() => t.cast(DType::F32),
        DType::I4 | DType::I2 => t.cast(DType::I8),
        DType::U4 | DType::U2 => t.cast(DType::U8),
        _ => t.clone(),
    };
    let shape = match t.dims() {
        [] => "()".to_string(),
        [d] => format!("({d},)"),
        ds => format!("({})", ds.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}", descr(t.dtype()).unwrap_or("<f4"));
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    // Widened above, so every remaining dtype has a byte layout.
    out.extend(t.data().to_le_bytes().unwrap_or_default());
    out
}

/// Parses a `.npy` file; errors name what is wrong and where.
pub fn read(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not a .npy file (bad magic)".into());
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = bytes.get(hstart..hstart + hlen).ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;
    let field = |key: &str| -> Result<&str, String> {
        let at = header.find(&format!("'{key}'")).ok_or(format!("header lacks '{key}'"))?;
        Ok(header[at + key.len() + 2..].trim_start().trim_start_matches(':').trim_start())
    };
    let d = field("descr")?;
    let d = d.trim_start_matches('\'');
    let d = &d[..d.find('\'').ok_or("bad descr")?];
    let fortran = field("fortran_order")?.starts_with("True");
    let s = field("shape")?;
    let s = &s[1..s.find(')').ok_or("bad shape")?];
    let dims: Vec<usize> = s
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().map_err(|_| format!("bad dimension `{x}`")))
        .collect::<Result<_, _>>()?;
    let n: usize = dims.iter().product();
    let body = &bytes[hstart + hlen..];
    let need = |w: usize| {
        if body.len() == n * w {
            Ok(())
        } else {
            Err(format!("data has {} bytes, shape {dims:?} of `{d}` needs {}", body.len(), n * w))
        }
    };
    macro_rules! le {
        ($t:ty, $w:expr) => {{
            need($w)?;
            body.chunks_exact($w).map(|c| <$t>::from_le_bytes(c.try_into().unwrap_or([0; $w]))).collect::<Vec<$t>>()
        }};
    }
    let data = match d {
        "<f4" => Data::F32(le!(f32, 4)),
        "<f8" => Data::F64(le!(f64, 8)),
        "<f2" => Data::F16(le!(u16, 2).into_iter().map(f16::from_bits).collect::<Vec<_>>()),
        "|i1" => Data::I8(le!(i8, 1)),
        "|u1" => Data::U8(le!(u8, 1)),
        "<i2" => Data::I16(le!(i16, 2)),
        "<u2" => Data::U16(le!(u16, 2)),
        "<i4" => Data::I32(le!(i32, 4)),
        "<u4" => Data::U32(le!(u32, 4)),
        "<i8" => Data::I64(le!(i64, 8)),
        "<u8" => Data::U64(le!(u64, 8)),
        "|b1" => {
            need(1)?;
            Data::Bool(body.iter().map(|&b| b != 0).collect())
        }
        other => return Err(format!("unsupported dtype `{other}`")),
    };
    if fortran && dims.len() > 1 {
        // Column-major: the row-major array of the reversed dims, transposed back.
        let reversed: Vec<usize> = dims.iter().rev().copied().collect();
        let t = Tensor::new(reversed, data).map_err(|e| e.to_string())?;
        let perm: Vec<i64> = (0..dims.len() as i64).rev().collect();
        let mut out = kiln_ir::Op::Transpose { perm }.eval(&[Some(&t)], 1).map_err(|e| e.to_string())?;
        return out.pop().ok_or_else(|| "transposing a Fortran-order array".into());
    }
    Tensor::new(dims, data).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy's `np.save` of `np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))`:
    /// the header says Fortran order and the data runs down the columns (0, 3, 1, 4, 2, 5).
    #[test]
    fn fortran_order_arrays_read_as_their_row_major_values() {
        let mut header = "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }".to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        for v in [0f32, 3.0, 1.0, 4.0, 2.0, 5.0] {
            bytes.extend(v.to_le_bytes());
        }
        let t = read(&bytes).expect("reads");
        assert_eq!(t.dims(), &[2, 3]);
        assert_eq!(t.to_f64(), vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    }
}
