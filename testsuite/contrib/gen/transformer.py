"""Transformer contrib ops: the GELU family, skip/simplified layer norms, EmbedLayerNormalization, Attention,
MultiHeadAttention, GroupQueryAttention and RotaryEmbedding. Each case row cites the onnxruntime schema it was
written from (onnxruntime/core/graph/contrib_ops/{bert_defs,contrib_defs}.cc)."""
import numpy as np
from onnx import helper

from .common import (F32, I32, I64, case, cases, ms, optional_input, rand_int, randn, right_padding_mask,
                     rope_cache, scalar, spec, uniform)

# ----------------------------------------------------------------------------- GELU family


def _activation(rng, note, op, in_names, out_name, x_scale, **attrs):
    # X [2,5,16] (scaled normal), then any further inputs (bias / B) [16], drawn in that order
    inputs = [(in_names[0], randn(rng, [2, 5, 16], x_scale))] + [(n, randn(rng, [16])) for n in in_names[1:]]
    return spec(op, note, ms(op, in_names, [out_name], **attrs), inputs, [(out_name, F32)])


cases(_activation, [
    # bert_defs.cc: FastGelu(X, bias?) = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))), x = X + bias
    ("fastgelu_bias", "FastGelu with the optional 1-D bias input (added before the tanh approximation)",
     "FastGelu", ["X", "bias"], "Y", 2.0),
    # bert_defs.cc: FastGelu without bias
    ("fastgelu", "FastGelu without bias", "FastGelu", ["X"], "Y", 2.0),
    # contrib_defs.cc: BiasGelu(A, B) = Gelu(A + B), exact erf form, B 1-D broadcast over the last axis
    ("biasgelu", "BiasGelu: exact (erf) Gelu of A + B, B [16] broadcast on the last axis",
     "BiasGelu", ["A", "B"], "C", 2.0),
    # contrib_defs.cc: QuickGelu(X) = X * sigmoid(alpha * X), alpha default 1.702
    ("quickgelu", "QuickGelu with the default alpha (1.702)", "QuickGelu", ["X"], "Y", 3.0),
    # contrib_defs.cc: QuickGelu with alpha set
    ("quickgelu_alpha1p5", "QuickGelu with alpha=1.5", "QuickGelu", ["X"], "Y", 3.0, dict(alpha=1.5)),
    # contrib_defs.cc: Gelu (com.microsoft) = 0.5 * x * (1 + erf(x / sqrt(2)))
    ("gelu", "com.microsoft Gelu (exact erf form)", "Gelu", ["X"], "Y", 3.0),
])

# ----------------------------------------------------------------------------- layer norms

SUM_OUTPUTS = ["output", "", "", "input_skip_bias_sum"]  # outputs 0 and 3; mean / inv_std_var left empty


def _skip_norm(rng, note, op, in_names, out_names=("output",), skip_shape=(2, 5, 16), **attrs):
    # input, skip, gamma, beta, bias are always drawn (in that order); in_names picks the ones the node takes
    x, s, g, be, bi = (randn(rng, [2, 5, 16]), randn(rng, list(skip_shape)), uniform(rng, [16], 0.5, 1.5),
                       randn(rng, [16], 0.5), randn(rng, [16], 0.5))
    arrays = dict(input=x, skip=s, gamma=g, beta=be, bias=bi)
    return spec(op, note, ms(op, list(in_names), list(out_names), **attrs), [(n, arrays[n]) for n in in_names],
                [(n, F32) for n in out_names if n])


