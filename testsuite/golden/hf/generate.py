#!/usr/bin/env python3
"""Generates kiln's safetensors goldens: small random-weight decoders and a BERT encoder saved
by transformers (config.json + model.safetensors, weights in bf16 to keep the files small),
with the fp32 outputs transformers computes (the checkpoint loaded in float32).

Each decoder directory gets config.json, model.safetensors, input_ids.npy (int64 [1, 16]),
logits.npy (f32 [1, 16, vocab]) and generated.npy (int64 [1, 16 + 16]: the prompt and the 16
tokens greedy generate() picks). The BERT directory gets input_ids.npy, attention_mask.npy
(the second sequence padded after 11 tokens) and token_type_ids.npy (int64 [2, 16]), and
last_hidden_state.npy (f32 [2, 16, 256]) and pooler_output.npy (f32 [2, 256]).

Environment (see ../../../../shared/TOOLCHAIN.md): Debian's CPU torch in a venv made with
--system-site-packages, plus `pip install -r testsuite/golden/requirements.txt`.
Run: python3 testsuite/golden/hf/generate.py [--out testsuite/golden/hf]
"""
import argparse
import os

import numpy as np
import torch
import transformers
from transformers import AutoModel, AutoModelForCausalLM, BertConfig, GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

SEED = 20261121
PROMPT = 16
NEW = 16
COMMON = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=1000, max_position_embeddings=256)


def configs():
    # Llama with Llama 3's rope scaling and untied embeddings.
    yield "llama", LlamaConfig(**COMMON, rms_norm_eps=1e-5, rope_theta=50000.0, tie_word_embeddings=False,
                               rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                 high_freq_factor=4.0, original_max_position_embeddings=64))
    # Qwen2: Q/K/V biases, tied embeddings.
    yield "qwen2", Qwen2Config(**COMMON, rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=True)
    # Mistral with a sliding window shorter than the prompt.
    yield "mistral", MistralConfig(**COMMON, rms_norm_eps=1e-5, sliding_window=8, tie_word_embeddings=False)
    # GPT-2: learned positions, LayerNorm, tanh GELU, tied head (no GQA: 4 heads). Its random
    # tied head mostly picks tokens of the context, so its greedy tokens repeat two ids.
    yield "gpt2", GPT2Config(n_layer=2, n_embd=256, n_head=4, n_inner=512, vocab_size=1000, n_positions=256)
    # BERT: post-norm encoder with token types and the pooler (no GQA: 4 heads).
    yield "bert", BertConfig(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
                             vocab_size=1000, max_position_embeddings=256, type_vocab_size=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--only", help="generate only this model")
    args = ap.parse_args()
    print("transformers", transformers.__version__, "torch", torch.__version__)
    for i, (name, cfg) in enumerate(configs()):
        if args.only and name != args.only:
            continue
        torch.manual_seed(SEED + i)
        cfg._attn_implementation = "eager"
        auto = AutoModel if name == "bert" else AutoModelForCausalLM
        model = auto.from_config(cfg)
        # Larger-than-default weights so that the logits are not all near zero.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.dim() == 2:
                    p.normal_(0.0, 0.08)
                elif "norm" in pname.lower() or "ln_" in pname:
                    p.uniform_(0.5, 1.5)
                else:
                    p.normal_(0.0, 0.05)
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
        ref = auto.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
        g = torch.Generator().manual_seed(SEED + 100 + i)
        if name == "bert":
            encoder(ref, d, g)
            continue
        ids = torch.randint(0, cfg.vocab_size, (1, PROMPT), generator=g)
        with torch.no_grad():
            logits = ref(ids).logits
            gen = ref.generate(ids, max_new_tokens=NEW, do_sample=False, min_new_tokens=NEW,
                               pad_token_id=0, eos_token_id=None)
        np.save(os.path.join(d, "input_ids.npy"), ids.numpy().astype(np.int64))
        np.save(os.path.join(d, "logits.npy"), logits.numpy().astype(np.float32))
        np.save(os.path.join(d, "generated.npy"), gen.numpy().astype(np.int64))
        for f in os.listdir(d):
            if f == "generation_config.json":
                os.remove(os.path.join(d, f))
        print(name, "logits", tuple(logits.shape), "std", float(logits.std()), "generated", gen[0, PROMPT:].tolist())


def encoder(ref, d, g):
    """BERT's outputs for two sequences, the second padded and with two token types."""
    ids = torch.randint(0, ref.config.vocab_size, (2, PROMPT), generator=g)
    mask = torch.ones(2, PROMPT, dtype=torch.int64)
    mask[1, 11:] = 0
    types = torch.zeros(2, PROMPT, dtype=torch.int64)
    types[:, 7:] = 1
    with torch.no_grad():
        out = ref(input_ids=ids, attention_mask=mask, token_type_ids=types)
    for f, t in [("input_ids", ids), ("attention_mask", mask), ("token_type_ids", types)]:
        np.save(os.path.join(d, f + ".npy"), t.numpy().astype(np.int64))
    np.save(os.path.join(d, "last_hidden_state.npy"), out.last_hidden_state.numpy().astype(np.float32))
    np.save(os.path.join(d, "pooler_output.npy"), out.pooler_output.numpy().astype(np.float32))
    print("bert last_hidden_state", tuple(out.last_hidden_state.shape), "std", float(out.last_hidden_state.std()))


if __name__ == "__main__":
    main()
