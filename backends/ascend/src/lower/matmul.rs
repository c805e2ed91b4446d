//! Products: MatMul → BatchMatMulV2 (1-D operands as rows or columns), Gemm → MatMulV2 with
//! its bias, α and β.

use super::ops::{input, one, output, reshape, Outs};
use super::{Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::Tensor;

/// The dims of a product of `a` and `b` (at least 2-D each; batch dims broadcast).
pub(super) fn matmul_dims(a: &[i64], b: &[i64]) -> Option<Vec<usize>> {
    let (ra, rb) = (a.len(), b.len());
    if ra < 2 || rb < 2 || a[ra - 1] != b[rb - 2] {
        return None;
    }
    let batch = |d: &[i64]| d.iter().map(|&x| x as usize).collect::<Vec<_>>();
    let mut out = kiln_ir::shape::broadcast(&batch(&a[..ra - 2]), &batch(&b[..rb - 2]))?;
    out.extend([a[ra - 2] as usize, b[rb - 1] as usize]);
    Some(out)
}

/// BatchMatMulV2 of x1 and x2 (no transposes), out as `out`. A 1-D operand is a row (x1) or
/// a column (x2), as in numpy: reshaped to 2-D, and the result reshaped back to `out`.
pub(super) fn matmul(cx: &mut Cx, name: &str, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let (mut a, mut b) = (input(ins, 0)?, input(ins, 1)?);
    let (ad, bd) = (cx.desc(&a)?, cx.desc(&b)?);
    if ad.dims.len() == 1 {
        let d = Desc::nd(ad.dtype, &[1, ad.dims[0] as usize]);
        a = reshape(cx, &format!("{name}/row"), a, d)?;
    }
    if bd.dims.len() == 1 {
        let d = Desc::nd(bd.dtype, &[bd.dims[0] as usize, 1]);
        b = reshape(cx, &format!("{name}/column"), b, d)?;
    }
    let (ad2, bd2) = (cx.desc(&a)?, cx.desc(&b)?);
    let inputs = [("x1", Some(a)), ("x2", Some(b)), ("bias", None), ("offset_w", None)];
    let attrs = vec![("adj_x1", Attr::Bool(false)), ("adj_x2", Attr::Bool(false)), ("offset_x", Attr::Int(0))];
    if ad.dims.len() > 1 && bd.dims.len() > 1 {
        return cx.op1(name, "BatchMatMulV2", &inputs, out, attrs);
    }
    let dims = matmul_dims(&ad2.dims, &bd2.dims).ok_or_else(|| Fail::Internal("operands that do not multiply".into()))?;
    let p = cx.op1(&format!("{name}/matmul"), "BatchMatMulV2", &inputs, Desc::nd(out.dtype, &dims), attrs)?;
    reshape(cx, name, p, out)
}

/// The `Gemm` arm of [`super::table::lower_node`].
pub(super) fn gemm(
    cx: &mut Cx,
    name: &str,
    alpha: &f32,
    beta: &f32,
    trans_a: &bool,
    trans_b: &bool,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    let mut c = ins.get(2).cloned().flatten();
    let out = y()?;
    // β·C, where β is not 1.
    if let (Some(cp), true) = (c.clone(), *beta != 1.0) {
        let cd = cx.desc(&cp)?;
        let b = cx.scalar(&format!("{name}/beta"), cd.dtype, f64::from(*beta))?;
        c = Some(cx.op1(&format!("{name}/beta_c"), "Mul", &[("x1", Some(cp)), ("x2", Some(b))], cd, vec![])?);
    }
    // MatMulV2's bias is one value per column, added before any α; any other C (a
    // scalar, a row, a matrix) is added after the product.
    let n = out.dims.last().copied().unwrap_or(0);
    let (bias, after) = match c {
        Some(c) if *alpha == 1.0 && cx.desc(&c)?.dims == [n] => (Some(c), None),
        other => (None, other),
    };
    let inputs = [("x1", Some(x()?)), ("x2", Some(input(ins, 1)?)), ("bias", bias), ("offset_w", None)];
    let attrs = vec![("transpose_x1", Attr::Bool(*trans_a)), ("transpose_x2", Attr::Bool(*trans_b)), ("offset_x", Attr::Int(0))];
    let mut p = cx.op1(&format!("{name}/matmul"), "MatMulV2", &inputs, out.clone(), attrs)?;
    if *alpha != 1.0 {
        let a = cx.scalar(&format!("{name}/alpha"), out.dtype, f64::from(*alpha))?;
        let n = if after.is_some() { format!("{name}/alpha_ab") } else { name.to_string() };
        p = cx.op1(&n, "Mul", &[("x1", Some(p)), ("x2", Some(a))], out.clone(), vec![])?;
    }
    match after {
        Some(c) => one(cx.op1(name, "Add", &[("x1", Some(p)), ("x2", Some(c))], out, vec![])?),
        None => one(p),
    }
}
