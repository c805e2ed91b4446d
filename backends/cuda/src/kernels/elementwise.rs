//! Elementwise kernels: one fused program per launch, every input read through its own
//! broadcast index (numpy rules), constants folded into the code. Each thread takes the
//! elements of one 16-byte access of the widest full-size tensor (8 f16, 4 f32), loaded and
//! stored as vectors; the remainder is taken one element per thread.

use super::program::Program;
use super::{bcast_index, global_x, output};
use crate::codegen::llvm::{store_bytes, Em, Ix, R};
use crate::codegen::scalar::Operand;
use crate::codegen::{blocks, unsupported, Cx, Param, Ty};
use inkwell::IntPredicate;
use kiln_ir::{DType, Node, Op};

const BLOCK: i64 = 256;

pub fn lower<'c>(cx: &mut Cx<'c, '_>, node: &Node) -> R<()> {
    let prog = match &node.op {
        Op::FusedElementwise { body } => Program::from_body(body)?,
        op => {
            let args = node.inputs.iter().map(|i| i.map(|v| cx.ty(v)).transpose()).collect::<R<Vec<_>>>()?;
            Program::single(op, args, cx.ty(output(node, 0)?)?.dtype)
        }
    };
    let outs: Vec<_> = node.outputs.iter().flatten().copied().collect();
    let out_tys = outs.iter().map(|&o| cx.ty(o)).collect::<R<Vec<Ty>>>()?;
    let dims = out_tys.first().map(|t| t.dims.clone()).unwrap_or_default();
    if out_tys.iter().any(|t| t.numel() != dims.iter().product::<usize>()) {
        return unsupported("a fused program whose outputs differ in size");
    }
    if matches!(node.op, Op::FusedElementwise { .. }) && node.inputs.iter().any(Option::is_none) {
        return unsupported("a fused program with an absent input");
    }
    // Program argument i is node input i; absent optional inputs (Clip's bounds) are never read.
    let present: Vec<(usize, kiln_ir::ValueId, Ty)> =
        node.inputs.iter().enumerate().filter_map(|(i, v)| v.map(|v| (i, v))).map(|(i, v)| Ok((i, v, cx.ty(v)?))).collect::<R<_>>()?;
    let mut params: Vec<Param> = outs.iter().map(|&o| Param::Value(o)).collect();
    params.extend(present.iter().map(|&(_, v, _)| Param::Value(v)));
    params.extend(prog.consts.iter().map(|t| Param::Const(t.clone())));
    let konst = |v: kiln_ir::ValueId| {
        cx.konst(v).filter(|t| t.numel() == 1).map(|t| if t.dtype().is_float() { t.to_f64()[0] } else { t.to_i64()[0] as f64 })
    };
    let konsts: Vec<Option<f64>> = present.iter().map(|&(_, v, _)| konst(v)).collect();
    let n = dims.iter().product::<usize>();
    // Elements per thread: one 16-byte access for the widest full-size tensor, when every
    // full-size tensor is 16-byte aligned; broadcast inputs are read element by element.
    let full: Vec<bool> = present.iter().map(|(_, _, t)| t.dims == dims).collect();
    let widest = out_tys
        .iter()
        .map(|t| t.dtype)
        .chain(present.iter().zip(&full).filter(|p| *p.1).map(|p| p.0 .2.dtype))
        .map(store_bytes)
        .max()
        .unwrap_or(4);
    let aligned = outs.iter().chain(present.iter().zip(&full).filter(|p| *p.1).map(|p| &p.0 .1)).all(|&v| cx.is_aligned(v, 16));
    let vw = if aligned && widest <= 16 { (16 / widest).min(8) as usize } else { 1 };
    let (n_vec, tail) = (n / vw, n % vw);
    let p = cx.begin("", &params)?;
    let em = &mut cx.em;
    let t = global_x(em, BLOCK)?;
    let (no, np) = (outs.len(), present.len());
    // Elements i0 .. i0 + count: loaded, evaluated and stored (as vectors when `vector`).
    let elements = |em: &mut Em<'c>, i0: Ix<'c>, count: usize, vector: bool| -> R<()> {
        let unused = super::program::scalar(em, DType::F32, 0.0)?;
        let mut args = vec![vec![unused; node.inputs.len()]; count];
        for (k, (slot, _, t)) in present.iter().enumerate() {
            let vals = if vector && full[k] {
                em.load_vec(t.dtype, p[no + k], i0, count as u32)?
            } else {
                (0..count)
                    .map(|e| em.load(t.dtype, p[no + k], bcast_index(em, em.addk(i0, e as i64)?, &dims, &t.dims)?))
                    .collect::<R<_>>()?
            };
            for (e, v) in vals.into_iter().enumerate() {
                args[e][*slot] = Operand { dtype: t.dtype, v, konst: konsts[k] };
            }
        }
        let mut res = vec![];
        for (e, args) in args.iter().enumerate() {
            let i = em.addk(i0, e as i64)?;
            let mut consts = vec![];
            for (c, t) in prog.consts.iter().enumerate() {
                let idx = bcast_index(em, i, &dims, t.dims())?;
                consts.push(Operand { dtype: t.dtype(), v: em.load(t.dtype(), p[no + np + c], idx)?, konst: None });
            }
            res.push(prog.eval(em, args, &consts)?);
        }
        for (k, ot) in out_tys.iter().enumerate() {
            let vals: Vec<_> = res.iter().map(|r| r[k].v).collect();
            if vector {
                em.store_vec(ot.dtype, p[k], i0, &vals)?;
            } else {
                for (e, v) in vals.into_iter().enumerate() {
                    em.store(ot.dtype, p[k], em.addk(i0, e as i64)?, v)?;
                }
            }
        }
        Ok(())
    };
    let in_vec = em.icmp(IntPredicate::ULT, t, em.ix(n_vec as i64))?;
    em.if_(in_vec, |em| elements(em, em.mulk(t, vw as i64)?, vw, vw > 1))?;
    if tail > 0 {
        let in_tail =
            em.and(em.icmp(IntPredicate::UGE, t, em.ix(n_vec as i64))?, em.icmp(IntPredicate::ULT, t, em.ix((n_vec + tail) as i64))?)?;
        em.if_(in_tail, |em| elements(em, em.addk(em.sub(t, em.ix(n_vec as i64))?, (n_vec * vw) as i64)?, 1, false))?;
    }
    cx.launch([blocks(n_vec + tail, BLOCK as usize)?, 1, 1], [BLOCK as u32, 1, 1], 0)
}
