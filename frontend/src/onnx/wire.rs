//! A framing check of the protobuf wire format before decoding. rust-protobuf accepts a nested
//! message that ends early, so a file cut inside its graph would decode as a smaller model;
//! a truncated file always leaves its last top-level field incomplete, which this catches.

/// Walks the top-level fields; `Err` names the field and file offset that do not fit.
pub(crate) fn check_framing(b: &[u8]) -> Result<(), String> {
    let mut i = 0usize;
    while i < b.len() {
        let start = i;
        let tag = varint(b, &mut i).ok_or_else(|| format!("truncated field tag at offset {start}"))?;
        let field = tag >> 3;
        match tag & 7 {
            0 => {
                varint(b, &mut i).ok_or_else(|| format!("field {field} at offset {start}: truncated varint"))?;
            }
            1 => i = skip(b, i, 8).ok_or_else(|| format!("field {field} at offset {start}: truncated 8-byte value"))?,
            5 => i = skip(b, i, 4).ok_or_else(|| format!("field {field} at offset {start}: truncated 4-byte value"))?,
            2 => {
                let len = varint(b, &mut i).ok_or_else(|| format!("field {field} at offset {start}: truncated length"))?;
                let remaining = b.len() - i;
                if len > remaining as u64 {
                    return Err(format!("field {field} at offset {start} declares {len} bytes, only {remaining} remain (truncated file?)"));
                }
                i += len as usize;
            }
            w => return Err(format!("field {field} at offset {start}: invalid wire type {w}")),
        }
    }
    Ok(())
}

fn skip(b: &[u8], i: usize, n: usize) -> Option<usize> {
    (i + n <= b.len()).then_some(i + n)
}

fn varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}
