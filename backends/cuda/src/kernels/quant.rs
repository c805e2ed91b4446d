//! QuantizeLinear and DequantizeLinear to and from 8-, 16- and 32-bit integers: one thread per
//! element; the scale and zero point per tensor, per axis or per block along the axis.
//!
//! Quantize: `x / scale` rounds in x's dtype (as the spec computes it), then to the nearest
//! integer with ties to even, plus the zero point, clamped to the target's range; the rounding
//! and the clamp run in f64, exact for every target. Dequantize: `(x - zero_point)` is exact,
//! the product with the scale rounds once in f32.

use super::{coords, input, output, strides};
use crate::codegen::llvm::{Em, Ix, R};
use crate::codegen::{unsupported, Cx, Param, Ty};
use inkwell::values::FloatValue;
use kiln_ir::ops::norm_axis;
use kiln_ir::{DType, Node, Op};

/// Where a scale or zero point lives for each element.
#[derive(Clone, Debug)]
enum Layout {
    PerTensor,
    /// One value per index along `axis`.
    PerAxis {
        axis: usize,
    },
    /// One value per `block` indices along `axis`; the parameter has x's rank.
    Blocked {
        axis: usize,
        block: usize,
        dims: Vec<usize>,
    },
}

fn layout(p: &Ty, x: &Ty, axis: i64, block: i64) -> R<Layout> {
    if p.numel() == 1 {
        return Ok(Layout::PerTensor);
    }
    let a = norm_axis(axis, x.dims.len()).map_err(|e| crate::codegen::CodegenError::Unsupported(e.to_string()))?;
    if p.dims.len() <= 1 && block <= 0 && p.numel() == x.dims[a] {
        return Ok(Layout::PerAxis { axis: a });
    }
    if block > 0 && p.dims.len() == x.dims.len() {
        return Ok(Layout::Blocked { axis: a, block: block as usize, dims: p.dims.clone() });
    }
    unsupported(format!("a quantization parameter {:?} for input {:?}", p.dims, x.dims))
}

/// The parameter index of element `t` of `dims`.
fn param_index<'c>(em: &Em<'c>, l: &Layout, t: Ix<'c>, dims: &[usize]) -> R<Ix<'c>> {
    let xs = strides(dims);
    match l {
        Layout::PerTensor => Ok(em.ix(0)),
        Layout::PerAxis { axis } => em.remk(em.divk(t, xs[*axis])?, dims[*axis] as i64),
        Layout::Blocked { axis, block, dims: pd } => {
            let c = coords(em, t, dims)?;
            let ps = strides(pd);
            let mut at = em.ix(0);
            for (d, cd) in c.into_iter().enumerate() {
                let cd = if d == *axis { em.divk(cd, *block as i64)? } else { cd };
                // Clamped: a parameter too small for the input (an error in the interpreter)
                // never reads outside its buffer.
                let cd = em.min_ix(cd, em.ix(pd[d] as i64 - 1))?;
                at = em.add(at, em.mulk(cd, ps[d])?)?;
            }
            Ok(at)
        }
    }
}

pub fn lower(cx: &mut Cx, node: &Node) -> R<()> {
    let (axis, block, quantize) = match &node.op {
        Op::QuantizeLinear { axis, block_size, .. } => (*axis, *block_size, true),
        Op::DequantizeLinear { axis, block_size, .. } => (*axis, *block_size, false),
        other => return unsupported(format!("{} in the quantization family", other.kind_name())),
    };
    let (x, scale) = (input(node, 0)?, input(node, 1)?);
    let zp = node.inputs.get(2).copied().flatten();
    let y = output(node, 0)?;
    let (xt, st, yt) = (cx.ty(x)?, cx.ty(scale)?, cx.ty(y)?);
    let zt: Option<Ty> = zp.map(|z| cx.ty(z)).transpose()?;
    let int_side = if quantize { yt.dtype } else { xt.dtype };
    // The quantized side: an integer type with its range, or a float8/float4 format.
    let range = kiln_ir::ops::quantized_range(int_side);
    let minifloat = int_side.minifloat();
    if range.is_none() && minifloat.is_none() {
        return unsupported(format!("{} with {int_side}", node.op.kind_name()));
    }
    let saturate = matches!(node.op, Op::QuantizeLinear { saturate: true, .. });
    let float_side = if quantize { xt.dtype } else { yt.dtype };
    if !super::is_f32_compute(float_side) || !super::is_f32_compute(st.dtype) {
        return unsupported(format!("{} with {float_side} values and {} scales", node.op.kind_name(), st.dtype));
    }
    let sl = layout(&st, &xt, axis, block)?;
    let zl = zt.as_ref().map(|z| layout(z, &xt, axis, block)).transpose()?;
    let mut params = vec![Param::Value(y), Param::Value(x), Param::Value(scale)];
    params.extend(zp.map(Param::Value));
    let total = xt.numel();
    let dims = xt.dims.clone();
    let p = cx.begin("", &params)?;
    super::per_element(cx, total, |em, t| {
        let s = em.load(st.dtype, p[2], param_index(em, &sl, t, &dims)?)?.into_float_value();
        let f64t = em.cx.f64_type();
        let z: FloatValue = match (&zt, &zl) {
            (Some(zt), Some(zl)) => {
                let zv = em.load(zt.dtype, p[3], param_index(em, zl, t, &dims)?)?;
                em.convert(zv, zt.dtype, DType::F64)?.into_float_value()
            }
            _ => f64t.const_float(0.0),
        };
        let v = em.load(xt.dtype, p[1], t)?;
        if let (true, Some(f)) = (quantize, minifloat) {
            // To a float format: x / scale + zero point in f64, clamped when saturating, then
            // rounded once to the format.
            let xs = em.fdiv(em.convert(v, xt.dtype, DType::F64)?.into_float_value(), em.b.build_float_ext(s, f64t, "")?)?;
            let mut q = em.fadd(xs, z)?;
            if saturate {
                let m = f.max();
                let clamped = em.fmin(em.fmax(q, f64t.const_float(-m))?, f64t.const_float(m))?;
                q = em.select(em.fcmp(inkwell::FloatPredicate::UNO, q, q)?, q, clamped)?.into_float_value();
            }
            let code = em.encode_minifloat(yt.dtype, q)?;
            let p0 = em.gep(yt.dtype, p[0], t)?;
            em.b.build_store(p0, code)?;
            Ok(())
        } else if let (true, Some((lo, hi))) = (quantize, range) {
            let mut q = em.fdiv(v.into_float_value(), s)?;
            if xt.dtype != DType::F32 {
                // x / scale rounds in x's own (16-bit) dtype first.
                q = em.convert(em.convert(q.into(), DType::F32, xt.dtype)?, xt.dtype, DType::F32)?.into_float_value();
            }
            let q = em.b.build_float_ext(q, f64t, "")?;
            let r = em.fadd(em.fintr("rint", &[q])?, z)?;
            let r = em.fmin(em.fmax(r, f64t.const_float(lo))?, f64t.const_float(hi))?;
            em.store(yt.dtype, p[0], t, em.convert(r.into(), DType::F64, yt.dtype)?)
        } else {
            let d = em.fsub(em.convert(v, xt.dtype, DType::F64)?.into_float_value(), z)?;
            let d = em.b.build_float_trunc(d, em.f32t(), "")?;
            let out = em.fmul(d, s)?;
            em.store(yt.dtype, p[0], t, out.into())
        }
    })
}
