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

/// A field's value: a varint, or the absolute byte range of a length-delimited payload.
enum Value {
    Varint(u64),
    Bytes(usize, usize),
    Fixed,
}

/// The fields of the message in `b[start..end]`, payload ranges absolute in `b`.
fn fields(b: &[u8], start: usize, end: usize) -> Result<Vec<(u64, Value)>, String> {
    let m = &b[start..end];
    let mut out = vec![];
    let mut i = 0usize;
    while i < m.len() {
        let at = start + i;
        let tag = varint(m, &mut i).ok_or_else(|| format!("truncated field tag at offset {at}"))?;
        let bad = || format!("field {} at offset {at} is truncated", tag >> 3);
        let v = match tag & 7 {
            0 => Value::Varint(varint(m, &mut i).ok_or_else(bad)?),
            1 | 5 => {
                i = skip(m, i, if tag & 7 == 1 { 8 } else { 4 }).ok_or_else(bad)?;
                Value::Fixed
            }
            2 => {
                let len = varint(m, &mut i).ok_or_else(bad)?;
                let e = i.checked_add(usize::try_from(len).map_err(|_| bad())?).filter(|&e| e <= m.len()).ok_or_else(bad)?;
                let v = Value::Bytes(start + i, start + e);
                i = e;
                v
            }
            w => return Err(format!("field {} at offset {at}: invalid wire type {w}", tag >> 3)),
        };
        out.push((tag >> 3, v));
    }
    Ok(out)
}

/// Where a model's graph initializers keep their bytes.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct InitializerData {
    /// (offset, length) of each `raw_data` in the model file.
    pub inline: Vec<(u64, u64)>,
    /// (location, offset, length) of each externally stored one; no length: to the end of
    /// the file.
    pub external: Vec<(String, u64, Option<u64>)>,
}

/// Finds the data of the main graph's initializers (ModelProto.graph = 7, GraphProto.
/// initializer = 5, TensorProto.raw_data = 9, external_data = 13 of key = 1 / value = 2
/// entries, data_location = 14 with 1 = EXTERNAL).
pub(crate) fn initializer_data(b: &[u8]) -> Result<InitializerData, String> {
    let mut out = InitializerData::default();
    let text = |s: usize, e: usize| String::from_utf8_lossy(&b[s..e]).into_owned();
    for (f, v) in fields(b, 0, b.len())? {
        let (7, Value::Bytes(gs, ge)) = (f, v) else { continue };
        for (f, v) in fields(b, gs, ge)? {
            let (5, Value::Bytes(ts, te)) = (f, v) else { continue };
            let (mut raw, mut external, mut entries) = (None, false, vec![]);
            for (f, v) in fields(b, ts, te)? {
                match (f, v) {
                    (9, Value::Bytes(s, e)) => raw = Some((s as u64, (e - s) as u64)),
                    (14, Value::Varint(1)) => external = true,
                    (13, Value::Bytes(s, e)) => {
                        let (mut key, mut value) = (String::new(), String::new());
                        for (f, v) in fields(b, s, e)? {
                            match (f, v) {
                                (1, Value::Bytes(s, e)) => key = text(s, e),
                                (2, Value::Bytes(s, e)) => value = text(s, e),
                                _ => {}
                            }
                        }
                        entries.push((key, value));
                    }
                    _ => {}
                }
            }
            if external {
                let get = |k: &str| entries.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                let (Some(loc), Ok(off)) = (get("location"), get("offset").map_or(Ok(0), |o| o.parse::<u64>())) else { continue };
                out.external.push((loc, off, get("length").and_then(|l| l.parse().ok())));
            } else if let Some(r) = raw.filter(|r| r.1 > 0) {
                out.inline.push(r);
            }
        }
    }
    Ok(out)
}
