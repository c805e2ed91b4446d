//! The CUDA target (sm_90, sm_80): the rules and cost model the optimizer extracts under
//! ([`rules`], [`cost`]), and code generation: the op table ([`lower`]) sends each node of the
//! optimized graph to its kernel family, which builds LLVM IR with inkwell ([`kernels`], on the
//! emission layer [`codegen`]); one module of kernels becomes PTX through LLVM's NVPTX backend
//! and cubin through `ptxas` ([`ptx`]), and [`compile`] packs them with the launch sequence, the
//! memory plan and the weights into a `model.kiln` artifact.

pub mod codegen;
pub mod compile;
pub mod cost;
pub mod kernels;
pub mod lower;
pub mod ptx;
pub mod rules;

pub use codegen::CodegenError;
pub use compile::{compile, Compiled, Options};
pub use cost::CudaCost;
pub use lower::{family, Family};
pub use ptx::Arch;

use kiln_backend::{Backend, BackendError, EmitOptions, Emitted, OpSupport, Output, SupportReport, Target, Unsupported};
use kiln_ir::{DType, Graph, Op, TensorType};
use kiln_passes::eqsat::roofline::dtypes_within;
use kiln_passes::eqsat::Rule;

/// One NVIDIA GPU architecture as a kiln target.
#[derive(Debug, Clone, Copy)]
pub struct Cuda {
    arch: Arch,
    cost: CudaCost,
}

impl Cuda {
    pub fn new(arch: Arch) -> Cuda {
        let cost = match arch {
            Arch::Sm90 => CudaCost::sm90(),
            Arch::Sm80 => CudaCost::sm80(),
        };
        Cuda { arch, cost }
    }

    fn options(&self, opts: &EmitOptions, native: bool) -> Options {
        let precision = match opts.precision {
            None => "fp32",
            Some(DType::F16) => "fp16",
            Some(_) => "bf16",
        };
        Options { arch: self.arch, cubin: native, precision: precision.into() }
    }
}

fn is_fp8(d: DType) -> bool {
    matches!(d, DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F8E8M0 | DType::F4E2M1)
}

fn backend_error(e: CodegenError) -> BackendError {
    if e.is_unsupported() {
        BackendError::Unsupported(Box::new(e))
    } else {
        BackendError::Other(Box::new(e))
    }
}

impl Backend for Cuda {
    fn target(&self) -> Target {
        match self.arch {
            Arch::Sm90 => Target::Sm90,
            Arch::Sm80 => Target::Sm80,
        }
    }

    /// The kernel family table ([`family`]) decides, and float8/float4 math needs sm_89+'s
    /// tensor cores. Control flow (If, Loop, Scan) has no family: kiln would run it on the host.
    fn op_support(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> Result<(), String> {
        if let Op::Trap { message, .. } = op {
            return Err(message.clone());
        }
        if let Op::MatMulQ8 {} | Op::MatMulQ4 { .. } = op {
            return Err("a --quantize product: no CUDA kernel yet (the int8 and int4 GEMMs are not written)".into());
        }
        if family(op).is_none() {
            return Err(format!("op {} has no CUDA kernel yet", op.kind_name()));
        }
        if self.arch == Arch::Sm80 {
            if let Some(d) = dtypes_within(op, ins, outs).into_iter().find(|&d| is_fp8(d)) {
                return Err(format!("{d} math: sm_80 has no float8 tensor cores"));
            }
        }
        Ok(())
    }

    fn rules(&self) -> Vec<Rule> {
        rules::rules()
    }

    fn op_cost(&self, op: &Op, ins: &[Option<&TensorType>], outs: &[TensorType]) -> f64 {
        self.cost.cost(op, ins, outs)
    }

    fn support(&self, g: &Graph) -> Result<SupportReport, BackendError> {
        let mut rows: std::collections::BTreeMap<&'static str, (usize, &'static str)> = Default::default();
        let mut unsupported = vec![];
        for n in &g.nodes {
            let ins: Vec<Option<&TensorType>> = n.inputs.iter().map(|v| v.map(|v| &g.value(v).ty)).collect();
            let outs: Vec<TensorType> = n.outputs.iter().flatten().map(|&v| g.value(v).ty.clone()).collect();
            match self.op_support(&n.op, &ins, &outs) {
                Ok(()) => {
                    let status = if family(&n.op) == Some(Family::View) { "view (no kernel)" } else { "kernel" };
                    rows.entry(n.op.kind_name()).or_insert((0, status)).0 += 1;
                }
                Err(reason) => unsupported.push(Unsupported { node: n.name.clone(), op: n.op.kind_name().into(), reason }),
            }
        }
        let ops = rows
            .into_iter()
            .map(|(op, (count, status))| OpSupport { op: op.into(), count, status: status.into(), lowered_to: vec![], generated: vec![] })
            .collect();
        Ok(SupportReport { ops, unsupported })
    }

    fn texts(&self) -> &'static [&'static str] {
        &["ptx"]
    }

    fn emit_text(&self, g: &Graph, what: &str, opts: &EmitOptions) -> Result<String, BackendError> {
        if what != "ptx" {
            return Err(BackendError::Unsupported(format!("--emit {what} on {}: it emits ptx", self.target()).into()));
        }
        Ok(compile(g, &self.options(opts, false)).map_err(backend_error)?.ptx)
    }

    fn emit(&self, g: &Graph, opts: &EmitOptions) -> Result<Emitted, BackendError> {
        let c = compile(g, &self.options(opts, opts.native)).map_err(backend_error)?;
        let summary = c.artifact.summary();
        Ok(Emitted { output: Output::Artifact(Box::new(c.artifact)), summary, notes: c.cubin_note.into_iter().collect() })
    }
}
