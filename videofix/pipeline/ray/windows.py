"""The frames a segment task decodes and the tracks it needs: pure maths over a segment plan.

No Ray here (it is tested without it). A pass-2 task restores its segment's own frames but
must see what the whole-film run sees around them: R + 1 restored frames before the segment
and R after it (R = the temporal radius), reaching past repeated frames (they are not
restored), and one more decoded frame on each side when deinterlacing (bwdif reads the
neighbours). `analysis_window` cuts the film's face analysis down to such a window.
"""

from __future__ import annotations

import os

from videofix.errors import InputError
from videofix.faces import FaceTrack
from videofix.io import Segment, SegmentPlan
from videofix.pipeline.analysis import FaceAnalysis


def plan_frame_pts(path: str | os.PathLike, plan: SegmentPlan) -> list[int]:
    """The source pts of every frame of `plan`, from the packets (no decoding): what pass 1
    needs to widen its segments by a frame before pass 1 has returned the pts."""
    from videofix.io.segments import frame_pts

    _, pts, _ = frame_pts(path, plan.range)
    if len(pts) != plan.frame_count:
        raise InputError(f"{path}: {len(pts)} frames, the segment plan says {plan.frame_count} (file changed?)")
    return pts


def context_window(plan: SegmentPlan, segment: Segment, pts: list[int], before: int, after: int) -> Segment:
    """`segment` widened by `before` frames before it and `after` after it (clipped to the
    plan), as a `Segment` `open_segment` can decode. `pts`: source pts of every planned frame.

    The widened start is usually not a keyframe: the reader seeks to its pts (FFmpeg lands on
    the keyframe before it) and drops the frames in between; if that fails it falls back on
    the keyframe that starts the segment holding the first context frame, then on the start.
    """
    n = plan.frame_count
    lo = max(0, segment.start_frame - before)
    hi = min(n, segment.end_frame + after)
    if lo == segment.start_frame:
        seek, preroll = segment.seek_pts, segment.preroll_pts
    else:
        holder = next(s for s in plan.segments if s.start_frame <= lo < s.end_frame)
        seek = None if (lo == 0 and plan.range is None) else pts[lo]
        preroll = holder.seek_pts if holder.seek_pts != seek else None
    return Segment(index=segment.index, start_frame=lo, end_frame=hi, start_pts=pts[lo],
                   end_pts=pts[hi] if hi < n else None, seek_pts=seek, preroll_pts=preroll)


def restore_window(plan: SegmentPlan, segment: Segment, pts: list[int], radius: int, repeats: dict[int, int],
                   *, deinterlace: bool = False) -> tuple[Segment, Segment]:
    """(restore window, decode window) of a pass-2 segment task.

    The restore window holds R + 1 restored frames before the segment (R for the temporal
    window of its first frames, one to open the first metrics pair) and R after it; repeated
    frames (`repeats`: frame -> its run's first frame) are not restored, so it reaches past
    them, and back to the first frame of a run that crosses the segment's start. The decode
    window adds one frame on each side when deinterlacing (bwdif reads the neighbours)."""
    n = plan.frame_count
    lo, need = segment.start_frame, radius + 1
    while lo > 0 and need > 0:
        lo -= 1
        need -= lo not in repeats
    hi, need = segment.end_frame, radius
    while hi < n and need > 0:
        need -= hi not in repeats
        hi += 1
    win = context_window(plan, segment, pts, segment.start_frame - lo, hi - segment.end_frame)
    if not deinterlace:
        return win, win
    return win, context_window(plan, segment, pts, segment.start_frame - max(0, lo - 1),
                               min(n, hi + 1) - segment.end_frame)


def analysis_window(analysis: FaceAnalysis, lo: int, hi: int) -> FaceAnalysis:
    """The tracks of frames [lo, hi) only (landmarks already smoothed over the whole track,
    so a window keeps them exactly); what a segment task needs, not the whole film's. The
    film decisions (`extra["film"]`: shots, repeat runs) are cut to the window too."""
    tracks = []
    for t in analysis.tracks:
        keep = (t.frames >= lo) & (t.frames < hi)
        if not keep.any():
            continue
        tracks.append(FaceTrack(track_id=t.track_id, frames=t.frames[keep], boxes=t.boxes[keep],
                                raw_landmarks=t.raw_landmarks[keep], landmarks=t.landmarks[keep],
                                scores=t.scores[keep], detected=t.detected[keep], embedding=None))
    extra = {}
    film = analysis.extra.get("film")
    if film is not None:
        extra["film"] = {**film, "shots": [sh for sh in film.get("shots", []) if sh["end"] > lo and sh["start"] < hi],
                         "repeat_runs": [r for r in film.get("repeat_runs", []) if r[1] >= lo and r[0] < hi]}
    return FaceAnalysis(frame_count=hi - lo, cuts=[c for c in analysis.cuts if lo <= c < hi], tracks=tracks,
                        detector=analysis.detector, frame_size=analysis.frame_size, extra=extra,
                        soft_cuts=[c for c in analysis.soft_cuts if lo <= c < hi],
                        transitions=[t for t in analysis.transitions if t[1] >= lo - 1 and t[0] < hi],
                        cut_detector=analysis.cut_detector)
