//! Resize: one thread per output element sums the input over the tap combinations of the
//! resized axes. Each resized axis's taps (input index and weight per output index, from
//! `kiln_ir::ops::resize_taps`, the interpreter's own tables) are constant tables compiled
//! into the weights; an output index outside a tf_crop_and_resize roi is marked by index -1
//! and takes the extrapolation value. Sums in f32; integer outputs round half away from zero.

use super::{coords, input, output, strides};
use crate::codegen::llvm::{Em, Ix, R};
use crate::codegen::{unsupported, CodegenError, Cx, Param};
use inkwell::values::{FloatValue, PointerValue};
use inkwell::IntPredicate;
use kiln_ir::{DType, Node, Op, Tensor};
use std::sync::Arc;

/// One resized axis in the kernel: axis, taps per output index, and the tables' parameters.
#[derive(Clone, Copy)]
struct Axis<'c> {
    axis: usize,
    taps: i64,
    index: PointerValue<'c>,
    weight: PointerValue<'c>,
}

pub fn lower<'c>(cx: &mut Cx<'c, '_>, node: &Node) -> R<()> {
    let Op::Resize { extrapolation_value, .. } = node.op else {
        return unsupported(format!("{} in the resize family", node.op.kind_name()));
    };
    let x = input(node, 0)?;
    let xt = cx.ty(x)?;
    let y = output(node, 0)?;
    let yt = cx.ty(y)?;
    if !(super::is_f32_compute(xt.dtype) || matches!(xt.dtype, DType::U8 | DType::I8 | DType::I32 | DType::I64)) {
        return unsupported(format!("Resize on {}", xt.dtype));
    }
    // roi, scales and sizes must be known when compiling.
    let operand = |cx: &Cx, i: usize| -> R<Option<Arc<Tensor>>> {
        match node.inputs.get(i).copied().flatten() {
            None => Ok(None),
            Some(v) => {
                cx.konst(v).cloned().map(Some).ok_or_else(|| CodegenError::Unsupported("Resize with run-time roi, scales or sizes".into()))
            }
        }
    };
    let (roi, scales, sizes) = (operand(cx, 1)?, operand(cx, 2)?, operand(cx, 3)?);
    let axes =
        kiln_ir::ops::resize_taps(&node.op, &xt.dims, roi.map(|t| t.to_f64()), scales.map(|t| t.to_f64()), sizes.map(|t| t.to_i64()))
            .map_err(|e| CodegenError::Unsupported(format!("Resize: {e}")))?;
    let mut params = vec![Param::Value(y), Param::Value(x)];
    let mut shapes = vec![];
    for a in &axes {
        let t = a.taps.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let (mut idx, mut w) = (vec![], vec![]);
        for (taps, &out) in a.taps.iter().zip(&a.outside) {
            for k in 0..t {
                let (i, wk) = taps.get(k).copied().unwrap_or((0, 0.0));
                idx.push(if out { -1 } else { i as i64 });
                w.push(wk);
            }
        }
        let n = idx.len();
        let idx = Tensor::new(vec![n], kiln_ir::Data::from_i64(DType::I32, &idx)).map_err(|e| CodegenError::Internal(e.to_string()))?;
        let w = Tensor::new(vec![n], kiln_ir::Data::from_f64(DType::F32, &w)).map_err(|e| CodegenError::Internal(e.to_string()))?;
        params.push(Param::Const(Arc::new(idx)));
        params.push(Param::Const(Arc::new(w)));
        shapes.push((a.axis, t as i64));
    }
    let total = yt.numel();
    let xs = strides(&xt.dims);
    let out_dims = yt.dims.clone();
    let p = cx.begin("", &params)?;
    let tables: Vec<Axis> =
        shapes.iter().enumerate().map(|(k, &(axis, taps))| Axis { axis, taps, index: p[2 + 2 * k], weight: p[3 + 2 * k] }).collect();
    let resized: Vec<usize> = shapes.iter().map(|s| s.0).collect();
    super::per_element(cx, total, |em, t| {
        let c = coords(em, t, &out_dims)?;
        let mut base = em.ix(0);
        for (d, &cd) in c.iter().enumerate() {
            if !resized.contains(&d) {
                base = em.add(base, em.mulk(cd, xs[d])?)?;
            }
        }
        // Outside the roi along any resized axis: the extrapolation value.
        let mut outside = em.i1().const_zero();
        for a in &tables {
            let i0 = em.load(DType::I32, a.index, em.mulk(c[a.axis], a.taps)?)?.into_int_value();
            outside = em.b.build_or(outside, em.icmp(IntPredicate::SLT, i0, em.i32c(0))?, "")?;
        }
        let acc = em.var(em.f32c(0.0).into())?;
        let mut leaf = |em: &mut Em<'c>, src: Ix<'c>, w: FloatValue<'c>| -> R<()> {
            let v = em.convert(em.load(xt.dtype, p[1], src)?, xt.dtype, DType::F32)?.into_float_value();
            let s = em.get(acc)?.into_float_value();
            em.set(acc, em.fintr("fma", &[w, v, s])?.into())
        };
        tap_loops(em, &tables, &c, &xs, base, em.f32c(1.0), &mut leaf)?;
        let mut r = em.get(acc)?.into_float_value();
        if !yt.dtype.is_float() {
            r = em.fintr("round", &[r])?;
        }
        let r = em.select(outside, em.f32c(extrapolation_value as f64), r)?;
        em.store(yt.dtype, p[0], t, em.convert(r, DType::F32, yt.dtype)?)
    })
}

/// Nested loops over the taps of each resized axis, calling `leaf` with the source element and
/// the product of the weights.
fn tap_loops<'c>(
    em: &mut Em<'c>,
    axes: &[Axis<'c>],
    c: &[Ix<'c>],
    xs: &[i64],
    src: Ix<'c>,
    w: FloatValue<'c>,
    leaf: &mut dyn FnMut(&mut Em<'c>, Ix<'c>, FloatValue<'c>) -> R<()>,
) -> R<()> {
    let Some((a, rest)) = axes.split_first() else { return leaf(em, src, w) };
    let a = *a;
    em.for_n(a.taps, |em, k| {
        let at = em.add(em.mulk(c[a.axis], a.taps)?, k)?;
        let i = em.load(DType::I32, a.index, at)?.into_int_value();
        let i = em.b.build_int_s_extend(i, em.i64t(), "")?;
        // Outside taps (-1) read element 0; their result is replaced anyway.
        let i = em.select(em.icmp(IntPredicate::SLT, i, em.ix(0))?, em.ix(0), i)?.into_int_value();
        let wk = em.load(DType::F32, a.weight, at)?.into_float_value();
        let s = em.add(src, em.mulk(i, xs[a.axis])?)?;
        tap_loops(em, rest, c, xs, s, em.fmul(w, wk)?, leaf)
    })
}
