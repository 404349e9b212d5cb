"""Clip generators and independent readers for tests (PyAV only, small and fast).

`make_clip` writes a real file: H.264/HEVC/FFV1 video (constant or variable frame rate,
B-frames, GOP, open GOP, rotation, colour tags, any pixel format), a sine audio track,
a subtitle stream, container metadata and chapters. The readers below (`decode_frames`,
`decode_audio`, `subtitle_packets`, `video_packets`) use PyAV directly, not videofix, so
tests compare videofix's output against an independent view of the files.

Pixel content comes from `content(frame_index) -> RGB uint8 (H, W, 3)`; the default is a
smooth gradient with a moving square (compresses well, changes every frame).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Sequence

import av
import numpy as np

SUBTITLE_CODEC = {".mp4": "mov_text", ".mov": "mov_text", ".m4v": "mov_text", ".mkv": "subrip"}
_COLORSPACE = {"bt601": 6, "bt709": 1, "bt2020": 9}  # FFmpeg AVColorSpace
_SWS_COLORSPACE = {"bt601": "itu601", "bt709": "itu709", "bt2020": "bt2020"}


@dataclass
class Clip:
    """What `make_clip` wrote. `pts` in `time_base` units, presentation order."""

    path: Path
    width: int
    height: int
    pix_fmt: str
    time_base: Fraction
    pts: list[int]
    sample_rate: int | None = None
    subtitles: list[tuple[float, float, str]] = field(default_factory=list)  # (start s, end s, text)

    @property
    def frames(self) -> int:
        return len(self.pts)

    @property
    def times(self) -> list[Fraction]:
        return [p * self.time_base for p in self.pts]

    @property
    def duration(self) -> float:
        return float((self.pts[-1] - self.pts[0]) * self.time_base) + float(self.frame_step)

    @property
    def frame_step(self) -> Fraction:
        if len(self.pts) < 2:
            return Fraction(1, 25)
        return (self.pts[-1] - self.pts[0]) * self.time_base / (len(self.pts) - 1)


def gradient_content(width: int, height: int, seed: int = 0) -> Callable[[int], np.ndarray]:
    """Default content: a smooth RGB gradient with a bright square moving 2 px per frame."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([
        64 + 120 * xx / max(1, width - 1),
        48 + 140 * yy / max(1, height - 1),
        96 + 60 * np.sin((xx + yy + seed) / 9.0),
    ], axis=-1)

    def content(i: int) -> np.ndarray:
        img = base.copy()
        s = max(4, min(width, height) // 4)
        x0 = (2 * i) % max(1, width - s)
        y0 = (i) % max(1, height - s)
        img[y0:y0 + s, x0:x0 + s] = (230, 200 - (i * 7) % 100, 40)
        return np.clip(img, 0, 255).astype(np.uint8)

    return content


def make_clip(
    path: str | Path,
    frames: int = 24,
    size: tuple[int, int] = (64, 48),
    fps: int | Fraction = 25,
    pts: Sequence[int] | None = None,
    time_base: Fraction | None = None,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
    audio: bool = True,
    subtitles: bool = True,
    rotation: int | None = None,
    bframes: int = 2,
    gop: int = 12,
    open_gop: bool = False,
    content: Callable[[int], np.ndarray] | None = None,
    crf: int = 20,
    colorspace: str = "bt601",
    color_range: str = "tv",
    metadata: dict | None = None,
    chapters: list[tuple[float, float, str]] | None = None,
    audio_codec: str = "aac",
    sample_rate: int = 48000,
    faststart: bool = False,
) -> Clip:
    """Write a test clip and describe it.

    Args:
        size: (width, height); odd sizes are fine with ffv1 or 4:4:4.
        fps / pts: constant rate, or explicit presentation timestamps (VFR) in `time_base`
            units (default time base 1/1000 for VFR, 1/(fps*512) otherwise). `frames` is
            ignored when `pts` is given.
        pix_fmt: encoded pixel format (yuv420p, yuv420p10le, yuv444p, gray...).
        codec: "libx264" | "libx265" | "ffv1" (any PyAV encoder).
        bframes, gop, open_gop: GOP structure (x264/x265); keyframes exactly every `gop` frames.
        content: frame index -> RGB uint8 (H, W, 3); converted with swscale using
            `colorspace` / `color_range`, which are also written as stream tags.
        audio: a 2-channel sine (440 Hz left, 660 Hz right) covering the video's duration.
        subtitles: three cues (mov_text in MP4/MOV, SubRip in Matroska).
        rotation: display rotation, degrees counter-clockwise.
        metadata: container metadata; chapters: [(start s, end s, title)].
        faststart: MP4 index at the front (a truncated copy stays readable).
    """
    path = Path(path)
    width, height = size
    content = content or gradient_content(width, height)
    fps = Fraction(fps)
    if pts is None:
        time_base = time_base or Fraction(1, int(fps * 512) if fps.denominator == 1 else 90000)
        step = 1 / (fps * time_base)
        pts = [int(round(i * step)) for i in range(frames)]
    else:
        time_base = time_base or Fraction(1, 1000)
        pts = [int(p) for p in pts]
        if pts != sorted(pts):
            raise ValueError("pts must increase")
    options = {"movflags": "+faststart"} if faststart and path.suffix in (".mp4", ".mov") else {}
    # bitexact: no random Matroska UIDs or dates, so equal streams give equal files
    out = av.open(str(path), "w", options=options, container_options={"fflags": "+bitexact"})
    vs = out.add_stream(codec, rate=fps if fps.denominator == 1 else None)
    vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
    cc = vs.codec_context
    cc.time_base = time_base
    vs.time_base = time_base
    cc.framerate = fps
    cc.colorspace = _COLORSPACE[colorspace]
    cc.color_range = 2 if color_range == "pc" else 1
    opts: dict[str, str] = {}
    if codec == "libx264":
        # one thread: libx264 with more threads gives run-to-run different streams (see
        # videofix/io/codecs.py X264_THREADS), and test clips must be the same on every run
        opts = {"crf": str(crf), "preset": "ultrafast" if bframes == 0 else "veryfast", "bf": str(bframes),
                "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "threads": "1"}
        if open_gop:
            opts["x264-params"] = "open-gop=1"
    elif codec == "libx265":
        params = [f"keyint={gop}", f"min-keyint={gop}", "scenecut=0", f"bframes={bframes}", "log-level=error"]
        if open_gop:
            params.append("open-gop=1")
        params.append("frame-threads=2:pools=2")  # a fixed count: the same stream on any machine
        opts = {"crf": str(crf), "preset": "ultrafast", "x265-params": ":".join(params)}
    elif codec == "ffv1":
        opts = {"level": "3", "g": "1"}
    cc.options = opts
    if rotation:
        vs.set_display_rotation(rotation)
    astream = None
    if audio:
        astream = out.add_stream(audio_codec, rate=sample_rate)
        astream.layout = "stereo"
    sstream = None
    if subtitles:
        sub_codec = SUBTITLE_CODEC.get(path.suffix.lower())
        if sub_codec is None:
            raise ValueError(f"no subtitle codec for {path.suffix}")
        sstream = out.add_mux_stream(sub_codec)
        sstream.time_base = Fraction(1, 1000)
        sstream.metadata["language"] = "eng"
    if metadata:
        out.metadata.update(metadata)
    if chapters:
        out.set_chapters([{"id": i + 1, "start": int(a * 1000), "end": int(b * 1000),
                           "time_base": Fraction(1, 1000), "metadata": {"title": t}}
                          for i, (a, b, t) in enumerate(chapters)])

    for i, p in enumerate(pts):
        rgb = content(i)
        if rgb.shape != (height, width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"content({i}) gave {rgb.shape} {rgb.dtype}, expected ({height}, {width}, 3) uint8")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format=pix_fmt, dst_colorspace=_SWS_COLORSPACE[colorspace],
                               dst_color_range=2 if color_range == "pc" else 1)
        frame.pts = p
        frame.time_base = time_base
        for packet in vs.encode(frame):
            out.mux(packet)
    for packet in vs.encode(None):
        out.mux(packet)

    clip = Clip(path, width, height, pix_fmt, time_base, list(pts))
    duration = clip.duration
    if astream is not None:
        n = int(round(duration * sample_rate))
        t = np.arange(n, dtype=np.float64) / sample_rate
        samples = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
        fmt = "fltp"
        chunk = 1024
        for start in range(0, n, chunk):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + chunk]), format=fmt, layout="stereo")
            af.sample_rate = sample_rate
            af.pts = start
            af.time_base = Fraction(1, sample_rate)
            for packet in astream.encode(af):
                out.mux(packet)
        for packet in astream.encode(None):
            out.mux(packet)
        clip.sample_rate = sample_rate
    if sstream is not None:
        cues = [(duration * k / 4, duration * (k + 0.8) / 4, f"Line {k}") for k in (0, 1, 2)]
        for start, end, text in cues:
            data = text.encode()
            if SUBTITLE_CODEC[path.suffix.lower()] == "mov_text":  # tx3g samples: 16-bit length + text
                data = len(data).to_bytes(2, "big") + data
            packet = av.Packet(data)
            packet.stream = sstream
            packet.time_base = Fraction(1, 1000)
            packet.pts = packet.dts = int(round(start * 1000))
            packet.duration = int(round((end - start) * 1000))
            out.mux(packet)
        clip.subtitles = cues
    out.close()
    return clip


