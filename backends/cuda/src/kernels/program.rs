//! Elementwise programs: a fused body (or a single elementwise op) as a list of scalar ops,
//! evaluated per element by the elementwise kernel and by the GEMM and convolution epilogues.

use crate::codegen::llvm::{Em, R};
use crate::codegen::scalar::Operand;
use crate::codegen::{unsupported, CodegenError, Ty};
use inkwell::values::BasicValueEnum;
use kiln_ir::{DType, Graph, Op, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// Where an operand comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Src {
    /// Argument `i` of the program (a body input).
    Arg(usize),
    /// The result of node `i`.
    Node(usize),
    /// A scalar constant (as f64; integers up to 2^53 are exact).
    Scalar(DType, f64),
    /// A non-scalar constant tensor, `consts[i]`, broadcast to the output.
    Tensor(usize),
}

#[derive(Clone, Debug)]
pub struct PNode {
    pub op: Op,
    pub ins: Vec<Option<Src>>,
    pub dtype: DType,
}

#[derive(Clone, Debug)]
pub struct Program {
    pub args: Vec<Ty>,
    pub consts: Vec<Arc<Tensor>>,
    pub nodes: Vec<PNode>,
    pub outputs: Vec<Src>,
    /// The dtype of each output.
    pub out_dtypes: Vec<DType>,
}

fn fixed(g: &Graph, v: kiln_ir::ValueId) -> R<Vec<usize>> {
    g.value(v)
        .ty
        .shape
        .as_fixed()
        .ok_or_else(|| CodegenError::Unsupported(format!("fused body value `{}` has symbolic dims", g.value(v).name)))
}

impl Program {
    /// The program of a fused body.
    pub fn from_body(body: &Graph) -> R<Program> {
        let mut src: HashMap<kiln_ir::ValueId, Src> = HashMap::new();
        let mut args = vec![];
        for (i, &v) in body.inputs.iter().enumerate() {
            src.insert(v, Src::Arg(i));
            args.push(Ty { dtype: body.value(v).ty.dtype, dims: fixed(body, v)? });
        }
        let mut consts = vec![];
        for (&v, t) in &body.consts {
            let s = if t.numel() == 1 {
                let x = if t.dtype().is_float() { t.to_f64()[0] } else { t.to_i64()[0] as f64 };
                Src::Scalar(t.dtype(), x)
            } else {
                consts.push(t.clone());
                Src::Tensor(consts.len() - 1)
            };
            src.insert(v, s);
        }
        let mut nodes = vec![];
        for n in &body.nodes {
            let ins = n
                .inputs
                .iter()
                .map(|i| {
                    i.map(|v| {
                        src.get(&v)
                            .cloned()
                            .ok_or_else(|| CodegenError::Internal(format!("body node `{}` reads an undefined value", n.name)))
                    })
                    .transpose()
                })
                .collect::<R<Vec<_>>>()?;
            let out = n
                .outputs
                .first()
                .copied()
                .flatten()
                .ok_or_else(|| CodegenError::Internal(format!("body node `{}` has no output", n.name)))?;
            nodes.push(PNode { op: n.op.clone(), ins, dtype: body.value(out).ty.dtype });
            src.insert(out, Src::Node(nodes.len() - 1));
        }
        let outputs = body
            .outputs
            .iter()
            .map(|o| src.get(o).cloned().ok_or_else(|| CodegenError::Internal("fused body returns an undefined value".into())))
            .collect::<R<Vec<_>>>()?;
        let out_dtypes = body.outputs.iter().map(|&o| body.value(o).ty.dtype).collect();
        Ok(Program { args, consts, nodes, outputs, out_dtypes })
    }

    /// The program of one elementwise op applied to `args` (absent optional inputs as None).
    pub fn single(op: &Op, args: Vec<Option<Ty>>, out: DType) -> Program {
        let ins = args.iter().enumerate().map(|(i, a)| a.as_ref().map(|_| Src::Arg(i))).collect();
        let args = args.into_iter().map(|a| a.unwrap_or(Ty { dtype: out, dims: vec![] })).collect();
        Program {
            args,
            consts: vec![],
            nodes: vec![PNode { op: op.clone(), ins, dtype: out }],
            outputs: vec![Src::Node(0)],
            out_dtypes: vec![out],
        }
    }

