#!/usr/bin/env python3
"""Generates kiln's golden models: narrow variants of resnet18, mobilenet_v2, a BERT encoder,
GPT-2, a Llama-style and a Qwen2-style decoder, with random weights from a fixed seed.

Each model directory gets model.onnx (exported by PyTorch), one input_<name>.npy per graph
input, and output_<k>.npy for every graph output as computed by onnxruntime (the independent
reference). The script also checks onnxruntime against PyTorch and refuses to write goldens
that disagree.

Environment (see ../../../shared/TOOLCHAIN.md): Debian's CPU torch in a venv made with
--system-site-packages, plus `pip install -r testsuite/golden/requirements.txt`.
Run: python3 testsuite/golden/generate.py [--out testsuite/golden] [--full-resnet18 DIR] [--bert-base DIR]
"""
import argparse
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

SEED = 20261121
OPSET = 17


def basic_block(cin, cout, stride):
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.down is None else self.down(x)
            y = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(y)) + idt)

    return Block()


class NarrowResNet18(nn.Module):
    """ResNet-18's structure (stem, 4 stages of 2 basic blocks, avgpool, fc) with narrow widths."""

    def __init__(self, widths=(8, 16, 32, 64), classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        layers, cin = [], widths[0]
        for i, w in enumerate(widths):
            layers += [basic_block(cin, w, 1 if i == 0 else 2), basic_block(w, w, 1)]
            cin = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def randomize_bn(model, g):
    # Fresh BatchNorm statistics are identity; give them values so folding bugs show.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def vision_models(g):
    import torchvision

    resnet = NarrowResNet18()
    mobilenet = torchvision.models.mobilenet_v2(width_mult=0.25, num_classes=10)
    for m in (resnet, mobilenet):
        randomize_bn(m, g)
    x = torch.randn(1, 3, 64, 64, generator=g)
    return [("resnet18_narrow", resnet, {"input": x}, ["logits"], None), ("mobilenet_v2_narrow", mobilenet, {"input": x}, ["logits"], None)]


class LogitsOnly(nn.Module):
    def __init__(self, inner, key):
        super().__init__()
        self.inner, self.key = inner, key

    def forward(self, *args):
        names = ["input_ids", "attention_mask"][: len(args)]
        return self.inner(**dict(zip(names, args)), use_cache=False, return_dict=True)[self.key] if self.key != "last_hidden_state" else self.inner(**dict(zip(names, args)), return_dict=True)[self.key]


def text_models(g):
    from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    seq, vocab = 16, 1000
    ids = torch.randint(0, vocab, (1, seq), generator=g)
    mask = torch.ones(1, seq, dtype=torch.int64)
    mask[0, -3:] = 0
    bert = BertModel(BertConfig(vocab_size=vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, max_position_embeddings=64, attn_implementation="eager"), add_pooling_layer=False)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=64, attn_implementation="eager"))
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, attn_implementation="eager")
    llama = LlamaForCausalLM(LlamaConfig(**common))
    qwen2 = Qwen2ForCausalLM(Qwen2Config(**common, use_sliding_window=False))
    return [
        ("bert_tiny", LogitsOnly(bert, "last_hidden_state"), {"input_ids": ids, "attention_mask": mask}, ["last_hidden_state"], {"input_ids": {1: "seq"}, "attention_mask": {1: "seq"}}),
        ("gpt2_tiny", LogitsOnly(gpt2, "logits"), {"input_ids": ids}, ["logits"], {"input_ids": {1: "seq"}}),
        ("llama_tiny", LogitsOnly(llama, "logits"), {"input_ids": ids}, ["logits"], {"input_ids": {1: "seq"}}),
        ("qwen2_tiny", LogitsOnly(qwen2, "logits"), {"input_ids": ids}, ["logits"], {"input_ids": {1: "seq"}}),
    ]


def export(name, model, inputs, output_names, dynamic, out_dir):
    model.eval()
    d = os.path.join(out_dir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    with torch.no_grad():
        want = model(*inputs.values())
        torch.onnx.export(model, tuple(inputs.values()), path, input_names=list(inputs), output_names=output_names, opset_version=OPSET, dynamic_axes=dynamic, do_constant_folding=True)
    onnx.checker.check_model(path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {k: v.numpy() for k, v in inputs.items()}
    got = sess.run(None, feeds)
    ref = want.numpy() if isinstance(want, torch.Tensor) else want[0].numpy()
    err = np.abs(got[0] - ref).max() / max(np.abs(ref).max(), 1e-30)
    if err > 1e-4:
        sys.exit(f"{name}: onnxruntime and PyTorch disagree (max error {err:.3g} of the output's scale)")
    for k, v in feeds.items():
        np.save(os.path.join(d, f"input_{k}.npy"), v)
    for i, o in enumerate(got):
        np.save(os.path.join(d, f"output_{i}.npy"), o)
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: {len(onnx.load(path).graph.node)} nodes, {size / 1024:.0f} KiB, onnxruntime vs PyTorch {err:.2g}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--full-resnet18", help="also export the full torchvision resnet18 (45 MB) here, for timing")
    ap.add_argument("--bert-base", help="also export a 12-layer BERT-base encoder (random weights, seq 128, 440 MB) here, for timing the optimizer")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    g = torch.Generator().manual_seed(SEED)
    for spec in vision_models(g) + text_models(g):
        export(*spec, args.out)
    if args.full_resnet18:
        import torchvision

        m = torchvision.models.resnet18(num_classes=1000)
        randomize_bn(m, g)
        export("resnet18", m, {"input": torch.randn(1, 3, 224, 224, generator=g)}, ["logits"], None, args.full_resnet18)
    if args.bert_base:
        from transformers import BertConfig, BertModel

        bert = BertModel(BertConfig(attn_implementation="eager"), add_pooling_layer=False)
        ids = torch.randint(0, 30522, (1, 128), generator=g)
        feeds = {"input_ids": ids, "attention_mask": torch.ones(1, 128, dtype=torch.int64)}
        export("bert_base", LogitsOnly(bert, "last_hidden_state"), feeds, ["last_hidden_state"], None, args.bert_base)


if __name__ == "__main__":
    main()
