//! The transformer contrib ops of ORT's optimizer and exporters (bert_defs.cc,
//! contrib_defs.cc): Attention, MultiHeadAttention, the skip and simplified norms,
//! EmbedLayerNormalization and RotaryEmbedding, as ONNX's Attention (opset 23),
//! LayerNormalization, RMSNormalization and RotaryEmbedding with the plumbing around them.

use crate::onnx::node::{unsupported, Cx, LowerError, Out, R};
use kiln_ir::ops::ReduceKind;
use kiln_ir::{BinaryOp, DType, Data, Op, Tensor, ValueId};

/// `x[.., lo..hi]` along the last axis.
fn last_axis_slice(cx: &mut Cx, x: ValueId, lo: usize, hi: usize) -> Result<ValueId, LowerError> {
    let (s, e, a) = (cx.ints_const("lo", &[lo as i64]), cx.ints_const("hi", &[hi as i64]), cx.ints_const("axis", &[-1]));
    cx.emit(Op::Slice {}, vec![Some(x), Some(s), Some(e), Some(a)])
}

fn unsqueeze(cx: &mut Cx, x: ValueId, axes: &[i64]) -> Result<ValueId, LowerError> {
    let a = cx.ints_const("axes", axes);
    cx.emit(Op::Unsqueeze {}, vec![Some(x), Some(a)])
}

fn dims_of(cx: &Cx, x: ValueId, what: &str) -> Result<Vec<usize>, LowerError> {
    cx.dims(x).ok_or_else(|| LowerError::Unsupported(format!("{what} with dimensions unknown at import (give --input-shape)")))
}

/// ORT's key masks as an additive float mask that broadcasts against the scores
/// [B, heads, S, L]: 0 where a key is attended, `filter` (mask_filter_value) where not.
/// Forms (bert_defs.cc, `mask_index` / `key_padding_mask`): [B, L] or [B, S, L] of 0/1 (raw),
/// or [B] holding each row's number of valid keys (right padding).
fn key_mask(cx: &mut Cx, mask: ValueId, b: usize, l: usize, filter: f32) -> Result<ValueId, LowerError> {
    let md = dims_of(cx, mask, "a mask")?;
    let keep = match md[..] {
        [mb] if mb == b => {
            // Valid keys are the first mask[b]: keep[b, j] = j < mask[b].
            let dt = cx.dtype(mask);
            let (zero, len, one) =
                (cx.scalar_const("zero", dt, 0.0), cx.scalar_const("len", dt, l as f64), cx.scalar_const("one", dt, 1.0));
            let j = cx.emit(Op::Range {}, vec![Some(zero), Some(len), Some(one)])?;
            let ends = unsqueeze(cx, mask, &[1])?;
            cx.bin(BinaryOp::Less, j, ends)?
        }
        [mb, ml] if mb == b && ml == l => {
            let zero = cx.scalar_const("zero", cx.dtype(mask), 0.0);
            cx.bin(BinaryOp::Greater, mask, zero)?
        }
        [mb, _, ml] if mb == b && ml == l => {
            let zero = cx.scalar_const("zero", cx.dtype(mask), 0.0);
            cx.bin(BinaryOp::Greater, mask, zero)?
        }
        _ => return unsupported(format!("a mask of shape {md:?} (kiln takes [batch], [batch, keys] and [batch, queries, keys])")),
    };
    let (z, f) = (cx.scalar_const("keep", DType::F32, 0.0), cx.scalar_const("masked", DType::F32, filter as f64));
    let add = cx.emit(Op::Where {}, vec![Some(keep), Some(z), Some(f)])?;
    // [B, L] -> [B, 1, 1, L]; [B, S, L] -> [B, 1, S, L].
    let axes: &[i64] = if md.len() == 3 { &[1] } else { &[1, 2] };
    unsqueeze(cx, add, axes)
}

/// ORT's `scale` attribute: 0 (the default) means 1/sqrt(head size).
fn scale_attr(cx: &Cx) -> Result<Option<f32>, LowerError> {
    Ok(cx.a.opt_f("scale")?.filter(|&s| s != 0.0))
}

