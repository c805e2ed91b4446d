//! config.json reading: each architecture's keys, its defaults, and every rejected value named.

use kiln_frontend::hf::config::{Activation, Arch, ConfigError, HfConfig, RopeScaling};

const LLAMA: &str = r#"{"model_type": "llama", "vocab_size": 1000, "hidden_size": 256, "intermediate_size": 512,
  "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
  "hidden_act": "silu", "max_position_embeddings": 512, "rope_theta": 500000.0, "tie_word_embeddings": false,
  "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192}, "torch_dtype": "float32", "bos_token_id": 1}"#;

#[test]
fn a_llama_config_gives_its_math() {
    let c = HfConfig::parse(LLAMA).expect("parses");
    assert_eq!((c.arch, c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim), (Arch::Llama, 256, 4, 2, 64));
    assert_eq!((c.norm_eps, c.rope_theta, c.activation), (1e-5, Some(500000.0), Activation::Silu));
    assert_eq!(
        c.rope_scaling,
        Some(RopeScaling::Llama3 { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192 })
    );
    assert!(!c.attention_bias && !c.tie_word_embeddings);
}

#[test]
fn qwen2_has_qkv_biases_and_mistral_a_window() {
    let q = HfConfig::parse(&LLAMA.replace("\"llama\"", "\"qwen2\"")).expect("qwen2");
    assert!(q.attention_bias);
    let m = HfConfig::parse(
        &LLAMA.replace("\"llama\"", "\"mistral\"").replace("\"rms_norm_eps\"", "\"sliding_window\": 128, \"rms_norm_eps\""),
    )
    .expect("mistral");
    assert_eq!(m.sliding_window, Some(128));
}

#[test]
fn gpt2_and_bert_use_their_own_key_names() {
    let g = HfConfig::parse(
        r#"{"model_type": "gpt2", "vocab_size": 1000, "n_embd": 128, "n_head": 4, "n_layer": 2,
        "n_positions": 256, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}"#,
    )
    .expect("gpt2");
    assert_eq!((g.hidden_size, g.intermediate_size, g.head_dim, g.activation), (128, 512, 32, Activation::GeluTanh));
    assert!(g.tie_word_embeddings && g.attention_bias);
    let b = HfConfig::parse(
        r#"{"model_type": "bert", "vocab_size": 1000, "hidden_size": 128, "num_attention_heads": 4,
        "num_hidden_layers": 2, "intermediate_size": 256, "max_position_embeddings": 512, "type_vocab_size": 2,
        "layer_norm_eps": 1e-12, "hidden_act": "gelu", "position_embedding_type": "absolute"}"#,
    )
    .expect("bert");
    assert_eq!((b.type_vocab_size, b.activation, b.norm_eps), (Some(2), Activation::Gelu, 1e-12));
}

fn err(text: &str) -> ConfigError {
    HfConfig::parse(text).expect_err("rejected")
}

