"""Real-world file shapes (tests/corpus.py) through `restore`, locally and on Ray.

Every corpus file is restored losslessly (FFV1 in Matroska) with a tiny CodeFormer and
dlib; the output must have the source's frame count, its frames in order at the source's
times (as a player shows them: PyAV decode order), the audio bit-exact, and every pixel
outside the faces' paste regions bit-exact against the decoded source. A subset goes
through the Ray runner in one module-scoped Ray session and must give the local frames.
"""

from __future__ import annotations

import os
from fractions import Fraction

import av
import numpy as np
import pytest

from corpus import CORPUS, tiny_weights
from media import decode_audio
from videofix.pipeline.local import RestoreSettings, load_stages, restore_video

SETTINGS = dict(detector="dlib", codec="ffv1", temporal_radius=2, device="cpu", parsing=False, download=False,
                batch_size=4)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    settings = RestoreSettings(weights=str(tiny_weights(d / "tiny.pth")), **SETTINGS)
    return {"dir": d, "settings": settings, "stages": load_stages(settings, quiet=True), "files": {}, "local": {}}


def corpus_file(env, name):
    if name not in env["files"]:
        env["files"][name] = CORPUS[name](env["dir"])
    return env["files"][name]


def player_frames(path) -> list[np.ndarray]:
    """Every frame as a player shows it (decoder output order), planes stacked per frame."""
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            out.append([np.array(p, copy=True) for p in f.to_ndarray_planes()] if hasattr(f, "to_ndarray_planes")
                       else _planes(f))
    return out


