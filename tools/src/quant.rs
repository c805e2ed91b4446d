//! `--quantize` and its flags, shared by `kiln run` (the interpreter) and `kiln compile`.

use anyhow::{anyhow, bail, Context, Result};
use kiln_driver::npy;
use kiln_ir::{Graph, Tensor};
use kiln_passes::quant::{QuantOptions, Scheme};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Default, Clone)]
pub struct QuantArgs {
    /// Quantize the products with constant weights: `w8a8` (SmoothQuant: int8 weights per
    /// output channel, int8 activations per token; needs --calibration unless --no-smooth) or `w4a16` (4-bit
    /// weight groups; AWQ with --calibration, round to nearest without). The LM head stays in
    /// 16 bits; the products quantized are listed.
    #[arg(long)]
    pub quantize: Option<String>,
    /// Calibration inputs: a directory of input sets, each a subdirectory with one NAME.npy per
    /// model input (or the directory itself holding one set).
    #[arg(long)]
    pub calibration: Option<PathBuf>,
    /// SmoothQuant's migration strength α in [0, 1] (w8a8).
    #[arg(long = "smooth-alpha", default_value_t = 0.5)]
    pub smooth_alpha: f32,
    /// w8a8 without SmoothQuant's scales (per-token and per-channel quantization only).
    #[arg(long = "no-smooth")]
    pub no_smooth: bool,
    /// Input channels per 4-bit group (w4a16).
    #[arg(long = "group-size", default_value_t = 128)]
    pub group_size: usize,
    /// Leave products whose node or weight name contains this in floating point (repeatable).
    #[arg(long = "quant-exclude")]
    pub quant_exclude: Vec<String>,
}

impl QuantArgs {
    /// What the flags ask for (None without --quantize).
    pub fn spec(&self) -> Result<Option<kiln_driver::Quantize>> {
        let Some(q) = &self.quantize else {
            if self.calibration.is_some() || self.no_smooth || !self.quant_exclude.is_empty() {
                bail!("--calibration, --no-smooth and --quant-exclude apply with --quantize w8a8|w4a16");
            }
            return Ok(None);
        };
        let scheme = match q.as_str() {
            "w8a8" => Scheme::W8A8,
            "w4a16" => Scheme::W4A16,
            other => bail!("--quantize {other}: expected w8a8 or w4a16"),
        };
        let options = QuantOptions {
            smooth_alpha: (!self.no_smooth).then_some(self.smooth_alpha),
            group_size: self.group_size,
            exclude: self.quant_exclude.clone(),
            ..QuantOptions::new(scheme)
        };
        let calibration = match &self.calibration {
            Some(dir) => read_sets(dir)?,
            None => vec![],
        };
        Ok(Some(kiln_driver::Quantize { options, calibration }))
    }
}

/// Quantizes `g` as the flags say and prints what was quantized.
pub fn apply(g: &mut Graph, args: &QuantArgs) -> Result<()> {
    if let Some(q) = args.spec()? {
        let report = kiln_driver::quantize(g, &q)?;
        for line in report.lines() {
            println!("{line}");
        }
        println!("{} products quantized ({}), {} kept", report.quantized.len(), q.options.scheme.name(), report.kept.len());
    }
    Ok(())
}

/// The input sets of a calibration directory (subdirectories in name order).
fn read_sets(dir: &Path) -> Result<Vec<HashMap<String, Tensor>>> {
    let entries = |d: &Path| -> Result<Vec<PathBuf>> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .with_context(|| format!("reading --calibration {}", d.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        v.sort();
        Ok(v)
    };
    let read_set = |d: &Path| -> Result<HashMap<String, Tensor>> {
        let mut set = HashMap::new();
        for f in entries(d)?.into_iter().filter(|f| f.extension().is_some_and(|e| e == "npy")) {
            let name = f.file_stem().and_then(|s| s.to_str()).ok_or_else(|| anyhow!("{}: not a UTF-8 name", f.display()))?;
            let bytes = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
            set.insert(name.to_string(), npy::read(&bytes).map_err(|e| anyhow!("reading {}: {e}", f.display()))?);
        }
        Ok(set)
    };
    let top = entries(dir)?;
    let subdirs: Vec<&PathBuf> = top.iter().filter(|p| p.is_dir()).collect();
    let sets = if subdirs.is_empty() { vec![read_set(dir)?] } else { subdirs.iter().map(|d| read_set(d)).collect::<Result<_>>()? };
    if sets.iter().all(HashMap::is_empty) {
        bail!("--calibration {}: no NAME.npy input files (one subdirectory per input set)", dir.display());
    }
    Ok(sets)
}
