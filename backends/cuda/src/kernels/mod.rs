//! Kernel families. Each `lower` emits one or more kernels for a node into the module being
//! built and schedules their launches; shapes are static, so every size, stride and loop bound
//! is a constant in the generated code.

pub mod attention;
pub mod attention_tc;
pub mod channel_norm;
pub mod conv;
pub mod conv_transpose;
pub mod elementwise;
pub mod gemm;
pub mod grid;
pub mod index;
pub mod loss;
pub mod movement;
pub mod pool;
pub mod program;
pub mod quant;
pub mod reduce;
pub mod resize;
pub mod scatter;
pub mod static_gather;

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

/// Emits `f(em, t)` for every `t` in `0..total`, one thread each (blocks of 256), and
/// launches the kernel begun on `cx`.
pub fn per_element<'c>(cx: &mut Cx<'c, '_>, total: usize, f: impl FnOnce(&mut Em<'c>, Ix<'c>) -> R<()>) -> R<()> {
    let em = &mut cx.em;
    let t = global_x(em, 256)?;
    let inb = em.icmp(inkwell::IntPredicate::ULT, t, em.ix(total as i64))?;
    em.if_(inb, |em| f(em, t))?;
    cx.launch([crate::codegen::blocks(total, 256)?, 1, 1], [256, 1, 1], 0)
}

/// An element of an index tensor (any integer dtype) as a position along an axis of `n`:
/// negative values count from the end; out-of-range ones (an error in the interpreter) are
/// clamped, so a kernel never reads or writes outside the axis.
pub fn axis_index<'c>(em: &Em<'c>, dtype: kiln_ir::DType, indices: inkwell::values::PointerValue<'c>, at: Ix<'c>, n: usize) -> R<Ix<'c>> {
    use inkwell::IntPredicate::SLT;
    let j = em.load(dtype, indices, at)?.into_int_value();
    let j = em.b.build_int_s_extend_or_bit_cast(j, em.i64t(), "")?;
    let j = em.select(em.icmp(SLT, j, em.ix(0))?, em.addk(j, n as i64)?, j)?.into_int_value();
    let j = em.select(em.icmp(SLT, j, em.ix(0))?, em.ix(0), j)?.into_int_value();
    em.min_ix(j, em.ix(n as i64 - 1))
}

/// Dtypes that compute in f32 registers (f32, f16, bf16): what the float kernels accept.
pub fn is_f32_compute(d: kiln_ir::DType) -> bool {
    matches!(d, kiln_ir::DType::F32 | kiln_ir::DType::F16 | kiln_ir::DType::BF16)
}
