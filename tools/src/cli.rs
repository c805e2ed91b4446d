//! Subcommands. Errors are one line plus context, and a non-zero exit code.

use crate::gpu;
use crate::model::CheckpointArgs;
use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use kiln_driver::{conformance, npy, EmitOptions, Model, Output, Target};
use kiln_ir::{interp, Graph, Tensor};
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
enum Runner {
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
            _ => inspect(
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

fn inspect(model: &Model, json: bool, shapes: &HashMap<String, Vec<usize>>, values: &kiln_driver::Values) -> Result<()> {
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

fn read_inputs(inputs: &[String]) -> Result<HashMap<String, Tensor>> {
    let mut given: HashMap<String, Tensor> = HashMap::new();
    for spec in inputs {
        let (name, file) = spec.split_once('=').ok_or_else(|| anyhow!("--input `{spec}`: expected NAME=FILE.npy"))?;
        given.insert(name.to_string(), read_npy(Path::new(file))?);
    }
    Ok(given)
}

fn write_outputs(out_dir: &Path, outs: &[(String, Tensor)]) -> Result<()> {
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for (name, t) in outs {
        let file: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || "_-.".contains(c) { c } else { '_' }).collect();
        let path = out_dir.join(format!("{file}.npy"));
        std::fs::write(&path, npy::write(t)).with_context(|| format!("writing {}", path.display()))?;
        println!("{name}: {}{:?} -> {}", t.dtype(), t.dims(), path.display());
    }
    Ok(())
}

fn run_artifact(model: &Path, inputs: &[String], out_dir: &Path, cuda_graph: bool) -> Result<()> {
    let mut s = kiln_runtime::Session::load(model).with_context(|| format!("loading {}", model.display()))?;
    s.set_cuda_graph(cuda_graph);
    let host = gpu::order_inputs(s.inputs(), read_inputs(inputs)?)?;
    let outs = s.run(&host)?;
    let named = s.outputs().iter().zip(&outs).map(|(i, h)| Ok((i.name.clone(), gpu::from_host(h)?))).collect::<Result<Vec<_>>>()?;
    write_outputs(out_dir, &named)
}

/// Seeded random inputs: floats in [-1, 1), integers in [0, 10), bools alternating.
fn random_inputs(g: &Graph, given: &mut HashMap<String, Tensor>) -> Result<Vec<Tensor>> {
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

fn verify(
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

/// `kiln ops`: how each op of the optimized graph runs on the target (kernel, view, the CANN
/// ops it becomes ...), and every node the target cannot run with the reason.
fn ops(model: &Model, target: Target, json: bool, shapes: &HashMap<String, Vec<usize>>, values: &kiln_driver::Values) -> Result<()> {
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

fn bench(model: &Path, iters: usize, json: bool, per_kernel: bool) -> Result<()> {
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
fn print_profile(m: &kiln_runtime::Manifest, ms: &[f64]) {
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

fn run(
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
fn print_drift(full: &Graph, reduced: &Graph, args: &[Tensor]) -> Result<()> {
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

/// Where `compile` writes its artifact, and whether it strips the weights.
struct Out<'a> {
    path: Option<&'a Path>,
    strip_weights: bool,
    external_weights: bool,
}

fn compile(
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

fn write_report(path: Option<&Path>, rep: &kiln_driver::Report) -> Result<()> {
    let Some(path) = path else { return Ok(()) };
    let text = serde_json::to_string_pretty(&rep.to_json())?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

fn print_memory_plan(g: &Graph) -> Result<()> {
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

fn read_npy(p: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    npy::read(&bytes).map_err(|e| anyhow!("{}: {e}", p.display()))
}

fn compare(got: &Path, want: &Path) -> Result<()> {
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

/// What `--emit` made: to stdout, or to the file -o names.
fn emitted(output: Option<&Path>, text: &str) -> Result<()> {
    match output {
        Some(p) => {
            std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?;
            println!("wrote {} ({} bytes)", p.display(), text.len());
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// Runs a 910b bundle's graph.air in the GE-graph simulator.
fn run_bundle(dir: &Path, inputs: &[String], out_dir: &Path) -> Result<()> {
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

fn conformance_cmd(suite: &Path, target: Runner, json: bool, filter: Option<&str>, cases: Option<&Path>) -> Result<()> {
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
