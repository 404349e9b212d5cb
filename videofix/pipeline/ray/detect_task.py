"""Pass 1 of the Ray runner: one task per segment detects its faces and surveys its frames.

A task decodes its segment (one more frame on each side when deinterlacing), runs
`detect_frames` and the film survey, and sends back only small data: detections (a few
floats per face), pts, the shot network's probabilities and edge thumbnails. The driver
joins the segments in frame order (`join_detections`) and decides every frame's cut as one
streamed run would, so the tracks equal the local runner's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from videofix.io import Segment, open_segment
from videofix.pipeline.analysis import FrameDetections, detect_frames, detection_image
from videofix.settings import RestoreSettings
from videofix.pipeline.ray.worker_cache import worker_detector, worker_film_plan


@dataclass
class SegmentDetections:
    """What a pass-1 task returns for one segment (small: no frames, a few small thumbnails).

    frames: `FrameDetections` with plan frame indices; their `cut` flags are decided by the
        driver from every segment's `shots` (`join_detections`).
    pts: source pts of every frame of the segment, in order.
    shots: the shot-boundary network's probabilities and edge thumbnails (`SegmentShots`).
    """

    index: int
    frames: list[FrameDetections]
    pts: list[int]
    detector: str
    shots: object  # videofix.shots.SegmentShots
    seconds: float
    film: object | None = None  # videofix.film.plan.SegmentSurvey
    film_figures: dict = field(default_factory=dict)  # FilmPlan.figures() (deinterlacing)


def detect_segment(source: str, segment: Segment, settings: dict, need_head: bool, film: dict | None = None,
                   window: Segment | None = None) -> SegmentDetections:
    """Pass 1 over one segment: detections in full-frame coordinates, cut flags, pts, and the
    film survey (`film`: the driver's `FilmPlan.worker_state()`; None = no film processing).
    window: what to decode, the segment with one frame on each side when deinterlacing.
    Shot boundaries: the network's probabilities and edge thumbnails (`SegmentShots`) for the
    driver; need_head is no longer used (every segment sends its edges)."""
    from videofix.shots import SegmentShotRecorder

    t0 = time.perf_counter()
    s = RestoreSettings(**settings)
    detector = worker_detector(s.detector, s.models_dir, s.det_threshold)
    shots = SegmentShotRecorder(segment.start_frame)
    plan = worker_film_plan(s, film) if film is not None else None
    survey = plan.survey(segment.start_frame) if plan is not None else None
    pts: list[int] = []

    def frames(reader):
        for f in reader:
            pts.append(int(f.pts))
            yield f

    def observer(i, rgb, dets, cut):
        # cuts are decided by the driver; the duplicate check only uses a cut to refuse a
        # repeat across it, and TransNetV2 never cuts between two identical frames
        survey(segment.start_frame + i, rgb, dets, cut)

    out = []
    with open_segment(source, window or segment) as reader:
        src = reader
        if plan is not None:  # deinterlaced (window frames outside the segment only feed bwdif), colour scores
            src = plan.frames(reader, survey, keep=(segment.start_frame, segment.end_frame))
        # detect_frames numbers frames from 0: renumber to the plan
        for fd in detect_frames(frames(src), detector, observer=observer if survey is not None else None,
                                shots=shots):
            out.append(FrameDetections(segment.start_frame + fd.index, fd.detections, False))
    return SegmentDetections(segment.index, out, pts, detector.name, shots.result(), time.perf_counter() - t0,
                             survey.segment_result() if survey is not None else None,
                             plan.figures() if plan is not None else {})


def redo_duplicates(source: str, segment: Segment, window: Segment | None, settings: dict, film: dict,
                    frames: list[FrameDetections], finder, from_index: int) -> None:
    """Feed `finder` (a `DuplicateFinder`) frames [from_index, segment end) decoded again: the
    rare fallback of `FilmSurvey.merge` when a segment's head thumbnails do not reach the
    frame where its own duplicate check meets the whole video's."""
    from videofix.film.plan import FilmPlan

    plan = FilmPlan.for_worker(RestoreSettings(**settings), film)  # no upscaler: it runs on the driver
    by_index = {fd.index: fd for fd in frames}
    with open_segment(source, window or segment) as reader:
        for f in plan.frames(reader, keep=(from_index, segment.end_frame)):
            fd = by_index[f.index]
            finder.update(f.index, detection_image(f.picture)[0], fd.detections, fd.cut)


def join_detections(parts: list[SegmentDetections]) -> list[FrameDetections]:
    """Frame detections of consecutive segments, in frame order, with every frame's shot
    decision (cut, soft, in transition) made from the joined probabilities exactly as a
    one-piece `detect_frames` run makes them."""
    from videofix.shots import decide_shots, join_segment_shots

    parts = sorted(parts, key=lambda p: p.index)
    frames: list[FrameDetections] = [fd for part in parts for fd in part.frames]
    single, many = join_segment_shots([p.shots for p in parts])
    first = frames[0].index if frames else 0
    for d in decide_shots(single, many):
        fd = frames[d.index]
        frames[d.index] = FrameDetections(first + d.index, fd.detections, bool(d.cut), bool(d.soft),
                                          bool(d.in_transition))
    return frames
