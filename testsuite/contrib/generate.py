#!/usr/bin/env python3
"""Generates kiln's node tests for onnxruntime's contrib operators (domain com.microsoft).

Every case is a tiny ONNX model holding one contrib node (for DynamicQuantizeLSTM, the model
exactly as onnxruntime's quantize_dynamic left it, which is that one node). The inputs
are random data from a fixed seed and the expected outputs are whatever onnxruntime's CPU
execution provider computes; onnxruntime is the reference. (The MatMulNBits cases are also
compared with a numpy dequantize-and-matmul, which confirms the weight packing written here.)

For each case the script writes <out>/<case>/:
    model.onnx        the model; weights the op normally takes as constants are initializers
    input_<k>.npy     one per graph input, k in graph-input order
    output_<k>.npy    one per graph output, k in graph-output order
    case.json         names, files, dtypes and shapes of the above, the onnxruntime version
                      and a one-line note of what the case covers

onnxruntime runs with CPUExecutionProvider, graph optimizations disabled and one intra-op
thread. A case onnxruntime refuses (at load or at run) is reported as SKIP and not written
(a stale folder of that name is removed). The graph outputs carry the shapes onnxruntime
produced (the model is run once without output shapes, rebuilt with them and run again;
both runs must agree bit for bit).

Randomness: each case draws from numpy.random.default_rng([20261207, crc32(case name)]),
so a case's data does not depend on which other cases exist or run.

Environment: onnx 1.20.0, onnxruntime 1.20.1, numpy (testsuite/requirements.txt).
Run from the repository root:
    .venv/bin/python testsuite/contrib/generate.py [--out testsuite/contrib] [--only SUBSTR ...]

Each case builder carries a comment naming the onnxruntime schema file it was written from
(onnxruntime/core/graph/contrib_ops/{bert_defs,contrib_defs,quantization_defs}.cc).
"""
import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
import onnxruntime as ort

SEED = 20261207
MS = "com.microsoft"
OPSET = 17
IR_VERSION = 8  # onnxruntime 1.20 reads up to IR 10; opset 17 needs IR 8
HERE = os.path.dirname(os.path.abspath(__file__))

CASES = []


def case(name):
    def register(fn):
        CASES.append((name, fn))
        return fn

    return register


# ----------------------------------------------------------------------------- helpers


def spec(op, note, nodes, inputs, outputs, inits=(), opset=OPSET):
    """inputs/inits: [(name, ndarray)]; outputs: [(name, numpy dtype)]."""
    if not isinstance(nodes, (list, tuple)):
        nodes = [nodes]
    return dict(op=op, note=note, nodes=list(nodes), inputs=list(inputs), inits=list(inits),
                outputs=list(outputs), opset=opset)


def ms(op, inputs, outputs, **attrs):
    return helper.make_node(op, inputs, outputs, name=op + "_0", domain=MS, **attrs)


def randn(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def uniform(rng, shape, lo, hi):
    return rng.uniform(lo, hi, shape).astype(np.float32)


def rand_int(rng, shape, lo, hi, dtype):
    """Integers in [lo, hi] inclusive."""
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)


def rope_cache(max_pos, rot_dim, base=10000.0):
    """The usual cos/sin tables, shape [max_pos, rot_dim / 2]."""
    inv_freq = 1.0 / base ** (np.arange(0, rot_dim, 2, dtype=np.float64) / rot_dim)
    freqs = np.arange(max_pos, dtype=np.float64)[:, None] * inv_freq[None, :]
    return np.cos(freqs).astype(np.float32), np.sin(freqs).astype(np.float32)


F32 = np.float32
I32 = np.int32
I64 = np.int64
U8 = np.uint8
I8 = np.int8


def scalar(value, dtype):
    return np.array(value, dtype=dtype)


# ----------------------------------------------------------------------------- GELU family


# bert_defs.cc: FastGelu(X, bias?) = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))), x = X + bias
@case("fastgelu_bias")
def _(rng):
    x, b = randn(rng, [2, 5, 16], 2.0), randn(rng, [16])
    return spec("FastGelu", "FastGelu with the optional 1-D bias input (added before the tanh approximation)",
                ms("FastGelu", ["X", "bias"], ["Y"]), [("X", x), ("bias", b)], [("Y", F32)])


# bert_defs.cc: FastGelu without bias
@case("fastgelu")
def _(rng):
    x = randn(rng, [2, 5, 16], 2.0)
    return spec("FastGelu", "FastGelu without bias", ms("FastGelu", ["X"], ["Y"]), [("X", x)], [("Y", F32)])


# contrib_defs.cc: BiasGelu(A, B) = Gelu(A + B), exact erf form, B 1-D broadcast over the last axis
@case("biasgelu")
def _(rng):
    a, b = randn(rng, [2, 5, 16], 2.0), randn(rng, [16])
    return spec("BiasGelu", "BiasGelu: exact (erf) Gelu of A + B, B [16] broadcast on the last axis",
                ms("BiasGelu", ["A", "B"], ["C"]), [("A", a), ("B", b)], [("C", F32)])


# contrib_defs.cc: QuickGelu(X) = X * sigmoid(alpha * X), alpha default 1.702
@case("quickgelu")
def _(rng):
    x = randn(rng, [2, 5, 16], 3.0)
    return spec("QuickGelu", "QuickGelu with the default alpha (1.702)", ms("QuickGelu", ["X"], ["Y"]),
                [("X", x)], [("Y", F32)])


# contrib_defs.cc: QuickGelu with alpha set
@case("quickgelu_alpha1p5")
def _(rng):
    x = randn(rng, [2, 5, 16], 3.0)
    return spec("QuickGelu", "QuickGelu with alpha=1.5", ms("QuickGelu", ["X"], ["Y"], alpha=1.5),
                [("X", x)], [("Y", F32)])


# contrib_defs.cc: Gelu (com.microsoft) = 0.5 * x * (1 + erf(x / sqrt(2)))
@case("gelu")
def _(rng):
    x = randn(rng, [2, 5, 16], 3.0)
    return spec("Gelu", "com.microsoft Gelu (exact erf form)", ms("Gelu", ["X"], ["Y"]), [("X", x)], [("Y", F32)])


# ----------------------------------------------------------------------------- layer norms


def _sln_inputs(rng, skip_shape=(2, 5, 16)):
    return (randn(rng, [2, 5, 16]), randn(rng, list(skip_shape)), uniform(rng, [16], 0.5, 1.5),
            randn(rng, [16], 0.5), randn(rng, [16], 0.5))


# bert_defs.cc: SkipLayerNormalization(input, skip, gamma, beta?, bias?) -> output, mean?, inv_std_var?,
# input_skip_bias_sum?; LayerNorm over the last axis of input + skip + bias; epsilon default 1e-12
@case("skiplayernorm")
def _(rng):
    x, s, g, be, bi = _sln_inputs(rng)
    return spec("SkipLayerNormalization", "input+skip+bias, gamma, beta; epsilon=1e-5 set explicitly",
                ms("SkipLayerNormalization", ["input", "skip", "gamma", "beta", "bias"], ["output"], epsilon=1e-5),
                [("input", x), ("skip", s), ("gamma", g), ("beta", be), ("bias", bi)], [("output", F32)])


