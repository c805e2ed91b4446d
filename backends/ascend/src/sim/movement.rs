//! Data movement, as CANN documents it: Tile, DepthToSpace/SpaceToDepth (NCHW, DCR or CRD),
//! PadV3 (constant, reflect, edge), ReverseSequence, Cumsum (a running sum along an axis), and
//! Col2im (PyTorch's fold).

use super::index::{coords, flat};
use super::{OpCx, SimError, Value};

pub(crate) fn eval(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    let one = |v: Value| Ok(vec![v]);
    match cx.op.r#type.as_str() {
        "Tile" => one(tile(cx)?),
        "DepthToSpace" => one(depth_space(cx, true)?),
        "SpaceToDepth" => one(depth_space(cx, false)?),
        "PadV3" => one(pad(cx)?),
        "ReverseSequence" => one(reverse_sequence(cx)?),
        "Cumsum" => one(cumsum(cx)?),
        "Col2im" => one(col2im(cx)?),
        t => cx.err(format!("{t} is not an op of movement.rs")),
    }
}

/// Tile (x, multiples): x repeated `multiples[i]` times along axis i.
fn tile(cx: &OpCx) -> Result<Value, SimError> {
    let (x, m) = (cx.input(0)?, cx.input(1)?);
    if m.data.len() != x.dims.len() || m.data.iter().any(|&v| v < 0.0) {
        return cx.err(format!("multiples {:?} for rank {}", m.data, x.dims.len()));
    }
    let dims: Vec<usize> = x.dims.iter().zip(&m.data).map(|(&d, &r)| d * r as usize).collect();
    let n: usize = dims.iter().product();
    let data = (0..n)
        .map(|f| {
            let c: Vec<usize> = coords(f, &dims).iter().zip(&x.dims).map(|(&i, &d)| i % d).collect();
            x.data[flat(&c, &x.dims)]
        })
        .collect();
    Ok(Value::new(x.dtype, dims, data))
}

/// DepthToSpace (NCHW): y[n, c, h·b + i, w·b + j] = x[n, channel, h, w] with channel
/// `(i·b + j)·C' + c` (DCR) or `c·b² + i·b + j` (CRD); SpaceToDepth is its DCR inverse.
fn depth_space(cx: &OpCx, to_space: bool) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    if cx.str("data_format")? != "NCHW" {
        return cx.err("data_format: NCHW is simulated");
    }
    let b = cx.int("block_size")? as usize;
    let [n, c, h, w] = x.dims[..] else { return cx.err(format!("x {:?} is not 4-D", x.dims)) };
    let crd = to_space && cx.str("mode")? == "CRD";
    if b == 0 || (to_space && c % (b * b) != 0) || (!to_space && (h % b != 0 || w % b != 0)) {
        return cx.err(format!("block {b} for {:?}", x.dims));
    }
    let (cs, hs, ws) = if to_space { (c / (b * b), h * b, w * b) } else { (c * b * b, h / b, w / b) };
    // (n, small-channel, big-h, big-w) ↔ (n, big-channel, small-h, small-w)
    let (sc, sh, sw) = if to_space { (cs, h, w) } else { (c, hs, ws) };
    let mut y = vec![0.0; x.data.len()];
    for ni in 0..n {
        for ci in 0..sc {
            for hi in 0..sh * b {
                for wi in 0..sw * b {
                    let (i, j) = (hi % b, wi % b);
                    let big = if crd { ci * b * b + i * b + j } else { (i * b + j) * sc + ci };
                    let space = ((ni * sc + ci) * sh * b + hi) * sw * b + wi;
                    let depth = ((ni * sc * b * b + big) * sh + hi / b) * sw + wi / b;
                    if to_space {
                        y[space] = x.data[depth];
                    } else {
                        y[depth] = x.data[space];
                    }
                }
            }
        }
    }
    Ok(Value::new(x.dtype, vec![n, cs, hs, ws], y))
}

/// PadV3 (x, paddings as (begin, end) pairs, constant_values?; mode).
fn pad(cx: &OpCx) -> Result<Value, SimError> {
    let (x, p) = (cx.input(0)?, cx.input(1)?);
    if !cx.bool("paddings_contiguous")? || p.data.len() != 2 * x.dims.len() || p.data.iter().any(|&v| v < 0.0) {
        return cx.err(format!("paddings {:?} for rank {}", p.data, x.dims.len()));
    }
    let mode = cx.str("mode")?;
    let value = cx.opt(2).and_then(|v| v.data.first().copied()).unwrap_or(0.0);
    let pads: Vec<(usize, usize)> = p.data.chunks(2).map(|c| (c[0] as usize, c[1] as usize)).collect();
    let dims: Vec<usize> = x.dims.iter().zip(&pads).map(|(&d, &(b, e))| d + b + e).collect();
    let n: usize = dims.iter().product();
    let mut data = Vec::with_capacity(n);
    for f in 0..n {
        let mut src = vec![];
        let mut inside = true;
        for ((&o, &d), &(b, _)) in coords(f, &dims).iter().zip(&x.dims).zip(&pads) {
            let i = o as i64 - b as i64;
            let d = d as i64;
            let i = match mode.as_str() {
                _ if (0..d).contains(&i) => i,
                "constant" => {
                    inside = false;
                    0
                }
                "edge" => i.clamp(0, d - 1),
                "reflect" if d > 1 => {
                    let period = 2 * (d - 1);
                    let m = i.rem_euclid(period);
                    if m < d {
                        m
                    } else {
                        period - m
                    }
                }
                "reflect" => 0,
                m => return cx.err(format!("mode \"{m}\"")),
            };
            src.push(i as usize);
        }
        data.push(if inside { x.data[flat(&src, &x.dims)] } else { value });
    }
    Ok(Value::new(x.dtype, dims, data))
}