fn onnx_attention(causal: bool, heads: i64, scale: Option<f32>) -> Op {
    Op::Attention {
        is_causal: causal,
        kv_num_heads: heads,
        q_num_heads: heads,
        qk_matmul_output_mode: 0,
        scale,
        softcap: 0.0,
        softmax_precision: None,
        zero_undefined_rows: false,
    }
}

/// Adds `b` to the mask built so far (or starts it).
fn add_mask(cx: &mut Cx, mask: Option<ValueId>, b: ValueId) -> Result<ValueId, LowerError> {
    match mask {
        Some(m) => cx.bin(BinaryOp::Add, m, b),
        None => Ok(b),
    }
}

/// Attention (bert_defs.cc): self-attention with the QKV projection inside. Inputs: input
/// [B, S, In], weights [In, Hq+Hk+Hv], bias?, mask_index?, past?, attention_bias?,
/// past_sequence_length?. Attributes: num_heads, unidirectional, qkv_hidden_sizes,
/// mask_filter_value (-10000), scale.
pub(crate) fn attention(cx: &mut Cx) -> R {
    let (x, w) = (cx.req(0)?, cx.req(1)?);
    let heads = cx.i("num_heads", 0)?;
    if heads <= 0 {
        return Err(LowerError::Invalid("num_heads must be positive".into()));
    }
    if cx.inp(4).is_some() || cx.inp(6).is_some() || cx.wants_output(1) {
        return unsupported("Attention with a past state (kiln imports the past through MultiHeadAttention)");
    }
    if cx.i("do_rotary", 0)? != 0 {
        return unsupported("Attention with do_rotary");
    }
    let xd = dims_of(cx, x, "Attention's input")?;
    let wd = dims_of(cx, w, "Attention's weights")?;
    let (&[b, s, _], &[_, total]) = (&xd[..], &wd[..]) else {
        return Err(LowerError::Invalid(format!("input must be [batch, seq, hidden] and weights 2-D, got {xd:?} and {wd:?}")));
    };
    let sizes = match cx.ints("qkv_hidden_sizes")?[..] {
        [] if total.is_multiple_of(3) => [total / 3; 3],
        [q, k, v] if q > 0 && k > 0 && v > 0 && (q + k + v) as usize == total => [q as usize, k as usize, v as usize],
        ref other => return Err(LowerError::Invalid(format!("qkv_hidden_sizes {other:?} do not split the weights' {total} columns"))),
    };
    let mut qkv = cx.emit(Op::MatMul {}, vec![Some(x), Some(w)])?;
    if let Some(bias) = cx.inp(2) {
        qkv = cx.bin(BinaryOp::Add, qkv, bias)?;
    }
    let q = last_axis_slice(cx, qkv, 0, sizes[0])?;
    let k = last_axis_slice(cx, qkv, sizes[0], sizes[0] + sizes[1])?;
    let v = last_axis_slice(cx, qkv, sizes[0] + sizes[1], total)?;
    let filter = cx.f("mask_filter_value", -10000.0)?;
    let mut mask = match cx.inp(3) {
        Some(m) => Some(key_mask(cx, m, b, s, filter)?),
        None => None,
    };
    if let Some(ab) = cx.inp(5) {
        mask = Some(add_mask(cx, mask, ab)?);
    }
    let op = onnx_attention(cx.b("unidirectional", false)?, heads, scale_attr(cx)?);
    Ok(Out::Node(op, vec![Some(q), Some(k), Some(v), mask]))
}

