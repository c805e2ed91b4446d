//! Lowerings too long for a table row: attribute defaults per opset, inputs that older opsets
//! passed as attributes (turned into constants), and subgraphs (If, Loop, Scan).

use super::node::{unsupported, Cx, LowerError, Out, R};
use super::tensor::{dtype_from_onnx, tensor_from_proto};
use super::ImportError;
use kiln_ir::ops::{
    AspectPolicy, AutoPad, CoordMode, LossReduction, NearestMode, PadMode, ReduceKind, ResizeMode, RnnActivation, RnnDirection,
    ScatterReduction, WindowKind,
};
use kiln_ir::{BinaryOp, DType, Data, Op, Tensor, TensorType, ValueId};

pub(crate) fn constant(cx: &mut Cx) -> R {
    let a = &cx.a;
    if let Some(t) = a.t("value")? {
        return Ok(Out::Const(tensor_from_proto(t, None).map_err(|e| match e {
            ImportError::UnsupportedDType { dtype, .. } => LowerError::Unsupported(format!("constant of dtype {dtype}")),
            other => LowerError::Invalid(other.to_string()),
        })?));
    }
    let t = if let Some(f) = a.opt_f("value_float")? {
        Tensor::new(vec![], Data::F32(vec![f]))
    } else if let Some(v) = a.floats("value_floats")? {
        Tensor::new(vec![v.len()], Data::F32(v))
    } else if let Some(i) = a.opt_i("value_int")? {
        Tensor::new(vec![], Data::I64(vec![i]))
    } else if let Some(v) = a.ints("value_ints")? {
        Tensor::new(vec![v.len()], Data::I64(v))
    } else if a.has("value_string") || a.has("value_strings") {
        return unsupported("string constants");
    } else if a.has("sparse_value") {
        return unsupported("sparse constants");
    } else {
        return Err(LowerError::Invalid("Constant without a value attribute".into()));
    };
    Ok(Out::Const(t.map_err(|e| LowerError::Invalid(e.to_string()))?))
}

pub(crate) fn variadic(cx: &mut Cx, op: BinaryOp) -> R {
    let ins: Vec<ValueId> = cx.ins.iter().flatten().copied().collect();
    match ins.len() {
        0 => Err(LowerError::Invalid("needs at least one input".into())),
        1 => Ok(Out::Node(Op::Identity {}, vec![Some(ins[0])])),
        n => {
            let mut acc = ins[0];
            for &x in &ins[1..n - 1] {
                acc = cx.emit(Op::Binary { op }, vec![Some(acc), Some(x)])?;
            }
            Ok(Out::Node(Op::Binary { op }, vec![Some(acc), Some(ins[n - 1])]))
        }
    }
}

pub(crate) fn arg(cx: &mut Cx, max: bool) -> R {
    let (axis, keepdims, select_last_index) = (cx.i("axis", 0)?, cx.b("keepdims", true)?, cx.b("select_last_index", false)?);
    let op = if max { Op::ArgMax { axis, keepdims, select_last_index } } else { Op::ArgMin { axis, keepdims, select_last_index } };
    Ok(Out::Node(op, vec![Some(cx.req(0)?)]))
}

pub(crate) fn softmax(cx: &mut Cx, which: u8) -> R {
    let legacy = cx.opset < 13;
    let axis = cx.i("axis", if legacy { 1 } else { -1 })?;
    let op = match which {
        0 => Op::Softmax { axis, legacy },
        1 => Op::LogSoftmax { axis, legacy },
        _ => Op::Hardmax { axis, legacy },
    };
    Ok(Out::Node(op, vec![Some(cx.req(0)?)]))
}

pub(crate) fn reduce(cx: &mut Cx, kind: ReduceKind, axes_input_since: i64) -> R {
    let keepdims = cx.b("keepdims", true)?;
    let noop_with_empty_axes = cx.b("noop_with_empty_axes", false)?;
    let axes = if cx.opset < axes_input_since { cx.a.ints("axes")?.map(|a| cx.ints_const("axes", &a)) } else { cx.inp(1) };
    Ok(Out::Node(Op::Reduce { kind, keepdims, noop_with_empty_axes }, vec![Some(cx.req(0)?), axes]))
}

