//! Greedy generation from a prefill and a decode graph, whatever runs them (the reference
//! interpreter, or compiled artifacts on a GPU): the prompt goes through prefill once, its
//! keys and values are copied into caches of the decode graph's fixed length, and each step
//! feeds the last chosen token (the first index of the largest logit, as `argmax` does) with
//! its position.

use kiln_ir::{Data, Tensor};

/// The cache geometry of a decode graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheShape {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub max_len: usize,
}

/// A graph run: inputs in the graph's order, outputs in its order.
pub type Run<'a> = dyn FnMut(Vec<Tensor>) -> Result<Vec<Tensor>, String> + 'a;

/// The `new_tokens` tokens greedy decoding chooses after `prompt` (one sequence).
pub fn greedy(prompt: &[i64], new_tokens: usize, cache: CacheShape, prefill: &mut Run, decode: &mut Run) -> Result<Vec<i64>, String> {
    let mut out = greedy_batch(&[prompt.to_vec()], new_tokens, &[], cache, prefill, decode)?;
    out.pop().ok_or_else(|| "no sequence was decoded".to_string())
}

/// The `new_tokens` tokens greedy decoding chooses after each of `prompts`, decoded together
/// as one batch (the graphs' batch is the number of prompts). The prompts have one length:
/// the prefill graph has no padding mask. A sequence ends with the first token of `stop` it
/// chooses (`eos_token_id`, kept as its last token); decoding ends when every sequence has.
pub fn greedy_batch(
    prompts: &[Vec<i64>],
    new_tokens: usize,
    stop: &[i64],
    cache: CacheShape,
    prefill: &mut Run,
    decode: &mut Run,
) -> Result<Vec<Vec<i64>>, String> {
    let b = prompts.len();
    let p = prompts.first().map_or(0, Vec::len);
    if p == 0 {
        return Err("the prompt is empty".into());
    }
    if let Some(i) = prompts.iter().position(|x| x.len() != p) {
        return Err(format!("prompt {i} has {} tokens and prompt 0 has {p}: the prompts of a batch have one length", prompts[i].len()));
    }
    if p + new_tokens > cache.max_len + 1 {
        return Err(format!("{p} prompt tokens and {new_tokens} new ones do not fit a cache of {} positions", cache.max_len));
    }
    let ids = Tensor::new(vec![b, p], Data::I64(prompts.concat())).map_err(|e| e.to_string())?;
    let outs = prefill(vec![ids])?;
    let (kv, hd, l) = (cache.kv_heads, cache.head_dim, cache.max_len);
    if outs.len() != 1 + 2 * cache.layers {
        return Err(format!("prefill returned {} outputs, not logits and {} caches", outs.len(), 2 * cache.layers));
    }
    // Each [b, kv, p, hd] present padded into a [b, kv, l, hd] cache.
    let mut caches = outs[1..]
        .iter()
        .map(|t| {
            let v = t.to_f64();
            if t.dims() != [b, kv, p, hd] {
                return Err(format!("a prefill cache of shape {:?}, expected {:?}", t.dims(), [b, kv, p, hd]));
            }
            let mut c = vec![0.0; b * kv * l * hd];
            for h in 0..b * kv {
                c[h * l * hd..(h * l + p) * hd].copy_from_slice(&v[h * p * hd..(h + 1) * p * hd]);
            }
            Tensor::new(vec![b, kv, l, hd], Data::from_f64(kiln_ir::DType::F32, &c)).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<Tensor>, String>>()?;
    let mut tokens = last_argmax(&outs[0], b)?;
    let mut out: Vec<Vec<i64>> = tokens.iter().map(|&t| vec![t]).collect();
    let mut done: Vec<bool> = tokens.iter().map(|t| stop.contains(t)).collect();
    for step in 1..new_tokens {
        if done.iter().all(|&d| d) {
            break;
        }
        let mut ins = vec![
            Tensor::new(vec![b, 1], Data::I64(tokens.clone())).map_err(|e| e.to_string())?,
            Tensor::new(vec![b, 1], Data::I64(vec![(p + step - 1) as i64; b])).map_err(|e| e.to_string())?,
        ];
        ins.extend(caches);
        let outs = decode(ins)?;
        if outs.len() != 1 + 2 * cache.layers {
            return Err(format!("decode returned {} outputs, not logits and {} caches", outs.len(), 2 * cache.layers));
        }
        tokens = last_argmax(&outs[0], b)?;
        for ((o, &t), d) in out.iter_mut().zip(&tokens).zip(done.iter_mut()) {
            if !*d {
                o.push(t);
                *d = stop.contains(&t);
            }
        }
        caches = outs.into_iter().skip(1).collect();
    }
    Ok(out)
}

/// Per sequence of `[b, s, vocab]` logits, the index of the largest logit of the last
/// position (the first where several are equal).
fn last_argmax(logits: &Tensor, b: usize) -> Result<Vec<i64>, String> {
    let v = logits.to_f64();
    let &[lb, s, vocab] = logits.dims() else { return Err(format!("logits of shape {:?}, not [batch, seq, vocab]", logits.dims())) };
    if lb != b || s == 0 || vocab == 0 {
        return Err(format!("logits of shape {:?} for {b} sequences", logits.dims()));
    }
    Ok((0..b)
        .map(|i| {
            let row = &v[(i * s + s - 1) * vocab..(i * s + s) * vocab];
            let mut best = 0;
            for (j, &x) in row.iter().enumerate() {
                if x > row[best] {
                    best = j;
                }
            }
            best as i64
        })
        .collect())
}
