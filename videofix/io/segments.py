"""Keyframe-aligned segments for the parallel runner.

`plan_segments` numbers frames in presentation order with the file's `Timeline`
(`videofix.io.timeline`: from the packets, no decoding; the reader uses the same one) and
cuts at keyframes. Each `Segment`
holds an exact frame range and its pts bounds, so `open_segment` yields exactly that
segment's frames: it seeks to the segment's keyframe, drops the frames before it (open
GOP leading pictures belong to the previous segment), and stops after `frame_count`
frames, decoding past the next keyframe when leading B-frames of the next GOP are still
owed. If a seek lands late it retries from the previous keyframe, then from the start.

Segments are encoded separately (`VideoWriter(...).commit()` per segment, identical
settings) and `join_segments` concatenates their packets into one video whose frame count
and timestamps equal the source's, then muxes audio/subtitles once (`finalize_output`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from videofix.atomic import temp_path
from videofix.errors import InputError, OutputError
from videofix.io.info import TimeRange, describe, open_input, parse_range
from videofix.io.reader import VideoReader
from videofix.io.timeline import frame_timeline
from videofix.io.remux import finalize_output


@dataclass
class Segment:
    """Frames [start_frame, end_frame) of the source (presentation order), i.e. pts in
    [start_pts, end_pts) (end_pts None = to the end). `seek_pts`: the keyframe the decode
    starts from; `preroll_pts`: an earlier keyframe to fall back on (None for the first)."""

    index: int
    start_frame: int
    end_frame: int
    start_pts: int
    end_pts: int | None
    seek_pts: int | None
    preroll_pts: int | None = None

    @property
    def frame_count(self) -> int:
        return self.end_frame - self.start_frame


@dataclass
class SegmentPlan:
    """How a source is cut. Plain data: `to_json()` / `SegmentPlan.from_json(text)`.

    `time_base` is the video stream's as "num/den"; `source_size` / `source_mtime_ns`
    let a resumed run notice the file changed."""

    source: str
    source_size: int
    source_mtime_ns: int
    time_base: str
    frame_count: int
    segments: list[Segment] = field(default_factory=list)
    range: str | None = None

    @property
    def time_base_fraction(self) -> Fraction:
        return Fraction(self.time_base)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> "SegmentPlan":
        d = json.loads(text)
        d["segments"] = [Segment(**s) for s in d["segments"]]
        return cls(**d)

    def check_source(self) -> None:
        """`InputError` if the source file changed since planning."""
        from videofix.io.sequence import source_stat  # a file, or an image sequence's files

        size, mtime_ns = source_stat(self.source)
        if size != self.source_size or mtime_ns != self.source_mtime_ns:
            raise InputError(f"{self.source}: file changed since the segment plan was made")


def frame_pts(path: str | os.PathLike, range: TimeRange | str | None = None) -> tuple[object, list[int], set[int]]:
    """(VideoInfo, timeline pts of every presented frame of `range` (seconds from the first
    frame; None = all), pts of the keyframes a decode can start from), from the packets only
    (no decoding; see `videofix.io.timeline`). Frame i of a plan with the same range has
    pts[i]; the reader gives frames exactly these pts. Raises InputError when nothing is left."""
    if isinstance(range, str):
        range = parse_range(range)
    container = open_input(path)
    try:
        info = describe(container, path)
    finally:
        container.close()
    tl = frame_timeline(path)
    info.start_pts, info.start_time = tl.first, float(tl.first * tl.time_base)
    pts_list = list(tl.pts)
    if range is not None:
        pts_list = [p for i, p in enumerate(tl.pts) if range.contains(tl.seconds(i))]
        if not pts_list:
            raise InputError(f"{path}: range {range} selects no frames")
    keys = {tl.pts[i] for i, _ in tl.keys}
    return info, pts_list, keys


def plan_segments(path: str | os.PathLike, count: int | None = None, seconds: float | None = None,
                  range: TimeRange | str | None = None) -> SegmentPlan:
    """Cut `path` into keyframe-aligned segments.

    Args:
        count: wanted number of segments (fewer when the video has too few keyframes).
        seconds: wanted segment length in seconds (alternative to `count`).
        range: restrict to this `TimeRange` / "START:END" (seconds from the first frame).

    Every frame belongs to exactly one segment; segment k > 0 starts at a keyframe whose
    place in presentation order is known from the packets (`Timeline.keys`). Boundary
    keyframes are the ones nearest the ideal cut points. With neither `count` nor `seconds`,
    or no such keyframe (AVI with B-frames: where a keyframe shows is only known by
    decoding), one segment. Frames and pts are the file's `Timeline`'s, as the reader's.
    """
    if isinstance(range, str):
        range = parse_range(range)
    info, pts_list, keys = frame_pts(path, range)
    tb = info.time_base
    n = len(pts_list)
    key_idx = [i for i, p in enumerate(pts_list) if p in keys and i > 0]
    if seconds is not None and seconds > 0:
        span = float((pts_list[-1] - pts_list[0]) * tb)
        wanted = max(1, round(span / seconds))
    else:
        wanted = max(1, int(count or 1))
    cuts: list[int] = []
    for k in range_(1, wanted):
        ideal = k * n / wanted
        if not key_idx:
            break
        best = min(key_idx, key=lambda i: (abs(i - ideal), i))
        if best not in cuts and (not cuts or best > cuts[-1]):
            cuts.append(best)
    bounds = [0] + cuts + [n]
    # frame indices count from the first frame of the range. The first segment of a ranged
    # plan may not start on a keyframe: the seek lands on the keyframe before it and the
    # reader drops the frames in between. The first segment of a whole-file plan decodes
    # from the start (seek_pts None).
    segments = []
    for i in range_(len(bounds) - 1):
        a, b = bounds[i], bounds[i + 1]
        start_pts = pts_list[a]
        seek = None if (a == 0 and range is None) else start_pts
        preroll = segments[-1].seek_pts if segments else None
        segments.append(Segment(index=i, start_frame=a, end_frame=b, start_pts=start_pts,
                                end_pts=pts_list[b] if b < n else None, seek_pts=seek,
                                preroll_pts=preroll))
    from videofix.io.sequence import source_stat  # a file, or an image sequence's files

    size, mtime_ns = source_stat(path)
    return SegmentPlan(source=str(path), source_size=size, source_mtime_ns=mtime_ns,
                       time_base=f"{tb.numerator}/{tb.denominator}", frame_count=n, segments=segments,
                       range=str(range) if range is not None else None)


range_ = range  # the builtin, shadowed by the `range` parameters above


def open_segment(path: str | os.PathLike, segment: Segment, *, threads: int = 0) -> VideoReader:
    """A `VideoReader` yielding exactly `segment`'s frames (`DecodedFrame.index` = the
    frame's index in the plan). Raises `InputError` if the count differs from the plan."""
    return VideoReader(path, segment=segment, threads=threads)


