"""Feeding the restorer: parallel CPU stages (`--workers`), the null restorer
(`--model identity`) and the detection worker pool (the GPU check's dry run: tests/test_gpu_check.py).

Clips have three real faces (scikit-image's astronaut in a grid, `bench/feed_clips.py`) and
runs of repeated frames (each picture shown twice, lossless), so the repeated-frame paste
(chained after its run's first frame) is exercised by the parallel paste too.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import media
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

W, H, FRAMES = 320, 240, 10


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from feed_clips import grid_content

    base = grid_content(W, H, 3)
    path = tmp_path_factory.mktemp("feed") / "faces.mkv"
    # every picture twice: runs of repeated frames (exact, lossless)
    return media.make_clip(path, frames=FRAMES, size=(W, H), fps=25, codec="ffv1", pix_fmt="yuv420p", audio=True,
                           content=lambda i: base(i // 2))


def _settings(**kw):
    from videofix.pipeline.local import RestoreSettings

    base = dict(model="identity", detector="dlib", codec="ffv1", device="cpu", temporal_radius=2, batch_size=3,
                parsing=False)
    return RestoreSettings(**{**base, **kw})


def test_identity_restorer_gives_back_the_crop_through_the_engine():
    from videofix.models import load_restorer
    from videofix.restore.batching import fixed_batch_model
    from videofix.restore.temporal import TemporalRestorer

    net = load_restorer(model="identity", device="cpu", weights="/no/such/file")  # no weights read
    engine = TemporalRestorer(fixed_batch_model(net, torch.device("cpu"), 4), radius=2, batch_size=4)
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(7)]
    out = []
    for i, crop in enumerate(crops):
        out += engine.push(i % 2, i, crop)
    out += engine.flush()
    assert sorted(r.frame_key for r in out) == list(range(7))
    for r in out:
        assert np.array_equal(r.image, crops[r.frame_key])  # exactly the aligned crop
        assert r.codes.shape == (1,)


def test_workers_give_bit_identical_output(tmp_path, clip, monkeypatch):
    """1 and 2 workers (detection processes, alignment and paste threads) write the same
    lossless frames, tracks and counts; both parallel paths really ran."""
    from videofix.faces.pool import DetectorPool
    from videofix.pipeline import local
    from videofix.pipeline.restoration import FaceRestorationPass

    monkeypatch.setattr(local, "POOL_MIN_FRAMES", 0)  # the clip is short: use the pool anyway
    calls = {"detect": 0, "paste": 0, "prepared": 0}
    submit, paste, prepare = DetectorPool.submit, FaceRestorationPass._submit_paste, FaceRestorationPass.prepare

    def counted(key, fn):
        def wrapper(*args, **kw):
            calls[key] += 1
            return fn(*args, **kw)
        return wrapper

    monkeypatch.setattr(DetectorPool, "submit", counted("detect", submit))
    monkeypatch.setattr(FaceRestorationPass, "_submit_paste", counted("paste", paste))
    monkeypatch.setattr(FaceRestorationPass, "prepare", counted("prepared", prepare))
    reports, frames = {}, {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.mkv"
        reports[workers] = local.restore_video(clip.path, out, _settings(workers=workers), quiet=True)
        frames[workers] = media.decode_frames(out)
    assert calls["detect"] == FRAMES and calls["paste"] == FRAMES and calls["prepared"] == FRAMES
    one, two = reports[1], reports[2]
    assert one["faces_restored"] == two["faces_restored"] >= 3 * FRAMES // 2
    assert one["film"]["faces_reused"] == two["film"]["faces_reused"] > 0  # repeats were pasted (chained)
    assert json.dumps(one["tracks"], sort_keys=True) == json.dumps(two["tracks"], sort_keys=True)
    assert len(frames[1]) == len(frames[2]) == FRAMES
    changed = 0
    for (t1, p1, f1), (t2, p2, f2), (_, src, _) in zip(frames[1], frames[2], media.decode_frames(clip.path)):
        assert (t1, f1) == (t2, f2)
        for a, b in zip(p1, p2):
            assert np.array_equal(a, b)
        changed += int(not np.array_equal(p1[0], src[0]))
    assert changed == FRAMES  # the faces were pasted into every frame
    # the parallel paste holds a bounded number of frames: R + batch + the paste queue
    assert two["max_frames_held"] <= 2 + 3 + 2 * 2 + 2


SHOT = 30  # frames per shot of the edited clip


@pytest.fixture(scope="module")
def edited_clip(tmp_path_factory):
    """Six shots of two real faces (three hard cuts, a fade, a black-and-white shot, a shot
    whose pictures are each shown twice), 180 frames: longer than the shot detector's
    look-ahead, so pass 1 hands shots over while it still runs."""
    from videofix.samples import ShotSpec, astronaut_face, edited_content, group_face, real_image, write_sample_clip

    a, b = astronaut_face(200), group_face(0)
    pair, swapped = [(a, 0.3, 0.5, 0.7), (b, 0.7, 0.5, 0.7)], [(b, 0.3, 0.5, 0.7), (a, 0.7, 0.5, 0.7)]
    shots = [ShotSpec(real_image("coffee"), SHOT, faces=pair),
             ShotSpec(real_image("immunohistochemistry"), SHOT, faces=swapped),
             ShotSpec(real_image("camera"), SHOT, faces=pair),
             ShotSpec(real_image("coffee"), SHOT, start=(0.6, 0.2), end=(0.5, 0.3), faces=swapped),
             ShotSpec(real_image("rocket"), SHOT, faces=pair, transition_in=("fade", 8)),
             ShotSpec(real_image("camera"), SHOT, faces=swapped)]
    content, truth = edited_content(256, 144, shots, seed=11)

    def film(i):
        if 2 * SHOT <= i < 3 * SHOT:  # black and white (luma-only paste)
            return np.repeat(content(i).mean(axis=2, keepdims=True).astype(np.uint8), 3, axis=2)
        if 3 * SHOT <= i < 4 * SHOT:  # every picture twice (repeated frames, pasted once)
            return content(i - (i - 3 * SHOT) % 2)
        return content(i)

    path = tmp_path_factory.mktemp("edited") / "edited.mkv"
    write_sample_clip(path, film, truth.frames, codec="ffv1", pix_fmt="yuv420p", audio=True)
    return path, truth


def test_pass1_overlaps_pass2_with_the_same_output(tmp_path, edited_clip, monkeypatch):
    """Two workers: restoration starts when pass 1 closes the first shots, long before pass 1
    ends; every frame, track, colour verdict, repeat and figure equals the one-worker run's,
    where pass 1 runs whole first."""
    from videofix.pipeline import local

    from videofix.io.reader import VideoReader

    clip, truth = edited_clip
    reports, frames, decodes = {}, {}, {}
    iterate = VideoReader.__iter__
    for workers in (1, 2):
        out = tmp_path / f"w{workers}.mkv"
        opened = []
        with monkeypatch.context() as m:  # the readers each run iterates: its decodes
            m.setattr(VideoReader, "__iter__", lambda self: (opened.append(self.path), iterate(self))[1])
            reports[workers] = local.restore_video(clip, out, _settings(workers=workers), quiet=True)
        decodes[workers] = len(opened)
        frames[workers] = media.decode_frames(out)
    one, two = reports[1], reports[2]
    assert decodes[2] == decodes[1] - 1, decodes  # pass 2 restored the frames pass 1 decoded
    assert one["overlap"]["groups"] == 0 and "one worker" in one["overlap"]["why_not"]
    bounds = sorted(set(two["cuts"] + two["soft_cuts"]))
    assert len(bounds) >= 4, bounds  # three hard cuts and the fade
    assert two["overlap"]["groups"] == len([c for c in bounds if c > 0]) + 1
    began = two["overlap"]["frames_detected_when_restoring_began"]
    assert began is not None and began < truth.frames, two["overlap"]
    # one decode: pass 2 restored the frames pass 1 decoded (videofix.pipeline.shared)
    shared = two["overlap"]["shared_decode"]
    assert shared["frames_shared"] == truth.frames and shared["frames_decoded_again"] == 0, shared
    assert shared["overflow_at"] is None and 0 < shared["peak_mib"] <= shared["memory_mib"], shared
    film1, film2 = one["film"], two["film"]
    assert any(s["mode"] == "luma" for s in film2["shots"]) and film2["repeat_runs"] and film2["faces_reused"] > 0
    for key in ("cuts", "soft_cuts", "transitions", "tracks", "faces_restored", "frames_written"):
        assert json.dumps(one[key], sort_keys=True) == json.dumps(two[key], sort_keys=True), key
    for key in ("shots", "repeat_runs", "faces_reused", "luma_faces", "color_faces"):
        assert json.dumps(film1.get(key), sort_keys=True) == json.dumps(film2.get(key), sort_keys=True), key
    assert len(frames[1]) == len(frames[2]) == truth.frames
    for (t1, p1, f1), (t2, p2, f2) in zip(frames[1], frames[2]):
        assert (t1, f1) == (t2, f2)
        for x, y in zip(p1, p2):
            assert np.array_equal(x, y)


def test_shared_decode_past_its_memory_and_off_gives_the_same_output(tmp_path, edited_clip, monkeypatch):
    """With too little memory for a shot (1 MiB: 18 frames of this clip, its shots have 30),
    pass 1 lets go at that shot (pass 2 waits for it, pass 1 waits for room) and pass 2
    decodes the rest itself; with `decode_memory_mb=0` pass 2 decodes everything again. Both
    runs give the same bytes (the default memory, one decode, is in the test above) and make
    as many decodes."""
    from videofix.io.reader import VideoReader
    from videofix.pipeline import local

    clip, truth = edited_clip
    decodes = []
    iterate = VideoReader.__iter__
    monkeypatch.setattr(VideoReader, "__iter__", lambda self: (decodes.append(self.path), iterate(self))[1])
    runs = {}
    for mb in (1, 0):
        decodes.clear()
        out = tmp_path / f"m{mb}.mkv"
        report = local.restore_video(clip, out, _settings(workers=2, decode_memory_mb=mb), quiet=True)
        runs[mb] = (report, len(decodes), media.decode_frames(out))
    (tight, n_tight, f_tight), (off, n_off, f_off) = runs[1], runs[0]
    assert tight["overlap"]["groups"] > 1 and off["overlap"]["groups"] > 1
    assert off["overlap"]["shared_decode"] is None
    assert n_tight == n_off, (n_tight, n_off)  # pass 2 decoded the video again in both
    t = tight["overlap"]["shared_decode"]
    assert t["overflow_at"] is not None and 0 < t["overflow_at"] < truth.frames, t
    assert "shot longer than the decode memory" in t["overflow_why"], t
    assert t["frames_shared"] == t["overflow_at"] == t["frames_skipped_again"], t
    assert t["frames_shared"] + t["frames_decoded_again"] == truth.frames, t
    assert t["peak_mib"] <= 1.0, t
    for key in ("tracks", "faces_restored", "frames_written"):
        assert json.dumps(tight[key], sort_keys=True) == json.dumps(off[key], sort_keys=True), key
    assert len(f_tight) == len(f_off) == truth.frames
    for a, b in zip(f_tight, f_off):
        assert a[0] == b[0] and a[2] == b[2]
        for x, y in zip(a[1], b[1]):
            assert np.array_equal(x, y)


def test_a_pass1_failure_while_pass2_runs_is_raised_and_leaves_no_output(tmp_path, edited_clip, monkeypatch):
    """An error in pass 1's thread (here: a detection failing at frame 100, after pass 2 has
    begun) reaches the caller as itself; no file appears under the output's name."""
    from videofix.errors import InputError
    from videofix.pipeline import local, overlap

    detect = overlap.detect_frames

    def failing(frames, *args, **kw):
        for fd in detect(frames, *args, **kw):
            if fd.index == 100:
                raise InputError("frame 100: cannot be read")
            yield fd

    monkeypatch.setattr(overlap, "detect_frames", failing)
    out = tmp_path / "out.mkv"
    with pytest.raises(InputError, match="frame 100"):
        local.restore_video(edited_clip[0], out, _settings(workers=2), quiet=True)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_pass1_failure_before_its_first_frame_is_raised(tmp_path, edited_clip, monkeypatch):
    """Pass 1 fails before it has read a frame (its detection fails at once): pass 2, which
    reads the frames pass 1 decodes (the shared decode), does not wait for frames that will
    not come; it decodes them itself and the error reaches the caller as itself."""
    from videofix.errors import InputError
    from videofix.pipeline import local, overlap

    def failing(frames, *args, **kw):
        raise InputError("the detector failed at once")
        yield  # a generator, as detect_frames

    monkeypatch.setattr(overlap, "detect_frames", failing)
    out = tmp_path / "out.mkv"
    raised = []

    def run():
        try:
            local.restore_video(edited_clip[0], out, _settings(workers=2), quiet=True)
        except BaseException as exc:  # noqa: BLE001 - checked below
            raised.append(exc)

    # a hang (pass 2 waiting for frames pass 1 will never give) fails the test instead of
    # the suite: the run itself takes a few seconds
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=300)
    assert not worker.is_alive(), "pass 2 waits for frames pass 1 will never decode"
    assert len(raised) == 1 and isinstance(raised[0], InputError) and "failed at once" in str(raised[0]), raised
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_pass2_failure_stops_pass1_without_waiting_for_its_end(tmp_path, edited_clip, monkeypatch):
    """An error in pass 2 (here: restoring the first frame) is raised at once: pass 1 is
    stopped, not waited for to the end of the video; no output is left."""
    from videofix.errors import InputError
    from videofix.pipeline import local, overlap
    from videofix.pipeline.restoration import FaceRestorationPass

    waited = []
    finish = overlap.ShotFeed.finish
    monkeypatch.setattr(overlap.ShotFeed, "finish", lambda self: (waited.append(1), finish(self))[1])

    def broken(self, frame, prepared=None):
        raise InputError(f"frame {frame.index}: cannot be restored")

    monkeypatch.setattr(FaceRestorationPass, "feed", broken)
    out = tmp_path / "out.mkv"
    with pytest.raises(InputError, match="frame 0: cannot be restored"):
        local.restore_video(edited_clip[0], out, _settings(workers=2), quiet=True)
    assert not waited and not out.exists() and not list(tmp_path.iterdir())


