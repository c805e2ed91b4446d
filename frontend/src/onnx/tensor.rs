//! ONNX TensorProto to kiln tensors: typed fields, raw_data (little-endian), packed int4 and
//! external data files, with every size checked against the declared dims.

use super::ImportError;
use half::{bf16, f16};
use kiln_ir::{DType, Data, Tensor};
use onnx_protobuf::TensorProto;
use std::path::Path;

/// Maps an ONNX `TensorProto.DataType` code to a kiln dtype.
pub fn dtype_from_onnx(code: i32) -> Result<DType, String> {
    Ok(match code {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        4 => DType::U16,
        5 => DType::I16,
        6 => DType::I32,
        7 => DType::I64,
        9 => DType::Bool,
        10 => DType::F16,
        11 => DType::F64,
        12 => DType::U32,
        13 => DType::U64,
        16 => DType::BF16,
        17 => DType::F8E4M3FN,
        18 => DType::F8E4M3FNUZ,
        19 => DType::F8E5M2,
        20 => DType::F8E5M2FNUZ,
        21 => DType::U4,
        22 => DType::I4,
        23 => DType::F4E2M1,
        25 => DType::U2,
        26 => DType::I2,
        8 => return Err("string".into()),
        14 | 15 => return Err("complex".into()),
        24 => DType::F8E8M0,
        other => return Err(format!("unknown data type code {other}")),
    })
}

fn bad(name: &str, msg: impl Into<String>) -> ImportError {
    ImportError::BadTensor { name: name.to_string(), message: msg.into() }
}

/// Decodes a TensorProto; `dir` resolves external data locations.
pub fn tensor_from_proto(t: &TensorProto, dir: Option<&Path>) -> Result<Tensor, ImportError> {
    let name = t.name.as_str();
    let dtype = dtype_from_onnx(t.data_type).map_err(|d| ImportError::UnsupportedDType { what: format!("tensor `{name}`"), dtype: d })?;
    let dims: Vec<usize> =
        t.dims.iter().map(|&d| usize::try_from(d).map_err(|_| bad(name, format!("negative dimension {d}")))).collect::<Result<_, _>>()?;
    let n = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(|| bad(name, "element count overflows"))?;
    let external;
    let raw: Option<&[u8]> = if t.data_location.value() == 1 {
        external = read_external(t, dir)?;
        Some(&external)
    } else if !t.raw_data.is_empty() || (n == 0 && no_typed_data(t)) {
        Some(&t.raw_data)
    } else {
        None
    };
    let data = match raw {
        Some(bytes) => from_raw(dtype, bytes, n).ok_or_else(|| {
            bad(name, format!("raw data has {} bytes, {:?} of {} needs {}", bytes.len(), dims, dtype, dtype.bytes_for(n)))
        })?,
        None => from_typed(t, dtype, n).map_err(|m| bad(name, m))?,
    };
    Tensor::new(dims, data).map_err(|e| bad(name, e.to_string()))
}

fn no_typed_data(t: &TensorProto) -> bool {
    t.float_data.is_empty() && t.int32_data.is_empty() && t.int64_data.is_empty() && t.double_data.is_empty() && t.uint64_data.is_empty()
}

