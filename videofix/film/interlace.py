"""Interlaced sources (old TV transfers): detection and deinterlacing.

Detection has three cues, read from the first frames of the file:

- the stream's field order (`AVCodecContext.field_order`: tt, bb, tb, bt = interlaced),
- the decoded frames' `interlaced_frame` flag,
- the picture itself: combing. A pixel is combed when it differs in the same direction
  from both lines above and below it (which belong to the other field) by more than a
  threshold; the same test against the lines two above and below (same field) measures the
  texture that would fool it. A frame is combed when the first is well above the second.

Tags without combing are progressive material in an interlaced container (common) and are
left alone; combing without tags (untagged old transfers) is deinterlaced, with the field
order estimated from motion: under top-field-first the bottom field of frame i lies in time
between the top fields of frames i and i+1, so it resembles the next frame's top field more
than the previous frame's.

Deinterlacing is libavfilter's bwdif through PyAV's filter graph, ``mode=send_frame``: one
frame out per frame in, the source pts kept, so no frame is dropped or added.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from videofix.io.picture import Picture
from videofix.io.reader import DecodedFrame

# AVFieldOrder -> (name, interlaced, parity for bwdif). TB = top coded first, bottom
# displayed first; BT the reverse (libavcodec/defs.h).
FIELD_ORDERS = {
    0: ("unknown", None, None),
    1: ("progressive", False, None),
    2: ("tt", True, "tff"),
    3: ("bb", True, "bff"),
    4: ("tb", True, "bff"),
    5: ("bt", True, "tff"),
}
COMB_THRESHOLD = 10  # 8-bit levels; scaled for deeper formats
COMBED_FRACTION = 0.004  # share of pixels combed for a frame to count as combed
COMBED_RATIO = 2.0  # cross-field combing must exceed same-field "combing" by this factor
COMBED_FRAMES = 0.3  # share of probed frames (with motion) that must be combed


def comb_scores(luma: np.ndarray, threshold: float = COMB_THRESHOLD, bits: int = 8) -> tuple[float, float]:
    """(cross-field, same-field) combing of a luma plane (2D uint8/uint16 of `bits`-bit
    samples; `threshold` in 8-bit levels). Each is the share of pixels that differ in the
    same direction, by more than `threshold`, from both neighbours one line (cross) or two
    lines (same field) away."""
    # differences of samples up to 14 bits fit int16 (half the memory traffic of int32)
    y = luma.astype(np.int16 if bits <= 14 and luma.dtype in (np.uint8, np.uint16) else np.int32)
    if y.shape[0] < 5:
        return 0.0, 0.0
    t = float(threshold) * float(1 << max(0, bits - 8))
    c = y[2:-2]
    up1, dn1 = y[1:-3], y[3:-1]
    up2, dn2 = y[:-4], y[4:]

    def combed(up, dn) -> float:
        a, b = c - up, c - dn
        return float(np.mean(((a > t) & (b > t)) | ((a < -t) & (b < -t))))

    return combed(up1, dn1), combed(up2, dn2)


def is_combed(luma: np.ndarray, bits: int = 8) -> bool:
    """Whether one luma plane shows combing (see `comb_scores`)."""
    cross, same = comb_scores(luma, bits=bits)
    return cross > COMBED_FRACTION and cross > COMBED_RATIO * same


def field_order_from_motion(lumas: list[np.ndarray]) -> str | None:
    """"tff" or "bff" estimated from consecutive luma planes (None when there is no motion
    to tell). Compares each frame's bottom field with the top fields of the previous and
    the next frame (fields interpolated to the same lines)."""
    next_closer = prev_closer = 0.0
    for prev, cur, nxt in zip(lumas, lumas[1:], lumas[2:]):
        h = (min(prev.shape[0], cur.shape[0], nxt.shape[0]) // 2) * 2
        if h < 4:
            continue

        def top_at_bottom_lines(p):  # top field (even lines) interpolated to the odd lines
            top = p[:h:2].astype(np.float32)
            return 0.5 * (top[:-1] + top[1:])

        bottom = cur[1:h - 1:2].astype(np.float32)
        d_next = float(np.abs(bottom - top_at_bottom_lines(nxt)).mean())
        d_prev = float(np.abs(bottom - top_at_bottom_lines(prev)).mean())
        next_closer += d_prev - d_next
        prev_closer += d_next - d_prev
    if abs(next_closer) < 1e-3:
        return None
    return "tff" if next_closer > 0 else "bff"


@dataclass
class InterlaceProbe:
    """What the first frames of a file say about interlacing."""

    field_order: str = "unknown"  # the stream's tag
    flagged_frames: int = 0  # frames with interlaced_frame set
    combed_frames: int = 0
    frames: int = 0
    estimated_order: str | None = None  # from motion
    comb: list[float] = field(default_factory=list)  # cross-field comb score per probed frame

    @property
    def tagged(self) -> bool:
        return bool(FIELD_ORDERS.get(_ORDER_CODES.get(self.field_order, 0), (None, None))[1]) or self.flagged_frames > 0

    @property
    def combed(self) -> bool:
        return self.frames > 0 and self.combed_frames >= max(1, COMBED_FRAMES * self.frames)

    def to_dict(self) -> dict:
        return {"field_order": self.field_order, "flagged_frames": self.flagged_frames,
                "combed_frames": self.combed_frames, "probed_frames": self.frames,
                "estimated_order": self.estimated_order}


_ORDER_CODES = {v[0]: k for k, v in FIELD_ORDERS.items()}


def _decoded(container, stream):
    """Decoded frames, skipping packets the decoder refuses (a damaged packet must not stop
    the probe: the reader conceals or repeats that frame and the run goes on)."""
    import av

    try:
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except av.error.FFmpegError as exc:
                if isinstance(exc, MemoryError):
                    raise
        yield from stream.decode(None)
    except av.error.FFmpegError:
        return  # truncated: what was decoded is enough for a probe


def probe_interlace(path, frames: int = 24) -> InterlaceProbe:
    """Read the field-order tag and the first `frames` frames of `path` (PyAV, luma only)."""
    from videofix.io.info import open_input  # a file or an image-sequence spec

    probe = InterlaceProbe()
    lumas = []
    with open_input(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        probe.field_order = FIELD_ORDERS.get(int(stream.codec_context.field_order or 0), ("unknown",))[0]
        for frame in _decoded(container, stream):
            pic = Picture.from_av(frame)
            luma = pic.planes[0] if pic.layout.kind in ("yuv", "gray") else _grey(pic)
            probe.frames += 1
            probe.flagged_frames += int(bool(frame.interlaced_frame))
            cross, same = comb_scores(luma, bits=pic.bit_depth if pic.layout.kind in ("yuv", "gray") else 8)
            probe.comb.append(round(cross, 5))
            if cross > COMBED_FRACTION and cross > COMBED_RATIO * same:
                probe.combed_frames += 1
            lumas.append(luma)
            if probe.frames >= frames:
                break
    probe.estimated_order = field_order_from_motion(lumas)
    return probe


def _grey(picture: Picture) -> np.ndarray:
    rgb = picture.to_rgb()
    return np.rint((0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]) * 255).astype(np.uint8)


@dataclass
class InterlaceDecision:
    """Whether to deinterlace, with which field order, and why (for the report)."""

    deinterlace: bool
    parity: str | None  # "tff" | "bff"
    reason: str
    probe: InterlaceProbe | None = None

    def to_dict(self) -> dict:
        d = {"deinterlaced": self.deinterlace, "parity": self.parity, "reason": self.reason}
        if self.probe is not None:
            d["probe"] = self.probe.to_dict()
        return d


def decide_deinterlace(mode: str, probe: InterlaceProbe | None) -> InterlaceDecision:
    """mode "on" | "off" | "auto" -> `InterlaceDecision`. auto deinterlaces combed pictures
    (tagged or not); tags without combing are reported and left alone."""
    if mode == "off" or probe is None:
        return InterlaceDecision(False, None, "deinterlacing off", probe)
    tag_parity = FIELD_ORDERS.get(_ORDER_CODES.get(probe.field_order, 0), (None, None, None))[2]
    parity = tag_parity or probe.estimated_order or "tff"
    source = "stream field order" if tag_parity else ("motion" if probe.estimated_order else "default")
    if mode == "on":
        return InterlaceDecision(True, parity, f"asked (--deinterlace on); field order {parity} from {source}", probe)
    if probe.combed:
        tags = f"tagged {probe.field_order}" if probe.tagged else "untagged"
        return InterlaceDecision(True, parity, f"combing in {probe.combed_frames} of {probe.frames} probed frames "
                                               f"({tags}); field order {parity} from {source}", probe)
    if probe.tagged:
        return InterlaceDecision(False, None, f"stream tagged interlaced ({probe.field_order}) but the picture shows "
                                              "no combing: left progressive", probe)
    return InterlaceDecision(False, None, "progressive", probe)


class Deinterlacer:
    """bwdif (libavfilter, via `av.filter.Graph`) over a stream of `DecodedFrame`s.

    `run(frames)` yields one deinterlaced `DecodedFrame` per input frame, in order, with
    the input's index, pts, time base and keyframe flag; pictures keep their pixel format
    and colour tags. The filter looks one frame ahead, so one frame is held.
    """

    def __init__(self, parity: str = "tff", filter_name: str = "bwdif"):
        if parity not in ("tff", "bff"):
            raise ValueError(f"parity must be tff or bff, got {parity!r}")
        self.parity = parity
        self.filter_name = filter_name
        self._graph = None
        self._shape = None

    def _build(self, picture: Picture, time_base: Fraction) -> None:
        import av

        graph = av.filter.Graph()
        src = graph.add_buffer(width=picture.width, height=picture.height, format=picture.pix_fmt,
                               time_base=time_base)
        deint = graph.add(self.filter_name, f"mode=send_frame:parity={self.parity}:deint=all")
        sink = graph.add("buffersink")
        src.link_to(deint)
        deint.link_to(sink)
        graph.configure()
        self._graph = graph
        self._shape = (picture.width, picture.height, picture.pix_fmt)

    def _pull(self, out: list) -> None:
        import av

        while True:
            try:
                out.append(self._graph.pull())
            except (av.error.BlockingIOError, av.error.EOFError):
                return

    def run(self, frames: Iterable[DecodedFrame]) -> Iterator[DecodedFrame]:
        held: deque[DecodedFrame] = deque()
        ready: list = []
        for frame in frames:
            pic = frame.picture
            if self._graph is None:
                self._build(pic, frame.time_base)
            elif (pic.width, pic.height, pic.pix_fmt) != self._shape:
                raise ValueError("deinterlace: the picture size or format changed mid-stream")
            av_frame = pic.to_av_frame()
            av_frame.pts = frame.pts
            av_frame.time_base = frame.time_base
            self._graph.push(av_frame)
            held.append(frame)
            self._pull(ready)
            while ready:
                yield self._wrap(held.popleft(), ready.pop(0))
        if self._graph is not None:
            self._graph.push(None)
            self._pull(ready)
            while ready and held:
                yield self._wrap(held.popleft(), ready.pop(0))
        if held or ready:
            raise RuntimeError(f"deinterlace: {len(held)} frames in, {len(ready)} out unmatched")

    @staticmethod
    def _wrap(source: DecodedFrame, av_frame) -> DecodedFrame:
        src = source.picture
        if av_frame.format.name != src.pix_fmt:
            av_frame = av_frame.reformat(format=src.pix_fmt)
        pic = Picture.from_av(av_frame)
        pic = Picture(pic.planes, pic.pix_fmt, pic.width, pic.height, src.colorspace, src.color_range,
                      src.color_primaries, src.color_trc)
        return DecodedFrame(source.index, source.pts, source.time_base, pic, source.key_frame)
