"""Throughput of the temporal engine against the per-frame engine, in one run on one machine.

Measures, on the same crops (a noisy still face, see bench/temporal_table.py):

* per-frame engine: ``videofix.restore.crops.restore_crops`` (encode -> argmax -> decode);
* temporal engine: ``TemporalRestorer`` at radius R (codes + AdaIN statistics smoothing),
  profiled per stage, so the cost of smoothing (evidence, window pooling, restyling) is
  reported next to the encoder and the decoder;
* on CUDA, also: fp32 batch 1 (the official script's setting) against bf16 / fp16 autocast at
  a larger batch, with channels_last, and the code agreement of each half precision against
  fp32 (fraction of tokens whose chosen code is the same).

Usage:  python bench/bench_temporal.py [--config small|full] [--faces 8] [--batch 4]
        [--radius 4] [--fidelity 0.5] [--device cpu|cuda] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from videofix.models.synthetic import formula_codeformer, small_codeformer_config
from videofix.restore.crops import restore_crops
from videofix.restore.temporal import TemporalRestorer, encode_logits

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from temporal_table import still_face_clip  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_per_frame(model, crops, fidelity, batch, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    restore_crops(model, crops, fidelity=fidelity, batch_size=batch, device=device)
    _sync(device)
    return time.perf_counter() - t0


def time_temporal(model, crops, fidelity, batch, radius, device, dtype=torch.float32, profile=True):
    engine = TemporalRestorer(model, radius=radius, fidelity=fidelity, batch_size=batch, device=device,
                              dtype=dtype, profile=profile)
    _sync(device)
    t0 = time.perf_counter()
    faces = []
    for t, crop in enumerate(crops):
        faces += engine.push(0, t, crop)
    faces += engine.flush()
    _sync(device)
    return time.perf_counter() - t0, engine, faces


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=("small", "full"), default="small")
    p.add_argument("--faces", type=int, default=8)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--radius", type=int, default=4)
    p.add_argument("--fidelity", type=float, default=0.5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (golden tolerances)
        torch.backends.cudnn.allow_tf32 = False

    model = formula_codeformer(small_codeformer_config() if args.config == "small" else None).eval().to(device)
    crops = still_face_clip(model.input_size, args.faces, noise=10.0, seed=3)
    print(f"# CodeFormer formula weights ({args.config}, {model.input_size}px), {args.faces} faces, "
          f"device {device}, threads {args.threads}, w = {args.fidelity}", flush=True)

    # warm-up (allocator, kernels)
    restore_crops(model, crops[:1], fidelity=args.fidelity, batch_size=1, device=device)

    out: dict[str, object] = {"args": vars(args)}
    t_pf = time_per_frame(model, crops, args.fidelity, args.batch, device)
    t_tmp, engine, _ = time_temporal(model, crops, args.fidelity, args.batch, args.radius, device)
    n = len(crops)
    tm = engine.timings
    out["per_frame_faces_per_s"] = n / t_pf
    out["temporal_faces_per_s"] = n / t_tmp
    out["temporal_stage_s_per_face"] = {k: v / n for k, v in tm.items()}
    out["smoothing_over_decoder"] = tm["smooth"] / max(tm["decode"], 1e-12)
    print(f"| engine (batch {args.batch}) | faces/s | s/face |")
    print("| --- | --- | --- |")
    print(f"| per-frame (restore_crops) | {n / t_pf:.3f} | {t_pf / n:.3f} |")
    print(f"| temporal R={args.radius} (profiled) | {n / t_tmp:.3f} | {t_tmp / n:.3f} |")
    print(f"temporal stages per face: encode {tm['encode'] / n * 1000:.1f} ms, smoothing {tm['smooth'] / n * 1000:.2f} ms, "
          f"batch gather {tm['gather'] / n * 1000:.2f} ms, decode {tm['decode'] / n * 1000:.1f} ms -> smoothing = {100 * out['smoothing_over_decoder']:.2f}% of the decoder")

    if device.type == "cuda":
        rows = []
        fp32_codes = encode_logits(model, crops, batch_size=1, device=device).argmax(-1)
        t1 = time_per_frame(model, crops, args.fidelity, 1, device)
        rows.append(("fp32 batch 1 per-frame (official setting)", n / t1, 1.0))
        model_cl = model.to(memory_format=torch.channels_last)
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            codes = encode_logits(model_cl, crops, batch_size=args.batch, device=device, dtype=dtype).argmax(-1)
            agree = float((codes == fp32_codes).float().mean())
            t, _, _ = time_temporal(model_cl, crops, args.fidelity, args.batch, args.radius, device, dtype, profile=False)
            rows.append((f"temporal R={args.radius} {str(dtype).split('.')[-1]} batch {args.batch} channels_last",
                         n / t, agree))
        out["cuda"] = [{"setting": s, "faces_per_s": f, "code_agreement_vs_fp32": a} for s, f, a in rows]
        print("\n| CUDA setting | faces/s | code agreement vs fp32 |\n| --- | --- | --- |")
        for s, f, a in rows:
            print(f"| {s} | {f:.2f} | {a:.4f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
