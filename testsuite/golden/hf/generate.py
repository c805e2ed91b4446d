#!/usr/bin/env python3
"""Generates kiln's safetensors goldens: small random-weight decoders saved by transformers
(config.json + model.safetensors, weights in bf16 to keep the files small), with the fp32
logits transformers computes for a fixed prompt and the tokens its greedy generate() picks.

Each model directory gets config.json, model.safetensors, input_ids.npy (int64 [1, 16]),
logits.npy (f32 [1, 16, vocab], the checkpoint loaded in float32) and generated.npy (int64
[1, 16 + 16]: the prompt and 16 greedy tokens).

Environment (see ../../../../shared/TOOLCHAIN.md): Debian's CPU torch in a venv made with
--system-site-packages, plus `pip install -r testsuite/golden/requirements.txt`.
Run: python3 testsuite/golden/hf/generate.py [--out testsuite/golden/hf]
"""
import argparse
import os

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, MistralConfig, Qwen2Config

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
        model = AutoModelForCausalLM.from_config(cfg)
        # Larger-than-default weights so that the logits are not all near zero.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.dim() == 2:
                    p.normal_(0.0, 0.08)
                elif "norm" in pname or "ln_" in pname:
                    p.uniform_(0.5, 1.5)
                else:
                    p.normal_(0.0, 0.05)
        d = os.path.join(args.out, name)
        os.makedirs(d, exist_ok=True)
        model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
        ref = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32, attn_implementation="eager").eval()
        g = torch.Generator().manual_seed(SEED + 100 + i)
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


if __name__ == "__main__":
    main()
