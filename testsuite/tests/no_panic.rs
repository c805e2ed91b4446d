//! Model input never panics the compiler: every node-suite model is imported and run with
//! input shapes it was not made for (each dim grown by one; every dim one; an extra leading
//! axis). Inference or the run may fail with an error, but never with a panic or an
//! `OpError::Internal` (the error a caught panic inside an op becomes).

use kiln_frontend::onnx::{import_file, ImportOptions};
use kiln_ir::{interp, Data, OpError, Tensor};
use kiln_testsuite::suite::onnx_node_suite;
use std::panic::{catch_unwind, AssertUnwindSafe};

fn filled(dtype: kiln_ir::DType, dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|i| (i % 7) as f64 - 3.0).collect();
    Tensor::new(dims.to_vec(), Data::from_f64(dtype, &v)).unwrap_or_else(|_| Tensor::zeros(dtype, dims.to_vec()))
}

#[test]
fn suite_models_with_wrong_input_shapes_never_panic() {
    let suite = onnx_node_suite();
    let mut dirs: Vec<_> = std::fs::read_dir(&suite).expect("read suite").filter_map(|e| e.ok().map(|e| e.path())).collect();
    dirs.sort();
    let mut panics = vec![];
    let (mut runs, mut evaluated) = (0, 0);
    for d in &dirs {
        let Ok(m) = import_file(&d.join("model.onnx"), &ImportOptions::default()) else { continue };
        let declared: Vec<(String, kiln_ir::DType, Vec<usize>)> = m
            .graph
            .inputs
            .iter()
            .map(|&i| {
                let v = m.graph.value(i);
                (v.name.clone(), v.ty.dtype, v.ty.shape.0.iter().map(|d| d.known().unwrap_or(2)).collect())
            })
            .collect();
        for variant in 0..3 {
            let result = catch_unwind(AssertUnwindSafe(|| {
                let mut g = m.graph.clone();
                let mut inputs = vec![];
                for (&id, (_, dtype, dims)) in g.inputs.clone().iter().zip(&declared) {
                    let dims: Vec<usize> = match variant {
                        0 => dims.iter().map(|&d| (d + 1).min(64)).collect(),
                        1 => vec![1; dims.len()],
                        _ => std::iter::once(2).chain(dims.iter().copied()).collect(),
                    };
                    g.values[id.0 as usize].ty = kiln_ir::TensorType::fixed(*dtype, &dims);
                    inputs.push(filled(*dtype, &dims));
                }
                // Inference may reject the new shapes; the interpreter must cope either way.
                if let Err(e) = g.reinfer() {
                    if matches!(e.source, OpError::Internal(_)) {
                        return Err(e.to_string());
                    }
                }
                match interp::run(&g, inputs) {
                    Ok(_) => Ok(true),
                    Err(e @ interp::RunError::Node { source: OpError::Internal(_), .. }) => Err(e.to_string()),
                    Err(_) => Ok(false),
                }
            }));
            runs += 1;
            match result {
                Ok(Ok(ok)) => evaluated += usize::from(ok),
                Ok(Err(internal)) => panics.push(format!("{} (variant {variant}): {internal}", d.display())),
                Err(_) => panics.push(format!("{} (variant {variant}): panic", d.display())),
            }
        }
    }
    assert!(runs > 3000, "only {runs} runs");
    println!("{runs} perturbed runs, {evaluated} evaluated to the end");
    assert!(evaluated > 1000, "only {evaluated} perturbed runs got through the interpreter");
    assert!(panics.is_empty(), "{} panics:\n{}", panics.len(), panics.join("\n"));
}
