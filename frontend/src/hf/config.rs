//! A Hugging Face `config.json`, read into the values that change a model's math, for the
//! architectures kiln builds from safetensors checkpoints: `llama`, `qwen2`, `mistral`,
//! `gpt2` and `bert`. Every key that changes the computation is read (under the name each
//! architecture uses) or, where kiln does not implement its value, rejected with an error that
//! names the key; keys that do not change it (ids of special tokens, `torch_dtype`, ...) are
//! ignored, except `eos_token_id`, where generation ends a sequence.

use serde_json::{Map, Value};

/// Which architecture a config describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    Llama,
    Qwen2,
    Mistral,
    Gpt2,
    Bert,
}

/// The feed-forward activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// SiLU (`silu`, `swish`): gated in Llama/Qwen2/Mistral.
    Silu,
    /// Exact GELU (`gelu`).
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    Relu,
}

/// Rotary position embedding scaling (`rope_scaling`).
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Positions divided by `factor`.
    Linear { factor: f64 },
    /// NTK-aware base rescaling once a sequence exceeds the trained length.
    Dynamic { factor: f64 },
    /// Llama 3's per-frequency interpolation.
    Llama3 { factor: f64, low_freq_factor: f64, high_freq_factor: f64, original_max_position_embeddings: usize },
}

/// The math-relevant values of a config.
#[derive(Clone, Debug, PartialEq)]
pub struct HfConfig {
    pub arch: Arch,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    /// Key/value heads (GQA/MQA); equal to `num_heads` for multi-head attention.
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// RMSNorm or LayerNorm epsilon.
    pub norm_eps: f64,
    pub activation: Activation,
    pub max_position_embeddings: usize,
    /// Rotary base (decoder-only rotary architectures).
    pub rope_theta: Option<f64>,
    pub rope_scaling: Option<RopeScaling>,
    pub tie_word_embeddings: bool,
    /// Biases on the Q/K/V (and output) projections.
    pub attention_bias: bool,
    pub mlp_bias: bool,
    /// Mistral's sliding-window attention span.
    pub sliding_window: Option<usize>,
    /// BERT's token-type vocabulary.
    pub type_vocab_size: Option<usize>,
    /// `eos_token_id` (a number or a list): generation ends a sequence at any of them.
    pub eos_token_ids: Vec<i64>,
    /// `quantization_config` of an AWQ checkpoint (AutoAWQ's 4-bit "gemm" packing): the group
    /// size; the decoder layers' projections are then `qweight`/`qzeros`/`scales`.
    pub awq_group_size: Option<usize>,
}

/// A config that cannot be used, naming the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("config.json is not a JSON object: {0}")]
    Json(String),
    #[error("config.json: `{key}` is missing")]
    Missing { key: String },
    #[error("config.json: `{key}` = {value}: {why}")]
    Bad { key: String, value: String, why: String },
}

fn bad(key: &str, value: &Value, why: impl Into<String>) -> ConfigError {
    ConfigError::Bad { key: key.to_string(), value: value.to_string(), why: why.into() }
}

/// Typed access to the config's keys.
struct Keys<'a>(&'a Map<String, Value>);

impl Keys<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }
    /// The first present key of `names` (architectures name some keys differently).
    fn first(&self, names: &[&str]) -> Option<(String, &Value)> {
        names.iter().find_map(|n| self.get(n).map(|v| (n.to_string(), v)))
    }
    fn usize_of(&self, names: &[&str]) -> Result<Option<usize>, ConfigError> {
        match self.first(names) {
            None => Ok(None),
            Some((k, v)) => match v.as_u64() {
                Some(n) if n > 0 => Ok(Some(n as usize)),
                _ => Err(bad(&k, v, "expected a positive integer")),
            },
        }
    }
    fn usize(&self, names: &[&str]) -> Result<usize, ConfigError> {
        self.usize_of(names)?.ok_or_else(|| ConfigError::Missing { key: names[0].to_string() })
    }
    fn f64_of(&self, names: &[&str]) -> Result<Option<f64>, ConfigError> {
        match self.first(names) {
            None => Ok(None),
            Some((k, v)) => match v.as_f64() {
                Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                _ => Err(bad(&k, v, "expected a positive number")),
            },
        }
    }
    fn bool_or(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| bad(key, v, "expected true or false")),
        }
    }
}

