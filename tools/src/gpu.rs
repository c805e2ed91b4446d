//! The GPU subcommands: run a `model.kiln`, verify a model kernel by kernel against the
//! interpreter, benchmark an artifact.

use anyhow::{anyhow, bail, Context, Result};
use kiln_driver::{compare, EmitOptions, Output, Target};
use kiln_ir::{DType, Graph, Tensor};
use kiln_runtime::{ElemType, HostTensor, Session, TensorInfo};

/// The IR dtype of a runtime element type.
pub fn dtype(e: ElemType) -> DType {
    match e {
        ElemType::F32 => DType::F32,
        ElemType::F16 => DType::F16,
        ElemType::Bf16 => DType::BF16,
        ElemType::F64 => DType::F64,
        ElemType::I8 => DType::I8,
        ElemType::U8 => DType::U8,
        ElemType::I16 => DType::I16,
        ElemType::U16 => DType::U16,
        ElemType::I32 => DType::I32,
        ElemType::U32 => DType::U32,
        ElemType::I64 => DType::I64,
        ElemType::U64 => DType::U64,
        ElemType::Bool => DType::Bool,
        ElemType::F8E4m3fn => DType::F8E4M3FN,
        ElemType::F8E4m3fnuz => DType::F8E4M3FNUZ,
        ElemType::F8E5m2 => DType::F8E5M2,
        ElemType::F8E5m2fnuz => DType::F8E5M2FNUZ,
        ElemType::I4 => DType::I4,
        ElemType::U4 => DType::U4,
        ElemType::I2 => DType::I2,
        ElemType::U2 => DType::U2,
        ElemType::F4e2m1 => DType::F4E2M1,
    }
}

/// An IR tensor as runtime bytes.
pub fn to_host(t: &Tensor) -> Result<HostTensor> {
    let e = kiln_cuda::codegen::elem_type(t.dtype())?;
    Ok(HostTensor::new(e, t.dims().to_vec(), kiln_cuda::codegen::tensor_bytes(t)?)?)
}

/// Runtime bytes as an IR tensor.
pub fn from_host(h: &HostTensor) -> Result<Tensor> {
    let data = kiln_ir::Data::from_le_bytes(dtype(h.dtype), &h.data)
        .ok_or_else(|| anyhow!("{} bytes are not whole {} elements", h.data.len(), h.dtype))?;
    Ok(Tensor::new(h.dims.clone(), data)?)
}

/// Orders `given` (name -> tensor) by the artifact's inputs.
pub fn order_inputs(want: &[TensorInfo], mut given: std::collections::HashMap<String, Tensor>) -> Result<Vec<HostTensor>> {
    let mut out = vec![];
    for w in want {
        let t = given.remove(&w.name).ok_or_else(|| anyhow!("missing --input for model input `{}` ({}{:?})", w.name, w.dtype, w.dims))?;
        out.push(to_host(&t)?);
    }
    if let Some(extra) = given.keys().next() {
        bail!("--input `{extra}`: the model has no such input");
    }
    Ok(out)
}

/// One row of `kiln verify`.
#[derive(Debug)]
pub struct KernelCheck {
    pub kernel: String,
    pub node: String,
    pub op: String,
    pub errors: Option<compare::Errors>,
}

/// Runs `g` (optimized) compiled in `session` launch by launch and compares each node's first
/// output with the interpreter's.
pub fn verify_kernels(session: &mut Session, g: &Graph, inputs: &[Tensor]) -> Result<Vec<KernelCheck>> {
    let mut want: std::collections::HashMap<String, Tensor> = std::collections::HashMap::new();
    kiln_ir::interp::run_observed(g, inputs.to_vec(), &mut |i, outs| {
        if let Some(Some(t)) = outs.first() {
            want.insert(g.nodes[i].name.clone(), t.clone());
        }
    })
    .context("running the interpreter")?;
    let host = inputs.iter().map(to_host).collect::<Result<Vec<_>>>()?;
    let kernels = session.manifest().kernels.clone();
    let mut rows = vec![];
    for (i, k) in kernels.iter().enumerate() {
        // Compare after the node's last launch.
        if kernels.get(i + 1).is_some_and(|n| n.node == k.node) {
            continue;
        }
        session.run_prefix(&host, i + 1)?;
        let errors = match (&k.output, want.get(&k.node)) {
            (Some(info), Some(w)) => {
                let got = from_host(&session.read(info)?)?;
                Some(compare::errors(&got.to_f64(), &w.to_f64()))
            }
            _ => None,
        };
        rows.push(KernelCheck { kernel: k.name.clone(), node: k.node.clone(), op: k.op.clone(), errors });
    }
    Ok(rows)
}

/// The artifact of an optimized graph for a GPU target, with native code.
pub fn artifact(g: &Graph, target: Target, precision: Option<DType>) -> Result<kiln_runtime::Artifact> {
    let e = kiln_driver::backend(target)?
        .emit(g, &EmitOptions { precision, native: true, external_weights: false })
        .with_context(|| format!("compiling for {target}"))?;
    match e.output {
        Output::Artifact(a) => Ok(*a),
        _ => bail!("{target} does not emit an artifact kiln's runtime runs"),
    }
}

/// One conformance case on the GPU: optimized for `target`, compiled, run, outputs read back.
/// Ops or dtypes the CUDA target has no kernel for are `Unsupported`.
pub fn run_case(g: &Graph, inputs: Vec<Tensor>, target: Target) -> kiln_driver::conformance::Outcome {
    use kiln_driver::conformance::{freeze_shape_inputs, Outcome};
    let (g, inputs, _) = match freeze_shape_inputs(g, inputs) {
        Ok(x) => x,
        Err(e) => return Outcome::Failed(format!("fixing shape inputs: {e}")),
    };
    let g = &g;
    let (opt, _) = match kiln_driver::optimize(g, target, std::time::Instant::now()) {
        Ok(x) => x,
        Err(e) if e.is_unsupported() => return Outcome::Unsupported(kiln_driver::error_chain(&e)),
        Err(e) => return Outcome::Failed(kiln_driver::error_chain(&e)),
    };
    let backend = match kiln_driver::backend(target) {
        Ok(b) => b,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let artifact = match backend.emit(&opt, &EmitOptions { precision: None, native: true, external_weights: false }) {
        Ok(kiln_driver::Emitted { output: Output::Artifact(a), .. }) => *a,
        Ok(_) => return Outcome::Failed(format!("{target} emitted no artifact")),
        Err(e) if e.is_unsupported() => return Outcome::Unsupported(e.to_string()),
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let run = || -> Result<Vec<Tensor>> {
        let mut s = Session::from_artifact(artifact, 0)?;
        let named: std::collections::HashMap<String, Tensor> =
            g.inputs.iter().zip(inputs).map(|(&v, t)| (g.value(v).name.clone(), t)).collect();
        let host = order_inputs(s.inputs(), named)?;
        s.run(&host)?.iter().map(from_host).collect()
    };
    match run() {
        Ok(o) => Outcome::Ran(o),
        Err(e) => Outcome::Failed(format!("{e:#}")),
    }
}