fn read_external(t: &TensorProto, dir: Option<&Path>) -> Result<Vec<u8>, ImportError> {
    let name = t.name.as_str();
    let mut location = None;
    let (mut offset, mut length) = (0u64, None);
    for e in &t.external_data {
        match e.key.as_str() {
            "location" => location = Some(e.value.clone()),
            "offset" => offset = e.value.parse().map_err(|_| bad(name, format!("bad external offset `{}`", e.value)))?,
            "length" => length = Some(e.value.parse::<u64>().map_err(|_| bad(name, format!("bad external length `{}`", e.value)))?),
            _ => {}
        }
    }
    let loc = location.ok_or_else(|| bad(name, "external data without location"))?;
    if Path::new(&loc).is_absolute() || loc.split(['/', '\\']).any(|c| c == "..") {
        return Err(bad(name, format!("external data location `{loc}` escapes the model directory")));
    }
    let path = dir.unwrap_or(Path::new(".")).join(&loc);
    let io = |e: std::io::Error| ImportError::Io { path: path.display().to_string(), message: e.to_string() };
    // Read only this tensor's range: one data file commonly holds every weight of the model.
    let mut file = std::fs::File::open(&path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let len = length.unwrap_or(size.saturating_sub(offset));
    match offset.checked_add(len) {
        Some(end) if end <= size => {
            use std::io::{Read, Seek, SeekFrom};
            file.seek(SeekFrom::Start(offset)).map_err(io)?;
            let mut buf = vec![0u8; len as usize];
            file.read_exact(&mut buf).map_err(io)?;
            Ok(buf)
        }
        _ => Err(bad(
            name,
            format!("external data range {offset}..{} outside `{}` ({size} bytes)", offset.saturating_add(len), path.display()),
        )),
    }
}

fn from_raw(dtype: DType, b: &[u8], n: usize) -> Option<Data> {
    if b.len() != dtype.bytes_for(n) {
        return None;
    }
    match dtype {
        DType::I4 | DType::U4 | DType::I2 | DType::U2 | DType::F4E2M1 => Some(unpack(dtype, b.iter().map(|&v| v as u32), 8, n)),
        DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F8E8M0 => Some(bits_to_data(dtype, b.to_vec())),
        // Whole-byte types: the byte layout ir defines once.
        _ => Data::from_le_bytes(dtype, b),
    }
}

/// Sub-byte values packed little-end first in `words` of `word_bits` bits.
fn unpack(dtype: DType, words: impl Iterator<Item = u32>, word_bits: usize, n: usize) -> Data {
    let bits = dtype.bits();
    let per = word_bits / bits;
    let mask = (1u32 << bits) - 1;
    let words: Vec<u32> = words.collect();
    let codes: Vec<u8> = (0..n).map(|i| ((words.get(i / per).copied().unwrap_or(0) >> (bits * (i % per))) & mask) as u8).collect();
    if dtype == DType::F4E2M1 {
        return bits_to_data(dtype, codes);
    }
    // Sign-extend the signed types.
    let v: Vec<i64> = codes.iter().map(|&c| c as i64).collect();
    Data::from_i64(dtype, &v)
}

fn bits_to_data(dtype: DType, codes: Vec<u8>) -> Data {
    use kiln_ir::minifloat as m;
    match dtype {
        DType::F8E4M3FN => Data::F8E4M3FN(codes.into_iter().map(m::F8E4M3FN).collect()),
        DType::F8E4M3FNUZ => Data::F8E4M3FNUZ(codes.into_iter().map(m::F8E4M3FNUZ).collect()),
        DType::F8E5M2 => Data::F8E5M2(codes.into_iter().map(m::F8E5M2).collect()),
        DType::F8E5M2FNUZ => Data::F8E5M2FNUZ(codes.into_iter().map(m::F8E5M2FNUZ).collect()),
        DType::F8E8M0 => Data::F8E8M0(codes.into_iter().map(m::F8E8M0).collect()),
        _ => Data::F4E2M1(codes.into_iter().map(|c| m::F4E2M1(c & 0xF)).collect()),
    }
}

fn from_typed(t: &TensorProto, dtype: DType, n: usize) -> Result<Data, String> {
    let check = |len: usize| if len == n { Ok(()) } else { Err(format!("has {len} values, its dims need {n}")) };
    Ok(match dtype {
        DType::F32 => {
            check(t.float_data.len())?;
            Data::F32(t.float_data.clone())
        }
        DType::F64 => {
            check(t.double_data.len())?;
            Data::F64(t.double_data.clone())
        }
        DType::I64 => {
            check(t.int64_data.len())?;
            Data::I64(t.int64_data.clone())
        }
        DType::U64 | DType::U32 => {
            check(t.uint64_data.len())?;
            let v: Vec<i64> = t.uint64_data.iter().map(|&v| v as i64).collect();
            if dtype == DType::U64 {
                Data::U64(t.uint64_data.clone())
            } else {
                Data::from_i64(dtype, &v)
            }
        }
        DType::F16 | DType::BF16 => {
            check(t.int32_data.len())?;
            let bits = t.int32_data.iter().map(|&v| v as u16);
            if dtype == DType::F16 {
                Data::F16(bits.map(f16::from_bits).collect())
            } else {
                Data::BF16(bits.map(bf16::from_bits).collect())
            }
        }
        DType::I4 | DType::U4 | DType::I2 | DType::U2 | DType::F4E2M1 => {
            // One packed byte per int32 element.
            let per = 8 / dtype.bits();
            if t.int32_data.len() != n.div_ceil(per) {
                return Err(format!("has {} packed values, its dims need {}", t.int32_data.len(), n.div_ceil(per)));
            }
            unpack(dtype, t.int32_data.iter().map(|&v| v as u32 & 0xFF), 8, n)
        }
        DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F8E8M0 => {
            check(t.int32_data.len())?;
            bits_to_data(dtype, t.int32_data.iter().map(|&v| v as u8).collect())
        }
        _ => {
            check(t.int32_data.len())?;
            let v: Vec<i64> = t.int32_data.iter().map(|&v| v as i64).collect();
            Data::from_i64(dtype, &v)
        }
    })
}