#[test]
fn unusable_configs_are_rejected_naming_the_key() {
    let cases = [
        (LLAMA.replace("\"llama\"", "\"gemma\""), "model_type"),
        (LLAMA.replace("\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\""), "rope_scaling.rope_type"),
        (LLAMA.replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"), "num_key_value_heads"),
        (LLAMA.replace("\"hidden_act\": \"silu\"", "\"hidden_act\": \"xielu\""), "hidden_act"),
        (LLAMA.replace("\"hidden_size\": 256", "\"hidden_size\": -4"), "hidden_size"),
        (LLAMA.replace("\"hidden_size\": 256,", ""), "hidden_size"),
        (LLAMA.replace("\"rms_norm_eps\": 1e-5", "\"rms_norm_eps\": \"small\""), "rms_norm_eps"),
        (LLAMA.replace("\"tie_word_embeddings\": false", "\"tie_word_embeddings\": 0"), "tie_word_embeddings"),
        (LLAMA.replace("\"factor\": 8.0, ", ""), "rope_scaling.factor"),
        (
            LLAMA
                .replace("\"num_attention_heads\": 4", "\"num_attention_heads\": 3")
                .replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"),
            "num_attention_heads",
        ),
        (
            LLAMA.replace("\"llama\"", "\"qwen2\"").replace("\"rms_norm_eps\"", "\"use_sliding_window\": true, \"rms_norm_eps\""),
            "use_sliding_window",
        ),
        (
            r#"{"model_type": "bert", "vocab_size": 10, "hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1,
            "intermediate_size": 16, "max_position_embeddings": 8, "position_embedding_type": "relative_key"}"#
                .to_string(),
            "position_embedding_type",
        ),
        (
            r#"{"model_type": "gpt2", "vocab_size": 10, "n_embd": 8, "n_head": 2, "n_layer": 1, "n_positions": 8,
            "scale_attn_by_inverse_layer_idx": true}"#
                .to_string(),
            "scale_attn_by_inverse_layer_idx",
        ),
    ];
    for (text, key) in cases {
        let e = err(&text).to_string();
        assert!(e.contains(&format!("`{key}`")), "expected `{key}` named in: {e}");
    }
    assert!(matches!(err("[1, 2]"), ConfigError::Json(_)));
    assert!(matches!(err("{\"model_type\": "), ConfigError::Json(_)));
    assert!(matches!(err("{}"), ConfigError::Missing { .. }));
}

#[test]
fn linear_and_dynamic_rope_scaling_and_the_defaults() {
    let base = r#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 1, "num_attention_heads": 4 SCALING}"#;
    let c = HfConfig::parse(&base.replace(" SCALING", "")).expect("defaults");
    assert_eq!((c.num_kv_heads, c.head_dim, c.rope_theta, c.rope_scaling.clone()), (4, 16, Some(10000.0), None));
    let lin = HfConfig::parse(&base.replace(" SCALING", r#", "rope_scaling": {"type": "linear", "factor": 2.0}"#)).expect("linear");
    assert_eq!(lin.rope_scaling, Some(RopeScaling::Linear { factor: 2.0 }));
    let dy = HfConfig::parse(&base.replace(" SCALING", r#", "rope_scaling": {"rope_type": "dynamic", "factor": 4.0}"#)).expect("dynamic");
    assert_eq!(dy.rope_scaling, Some(RopeScaling::Dynamic { factor: 4.0 }));
}

#[test]
fn awq_quantization_configs_are_read_and_other_methods_refused_by_name() {
    let with = |q: &str| LLAMA.replacen('{', &format!("{{\"quantization_config\": {q}, "), 1);
    let c = HfConfig::parse(&with(r#"{"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": true, "version": "GEMM"}"#))
        .expect("awq");
    assert_eq!(c.awq_group_size, Some(128));
    assert_eq!(HfConfig::parse(LLAMA).expect("plain").awq_group_size, None);
    for (q, key) in [
        (r#"{"quant_method": "gptq", "bits": 4, "group_size": 128}"#, "quantization_config.quant_method"),
        (r#"{"quant_method": "awq", "bits": 8, "group_size": 128}"#, "quantization_config.bits"),
        (r#"{"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemv"}"#, "quantization_config.version"),
        (r#"{"quant_method": "awq", "bits": 4}"#, "quantization_config.group_size"),
    ] {
        let e = err(&with(q)).to_string();
        assert!(e.contains(key), "{q}: {e}");
    }
}

#[test]
fn eos_token_id_is_one_id_a_list_or_none() {
    assert_eq!(HfConfig::parse(LLAMA).expect("plain").eos_token_ids, Vec::<i64>::new());
    let eos = |v: &str| HfConfig::parse(&LLAMA.replacen('{', &format!("{{\"eos_token_id\": {v}, "), 1)).map(|c| c.eos_token_ids);
    assert_eq!(eos("2").expect("one"), vec![2]);
    assert_eq!(eos("[2, 7]").expect("list"), vec![2, 7]);
    assert!(eos("\"x\"").expect_err("a string").to_string().contains("eos_token_id"));
}
