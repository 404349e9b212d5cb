"""Benchmark VQFR v2: restored faces per second and the time spent in deform_conv2d.

Runs the official-size network (512x512 RGB faces in [-1, 1], weights from the golden
formula, so no model file is needed) through ``forward`` at fidelity 0 (texture decoder only:
the main branch is skipped because its contribution is multiplied by zero) and at a fidelity
> 0 (full network, six modulated deformable convolutions). The deform-conv share is measured
in a separate pass that wraps ``torchvision.ops.deform_conv2d`` with synchronised timers.

    .venv/bin/python bench/bench_vqfr.py                      # CPU, and CUDA when available
    .venv/bin/python bench/bench_vqfr.py --device cuda --batch 8 --dtype float16 --json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator

import torch

import videofix.models.vqfr as vqfr_module
from videofix.models.synthetic import formula_state_dict
from videofix.models.vqfr import VQFRv2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(device: torch.device, dtype: torch.dtype) -> VQFRv2:
    """The official configuration with formula weights, eval mode, on ``device`` / ``dtype``."""
    with torch.device("meta"):
        skeleton = VQFRv2()
    model = VQFRv2.from_state_dict(formula_state_dict(skeleton))
    return model.to(device=device, dtype=dtype).eval()


def faces_input(batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(batch, 3, 512, 512) RGB in [-1, 1]: smooth face-sized structure plus noise."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 512), torch.linspace(-1, 1, 512), indexing="ij")
    base = torch.stack([torch.cos(3 * xx) * 0.6, torch.sin(2 * yy) * 0.5, (xx * yy) * 0.8])
    x = base.expand(batch, 3, 512, 512) + 0.1 * torch.randn(batch, 3, 512, 512, generator=g)
    return x.clamp(-1, 1).to(device=device, dtype=dtype)


@contextlib.contextmanager
def timed_deform_conv(device: torch.device) -> Iterator[dict[str, float]]:
    """Accumulate wall time and call count of every deform_conv2d the model makes."""
    stats = {"seconds": 0.0, "calls": 0}
    original = vqfr_module.deform_conv2d

    def wrapper(*args, **kwargs):
        _sync(device)
        t0 = time.perf_counter()
        out = original(*args, **kwargs)
        _sync(device)
        stats["seconds"] += time.perf_counter() - t0
        stats["calls"] += 1
        return out

    vqfr_module.deform_conv2d = wrapper
    try:
        yield stats
    finally:
        vqfr_module.deform_conv2d = original


def bench_device(device: torch.device, dtype: torch.dtype, batch: int, iters: int, warmup: int, fidelity: float) -> dict:
    model = build_model(device, dtype)
    x = faces_input(batch, device, dtype)
    result: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "dtype": str(dtype).removeprefix("torch."),
        "batch": batch,
        "iters": iters,
    }
    with torch.inference_mode():
        for fid in (0.0, fidelity):
            for _ in range(warmup):
                model(x, fidelity_ratio=fid)
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(iters):
                model(x, fidelity_ratio=fid)
            _sync(device)
            seconds = (time.perf_counter() - t0) / iters
            result[f"faces_per_s_fidelity_{fid:g}"] = batch / seconds
            result[f"seconds_per_batch_fidelity_{fid:g}"] = seconds
        with timed_deform_conv(device) as stats:
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(iters):
                model(x, fidelity_ratio=fidelity)
            _sync(device)
            total = time.perf_counter() - t0
        result["deform_conv2d_calls_per_batch"] = stats["calls"] // iters
        result["deform_conv2d_seconds_per_batch"] = stats["seconds"] / iters
        result["deform_conv2d_share_of_forward"] = stats["seconds"] / total
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                        help="auto: CPU, then CUDA too when available")
    parser.add_argument("--batch", type=int, default=0, help="faces per batch (default: 1 on CPU, 8 on CUDA)")
    parser.add_argument("--iters", type=int, default=0, help="timed batches (default: 2 on CPU, 10 on CUDA)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--fidelity", type=float, default=0.5, help="fidelity for the full-network run, in (0, 1]")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                        help="CUDA only; the CPU always runs float32")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per device")
    args = parser.parse_args(argv)
    if not 0.0 < args.fidelity <= 1.0:
        parser.error("--fidelity must be in (0, 1]")
    if args.threads:
        torch.set_num_threads(args.threads)
    # Parity settings: no TF32 (the golden tolerances assume true float32 matmuls).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    devices = []
    if args.device in ("auto", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            parser.error("--device cuda: CUDA is not available")
        devices.append(torch.device("cuda"))

    for device in devices:
        cuda = device.type == "cuda"
        dtype = getattr(torch, args.dtype) if cuda else torch.float32
        batch = args.batch or (8 if cuda else 1)
        iters = args.iters or (10 if cuda else 2)
        res = bench_device(device, dtype, batch, iters, args.warmup, args.fidelity)
        if args.json:
            print(json.dumps(res))
        else:
            f = f"{args.fidelity:g}"
            print(
                f"VQFR v2 on {res['device']}, {res['dtype']}, batch {batch}: "
                f"{res['faces_per_s_fidelity_0']:.3f} faces/s at fidelity 0 (texture decoder only), "
                f"{res[f'faces_per_s_fidelity_{f}']:.3f} faces/s at fidelity {f}; "
                f"deform_conv2d: {res['deform_conv2d_calls_per_batch']} calls, "
                f"{res['deform_conv2d_seconds_per_batch']:.3f} s per batch = "
                f"{100 * res['deform_conv2d_share_of_forward']:.1f}% of the full forward"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