# bert_defs.cc: SkipLayerNormalization without the optional beta and bias
@case("skiplayernorm_nobeta_nobias")
def _(rng):
    x, s, g, _, _ = _sln_inputs(rng)
    return spec("SkipLayerNormalization", "no beta, no bias; epsilon attribute absent (schema default 1e-12)",
                ms("SkipLayerNormalization", ["input", "skip", "gamma"], ["output"]),
                [("input", x), ("skip", s), ("gamma", g)], [("output", F32)])


# bert_defs.cc: SkipLayerNormalization with output 3 (input_skip_bias_sum), outputs 1 and 2 left empty
@case("skiplayernorm_sum_output")
def _(rng):
    x, s, g, be, bi = _sln_inputs(rng)
    return spec("SkipLayerNormalization",
                "outputs 0 and 3 (input_skip_bias_sum = input+skip+bias), mean/inv_std_var unused; default epsilon",
                ms("SkipLayerNormalization", ["input", "skip", "gamma", "beta", "bias"],
                   ["output", "", "", "input_skip_bias_sum"]),
                [("input", x), ("skip", s), ("gamma", g), ("beta", be), ("bias", bi)],
                [("output", F32), ("input_skip_bias_sum", F32)])


# bert_defs.cc: SkipLayerNormalization, skip may be 2-D [seq, hidden] and broadcast over the batch
@case("skiplayernorm_skip2d")
def _(rng):
    x, s, g, be, _ = _sln_inputs(rng, skip_shape=(5, 16))
    return spec("SkipLayerNormalization", "skip of shape [5,16] broadcast over batch 2; beta, no bias; epsilon=1e-5",
                ms("SkipLayerNormalization", ["input", "skip", "gamma", "beta"], ["output"], epsilon=1e-5),
                [("input", x), ("skip", s), ("gamma", g), ("beta", be)], [("output", F32)])


# bert_defs.cc: SkipSimplifiedLayerNormalization(input, skip, gamma, bias?): RMSNorm of input+skip+bias
@case("skipsimplifiedlayernorm_bias")
def _(rng):
    x, s, g, _, bi = _sln_inputs(rng)
    return spec("SkipSimplifiedLayerNormalization",
                "RMS norm of input+skip+bias with gamma; epsilon=1e-6; also output 3 (input_skip_bias_sum)",
                ms("SkipSimplifiedLayerNormalization", ["input", "skip", "gamma", "bias"],
                   ["output", "", "", "input_skip_bias_sum"], epsilon=1e-6),
                [("input", x), ("skip", s), ("gamma", g), ("bias", bi)],
                [("output", F32), ("input_skip_bias_sum", F32)])


# bert_defs.cc: SkipSimplifiedLayerNormalization without bias
@case("skipsimplifiedlayernorm")
def _(rng):
    x, s, g, _, _ = _sln_inputs(rng)
    return spec("SkipSimplifiedLayerNormalization", "RMS norm of input+skip, no bias; default epsilon (1e-12)",
                ms("SkipSimplifiedLayerNormalization", ["input", "skip", "gamma"], ["output"]),
                [("input", x), ("skip", s), ("gamma", g)], [("output", F32)])


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


def _eln_tables(rng):
    return dict(word_embedding=randn(rng, [VOCAB, HID]), position_embedding=randn(rng, [MAXPOS, HID]),
                segment_embedding=randn(rng, [NSEG, HID]))


def _eln(rng, note, mask=False, segments=True, position_ids=False, sum_output=False, eps=None):
    # bert_defs.cc: EmbedLayerNormalization(input_ids, segment_ids?, word_embedding, position_embedding,
    # segment_embedding?, gamma, beta, mask?, position_ids?) -> output, mask_index?, embedding_sum?
    t = _eln_tables(rng)
    ids = rand_int(rng, [2, 7], 0, VOCAB - 1, I32)
    seg = np.array([[0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0, 0]], dtype=I32)
    gamma, beta = uniform(rng, [HID], 0.5, 1.5), randn(rng, [HID], 0.5)
    inputs = [("input_ids", ids)]
    inits = [("word_embedding", t["word_embedding"]), ("position_embedding", t["position_embedding"])]
    names = ["input_ids", "", "word_embedding", "position_embedding", "", "gamma", "beta"]
    if segments:
        inputs.append(("segment_ids", seg))
        inits.append(("segment_embedding", t["segment_embedding"]))
        names[1], names[4] = "segment_ids", "segment_embedding"
    inputs += [("gamma", gamma), ("beta", beta)]
    if mask:
        m = np.ones([2, 7], dtype=I32)
        m[1, 4:] = 0
        inputs.append(("mask", m))
        names.append("mask")
    if position_ids:
        pos = np.array([[0, 1, 2, 3, 4, 5, 6], [3, 4, 5, 6, 7, 8, 9]], dtype=I32)
        inputs.append(("position_ids", pos))
        names += [""] * (8 - len(names)) + ["position_ids"]
    outs = ["output", "mask_index"]
    outputs = [("output", F32), ("mask_index", I32)]
    if sum_output:
        outs.append("embedding_sum")
        outputs.append(("embedding_sum", F32))
    attrs = {} if eps is None else {"epsilon": eps}
    node = ms("EmbedLayerNormalization", names, outs, **attrs)
    return spec("EmbedLayerNormalization", note, node, inputs, outputs, inits)


# bert_defs.cc: EmbedLayerNormalization, word + position + segment embeddings, no mask
@case("embedlayernorm")
def _(rng):
    return _eln(rng, "word+position+segment embeddings, no mask (mask_index output still requested); epsilon=1e-5",
                eps=1e-5)


# bert_defs.cc: EmbedLayerNormalization with mask -> mask_index = per-row count of mask ones
@case("embedlayernorm_mask")
def _(rng):
    return _eln(rng, "mask [2,7] with row 1 = 1111000; mask_index output [2]; default epsilon (1e-12)", mask=True)


# bert_defs.cc: EmbedLayerNormalization without segment_ids / segment_embedding
@case("embedlayernorm_nosegment")
def _(rng):
    return _eln(rng, "segment_ids and segment_embedding absent; with mask", mask=True, segments=False)


# bert_defs.cc: EmbedLayerNormalization with explicit position_ids and the embedding_sum output
@case("embedlayernorm_position_ids")
def _(rng):
    return _eln(rng, "explicit position_ids [2,7] (row 1 offset by 3), mask, and output 2 embedding_sum",
                mask=True, position_ids=True, sum_output=True)


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


# bert_defs.cc: Attention, no mask
@case("attention")
def _(rng):
    return _attention(rng, "input [2,6,16], weights [16,48], bias [48] (initializers), num_heads=2, no mask")


