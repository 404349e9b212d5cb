"""Reproducible encodes: the same input and settings give the same bytes.

The cause found: libx264 in PyAV's build gives run-to-run different streams whenever it
runs more than one thread, and its "auto" thread count follows the CPUs the process may
use (a Ray worker, `taskset`, another machine). The writer therefore runs libx264 with one
thread unless `--encoder-threads` asks for more (videofix/io/writer.py, X264_THREADS).
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
    os.sched_setaffinity(0, set(range(int(cpus))))
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


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_same_pictures_give_the_same_stream_on_any_cpu_count(tmp_path, source, codec):
    import os

    cpus = len(os.sched_getaffinity(0))
    runs = stream_digests(tmp_path, source, codec, 1)
    if cpus > 1:
        runs += stream_digests(tmp_path, source, codec, min(cpus, 4))
    assert len(runs) >= 4 and len(set(runs)) == 1, runs


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
