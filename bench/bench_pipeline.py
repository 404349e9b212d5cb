"""End-to-end throughput of `videofix restore` and the pipeline's efficiency.

Generates a clip with real faces (default 720p, 2 faces), runs the local runner on it, then
runs the restoration engine alone on the very same aligned crops, and prints:

  end-to-end frames/s and faces/s, engine-only faces/s, and
  efficiency = end-to-end faces/s / engine-only faces/s   (goal on a GPU: >= 0.9)

and, with --memory, the peak RSS for two clip lengths (it must not grow with the length).

  python bench/bench_pipeline.py [--frames 48] [--size 1280x720] [--small] [--device auto]

--small uses the small CodeFormer configuration (CPU-friendly); the default is the full
official network filled with the golden formula (same cost as the real weights).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def make_weights(path: Path, small: bool) -> Path:
    from videofix.models.synthetic import formula_codeformer, small_codeformer_config

    torch.save({"params_ema": formula_codeformer(small_codeformer_config() if small else None).state_dict()}, path)
    return path


def engine_only(weights: Path, crops: list[tuple[int, int, np.ndarray]], settings) -> float:
    """faces/s of the TemporalRestorer alone on pre-aligned crops (track id, frame, crop)."""
    from videofix.pipeline.local import load_stages, make_engine

    stages = load_stages(settings, need_detector=False)
    engine = make_engine(stages, settings)
    last = {}
    for tid, f, _ in crops:
        last[tid] = f
    t0 = time.perf_counter()
    n = 0
    for tid, f, crop in crops:
        n += len(engine.push(tid, f, crop))
        if last[tid] == f:
            n += len(engine.end_track(tid))
    n += len(engine.flush())
    if stages.device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--faces", type=int, default=2)
    ap.add_argument("--small", action="store_true", help="small CodeFormer configuration")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--radius", type=int, default=4)
    ap.add_argument("--memory", action="store_true", help="also measure peak RSS for 1x and 4x the frames")
    args = ap.parse_args()
    w, h = map(int, args.size.lower().split("x"))

    from videofix.faces import estimate_alignment, warp_face
    from videofix.io import open_video
    from videofix.pipeline.local import RestoreSettings, restore_video
    from videofix.samples import face_content, write_sample_clip

    tmp = Path(tempfile.mkdtemp(prefix="videofix-bench-"))
    weights = make_weights(tmp / "w.pth", args.small)
    clip = write_sample_clip(tmp / "clip.mp4", face_content(w, h, faces=args.faces), args.frames, fps=25)
    settings = RestoreSettings(weights=str(weights), detector="dlib", device=args.device, batch_size=args.batch_size,
                               dtype=args.dtype, temporal_radius=args.radius, parsing=False)
    report = restore_video(clip, tmp / "out.mp4", settings, quiet=True)
    t = report["timings"]
    e2e_seconds = t["total"] - t.get("load_models", 0.0)
    faces = report["faces_restored"]

    # the same crops, aligned exactly as the pipeline did, for the engine alone
    from videofix.pipeline.local import analyze_video, load_stages

    stages = load_stages(settings)
    analysis = analyze_video(clip, stages.detector, settings)
    size = int(stages.model.input_size)
    crops = []
    with open_video(clip) as reader:
        for frame in reader:
            for face in analysis.faces_in(frame.index):
                crops.append((face.track_id, frame.index,
                              warp_face(frame.picture, estimate_alignment(face.landmarks, size=size), size=size)))
    eng_fps = engine_only(weights, crops, settings)
    e2e_fps = faces / e2e_seconds
    print(f"clip: {args.frames} frames {w}x{h}, {faces} faces; model: {'small' if args.small else 'full'} CodeFormer, "
          f"device {report['device']}, batch {args.batch_size}, {args.dtype}, R={args.radius}")
    print(f"end-to-end: {report['frames_written'] / e2e_seconds:.3f} frames/s, {e2e_fps:.3f} faces/s "
          f"(stages: {json.dumps(t)})")
    print(f"engine only: {eng_fps:.3f} faces/s on the same {len(crops)} crops")
    print(f"efficiency (end-to-end / engine-only): {e2e_fps / eng_fps:.3f}")

    if args.memory:
        for n in (args.frames, 4 * args.frames):
            code = ("import resource, sys; from videofix.pipeline.local import RestoreSettings, restore_video; "
                    "from videofix.samples import face_content, write_sample_clip; "
                    f"c = write_sample_clip({str(tmp / f'm{n}.mp4')!r}, face_content({w}, {h}, faces={args.faces}), {n}); "
                    f"restore_video(c, {str(tmp / f'mo{n}.mp4')!r}, RestoreSettings(weights={str(weights)!r}, "
                    f"detector='dlib', device={args.device!r}, parsing=False), quiet=True); "
                    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            print(f"peak RSS for {n} frames: {int(out.stdout.strip().splitlines()[-1]) / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