# bert_defs.cc: Attention with raw 2-D mask (batch, total_sequence_length), 1 = attend, 0 = masked
@case("attention_mask2d")
def _(rng):
    m = np.ones([2, 6], dtype=I32)
    m[1, 4:] = 0
    return _attention(rng, "raw 2-D mask_index int32 [2,6], row 1 = 111100", mask=m)


# bert_defs.cc: Attention with 1-D mask_index (batch): right-padding valid lengths
@case("attention_mask1d")
def _(rng):
    return _attention(rng, "1-D mask_index int32 [2] = [6,3]: per-batch valid length (right padding)",
                      mask=np.array([6, 3], dtype=I32))


# bert_defs.cc: Attention with unidirectional=1 (causal)
@case("attention_unidirectional")
def _(rng):
    return _attention(rng, "unidirectional=1 (causal mask), no mask_index", unidirectional=1)


# bert_defs.cc: Attention with scale attribute instead of 1/sqrt(head_size)
@case("attention_scale")
def _(rng):
    m = np.ones([2, 6], dtype=I32)
    m[0, 5:] = 0
    return _attention(rng, "scale=0.125 (default would be 1/sqrt(8)), raw 2-D mask row 0 = 111110", mask=m,
                      scale=0.125)


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
        names += [""] * (4 - len(names)) + ["key_padding_mask"]
        inputs.append(("key_padding_mask", np.asarray(kpm, dtype=I32)))
    if attn_bias is not None:
        names += [""] * (5 - len(names)) + ["attention_bias"]
        inputs.append(("attention_bias", randn(rng, attn_bias)))
    node = ms("MultiHeadAttention", names, ["output"], num_heads=4)
    return spec("MultiHeadAttention", note, node, inputs, [("output", F32)])


KPM_2x7 = [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]]


# bert_defs.cc: MultiHeadAttention, separate Q [2,5,16], K/V [2,7,16] (cross attention)
@case("mha")
def _(rng):
    return _mha(rng, "query [2,5,16], key/value [2,7,16], num_heads=4, no bias or mask")


# bert_defs.cc: MultiHeadAttention with bias [3*hidden] added to Q, K, V
@case("mha_bias")
def _(rng):
    return _mha(rng, "cross attention with bias [48] = Q|K|V biases", bias=True)


# bert_defs.cc: MultiHeadAttention with key_padding_mask (batch, kv_sequence_length).  Self-attention
# lengths on purpose: onnxruntime 1.20.1's CPU kernel ignores a 2-D key_padding_mask when the query length
# differs from the key length, so a cross-attention masked case would record that bug as the reference.
@case("mha_key_padding_mask")
def _(rng):
    return _mha(rng, "query/key/value [2,7,16], key_padding_mask int32 [2,7], row 1 = 1111100 (0 = masked)",
                kpm=KPM_2x7, q_len=7)


# bert_defs.cc: MultiHeadAttention with 1-D key_padding_mask (batch): valid key lengths
@case("mha_key_lengths")
def _(rng):
    return _mha(rng, "query/key/value [2,7,16], 1-D key_padding_mask [2] = [7,4] (valid key lengths)",
                kpm=[7, 4], q_len=7)


# bert_defs.cc: MultiHeadAttention with attention_bias (1, num_heads, S, total_S) broadcast over batch
@case("mha_attention_bias")
def _(rng):
    return _mha(rng, "cross attention, attention_bias float [1,4,5,7] broadcast over batch", attn_bias=[1, 4, 5, 7])


# bert_defs.cc: MultiHeadAttention with per-batch attention_bias plus bias
@case("mha_attention_bias_batch")
def _(rng):
    return _mha(rng, "cross attention, attention_bias float [2,4,5,7] together with bias [48]",
                bias=True, attn_bias=[2, 4, 5, 7])


# bert_defs.cc: MultiHeadAttention, all of bias, key_padding_mask and attention_bias (self-attention lengths)
@case("mha_mask_and_attention_bias")
def _(rng):
    return _mha(rng, "query/key/value [2,7,16], bias [48], key_padding_mask [2,7], attention_bias [2,4,7,7]",
                bias=True, kpm=KPM_2x7, attn_bias=[2, 4, 7, 7], q_len=7)


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


# bert_defs.cc: GroupQueryAttention prompt (first pass), no past inputs
@case("gqa_prompt")
def _(rng):
    return _gqa(rng, "prompt: S=5, no past_key/past_value, seqlens_k=[4,4], total_sequence_length=5; "
                     "num_heads=4 kv_num_heads=2 head 8 (causal)", 5, None, [4, 4], 5)


# bert_defs.cc: GroupQueryAttention token generation with a past cache
@case("gqa_decode")
def _(rng):
    return _gqa(rng, "decode: S=1, past_key/past_value [2,2,4,8], seqlens_k=[4,4], total_sequence_length=5",
                1, 4, [4, 4], 5)


# bert_defs.cc: GroupQueryAttention decode where batch rows have different valid past lengths
@case("gqa_decode_ragged")
def _(rng):
    return _gqa(rng, "decode: S=1, past buffer length 4, seqlens_k=[4,2] (row 1 has 2 valid past tokens, new "
                     "token written at position 2), total_sequence_length=5", 1, 4, [4, 2], 5)


# bert_defs.cc: GroupQueryAttention prompt with rotary embedding applied to Q and K inside the op.
# onnxruntime 1.20.1's CPU kernel refuses do_rotary=1 unless head_size % 16 == 0 ("head_size shall be a
# multiple of 16"), so the rotary cases use head size 16 instead of 8.
@case("gqa_prompt_rotary")
def _(rng):
    return _gqa(rng, "prompt S=5, head 16 (q [2,5,64], k/v [2,5,32]), do_rotary=1, cos/sin_cache [16,8] "
                     "(positions 0..4), rotary_interleaved=0, seqlens_k=[4,4], total=5",
                5, None, [4, 4], 5, rotary=True, head=16)


# bert_defs.cc: GroupQueryAttention decode with rotary (position of the new token = seqlens_k[b])
@case("gqa_decode_rotary")
def _(rng):
    return _gqa(rng, "decode S=1, head 16, past [2,2,4,16], do_rotary=1 rotary_interleaved=1, seqlens_k=[4,3] "
                     "(new token at positions 4 and 3), total=5", 1, 4, [4, 3], 5, rotary=True, interleaved=1, head=16)


# bert_defs.cc: GroupQueryAttention continuing a prompt (S > 1 with a past cache).  onnxruntime 1.20.1's CPU
# kernel allows this only with batch_size 1 ("batch_size must be 1 when sequence_length > 1 and past context").
@case("gqa_chunk")
def _(rng):
    return _gqa(rng, "batch 1, S=3 new tokens after past [1,2,2,8]: seqlens_k=[4], total_sequence_length=5, "
                     "causal inside the chunk", 3, 2, [4], 5, batch=1)


