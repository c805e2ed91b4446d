//! `kiln compile` (the model to an artifact, a bundle or IR text, or what `--emit` prints) and
//! `kiln ops` (how each op runs on a target).

use anyhow::{anyhow, bail, Context, Result};
use kiln_driver::{EmitOptions, Model, Output, Target};
use kiln_ir::Graph;
use std::collections::HashMap;
use std::path::Path;

/// `kiln ops`: how each op of the optimized graph runs on the target (kernel, view, the CANN
/// ops it becomes ...), and every node the target cannot run with the reason.
pub(crate) fn ops(
    model: &Model,
    target: Target,
    json: bool,
    shapes: &HashMap<String, Vec<usize>>,
    values: &kiln_driver::Values,
) -> Result<()> {
    let backend = kiln_driver::backend(target)?;
    let g = model.load_with(shapes, values)?;
    let r = kiln_driver::support(&g, backend)?;
    if json {
        let ops: Vec<serde_json::Value> = r
            .ops
            .iter()
            .map(|o| serde_json::json!({"op": o.op, "count": o.count, "status": o.status, "lowered_to": o.lowered_to, "generated": o.generated}))
            .collect();
        let unsupported: Vec<serde_json::Value> =
            r.unsupported.iter().map(|u| serde_json::json!({"node": u.node, "op": u.op, "reason": u.reason})).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"target": target.name(), "ops": ops, "unsupported": unsupported}))?
        );
        if !r.unsupported.is_empty() {
            bail!("{} node(s) cannot run on {target}", r.unsupported.len());
        }
        return Ok(());
    }
    for o in &r.ops {
        let named: Vec<String> =
            o.lowered_to.iter().map(|t| if o.generated.contains(t) { format!("{t} (kiln's kernel)") } else { t.clone() }).collect();
        let to = if named.is_empty() { String::new() } else { format!(": {}", named.join(", ")) };
        println!("{:<28} {:>5}  {}{to}", o.op, o.count, o.status);
    }
    for u in &r.unsupported {
        println!("{:<28} {:>5}  unsupported: node `{}`: {}", u.op, 1, u.node, u.reason);
    }
    if r.unsupported.is_empty() {
        println!("every op runs on {target}");
    } else {
        let mut kinds: Vec<&str> = vec![];
        for u in &r.unsupported {
            if !kinds.contains(&u.op.as_str()) {
                kinds.push(&u.op);
            }
        }
        println!("unsupported on {target}: {} node(s): {}", r.unsupported.len(), kinds.join(", "));
        bail!("{} node(s) cannot run on {target}", r.unsupported.len());
    }
    Ok(())
}

/// Where `compile` writes its artifact, and whether it strips the weights.
pub(crate) struct Out<'a> {
    pub path: Option<&'a Path>,
    pub strip_weights: bool,
    pub external_weights: bool,
}

