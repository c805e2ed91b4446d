//! Elementwise, reduction and data-movement ops, as CANN documents them: broadcasting binary
//! ops (TensorFlow-style names: RealDiv, Maximum, LogicalAnd...), Exp/Log with base, scale and
//! shift, GeluV2, Cast to a C++ `ge::DataType`, and the `...D` ops whose axes and shapes are
//! attributes.

use super::{OpCx, SimError, Value};
use crate::ge::dtype::from_cpp;
use kiln_ir::ops::erf;
use kiln_ir::shape::{broadcast, strides};
use kiln_ir::DType;

pub(crate) fn eval(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    let one = |v: Value| Ok(vec![v]);
    match cx.op.r#type.as_str() {
        t @ ("Add" | "Sub" | "Mul" | "RealDiv" | "Div" | "Pow" | "Maximum" | "Minimum" | "Equal" | "Less" | "LessEqual" | "Greater"
        | "GreaterEqual" | "LogicalAnd" | "LogicalOr" | "FloorMod" | "Mod") => one(binary(cx, t)?),
        t @ ("BitwiseAnd" | "BitwiseOr" | "BitwiseXor" | "LeftShift" | "RightShift") => one(bitwise(cx, t)?),
        "Invert" => {
            let x = cx.input(0)?;
            let Some(w) = Int::of(x.dtype) else { return cx.err(format!("Invert of {}", x.dtype)) };
            one(map(x, x.dtype, |v| w.wrap(!(v as i128))))
        }
        t @ ("IsNan" | "IsInf") => {
            let x = cx.input(0)?;
            if !x.dtype.is_float() {
                return cx.err(format!("{t} of {}: it takes floats", x.dtype));
            }
            let nan = t == "IsNan";
            one(map(x, DType::Bool, |v| f64::from(u8::from(if nan { v.is_nan() } else { v.is_infinite() }))))
        }
        t @ ("Triu" | "Tril") => one(triangle(cx, t == "Triu")?),
        t @ ("Abs" | "Neg" | "Sqrt" | "Rsqrt" | "Reciprocal" | "Floor" | "Ceil" | "Sin" | "Cos" | "Erf" | "Sigmoid" | "Tanh" | "Relu"
        | "LogicalNot" | "Round" | "Sign" | "Tan" | "Asin" | "Acos" | "Atan" | "Sinh" | "Cosh" | "Asinh" | "Acosh" | "Atanh"
        | "Mish") => one(unary(cx, t)?),
        "Exp" | "Log" => one(exp_log(cx)?),
        "GeluV2" => {
            let tanh = match cx.str("approximate")?.as_str() {
                "none" => false,
                "tanh" => true,
                a => return cx.err(format!("approximate = \"{a}\"")),
            };
            let x = cx.input(0)?;
            one(map(x, x.dtype, |v| {
                if tanh {
                    0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh())
                } else {
                    0.5 * v * (1.0 + erf(v / std::f64::consts::SQRT_2))
                }
            }))
        }
        "ClipByValue" => {
            let (x, lo, hi) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
            if x.format == "NC1HWC0" && (lo.data.len() != 1 || hi.data.len() != 1) {
                return cx.err("NC1HWC0 data clipped by bounds that are not scalars");
            }
            let dims = broadcast_dims(cx, &[&x.dims, &lo.dims, &hi.dims])?;
            let (ix, il, ih) = (index_map(&dims, &x.dims), index_map(&dims, &lo.dims), index_map(&dims, &hi.dims));
            let data = (0..ix.len()).map(|i| x.data[ix[i]].max(lo.data[il[i]]).min(hi.data[ih[i]])).collect();
            one(Value { format: x.format.clone(), ..Value::new(x.dtype, dims, data) })
        }
        "SelectV2" => {
            let (c, a, b) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
            if c.dtype != DType::Bool {
                return cx.err(format!("condition is {}, not bool", c.dtype));
            }
            let dims = broadcast_dims(cx, &[&c.dims, &a.dims, &b.dims])?;
            let (ic, ia, ib) = (index_map(&dims, &c.dims), index_map(&dims, &a.dims), index_map(&dims, &b.dims));
            let data = (0..ic.len()).map(|i| if c.data[ic[i]] != 0.0 { a.data[ia[i]] } else { b.data[ib[i]] }).collect();
            one(Value::new(a.dtype, dims, data))
        }
        "Cast" => {
            let to = cx.int("dst_type")?;
            let Some(d) = from_cpp(to) else { return cx.err(format!("dst_type {to} is not a C++ ge::DataType kiln knows")) };
            let x = cx.input(0)?;
            one(Value { dtype: d, dims: x.dims.clone(), format: x.format.clone(), data: x.data.clone() })
        }
        "ReduceSumD" | "ReduceMeanD" | "ReduceMaxD" | "ReduceMinD" | "ReduceProdD" => one(reduce(cx)?),
        "GatherV2" => one(gather(cx)?),
        "Reshape" => {
            let (x, s) = (cx.input(0)?, cx.input(1)?);
            let n = x.data.len() as i64;
            let mut dims: Vec<i64> = s.data.iter().map(|&v| v as i64).collect();
            if let Some(i) = dims.iter().position(|&d| d == -1) {
                let rest: i64 = dims.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &d)| d).product();
                dims[i] = if rest == 0 { 0 } else { n / rest };
            }
            if dims.iter().any(|&d| d < 0) || dims.iter().product::<i64>() != n {
                return cx.err(format!("cannot reshape {:?} to {dims:?}", x.dims));
            }
            one(Value::new(x.dtype, dims.iter().map(|&d| d as usize).collect(), x.data.clone()))
        }
        "TransposeD" => {
            let x = cx.input(0)?;
            let perm = cx.ints("perm")?;
            let mut seen = vec![false; x.dims.len()];
            let perm: Vec<usize> = perm.iter().map(|&p| axis(p, x.dims.len())).collect::<Option<_>>().unwrap_or_default();
            if perm.len() != x.dims.len() || perm.iter().any(|&p| std::mem::replace(&mut seen[p], true)) {
                return cx.err(format!("perm {:?} is not a permutation of {} axes", cx.ints("perm")?, x.dims.len()));
            }
            one(permute(x, &perm))
        }
        "ConcatD" => one(concat(cx)?),
        "SplitVD" => split(cx),
        "StridedSliceD" => one(strided_slice(cx)?),
        "BroadcastToD" => {
            let x = cx.input(0)?;
            let shape: Vec<usize> = cx.ints("shape")?.iter().map(|&d| d.max(0) as usize).collect();
            let dims = broadcast_dims(cx, &[&x.dims, &shape])?;
            if dims != shape {
                return cx.err(format!("{:?} does not broadcast to {shape:?}", x.dims));
            }
            let ix = index_map(&dims, &x.dims);
            one(Value::new(x.dtype, dims, ix.iter().map(|&i| x.data[i]).collect()))
        }
        t => cx.err(format!("{t} is not an op of ops.rs")),
    }
}