impl HfConfig {
    /// Reads a `config.json` text.
    pub fn parse(text: &str) -> Result<HfConfig, ConfigError> {
        let v: Value = serde_json::from_str(text).map_err(|e| ConfigError::Json(e.to_string()))?;
        let obj = v.as_object().ok_or_else(|| ConfigError::Json("the top level is not an object".into()))?;
        let k = Keys(obj);
        let mt = k.get("model_type").ok_or_else(|| ConfigError::Missing { key: "model_type".into() })?;
        let arch = match mt.as_str() {
            Some("llama") => Arch::Llama,
            Some("qwen2") => Arch::Qwen2,
            Some("mistral") => Arch::Mistral,
            Some("gpt2") => Arch::Gpt2,
            Some("bert") => Arch::Bert,
            _ => return Err(bad("model_type", mt, "kiln builds llama, qwen2, mistral, gpt2 and bert")),
        };
        match arch {
            Arch::Gpt2 => gpt2(&k),
            Arch::Bert => bert(&k),
            _ => decoder(&k, arch),
        }
    }
}

fn activation(key: &str, v: &Value) -> Result<Activation, ConfigError> {
    Ok(match v.as_str() {
        Some("silu" | "swish") => Activation::Silu,
        Some("gelu") => Activation::Gelu,
        Some("gelu_new" | "gelu_pytorch_tanh" | "gelu_fast") => Activation::GeluTanh,
        Some("relu") => Activation::Relu,
        _ => return Err(bad(key, v, "supported: silu, gelu, gelu_new / gelu_pytorch_tanh, relu")),
    })
}

/// Heads that divide the hidden size (unless head_dim is explicit) and KV heads that divide
/// the heads.
fn heads(k: &Keys, hidden: usize, heads: usize, kv: usize) -> Result<usize, ConfigError> {
    if !heads.is_multiple_of(kv) {
        let v = k.first(&["num_key_value_heads"]).map_or(Value::from(kv), |p| p.1.clone());
        return Err(bad("num_key_value_heads", &v, format!("must divide num_attention_heads = {heads}")));
    }
    match k.usize_of(&["head_dim"])? {
        Some(d) => Ok(d),
        None if hidden.is_multiple_of(heads) => Ok(hidden / heads),
        None => Err(bad("num_attention_heads", &Value::from(heads), format!("must divide hidden_size = {hidden}"))),
    }
}

fn rope_scaling(k: &Keys) -> Result<Option<RopeScaling>, ConfigError> {
    let Some(v) = k.get("rope_scaling") else { return Ok(None) };
    let o = v.as_object().ok_or_else(|| bad("rope_scaling", v, "expected an object"))?;
    let sub = Keys(o);
    let kind = sub.first(&["rope_type", "type"]).map(|(_, t)| t.clone()).unwrap_or(Value::Null);
    let factor = || sub.f64_of(&["factor"])?.ok_or_else(|| ConfigError::Missing { key: "rope_scaling.factor".into() });
    Ok(Some(match kind.as_str() {
        Some("linear") => RopeScaling::Linear { factor: factor()? },
        Some("dynamic") => RopeScaling::Dynamic { factor: factor()? },
        Some("llama3") => RopeScaling::Llama3 {
            factor: factor()?,
            low_freq_factor: sub
                .f64_of(&["low_freq_factor"])?
                .ok_or_else(|| ConfigError::Missing { key: "rope_scaling.low_freq_factor".into() })?,
            high_freq_factor: sub
                .f64_of(&["high_freq_factor"])?
                .ok_or_else(|| ConfigError::Missing { key: "rope_scaling.high_freq_factor".into() })?,
            original_max_position_embeddings: sub
                .usize_of(&["original_max_position_embeddings"])?
                .ok_or_else(|| ConfigError::Missing { key: "rope_scaling.original_max_position_embeddings".into() })?,
        },
        Some("default") => return Ok(None),
        _ => return Err(bad("rope_scaling.rope_type", &kind, "supported: linear, dynamic, llama3")),
    }))
}

