//! Sampling grids, as `kiln_ir::ops::grid` computes them, in f64.
//!
//! AffineGrid: one thread per output coordinate applies theta to the normalized base point.
//!
//! GridSample: one thread per output element (batch, channel, output point) computes each spatial axis's taps (nearest: 1, linear: 2, cubic: 4) from the
//! grid's normalized coordinate, then sums the input over the taps' tensor product, unrolled at
//! compile time. Padding follows `kiln_ir::ops::grid`: zeros (a tap outside reads nothing),
//! border (clamp) or reflection about the sampling borders.

use super::{input, output, strides};
use crate::codegen::llvm::{Em, Ix, R};
use crate::codegen::{unsupported, Cx, Param};
use inkwell::values::{FloatValue, IntValue};
use inkwell::{FloatPredicate as F, IntPredicate as I};
use kiln_ir::ops::{GridMode, GridPadding};
use kiln_ir::{DType, Node, Op};

/// One tap along an axis: the input index (0 where invalid), whether it reads, its weight.
struct Tap<'c> {
    index: Ix<'c>,
    valid: IntValue<'c>,
    weight: FloatValue<'c>,
}

fn k<'c>(em: &Em<'c>, v: f64) -> FloatValue<'c> {
    em.cx.f64_type().const_float(v)
}

/// `x` reflected into `[lo, hi]` (the interpreter's `reflect`).
fn reflect<'c>(em: &Em<'c>, x: FloatValue<'c>, lo: f64, hi: f64) -> R<FloatValue<'c>> {
    let rng = hi - lo;
    if rng <= 0.0 {
        return Ok(k(em, lo));
    }
    // From one border: the distance past it, whole ranges dropped; odd counts flip the side.
    let side = |em: &Em<'c>, dx: FloatValue<'c>, near: f64, far: f64, toward_hi: bool| -> R<FloatValue<'c>> {
        let n = em.fintr("trunc", &[em.fdiv(dx, k(em, rng))?])?;
        let r = em.fsub(dx, em.fmul(n, k(em, rng))?)?;
        let ni = em.b.build_float_to_signed_int(n, em.i64t(), "")?;
        let even = em.icmp(I::EQ, em.b.build_and(ni, em.ix(1), "")?, em.ix(0))?;
        let (from_near, from_far) = if toward_hi {
            (em.fadd(k(em, near), r)?, em.fsub(k(em, far), r)?)
        } else {
            (em.fsub(k(em, near), r)?, em.fadd(k(em, far), r)?)
        };
        Ok(em.select(even, from_near, from_far)?.into_float_value())
    };
    let below = side(em, em.fsub(k(em, lo), x)?, lo, hi, true)?;
    let above = side(em, em.fsub(x, k(em, hi))?, hi, lo, false)?;
    let v = em.select(em.fcmp(F::OGT, x, k(em, hi))?, above, x)?.into_float_value();
    Ok(em.select(em.fcmp(F::OLT, x, k(em, lo))?, below, v)?.into_float_value())
}

fn cubic<'c>(em: &Em<'c>, t: FloatValue<'c>) -> R<[FloatValue<'c>; 4]> {
    let a = -0.75;
    // ((a*p - 5a)*p + 8a)*p - 4a for the outer taps, ((a+2)*s - (a+3))*s*s + 1 for the inner.
    let outer = |p: FloatValue<'c>| -> R<FloatValue<'c>> {
        let v = em.fsub(em.fmul(k(em, a), p)?, k(em, 5.0 * a))?;
        let v = em.fadd(em.fmul(v, p)?, k(em, 8.0 * a))?;
        em.fsub(em.fmul(v, p)?, k(em, 4.0 * a))
    };
    let inner = |s: FloatValue<'c>| -> R<FloatValue<'c>> {
        let v = em.fsub(em.fmul(k(em, a + 2.0), s)?, k(em, a + 3.0))?;
        em.fadd(em.fmul(em.fmul(v, s)?, s)?, k(em, 1.0))
    };
    let one_minus_t = em.fsub(k(em, 1.0), t)?;
    Ok([outer(em.fadd(t, k(em, 1.0))?)?, inner(t)?, inner(one_minus_t)?, outer(em.fsub(k(em, 2.0), t)?)?])
}

