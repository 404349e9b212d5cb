"""Reproducible encodes: the same input and settings give the same bytes.

An encoder's stream may depend on its thread count (libx264, libx265), never on the cores
that run the threads; FFmpeg's "auto" count follows the CPUs the process may use (a Ray
worker, `taskset`, another machine), so the writer fixes the count (videofix/io/codecs.py,
X264_THREADS: 16 frame threads). Checked here in processes pinned to 1 core and to 2: the
earlier finding that more than one libx264 thread gives run-to-run different streams would
show as more than one stream per count; it did not (one stream per count at 256x192 and
1080p, bench/results/encoder-threads-2026-12-03.md).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap

import av
import pytest

from conftest import run_cli
from media import make_clip

ENCODE = textwrap.dedent("""
    import hashlib, os, sys
    import av
    from videofix.io import open_video, VideoWriter
    cpus, src, out, codec, threads = sys.argv[1:6]
    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:int(cpus)]))
    digests = []
    with open_video(src) as r:
        frames = [(f.picture, f.pts) for f in r]
        info = r.info
    for k in range(4):
        w = VideoWriter(f"{out}{k}.mkv", info, codec=codec, threads=int(threads))
        for p, pts in frames:
            w.write(p, pts)
        path = w.close()
        with av.open(str(path)) as c:
            digests.append(hashlib.sha1(b"".join(bytes(p) for p in c.demux(video=0) if p.size)).hexdigest())
        os.unlink(path)
    print(" ".join(digests))
""")


def stream_digests(tmp_path, src, codec: str, cpus: int, threads: int = 0) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", ENCODE, str(cpus), str(src), str(tmp_path / f"{codec}-{cpus}-"),
                           codec, str(threads)], capture_output=True, text=True, check=True)
    return proc.stdout.split()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    d = tmp_path_factory.mktemp("repro")
    # lossless source with motion and a real face, so x264 makes real mode decisions
    return make_clip(d / "src.mkv", frames=24, size=(256, 192), codec="ffv1", audio=False, subtitles=False).path


@pytest.mark.parametrize("codec", ["libx264", "libx265", "ffv1", "prores"])
def test_same_pictures_give_the_same_stream_on_any_cpu_count(tmp_path, source, codec):
    import os

    cpus = len(os.sched_getaffinity(0))
    runs = stream_digests(tmp_path, source, codec, 1)
    if cpus > 1:
        runs += stream_digests(tmp_path, source, codec, min(cpus, 4))
    assert len(runs) >= 4 and len(set(runs)) == 1, runs


def test_a_fixed_libx264_thread_count_gives_one_stream_on_one_and_two_cores(tmp_path, source):
    """4 threads and the default (16): each one stream, in processes pinned to 1 and to 2
    cores; the counts give different streams (so the count really reaches x264)."""
    import os

    cpus = min(len(os.sched_getaffinity(0)), 2)
    streams = {}
    for threads in (4, 0):
        runs = stream_digests(tmp_path, source, "libx264", 1, threads)
        if cpus > 1:
            runs += stream_digests(tmp_path, source, "libx264", cpus, threads)
        assert len(runs) >= 4 and len(set(runs)) == 1, (threads, runs)
        streams[threads] = runs[0]
    assert streams[4] != streams[0]


def test_libx264_runs_its_fixed_count_of_frame_threads(tmp_path, source):
    """What x264 itself writes into the stream (its options, in the first packet's SEI): the
    default is 16 frame threads (not slice threads, not FFmpeg's automatic count), and
    --encoder-threads N gives N."""
    import re

    from videofix.io import VideoWriter, open_video

    with open_video(source) as r:
        frames = [(f.picture, f.pts) for f in r][:4]
        info = r.info
    seen = {}
    for threads in (0, 3):
        w = VideoWriter(tmp_path / f"t{threads}.mkv", info, threads=threads)
        for p, pts in frames:
            w.write(p, pts)
        with av.open(str(w.close())) as c:
            first = bytes(next(p for p in c.demux(video=0) if p.size))
        options = re.search(rb"options: ([ -~]*)", first).group(1).decode().split()
        seen[threads] = {k: v for k, v in (o.split("=", 1) for o in options if "=" in o)}
    assert seen[0]["threads"] == "16" and seen[0]["sliced_threads"] == "0"
    assert seen[3]["threads"] == "3" and seen[3]["sliced_threads"] == "0"


def test_restore_twice_gives_the_same_file(tmp_path, small_weights):
    """The whole command, libx264 output with audio and subtitles: byte-identical files."""
    src = make_clip(tmp_path / "src.mp4", frames=12, size=(256, 192)).path
    outs = []
    for k in range(2):
        out = tmp_path / f"out{k}.mp4"
        run_cli("restore", src, "-o", out, "--weights", small_weights, "--detector", "dlib", "--device", "cpu",
                "--no-parsing", "--quiet")
        outs.append(out)
    digests = {hashlib.sha1(o.read_bytes()).hexdigest() for o in outs}
    assert len(digests) == 1
    with av.open(str(outs[0])) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].frames in (0, 12) and sum(1 for _ in c.decode(video=0)) == 12


def test_encoder_threads_is_validated(tmp_path):
    src = make_clip(tmp_path / "src.mp4", frames=4, size=(64, 48)).path
    proc = run_cli("restore", src, "-o", tmp_path / "o.mp4", "--encoder-threads", "-1", check_rc=None)
    assert proc.returncode != 0 and "--encoder-threads" in proc.stderr and "Traceback" not in proc.stderr