# bert_defs.cc: GroupQueryAttention chunk continuation with rotary (positions past..past+S-1)
@case("gqa_chunk_rotary")
def _(rng):
    return _gqa(rng, "batch 1, head 16, S=3 after past [1,2,2,16], do_rotary=1 (positions 2..4), seqlens_k=[4], "
                     "total=5", 3, 2, [4], 5, rotary=True, head=16, batch=1)


# bert_defs.cc: GroupQueryAttention with sliding window (local_window_size) on a prompt
@case("gqa_local_window")
def _(rng):
    return _gqa(rng, "prompt S=5, local_window_size=2 (each query sees itself and <=2 previous keys), scale=0.5",
                5, None, [4, 4], 5, local_window_size=2, scale=0.5)


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


# bert_defs.cc: RotaryEmbedding, 3-D input with num_heads
@case("rotary_3d")
def _(rng):
    return _rotary(rng, "3-D input [2,5,32], num_heads=2 (head 16), position_ids [2,5], caches [16,8], interleaved=0",
                   [2, 5, 32], POS_2x5, num_heads=2)


# bert_defs.cc: RotaryEmbedding, 3-D input, interleaved pairs (x0,x1),(x2,x3)...
@case("rotary_3d_interleaved")
def _(rng):
    return _rotary(rng, "3-D input [2,5,32], num_heads=2, interleaved=1", [2, 5, 32], POS_2x5, interleaved=1,
                   num_heads=2)


# bert_defs.cc: RotaryEmbedding, 4-D input (batch, num_heads, seq, head)
@case("rotary_4d")
def _(rng):
    return _rotary(rng, "4-D input [2,2,5,16] (B,N,S,H), interleaved=0", [2, 2, 5, 16], POS_2x5)


# bert_defs.cc: RotaryEmbedding, 4-D input, interleaved
@case("rotary_4d_interleaved")
def _(rng):
    return _rotary(rng, "4-D input [2,2,5,16] (B,N,S,H), interleaved=1", [2, 2, 5, 16], POS_2x5, interleaved=1)


# bert_defs.cc: RotaryEmbedding with 1-element position_ids: offset, positions = offset + s for every batch
@case("rotary_offset")
def _(rng):
    return _rotary(rng, "position_ids [1] = [3]: positions 3..7 for every batch row; 3-D input, num_heads=2",
                   [2, 5, 32], [3], num_heads=2)


# bert_defs.cc: RotaryEmbedding rotating only the first rotary_embedding_dim of each head
@case("rotary_partial")
def _(rng):
    return _rotary(rng, "rotary_embedding_dim=8 of head 16 (rest passes through), num_heads=2, caches [16,4]",
                   [2, 5, 32], POS_2x5, rot_dim=8, num_heads=2)


# ----------------------------------------------------------------------------- MatMulNBits