/// `quantization_config`: AutoAWQ's 4-bit, zero-point, "gemm"-packed checkpoints (their group
/// size); any other method or variant is refused by name.
fn awq(k: &Keys) -> Result<Option<usize>, ConfigError> {
    let Some(v) = k.get("quantization_config") else { return Ok(None) };
    let o = v.as_object().ok_or_else(|| bad("quantization_config", v, "expected an object"))?;
    let sub = Keys(o);
    let method = sub.get("quant_method").cloned().unwrap_or(Value::Null);
    if method.as_str() != Some("awq") {
        return Err(bad("quantization_config.quant_method", &method, "kiln reads awq checkpoints (gptq and others are not read yet)"));
    }
    if let Some(b) = sub.usize_of(&["bits", "w_bit"])?.filter(|&b| b != 4) {
        return Err(bad("quantization_config.bits", &Value::from(b), "AWQ checkpoints of 4 bits are read"));
    }
    let version = sub.get("version").cloned().unwrap_or(Value::from("gemm"));
    if !version.as_str().is_some_and(|v| v.eq_ignore_ascii_case("gemm")) {
        return Err(bad("quantization_config.version", &version, "the \"gemm\" packing is read (gemv, marlin and exllama are not)"));
    }
    if !sub.bool_or("zero_point", true)? {
        return Err(bad("quantization_config.zero_point", &Value::from(false), "AWQ with zero points is read"));
    }
    match sub.usize_of(&["group_size", "q_group_size"])? {
        Some(g) if g > 0 => Ok(Some(g)),
        Some(g) => Err(bad("quantization_config.group_size", &Value::from(g), "must be positive (per-channel AWQ is not read)")),
        None => Err(ConfigError::Missing { key: "quantization_config.group_size".into() }),
    }
}

/// `eos_token_id`: absent or null, a token id, or a list of them.
fn eos(k: &Keys) -> Result<Vec<i64>, ConfigError> {
    let Some(v) = k.get("eos_token_id") else { return Ok(vec![]) };
    let one = |x: &Value| x.as_i64().ok_or_else(|| bad("eos_token_id", v, "expected a token id or a list of them"));
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(a) => a.iter().map(one).collect(),
        x => Ok(vec![one(x)?]),
    }
}

/// GPT-2 and BERT checkpoints are read unquantized.
fn no_quantization(k: &Keys) -> Result<Option<usize>, ConfigError> {
    match k.get("quantization_config") {
        Some(v) => Err(bad("quantization_config", v, "quantized checkpoints are read for llama, qwen2 and mistral")),
        None => Ok(None),
    }
}

/// Llama, Qwen2 and Mistral: RMSNorm, rotary, gated MLP.
fn decoder(k: &Keys, arch: Arch) -> Result<HfConfig, ConfigError> {
    let hidden = k.usize(&["hidden_size"])?;
    let num_heads = k.usize(&["num_attention_heads"])?;
    let kv = k.usize_of(&["num_key_value_heads"])?.unwrap_or(num_heads);
    let head_dim = heads(k, hidden, num_heads, kv)?;
    let act_v = k.get("hidden_act").cloned().unwrap_or(Value::from("silu"));
    // Qwen2 always has Q/K/V biases and no output bias; the others say so.
    let attention_bias = if arch == Arch::Qwen2 { true } else { k.bool_or("attention_bias", false)? };
    let sliding_window = match arch {
        Arch::Mistral => k.usize_of(&["sliding_window"])?,
        // Qwen2 declares a window but applies it only with use_sliding_window.
        Arch::Qwen2 if k.bool_or("use_sliding_window", false)? => {
            let v = k.get("use_sliding_window").cloned().unwrap_or(Value::Null);
            return Err(bad("use_sliding_window", &v, "Qwen2's sliding-window layers are not built"));
        }
        _ => None,
    };
    Ok(HfConfig {
        arch,
        vocab_size: k.usize(&["vocab_size"])?,
        hidden_size: hidden,
        intermediate_size: k.usize(&["intermediate_size"])?,
        num_layers: k.usize(&["num_hidden_layers"])?,
        num_heads,
        num_kv_heads: kv,
        head_dim,
        norm_eps: k.f64_of(&["rms_norm_eps"])?.unwrap_or(1e-6),
        activation: activation("hidden_act", &act_v)?,
        max_position_embeddings: k.usize_of(&["max_position_embeddings"])?.unwrap_or(2048),
        rope_theta: Some(k.f64_of(&["rope_theta"])?.unwrap_or(10000.0)),
        rope_scaling: rope_scaling(k)?,
        tie_word_embeddings: k.bool_or("tie_word_embeddings", false)?,
        attention_bias,
        mlp_bias: k.bool_or("mlp_bias", false)?,
        sliding_window,
        type_vocab_size: None,
        awq_group_size: awq(k)?,
        eos_token_ids: eos(k)?,
    })
}

