//! kiln's compile pipeline as a library: the registry of targets ([`backend`]) and
//! [`compile`], which imports a model, optimizes it for a target under that target's rules and
//! cost model, and emits what the target loads. The CLI, the tests and programs that embed kiln
//! all compile through here. Beside the pipeline sit the checks every stage is held to: numeric
//! comparison with dtype-aware tolerances ([`compare`]), `.npy` files ([`npy`]) and the ONNX
//! node-suite runner ([`conformance`]).
//!
//! ```
//! use kiln_driver::{compile, Model, Options, Output, Target};
//! let model = Model::Onnx(concat!(env!("CARGO_MANIFEST_DIR"), "/../../testsuite/golden/resnet18_narrow/model.onnx").into());
//! let opts = Options { input_shapes: [("input".to_string(), vec![1, 3, 64, 64])].into(), ..Options::default() };
//! let c = compile(&model, Target::Ascend910B, &opts)?;
//! let Output::Files(files) = &c.emitted.output else { panic!("a 910b bundle is a directory") };
//! assert!(files.iter().any(|f| f.path == "graph.air"));
//! assert!(c.report.eqsat.kernels < c.report.eqsat.ops_before);
//! # Ok::<(), kiln_driver::DriverError>(())
//! ```

pub mod compare;
pub mod conformance;
mod error;
mod model;
pub mod npy;
mod output;
mod pipeline;
mod reference;
pub mod sim;

pub use error::DriverError;
pub use kiln_backend::{
    Backend, BackendError, Costing, EmitOptions, Emitted, OpSupport, Output, SupportReport, Target, TargetError, Unsupported,
};
pub use model::{Model, Shapes, Values};
pub use output::{strip_weights, write, Stripped};
pub use pipeline::{optimize, optimize_for, support, Report};

use kiln_ir::{DType, Graph};
use std::sync::OnceLock;
use std::time::Instant;

/// The backend of `target`. Every target has one; a backend whose emission is not built yet
/// (the CPU's) still optimizes, and its `emit` says what is missing.
pub fn backend(target: Target) -> Result<&'static dyn Backend, TargetError> {
    static REF: OnceLock<reference::Reference> = OnceLock::new();
    static CPU: OnceLock<kiln_cpu::Cpu> = OnceLock::new();
    static SM90: OnceLock<kiln_cuda::Cuda> = OnceLock::new();
    static SM80: OnceLock<kiln_cuda::Cuda> = OnceLock::new();
    static ASCEND: OnceLock<kiln_ascend::Ascend> = OnceLock::new();
    Ok(match target {
        Target::Ref => REF.get_or_init(reference::Reference::default),
        Target::Cpu => CPU.get_or_init(kiln_cpu::Cpu::default),
        Target::Sm90 => SM90.get_or_init(|| kiln_cuda::Cuda::new(kiln_cuda::Arch::Sm90)),
        Target::Sm80 => SM80.get_or_init(|| kiln_cuda::Cuda::new(kiln_cuda::Arch::Sm80)),
        Target::Ascend910B => ASCEND.get_or_init(kiln_ascend::Ascend::default),
    })
}

/// How [`compile`] runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Shapes for the model's inputs (symbolic dims must be fixed to emit code).
    pub input_shapes: Shapes,
    /// Inputs bound to values at compile time (they become constants).
    pub input_values: Values,
    /// Store weights and activations in F16 or BF16 (products accumulate, norms and softmax
    /// compute, in f32); None keeps the model's types.
    pub precision: Option<DType>,
    /// Assemble native code where the tools are found (a cubin); the artifact also keeps the
    /// portable form.
    pub native: bool,
    /// 910b: weights as files beside graph.air.
    pub external_weights: bool,
    /// `--quantize`: the products' weights (and activations) quantized before precision
    /// conversion and optimization.
    pub quantize: Option<Quantize>,
}

/// `--quantize` and its calibration data.
#[derive(Clone, Debug)]
pub struct Quantize {
    pub options: kiln_passes::quant::QuantOptions,
    /// Input sets, each input by name.
    pub calibration: Vec<std::collections::HashMap<String, kiln_ir::Tensor>>,
}

/// Quantizes `g` (imported, before precision conversion) as `q` says; returns what was done.
pub fn quantize(g: &mut Graph, q: &Quantize) -> Result<kiln_passes::quant::QuantReport, DriverError> {
    let mut sets = vec![];
    for (i, set) in q.calibration.iter().enumerate() {
        let mut args = vec![];
        for &v in &g.inputs {
            let name = &g.value(v).name;
            let t = set.get(name).ok_or_else(|| {
                let mut have: Vec<&String> = set.keys().collect();
                have.sort();
                DriverError::Usage(format!("calibration set {i} has no `{name}` (it has {have:?})"))
            })?;
            args.push(t.clone());
        }
        sets.push(args);
    }
    let scheme = q.options.scheme.name();
    kiln_passes::quant::quantize(g, &q.options, &sets).map_err(|e| match e {
        kiln_passes::quant::QuantError::Usage(m) => DriverError::Usage(format!("--quantize {scheme}: {m}")),
        e => DriverError::pass(format!("quantizing ({scheme})"), e),
    })
}

impl Options {
    pub fn emit_options(&self) -> EmitOptions {
        EmitOptions { precision: self.precision, native: self.native, external_weights: self.external_weights }
    }
}

/// What [`compile`] made.
#[derive(Debug)]
pub struct Compiled {
    /// The optimized graph the code was emitted from.
    pub graph: Graph,
    pub report: Report,
    pub emitted: Emitted,
}

/// Applies `precision` to an imported graph.
pub fn convert_precision(g: &mut Graph, precision: Option<DType>) -> Result<(), DriverError> {
    if let Some(to) = precision {
        kiln_passes::convert_precision(g, to).map_err(|e| DriverError::pass(format!("converting to {to}"), e))?;
    }
    Ok(())
}

/// Imports `model`, optimizes it for `target` and emits it.
pub fn compile(model: &Model, target: Target, opts: &Options) -> Result<Compiled, DriverError> {
    let started = Instant::now();
    let b = backend(target)?;
    let mut g = model.load_with(&opts.input_shapes, &opts.input_values)?;
    if let Some(q) = &opts.quantize {
        quantize(&mut g, q)?;
    }
    convert_precision(&mut g, opts.precision)?;
    let (graph, report) = optimize_for(&g, b, started)?;
    let emitted = b.emit(&graph, &opts.emit_options()).map_err(|source| DriverError::Backend { target, source })?;
    Ok(Compiled { graph, report, emitted })
}

/// An error and its causes on one line, `: `-separated (as anyhow's `{:#}` prints them).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
