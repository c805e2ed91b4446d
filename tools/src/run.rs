//! Running: `kiln run` (the interpreter, a .kiln artifact on the GPU, a 910b bundle in the
//! simulator), `kiln compare`, `kiln conformance`, and the .npy inputs and outputs they share.

use crate::cli::Runner;
use crate::gpu;
use anyhow::{anyhow, bail, Context, Result};
use kiln_driver::{conformance, npy, Model, Target};
use kiln_ir::{interp, Graph, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub(crate) fn read_inputs(inputs: &[String]) -> Result<HashMap<String, Tensor>> {
    let mut given: HashMap<String, Tensor> = HashMap::new();
    for spec in inputs {
        let (name, file) = spec.split_once('=').ok_or_else(|| anyhow!("--input `{spec}`: expected NAME=FILE.npy"))?;
        given.insert(name.to_string(), read_npy(Path::new(file))?);
    }
    Ok(given)
}

pub(crate) fn write_outputs(out_dir: &Path, outs: &[(String, Tensor)]) -> Result<()> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for (name, t) in outs {
        let file: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || "_-.".contains(c) { c } else { '_' }).collect();
        let path = out_dir.join(format!("{file}.npy"));
        std::fs::write(&path, npy::write(t)).with_context(|| format!("writing {}", path.display()))?;
        println!("{name}: {}{:?} -> {}", t.dtype(), t.dims(), path.display());
    }
    Ok(())
}

pub(crate) fn run_artifact(model: &Path, inputs: &[String], out_dir: &Path, cuda_graph: bool) -> Result<()> {
    let mut s = kiln_runtime::Session::load(model).with_context(|| format!("loading {}", model.display()))?;
    s.set_cuda_graph(cuda_graph);
    let host = gpu::order_inputs(s.inputs(), read_inputs(inputs)?)?;
    let outs = s.run(&host)?;
    let named = s.outputs().iter().zip(&outs).map(|(i, h)| Ok((i.name.clone(), gpu::from_host(h)?))).collect::<Result<Vec<_>>>()?;
    write_outputs(out_dir, &named)
}

pub(crate) fn run(
    model: &Model,
    inputs: &[String],
    values: &kiln_driver::Values,
    out_dir: &Path,
    target: Runner,
    (precision, drift, quant): (Option<kiln_ir::DType>, bool, &crate::quant::QuantArgs),
) -> Result<()> {
    if target != Runner::Ref {
        bail!("`kiln run MODEL.onnx` runs the reference interpreter only; compile with `kiln compile --target TARGET -o OUT` and run what it writes");
    }
    let mut given = read_inputs(inputs)?;
    let shapes = given.iter().map(|(n, t)| (n.clone(), t.dims().to_vec())).collect();
    let g = model.load_with(&shapes, values)?;
    let mut args = vec![];
    for &i in &g.inputs {
        let name = &g.value(i).name;
        args.push(
            given
                .remove(name)
                .ok_or_else(|| anyhow!("missing --input for model input `{name}` ({}{})", g.value(i).ty.dtype, g.value(i).ty.shape))?,
        );
    }
    if let Some(extra) = given.keys().next() {
        bail!("--input `{extra}`: the model has no such input");
    }
    let mut g = g;
    crate::quant::apply(&mut g, quant)?;
    let g0 = g.clone();
    kiln_driver::convert_precision(&mut g, precision)?;
    if drift && precision.is_some() {
        print_drift(&g0, &g, &args)?;
    }
    let outs = interp::run(&g, args)?;
    let named: Vec<(String, Tensor)> = g.outputs.iter().zip(outs).map(|(&o, t)| (g.value(o).name.clone(), t)).collect();
    write_outputs(out_dir, &named)
}

/// The nodes of `reduced` whose first output drifts from the same node's in `full` (cosine
/// below 0.999), in execution order, at most 20.
pub(crate) fn print_drift(full: &Graph, reduced: &Graph, args: &[Tensor]) -> Result<()> {
    let mut want: HashMap<String, Tensor> = HashMap::new();
    interp::run_observed(full, args.to_vec(), &mut |i, outs| {
        if let Some(Some(t)) = outs.first() {
            want.insert(full.nodes[i].name.clone(), t.clone());
        }
    })?;
    let mut rows = vec![];
    interp::run_observed(reduced, args.to_vec(), &mut |i, outs| {
        let n = &reduced.nodes[i];
        if let (Some(Some(t)), Some(w)) = (outs.first(), want.get(&n.name)) {
            if t.dtype().is_float() && t.numel() == w.numel() && rows.len() < 20 {
                let e = kiln_driver::compare::errors(&t.to_f64(), &w.to_f64());
                if e.cosine < 0.999 {
                    rows.push(format!("{:<48} {:<20} {:>10.3e} {:>12.9}", n.name, n.op.display_name(), e.max_abs, e.cosine));
                }
            }
        }
    })?;
    if rows.is_empty() {
        println!("no node's reduced-precision values drift below cosine 0.999");
    } else {
        println!("{:<48} {:<20} {:>10} {:>12}", "node (first drifting, in order)", "op", "max abs", "cosine");
        rows.iter().for_each(|r| println!("{r}"));
    }
    Ok(())
}