/// The taps of unnormalized coordinate `v` along an axis of `d` (the interpreter's `taps`).
fn taps<'c>(em: &Em<'c>, v: FloatValue<'c>, d: usize, mode: GridMode, pad: GridPadding, align: bool) -> R<Vec<Tap<'c>>> {
    let (lo, hi) = if align { (0.0, d as f64 - 1.0) } else { (-0.5, d as f64 - 0.5) };
    let top = d as i64 - 1;
    let mut v = if mode == GridMode::Nearest { em.fintr("rint", &[v])? } else { v };
    let outside = em.b.build_or(em.fcmp(F::OLT, v, k(em, lo))?, em.fcmp(F::OGT, v, k(em, hi))?, "")?;
    let moved = match pad {
        GridPadding::Border => Some(em.fmin(em.fmax(v, k(em, 0.0))?, k(em, top as f64))?),
        GridPadding::Reflection => Some(reflect(em, v, lo, hi)?),
        GridPadding::Zeros => None,
    };
    if let Some(m) = moved {
        v = em.select(outside, m, v)?.into_float_value();
    }
    let at = |em: &Em<'c>, i: Ix<'c>, weight: FloatValue<'c>| -> R<Tap<'c>> {
        let clamp = |i: Ix<'c>| -> R<Ix<'c>> {
            let i = em.select(em.icmp(I::SLT, i, em.ix(0))?, em.ix(0), i)?.into_int_value();
            em.min_ix(i, em.ix(top))
        };
        Ok(match pad {
            GridPadding::Zeros => {
                let valid = em.and(em.icmp(I::SGE, i, em.ix(0))?, em.icmp(I::SLE, i, em.ix(top))?)?;
                Tap { index: em.select(valid, i, em.ix(0))?.into_int_value(), valid, weight }
            }
            GridPadding::Border => Tap { index: clamp(i)?, valid: em.i1().const_all_ones(), weight },
            GridPadding::Reflection => {
                let r = reflect(em, em.b.build_signed_int_to_float(i, em.cx.f64_type(), "")?, lo, hi)?;
                let r = em.b.build_float_to_signed_int(r, em.i64t(), "")?;
                Tap { index: clamp(r)?, valid: em.i1().const_all_ones(), weight }
            }
        })
    };
    let floor = em.fintr("floor", &[v])?;
    let x0 = em.b.build_float_to_signed_int(floor, em.i64t(), "")?;
    let t = em.fsub(v, floor)?;
    match mode {
        GridMode::Nearest => Ok(vec![at(em, em.b.build_float_to_signed_int(v, em.i64t(), "")?, k(em, 1.0))?]),
        GridMode::Linear => Ok(vec![at(em, x0, em.fsub(k(em, 1.0), t)?)?, at(em, em.addk(x0, 1)?, t)?]),
        GridMode::Cubic => {
            let c = cubic(em, t)?;
            (0..4).map(|j| at(em, em.addk(x0, j - 1)?, c[j as usize])).collect()
        }
    }
}

pub fn lower<'c>(cx: &mut Cx<'c, '_>, node: &Node) -> R<()> {
    match node.op {
        Op::GridSample { mode, padding_mode, align_corners } => grid_sample(cx, node, mode, padding_mode, align_corners),
        Op::AffineGrid { align_corners } => affine_grid(cx, node, align_corners),
        ref other => unsupported(format!("{} in the grid family", other.kind_name())),
    }
}

/// AffineGrid: output [N, *S, r] for theta [N, r, r + 1]; point (x, y[, z], 1) with x along the
/// last spatial axis, each axis's normalized base coordinates as the interpreter's.
fn affine_grid<'c>(cx: &mut Cx<'c, '_>, node: &Node, align: bool) -> R<()> {
    let (theta, y) = (input(node, 0)?, output(node, 0)?);
    let (tt, yt) = (cx.ty(theta)?, cx.ty(y)?);
    if !(super::is_f32_compute(tt.dtype) || tt.dtype == DType::F64) || yt.dims.len() < 3 {
        return unsupported(format!("AffineGrid on {} giving {:?}", tt.dtype, yt.dims));
    }
    let r = yt.dims.len() - 2;
    let sp = yt.dims[1..=r].to_vec();
    let points: usize = sp.iter().product();
    let st = strides(&sp);
    let p = cx.begin("", &[Param::Value(y), Param::Value(theta)])?;
    super::per_element(cx, yt.numel(), |em, t| {
        let (bp, row) = (em.divk(t, r as i64)?, em.remk(t, r as i64)?);
        let (b, pt) = (em.divk(bp, points as i64)?, em.remk(bp, points as i64)?);
        let th = em.mulk(em.add(em.mulk(b, r as i64)?, row)?, (r + 1) as i64)?;
        let mut acc = k(em, 0.0);
        for j in 0..=r {
            let h = if j == r {
                k(em, 1.0)
            } else {
                let a = r - 1 - j;
                let n = sp[a];
                let i = em.remk(em.divk(pt, st[a])?, n as i64)?;
                let i = em.b.build_signed_int_to_float(i, em.cx.f64_type(), "")?;
                match (align, n) {
                    (true, 1) => k(em, -1.0),
                    (true, _) => em.fadd(k(em, -1.0), em.fdiv(em.fmul(k(em, 2.0), i)?, k(em, (n - 1) as f64))?)?,
                    (false, _) => em.fadd(k(em, -1.0), em.fdiv(em.fadd(em.fmul(k(em, 2.0), i)?, k(em, 1.0))?, k(em, n as f64))?)?,
                }
            };
            let tv = em.load(tt.dtype, p[1], em.addk(th, j as i64)?)?;
            let tv = em.convert(tv, tt.dtype, DType::F64)?.into_float_value();
            acc = em.fadd(acc, em.fmul(tv, h)?)?;
        }
        let out = em.convert(acc.into(), DType::F64, yt.dtype)?;
        em.store(yt.dtype, p[0], t, out)
    })
}

