//! Products: MatMul, Gemm, MatMulFused, and the convolutions that run as an implicit GEMM.
//! This file holds the product (its geometry, its epilogue) and the SIMT kernel (f32
//! accumulation) used where the tensor cores do not apply: `mma.sync` ([`mma`]) from sm_80,
//! `wgmma` ([`wgmma`]) on sm_90a for large products, and 16-bit NHWC convolutions as an
//! implicit GEMM on either ([`conv`]). The fused epilogue is evaluated on the accumulators
//! before anything is stored.
//!
//! A block computes a 64-row tile for 64 output columns of every part of a split product
//! (MatMulFused `splits`): part `s`'s column `j` is product column `offset_s + j`. So an
//! epilogue that combines parts (SwiGLU's `silu(gate) * up`) finds them in the same thread,
//! and a product split into outputs of different widths (GQA's Q, K, V) writes each output
//! where its column exists. 256 threads, each 4 rows x 4 columns x parts; K in steps of 16
//! through shared memory.

pub mod conv;
pub mod mma;
pub mod wgmma;

use crate::codegen::llvm::{Em, Ix, Var, R};
use crate::codegen::scalar::Operand;
use crate::codegen::{blocks, unsupported, CodegenError, Cx, Param, Ty};
use crate::kernels::program::{Program, Src};
use crate::kernels::{bcast_index, input, output};
use inkwell::values::{FloatValue, PointerValue};
use inkwell::IntPredicate;
use kiln_ir::ops::BinaryOp;
use kiln_ir::shape::broadcast;
use kiln_ir::{DType, Node, Op, Tensor, ValueId};
use std::sync::Arc;

const TM: i64 = 64;
const TJ: i64 = 64;
const BK: i64 = 16;
const THREADS: i64 = 256;

/// The product's geometry.
pub(crate) struct Geo {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a_batch: Vec<usize>,
    pub b_batch: Vec<usize>,
    pub batch: Vec<usize>,
    /// Element (m, k) of A is at m * a_sm + k * a_sk within its batch; likewise B.
    pub a_sm: i64,
    pub a_sk: i64,
    pub b_sk: i64,
    pub b_sn: i64,
}

fn geometry(a: &Ty, b: &Ty, trans_a: bool, trans_b: bool) -> R<Geo> {
    let (ra, rb) = (a.dims.len(), b.dims.len());
    if ra == 0 || rb == 0 {
        return unsupported("MatMul of a scalar");
    }
    let (m, k, a_batch) = if ra == 1 { (1, a.dims[0], vec![]) } else { (a.dims[ra - 2], a.dims[ra - 1], a.dims[..ra - 2].to_vec()) };
    let (k2, n, b_batch) = if rb == 1 { (b.dims[0], 1, vec![]) } else { (b.dims[rb - 2], b.dims[rb - 1], b.dims[..rb - 2].to_vec()) };
    let (m, k) = if trans_a { (k, m) } else { (m, k) };
    let (k2, n) = if trans_b { (n, k2) } else { (k2, n) };
    if k != k2 {
        return Err(CodegenError::Internal(format!("MatMul inner dims differ: {:?} x {:?}", a.dims, b.dims)));
    }
    let batch = broadcast(&a_batch, &b_batch).ok_or_else(|| CodegenError::Internal("MatMul batch dims do not broadcast".into()))?;
    let (a_sm, a_sk) = if trans_a { (1, m as i64) } else { (k as i64, 1) };
    let (b_sk, b_sn) = if trans_b { (1, k as i64) } else { (n as i64, 1) };
    Ok(Geo { m, k, n, a_batch, b_batch, batch, a_sm, a_sk, b_sk, b_sn })
}

/// A product and its epilogue, as both GEMM kernels see it.
pub(crate) struct Product {
    pub geo: Geo,
    pub prog: Program,
    pub a: Param,
    pub b: Param,
    pub at: Ty,
    pub bt: Ty,
    /// A convolution's input read as an implicit GEMM operand (the tensor-core kernel only).
    pub im2col: Option<conv::Im2col>,
    /// Added to part 0's accumulator before the epilogue: a bias per column.
    pub bias: Option<(ValueId, Ty)>,
    /// Columns at or beyond this are a padded format's channels: stored as zeros.
    pub real_cols: Option<usize>,
    /// Epilogue inputs beyond A and B.
    pub extra: Vec<ValueId>,
    pub extra_tys: Vec<Ty>,
    /// Parts of the product: (column offset, width); one part when it is not split.
    pub parts: Vec<(i64, usize)>,
    pub outs: Vec<ValueId>,
    pub out_tys: Vec<Ty>,
}

