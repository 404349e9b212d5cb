"""Faces per second of both restorers, CodeFormer and VQFR v2, on the same machine in one run.

    python bench/bench_restorers.py [--device auto] [--faces 2] [--batch-size 1] [--dtype fp32]

Both networks are the official configurations filled with their golden weight formulas (the
cost of the real checkpoints), run through the same engine (`restore_crops`: official pre-
and post-processing) at fidelity 0 and 0.5, on the same aligned crops (scikit-image's
astronaut face). One warm-up face per setting is not timed.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from videofix.models.device import resolve_device, resolve_dtype
from videofix.restore.crops import restore_crops


def build(name: str, device, dtype):
    from videofix.models.synthetic import formula_codeformer, formula_state_dict

    if name == "codeformer":
        model = formula_codeformer()
    else:
        from videofix.models.vqfr import VQFRv2

        with torch.device("meta"):
            skeleton = VQFRv2()
        model = VQFRv2.from_state_dict(formula_state_dict(skeleton))
    return model.to(device=device, dtype=dtype).eval()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"))
    ap.add_argument("--faces", type=int, default=2, help="timed faces per setting")
    ap.add_argument("--batch-size", type=int, default=1)
    args = ap.parse_args()
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    import cv2

    from videofix.samples import astronaut_face

    crop = cv2.resize(astronaut_face(512), (512, 512))
    crops = np.stack([crop] * (args.faces + 1))
    print(f"device {device}, dtype {args.dtype}, batch {args.batch_size}, {args.faces} timed faces per setting")
    print(f"{'restorer':<12}{'fidelity':>9}{'faces/s':>10}{'s/face':>9}")
    for name in ("codeformer", "vqfr"):
        model = build(name, device, dtype)
        for fidelity in (0.0, 0.5):
            restore_crops(model, crops[:1], fidelity=fidelity, batch_size=1, device=device)  # warm-up
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            restore_crops(model, crops[1:], fidelity=fidelity, batch_size=args.batch_size, device=device)
            if device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            print(f"{name:<12}{fidelity:>9.1f}{args.faces / dt:>10.3f}{dt / args.faces:>9.2f}", flush=True)
        del model
    return 0


if __name__ == "__main__":
    sys.exit(main())