# --------------------------------------------------------------------------- readers
def decode_frames(path: str | Path) -> list[tuple[Fraction, tuple[np.ndarray, ...], str]]:
    """Every frame of the first video stream: (time in seconds as a Fraction, planes, pix_fmt).
    Planes are copies, native format (uint8/uint16), cropped to the visible size."""
    out = []
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        v.thread_type = "AUTO"
        for f in c.decode(v):
            planes = []
            dt = np.uint16 if f.format.components[0].bits > 8 else np.uint8
            for p in f.planes:
                a = np.frombuffer(p, dt).reshape(-1, p.line_size // np.dtype(dt).itemsize)
                ch = 3 if f.format.name in ("rgb24", "bgr24") else 1
                planes.append(a[: p.height, : p.width * ch].copy())
            out.append((Fraction(f.pts) * Fraction(f.time_base.numerator, f.time_base.denominator),
                        tuple(planes), f.format.name))
    return out


def decode_audio(path: str | Path, index: int = 0) -> np.ndarray:
    """Decoded samples of audio stream `index` as float32 (channels, samples)."""
    chunks = []
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.audio[index]):
            chunks.append(f.to_ndarray().reshape(len(f.layout.channels), -1))
    return np.concatenate(chunks, axis=1).astype(np.float32) if chunks else np.zeros((0, 0), np.float32)