fn auto_pad(cx: &Cx) -> Result<AutoPad, LowerError> {
    Ok(match cx.s("auto_pad", "NOTSET")?.as_str() {
        "NOTSET" | "" => AutoPad::NotSet,
        "SAME_UPPER" => AutoPad::SameUpper,
        "SAME_LOWER" => AutoPad::SameLower,
        "VALID" => AutoPad::Valid,
        other => return Err(LowerError::Invalid(format!("unknown auto_pad `{other}`"))),
    })
}

pub(crate) fn conv(cx: &mut Cx, kind: &str) -> R {
    let (kernel_shape, strides, pads, dilations) = (cx.ints("kernel_shape")?, cx.ints("strides")?, cx.ints("pads")?, cx.ints("dilations")?);
    let (group, auto_pad) = (cx.i("group", 1)?, auto_pad(cx)?);
    let op = match kind {
        "conv" => Op::Conv { kernel_shape, strides, pads, dilations, group, auto_pad },
        "integer" => Op::ConvInteger { kernel_shape, strides, pads, dilations, group, auto_pad },
        _ => Op::QLinearConv { kernel_shape, strides, pads, dilations, group, auto_pad },
    };
    Ok(Out::Node(op, cx.all()))
}

pub(crate) fn conv_transpose(cx: &mut Cx) -> R {
    let op = Op::ConvTranspose {
        kernel_shape: cx.ints("kernel_shape")?,
        strides: cx.ints("strides")?,
        pads: cx.ints("pads")?,
        dilations: cx.ints("dilations")?,
        group: cx.i("group", 1)?,
        auto_pad: auto_pad(cx)?,
        output_padding: cx.ints("output_padding")?,
        output_shape: cx.ints("output_shape")?,
    };
    Ok(Out::Node(op, cx.all()))
}

pub(crate) fn pool(cx: &mut Cx, kind: &str) -> R {
    let (kernel_shape, strides, pads, dilations) = (cx.ints("kernel_shape")?, cx.ints("strides")?, cx.ints("pads")?, cx.ints("dilations")?);
    let (auto_pad, ceil_mode) = (auto_pad(cx)?, cx.b("ceil_mode", false)?);
    let op = match kind {
        "max" => Op::MaxPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, storage_order: cx.i("storage_order", 0)? },
        "avg" => Op::AveragePool {
            kernel_shape,
            strides,
            pads,
            dilations,
            auto_pad,
            ceil_mode,
            count_include_pad: cx.b("count_include_pad", false)?,
        },
        _ => Op::LpPool { kernel_shape, strides, pads, dilations, auto_pad, ceil_mode, p: cx.i("p", 2)? },
    };
    Ok(Out::Node(op, vec![Some(cx.req(0)?)]))
}

pub(crate) fn batch_norm(cx: &mut Cx) -> R {
    // Before opset 14 training mode was signalled by the extra outputs (opsets 9-13).
    let training = cx.b("training_mode", false)? || (cx.opset < 14 && cx.opset >= 9 && cx.node.output.len() > 1);
    if training && cx.opset < 14 {
        return unsupported("training-mode BatchNormalization before opset 14 (saved mean/variance outputs)");
    }
    let ins: Vec<Option<ValueId>> = cx.ins.iter().take(5).copied().collect();
    Ok(Out::Node(Op::BatchNormalization { epsilon: cx.f("epsilon", 1e-5)?, momentum: cx.f("momentum", 0.9)?, training }, ins))
}

pub(crate) fn pad(cx: &mut Cx) -> R {
    let mode = match cx.s("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        m => return Err(LowerError::Invalid(format!("unknown mode `{m}`"))),
    };
    let x = cx.req(0)?;
    if cx.opset < 11 {
        let pads = cx.a.ints("pads")?.or(cx.a.ints("paddings")?).unwrap_or_default();
        let p = cx.ints_const("pads", &pads);
        let dt = cx.dtype(x);
        let v = cx.f("value", 0.0)? as f64;
        let c = cx.scalar_const("value", dt, v);
        return Ok(Out::Node(Op::Pad { mode }, vec![Some(x), Some(p), Some(c)]));
    }
    Ok(Out::Node(Op::Pad { mode }, cx.all()))
}

