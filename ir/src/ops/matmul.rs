//! MatMul (numpy semantics, batched with broadcasting), Gemm and Einsum.

use super::data_movement::permute;
use super::elementwise::{broadcast_index, broadcast_to, tensor};
use super::gemm_kernel::gemm;
use super::{invalid, opt, req, InType, Op, OpError, TensorType};
use crate::dtype::DType;
use crate::shape::{broadcast, broadcast_sym, Dim, Shape};
use crate::tensor::{Data, Tensor};
use std::collections::BTreeMap;

pub(crate) fn infer_matmul(op: &Op, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (a, b, dtype) = match op {
        Op::QLinearMatMul {} => (req(ins, 0)?, req(ins, 3)?, req(ins, 7)?.dtype),
        Op::MatMulInteger {} => (req(ins, 0)?, req(ins, 1)?, DType::I32),
        _ => (req(ins, 0)?, req(ins, 1)?, req(ins, 0)?.dtype),
    };
    if matches!(op, Op::MatMul {}) && a.dtype != b.dtype {
        return invalid(format!("MatMul needs equal dtypes, got {} and {}", a.dtype, b.dtype));
    }
    let (ra, rb) = (a.shape.rank(), b.shape.rank());
    if ra == 0 || rb == 0 {
        return invalid("MatMul inputs must have rank >= 1");
    }
    let mut sa = a.shape.0.clone();
    let mut sb = b.shape.0.clone();
    if ra == 1 {
        sa.insert(0, Dim::Known(1));
    }
    if rb == 1 {
        sb.push(Dim::Known(1));
    }
    let (ka, kb) = (&sa[sa.len() - 1], &sb[sb.len() - 2]);
    if let (Dim::Known(x), Dim::Known(y)) = (ka, kb) {
        if x != y {
            return invalid(format!("MatMul: inner dims differ: {} vs {}", a.shape, b.shape));
        }
    }
    let batch = broadcast_sym(&Shape(sa[..sa.len() - 2].to_vec()), &Shape(sb[..sb.len() - 2].to_vec()))
        .ok_or_else(|| OpError::Invalid(format!("MatMul: batch dims of {} and {} do not broadcast", a.shape, b.shape)))?;
    let mut out = batch.0;
    if ra > 1 {
        out.push(sa[sa.len() - 2].clone());
    }
    if rb > 1 {
        out.push(sb[sb.len() - 1].clone());
    }
    Ok(vec![TensorType::new(dtype, Shape(out))])
}

/// Batched matmul over f32 (f16/bf16 widened), f64 or integer (i64 accumulation) buffers.
pub(crate) fn eval_matmul(a: &Tensor, b: &Tensor) -> Result<Tensor, OpError> {
    if a.dtype() != b.dtype() {
        return invalid("MatMul needs equal dtypes");
    }
    let (ra, rb) = (a.rank(), b.rank());
    if ra == 0 || rb == 0 {
        return invalid("MatMul inputs must have rank >= 1");
    }
    let mut da = a.dims().to_vec();
    let mut db = b.dims().to_vec();
    if ra == 1 {
        da.insert(0, 1);
    }
    if rb == 1 {
        db.push(1);
    }
    let (m, k) = (da[da.len() - 2], da[da.len() - 1]);
    let (k2, n) = (db[db.len() - 2], db[db.len() - 1]);
    if k != k2 {
        return invalid(format!("MatMul: inner dims differ: {:?} x {:?}", a.dims(), b.dims()));
    }
    let (ba, bb) = (&da[..da.len() - 2], &db[..db.len() - 2]);
    let batch = broadcast(ba, bb).ok_or_else(|| OpError::Invalid(format!("MatMul: batch dims {ba:?} and {bb:?} do not broadcast")))?;
    let nb: usize = batch.iter().product();
    let ia = broadcast_index(&batch, ba);
    let ib = broadcast_index(&batch, bb);
    let mut out_dims = batch.clone();
    if ra > 1 {
        out_dims.push(m);
    }
    if rb > 1 {
        out_dims.push(n);
    }
    macro_rules! run {
        ($av:expr, $bv:expr, $zero:expr) => {{
            let (av, bv) = ($av, $bv);
            let mut c = vec![$zero; nb * m * n];
            for (bi, cc) in c.chunks_mut((m * n).max(1)).enumerate().take(nb) {
                let (oa, ob) = (ia[bi] * m * k, ib[bi] * k * n);
                gemm(m, n, k, &av[oa..oa + m * k], &bv[ob..ob + k * n], cc);
            }
            c
        }};
    }
    let data = match (a.data(), b.data()) {
        (Data::F32(x), Data::F32(y)) => Data::F32(run!(x, y, 0f32)),
        (Data::F64(x), Data::F64(y)) => Data::F64(run!(x, y, 0f64)),
        _ if a.dtype().is_float() => {
            let x: Vec<f32> = a.to_f64().iter().map(|&v| v as f32).collect();
            let y: Vec<f32> = b.to_f64().iter().map(|&v| v as f32).collect();
            let c = run!(&x, &y, 0f32);
            Data::from_f64(a.dtype(), &c.iter().map(|&v| v as f64).collect::<Vec<_>>())
        }
        (Data::Bool(_), _) => return Err(OpError::DType { index: 0, dtype: DType::Bool }),
        _ => {
            let (x, y) = (a.to_i64(), b.to_i64());
            let c = run!(&x, &y, 0i64);
            Data::from_i64(a.dtype(), &c)
        }
    };
    Ok(tensor(out_dims, data))
}

