//! Subcommands. Errors are one line plus context, and a non-zero exit code.

use crate::compile::{compile, ops, Out};
use crate::model::CheckpointArgs;
use crate::run::{compare, conformance_cmd, read_npy, run, run_artifact, run_bundle};
use crate::verify::{bench, verify};
use anyhow::{anyhow, bail, Result};
use clap::{Parser, Subcommand, ValueEnum};
use kiln_driver::Target;
use kiln_ir::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Parser, Debug)]
#[command(name = "kiln", version, about = "Ahead-of-time compiler for trained models")]
struct Cli {
    /// Log what each stage does and how long it takes on stderr: -v the stages (import,
    /// passes, e-graph, code generation), -vv every e-graph iteration; RUST_LOG (for example
    /// `RUST_LOG=kiln_passes=debug`) overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Logging on stderr at the level -v asks for (warnings only without it), or RUST_LOG's.
fn init_logging(verbose: u8) {
    // egg's own log (each rebuild) only from -vv on.
    let level = match verbose {
        0 => "warn",
        1 => "info,egg=warn",
        _ => "debug",
    };
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|f| tracing_subscriber::EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(false).try_init();
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Show a model's inputs, outputs, op histogram and parameters; or what a compiled .kiln
    /// artifact or a 910b bundle holds.
    Inspect {
        /// An .onnx file, or a directory with a Hugging Face config.json and safetensors weights.
        model: Option<PathBuf>,
        #[command(flatten)]
        checkpoint: CheckpointArgs,
        #[arg(long)]
        json: bool,
        /// Specialize an input: NAME=1x3x224x224 (repeatable).
        #[arg(long = "input-shape")]
        input_shape: Vec<String>,
        /// Bind an input to a value at compile time: NAME=VALUE (a number, or numbers
        /// comma-separated for a 1-D input) or NAME=FILE.npy (repeatable). The input becomes a
        /// constant, so that what depends on it folds (a sample-rate switch, an If).
        #[arg(long = "input-value")]
        input_value: Vec<String>,
    },
    /// Run a model in the reference interpreter, a compiled `model.kiln` on the GPU, or a 910b
    /// bundle in the GE-graph simulator (`--target 910b-sim`).
    Run {
        /// An .onnx file or a safetensors checkpoint directory (interpreter), a .kiln artifact
        /// (GPU), or a 910b bundle directory (`--target 910b-sim`).
        model: Option<PathBuf>,
        #[command(flatten)]
        checkpoint: CheckpointArgs,
        /// NAME=FILE.npy (repeatable); shapes specialize symbolic dims.
        #[arg(long = "input")]
        input: Vec<String>,
        /// Bind an input to a value before the model is read, as `kiln compile` does:
        /// NAME=VALUE or NAME=FILE.npy (repeatable); it is then not given with --input.
        #[arg(long = "input-value")]
        input_value: Vec<String>,
        /// Directory for one NAME.npy per model output.
        #[arg(long = "output-dir")]
        output_dir: PathBuf,
        /// `ref` (the reference interpreter) for a model; `910b-sim` for a 910b bundle: its
        /// graph.air executed by the documented semantics of each CANN op.
        #[arg(long, value_enum, default_value_t = Runner::Ref)]
        target: Runner,
        /// Replay the launches as a CUDA graph (.kiln only).
        #[arg(long)]
        cuda_graph: bool,
        /// The interpreter only: run the model as `kiln compile --precision` converts it
        /// (fp16 or bf16, every op's result rounded), to see what reduced precision does to
        /// its outputs without a GPU.
        #[arg(long, default_value = "fp32")]
        precision: String,
        /// With --precision: also run the model in its own types and print the first nodes
        /// whose reduced-precision values drift from them (cosine below 0.999), in order, so
        /// that the op where reduced precision loses the model shows.
        #[arg(long)]
        drift: bool,
        #[command(flatten)]
        quant: crate::quant::QuantArgs,
    },
    /// Compile a model, run it on the GPU and compare every kernel's output with the
    /// interpreter (max abs, max rel, cosine), so that the first kernel that drifts shows.
    Verify {
        /// An .onnx file, or a directory with a Hugging Face config.json and safetensors weights.
        model: Option<PathBuf>,
        #[command(flatten)]
        checkpoint: CheckpointArgs,
        /// sm_90 or sm_80.
        #[arg(long, value_enum, default_value_t = Target::Sm90)]
        target: Target,
        /// NAME=FILE.npy (repeatable); inputs not given are random (seeded).
        #[arg(long = "input")]
        input: Vec<String>,
        /// Specialize an input: NAME=1x3x224x224 (repeatable).
        #[arg(long = "input-shape")]
        input_shape: Vec<String>,
        /// Bind an input to a value at compile time: NAME=VALUE (a number, or numbers
        /// comma-separated for a 1-D input) or NAME=FILE.npy (repeatable). The input becomes a
        /// constant, so that what depends on it folds (a sample-rate switch, an If).
        #[arg(long = "input-value")]
        input_value: Vec<String>,
        /// fp32 (the model's own types), fp16 or bf16: weights and activations stored in the
        /// reduced type, inputs and outputs unchanged; products accumulate, and norms and softmax
        /// compute, in f32.
        #[arg(long, default_value = "fp32")]
        precision: String,
    },
    /// List the ops a model needs on a target (after optimization) and which have kernels.
    Ops {
        /// An .onnx file, or a directory with a Hugging Face config.json and safetensors weights.
        model: Option<PathBuf>,
        #[command(flatten)]
        checkpoint: CheckpointArgs,
        #[arg(long, value_enum, default_value_t = Target::Sm90)]
        target: Target,
        #[arg(long)]
        json: bool,
        /// Specialize an input: NAME=1x3x224x224 (repeatable).
        #[arg(long = "input-shape")]
        input_shape: Vec<String>,
        /// Bind an input to a value at compile time: NAME=VALUE (a number, or numbers
        /// comma-separated for a 1-D input) or NAME=FILE.npy (repeatable). The input becomes a
        /// constant, so that what depends on it folds (a sample-rate switch, an If).
        #[arg(long = "input-value")]
        input_value: Vec<String>,
    },
    /// Median latency of a compiled model on the GPU, with and without CUDA graphs.
    Bench {
        /// A .kiln artifact.
        model: PathBuf,
        #[arg(long, default_value_t = 100)]
        iters: usize,
        #[arg(long)]
        json: bool,
        /// Also time every launch (CUDA events) and print the time by kernel kind and the
        /// slowest launches.
        #[arg(long)]
        per_kernel: bool,
    },
    /// Compile a model for a target.
    Compile {
        /// An .onnx file, or a directory with a Hugging Face config.json and safetensors
        /// weights (Llama, Qwen2, Mistral, GPT-2, BERT; give --seq S and --batch B).
        model: Option<PathBuf>,
        #[command(flatten)]
        checkpoint: CheckpointArgs,
        /// The target (cpu optimizes, but its code generator is not built yet). Required with
        /// -o; with --emit it defaults to ref.
        #[arg(long, value_enum)]
        target: Option<Target>,
        /// Where to write the artifact: `model.kiln` for sm_90/sm_80, a bundle directory
        /// (graph.air, graph.txt, manifest.json, build.sh) for 910b, the verified IR text for `ref`.
        #[arg(short = 'o', long)]
        output: Option<PathBuf>,
        /// What to print instead of writing an artifact: `ir` (the imported, simplified IR),
        /// `ir-after=PASS` (the IR after that pass of the classic pipeline: fold-constants, canonicalize, cse, dce),
        /// `opt-ir` (the IR the optimizer extracts for --target), `memory-plan` (the arena plan
        /// of the optimized graph; needs static shapes), or `ptx` (the PTX module, sm_90/sm_80).
        #[arg(long)]
        emit: Option<String>,
        /// Write the optimizer's report (ops before/after, kernels, rules fired, stop reason,
        /// timings, arena size) as JSON to this file.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Specialize an input: NAME=1x3x224x224 (repeatable).
        #[arg(long = "input-shape")]
        input_shape: Vec<String>,
        /// Bind an input to a value at compile time: NAME=VALUE (a number, or numbers
        /// comma-separated for a 1-D input) or NAME=FILE.npy (repeatable). The input becomes a
        /// constant, so that what depends on it folds (a sample-rate switch, an If).
        #[arg(long = "input-value")]
        input_value: Vec<String>,
        /// fp32 (the model's own types), fp16 or bf16: weights and activations stored in the
        /// reduced type, inputs and outputs unchanged; products accumulate, and norms and softmax
        /// compute, in f32.
        #[arg(long, default_value = "fp32")]
        precision: String,
        /// Reference the weights that reach the GPU unchanged in the model file (and its
        /// external data files) instead of copying them into the artifact; the runtime reads
        /// them from there, checking each against its checksum. Weights converted by
        /// --precision, folded or merged by the optimizer stay in the artifact.
        #[arg(long)]
        strip_weights: bool,
        /// 910b: write the weights as weights/*.bin files that FileConstant ops read, not inside
        /// graph.air (always done from 1 GiB of weights: a graph.air is at most 2 GiB).
        #[arg(long)]
        external_weights: bool,
        #[command(flatten)]
        quant: crate::quant::QuantArgs,
    },
    /// Greedy decoding of a Hugging Face checkpoint (Llama, Qwen2, Mistral, GPT-2) with its
    /// prefill and decode graphs: token ids in, token ids out (printed comma-separated, one line
    /// per prompt).
    Generate {
        /// A directory with config.json and safetensors weights (or --config and --weights).
        model: Option<PathBuf>,
        #[command(flatten)]
        checkpoint: CheckpointArgs,
        /// ref (the interpreter), sm_90 or sm_80.
        #[arg(long, value_enum, default_value_t = Target::Ref)]
        target: Target,
        /// The prompt's token ids: 1,2,3. Repeat for a batch of prompts of one length, decoded
        /// together (one output line each).
        #[arg(long = "prompt-ids", required = true)]
        prompt_ids: Vec<String>,
        #[arg(long = "max-new-tokens", default_value_t = 16)]
        max_new_tokens: usize,
        /// Token ids that end a sequence, comma-separated (besides config.json's eos_token_id).
        #[arg(long = "stop-ids")]
        stop_ids: Option<String>,
        /// Do not stop at config.json's eos_token_id.
        #[arg(long = "ignore-eos")]
        ignore_eos: bool,
        /// fp32, fp16 or bf16 (GPU targets).
        #[arg(long, default_value = "fp32")]
        precision: String,
        #[command(flatten)]
        quant: crate::quant::QuantArgs,
    },
    /// Compare two .npy tensors (for example kiln's output with a reference): prints max abs,
    /// max relative and cosine; fails when they differ beyond the dtype's tolerance.
    Compare { got: PathBuf, want: PathBuf },
    /// Run the ONNX node test suite.
    Conformance {
        /// The onnx/backend/test/data/node directory of the onnx 1.20.0 wheel.
        #[arg(long)]
        suite: PathBuf,
        /// ref, sm_90, sm_80, or 910b-sim (each case compiled for the 910b and its GE graph
        /// simulated).
        #[arg(long, value_enum, default_value_t = Runner::Ref)]
        target: Runner,
        #[arg(long)]
        json: bool,
        /// Only cases whose name contains this.
        #[arg(long)]
        filter: Option<String>,
        /// Only the cases named in this file, one per line (for example the ones the
        /// interpreter passes: testsuite/conformance/ref.txt).
        #[arg(long)]
        cases: Option<PathBuf>,
    },
}

/// What `kiln run` and `kiln conformance` execute on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Runner {
    /// The reference interpreter.
    #[value(name = "ref")]
    Ref,
    /// A compiled artifact on an NVIDIA Hopper GPU.
    #[value(name = "sm_90", alias = "sm90")]
    Sm90,
    /// A compiled artifact on an NVIDIA Ampere GPU.
    #[value(name = "sm_80", alias = "sm80")]
    Sm80,
    /// A 910b bundle's graph.air in the GE-graph simulator.
    #[value(name = "910b-sim")]
    Sim910B,
}