/// GPT-2: LayerNorm, learned positions, fused QKV with biases, tied embeddings.
fn gpt2(k: &Keys) -> Result<HfConfig, ConfigError> {
    let hidden = k.usize(&["n_embd", "hidden_size"])?;
    let num_heads = k.usize(&["n_head", "num_attention_heads"])?;
    let head_dim = heads(k, hidden, num_heads, num_heads)?;
    let act_v = k.get("activation_function").cloned().unwrap_or(Value::from("gelu_new"));
    for (key, built) in [("scale_attn_by_inverse_layer_idx", false), ("reorder_and_upcast_attn", false), ("scale_attn_weights", true)] {
        if k.bool_or(key, built)? != built {
            return Err(bad(key, &Value::from(!built), format!("only {built} is built")));
        }
    }
    Ok(HfConfig {
        arch: Arch::Gpt2,
        vocab_size: k.usize(&["vocab_size"])?,
        hidden_size: hidden,
        intermediate_size: k.usize_of(&["n_inner"])?.unwrap_or(4 * hidden),
        num_layers: k.usize(&["n_layer", "num_hidden_layers"])?,
        num_heads,
        num_kv_heads: num_heads,
        head_dim,
        norm_eps: k.f64_of(&["layer_norm_epsilon"])?.unwrap_or(1e-5),
        activation: activation("activation_function", &act_v)?,
        max_position_embeddings: k.usize(&["n_positions", "max_position_embeddings"])?,
        rope_theta: None,
        rope_scaling: None,
        tie_word_embeddings: k.bool_or("tie_word_embeddings", true)?,
        attention_bias: true,
        mlp_bias: true,
        sliding_window: None,
        type_vocab_size: None,
        awq_group_size: no_quantization(k)?,
        eos_token_ids: eos(k)?,
    })
}

/// BERT: post-LayerNorm encoder with absolute positions and token types.
fn bert(k: &Keys) -> Result<HfConfig, ConfigError> {
    let hidden = k.usize(&["hidden_size"])?;
    let num_heads = k.usize(&["num_attention_heads"])?;
    let head_dim = heads(k, hidden, num_heads, num_heads)?;
    if let Some(v) = k.get("position_embedding_type").filter(|v| v.as_str() != Some("absolute")) {
        return Err(bad("position_embedding_type", v, "only absolute positions are built"));
    }
    for key in ["is_decoder", "add_cross_attention"] {
        if k.bool_or(key, false)? {
            return Err(bad(key, &Value::from(true), "kiln builds BERT as an encoder"));
        }
    }
    let act_v = k.get("hidden_act").cloned().unwrap_or(Value::from("gelu"));
    let act = activation("hidden_act", &act_v)?;
    if act == Activation::Silu {
        return Err(bad("hidden_act", &act_v, "BERT's MLP is built with gelu, gelu_new or relu"));
    }
    Ok(HfConfig {
        arch: Arch::Bert,
        vocab_size: k.usize(&["vocab_size"])?,
        hidden_size: hidden,
        intermediate_size: k.usize(&["intermediate_size"])?,
        num_layers: k.usize(&["num_hidden_layers"])?,
        num_heads,
        num_kv_heads: num_heads,
        head_dim,
        norm_eps: k.f64_of(&["layer_norm_eps"])?.unwrap_or(1e-12),
        activation: act,
        max_position_embeddings: k.usize(&["max_position_embeddings"])?,
        rope_theta: None,
        rope_scaling: None,
        tie_word_embeddings: k.bool_or("tie_word_embeddings", true)?,
        attention_bias: true,
        mlp_bias: true,
        sliding_window: None,
        awq_group_size: no_quantization(k)?,
        eos_token_ids: eos(k)?,
        type_vocab_size: Some(k.usize_of(&["type_vocab_size"])?.unwrap_or(2)),
    })
}