def join_segments(segment_files: list[str | os.PathLike], plan: SegmentPlan, source: str | os.PathLike,
                  output: str | os.PathLike) -> Path:
    """Concatenate encoded segment files (video only, same codec settings, source pts, in plan
    order) into `output`, then mux the source's audio/subtitles once (trimmed to the plan's
    range) via `finalize_output`.

    Refused with a one-line `OutputError`, before anything is written: a file count other
    than the plan's, a file given twice, a file that cannot be read or was encoded
    differently, a segment whose frame count is not the plan's, one whose frames do not all
    come after the previous segment's (overlapping or duplicated segments). Presentation
    times are kept; decode times are rebuilt over the whole video (each segment's encoder
    started its own), from the frames' order: the k-th frame decodes at the presentation
    time of frame k - D in presentation order, D being the deepest reordering of the
    stream (B-frames), so they increase strictly and never pass a frame's own time."""
    if len(segment_files) != len(plan.segments):
        raise OutputError(f"{output}: {len(segment_files)} segment files for {len(plan.segments)} planned segments")
    first_use: dict[Path, int] = {}
    for k, f in enumerate(segment_files):
        key = Path(f).resolve()
        if key in first_use:
            raise OutputError(f"{f}: the same file is given for segments {first_use[key]} and {k}")
        first_use[key] = k
    out_path = Path(output)
    joined = temp_path(out_path, "joined")
    out = None
    try:
        pts = _segment_times(segment_files, plan)
        dts = _decode_times(pts)
        ref_container = _open_segment_file(segment_files[0])
        try:
            out = av.open(str(joined), "w")
            vout = out.add_stream_from_template(ref_container.streams.video[0])
        finally:
            ref_container.close()
        k = 0
        for f in segment_files:
            c = _open_segment_file(f)
            try:
                for packet in c.demux(c.streams.video[0]):
                    if packet.size == 0:
                        continue
                    packet.stream = vout
                    packet.dts = dts[k]
                    out.mux(packet)
                    k += 1
            finally:
                c.close()
        out.close()
        out = None
        if k != plan.frame_count:
            raise OutputError(f"{output}: joined {k} frames, the plan says {plan.frame_count}")
        rng = parse_range(plan.range) if plan.range else None
        return finalize_output(joined, source, out_path, rng)
    except av.error.FFmpegError as exc:
        raise OutputError(f"{output}: cannot join the segments ({getattr(exc, 'strerror', None) or exc})") from None
    finally:
        if out is not None:
            out.close()
        if joined.exists():
            joined.unlink()