/// MultiHeadAttention (bert_defs.cc): attention over projected query [B, S, D], key
/// [B, L, D] and value [B, L, Dv], with bias? [D + D + Dv], key_padding_mask?,
/// attention_bias? [B|1, N|1, S, T], past_key? and past_value? [B, N, P, H]. Outputs:
/// output, present_key?, present_value? ([B, N, P + L, H]: the past and the new keys and
/// values split into heads), as ONNX's Attention with past inputs computes them.
pub(crate) fn multi_head_attention(cx: &mut Cx) -> R {
    let heads = cx.i("num_heads", 0)?;
    if heads <= 0 {
        return Err(LowerError::Invalid("num_heads must be positive".into()));
    }
    let (mut q, k, v) = (cx.req(0)?, cx.inp(1), cx.inp(2));
    let (Some(mut k), Some(mut v)) = (k, v) else {
        return unsupported("MultiHeadAttention with packed QKV (key and value absent)");
    };
    if (8..10).any(|i| cx.inp(i).is_some()) {
        return unsupported("MultiHeadAttention with past_sequence_length or cache_indirection (beam search)");
    }
    let (past_k, past_v) = (cx.inp(6), cx.inp(7));
    let past = match (past_k, past_v) {
        (None, None) => 0,
        (Some(pk), Some(_)) => match dims_of(cx, pk, "past_key")?[..] {
            [_, _, p, _] => p,
            ref d => return Err(LowerError::Invalid(format!("past_key must be [batch, heads, past, head_size], got {d:?}"))),
        },
        _ => return Err(LowerError::Invalid("past_key and past_value come together".into())),
    };
    let causal = cx.b("unidirectional", false)?;
    if causal && past > 0 {
        return unsupported("MultiHeadAttention with unidirectional and a past state");
    }
    let (qd, kd, vd) = (dims_of(cx, q, "the query")?, dims_of(cx, k, "the key")?, dims_of(cx, v, "the value")?);
    let (&[b, _, dq], &[_, l, dk], &[_, _, dv]) = (&qd[..], &kd[..], &vd[..]) else {
        return unsupported(format!(
            "MultiHeadAttention with query, key, value of shapes {qd:?}, {kd:?}, {vd:?} (kiln takes [batch, seq, hidden] each)"
        ));
    };
    if let Some(bias) = cx.inp(3) {
        let bq = last_axis_slice(cx, bias, 0, dq)?;
        let bk = last_axis_slice(cx, bias, dq, dq + dk)?;
        let bv = last_axis_slice(cx, bias, dq + dk, dq + dk + dv)?;
        q = cx.bin(BinaryOp::Add, q, bq)?;
        k = cx.bin(BinaryOp::Add, k, bk)?;
        v = cx.bin(BinaryOp::Add, v, bv)?;
    }
    let filter = cx.f("mask_filter_value", -10000.0)?;
    let mut mask = match cx.inp(4) {
        Some(m) => Some(key_mask(cx, m, b, past + l, filter)?),
        None => None,
    };
    if let Some(ab) = cx.inp(5) {
        mask = Some(add_mask(cx, mask, ab)?);
    }
    let op = onnx_attention(causal, heads, scale_attr(cx)?);
    let n_out = if cx.wants_output(1) || cx.wants_output(2) { 3 } else { 1 };
    let ys = cx.emit_n(op, vec![Some(q), Some(k), Some(v), mask, past_k, past_v], n_out)?;
    let mut outs: Vec<Option<ValueId>> = (0..3).map(|i| ys.get(i).copied()).collect();
    outs.truncate(cx.node.output.len());
    Ok(Out::Alias(outs))
}

/// SkipLayerNormalization / SkipSimplifiedLayerNormalization (bert_defs.cc): the norm of
/// input + skip (+ bias) over the last axis. Inputs: input, skip, gamma, beta? (not in the
/// simplified form), bias?. Outputs: output, mean?, inv_std_var?, input_skip_bias_sum?.
/// epsilon defaults to 1e-12 (kDefaultSkipLayerNormEpsilon).
pub(crate) fn skip_layer_norm(cx: &mut Cx, simplified: bool) -> R {
    let eps = cx.f("epsilon", 1e-12)?;
    let (x, skip, gamma) = (cx.req(0)?, cx.req(1)?, cx.req(2)?);
    let (beta, bias) = if simplified { (None, cx.inp(3)) } else { (cx.inp(3), cx.inp(4)) };
    let mut sum = cx.bin(BinaryOp::Add, x, skip)?;
    if let Some(b) = bias {
        sum = cx.bin(BinaryOp::Add, sum, b)?;
    }
    let n_out = cx.node.output.len();
    let mut outs: Vec<Option<ValueId>> = if simplified {
        if cx.wants_output(1) || cx.wants_output(2) {
            return unsupported("SkipSimplifiedLayerNormalization's mean and inv_std_var outputs");
        }
        vec![Some(cx.emit(Op::RMSNormalization { axis: -1, epsilon: eps }, vec![Some(sum), Some(gamma)])?), None, None]
    } else {
        let stats = if cx.wants_output(1) || cx.wants_output(2) { 3 } else { 1 };
        let ids = cx.emit_n(Op::LayerNormalization { axis: -1, epsilon: eps }, vec![Some(sum), Some(gamma), beta], stats)?;
        (0..3).map(|k| ids.get(k).copied()).collect()
    };
    outs.push(Some(sum));
    outs.truncate(n_out);
    Ok(Out::Alias(outs))
}