def quantize_nbits(w, block_size, with_zp, bits=4):
    """w: float [K, N] (as in MatMul(A, w)). Returns (B, scales, zero_points or None, dequantized w).

    Layout (contrib_defs.cc, MatMulNBits): B uint8 [N, n_blocks, block_size*bits/8], quantized along K, two 4-bit
    values per byte, the lower K index in the low nibble; scales [N * n_blocks] (n-major); zero_points uint8
    packed the same way per row n: [N * ceil(n_blocks*bits/8)], low nibble first. Without zero_points the
    zero point is 2^(bits-1) = 8. The last block is zero-padded when K % block_size != 0."""
    assert bits == 4
    K, N = w.shape
    nb = (K + block_size - 1) // block_size
    wt = np.zeros([N, nb * block_size], dtype=np.float32)
    wt[:, :K] = w.T
    blocks = wt.reshape(N, nb, block_size)
    if with_zp:
        lo = np.minimum(blocks.min(axis=2), 0.0)
        hi = np.maximum(blocks.max(axis=2), 0.0)
        scale = np.maximum((hi - lo) / 15.0, 1e-8).astype(np.float32)
        zp = np.clip(np.round(-lo / scale), 0, 15).astype(np.int32)
    else:
        scale = np.maximum(np.abs(blocks).max(axis=2) / 8.0, 1e-8).astype(np.float32)
        zp = np.full([N, nb], 8, dtype=np.int32)
    q = np.clip(np.round(blocks / scale[:, :, None]) + zp[:, :, None], 0, 15).astype(np.uint8)
    packed = (q[:, :, 0::2] | (q[:, :, 1::2] << 4)).astype(np.uint8)  # [N, nb, block_size/2]
    deq = ((q.astype(np.float32) - zp[:, :, None]) * scale[:, :, None]).reshape(N, nb * block_size)[:, :K].T
    zp_packed = None
    if with_zp:
        zpad = np.zeros([N, (nb + 1) // 2 * 2], dtype=np.uint8)
        zpad[:, :nb] = zp
        zp_packed = (zpad[:, 0::2] | (zpad[:, 1::2] << 4)).astype(np.uint8).reshape(-1)
    return packed, scale.reshape(-1), zp_packed, deq


def _matmulnbits(rng, note, a_shape, n, block_size, with_zp, bias=False):
    k = a_shape[-1]
    a = randn(rng, a_shape)
    w = randn(rng, [k, n], 0.2)
    b, scales, zp, deq = quantize_nbits(w, block_size, with_zp)
    inits = [("B", b), ("scales", scales)]
    names = ["A", "B", "scales"]
    if with_zp:
        inits.append(("zero_points", zp))
        names.append("zero_points")
    if bias:
        names += [""] * (5 - len(names)) + ["bias"]
        inits.append(("bias", randn(rng, [n], 0.5)))
    node = ms("MatMulNBits", names, ["Y"], K=k, N=n, bits=4, block_size=block_size)
    out = spec("MatMulNBits", note, node, [("A", a)], [("Y", F32)], inits)
    out["check"] = lambda outs: _check_close("MatMulNBits vs numpy dequantized matmul", outs[0],
                                             a @ deq + (inits[-1][1] if bias else 0), 1e-4)
    return out


# contrib_defs.cc: MatMulNBits, 4 bits, block 16, packed uint8 zero points
@case("matmulnbits_b16_zp")
def _(rng):
    return _matmulnbits(rng, "A [3,64], K=64 N=24 bits=4 block_size=16 (4 blocks), packed uint8 zero_points [24*2]",
                        [3, 64], 24, 16, True)


# contrib_defs.cc: MatMulNBits, block 16, no zero points (implicit 8)
@case("matmulnbits_b16")
def _(rng):
    return _matmulnbits(rng, "K=64 N=24 bits=4 block_size=16, no zero_points (implicit zero point 8)",
                        [3, 64], 24, 16, False)


# contrib_defs.cc: MatMulNBits, block 32 with zero points
@case("matmulnbits_b32_zp")
def _(rng):
    return _matmulnbits(rng, "K=64 N=24 bits=4 block_size=32 (2 blocks), packed zero_points [24*1]",
                        [3, 64], 24, 32, True)


# contrib_defs.cc: MatMulNBits, block 32 without zero points
@case("matmulnbits_b32")
def _(rng):
    return _matmulnbits(rng, "K=64 N=24 bits=4 block_size=32, no zero_points", [3, 64], 24, 32, False)


# contrib_defs.cc: MatMulNBits with the optional bias input (index 5; index 4 g_idx empty)
@case("matmulnbits_bias")
def _(rng):
    return _matmulnbits(rng, "K=64 N=24 block_size=16 with zero_points and bias [24] (input 5)",
                        [3, 64], 24, 16, True, bias=True)


# contrib_defs.cc: MatMulNBits with an odd number of blocks: the last zero-point byte holds one nibble
@case("matmulnbits_k48_odd_blocks")
def _(rng):
    return _matmulnbits(rng, "K=48 N=24 block_size=16 -> 3 blocks, zero_points [24*2] with a padding nibble",
                        [3, 48], 24, 16, True)


# contrib_defs.cc: MatMulNBits with K not a multiple of block_size (last block zero-padded)
@case("matmulnbits_k40_padded")
def _(rng):
    return _matmulnbits(rng, "K=40 N=24 block_size=16 -> 3 blocks, last block half padding; zero_points",
                        [3, 40], 24, 16, True)


# contrib_defs.cc: MatMulNBits with 3-D A
@case("matmulnbits_3d")
def _(rng):
    return _matmulnbits(rng, "A [2,3,64] (batched), K=64 N=24 block_size=32 with zero_points",
                        [2, 3, 64], 24, 32, True)


def _check_close(what, got, want, tol):
    err = float(np.max(np.abs(got - want)))
    scale = max(1.0, float(np.max(np.abs(want))))
    if err > tol * scale:
        raise AssertionError(f"{what}: max abs diff {err:.3g}")
    return f"numpy check max|diff|={err:.2g}"


# ----------------------------------------------------------------------------- FusedMatMul


def _fused(rng, note, a_shape, b_shape, **attrs):
    # contrib_defs.cc: FusedMatMul(A, B) = alpha * op(A) @ op(B), op = transpose of the last two axes if trans*
    a, b = randn(rng, a_shape), randn(rng, b_shape)
    node = ms("FusedMatMul", ["A", "B"], ["Y"], **attrs)
    return spec("FusedMatMul", note, node, [("A", a), ("B", b)], [("Y", F32)])


# contrib_defs.cc: FusedMatMul, alpha only
@case("fusedmatmul_alpha")
def _(rng):
    return _fused(rng, "A [3,4] @ B [4,5] with alpha=0.5", [3, 4], [4, 5], alpha=0.5)


# contrib_defs.cc: FusedMatMul, transA
@case("fusedmatmul_transa")
def _(rng):
    return _fused(rng, "transA=1: A [4,3] -> [3,4], B [4,5], alpha=0.5", [4, 3], [4, 5], alpha=0.5, transA=1)


# contrib_defs.cc: FusedMatMul, transB
@case("fusedmatmul_transb")
def _(rng):
    return _fused(rng, "transB=1: A [3,4], B [5,4] -> [4,5], alpha=2.0", [3, 4], [5, 4], alpha=2.0, transB=1)


# contrib_defs.cc: FusedMatMul, 3-D batched A with a 2-D B and both transposes
@case("fusedmatmul_batched")
def _(rng):
    return _fused(rng, "batched A [2,4,3] with transA=1 and 2-D B [5,4] with transB=1, alpha=0.5",
                  [2, 4, 3], [5, 4], alpha=0.5, transA=1, transB=1)


# contrib_defs.cc: FusedMatMul, batched A and B broadcasting batch dims
@case("fusedmatmul_broadcast")
def _(rng):
    return _fused(rng, "A [2,1,3,4] @ B [3,4,5] (batch broadcast to [2,3]), alpha=0.25", [2, 1, 3, 4], [3, 4, 5],
                  alpha=0.25)


# ----------------------------------------------------------------------------- DynamicQuantizeMatMul

# int8 weights are kept within [-63, 63] (7 bits) in every case that multiplies them with uint8 data. On x86
# without AVX-VNNI, onnxruntime's u8s8 GEMM (pmaddubsw) saturates the int16 sum of two adjacent products, so
# 255*127 + 255*127 would come out clipped and the expected outputs would depend on the machine that made
# them; with |B| <= 63 the pair sum stays below 32767 and every machine computes the exact result.
B_S8_MAX = 63


def _dqmm(rng, note, b_dtype, a_shape=(3, 16), zp=None, bias=False, per_column=False):
    # quantization_defs.cc: DynamicQuantizeMatMul(A float, B int8|uint8, b_scale, b_zero_point?, bias?):
    # A is quantized to uint8 per tensor at run time, Y = (A_q - a_zp) a_scale @ (B - b_zp) b_scale + bias
    n = 8
    a = randn(rng, list(a_shape))
    if b_dtype == I8:
        b = rand_int(rng, [16, n], -B_S8_MAX, B_S8_MAX, I8)
    else:
        b = rand_int(rng, [16, n], 0, 255, U8)
    scale = uniform(rng, [n], 0.005, 0.02) if per_column else scalar(0.01, F32)
    inits = [("B", b), ("b_scale", scale)]
    names = ["A", "B", "b_scale"]
    if zp is not None:
        inits.append(("b_zero_point", np.asarray(zp, dtype=b_dtype)))
        names.append("b_zero_point")
    if bias:
        names += [""] * (4 - len(names)) + ["bias"]
        inits.append(("bias", randn(rng, [n], 0.5)))
    node = ms("DynamicQuantizeMatMul", names, ["Y"])
    return spec("DynamicQuantizeMatMul", note, node, [("A", a)], [("Y", F32)], inits)


# quantization_defs.cc: DynamicQuantizeMatMul, int8 B, per-tensor scale
@case("dqmatmul_s8")
def _(rng):
    return _dqmm(rng, "A [3,16] float, B int8 [16,8], scalar b_scale, no zero point, no bias", I8)


# quantization_defs.cc: DynamicQuantizeMatMul, uint8 B with zero point
@case("dqmatmul_u8_zp")
def _(rng):
    return _dqmm(rng, "B uint8 [16,8] with scalar b_zero_point=131, scalar b_scale", U8, zp=131)


# quantization_defs.cc: DynamicQuantizeMatMul, int8 B with zero point and bias
@case("dqmatmul_s8_zp_bias")
def _(rng):
    return _dqmm(rng, "B int8 with scalar b_zero_point=-3 and bias [8]", I8, zp=-3, bias=True)


# quantization_defs.cc: DynamicQuantizeMatMul, per-column b_scale / b_zero_point, 3-D A
@case("dqmatmul_per_column")
def _(rng):
    return _dqmm(rng, "A [2,3,16]; B int8; per-column b_scale [8] and b_zero_point [8]; bias", I8, a_shape=(2, 3, 16),
                 zp=[0, 1, -1, 2, -2, 3, 0, -4], bias=True, per_column=True)


# ----------------------------------------------------------------------------- MatMulIntegerToFloat


def _mmitf(rng, note, a_dtype, b_dtype, a_shape=(3, 16), zps=True, bias=True, per_column=False):
    # quantization_defs.cc: MatMulIntegerToFloat(A, B, a_scale, b_scale, a_zero_point?, b_zero_point?, bias?)
    # Y = (A - a_zp) * a_scale @ (B - b_zp) * b_scale + bias
    n = 8

    def ints(shape, dt, lim=128):
        return rand_int(rng, shape, -lim, lim - 1, I8) if dt == I8 else rand_int(rng, shape, 0, 255, U8)

    a, b = ints(list(a_shape), a_dtype), ints([16, n], b_dtype, B_S8_MAX + 1)
    inputs = [("A", a), ("a_scale", scalar(0.02, F32))]
    inits = [("B", b), ("b_scale", uniform(rng, [n], 0.005, 0.02) if per_column else scalar(0.01, F32))]
    names = ["A", "B", "a_scale", "b_scale"]
    if zps:
        a_zp = scalar(120 if a_dtype == U8 else -5, a_dtype)
        b_zp = (np.array([125, 128, 130, 127, 126, 129, 131, 124], dtype=U8) if per_column else
                scalar(128 if b_dtype == U8 else 2, b_dtype))
        inputs.append(("a_zero_point", a_zp))
        inits.append(("b_zero_point", b_zp))
        names += ["a_zero_point", "b_zero_point"]
    if bias:
        names += [""] * (6 - len(names)) + ["bias"]
        inits.append(("bias", randn(rng, [n], 0.5)))
    node = ms("MatMulIntegerToFloat", names, ["Y"])
    return spec("MatMulIntegerToFloat", note, node, inputs, [("Y", F32)], inits)


# quantization_defs.cc: MatMulIntegerToFloat, uint8 A x int8 B with zero points and bias
@case("mmitf_u8s8")
def _(rng):
    return _mmitf(rng, "A uint8 [3,16] (a_scale, a_zero_point graph inputs), B int8 [16,8], scalar b_scale, "
                       "b_zero_point, bias [8]", U8, I8)


# quantization_defs.cc: MatMulIntegerToFloat, uint8 x uint8, per-column b_scale/b_zero_point, 3-D A
@case("mmitf_u8u8_per_column")
def _(rng):
    return _mmitf(rng, "A uint8 [2,3,16] x B uint8 [16,8], per-column b_scale [8] and b_zero_point [8], no bias",
                  U8, U8, a_shape=(2, 3, 16), bias=False, per_column=True)


# quantization_defs.cc: MatMulIntegerToFloat, int8 x int8 without zero points
@case("mmitf_s8s8")
def _(rng):
    return _mmitf(rng, "A int8 [3,16] x B int8 [16,8], no zero points, bias [8]", I8, I8, zps=False)


# ----------------------------------------------------------------------------- DynamicQuantizeLSTM


def _dqlstm(rng, note, batch, direction, initial_state=False):
    # quantization_defs.cc: DynamicQuantizeLSTM(X, W, R, B?, sequence_lens?, initial_h?, initial_c?, P?, W_scale,
    # W_zero_point, R_scale, R_zero_point) -> Y?, Y_h?, Y_c?.  The model is made the way
    # onnxruntime.quantization.quantize_dynamic makes it from a float ONNX LSTM: W int8 [dirs, input, 4*hidden]
    # and R int8 [dirs, hidden, 4*hidden] (transposed relative to ONNX LSTM), scales/zero points [dirs].
    from onnxruntime.quantization import QuantType, quantize_dynamic

    seq, inp, hid = 6, 8, 12
    nd = 2 if direction == "bidirectional" else 1
    x = randn(rng, [seq, batch, inp])
    w = randn(rng, [nd, 4 * hid, inp], 0.3)
    r = randn(rng, [nd, 4 * hid, hid], 0.3)
    b = randn(rng, [nd, 8 * hid], 0.1)
    inputs = [("X", x)]
    lstm_in = ["X", "W", "R", "B"]
    if initial_state:
        inputs += [("initial_h", randn(rng, [nd, batch, hid], 0.5)), ("initial_c", randn(rng, [nd, batch, hid], 0.5))]
        lstm_in += ["", "initial_h", "initial_c"]
    node = helper.make_node("LSTM", lstm_in, ["Y", "Y_h", "Y_c"], name="LSTM_0", hidden_size=hid, direction=direction)
    g_in = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape)) for n, a in inputs]
    g_out = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [seq, nd, batch, hid]),
             helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [nd, batch, hid]),
             helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [nd, batch, hid])]
    inits = [numpy_helper.from_array(a, n) for n, a in (("W", w), ("R", r), ("B", b))]
    graph = helper.make_graph([node], "lstm", g_in, g_out, inits)
    fmodel = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    fmodel.ir_version = IR_VERSION
    with tempfile.TemporaryDirectory() as tmp:
        fpath, qpath = os.path.join(tmp, "float.onnx"), os.path.join(tmp, "quant.onnx")
        onnx.save(fmodel, fpath)
        # reduce_range: 7-bit weights, see B_S8_MAX above (the u8s8 saturation on x86 without VNNI)
        quantize_dynamic(fpath, qpath, weight_type=QuantType.QInt8, reduce_range=True)
        qmodel = onnx.load(qpath)
    ops = [n.op_type for n in qmodel.graph.node]
    if "DynamicQuantizeLSTM" not in ops:
        raise RuntimeError(f"quantize_dynamic produced {ops}, no DynamicQuantizeLSTM")
    qmodel.producer_name, qmodel.producer_version = "kiln-testsuite-contrib", ""
    qmodel.graph.name = "dqlstm"
    for t in qmodel.graph.initializer:
        if t.data_type == TensorProto.INT8 and np.abs(numpy_helper.to_array(t).astype(np.int32)).max() > B_S8_MAX + 1:
            raise RuntimeError(f"{t.name} has int8 values beyond +-{B_S8_MAX + 1}")
    others = [o for o in ops if o != "DynamicQuantizeLSTM"]
    full_note = note + (f"; quantize_dynamic also left: {', '.join(others)}" if others else
                        "; quantize_dynamic output, single node")
    return dict(op="DynamicQuantizeLSTM", note=full_note, model=qmodel, inputs=inputs,
                outputs=[("Y", F32), ("Y_h", F32), ("Y_c", F32)])


