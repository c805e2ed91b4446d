//! Normalizations without a CANN built-in of ONNX's semantics, composed from reductions and
//! elementwise built-ins: BatchNormalization (inference), InstanceNormalization,
//! GroupNormalization, MeanVarianceNormalization, LpNormalization, and LRN (the window sum of
//! squares over channels as a product with a banded 0/1 matrix).

use super::ops::{input, one, output, reshape, Outs};
use super::{unsupported, Cx, Fail};
use crate::ge::builder::{Desc, Port};
use crate::ge::Attr;
use kiln_ir::{DType, Tensor};

/// Op-building shorthand for one node's ops, named `node/step`.
struct Ops<'a> {
    cx: &'a mut Cx,
    name: &'a str,
}

impl Ops<'_> {
    fn at(&self, s: &str) -> String {
        format!("{}/{s}", self.name)
    }

    fn un(&mut self, s: &str, ty: &str, x: Port, d: &Desc) -> Result<Port, Fail> {
        let n = self.at(s);
        self.cx.op1(&n, ty, &[("x", Some(x))], d.clone(), vec![])
    }

    fn bin(&mut self, s: &str, ty: &str, a: Port, b: Port, d: &Desc) -> Result<Port, Fail> {
        let n = self.at(s);
        self.cx.op1(&n, ty, &[("x1", Some(a)), ("x2", Some(b))], d.clone(), vec![])
    }

    fn scalar(&mut self, s: &str, d: DType, v: f64) -> Result<Port, Fail> {
        let n = self.at(s);
        self.cx.scalar(&n, d, v)
    }

    /// ReduceMeanD or ReduceSumD over `axes`, dims kept.
    fn reduce(&mut self, s: &str, ty: &str, x: Port, axes: &[usize]) -> Result<Port, Fail> {
        let d = self.cx.desc(&x)?;
        let kept: Vec<usize> = d.dims.iter().enumerate().map(|(i, &v)| if axes.contains(&i) { 1 } else { v as usize }).collect();
        let mut attrs = vec![("axes", Attr::ListInt(axes.iter().map(|&a| a as i64).collect())), ("keep_dims", Attr::Bool(true))];
        if ty == "ReduceMeanD" {
            attrs.push(("noop_with_empty_axes", Attr::Bool(false)));
        }
        let n = self.at(s);
        self.cx.op1(&n, ty, &[("x", Some(x))], Desc::nd(d.dtype, &kept), attrs)
    }

    /// `(x - mean) / sqrt(var + eps)` over `axes` (the population variance), or with `plus`
    /// `(x - mean) / (sqrt(var) + eps)` (MeanVarianceNormalization's form).
    fn standardize(&mut self, x: Port, axes: &[usize], eps: f64, plus: bool) -> Result<Port, Fail> {
        let d = self.cx.desc(&x)?;
        let mean = self.reduce("mean", "ReduceMeanD", x.clone(), axes)?;
        let md = self.cx.desc(&mean)?;
        let centered = self.bin("centered", "Sub", x, mean, &d)?;
        let sq = self.bin("squared", "Mul", centered.clone(), centered.clone(), &d)?;
        let var = self.reduce("variance", "ReduceMeanD", sq, axes)?;
        let e = self.scalar("epsilon", d.dtype, eps)?;
        let den = if plus {
            let s = self.un("std", "Sqrt", var, &md)?;
            self.bin("denominator", "Add", s, e, &md)?
        } else {
            let v = self.bin("variance_eps", "Add", var, e, &md)?;
            self.un("denominator", "Sqrt", v, &md)?
        };
        self.bin("normalized", "RealDiv", centered, den, &d)
    }

    /// A per-channel `[C]` parameter shaped `[C, 1, ...]` to broadcast over `[N, C, ...]`.
    fn per_channel(&mut self, s: &str, p: Port, rank: usize) -> Result<Port, Fail> {
        let pd = self.cx.desc(&p)?;
        let mut dims = vec![pd.dims.iter().product::<i64>() as usize];
        dims.resize(rank - 1, 1);
        let n = self.at(s);
        reshape(self.cx, &n, p, Desc::nd(pd.dtype, &dims))
    }

    /// `y·scale + bias` with per-channel parameters, the last op named `name`.
    fn affine(&mut self, y: Port, scale: Port, bias: Port, out: &Desc) -> Result<Port, Fail> {
        let rank = out.dims.len();
        let s = self.per_channel("scale", scale, rank)?;
        let b = self.per_channel("bias", bias, rank)?;
        let scaled = self.bin("scaled", "Mul", y, s, out)?;
        let n = self.name.to_string();
        self.cx.op1(&n, "Add", &[("x1", Some(scaled)), ("x2", Some(b))], out.clone(), vec![])
    }
}