/// SimplifiedLayerNormalization (contrib_defs.cc, registered in the default domain): RMS
/// norm. Inputs: X, scale. Attributes: axis (-1), epsilon (1e-5), stash_type.
pub(crate) fn simplified_layer_norm(cx: &mut Cx) -> R {
    if cx.wants_output(1) {
        return unsupported("SimplifiedLayerNormalization's inv_std_var output");
    }
    let op = Op::RMSNormalization { axis: cx.i("axis", -1)?, epsilon: cx.f("epsilon", 1e-5)? };
    Ok(Out::Node(op, vec![Some(cx.req(0)?), Some(cx.req(1)?)]))
}

/// EmbedLayerNormalization (bert_defs.cc): LayerNorm(word[input_ids] + position[position_ids
/// or 0..S] + segment[segment_ids]). Inputs: input_ids [B, S], segment_ids?, word_embedding,
/// position_embedding, segment_embedding?, gamma, beta?, mask?, position_ids?. Outputs:
/// output [B, S, H], mask_index [B] (i32: the number of entries equal to 1 in each mask row,
/// zeros without a mask), embedding_sum?. epsilon defaults to 1e-12.
pub(crate) fn embed_layer_norm(cx: &mut Cx) -> R {
    let eps = cx.f("epsilon", 1e-12)?;
    let (ids, word, pos_table, gamma) = (cx.req(0)?, cx.req(2)?, cx.req(3)?, cx.req(5)?);
    let idd = dims_of(cx, ids, "input_ids")?;
    let &[b, s] = &idd[..] else { return Err(LowerError::Invalid(format!("input_ids must be [batch, seq], got {idd:?}"))) };
    let w = cx.emit(Op::Gather { axis: 0 }, vec![Some(word), Some(ids)])?;
    let p = match cx.inp(8) {
        Some(pid) => cx.emit(Op::Gather { axis: 0 }, vec![Some(pos_table), Some(pid)])?,
        None => {
            let (st, en, ax) = (cx.ints_const("pos_lo", &[0]), cx.ints_const("pos_hi", &[s as i64]), cx.ints_const("pos_axis", &[0]));
            cx.emit(Op::Slice {}, vec![Some(pos_table), Some(st), Some(en), Some(ax)])?
        }
    };
    let mut sum = cx.bin(BinaryOp::Add, w, p)?;
    if let (Some(seg_ids), Some(seg)) = (cx.inp(1), cx.inp(4)) {
        let g = cx.emit(Op::Gather { axis: 0 }, vec![Some(seg), Some(seg_ids)])?;
        sum = cx.bin(BinaryOp::Add, sum, g)?;
    }
    let y = cx.emit(Op::LayerNormalization { axis: -1, epsilon: eps }, vec![Some(sum), Some(gamma), cx.inp(6)])?;
    let mask_index = match cx.inp(7) {
        Some(m) => {
            // ORT counts the entries equal to 1 (bert_defs.cc); the count is taken in f32
            // (exact below 2^24), which every target reduces.
            let one = cx.scalar_const("one", cx.dtype(m), 1.0);
            let ones = cx.bin(BinaryOp::Equal, m, one)?;
            let f = super::cast(cx, ones, DType::F32)?;
            let axes = cx.ints_const("mask_axes", &[1]);
            let n =
                cx.emit(Op::Reduce { kind: ReduceKind::Sum, keepdims: false, noop_with_empty_axes: false }, vec![Some(f), Some(axes)])?;
            super::cast(cx, n, DType::I32)?
        }
        None => cx.konst("mask_index", Tensor::new(vec![b], Data::I32(vec![0; b])).map_err(|e| e.to_string())?),
    };
    let mut outs = vec![Some(y), Some(mask_index), Some(sum)];
    outs.truncate(cx.node.output.len());
    Ok(Out::Alias(outs))
}

