//! Data movement whose source element for each output element is fixed when compiling
//! (CenterCropPad with its target shape, Compress with its condition: every input but the data
//! is a constant). The interpreter evaluates the op once on the data's element numbers
//! (1-based, so 0 marks a zero fill), which gives an index table; the kernel gathers through
//! it. One table entry per output element, read once: for the rarely used ops that have no
//! kernel of their own.

use super::{input, output};
use crate::codegen::llvm::R;
use crate::codegen::{CodegenError, Cx, Param};
use inkwell::IntPredicate as I;
use kiln_ir::{DType, Data, Node, Tensor};
use std::sync::Arc;

pub fn lower<'c>(cx: &mut Cx<'c, '_>, node: &Node) -> R<()> {
    let (x, y) = (input(node, 0)?, output(node, 0)?);
    let (xt, yt) = (cx.ty(x)?, cx.ty(y)?);
    let n = xt.numel();
    let numbers = Tensor::new(xt.dims.clone(), Data::I64((1..=n as i64).collect())).map_err(|e| CodegenError::Internal(e.to_string()))?;
    let mut ins: Vec<Option<Arc<Tensor>>> = vec![Some(Arc::new(numbers))];
    for (i, v) in node.inputs.iter().enumerate().skip(1) {
        ins.push(match v {
            None => None,
            Some(v) => Some(cx.konst(*v).cloned().ok_or_else(|| {
                CodegenError::Unsupported(format!("{} with a run-time input {i} (it must be a constant)", node.op.kind_name()))
            })?),
        });
    }
    let refs: Vec<Option<&Tensor>> = ins.iter().map(|t| t.as_deref()).collect();
    let table = node
        .op
        .eval(&refs, 1)
        .map_err(|e| CodegenError::Unsupported(format!("{}: {e}", node.op.kind_name())))?
        .into_iter()
        .next()
        .ok_or_else(|| CodegenError::Internal(format!("{} gave no output", node.op.kind_name())))?;
    if table.dims() != yt.dims.as_slice() {
        return Err(CodegenError::Internal(format!("{} index table {:?} for output {:?}", node.op.kind_name(), table.dims(), yt.dims)));
    }
    let index_dt = if n < i32::MAX as usize { DType::I32 } else { DType::I64 };
    let table = Arc::new(table.cast(index_dt));
    let total = yt.numel();
    let p = cx.begin("", &[Param::Value(y), Param::Value(x), Param::Const(table)])?;
    super::per_element(cx, total, |em, t| {
        let j = em.load(index_dt, p[2], t)?.into_int_value();
        let j = em.b.build_int_s_extend_or_bit_cast(j, em.i64t(), "")?;
        let filled = em.icmp(I::EQ, j, em.ix(0))?;
        let src = em.select(filled, em.ix(0), em.addk(j, -1)?)?.into_int_value();
        let v = em.load(xt.dtype, p[1], src)?;
        let zero = super::program::scalar(em, yt.dtype, 0.0)?.v;
        let out = em.select(filled, zero, v)?;
        em.store(yt.dtype, p[0], t, out)
    })
}