pub(crate) fn compile(
    model: &Model,
    target: Option<Target>,
    out: Out,
    emit: Option<&str>,
    report: Option<&Path>,
    shapes: &HashMap<String, Vec<usize>>,
    values: &kiln_driver::Values,
    (precision, quant): (Option<kiln_ir::DType>, &crate::quant::QuantArgs),
) -> Result<()> {
    let started = std::time::Instant::now();
    let (output, strip, external) = (out.path, out.strip_weights, out.external_weights);
    let target = match (target, emit, output) {
        (Some(t), ..) => t,
        (None, Some(_), _) => Target::Ref,
        (None, None, Some(o)) => bail!(
            "-o {} needs --target: sm_90 or sm_80 (a .kiln artifact), 910b (a bundle directory), or ref (the optimized IR as text, e.g. -o model.ir)",
            o.display()
        ),
        (None, None, None) => bail!("give --target and -o OUT (or --emit ir|opt-ir|... to print)"),
    };
    if strip && (emit.is_some() || !matches!(target, Target::Sm90 | Target::Sm80)) {
        bail!("--strip-weights applies to the artifact that --target sm_90 or sm_80 writes with -o");
    }
    if external && (emit.is_some() || target != Target::Ascend910B) {
        bail!("--external-weights applies to the bundle that --target 910b writes with -o");
    }
    let backend = kiln_driver::backend(target)?;
    let mut g = model.load_with(shapes, values)?;
    tracing::info!("read {}: {} nodes, {:.0} ms", model.display(), g.nodes.len(), started.elapsed().as_secs_f64() * 1e3);
    crate::quant::apply(&mut g, quant)?;
    kiln_driver::convert_precision(&mut g, precision)?;
    if let Some(e) = emit.filter(|e| *e == "ir" || e.starts_with("ir-after=")) {
        if report.is_some() {
            bail!("--report needs the optimizer: use --emit opt-ir, --emit memory-plan or -o");
        }
        if let Some(pass) = e.strip_prefix("ir-after=") {
            kiln_passes::run_pipeline(&mut g, Some(pass))?;
        }
        return emitted(output, &kiln_ir::text::print(&g));
    }
    if let Some(text) = emit.filter(|e| !["opt-ir", "memory-plan"].contains(e) && !backend.texts().contains(e)) {
        let emitters: Vec<&str> =
            Target::ALL.iter().filter(|&&t| kiln_driver::backend(t).is_ok_and(|b| b.texts().contains(&text))).map(|t| t.name()).collect();
        if !emitters.is_empty() {
            bail!("--emit {text} needs --target {}", emitters.join(" or "));
        }
        let texts: String = backend.texts().iter().map(|t| format!(", `{t}`")).collect();
        bail!("--emit {text}: expected `ir`, `ir-after=PASS` (passes: {}), `opt-ir`, `memory-plan`{texts}", kiln_passes::PASSES.join(", "));
    }
    let quantized = |g: &Graph| g.nodes.iter().filter(|n| matches!(n.op, kiln_ir::Op::MatMulQ8 {} | kiln_ir::Op::MatMulQ4 { .. })).count();
    let before = quantized(&g);
    let (g, rep) = kiln_driver::optimize_for(&g, backend, started)?;
    if quantized(&g) < before {
        println!(
            "note: {} of {before} quantized products run as float products on {target} (no int8/int4 kernel for them yet): the quantized model's values, not its speed",
            before - quantized(&g)
        );
    }
    let opts = EmitOptions { precision, native: emit.is_none(), external_weights: external };
    let compiling = || format!("compiling for {target}");
    match emit {
        Some("opt-ir") => emitted(output, &kiln_ir::text::print(&g))?,
        Some("memory-plan") if output.is_some() => bail!("--emit memory-plan prints a table; -o does not apply"),
        Some("memory-plan") => print_memory_plan(&g)?,
        Some(text) => emitted(output, &backend.emit_text(&g, text, &opts).with_context(compiling)?)?,
        None => {
            let out = output.ok_or_else(|| anyhow!("-o OUT is required without --emit"))?;
            let t = std::time::Instant::now();
            let mut e = backend.emit(&g, &opts).with_context(compiling)?;
            tracing::info!("code for {target}: {}, {:.0} ms", e.summary, t.elapsed().as_secs_f64() * 1e3);
            if let (true, Output::Artifact(a)) = (strip, &mut e.output) {
                let s = kiln_driver::strip_weights(a, model)?;
                let total = a.manifest.weights_bytes;
                println!("stripped {} weights ({} of {total} bytes), referenced in {}", s.weights, s.bytes, s.files.join(", "));
                e.summary = a.summary();
            }
            let bytes = kiln_driver::write(&e.output, out)?;
            match e.output {
                Output::Artifact(_) => println!("wrote {} ({bytes} bytes: {})", out.display(), e.summary),
                _ => println!("wrote {} ({})", out.display(), e.summary),
            }
            for n in &e.notes {
                eprintln!("note: {n}");
            }
        }
    }
    write_report(report, &rep)
}

pub(crate) fn write_report(path: Option<&Path>, rep: &kiln_driver::Report) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(&rep.to_json())?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

pub(crate) fn print_memory_plan(g: &Graph) -> Result<()> {
    let plan = kiln_passes::plan_memory(g)?;
    plan.check().map_err(|e| anyhow!("internal error: invalid memory plan: {e}"))?;
    println!("{:>12} {:>12} {:>6} {:>6}  values", "offset", "bytes", "first", "last");
    for b in &plan.buffers {
        let names: Vec<&str> = b.values.iter().map(|&v| g.value(v).name.as_str()).collect();
        println!("{:>12} {:>12} {:>6} {:>6}  {}", b.offset, b.bytes, b.first, b.last, names.join(", "));
    }
    let ratio = plan.arena_bytes as f64 / plan.lower_bound_bytes.max(1) as f64;
    println!(
        "arena {} bytes, liveness lower bound {} bytes ({ratio:.3}x), {} buffers for {} nodes",
        plan.arena_bytes,
        plan.lower_bound_bytes,
        plan.buffers.len(),
        g.nodes.len()
    );
    Ok(())
}

/// What `--emit` made: to stdout, or to the file -o names.
pub(crate) fn emitted(output: Option<&Path>, text: &str) -> Result<()> {
    match output {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
            println!("wrote {} ({} bytes)", p.display(), text.len());
        }
        None => print!("{text}"),
    }
    Ok(())
}