    /// The program that returns its one argument of type `t` (a product or convolution with no
    /// epilogue).
    pub fn identity(t: Ty) -> Program {
        let d = t.dtype;
        Program { args: vec![t], consts: vec![], nodes: vec![], outputs: vec![Src::Arg(0)], out_dtypes: vec![d] }
    }

    /// The program arguments output `o` depends on.
    pub fn arg_deps(&self, o: usize) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut args = vec![];
        let mut stack: Vec<Src> = self.outputs.get(o).cloned().into_iter().collect();
        while let Some(s) = stack.pop() {
            match s {
                Src::Arg(i) if !args.contains(&i) => args.push(i),
                Src::Node(n) if !seen[n] => {
                    seen[n] = true;
                    stack.extend(self.nodes[n].ins.iter().flatten().cloned());
                }
                _ => {}
            }
        }
        args.sort_unstable();
        args
    }

    /// Evaluates the program on one element: `args` and `consts` in compute form.
    pub fn eval<'c>(&self, em: &Em<'c>, args: &[Operand<'c>], consts: &[Operand<'c>]) -> R<Vec<Operand<'c>>> {
        let mut vals: Vec<Operand<'c>> = Vec::with_capacity(self.nodes.len());
        let get = |vals: &Vec<Operand<'c>>, s: &Src| -> R<Operand<'c>> {
            Ok(match s {
                Src::Arg(i) => *args.get(*i).ok_or_else(|| CodegenError::Internal(format!("program argument {i} missing")))?,
                Src::Node(i) => vals[*i],
                Src::Tensor(i) => *consts.get(*i).ok_or_else(|| CodegenError::Internal(format!("program constant {i} missing")))?,
                Src::Scalar(d, x) => scalar(em, *d, *x)?,
            })
        };
        for n in &self.nodes {
            let mut ins = vec![];
            for (k, s) in n.ins.iter().enumerate() {
                match s {
                    Some(s) => ins.push(get(&vals, s)?),
                    // Clip without min or max: the dtype's extremes.
                    None if matches!(n.op, Op::Clip {}) && k > 0 => {
                        let d = ins.first().map_or(n.dtype, |o: &Operand| o.dtype);
                        let x = match (d.is_float(), k) {
                            (true, 1) => f64::NEG_INFINITY,
                            (true, _) => f64::INFINITY,
                            (false, 1) if d.is_signed_int() => -(2f64.powi(d.bits() as i32 - 1)),
                            (false, 1) => 0.0,
                            (false, _) if d.is_signed_int() => 2f64.powi(d.bits() as i32 - 1) - 1.0,
                            (false, _) => 2f64.powi(d.bits() as i32) - 1.0,
                        };
                        ins.push(scalar(em, d, x)?);
                    }
                    None if k == 0 => return unsupported(format!("{} without its first input", n.op.kind_name())),
                    None => {}
                }
            }
            let v = em.elementwise(&n.op, &ins, n.dtype)?;
            vals.push(Operand { dtype: n.dtype, v, konst: None });
        }
        self.outputs.iter().map(|s| get(&vals, s)).collect()
    }
}

/// A constant in compute form.
pub fn scalar<'c>(em: &Em<'c>, d: DType, x: f64) -> R<Operand<'c>> {
    let t = em.compute_type(d)?;
    let v: BasicValueEnum<'c> = match t {
        inkwell::types::BasicTypeEnum::FloatType(f) => f.const_float(x).into(),
        inkwell::types::BasicTypeEnum::IntType(i) => i.const_int(x as i64 as u64, d.is_signed_int()).into(),
        _ => return unsupported(format!("constant of dtype {d}")),
    };
    Ok(Operand { dtype: d, v, konst: Some(x) })
}
