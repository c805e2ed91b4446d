#!/usr/bin/env python3
"""Packs corpus models for the GPU machine: each device call carries at most 64 MiB with the
working tree, so the models (xz-compressed: images and feature maps halve) are split into packs
that each fit beside the repository, the stripped kiln and libffi. Writes OUT/pack1, OUT/pack2,
... (each a CACHE for gpu.sh) and prints the device command for each.

    python3 testsuite/models/gpu_pack.py --kiln-xz KILN.xz --out .cache/gpu-packs [MODEL...]

KILN.xz: `strip -o /tmp/kiln target/debug/kiln && xz -T2 -6 -c /tmp/kiln > KILN.xz`. Models
default to every fetched corpus model; compressed models are kept in OUT/xz between runs
(keyed by the case's model digest), so only new or changed models are compressed again.
"""

from __future__ import annotations

import argparse
import json
import lzma
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CACHE = REPO / ".cache" / "models"
LIMIT = 64 * 1024 * 1024
# Room for what else travels (untracked files, the packs' own directory entries).
MARGIN = 1024 * 1024
LIBFFI = [Path("/usr/lib/x86_64-linux-gnu/libffi.so.8"), Path("/lib/x86_64-linux-gnu/libffi.so.8")]


def tracked_bytes() -> int:
    files = subprocess.run(["git", "ls-files", "-z"], capture_output=True, cwd=REPO, check=True).stdout.split(b"\0")
    return sum((REPO / f.decode()).stat().st_size for f in files if f and (REPO / f.decode()).is_file())


def compressed(name: str, store: Path) -> Path:
    """NAME.tar.xz of the model's folder, reused while its case is unchanged."""
    case = json.loads((CACHE / name / "case.json").read_text())
    key = case.get("model_sha256", "")[:16]
    out = store / f"{name}.{key}.tar.xz"
    if not out.exists():
        tmp = out.with_suffix(".partial")
        with lzma.open(tmp, "wb", preset=6) as xz, tarfile.open(fileobj=xz, mode="w") as tar:
            tar.add(CACHE / name, arcname=name)
        tmp.rename(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kiln-xz", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    manifest = json.loads((HERE / "manifest.json").read_text())
    names = a.models or [m["name"] for m in manifest["models"] if (CACHE / m["name"] / "case.json").exists()]
    libffi = next((p for p in LIBFFI if p.exists()), None)
    if libffi is None:
        print("libffi.so.8 not found (kiln links it; the GPU machine lacks it)", file=sys.stderr)
        return 2
    kiln_xz = Path(a.kiln_xz)
    out = Path(a.out)
    store = out / "xz"
    store.mkdir(parents=True, exist_ok=True)
    budget = LIMIT - tracked_bytes() - kiln_xz.stat().st_size - libffi.stat().st_size - MARGIN
    sizes = {n: compressed(n, store) for n in names}
    # First fit, largest first.
    packs: list[list[str]] = []
    room: list[int] = []
    too_big = []
    for n in sorted(names, key=lambda n: -sizes[n].stat().st_size):
        s = sizes[n].stat().st_size
        if s > budget:
            too_big.append(n)
            continue
        i = next((i for i, r in enumerate(room) if r >= s), None)
        if i is None:
            packs.append([])
            room.append(budget)
            i = len(packs) - 1
        packs[i].append(n)
        room[i] -= s
    for old in out.glob("pack*"):
        shutil.rmtree(old)
    for i, pack in enumerate(packs, 1):
        d = out / f"pack{i}"
        d.mkdir()
        shutil.copy(kiln_xz, d / "kiln.xz")
        shutil.copy(libffi, d / "libffi.so.8")
        for n in pack:
            shutil.copy(sizes[n], d / f"{n}.tar.xz")
        rel = d.resolve().relative_to(REPO)
        print(f"{rel}: {len(pack)} models, {(budget - room[i - 1]) / 2**20:.1f} MiB: {' '.join(pack)}")
        print(f"  device: carry [\"{rel}\"], command: timeout 590 testsuite/models/gpu.sh {rel} {rel}/kiln.xz $OUT")
    for n in too_big:
        print(f"{n}: {sizes[n].stat().st_size / 2**20:.1f} MiB compressed, more than a call's {budget / 2**20:.1f} MiB: export or fetch it there")
    return 0


if __name__ == "__main__":
    sys.exit(main())
