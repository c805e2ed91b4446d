//! 2-D convolution (grouped and depthwise included) with the fused epilogue, in NCHW, NHWC or
//! NC1HWC0 storage: one thread per stored output element, f32 accumulation. 16-bit NHWC
//! convolutions of group 1 go to the tensor cores instead ([`super::gemm::conv`]). Channels beyond
//! the real count in a padded format are written as zeros.

use super::program::Program;
use super::{bcast_index, coords, global_x, input, output};
use crate::codegen::llvm::{Em, Ix, R};
use crate::codegen::scalar::Operand;
use crate::codegen::{blocks, unsupported, CodegenError, Cx, Param, Ty};
use inkwell::IntPredicate;
use kiln_ir::ops::{resolve_window, Format, Window};
use kiln_ir::{DType, Node, Op};

const BLOCK: i64 = 128;

/// The index of logical (n, c, h, w) in a stored tensor.
pub fn stored_index<'c>(em: &Em<'c>, f: Format, align: i64, logical: [usize; 4], n: Ix<'c>, c: Ix<'c>, h: Ix<'c>, w: Ix<'c>) -> R<Ix<'c>> {
    let [_, cc, hh, ww] = logical.map(|d| d as i64);
    match f {
        Format::Nchw => em.add(em.mulk(em.add(em.mulk(em.add(em.mulk(n, cc)?, c)?, hh)?, h)?, ww)?, w),
        Format::Nhwc => {
            let cp = (cc + align - 1) / align * align;
            em.add(em.mulk(em.add(em.mulk(em.add(em.mulk(n, hh)?, h)?, ww)?, w)?, cp)?, c)
        }
        Format::Nc1hwc0 => {
            let c1n = (cc + align - 1) / align;
            let (c1, c0) = (em.divk(c, align)?, em.remk(c, align)?);
            let t = em.add(em.mulk(em.add(em.mulk(em.add(em.mulk(em.add(em.mulk(n, c1n)?, c1)?, hh)?, h)?, ww)?, w)?, align)?, c0)?;
            Ok(t)
        }
    }
}

/// The logical (n, c, h, w) of element `i` of a stored tensor of dims `stored`; the channel may
/// lie in the format's padding (c >= the real channel count).
pub fn logical_coords<'c>(em: &Em<'c>, f: Format, align: i64, i: Ix<'c>, stored: &[usize]) -> R<[Ix<'c>; 4]> {
    let cs = coords(em, i, stored)?;
    Ok(match f {
        Format::Nchw => [cs[0], cs[1], cs[2], cs[3]],
        Format::Nhwc => [cs[0], cs[3], cs[1], cs[2]],
        Format::Nc1hwc0 => [cs[0], em.add(em.mulk(cs[1], align)?, cs[4])?, cs[2], cs[3]],
    })
}

/// `[N, C, L]` as `[N, C, 1, L]`.
fn as_2d(d: &[usize]) -> Vec<usize> {
    vec![d[0], d[1], 1, d[2]]
}

/// An operand that broadcasts against `[N, C, L]`, as one against `[N, C, 1, L]`: aligned to
/// rank 3 from the right, then the unit height inserted.
fn as_2d_operand(d: &[usize]) -> Vec<usize> {
    let mut v = vec![1; 3usize.saturating_sub(d.len())];
    v.extend_from_slice(d);
    v.insert(v.len() - 1, 1);
    v
}