fn float(cx: &Cx, x: &Port, what: &str) -> Result<Desc, Fail> {
    let d = cx.desc(x)?;
    if !d.dtype.is_float() {
        return unsupported(format!("{what} of {}", d.dtype));
    }
    Ok(d)
}

/// BatchNormalization with the running statistics: `(x - mean)/sqrt(var + ε)·scale + bias`.
pub(super) fn batch_norm(cx: &mut Cx, name: &str, eps: f32, training: bool, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    if training {
        return unsupported("BatchNormalization in training mode");
    }
    let x = input(ins, 0)?;
    let d = float(cx, &x, "BatchNormalization")?;
    let rank = d.dims.len();
    let mut o = Ops { cx, name };
    let mean = o.per_channel("mean", input(ins, 3)?, rank)?;
    let var = o.per_channel("var", input(ins, 4)?, rank)?;
    let e = o.scalar("epsilon", d.dtype, f64::from(eps))?;
    let vd = o.cx.desc(&var)?;
    let v = o.bin("variance_eps", "Add", var, e, &vd)?;
    let den = o.un("denominator", "Sqrt", v, &vd)?;
    let centered = o.bin("centered", "Sub", x, mean, &d)?;
    let y = o.bin("normalized", "RealDiv", centered, den, &d)?;
    o.affine(y, input(ins, 1)?, input(ins, 2)?, &out)
}

/// InstanceNormalization: each (sample, channel) standardized over its spatial dims.
pub(super) fn instance_norm(cx: &mut Cx, name: &str, eps: f32, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let x = input(ins, 0)?;
    let d = float(cx, &x, "InstanceNormalization")?;
    let axes: Vec<usize> = (2..d.dims.len()).collect();
    let mut o = Ops { cx, name };
    let y = o.standardize(x, &axes, f64::from(eps), false)?;
    o.affine(y, input(ins, 1)?, input(ins, 2)?, &out)
}

/// GroupNormalization: `[N, C, ...]` viewed as `[N, G, C/G·...]` and standardized over the
/// last axis, then scaled per channel.
pub(super) fn group_norm(cx: &mut Cx, name: &str, groups: i64, eps: f32, ins: &[Option<Port>], out: Desc) -> Result<Port, Fail> {
    let x = input(ins, 0)?;
    let d = float(cx, &x, "GroupNormalization")?;
    let dims: Vec<usize> = d.dims.iter().map(|&v| v as usize).collect();
    let g = usize::try_from(groups).ok().filter(|&g| g > 0 && dims.len() > 1 && dims[1].is_multiple_of(g));
    let Some(g) = g else { return Err(Fail::Internal(format!("{groups} groups of {dims:?}"))) };
    let rest = dims[1..].iter().product::<usize>() / g;
    let mut o = Ops { cx, name };
    let n = o.at("grouped");
    let grouped = reshape(o.cx, &n, x, Desc::nd(d.dtype, &[dims[0], g, rest]))?;
    let y = o.standardize(grouped, &[2], f64::from(eps), false)?;
    let n = o.at("ungrouped");
    let y = reshape(o.cx, &n, y, Desc::nd(d.dtype, &dims))?;
    o.affine(y, input(ins, 1)?, input(ins, 2)?, &out)
}

/// MeanVarianceNormalization: `(x - mean)/(sqrt(var) + 1e-9)` over `axes`.
pub(super) fn mean_variance(cx: &mut Cx, name: &str, axes: &[i64], x: Port, out: Desc) -> Result<Port, Fail> {
    let d = float(cx, &x, "MeanVarianceNormalization")?;
    let r = d.dims.len() as i64;
    let axes: Vec<usize> = axes.iter().map(|&a| (if a < 0 { a + r } else { a }) as usize).collect();
    let mut o = Ops { cx, name };
    let y = o.standardize(x, &axes, 1e-9, true)?;
    let n = name.to_string();
    reshape(o.cx, &n, y, out)
}

