"""One monotonic timestamp per video frame: `frame_timeline(path) -> Timeline`.

Containers disagree about time. Matroska, MP4/MOV and MPEG transport/program streams store
presentation timestamps; AVI stores only the order frames are decoded in (libavformat
guesses presentation times from it, wrongly around DivX-style packed B-frames: decoded
`frame.pts` then come out 1, 3, 2, 5, 4, ...); raw elementary streams store nothing. Every
part of videofix that numbers or times frames (the reader, `--range`, segment planning, the
Ray runner, the writer) takes the times from one `Timeline`, built from a scan of the video
packets (no decoding), so they agree and the output times always increase:

1. **pts** - the packets' presentation timestamps, sorted, when every packet has one and
   no two are equal (libavformat's best effort: for AVI it reorders the decode-order times
   around B-frames, which keeps the set right even where single frames come out wrong);
2. **dts** - decode timestamps, sorted (decode order), when presentation times are missing
   or repeated;
3. **rate** - regenerated from the nominal frame rate when the container has neither.

Frame *i* in presentation order (the order a decoder outputs frames) has time `pts[i]`.
Whether a decoded frame's own `pts` can be trusted to say *which* frame it is depends on
the container (`trusted`): in AVI and raw streams the reader counts frames instead.
Scans are cached per (path, size, mtime), so the runners' several readers scan once.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from fractions import Fraction

import av

from videofix.errors import InputError

# containers whose packet timestamps are decode order (AVI) or invented by the demuxer
# (raw elementary streams, image files): a decoded frame's pts does not say which frame it is
UNTRUSTED_FORMATS = {"avi", "h264", "hevc", "m4v", "mjpeg", "mpegvideo", "cavsvideo", "vc1", "rawvideo",
                     "h261", "h263", "dirac", "dnxhd", "image2", "image2pipe", "yuv4mpegpipe", "obu", "ivf"}


@dataclass(frozen=True)
class Timeline:
    """Times of every frame of the main video stream, in presentation order.

    pts: strictly increasing ints in `time_base` units, one per frame (len = frame count).
    source: "pts" | "dts" | "rate" (where the times come from, see the module docstring).
    trusted: a decoded frame's `pts` identifies it (False for AVI / raw streams: count).
    reorders: the stream has B-frames (decode order differs from presentation order).
    keys: (presentation index, seek timestamp) of keyframes whose presentation index is
        known: where a decode may start. Empty when it cannot be known without decoding
        (untrusted containers with reordering).
    notes: one-line remarks for the run report (timestamps regenerated, ...).
    """

    pts: tuple[int, ...]
    time_base: Fraction
    source: str
    trusted: bool
    reorders: bool = False
    keys: tuple[tuple[int, int], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    container: str = ""

    def __len__(self) -> int:
        return len(self.pts)

    @property
    def first(self) -> int:
        return self.pts[0]

    def index_of(self, pts: int | None) -> int | None:
        """Presentation index of the frame at `pts` exactly, or None."""
        if pts is None:
            return None
        i = bisect_left(self.pts, int(pts))
        return i if i < len(self.pts) and self.pts[i] == pts else None

    def seconds(self, index: int) -> float:
        """Time of frame `index` in seconds from the first frame (what `--range` measures)."""
        return float((self.pts[index] - self.pts[0]) * self.time_base)

    def step(self, index: int) -> int:
        """Duration of frame `index` in `time_base` units (the last frame: the one before)."""
        if len(self.pts) < 2:
            return 1
        if index + 1 < len(self.pts):
            return self.pts[index + 1] - self.pts[index]
        return self.pts[-1] - self.pts[-2]

    @property
    def fps(self) -> Fraction | None:
        """Frame rate from the median frame duration (None for a single frame)."""
        if len(self.pts) < 2:
            return None
        steps = sorted(b - a for a, b in zip(self.pts, self.pts[1:]))
        return 1 / (steps[len(steps) // 2] * self.time_base)

    def gap_frames(self, a: int = 0, b: int | None = None) -> tuple[int, float]:
        """Frames missing inside frames a..b-1 of a constant-rate stream: a step that is k
        times the usual frame duration (k >= 2) stands for k - 1 frames the file lost (a
        damaged cluster the demuxer skipped). Returns (frames, seconds); (0, 0.0) for a
        variable-rate stream, where a long step is an ordinary frame."""
        pts = self.pts[a:b]
        if len(pts) < 3:
            return 0, 0.0
        steps = [y - x for x, y in zip(pts, pts[1:])]
        usual = max(set(steps), key=steps.count)  # the most common frame duration
        tol = max(1, usual // 10)
        if usual <= 0 or sum(1 for s in steps if abs(s - usual) <= tol) < 0.5 * len(steps):
            return 0, 0.0  # variable rate: long steps are ordinary frames
        missing = 0
        for s in steps:
            k = round(s / usual)
            if k >= 2 and abs(s - k * usual) <= tol:
                missing += k - 1
        return missing, float(missing * usual * self.time_base)

    def key_at_or_before(self, index: int) -> tuple[int, int] | None:
        """The last usable keyframe (presentation index, seek timestamp) at or before `index`."""
        best = None
        for k in self.keys:
            if k[0] <= index:
                best = k
            else:
                break
        return best


_CACHE: dict[tuple, Timeline] = {}
_LOCK = threading.Lock()


def frame_timeline(path: str | os.PathLike) -> Timeline:
    """The `Timeline` of `path`'s main video stream (cached while the file is unchanged).
    Raises `InputError` when the file cannot be read or holds no video packets."""
    from videofix.io.info import open_input

    p = os.fspath(path)
    try:
        st = os.stat(p)
    except OSError:
        st = None
    key = (os.path.realpath(p), st.st_size if st else None, st.st_mtime_ns if st else None)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    container = open_input(p)
    try:
        tl = _scan(container, p)
    finally:
        container.close()
    with _LOCK:
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[key] = tl
    return tl


def _nominal_step(stream, tb: Fraction) -> tuple[int, Fraction]:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = Fraction(rate.numerator, rate.denominator) if rate and rate.numerator and rate.denominator else Fraction(25)
    return max(1, round(1 / (fps * tb))), fps


def _scan(container, path: str) -> Timeline:
    from videofix.io.info import main_video_stream

    v = main_video_stream(container, path)
    tb = Fraction(v.time_base.numerator, v.time_base.denominator) if v.time_base else Fraction(1, 90000)
    fmt = container.format.name or ""
    untrusted_fmt = any(name in UNTRUSTED_FORMATS for name in fmt.split(","))
    rows: list[tuple[int | None, int | None, bool]] = []  # (pts, dts, keyframe) in decode order
    try:
        for packet in container.demux(v):
            if packet.size == 0 or packet.is_discard:
                continue
            rows.append((packet.pts, packet.dts, bool(packet.is_keyframe)))
    except av.error.FFmpegError as exc:
        if not rows:
            raise InputError(f"{path}: cannot read video packets ({getattr(exc, 'strerror', None) or exc})") from None
        # truncated or damaged past this point: the frames before it are what there is
    if not rows:
        raise InputError(f"{path}: the video stream has no frames")
    n = len(rows)
    notes: list[str] = []
    pts = [r[0] for r in rows]
    dts = [r[1] for r in rows]
    reorders = any(a is not None and b is not None and a != b for a, b in zip(pts, dts)) \
        or bool(getattr(v.codec_context, "has_b_frames", 0))
    step, fps = _nominal_step(v, tb)
    if None not in pts and len(set(pts)) == n:
        source, times = "pts", sorted(int(x) for x in pts)
    elif None not in dts and len(set(dts)) == n:
        source, times = "dts", sorted(int(x) for x in dts)
        notes.append(f"{os.path.basename(path)}: the container has no usable presentation times; "
                     "frames timed in decode order")
    else:
        known = [x for x in pts + dts if x is not None]
        start = int(min(known)) if known else 0
        source, times = "rate", [start + i * step for i in range(n)]
        notes.append(f"{os.path.basename(path)}: the container has no usable timestamps; "
                     f"frame times regenerated from the frame rate ({float(fps):.3f} fps)")
    trusted = source == "pts" and not untrusted_fmt
    keys: list[tuple[int, int]] = []
    if trusted:
        # the keyframe's own pts is its presentation time: its index is exact; seek by pts
        for p, _, key in rows:
            if key:
                i = bisect_left(times, int(p))
                keys.append((i, int(p)))
    elif not reorders:
        # decode order is presentation order: the k-th packet is the k-th frame; seek by
        # the packet's own timestamp (AVI: its index entry)
        for k, (p, d, key) in enumerate(rows):
            if key:
                ts = d if d is not None else p
                if ts is not None:
                    keys.append((k, int(ts)))
    # else: an AVI / raw stream with B-frames: where a keyframe lands in presentation order is
    # only known by decoding up to it, so decodes start at the first frame (keys stays empty)
    keys.sort()
    return Timeline(tuple(times), tb, source, trusted, reorders, tuple(keys), tuple(notes), fmt)