def _planes(f) -> list[np.ndarray]:
    dt = np.uint16 if f.format.components[0].bits > 8 else np.uint8
    planes = []
    for p in f.planes:
        a = np.frombuffer(p, dt).reshape(-1, p.line_size // np.dtype(dt).itemsize)
        planes.append(a[: p.height, : p.width].copy())
    return planes


def frame_times(path) -> list[Fraction]:
    """Presentation times of the output's frames in decode-output order (Matroska: exact pts)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        tb = Fraction(v.time_base.numerator, v.time_base.denominator)
        return [f.pts * tb for f in c.decode(v)]


def source_times(path) -> list[Fraction]:
    """What the source's frames should be timed at: its packets' presentation times, sorted."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        tb = Fraction(v.time_base.numerator, v.time_base.denominator)
        return sorted(p.pts * tb for p in c.demux(v) if p.size and not p.is_discard)


def outside_faces_mask(report, index, shape, sub=(1, 1)) -> np.ndarray:
    """True where no face was pasted in output frame `index` (a plane of `shape`, subsampled
    by `sub` = (x, y) against luma)."""
    keep = np.ones(shape, bool)
    for t in report["tracks"]:
        regions = t["paste_regions"]
        if len(regions) == len(t["frames"]):
            regions = [r for f, r in zip(t["frames"], regions) if f == index]
        for x0, y0, x1, y1 in regions:  # else every region the track used: conservative
            keep[y0 // sub[1]:-(-y1 // sub[1]), x0 // sub[0]:-(-x1 // sub[0])] = False
    return keep


def check_restore(cf, out, report, source_frames):
    """source_frames: the source as a player shows it; None for a damaged file (PyAV's own
    decode loop stops at the damaged packet): then counts, times and audio only."""
    got = player_frames(out)
    assert len(got) == cf.frames
    if source_frames is None:
        source_frames = got
    assert report["frames_written"] == report["frames_read"] == cf.frames
    # timing: the source's presentation times, increasing, the first kept
    t_out = frame_times(out)
    t_src = source_times(cf.path)
    assert all(b > a for a, b in zip(t_out, t_out[1:]))
    step = min(b - a for a, b in zip(t_src, t_src[1:]))
    assert len(t_out) == len(t_src)
    assert max(abs(float(a - b)) for a, b in zip(t_out, t_src)) <= 0.0011  # Matroska stores milliseconds
    # order and pixels: outside the faces every sample is the source's, frame by frame
    faced = 0
    for i, (o, s) in enumerate(zip(got, source_frames)):
        assert len(o) == len(s)
        for k, (po, ps) in enumerate(zip(o, s)):
            assert po.shape == ps.shape
            sub = (round(s[0].shape[1] / ps.shape[1]), round(s[0].shape[0] / ps.shape[0]))
            keep = outside_faces_mask(report, i, ps.shape, sub)
            assert keep.mean() > 0.1, "the faces cover the picture: nothing to compare"
            assert np.array_equal(po[keep], ps[keep]), f"frame {i} plane {k} differs outside the faces"
            if k == 0 and not np.array_equal(po, ps):
                faced += 1
    assert report["faces_restored"] > 0 and (faced > 0 or source_frames is got), "no face was restored"
    assert step > 0
    # audio: stream-copied, so the decoded samples are the source's
    if cf.audio:
        a_src, a_out = decode_audio(cf.path), decode_audio(out)
        assert a_out.shape == a_src.shape and a_src.size > 0
        np.testing.assert_array_equal(a_out, a_src)


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_file_restores_locally(env, name, tmp_path):
    cf = corpus_file(env, name)
    out = tmp_path / "out.mkv"
    settings = env["settings"]
    if cf.interlaced:  # bit-exact pixels need the fields left as they are
        import dataclasses
        settings = dataclasses.replace(settings, deinterlace="off")
    report = restore_video(cf.path, out, settings, quiet=True, stages=env["stages"])
    check_restore(cf, out, report, None if cf.damaged else player_frames(cf.path))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    if cf.damaged:
        assert any("damaged" in n or "repeat" in n for n in report["notes"]), report["notes"]
    env["local"][name] = (out, report)


# the Ray runner, on the shapes where its segment planning differs: AVI counted frames
# (MJPEG: cut at keyframes, seeking by the AVI index; packed B-frames: one segment),
# transport-stream pts with a start offset, an edit list, VFR, a damaged packet
# (the whole corpus on Ray: VIDEOFIX_CORPUS_RAY=all, about 30 s a file more; all 13 passed)
RAY_SUBSET = ["avi_divx_packed", "mpeg2_ts", "mkv_vfr", "damaged_packet"]  # all: VIDEOFIX_CORPUS_RAY=all
if os.environ.get("VIDEOFIX_CORPUS_RAY") == "all":
    RAY_SUBSET = list(CORPUS)


@pytest.fixture(scope="module")
def cluster():
    pytest.importorskip("ray")
    from videofix.pipeline.ray.cluster import embedded_cluster

    with embedded_cluster(num_cpus=2) as address:  # as `restore --ray` starts it: a token, loopback only
        yield address


@pytest.mark.parametrize("name", RAY_SUBSET)
def test_corpus_file_restores_on_ray(env, cluster, name, tmp_path):
    from videofix.pipeline.ray.jobs import restore_video_ray
    from videofix.io.segments import plan_segments

    cf = corpus_file(env, name)
    if name not in env["local"]:  # the local reference (also run by the test above)
        ref = tmp_path / "local.mkv"
        env["local"][name] = (ref, restore_video(cf.path, ref, env["settings"], quiet=True, stages=env["stages"]))
    local_out, local_report = env["local"][name]
    out = tmp_path / "ray.mkv"
    report = restore_video_ray(cf.path, out, env["settings"], segments=3, quiet=True)
    plan = plan_segments(cf.path, count=3)
    assert report["ray"]["segments"] == len(plan.segments)
    if name == "avi_divx_packed":  # where a keyframe shows is only known by decoding
        assert len(plan.segments) == 1
    elif name in ("avi_mjpeg", "mpeg2_ts", "mkv_vfr"):
        assert len(plan.segments) > 1
    check_restore(cf, out, report, None if cf.damaged else player_frames(cf.path))
    # the same frames as the local runner, bit for bit
    a, b = player_frames(out), player_frames(local_out)
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        assert all(np.array_equal(p, q) for p, q in zip(x, y)), f"frame {i} differs from the local run"
    assert frame_times(out) == frame_times(local_out)
    if cf.damaged:
        assert any("damaged" in n or "repeat" in n for n in report["notes"]), report["notes"]
