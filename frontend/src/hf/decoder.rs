//! Llama, Qwen2 and Mistral decoders built in the IR from a config and a checkpoint, with the
//! ops an ONNX export at opset 23 has after kiln's import (RMSNormalization, MatMul against the
//! transposed projection weights, RotaryEmbedding, Attention with GQA, Sigmoid and Mul for
//! SiLU), so that the optimizer fuses them as it fuses an exported model.
//!
//! The prefill graph takes `input_ids` (int64 `[batch, seq]`) and returns `logits` (f32
//! `[batch, seq, vocab]`), then each layer's `present.{i}.key` and `present.{i}.value`
//! (`[batch, kv_heads, seq, head_dim]`, keys after rotary).
//!
//! The decode graph takes one token per sequence: `input_ids` (`[batch, 1]`), `position`
//! (int64 `[batch, 1]`: how many tokens each cache already holds) and every layer's
//! `past.{i}.key` / `past.{i}.value`, a cache of a fixed `max_len` positions set when the graph
//! is built (`[batch, kv_heads, max_len, head_dim]`, positions at and after `position` unused).
//! It writes the token's key and value at `position` (a `Where` over a one-hot row), attends over
//! positions up to it (and within Mistral's window), and returns `logits` (`[batch, 1, vocab]`)
//! and the updated caches as `present.{i}.key` / `present.{i}.value`.
//!
//! Weights are converted to f32; `--precision` lowers them afterwards like an ONNX model's.

use super::checkpoint::Checkpoint;
use super::config::{Activation, Arch, HfConfig, RopeScaling};
use super::HfError;
use kiln_ir::{DType, Data, Graph, Op, Tensor, TensorType, ValueId};
use std::sync::Arc;

/// What a prefill graph is specialized to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefill {
    pub batch: usize,
    pub seq: usize,
}

/// What a decode graph is specialized to: `batch` sequences, caches of `max_len` positions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decode {
    pub batch: usize,
    pub max_len: usize,
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    Prefill(Prefill),
    Decode(Decode),
}

/// The decode step's shared values: the position as `[batch, 1, 1, 1]`, the one-hot row
/// where the new key and value go (`[batch, 1, max_len, 1]`) and the visible positions
/// (`[batch, 1, 1, max_len]`).
pub(super) struct Step {
    onehot: ValueId,
    visible: ValueId,
}

/// Builds a graph node by node, naming values after the checkpoint's modules.
pub(super) struct Builder {
    pub g: Graph,
    /// An AWQ checkpoint's group size: its projections are 4-bit (`MatMulQ4`).
    pub awq: Option<usize>,
}

impl Builder {
    pub fn node(&mut self, name: &str, op: Op, ins: &[ValueId]) -> Result<ValueId, HfError> {
        self.nodes(name, op, ins, &[name.to_string()]).map(|v| v[0])
    }

    /// A node whose outputs are named `outs`.
    pub fn nodes(&mut self, name: &str, op: Op, ins: &[ValueId], outs: &[String]) -> Result<Vec<ValueId>, HfError> {
        let names: Vec<Option<String>> = outs.iter().map(|o| Some(o.clone())).collect();
        let v = self.g.add_node(name, op, ins.iter().map(|&i| Some(i)).collect(), &names).map_err(|e| HfError::Build(e.to_string()))?;
        v.into_iter().map(|o| o.ok_or_else(|| HfError::Build(format!("node `{name}` has no output")))).collect()
    }

    pub fn konst(&mut self, name: &str, t: Tensor) -> ValueId {
        self.g.add_const(name, Arc::new(t))
    }