/// The ops that compute on NC1HWC0 data as stored: elementwise ops over operands in one
/// layout, and the ops that convert it.
pub(crate) fn reads_nc1hwc0(ty: &str) -> bool {
    matches!(
        ty,
        "Add"
            | "Sub"
            | "Mul"
            | "RealDiv"
            | "Maximum"
            | "Minimum"
            | "Abs"
            | "Neg"
            | "Sqrt"
            | "Rsqrt"
            | "Reciprocal"
            | "Sigmoid"
            | "Tanh"
            | "Relu"
            | "Exp"
            | "Log"
            | "Erf"
            | "GeluV2"
            | "ClipByValue"
            | "Cast"
            | "Conv2D"
            | "TransData"
    )
}

/// `a` as an axis of a rank-`rank` tensor (negative counts from the end).
pub(crate) fn axis(a: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let a = if a < 0 { a + r } else { a };
    (0..r).contains(&a).then_some(a as usize)
}

/// Numpy broadcasting of `shapes`.
pub(crate) fn broadcast_dims(cx: &OpCx, shapes: &[&[usize]]) -> Result<Vec<usize>, SimError> {
    shapes.iter().try_fold(vec![], |acc, s| broadcast(&acc, s)).map_or_else(|| cx.err(format!("shapes {shapes:?} do not broadcast")), Ok)
}

