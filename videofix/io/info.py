"""What a video file holds (`VideoInfo`), early validation (`probe`) and `--range` parsing.

`probe(path)` opens the file, checks it has a decodable video stream and describes it;
every problem a user can cause is an `InputError` with one line naming the file.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from videofix.errors import InputError, UsageError
from videofix.io.picture import LAYOUTS, _REPACK, matrix_from_tag, range_from_tag

# container metadata keys written by muxers themselves: never carried over
TECHNICAL_METADATA = {"major_brand", "minor_version", "compatible_brands", "encoder", "ENCODER",
                      "creation_time", "duration", "DURATION"}


@dataclass
class StreamInfo:
    """One stream of the input other than the main video stream.

    `type`: "audio" | "subtitle" | "attachment" | "data" | "video" (extra video streams,
    e.g. cover art). `codec`: FFmpeg codec name or None when FFmpeg does not know it.
    """

    index: int
    type: str
    codec: str | None
    language: str | None = None
    title: str | None = None
    metadata: dict = field(default_factory=dict)


@dataclass
class VideoInfo:
    """Facts about a video file, as plain data.

    Times: `time_base` is the video stream's (pts units); `start_time`, `duration` in
    seconds; `start_pts` the first frame's pts. `frame_count` is exact when
    `frame_count_exact` (container index), otherwise estimated from duration x fps.
    Colour tags are FFmpeg enum values (2 = unspecified); `matrix` / `color_range_name`
    are the names `Picture` uses. `rotation`: display rotation in degrees counter-clockwise
    (what players apply), 0 if untagged. `sar`: sample aspect ratio or None (square/unknown).
    `chapters`: list of {"start": s, "end": s, "title": str|None, "metadata": {...}} in seconds.
    """

    path: str
    container: str
    codec: str
    width: int
    height: int
    pix_fmt: str
    bit_depth: int
    time_base: Fraction
    avg_fps: Fraction | None
    frame_count: int
    frame_count_exact: bool
    duration: float | None
    start_time: float
    start_pts: int
    stream_index: int
    rotation: int = 0
    color_range: int = 0
    colorspace: int = 2
    color_primaries: int = 2
    color_trc: int = 2
    sar: Fraction | None = None
    metadata: dict = field(default_factory=dict)
    stream_metadata: dict = field(default_factory=dict)
    chapters: list = field(default_factory=list)
    streams: list[StreamInfo] = field(default_factory=list)
    size_bytes: int = 0

    @property
    def matrix(self) -> str:
        return matrix_from_tag(self.colorspace, self.width, self.height)

    @property
    def color_range_name(self) -> str:
        return range_from_tag(self.color_range, LAYOUTS.get(self.pix_fmt, LAYOUTS["yuv420p"]))

    @property
    def audio_streams(self) -> list[StreamInfo]:
        return [s for s in self.streams if s.type == "audio"]

    @property
    def subtitle_streams(self) -> list[StreamInfo]:
        return [s for s in self.streams if s.type == "subtitle"]

    def pts_to_seconds(self, pts: int) -> float:
        return float(pts * self.time_base)

    def to_dict(self) -> dict:
        """JSON-serialisable dict (fractions as "num/den" strings)."""
        d = asdict(self)
        d["time_base"] = str(self.time_base)
        d["avg_fps"] = str(self.avg_fps) if self.avg_fps else None
        d["sar"] = str(self.sar) if self.sar else None
        return d


# --------------------------------------------------------------------------- range
@dataclass(frozen=True)
class TimeRange:
    """A part of a video in seconds from its first frame; None = open side. End exclusive.

    Seconds count from the first frame's time on the file's timeline
    (`videofix.io.timeline`), not from the stream's zero: a stream whose first frame is at
    3.2 s has `TimeRange(0, 1)` = its frames at 3.2 <= t < 4.2 s. A frame belongs to the
    range when its own start time is in it (start <= t < end)."""

    start: float | None = None
    end: float | None = None

    def contains(self, t: float) -> bool:
        return (self.start is None or t >= self.start - 1e-9) and (self.end is None or t < self.end - 1e-9)

    @property
    def start_or_zero(self) -> float:
        return self.start or 0.0

    def __str__(self) -> str:
        def fmt(v):
            return "" if v is None else f"{v:g}"
        return f"{fmt(self.start)}:{fmt(self.end)}"


_NUM = r"\d+(?:\.\d*)?|\.\d+"
_TC = re.compile(r"^(\d+):([0-5]?\d):([0-5]?\d(?:\.\d*)?)$")


def _parse_time(text: str) -> float:
    m = _TC.match(text)
    if m:
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    if re.fullmatch(_NUM, text):
        return float(text)
    raise ValueError(text)


def parse_range(text: str) -> TimeRange:
    """Parse `START:END`; each side is seconds ("12.5") or a timecode HH:MM:SS(.mmm),
    counted from the video's first frame whatever its start time (see `TimeRange`); either
    side may be empty ("10:", ":00:01:00"). Raises `UsageError` with one line.

    >>> parse_range("1.5:3")
    TimeRange(start=1.5, end=3.0)
    >>> parse_range("00:01:00:00:01:30.5")
    TimeRange(start=60.0, end=90.5)
    """
    raw = text
    text = text.strip()
    parts = text.split(":")
    candidates: list[tuple[float | None, float | None]] = []
    # a side is 1 token (seconds, or empty) or 3 tokens (timecode)
    for left_tokens in (1, 3):
        right_tokens = len(parts) - left_tokens
        if right_tokens not in (1, 3):
            continue
        left, right = ":".join(parts[:left_tokens]), ":".join(parts[left_tokens:])
        try:
            start = None if left == "" else _parse_time(left)
            end = None if right == "" else _parse_time(right)
        except ValueError:
            continue
        candidates.append((start, end))
    if not candidates:
        raise UsageError(f"bad range {raw!r}: expected START:END with seconds or HH:MM:SS(.mmm), e.g. 10:20.5 or 00:01:00:00:01:30")
    if len(set(candidates)) > 1:
        raise UsageError(f"ambiguous range {raw!r}: write both sides as HH:MM:SS timecodes")
    start, end = candidates[0]
    if start is not None and end is not None and end <= start:
        raise UsageError(f"bad range {raw!r}: end must be after start")
    return TimeRange(start, end)


# --------------------------------------------------------------------------- opening
def _short_av_error(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    msg = msg.split(":")[0] if "avformat_open_input" in msg else msg
    return msg.strip().rstrip(".").lower()


def open_input(path: str | os.PathLike) -> av.container.InputContainer:
    """`av.open` for reading with one-line `InputError`s for every way it can fail.
    An image-sequence spec (`frames/%06d.dpx@24`, see videofix.io.sequence) opens with the
    image2 demuxer."""
    from videofix.io.sequence import is_sequence_pattern, open_sequence

    if is_sequence_pattern(path):
        return open_sequence(path)
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a video file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: permission denied")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file")
    try:
        return av.open(str(p), "r")
    except av.error.InvalidDataError:
        raise InputError(f"{p}: not a video file (invalid data found when processing input)") from None
    except av.error.EOFError:
        raise InputError(f"{p}: no frames (the file ends before any media data: empty or truncated)") from None
    except av.error.FFmpegError as exc:
        raise InputError(f"{p}: cannot open ({_short_av_error(exc)})") from None


def main_video_stream(container, path) -> "av.video.stream.VideoStream":
    """The video stream to restore: the default-disposition one if several, never cover art."""
    candidates = [s for s in container.streams.video
                  if not (int(s.disposition) & int(av.stream.Disposition.attached_pic))]
    if not candidates:
        raise InputError(f"{path}: no video stream")
    for s in candidates:
        if int(s.disposition) & int(av.stream.Disposition.default):
            return s
    return candidates[0]


def _display_rotation(matrix: bytes | None) -> int:
    """FFmpeg display matrix (9 int32, 16.16 fixed point) -> rotation, degrees counter-clockwise."""
    if not matrix or len(matrix) < 36:
        return 0
    import struct

    m = struct.unpack("<9i", matrix[:36])
    s0, s1 = math.hypot(m[0], m[3]), math.hypot(m[1], m[4])
    if s0 == 0 or s1 == 0:
        return 0
    angle = -math.degrees(math.atan2(m[1] / s1, m[0] / s0))
    r = int(round(angle)) % 360
    return r - 360 if r > 180 else r


def stream_rotation(stream) -> int:
    """Rotation tag of a video stream, degrees counter-clockwise (0 if none)."""
    try:
        side = stream.codec_context.coded_side_data or {}
    except AttributeError:
        side = {}
    matrix = side.get("display_matrix") if isinstance(side, dict) else None
    rot = _display_rotation(matrix)
    if rot == 0 and "rotate" in stream.metadata:  # very old muxers wrote a metadata tag
        try:
            rot = -int(stream.metadata["rotate"]) % 360
            rot = rot - 360 if rot > 180 else rot
        except ValueError:
            rot = 0
    return rot


def _chapters(container) -> list[dict]:
    out = []
    for ch in container.chapters():
        tb = Fraction(ch["time_base"].numerator, ch["time_base"].denominator) if ch["time_base"] else Fraction(1)
        md = dict(ch.get("metadata") or {})
        out.append({"start": float(ch["start"] * tb), "end": float(ch["end"] * tb),
                    "title": md.get("title"), "metadata": md})
    return out


def describe(container, path) -> VideoInfo:
    """Build `VideoInfo` from an open input container (no decoding)."""
    v = main_video_stream(container, path)
    cc = v.codec_context
    if cc is None or v.codec_context.codec is None or not cc.name:
        raise InputError(f"{path}: unsupported video codec (FFmpeg has no decoder for it)")
    tb = Fraction(v.time_base.numerator, v.time_base.denominator) if v.time_base else Fraction(1, 90000)
    pix_fmt = cc.pix_fmt or ""
    layout = LAYOUTS.get(pix_fmt) or LAYOUTS.get(_REPACK.get(pix_fmt, ""), None)
    bits = layout.bits if layout else 8
    rate = v.average_rate or v.guessed_rate or v.base_rate
    avg_fps = Fraction(rate.numerator, rate.denominator) if rate and rate.denominator and rate.numerator else None
    tag = v.metadata.get("DURATION") or v.metadata.get("duration")
    if v.duration is not None:
        duration = float(v.duration * tb)
    elif tag and _TC.match(tag.strip()):
        duration = _parse_time(tag.strip())  # Matroska's per-stream DURATION tag
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    else:
        duration = None
    start_pts = v.start_time if v.start_time is not None else 0
    if v.frames and v.frames > 0:
        frame_count, exact = int(v.frames), True
    elif container.format.name == "image2" and v.duration:
        frame_count, exact = int(v.duration), True  # an image sequence: one file per pts unit
    elif duration is not None and avg_fps:
        frame_count, exact = int(round(duration * avg_fps)), False
    else:
        frame_count, exact = 0, False
    sar = v.sample_aspect_ratio
    sar = Fraction(sar.numerator, sar.denominator) if sar and sar.numerator and sar.denominator else None
    streams = []
    for s in container.streams:
        if s.index == v.index:
            continue
        codec = None
        if s.codec_context is not None:
            codec = s.codec_context.name
        elif s.type == "attachment":
            codec = "attachment"
        streams.append(StreamInfo(s.index, s.type, codec, s.metadata.get("language"),
                                  s.metadata.get("title"), dict(s.metadata)))
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    return VideoInfo(
        path=str(path), container=container.format.name, codec=cc.name, width=cc.width,
        height=cc.height, pix_fmt=pix_fmt, bit_depth=bits, time_base=tb, avg_fps=avg_fps,
        frame_count=frame_count, frame_count_exact=exact, duration=duration,
        start_time=float(start_pts * tb), start_pts=int(start_pts), stream_index=v.index,
        rotation=stream_rotation(v), color_range=int(cc.color_range or 0),
        colorspace=int(cc.colorspace if cc.colorspace is not None else 2),
        color_primaries=int(cc.color_primaries if cc.color_primaries is not None else 2),
        color_trc=int(cc.color_trc if cc.color_trc is not None else 2), sar=sar,
        metadata=dict(container.metadata), stream_metadata=dict(v.metadata),
        chapters=_chapters(container), streams=streams, size_bytes=size,
    )


def probe(path: str | os.PathLike) -> VideoInfo:
    """Validate `path` early and describe it.

    Checks: exists, readable, a media file FFmpeg can open, has a video stream whose codec
    FFmpeg can decode, and its first frame decodes. Raises `InputError` (one line) otherwise.
    """
    container = open_input(path)
    try:
        info = describe(container, path)
        v = container.streams[info.stream_index]
        v.thread_type = "AUTO"
        first = None
        try:
            for packet in container.demux(v):
                try:
                    frames = packet.decode()
                except av.error.InvalidDataError:
                    continue
                if frames:
                    first = frames[0]
                    break
        except av.error.FFmpegError as exc:
            if first is None:
                raise InputError(f"{path}: no decodable video frame ({_short_av_error(exc)})") from None
        if first is None:
            raise InputError(f"{path}: the video stream has no frames")
        if not info.pix_fmt:
            info.pix_fmt = first.format.name
        if info.rotation == 0 and getattr(first, "rotation", 0):
            info.rotation = int(first.rotation)
        if first.pts is not None:
            info.start_pts = int(first.pts)
            info.start_time = float(first.pts * info.time_base)
        return info
    finally:
        container.close()
