//! Fused ops, made by the optimizer: an optional anchor (MatMul or Conv) followed by an
//! elementwise program held as a body graph. Reference semantics are the obvious ones: compute
//! the anchor, split its result along the last axis when asked, then run the body on those parts
//! and the extra inputs. Body values keep their declared dtypes and ranks; their dims are
//! re-inferred from the actual inputs, so one body serves any shapes it broadcasts over.
//!
//! ```text
//! %y = MatMulFused[fc](%x, %w, %b) {splits=[], body=graph "epilogue" (%acc: f32[2,8], %b: f32[8]) {
//!   %s = Add[s](%acc, %b) : f32[2,8]
//!   %r = Relu[r](%s) : f32[2,8]
//!   return %r
//! }} : f32[2,8]
//! ```

use super::{conv, data_movement, layout, matmul, norm_axis, req, DimNamer, Format, InType, Op, OpError, TensorType, Window};
use crate::graph::Graph;
use crate::shape::{Dim, Shape};
use crate::tensor::Tensor;

impl Op {
    /// A ConvFused with the convolution attributes of `self` (a Conv or ConvFused), in `format`
    /// with `align`, running `body`; None for any other op.
    pub fn with_conv_epilogue(&self, format: Format, align: i64, body: Box<Graph>) -> Option<Op> {
        if !matches!(self, Op::Conv { .. } | Op::ConvFused { .. }) {
            return None;
        }
        let Some(Op::Conv { kernel_shape, strides, pads, dilations, group, auto_pad }) = self.float_conv() else { return None };
        Some(Op::ConvFused { kernel_shape, strides, pads, dilations, group, auto_pad, format, align, body })
    }
}

impl Op {
    /// The float Conv with the convolution attributes of `self` (Conv, ConvFused, ConvInteger
    /// or QLinearConv); None for any other op.
    pub fn float_conv(&self) -> Option<Op> {
        let (Op::Conv { kernel_shape, strides, pads, dilations, group, auto_pad }
        | Op::ConvFused { kernel_shape, strides, pads, dilations, group, auto_pad, .. }
        | Op::ConvInteger { kernel_shape, strides, pads, dilations, group, auto_pad }
        | Op::QLinearConv { kernel_shape, strides, pads, dilations, group, auto_pad }) = self
        else {
            return None;
        };
        Some(Op::Conv {
            kernel_shape: kernel_shape.clone(),
            strides: strides.clone(),
            pads: pads.clone(),
            dilations: dilations.clone(),
            group: *group,
            auto_pad: *auto_pad,
        })
    }
}

fn check_body(body: &Graph) -> Result<(), OpError> {
    if let Some(n) = body.nodes.iter().find(|n| !n.op.is_elementwise() || n.outputs.len() != 1) {
        return Err(OpError::Invalid(format!("fused body node `{}` ({}) is not a single-output elementwise op", n.name, n.op.kind_name())));
    }
    if body.outputs.is_empty() {
        return Err(OpError::Invalid("fused body has no outputs".into()));
    }
    Ok(())
}