/// RotaryEmbedding (contrib_defs.cc / bert_defs.cc): inputs input, position_ids ([B, S], or
/// one offset for positions offset..offset+S), cos_cache, sin_cache; ONNX's RotaryEmbedding
/// (opset 23) takes them as X, cos, sin, position_ids.
pub(crate) fn rotary_embedding(cx: &mut Cx) -> R {
    if cx.i("is_packed_batching", 0)? != 0 {
        return unsupported("RotaryEmbedding with is_packed_batching");
    }
    if cx.f("scale", 1.0)? != 1.0 {
        return unsupported("RotaryEmbedding with a scale other than 1");
    }
    let (x, pos, cos, sin) = (cx.req(0)?, cx.req(1)?, cx.req(2)?, cx.req(3)?);
    let xd = dims_of(cx, x, "RotaryEmbedding's input")?;
    let (b, s) = match xd[..] {
        [b, s, _] => (b, s),
        [b, _, s, _] => (b, s),
        _ => return Err(LowerError::Invalid(format!("input must be rank 3 or 4, got {xd:?}"))),
    };
    let pd = dims_of(cx, pos, "position_ids")?;
    let pos = if pd.iter().product::<usize>() == 1 {
        // An offset: positions offset..offset+S for every row.
        let dt = cx.dtype(pos);
        let (zero, len, one) = (cx.scalar_const("zero", dt, 0.0), cx.scalar_const("len", dt, s as f64), cx.scalar_const("one", dt, 1.0));
        let r = cx.emit(Op::Range {}, vec![Some(zero), Some(len), Some(one)])?;
        let shape = cx.ints_const("one_shape", &[]);
        let off = cx.emit(Op::Reshape { allowzero: false }, vec![Some(pos), Some(shape)])?;
        let row = cx.bin(BinaryOp::Add, r, off)?;
        let bs = cx.ints_const("bs", &[b as i64, s as i64]);
        cx.emit(Op::Expand {}, vec![Some(row), Some(bs)])?
    } else {
        pos
    };
    let op = Op::RotaryEmbedding {
        interleaved: cx.b("interleaved", false)?,
        num_heads: cx.i("num_heads", 0)?,
        rotary_embedding_dim: cx.i("rotary_embedding_dim", 0)?,
    };
    Ok(Out::Node(op, vec![Some(x), Some(cos), Some(sin), Some(pos)]))
}

/// `x` [B, L, H*D] as [B, H, L, D].
fn split_heads(cx: &mut Cx, x: ValueId, b: usize, l: usize, h: usize, d: usize) -> Result<ValueId, LowerError> {
    let shape = cx.ints_const("heads", &[b as i64, l as i64, h as i64, d as i64]);
    let r = cx.emit(Op::Reshape { allowzero: false }, vec![Some(x), Some(shape)])?;
    cx.emit(Op::Transpose { perm: vec![0, 2, 1, 3] }, vec![Some(r)])
}

/// `x` [..] i64 plus the scalar `k`.
fn plus(cx: &mut Cx, x: ValueId, k: i64) -> Result<ValueId, LowerError> {
    let c = cx.scalar_const("k", DType::I64, k as f64);
    cx.bin(BinaryOp::Add, x, c)
}

/// 0..n as i64.
fn iota(cx: &mut Cx, n: usize) -> Result<ValueId, LowerError> {
    let (z, e, o) =
        (cx.scalar_const("zero", DType::I64, 0.0), cx.scalar_const("n", DType::I64, n as f64), cx.scalar_const("one", DType::I64, 1.0));
    cx.emit(Op::Range {}, vec![Some(z), Some(e), Some(o)])
}