impl Product {
    pub fn new(cx: &Cx, node: &Node) -> R<Product> {
        let (a, b) = (input(node, 0)?, input(node, 1)?);
        // B may be a transpose of a constant that this product reads transposed in place.
        let b_const = cx.transposed_b(b).cloned();
        let tb = b_const.is_some();
        let at = cx.ty(a)?;
        let bt = match &b_const {
            Some(c) => Ty { dtype: c.dtype(), dims: c.dims().to_vec() },
            None => cx.ty(b)?,
        };
        if !crate::kernels::is_f32_compute(at.dtype) || !crate::kernels::is_f32_compute(bt.dtype) {
            return unsupported(format!("MatMul on {}", at.dtype));
        }
        let (geo, prog, extra, splits) = match &node.op {
            Op::MatMul {} => {
                let prog = Program::identity(cx.ty(output(node, 0)?)?);
                (geometry(&at, &bt, false, tb)?, prog, vec![], vec![])
            }
            Op::Gemm { alpha, beta, trans_a, trans_b } => {
                let t = cx.ty(output(node, 0)?)?;
                let c = node.inputs.get(2).copied().flatten();
                let mut prog = Program { args: vec![t.clone()], consts: vec![], nodes: vec![], outputs: vec![], out_dtypes: vec![t.dtype] };
                let mul = |x: Src, k: f32| crate::kernels::program::PNode {
                    op: Op::Binary { op: BinaryOp::Mul },
                    ins: vec![Some(x), Some(Src::Scalar(t.dtype, k as f64))],
                    dtype: t.dtype,
                };
                prog.nodes.push(mul(Src::Arg(0), *alpha));
                let mut out = Src::Node(0);
                if let Some(c) = c {
                    prog.args.push(cx.ty(c)?);
                    prog.nodes.push(mul(Src::Arg(1), *beta));
                    prog.nodes.push(crate::kernels::program::PNode {
                        op: Op::Binary { op: BinaryOp::Add },
                        ins: vec![Some(Src::Node(0)), Some(Src::Node(1))],
                        dtype: t.dtype,
                    });
                    out = Src::Node(2);
                }
                prog.outputs.push(out);
                (geometry(&at, &bt, *trans_a, *trans_b)?, prog, c.into_iter().collect(), vec![])
            }
            Op::MatMulFused { splits, body } => {
                let extra: Vec<_> = node.inputs.iter().skip(2).flatten().copied().collect();
                if node.inputs.iter().skip(2).any(Option::is_none) {
                    return unsupported("MatMulFused with an absent epilogue input");
                }
                (geometry(&at, &bt, false, tb)?, Program::from_body(body)?, extra, splits.clone())
            }
            other => return unsupported(format!("{} in the GEMM family", other.kind_name())),
        };
        let parts: Vec<(i64, usize)> = if splits.is_empty() {
            vec![(0, geo.n)]
        } else {
            let mut at = 0;
            splits
                .iter()
                .map(|&w| {
                    at += w;
                    (at - w, w as usize)
                })
                .collect()
        };
        let outs: Vec<_> = node.outputs.iter().flatten().copied().collect();
        if outs.len() != node.outputs.len() {
            return unsupported("a fused product with an unused output");
        }
        let out_tys = outs.iter().map(|&o| cx.ty(o)).collect::<R<Vec<Ty>>>()?;
        let extra_tys = extra.iter().map(|&v| cx.ty(v)).collect::<R<Vec<Ty>>>()?;
        let batch_n: usize = geo.batch.iter().product();
        if batch_n > 65535 {
            return unsupported(format!("{batch_n} batched products (more than 65535)"));
        }
        Ok(Product {
            geo,
            prog,
            a: Param::Value(a),
            b: b_const.map_or(Param::Value(b), Param::Const),
            at,
            bt,
            im2col: None,
            bias: None,
            real_cols: None,
            extra,
            extra_tys,
            parts,
            outs,
            out_tys,
        })
    }