/// For each element of `out` (row-major), the element of a tensor of `dims` broadcast to it.
pub(crate) fn index_map(out: &[usize], dims: &[usize]) -> Vec<usize> {
    let n: usize = out.iter().product();
    let off = out.len() - dims.len();
    let ins = strides(dims);
    let os = strides(out);
    (0..n)
        .map(|flat| {
            let mut src = 0;
            for (i, &d) in dims.iter().enumerate() {
                let c = (flat / os[off + i]) % out[off + i];
                if d != 1 {
                    src += c * ins[i];
                }
            }
            src
        })
        .collect()
}

fn map(x: &Value, dtype: DType, f: impl Fn(f64) -> f64) -> Value {
    Value { dtype, dims: x.dims.clone(), format: x.format.clone(), data: x.data.iter().map(|&v| f(v)).collect() }
}

fn binary(cx: &OpCx, t: &str) -> Result<Value, SimError> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    if a.dtype != b.dtype {
        return cx.err(format!("x1 is {} and x2 is {}: CANN's binary ops take one dtype", a.dtype, b.dtype));
    }
    let scalar = |v: &Value| v.data.len() == 1;
    let formatted = |v: &Value| v.format == "NC1HWC0";
    if (formatted(a) || formatted(b)) && !(a.format == b.format && a.dims == b.dims || scalar(a) || scalar(b)) {
        return cx.err(format!(
            "{}{:?} {} and {}{:?} {}: NC1HWC0 data combines only with its like or a scalar",
            a.dtype, a.dims, a.format, b.dtype, b.dims, b.format
        ));
    }
    let dims = broadcast_dims(cx, &[&a.dims, &b.dims])?;
    let (ia, ib) = (index_map(&dims, &a.dims), index_map(&dims, &b.dims));
    let int = !a.dtype.is_float();
    let bool_of = |v: bool| f64::from(u8::from(v));
    let f = |x: f64, y: f64| match t {
        "Add" => x + y,
        "Sub" => x - y,
        "Mul" => x * y,
        "RealDiv" => x / y,
        // Integer Div truncates toward zero.
        "Div" if int => (x / y).trunc(),
        "Div" => x / y,
        "Pow" => x.powf(y),
        // floor(x1/x2)·x2 + FloorMod(x1, x2) = x1: the remainder takes the divisor's sign.
        "FloorMod" => x - (x / y).floor() * y,
        // TensorFlow's Mod: the truncating remainder, with the dividend's sign.
        "Mod" => x % y,
        "Maximum" => x.max(y),
        "Minimum" => x.min(y),
        "Equal" => bool_of(x == y),
        "Less" => bool_of(x < y),
        "LessEqual" => bool_of(x <= y),
        "Greater" => bool_of(x > y),
        "GreaterEqual" => bool_of(x >= y),
        "LogicalAnd" => bool_of(x != 0.0 && y != 0.0),
        _ => bool_of(x != 0.0 || y != 0.0),
    };
    let dtype = if matches!(t, "Equal" | "Less" | "LessEqual" | "Greater" | "GreaterEqual") { DType::Bool } else { a.dtype };
    let format = if formatted(a) { a.format.clone() } else { b.format.clone() };
    Ok(Value { dtype, dims, format, data: ia.iter().zip(&ib).map(|(&i, &j)| f(a.data[i], b.data[j])).collect() })
}

/// Triu/Tril: the elements on and above (below) diagonal `diagonal` of each trailing matrix,
/// the others zero.
fn triangle(cx: &OpCx, upper: bool) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    let k = cx.int("diagonal")?;
    let r = x.dims.len();
    if r < 2 {
        return cx.err(format!("a rank-{r} input: Triu and Tril take matrices"));
    }
    let (rows, cols) = (x.dims[r - 2], x.dims[r - 1]);
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let (row, col) = (((i / cols) % rows) as i64, (i % cols) as i64);
            let keep = if upper { col - row >= k } else { col - row <= k };
            if keep {
                v
            } else {
                0.0
            }
        })
        .collect();
    Ok(Value { data, ..x.clone() })
}

