"""Timestamps that never break (videofix.io.timeline): one increasing time per frame.

Fast tests with no model: the reader, `--range`, segment planning and the segment reader
on the corpus shapes (tests/corpus.py), and the bugs found on the way, each with its test.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction

import av
import numpy as np
import pytest

from conftest import run_cli
from corpus import CORPUS, make_avi_divx_packed, make_damaged, make_dv, make_offset_start
from media import make_clip
from videofix.io import open_segment, open_video, plan_segments
from videofix.io.timeline import frame_timeline


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ts")
    return {name: make(d) for name, make in CORPUS.items()}


def decoded_in_order(path) -> list[np.ndarray]:
    """Luma planes (native depth) as a player shows them (PyAV decoder output order)."""
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            p = f.planes[0]
            dt = np.uint16 if f.format.components[0].bits > 8 else np.uint8
            out.append(np.frombuffer(p, dt).reshape(-1, p.line_size // np.dtype(dt).itemsize)[: p.height, : p.width].copy())
    return out


def reader_frames(path, range=None):
    with open_video(path, range) as r:
        frames = [(f.index, f.pts, f.picture.planes[0].copy()) for f in r]
    return frames, r


def test_divx_packed_avi_pts_come_out_of_order_from_the_decoder(files):
    # the bug's root: AVI stores decode order; around packed B-frames PyAV's frame.pts is out of order
    with av.open(str(files["avi_divx_packed"].path)) as c:
        pts = [f.pts for f in c.decode(video=0)]
    assert pts != sorted(pts)


@pytest.mark.parametrize("name", list(CORPUS))
def test_reader_gives_every_frame_once_with_increasing_times(files, name):
    cf = files[name]
    frames, r = reader_frames(cf.path)
    assert len(frames) == cf.frames
    assert [i for i, _, _ in frames] == list(range(cf.frames))
    pts = [p for _, p, _ in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    # in a player's order: the pictures are PyAV's decoder output, one to one (a damaged
    # file makes PyAV's own decode loop raise: its frames are checked by count and time)
    if not cf.damaged:
        want = decoded_in_order(cf.path)
        assert len(want) == len(frames)
        for (i, _, y), w in zip(frames, want):
            assert np.array_equal(y, w), f"frame {i}"
    # the times are the container's presentation times where it has them
    tl = frame_timeline(cf.path)
    assert list(tl.pts) == pts
    if cf.damaged:
        assert not r.report.complete and r.report.report_notes("x")
    else:
        assert r.report.complete, r.report.describe(str(cf.path))


@pytest.mark.parametrize("name", ["avi_divx_packed", "avi_mjpeg", "mpeg2_ts", "mkv_vfr", "mov_editlist",
                                  "offset_start", "avi_xvid_bframes"])
@pytest.mark.parametrize("rng", [None, "0.3:"])
def test_segments_give_the_readers_frames(files, name, rng):
    """Planned segments, decoded one by one (as Ray workers do), give exactly the frames and
    times of one read: AVI counts frames from keyframes it seeks to by its index; AVI with
    B-frames is one segment (where a keyframe shows is only known by decoding)."""
    cf = files[name]
    whole, _ = reader_frames(cf.path, rng)
    plan = plan_segments(cf.path, count=3, range=rng)
    got = []
    for seg in plan.segments:
        with open_segment(cf.path, seg) as r:
            got += [(f.index, f.pts, f.picture.planes[0].copy()) for f in r]
    assert plan.frame_count == len(whole) == len(got)
    for (i, p, y), (j, q, z) in zip(got, whole):
        assert (i, p) == (j, q) and np.array_equal(y, z)
    if name in ("avi_divx_packed", "avi_xvid_bframes"):
        assert len(plan.segments) == 1
    if name in ("avi_mjpeg", "mkv_vfr") and rng is None:
        assert len(plan.segments) == 3


def test_range_counts_seconds_from_the_first_frame(files):
    """`--range` is in seconds from the first frame, whatever the stream's start time."""
    cf = files["offset_start"]  # first frame at 3.2 s, 25 fps
    frames, _ = reader_frames(cf.path, "0.2:0.4")
    assert [p for _, p, _ in frames] == [3400, 3440, 3480, 3520, 3560]
    ts = files["mpeg2_ts"]  # transport streams start at 1.4 s + ...
    tl = frame_timeline(ts.path)
    assert tl.first > 0
    frames, _ = reader_frames(ts.path, "0.4:0.6")
    assert [p for _, p, _ in frames] == [tl.first + 3600 * k for k in (10, 11, 12, 13, 14)]
    plan = plan_segments(ts.path, range="0.4:0.6")
    assert plan.frame_count == 5 and plan.segments[0].start_pts == tl.first + 36000


def test_no_false_lost_frames_for_late_starts_and_dv(tmp_path):
    # bugs: a stream starting at 3.2 s was said to have lost 80 frames (duration read as a
    # span); DV's 60000 fps header rate made 8 frames "decoded 8 of 2407"
    for cf in (make_offset_start(tmp_path), make_dv(tmp_path)):
        frames, r = reader_frames(cf.path)
        assert len(frames) == cf.frames
        assert r.report.complete, r.report.describe(str(cf.path))
    assert abs(float(r.info.avg_fps) - 25) < 0.01