pub(crate) fn infer_gemm(ta: bool, tb: bool, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let (a, b) = (req(ins, 0)?, req(ins, 1)?);
    if a.shape.rank() != 2 || b.shape.rank() != 2 {
        return invalid("Gemm inputs must be 2-D");
    }
    let m = a.shape.0[if ta { 1 } else { 0 }].clone();
    let n = b.shape.0[if tb { 0 } else { 1 }].clone();
    let (ka, kb) = (&a.shape.0[if ta { 0 } else { 1 }], &b.shape.0[if tb { 1 } else { 0 }]);
    if let (Some(x), Some(y)) = (ka.known(), kb.known()) {
        if x != y {
            return invalid(format!("Gemm: inner dims differ: A {} (transA {ta}) vs B {} (transB {tb})", a.shape, b.shape));
        }
    }
    if a.dtype != b.dtype || opt(ins, 2).is_some_and(|c| c.dtype != a.dtype) {
        let c = opt(ins, 2).map_or(String::new(), |c| format!(", C {}", c.dtype));
        return invalid(format!("Gemm needs one dtype, got A {}, B {}{c}", a.dtype, b.dtype));
    }
    // C broadcasts one way to (M, N): at most 2-D, each dim 1 or the result's.
    if let Some(c) = opt(ins, 2) {
        let fits = |d: &Dim, want: &Dim| d.known() == Some(1) || d == want || d.known().is_none() || want.known().is_none();
        let ok = match &c.shape.0[..] {
            [] => true,
            [x] => fits(x, &n),
            [y, x] => fits(y, &m) && fits(x, &n),
            _ => false,
        };
        if !ok {
            return invalid(format!("Gemm: C {} does not broadcast to the product's [{m},{n}]", c.shape));
        }
    }
    Ok(vec![TensorType::new(a.dtype, Shape(vec![m, n]))])
}

pub(crate) fn eval_gemm(alpha: f32, beta: f32, ta: bool, tb: bool, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let (a, b) = (*req(ins, 0)?, *req(ins, 1)?);
    if a.rank() != 2 || b.rank() != 2 {
        return invalid("Gemm inputs must be 2-D");
    }
    let a = if ta { permute(a, &[1, 0]) } else { a.clone() };
    let b = if tb { permute(b, &[1, 0]) } else { b.clone() };
    let mut y = eval_matmul(&a, &b)?;
    if alpha != 1.0 {
        y = super::elementwise::map_float(&y, |v| v * alpha as f64)?;
    }
    if let Some(c) = opt(ins, 2) {
        let c = broadcast_to(c, y.dims())?;
        let (yv, cv) = (y.to_f64(), c.to_f64());
        let v: Vec<f64> = yv.iter().zip(&cv).map(|(y, c)| y + beta as f64 * c).collect();
        y = tensor(y.dims().to_vec(), Data::from_f64(y.dtype(), &v));
    }
    Ok(y)
}

struct Equation {
    inputs: Vec<Vec<char>>,
    output: Vec<char>,
}