# quantization_defs.cc: DynamicQuantizeLSTM, forward
@case("dqlstm_forward")
def _(rng):
    return _dqlstm(rng, "quantize_dynamic(QInt8, reduce_range) of LSTM X [6,2,8], hidden 12, forward, with B", 2, "forward")


# quantization_defs.cc: DynamicQuantizeLSTM, bidirectional
@case("dqlstm_bidirectional")
def _(rng):
    return _dqlstm(rng, "quantize_dynamic(QInt8, reduce_range) of LSTM X [6,2,8], hidden 12, bidirectional", 2, "bidirectional")


# quantization_defs.cc: DynamicQuantizeLSTM with initial_h / initial_c graph inputs
@case("dqlstm_initial_state")
def _(rng):
    return _dqlstm(rng, "quantize_dynamic(QInt8, reduce_range) of LSTM X [6,1,8], hidden 12, forward, initial_h/initial_c inputs",
                   1, "forward", initial_state=True)


# ----------------------------------------------------------------------------- QLinear* element-wise and pooling


def _qparams(dtype):
    """(x_scale, x_zp, y_scale, y_zp) for the unary ops."""
    if dtype == U8:
        return scalar(0.05, F32), scalar(128, U8), scalar(1.0 / 256, F32), scalar(0, U8)
    return scalar(0.05, F32), scalar(-3, I8), scalar(1.0 / 256, F32), scalar(-128, I8)