pub fn lower(cx: &mut Cx, node: &Node) -> R<()> {
    if let Some(pr) = super::gemm::conv::product(cx, node)? {
        if let Some(plan) = super::gemm::mma::plan(&pr) {
            return super::gemm::mma::lower(cx, &pr, &plan);
        }
    }
    let (x, wv) = (input(node, 0)?, input(node, 1)?);
    let (mut xt, mut wt) = (cx.ty(x)?, cx.ty(wv)?);
    let bias = node.inputs.get(2).copied().flatten();
    let (win, group, format, align, prog, extra) = match &node.op {
        Op::Conv { kernel_shape, strides, pads, dilations, group, auto_pad } => {
            let prog = Program::identity(cx.ty(output(node, 0)?)?);
            (Window::new(kernel_shape, strides, pads, dilations, *auto_pad), *group, Format::Nchw, 1, prog, vec![])
        }
        Op::ConvFused { kernel_shape, strides, pads, dilations, group, auto_pad, format, align, body } => {
            let extra: Vec<_> = node.inputs.iter().skip(3).flatten().copied().collect();
            (Window::new(kernel_shape, strides, pads, dilations, *auto_pad), *group, *format, *align, Program::from_body(body)?, extra)
        }
        other => return unsupported(format!("{} in the convolution family", other.kind_name())),
    };
    // A 1-D convolution is the 2-D one over [N, C, 1, L]: the same bytes, a window of height 1.
    let one_d = wt.dims.len() == 3 && xt.dims.len() == 3 && format == Format::Nchw;
    let win = if one_d {
        xt.dims = as_2d(&xt.dims);
        wt.dims = as_2d(&wt.dims);
        win.as_2d()
    } else {
        win
    };
    if wt.dims.len() != 4 {
        return unsupported(format!("{}-D convolution (1-D and 2-D run on CUDA)", wt.dims.len().saturating_sub(2)));
    }
    if !super::is_f32_compute(xt.dtype) {
        return unsupported(format!("convolution on {}", xt.dtype));
    }
    let (cout, cin_g, kh, kw) = (wt.dims[0], wt.dims[1], wt.dims[2], wt.dims[3]);
    let group = group.max(1) as usize;
    let cin = cin_g * group;
    let (n, h, w) = match format {
        Format::Nchw => (xt.dims[0], xt.dims[2], xt.dims[3]),
        Format::Nhwc => (xt.dims[0], xt.dims[1], xt.dims[2]),
        Format::Nc1hwc0 => (xt.dims[0], xt.dims[2], xt.dims[3]),
    };
    let r = resolve_window(&win, &[h, w], &[kh, kw], false).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
    let y = output(node, 0)?;
    let mut yt = cx.ty(y)?;
    let total = yt.numel();
    let mut extra_tys = extra.iter().map(|&v| cx.ty(v)).collect::<R<Vec<Ty>>>()?;
    // The epilogue's operands broadcast against the 4-D view as they did against [N, M, L'].
    let const_dims: Vec<Vec<usize>> = prog.consts.iter().map(|t| if one_d { as_2d_operand(t.dims()) } else { t.dims().to_vec() }).collect();
    if one_d {
        yt.dims = as_2d(&yt.dims);
        for t in &mut extra_tys {
            t.dims = as_2d_operand(&t.dims);
        }
    }
    let mut params = vec![Param::Value(y), Param::Value(x), Param::Value(wv)];
    params.extend(bias.map(Param::Value));
    let first_extra = params.len();
    params.extend(extra.iter().map(|&v| Param::Value(v)));
    params.extend(prog.consts.iter().map(|t| Param::Const(t.clone())));
    let first_const = params.len() - prog.consts.len();
    let bt = bias.map(|b| cx.ty(b)).transpose()?;
    let p = cx.begin("", &params)?;
    let em = &mut cx.em;
    let i = global_x(em, BLOCK)?;
    let inb = em.icmp(IntPredicate::ULT, i, em.ix(total as i64))?;
    em.if_(inb, |em| {
        let [nn, co, yh, yw] = logical_coords(em, format, align, i, &yt.dims)?;
        let real = em.icmp(IntPredicate::SLT, co, em.ix(cout as i64))?;
        let zero = super::program::scalar(em, yt.dtype, 0.0)?.v;
        let val = em.if_else(
            real,
            em.compute_type(yt.dtype)?,
            |em| {
                let g = em.divk(co, (cout / group) as i64)?;
                let acc = em.var(em.f32c(0.0).into())?;
                let ih0 = em.addk(em.mulk(yh, r.strides[0] as i64)?, -(r.pad_begin[0] as i64))?;
                let iw0 = em.addk(em.mulk(yw, r.strides[1] as i64)?, -(r.pad_begin[1] as i64))?;
                em.for_n(cin_g as i64, |em, ci| {
                    let c = em.add(em.mulk(g, cin_g as i64)?, ci)?;
                    em.for_n(kh as i64, |em, a| {
                        let ih = em.add(ih0, em.mulk(a, r.dilations[0] as i64)?)?;
                        let okh = em.in_range(ih, h as i64)?;
                        em.for_n(kw as i64, |em, b| {
                            let iw = em.add(iw0, em.mulk(b, r.dilations[1] as i64)?)?;
                            let ok = em.and(okh, em.in_range(iw, w as i64)?)?;
                            let xi = stored_index(em, format, align, [n, cin, h, w], nn, c, ih, iw)?;
                            let xv = em.load_guarded(xt.dtype, p[1], ok, xi)?;
                            let wi =
                                em.add(em.mulk(em.add(em.mulk(em.add(em.mulk(co, cin_g as i64)?, ci)?, kh as i64)?, a)?, kw as i64)?, b)?;
                            let wv = em.load(wt.dtype, p[2], wi)?;
                            let wv = em.convert(wv, wt.dtype, DType::F32)?.into_float_value();
                            let cur = em.get(acc)?.into_float_value();
                            em.set(acc, em.fintr("fma", &[xv, wv, cur])?.into())
                        })
                    })
                })?;
                let mut a = em.get(acc)?.into_float_value();
                if let Some(bt) = &bt {
                    let bv = em.load(bt.dtype, p[3], co)?;
                    a = em.fadd(a, em.convert(bv, bt.dtype, DType::F32)?.into_float_value())?;
                }
                let acc_dt = prog.args[0].dtype;
                let mut args = vec![Operand { dtype: acc_dt, v: em.convert(a.into(), DType::F32, acc_dt)?, konst: None }];
                for (k, t) in extra_tys.iter().enumerate() {
                    let idx = bcast_index(em, i, &yt.dims, &t.dims)?;
                    args.push(Operand { dtype: t.dtype, v: em.load(t.dtype, p[first_extra + k], idx)?, konst: None });
                }
                let mut consts = vec![];
                for (c, t) in prog.consts.iter().enumerate() {
                    let idx = bcast_index(em, i, &yt.dims, &const_dims[c])?;
                    consts.push(Operand { dtype: t.dtype(), v: em.load(t.dtype(), p[first_const + c], idx)?, konst: None });
                }
                let res = prog.eval(em, &args, &consts)?;
                res.first().map(|o| o.v).ok_or_else(|| CodegenError::Internal("epilogue without output".into()))
            },
            |_| Ok(zero),
        )?;
        em.store(yt.dtype, p[0], i, val)
    })?;
    cx.launch([blocks(total, BLOCK as usize)?, 1, 1], [BLOCK as u32, 1, 1], 0)
}