def test_damaged_packet_is_concealed_and_reported(tmp_path):
    cf = make_damaged(tmp_path)
    frames, r = reader_frames(cf.path)
    assert len(frames) == cf.frames
    # the times stay the container's: frames after the damage keep their own
    assert [p for _, p, _ in frames] == list(frame_timeline(cf.path).pts)
    assert r.report.concealed_frames + r.report.repeated_frames >= 1
    assert "damaged" in r.report.describe("x") or "repeat" in r.report.describe("x")


def test_raw_stream_times_are_regenerated_from_the_frame_rate(tmp_path):
    """A raw H.264 elementary stream has no timestamps: times come from the frame rate, and
    the report says so."""
    src = make_clip(tmp_path / "a.mkv", frames=12, size=(64, 48), audio=False, subtitles=False, bframes=2)
    raw = tmp_path / "a.h264"
    with av.open(str(src.path)) as c, av.open(str(raw), "w", format="h264") as o:
        v = c.streams.video[0]
        ov = o.add_stream_from_template(v)
        for p in c.demux(v):
            if p.size:
                p.stream = ov
                o.mux(p)
    frames, r = reader_frames(raw)
    tl = frame_timeline(raw)
    assert len(frames) == 12 and not tl.trusted and tl.source == "rate"
    assert any("regenerated from the frame rate" in n for n in r.report.report_notes(str(raw)))
    pts = [p for _, p, _ in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    steps = {b - a for a, b in zip(pts, pts[1:])}
    assert len(steps) == 1 and abs(float(1 / (steps.pop() * tl.time_base)) - 25) < 0.01
    assert [y.tobytes() for _, _, y in frames] == [x.tobytes() for x in decoded_in_order(raw)]


def test_issue_reproduction_divx_avi_range_restores(tmp_path):
    """The reported failure: `restore film.avi -o out.mkv --codec ffv1 --range ...` on a
    DivX-style AVI died with `internal error: ValueError: pts must increase`."""
    cf = make_avi_divx_packed(tmp_path)
    out = tmp_path / "out.mkv"
    proc = run_cli("restore", cf.path, "-o", out, "--codec", "ffv1", "--range", "0.3:0.8", "--model", "identity",
                   "--detector", "dlib", "--device", "cpu", "--no-parsing", "--quiet")
    assert "internal error" not in proc.stderr
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        tb = Fraction(v.time_base.numerator, v.time_base.denominator)
        times = [f.pts * tb for f in c.decode(v)]
        assert c.streams.audio and c.streams.audio[0].codec_context.name == "ac3"
    assert len(times) == 12  # frames at 0.334 .. 0.792 s of the source (23.976 fps)
    assert times[0] == 0 and all(b > a for a, b in zip(times, times[1:]))


def test_same_video_gives_the_same_output_file(tmp_path):
    """Reproducible files: the final remux writes no random Matroska UIDs, dates or muxer
    versions (bitexact), so the same encoded video and source give the same bytes."""
    from videofix.io import VideoWriter, finalize_output

    src = make_clip(tmp_path / "src.mkv", frames=8, size=(64, 48))
    digests = set()
    for k in range(3):
        out = tmp_path / f"out{k}.mkv"
        with open_video(src.path) as r:
            w = VideoWriter(out, r.info, codec="ffv1")
            for f in r:
                w.write(f.picture, f.pts)
            finalize_output(w.close(), r.info, out)
        digests.add(hashlib.sha1(out.read_bytes()).hexdigest())
    assert len(digests) == 1


def test_interlace_probe_skips_a_damaged_packet(tmp_path):
    """Bug: the film plan's interlace probe decoded with PyAV's plain loop and died on the
    damaged packet before the run began (`cannot read` instead of a restored file)."""
    from videofix.film.interlace import probe_interlace

    cf = make_damaged(tmp_path)
    with pytest.raises(av.error.FFmpegError):  # the damage is real: PyAV's loop stops on it
        with av.open(str(cf.path)) as c:
            for _ in c.decode(video=0):
                pass
    probe = probe_interlace(cf.path, frames=cf.frames)
    assert probe.frames >= cf.frames - 3


def test_frames_the_demuxer_skipped_are_reported(tmp_path):
    """Bug (fuzz pass): a byte flip in a Matroska cluster made the demuxer skip the cluster
    without a word; 16 frames came out as 7 and the report said nothing. Holes in a
    constant-rate timeline are now counted as lost frames."""
    pts = [40 * i for i in range(16) if i not in (6, 7, 8)]
    clip = make_clip(tmp_path / "holes.mkv", pts=pts, time_base=Fraction(1, 1000), fps=25, frames=len(pts),
                     size=(64, 48), codec="ffv1", audio=False, subtitles=False)
    with open_video(clip.path) as r:
        assert sum(1 for _ in r) == 13
    assert r.report.lost_frames == 3 and not r.report.complete
    assert "3 frames" in r.report.describe(str(clip.path))


def test_variable_rate_steps_are_not_lost_frames(tmp_path):
    pts = [0, 40, 90, 100, 180, 200, 260, 300, 333, 400, 480, 481, 560]
    clip = make_clip(tmp_path / "vfr.mkv", pts=pts, time_base=Fraction(1, 1000), frames=len(pts), size=(64, 48),
                     codec="ffv1", audio=False, subtitles=False)
    with open_video(clip.path) as r:
        assert sum(1 for _ in r) == len(pts)
    assert r.report.complete, r.report.describe(str(clip.path))