/// LpNormalization: `x / ‖x‖_p` along `axis` (p 1 or 2).
pub(super) fn lp_norm(cx: &mut Cx, name: &str, axis: i64, p: i64, x: Port, out: Desc) -> Result<Port, Fail> {
    let d = float(cx, &x, "LpNormalization")?;
    let r = d.dims.len() as i64;
    let a = (if axis < 0 { axis + r } else { axis }) as usize;
    let mut o = Ops { cx, name };
    let norm = match p {
        1 => {
            let abs = o.un("abs", "Abs", x.clone(), &d)?;
            o.reduce("norm", "ReduceSumD", abs, &[a])?
        }
        2 => {
            let sq = o.bin("squared", "Mul", x.clone(), x.clone(), &d)?;
            let s = o.reduce("sum", "ReduceSumD", sq, &[a])?;
            let sd = o.cx.desc(&s)?;
            o.un("norm", "Sqrt", s, &sd)?
        }
        _ => return unsupported(format!("LpNormalization with p = {p}")),
    };
    cx_div(o, x, norm, out)
}

fn cx_div(o: Ops, x: Port, n: Port, out: Desc) -> Result<Port, Fail> {
    let name = o.name.to_string();
    o.cx.op1(&name, "RealDiv", &[("x1", Some(x)), ("x2", Some(n))], out, vec![])
}

/// LRN: `x / (bias + α/size · Σ x²)^β`, the sum over channels `[c - ⌊(size-1)/2⌋, c +
/// ⌈(size-1)/2⌉]`, computed as x² (channels last) times a banded 0/1 `[C, C]` matrix.
pub(super) fn lrn(cx: &mut Cx, name: &str, alpha: f32, beta: f32, bias: f32, size: i64, x: Port, out: Desc) -> Result<Port, Fail> {
    let d = float(cx, &x, "LRN")?;
    let dims: Vec<usize> = d.dims.iter().map(|&v| v as usize).collect();
    if dims.len() < 2 || size <= 0 {
        return Err(Fail::Internal(format!("LRN of {dims:?}, size {size}")));
    }
    let c = dims[1];
    let (lo, hi) = ((size as usize - 1) / 2, (size as usize - 1).div_ceil(2));
    let band: Vec<f64> = (0..c * c)
        .map(|f| {
            let (k, ch) = (f / c, f % c);
            f64::from(u8::from(k + lo >= ch && k <= ch + hi))
        })
        .collect();
    let band = Tensor::new(vec![c, c], kiln_ir::Data::from_f64(d.dtype, &band)).map_err(|e| Fail::Internal(e.to_string()))?;
    let rank = dims.len();
    let perm: Vec<i64> = std::iter::once(0).chain(2..rank as i64).chain(std::iter::once(1)).collect();
    let back: Vec<i64> = std::iter::once(0).chain(std::iter::once(rank as i64 - 1)).chain(1..rank as i64 - 1).collect();
    let last: Vec<usize> = perm.iter().map(|&p| dims[p as usize]).collect();
    let ld = Desc::nd(d.dtype, &last);
    let mut o = Ops { cx, name };
    let sq = o.bin("squared", "Mul", x.clone(), x.clone(), &d)?;
    let n = o.at("channels_last");
    let t = o.cx.op1(&n, "TransposeD", &[("x", Some(sq))], ld.clone(), vec![("perm", Attr::ListInt(perm))])?;
    let n = o.at("band");
    let b = o.cx.constant(&n, &band)?;
    let n = o.at("window_sum");
    let mm = vec![("adj_x1", Attr::Bool(false)), ("adj_x2", Attr::Bool(false)), ("offset_x", Attr::Int(0))];
    let s = o.cx.op1(&n, "BatchMatMulV2", &[("x1", Some(t)), ("x2", Some(b)), ("bias", None), ("offset_w", None)], ld, mm)?;
    let n = o.at("channels_first");
    let s = o.cx.op1(&n, "TransposeD", &[("x", Some(s))], d.clone(), vec![("perm", Attr::ListInt(back))])?;
    let k = o.scalar("alpha", d.dtype, f64::from(alpha) / size as f64)?;
    let s = o.bin("scaled", "Mul", s, k, &d)?;
    let b0 = o.scalar("bias", d.dtype, f64::from(bias))?;
    let s = o.bin("base", "Add", s, b0, &d)?;
    let e = o.scalar("beta", d.dtype, f64::from(beta))?;
    let den = o.bin("denominator", "Pow", s, e, &d)?;
    cx_div(o, x, den, out)
}

