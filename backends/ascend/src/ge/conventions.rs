//! The conventions of ../shared/ASCEND.md §1.5, §1.6 and §7.1 checked on a model: what GE's
//! loader needs and does not check loudly. [`crate::bundle::compile`] runs this on every graph
//! it emits; tests run it on broken graphs to see each rule fail.

use super::attr::Attr;
use super::dtype::{from_cpp, from_proto};
use super::proto::{ListValueType, ModelDef, OpDef, TensorDescriptor};
use std::collections::HashSet;

fn desc_errors(op: &OpDef, d: &TensorDescriptor, what: &str, errs: &mut Vec<String>) {
    let unfed = d.attr.get("_is_unfed_optional").and_then(Attr::decode) == Some(Attr::Int(1));
    if d.name.is_empty() {
        errs.push(format!("op `{}`: an {what} descriptor has no port name", op.name));
    }
    if unfed {
        return;
    }
    if from_proto(d.dtype).is_none() {
        errs.push(format!("op `{}`: {what} `{}` has dtype {}, not a proto DataType kiln writes", op.name, d.name, d.dtype));
    }
    if d.layout.is_empty() {
        errs.push(format!("op `{}`: {what} `{}` has no layout", op.name, d.name));
    }
    if d.shape.is_none() {
        errs.push(format!("op `{}`: {what} `{}` has no shape", op.name, d.name));
    }
    if !matches!(d.attr.get("origin_format").and_then(Attr::decode), Some(Attr::Str(_))) {
        errs.push(format!("op `{}`: {what} `{}` has no origin_format", op.name, d.name));
    }
}

/// Every broken convention, each naming the op.
pub fn check(m: &ModelDef) -> Result<(), Vec<String>> {
    let mut errs = vec![];
    let Some(g) = m.graph.first() else { return Err(vec!["the model has no graph".into()]) };
    let mut names = HashSet::new();
    let mut outputs: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut data_indices = vec![];
    let mut net_outputs = 0;
    for op in &g.op {
        if !names.insert(op.name.as_str()) {
            errs.push(format!("op name `{}` is used twice", op.name));
        }
        // Edges: data inputs reference earlier ops' outputs; one descriptor per data input.
        let data_inputs: Vec<&String> = op.input.iter().filter(|e| !e.ends_with(":-1")).collect();
        // A Data op has no input edge but describes its input (ATC reads input_desc[0]).
        if op.r#type != "Data" && data_inputs.len() != op.input_desc.len() {
            errs.push(format!("op `{}`: {} data inputs but {} input descriptors", op.name, data_inputs.len(), op.input_desc.len()));
        }
        for e in data_inputs.iter().filter(|e| !e.is_empty()) {
            let ok =
                e.rsplit_once(':').and_then(|(src, i)| Some((outputs.get(src)?, i.parse::<usize>().ok()?))).is_some_and(|(&n, i)| i < n);
            if !ok {
                errs.push(format!("op `{}`: input `{e}` is not an output of an earlier op", op.name));
            }
        }
        for d in &op.input_desc {
            desc_errors(op, d, "input", &mut errs);
        }
        for d in &op.output_desc {
            desc_errors(op, d, "output", &mut errs);
        }
        // Lists carry their type; GE drops a list attr with none.
        let mut attrs: Vec<(String, &super::proto::AttrDef)> = op.attr.iter().map(|(k, v)| (k.clone(), v)).collect();
        for d in op.input_desc.iter().chain(&op.output_desc) {
            attrs.extend(d.attr.iter().map(|(k, v)| (format!("{}.{k}", d.name), v)));
        }
        for (k, v) in attrs {
            match &v.value {
                None => errs.push(format!("op `{}`: attr `{k}` has no value", op.name)),
                Some(super::proto::attr_def::Value::List(l)) if l.val_type == ListValueType::None as i32 => {
                    errs.push(format!("op `{}`: list attr `{k}` has no val_type (GE would drop it)", op.name))
                }
                _ => {}
            }
        }
        for which in ["input", "output"] {
            let want: Vec<String> =
                if which == "input" { &op.input_desc } else { &op.output_desc }.iter().map(|d| d.name.clone()).collect();
            match op.attr.get(&format!("_{which}_name_key")).and_then(Attr::decode) {
                Some(Attr::ListStr(v)) if v == want => {}
                _ => errs.push(format!("op `{}`: _{which}_name_key does not list its {which} ports {want:?}", op.name)),
            }
        }
        match op.r#type.as_str() {
            "Data" => match op.attr.get("index").and_then(Attr::decode) {
                Some(Attr::Int(i)) if op.input_desc.len() == 1 && op.output_desc.len() == 1 => data_indices.push(i),
                _ => errs.push(format!("Data `{}` needs an `index` and one input and one output descriptor", op.name)),
            },
            "Const" if !matches!(op.attr.get("value").and_then(Attr::decode), Some(Attr::Tensor(t)) if t.desc.is_some()) => {
                errs.push(format!("Const `{}` has no `value` tensor", op.name));
            }
            // An external weight: its file, and the shape and dtype it holds, which must be its
            // output's.
            "FileConstant" => {
                let out = op.output_desc.first();
                let dims = out.and_then(|d| d.shape.as_ref()).map(|s| s.dim.clone()).unwrap_or_default();
                let cpp = out.and_then(|d| from_proto(d.dtype)).and_then(super::dtype::ge_type).map(|g| g.cpp);
                let ok = matches!(op.attr.get("file_path").and_then(Attr::decode), Some(Attr::Str(p)) if !p.is_empty())
                    && op.attr.get("shape").and_then(Attr::decode) == Some(Attr::ListInt(dims))
                    && cpp.is_some_and(|c| op.attr.get("dtype").and_then(Attr::decode) == Some(Attr::Type(c)))
                    && !op.attr.contains_key("value");
                if !ok {
                    errs.push(format!("FileConstant `{}`: file_path, shape and dtype must name its file and describe its output", op.name));
                }
            }
            "NetOutput" => net_outputs += 1,
            "Cast" => match op.attr.get("dst_type").and_then(Attr::decode) {
                // dst_type is a C++ ge::DataType: the output's proto dtype must be the same type.
                Some(Attr::Int(t)) if from_cpp(t).is_some() && from_cpp(t) == op.output_desc.first().and_then(|d| from_proto(d.dtype)) => {}
                _ => errs.push(format!("Cast `{}`: dst_type is not the C++ number of its output's dtype", op.name)),
            },
            _ => {}
        }
        outputs.insert(op.name.as_str(), op.output_desc.len());
    }
    data_indices.sort_unstable();
    if data_indices.iter().enumerate().any(|(i, &d)| d != i as i64) {
        errs.push(format!("Data indices {data_indices:?} are not 0..{}", data_indices.len()));
    }
    if net_outputs != 1 {
        errs.push(format!("{net_outputs} NetOutput ops, not one"));
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}