    /// `x W^T (+ b)` for a Linear layer's `[out, in]` weight, W^T stored as the constant.
    #[allow(clippy::too_many_arguments)]
    pub fn linear(
        &mut self,
        ck: &mut Checkpoint,
        x: ValueId,
        prefix: &str,
        out: usize,
        inp: usize,
        bias: bool,
    ) -> Result<ValueId, HfError> {
        let mut y = match self.awq {
            Some(group) if ck.contains(&format!("{prefix}.qweight")) => self.awq_linear(ck, x, prefix, out, inp, group)?,
            _ => {
                let wt = self.transposed_weight(ck, &format!("{prefix}.weight"), out, inp)?;
                self.node(&format!("{prefix}/MatMul"), Op::MatMul {}, &[x, wt])?
            }
        };
        if bias {
            let b = self.weight(ck, &format!("{prefix}.bias"), &[out])?;
            y = self.node(&format!("{prefix}/Add"), Op::Binary { op: kiln_ir::BinaryOp::Add }, &[y, b])?;
        }
        Ok(y)
    }

    /// An AWQ Linear (AutoAWQ's "gemm" packing): `qweight` int32 [in, out/8] and `qzeros` int32
    /// [in/G, out/8] hold eight 4-bit values each, output channels in the order 0, 2, 4, 6, 1,
    /// 3, 5, 7 from the low bits; `scales` fp16 [in/G, out]. W = (q - zero) * scale, as kiln's
    /// `MatMulQ4` (weights kept 4-bit).
    fn awq_linear(
        &mut self,
        ck: &mut Checkpoint,
        x: ValueId,
        prefix: &str,
        out: usize,
        inp: usize,
        group: usize,
    ) -> Result<ValueId, HfError> {
        if !out.is_multiple_of(8) || !inp.is_multiple_of(group) {
            return Err(HfError::Build(format!(
                "`{prefix}`: AWQ packs 8 output channels per int32 and whole groups of {group} inputs; {inp}x{out} does not fit"
            )));
        }
        let groups = inp / group;
        let unpack = |t: &Tensor, rows: usize| -> Vec<u8> {
            const ORDER: [usize; 8] = [0, 2, 4, 6, 1, 3, 5, 7];
            let packed = t.to_i64();
            let mut v = vec![0u8; rows * out];
            for r in 0..rows {
                for c in 0..out / 8 {
                    let word = packed[r * (out / 8) + c] as u32;
                    for (i, &j) in ORDER.iter().enumerate() {
                        v[r * out + c * 8 + j] = ((word >> (4 * i)) & 0xF) as u8;
                    }
                }
            }
            v
        };
        let q = unpack(&ck.take(&format!("{prefix}.qweight"), &[inp, out / 8])?, inp);
        let z = unpack(&ck.take(&format!("{prefix}.qzeros"), &[groups, out / 8])?, groups);
        let s = ck.take(&format!("{prefix}.scales"), &[groups, out])?;
        let tensor = |dims: Vec<usize>, d: Data| Tensor::new(dims, d).map_err(|e| HfError::Build(e.to_string()));
        let qid = self.konst(&format!("{prefix}.qweight"), tensor(vec![inp, out], Data::U4(q))?);
        let sid = self.konst(&format!("{prefix}.scales"), s.cast(DType::F16));
        let zid = self.konst(&format!("{prefix}.qzeros"), tensor(vec![groups, out], Data::U4(z))?);
        self.node(&format!("{prefix}/MatMul"), Op::MatMulQ4 { group_size: group as i64 }, &[x, qid, sid, zid])
    }

    /// Checkpoint tensor `name`, of shape `dims`, as an f32 constant.
    pub fn weight(&mut self, ck: &mut Checkpoint, name: &str, dims: &[usize]) -> Result<ValueId, HfError> {
        let t = ck.take(name, dims)?;
        Ok(self.konst(name, f32_tensor(dims.to_vec(), &t.to_f64())?))
    }

    /// A Linear layer's `[out, in]` weight as the `[in, out]` constant a MatMul reads.
    fn transposed_weight(&mut self, ck: &mut Checkpoint, name: &str, out: usize, inp: usize) -> Result<ValueId, HfError> {
        let v = ck.take(name, &[out, inp])?.to_f64();
        let t: Vec<f64> = (0..out * inp).map(|i| v[(i % out) * inp + i / out]).collect();
        Ok(self.konst(name, f32_tensor(vec![inp, out], &t)?))
    }