    /// A constant 16-bit `[K, N]` B whose N is not a multiple of 8 (a vocabulary projection)
    /// cannot be streamed in 16-byte rows; stored `[N, K]` at compile time it can.
    fn transpose_constant_b(&mut self, cx: &Cx, node: &Node) -> R<()> {
        let g = &self.geo;
        let Some(w) = cx.konst(input(node, 1)?) else { return Ok(()) };
        let k_major = g.b_sn == 1 && self.bt.dims.len() == 2 && g.b_batch.is_empty();
        if !k_major
            || g.n.is_multiple_of(8)
            || !g.k.is_multiple_of(8)
            || self.parts.len() != 1
            || !matches!(self.bt.dtype, DType::F16 | DType::BF16)
        {
            return Ok(());
        }
        let (k, n) = (g.k, g.n);
        let v = w.to_f64();
        let t: Vec<f64> = (0..n * k).map(|i| v[(i % k) * n + i / k]).collect();
        let bt = Tensor::new(vec![n, k], kiln_ir::Data::from_f64(self.bt.dtype, &t)).map_err(|e| CodegenError::Internal(e.to_string()))?;
        self.b = Param::Const(Arc::new(bt));
        self.bt = Ty { dtype: self.bt.dtype, dims: vec![n, k] };
        self.geo.b_sk = 1;
        self.geo.b_sn = k as i64;
        Ok(())
    }

    /// Kernel parameters: outputs, A, B, epilogue inputs, epilogue constants, bias.
    pub fn params(&self) -> Vec<Param> {
        let mut params: Vec<Param> = self.outs.iter().map(|&o| Param::Value(o)).collect();
        params.push(self.a.clone());
        params.push(self.b.clone());
        params.extend(self.extra.iter().map(|&v| Param::Value(v)));
        params.extend(self.prog.consts.iter().map(|t| Param::Const(t.clone())));
        params.extend(self.bias.iter().map(|b| Param::Value(b.0)));
        params
    }

    pub fn batch_n(&self) -> usize {
        self.geo.batch.iter().product::<usize>().max(1)
    }

    /// The width of output `t` (the 1-D B case drops N from the output; the width is then 1).
    pub fn width(&self, t: &Ty) -> usize {
        if self.geo.n == 1 && (t.dims.is_empty() || self.bt.dims.len() == 1) {
            1
        } else {
            *t.dims.last().unwrap_or(&1)
        }
    }

    /// Outputs grouped by width, each with the program arguments it reads.
    pub fn groups(&self) -> Vec<Group> {
        let mut groups: Vec<Group> = vec![];
        for (o, t) in self.out_tys.iter().enumerate() {
            let w = self.width(t);
            match groups.iter_mut().find(|g| g.width == w) {
                Some(g) => g.members.push(o),
                None => groups.push(Group { width: w, members: vec![o], needed: vec![] }),
            }
        }
        for g in &mut groups {
            g.needed = g.members.iter().flat_map(|&o| self.prog.arg_deps(o)).collect();
        }
        groups
    }