def packets(path: str | Path, kind: str, index: int = 0) -> list[tuple[bytes, Fraction | None, Fraction]]:
    """(payload, pts seconds, duration seconds) of the `index`-th stream of type `kind`."""
    out = []
    with av.open(str(path)) as c:
        s = getattr(c.streams, kind)[index]
        tb = Fraction(s.time_base.numerator, s.time_base.denominator)
        for p in c.demux(s):
            if p.size == 0:
                continue
            out.append((bytes(p), None if p.pts is None else p.pts * tb, (p.duration or 0) * tb))
    return out


def subtitle_packets(path: str | Path, index: int = 0):
    return packets(path, "subtitles", index)


def video_packets(path: str | Path) -> list[tuple[int | None, int | None, bool]]:
    """(pts, dts, keyframe) of every video packet, in file order."""
    with av.open(str(path)) as c:
        return [(p.pts, p.dts, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]


def truncated_copy(src: str | Path, dst: str | Path, fraction: float = 0.6) -> Path:
    """Copy the first `fraction` of the bytes of `src` to `dst` (a download cut short)."""
    data = Path(src).read_bytes()
    Path(dst).write_bytes(data[: int(len(data) * fraction)])
    return Path(dst)


def text_file(path: str | Path, text: str = "this is not a video\n" * 20) -> Path:
    """A text file, typically named *.mp4, for bad-input tests."""
    Path(path).write_text(text)
    return Path(path)


def copy_clip(src: str | Path, dst: str | Path) -> Path:
    shutil.copyfile(src, dst)
    return Path(dst)
