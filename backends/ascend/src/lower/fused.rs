//! Fused nodes: a convolution or product with its elementwise epilogue, and fused elementwise
//! bodies, each one AscendC kernel where the vector kernels compute it and CANN built-ins op
//! by op otherwise.

use super::ops::{input, output, split_last, Outs};
use super::{conv, matmul};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use kiln_ir::ops::{Format, Window};
use kiln_ir::{Graph, Op, Tensor};

/// An elementwise op as an AscendC kernel of its own (a body of one node), where the vector
/// kernels compute it on these operands (one output, plain ND data); None otherwise.
pub(super) fn single(
    cx: &mut Cx,
    name: &str,
    op: &Op,
    ins: &[Option<Port>],
    consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Option<Outs>, Fail> {
    let [Some(out)] = outs else { return Ok(None) };
    let mut body = kiln_ir::Graph::new("single");
    let mut args = vec![];
    let mut vals = vec![];
    for (i, p) in ins.iter().enumerate() {
        let Some(p) = p else {
            vals.push(None);
            continue;
        };
        let d = cx.desc(p)?;
        let shape = kiln_ir::Shape::fixed(&d.shape());
        let v = match consts.get(i).copied().flatten() {
            Some(t) if t.numel() == 1 => body.add_const(format!("k{i}"), std::sync::Arc::new(t.clone())),
            _ => {
                args.push(p.clone());
                body.add_input(format!("in{i}"), kiln_ir::TensorType::new(d.dtype, shape))
            }
        };
        vals.push(Some(v));
    }
    let made = body.add_node("n", op.clone(), vals, &[Some("y".into())]).map_err(|e| Fail::Internal(e.to_string()))?;
    body.outputs = made.into_iter().flatten().collect();
    Ok(cx.kernel(name, &body, args, out, 1)?.map(|p| vec![Some(p)]))
}

/// A fused elementwise body over `args`: one AscendC kernel where the vector kernels compute
/// it, CANN built-ins op by op otherwise.
pub(super) fn epilogue(cx: &mut Cx, name: &str, body: &kiln_ir::Graph, args: Vec<Port>, outs: &[Option<Desc>]) -> Result<Outs, Fail> {
    if let [Some(out)] = outs {
        if let Some(p) = cx.kernel(name, body, args.clone(), out, 2)? {
            return Ok(vec![Some(p)]);
        }
    }
    Ok(cx.body(name, body, args)?.into_iter().map(Some).collect())
}

/// The `ConvFused` arm of [`super::table::lower_node`].
pub(super) fn conv_fused(
    cx: &mut Cx,
    name: &str,
    w: &Window,
    group: &i64,
    format: &Format,
    body: &Graph,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let y = || output(outs, 0);
    // The convolution's own result: the body's first input, in the stored format.
    let first = body.inputs.first().ok_or_else(|| Fail::Internal("an empty body".into()))?;
    let acc_dtype = body.value(*first).ty.dtype;
    let out = y()?;
    let acc = Desc { dtype: acc_dtype, ..out.clone() };
    let acc = conv::conv2d(cx, &format!("{name}/conv"), w, *group, *format, &ins[..ins.len().min(3)], acc)?;
    let mut args = vec![acc];
    for i in 3..ins.len() {
        args.push(input(ins, i)?);
    }
    Ok(cx.body(name, body, args)?.into_iter().map(Some).collect())
}

/// The `MatMulFused` arm of [`super::table::lower_node`].
pub(super) fn matmul_fused(
    cx: &mut Cx,
    name: &str,
    splits: &[i64],
    body: &Graph,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let first = body.inputs.first().ok_or_else(|| Fail::Internal("an empty body".into()))?;
    let acc_dtype = body.value(*first).ty.dtype;
    let a = cx.desc(&x()?)?;
    let b = cx.desc(&input(ins, 1)?)?;
    let Some(dims) = matmul::matmul_dims(&a.dims, &b.dims) else {
        return unsupported("a fused product with a 1-D operand is not mapped yet");
    };
    let acc = matmul::matmul(cx, &format!("{name}/matmul"), ins, Desc::nd(acc_dtype, &dims))?;
    let mut args = if splits.is_empty() { vec![acc] } else { split_last(cx, &format!("{name}/split"), acc, splits)? };
    for i in 2..ins.len() {
        args.push(input(ins, i)?);
    }
    epilogue(cx, name, body, args, outs)
}