pub fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match cli.cmd {
        Cmd::Inspect { model, checkpoint, json, input_shape, input_value } => match model.as_deref().map(|m| (m, crate::model::kind(m))) {
            Some((m, crate::model::Kind::Artifact)) => crate::inspect::artifact(m, json),
            Some((m, crate::model::Kind::Bundle)) => crate::inspect::bundle(m, json),
            _ => crate::inspect::model(
                &crate::model::model(model.as_deref(), &checkpoint)?,
                json,
                &parse_shapes(&input_shape)?,
                &parse_values(&input_value)?,
            ),
        },
        Cmd::Run { model, checkpoint, input, input_value, output_dir, target, cuda_graph, precision, drift, quant } => {
            let precision = parse_precision(&precision)?;
            let interpreted = !(target == Runner::Sim910B || model.as_ref().is_some_and(|m| m.extension().is_some_and(|e| e == "kiln")));
            if precision.is_some() && !interpreted {
                bail!("--precision applies to the interpreter (`kiln run MODEL.onnx`); an artifact or bundle has its precision from `kiln compile`");
            }
            if drift && precision.is_none() {
                bail!("--drift compares a reduced precision with the model's own types: give --precision fp16 or bf16");
            }
            if quant.quantize.is_some() && !interpreted {
                bail!("--quantize applies to the interpreter (`kiln run MODEL.onnx`); an artifact or bundle is quantized by `kiln compile --quantize`");
            }
            match model {
                Some(m) if target == Runner::Sim910B => run_bundle(&m, &input, &output_dir),
                Some(m) if m.extension().is_some_and(|e| e == "kiln") => run_artifact(&m, &input, &output_dir, cuda_graph),
                m => run(
                    &crate::model::model(m.as_deref(), &checkpoint)?,
                    &input,
                    &parse_values(&input_value)?,
                    &output_dir,
                    target,
                    (precision, drift, &quant),
                ),
            }
        }
        Cmd::Verify { model, checkpoint, target, input, input_shape, input_value, precision } => verify(
            &crate::model::model(model.as_deref(), &checkpoint)?,
            target,
            &input,
            &parse_shapes(&input_shape)?,
            &parse_values(&input_value)?,
            parse_precision(&precision)?,
        ),
        Cmd::Bench { model, iters, json, per_kernel } => bench(&model, iters, json, per_kernel),
        Cmd::Ops { model, checkpoint, target, json, input_shape, input_value } => ops(
            &crate::model::model(model.as_deref(), &checkpoint)?,
            target,
            json,
            &parse_shapes(&input_shape)?,
            &parse_values(&input_value)?,
        ),
        Cmd::Compile {
            model,
            checkpoint,
            target,
            output,
            emit,
            report,
            input_shape,
            input_value,
            precision,
            strip_weights,
            external_weights,
            quant,
        } => compile(
            &crate::model::model(model.as_deref(), &checkpoint)?,
            target,
            Out { path: output.as_deref(), strip_weights, external_weights },
            emit.as_deref(),
            report.as_deref(),
            &parse_shapes(&input_shape)?,
            &parse_values(&input_value)?,
            (parse_precision(&precision)?, &quant),
        ),
        Cmd::Compare { got, want } => compare(&got, &want),
        Cmd::Generate { model, checkpoint, target, prompt_ids, max_new_tokens, stop_ids, ignore_eos, precision, quant } => {
            crate::generate::generate(
                &crate::model::model(model.as_deref(), &checkpoint)?,
                target,
                &prompt_ids,
                (max_new_tokens, stop_ids.as_deref(), ignore_eos),
                (parse_precision(&precision)?, &quant),
            )
        }
        Cmd::Conformance { suite, target, json, filter, cases } => {
            conformance_cmd(&suite, target, json, filter.as_deref(), cases.as_deref())
        }
    }
}