def _qx(rng, shape, dtype):
    return rand_int(rng, shape, 0, 255, U8) if dtype == U8 else rand_int(rng, shape, -128, 127, I8)


def _qunary(rng, op, dtype, note, y_params=None, **attrs):
    # quantization_defs.cc: QLinear<op>(X, X_scale, X_zero_point?, Y_scale, Y_zero_point?)
    xs, xz, ys, yz = _qparams(dtype)
    if y_params is not None:
        ys, yz = y_params
    x = _qx(rng, [2, 3, 4, 5], dtype)
    node = ms(op, ["X", "X_scale", "X_zero_point", "Y_scale", "Y_zero_point"], ["Y"], **attrs)
    return spec(op, note, node, [("X", x)], [("Y", dtype)],
                [("X_scale", xs), ("X_zero_point", xz), ("Y_scale", ys), ("Y_zero_point", yz)])


# quantization_defs.cc: QLinearSigmoid uint8
@case("qlinearsigmoid_u8")
def _(rng):
    return _qunary(rng, "QLinearSigmoid", U8, "uint8 X [2,3,4,5], x scale 0.05 zp 128, y scale 1/256 zp 0")


# quantization_defs.cc: QLinearSigmoid int8
@case("qlinearsigmoid_s8")
def _(rng):
    return _qunary(rng, "QLinearSigmoid", I8, "int8 X [2,3,4,5], x scale 0.05 zp -3, y scale 1/256 zp -128")


# quantization_defs.cc: QLinearLeakyRelu uint8
@case("qlinearleakyrelu_u8")
def _(rng):
    return _qunary(rng, "QLinearLeakyRelu", U8, "uint8, alpha=0.1, x scale 0.05 zp 128, y scale 0.04 zp 100",
                   y_params=(scalar(0.04, F32), scalar(100, U8)), alpha=0.1)


# quantization_defs.cc: QLinearLeakyRelu int8 (default alpha 0.01)
@case("qlinearleakyrelu_s8")
def _(rng):
    return _qunary(rng, "QLinearLeakyRelu", I8, "int8, default alpha (0.01), x scale 0.05 zp -3, y scale 0.04 zp -20",
                   y_params=(scalar(0.04, F32), scalar(-20, I8)))


def _qbinary(rng, op, dtype, note, a_shape, b_shape):
    # quantization_defs.cc: QLinearAdd / QLinearMul(A, A_scale, A_zero_point?, B, B_scale, B_zero_point?,
    # C_scale, C_zero_point?) with numpy broadcasting
    a, b = _qx(rng, a_shape, dtype), _qx(rng, b_shape, dtype)
    if dtype == U8:
        q = [scalar(0.03, F32), scalar(120, U8), scalar(0.05, F32), scalar(130, U8), scalar(0.07, F32),
             scalar(125, U8)]
    else:
        q = [scalar(0.03, F32), scalar(-4, I8), scalar(0.05, F32), scalar(3, I8), scalar(0.07, F32), scalar(-2, I8)]
    if op == "QLinearMul":
        q[4] = scalar(0.6, F32)
    node = ms(op, ["A", "A_scale", "A_zero_point", "B", "B_scale", "B_zero_point", "C_scale", "C_zero_point"], ["C"])
    inits = list(zip(["A_scale", "A_zero_point", "B_scale", "B_zero_point", "C_scale", "C_zero_point"], q))
    return spec(op, note, node, [("A", a), ("B", b)], [("C", dtype)], inits)


# quantization_defs.cc: QLinearAdd uint8 with broadcasting
@case("qlinearadd_u8")
def _(rng):
    return _qbinary(rng, "QLinearAdd", U8, "uint8 A [2,3,4] + B [4] (broadcast), distinct scales/zero points",
                    [2, 3, 4], [4])


# quantization_defs.cc: QLinearAdd int8 same shape
@case("qlinearadd_s8")
def _(rng):
    return _qbinary(rng, "QLinearAdd", I8, "int8 A [2,3,4] + B [2,3,4]", [2, 3, 4], [2, 3, 4])


# quantization_defs.cc: QLinearMul uint8 with broadcasting
@case("qlinearmul_u8")
def _(rng):
    return _qbinary(rng, "QLinearMul", U8, "uint8 A [2,3,4] * B [3,1] (broadcast)", [2, 3, 4], [3, 1])


# quantization_defs.cc: QLinearMul int8
@case("qlinearmul_s8")
def _(rng):
    return _qbinary(rng, "QLinearMul", I8, "int8 A [2,3,4] * B [2,3,4]", [2, 3, 4], [2, 3, 4])


# quantization_defs.cc: QLinearGlobalAveragePool(X, x_scale, x_zero_point, y_scale, y_zero_point), channels_last attr
@case("qlinearglobalavgpool_u8")
def _(rng):
    x = _qx(rng, [1, 3, 4, 4], U8)
    node = ms("QLinearGlobalAveragePool", ["X", "x_scale", "x_zero_point", "y_scale", "y_zero_point"], ["Y"])
    return spec("QLinearGlobalAveragePool", "uint8 NCHW [1,3,4,4] -> [1,3,1,1], x scale 0.05 zp 128, y 0.02 zp 120",
                node, [("X", x)], [("Y", U8)],
                [("x_scale", scalar(0.05, F32)), ("x_zero_point", scalar(128, U8)), ("y_scale", scalar(0.02, F32)),
                 ("y_zero_point", scalar(120, U8))])


# quantization_defs.cc: QLinearGlobalAveragePool, int8, channels_last=1 (NHWC)
@case("qlinearglobalavgpool_s8_nhwc")
def _(rng):
    x = _qx(rng, [2, 3, 3, 4], I8)
    node = ms("QLinearGlobalAveragePool", ["X", "x_scale", "x_zero_point", "y_scale", "y_zero_point"], ["Y"],
              channels_last=1)
    return spec("QLinearGlobalAveragePool", "int8 NHWC [2,3,3,4] with channels_last=1 -> [2,1,1,4]",
                node, [("X", x)], [("Y", I8)],
                [("x_scale", scalar(0.05, F32)), ("x_zero_point", scalar(-3, I8)), ("y_scale", scalar(0.02, F32)),
                 ("y_zero_point", scalar(5, I8))])


