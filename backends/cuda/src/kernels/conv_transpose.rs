//! ConvTranspose, 1-D to 3-D, grouped: one thread per output element gathers the input
//! positions that scatter into it. Along each axis, output position `o` receives input `i`
//! through kernel tap `k` where `o + pad_begin - k * dilation = i * stride`; the taps whose
//! difference is negative, not a multiple of the stride or past the input read nothing.
//! Accumulates in f32 (f64 for f64 tensors), adds the bias, rounds once.

use super::{input, output, strides};
use crate::codegen::llvm::R;
use crate::codegen::{unsupported, CodegenError, Cx, Param};
use inkwell::IntPredicate as I;
use kiln_ir::ops::{transpose_geom, Window};
use kiln_ir::{DType, Node, Op};

pub fn lower<'c>(cx: &mut Cx<'c, '_>, node: &Node) -> R<()> {
    let Op::ConvTranspose { kernel_shape, strides: st, pads, dilations, group, auto_pad, output_padding, output_shape } = &node.op else {
        return unsupported(format!("{} as ConvTranspose", node.op.kind_name()));
    };
    let (x, w, y) = (input(node, 0)?, input(node, 1)?, output(node, 0)?);
    let bias = node.inputs.get(2).copied().flatten();
    let (xt, wt, yt) = (cx.ty(x)?, cx.ty(w)?, cx.ty(y)?);
    let bt = bias.map(|b| cx.ty(b)).transpose()?;
    if !(super::is_f32_compute(xt.dtype) || xt.dtype == DType::F64) {
        return unsupported(format!("ConvTranspose on {}", xt.dtype));
    }
    if xt.dims.len() < 3 || wt.dims.len() != xt.dims.len() {
        return unsupported(format!("ConvTranspose of a rank-{} input", xt.dims.len()));
    }
    let win = Window::new(kernel_shape, st, pads, dilations, *auto_pad);
    let geom = transpose_geom(&win, &xt.dims[2..], &wt.dims[2..], output_padding, output_shape)
        .map_err(|e| CodegenError::Unsupported(format!("ConvTranspose: {e}")))?;
    let nd = xt.dims.len() - 2;
    let group = (*group).max(1) as usize;
    let (n, c) = (xt.dims[0], xt.dims[1]);
    let (cg, mg) = (c / group, wt.dims[1]);
    let m = mg * group;
    if yt.dims[..2] != [n, m] || yt.dims[2..] != geom.out[..] {
        return Err(CodegenError::Internal(format!("ConvTranspose output {:?} disagrees with its window {:?}", yt.dims, geom.out)));
    }
    let acc_dt = if xt.dtype == DType::F64 { DType::F64 } else { DType::F32 };
    let in_sp = xt.dims[2..].to_vec();
    let (in_size, out_size, taps) =
        (in_sp.iter().product::<usize>() as i64, geom.out.iter().product::<usize>() as i64, geom.kernel.iter().product::<usize>() as i64);
    let (in_st, out_st, k_st) = (strides(&in_sp), strides(&geom.out), strides(&geom.kernel));
    let mut params = vec![Param::Value(y), Param::Value(x), Param::Value(w)];
    params.extend(bias.map(Param::Value));
    let p = cx.begin("", &params)?;
    super::per_element(cx, yt.numel(), |em, t| {
        let bm = em.divk(t, out_size)?;
        let o = em.remk(t, out_size)?;
        let (b, mo) = (em.divk(bm, m as i64)?, em.remk(bm, m as i64)?);
        let (gi, mi) = (em.divk(mo, mg as i64)?, em.remk(mo, mg as i64)?);
        let zero = crate::kernels::program::scalar(em, acc_dt, 0.0)?.v;
        let acc = em.var(zero)?;
        em.for_n(taps, |em, kk| {
            // The input position this tap reads, per axis, and whether it exists.
            let (mut at, mut ok) = (em.ix(0), em.i1().const_all_ones());
            for d in 0..nd {
                let od = em.remk(em.divk(o, out_st[d])?, geom.out[d] as i64)?;
                let kd = em.remk(em.divk(kk, k_st[d])?, geom.kernel[d] as i64)?;
                let num = em.sub(em.addk(od, geom.pad_begin[d] as i64)?, em.mulk(kd, geom.dilations[d] as i64)?)?;
                let s = geom.strides[d] as i64;
                let id = em.b.build_int_signed_div(num, em.ix(s), "")?;
                let exact = em.icmp(I::EQ, em.mulk(id, s)?, num)?;
                let inside = em.and(em.icmp(I::SGE, num, em.ix(0))?, em.icmp(I::SLT, id, em.ix(in_sp[d] as i64))?)?;
                ok = em.and(ok, em.and(exact, inside)?)?;
                at = em.add(at, em.mulk(id, in_st[d])?)?;
            }
            let at = em.select(ok, at, em.ix(0))?.into_int_value();
            em.if_(ok, |em| {
                em.for_n(cg as i64, |em, ci| {
                    let cin = em.add(em.mulk(gi, cg as i64)?, ci)?;
                    let xi = em.add(em.mulk(em.add(em.mulk(b, c as i64)?, cin)?, in_size)?, at)?;
                    let wi = em.add(em.mulk(em.add(em.mulk(cin, mg as i64)?, mi)?, taps)?, kk)?;
                    let xv = em.convert(em.load(xt.dtype, p[1], xi)?, xt.dtype, acc_dt)?.into_float_value();
                    let wv = em.convert(em.load(wt.dtype, p[2], wi)?, wt.dtype, acc_dt)?.into_float_value();
                    let cur = em.get(acc)?.into_float_value();
                    em.set(acc, em.fintr("fma", &[xv, wv, cur])?.into())
                })
            })
        })?;
        let mut a = em.get(acc)?.into_float_value();
        if let Some(bt) = &bt {
            let bv = em.load(bt.dtype, p[3], mo)?;
            a = em.fadd(a, em.convert(bv, bt.dtype, acc_dt)?.into_float_value())?;
        }
        let out = em.convert(a.into(), acc_dt, yt.dtype)?;
        em.store(yt.dtype, p[0], t, out)
    })
}