    /// LayerNorm module `m` over the last axis (`weight` and `bias`, or the `gamma` and `beta`
    /// of older checkpoints).
    pub fn layer_norm(&mut self, ck: &mut Checkpoint, x: ValueId, m: &str, h: usize, eps: f64) -> Result<ValueId, HfError> {
        let (w, b) = if ck.contains(&format!("{m}.gamma")) { ("gamma", "beta") } else { ("weight", "bias") };
        let w = self.weight(ck, &format!("{m}.{w}"), &[h])?;
        let b = self.weight(ck, &format!("{m}.{b}"), &[h])?;
        self.node(m, Op::LayerNormalization { axis: -1, epsilon: eps as f32 }, &[x, w, b])
    }

    fn rms_norm(&mut self, ck: &mut Checkpoint, x: ValueId, prefix: &str, hidden: usize, eps: f64) -> Result<ValueId, HfError> {
        let w = self.weight(ck, &format!("{prefix}.weight"), &[hidden])?;
        self.node(prefix, Op::RMSNormalization { axis: -1, epsilon: eps as f32 }, &[x, w])
    }
}

/// The op of a GELU-style MLP's `hidden_act` (`gelu`, `gelu_new`, `relu`); None for silu, which
/// only the gated MLP of the Llama-style decoders takes.
pub(super) fn mlp_activation(a: Activation) -> Option<Op> {
    match a {
        Activation::Gelu => Some(Op::Gelu { approximate: kiln_ir::ops::GeluApprox::None }),
        Activation::GeluTanh => Some(Op::Gelu { approximate: kiln_ir::ops::GeluApprox::Tanh }),
        Activation::Relu => Some(Op::Unary { op: kiln_ir::UnaryOp::Relu }),
        Activation::Silu => None,
    }
}

/// Checks a graph's size: `batch` and `positions` positive, and positions within
/// `max_position_embeddings` unless `limit` is None (what bounds them, for the message).
pub(super) fn check_size(cfg: &HfConfig, batch: usize, positions: usize, limit: Option<String>) -> Result<(), HfError> {
    if batch == 0 || positions == 0 {
        return Err(HfError::Unsupported(format!("batch {batch} and sequence length {positions} must be positive")));
    }
    if let Some(why) = limit.filter(|_| positions > cfg.max_position_embeddings) {
        return Err(HfError::Unsupported(format!("a sequence of {positions} exceeds {why}")));
    }
    Ok(())
}

