//! `kiln generate DIR --prompt-ids 1,2,3 [--prompt-ids 4,5,6] --max-new-tokens N`: greedy
//! decoding of a Hugging Face checkpoint with its prefill and decode graphs (a sequence ends at
//! config.json's `eos_token_id` or a `--stop-ids` token, kept as its last), in the reference
//! interpreter (`--target ref`) or compiled for the GPU (`--target sm_90|sm_80`, with
//! `--precision`). Several prompts (of one length) are decoded as one batch. Token ids in,
//! token ids out: tokenizers are out of scope.

use crate::gpu::{from_host, to_host};
use anyhow::{anyhow, bail, Context, Result};
use kiln_driver::{Model, Target};
use kiln_frontend::hf::{generate, import_for_generation, Decode, Prefill};
use kiln_ir::{interp, DType, Graph, Tensor};

/// The ids of `--prompt-ids 1,2,3`.
fn parse_ids(s: &str) -> Result<Vec<i64>> {
    s.split(',').map(|t| t.trim().parse::<i64>().map_err(|_| anyhow!("--prompt-ids: `{t}` is not a token id"))).collect()
}

/// A graph compiled for `target` and loaded on GPU 0, as a runner.
fn session(g: &Graph, target: Target, precision: Option<DType>) -> Result<kiln_runtime::Session> {
    let mut g = g.clone();
    kiln_driver::convert_precision(&mut g, precision)?;
    let (g, _) = kiln_driver::optimize(&g, target, std::time::Instant::now())?;
    Ok(kiln_runtime::Session::from_artifact(crate::gpu::artifact(&g, target, precision)?, 0)?)
}

fn runner(s: &mut kiln_runtime::Session) -> impl FnMut(Vec<Tensor>) -> Result<Vec<Tensor>, String> + '_ {
    move |ins: Vec<Tensor>| -> Result<Vec<Tensor>, String> {
        let host = ins.iter().map(to_host).collect::<Result<Vec<_>>>().map_err(|e| e.to_string())?;
        let outs = s.run(&host).map_err(|e| e.to_string())?;
        outs.iter().map(from_host).collect::<Result<Vec<_>>>().map_err(|e| e.to_string())
    }
}

pub fn generate(
    model: &Model,
    t: Target,
    prompts: &[String],
    (new_tokens, stop_ids, ignore_eos): (usize, Option<&str>, bool),
    (precision, quant): (Option<DType>, &crate::quant::QuantArgs),
) -> Result<()> {
    if new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    let src = match model {
        Model::Checkpoint { batch: None, seq: None, source } => source,
        Model::Checkpoint { .. } => bail!("generate sizes its graphs from the prompts: --batch and --seq do not apply"),
        Model::Onnx(p) => bail!("{}: generate takes a checkpoint directory (config.json and safetensors weights)", p.display()),
    };
    let ids = prompts.iter().map(|p| parse_ids(p)).collect::<Result<Vec<_>>>()?;
    let len = ids[0].len();
    if let Some(p) = ids.iter().find(|p| p.len() != len) {
        bail!("--prompt-ids: the prompts of a batch have one length ({len} and {})", p.len());
    }
    let config = src.read_config()?;
    let vocab = config.vocab_size;
    let mut stop = if ignore_eos { vec![] } else { config.eos_token_ids.clone() };
    if let Some(s) = stop_ids {
        stop.extend(
            s.split(',')
                .map(|t| t.trim().parse::<i64>().map_err(|_| anyhow!("--stop-ids: `{t}` is not a token id")))
                .collect::<Result<Vec<_>>>()?,
        );
    }
    if let Some(bad) = ids.iter().flatten().find(|&&t| t < 0 || t as usize >= vocab) {
        bail!("--prompt-ids: token {bad} is outside the vocabulary (0..{vocab})");
    }
    let (batch, max_len) = (ids.len(), (len + new_tokens - 1).max(1));
    let (mut pre, mut dec, shape) = import_for_generation(src, Prefill { batch, seq: len }, Decode { batch, max_len })
        .with_context(|| format!("importing {}", model.display()))?;
    kiln_passes::simplify(&mut pre)?;
    kiln_passes::simplify(&mut dec)?;
    if let Some(q) = quant.spec()? {
        // The prefill and decode graphs are quantized apart: only the calibration-free recipes
        // give both the same weights.
        if !q.calibration.is_empty() || (q.options.scheme == kiln_passes::quant::Scheme::W8A8 && q.options.smooth_alpha.is_some()) {
            bail!("generate --quantize takes the calibration-free recipes: w4a16 (round to nearest) or w8a8 --no-smooth");
        }
        let report = kiln_driver::quantize(&mut pre, &q)?;
        kiln_driver::quantize(&mut dec, &q)?;
        eprintln!("{} products quantized ({}) in each graph", report.quantized.len(), q.options.scheme.name());
    }
    let tokens = match t {
        Target::Ref => {
            if precision.is_some() {
                bail!("--precision applies to the GPU targets; the interpreter runs the checkpoint in f32");
            }
            let mut p = |x: Vec<Tensor>| interp::run(&pre, x).map_err(|e| e.to_string());
            let mut d = |x: Vec<Tensor>| interp::run(&dec, x).map_err(|e| e.to_string());
            generate::greedy_batch(&ids, new_tokens, &stop, shape, &mut p, &mut d)
        }
        Target::Sm90 | Target::Sm80 => {
            let (mut sp, mut sd) = (session(&pre, t, precision)?, session(&dec, t, precision)?);
            let (mut p, mut d) = (runner(&mut sp), runner(&mut sd));
            generate::greedy_batch(&ids, new_tokens, &stop, shape, &mut p, &mut d)
        }
        other => bail!("generate runs on ref, sm_90 or sm_80, not {other}"),
    }
    .map_err(|e| anyhow!("generating: {e}"))?;
    for seq in tokens {
        println!("{}", seq.iter().map(i64::to_string).collect::<Vec<_>>().join(","));
    }
    Ok(())
}
