//! Pooling on NC + 1 to 3 spatial axes: MaxPool, AveragePool and LpPool with one thread per
//! output element (the window unrolled), GlobalPool
//! (average, max) with one block per (n, c) plane reducing through shuffles.

use super::reduce::{block_reduce, threads_for, Combine};
use super::{coords, global_x, input, output};
use crate::codegen::llvm::R;
use crate::codegen::{blocks, unsupported, CodegenError, Cx, Param};
use inkwell::IntPredicate;
use kiln_ir::ops::{resolve_window, PoolKind, Window};
use kiln_ir::{DType, Node, Op};

const BLOCK: i64 = 128;

pub fn lower(cx: &mut Cx, node: &Node) -> R<()> {
    let (x, y) = (input(node, 0)?, output(node, 0)?);
    let (xt, yt) = (cx.ty(x)?, cx.ty(y)?);
    // 8-bit integers are exact in f32: a quantized model's max pooling runs in it.
    let exact_max = matches!(xt.dtype, DType::U8 | DType::I8) && matches!(node.op, Op::MaxPool { .. });
    if !super::is_f32_compute(xt.dtype) && !exact_max {
        return unsupported(format!("pooling on {}", xt.dtype));
    }
    let (win, ceil, kind, include_pad) = match &node.op {
        Op::GlobalPool { kind, .. } => {
            let combine = match kind {
                PoolKind::Average => Combine::Sum,
                PoolKind::Max => Combine::Max,
                PoolKind::Lp => return unsupported("GlobalLpPool"),
            };
            return global(cx, node, combine);
        }
        Op::MaxPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, storage_order: _ } => {
            if node.outputs.get(1).copied().flatten().is_some() {
                return unsupported("MaxPool's Indices output");
            }
            (Window::new(kernel_shape, strides, pads, dilations, *auto_pad), *ceil_mode, Kind::Max, false)
        }
        Op::AveragePool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, count_include_pad } => {
            (Window::new(kernel_shape, strides, pads, dilations, *auto_pad), *ceil_mode, Kind::Average, *count_include_pad)
        }
        Op::LpPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, p } => {
            (Window::new(kernel_shape, strides, pads, dilations, *auto_pad), *ceil_mode, Kind::Lp(*p), false)
        }
        other => return unsupported(format!("{} in the pooling family", other.kind_name())),
    };
    let nsp = xt.dims.len().saturating_sub(2);
    if !(1..=3).contains(&nsp) {
        return unsupported(format!("{nsp}-D pooling (1-D to 3-D run on CUDA)"));
    }
    let sp: Vec<usize> = xt.dims[2..].to_vec();
    let ks: Vec<usize> = win.kernel_shape.iter().map(|&k| k as usize).collect();
    let r = resolve_window(&win, &sp, &ks, ceil).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
    let plane_len: i64 = sp.iter().product::<usize>() as i64;
    let in_strides = super::strides(&sp);
    let total = yt.numel();
    let p = cx.begin("", &[Param::Value(y), Param::Value(x)])?;
    let em = &mut cx.em;
    let i = global_x(em, BLOCK)?;
    let inb = em.icmp(IntPredicate::ULT, i, em.ix(total as i64))?;
    em.if_(inb, |em| {
        let cs = coords(em, i, &yt.dims)?;
        let plane = em.add(em.mulk(cs[0], xt.dims[1] as i64)?, cs[1])?;
        let acc = em.var(em.f32c(if kind == Kind::Max { f64::NEG_INFINITY } else { 0.0 }).into())?;
        let cnt = em.var(em.ix(0).into())?;
        let starts =
            (0..nsp).map(|d| em.addk(em.mulk(cs[2 + d], r.strides[d] as i64)?, -(r.pad_begin[d] as i64))).collect::<R<Vec<_>>>()?;
        // Every kernel position, unrolled.
        let positions: usize = ks.iter().product();
        for flat in 0..positions {
            let mut rem = flat;
            let mut ok = em.i1().const_int(1, false);
            let mut inside_padded = em.i1().const_int(1, false);
            let mut idx = em.mulk(plane, plane_len)?;
            for d in (0..nsp).rev() {
                let off = (rem % ks[d]) as i64;
                rem /= ks[d];
                let at = em.addk(starts[d], off * r.dilations[d] as i64)?;
                ok = em.and(ok, em.in_range(at, sp[d] as i64)?)?;
                inside_padded = em.and(inside_padded, em.icmp(IntPredicate::SLT, at, em.ix(sp[d] as i64 + pad_end(&win, d)))?)?;
                idx = em.add(idx, em.mulk(at, in_strides[d])?)?;
            }
            let v = em.load_guarded(xt.dtype, p[1], ok, idx)?;
            let cur = em.get(acc)?.into_float_value();
            let next = match kind {
                Kind::Max => {
                    let m = em.fmax(cur, v)?;
                    em.select(ok, m, cur)?.into_float_value()
                }
                Kind::Average => em.fadd(cur, v)?,
                // |v|^p; padding reads 0 and adds nothing.
                Kind::Lp(pw) => {
                    let a = em.fintr("fabs", &[v])?;
                    let mut t = a;
                    for _ in 1..pw.max(1) {
                        t = em.fmul(t, a)?;
                    }
                    em.fadd(cur, t)?
                }
            };
            em.set(acc, next.into())?;
            // Window positions that count toward the average.
            let counts = if include_pad { inside_padded } else { ok };
            let c = em.get(cnt)?.into_int_value();
            let inc = em.b.build_int_z_extend(counts, em.i64t(), "")?;
            em.set(cnt, em.add(c, inc)?.into())?;
        }
        let mut v = em.get(acc)?.into_float_value();
        match kind {
            Kind::Max => {}
            Kind::Average => {
                let c = em.get(cnt)?.into_int_value();
                let cf = em.b.build_signed_int_to_float(c, em.f32t(), "")?;
                v = em.fdiv(v, cf)?;
            }
            Kind::Lp(pw) => {
                // (sum)^(1/p) = e^(ln(sum) / p); 0 stays 0.
                if pw == 2 {
                    v = em.fintr("sqrt", &[v])?;
                } else if pw != 1 {
                    let root = em.exp(em.fmul(em.log(v)?, em.f32c(1.0 / pw as f64))?)?;
                    let zero = em.fcmp(inkwell::FloatPredicate::OEQ, v, em.f32c(0.0))?;
                    v = em.select(zero, em.f32c(0.0), root)?.into_float_value();
                }
            }
        }
        let v = em.convert(v.into(), DType::F32, yt.dtype)?;
        em.store(yt.dtype, p[0], i, v)
    })?;
    cx.launch([blocks(total, BLOCK as usize)?, 1, 1], [BLOCK as u32, 1, 1], 0)
}