cases(_skip_norm, [
    # bert_defs.cc: SkipLayerNormalization(input, skip, gamma, beta?, bias?) -> output, mean?, inv_std_var?,
    # input_skip_bias_sum?; LayerNorm over the last axis of input + skip + bias; epsilon default 1e-12
    ("skiplayernorm", "input+skip+bias, gamma, beta; epsilon=1e-5 set explicitly", "SkipLayerNormalization",
     ["input", "skip", "gamma", "beta", "bias"], dict(epsilon=1e-5)),
    # bert_defs.cc: SkipLayerNormalization without the optional beta and bias
    ("skiplayernorm_nobeta_nobias", "no beta, no bias; epsilon attribute absent (schema default 1e-12)",
     "SkipLayerNormalization", ["input", "skip", "gamma"]),
    # bert_defs.cc: SkipLayerNormalization with output 3 (input_skip_bias_sum), outputs 1 and 2 left empty
    ("skiplayernorm_sum_output",
     "outputs 0 and 3 (input_skip_bias_sum = input+skip+bias), mean/inv_std_var unused; default epsilon",
     "SkipLayerNormalization", ["input", "skip", "gamma", "beta", "bias"], SUM_OUTPUTS),
    # bert_defs.cc: SkipLayerNormalization, skip may be 2-D [seq, hidden] and broadcast over the batch
    ("skiplayernorm_skip2d", "skip of shape [5,16] broadcast over batch 2; beta, no bias; epsilon=1e-5",
     "SkipLayerNormalization", ["input", "skip", "gamma", "beta"], dict(skip_shape=(5, 16), epsilon=1e-5)),
    # bert_defs.cc: SkipSimplifiedLayerNormalization(input, skip, gamma, bias?): RMSNorm of input+skip+bias
    ("skipsimplifiedlayernorm_bias",
     "RMS norm of input+skip+bias with gamma; epsilon=1e-6; also output 3 (input_skip_bias_sum)",
     "SkipSimplifiedLayerNormalization", ["input", "skip", "gamma", "bias"], SUM_OUTPUTS, dict(epsilon=1e-6)),
    # bert_defs.cc: SkipSimplifiedLayerNormalization without bias
    ("skipsimplifiedlayernorm", "RMS norm of input+skip, no bias; default epsilon (1e-12)",
     "SkipSimplifiedLayerNormalization", ["input", "skip", "gamma"]),
])


# contrib_defs.cc: SimplifiedLayerNormalization is registered by onnxruntime in the ONNX domain ""
# (since version 1, so a model importing "" opset 17 resolves to it): Y = X / sqrt(mean(X^2) + eps) * scale
@case("simplifiedlayernorm")
def _(rng):
    x, g = randn(rng, [2, 5, 16]), uniform(rng, [16], 0.5, 1.5)
    node = helper.make_node("SimplifiedLayerNormalization", ["X", "scale"], ["Y"], name="SimplifiedLayerNormalization_0",
                            axis=-1, epsilon=1e-6)
    return spec("SimplifiedLayerNormalization",
                "RMS norm in the default domain \"\" (where onnxruntime registers it), axis=-1, epsilon=1e-6",
                node, [("X", x), ("scale", g)], [("Y", F32)])


# ----------------------------------------------------------------------------- EmbedLayerNormalization

VOCAB, HID, MAXPOS, NSEG = 30, 16, 16, 2


def _eln(rng, note, mask=False, segments=True, position_ids=False, sum_output=False, eps=None):
    # bert_defs.cc: EmbedLayerNormalization(input_ids, segment_ids?, word_embedding, position_embedding,
    # segment_embedding?, gamma, beta, mask?, position_ids?) -> output, mask_index?, embedding_sum?
    word, position, segment = randn(rng, [VOCAB, HID]), randn(rng, [MAXPOS, HID]), randn(rng, [NSEG, HID])
    ids = rand_int(rng, [2, 7], 0, VOCAB - 1, I32)
    seg = np.array([[0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0, 0]], dtype=I32)
    gamma, beta = uniform(rng, [HID], 0.5, 1.5), randn(rng, [HID], 0.5)
    inputs = [("input_ids", ids)]
    inits = [("word_embedding", word), ("position_embedding", position)]
    names = ["input_ids", "", "word_embedding", "position_embedding", "", "gamma", "beta"]
    if segments:
        inputs.append(("segment_ids", seg))
        inits.append(("segment_embedding", segment))
        names[1], names[4] = "segment_ids", "segment_embedding"
    inputs += [("gamma", gamma), ("beta", beta)]
    if mask:
        inputs.append(("mask", right_padding_mask([2, 7], 1, 4)))
        names.append("mask")
    if position_ids:
        pos = np.array([[0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, 9]], dtype=I32)
        inputs.append(("position_ids", pos))
        optional_input(names, 8, "position_ids")
    outputs = [("output", F32), ("mask_index", I32)] + ([("embedding_sum", F32)] if sum_output else [])
    attrs = {} if eps is None else {"epsilon": eps}
    node = ms("EmbedLayerNormalization", names, [n for n, _ in outputs], **attrs)
    return spec("EmbedLayerNormalization", note, node, inputs, outputs, inits)