pub(crate) fn read_npy(p: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    npy::read(&bytes).map_err(|e| anyhow!("{}: {e}", p.display()))
}

pub(crate) fn compare(got: &Path, want: &Path) -> Result<()> {
    let (g, w) = (read_npy(got)?, read_npy(want)?);
    if g.dims() != w.dims() {
        bail!("{} has shape {:?}, {} has {:?}: nothing to compare", got.display(), g.dims(), want.display(), w.dims());
    }
    let e = kiln_driver::compare::errors(&g.to_f64(), &w.to_f64());
    println!("max abs {:.3e}, max rel {:.3e}, cosine {:.9}", e.max_abs, e.max_rel, e.cosine);
    kiln_driver::compare::check(&g, &w).map_err(|m| anyhow!("{} differs from {}: {m}", got.display(), want.display()))?;
    println!("match (within the {} tolerance)", w.dtype());
    Ok(())
}

/// Runs a 910b bundle's graph.air in the GE-graph simulator.
pub(crate) fn run_bundle(dir: &Path, inputs: &[String], out_dir: &Path) -> Result<()> {
    let b = kiln_ascend::sim::Bundle::load(dir).with_context(|| format!("loading the 910b bundle {}", dir.display()))?;
    let mut given = read_inputs(inputs)?;
    let mut args = vec![];
    for name in &b.inputs {
        args.push(given.remove(name).ok_or_else(|| anyhow!("missing --input for bundle input `{name}`"))?);
    }
    if let Some(extra) = given.keys().next() {
        bail!("--input `{extra}`: the bundle has no such input");
    }
    let outs = b.run(&args, false).context("simulating graph.air")?;
    write_outputs(out_dir, &b.outputs.iter().cloned().zip(outs).collect::<Vec<_>>())
}

pub(crate) fn conformance_cmd(suite: &Path, target: Runner, json: bool, filter: Option<&str>, cases: Option<&Path>) -> Result<()> {
    let listed: Option<std::collections::HashSet<String>> = match cases {
        Some(p) => Some(
            std::fs::read_to_string(p).with_context(|| format!("--cases {}", p.display()))?.lines().map(|l| l.trim().to_string()).collect(),
        ),
        None => None,
    };
    let dirs: Vec<PathBuf> = conformance::case_dirs(suite, filter)
        .map_err(|e| anyhow!(e))?
        .into_iter()
        .filter(|d| listed.as_ref().is_none_or(|l| d.file_name().is_some_and(|n| l.contains(n.to_string_lossy().as_ref()))))
        .collect();
    if dirs.is_empty() {
        bail!(
            "no test cases under {}{}: a case is a directory with model.onnx and test_data_set_*/ (the onnx wheel's onnx/backend/test/data/node)",
            suite.display(),
            if filter.is_some() || cases.is_some() { " that --filter / --cases select" } else { "" }
        );
    }
    let mut exec: Box<conformance::Executor> = match target {
        Runner::Ref => Box::new(conformance::interpreter),
        Runner::Sim910B => Box::new(kiln_driver::sim::execute),
        Runner::Sm90 | Runner::Sm80 => {
            // Fail once, up front, where there is no GPU.
            kiln_runtime::check_device(0).context("kiln conformance --target sm_90 runs the cases on the GPU")?;
            let t = if target == Runner::Sm80 { Target::Sm80 } else { Target::Sm90 };
            Box::new(move |g: &Graph, inputs: Vec<Tensor>| gpu::run_case(g, inputs, t))
        }
    };
    let mut s = conformance::Summary::default();
    for d in dirs {
        s.add(conformance::run_case_with(&d, exec.as_mut()));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        for c in &s.cases {
            if c.status != conformance::Status::Passed {
                println!("{:<60} {:?}: {}", c.name, c.status, c.detail.lines().next().unwrap_or(""));
            }
        }
        println!("{s}");
    }
    Ok(())
}
