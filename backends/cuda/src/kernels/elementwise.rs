//! Elementwise kernels: one fused program per launch, one element per thread, every input
//! read through its own broadcast index (numpy rules), constants folded into the code.

use super::program::Program;
use super::{bcast_index, global_x, output};
use crate::codegen::llvm::R;
use crate::codegen::scalar::Operand;
use crate::codegen::{blocks, unsupported, Cx, Param, Ty};
use inkwell::IntPredicate;
use kiln_ir::{Node, Op};

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
    // Arguments: the node's present inputs in order (absent optional ones are not arguments).
    let arg_vals: Vec<_> = node.inputs.iter().flatten().copied().collect();
    let arg_tys = arg_vals.iter().map(|&v| cx.ty(v)).collect::<R<Vec<Ty>>>()?;
    let mut params: Vec<Param> = outs.iter().map(|&o| Param::Value(o)).collect();
    params.extend(arg_vals.iter().map(|&v| Param::Value(v)));
    params.extend(prog.consts.iter().map(|t| Param::Const(t.clone())));
    let konsts: Vec<Option<f64>> = arg_vals
        .iter()
        .map(|&v| cx.konst(v).filter(|t| t.numel() == 1).map(|t| if t.dtype().is_float() { t.to_f64()[0] } else { t.to_i64()[0] as f64 }))
        .collect();
    let n = dims.iter().product::<usize>();
    let p = cx.begin("", &params)?;
    let em = &mut cx.em;
    let i = global_x(em, BLOCK)?;
    let inb = em.icmp(IntPredicate::ULT, i, em.ix(n as i64))?;
    let (no, na) = (outs.len(), arg_vals.len());
    // Map node inputs (with absent ones) onto program argument slots.
    let mut slot = 0;
    let arg_slot: Vec<Option<usize>> = node
        .inputs
        .iter()
        .map(|x| {
            x.map(|_| {
                slot += 1;
                slot - 1
            })
        })
        .collect();
    em.if_(inb, |em| {
        let mut args = vec![];
        for (k, s) in arg_slot.iter().enumerate() {
            let Some(s) = *s else {
                if matches!(node.op, Op::FusedElementwise { .. }) {
                    return unsupported(format!("fused op with absent input {k}"));
                }
                continue;
            };
            let t = &arg_tys[s];
            let idx = bcast_index(em, i, &dims, &t.dims)?;
            let v = em.load(t.dtype, p[no + s], idx)?;
            args.push(Operand { dtype: t.dtype, v, konst: konsts[s] });
        }
        let mut consts = vec![];
        for (c, t) in prog.consts.iter().enumerate() {
            let idx = bcast_index(em, i, &dims, t.dims())?;
            let v = em.load(t.dtype(), p[no + na + c], idx)?;
            consts.push(Operand { dtype: t.dtype(), v, konst: None });
        }
        let res = if matches!(node.op, Op::FusedElementwise { .. }) {
            prog.eval(em, &args, &consts)?
        } else {
            // A single op: absent optional inputs were skipped above, so evaluate directly.
            let mut full = vec![];
            let mut it = args.into_iter();
            for s in &arg_slot {
                full.push(s.and_then(|_| it.next()));
            }
            single(em, &prog, full)?
        };
        for (k, r) in res.iter().enumerate() {
            em.store(out_tys[k].dtype, p[k], i, r.v)?;
        }
        Ok(())
    })?;
    cx.launch([blocks(n, BLOCK as usize)?, 1, 1], [BLOCK as u32, 1, 1], 0)
}

/// Evaluates a one-op program whose optional inputs may be absent.
fn single<'c>(em: &crate::codegen::llvm::Em<'c>, prog: &Program, args: Vec<Option<Operand<'c>>>) -> R<Vec<Operand<'c>>> {
    let mut p = prog.clone();
    let present: Vec<Operand<'c>> = args.iter().flatten().copied().collect();
    let mut k = 0;
    p.nodes[0].ins = args
        .iter()
        .map(|a| {
            a.map(|_| {
                k += 1;
                super::program::Src::Arg(k - 1)
            })
        })
        .collect();
    p.eval(em, &present, &[])
}
