"""Streaming, threaded decoding: `open_video(path, range=None)` -> `VideoReader`.

Frames come out in presentation order as `DecodedFrame`s holding a native-format
`Picture` (no RGB conversion) and the source pts. A truncated or partly corrupt file is
decoded as far as it is readable; `VideoReader.report` says how much was lost.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Iterator

import av

from videofix.errors import InputError
from videofix.io.info import TimeRange, VideoInfo, describe, open_input, parse_range
from videofix.io.picture import Picture
from videofix.io.timeline import Timeline, frame_timeline

log = logging.getLogger("videofix.io")


@dataclass
class DecodedFrame:
    """One decoded frame.

    index: 0-based position in the reader's output (for a segment: the source frame index).
    pts: presentation timestamp in `time_base` units, from the file's `Timeline`
        (`videofix.io.timeline`): strictly increasing, the container's own times where it
        has usable ones (AVI, raw streams: decode order or regenerated from the frame rate).
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
    repeated_frames: int = 0  # frames the decoder could not give, filled with the one before
    concealed_frames: int = 0  # frames decoded from damaged data (the decoder hid the errors)
    notes: list[str] = field(default_factory=list)  # timestamp remarks (see videofix.io.timeline)

    @property
    def complete(self) -> bool:
        return (self.lost_frames == 0 and self.corrupt_packets == 0 and self.read_error is None
                and self.repeated_frames == 0 and self.concealed_frames == 0)

    def report_notes(self, path: str) -> list[str]:
        """One-line notes for a run report: what was lost or repeated, timestamp remarks."""
        return ([] if self.complete else [self.describe(path)]) + list(self.notes)

    def describe(self, path: str) -> str:
        if self.complete:
            return f"{path}: {self.frames} frames"
        parts = [f"{path}: decoded {self.frames}"
                 + (f" of {self.expected_frames}" if self.expected_frames else "") + " frames"]
        if self.lost_frames:
            parts.append(f"about {self.lost_frames} frames ({self.lost_seconds:.2f} s) lost")
        if self.corrupt_packets:
            parts.append(f"{self.corrupt_packets} corrupt packets skipped")
        if self.concealed_frames:
            parts.append(f"{self.concealed_frames} damaged frames concealed by the decoder")
        if self.repeated_frames:
            parts.append(f"{self.repeated_frames} frames could not be decoded and repeat the frame before "
                         "(timing kept)")
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
        self.timeline: Timeline | None = None  # set when iteration starts
        self._errors = 0  # packets that failed to decode since the last placed frame
        self._beyond_noted = False
        self._landed = None

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

    def _av_frames(self, seek_ts: int | None) -> Iterator["av.VideoFrame"]:
        """Decoded av frames from `seek_ts` (keyframe at or before it, in the stream's time
        base) or the start. Corrupt packets are skipped and counted (in `_errors` too, so the
        frame they held is repeated in its place); a read error ends the stream after
        flushing the decoder (what was decoded is kept). `_landed`: (pts, dts) of the first
        packet read after the seek."""
        v = self._stream()
        self._landed = None
        if seek_ts is not None:
            self._container.seek(int(seek_ts), stream=v, backward=True, any_frame=False)
        try:
            for packet in self._container.demux(v):
                if self._landed is None and packet.size:
                    self._landed = (packet.pts, packet.dts)
                try:
                    frames = packet.decode()
                except av.error.FFmpegError as exc:  # damaged packet: the decoder refused it
                    if isinstance(exc, MemoryError):
                        raise
                    self.report.corrupt_packets += 1
                    self._errors += 1
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

    # ---------------------------------------------------------------- timestamps
    def _timeline(self) -> Timeline:
        tl = frame_timeline(self.path)
        self.timeline = tl
        self.info.start_pts = tl.first
        self.info.start_time = float(tl.first * tl.time_base)
        fps = tl.fps
        if fps and (not self.info.avg_fps or not 0.5 < float(self.info.avg_fps / fps) < 2):
            # a header rate that the frames' own times contradict (DV demuxers report 60000 fps)
            self.info.avg_fps = fps
        for note in tl.notes:
            if note not in self.report.notes:
                self.report.notes.append(note)
        return tl

    @staticmethod
    def _pts_at(tl: Timeline, index: int) -> int:
        """Timeline time of frame `index`; past the end (a decoder gave more frames than the
        container has packets) the last frame's duration is repeated."""
        if index < len(tl):
            return tl.pts[index]
        return tl.pts[-1] + (index - len(tl) + 1) * tl.step(len(tl) - 1)

    def _placed(self, frames, tl: Timeline, first: int | None) -> Iterator[tuple[int, object, bool]]:
        """(presentation index, av frame, repeated) for decoded `frames`.

        In containers with real presentation times (`tl.trusted`) a frame goes where its pts
        is in the timeline (`first` None: frames are dropped until one is found, i.e. after a
        seek); frames the decoder did not give (damaged packets, leading pictures missing
        their references) leave a gap filled with the previous frame, repeated. Elsewhere
        frames are counted from `first` (decoders output presentation order) and a packet
        that failed to decode gets the previous frame, repeated, in its place. Frames whose
        pts is unknown or out of order are counted, never dropped or duplicated."""
        nxt = first
        prev = None
        self._errors = 0
        for frame in frames:
            j = tl.index_of(frame.pts)
            if nxt is None:
                if j is None:
                    continue  # before the first frame the timeline knows (after a seek)
                nxt = j
            if not tl.trusted and not (self._errors and j is not None and j > nxt):
                j = None  # counting: the frame's own pts only helps to size a gap after damage
            if j is None or j < nxt:
                j = nxt + (0 if tl.trusted else self._errors)
            self._errors = 0
            if j >= len(tl) and not self._beyond_noted:
                self._beyond_noted = True
                self.report.notes.append(f"{self.path}: the decoder gave more frames than the container lists; "
                                         "the extra ones are timed by the last frame's duration")
            for k in range_(nxt, j):
                yield k, (prev if prev is not None else frame), True
            yield j, frame, False
            prev = frame
            nxt = j + 1
        if nxt is None:
            return  # no frame the timeline knows came out (a seek past the end): the caller retries
        # after damage, frames the decoder never gave (packets that failed after the last
        # frame, pictures that lost their references) are repeats of the last frame: the
        # count and the times of the frames stay the container's
        tail = len(tl) - nxt if self.report.corrupt_packets and self.report.read_error is None else self._errors
        for k in range_(nxt, nxt + (tail if prev is not None else 0)):
            if k >= len(tl):
                break
            yield k, prev, True

    def _decode(self, tl: Timeline, a: int, b: int | None, what: str) -> Iterator[tuple[int, object, bool]]:
        """(index, av frame, repeated) for frames a.. (b exclusive; None = to the end of the
        decode), seeking to the last usable keyframe at or before `a`. If a seek lands late
        (or, counting frames, not on the keyframe) it retries from the keyframe before, then
        from the start."""
        attempts: list[tuple[int, int] | None] = []
        key = tl.key_at_or_before(a) if a > 0 else None
        while key is not None and key[0] > 0 and len(attempts) < 2:
            attempts.append(key)
            key = tl.key_at_or_before(key[0] - 1)
        attempts.append(None)
        placed = head = None
        for n, key in enumerate(attempts):
            if n:
                self._reopen()
                self.report = ReadReport(expected_frames=self.report.expected_frames, notes=list(self.report.notes))
            seek = None if key is None else key[1]
            first = 0 if key is None else (None if tl.trusted else key[0])
            placed = self._placed(self._av_frames(seek), tl, first)
            head = None
            for item in placed:
                if seek is not None and not tl.trusted and self._landed is not None and key[1] not in self._landed:
                    break  # the demuxer did not land on the keyframe: the count would be off
                if item[0] >= a:
                    head = item
                    break
            if head is not None and head[0] == a:
                break
            log.debug("%s: a decode from %s does not give frame %d first; retrying earlier", what, key, a)
        else:
            if head is None and key is None:
                return  # nothing decodable at all: the caller reports it
            raise InputError(f"{self.path}: {what}: cannot decode its first frame (frame {a})")
        yield head
        for item in placed:
            if b is not None and item[0] >= b:
                break
            yield item

    def _emit(self, index: int, tl: Timeline, at: int, frame, repeated: bool) -> DecodedFrame:
        if (frame.width, frame.height) != (self.info.width, self.info.height):
            # two recordings joined into one file (a `cat` of transport streams, a broadcast
            # capture across a format change): one output stream cannot hold both sizes
            raise InputError(f"{self.path}: frame {at} ({tl.seconds(min(at, len(tl) - 1)):.2f} s) is "
                             f"{frame.width}x{frame.height}, the video starts at {self.info.width}x{self.info.height} "
                             "(the picture size changes mid-stream; cut the file where it changes and restore "
                             "each part)")
        # counted here, for the frames given out only (not the ones a seek decodes before them)
        if repeated:
            self.report.repeated_frames += 1
        elif frame.is_corrupt:
            self.report.concealed_frames += 1
        return DecodedFrame(index, self._pts_at(tl, at), tl.time_base, self._picture(frame),
                            bool(frame.key_frame) and not repeated)

    # ---------------------------------------------------------------- iteration
    def __iter__(self) -> Iterator[DecodedFrame]:
        if self._iterated:
            raise RuntimeError("a VideoReader can be iterated once; open the video again")
        self._iterated = True
        self._errors = 0
        self._beyond_noted = False
        if self.segment is not None:
            yield from self._iter_segment()
        else:
            yield from self._iter_range()

    def _range_indices(self, tl: Timeline) -> tuple[int, int]:
        """[a, b): the timeline indices `self.range` selects (seconds from the first frame)."""
        r = self.range
        if r is None:
            return 0, len(tl)
        idx = [i for i in range_(len(tl)) if r.contains(tl.seconds(i))]
        if not idx:
            dur = f"{self.info.duration:.2f} s" if self.info.duration else "unknown length"
            raise InputError(f"{self.path}: range {r} selects no frames (video lasts {dur})")
        return idx[0], idx[-1] + 1

    def _iter_range(self) -> Iterator[DecodedFrame]:
        tl = self._timeline()
        a, b = self._range_indices(tl)
        whole = self.range is None
        count = 0
        for i, frame, repeated in self._decode(tl, a, None if whole else b, f"range {self.range}"):
            yield self._emit(i - a, tl, i, frame, repeated)
            count += 1
        self.report.frames = count
        if count == 0:
            raise InputError(f"{self.path}: no decodable video frames")
        self._check_complete(count, (len(tl) if whole else b) - a, tl, whole, first=a)

    def _check_complete(self, frames: int, expected: int, tl: Timeline, whole: bool, first: int = 0) -> None:
        """Lost frames: fewer than the timeline holds or, for the whole file, than the
        container's header says (a truncated file's packets stop early), plus holes in the
        timeline from frame `first` on (see `Timeline.gap_frames`)."""
        info, rep = self.info, self.report
        fps = float(info.avg_fps) if info.avg_fps else 25.0
        lost, lost_seconds = max(0, expected - frames), 0.0
        if lost:
            lost_seconds = float(lost * tl.step(len(tl) - 1) * tl.time_base)
        elif whole and info.frame_count_exact and frames < info.frame_count:
            lost = info.frame_count - frames
            lost_seconds = lost / fps
        elif whole and info.duration:
            # no exact count (Matroska...): compare the end of the last frame with the duration
            # (durations are the end time in some containers, the span in others: measuring from
            # the stream's zero never cries "lost" for a stream that starts late)
            last = min(frames, len(tl)) - 1
            gap = info.duration - (float(tl.pts[last] * tl.time_base) + 1.0 / fps)
            if gap > 0.5 / fps:  # the duration is the end of the last frame: one frame short shows
                lost_seconds = gap
                lost = int(round(gap * fps))
        # packets the demuxer skipped without a word (a damaged Matroska cluster): holes in
        # a constant-rate timeline
        holes, hole_seconds = tl.gap_frames(first, first + min(frames, expected))
        lost, lost_seconds = lost + holes, lost_seconds + hole_seconds
        rep.expected_frames = max(expected, frames + lost)
        rep.lost_frames, rep.lost_seconds = lost, lost_seconds
        if not rep.complete:
            log.warning(rep.describe(self.path))

    def _iter_segment(self) -> Iterator[DecodedFrame]:
        seg = self.segment
        tl = self._timeline()
        a = tl.index_of(seg.start_pts)
        if a is None:
            raise InputError(f"{self.path}: segment {seg.index}: no frame at pts {seg.start_pts} "
                             "(file changed since planning?)")
        b = a + seg.frame_count
        count = 0
        for i, frame, repeated in self._decode(tl, a, b, f"segment {seg.index}"):
            yield self._emit(seg.start_frame + i - a, tl, i, frame, repeated)
            count += 1
        self.report.frames = count
        if count != seg.frame_count:
            raise InputError(f"{self.path}: segment {seg.index} decoded {count} frames, the plan says "
                             f"{seg.frame_count} (file changed or damaged?)")


range_ = range  # the builtin, shadowed by the `range` parameters


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
