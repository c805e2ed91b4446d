//! Conv (1-D/2-D/3-D, grouped, depthwise, dilated, auto_pad) by im2col + GEMM, and
//! ConvTranspose by direct scatter. Windows are resolved here and shared with pooling.

use super::elementwise::tensor;
use super::gemm_kernel::gemm;
use super::{invalid, opt, req, AutoPad, DimNamer, InType, Op, OpError, TensorType, Window};
use crate::dtype::DType;
use crate::shape::{Dim, Shape};
use crate::tensor::{Data, Tensor};
use rayon::prelude::*;

/// A window resolved against concrete spatial sizes.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pad_begin: Vec<usize>,
    pub out: Vec<usize>,
}

fn list_or(v: &[i64], n: usize, default: i64) -> Result<Vec<usize>, OpError> {
    if v.is_empty() {
        return Ok(vec![default as usize; n]);
    }
    if v.len() != n || v.iter().any(|&x| x < 0) {
        return invalid(format!("window attribute {v:?} does not fit {n} spatial dims"));
    }
    Ok(v.iter().map(|&x| x as usize).collect())
}

/// Resolves strides, dilations and padding; `ceil_mode` applies to pooling only.
pub fn resolve(w: &Window, input: &[usize], kernel: &[usize], ceil_mode: bool) -> Result<Resolved, OpError> {
    let n = input.len();
    if kernel.len() != n {
        return invalid(format!("kernel rank {} does not match {} spatial dims", kernel.len(), n));
    }
    let strides = list_or(&w.strides, n, 1)?;
    let dilations = list_or(&w.dilations, n, 1)?;
    if strides.contains(&0) || dilations.contains(&0) {
        return invalid("strides and dilations must be positive");
    }
    let pads = if w.pads.is_empty() { vec![0; 2 * n] } else { list_or(&w.pads, 2 * n, 0)? };
    let mut pad_begin = vec![0; n];
    let mut out = vec![0; n];
    for i in 0..n {
        let ek = (kernel[i].max(1) - 1) * dilations[i] + 1;
        match w.auto_pad {
            AutoPad::SameUpper | AutoPad::SameLower => {
                let o = input[i].div_ceil(strides[i]);
                let total = ((o.max(1) - 1) * strides[i] + ek).saturating_sub(input[i]);
                pad_begin[i] = if w.auto_pad == AutoPad::SameUpper { total / 2 } else { total - total / 2 };
                out[i] = o;
            }
            AutoPad::Valid | AutoPad::NotSet => {
                let (pb, pe) = if w.auto_pad == AutoPad::Valid { (0, 0) } else { (pads[i], pads[i + n]) };
                let span = input[i] + pb + pe;
                if span < ek {
                    return invalid(format!("window {ek} larger than padded input {span}"));
                }
                let mut o = if ceil_mode { (span - ek).div_ceil(strides[i]) + 1 } else { (span - ek) / strides[i] + 1 };
                if ceil_mode && (o - 1) * strides[i] >= input[i] + pb {
                    o -= 1;
                }
                pad_begin[i] = pb;
                out[i] = o;
            }
        }
    }
    Ok(Resolved { kernel: kernel.to_vec(), strides, dilations, pad_begin, out })
}

/// Output spatial dims when the input spatial dims are known, fresh symbols otherwise.
pub(crate) fn infer_spatial(
    w: &Window,
    input: &[Dim],
    kernel: &[usize],
    ceil_mode: bool,
    names: &mut DimNamer,
) -> Result<Vec<Dim>, OpError> {
    match input.iter().map(Dim::known).collect::<Option<Vec<_>>>() {
        Some(sizes) => Ok(resolve(w, &sizes, kernel, ceil_mode)?.out.into_iter().map(Dim::Known).collect()),
        None => Ok(input.iter().map(|_| names.fresh()).collect()),
    }
}

