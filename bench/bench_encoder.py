"""The encoder's cost and its reproducibility at fixed thread counts (videofix.io.codecs).

For each thread count, the same decoded pictures (a 1080p clip with two real faces on a
noisy, moving background: `feed_clips.grid_content`) are encoded with `VideoWriter` (what
`videofix restore` runs) in a child process pinned to a given set of cores
(`os.sched_setaffinity`). Printed per (codec, threads, cores): wall ms per frame, CPU ms per
frame (all threads of the process), the stream's size and the SHA-1 of its packets; a
count's streams must be one, whatever the cores.

    python bench/bench_encoder.py                         # 1080p, 32 frames, libx264 medium
    python bench/bench_encoder.py --codec libx265 --threads 1,4,8 --frames 16
    python bench/bench_encoder.py --md bench/results/encoder-threads-DATE.md

Wall time at N threads needs N free cores: on a 2-core machine the figures for 4+ threads
show the cost of the threads (CPU ms per frame), not their speed-up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CHILD = r"""
import hashlib, json, os, resource, sys, time
import av
sys.path[:0] = [{root!r}]
from videofix.io import VideoWriter, open_video
cores, src, out, codec, preset, threads = sys.argv[1:7]
os.sched_setaffinity(0, set(int(c) for c in cores.split(",")))
with open_video(src) as r:
    frames = [(f.picture, f.pts) for f in r]
    info = r.info
usage = lambda: (lambda u: u.ru_utime + u.ru_stime)(resource.getrusage(resource.RUSAGE_SELF))
c0, t0 = usage(), time.perf_counter()
w = VideoWriter(out, info, codec=codec, preset=preset, threads=int(threads))
for p, pts in frames:
    w.write(p, pts)
path = w.close()
wall, cpu = time.perf_counter() - t0, usage() - c0
with av.open(str(path)) as c:
    data = [bytes(p) for p in c.demux(video=0) if p.size]
os.unlink(path)
print(json.dumps({{"wall_ms": 1000 * wall / len(frames), "cpu_ms": 1000 * cpu / len(frames),
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "bytes": sum(map(len, data)), "sha1": hashlib.sha1(b"".join(data)).hexdigest()[:12]}}))
"""


def make_source(path: Path, width: int, height: int, frames: int) -> Path:
    """A lossless (FFV1) clip of `frames` frames, 4:2:0, so every encode gets the same pictures."""
    from feed_clips import grid_content

    from videofix.samples import write_sample_clip

    if not path.exists():
        write_sample_clip(path, grid_content(width, height, 2), frames, codec="ffv1", pix_fmt="yuv420p", audio=False)
    return path


def encode(src: Path, codec: str, preset: str, threads: int, cores: list[int], work: Path) -> dict:
    out = work / f"enc-{codec}-{threads}-{len(cores)}.mkv"
    proc = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), ",".join(map(str, cores)), str(src),
                           str(out), codec, preset, str(threads)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--codec", default="libx264")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--threads", default="1,2,4,8,16", help="thread counts to measure (0 = videofix's default)")
    ap.add_argument("--runs", type=int, default=2, help="encodes per (threads, cores)")
    ap.add_argument("--cores", default="", help="core sets to pin to, e.g. '0;0,1' (default: one core, then all)")
    ap.add_argument("--md", default=None, help="also write a markdown table here")
    args = ap.parse_args(argv)
    width, height = map(int, args.size.lower().split("x"))
    allowed = sorted(os.sched_getaffinity(0))
    core_sets = [[int(c) for c in s.split(",")] for s in args.cores.split(";")] if args.cores else \
        ([allowed[:1], allowed] if len(allowed) > 1 else [allowed])
    rows = []
    with tempfile.TemporaryDirectory(prefix="videofix-bench-encoder-") as tmp:
        work = Path(tmp)
        src = make_source(work / "src.mkv", width, height, args.frames)
        for threads in [int(t) for t in args.threads.split(",")]:
            for cores in core_sets:
                for run in range(args.runs):
                    r = encode(src, args.codec, args.preset, threads, cores, work)
                    r.update(threads=threads, cores=len(cores), run=run)
                    rows.append(r)
                    print(f"{args.codec} {args.preset} threads {threads:2d} cores {len(cores):2d} run {run}: "
                          f"{r['wall_ms']:7.1f} ms/frame wall, {r['cpu_ms']:7.1f} ms/frame CPU, "
                          f"peak RSS {r['rss_mib']:.0f} MiB, "
                          f"{r['bytes']} bytes, {r['sha1']}", flush=True)
    streams = {}
    for r in rows:
        streams.setdefault(r["threads"], set()).add(r["sha1"])
    lines = ["| threads | cores | wall ms/frame | CPU ms/frame | peak RSS MiB | bytes | streams at this count |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for threads in sorted(streams):
        for cores in sorted({r["cores"] for r in rows}):
            sel = [r for r in rows if r["threads"] == threads and r["cores"] == cores]
            if sel:
                wall = min(r["wall_ms"] for r in sel)
                cpu = min(r["cpu_ms"] for r in sel)
                rss = max(r["rss_mib"] for r in sel)
                lines.append(f"| {threads} | {cores} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | {sel[0]['bytes']} | "
                             f"{len(streams[threads])} |")
    table = "\n".join(lines)
    print(table)
    for threads, s in sorted(streams.items()):
        print(f"threads {threads}: {len(s)} distinct stream(s) in {sum(r['threads'] == threads for r in rows)} encodes "
              f"on {', '.join(str(len(c)) for c in core_sets)} core(s)")
    if args.md:
        head = (f"# {args.codec} --preset {args.preset}, {width}x{height}, {args.frames} frames "
                f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f})\n\n"
                f"`python bench/bench_encoder.py --size {args.size} --frames {args.frames} --codec {args.codec} "
                f"--preset {args.preset} --threads {args.threads} --runs {args.runs}`\n\n")
        Path(args.md).write_text(head + table + "\n")
    return 0 if all(len(s) == 1 for s in streams.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