cases(_eln, [
    # bert_defs.cc: EmbedLayerNormalization, word + position + segment embeddings, no mask
    ("embedlayernorm", "word+position+segment embeddings, no mask (mask_index output still requested); epsilon=1e-5",
     dict(eps=1e-5)),
    # bert_defs.cc: EmbedLayerNormalization with mask -> mask_index = per-row count of mask ones
    ("embedlayernorm_mask", "mask [2,7] with row 1 = 1111000; mask_index output [2]; default epsilon (1e-12)",
     dict(mask=True)),
    # bert_defs.cc: EmbedLayerNormalization without segment_ids / segment_embedding
    ("embedlayernorm_nosegment", "segment_ids and segment_embedding absent; with mask", dict(mask=True, segments=False)),
    # bert_defs.cc: EmbedLayerNormalization with explicit position_ids and the embedding_sum output
    ("embedlayernorm_position_ids", "explicit position_ids [2,7] (row 1 offset by 3), mask, and output 2 embedding_sum",
     dict(mask=True, position_ids=True, sum_output=True)),
])

# ----------------------------------------------------------------------------- Attention


def _attention(rng, note, mask=None, **attrs):
    # bert_defs.cc: Attention(input, weights, bias?, mask_index?, past?, attention_bias?, past_sequence_length?)
    # weights [input_hidden, 3*hidden] (Q|K|V stacked on axis 1), bias [3*hidden]
    x = randn(rng, [2, 6, 16])
    w = randn(rng, [16, 48], 0.25)
    b = randn(rng, [48], 0.1)
    inputs = [("input", x)]
    names = ["input", "weights", "bias"]
    if mask is not None:
        inputs.append(("mask_index", mask))
        names.append("mask_index")
    node = ms("Attention", names, ["output"], num_heads=2, **attrs)
    return spec("Attention", note, node, inputs, [("output", F32)], inits=[("weights", w), ("bias", b)])


cases(_attention, [
    # bert_defs.cc: Attention, no mask
    ("attention", "input [2,6,16], weights [16,48], bias [48] (initializers), num_heads=2, no mask"),
    # bert_defs.cc: Attention with raw 2-D mask (batch, total_sequence_length), 1 = attend, 0 = masked
    ("attention_mask2d", "raw 2-D mask_index int32 [2,6], row 1 = 111100", right_padding_mask([2, 6], 1, 4)),
    # bert_defs.cc: Attention with 1-D mask_index (batch): right-padding valid lengths
    ("attention_mask1d", "1-D mask_index int32 [2] = [6,3]: per-batch valid length (right padding)",
     np.array([6, 3], dtype=I32)),
    # bert_defs.cc: Attention with unidirectional=1 (causal)
    ("attention_unidirectional", "unidirectional=1 (causal mask), no mask_index", dict(unidirectional=1)),
    # bert_defs.cc: Attention with scale attribute instead of 1/sqrt(head_size)
    ("attention_scale", "scale=0.125 (default would be 1/sqrt(8)), raw 2-D mask row 0 = 111110",
     right_padding_mask([2, 6], 0, 5), dict(scale=0.125)),
])

# ----------------------------------------------------------------------------- MultiHeadAttention


