//! Products, convolution, formats, pools, normalizations, softmax, FlashAttentionScore and
//! RotaryMul, as CANN documents them (../shared/ASCEND.md §1.7 for attributes, §2 for formats).

use super::ops::{axis, broadcast_dims, index_map};
use super::{OpCx, SimError, Value};
use kiln_ir::shape::strides;
use kiln_ir::DType;

pub(crate) fn eval(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    let one = |v: Value| Ok(vec![v]);
    match cx.op.r#type.as_str() {
        "BatchMatMulV2" => one(matmul(cx, cx.bool("adj_x1")?, cx.bool("adj_x2")?, false)?),
        "MatMulV2" => one(matmul(cx, cx.bool("transpose_x1")?, cx.bool("transpose_x2")?, true)?),
        "Conv2D" => one(conv2d(cx)?),
        "Conv2DTranspose" => one(conv2d_transpose(cx)?),
        "TransData" => one(transdata(cx)?),
        "MaxPoolV3" | "AvgPoolV2" => one(pool(cx)?),
        "LayerNorm" => layer_norm(cx, false),
        "LayerNormV3" => layer_norm(cx, true),
        "RmsNorm" => rms_norm(cx),
        "SoftmaxV2" | "LogSoftmaxV2" => one(softmax(cx)?),
        "FlashAttentionScore" => flash_attention(cx),
        "RotaryMul" => one(rotary_mul(cx)?),
        t => cx.err(format!("{t} is not an op of nn.rs")),
    }
}

/// C0 of the 5HD format: 32 bytes of 1-byte types, 16 elements of the others (GE's rule, fp32
/// included).
fn c0(d: DType) -> usize {
    if d.bits() == 8 {
        32
    } else {
        16
    }
}

/// NCHW → NC1HWC0 (channels zero-padded to C1·C0).
fn to_5hd(x: &Value) -> Value {
    let (c0, [n, c, h, w]) = (c0(x.dtype), [x.dims[0], x.dims[1], x.dims[2], x.dims[3]]);
    let c1 = c.div_ceil(c0);
    let mut data = vec![0.0; n * c1 * h * w * c0];
    for (i, &v) in x.data.iter().enumerate() {
        let (ni, ci, hi, wi) = (i / (c * h * w), (i / (h * w)) % c, (i / w) % h, i % w);
        data[(((ni * c1 + ci / c0) * h + hi) * w + wi) * c0 + ci % c0] = v;
    }
    Value { dtype: x.dtype, dims: vec![n, c1, h, w, c0], format: "NC1HWC0".into(), data }
}

/// NC1HWC0 → NCHW with `c` channels.
fn from_5hd(cx: &OpCx, x: &Value, c: usize) -> Result<Value, SimError> {
    let [n, c1, h, w, c0] = x.dims[..] else { return cx.err(format!("an NC1HWC0 value of rank {}", x.dims.len())) };
    if c0 != self::c0(x.dtype) || c1 != c.div_ceil(c0) {
        return cx.err(format!("{:?} is not {c} {} channels in NC1HWC0 (C0 = {})", x.dims, x.dtype, self::c0(x.dtype)));
    }
    let mut data = vec![0.0; n * c * h * w];
    for (i, d) in data.iter_mut().enumerate() {
        let (ni, ci, hi, wi) = (i / (c * h * w), (i / (h * w)) % c, (i / w) % h, i % w);
        *d = x.data[(((ni * c1 + ci / c0) * h + hi) * w + wi) * c0 + ci % c0];
    }
    Ok(Value::new(x.dtype, vec![n, c, h, w], data))
}

fn transdata(cx: &OpCx) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    for (a, want) in [("src_subformat", 0), ("dst_subformat", 0), ("groups", 1)] {
        if cx.int(a)? != want {
            return cx.err(format!("{a} other than {want} is not simulated"));
        }
    }
    let (src, dst) = (cx.str("src_format")?, cx.str("dst_format")?);
    if src != x.format && !(src == "NCHW" && x.format == "ND") {
        return cx.err(format!("src_format {src}, but the input is stored {}", x.format));
    }
    match (src.as_str(), dst.as_str()) {
        ("NCHW", "NC1HWC0") if x.dims.len() == 4 => Ok(to_5hd(x)),
        ("NC1HWC0", "NCHW") => {
            // The channel count is the origin shape's, as GE's converter takes it.
            let (_, out) = cx.out_desc(0)?;
            let Some(&c) = out.get(1) else { return cx.err("an NCHW output of rank < 2") };
            let mut v = from_5hd(cx, x, c)?;
            v.format = "NCHW".into();
            Ok(v)
        }
        _ => cx.err(format!("TransData {src} → {dst} of {:?} is not simulated", x.dims)),
    }
}

