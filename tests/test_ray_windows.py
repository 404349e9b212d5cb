"""The window maths of the Ray runner (`videofix.pipeline.ray.windows`), without Ray.

Which frames a segment task decodes and which tracks it is given decide whether a segment's
frames equal the whole-film run's: a window one frame short breaks the temporal smoothing
at the segment's edge, a seek to the wrong keyframe decodes the wrong frames. These are
checked here on hand-made plans, with the expected numbers worked out in the comments, and
once in an interpreter where Ray cannot be imported at all.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from videofix.faces import FaceTrack
from videofix.io import Segment, SegmentPlan
from videofix.pipeline.analysis import FaceAnalysis
from videofix.pipeline.ray.windows import analysis_window, context_window, restore_window

N = 20
PTS = [100 + 40 * i for i in range(N)]  # a stream that starts at pts 100, 40 ticks a frame


def _plan(starts=(0, 5, 10, 15), range_=None) -> SegmentPlan:
    """Segments starting at keyframes `starts`, as `plan_segments` makes them."""
    bounds = [*starts, N]
    segments = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        seek = None if (a == 0 and range_ is None) else PTS[a]
        segments.append(Segment(index=i, start_frame=a, end_frame=b, start_pts=PTS[a],
                                end_pts=PTS[b] if b < N else None, seek_pts=seek,
                                preroll_pts=segments[-1].seek_pts if segments else None))
    return SegmentPlan(source="x.mkv", source_size=1, source_mtime_ns=1, time_base="1/1000", frame_count=N,
                       segments=segments, range=range_)


def _bounds(seg: Segment) -> tuple:
    return seg.start_frame, seg.end_frame, seg.start_pts, seg.end_pts, seg.seek_pts, seg.preroll_pts


def test_context_window_seeks_to_the_first_context_frame_with_its_keyframe_to_fall_back_on():
    plan = _plan()
    seg = plan.segments[2]  # frames [10, 15)
    # 3 before, 2 after: frames [7, 17); 7 is no keyframe: seek to its pts, fall back on the
    # keyframe of the segment holding it (frame 5)
    assert _bounds(context_window(plan, seg, PTS, 3, 2)) == (7, 17, PTS[7], PTS[17], PTS[7], PTS[5])
    # no context before: the segment's own keyframe and fallback
    assert _bounds(context_window(plan, seg, PTS, 0, 0)) == (10, 15, PTS[10], PTS[15], PTS[10], PTS[5])
    # the context starts on a keyframe: nothing earlier to fall back on
    assert _bounds(context_window(plan, seg, PTS, 5, 0)) == (5, 15, PTS[5], PTS[15], PTS[5], None)
    # clipped to the plan: the last segment runs to the end (end_pts None)
    last = plan.segments[3]
    assert _bounds(context_window(plan, last, PTS, 1, 10)) == (14, 20, PTS[14], None, PTS[14], PTS[10])
    # reaching back to the first frame of a whole-file plan: decoded from the start (no seek)
    assert _bounds(context_window(plan, plan.segments[1], PTS, 9, 0)) == (0, 10, PTS[0], PTS[10], None, None)
    assert _bounds(context_window(plan, plan.segments[0], PTS, 3, 1)) == (0, 6, PTS[0], PTS[6], None, None)
    # ... but a --range plan seeks even there (its frame 0 is not the file's)
    ranged = _plan(range_="1:2")
    assert _bounds(context_window(ranged, ranged.segments[1], PTS, 9, 0)) == (0, 10, PTS[0], PTS[10], PTS[0], None)
    assert context_window(plan, seg, PTS, 3, 2).index == seg.index


def test_restore_window_holds_radius_plus_one_before_and_radius_after():
    plan = _plan()
    seg = plan.segments[2]  # [10, 15)
    win, decode = restore_window(plan, seg, PTS, 2, {})
    assert (win.start_frame, win.end_frame) == (7, 17)  # R + 1 = 3 before, R = 2 after
    assert decode == win
    win, _ = restore_window(plan, seg, PTS, 0, {})
    assert (win.start_frame, win.end_frame) == (9, 15)  # one before: the first metrics pair
    # clipped at both ends of the plan
    win, _ = restore_window(plan, plan.segments[0], PTS, 4, {})
    assert (win.start_frame, win.end_frame) == (0, 9)
    win, _ = restore_window(plan, plan.segments[3], PTS, 4, {})
    assert (win.start_frame, win.end_frame) == (10, 20)


def test_restore_window_reaches_past_repeated_frames():
    plan = _plan()
    seg = plan.segments[2]  # [10, 15)
    # frames 8 and 9 repeat frame 7: they are not restored, so 3 restored frames before 10
    # are 7, 6, 5
    win, _ = restore_window(plan, seg, PTS, 2, {8: 7, 9: 7})
    assert win.start_frame == 5
    # a run of repeats crossing the segment's start (9 shown again at 10 and 11): the window
    # holds the run's first frame, 9, and two restored frames before it
    win, _ = restore_window(plan, seg, PTS, 2, {10: 9, 11: 9})
    assert win.start_frame == 7
    # after the segment: 15 and 16 repeat 14, so R = 2 restored frames after it are 17, 18
    win, _ = restore_window(plan, seg, PTS, 2, {15: 14, 16: 14})
    assert win.end_frame == 19


def test_deinterlacing_decodes_one_more_frame_on_each_side():
    plan = _plan()
    win, decode = restore_window(plan, plan.segments[2], PTS, 2, {}, deinterlace=True)
    assert (win.start_frame, win.end_frame) == (7, 17)
    assert (decode.start_frame, decode.end_frame) == (6, 18)
    assert decode.seek_pts == PTS[6] and decode.preroll_pts == PTS[5]
    win, decode = restore_window(plan, plan.segments[0], PTS, 2, {}, deinterlace=True)
    assert (decode.start_frame, decode.end_frame) == (0, 8)  # nothing before the first frame
    win, decode = restore_window(plan, plan.segments[3], PTS, 2, {}, deinterlace=True)
    assert (decode.start_frame, decode.end_frame) == (11, 20)


def _track(track_id: int, frames: range) -> FaceTrack:
    t = np.arange(len(frames), dtype=np.float32)
    return FaceTrack(track_id=track_id, frames=np.array(frames, dtype=np.int64),
                     boxes=np.stack([t, t + 1, t + 2, t + 3], axis=1),
                     raw_landmarks=np.repeat(t[:, None, None], 5, axis=1).repeat(2, axis=2),
                     landmarks=np.repeat(t[:, None, None] + 0.5, 5, axis=1).repeat(2, axis=2),
                     scores=t / 10, detected=(t % 2 == 0), embedding=np.ones(4, np.float32))


def test_analysis_window_cuts_tracks_and_film_decisions_to_the_window():
    one, two, three = _track(1, range(0, 10)), _track(2, range(12, 20)), _track(3, range(15, 20))
    film = {"shots": [{"start": 0, "end": 12, "mode": "color"}, {"start": 12, "end": 20, "mode": "luma"}],
            "repeat_runs": [[3, 4], [4, 6], [16, 18]], "grain": True}
    analysis = FaceAnalysis(frame_count=N, cuts=[3, 12], tracks=[one, two, three], detector="dlib",
                            frame_size=(256, 192), extra={"film": film, "pts": PTS}, soft_cuts=[3, 12],
                            transitions=[[1, 2], [11, 12]], cut_detector="transnetv2")
    w = analysis_window(analysis, 5, 14)
    assert w.frame_count == 9 and w.detector == "dlib" and w.cut_detector == "transnetv2"
    assert w.frame_size == (256, 192)
    assert [t.track_id for t in w.tracks] == [1, 2]  # track 3 has no frame in [5, 14)
    a, b = w.tracks
    assert a.frames.tolist() == list(range(5, 10)) and b.frames.tolist() == [12, 13]  # plan frame indices kept
    for got, src, keep in ((a, one, slice(5, 10)), (b, two, slice(0, 2))):
        for name in ("boxes", "raw_landmarks", "landmarks", "scores", "detected"):
            np.testing.assert_array_equal(getattr(got, name), getattr(src, name)[keep])
        assert got.embedding is None
    assert w.cuts == [12] and w.soft_cuts == [12]
    assert w.transitions == [[11, 12]]  # [1, 2] ends before the window's first frame - 1
    assert w.extra["film"]["shots"] == film["shots"]  # both overlap [5, 14)
    assert w.extra["film"]["repeat_runs"] == [[4, 6]]
    assert w.extra["film"]["grain"] is True
    assert "pts" not in w.extra  # the film's pts stay with the driver
    # a transition ending on the frame before the window still touches its first pair
    assert analysis_window(analysis, 3, 8).transitions == [[1, 2]]
    assert analysis_window(analysis, 4, 8).transitions == []
    assert "film" not in analysis_window(FaceAnalysis(frame_count=N, cuts=[], tracks=[], detector="dlib"),
                                         0, 5).extra


def test_the_window_maths_and_the_coalescer_need_no_ray(tmp_path):
    """In an interpreter where `import ray` fails, the windows (and the restorer actor's batch
    coalescer) import and compute."""
    script = tmp_path / "no_ray.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path[:0] = [{str(Path(__file__).parent)!r}]

        class NoRay:
            def find_spec(self, name, path=None, target=None):
                if name == "ray" or name.startswith("ray."):
                    raise ImportError("ray is not installed here")

        sys.meta_path.insert(0, NoRay())
        import videofix.pipeline.ray
        from videofix.pipeline.ray.coalescer import CoalescingRestorer
        from videofix.pipeline.ray.windows import restore_window
        from test_ray_windows import PTS, _plan

        plan = _plan()
        win, decode = restore_window(plan, plan.segments[2], PTS, 2, {{8: 7}}, deinterlace=True)
        assert not [m for m in sys.modules if m == "ray" or m.startswith("ray.")]
        print(win.start_frame, win.end_frame, decode.start_frame, decode.end_frame)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["6", "17", "5", "18"]