fn kernel_of(w: &Window, wshape: &[Dim]) -> Result<Vec<usize>, OpError> {
    if !w.kernel_shape.is_empty() {
        let k = list_or(&w.kernel_shape, w.kernel_shape.len(), 1)?;
        let consistent = k.len() + 2 == wshape.len() && k.iter().zip(&wshape[2..]).all(|(&k, d)| d.known().is_none_or(|n| n == k));
        if !consistent {
            return invalid(format!("kernel_shape {:?} contradicts the weight's spatial dims", w.kernel_shape));
        }
        return Ok(k);
    }
    wshape[2..].iter().map(|d| d.known().ok_or_else(|| OpError::Invalid("conv weight needs known spatial dims".into()))).collect()
}

pub(crate) fn infer_conv(op: &Op, w: &Window, ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let (x, wt, dtype) = match op {
        Op::QLinearConv { .. } => (req(ins, 0)?, req(ins, 3)?, req(ins, 7)?.dtype),
        Op::ConvInteger { .. } => (req(ins, 0)?, req(ins, 1)?, DType::I32),
        _ => (req(ins, 0)?, req(ins, 1)?, req(ins, 0)?.dtype),
    };
    if x.shape.rank() < 3 || wt.shape.rank() != x.shape.rank() {
        return invalid(format!("Conv: input {} and weight {} must have equal rank >= 3", x.shape, wt.shape));
    }
    let k = kernel_of(w, &wt.shape.0)?;
    let mut dims = vec![x.shape.0[0].clone(), wt.shape.0[0].clone()];
    dims.extend(infer_spatial(w, &x.shape.0[2..], &k, false, names)?);
    Ok(vec![TensorType::new(dtype, Shape(dims))])
}

/// Conv over f32 or f64 buffers. `x` [N, C, *S], `w` [M, C/group, *K], `b` [M].
fn conv_core<T>(x: &[T], xd: &[usize], wv: &[T], wd: &[usize], r: &Resolved, group: usize) -> Vec<T>
where
    T: Copy + Send + Sync + Default + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
{
    let (n, c) = (xd[0], xd[1]);
    let m = wd[0];
    let cg = c / group;
    let mg = m / group;
    let sp_in: Vec<usize> = xd[2..].to_vec();
    let in_sz: usize = sp_in.iter().product();
    let out_sz: usize = r.out.iter().product();
    let kprod: usize = r.kernel.iter().product();
    let nd = sp_in.len();
    // For each (kernel offset, output position): the input spatial offset, or None in padding.
    let mut taps: Vec<Option<usize>> = vec![None; kprod * out_sz];
    for kk in 0..kprod {
        let mut kidx = vec![0; nd];
        let mut t = kk;
        for d in (0..nd).rev() {
            kidx[d] = t % r.kernel[d];
            t /= r.kernel[d];
        }
        for o in 0..out_sz {
            let mut t = o;
            let mut off = 0usize;
            let mut ok = true;
            let mut mul = 1;
            for d in (0..nd).rev() {
                let od = t % r.out[d];
                t /= r.out[d];
                let pos = (od * r.strides[d] + kidx[d] * r.dilations[d]) as isize - r.pad_begin[d] as isize;
                if pos < 0 || pos as usize >= sp_in[d] {
                    ok = false;
                    break;
                }
                off += pos as usize * mul;
                mul *= sp_in[d];
            }
            taps[kk * out_sz + o] = ok.then_some(off);
        }
    }
    let mut y = vec![T::default(); n * m * out_sz];
    let rows = cg * kprod;
    for b in 0..n {
        for g in 0..group {
            let mut cols = vec![T::default(); rows * out_sz];
            cols.par_chunks_mut(out_sz).enumerate().for_each(|(row, dst)| {
                let (ci, kk) = (g * cg + row / kprod, row % kprod);
                let src = &x[(b * c + ci) * in_sz..(b * c + ci + 1) * in_sz];
                for (o, d) in dst.iter_mut().enumerate() {
                    if let Some(off) = taps[kk * out_sz + o] {
                        *d = src[off];
                    }
                }
            });
            let wg = &wv[g * mg * rows..(g + 1) * mg * rows];
            let yo = (b * m + g * mg) * out_sz;
            gemm(mg, out_sz, rows, wg, &cols, &mut y[yo..yo + mg * out_sz]);
        }
    }
    y
}

