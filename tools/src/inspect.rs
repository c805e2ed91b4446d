//! `kiln inspect`: a model (inputs, outputs, op histogram, parameters), or what kiln wrote: a
//! compiled `.kiln` artifact (target, precision, inputs and outputs, kernels and launches,
//! memory, sections) or a 910b bundle (inputs and outputs, the GE ops of graph.air, its AscendC
//! kernels).

use anyhow::{Context, Result};
use kiln_artifact::artifact::{Artifact, TensorInfo};
use kiln_driver::Model;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

fn io(t: &[TensorInfo]) -> Vec<serde_json::Value> {
    t.iter().map(|t| serde_json::json!({"name": t.name, "dtype": t.dtype.name(), "shape": t.dims})).collect()
}

pub fn artifact(path: &Path, json: bool) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let a = Artifact::parse(&bytes).with_context(|| format!("reading the artifact {}", path.display()))?;
    let m = &a.manifest;
    let kernels: BTreeSet<&str> = m.kernels.iter().map(|k| k.name.as_str()).collect();
    let sections: Vec<(String, usize)> = a.sections.iter().map(|(n, b)| (n.clone(), b.len())).collect();
    let referenced = m.weights.iter().filter(|w| !matches!(w.stored, kiln_artifact::artifact::Stored::Section { .. })).count();
    if json {
        let v = serde_json::json!({
            "kind": "artifact", "producer": m.producer, "target": m.target, "precision": m.precision,
            "inputs": io(&m.inputs), "outputs": io(&m.outputs), "kernels": kernels.len(), "launches": m.launches.len(),
            "arena_bytes": m.arena_bytes, "weights_bytes": m.weights_bytes, "weights": m.weights.len(),
            "weights_referenced": referenced, "file_bytes": bytes.len(),
            "sections": sections.iter().map(|(n, b)| serde_json::json!({"name": n, "bytes": b})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("artifact: {} ({} bytes, written by {})", path.display(), bytes.len(), m.producer);
    println!("target: {}, precision: {}", m.target, m.precision);
    for (title, list) in [("inputs", &m.inputs), ("outputs", &m.outputs)] {
        println!("{title}:");
        for t in list {
            println!("  {}: {}{:?}", t.name, t.dtype, t.dims);
        }
    }
    println!("kernels: {} ({} launches)", kernels.len(), m.launches.len());
    println!(
        "arena: {} bytes; weights: {} tensors, {} bytes ({referenced} referenced in the model's files)",
        m.arena_bytes,
        m.weights.len(),
        m.weights_bytes
    );
    println!("sections:");
    for (n, b) in sections {
        println!("  {n:<10} {b} bytes");
    }
    Ok(())
}

pub fn bundle(dir: &Path, json: bool) -> Result<()> {
    let b = kiln_ascend::sim::Bundle::load(dir).with_context(|| format!("loading the 910b bundle {}", dir.display()))?;
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for g in &b.model.graph {
        for o in &g.op {
            *ops.entry(o.r#type.as_str()).or_default() += 1;
        }
    }
    let custom: Vec<&str> = ops.keys().copied().filter(|t| t.starts_with("KilnFused")).collect();
    if json {
        let v = serde_json::json!({"kind": "910b bundle", "inputs": b.inputs, "outputs": b.outputs, "ops": ops, "ascendc_kernels": custom});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("910b bundle: {}", dir.display());
    println!("inputs: {}", b.inputs.join(", "));
    println!("outputs: {}", b.outputs.join(", "));
    println!("GE ops: {} ({} AscendC kernels)", ops.values().sum::<usize>(), custom.len());
    for (t, n) in ops {
        println!("  {t:<28} {n}");
    }
    Ok(())
}

pub(crate) fn model(model: &Model, json: bool, shapes: &HashMap<String, Vec<usize>>, values: &kiln_driver::Values) -> Result<()> {
    let g = model.load_with(shapes, values)?;
    let io = |ids: &[kiln_ir::ValueId]| -> Vec<serde_json::Value> {
        ids.iter()
            .map(|&i| {
                let v = g.value(i);
                // Known dims as numbers, symbolic ones by name.
                let shape: Vec<serde_json::Value> =
                    v.ty.shape
                        .0
                        .iter()
                        .map(|d| d.known().map_or_else(|| serde_json::Value::from(d.to_string()), serde_json::Value::from))
                        .collect();
                serde_json::json!({"name": v.name, "dtype": v.ty.dtype.name(), "shape": shape})
            })
            .collect()
    };
    let mut syms: Vec<String> = vec![];
    for &i in &g.inputs {
        for s in g.value(i).ty.shape.symbols() {
            if !syms.iter().any(|x| x == s) {
                syms.push(s.to_string());
            }
        }
    }
    let (params, bytes) = g.parameter_count();
    let hist = g.op_histogram();
    if json {
        let v = serde_json::json!({
            "inputs": io(&g.inputs), "outputs": io(&g.outputs), "ops": hist, "nodes": g.nodes.len(),
            "parameters": params, "parameter_bytes": bytes, "symbolic_dims": syms,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("model: {}", model.display());
    for (title, ids) in [("inputs", &g.inputs), ("outputs", &g.outputs)] {
        println!("{title}:");
        for &i in ids.iter() {
            let v = g.value(i);
            println!("  {}: {}{}", v.name, v.ty.dtype, v.ty.shape);
        }
    }
    println!("symbolic dims: {}", if syms.is_empty() { "none".to_string() } else { syms.join(", ") });
    println!("parameters: {params} ({bytes} bytes)");
    println!("nodes: {}", g.nodes.len());
    for (op, n) in hist {
        println!("  {op:<28} {n}");
    }
    Ok(())
}