/// GroupQueryAttention (bert_defs.cc; the LLM exporters' attention with a KV cache): query
/// [B, S, N*D], key and value [B, S, Kv*D], past_key? and past_value? [B, Kv, P, D],
/// seqlens_k [B] (each row's valid past plus new tokens, minus one), total_sequence_length,
/// cos_cache? and sin_cache? [max positions, rotary/2] (do_rotary). Row b's new tokens sit at
/// positions seqlens_k[b]+1-S .. seqlens_k[b] (0..S-1 for a prompt, when there is no past):
/// they are rotated at those positions, written there into present_key/present_value [B, Kv,
/// P+S, D] after the row's valid past (zeros beyond), and each attends to the keys up to its
/// own position (and no further back than local_window_size). Query head h reads key head
/// h / (N / Kv).
pub(crate) fn group_query_attention(cx: &mut Cx) -> R {
    let (heads, kv_heads) = (cx.i("num_heads", 0)?, cx.i("kv_num_heads", 0)?);
    if heads <= 0 || kv_heads <= 0 || heads % kv_heads != 0 {
        return Err(LowerError::Invalid(format!("num_heads {heads} must be a positive multiple of kv_num_heads {kv_heads}")));
    }
    if cx.i("smooth_softmax", 0)? != 0 {
        return unsupported("GroupQueryAttention with smooth_softmax");
    }
    if (9..cx.ins.len()).any(|i| cx.inp(i).is_some()) {
        return unsupported("GroupQueryAttention's position_ids or attention_bias inputs");
    }
    let (q, k, v) = (cx.req(0)?, cx.inp(1), cx.inp(2));
    let (Some(k), Some(v)) = (k, v) else { return unsupported("GroupQueryAttention with packed QKV (key and value absent)") };
    let (past_k, past_v, seqlens) = (cx.inp(3), cx.inp(4), cx.req(5)?);
    let (qd, kd) = (dims_of(cx, q, "the query")?, dims_of(cx, k, "the key")?);
    let (&[b, s, qh], &[_, _, kh]) = (&qd[..], &kd[..]) else {
        return unsupported(format!("GroupQueryAttention with query {qd:?} and key {kd:?} (kiln takes [batch, seq, hidden])"));
    };
    let (n, kv) = (heads as usize, kv_heads as usize);
    let d = qh / n;
    if d * n != qh || d * kv != kh {
        return Err(LowerError::Invalid(format!("query hidden {qh} and key hidden {kh} do not split into {n} and {kv} heads alike")));
    }
    let p = match (past_k, past_v) {
        (None, None) => 0,
        (Some(pk), Some(_)) => match dims_of(cx, pk, "past_key")?[..] {
            [pb, pkv, p, pd] if pb == b && pkv == kv && pd == d => p,
            ref other => return Err(LowerError::Invalid(format!("past_key {other:?}, want [{b}, {kv}, past, {d}]"))),
        },
        _ => return Err(LowerError::Invalid("past_key and past_value come together".into())),
    };
    let t = p + s;
    // Each row's first new position: seqlens_k + 1 - S with a past, 0 for a prompt (whose
    // padding seqlens_k marks).
    let seq = super::cast(cx, seqlens, DType::I64)?;
    let zero64 = cx.scalar_const("zero", DType::I64, 0.0);
    let start = if p > 0 { plus(cx, seq, 1 - s as i64)? } else { cx.bin(BinaryOp::Mul, seq, zero64)? };
    let start_col = unsqueeze(cx, start, &[1])?; // [B, 1]
    let steps = iota(cx, s)?;
    let pos = cx.bin(BinaryOp::Add, start_col, steps)?; // [B, S]
    let (mut q, mut k) = (q, k);
    if cx.b("do_rotary", false)? {
        let (Some(cos), Some(sin)) = (cx.inp(7), cx.inp(8)) else {
            return Err(LowerError::Invalid("do_rotary needs cos_cache and sin_cache".into()));
        };
        let half = match dims_of(cx, cos, "cos_cache")?[..] {
            [_, h] => h,
            ref other => return Err(LowerError::Invalid(format!("cos_cache must be 2-D, got {other:?}"))),
        };
        let rot = if 2 * half == d { 0 } else { 2 * half as i64 };
        let interleaved = cx.b("rotary_interleaved", false)?;
        for (x, h) in [(&mut q, heads), (&mut k, kv_heads)] {
            let op = Op::RotaryEmbedding { interleaved, num_heads: h, rotary_embedding_dim: rot };
            *x = cx.emit(op, vec![Some(*x), Some(cos), Some(sin), Some(pos)])?;
        }
    }
    let (k4, v4) = (split_heads(cx, k, b, s, kv, d)?, split_heads(cx, v, b, s, kv, d)?);
    // present[b, :, j] = past[b, :, j] for j < start_b, the new token j - start_b for
    // start_b <= j < start_b + S, zero after: a gather from concat(past, new) and a select.
    let (present_k, present_v) = match (past_k, past_v) {
        (Some(pk), Some(pv)) => {
            let j = iota(cx, t)?; // [T]
            let j_row = unsqueeze(cx, j, &[0])?; // [1, T]
            let rel = cx.bin(BinaryOp::Sub, j_row, start_col)?; // j - start_b: [B, T]
            let is_new = cx.bin(BinaryOp::GreaterOrEqual, rel, zero64)?;
            let new_idx = plus(cx, rel, p as i64)?;
            let zeros_b = cx.bin(BinaryOp::Mul, start_col, zero64)?;
            let jb = cx.bin(BinaryOp::Add, j_row, zeros_b)?; // j, as [B, T]
            let idx = cx.emit(Op::Where {}, vec![Some(is_new), Some(new_idx), Some(jb)])?;
            let last = cx.scalar_const("last", DType::I64, (t - 1) as f64);
            let idx = cx.bin(BinaryOp::Min, idx, last)?;
            let s64 = cx.scalar_const("s", DType::I64, s as f64);
            let in_use = cx.bin(BinaryOp::Less, rel, s64)?;
            let idx4 = unsqueeze(cx, idx, &[1, 3])?;
            let shape = cx.ints_const("present", &[b as i64, kv as i64, t as i64, d as i64]);
            let idx4 = cx.emit(Op::Expand {}, vec![Some(idx4), Some(shape)])?;
            let keep = unsqueeze(cx, in_use, &[1, 3])?;
            let mut out = vec![];
            for (past, new) in [(pk, k4), (pv, v4)] {
                let cat = cx.emit(Op::Concat { axis: 2 }, vec![Some(past), Some(new)])?;
                let g = cx.emit(Op::GatherElements { axis: 2 }, vec![Some(cat), Some(idx4)])?;
                let zero = cx.scalar_const("zero", cx.dtype(g), 0.0);
                out.push(cx.emit(Op::Where {}, vec![Some(keep), Some(g), Some(zero)])?);
            }
            (out[0], out[1])
        }
        _ => (k4, v4),
    };
    // Key j is visible to the query at position q_pos when j <= q_pos, j <= seqlens_k (a
    // prompt's padding) and, with a window w >= 0, j >= q_pos - w.
    let j = iota(cx, t)?;
    let j4 = unsqueeze(cx, j, &[0, 1, 2])?; // [1, 1, 1, T]
    let qpos = unsqueeze(cx, pos, &[1, 3])?; // [B, 1, S, 1]
    let mut visible = cx.bin(BinaryOp::LessOrEqual, j4, qpos)?;
    let seq4 = unsqueeze(cx, seq, &[1, 2, 3])?;
    let filled = cx.bin(BinaryOp::LessOrEqual, j4, seq4)?;
    visible = cx.bin(BinaryOp::And, visible, filled)?;
    let window = cx.i("local_window_size", -1)?;
    if window >= 0 {
        let lo = plus(cx, qpos, -window)?;
        let near = cx.bin(BinaryOp::GreaterOrEqual, j4, lo)?;
        visible = cx.bin(BinaryOp::And, visible, near)?;
    }
    let dt = cx.dtype(q);
    let (z, ninf) = (cx.scalar_const("keep", dt, 0.0), cx.scalar_const("masked", dt, f64::NEG_INFINITY));
    let mask = cx.emit(Op::Where {}, vec![Some(visible), Some(z), Some(ninf)])?;
    let q4 = split_heads(cx, q, b, s, n, d)?;
    let op = Op::Attention {
        is_causal: false,
        kv_num_heads: kv_heads,
        q_num_heads: heads,
        qk_matmul_output_mode: 0,
        scale: scale_attr(cx)?,
        softcap: cx.f("softcap", 0.0)?,
        softmax_precision: None,
        zero_undefined_rows: false,
    };
    let y4 = cx.emit(op, vec![Some(q4), Some(present_k), Some(present_v), Some(mask)])?;
    let y = cx.emit(Op::Transpose { perm: vec![0, 2, 1, 3] }, vec![Some(y4)])?;
    let shape = cx.ints_const("out", &[b as i64, s as i64, qh as i64]);
    let y = cx.emit(Op::Reshape { allowzero: false }, vec![Some(y), Some(shape)])?;
    let mut outs = vec![Some(y), Some(present_k), Some(present_v)];
    outs.truncate(cx.node.output.len());
    Ok(Out::Alias(outs))
}