/// ReverseSequence (x, seq_lengths; seq_dim, batch_dim): for each batch entry b, its first
/// `seq_lengths[b]` steps along seq_dim reversed.
fn reverse_sequence(cx: &OpCx) -> Result<Value, SimError> {
    let (x, lens) = (cx.input(0)?, cx.input(1)?);
    let r = x.dims.len();
    let (Some(t), Some(b)) = (super::ops::axis(cx.int("seq_dim")?, r), super::ops::axis(cx.int("batch_dim")?, r)) else {
        return cx.err("seq_dim or batch_dim out of range");
    };
    if lens.data.len() != x.dims[b] {
        return cx.err(format!("{} lengths for batch {}", lens.data.len(), x.dims[b]));
    }
    let mut y = x.clone();
    for f in 0..x.data.len() {
        let mut c = coords(f, &x.dims);
        let len = lens.data[c[b]] as usize;
        if len > x.dims[t] {
            return cx.err(format!("length {len} past {}", x.dims[t]));
        }
        if c[t] < len {
            c[t] = len - 1 - c[t];
        }
        y.data[f] = x.data[flat(&c, &x.dims)];
    }
    Ok(y)
}

/// Cumsum (x, axis; exclusive, reverse): the running sum along the axis, from its end when
/// `reverse`, each element left out of its own sum when `exclusive`.
fn cumsum(cx: &OpCx) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    let a = cx.input(1)?;
    let [a] = a.data[..] else { return cx.err("axis is not a scalar") };
    let Some(a) = super::ops::axis(a as i64, x.dims.len()) else { return cx.err(format!("axis {a}")) };
    let (exclusive, reverse) = (cx.bool("exclusive")?, cx.bool("reverse")?);
    let (outer, n, inner): (usize, usize, usize) = (x.dims[..a].iter().product(), x.dims[a], x.dims[a + 1..].iter().product());
    let mut y = x.clone();
    for o in 0..outer {
        for i in 0..inner {
            let mut sum = 0.0;
            for step in 0..n {
                let j = if reverse { n - 1 - step } else { step };
                let at = (o * n + j) * inner + i;
                let v = x.data[at];
                if exclusive {
                    y.data[at] = sum;
                    sum += v;
                } else {
                    sum += v;
                    y.data[at] = sum;
                }
            }
        }
    }
    Ok(y)
}

/// Col2im (x `[N, C, kh·kw, L]`, output_size (H, W); kernel_size, dilation, padding, stride:
/// PyTorch's fold): each column element added into the image at its window position, the L
/// blocks row-major over the sliding positions.
fn col2im(cx: &OpCx) -> Result<Value, SimError> {
    let (x, size) = (cx.input(0)?, cx.input(1)?);
    let pair = |name: &str| -> Result<(usize, usize), SimError> {
        match cx.ints(name)?[..] {
            [a, b] if a >= 0 && b >= 0 => Ok((a as usize, b as usize)),
            ref v => cx.err(format!("{name} = {v:?}: two values")),
        }
    };
    let ((kh, kw), (dh, dw), (ph, pw), (sh, sw)) = (pair("kernel_size")?, pair("dilation")?, pair("padding")?, pair("stride")?);
    let [h, w] = size.data[..] else { return cx.err("output_size is not (H, W)") };
    let (h, w) = (h as usize, w as usize);
    let [n, c, k, l] = x.dims[..] else { return cx.err(format!("x {:?} is not 4-D", x.dims)) };
    if k != kh * kw || sh == 0 || sw == 0 || kh == 0 || kw == 0 {
        return cx.err(format!("x {:?} for a {kh}x{kw} kernel", x.dims));
    }
    let blocks = |len: usize, k: usize, d: usize, p: usize, s: usize| (len + 2 * p).checked_sub(d * (k - 1) + 1).map(|v| v / s + 1);
    let (Some(bh), Some(bw)) = (blocks(h, kh, dh, ph, sh), blocks(w, kw, dw, pw, sw)) else {
        return cx.err("the window is larger than the padded image");
    };
    if bh * bw != l {
        return cx.err(format!("{l} blocks; the sizes give {bh}x{bw}"));
    }
    let mut y = vec![0.0; n * c * h * w];
    for b in 0..n {
        for ch in 0..c {
            for ki in 0..kh {
                for kj in 0..kw {
                    for (blk, &v) in x.data[((b * c + ch) * k + ki * kw + kj) * l..][..l].iter().enumerate() {
                        let r = (blk / bw * sh + ki * dh) as i64 - ph as i64;
                        let q = (blk % bw * sw + kj * dw) as i64 - pw as i64;
                        if (0..h as i64).contains(&r) && (0..w as i64).contains(&q) {
                            y[((b * c + ch) * h + r as usize) * w + q as usize] += v;
                        }
                    }
                }
            }
        }
    }
    Ok(Value::new(x.dtype, vec![n, c, h, w], y))
}