/// The `LayerNormalization` arm of [`super::table::lower_node`].
pub(super) fn layer_norm(
    cx: &mut Cx,
    name: &str,
    axis: &i64,
    epsilon: &f32,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    let xd = cx.desc(&x()?)?;
    let stats = outs.iter().skip(1).any(Option::is_some);
    if stats && outs.iter().skip(1).flatten().any(|d| d.dtype != xd.dtype) {
        return unsupported("LayerNormalization's statistics in a dtype other than x's (LayerNormV3 gives them x's)");
    }
    let rank = xd.dims.len() as i64;
    let axis = if *axis < 0 { axis + rank } else { *axis };
    let norm: Vec<usize> = xd.dims[axis as usize..].iter().map(|&d| d as usize).collect();
    let beta = match ins.get(2).cloned().flatten() {
        Some(b) => b,
        None => {
            let zeros = Tensor::new(norm.clone(), kiln_ir::Data::from_f64(xd.dtype, &vec![0.0; norm.iter().product()]))
                .map_err(|e| Fail::Internal(e.to_string()))?;
            cx.constant(&format!("{name}/beta"), &zeros)?
        }
    };
    // LayerNorm's prototype gives mean and variance the type list of x: kiln declares them
    // in x's dtype (RmsNorm's rstd is fp32).
    let stat = Desc::nd(xd.dtype, &xd.dims[..axis as usize].iter().map(|&d| d as usize).chain(norm.iter().map(|_| 1)).collect::<Vec<_>>());
    let inputs = [("x", Some(x()?)), ("gamma", Some(input(ins, 1)?)), ("beta", Some(beta))];
    let attrs = vec![("begin_norm_axis", Attr::Int(axis)), ("begin_params_axis", Attr::Int(axis)), ("epsilon", Attr::Float(*epsilon))];
    if stats {
        // LayerNormV3 returns the mean and 1/√(var + ε), ONNX's two statistics.
        let v = cx.op(name, "LayerNormV3", &inputs, vec![("y", y()?), ("mean", stat.clone()), ("rstd", stat)], attrs)?;
        return Ok(v.into_iter().take(outs.len()).zip(outs).map(|(p, o)| o.as_ref().map(|_| p)).collect());
    }
    let v = cx.op(name, "LayerNorm", &inputs, vec![("y", y()?), ("mean", stat.clone()), ("variance", stat)], attrs)?;
    Ok(std::iter::once(v.into_iter().next()).chain(std::iter::repeat_n(None, outs.len().saturating_sub(1))).collect())
}

/// The `RMSNormalization` arm of [`super::table::lower_node`].
pub(super) fn rms_norm(
    cx: &mut Cx,
    name: &str,
    axis: &i64,
    epsilon: &f32,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    let xd = cx.desc(&x()?)?;
    let rank = xd.dims.len() as i64;
    let axis = if *axis < 0 { axis + rank } else { *axis };
    let gd = cx.desc(&input(ins, 1)?)?;
    if gd.dims.len() as i64 != rank - axis {
        return unsupported("RMSNormalization whose scale does not cover every normalized axis");
    }
    let stat =
        Desc::nd(DType::F32, &xd.dims.iter().enumerate().map(|(i, &d)| if (i as i64) < axis { d as usize } else { 1 }).collect::<Vec<_>>());
    let inputs = [("x", Some(x()?)), ("gamma", Some(input(ins, 1)?))];
    let v = cx.op(name, "RmsNorm", &inputs, vec![("y", y()?), ("rstd", stat)], vec![("epsilon", Attr::Float(*epsilon))])?;
    Ok(vec![v.into_iter().next()])
}

/// The `Softmax` and `LogSoftmax` (`log`) arms of [`super::table::lower_node`].
pub(super) fn softmax(
    cx: &mut Cx,
    name: &str,
    log: bool,
    axis: &i64,
    legacy: &bool,
    ins: &[Option<Port>],
    _consts: &[Option<&Tensor>],
    outs: &[Option<Desc>],
) -> Result<Outs, Fail> {
    let x = || input(ins, 0);
    let y = || output(outs, 0);
    let rank = cx.desc(&x()?)?.dims.len() as i64;
    let axis = if *axis < 0 { axis + rank } else { *axis };
    if *legacy && axis != rank - 1 {
        return unsupported("opset < 13 softmax over flattened trailing axes");
    }
    if !log {
        let attrs = vec![("axes", Attr::ListInt(vec![axis])), ("half_to_float", Attr::Bool(false))];
        one(cx.op1(name, "SoftmaxV2", &[("x", Some(x()?))], y()?, attrs)?)
    } else {
        let v =
            cx.op(name, "LogSoftmaxV2", &[("logits", Some(x()?))], vec![("logsoftmax", y()?)], vec![("axes", Attr::ListInt(vec![axis]))])?;
        Ok(vec![v.into_iter().next()])
    }
}