pub(crate) fn eval_conv(w: &Window, group: i64, x: &Tensor, wt: &Tensor, bias: Option<&Tensor>) -> Result<Tensor, OpError> {
    let (xd, wd) = (x.dims(), wt.dims());
    if xd.len() < 3 || wd.len() != xd.len() {
        return invalid(format!("Conv: input {xd:?} and weight {wd:?} must have equal rank >= 3"));
    }
    let group = group.max(1) as usize;
    if xd[1] != wd[1] * group || wd[0] % group != 0 {
        return invalid(format!("Conv: input channels {} do not match weight {wd:?} with group {group}", xd[1]));
    }
    let kernel: Vec<usize> = wd[2..].to_vec();
    if !w.kernel_shape.is_empty() && w.kernel_shape.iter().map(|&k| k as usize).ne(kernel.iter().copied()) {
        return invalid(format!("Conv: kernel_shape {:?} contradicts the weight's {kernel:?}", w.kernel_shape));
    }
    let r = resolve(w, &xd[2..], &kernel, false)?;
    let mut dims = vec![xd[0], wd[0]];
    dims.extend(&r.out);
    // Pads come from the model: refuse an output no machine can hold before allocating it.
    super::checked_numel(&dims)?;
    let out_sz: usize = r.out.iter().product();
    let data = match (x.data(), wt.data()) {
        (Data::F64(xv), Data::F64(wv)) => {
            let mut y = conv_core(xv, xd, wv, wd, &r, group);
            if let Some(b) = bias {
                add_bias(&mut y, &b.to_f64(), out_sz);
            }
            Data::F64(y)
        }
        _ if x.dtype().is_float() => {
            let widen = |t: &Tensor| -> Vec<f32> {
                match t.data() {
                    Data::F32(v) => v.clone(),
                    _ => t.to_f64().iter().map(|&v| v as f32).collect(),
                }
            };
            let (xv, wv) = (widen(x), widen(wt));
            let mut y = conv_core(&xv, xd, &wv, wd, &r, group);
            if let Some(b) = bias {
                add_bias(&mut y, &widen(b), out_sz);
            }
            match x.dtype() {
                DType::F32 => Data::F32(y),
                dt => Data::from_f64(dt, &y.iter().map(|&v| v as f64).collect::<Vec<_>>()),
            }
        }
        _ => return Err(OpError::DType { index: 0, dtype: x.dtype() }),
    };
    Ok(tensor(dims, data))
}

fn add_bias<T: Copy + std::ops::Add<Output = T>>(y: &mut [T], b: &[T], out_sz: usize) {
    if out_sz == 0 || b.is_empty() {
        return;
    }
    for (i, chunk) in y.chunks_mut(out_sz).enumerate() {
        let bv = b[i % b.len()];
        for v in chunk {
            *v = *v + bv;
        }
    }
}

/// A ConvTranspose's resolved window: output position `o = i * stride + k * dilation -
/// pad_begin` for input position `i` and kernel tap `k`, per spatial axis.
#[derive(Clone, Debug, PartialEq)]
pub struct TransposeGeom {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pad_begin: Vec<usize>,
    /// The output's spatial dims.
    pub out: Vec<usize>,
}

