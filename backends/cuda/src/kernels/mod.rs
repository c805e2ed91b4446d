//! Kernel families. Each `lower` emits one or more kernels for a node into the module being
//! built and schedules their launches; shapes are static, so every size, stride and loop bound
//! is a constant in the generated code.

pub mod attention;
pub mod attention_tc;
pub mod conv;
pub mod conv_tc;
pub mod elementwise;
pub mod gemm;
pub mod gemm_tc;
pub mod index;
pub mod loss;
pub mod movement;
pub mod pool;
pub mod program;
pub mod quant;
pub mod reduce;
pub mod resize;
pub mod scatter;

use crate::codegen::llvm::{Em, Ix, R};
use crate::codegen::{CodegenError, Cx, Ty};
use kiln_ir::{Node, ValueId};

/// Input `i` of `node`, which must be present.
pub fn input(node: &Node, i: usize) -> R<ValueId> {
    node.inputs.get(i).copied().flatten().ok_or_else(|| CodegenError::Internal(format!("input {i} is missing")))
}

/// Output `i` of `node`, which must be present.
pub fn output(node: &Node, i: usize) -> R<ValueId> {
    node.outputs.get(i).copied().flatten().ok_or_else(|| CodegenError::Internal(format!("output {i} is missing")))
}

pub fn ty_in(cx: &Cx, node: &Node, i: usize) -> R<Ty> {
    cx.ty(input(node, i)?)
}

/// `(outer, len, inner)` of `dims` split at axis `a`.
pub fn split_axis(dims: &[usize], a: usize) -> (usize, usize, usize) {
    (dims[..a].iter().product(), dims[a], dims[a + 1..].iter().product())
}

/// Row-major strides.
pub fn strides(dims: &[usize]) -> Vec<i64> {
    let mut s = vec![1i64; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1] as i64;
    }
    s
}

/// The coordinates of linear index `lin` in `dims` (outermost first).
pub fn coords<'c>(em: &Em<'c>, lin: Ix<'c>, dims: &[usize]) -> R<Vec<Ix<'c>>> {
    let st = strides(dims);
    let mut out = vec![];
    for (d, &n) in dims.iter().enumerate() {
        let q = if d == 0 { em.divk(lin, st[0])? } else { em.remk(em.divk(lin, st[d])?, n as i64)? };
        out.push(q);
    }
    Ok(out)
}

/// The linear index, in a tensor of dims `src` broadcast (numpy rules, right-aligned) to
/// `out`, of the element at linear index `lin` of `out`.
pub fn bcast_index<'c>(em: &Em<'c>, lin: Ix<'c>, out: &[usize], src: &[usize]) -> R<Ix<'c>> {
    if src == out {
        return Ok(lin);
    }
    if src.iter().product::<usize>() == 1 {
        return Ok(em.ix(0));
    }
    let (os, ss) = (strides(out), strides(src));
    let shift = out.len() - src.len().min(out.len());
    let mut acc = em.ix(0);
    for (d, &n) in out.iter().enumerate() {
        let Some(sd) = d.checked_sub(shift) else { continue };
        if src[sd] == 1 || n == 1 {
            continue;
        }
        let c = if d == 0 { em.divk(lin, os[0])? } else { em.remk(em.divk(lin, os[d])?, n as i64)? };
        acc = em.add(acc, em.mulk(c, ss[sd])?)?;
    }
    Ok(acc)
}

/// The global thread index `ctaid.x * ntid.x + tid.x`.
pub fn global_x<'c>(em: &Em<'c>, block: i64) -> R<Ix<'c>> {
    let b = em.sreg("ctaid.x")?;
    let t = em.sreg("tid.x")?;
    em.add(em.mulk(b, block)?, t)
}

/// Dtypes that compute in f32 registers (f32, f16, bf16): what the float kernels accept.
pub fn is_f32_compute(d: kiln_ir::DType) -> bool {
    matches!(d, kiln_ir::DType::F32 | kiln_ir::DType::F16 | kiln_ir::DType::BF16)
}
