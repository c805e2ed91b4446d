//! Normalizations along the channel axis (axis 1) computed one thread per element:
//! BatchNormalization with its running statistics (inference; training mode, which needs the
//! batch's statistics, has no kernel here) in f64 like the interpreter, and LRN over a window
//! of neighbouring channels in f32.

use super::{input, output, per_element};
use crate::codegen::llvm::R;
use crate::codegen::{unsupported, Cx, Param};
use kiln_ir::{DType, Node, Op};

pub fn lower<'c>(cx: &mut Cx<'c, '_>, node: &Node) -> R<()> {
    let (x, y) = (input(node, 0)?, output(node, 0)?);
    let (xt, yt) = (cx.ty(x)?, cx.ty(y)?);
    if !(super::is_f32_compute(xt.dtype) || xt.dtype == DType::F64) {
        return unsupported(format!("{} on {}", node.op.kind_name(), xt.dtype));
    }
    let c = xt.dims.get(1).copied().unwrap_or(1) as i64;
    let inner = xt.dims.get(2..).map_or(1, |d| d.iter().product::<usize>()) as i64;
    match node.op {
        Op::BatchNormalization { epsilon, training: false, .. } => {
            let params: Vec<_> = (1..=4).map(|i| input(node, i)).collect::<R<_>>()?;
            let pts = params.iter().map(|&v| cx.ty(v)).collect::<R<Vec<_>>>()?;
            if pts.iter().any(|t| t.numel() as i64 != c) {
                return unsupported("BatchNormalization whose parameters are not one per channel");
            }
            let mut args = vec![Param::Value(y), Param::Value(x)];
            args.extend(params.iter().map(|&v| Param::Value(v)));
            let p = cx.begin("", &args)?;
            per_element(cx, xt.numel(), |em, i| {
                let ch = em.remk(em.divk(i, inner)?, c)?;
                let f = |em: &crate::codegen::llvm::Em<'c>, k: usize| -> R<inkwell::values::FloatValue<'c>> {
                    let d = if k == 0 { xt.dtype } else { pts[k - 1].dtype };
                    let v = em.load(d, p[1 + k], if k == 0 { i } else { ch })?;
                    Ok(em.convert(v, d, DType::F64)?.into_float_value())
                };
                // (x - mean) / sqrt(var + eps) * scale + bias
                let (xv, s, b, m, v) = (f(em, 0)?, f(em, 1)?, f(em, 2)?, f(em, 3)?, f(em, 4)?);
                let eps = em.cx.f64_type().const_float(epsilon as f64);
                let sd = em.fintr("sqrt", &[em.fadd(v, eps)?])?;
                let out = em.fadd(em.fmul(em.fdiv(em.fsub(xv, m)?, sd)?, s)?, b)?;
                em.store(yt.dtype, p[0], i, em.convert(out.into(), DType::F64, yt.dtype)?)
            })
        }
        Op::LRN { alpha, beta, bias, size } if size > 0 && xt.dtype != DType::F64 => {
            // Channels floor((size - 1) / 2) below and ceil((size - 1) / 2) above.
            let (lo, hi) = ((size - 1) / 2, size / 2);
            let p = cx.begin("", &[Param::Value(y), Param::Value(x)])?;
            per_element(cx, xt.numel(), |em, i| {
                let ch = em.remk(em.divk(i, inner)?, c)?;
                let base = em.sub(i, em.mulk(ch, inner)?)?;
                let sq = em.var(em.f32c(0.0).into())?;
                // Channels ch - lo ..= ch + hi that exist.
                em.for_n(lo + hi + 1, |em, j| {
                    let k = em.add(em.addk(ch, -lo)?, j)?;
                    let ok = em.in_range(k, c)?;
                    let v = em.load_guarded(xt.dtype, p[1], ok, em.add(base, em.mulk(k, inner)?)?)?;
                    em.set(sq, em.fintr("fma", &[v, v, em.get(sq)?.into_float_value()])?.into())
                })?;
                let scale = em.fadd(em.f32c(bias as f64), em.fmul(em.f32c(alpha as f64 / size as f64), em.get(sq)?.into_float_value())?)?;
                // scale^beta = 2^(beta log2 scale), scale > 0
                let l = em.asm_f32("lg2.approx.f32 $0, $1;", &[scale])?;
                let den = em.exp2(em.fmul(l, em.f32c(beta as f64))?)?;
                let xv = em.convert(em.load(xt.dtype, p[1], i)?, xt.dtype, DType::F32)?.into_float_value();
                em.store(yt.dtype, p[0], i, em.fdiv(xv, den)?.into())
            })
        }
        ref other => unsupported(format!("{} in the channel-normalization family", other.kind_name())),
    }
}