fn matmul(cx: &OpCx, t1: bool, t2: bool, two_d: bool) -> Result<Value, SimError> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    if cx.opt(3).is_some() || cx.int("offset_x")? != 0 {
        return cx.err("offset_w/offset_x (quantized products) are not simulated");
    }
    if a.dims.len() < 2 || b.dims.len() < 2 || (two_d && (a.dims.len() != 2 || b.dims.len() != 2)) {
        return cx.err(format!("operands {:?} and {:?}", a.dims, b.dims));
    }
    let (ra, rb) = (a.dims.len(), b.dims.len());
    let (m, k) = if t1 { (a.dims[ra - 1], a.dims[ra - 2]) } else { (a.dims[ra - 2], a.dims[ra - 1]) };
    let (k2, n) = if t2 { (b.dims[rb - 1], b.dims[rb - 2]) } else { (b.dims[rb - 2], b.dims[rb - 1]) };
    if k != k2 {
        return cx.err(format!("inner dimensions differ: {:?} and {:?} (transposes {t1}, {t2})", a.dims, b.dims));
    }
    let batch = broadcast_dims(cx, &[&a.dims[..ra - 2], &b.dims[..rb - 2]])?;
    let nb: usize = batch.iter().product();
    let (ia, ib) = (index_map(&batch, &a.dims[..ra - 2]), index_map(&batch, &b.dims[..rb - 2]));
    let bias = match cx.opt(2) {
        Some(bv) if bv.data.len() == n => Some(&bv.data),
        Some(bv) => return cx.err(format!("bias {:?} for {n} columns", bv.dims)),
        None => None,
    };
    let mut out = vec![0.0; nb * m * n];
    for bi in 0..nb {
        let (pa, pb) = (&a.data[ia[bi] * m * k..][..m * k], &b.data[ib[bi] * k * n..][..k * n]);
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for l in 0..k {
                    let x = if t1 { pa[l * m + i] } else { pa[i * k + l] };
                    let y = if t2 { pb[j * k + l] } else { pb[l * n + j] };
                    s += x * y;
                }
                out[(bi * m + i) * n + j] = s + bias.map_or(0.0, |b| b[j]);
            }
        }
    }
    let mut dims = batch;
    dims.extend([m, n]);
    Ok(Value::new(a.dtype, dims, out))
}

/// The 4-element `[1, 1, h, w]` list attr of an NCHW op as (h, w).
fn hw(cx: &OpCx, name: &str) -> Result<(usize, usize), SimError> {
    match cx.ints(name)?[..] {
        [1, 1, h, w] if h > 0 && w > 0 => Ok((h as usize, w as usize)),
        ref v => cx.err(format!("{name} = {v:?}: expected [1, 1, h, w] in NCHW order")),
    }
}

fn pads(cx: &OpCx) -> Result<[usize; 4], SimError> {
    match cx.ints("pads")?[..] {
        [t, b, l, r] if t >= 0 && b >= 0 && l >= 0 && r >= 0 => Ok([t as usize, b as usize, l as usize, r as usize]),
        ref v => cx.err(format!("pads = {v:?}: expected (top, bottom, left, right)")),
    }
}