pub(crate) fn loss_reduction(cx: &Cx) -> Result<LossReduction, LowerError> {
    let r = cx.s("reduction", "mean")?;
    LossReduction::from_name(&r).ok_or_else(|| LowerError::Invalid(format!("unknown reduction `{r}`")))
}

pub(crate) fn scatter_reduction(cx: &Cx) -> Result<ScatterReduction, LowerError> {
    let r = cx.s("reduction", "none")?;
    ScatterReduction::from_name(&r).ok_or_else(|| LowerError::Invalid(format!("unknown reduction `{r}`")))
}

pub(crate) fn resize(cx: &mut Cx) -> R {
    let mode = match cx.s("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" => ResizeMode::Linear,
        "cubic" => ResizeMode::Cubic,
        m => return Err(LowerError::Invalid(format!("unknown mode `{m}`"))),
    };
    let ctm = cx.s("coordinate_transformation_mode", if cx.opset < 11 { "asymmetric" } else { "half_pixel" })?;
    let coordinate_transformation_mode =
        CoordMode::from_name(&ctm).ok_or_else(|| LowerError::Unsupported(format!("coordinate_transformation_mode `{ctm}`")))?;
    // Opset 10 had no nearest_mode; it behaved like `floor` (Upsample's semantics).
    let nm = cx.s("nearest_mode", if cx.opset < 11 { "floor" } else { "round_prefer_floor" })?;
    let nearest_mode = NearestMode::from_name(&nm).ok_or_else(|| LowerError::Invalid(format!("unknown nearest_mode `{nm}`")))?;
    let kp = cx.s("keep_aspect_ratio_policy", "stretch")?;
    let keep_aspect_ratio_policy =
        AspectPolicy::from_name(&kp).ok_or_else(|| LowerError::Invalid(format!("unknown keep_aspect_ratio_policy `{kp}`")))?;
    let op = Op::Resize {
        mode,
        coordinate_transformation_mode,
        nearest_mode,
        cubic_coeff_a: cx.f("cubic_coeff_a", -0.75)?,
        exclude_outside: cx.b("exclude_outside", false)?,
        extrapolation_value: cx.f("extrapolation_value", 0.0)?,
        antialias: cx.b("antialias", false)?,
        axes: cx.ints("axes")?,
        keep_aspect_ratio_policy,
    };
    let ins = if cx.opset < 11 { vec![Some(cx.req(0)?), None, cx.inp(1), None] } else { cx.all() };
    Ok(Out::Node(op, ins))
}

pub(crate) fn round_mode(cx: &Cx) -> Result<kiln_ir::ops::E8M0Rounding, LowerError> {
    let m = cx.s("round_mode", "up")?;
    kiln_ir::ops::E8M0Rounding::from_name(&m).ok_or_else(|| LowerError::Invalid(format!("unknown round_mode `{m}`")))
}

pub(crate) fn window(cx: &mut Cx, kind: WindowKind) -> R {
    let dtype = dtype_from_onnx(cx.i("output_datatype", 1)? as i32).map_err(LowerError::Unsupported)?;
    Ok(Out::Node(Op::SignalWindow { kind, periodic: cx.b("periodic", true)?, dtype }, vec![Some(cx.req(0)?)]))
}

/// Upsample (opsets 7-9) is Resize with asymmetric coordinates and floor rounding.
pub(crate) fn upsample(cx: &mut Cx) -> R {
    let mode = match cx.s("mode", "nearest")?.as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" | "bilinear" => ResizeMode::Linear,
        m => return Err(LowerError::Invalid(format!("unknown mode `{m}`"))),
    };
    let scales = match cx.a.floats("scales")? {
        Some(s) => {
            let t = Tensor::new(vec![s.len()], Data::F32(s)).map_err(|e| LowerError::Invalid(e.to_string()))?;
            Some(cx.konst("scales", t))
        }
        None => cx.inp(1),
    };
    let op = Op::Resize {
        mode,
        coordinate_transformation_mode: CoordMode::Asymmetric,
        nearest_mode: NearestMode::Floor,
        cubic_coeff_a: -0.75,
        exclude_outside: false,
        extrapolation_value: 0.0,
        antialias: false,
        axes: vec![],
        keep_aspect_ratio_policy: AspectPolicy::Stretch,
    };
    Ok(Out::Node(op, vec![Some(cx.req(0)?), None, scales, None]))
}