def _mha(rng, note, bias=False, kpm=None, attn_bias=None, q_len=5):
    # bert_defs.cc: MultiHeadAttention(query, key?, value?, bias?, key_padding_mask?, attention_bias?,
    # past_key?, past_value?) -> output, present_key?, present_value?
    q, k, v = randn(rng, [2, q_len, 16]), randn(rng, [2, 7, 16]), randn(rng, [2, 7, 16])
    inputs = [("query", q), ("key", k), ("value", v)]
    names = ["query", "key", "value"]
    if bias:
        inputs.append(("bias", randn(rng, [48], 0.5)))
        names.append("bias")
    if kpm is not None:
        optional_input(names, 4, "key_padding_mask")
        inputs.append(("key_padding_mask", np.asarray(kpm, dtype=I32)))
    if attn_bias is not None:
        optional_input(names, 5, "attention_bias")
        inputs.append(("attention_bias", randn(rng, attn_bias)))
    node = ms("MultiHeadAttention", names, ["output"], num_heads=4)
    return spec("MultiHeadAttention", note, node, inputs, [("output", F32)])


KPM_2x7 = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]]

cases(_mha, [
    # bert_defs.cc: MultiHeadAttention, separate Q [2,5,16], K/V [2,7,16] (cross attention)
    ("mha", "query [2,5,16], key/value [2,7,16], num_heads=4, no bias or mask"),
    # bert_defs.cc: MultiHeadAttention with bias [3*hidden] added to Q, K, V
    ("mha_bias", "cross attention with bias [48] = Q|K|V biases", dict(bias=True)),
    # bert_defs.cc: MultiHeadAttention with key_padding_mask (batch, kv_sequence_length).  Self-attention
    # lengths on purpose: onnxruntime 1.20.1's CPU kernel ignores a 2-D key_padding_mask when the query length
    # differs from the key length, so a cross-attention masked case would record that bug as the reference.
    ("mha_key_padding_mask", "query/key/value [2,7,16], key_padding_mask int32 [2,7], row 1 = 1111100 (0 = masked)",
     dict(kpm=KPM_2x7, q_len=7)),
    # bert_defs.cc: MultiHeadAttention with 1-D key_padding_mask (batch): valid key lengths
    ("mha_key_lengths", "query/key/value [2,7,16], 1-D key_padding_mask [2] = [7,4] (valid key lengths)",
     dict(kpm=[7, 4], q_len=7)),
    # bert_defs.cc: MultiHeadAttention with attention_bias (1, num_heads, S, total_S) broadcast over batch
    ("mha_attention_bias", "cross attention, attention_bias float [1,4,5,7] broadcast over batch",
     dict(attn_bias=[1, 4, 5, 7])),
    # bert_defs.cc: MultiHeadAttention with per-batch attention_bias plus bias
    ("mha_attention_bias_batch", "cross attention, attention_bias float [2,4,5,7] together with bias [48]",
     dict(bias=True, attn_bias=[2, 4, 5, 7])),
    # bert_defs.cc: MultiHeadAttention, all of bias, key_padding_mask and attention_bias (self-attention lengths)
    ("mha_mask_and_attention_bias", "query/key/value [2,7,16], bias [48], key_padding_mask [2,7], attention_bias [2,4,7,7]",
     dict(bias=True, kpm=KPM_2x7, attn_bias=[2, 4, 7, 7], q_len=7)),
])


# bert_defs.cc: MultiHeadAttention self-attention with past_key/past_value (BNSH) -> present_key/value
@case("mha_past")
def _(rng):
    q, k, v = randn(rng, [2, 2, 16]), randn(rng, [2, 2, 16]), randn(rng, [2, 2, 16])
    pk, pv = randn(rng, [2, 4, 3, 4]), randn(rng, [2, 4, 3, 4])
    node = ms("MultiHeadAttention", ["query", "key", "value", "", "", "", "past_key", "past_value"],
              ["output", "present_key", "present_value"], num_heads=4)
    return spec("MultiHeadAttention",
                "q/k/v [2,2,16] with past_key/past_value [2,4,3,4] (BNSH); present_* [2,4,5,4] = concat(past, new)",
                node, [("query", q), ("key", k), ("value", v), ("past_key", pk), ("past_value", pv)],
                [("output", F32), ("present_key", F32), ("present_value", F32)])


# ----------------------------------------------------------------------------- GroupQueryAttention

GQA_H, GQA_KVH = 4, 2