fn unary(cx: &OpCx, t: &str) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    let f = |v: f64| match t {
        "Abs" => v.abs(),
        "Neg" => -v,
        "Sqrt" => v.sqrt(),
        "Rsqrt" => 1.0 / v.sqrt(),
        "Reciprocal" => 1.0 / v,
        "Floor" => v.floor(),
        "Ceil" => v.ceil(),
        "Sin" => v.sin(),
        "Cos" => v.cos(),
        "Erf" => erf(v),
        "Sigmoid" => 1.0 / (1.0 + (-v).exp()),
        "Tanh" => v.tanh(),
        "Relu" => v.max(0.0),
        // Half to even.
        "Round" => v.round_ties_even(),
        "Sign" => {
            if v == 0.0 || v.is_nan() {
                v
            } else {
                v.signum()
            }
        }
        "Tan" => v.tan(),
        "Asin" => v.asin(),
        "Acos" => v.acos(),
        "Atan" => v.atan(),
        "Sinh" => v.sinh(),
        "Cosh" => v.cosh(),
        "Asinh" => v.asinh(),
        "Acosh" => v.acosh(),
        "Atanh" => v.atanh(),
        // x·tanh(softplus(x))
        "Mish" => v * (v.max(0.0) + (-v.abs()).exp().ln_1p()).tanh(),
        _ => f64::from(u8::from(v == 0.0)),
    };
    Ok(map(x, x.dtype, f))
}

/// Exp: `base^(shift + scale·x)`; Log: `log_base(shift + scale·x)`; base -1 is e.
fn exp_log(cx: &OpCx) -> Result<Value, SimError> {
    let (base, scale, shift) = (cx.float("base")?, cx.float("scale")?, cx.float("shift")?);
    if base != -1.0 && base <= 0.0 {
        return cx.err(format!("base {base}: -1 (e) or positive"));
    }
    let ln_base = if base == -1.0 { 1.0 } else { base.ln() };
    let x = cx.input(0)?;
    Ok(if cx.op.r#type == "Exp" {
        map(x, x.dtype, |v| ((shift + scale * v) * ln_base).exp())
    } else {
        map(x, x.dtype, |v| (shift + scale * v).ln() / ln_base)
    })
}

fn reduce(cx: &OpCx) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    let keep = cx.bool("keep_dims")?;
    let t = cx.op.r#type.as_str();
    if t == "ReduceMeanD" && cx.bool("noop_with_empty_axes")? && cx.ints("axes")?.is_empty() {
        return Ok(x.clone());
    }
    let mut axes = vec![false; x.dims.len()];
    for a in cx.ints("axes")? {
        match axis(a, x.dims.len()) {
            Some(a) => axes[a] = true,
            None => return cx.err(format!("axis {a} of a rank-{} tensor", x.dims.len())),
        }
    }
    if !axes.contains(&true) {
        axes.iter_mut().for_each(|a| *a = true);
    }
    let kept: Vec<usize> = x.dims.iter().zip(&axes).map(|(&d, &r)| if r { 1 } else { d }).collect();
    let n_out: usize = kept.iter().product();
    let count: usize = x.dims.iter().zip(&axes).filter(|(_, &r)| r).map(|(&d, _)| d).product();
    let init = match t {
        "ReduceMaxD" => f64::NEG_INFINITY,
        "ReduceMinD" => f64::INFINITY,
        "ReduceProdD" => 1.0,
        _ => 0.0,
    };
    let mut acc = vec![init; n_out];
    let (xs, ks) = (strides(&x.dims), strides(&kept));
    for (flat, &v) in x.data.iter().enumerate() {
        let mut o = 0;
        for (i, &d) in x.dims.iter().enumerate() {
            if !axes[i] {
                o += ((flat / xs[i]) % d) * ks[i];
            }
        }
        let a = &mut acc[o];
        *a = match t {
            "ReduceMaxD" => a.max(v),
            "ReduceMinD" => a.min(v),
            "ReduceProdD" => *a * v,
            _ => *a + v,
        };
    }
    if t == "ReduceMeanD" {
        acc.iter_mut().for_each(|a| *a /= count as f64);
    }
    let dims = if keep { kept } else { x.dims.iter().zip(&axes).filter(|(_, &r)| !r).map(|(&d, _)| d).collect() };
    Ok(Value::new(x.dtype, dims, acc))
}