/// Type inference of `body` applied to `args`: each argument must have the dtype and rank its
/// body input declares (and the same size where both dims are known).
fn infer_body(body: &Graph, args: &[(crate::dtype::DType, Shape)]) -> Result<Vec<TensorType>, OpError> {
    check_body(body)?;
    if args.len() != body.inputs.len() {
        return Err(OpError::Arity { expected: body.inputs.len().to_string(), got: args.len() });
    }
    let mut types: Vec<Option<TensorType>> = vec![None; body.values.len()];
    for (i, (&id, (dt, shape))) in body.inputs.iter().zip(args).enumerate() {
        let decl = &body.value(id).ty;
        let dims_agree = decl.shape.0.iter().zip(&shape.0).all(|(a, b)| match (a, b) {
            (Dim::Known(x), Dim::Known(y)) => x == y,
            _ => true,
        });
        if decl.dtype != *dt || decl.shape.rank() != shape.rank() || !dims_agree {
            return Err(OpError::Invalid(format!("fused body input {i} is declared {}{}, given {dt}{shape}", decl.dtype, decl.shape)));
        }
        types[id.0 as usize] = Some(TensorType::new(*dt, shape.clone()));
    }
    for n in &body.nodes {
        let ins: Vec<Option<InType>> = n
            .inputs
            .iter()
            .map(|i| {
                i.map(|id| match (&types[id.0 as usize], body.consts.get(&id)) {
                    (Some(t), _) => Ok(InType { dtype: t.dtype, shape: &t.shape, value: None }),
                    (None, Some(c)) => Ok(InType { dtype: c.dtype(), shape: &body.value(id).ty.shape, value: Some(c.as_ref()) }),
                    (None, None) => Err(OpError::Invalid(format!("fused body node `{}` reads an undefined value", n.name))),
                })
                .transpose()
            })
            .collect::<Result<_, _>>()?;
        let out = n.op.infer(&ins, 1, &mut DimNamer::new(&n.name))?;
        let o = n.outputs[0].ok_or_else(|| OpError::Invalid(format!("fused body node `{}` has no output", n.name)))?;
        types[o.0 as usize] = out.into_iter().next();
    }
    body.outputs
        .iter()
        .map(|&o| match (&types[o.0 as usize], body.consts.get(&o)) {
            (Some(t), _) => Ok(t.clone()),
            (None, Some(c)) => Ok(TensorType::fixed(c.dtype(), c.dims())),
            (None, None) => Err(OpError::Invalid("fused body returns an undefined value".into())),
        })
        .collect()
}

/// Runs `body` on `args` (elementwise ops only, so no interpreter bookkeeping is needed).
fn eval_body(body: &Graph, args: Vec<Tensor>) -> Result<Vec<Tensor>, OpError> {
    check_body(body)?;
    let mut slots: Vec<Option<Tensor>> = vec![None; body.values.len()];
    for (&id, t) in body.inputs.iter().zip(args) {
        slots[id.0 as usize] = Some(t);
    }
    for n in &body.nodes {
        let out = {
            let ins: Vec<Option<&Tensor>> = n
                .inputs
                .iter()
                .map(|i| i.and_then(|id| slots[id.0 as usize].as_ref().or_else(|| body.consts.get(&id).map(|c| c.as_ref()))))
                .collect();
            n.op.eval(&ins, 1)?
        };
        if let Some(o) = n.outputs[0] {
            slots[o.0 as usize] = out.into_iter().next();
        }
    }
    body.outputs
        .iter()
        .map(|&o| {
            slots[o.0 as usize]
                .clone()
                .or_else(|| body.consts.get(&o).map(|c| c.as_ref().clone()))
                .ok_or_else(|| OpError::Invalid("fused body returns an undefined value".into()))
        })
        .collect()
}

fn in_types(ins: &[Option<InType>], from: usize) -> Result<Vec<(crate::dtype::DType, Shape)>, OpError> {
    (from..ins.len()).map(|i| req(ins, i).map(|t| (t.dtype, t.shape.clone()))).collect()
}

/// The parts of a product along its last axis (the whole product when `splits` is empty).
fn split_types(acc: &TensorType, splits: &[i64]) -> Result<Vec<(crate::dtype::DType, Shape)>, OpError> {
    if splits.is_empty() {
        return Ok(vec![(acc.dtype, acc.shape.clone())]);
    }
    let last = acc.shape.rank().checked_sub(1).ok_or_else(|| OpError::Invalid("cannot split a scalar".into()))?;
    if splits.iter().any(|&s| s <= 0) {
        return Err(OpError::Invalid(format!("splits {splits:?} must be positive")));
    }
    if let Dim::Known(n) = acc.shape.0[last] {
        if splits.iter().sum::<i64>() != n as i64 {
            return Err(OpError::Invalid(format!("splits {splits:?} do not add up to {n}")));
        }
    }
    Ok(splits
        .iter()
        .map(|&s| {
            let mut d = acc.shape.0.clone();
            d[last] = Dim::Known(s as usize);
            (acc.dtype, Shape(d))
        })
        .collect())
}

