//! GPT-2 built in the IR: token and learned position embeddings, pre-norm LayerNorm layers
//! whose Q, K and V come from `c_attn`'s three column blocks, the GELU MLP, and the
//! head tied to the token embedding (read transposed in place). Its Conv1D weights are stored
//! `[in, out]`, as a MatMul reads them. Prefill and decode graphs have the interface of
//! [`super::decoder`]'s (there is no GQA: as many key/value heads as heads).

use super::checkpoint::Checkpoint;
use super::config::{Arch, HfConfig};
use super::decoder::{f32_tensor, finish, mlp_activation, module_prefix, self_attention, start, Attn, Builder, Kind, Start};
use super::HfError;
use kiln_ir::{BinaryOp, Graph, Op, ValueId};

/// `x W + b` for a Conv1D's `[inp, out]` weight.
fn conv1d(bd: &mut Builder, ck: &mut Checkpoint, x: ValueId, m: &str, inp: usize, out: usize) -> Result<ValueId, HfError> {
    let w = bd.weight(ck, &format!("{m}.weight"), &[inp, out])?;
    let y = bd.node(&format!("{m}/MatMul"), Op::MatMul {}, &[x, w])?;
    let b = bd.weight(ck, &format!("{m}.bias"), &[out])?;
    bd.node(&format!("{m}/Add"), Op::Binary { op: BinaryOp::Add }, &[y, b])
}

/// Q, K and V from `c_attn` (`[h, 3h]` and its bias), as three products of `h` columns each
/// (the optimizer merges them back into one, as it merges separate projections).
fn qkv(bd: &mut Builder, ck: &mut Checkpoint, x: ValueId, m: &str, h: usize) -> Result<[ValueId; 3], HfError> {
    let w = ck.take(&format!("{m}.weight"), &[h, 3 * h])?.to_f64();
    let b = ck.take(&format!("{m}.bias"), &[3 * h])?.to_f64();
    let mut out = [x; 3];
    for (p, (o, name)) in out.iter_mut().zip(["q", "k", "v"]).enumerate() {
        let cols: Vec<f64> = (0..h * h).map(|i| w[(i / h) * 3 * h + p * h + i % h]).collect();
        let wp = bd.konst(&format!("{m}.weight.{name}"), f32_tensor(vec![h, h], &cols)?);
        let y = bd.node(&format!("{m}.{name}/MatMul"), Op::MatMul {}, &[x, wp])?;
        let bp = bd.konst(&format!("{m}.bias.{name}"), f32_tensor(vec![h], &b[p * h..(p + 1) * h])?);
        *o = bd.node(&format!("{m}.{name}"), Op::Binary { op: BinaryOp::Add }, &[y, bp])?;
    }
    Ok(out)
}

pub(super) fn build(cfg: &HfConfig, ck: &mut Checkpoint, kind: Kind) -> Result<Graph, HfError> {
    if cfg.arch != Arch::Gpt2 {
        return Err(HfError::Build(format!("{:?} is not GPT-2", cfg.arch)));
    }
    let act = mlp_activation(cfg.activation).ok_or_else(|| HfError::Unsupported("activation_function silu in GPT-2".into()))?;
    let (h, nh, hd, inter) = (cfg.hidden_size, cfg.num_heads, cfg.head_dim, cfg.intermediate_size);
    // `transformer.` in GPT2LMHeadModel checkpoints, none in GPT2Model ones.
    let pre = module_prefix(ck, "transformer.", "wte.weight");
    let limit = Some(format!("n_positions = {} (the learned position table)", cfg.max_position_embeddings));
    let Start { mut bd, b, ids, pos, pasts, step, .. } = start(cfg, kind, nh, limit)?;
    let wte = bd.weight(ck, &format!("{pre}wte.weight"), &[cfg.vocab_size, h])?;
    let wpe = bd.weight(ck, &format!("{pre}wpe.weight"), &[cfg.max_position_embeddings, h])?;
    let te = bd.node(&format!("{pre}wte"), Op::Gather { axis: 0 }, &[wte, ids])?;
    let pe = bd.node(&format!("{pre}wpe"), Op::Gather { axis: 0 }, &[wpe, pos])?;
    let mut x = bd.node("embeddings", Op::Binary { op: BinaryOp::Add }, &[te, pe])?;
    let mut presents = vec![];
    for i in 0..cfg.num_layers {
        let l = format!("{pre}h.{i}");
        let hn = bd.layer_norm(ck, x, &format!("{l}.ln_1"), h, cfg.norm_eps)?;
        let [q, k, v] = qkv(&mut bd, ck, hn, &format!("{l}.attn.c_attn"), h)?;
        let att = Attn { heads: nh, kv: nh, hd, b, step: step.as_ref(), pasts: &pasts, mask: None, causal: true };
        let (y, pk, pv) = self_attention(&mut bd, &att, &format!("{l}.attn"), i, q, k, v)?;
        presents.push((pk, pv));
        let o = conv1d(&mut bd, ck, y, &format!("{l}.attn.c_proj"), h, h)?;
        x = bd.node(&format!("{l}/attn_residual"), Op::Binary { op: BinaryOp::Add }, &[x, o])?;
        let hn = bd.layer_norm(ck, x, &format!("{l}.ln_2"), h, cfg.norm_eps)?;
        let up = conv1d(&mut bd, ck, hn, &format!("{l}.mlp.c_fc"), h, inter)?;
        let a = bd.node(&format!("{l}.mlp.act"), act.clone(), &[up])?;
        let down = conv1d(&mut bd, ck, a, &format!("{l}.mlp.c_proj"), inter, h)?;
        x = bd.node(&format!("{l}/mlp_residual"), Op::Binary { op: BinaryOp::Add }, &[x, down])?;
    }
    let xn = bd.layer_norm(ck, x, &format!("{pre}ln_f"), h, cfg.norm_eps)?;
    // The head is the token embedding (GPT2LMHeadModel ties them); a saved copy must equal it.
    if ck.contains("lm_head.weight") {
        let w = ck.take("lm_head.weight", &[cfg.vocab_size, h])?;
        let e = bd.g.consts.get(&wte).map(|t| t.to_f64()).unwrap_or_default();
        if w.to_f64() != e {
            return Err(HfError::Unsupported("`lm_head.weight` differs from the token embedding: GPT-2's head is tied".into()));
        }
    }
    let head = bd.node("lm_head/Transpose", Op::Transpose { perm: vec![1, 0] }, &[wte])?;
    let logits = bd.nodes("lm_head", Op::MatMul {}, &[xn, head], &["logits".to_string()])?[0];
    Ok(finish(bd, logits, presents))
}
