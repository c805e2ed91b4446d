//! ScatterElements and ScatterND: the data copied to the output by one kernel, then the updates
//! applied by a second, in order, by one thread, so that repeated indices combine (or, without
//! a reduction, the last one wins) exactly as the interpreter applies them. Scatter is an
//! indexing tail of a model; the serial pass keeps it exact. Negative indices count from the
//! end; out-of-range ones (an error in the interpreter) are clamped, never written outside.

use super::{coords, input, output, strides};
use crate::codegen::llvm::{Em, Ix, R};
use crate::codegen::{unsupported, CodegenError, Cx, Param};
use inkwell::values::BasicValueEnum;
use kiln_ir::ops::{norm_axis, ScatterReduction};
use kiln_ir::{DType, Node, Op};

pub fn lower(cx: &mut Cx, node: &Node) -> R<()> {
    let (x, ind, upd) = (input(node, 0)?, input(node, 1)?, input(node, 2)?);
    let y = output(node, 0)?;
    let (xt, it, ut) = (cx.ty(x)?, cx.ty(ind)?, cx.ty(upd)?);
    let red = match node.op {
        Op::ScatterElements { reduction, .. } | Op::ScatterND { reduction } => reduction,
        _ => return unsupported(format!("{} in the scatter family", node.op.kind_name())),
    };
    if red != ScatterReduction::None && !super::is_f32_compute(xt.dtype) {
        return unsupported(format!("{} with a reduction on {}", node.op.kind_name(), xt.dtype));
    }
    super::movement::lower_copy(cx, node)?;
    let params = [Param::Value(y), Param::Value(ind), Param::Value(upd)];
    let xs = strides(&xt.dims);
    match node.op {
        Op::ScatterElements { axis, .. } => {
            let a = norm_axis(axis, xt.dims.len()).map_err(|e| CodegenError::Unsupported(e.to_string()))?;
            if it.dims.len() != xt.dims.len() || it.dims != ut.dims {
                return unsupported("ScatterElements with indices and updates of other shapes");
            }
            let p = cx.begin("_apply", &params)?;
            let em = &mut cx.em;
            em.for_n(it.numel() as i64, |em, k| {
                let c = coords(em, k, &it.dims)?;
                let j = super::axis_index(em, it.dtype, p[1], k, xt.dims[a])?;
                let mut dst = em.ix(0);
                for (d, &cd) in c.iter().enumerate() {
                    dst = em.add(dst, em.mulk(if d == a { j } else { cd }, xs[d])?)?;
                }
                apply(em, red, xt.dtype, p[0], dst, em.load(ut.dtype, p[2], k)?)
            })?;
        }
        _ => {
            let last = *it.dims.last().ok_or_else(|| CodegenError::Unsupported("ScatterND with scalar indices".into()))?;
            if last > xt.dims.len() {
                return unsupported("ScatterND index tuples longer than the data's rank");
            }
            let slice: usize = xt.dims[last..].iter().product();
            let tuples = it.numel() / last.max(1);
            let p = cx.begin("_apply", &params)?;
            let em = &mut cx.em;
            em.for_n(tuples as i64, |em, t| {
                let mut off = em.ix(0);
                for (k, (&n, &stride)) in xt.dims.iter().zip(&xs).take(last).enumerate() {
                    let j = super::axis_index(em, it.dtype, p[1], em.addk(em.mulk(t, last as i64)?, k as i64)?, n)?;
                    off = em.add(off, em.mulk(j, stride)?)?;
                }
                em.for_n(slice as i64, |em, s| {
                    let v = em.load(ut.dtype, p[2], em.add(em.mulk(t, slice as i64)?, s)?)?;
                    apply(em, red, xt.dtype, p[0], em.add(off, s)?, v)
                })
            })?;
        }
    }
    cx.launch([1, 1, 1], [1, 1, 1], 0)
}

/// `y[dst] = v` or combined with it.
fn apply<'c>(
    em: &Em<'c>,
    red: ScatterReduction,
    dt: DType,
    y: inkwell::values::PointerValue<'c>,
    dst: Ix<'c>,
    v: BasicValueEnum<'c>,
) -> R<()> {
    let out: BasicValueEnum = match red {
        ScatterReduction::None => v,
        _ => {
            let (old, v) = (em.load(dt, y, dst)?.into_float_value(), v.into_float_value());
            match red {
                ScatterReduction::Add => em.fadd(old, v)?.into(),
                ScatterReduction::Mul => em.fmul(old, v)?.into(),
                ScatterReduction::Max => em.fmax(old, v)?.into(),
                _ => em.fmin(old, v)?.into(),
            }
        }
    };
    em.store(dt, y, dst, out)
}