    /// Evaluates the epilogue for element (batch `z`, row `m`, column `jj` of the group's
    /// outputs) and stores the group's outputs; a padded format's channels (`real_cols` and
    /// beyond) are stored as zeros. `acc[s]` is part `s`'s accumulator (f32), or None where the
    /// group does not read it. The caller guards the bounds.
    #[allow(clippy::too_many_arguments)]
    pub fn emit_element<'c>(
        &self,
        em: &mut Em<'c>,
        p: &[PointerValue<'c>],
        z: Ix<'c>,
        m: Ix<'c>,
        jj: Ix<'c>,
        group: &Group,
        acc: &[Option<FloatValue<'c>>],
    ) -> R<()> {
        let lin = em.add(em.mulk(em.add(em.mulk(z, self.geo.m as i64)?, m)?, group.width as i64)?, jj)?;
        let Some(real) = self.real_cols else { return self.emit_program(em, p, lin, jj, group, acc) };
        let is_real = em.icmp(IntPredicate::SLT, jj, em.ix(real as i64))?;
        em.if_(is_real, |em| self.emit_program(em, p, lin, jj, group, acc))?;
        let pad = em.icmp(IntPredicate::SGE, jj, em.ix(real as i64))?;
        em.if_(pad, |em| {
            for &o in &group.members {
                let d = self.out_tys[o].dtype;
                em.store(d, p[o], lin, super::program::scalar(em, d, 0.0)?.v)?;
            }
            Ok(())
        })
    }

    /// The epilogue program at linear output index `lin` (column `jj`).
    fn emit_program<'c>(
        &self,
        em: &mut Em<'c>,
        p: &[PointerValue<'c>],
        lin: Ix<'c>,
        jj: Ix<'c>,
        group: &Group,
        acc: &[Option<FloatValue<'c>>],
    ) -> R<()> {
        let (no, ne, s_count) = (self.outs.len(), self.extra.len(), self.parts.len());
        let dims = &self.out_tys[group.members[0]].dims;
        let mut args = vec![];
        for (k, a) in self.prog.args.iter().enumerate() {
            let dt = a.dtype;
            let v = match acc.get(k) {
                // Round through the accumulator's storage dtype, like the interpreter.
                Some(Some(v)) if k < s_count => {
                    let mut v = *v;
                    if let (0, Some((_, bt))) = (k, &self.bias) {
                        let b = em.load(bt.dtype, p[no + 2 + ne + self.prog.consts.len()], jj)?;
                        v = em.fadd(v, em.convert(b, bt.dtype, DType::F32)?.into_float_value())?;
                    }
                    em.convert(v.into(), DType::F32, dt)?
                }
                _ if k >= s_count && group.needed.contains(&k) => {
                    let t = &self.extra_tys[k - s_count];
                    let idx = bcast_index(em, lin, dims, &t.dims)?;
                    em.load(t.dtype, p[no + 2 + k - s_count], idx)?
                }
                _ => super::program::scalar(em, dt, 0.0)?.v,
            };
            args.push(Operand { dtype: dt, v, konst: None });
        }
        let mut consts = vec![];
        for (c, t) in self.prog.consts.iter().enumerate() {
            let idx = bcast_index(em, lin, dims, t.dims())?;
            consts.push(Operand { dtype: t.dtype(), v: em.load(t.dtype(), p[no + 2 + ne + c], idx)?, konst: None });
        }
        let res = self.prog.eval(em, &args, &consts)?;
        for &o in &group.members {
            em.store(self.out_tys[o].dtype, p[o], lin, res[o].v)?;
        }
        Ok(())
    }
}

/// Outputs of one width.
pub(crate) struct Group {
    pub width: usize,
    /// Indices into `Product::outs`.
    pub members: Vec<usize>,
    /// Program arguments the members read.
    pub needed: Vec<usize>,
}

pub fn lower(cx: &mut Cx, node: &Node) -> R<()> {
    let mut pr = Product::new(cx, node)?;
    pr.transpose_constant_b(cx, node)?;
    if cx.arch == crate::ptx::Arch::Sm90 {
        if let Some(plan) = wgmma::plan(&pr) {
            return wgmma::lower(cx, &pr, plan);
        }
    }
    if let Some(plan) = mma::plan(&pr) {
        return mma::lower(cx, &pr, &plan);
    }
    lower_simt(cx, &pr)
}

/// The f32 SIMT kernel: any dtype computed in f32, any layout.
fn lower_simt(cx: &mut Cx, pr: &Product) -> R<()> {
    let (geo, parts) = (&pr.geo, &pr.parts);
    let (at, bt) = (&pr.at, &pr.bt);
    let s_count = parts.len();
    let max_w = parts.iter().map(|p| p.1).max().unwrap_or(1);
    let no = pr.outs.len();
    let p = cx.begin("", &pr.params())?;
    let f32t = cx.em.f32t();
    let a_s = cx.em.shared_array("As", f32t.into(), (BK * TM) as u32);
    let b_s = cx.em.shared_array("Bs", f32t.into(), (s_count as i64 * BK * TJ) as u32);
    let em = &mut cx.em;
    let tid = em.sreg("tid.x")?;
    let (tx, ty) = (em.remk(tid, 16)?, em.divk(tid, 16)?);
    let j0 = em.mulk(em.sreg("ctaid.x")?, TJ)?;
    let m0 = em.mulk(em.sreg("ctaid.y")?, TM)?;
    let z = em.sreg("ctaid.z")?;
    let a_base = em.mulk(bcast_index(em, z, &geo.batch, &geo.a_batch)?, (geo.m * geo.k) as i64)?;
    let b_base = em.mulk(bcast_index(em, z, &geo.batch, &geo.b_batch)?, (geo.k * geo.n) as i64)?;
    let mut acc: Vec<Var> = vec![];
    for _ in 0..s_count * 16 {
        acc.push(em.var(em.f32c(0.0).into())?);
    }
    let k_tiles = (geo.k as i64 + BK - 1) / BK;
    em.for_n(k_tiles, |em, kt| {
        let k0 = em.mulk(kt, BK)?;
        // A tile: 64 x 16, stored k-major.
        for q in 0..(TM * BK / THREADS) {
            let e = em.addk(tid, q * THREADS)?;
            let (r, kk) = (em.divk(e, BK)?, em.remk(e, BK)?);
            let (gm, gk) = (em.add(m0, r)?, em.add(k0, kk)?);
            let ok = em.and(em.icmp(IntPredicate::SLT, gm, em.ix(geo.m as i64))?, em.icmp(IntPredicate::SLT, gk, em.ix(geo.k as i64))?)?;
            let ia = em_add3(em, a_base, em.mulk(gm, geo.a_sm)?, em.mulk(gk, geo.a_sk)?)?;
            let v = em.load_guarded(at.dtype, p[no], ok, ia)?;
            em.store_shared_f32(a_s, em.add(em.mulk(kk, TM)?, r)?, v)?;
        }
        // B tiles: 16 x 64 per part.
        for (s, &(off, w)) in parts.iter().enumerate() {
            for q in 0..(BK * TJ / THREADS) {
                let e = em.addk(tid, q * THREADS)?;
                let (kk, c) = (em.divk(e, TJ)?, em.remk(e, TJ)?);
                let (gk, gj) = (em.add(k0, kk)?, em.add(j0, c)?);
                let ok = em.and(em.icmp(IntPredicate::SLT, gk, em.ix(geo.k as i64))?, em.icmp(IntPredicate::SLT, gj, em.ix(w as i64))?)?;
                let ib = em_add3(em, b_base, em.mulk(gk, geo.b_sk)?, em.mulk(em.addk(gj, off)?, geo.b_sn)?)?;
                let v = em.load_guarded(bt.dtype, p[no + 1], ok, ib)?;
                em.store_shared_f32(b_s, em.add(em.mulk(kk, TJ)?, em.addk(c, s as i64 * BK * TJ)?)?, v)?;
            }
        }
        em.barrier()?;
        em.for_n(BK, |em, kk| {
            let mut av = vec![];
            for i in 0..4 {
                av.push(em.load_shared_f32(a_s, em.add(em.mulk(kk, TM)?, em.addk(em.mulk(ty, 4)?, i)?)?)?);
            }
            for s in 0..s_count {
                let mut bv = vec![];
                for j in 0..4 {
                    let idx = em.add(em.mulk(kk, TJ)?, em.addk(em.mulk(tx, 4)?, j + s as i64 * BK * TJ)?)?;
                    bv.push(em.load_shared_f32(b_s, idx)?);
                }
                for i in 0..4 {
                    for j in 0..4 {
                        let v = acc[s * 16 + i * 4 + j];
                        let cur = em.get(v)?.into_float_value();
                        em.set(v, em.fintr("fma", &[av[i], bv[j], cur])?.into())?;
                    }
                }
            }
            Ok(())
        })?;
        em.barrier()
    })?;
    // Epilogue: each group of outputs evaluates what it needs where its column exists.
    let groups = pr.groups();
    for i in 0..4 {
        for j in 0..4 {
            let m = em.add(m0, em.addk(em.mulk(ty, 4)?, i)?)?;
            let jj = em.add(j0, em.addk(em.mulk(tx, 4)?, j)?)?;
            let acc_vals: Vec<Option<FloatValue>> = (0..s_count)
                .map(|s| em.get(acc[s * 16 + i as usize * 4 + j as usize]).map(|v| Some(v.into_float_value())))
                .collect::<R<_>>()?;
            for g in &groups {
                let ok =
                    em.and(em.icmp(IntPredicate::SLT, m, em.ix(geo.m as i64))?, em.icmp(IntPredicate::SLT, jj, em.ix(g.width as i64))?)?;
                em.if_(ok, |em| pr.emit_element(em, &p, z, m, jj, g, &acc_vals))?;
            }
        }
    }
    cx.launch([blocks(max_w, TJ as usize)?, blocks(geo.m, TM as usize)?, pr.batch_n() as u32], [THREADS as u32, 1, 1], 0)
}

fn em_add3<'c>(em: &Em<'c>, a: Ix<'c>, b: Ix<'c>, c: Ix<'c>) -> R<Ix<'c>> {
    em.add(em.add(a, b)?, c)
}