pub(crate) fn recurrent(cx: &mut Cx, kind: &str) -> R {
    let direction = match cx.s("direction", "forward")?.as_str() {
        "forward" => RnnDirection::Forward,
        "reverse" => RnnDirection::Reverse,
        "bidirectional" => RnnDirection::Bidirectional,
        d => return Err(LowerError::Invalid(format!("unknown direction `{d}`"))),
    };
    let activations: Vec<RnnActivation> =
        cx.a.strings("activations")?
            .unwrap_or_default()
            .iter()
            .map(|s| {
                let snake: String = s
                    .chars()
                    .enumerate()
                    .flat_map(|(i, c)| {
                        let lower = c.to_ascii_lowercase();
                        if c.is_ascii_uppercase() && i > 0 {
                            vec!['_', lower]
                        } else {
                            vec![lower]
                        }
                    })
                    .collect();
                RnnActivation::from_name(&snake).ok_or_else(|| LowerError::Unsupported(format!("activation `{s}`")))
            })
            .collect::<Result<_, _>>()?;
    let (hidden_size, layout) = (cx.i("hidden_size", 0)?, cx.i("layout", 0)?);
    let (activation_alpha, activation_beta) =
        (cx.a.floats("activation_alpha")?.unwrap_or_default(), cx.a.floats("activation_beta")?.unwrap_or_default());
    let clip = cx.a.opt_f("clip")?;
    let op = match kind {
        "lstm" => Op::LSTM {
            direction,
            hidden_size,
            activations,
            activation_alpha,
            activation_beta,
            clip,
            input_forget: cx.b("input_forget", false)?,
            layout,
            dynamic_quant: false,
        },
        "gru" => Op::GRU {
            direction,
            hidden_size,
            activations,
            activation_alpha,
            activation_beta,
            clip,
            linear_before_reset: cx.b("linear_before_reset", false)?,
            layout,
        },
        _ => Op::RNN { direction, hidden_size, activations, activation_alpha, activation_beta, clip, layout },
    };
    Ok(Out::Node(op, cx.all()))
}

pub(crate) fn attention(cx: &mut Cx) -> R {
    let softmax_precision = match cx.a.opt_i("softmax_precision")? {
        Some(c) => Some(dtype_from_onnx(c as i32).map_err(LowerError::Unsupported)?),
        None => None,
    };
    let op = Op::Attention {
        is_causal: cx.b("is_causal", false)?,
        kv_num_heads: cx.i("kv_num_heads", 0)?,
        q_num_heads: cx.i("q_num_heads", 0)?,
        qk_matmul_output_mode: cx.i("qk_matmul_output_mode", 0)?,
        scale: cx.a.opt_f("scale")?,
        softcap: cx.f("softcap", 0.0)?,
        softmax_precision,
        zero_undefined_rows: false,
    };
    Ok(Out::Node(op, cx.all()))
}

/// Appends the outer values a subgraph captured (by name) to its node's inputs.
fn append_captures(cx: &mut Cx, ins: &mut Vec<Option<kiln_ir::ValueId>>, caps: &[String]) -> Result<(), LowerError> {
    for c in caps {
        ins.push(Some(cx.conv.lookup(c).ok_or_else(|| LowerError::Invalid(format!("captured value `{c}` not found")))?));
    }
    Ok(())
}