/// What a window computes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Max,
    Average,
    /// The p-norm of the window (LpPool).
    Lp(i64),
}

/// The explicit end padding of spatial axis `i` (0 under auto_pad, where the window never
/// reaches past the computed padding).
fn pad_end(w: &Window, i: usize) -> i64 {
    let n = w.kernel_shape.len();
    w.pads.get(n + i).copied().unwrap_or(0)
}

fn global(cx: &mut Cx, node: &Node, combine: Combine) -> R<()> {
    let (x, y) = (input(node, 0)?, output(node, 0)?);
    let (xt, yt) = (cx.ty(x)?, cx.ty(y)?);
    if xt.dims.len() < 3 {
        return unsupported("global pooling of a value without spatial dims");
    }
    let len: usize = xt.dims[2..].iter().product();
    let rows = xt.dims[0] * xt.dims[1];
    let threads = threads_for(len);
    let p = cx.begin("", &[Param::Value(y), Param::Value(x)])?;
    let scratch = cx.em.shared_array("scratch", cx.em.f32t().into(), 32);
    let em = &mut cx.em;
    let row = em.sreg("ctaid.x")?;
    let base = em.mulk(row, len as i64)?;
    let acc = em.var(em.f32c(if combine == Combine::Max { f64::NEG_INFINITY } else { 0.0 }).into())?;
    let tid = em.sreg("tid.x")?;
    let (end, step) = (em.ix(len as i64), em.ix(threads));
    em.for_range(tid, end, step, |em, j| {
        let v = em.load(xt.dtype, p[1], em.add(base, j)?)?;
        let v = em.convert(v, xt.dtype, DType::F32)?.into_float_value();
        let a = em.get(acc)?.into_float_value();
        let n = if combine == Combine::Max { em.fmax(a, v)? } else { em.fadd(a, v)? };
        em.set(acc, n.into())
    })?;
    let mut r = block_reduce(em, em.get(acc)?.into_float_value(), combine, scratch, threads)?;
    if combine == Combine::Sum {
        r = em.fdiv(r, em.f32c(len as f64))?;
    }
    let first = em.icmp(IntPredicate::EQ, tid, em.ix(0))?;
    let v = em.convert(r.into(), DType::F32, yt.dtype)?;
    em.if_(first, |em| em.store(yt.dtype, p[0], row, v))?;
    cx.launch([blocks(rows, 1)?, 1, 1], [threads as u32, 1, 1], 0)
}