fn split_values(acc: Tensor, splits: &[i64]) -> Result<Vec<Tensor>, OpError> {
    if splits.is_empty() {
        return Ok(vec![acc]);
    }
    let sizes = Tensor::from_i64s(vec![splits.len()], splits.to_vec()).map_err(|e| OpError::Invalid(e.to_string()))?;
    let axis = norm_axis(-1, acc.rank())? as i64;
    data_movement::eval_split(axis, &acc, Some(&sizes), splits.len())
}

pub(crate) fn infer_elementwise(body: &Graph, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    infer_body(body, &in_types(ins, 0)?)
}

pub(crate) fn eval_elementwise(body: &Graph, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let args = (0..ins.len()).map(|i| req(ins, i).map(|t| (*t).clone())).collect::<Result<_, _>>()?;
    eval_body(body, args)
}

pub(crate) fn infer_matmul_fused(splits: &[i64], body: &Graph, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let acc = matmul::infer_matmul(&Op::MatMul {}, &ins[..ins.len().min(2)])?.remove(0);
    let mut args = split_types(&acc, splits)?;
    args.extend(in_types(ins, 2)?);
    infer_body(body, &args)
}

pub(crate) fn eval_matmul_fused(splits: &[i64], body: &Graph, ins: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let acc = matmul::eval_matmul(req(ins, 0)?, req(ins, 1)?)?;
    let mut args = split_values(acc, splits)?;
    for i in 2..ins.len() {
        args.push((*req(ins, i)?).clone());
    }
    eval_body(body, args)
}

/// The logical NCHW type of a stored conv input or output with `channels` channels.
fn logical_type(t: &InType, (format, align): (Format, i64), channels: Option<usize>) -> Result<TensorType, OpError> {
    if format == Format::Nchw {
        return Ok(TensorType::new(t.dtype, t.shape.clone()));
    }
    let c = channels.ok_or_else(|| OpError::Invalid("a formatted ConvFused needs a weight of known shape".into()))?;
    let ins = [Some(*t)];
    Ok(layout::infer_from(format, align, c as i64, &ins)?.remove(0))
}

pub(crate) fn infer_conv_fused(
    op: &Op,
    w: &Window,
    fmt: (Format, i64),
    body: &Graph,
    ins: &[Option<InType>],
    names: &mut DimNamer,
) -> Result<Vec<TensorType>, OpError> {
    let (x, wt) = (req(ins, 0)?, req(ins, 1)?);
    let group = match op {
        Op::ConvFused { group, .. } => (*group).max(1) as usize,
        _ => 1,
    };
    let c_in = wt.shape.0.get(1).and_then(|d| d.known()).map(|c| c * group);
    let xl = logical_type(x, fmt, c_in)?;
    let mut cins: Vec<Option<InType>> = ins[..ins.len().min(3)].to_vec();
    cins[0] = Some(InType { dtype: xl.dtype, shape: &xl.shape, value: None });
    let acc = conv::infer_conv(op, w, &cins, names)?.remove(0);
    let acc = TensorType::new(acc.dtype, Shape(layout::stored_dims(fmt.0, fmt.1, &acc.shape.0)?));
    let mut args = vec![(acc.dtype, acc.shape)];
    args.extend(in_types(ins, 3)?);
    infer_body(body, &args)
}

pub(crate) fn eval_conv_fused(
    w: &Window,
    group: i64,
    (format, align): (Format, i64),
    body: &Graph,
    ins: &[Option<&Tensor>],
) -> Result<Vec<Tensor>, OpError> {
    let (x, wt) = (req(ins, 0)?, req(ins, 1)?);
    let c_in = wt.dims().get(1).copied().unwrap_or(0) * group.max(1) as usize;
    let x = layout::from_format(format, align, c_in as i64, x)?;
    let acc = conv::eval_conv(w, group, &x, wt, ins.get(2).copied().flatten())?;
    let c_out = acc.dims().get(1).copied().unwrap_or(0) as i64;
    let mut args = vec![layout::to_format(format, align, &acc)?];
    for i in 3..ins.len() {
        args.push((*req(ins, i)?).clone());
    }
    if format == Format::Nchw {
        return eval_body(body, args);
    }
    // The epilogue may map zero padding to something else: the result's padding is zero again.
    eval_body(body, args)?.into_iter().map(|y| layout::to_format(format, align, &layout::from_format(format, align, c_out, &y)?)).collect()
}
