//! On the GPU: `kiln verify` (every kernel's output against the interpreter) and `kiln bench`.

use crate::gpu;
use crate::run::read_inputs;
use anyhow::{anyhow, bail, Context, Result};
use kiln_driver::{Model, Target};
use kiln_ir::{interp, Graph, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Seeded random inputs: floats in [-1, 1), integers in [0, 10), bools alternating.
pub(crate) fn random_inputs(g: &Graph, given: &mut HashMap<String, Tensor>) -> Result<Vec<Tensor>> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    g.inputs
        .iter()
        .map(|&i| {
            let v = g.value(i);
            if let Some(t) = given.remove(&v.name) {
                return Ok(t);
            }
            let dims = v.ty.shape.as_fixed().ok_or_else(|| anyhow!("input `{}` has symbolic dims: give --input-shape", v.name))?;
            let n: usize = dims.iter().product();
            let vals: Vec<f64> = (0..n)
                .map(|_| {
                    let r = next();
                    if v.ty.dtype.is_float() {
                        (r % 2_000_000) as f64 / 1e6 - 1.0
                    } else if v.ty.dtype == kiln_ir::DType::Bool {
                        (r % 2) as f64
                    } else {
                        (r % 10) as f64
                    }
                })
                .collect();
            Ok(Tensor::new(dims, kiln_ir::Data::from_f64(v.ty.dtype, &vals))?)
        })
        .collect()
}

pub(crate) fn verify(
    model: &Model,
    target: Target,
    inputs: &[String],
    shapes: &HashMap<String, Vec<usize>>,
    values: &kiln_driver::Values,
    precision: Option<kiln_ir::DType>,
) -> Result<()> {
    let started = std::time::Instant::now();
    if !matches!(target, Target::Sm90 | Target::Sm80) {
        bail!("kiln verify runs on the GPU: --target sm_90 or sm_80");
    }
    let mut given = read_inputs(inputs)?;
    let mut shapes = shapes.clone();
    for (n, t) in &given {
        shapes.insert(n.clone(), t.dims().to_vec());
    }
    let g0 = model.load_with(&shapes, values)?;
    let args = random_inputs(&g0, &mut given)?;
    if let Some(extra) = given.keys().next() {
        bail!("--input `{extra}`: the model has no such input");
    }
    let mut reduced = g0.clone();
    kiln_driver::convert_precision(&mut reduced, precision)?;
    let (g, _) = kiln_driver::optimize(&reduced, target, started)?;
    let mut s = kiln_runtime::Session::from_artifact(gpu::artifact(&g, target, precision)?, 0)?;
    let rows = gpu::verify_kernels(&mut s, &g, &args)?;
    println!("{:<24} {:<20} {:<48} {:>10} {:>10} {:>12}", "kernel", "op", "node", "max abs", "max rel", "cosine");
    for r in rows.iter() {
        let node: String = r.node.chars().rev().take(48).collect::<Vec<_>>().into_iter().rev().collect();
        match &r.errors {
            Some(e) => println!("{:<24} {:<20} {:<48} {:>10.3e} {:>10.3e} {:>12.9}", r.kernel, r.op, node, e.max_abs, e.max_rel, e.cosine),
            None => println!("{:<24} {:<20} {:<48} {:>10}", r.kernel, r.op, node, "-"),
        }
    }
    // The model's outputs against the interpreter on the source graph.
    let want = interp::run(&g0, args.clone())?;
    let host = args.iter().map(gpu::to_host).collect::<Result<Vec<_>>>()?;
    let got = s.run(&host)?;
    let (mut worst, mut worst_cos): (f64, f64) = (0.0, 1.0);
    for ((info, h), w) in s.outputs().to_vec().iter().zip(&got).zip(&want) {
        let gt = gpu::from_host(h)?;
        let e = kiln_driver::compare::errors(&gt.to_f64(), &w.to_f64());
        let scale = w.to_f64().iter().fold(0f64, |m, x| m.max(x.abs())).max(1e-30);
        worst = worst.max(e.max_abs / scale);
        worst_cos = worst_cos.min(e.cosine);
        println!(
            "output {}: max abs {:.3e}, max rel {:.3e}, max abs / max |ref| {:.3e}, cosine {:.9}",
            info.name,
            e.max_abs,
            e.max_rel,
            e.max_abs / scale,
            e.cosine
        );
    }
    println!("worst output error relative to its scale: {worst:.3e}; lowest cosine {worst_cos:.9}");
    Ok(())
}

pub(crate) fn bench(model: &Path, iters: usize, json: bool, per_kernel: bool) -> Result<()> {
    let mut s = kiln_runtime::Session::load(model).with_context(|| format!("loading {}", model.display()))?;
    let mut g = Graph::new("inputs");
    for i in s.inputs() {
        let dt = gpu::dtype(i.dtype);
        g.add_input(i.name.clone(), kiln_ir::TensorType::fixed(dt, &i.dims.iter().map(|&d| d as usize).collect::<Vec<_>>()));
    }
    let args = random_inputs(&g, &mut HashMap::new())?;
    let host = args.iter().map(gpu::to_host).collect::<Result<Vec<_>>>()?;
    let plain = s.bench(&host, iters)?;
    if per_kernel {
        print_profile(&s.manifest().clone(), &s.profile(&host, iters)?);
    }
    s.set_cuda_graph(true);
    let graph = s.bench(&host, iters)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"model": model.display().to_string(), "iters": iters, "median_ms": plain, "median_ms_cuda_graph": graph, "launches": s.manifest().launches.len()})
        );
    } else {
        println!(
            "{}: median {plain:.4} ms, with CUDA graph {graph:.4} ms ({iters} iterations, {} launches)",
            model.display(),
            s.manifest().launches.len()
        );
    }
    Ok(())
}

/// Time by kernel kind (op and kernel family), then the ten slowest launches.
pub(crate) fn print_profile(m: &kiln_runtime::Manifest, ms: &[f64]) {
    let total: f64 = ms.iter().sum();
    let kind = |i: usize| {
        let k = &m.kernels[m.launches[i].kernel as usize];
        // k12_matmulfused_tc -> matmulfused_tc
        k.name.split_once('_').map_or(k.name.clone(), |(_, rest)| rest.to_string())
    };
    let mut by: std::collections::BTreeMap<String, (f64, usize)> = std::collections::BTreeMap::new();
    for (i, &t) in ms.iter().enumerate() {
        let e = by.entry(kind(i)).or_default();
        e.0 += t;
        e.1 += 1;
    }
    let mut rows: Vec<_> = by.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    println!("{:<28} {:>10} {:>8} {:>7}", "kernel kind", "ms", "launches", "share");
    for (k, (t, n)) in &rows {
        println!("{k:<28} {t:>10.4} {n:>8} {:>6.1}%", 100.0 * t / total.max(1e-12));
    }
    let mut order: Vec<usize> = (0..ms.len()).collect();
    order.sort_by(|&a, &b| ms[b].total_cmp(&ms[a]));
    println!("slowest launches:");
    for &i in order.iter().take(10) {
        let l = &m.launches[i];
        let k = &m.kernels[l.kernel as usize];
        println!("  {:<28} {:>9.4} ms  grid {:?} block {:?}  {}", k.name, ms[i], l.grid, l.block, k.node);
    }
    println!("sum of launches: {total:.4} ms");
}
