"""Ray runner vs local runner on one clip: wall time, identical frames, object-store bytes.

    python bench/bench_ray.py [--frames 32] [--segments 4] [--gop 8] [--size 320x240] [--json out.json]

Writes a sample clip with real faces, restores it with the local runner and with
`videofix restore --ray` (an embedded Ray sized to this machine, started by the run, in a
subprocess so its start-up cost is counted as a user sees it), checks that both outputs decode
to identical frames (lossless ffv1) and prints the figures. The network is a small
formula-filled CodeFormer (no download); `--weights FILE` uses a real checkpoint instead.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

BENCH_CODEFORMER = dict(img_size=64, nf=32, ch_mult=(1, 1, 2), res_blocks=1, attn_resolutions=(16,), emb_dim=32,
                        codebook_size=64, dim_embd=64, n_head=4, n_layers=1, connect_list=("32", "64"))
OPTIONS = ["--detector", "dlib", "--codec", "ffv1", "--temporal-radius", "2", "--device", "auto", "--no-parsing",
           "--batch-size", "8", "--grain", "off", "--no-dedup", "--deinterlace", "off", "--color", "color"]


def frames_of(path: Path) -> list[tuple[int, list[np.ndarray]]]:
    with av.open(str(path)) as c:
        return [(f.pts, [np.asarray(p).copy() for p in f.to_ndarray(format=f.format.name).reshape(1, -1)])
                for f in c.decode(c.streams.video[0])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--segments", type=int, default=4)
    ap.add_argument("--gop", type=int, default=8)
    ap.add_argument("--size", default="224x160")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))

    import torch

    from videofix.models.synthetic import formula_codeformer
    from videofix.samples import face_content

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from media import make_clip  # a keyframe every --gop frames, so the clip cuts into segments

    tmp = Path(tempfile.mkdtemp(prefix="videofix-bench-ray-"))
    weights = args.weights
    if weights is None:
        weights = str(tmp / "codeformer_bench.pth")
        torch.save({"params_ema": formula_codeformer(BENCH_CODEFORMER).state_dict()}, weights)
    clip = tmp / "in.mkv"
    make_clip(clip, frames=args.frames, size=(w, h), gop=args.gop, subtitles=False,
              content=face_content(w, h, face_size=int(h * 0.75)))
    env = dict(os.environ)  # the embedded cluster makes its own token (token authentication, loopback only)
    base = [sys.executable, "-m", "videofix", "restore", str(clip), "--weights", weights, "--quiet", *OPTIONS]

    runs = {}
    for name, extra in (("local", []), ("ray", ["--ray", "--segments", str(args.segments)])):
        out, report = tmp / f"{name}.mkv", tmp / f"{name}.json"
        t0 = time.perf_counter()
        subprocess.run(base + ["-o", str(out), "--report", str(report), *extra], check=True, env=env)
        runs[name] = {"wall_s": round(time.perf_counter() - t0, 2), "report": json.loads(report.read_text()),
                      "out": out}
    same = frames_of(runs["local"]["out"]) == [] or all(
        pa == pb and all(np.array_equal(x, y) for x, y in zip(fa, fb))
        for (pa, fa), (pb, fb) in zip(frames_of(runs["local"]["out"]), frames_of(runs["ray"]["out"])))
    ray_report = runs["ray"]["report"]
    result = {
        "frames": ray_report["frames_written"],
        "faces": ray_report["faces_restored"],
        "size": f"{w}x{h}",
        "cpus": os.cpu_count(),
        "local_wall_s": runs["local"]["wall_s"],
        "ray_wall_s": runs["ray"]["wall_s"],
        "identical_frames": bool(same),
        "segments": ray_report["ray"]["segments"],
        "object_store_bytes": ray_report["ray"]["object_store_bytes"],
        "object_store_bytes_per_frame": ray_report["ray"]["object_store_bytes_per_frame"],
        "raw_frame_bytes": w * h * 3 // 2,
        "ray_timings": ray_report["timings"],
    }
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