fn grid_sample<'c>(cx: &mut Cx<'c, '_>, node: &Node, mode: GridMode, padding_mode: GridPadding, align_corners: bool) -> R<()> {
    let (x, grid, y) = (input(node, 0)?, input(node, 1)?, output(node, 0)?);
    let (xt, gt, yt) = (cx.ty(x)?, cx.ty(grid)?, cx.ty(y)?);
    let float = |d: DType| super::is_f32_compute(d) || d == DType::F64;
    if !float(xt.dtype) || !float(gt.dtype) {
        return unsupported(format!("GridSample on {} with a {} grid", xt.dtype, gt.dtype));
    }
    if xt.dims.len() < 3 || gt.dims.len() != xt.dims.len() {
        return unsupported(format!("GridSample of a rank-{} input", xt.dims.len()));
    }
    let nd = xt.dims.len() - 2;
    let (n, c) = (xt.dims[0], xt.dims[1]);
    let spatial = xt.dims[2..].to_vec();
    let in_size: usize = spatial.iter().product();
    let out_size: usize = yt.dims[2..].iter().product();
    let in_strides = strides(&spatial);
    let p = cx.begin("", &[Param::Value(y), Param::Value(x), Param::Value(grid)])?;
    super::per_element(cx, n * c * out_size, |em, t| {
        let (bc, o) = (em.divk(t, out_size as i64)?, em.remk(t, out_size as i64)?);
        let b = em.divk(bc, c as i64)?;
        // The grid holds x, y[, z]: innermost spatial axis first.
        let point = em.mulk(em.add(em.mulk(b, out_size as i64)?, o)?, nd as i64)?;
        let mut axis_taps = vec![];
        for (i, &d) in spatial.iter().enumerate() {
            let g = em.load(gt.dtype, p[2], em.addk(point, (nd - 1 - i) as i64)?)?;
            let norm = em.convert(g, gt.dtype, DType::F64)?.into_float_value();
            let plus1 = em.fadd(norm, k(em, 1.0))?;
            let v = if align_corners {
                em.fmul(em.fdiv(plus1, k(em, 2.0))?, k(em, d as f64 - 1.0))?
            } else {
                em.fdiv(em.fsub(em.fmul(plus1, k(em, d as f64))?, k(em, 1.0))?, k(em, 2.0))?
            };
            axis_taps.push(taps(em, v, d, mode, padding_mode, align_corners)?);
        }
        let plane = em.mulk(bc, in_size as i64)?;
        let mut acc = k(em, 0.0);
        let total: usize = axis_taps.iter().map(Vec::len).product();
        for combo in 0..total {
            let (mut rem, mut off, mut valid, mut w) = (combo, em.ix(0), em.i1().const_all_ones(), k(em, 1.0));
            for i in (0..nd).rev() {
                let tap = &axis_taps[i][rem % axis_taps[i].len()];
                rem /= axis_taps[i].len();
                w = em.fmul(w, tap.weight)?;
                valid = em.and(valid, tap.valid)?;
                off = em.add(off, em.mulk(tap.index, in_strides[i])?)?;
            }
            let xv = em.load(xt.dtype, p[1], em.add(plane, off)?)?;
            let term = em.fmul(w, em.convert(xv, xt.dtype, DType::F64)?.into_float_value())?;
            acc = em.select(valid, em.fadd(acc, term)?, acc)?.into_float_value();
        }
        let out = em.convert(acc.into(), DType::F64, yt.dtype)?;
        em.store(yt.dtype, p[0], t, out)
    })
}