def _gqa(rng, note, seq, past_len, seqlens_k, total, rotary=False, interleaved=0, head=8, batch=2, **attrs):
    # bert_defs.cc: GroupQueryAttention(query, key, value, past_key?, past_value?, seqlens_k, total_sequence_length,
    # cos_cache?, sin_cache?) -> output, present_key, present_value.  query [B,S,H*D], key/value [B,S,KVH*D],
    # past_* [B,KVH,P,D] (BNSH); seqlens_k[b] = total valid length of batch b minus 1;
    # total_sequence_length = scalar, max over the batch of (past + new).
    q = randn(rng, [batch, seq, GQA_H * head])
    k = randn(rng, [batch, seq, GQA_KVH * head])
    v = randn(rng, [batch, seq, GQA_KVH * head])
    inputs = [("query", q), ("key", k), ("value", v)]
    names = ["query", "key", "value"]
    if past_len is None:
        names += ["", ""]
    else:
        inputs += [("past_key", randn(rng, [batch, GQA_KVH, past_len, head])),
                   ("past_value", randn(rng, [batch, GQA_KVH, past_len, head]))]
        names += ["past_key", "past_value"]
    inputs += [("seqlens_k", np.array(seqlens_k, dtype=I32)), ("total_sequence_length", scalar(total, I32))]
    names += ["seqlens_k", "total_sequence_length"]
    if rotary:
        cos, sin = rope_cache(16, head)
        inputs += [("cos_cache", cos), ("sin_cache", sin)]
        names += ["cos_cache", "sin_cache"]
        attrs.update(do_rotary=1, rotary_interleaved=interleaved)
    node = ms("GroupQueryAttention", names, ["output", "present_key", "present_value"],
              num_heads=GQA_H, kv_num_heads=GQA_KVH, **attrs)
    return spec("GroupQueryAttention", note, node, inputs,
                [("output", F32), ("present_key", F32), ("present_value", F32)])


# row: (name, note, seq, past_len, seqlens_k, total[, {options}])
cases(_gqa, [
    # bert_defs.cc: GroupQueryAttention prompt (first pass), no past inputs
    ("gqa_prompt", "prompt: S=5, no past_key/past_value, seqlens_k=[4,4], total_sequence_length=5; "
                   "num_heads=4 kv_num_heads=2 head 8 (causal)", 5, None, [4, 4], 5),
    # bert_defs.cc: GroupQueryAttention token generation with a past cache
    ("gqa_decode", "decode: S=1, past_key/past_value [2,2,4,8], seqlens_k=[4,4], total_sequence_length=5",
     1, 4, [4, 4], 5),
    # bert_defs.cc: GroupQueryAttention decode where batch rows have different valid past lengths
    ("gqa_decode_ragged", "decode: S=1, past buffer length 4, seqlens_k=[4,2] (row 1 has 2 valid past tokens, new "
                          "token written at position 2), total_sequence_length=5", 1, 4, [4, 2], 5),
    # bert_defs.cc: GroupQueryAttention prompt with rotary embedding applied to Q and K inside the op.
    # onnxruntime 1.20.1's CPU kernel refuses do_rotary=1 unless head_size % 16 == 0 ("head_size shall be a
    # multiple of 16"), so the rotary cases use head size 16 instead of 8.
    ("gqa_prompt_rotary", "prompt S=5, head 16 (q [2,5,64], k/v [2,5,32]), do_rotary=1, cos/sin_cache [16,8] "
                          "(positions 0..4), rotary_interleaved=0, seqlens_k=[4,4], total=5",
     5, None, [4, 4], 5, dict(rotary=True, head=16)),
    # bert_defs.cc: GroupQueryAttention decode with rotary (position of the new token = seqlens_k[b])
    ("gqa_decode_rotary", "decode S=1, head 16, past [2,2,4,16], do_rotary=1 rotary_interleaved=1, seqlens_k=[4,3] "
                          "(new token at positions 4 and 3), total=5",
     1, 4, [4, 3], 5, dict(rotary=True, interleaved=1, head=16)),
    # bert_defs.cc: GroupQueryAttention continuing a prompt (S > 1 with a past cache).  onnxruntime 1.20.1's CPU
    # kernel allows this only with batch_size 1 ("batch_size must be 1 when sequence_length > 1 and past context").
    ("gqa_chunk", "batch 1, S=3 new tokens after past [1,2,2,8]: seqlens_k=[4], total_sequence_length=5, "
                  "causal inside the chunk", 3, 2, [4], 5, dict(batch=1)),
    # bert_defs.cc: GroupQueryAttention chunk continuation with rotary (positions past..past+S-1)
    ("gqa_chunk_rotary", "batch 1, head 16, S=3 after past [1,2,2,16], do_rotary=1 (positions 2..4), seqlens_k=[4], "
                         "total=5", 3, 2, [4], 5, dict(rotary=True, head=16, batch=1)),
    # bert_defs.cc: GroupQueryAttention with sliding window (local_window_size) on a prompt
    ("gqa_local_window", "prompt S=5, local_window_size=2 (each query sees itself and <=2 previous keys), scale=0.5",
     5, None, [4, 4], 5, dict(local_window_size=2, scale=0.5)),
])