/// Conv2DTranspose (input_size, x, filter `[C_in, C_out/groups, kH, kW]`, bias?): each input
/// element scattered through the window, `y[o·s + k·d − pad_begin] += x[o]·filter[k]`, into
/// the output of `input_size`, which must satisfy CANN's rule
/// `in = (out + pads − ((k−1)·d + 1) − output_padding)/s + 1`.
fn conv2d_transpose(cx: &OpCx) -> Result<Value, SimError> {
    if cx.str("data_format")? != "NCHW" || cx.opt(4).is_some() || cx.int("offset_x")? != 0 {
        return cx.err("NCHW without offsets is simulated");
    }
    let (size, x, f) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let g = usize::try_from(cx.int("groups")?).unwrap_or(0);
    let [n, c, h, w] = x.dims[..] else { return cx.err(format!("x {:?} is not NCHW", x.dims)) };
    let [fc, og, kh, kw] = f.dims[..] else { return cx.err(format!("filter {:?} is not 4-D", f.dims)) };
    let out: Vec<usize> = size.data.iter().map(|&v| v as usize).collect();
    let [on, o, oh, ow] = out[..] else { return cx.err(format!("input_size {:?}", size.data)) };
    if g == 0 || fc != c || c % g != 0 || o != og * g || on != n {
        return cx.err(format!("x {:?}, filter {:?}, {g} groups, input_size {out:?}", x.dims, f.dims));
    }
    let ((sh, sw), (dh, dw), [pt, pb, pl, pr]) = (hw(cx, "strides")?, hw(cx, "dilations")?, pads(cx)?);
    let opad = cx.ints("output_padding")?;
    let [0, 0, oph, opw] = opad[..] else { return cx.err(format!("output_padding {opad:?}")) };
    if kh == 0 || kw == 0 {
        return cx.err(format!("an empty filter {:?}", f.dims));
    }
    let (eh, ew) = ((kh - 1) * dh + 1, (kw - 1) * dw + 1);
    let back = |o: usize, p: usize, e: usize, op: i64, s: usize| (o as i64 + p as i64 - e as i64 - op) / s as i64 + 1;
    if back(oh, pt + pb, eh, oph, sh) != h as i64 || back(ow, pl + pr, ew, opw, sw) != w as i64 {
        return cx.err(format!("input_size {out:?} does not give x {:?} by the size rule", x.dims));
    }
    let bias = cx.opt(3);
    if bias.is_some_and(|b| b.data.len() != o) {
        return cx.err("bias is not one value per output channel");
    }
    let mut y = vec![0.0; n * o * oh * ow];
    for (i, v) in y.iter_mut().enumerate() {
        *v = bias.map_or(0.0, |b| b.data[(i / (oh * ow)) % o]);
    }
    let cg = c / g;
    for ni in 0..n {
        for ci in 0..c {
            let gi = ci / cg;
            for iy in 0..h {
                for ix in 0..w {
                    let xv = x.data[((ni * c + ci) * h + iy) * w + ix];
                    for co in 0..og {
                        let oc = gi * og + co;
                        for ky in 0..kh {
                            let yy = (iy * sh + ky * dh) as i64 - pt as i64;
                            if !(0..oh as i64).contains(&yy) {
                                continue;
                            }
                            for kx in 0..kw {
                                let xx = (ix * sw + kx * dw) as i64 - pl as i64;
                                if (0..ow as i64).contains(&xx) {
                                    y[((ni * o + oc) * oh + yy as usize) * ow + xx as usize] +=
                                        xv * f.data[((ci * og + co) * kh + ky) * kw + kx];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(Value::new(x.dtype, out, y))
}

fn conv2d(cx: &OpCx) -> Result<Value, SimError> {
    if cx.str("data_format")? != "NCHW" {
        return cx.err(format!("data_format {} (kiln writes NCHW)", cx.str("data_format")?));
    }
    if cx.opt(3).is_some() || cx.int("offset_x")? != 0 {
        return cx.err("offset_w/offset_x (quantized convolution) are not simulated");
    }
    let (x, f) = (cx.input(0)?, cx.input(1)?);
    let g = usize::try_from(cx.int("groups")?).unwrap_or(0);
    let [o, cg, kh, kw] = f.dims[..] else { return cx.err(format!("filter {:?} is not OIHW", f.dims)) };
    let five = x.format == "NC1HWC0";
    let x = if five { from_5hd(cx, x, cg * g)? } else { x.clone() };
    let [n, c, h, w] = x.dims[..] else { return cx.err(format!("input {:?} is not NCHW", x.dims)) };
    if g == 0 || c != cg * g || o % g != 0 {
        return cx.err(format!("{c} input channels, filter {:?}, {g} groups", f.dims));
    }
    let ((sh, sw), (dh, dw), [pt, pb, pl, pr]) = (hw(cx, "strides")?, hw(cx, "dilations")?, pads(cx)?);
    let (eh, ew) = ((kh - 1) * dh + 1, (kw - 1) * dw + 1);
    if h + pt + pb < eh || w + pl + pr < ew {
        return cx.err("the window is larger than the padded input");
    }
    let (oh, ow) = ((h + pt + pb - eh) / sh + 1, (w + pl + pr - ew) / sw + 1);
    let bias = cx.opt(2);
    if bias.is_some_and(|b| b.data.len() != o) {
        return cx.err(format!("bias of {} elements for {o} output channels", bias.map_or(0, |b| b.data.len())));
    }
    let og = o / g;
    let mut out = vec![0.0; n * o * oh * ow];
    // Each filter tap is added to a whole output row at once (the inner loop runs along the
    // row, contiguous for stride 1), over the output columns whose input column is inside.
    for ni in 0..n {
        for oc in 0..o {
            let gi = oc / og;
            let plane = &mut out[(ni * o + oc) * oh * ow..(ni * o + oc + 1) * oh * ow];
            plane.fill(bias.map_or(0.0, |b| b.data[oc]));
            for ci in 0..cg {
                let xc = gi * cg + ci;
                let src = &x.data[(ni * c + xc) * h * w..(ni * c + xc + 1) * h * w];
                for ky in 0..kh {
                    for kx in 0..kw {
                        let wt = f.data[((oc * cg + ci) * kh + ky) * kw + kx];
                        // Output columns xo with 0 <= xo*sw + kx*dw - pl < w.
                        let off = (kx * dw) as i64 - pl as i64;
                        let lo = if off >= 0 { 0 } else { ((-off) as usize).div_ceil(sw) };
                        let hi = if (w as i64) <= off { 0 } else { (((w as i64 - off) as usize).div_ceil(sw)).min(ow) };
                        for y in 0..oh {
                            let iy = (y * sh + ky * dh) as i64 - pt as i64;
                            if iy < 0 || iy >= h as i64 {
                                continue;
                            }
                            let row = &src[iy as usize * w..(iy as usize + 1) * w];
                            let dst = &mut plane[y * ow..(y + 1) * ow];
                            for xo in lo..hi {
                                dst[xo] += wt * row[((xo * sw) as i64 + off) as usize];
                            }
                        }
                    }
                }
            }
        }
    }
    let y = Value::new(x.dtype, vec![n, o, oh, ow], out);
    Ok(if five { to_5hd(&y) } else { y })
}

/// Output size of a pooling window: floor, or ceil where the last window still starts inside
/// the input or its leading pad.
fn pooled(size: usize, k: usize, s: usize, p0: usize, p1: usize, ceil: bool) -> usize {
    let span = (size + p0 + p1).saturating_sub(k);
    let mut o = if ceil { span.div_ceil(s) + 1 } else { span / s + 1 };
    if ceil && (o - 1) * s >= size + p0 {
        o -= 1;
    }
    o
}

fn pool(cx: &OpCx) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    if cx.str("data_format")? != "NCHW" || cx.str("padding_mode")? != "CALCULATED" || cx.bool("global_pooling")? {
        return cx.err("only data_format NCHW, padding_mode CALCULATED and no global_pooling are simulated");
    }
    let max = cx.op.r#type == "MaxPoolV3";
    let (exclusive, divisor) = if max { (true, 0) } else { (cx.bool("exclusive")?, cx.int("divisor_override")?) };
    let [n, c, h, w] = x.dims[..] else { return cx.err(format!("input {:?} is not NCHW", x.dims)) };
    let ((kh, kw), (sh, sw), [pt, pb, pl, pr], ceil) = (hw(cx, "ksize")?, hw(cx, "strides")?, pads(cx)?, cx.bool("ceil_mode")?);
    let (oh, ow) = (pooled(h, kh, sh, pt, pb, ceil), pooled(w, kw, sw, pl, pr, ceil));
    let mut out = vec![0.0; n * c * oh * ow];
    for p in 0..n * c {
        for y in 0..oh {
            for xo in 0..ow {
                let (y0, x0) = ((y * sh) as i64 - pt as i64, (xo * sw) as i64 - pl as i64);
                let (mut acc, mut count) = (if max { f64::NEG_INFINITY } else { 0.0 }, 0usize);
                for iy in y0..y0 + kh as i64 {
                    for ix in x0..x0 + kw as i64 {
                        if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                            continue;
                        }
                        let v = x.data[(p * h + iy as usize) * w + ix as usize];
                        acc = if max { acc.max(v) } else { acc + v };
                        count += 1;
                    }
                }
                out[(p * oh + y) * ow + xo] = if max {
                    acc
                } else if divisor != 0 {
                    acc / divisor as f64
                } else if exclusive {
                    acc / count as f64
                } else {
                    // The window clipped to the padded input.
                    let span = |o0: i64, k: usize, size: usize, p1: usize| (o0 + k as i64).min((size + p1) as i64) - o0;
                    acc / (span(y0, kh, h, pb) * span(x0, kw, w, pr)) as f64
                };
            }
        }
    }
    Ok(Value::new(x.dtype, vec![n, c, oh, ow], out))
}

/// (outer, inner) element counts around axis `from`.
fn split_at(dims: &[usize], from: usize) -> (usize, usize) {
    (dims[..from].iter().product(), dims[from..].iter().product())
}

/// LayerNorm (statistics: mean and variance) or LayerNormV3 (`rstd`: mean and 1/√(var + ε)).
fn layer_norm(cx: &OpCx, rstd: bool) -> Result<Vec<Value>, SimError> {
    let (x, gamma, beta) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    let r = x.dims.len();
    let (Some(na), Some(pa)) = (axis(cx.int("begin_norm_axis")?, r), axis(cx.int("begin_params_axis")?, r)) else {
        return cx.err("begin_norm_axis or begin_params_axis out of range");
    };
    if gamma.dims != x.dims[pa..] || beta.dims != x.dims[pa..] || pa < na {
        return cx.err(format!("gamma {:?} and beta {:?} for x {:?} from axis {pa}", gamma.dims, beta.dims, x.dims));
    }
    let eps = cx.float("epsilon")?;
    let (outer, inner) = split_at(&x.dims, na);
    let params = gamma.data.len();
    let (mut y, mut mean, mut var) = (vec![0.0; x.data.len()], vec![0.0; outer], vec![0.0; outer]);
    for o in 0..outer {
        let row = &x.data[o * inner..][..inner];
        let m = row.iter().sum::<f64>() / inner as f64;
        let v = row.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / inner as f64;
        (mean[o], var[o]) = (m, if rstd { 1.0 / (v + eps).sqrt() } else { v });
        for (i, a) in row.iter().enumerate() {
            let p = (o * inner + i) % params;
            y[o * inner + i] = (a - m) / (v + eps).sqrt() * gamma.data[p] + beta.data[p];
        }
    }
    let stat: Vec<usize> = x.dims.iter().enumerate().map(|(i, &d)| if i < na { d } else { 1 }).collect();
    Ok(vec![Value::new(x.dtype, x.dims.clone(), y), Value::new(x.dtype, stat.clone(), mean), Value::new(x.dtype, stat, var)])
}

fn rms_norm(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    let (x, gamma) = (cx.input(0)?, cx.input(1)?);
    let r = x.dims.len();
    if gamma.dims.len() > r || gamma.dims != x.dims[r - gamma.dims.len()..] {
        return cx.err(format!("gamma {:?} is not x {:?}'s trailing dims", gamma.dims, x.dims));
    }
    let eps = cx.float("epsilon")?;
    let (outer, inner) = split_at(&x.dims, r - gamma.dims.len());
    let (mut y, mut rstd) = (vec![0.0; x.data.len()], vec![0.0; outer]);
    for o in 0..outer {
        let row = &x.data[o * inner..][..inner];
        let s = 1.0 / (row.iter().map(|a| a * a).sum::<f64>() / inner as f64 + eps).sqrt();
        rstd[o] = s;
        for (i, a) in row.iter().enumerate() {
            y[o * inner + i] = a * s * gamma.data[i];
        }
    }
    let stat: Vec<usize> = x.dims.iter().enumerate().map(|(i, &d)| if i < r - gamma.dims.len() { d } else { 1 }).collect();
    Ok(vec![Value::new(x.dtype, x.dims.clone(), y), Value::new(DType::F32, stat, rstd)])
}

fn softmax(cx: &OpCx) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    let log = cx.op.r#type == "LogSoftmaxV2";
    let dtype = if !log && cx.bool("half_to_float")? { DType::F32 } else { x.dtype };
    let axes = cx.ints("axes")?;
    let [a] = axes[..] else { return cx.err(format!("axes {axes:?}: one axis is simulated")) };
    let Some(a) = axis(a, x.dims.len()) else { return cx.err(format!("axis {a} out of range")) };
    let s = strides(&x.dims);
    let (n, step) = (x.dims[a], s[a]);
    let mut y = vec![0.0; x.data.len()];
    for start in (0..x.data.len()).filter(|i| (i / step) % n == 0) {
        let idx = |j: usize| start + j * step;
        let m = (0..n).map(|j| x.data[idx(j)]).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..n).map(|j| (x.data[idx(j)] - m).exp()).sum();
        for j in 0..n {
            let z = x.data[idx(j)] - m;
            y[idx(j)] = if log { z - sum.ln() } else { z.exp() / sum };
        }
    }
    Ok(Value::new(dtype, x.dims.clone(), y))
}

/// Q, K, V, the optional `real_shift` (3) and `atten_mask` (6); outputs softmax_max,
/// softmax_sum (fp32 `[B, N1, Sq, 8]`), softmax_out (unused: empty) and attention_out.
fn flash_attention(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    let (q, k, v) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    for i in [4, 5, 7, 8, 9, 10, 11] {
        if cx.opt(i).is_some() {
            return cx.err(format!("input {i} (dropout, padding, prefix or sequence lengths) is not simulated"));
        }
    }
    if cx.float("keep_prob")? != 1.0 || cx.int("sparse_mode")? != 0 {
        return cx.err("dropout (keep_prob < 1) and sparse modes other than 0 are not simulated");
    }
    let n1 = usize::try_from(cx.int("head_num")?).unwrap_or(0);
    let layout = cx.str("input_layout")?;
    // (b, s, n, d) of a tensor and the flat index of (b, n, s, d) in it.
    let geo = |t: &Value, heads: Option<usize>| -> Result<[usize; 4], SimError> {
        match (layout.as_str(), &t.dims[..]) {
            ("BSH", &[b, s, h]) => {
                let d = q.dims[2] / n1.max(1);
                let n = heads.unwrap_or(h.checked_div(d).unwrap_or(0));
                Ok([b, s, n, d])
            }
            ("BNSD", &[b, n, s, d]) | ("BSND", &[b, s, n, d]) => Ok([b, s, n, d]),
            _ => cx.err(format!("input_layout {layout} with a {:?} tensor", t.dims)),
        }
    };
    let at = |dims: [usize; 4], b: usize, n: usize, s: usize, d: usize| -> usize {
        let [_, ss, nn, dd] = dims;
        match layout.as_str() {
            "BNSD" => ((b * nn + n) * ss + s) * dd + d,
            _ => ((b * ss + s) * nn + n) * dd + d,
        }
    };
    let (gq, gk, gv) = (geo(q, Some(n1))?, geo(k, None)?, geo(v, None)?);
    let ([b, sq, _, d], [_, sk, n2, _]) = (gq, gk);
    if n1 == 0 || q.dims.iter().product::<usize>() != b * sq * n1 * d || gk != gv || gk[0] != b || gk[3] != d || n2 == 0 || n1 % n2 != 0 {
        return cx.err(format!("query {:?}, key {:?}, value {:?} with {n1} heads in {layout}", q.dims, k.dims, v.dims));
    }
    let scale = cx.float("scale_value")?;
    let (pre, next) = (cx.int("pre_tockens")?, cx.int("next_tockens")?);
    let pse_scaled = cx.op.attr.contains_key("pse_type") && cx.int("pse_type")? == 1;
    let full = [b, n1, sq, sk];
    let pse = match cx.opt(3) {
        Some(p) if (p.dims.len() == 4 && (p.dims[0] == 1 || p.dims[0] == b) && p.dims[1..] == [n1, sq, sk]) => {
            Some((p, index_map(&full, &p.dims)))
        }
        Some(p) => return cx.err(format!("real_shift {:?} is neither BNSS nor 1NSS", p.dims)),
        None => None,
    };
    let mask = match cx.opt(6) {
        Some(m) if !matches!(m.dtype, DType::Bool | DType::U8) => return cx.err(format!("atten_mask is {}", m.dtype)),
        Some(m) => {
            let ok = match m.dims[..] {
                [s1, s2] => s1 == sq && s2 == sk,
                [mb, mn, s1, s2] => (mb == 1 || mb == b) && (mn == 1 || mn == n1) && s1 == sq && s2 == sk,
                _ => false,
            };
            if !ok {
                return cx.err(format!("atten_mask {:?} is not SS, 11SS, B1SS or BNSS", m.dims));
            }
            Some((m, index_map(&full, &m.dims)))
        }
        None => None,
    };
    let mut out = vec![0.0; q.data.len()];
    let (mut smax, mut ssum) = (vec![0.0; b * n1 * sq * 8], vec![0.0; b * n1 * sq * 8]);
    let mut row = vec![0.0; sk];
    for bi in 0..b {
        for h in 0..n1 {
            let kh = h / (n1 / n2);
            for i in 0..sq {
                for (j, r) in row.iter_mut().enumerate() {
                    let flat = ((bi * n1 + h) * sq + i) * sk + j;
                    let qk: f64 = (0..d).map(|e| q.data[at(gq, bi, h, i, e)] * k.data[at(gk, bi, kh, j, e)]).sum();
                    let p = pse.as_ref().map_or(0.0, |(p, ix)| p.data[ix[flat]]);
                    let s = if pse_scaled { scale * (qk + p) } else { scale * qk + p };
                    let masked = mask.as_ref().is_some_and(|(m, ix)| m.data[ix[flat]] != 0.0)
                        || (j as i64) < i as i64 - pre
                        || (j as i64) > i as i64 + next;
                    *r = if masked { f64::NEG_INFINITY } else { s };
                }
                let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = row.iter().map(|s| (s - m).exp()).sum();
                let st = ((bi * n1 + h) * sq + i) * 8;
                smax[st..st + 8].fill(m);
                ssum[st..st + 8].fill(sum);
                for e in 0..d {
                    let acc: f64 = (0..sk).map(|j| (row[j] - m).exp() / sum * v.data[at(gv, bi, kh, j, e)]).sum();
                    out[at(gq, bi, h, i, e)] = acc;
                }
            }
        }
    }
    let stat = vec![b, n1, sq, 8];
    Ok(vec![
        Value::new(DType::F32, stat.clone(), smax),
        Value::new(DType::F32, stat, ssum),
        Value::new(q.dtype, vec![0], vec![]),
        Value::new(q.dtype, q.dims.clone(), out),
    ])
}

/// `x·r1 + rotate_half(x)·r2`, rotate_half(x) = `[-x₂, x₁]` over the last axis.
fn rotary_mul(cx: &OpCx) -> Result<Value, SimError> {
    let (x, r1, r2) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    if x.dims.len() != 4 || r1.dtype != x.dtype || r2.dtype != x.dtype {
        return cx.err(format!("x {}{:?}, r1 {}, r2 {}: a 4-D x and tables of its dtype", x.dtype, x.dims, r1.dtype, r2.dtype));
    }
    for r in [r1, r2] {
        if broadcast_dims(cx, &[&x.dims, &r.dims])? != x.dims {
            return cx.err(format!("{:?} does not broadcast to x {:?}", r.dims, x.dims));
        }
    }
    let d = x.dims[3];
    if d % 2 != 0 {
        return cx.err(format!("an odd last dimension {d}"));
    }
    let (i1, i2) = (index_map(&x.dims, &r1.dims), index_map(&x.dims, &r2.dims));
    let half = d / 2;
    let y = (0..x.data.len())
        .map(|i| {
            let e = i % d;
            let rot = if e < half { -x.data[i + half] } else { x.data[i - half] };
            x.data[i] * r1.data[i1[i]] + rot * r2.data[i2[i]]
        })
        .collect();
    Ok(Value::new(x.dtype, x.dims.clone(), y))
}