/// Resolves a ConvTranspose's window (pads, auto_pad, output_padding, output_shape) for
/// spatial input dims `input` and kernel dims `kernel`.
pub fn transpose_geom(
    w: &Window,
    input: &[usize],
    kernel: &[usize],
    output_padding: &[i64],
    output_shape: &[i64],
) -> Result<TransposeGeom, OpError> {
    let n = input.len();
    let strides = list_or(&w.strides, n, 1)?;
    let dilations = list_or(&w.dilations, n, 1)?;
    let op = list_or(output_padding, n, 0)?;
    let pads = if w.pads.is_empty() { vec![0; 2 * n] } else { list_or(&w.pads, 2 * n, 0)? };
    let mut pad_begin = vec![0; n];
    let mut out = vec![0; n];
    let os = if output_shape.is_empty() { None } else { Some(list_or(&output_shape[output_shape.len().saturating_sub(n)..], n, 0)?) };
    for i in 0..n {
        let ek = (kernel[i] - 1) * dilations[i] + 1;
        let full = strides[i] * (input[i] - 1) + op[i] + ek;
        let same = matches!(w.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
        let target = match &os {
            Some(o) => Some(o[i]),
            None if same => Some(input[i] * strides[i]),
            None => None,
        };
        match target {
            Some(t) => {
                let total = full.saturating_sub(t);
                pad_begin[i] = if w.auto_pad == AutoPad::SameUpper { total / 2 } else { total - total / 2 };
                out[i] = t;
            }
            None => {
                let (pb, pe) = if w.auto_pad == AutoPad::Valid { (0, 0) } else { (pads[i], pads[i + n]) };
                if full < pb + pe {
                    return invalid("ConvTranspose: padding larger than output");
                }
                pad_begin[i] = pb;
                out[i] = full - pb - pe;
            }
        }
    }
    Ok(TransposeGeom { kernel: kernel.to_vec(), strides, dilations, pad_begin, out })
}

pub(crate) fn infer_conv_transpose(
    w: &Window,
    group: i64,
    output_padding: &[i64],
    output_shape: &[i64],
    ins: &[Option<InType>],
    names: &mut DimNamer,
) -> Result<Vec<TensorType>, OpError> {
    let (x, wt) = (req(ins, 0)?, req(ins, 1)?);
    if x.shape.rank() < 3 || wt.shape.rank() != x.shape.rank() {
        return invalid("ConvTranspose: input and weight must have equal rank >= 3");
    }
    let k = kernel_of(w, &wt.shape.0)?;
    let m = match &wt.shape.0[1] {
        Dim::Known(v) => Dim::Known(v * group.max(1) as usize),
        d => d.clone(),
    };
    let mut dims = vec![x.shape.0[0].clone(), m];
    match x.shape.0[2..].iter().map(Dim::known).collect::<Option<Vec<_>>>() {
        Some(sp) => dims.extend(transpose_geom(w, &sp, &k, output_padding, output_shape)?.out.into_iter().map(Dim::Known)),
        None => dims.extend((2..x.shape.rank()).map(|_| names.fresh())),
    }
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

pub(crate) fn eval_conv_transpose(
    w: &Window,
    group: i64,
    output_padding: &[i64],
    output_shape: &[i64],
    ins: &[Option<&Tensor>],
) -> Result<Tensor, OpError> {
    let (x, wt) = (*req(ins, 0)?, *req(ins, 1)?);
    let (xd, wd) = (x.dims(), wt.dims());
    if xd.len() < 3 || wd.len() != xd.len() {
        return invalid("ConvTranspose: input and weight must have equal rank >= 3");
    }
    let group = group.max(1) as usize;
    let (n, c) = (xd[0], xd[1]);
    if c != wd[0] || c % group != 0 {
        return invalid(format!("ConvTranspose: input channels {c} do not match weight {wd:?}"));
    }
    let (cg, mg) = (c / group, wd[1]);
    let m = mg * group;
    if !w.kernel_shape.is_empty() && w.kernel_shape.iter().map(|&k| k as usize).ne(wd[2..].iter().copied()) {
        return invalid(format!("ConvTranspose: kernel_shape {:?} contradicts the weight's {:?}", w.kernel_shape, &wd[2..]));
    }
    let g = transpose_geom(w, &xd[2..], &wd[2..], output_padding, output_shape)?;
    let nd = xd.len() - 2;
    let in_sz: usize = xd[2..].iter().product();
    let out_sz: usize = g.out.iter().product();
    let kprod: usize = g.kernel.iter().product();
    let (xv, wv) = (x.to_f64(), wt.to_f64());
    let mut y = vec![0f64; n * m * out_sz];
    let in_str = crate::shape::strides(&xd[2..]);
    let out_str = crate::shape::strides(&g.out);
    let k_str = crate::shape::strides(&g.kernel);
    for b in 0..n {
        for ci in 0..c {
            let gi = ci / cg;
            for p in 0..in_sz {
                let xval = xv[(b * c + ci) * in_sz + p];
                for kk in 0..kprod {
                    let mut off = 0usize;
                    let mut ok = true;
                    for d in 0..nd {
                        let ip = (p / in_str[d]) % xd[2 + d];
                        let kp = (kk / k_str[d]) % g.kernel[d];
                        let o = (ip * g.strides[d] + kp * g.dilations[d]) as isize - g.pad_begin[d] as isize;
                        if o < 0 || o as usize >= g.out[d] {
                            ok = false;
                            break;
                        }
                        off += o as usize * out_str[d];
                    }
                    if !ok {
                        continue;
                    }
                    for mo in 0..mg {
                        let wval = wv[(ci * mg + mo) * kprod + kk];
                        y[(b * m + gi * mg + mo) * out_sz + off] += xval * wval;
                    }
                }
            }
        }
    }
    if let Some(bias) = opt(ins, 2) {
        add_bias(&mut y, &bias.to_f64(), out_sz);
    }
    let mut dims = vec![n, m];
    dims.extend(&g.out);
    Ok(tensor(dims, Data::from_f64(x.dtype(), &y)))
}

/// Col2Im output: [N, C, *image_shape] where C = input channels / prod(block_shape).
pub(crate) fn infer_col2im(ins: &[Option<InType>], names: &mut DimNamer) -> Result<Vec<TensorType>, OpError> {
    let x = req(ins, 0)?;
    let (img, blk) = (super::shape_ops::const_ints(opt(ins, 1)), super::shape_ops::const_ints(opt(ins, 2)));
    let (Some(img), Some(blk)) = (img, blk) else {
        let r = req(ins, 1)?.shape.0.first().and_then(Dim::known).unwrap_or(2);
        return Ok(vec![TensorType::new(x.dtype, names.shape(r + 2))]);
    };
    let k: i64 = blk.iter().product();
    let c = match &x.shape.0[1] {
        Dim::Known(n) if k > 0 => Dim::Known(*n / k as usize),
        _ => names.fresh(),
    };
    let mut dims = vec![x.shape.0[0].clone(), c];
    dims.extend(img.iter().map(|&v| Dim::Known(v.max(0) as usize)));
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

/// Col2Im: the adjoint of im2col, summing every column entry back into its image position.
pub(crate) fn eval_col2im(dilations: &[i64], pads: &[i64], strides: &[i64], ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let x = *req(ins, 0)?;
    let img: Vec<usize> = req(ins, 1)?.to_i64().iter().map(|&v| v.max(0) as usize).collect();
    let blk: Vec<usize> = req(ins, 2)?.to_i64().iter().map(|&v| v.max(0) as usize).collect();
    let nd = img.len();
    let [n, ck, l] = *x.dims() else { return invalid("Col2Im input must be [N, C*prod(block), L]") };
    let kprod: usize = blk.iter().product();
    if blk.len() != nd || kprod == 0 || ck % kprod != 0 {
        return invalid(format!("Col2Im: block_shape {blk:?} does not fit {ck} channels"));
    }
    let w = Window {
        kernel_shape: blk.iter().map(|&v| v as i64).collect(),
        strides: strides.to_vec(),
        pads: pads.to_vec(),
        dilations: dilations.to_vec(),
        auto_pad: AutoPad::NotSet,
    };
    let r = resolve(&w, &img, &blk, false)?;
    if r.out.iter().product::<usize>() != l {
        return invalid(format!("Col2Im: {l} columns, the geometry gives {:?}", r.out));
    }
    let c = ck / kprod;
    let img_sz = super::checked_numel(&img)?;
    let xv = x.to_f64();
    let mut y = vec![0f64; n * c * img_sz];
    let ist = crate::shape::strides(&img);
    for b in 0..n {
        for ch in 0..c {
            for kk in 0..kprod {
                let row = &xv[((b * ck) + ch * kprod + kk) * l..][..l];
                for (col, &v) in row.iter().enumerate() {
                    let (mut kt, mut ct, mut off, mut ok) = (kk, col, 0usize, true);
                    for d in (0..nd).rev() {
                        let (kd, od) = (kt % blk[d], ct % r.out[d]);
                        kt /= blk[d];
                        ct /= r.out[d];
                        let pos = (od * r.strides[d] + kd * r.dilations[d]) as isize - r.pad_begin[d] as isize;
                        if pos < 0 || pos as usize >= img[d] {
                            ok = false;
                            break;
                        }
                        off += pos as usize * ist[d];
                    }
                    if ok {
                        y[(b * c + ch) * img_sz + off] += v;
                    }
                }
            }
        }
    }
    let mut dims = vec![n, c];
    dims.extend(&img);
    Ok(tensor(dims, Data::from_f64(x.dtype(), &y)))
}

/// DeformConv (2-D): each kernel tap samples X bilinearly (zero outside) at its regular
/// position plus a learned offset (per offset group and output position), scaled by `mask`.
/// Inputs: X [N, C, H, W], W [M, C/group, kH, kW], offset [N, G*kH*kW*2, oH, oW], B?, mask?.
pub(crate) fn eval_deform_conv(w: &Window, group: i64, offset_group: i64, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    use super::grid::taps;
    use super::{GridMode, GridPadding};
    let (x, wt, off) = (*req(ins, 0)?, *req(ins, 1)?, *req(ins, 2)?);
    let ([n, c, ih, iw], [m, cg, kh, kw]) = (
        <[usize; 4]>::try_from(x.dims()).map_err(|_| OpError::Unsupported("DeformConv other than 2-D".into()))?,
        <[usize; 4]>::try_from(wt.dims()).map_err(|_| OpError::Invalid("DeformConv weight must be [M, C/group, kH, kW]".into()))?,
    );
    let (group, og) = (group.max(1) as usize, offset_group.max(1) as usize);
    let r = resolve(w, &[ih, iw], &[kh, kw], false)?;
    let (oh, ow) = (r.out[0], r.out[1]);
    if c != cg * group || m % group != 0 || c % og != 0 || off.dims() != [n, og * kh * kw * 2, oh, ow] {
        return invalid(format!(
            "DeformConv: X {:?}, W {:?}, offset {:?} and groups ({group}, {og}) disagree",
            x.dims(),
            wt.dims(),
            off.dims()
        ));
    }
    let mask = opt(ins, 4).map(|t| t.to_f64());
    if mask.as_ref().is_some_and(|mk| mk.len() != n * og * kh * kw * oh * ow) {
        return invalid("DeformConv: mask does not match offset");
    }
    let (xv, wv, ov) = (x.to_f64(), wt.to_f64(), off.to_f64());
    let mut y = vec![0f64; n * m * oh * ow];
    if let Some(b) = opt(ins, 3) {
        add_bias(&mut y, &b.to_f64(), oh * ow);
    }
    let (mg, c_per_og) = (m / group, c / og);
    for b in 0..n {
        for g in 0..og {
            for ki in 0..kh {
                for kj in 0..kw {
                    let k = ki * kw + kj;
                    for i in 0..oh {
                        for j in 0..ow {
                            let at = |ch: usize| ((((b * og + g) * kh * kw + k) * 2 + ch) * oh + i) * ow + j;
                            let py = (i * r.strides[0]) as f64 - r.pad_begin[0] as f64 + (ki * r.dilations[0]) as f64 + ov[at(0)];
                            let px = (j * r.strides[1]) as f64 - r.pad_begin[1] as f64 + (kj * r.dilations[1]) as f64 + ov[at(1)];
                            let mk = mask.as_ref().map_or(1.0, |mk| mk[(((b * og + g) * kh * kw + k) * oh + i) * ow + j]);
                            let (ty, tx) = (
                                taps(py, ih, GridMode::Linear, GridPadding::Zeros, true),
                                taps(px, iw, GridMode::Linear, GridPadding::Zeros, true),
                            );
                            for ci in g * c_per_og..(g + 1) * c_per_og {
                                let plane = &xv[(b * c + ci) * ih * iw..][..ih * iw];
                                let mut v = 0.0;
                                for &(yy, wy) in &ty {
                                    for &(xx, wx) in &tx {
                                        if let (Some(yy), Some(xx)) = (yy, xx) {
                                            v += wy * wx * plane[yy * iw + xx];
                                        }
                                    }
                                }
                                let gi = ci / cg;
                                for mo in gi * mg..(gi + 1) * mg {
                                    y[((b * m + mo) * oh + i) * ow + j] += wv[((mo * cg + ci % cg) * kh + ki) * kw + kj] * v * mk;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(tensor(vec![n, m, oh, ow], Data::from_f64(x.dtype(), &y)))
}