# ----------------------------------------------------------------------------- RotaryEmbedding


def _rotary(rng, note, shape, pos, interleaved=0, rot_dim=None, **attrs):
    # bert_defs.cc: RotaryEmbedding(input, position_ids, cos_cache, sin_cache) -> output.
    # input [B,S,hidden] (needs num_heads) or [B,num_heads,S,head]; position_ids int64 [B,S] or [1] (offset);
    # cos/sin_cache [max_position, rotary_dim/2]
    x = randn(rng, shape)
    cos, sin = rope_cache(16, rot_dim if rot_dim is not None else 16)
    if rot_dim is not None:
        attrs["rotary_embedding_dim"] = rot_dim
    node = ms("RotaryEmbedding", ["input", "position_ids", "cos_cache", "sin_cache"], ["output"],
              interleaved=interleaved, **attrs)
    return spec("RotaryEmbedding", note, node,
                [("input", x), ("position_ids", np.asarray(pos, dtype=I64)), ("cos_cache", cos), ("sin_cache", sin)],
                [("output", F32)])


POS_2x5 = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]

# row: (name, note, input shape, position_ids[, {options}])
cases(_rotary, [
    # bert_defs.cc: RotaryEmbedding, 3-D input with num_heads
    ("rotary_3d", "3-D input [2,5,32], num_heads=2 (head 16), position_ids [2,5], caches [16,8], interleaved=0",
     [2, 5, 32], POS_2x5, dict(num_heads=2)),
    # bert_defs.cc: RotaryEmbedding, 3-D input, interleaved pairs (x0,x1),(x2,x3)...
    ("rotary_3d_interleaved", "3-D input [2,5,32], num_heads=2, interleaved=1", [2, 5, 32], POS_2x5,
     dict(interleaved=1, num_heads=2)),
    # bert_defs.cc: RotaryEmbedding, 4-D input (batch, num_heads, seq, head)
    ("rotary_4d", "4-D input [2,2,5,16] (B,N,S,H), interleaved=0", [2, 2, 5, 16], POS_2x5),
    # bert_defs.cc: RotaryEmbedding, 4-D input, interleaved
    ("rotary_4d_interleaved", "4-D input [2,2,5,16] (B,N,S,H), interleaved=1", [2, 2, 5, 16], POS_2x5,
     dict(interleaved=1)),
    # bert_defs.cc: RotaryEmbedding with 1-element position_ids: offset, positions = offset + s for every batch
    ("rotary_offset", "position_ids [1] = [3]: positions 3..7 for every batch row; 3-D input, num_heads=2",
     [2, 5, 32], [3], dict(num_heads=2)),
    # bert_defs.cc: RotaryEmbedding rotating only the first rotary_embedding_dim of each head
    ("rotary_partial", "rotary_embedding_dim=8 of head 16 (rest passes through), num_heads=2, caches [16,4]",
     [2, 5, 32], POS_2x5, dict(rot_dim=8, num_heads=2)),
])
