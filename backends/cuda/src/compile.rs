//! Optimized graph in, `model.kiln` out.

use crate::codegen::{elem_type, CodegenError};
use crate::ptx::{self, Arch};
use inkwell::context::Context;
use kiln_artifact::artifact::{sections, Artifact, KernelInfo, Launch, Manifest, Stored, TensorInfo, WeightInfo};
use kiln_ir::Graph;

#[derive(Clone, Debug)]
pub struct Options {
    pub arch: Arch,
    /// Assemble a cubin with ptxas when one is found (the PTX is always kept).
    pub cubin: bool,
    /// Recorded in the manifest.
    pub precision: String,
}

/// The artifact and what went into it.
#[derive(Debug)]
pub struct Compiled {
    pub artifact: Artifact,
    pub ptx: String,
    /// Why there is no cubin, when there is none.
    pub cubin_note: Option<String>,
}

/// Compiles an optimized graph with static shapes.
pub fn compile(g: &Graph, opts: &Options) -> Result<Compiled, CodegenError> {
    let context = Context::create();
    let (em, low) = crate::lower::lower(&context, g, opts.arch)?;
    let ptx = ptx::to_ptx(&em.into_module()?, opts.arch)?;
    let mut secs = vec![(sections::PTX.to_string(), ptx.clone().into_bytes())];
    let mut cubin_note = None;
    if opts.cubin {
        match ptx::find_ptxas() {
            Some(p) => match ptx::assemble(&p, &ptx, opts.arch) {
                Ok(c) => secs.push((sections::CUBIN.to_string(), c)),
                Err(e) => return Err(CodegenError::Internal(format!("the generated PTX does not assemble: {e}"))),
            },
            None => cubin_note = Some("ptxas not found (set KILN_PTXAS): PTX only, JIT-compiled by the driver at load".into()),
        }
    }
    secs.push((sections::WEIGHTS.to_string(), low.weights.clone()));
    let info = |v: kiln_ir::ValueId| -> Result<TensorInfo, CodegenError> {
        let val = g.value(v);
        let dims = val.ty.shape.as_fixed().ok_or_else(|| CodegenError::Unsupported(format!("`{}` has symbolic dims", val.name)))?;
        let loc = *low.locs.get(&v).ok_or_else(|| CodegenError::Internal(format!("`{}` has no location", val.name)))?;
        Ok(TensorInfo { name: val.name.clone(), dtype: elem_type(val.ty.dtype)?, dims: dims.iter().map(|&d| d as u64).collect(), loc })
    };
    let inputs = g.inputs.iter().map(|&v| info(v)).collect::<Result<Vec<_>, _>>()?;
    let outputs = g.outputs.iter().map(|&v| info(v)).collect::<Result<Vec<_>, _>>()?;
    let kernels = low
        .kernels
        .iter()
        .map(|(name, node, op, out)| {
            Ok(KernelInfo { name: name.clone(), node: node.clone(), op: op.to_string(), output: out.map(info).transpose()? })
        })
        .collect::<Result<Vec<_>, CodegenError>>()?;
    let launches = low
        .launches
        .iter()
        .enumerate()
        .map(|(i, l)| Launch { kernel: i as u32, grid: l.grid, block: l.block, shared_bytes: l.shared_bytes, args: l.args.clone() })
        .collect();
    let weights = low
        .weight_table
        .iter()
        .map(|(name, d, dims, off)| {
            let n: usize = dims.iter().product();
            Ok(WeightInfo {
                name: name.clone(),
                dtype: elem_type(*d)?,
                dims: dims.iter().map(|&x| x as u64).collect(),
                offset: *off,
                bytes: (d.element_bytes() * n) as u64,
                stored: Stored::Section { offset: *off },
            })
        })
        .collect::<Result<Vec<_>, CodegenError>>()?;
    let manifest = Manifest {
        producer: format!("kiln {}", env!("CARGO_PKG_VERSION")),
        target: match opts.arch {
            Arch::Sm90 => "sm_90".into(),
            Arch::Sm80 => "sm_80".into(),
        },
        precision: opts.precision.clone(),
        inputs,
        outputs,
        arena_bytes: low.arena_bytes.max(1),
        weights_bytes: low.weights.len() as u64,
        weights,
        kernels,
        launches,
        sections: vec![],
    };
    let artifact = Artifact { manifest, sections: secs };
    artifact.validate().map_err(|e| CodegenError::Internal(format!("the artifact does not validate: {e}")))?;
    Ok(Compiled { artifact, ptx, cubin_note })
}