fn gather(cx: &OpCx) -> Result<Value, SimError> {
    let (x, idx, ax) = (cx.input(0)?, cx.input(1)?, cx.input(2)?);
    if cx.int("batch_dims")? != 0 {
        return cx.err("batch_dims other than 0");
    }
    let negative = cx.bool("negative_index_support")?;
    let Some(a) = ax.data.first().and_then(|&a| axis(a as i64, x.dims.len())) else {
        return cx.err(format!("axis {:?} of a rank-{} tensor", ax.data, x.dims.len()));
    };
    let (outer, n, inner) = (x.dims[..a].iter().product::<usize>(), x.dims[a], x.dims[a + 1..].iter().product::<usize>());
    let mut data = Vec::with_capacity(outer * idx.data.len() * inner);
    for o in 0..outer {
        for &i in &idx.data {
            let i = i as i64;
            let i = if i < 0 && negative { i + n as i64 } else { i };
            if i < 0 || i >= n as i64 {
                return cx.err(format!("index {i} out of range for axis {a} of size {n}"));
            }
            let base = (o * n + i as usize) * inner;
            data.extend_from_slice(&x.data[base..base + inner]);
        }
    }
    let dims = x.dims[..a].iter().chain(&idx.dims).chain(&x.dims[a + 1..]).copied().collect();
    Ok(Value::new(x.dtype, dims, data))
}

pub(crate) fn permute(x: &Value, perm: &[usize]) -> Value {
    let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
    let (xs, os) = (strides(&x.dims), strides(&dims));
    let n = x.data.len();
    let mut data = vec![0.0; n];
    for (flat, d) in data.iter_mut().enumerate() {
        let mut src = 0;
        for (i, &p) in perm.iter().enumerate() {
            src += ((flat / os[i]) % dims[i]) * xs[p];
        }
        *d = x.data[src];
    }
    Value::new(x.dtype, dims, data)
}

fn concat(cx: &OpCx) -> Result<Value, SimError> {
    let n = cx.int("N")?;
    if n as usize != cx.ins.len() {
        return cx.err(format!("N = {n} but {} inputs", cx.ins.len()));
    }
    let xs: Vec<&Value> = (0..cx.ins.len()).map(|i| cx.input(i)).collect::<Result<_, _>>()?;
    let first = xs[0];
    let Some(a) = axis(cx.int("concat_dim")?, first.dims.len()) else { return cx.err("concat_dim out of range") };
    let mut dims = first.dims.clone();
    dims[a] = 0;
    for x in &xs {
        let same = x.dims.len() == first.dims.len() && x.dims.iter().zip(&first.dims).enumerate().all(|(i, (p, q))| i == a || p == q);
        if !same || x.dtype != first.dtype {
            return cx.err(format!("inputs {}{:?} and {}{:?} do not concatenate on axis {a}", first.dtype, first.dims, x.dtype, x.dims));
        }
        dims[a] += x.dims[a];
    }
    let outer: usize = first.dims[..a].iter().product();
    let mut data = vec![];
    for o in 0..outer {
        for x in &xs {
            let chunk = x.dims[a..].iter().product::<usize>();
            data.extend_from_slice(&x.data[o * chunk..(o + 1) * chunk]);
        }
    }
    Ok(Value::new(first.dtype, dims, data))
}

fn split(cx: &OpCx) -> Result<Vec<Value>, SimError> {
    let x = cx.input(0)?;
    let sizes = cx.ints("size_splits")?;
    if cx.int("num_split")? as usize != sizes.len() {
        return cx.err("num_split differs from the number of size_splits");
    }
    let Some(a) = axis(cx.int("split_dim")?, x.dims.len()) else { return cx.err("split_dim out of range") };
    if sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != x.dims[a] as i64 {
        return cx.err(format!("size_splits {sizes:?} do not split {} elements", x.dims[a]));
    }
    let outer: usize = x.dims[..a].iter().product();
    let inner: usize = x.dims[a + 1..].iter().product();
    let mut start = 0;
    let mut outs = vec![];
    for &s in &sizes {
        let s = s as usize;
        let mut data = vec![];
        for o in 0..outer {
            let base = (o * x.dims[a] + start) * inner;
            data.extend_from_slice(&x.data[base..base + s * inner]);
        }
        let mut dims = x.dims.clone();
        dims[a] = s;
        outs.push(Value::new(x.dtype, dims, data));
        start += s;
    }
    Ok(outs)
}