def _open_segment_file(f: str | os.PathLike):
    try:
        return av.open(str(f))
    except (av.error.FFmpegError, OSError) as exc:
        raise OutputError(f"{f}: cannot read segment ({getattr(exc, 'strerror', None) or exc})") from None


def _segment_times(segment_files: list, plan: SegmentPlan) -> list[int]:
    """Every segment's packets' presentation times, in decode order, checked against the plan
    and against each other (see `join_segments`): the whole video's, concatenated."""
    ref = None
    times: list[int] = []
    for seg, f in zip(plan.segments, segment_files):
        c = _open_segment_file(f)
        try:
            if not c.streams.video:
                raise OutputError(f"{f}: segment file holds no video")
            s = c.streams.video[0]
            cc = s.codec_context
            this = (cc.name, cc.width, cc.height, cc.pix_fmt, s.time_base)
            if ref is None:
                ref, ref_extradata = this, bytes(cc.extradata or b"")
            elif this != ref:
                raise OutputError(f"{f}: segment encoded differently ({cc.name} {cc.width}x{cc.height} {cc.pix_fmt}, "
                                  f"first segment {ref[0]} {ref[1]}x{ref[2]} {ref[3]})")
            elif bytes(cc.extradata or b"") != ref_extradata:
                raise OutputError(f"{f}: segment codec headers differ from the first segment's "
                                  "(encode all segments with identical settings)")
            pts = [p.pts for p in c.demux(s) if p.size]
        except av.error.FFmpegError as exc:
            raise OutputError(f"{f}: cannot read segment ({getattr(exc, 'strerror', None) or exc})") from None
        finally:
            c.close()
        if any(p is None for p in pts):
            raise OutputError(f"{f}: segment {seg.index} has frames without presentation times")
        if pts and times and min(pts) <= max(times):
            raise OutputError(f"{f}: cannot join: decode times overlap the previous segment "
                              f"(segment {seg.index} starts at pts {min(pts)}, the segments before it end at "
                              f"{max(times)}; a segment written twice or from the wrong frames)")
        if len(pts) != seg.frame_count:
            raise OutputError(f"{f}: segment {seg.index} has {len(pts)} frames, the plan says {seg.frame_count}")
        if len(set(pts)) != len(pts):
            raise OutputError(f"{f}: segment {seg.index} has two frames at one presentation time")
        times += pts
    return times


def _decode_times(pts: list[int]) -> list[int]:
    """Decode times for frames with presentation times `pts` (decode order, distinct): strictly
    increasing, dts[k] <= pts[k] (see `join_segments`)."""
    order = sorted(pts)
    rank = {p: i for i, p in enumerate(order)}
    depth = max([0] + [k - rank[p] for k, p in enumerate(pts)])
    step = order[1] - order[0] if len(order) > 1 else 1
    return [order[k - depth] if k >= depth else order[0] - (depth - k) * step for k in range_(len(pts))]