fn parse_equation(eq: &str, ranks: &[usize]) -> Result<Equation, OpError> {
    let eq: String = eq.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l.to_string(), Some(r.to_string())),
        None => (eq.clone(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if terms.len() != ranks.len() {
        return invalid(format!("Einsum `{eq}` has {} terms for {} inputs", terms.len(), ranks.len()));
    }
    // Ellipsis dims become upper-case placeholder letters not used by the equation.
    let mut ell_rank = 0;
    for (t, &r) in terms.iter().zip(ranks) {
        if t.contains("...") {
            ell_rank = ell_rank.max(r + 3 - t.chars().count());
        }
    }
    let ell: Vec<char> = ('\u{100}'..).take(ell_rank).collect();
    let expand = |t: &str, r: usize| -> Vec<char> {
        if let Some((pre, post)) = t.split_once("...") {
            let n = r - pre.chars().count() - post.chars().count();
            pre.chars().chain(ell[ell_rank - n..].iter().copied()).chain(post.chars()).collect()
        } else {
            t.chars().collect()
        }
    };
    let inputs: Vec<Vec<char>> = terms.iter().zip(ranks).map(|(t, &r)| expand(t, r)).collect();
    for (t, &r) in inputs.iter().zip(ranks) {
        if t.len() != r {
            return invalid(format!("Einsum term `{}` does not match rank {r}", t.iter().collect::<String>()));
        }
    }
    let output = match rhs {
        Some(r) => {
            let plain = r.replace("...", "").chars().count();
            expand(&r, plain + if r.contains("...") { ell_rank } else { 0 })
        }
        None => {
            let mut count = BTreeMap::new();
            for t in &inputs {
                for &c in t {
                    *count.entry(c).or_insert(0) += 1;
                }
            }
            let mut out: Vec<char> = ell.clone();
            out.extend(count.iter().filter(|(c, &n)| n == 1 && !ell.contains(c)).map(|(&c, _)| c));
            out
        }
    };
    Ok(Equation { inputs, output })
}

pub(crate) fn infer_einsum(eq: &str, ins: &[Option<InType>]) -> Result<Vec<TensorType>, OpError> {
    let xs: Vec<&InType> = ins.iter().flatten().collect();
    let first = xs.first().ok_or(OpError::MissingInput { index: 0 })?;
    let e = parse_equation(eq, &xs.iter().map(|x| x.shape.rank()).collect::<Vec<_>>())?;
    let mut sizes: BTreeMap<char, Dim> = BTreeMap::new();
    for (t, x) in e.inputs.iter().zip(&xs) {
        for (c, d) in t.iter().zip(&x.shape.0) {
            let entry = sizes.entry(*c).or_insert(d.clone());
            if *entry == Dim::Known(1) {
                *entry = d.clone();
            }
        }
    }
    let out = e
        .output
        .iter()
        .map(|c| sizes.get(c).cloned().ok_or_else(|| OpError::Invalid(format!("Einsum output label {c} not in inputs"))))
        .collect::<Result<_, _>>()?;
    Ok(vec![TensorType::new(first.dtype, Shape(out))])
}

/// Einsum by direct summation over all labels (f64 accumulation); an oracle, not fast.
pub(crate) fn eval_einsum(eq: &str, ins: &[Option<&Tensor>]) -> Result<Tensor, OpError> {
    let xs: Vec<&Tensor> = ins.iter().flatten().copied().collect();
    let first = xs.first().ok_or(OpError::MissingInput { index: 0 })?;
    let e = parse_equation(eq, &xs.iter().map(|x| x.rank()).collect::<Vec<_>>())?;
    let mut sizes: BTreeMap<char, usize> = BTreeMap::new();
    for (t, x) in e.inputs.iter().zip(&xs) {
        for (c, &d) in t.iter().zip(x.dims()) {
            let s = sizes.entry(*c).or_insert(d);
            if *s == 1 {
                *s = d;
            } else if d != 1 && d != *s {
                return invalid(format!("Einsum label {c} has sizes {s} and {d}"));
            }
        }
    }
    let labels: Vec<char> = sizes.keys().copied().collect();
    let dims: Vec<usize> = labels.iter().map(|c| sizes[c]).collect();
    let pos = |c: &char| labels.iter().position(|l| l == c).unwrap_or(0);
    let out_dims: Vec<usize> = e
        .output
        .iter()
        .map(|c| sizes.get(c).copied().ok_or_else(|| OpError::Invalid(format!("Einsum output label {c} not in inputs"))))
        .collect::<Result<_, _>>()?;
    let vals: Vec<Vec<f64>> = xs.iter().map(|x| x.to_f64()).collect();
    let in_str: Vec<Vec<(usize, usize)>> = e
        .inputs
        .iter()
        .zip(&xs)
        .map(|(t, x)| {
            let s = x.strides();
            t.iter().enumerate().map(|(i, c)| (pos(c), if x.dims()[i] == 1 { 0 } else { s[i] })).collect()
        })
        .collect();
    let os = crate::shape::strides(&out_dims);
    let out_pos: Vec<usize> = e.output.iter().map(pos).collect();
    let mut out = vec![0f64; out_dims.iter().product()];
    let total: usize = dims.iter().product();
    let mut ctr = vec![0usize; dims.len()];
    for _ in 0..total {
        let mut p = 1.0;
        for (v, st) in vals.iter().zip(&in_str) {
            p *= v[st.iter().map(|&(l, s)| ctr[l] * s).sum::<usize>()];
        }
        let o: usize = out_pos.iter().zip(&os).map(|(&l, &s)| ctr[l] * s).sum();
        out[o] += p;
        for ax in (0..dims.len()).rev() {
            ctr[ax] += 1;
            if ctr[ax] < dims[ax] {
                break;
            }
            ctr[ax] = 0;
        }
    }
    Ok(tensor(out_dims, Data::from_f64(first.dtype(), &out)))
}
