//! BERT encoders built in the IR: word, position and token-type embeddings with their
//! LayerNorm, post-norm layers (Q, K and V Linear layers into one bidirectional Attention
//! masked by `attention_mask`, the output projection, residual and LayerNorm, the GELU MLP,
//! residual and LayerNorm), and the pooler where the checkpoint has one.
//!
//! The graph takes `input_ids`, `attention_mask` (1 for a token, 0 for padding) and
//! `token_type_ids`, each int64 `[batch, seq]`, the interface of BERT's ONNX exports. It returns
//! `last_hidden_state` (f32 `[batch, seq, hidden]`), then `pooler_output` (`[batch, hidden]`,
//! `tanh` of the dense layer over the first token) when the checkpoint has `pooler.dense`.
//!
//! Checkpoints of `BertModel` and of the task models that wrap it under `bert.` are read. The
//! pre-training heads of `BertForPreTraining` and `BertForMaskedLM` checkpoints (`cls.`) are not
//! part of the encoder and are not built; any other tensor the encoder does not use is an error.

use super::checkpoint::Checkpoint;
use super::config::{Arch, HfConfig};
use super::decoder::{attention, check_size, i64_tensor, mlp_activation, module_prefix, Builder};
use super::HfError;
use kiln_ir::ops::E8M0Rounding;
use kiln_ir::{BinaryOp, DType, Graph, Op, TensorType, UnaryOp};

/// Tensors of a BERT checkpoint that the encoder does not use: the pre-training heads, and
/// the position and token-type id buffers some checkpoints save.
pub(super) fn ignorable(name: &str) -> bool {
    name.starts_with("cls.") || name.ends_with("embeddings.position_ids") || name.ends_with("embeddings.token_type_ids")
}

/// The encoder graph for `batch` sequences of `seq` tokens.
pub(super) fn build(cfg: &HfConfig, ck: &mut Checkpoint, batch: usize, seq: usize) -> Result<Graph, HfError> {
    if cfg.arch != Arch::Bert {
        return Err(HfError::Build(format!("{:?} is not BERT", cfg.arch)));
    }
    let limit = format!("max_position_embeddings = {} (the learned position table)", cfg.max_position_embeddings);
    check_size(cfg, batch, seq, Some(limit))?;
    let act = mlp_activation(cfg.activation)
        .ok_or_else(|| HfError::Unsupported("hidden_act silu in BERT: its MLP is built with gelu, gelu_new or relu".into()))?;
    let (h, nh, hd, inter, eps) = (cfg.hidden_size, cfg.num_heads, cfg.head_dim, cfg.intermediate_size, cfg.norm_eps);
    let types = cfg.type_vocab_size.unwrap_or(2);
    // `bert.` in the task models' checkpoints, none in BertModel ones.
    let pre = module_prefix(ck, "bert.", "embeddings.word_embeddings.weight");
    let mut bd = Builder { g: Graph::new("bert encoder"), awq: None };
    let ids_t = TensorType::fixed(DType::I64, &[batch, seq]);
    let ids = bd.g.add_input("input_ids", ids_t.clone());
    let mask = bd.g.add_input("attention_mask", ids_t.clone());
    let type_ids = bd.g.add_input("token_type_ids", ids_t);

    let e = format!("{pre}embeddings");
    let words = bd.weight(ck, &format!("{e}.word_embeddings.weight"), &[cfg.vocab_size, h])?;
    let places = bd.weight(ck, &format!("{e}.position_embeddings.weight"), &[cfg.max_position_embeddings, h])?;
    let kinds = bd.weight(ck, &format!("{e}.token_type_embeddings.weight"), &[types, h])?;
    let positions = bd.konst("position_ids", i64_tensor(vec![1, seq], (0..seq as i64).collect())?);
    let we = bd.node(&format!("{e}.word_embeddings"), Op::Gather { axis: 0 }, &[words, ids])?;
    let pe = bd.node(&format!("{e}.position_embeddings"), Op::Gather { axis: 0 }, &[places, positions])?;
    let te = bd.node(&format!("{e}.token_type_embeddings"), Op::Gather { axis: 0 }, &[kinds, type_ids])?;
    let sum = bd.node(&format!("{e}/Add"), Op::Binary { op: BinaryOp::Add }, &[we, te])?;
    let sum = bd.node(&format!("{e}/Add_1"), Op::Binary { op: BinaryOp::Add }, &[sum, pe])?;
    let mut x = bd.layer_norm(ck, sum, &format!("{e}.LayerNorm"), h, eps)?;

    // Keys a token may attend to: `[batch, 1, 1, seq]`, true where attention_mask is nonzero.
    let cast = Op::Cast { to: DType::Bool, saturate: false, round_mode: E8M0Rounding::Up };
    let visible = bd.node("attention_mask/Cast", cast, &[mask])?;
    let shape = bd.konst("attention_mask_shape", i64_tensor(vec![4], vec![batch as i64, 1, 1, seq as i64])?);
    let visible = bd.node("attention_mask/Reshape", Op::Reshape { allowzero: false }, &[visible, shape])?;

    for i in 0..cfg.num_layers {
        let l = format!("{pre}encoder.layer.{i}");
        let a = format!("{l}.attention");
        let q = bd.linear(ck, x, &format!("{a}.self.query"), nh * hd, h, true)?;
        let k = bd.linear(ck, x, &format!("{a}.self.key"), nh * hd, h, true)?;
        let v = bd.linear(ck, x, &format!("{a}.self.value"), nh * hd, h, true)?;
        let y = bd.node(&format!("{a}.self"), attention(nh, nh, false), &[q, k, v, visible])?;
        let o = bd.linear(ck, y, &format!("{a}.output.dense"), h, nh * hd, true)?;
        let r = bd.node(&format!("{a}.output/Add"), Op::Binary { op: BinaryOp::Add }, &[o, x])?;
        x = bd.layer_norm(ck, r, &format!("{a}.output.LayerNorm"), h, eps)?;
        let up = bd.linear(ck, x, &format!("{l}.intermediate.dense"), inter, h, true)?;
        let up = bd.node(&format!("{l}.intermediate.act"), act.clone(), &[up])?;
        let down = bd.linear(ck, up, &format!("{l}.output.dense"), h, inter, true)?;
        let r = bd.node(&format!("{l}.output/Add"), Op::Binary { op: BinaryOp::Add }, &[down, x])?;
        x = bd.layer_norm(ck, r, &format!("{l}.output.LayerNorm"), h, eps)?;
    }
    bd.g.values[x.0 as usize].name = "last_hidden_state".to_string();
    bd.g.outputs = vec![x];
    if ck.contains(&format!("{pre}pooler.dense.weight")) {
        let first = bd.konst("first_token", i64_tensor(vec![], vec![0])?);
        let cls = bd.node(&format!("{pre}pooler/first_token"), Op::Gather { axis: 1 }, &[x, first])?;
        let d = bd.linear(ck, cls, &format!("{pre}pooler.dense"), h, h, true)?;
        let p = bd.nodes(&format!("{pre}pooler.activation"), Op::Unary { op: UnaryOp::Tanh }, &[d], &["pooler_output".to_string()])?;
        bd.g.outputs.push(p[0]);
    }
    Ok(bd.g)
}