pub(crate) fn if_op(cx: &mut Cx) -> R {
    let (Some(tg), Some(eg)) = (cx.a.g("then_branch")?, cx.a.g("else_branch")?) else {
        return Err(LowerError::Invalid("If needs then_branch and else_branch".into()));
    };
    // A condition known at import selects its branch now; the other is never imported.
    let cond = cx.req(0)?;
    if let Some(c) = cx.conv.graph().const_value(cond).and_then(|t| t.to_i64().first().copied()) {
        let branch = if c != 0 { tg } else { eg };
        let before = cx.conv.unsupported.len();
        return match cx.conv.inline_graph(branch).map_err(sub_err)? {
            Some(outs) if outs.len() == cx.node.output.len() => Ok(Out::Alias(outs.into_iter().map(Some).collect())),
            Some(outs) => Err(LowerError::Invalid(format!("If branch returns {} values for {} outputs", outs.len(), cx.node.output.len()))),
            None => {
                let list = cx.conv.unsupported.split_off(before);
                Err(LowerError::Unsupported(list.iter().map(|u| u.to_string()).collect::<Vec<_>>().join("; ")))
            }
        };
    }
    let then_res = cx.conv.convert_subgraph(tg, None);
    let else_res = cx.conv.convert_subgraph(eg, None);
    // onnxruntime reads only the branch taken: a branch that does not fit the given shapes
    // becomes a trap, an error when it is taken at run time, as long as the other one imports.
    let ((then_branch, then_caps), (else_branch, else_caps)) = match (then_res, else_res) {
        (Ok(t), Ok(e)) => (t, e),
        (Err(e), Ok(other)) if shape_error(&e) => ((trap_branch(cx, cond, "then", &tg.name, &other.0, &e), vec![]), other),
        (Ok(other), Err(e)) if shape_error(&e) => (other.clone(), (trap_branch(cx, cond, "else", &eg.name, &other.0, &e), vec![])),
        (Err(e), _) | (_, Err(e)) => return Err(branch_err(cx, cond, e)),
    };
    let mut caps = then_caps;
    for c in else_caps {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    let mut ins = vec![Some(cx.req(0)?)];
    append_captures(cx, &mut ins, &caps)?;
    Ok(Out::Node(Op::If { then_branch: Box::new(then_branch), else_branch: Box::new(else_branch) }, ins))
}

/// A branch's import failed on the shapes it was given (not on an op kiln lacks, nor on a
/// malformed model).
fn shape_error(e: &ImportError) -> bool {
    matches!(e, ImportError::Type(_) | ImportError::InvalidNode { .. })
}

/// The branch `which` of the If, which failed with `e`, as one `Trap` per result, typed like the
/// `other` branch's results so that the If's type is the other's.
fn trap_branch(cx: &Cx, cond: kiln_ir::ValueId, which: &str, name: &str, other: &kiln_ir::Graph, e: &ImportError) -> kiln_ir::Graph {
    let bind = bind_hint(cx, cond).map_or_else(String::new, |h| format!("; {h}"));
    let message = format!("node `{}` (If): its {which} branch cannot be imported for the model's input shapes ({e}){bind}", cx.node.name);
    let mut g = kiln_ir::Graph::new(name);
    for (j, &o) in other.outputs.iter().enumerate() {
        let ty = &other.value(o).ty;
        let dims = ty.shape.0.iter().map(|d| d.known().map_or(-1, |n| n as i64)).collect();
        let op = Op::Trap { message: message.clone(), dtype: ty.dtype, dims };
        let out = format!("{}/{which}_trap{j}", cx.node.name);
        if let Ok(ids) = g.add_node(out.clone(), op, vec![], &[Some(out)]) {
            g.outputs.extend(ids.into_iter().flatten());
        }
    }
    g
}

/// The model inputs the If's condition depends on (at the top level; none inside a subgraph).
fn cond_inputs(cx: &Cx, cond: kiln_ir::ValueId) -> Vec<String> {
    let g = cx.conv.graph();
    let mut names = vec![];
    if cx.conv.at_top() {
        let producer: std::collections::HashMap<kiln_ir::ValueId, usize> =
            g.nodes.iter().enumerate().flat_map(|(i, n)| n.outputs.iter().flatten().map(move |&o| (o, i))).collect();
        let (mut todo, mut seen) = (vec![cond], std::collections::HashSet::new());
        while let Some(v) = todo.pop() {
            if !seen.insert(v) {
                continue;
            }
            if g.inputs.contains(&v) {
                names.push(g.value(v).name.clone());
            } else if let Some(&i) = producer.get(&v) {
                todo.extend(g.nodes[i].inputs.iter().flatten().copied());
            }
        }
    }
    names.sort();
    names
}

/// How to read only the branch taken: bind the model inputs the condition depends on (None
/// when it depends on none).
fn bind_hint(cx: &Cx, cond: kiln_ir::ValueId) -> Option<String> {
    let names = cond_inputs(cx, cond);
    let first = names.first()?;
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    Some(format!(
        "the condition depends on input(s) {}: bind it at compile time (e.g. `--input-value {first}=VALUE`) so that only the branch taken is read",
        quoted.join(", ")
    ))
}

/// Neither branch of an If whose condition is not known when the model is read imports (or one
/// uses an op kiln lacks): name the model inputs the condition depends on, which
/// `--input-value` binds so that only the taken branch is read.
fn branch_err(cx: &Cx, cond: kiln_ir::ValueId, e: ImportError) -> LowerError {
    let hint =
        bind_hint(cx, cond).map_or_else(String::new, |h| format!(" (both branches must import unless the If's condition is known; {h})"));
    match sub_err(e) {
        LowerError::Unsupported(m) => LowerError::Unsupported(m + &hint),
        LowerError::Invalid(m) => LowerError::Invalid(m + &hint),
    }
}

fn sub_err(e: ImportError) -> LowerError {
    match e {
        ImportError::Unsupported(list) => LowerError::Unsupported(list.iter().map(|u| u.to_string()).collect::<Vec<_>>().join("; ")),
        other => LowerError::Invalid(format!("in subgraph: {other}")),
    }
}

pub(crate) fn scan_op(cx: &mut Cx) -> R {
    let Some(body) = cx.a.g("body")? else { return Err(LowerError::Invalid("Scan needs a body".into())) };
    let batched = cx.opset < 9;
    let m = cx.i("num_scan_inputs", 0)?;
    let first = usize::from(batched);
    let n = cx.ins.len().saturating_sub(first);
    if m < 0 || m as usize > n {
        return Err(LowerError::Invalid(format!("num_scan_inputs {m} exceeds the {n} inputs")));
    }
    let n_states = n - m as usize;
    let in_axes = cx.ints("scan_input_axes")?;
    // Body input types: states as given; scan inputs without their scan (and batch) axis.
    let mut over: Vec<Option<TensorType>> = vec![];
    for k in 0..n {
        over.push(cx.inp(first + k).map(|id| {
            let mut t = cx.conv.graph().value(id).ty.clone();
            if batched && !t.shape.0.is_empty() {
                t.shape.0.remove(0);
            }
            if k >= n_states {
                let r = t.shape.rank() as i64;
                let a = in_axes.get(k - n_states).copied().unwrap_or(0);
                let a = if a < 0 { a + r } else { a };
                if (0..r).contains(&a) {
                    t.shape.0.remove(a as usize);
                }
            }
            t
        }));
    }
    let (g, caps) = cx.conv.convert_subgraph(body, Some(&over)).map_err(sub_err)?;
    let mut ins = cx.all();
    append_captures(cx, &mut ins, &caps)?;
    let op = Op::Scan {
        body: Box::new(g),
        num_states: n_states as i64,
        num_scan_inputs: m,
        scan_input_axes: in_axes,
        scan_input_directions: if batched { cx.ints("directions")? } else { cx.ints("scan_input_directions")? },
        scan_output_axes: cx.ints("scan_output_axes")?,
        scan_output_directions: cx.ints("scan_output_directions")?,
        batched,
    };
    Ok(Out::Node(op, ins))
}

pub(crate) fn loop_op(cx: &mut Cx) -> R {
    let Some(body) = cx.a.g("body")? else { return Err(LowerError::Invalid("Loop needs a body".into())) };
    let k = cx.ins.len().saturating_sub(2);
    let mut over: Vec<Option<TensorType>> = vec![Some(TensorType::fixed(DType::I64, &[])), Some(TensorType::fixed(DType::Bool, &[]))];
    for i in 0..k {
        over.push(cx.inp(2 + i).map(|id| cx.conv.graph().value(id).ty.clone()));
    }
    let (g, caps) = cx.conv.convert_subgraph(body, Some(&over)).map_err(sub_err)?;
    let mut ins = cx.all();
    append_captures(cx, &mut ins, &caps)?;
    Ok(Out::Node(Op::Loop { body: Box::new(g), num_carried: k as i64 }, ins))
}