def test_detector_pool_bad_backend_is_a_clear_error():
    from videofix.errors import VideofixError
    from videofix.faces.pool import DetectorPool

    pool = DetectorPool("no-such-backend", 1)
    try:
        with pytest.raises(VideofixError, match="no-such-backend"):
            pool.submit(np.zeros((64, 64, 3), np.uint8)).result(timeout=120)
    finally:
        pool.close()


def test_cli_identity_model_end_to_end(tmp_path, clip):
    """`videofix restore --model identity`: no weights, faces aligned, restored (as they
    are) and pasted back; outside the paste regions the source is untouched."""
    out, report = tmp_path / "id.mkv", tmp_path / "r.json"
    run_cli("restore", clip.path, "-o", out, "--model", "identity", "--detector", "dlib", "--codec", "ffv1",
            "--device", "cpu", "--workers", "2", "--report", report, "--quiet")
    rep = json.loads(report.read_text())
    assert rep["faces_restored"] >= 3 * FRAMES // 2 and len(rep["tracks"]) == 3
    src, dst = media.decode_frames(clip.path), media.decode_frames(out)
    assert len(dst) == FRAMES
    for (_, a, _), (_, b, _) in zip(src, dst):
        diff = np.abs(a[0].astype(int) - b[0].astype(int))
        # the identity face is the source resampled twice (warp and paste back): close, not equal
        assert diff.mean() < 1.0 and diff.max() > 0


def test_workers_option_is_validated(tmp_path, clip):
    proc = run_cli("restore", clip.path, "-o", tmp_path / "x.mkv", "--model", "identity", "--workers", "-1",
                   check_rc=None)
    assert proc.returncode == 2 and "--workers" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.mkv").exists()
