"""Streaming, threaded decoding: `open_video(path, range=None)` -> `VideoReader`.

Frames come out in presentation order as `DecodedFrame`s holding a native-format
`Picture` (no RGB conversion) and the source pts. A truncated or partly corrupt file is
decoded as far as it is readable; `VideoReader.report` says how much was lost.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator

import av

from videofix.errors import InputError
from videofix.io.info import TimeRange, VideoInfo, describe, open_input, parse_range
from videofix.io.picture import Picture

log = logging.getLogger("videofix.io")


@dataclass
class DecodedFrame:
    """One decoded frame.

    index: 0-based position in the reader's output (for a segment: the source frame index).
    pts: presentation timestamp in `time_base` units (the source's own, untouched).
    picture: the decoded picture in the source's native pixel format.
    key_frame: whether the frame was coded as a keyframe.
    """

    index: int
    pts: int
    time_base: Fraction
    picture: Picture
    key_frame: bool

    @property
    def time(self) -> float:
        """Presentation time in seconds (pts x time_base)."""
        return float(self.pts * self.time_base)


@dataclass
class ReadReport:
    """What a finished read got. `lost_frames` / `lost_seconds` estimate what a truncated
    or corrupt file did not yield (0 when complete)."""

    frames: int = 0
    expected_frames: int | None = None
    lost_frames: int = 0
    lost_seconds: float = 0.0
    corrupt_packets: int = 0
    read_error: str | None = None

    @property
    def complete(self) -> bool:
        return self.lost_frames == 0 and self.corrupt_packets == 0 and self.read_error is None

    def describe(self, path: str) -> str:
        if self.complete:
            return f"{path}: {self.frames} frames"
        parts = [f"{path}: decoded {self.frames}"
                 + (f" of {self.expected_frames}" if self.expected_frames else "") + " frames"]
        if self.lost_frames:
            parts.append(f"about {self.lost_frames} frames ({self.lost_seconds:.2f} s) lost")
        if self.corrupt_packets:
            parts.append(f"{self.corrupt_packets} corrupt packets skipped")
        if self.read_error:
            parts.append(f"reading stopped early ({self.read_error})")
        return "; ".join(parts)


class VideoReader:
    """Iterate the frames of a video (or of a range of it, or of one planned segment).

    Use `open_video` / `open_segment` rather than the constructor. Iterable once;
    a context manager that closes the file.
    """

    def __init__(self, path: str | os.PathLike, range: TimeRange | str | None = None, *,
                 segment=None, threads: int = 0):
        self.path = str(path)
        if isinstance(range, str):
            range = parse_range(range)
        self.range: TimeRange | None = range
        self.segment = segment
        self.threads = threads
        self._container = open_input(self.path)
        try:
            self.info: VideoInfo = describe(self._container, self.path)
        except BaseException:
            self._container.close()
            raise
        self.report = ReadReport(expected_frames=self.info.frame_count if self.info.frame_count_exact else None)
        self._iterated = False
        self._first_pts: int | None = None  # first frame's pts in the source, from the first decode

    # ---------------------------------------------------------------- plumbing
    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _reopen(self) -> None:
        self.close()
        self._container = open_input(self.path)

    def _stream(self):
        v = self._container.streams[self.info.stream_index]
        v.thread_type = "AUTO"
        v.codec_context.thread_count = self.threads
        return v

    def _av_frames(self, seek_pts: int | None) -> Iterator["av.VideoFrame"]:
        """Decoded av frames from `seek_pts` (keyframe at or before it) or the start.
        Corrupt packets are skipped and counted; a read error ends the stream after
        flushing the decoder (what was decoded is kept)."""
        v = self._stream()
        if seek_pts is not None:
            self._container.seek(int(seek_pts), stream=v, backward=True, any_frame=False)
        try:
            for packet in self._container.demux(v):
                try:
                    frames = packet.decode()
                except (av.error.InvalidDataError, av.error.UndefinedError):
                    self.report.corrupt_packets += 1
                    continue
                yield from frames
        except av.error.FFmpegError as exc:  # truncated or unreadable past this point
            self.report.read_error = (getattr(exc, "strerror", None) or str(exc)).strip().lower()
            try:
                yield from v.decode(None)
            except av.error.FFmpegError:
                pass

    def _picture(self, frame) -> Picture:
        return Picture.from_av(frame, self.info.colorspace, self.info.color_range)

    def _pts_of(self, frame, last_pts: int | None) -> int:
        if frame.pts is not None:
            return int(frame.pts)
        # no timestamps (raw elementary streams): step by the nominal frame duration
        if last_pts is None:
            return self.info.start_pts
        step = 1
        if self.info.avg_fps:
            step = max(1, round(1 / (self.info.avg_fps * self.info.time_base)))
        return last_pts + step

    # ---------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[DecodedFrame]:
        if self._iterated:
            raise RuntimeError("a VideoReader can be iterated once; open the video again")
        self._iterated = True
        if self.segment is not None:
            yield from self._iter_segment()
        else:
            yield from self._iter_range()

    def _iter_range(self) -> Iterator[DecodedFrame]:
        info, tb, r = self.info, self.info.time_base, self.range
        seek = None
        if r is not None and r.start:
            seek = info.start_pts + int(Fraction(r.start) / tb)
        index, last_pts, last_time = 0, None, None
        for frame in self._av_frames(seek):
            pts = self._pts_of(frame, last_pts)
            last_pts = pts
            t = float((pts - info.start_pts) * tb)
            if r is not None and not r.contains(t):
                if r.end is not None and t >= r.end - 1e-9:
                    break
                continue
            yield DecodedFrame(index, pts, tb, self._picture(frame), bool(frame.key_frame))
            index += 1
            last_time = t
        self.report.frames = index
        if r is not None and index == 0:
            dur = f"{info.duration:.2f} s" if info.duration else "unknown length"
            raise InputError(f"{self.path}: range {r} selects no frames (video lasts {dur})")
        if index == 0:
            raise InputError(f"{self.path}: no decodable video frames")
        if r is None:
            self._check_complete(index, last_time)

    def _check_complete(self, frames: int, last_time: float | None) -> None:
        info, rep = self.info, self.report
        fps = float(info.avg_fps) if info.avg_fps else 25.0
        lost = 0
        lost_seconds = 0.0
        if info.frame_count_exact and frames < info.frame_count:
            lost = info.frame_count - frames
            lost_seconds = lost / fps
        elif info.duration and last_time is not None:
            # no exact count (Matroska...): compare the end of the last frame with the duration
            gap = info.duration - (last_time + 1.0 / fps)
            if gap > 1.5 / fps:
                lost_seconds = gap
                lost = int(round(gap * fps))
        rep.lost_frames, rep.lost_seconds = lost, lost_seconds
        if not rep.complete:
            log.warning(rep.describe(self.path))

    def _iter_segment(self) -> Iterator[DecodedFrame]:
        seg, tb = self.segment, self.info.time_base
        attempts: list[int | None] = [seg.seek_pts]
        if seg.preroll_pts is not None:
            attempts.append(seg.preroll_pts)
        if attempts[-1] is not None:
            attempts.append(None)  # last resort: decode from the very start
        frames = None
        first = None
        for i, seek in enumerate(attempts):
            if i:
                self._reopen()
                self.report = ReadReport(expected_frames=seg.frame_count)
            frames = self._av_frames(seek)
            first = None
            for frame in frames:
                if frame.pts is None:
                    raise InputError(f"{self.path}: frames have no timestamps; cannot cut segments")
                if frame.pts >= seg.start_pts:
                    first = frame
                    break
            if first is not None and first.pts == seg.start_pts:
                break
            log.debug("segment %d: seek to %s landed after its first frame; retrying earlier", seg.index, seek)
        else:
            raise InputError(f"{self.path}: segment {seg.index}: cannot decode its first frame (pts {seg.start_pts})")
        count = 0

        def emit(frame):
            return DecodedFrame(seg.start_frame + count, int(frame.pts), tb, self._picture(frame), bool(frame.key_frame))

        yield emit(first)
        count = 1
        if count < seg.frame_count:
            for frame in frames:
                if frame.pts is None or frame.pts < seg.start_pts:
                    continue
                if seg.end_pts is not None and frame.pts >= seg.end_pts:
                    break
                yield emit(frame)
                count += 1
                if count == seg.frame_count:
                    break
        self.report.frames = count
        if count != seg.frame_count:
            raise InputError(f"{self.path}: segment {seg.index} decoded {count} frames, the plan says "
                             f"{seg.frame_count} (file changed or damaged?)")


def open_video(path: str | os.PathLike, range: TimeRange | str | None = None, *, threads: int = 0) -> VideoReader:
    """Open a video for streaming decode.

    Args:
        path: input file.
        range: a `TimeRange` or "START:END" string (seconds from the first frame, or
            timecodes); frames with START <= t < END are yielded. None = the whole video.
        threads: decoder threads (0 = FFmpeg's automatic choice; frame+slice threading on).

    Returns a `VideoReader`: `.info` (`VideoInfo`), iteration yields `DecodedFrame`s in
    presentation order with native-format pictures; `.report` after iteration.
    Raises `InputError` for unusable input.
    """
    return VideoReader(path, range, threads=threads)