/// `--precision`: None for fp32 (the model's own types), else the reduced float type.
pub(crate) fn parse_precision(p: &str) -> Result<Option<kiln_ir::DType>> {
    match p {
        "fp32" => Ok(None),
        "fp16" => Ok(Some(kiln_ir::DType::F16)),
        "bf16" => Ok(Some(kiln_ir::DType::BF16)),
        other => bail!("--precision {other}: expected fp32, fp16 or bf16"),
    }
}

/// `--input-shape NAME=1x3x224x224`, or ATC's `NAME:1,3,224,224`, several joined by `;`.
fn parse_shapes(specs: &[String]) -> Result<HashMap<String, Vec<usize>>> {
    specs
        .iter()
        .flat_map(|s| s.split(';').filter(|p| !p.trim().is_empty()))
        .map(|s| {
            let (name, dims) = s
                .rsplit_once('=')
                .or_else(|| s.rsplit_once(':'))
                .ok_or_else(|| anyhow!("--input-shape `{s}`: expected NAME=1x3x224x224 (or ATC's NAME:1,3,224,224)"))?;
            let name = name.trim();
            let dims = if dims.is_empty() {
                vec![]
            } else {
                dims.split(['x', ','])
                    .map(|d| d.trim().parse::<usize>().map_err(|_| anyhow!("--input-shape `{s}`: `{d}` is not a dimension")))
                    .collect::<Result<_>>()?
            };
            Ok((name.to_string(), dims))
        })
        .collect()
}

/// `--input-value NAME=VALUE|FILE.npy`: a number is a scalar, comma-separated numbers a 1-D
/// tensor (converted to the input's dtype when bound, if exactly), a .npy file its tensor.
fn parse_values(specs: &[String]) -> Result<kiln_driver::Values> {
    specs
        .iter()
        .map(|s| {
            let (name, v) = s.split_once('=').ok_or_else(|| anyhow!("--input-value `{s}`: expected NAME=VALUE or NAME=FILE.npy"))?;
            let t = if v.ends_with(".npy") {
                read_npy(Path::new(v))?
            } else {
                let nums = v
                    .split(',')
                    .map(|x| x.trim().parse::<f64>().map_err(|_| anyhow!("--input-value `{s}`: `{x}` is not a number")))
                    .collect::<Result<Vec<f64>>>()?;
                let dims = if nums.len() == 1 { vec![] } else { vec![nums.len()] };
                Tensor::new(dims, kiln_ir::Data::F64(nums))?
            };
            Ok((name.to_string(), t))
        })
        .collect()
}
