#!/usr/bin/env python3
"""Writes an AWQ-format (AutoAWQ "gemm" packing) checkpoint of a golden decoder, and its
dequantized fp32 twin, for kiln's AWQ import test.

    python3 testsuite/golden/hf/make_awq.py SRC_DIR OUT_DIR [GROUP]

SRC_DIR holds config.json and model.safetensors (the golden llama/qwen2/mistral). OUT_DIR/awq
gets every decoder-layer Linear as `qweight` int32 [in, out/8], `qzeros` int32 [in/G, out/8]
and `scales` fp16 [in/G, out] (4-bit asymmetric per group of G input channels: scale
(max - min) / 15, zero round(-min / scale), values round(w / scale) + zero, clamped to
[0, 15]; 8 values per int32 in AutoAWQ's order 0, 2, 4, 6, 1, 3, 5, 7), a config.json with its
`quantization_config`; OUT_DIR/twin gets the same model with each of those weights replaced by
its dequantization (q - zero) * scale in fp32, the `weight` [out, in] a Linear holds. Written
with numpy alone (safetensors is a JSON header and raw bytes).
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np

ORDER = [0, 2, 4, 6, 1, 3, 5, 7]
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64}


def read(path: Path) -> dict:
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        if info["dtype"] == "BF16":
            bits = np.frombuffer(body[a:b], dtype=np.uint16).astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(body[a:b], dtype=DTYPES[info["dtype"]])
        out[name] = arr.reshape(info["shape"])
    return out


def write(path: Path, tensors: dict) -> None:
    names = {np.dtype(np.float32): "F32", np.dtype(np.float16): "F16", np.dtype(np.int32): "I32"}
    header, chunks, offset = {}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": names[arr.dtype], "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def pack(values: np.ndarray) -> np.ndarray:
    """[rows, cols] of 0..15 -> int32 [rows, cols / 8], AutoAWQ's order within each int32."""
    rows, cols = values.shape
    out = np.zeros((rows, cols // 8), dtype=np.uint32)
    for col in range(cols // 8):
        for i, j in enumerate(ORDER):
            out[:, col] |= values[:, col * 8 + j].astype(np.uint32) << (4 * i)
    return out.view(np.int32)


def quantize(w: np.ndarray, group: int):
    """w [out, in] -> (q [in, out], zeros [in/G, out], scales fp16 [in/G, out])."""
    wt = w.T.astype(np.float32)  # [in, out]
    k, n = wt.shape
    g = wt.reshape(k // group, group, n)
    lo, hi = g.min(axis=1), g.max(axis=1)
    scales = np.maximum((hi - lo) / 15.0, 1e-5).astype(np.float16)
    s = scales.astype(np.float32)
    zeros = np.clip(np.round(-lo / s), 0, 15)
    q = np.clip(np.round(g / s[:, None, :]) + zeros[:, None, :], 0, 15).reshape(k, n)
    return q.astype(np.uint32), zeros.astype(np.uint32), scales


def main() -> int:
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    group = int(sys.argv[3]) if len(sys.argv) > 3 else 32
    tensors = read(src / "model.safetensors")
    config = json.loads((src / "config.json").read_text())
    awq, twin = {}, {}
    for name, arr in tensors.items():
        prefix, _, leaf = name.rpartition(".")
        if leaf == "weight" and prefix.rpartition(".")[2] in LINEARS:
            q, zeros, scales = quantize(arr, group)
            awq[f"{prefix}.qweight"] = pack(q)
            awq[f"{prefix}.qzeros"] = pack(zeros)
            awq[f"{prefix}.scales"] = scales
            k = q.shape[0]
            deq = (q.astype(np.float32) - np.repeat(zeros, group, axis=0)) * np.repeat(scales.astype(np.float32), group, axis=0)
            assert deq.shape == (k, arr.shape[0])
            twin[name] = np.ascontiguousarray(deq.T.astype(np.float32))
        else:
            awq[name] = arr.astype(np.float32)
            twin[name] = arr.astype(np.float32)
    write(out / "awq" / "model.safetensors", awq)
    write(out / "twin" / "model.safetensors", twin)
    quant = {"quant_method": "awq", "bits": 4, "group_size": group, "zero_point": True, "version": "gemm"}
    (out / "awq" / "config.json").write_text(json.dumps({**config, "quantization_config": quant}, indent=1))
    (out / "twin" / "config.json").write_text(json.dumps(config, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
