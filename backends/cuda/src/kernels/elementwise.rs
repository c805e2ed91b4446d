//! Elementwise kernels: one fused program per launch, one element per thread, every input
//! read through its own broadcast index (numpy rules), constants folded into the code.

use super::program::Program;
use super::{bcast_index, global_x, output};
use crate::codegen::llvm::R;
use crate::codegen::scalar::Operand;
use crate::codegen::{blocks, unsupported, Cx, Param, Ty};
use inkwell::IntPredicate;
use kiln_ir::{DType, Node, Op};

const BLOCK: i64 = 256;

pub fn lower(cx: &mut Cx, node: &Node) -> R<()> {
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
    let p = cx.begin("", &params)?;
    let em = &mut cx.em;
    let i = global_x(em, BLOCK)?;
    let inb = em.icmp(IntPredicate::ULT, i, em.ix(n as i64))?;
    let (no, np) = (outs.len(), present.len());
    em.if_(inb, |em| {
        let unused = super::program::scalar(em, DType::F32, 0.0)?;
        let mut args = vec![unused; node.inputs.len()];
        for (k, (slot, _, t)) in present.iter().enumerate() {
            let idx = bcast_index(em, i, &dims, &t.dims)?;
            let v = em.load(t.dtype, p[no + k], idx)?;
            args[*slot] = Operand { dtype: t.dtype, v, konst: konsts[k] };
        }
        let mut consts = vec![];
        for (c, t) in prog.consts.iter().enumerate() {
            let idx = bcast_index(em, i, &dims, t.dims())?;
            let v = em.load(t.dtype(), p[no + np + c], idx)?;
            consts.push(Operand { dtype: t.dtype(), v, konst: None });
        }
        let res = prog.eval(em, &args, &consts)?;
        for (k, r) in res.iter().enumerate() {
            em.store(out_tys[k].dtype, p[k], i, r.v)?;
        }
        Ok(())
    })?;
    cx.launch([blocks(n, BLOCK as usize)?, 1, 1], [BLOCK as u32, 1, 1], 0)
}