/// `prefix` when the checkpoint holds `prefix + probe` (a task model's checkpoint wraps the base
/// model under it), else no prefix.
pub(super) fn module_prefix(ck: &Checkpoint, prefix: &'static str, probe: &str) -> &'static str {
    if ck.contains(&format!("{prefix}{probe}")) {
        prefix
    } else {
        ""
    }
}

pub(super) fn f32_tensor(dims: Vec<usize>, v: &[f64]) -> Result<Tensor, HfError> {
    Tensor::new(dims, Data::from_f64(DType::F32, v)).map_err(|e| HfError::Build(e.to_string()))
}

/// The rotary inverse frequencies, `rope_scaling` applied as transformers does for a sequence
/// that covers `positions` positions.
fn inv_freq(cfg: &HfConfig, positions: usize) -> Vec<f64> {
    let d = cfg.head_dim;
    let mut base = cfg.rope_theta.unwrap_or(10000.0);
    if let Some(RopeScaling::Dynamic { factor }) = cfg.rope_scaling {
        let max = cfg.max_position_embeddings as f64;
        let len = (positions as f64).max(max);
        base *= (factor * len / max - (factor - 1.0)).powf(d as f64 / (d as f64 - 2.0));
    }
    let inv: Vec<f64> = (0..d / 2).map(|i| 1.0 / base.powf((2 * i) as f64 / d as f64)).collect();
    match cfg.rope_scaling {
        Some(RopeScaling::Linear { factor }) => inv.iter().map(|f| f / factor).collect(),
        Some(RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings }) => {
            let old = original_max_position_embeddings as f64;
            let (low_wavelen, high_wavelen) = (old / low_freq_factor, old / high_freq_factor);
            inv.iter()
                .map(|&f| {
                    let wavelen = 2.0 * std::f64::consts::PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
        _ => inv,
    }
}

/// The cos and sin caches, `[positions, head_dim / 2]`.
fn rotary_caches(cfg: &HfConfig, positions: usize) -> Result<(Tensor, Tensor), HfError> {
    let inv = inv_freq(cfg, positions);
    let half = inv.len();
    let angle = |i: usize| (i / half) as f64 * inv[i % half];
    let cos: Vec<f64> = (0..positions * half).map(|i| angle(i).cos()).collect();
    let sin: Vec<f64> = (0..positions * half).map(|i| angle(i).sin()).collect();
    Ok((f32_tensor(vec![positions, half], &cos)?, f32_tensor(vec![positions, half], &sin)?))
}

pub(super) fn i64_tensor(dims: Vec<usize>, v: Vec<i64>) -> Result<Tensor, HfError> {
    Tensor::new(dims, Data::I64(v)).map_err(|e| HfError::Build(e.to_string()))
}

/// A graph's interface and what its layers share.
pub(super) struct Start {
    pub bd: Builder,
    pub b: usize,
    /// Tokens per sequence (1 in decode) and positions the graph covers (the caches' length in
    /// decode).
    pub s: usize,
    pub positions: usize,
    pub ids: ValueId,
    /// Each token's position: a constant in prefill, the `position` input in decode.
    pub pos: ValueId,
    /// Decode: every layer's cache inputs and the step's masks.
    pub pasts: Vec<(ValueId, ValueId)>,
    pub step: Option<Step>,
    /// A sliding window shorter than the positions covered.
    pub window: Option<usize>,
}

/// Checks the graph's size, then adds its inputs (`input_ids`; in decode the position and
/// the caches of `kv` heads) and the positions. `limit`: what bounds the positions to
/// `max_position_embeddings`, or None where nothing does.
pub(super) fn start(cfg: &HfConfig, kind: Kind, kv: usize, limit: Option<String>) -> Result<Start, HfError> {
    let (b, s, positions) = match kind {
        Kind::Prefill(p) => (p.batch, p.seq, p.seq),
        Kind::Decode(d) => (d.batch, 1, d.max_len),
    };
    check_size(cfg, b, positions, limit)?;
    let what = if matches!(kind, Kind::Prefill(_)) { "prefill" } else { "decode" };
    let mut bd = Builder { g: Graph::new(format!("{:?} {what}", cfg.arch).to_lowercase()), awq: cfg.awq_group_size };
    let ids = bd.g.add_input("input_ids", TensorType::fixed(DType::I64, &[b, s]));
    let (position, pasts) = decode_inputs(&mut bd, kind, cfg.num_layers, b, kv, cfg.head_dim);
    let window = cfg.sliding_window.filter(|&w| w < positions);
    let (pos, step) = match position {
        Some(p) => (p, Some(decode_step(&mut bd, p, b, positions, window)?)),
        None => (bd.konst("position_ids", i64_tensor(vec![b, s], (0..b * s).map(|i| (i % s) as i64).collect())?), None),
    };
    Ok(Start { bd, b, s, positions, ids, pos, pasts, step, window })
}

/// The prefill or decode graph of a Llama, Qwen2 or Mistral checkpoint.
pub(super) fn build(cfg: &HfConfig, ck: &mut Checkpoint, kind: Kind) -> Result<Graph, HfError> {
    if !matches!(cfg.arch, Arch::Llama | Arch::Qwen2 | Arch::Mistral) {
        return Err(HfError::Build(format!("{:?} is not a Llama-style decoder", cfg.arch)));
    }
    if cfg.activation != Activation::Silu {
        return Err(HfError::Unsupported(format!("hidden_act {:?}: the gated MLP is built with silu", cfg.activation)));
    }
    let (h, nh, kv, hd, inter) = (cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.intermediate_size);
    let limit = (!matches!(cfg.rope_scaling, Some(RopeScaling::Dynamic { .. })))
        .then(|| format!("max_position_embeddings = {} (only dynamic rope_scaling extends it)", cfg.max_position_embeddings));
    let Start { mut bd, b, s, positions, ids, pos, pasts, step, window } = start(cfg, kind, kv, limit)?;
    let table = bd.weight(ck, "model.embed_tokens.weight", &[cfg.vocab_size, h])?;
    let mut x = bd.node("model.embed_tokens", Op::Gather { axis: 0 }, &[table, ids])?;
    let (cos, sin) = rotary_caches(cfg, positions)?;
    let (cos, sin) = (bd.konst("rotary.cos_cache", cos), bd.konst("rotary.sin_cache", sin));
    // Prefill with a sliding window shorter than the sequence: a boolean mask.
    let mask = match (window, kind) {
        (Some(w), Kind::Prefill(_)) => {
            let m: Vec<bool> = (0..s * s).map(|i| (i % s) <= i / s && i / s - i % s < w).collect();
            Some(bd.konst("sliding_window_mask", Tensor::new(vec![s, s], Data::Bool(m)).map_err(|e| HfError::Build(e.to_string()))?))
        }
        _ => None,
    };
    let mut presents = vec![];
    for i in 0..cfg.num_layers {
        let l = format!("model.layers.{i}");
        let hn = bd.rms_norm(ck, x, &format!("{l}.input_layernorm"), h, cfg.norm_eps)?;
        let qkv_bias = cfg.attention_bias;
        let q = bd.linear(ck, hn, &format!("{l}.self_attn.q_proj"), nh * hd, h, qkv_bias)?;
        let k = bd.linear(ck, hn, &format!("{l}.self_attn.k_proj"), kv * hd, h, qkv_bias)?;
        let v = bd.linear(ck, hn, &format!("{l}.self_attn.v_proj"), kv * hd, h, qkv_bias)?;
        let rope = |heads: usize| Op::RotaryEmbedding { interleaved: false, num_heads: heads as i64, rotary_embedding_dim: 0 };
        let q = bd.node(&format!("{l}.self_attn.rotary_q"), rope(nh), &[q, cos, sin, pos])?;
        let k = bd.node(&format!("{l}.self_attn.rotary_k"), rope(kv), &[k, cos, sin, pos])?;
        let att = Attn { heads: nh, kv, hd, b, step: step.as_ref(), pasts: &pasts, mask, causal: window.is_none() };
        let (attended, pk, pv) = self_attention(&mut bd, &att, &format!("{l}.self_attn"), i, q, k, v)?;
        presents.push((pk, pv));
        // Llama's attention_bias covers the output projection too; Qwen2 has none there.
        let o_bias = cfg.attention_bias && cfg.arch != Arch::Qwen2;
        let o = bd.linear(ck, attended, &format!("{l}.self_attn.o_proj"), h, nh * hd, o_bias)?;
        x = bd.node(&format!("{l}/attn_residual"), Op::Binary { op: kiln_ir::BinaryOp::Add }, &[x, o])?;
        let hn = bd.rms_norm(ck, x, &format!("{l}.post_attention_layernorm"), h, cfg.norm_eps)?;
        let gate = bd.linear(ck, hn, &format!("{l}.mlp.gate_proj"), inter, h, cfg.mlp_bias)?;
        let up = bd.linear(ck, hn, &format!("{l}.mlp.up_proj"), inter, h, cfg.mlp_bias)?;
        let sg = bd.node(&format!("{l}.mlp.act/Sigmoid"), Op::Unary { op: kiln_ir::UnaryOp::Sigmoid }, &[gate])?;
        let act = bd.node(&format!("{l}.mlp.act"), Op::Binary { op: kiln_ir::BinaryOp::Mul }, &[gate, sg])?;
        let prod = bd.node(&format!("{l}.mlp/Mul"), Op::Binary { op: kiln_ir::BinaryOp::Mul }, &[act, up])?;
        let down = bd.linear(ck, prod, &format!("{l}.mlp.down_proj"), h, inter, cfg.mlp_bias)?;
        x = bd.node(&format!("{l}/mlp_residual"), Op::Binary { op: kiln_ir::BinaryOp::Add }, &[x, down])?;
    }
    let xn = bd.rms_norm(ck, x, "model.norm", h, cfg.norm_eps)?;
    let head = if cfg.tie_word_embeddings && !ck.contains("lm_head.weight") {
        // The tied head reads the embedding table, [vocab, hidden], transposed.
        bd.node("lm_head/Transpose", Op::Transpose { perm: vec![1, 0] }, &[table])?
    } else {
        bd.transposed_weight(ck, "lm_head.weight", cfg.vocab_size, h)?
    };
    let logits = bd.nodes("lm_head", Op::MatMul {}, &[xn, head], &["logits".to_string()])?[0];
    Ok(finish(bd, logits, presents))
}

/// The graph with its outputs: logits, then each layer's key and value.
pub(super) fn finish(mut bd: Builder, logits: ValueId, presents: Vec<(ValueId, ValueId)>) -> Graph {
    let mut outputs = vec![logits];
    for (k, v) in presents {
        outputs.extend([k, v]);
    }
    bd.g.outputs = outputs;
    bd.g
}

/// A decode graph's inputs after `input_ids`: the position, then every layer's cache.
fn decode_inputs(
    bd: &mut Builder,
    kind: Kind,
    layers: usize,
    b: usize,
    kv: usize,
    hd: usize,
) -> (Option<ValueId>, Vec<(ValueId, ValueId)>) {
    let Kind::Decode(d) = kind else { return (None, vec![]) };
    let pos = bd.g.add_input("position", TensorType::fixed(DType::I64, &[b, 1]));
    let pasts = (0..layers)
        .map(|i| {
            let t = TensorType::fixed(DType::F32, &[b, kv, d.max_len, hd]);
            let k = bd.g.add_input(format!("past.{i}.key"), t.clone());
            (k, bd.g.add_input(format!("past.{i}.value"), t))
        })
        .collect();
    (Some(pos), pasts)
}

/// What a layer's self-attention needs besides its Q, K and V.
pub(super) struct Attn<'a> {
    pub heads: usize,
    pub kv: usize,
    pub hd: usize,
    pub b: usize,
    /// Decode: the step's shared masks, and each layer's cache inputs.
    pub step: Option<&'a Step>,
    pub pasts: &'a [(ValueId, ValueId)],
    /// Prefill: a boolean mask (a sliding window), or causal attention.
    pub mask: Option<ValueId>,
    pub causal: bool,
}

/// Self-attention of layer `i` (module `m`) over 3-D Q `[b, s, heads * hd]`, K and V
/// `[b, s, kv * hd]`: in prefill one Attention whose present key and value are the layer's
/// outputs; in decode the token's key and value written into the layer's caches at the
/// position, then attention over the visible positions. Returns the attended `[b, s, heads *
/// hd]` and the present key and value.
pub(super) fn self_attention(
    bd: &mut Builder,
    a: &Attn,
    m: &str,
    i: usize,
    q: ValueId,
    k: ValueId,
    v: ValueId,
) -> Result<(ValueId, ValueId, ValueId), HfError> {
    let (b, hd) = (a.b, a.hd);
    let Some(st) = a.step else {
        let mut ins = vec![q, k, v];
        ins.extend(a.mask);
        let names = [m.to_string(), format!("present.{i}.key"), format!("present.{i}.value")];
        let outs = bd.nodes(m, attention(a.heads, a.kv, a.causal), &ins, &names)?;
        return Ok((outs[0], outs[1], outs[2]));
    };
    // [b, 1, heads * hd] -> [b, heads, 1, hd].
    let heads4 = |bd: &mut Builder, x: ValueId, heads: usize, what: &str| -> Result<ValueId, HfError> {
        let shape = bd.konst(&format!("{m}.{what}_shape"), i64_tensor(vec![4], vec![b as i64, 1, heads as i64, hd as i64])?);
        let r = bd.node(&format!("{m}.{what}_heads"), Op::Reshape { allowzero: false }, &[x, shape])?;
        bd.node(&format!("{m}.{what}_transpose"), Op::Transpose { perm: vec![0, 2, 1, 3] }, &[r])
    };
    let (q4, k4, v4) = (heads4(bd, q, a.heads, "q")?, heads4(bd, k, a.kv, "k")?, heads4(bd, v, a.kv, "v")?);
    let (pk, pv) = *a.pasts.get(i).ok_or_else(|| HfError::Build(format!("no cache input for layer {i}")))?;
    let pk = bd.nodes(&format!("{m}.cache_k"), Op::Where {}, &[st.onehot, k4, pk], &[format!("present.{i}.key")])?[0];
    let pv = bd.nodes(&format!("{m}.cache_v"), Op::Where {}, &[st.onehot, v4, pv], &[format!("present.{i}.value")])?[0];
    let y4 = bd.node(m, attention(a.heads, a.kv, false), &[q4, pk, pv, st.visible])?;
    let t = bd.node(&format!("{m}.y_transpose"), Op::Transpose { perm: vec![0, 2, 1, 3] }, &[y4])?;
    let shape = bd.konst(&format!("{m}.y_shape"), i64_tensor(vec![3], vec![b as i64, 1, (a.heads * hd) as i64])?);
    let y = bd.node(&format!("{m}.y"), Op::Reshape { allowzero: false }, &[t, shape])?;
    Ok((y, pk, pv))
}

/// Attention over `heads` query heads and `kv` key/value heads (GQA), scaled by 1/sqrt(hd).
pub(super) fn attention(heads: usize, kv: usize, causal: bool) -> Op {
    Op::Attention {
        is_causal: causal,
        kv_num_heads: kv as i64,
        q_num_heads: heads as i64,
        qk_matmul_output_mode: 0,
        scale: None,
        softcap: 0.0,
        softmax_precision: None,
        zero_undefined_rows: false,
    }
}

/// The decode step's one-hot cache row and visible positions for `position` (`[b, 1]`).
fn decode_step(bd: &mut Builder, position: ValueId, b: usize, max_len: usize, window: Option<usize>) -> Result<Step, HfError> {
    let shape = bd.konst("position_shape", i64_tensor(vec![4], vec![b as i64, 1, 1, 1])?);
    let p4 = bd.node("position/Reshape", Op::Reshape { allowzero: false }, &[position, shape])?;
    let range: Vec<i64> = (0..max_len as i64).collect();
    let col = bd.konst("cache_rows", i64_tensor(vec![1, 1, max_len, 1], range.clone())?);
    let row = bd.konst("cache_columns", i64_tensor(vec![1, 1, 1, max_len], range)?);
    let cmp = |op| Op::Binary { op };
    let onehot = bd.node("cache/onehot", cmp(kiln_ir::BinaryOp::Equal), &[col, p4])?;
    let mut visible = bd.node("cache/visible", cmp(kiln_ir::BinaryOp::LessOrEqual), &[row, p4])?;
    if let Some(w) = window {
        // Position j is visible while position - j < window.
        let wk = bd.konst("sliding_window", i64_tensor(vec![], vec![w as i64])?);
        let start = bd.node("cache/window_start", cmp(kiln_ir::BinaryOp::Sub), &[p4, wk])?;
        let inside = bd.node("cache/in_window", cmp(kiln_ir::BinaryOp::Greater), &[row, start])?;
        visible = bd.node("cache/visible_in_window", cmp(kiln_ir::BinaryOp::And), &[visible, inside])?;
    }
    Ok(Step { onehot, visible })
}