def _qconcat(rng, dtype, note):
    # quantization_defs.cc: QLinearConcat(Y_scale, Y_zero_point, (X_i, X_i_scale, X_i_zero_point)...), axis required
    x0, x1 = _qx(rng, [2, 3, 2], dtype), _qx(rng, [2, 5, 2], dtype)
    if dtype == U8:
        zps = [scalar(128, U8), scalar(120, U8), scalar(135, U8)]
    else:
        zps = [scalar(0, I8), scalar(-8, I8), scalar(7, I8)]
    node = ms("QLinearConcat", ["Y_scale", "Y_zero_point", "X0", "X0_scale", "X0_zero_point",
                                "X1", "X1_scale", "X1_zero_point"], ["Y"], axis=1)
    inits = [("Y_scale", scalar(0.05, F32)), ("Y_zero_point", zps[0]), ("X0_scale", scalar(0.04, F32)),
             ("X0_zero_point", zps[1]), ("X1_scale", scalar(0.07, F32)), ("X1_zero_point", zps[2])]
    return spec("QLinearConcat", note, node, [("X0", x0), ("X1", x1)], [("Y", dtype)], inits)


# quantization_defs.cc: QLinearConcat uint8 (requantizes each input to the output scale)
@case("qlinearconcat_u8")
def _(rng):
    return _qconcat(rng, U8, "uint8 [2,3,2] ++ [2,5,2] on axis 1, three different scales/zero points")


# quantization_defs.cc: QLinearConcat int8
@case("qlinearconcat_s8")
def _(rng):
    return _qconcat(rng, I8, "int8 [2,3,2] ++ [2,5,2] on axis 1, three different scales/zero points")


# ----------------------------------------------------------------------------- driver


def np_to_onnx(dtype):
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def build_model(name, s, out_shapes=None):
    g_in = [helper.make_tensor_value_info(n, np_to_onnx(a.dtype), list(a.shape)) for n, a in s["inputs"]]
    g_out = [helper.make_tensor_value_info(n, np_to_onnx(dt), None if out_shapes is None else out_shapes[i])
             for i, (n, dt) in enumerate(s["outputs"])]
    inits = [numpy_helper.from_array(a, n) for n, a in s["inits"]]
    graph = helper.make_graph(s["nodes"], name, g_in, g_out, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", s["opset"]), helper.make_opsetid(MS, 1)],
                              producer_name="kiln-testsuite-contrib")
    model.ir_version = IR_VERSION
    return model


def run_ort(model, feeds):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(None, feeds)


def make_case(name, s):
    """Returns (model, outputs) after the two-run shape check."""
    feeds = {n: a for n, a in s["inputs"]}
    if "model" in s:
        model = s["model"]
        names, outs = run_ort(model, feeds)
        _, again = run_ort(model, feeds)
    else:
        names, outs = run_ort(build_model(name, s), feeds)
        model = build_model(name, s, [list(o.shape) for o in outs])
        names, again = run_ort(model, feeds)
    assert names == [n for n, _ in s["outputs"]], (names, s["outputs"])
    for o, p in zip(outs, again):
        if o.dtype != p.dtype or o.shape != p.shape or not np.array_equal(o, p, equal_nan=True):
            raise AssertionError("two onnxruntime runs disagree")
    for (n, dt), o in zip(s["outputs"], again):
        if o.dtype != np.dtype(dt):
            raise AssertionError(f"output {n}: dtype {o.dtype}, expected {np.dtype(dt)}")
        if o.dtype.kind == "f" and not np.all(np.isfinite(o)):
            raise AssertionError(f"output {n} has non-finite values")
    return model, again


def case_json(name, op, meta_in, meta_out, note):
    """case.json text: plain JSON, one tensor entry per line."""
    def tensors(entries):
        return "[\n" + ",\n".join("  " + json.dumps(e) for e in entries) + "\n ]"

    return ("{\n"
            f' "name": {json.dumps(name)},\n'
            f' "op": {json.dumps(op)},\n'
            f' "inputs": {tensors(meta_in)},\n'
            f' "outputs": {tensors(meta_out)},\n'
            f' "onnxruntime": {json.dumps(ort.__version__)},\n'
            f' "note": {json.dumps(note)}\n'
            "}\n")


def write_case(out_dir, name, s, model, outs):
    final = os.path.join(out_dir, name)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    onnx.save(model, os.path.join(tmp, "model.onnx"))
    meta_in, meta_out = [], []
    for k, (n, a) in enumerate(s["inputs"]):
        np.save(os.path.join(tmp, f"input_{k}.npy"), a)
        meta_in.append({"name": n, "file": f"input_{k}.npy", "dtype": str(a.dtype), "shape": list(a.shape)})
    for k, ((n, _), a) in enumerate(zip(s["outputs"], outs)):
        np.save(os.path.join(tmp, f"output_{k}.npy"), a)
        meta_out.append({"name": n, "file": f"output_{k}.npy", "dtype": str(a.dtype), "shape": list(a.shape)})
    with open(os.path.join(tmp, "case.json"), "w") as f:
        f.write(case_json(name, s["op"], meta_in, meta_out, s["note"]))
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)


def fmt_shapes(items):
    return ",".join("x".join(map(str, a.shape)) or "scalar" for a in items)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=HERE, help="output folder (default: this script's folder)")
    ap.add_argument("--only", nargs="*", default=None, help="only cases whose name contains one of these")
    args = ap.parse_args()
    ort.set_default_logger_severity(4)  # refusals are reported on our own SKIP line
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's pre-processing hint
    os.makedirs(args.out, exist_ok=True)
    ok, skipped = 0, []
    for name, build in CASES:
        if args.only and not any(sub in name for sub in args.only):
            continue
        rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
        op = "?"
        try:
            s = build(rng)
            op = s["op"]
            model, outs = make_case(name, s)
            extra = s["check"](outs) if "check" in s else ""
        except Exception as e:  # onnxruntime refused the case, or a self-check failed
            msg = " ".join(str(e).split())[:300]
            print(f"SKIP {name:30s} {op:34s} {type(e).__name__}: {msg}", flush=True)
            shutil.rmtree(os.path.join(args.out, name), ignore_errors=True)
            skipped.append(name)
            continue
        write_case(args.out, name, s, model, outs)
        ok += 1
        print(f"ok   {name:30s} {op:34s} in {fmt_shapes([a for _, a in s['inputs']])} -> out {fmt_shapes(outs)}"
              + (f"  ({extra})" if extra else ""), flush=True)
    print(f"{ok} cases written to {args.out}, {len(skipped)} skipped" + (f": {' '.join(skipped)}" if skipped else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
