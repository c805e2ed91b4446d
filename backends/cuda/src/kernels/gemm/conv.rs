//! 2-D convolution as an implicit GEMM on the tensor cores: f16/bf16 NHWC input with channels
//! padded to a multiple of 8 (what `layout/conv-nhwc` offers), group 1, constant weights.
//!
//! Row m of the product is output pixel (n, oh, ow); column j is output channel j; index k of
//! the reduction is (r, s, c) with the channel fastest, so every 16-byte chunk of A is 8
//! channels of one input pixel, copied straight from the NHWC tensor by `cp.async` (zero-filled
//! where the window leaves the image). The weights are reordered at compile time to
//! `[Cout_padded, KH * KW * Cin_padded]` (n-major B, zero rows and columns in the padding).
//! Bias and the fused epilogue apply to the accumulators; padded output channels are stored as
//! zeros.

use super::{Geo, Product};
use crate::codegen::llvm::{Em, Ix, R};
use crate::codegen::{CodegenError, Cx, Param, Ty};
use crate::kernels::program::Program;
use crate::kernels::{input, output};
use inkwell::values::IntValue;
use kiln_ir::ops::{resolve_window, Format, Window};
use kiln_ir::{DType, Node, Op, Tensor};
use std::sync::Arc;

/// How row m and reduction index k of the product address the NHWC input.
#[derive(Clone, Debug)]
pub struct Im2col {
    h: i64,
    w: i64,
    /// Stored (padded) input channels.
    c: i64,
    kw: i64,
    oh: i64,
    ow: i64,
    stride: [i64; 2],
    pad: [i64; 2],
    dil: [i64; 2],
}

impl Im2col {
    /// The input element of chunk (m, k) and whether it exists (`ok` and inside the image).
    pub fn source<'c>(&self, em: &Em<'c>, m: Ix<'c>, k: Ix<'c>, ok: IntValue<'c>) -> R<(Ix<'c>, IntValue<'c>)> {
        let ow = em.remk(m, self.ow)?;
        let t = em.divk(m, self.ow)?;
        let (oh, n) = (em.remk(t, self.oh)?, em.divk(t, self.oh)?);
        let (c, rs) = (em.remk(k, self.c)?, em.divk(k, self.c)?);
        let (s, r) = (em.remk(rs, self.kw)?, em.divk(rs, self.kw)?);
        let ih = em.add(em.addk(em.mulk(oh, self.stride[0])?, -self.pad[0])?, em.mulk(r, self.dil[0])?)?;
        let iw = em.add(em.addk(em.mulk(ow, self.stride[1])?, -self.pad[1])?, em.mulk(s, self.dil[1])?)?;
        let ok = em.and(ok, em.and(em.in_range(ih, self.h)?, em.in_range(iw, self.w)?)?)?;
        let src = em.add(em.mulk(em.add(em.mulk(em.add(em.mulk(n, self.h)?, ih)?, self.w)?, iw)?, self.c)?, c)?;
        Ok((src, ok))
    }
}

/// The convolution as a product for the tensor-core kernel, when it qualifies.
pub(crate) fn product(cx: &Cx, node: &Node) -> R<Option<Product>> {
    let Op::ConvFused { kernel_shape, strides, pads, dilations, group, auto_pad, format: Format::Nhwc, align: _, body } = &node.op else {
        return Ok(None);
    };
    let (x, wv) = (input(node, 0)?, input(node, 1)?);
    let (xt, wt) = (cx.ty(x)?, cx.ty(wv)?);
    let Some(wc) = cx.konst(wv) else { return Ok(None) };
    if *group > 1 || wt.dims.len() != 4 || xt.dims.len() != 4 || !matches!(xt.dtype, DType::F16 | DType::BF16) || wt.dtype != xt.dtype {
        return Ok(None);
    }
    let (cout, cin, kh, kw) = (wt.dims[0], wt.dims[1], wt.dims[2], wt.dims[3]);
    let (n, h, w, cin_p) = (xt.dims[0], xt.dims[1], xt.dims[2], xt.dims[3]);
    if !cin_p.is_multiple_of(8) || cin > cin_p {
        return Ok(None);
    }
    let y = output(node, 0)?;
    let yt = cx.ty(y)?;
    let (oh, ow, cout_p) = (yt.dims[1], yt.dims[2], yt.dims[3]);
    if node.outputs.len() != 1 || cout > cout_p {
        return Ok(None);
    }
    let win = Window::new(kernel_shape, strides, pads, dilations, *auto_pad);
    let r = resolve_window(&win, &[h, w], &[kh, kw], false).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
    // Weights [Cout, Cin, KH, KW] -> [Cout_p, (r, s, c) with c < Cin_p].
    let k = kh * kw * cin_p;
    let src = wc.to_f64();
    let mut b = vec![0f64; cout_p * k];
    for co in 0..cout {
        for ci in 0..cin {
            for a in 0..kh {
                for s in 0..kw {
                    b[co * k + (a * kw + s) * cin_p + ci] = src[((co * cin + ci) * kh + a) * kw + s];
                }
            }
        }
    }
    let bw = Tensor::new(vec![cout_p, k], kiln_ir::Data::from_f64(wt.dtype, &b)).map_err(|e| CodegenError::Internal(e.to_string()))?;
    let bias = node.inputs.get(2).copied().flatten().map(|b| Ok::<_, CodegenError>((b, cx.ty(b)?))).transpose()?;
    let extra: Vec<_> = node.inputs.iter().skip(3).flatten().copied().collect();
    let extra_tys = extra.iter().map(|&v| cx.ty(v)).collect::<R<Vec<Ty>>>()?;
    let geo = Geo {
        m: n * oh * ow,
        k,
        n: cout_p,
        a_batch: vec![],
        b_batch: vec![],
        batch: vec![],
        a_sm: k as i64,
        a_sk: 1,
        b_sk: 1,
        b_sn: k as i64,
    };
    let i = |v: usize| v as i64;
    let im2col = Im2col {
        h: i(h),
        w: i(w),
        c: i(cin_p),
        kw: i(kw),
        oh: i(oh),
        ow: i(ow),
        stride: [i(r.strides[0]), i(r.strides[1])],
        pad: [i(r.pad_begin[0]), i(r.pad_begin[1])],
        dil: [i(r.dilations[0]), i(r.dilations[1])],
    };
    Ok(Some(Product {
        geo,
        prog: Program::from_body(body)?,
        a: Param::Value(x),
        b: Param::Const(Arc::new(bw)),
        at: xt.clone(),
        bt: Ty { dtype: wt.dtype, dims: vec![cout_p, k] },
        im2col: Some(im2col),
        bias,
        real_cols: (cout < cout_p).then_some(cout),
        extra,
        extra_tys,
        parts: vec![(0, cout_p)],
        outs: vec![y],
        out_tys: vec![yt],
    }))
}
