"""Failures deep in pass 2, each in a real `videofix restore` subprocess on a real file.

The clip is cut into short shots, so with two workers pass 1 (detection in two worker
processes) hands shots over to pass 2 while it still runs: pass 2 restores and encodes
frames long before pass 1 ends. Every test waits for an event, never for a fixed time
(tests/events.py): the temporary video next to the output exists only once pass 2 has
muxed its first frame (PyAV opens an output file at its first packet), and the detection
workers are the run's children.

- A damaged file: a transport stream with a second recording appended at another picture
  size (`cat a.ts b.ts`). Byte damage and truncation of MKV / MP4 / TS are concealed by the
  decoder or found at the start (80 variants tried: none failed after frames were encoded);
  a size change cannot be put into one output stream, so the reader refuses it where it
  comes, frames after the encode began.
- Ctrl-C (SIGINT) once the temporary output exists.
- A detection worker killed (SIGKILL, as the OOM killer does): the run ends with one line.
- The run itself killed: its temporary file stays (nothing can remove it), and the next run
  of the same output removes it and says so.

Each failure: its exit code, exactly one `videofix: error:` line, nothing under the output
name, no temporary file. Checked against the mutation the suite once missed (the exception
path of `OutputFile.__exit__` finalising the partial file): each test here fails under it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import media
from events import children, cmdline, encoded_output, gone, temporary_files, wait_until

W, H, SHOT = 64, 48, 8
FRAMES = 160  # pass 2 begins when pass 1 has read ~75 (the shot detector's look-ahead)
SPLICE = 150  # the damaged file's second recording starts here
OPTIONS = ["--model", "identity", "--detector", "dlib", "--codec", "ffv1", "--device", "cpu", "--workers", "2",
           "--quiet"]


def shot_content(i: int) -> np.ndarray:
    """A new background every SHOT frames (hard cuts the shot detector finds), a moving square."""
    k = i // SHOT
    rng = np.random.default_rng(k)
    base = rng.integers(0, 256, 3)
    yy, xx = np.mgrid[0:H, 0:W]
    img = np.empty((H, W, 3), np.float32)
    for c in range(3):
        img[..., c] = base[c] + (60 if c == k % 3 else -60) * np.sin((xx * (1 + k % 4) + yy * (k % 3)) / 7.0)
    x0 = (2 * i) % (W - 12)
    img[10:22, x0:x0 + 12] = 255 - base
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = tmp_path_factory.mktemp("pass2")
    return media.make_clip(d / "shots.ts", frames=FRAMES, size=(W, H), gop=SHOT, content=shot_content,
                           audio=True, subtitles=False).path


@pytest.fixture(scope="module")
def spliced(shots, tmp_path_factory):
    """The first SPLICE frames of `shots`, then a second recording at 96x64 (a byte-level
    concatenation of two transport streams)."""
    d = tmp_path_factory.mktemp("spliced")
    # no audio: the two recordings' audio clocks would restart at the join, and this file is
    # about the video (the mutation check then finds the partial file itself)
    head = media.make_clip(d / "a.ts", frames=SPLICE, size=(W, H), gop=SHOT, content=shot_content, audio=False,
                           subtitles=False).path
    tail = media.make_clip(d / "b.ts", frames=12, size=(96, 64), gop=SHOT, audio=False, subtitles=False).path
    path = d / "joined.ts"
    path.write_bytes(head.read_bytes() + tail.read_bytes())
    return path


def start(src: Path, out: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, VIDEOFIX_OFFLINE="1", PYTHONWARNINGS="ignore")
    env.pop("VIDEOFIX_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "videofix", "restore", str(src), "-o", str(out), *OPTIONS, *extra],
                            stderr=subprocess.PIPE, text=True, env=env)


def frames_encoded(proc: subprocess.Popen, out: Path) -> Path:
    """Wait until pass 2 has encoded and muxed frames (its temporary video exists)."""
    return wait_until(lambda: encoded_output(out), proc, "pass 2 encoded a frame")


def detection_workers(proc: subprocess.Popen) -> list[int]:
    return [p for p in children(proc.pid) if "videofix.faces.pool" in cmdline(p)]


def assert_failed_cleanly(proc: subprocess.Popen, out: Path, code: int, *words: str) -> str:
    _, err = proc.communicate(timeout=600)
    lines = err.strip().splitlines()
    assert proc.returncode == code, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("videofix: error: "), err[-3000:]
    assert all(w in lines[0] for w in words), lines[0]
    assert not out.exists(), "a partial file was left under the output name"
    assert list(out.parent.iterdir()) == [], f"left behind: {sorted(p.name for p in out.parent.iterdir())}"
    return lines[0]


def test_a_size_change_deep_in_the_file_fails_after_frames_were_encoded(tmp_path, spliced):
    out = tmp_path / "out" / "restored.mkv"
    out.parent.mkdir()
    proc = start(spliced, out)
    frames_encoded(proc, out)  # pass 2 is writing: the failure below comes deep in the run
    line = assert_failed_cleanly(proc, out, 3, str(spliced), f"frame {SPLICE}", "96x64", "64x48",
                                 "picture size changes")
    assert "internal error" not in line


def test_ctrl_c_leaves_no_partial_output(tmp_path, shots):
    """SIGINT once pass 2 has encoded frames (its temporary output exists): exit 130, one
    line, nothing under the output name, no temporary files. (This test once slept 4 s and
    sent the signal before the handler was installed on a loaded machine; it now waits for
    the file.)"""
    out = tmp_path / "out" / "restored.mkv"
    out.parent.mkdir()
    proc = start(shots, out)
    frames_encoded(proc, out)
    proc.send_signal(signal.SIGINT)
    assert_failed_cleanly(proc, out, 130, "interrupted")


def test_a_killed_detection_worker_ends_the_run_with_one_line(tmp_path, shots):
    """SIGKILL of one of the two detection worker processes while pass 2 is writing: exit 6
    (a runtime problem), one line naming the worker and the signal; the other worker ends."""
    out = tmp_path / "out" / "restored.mkv"
    out.parent.mkdir()
    proc = start(shots, out)
    frames_encoded(proc, out)
    workers = wait_until(lambda: (lambda w: w if len(w) == 2 else None)(detection_workers(proc)), proc,
                         "two detection workers")
    os.kill(workers[0], signal.SIGKILL)
    assert_failed_cleanly(proc, out, 6, "face detection worker", "killed by SIGKILL")
    assert all(gone(p) for p in workers)


def test_a_killed_run_leaves_its_temporary_file_and_the_next_run_removes_it(tmp_path, shots):
    """SIGKILL of the restoring process itself (what the OOM killer picks: the biggest): its
    temporary video stays next to the output (a killed process cleans nothing), nothing is
    under the output name, its detection workers end (their pipe closes). The next run of
    the same output removes the leftover, says so in one line, and finishes."""
    out = tmp_path / "out" / "restored.mkv"
    out.parent.mkdir()
    proc = start(shots, out)
    frames_encoded(proc, out)
    workers = detection_workers(proc)
    assert len(workers) == 2, workers
    proc.kill()
    proc.communicate(timeout=60)
    left = temporary_files(out)
    assert not out.exists() and [p.name for p in left if ".video." in p.name], left
    wait_until(lambda: all(gone(p) for p in workers), None, "the detection workers ended")  # their pipe closed

    small = media.make_clip(tmp_path / "small.mkv", frames=6, size=(W, H), codec="ffv1", audio=False, subtitles=False)
    again = start(small.path, out)
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == len(left) and all("left by an interrupted run" in x for x in lines), err
    assert out.exists() and temporary_files(out) == []
    assert len(media.decode_frames(out)) == 6


def test_waiting_for_an_event_returns_when_it_happens_and_fails_when_the_process_ends_first(tmp_path):
    """The helper these tests wait with (tests/events.py): it returns once the file appears,
    however late the process creates it, and reports the process's exit and stderr when the
    process ends without it."""
    flag = tmp_path / "ready"
    code = ("import pathlib, sys; sys.stdin.readline(); pathlib.Path(sys.argv[1]).write_text('x'); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(flag)], stdin=subprocess.PIPE, text=True)
    try:
        assert not flag.exists()
        proc.stdin.write("go\n")  # the child creates the file when told, not on a timer
        proc.stdin.flush()
        assert wait_until(lambda: flag.exists() and flag, proc, "the file") == flag
    finally:
        proc.kill()
        proc.wait()
    quits = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit('no file for you')"],
                             stderr=subprocess.PIPE, text=True)
    with pytest.raises(AssertionError, match=r"ended \(exit 1\) before the file: no file for you"):
        wait_until(lambda: (tmp_path / "never").exists(), quits, "the file")
