"""Faces per second of `restore_crops` (CodeFormer, formula weights: no weights file needed).

    python bench/bench_restore_faces.py [--batch-size 8] [--dtype fp16] [--device cuda] [--small]

Prints faces/s for the given settings; on CUDA also for fp32 at batch size 1 (the official
script's settings) and the speed-up. Timings exclude one warm-up batch. The weights are
the golden README formula, so the numbers measure the network, not a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from videofix.models.device import resolve_device, resolve_dtype
from videofix.models.synthetic import formula_codeformer, small_codeformer_config
from videofix.restore.crops import network_batch_size, restore_crops


def test_crops(count: int, size: int) -> np.ndarray:
    """Deterministic smooth uint8 RGB pictures (count, size, size, 3)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    crops = []
    for i in range(count):
        rgb = np.stack([200 * x + 30 * np.sin(9 * y + i), 120 + 60 * np.cos(5 * x * y + i), 40 + 150 * y], -1)
        crops.append(np.clip(rgb, 0, 255).astype(np.uint8))
    return np.stack(crops)


def measure(model, crops: np.ndarray, batch_size: int, fidelity: float) -> float:
    """faces/s over ``crops`` after one warm-up batch."""
    restore_crops(model, crops[:batch_size], fidelity=fidelity, batch_size=batch_size)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    restore_crops(model, crops, fidelity=fidelity, batch_size=batch_size)  # returns numpy: synchronised
    return len(crops) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--faces", type=int, default=None, help="faces to time (default: 4 batches on GPU, 2 faces on CPU)")
    parser.add_argument("--fidelity", type=float, default=0.5)
    parser.add_argument("--small", action="store_true", help="the small test network (128x128) instead of the full one")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    device = resolve_device(args.device)
    resolve_dtype(args.dtype, device)  # refuse an unsupported dtype before building anything
    base = formula_codeformer(small_codeformer_config() if args.small else None)
    size = base.input_size
    faces = args.faces or (4 * args.batch_size if device.type != "cpu" else 2)
    crops = test_crops(faces, size)
    results = {
        "network": "small" if args.small else "full", "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "faces": faces, "fidelity": args.fidelity,
    }  # fmt: skip

    runs = [(args.dtype, args.batch_size)]
    if device.type == "cuda" and (args.dtype, args.batch_size) != ("fp32", 1):
        runs.insert(0, ("fp32", 1))
    for name, batch in runs:
        model = base.to(device=device, dtype=resolve_dtype(name, device))
        rate = measure(model, crops, batch, args.fidelity)
        effective = network_batch_size(device, batch)
        results[f"{name}_b{batch}_faces_per_s"] = rate
        print(
            f"{results['network']} CodeFormer {size}x{size} on {results['device_name']}: {name} batch {batch}"
            f" (network batch {effective}): {rate:.3f} faces/s ({1 / rate:.3f} s/face)"
        )
    if len(runs) == 2:
        speedup = results[f"{args.dtype}_b{args.batch_size}_faces_per_s"] / results["fp32_b1_faces_per_s"]
        results["speedup_vs_fp32_b1"] = speedup
        print(f"speed-up vs fp32 batch 1: {speedup:.2f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
