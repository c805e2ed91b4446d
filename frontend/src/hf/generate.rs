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
    let p = prompt.len();
    if p == 0 {
        return Err("the prompt is empty".into());
    }
    if p + new_tokens > cache.max_len + 1 {
        return Err(format!("{p} prompt tokens and {new_tokens} new ones do not fit a cache of {} positions", cache.max_len));
    }
    let ids = Tensor::new(vec![1, p], Data::I64(prompt.to_vec())).map_err(|e| e.to_string())?;
    let outs = prefill(vec![ids])?;
    let (kv, hd, l) = (cache.kv_heads, cache.head_dim, cache.max_len);
    if outs.len() != 1 + 2 * cache.layers {
        return Err(format!("prefill returned {} outputs, not logits and {} caches", outs.len(), 2 * cache.layers));
    }
    // Each [1, kv, p, hd] present padded into a [1, kv, l, hd] cache.
    let mut caches = outs[1..]
        .iter()
        .map(|t| {
            let v = t.to_f64();
            if t.dims() != [1, kv, p, hd] {
                return Err(format!("a prefill cache of shape {:?}, expected {:?}", t.dims(), [1, kv, p, hd]));
            }
            let mut c = vec![0.0; kv * l * hd];
            for h in 0..kv {
                c[h * l * hd..(h * l + p) * hd].copy_from_slice(&v[h * p * hd..(h + 1) * p * hd]);
            }
            Tensor::new(vec![1, kv, l, hd], Data::from_f64(kiln_ir::DType::F32, &c)).map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<Tensor>, String>>()?;
    let mut token = last_argmax(&outs[0])?;
    let mut out = vec![token];
    for step in 1..new_tokens {
        let mut ins = vec![
            Tensor::new(vec![1, 1], Data::I64(vec![token])).map_err(|e| e.to_string())?,
            Tensor::new(vec![1, 1], Data::I64(vec![(p + step - 1) as i64])).map_err(|e| e.to_string())?,
        ];
        ins.extend(caches);
        let outs = decode(ins)?;
        if outs.len() != 1 + 2 * cache.layers {
            return Err(format!("decode returned {} outputs, not logits and {} caches", outs.len(), 2 * cache.layers));
        }
        token = last_argmax(&outs[0])?;
        out.push(token);
        caches = outs.into_iter().skip(1).collect();
    }
    Ok(out)
}

/// The index of the largest logit of the last position (the first where several are equal).
fn last_argmax(logits: &Tensor) -> Result<i64, String> {
    let v = logits.to_f64();
    let vocab = *logits.dims().last().ok_or("scalar logits")?;
    let row = &v[v.len().checked_sub(vocab).ok_or("empty logits")?..];
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    Ok(best as i64)
}