fn strided_slice(cx: &OpCx) -> Result<Value, SimError> {
    let x = cx.input(0)?;
    for m in ["begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask"] {
        if cx.int(m)? != 0 {
            return cx.err(format!("{m} other than 0 is not simulated"));
        }
    }
    let (begin, end, step) = (cx.ints("begin")?, cx.ints("end")?, cx.ints("strides")?);
    let r = x.dims.len();
    if begin.len() != r || end.len() != r || step.len() != r {
        return cx.err(format!("begin/end/strides of lengths {}/{}/{} for rank {r}", begin.len(), end.len(), step.len()));
    }
    // Each axis's kept indices.
    let mut picks: Vec<Vec<usize>> = vec![];
    for i in 0..r {
        let n = x.dims[i] as i64;
        let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n);
        if step[i] <= 0 {
            return cx.err("a non-positive stride is not simulated");
        }
        let (b, e) = (clamp(begin[i]), clamp(end[i]));
        picks.push((b..e).step_by(step[i] as usize).map(|v| v as usize).collect());
    }
    let dims: Vec<usize> = picks.iter().map(Vec::len).collect();
    let (xs, os) = (strides(&x.dims), strides(&dims));
    let n: usize = dims.iter().product();
    let data = (0..n).map(|flat| x.data[(0..r).map(|i| picks[i][(flat / os[i]) % dims[i]] * xs[i]).sum::<usize>()]).collect();
    Ok(Value::new(x.dtype, dims, data))
}

/// An integer dtype's width and signedness, for the bitwise ops.
#[derive(Clone, Copy)]
struct Int {
    bits: u32,
    signed: bool,
}

impl Int {
    fn of(d: DType) -> Option<Int> {
        let (bits, signed) = match d {
            DType::I8 => (8, true),
            DType::U8 => (8, false),
            DType::I16 => (16, true),
            DType::U16 => (16, false),
            DType::I32 => (32, true),
            DType::U32 => (32, false),
            DType::I64 => (64, true),
            DType::U64 => (64, false),
            _ => return None,
        };
        Some(Int { bits, signed })
    }

    /// `v` reduced to the dtype's bits (two's complement), as a value.
    fn wrap(self, v: i128) -> f64 {
        let m = v & ((1i128 << self.bits) - 1);
        let v = if self.signed && m >= 1i128 << (self.bits - 1) { m - (1i128 << self.bits) } else { m };
        v as f64
    }
}

/// BitwiseAnd/Or/Xor (x1, x2) and LeftShift/RightShift (x, y): two's complement in the
/// operands' width; a shift by the width or more gives 0.
fn bitwise(cx: &OpCx, t: &str) -> Result<Value, SimError> {
    let (a, b) = (cx.input(0)?, cx.input(1)?);
    if a.dtype != b.dtype {
        return cx.err(format!("operands of {} and {}: {t} takes one dtype", a.dtype, b.dtype));
    }
    let Some(w) = Int::of(a.dtype) else { return cx.err(format!("{t} of {}: it takes integers", a.dtype)) };
    let dims = broadcast_dims(cx, &[&a.dims, &b.dims])?;
    let (ia, ib) = (index_map(&dims, &a.dims), index_map(&dims, &b.dims));
    let f = |x: i128, y: i128| match t {
        "BitwiseAnd" => x & y,
        "BitwiseOr" => x | y,
        "BitwiseXor" => x ^ y,
        _ if !(0..i128::from(w.bits)).contains(&y) => 0,
        "LeftShift" => x << y,
        // Arithmetic for the signed types (TensorFlow's RightShift), logical for the unsigned.
        _ if w.signed => x >> y,
        _ => (x & ((1i128 << w.bits) - 1)) >> y,
    };
    let data = ia.iter().zip(&ib).map(|(&i, &j)| w.wrap(f(a.data[i] as i128, b.data[j] as i128))).collect();
    Ok(Value::new(a.dtype, dims, data))
}
