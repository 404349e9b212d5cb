"""Encoding (`VideoWriter`) and the final remux (`finalize_output`, `OutputFile`).

The video is encoded to a temporary file next to the output (`.NAME.videofix-PID-XXXX.video.EXT`);
`finalize_output` then builds the final file under another temporary name by stream copy:
that video, every audio / subtitle stream and attachment of the source (bit-exact packets,
trimmed to a range if one is given), container metadata, chapters, rotation, colour tags
and sample aspect ratio; and renames it onto the output atomically. The input is never
written, and an output that is the input is refused. On failure the temporary files go.
"""

from __future__ import annotations

import heapq
import logging
import os
import re
import secrets
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from videofix.errors import InputError, OutputError
from videofix.io.info import TECHNICAL_METADATA, TimeRange, VideoInfo, open_input, parse_range, probe
from videofix.io.picture import _REPACK, AVCOL_SPC_RGB, LAYOUTS, Picture, default_matrix, matrix_to_tag

log = logging.getLogger("videofix.io")

CODEC_ALIASES = {
    "h264": "libx264", "x264": "libx264", "avc": "libx264", "libx264": "libx264",
    "hevc": "libx265", "h265": "libx265", "x265": "libx265", "libx265": "libx265",
    "ffv1": "ffv1", "lossless": "ffv1",
}
LOSSY_CODECS = {"libx264", "libx265"}
# Reproducible encodes. libx264 in PyAV's build gives run-to-run different streams for the
# same pictures whenever it runs more than one thread, frame or slice threads alike
# (measured on 24 pictures: 2-3 distinct streams in 16 encodes with 4 or 8 threads, also on
# one CPU; 1 stream in 48 encodes with 1 thread), and its "auto" thread count follows the
# CPUs the process may use, so a Ray worker or a `taskset` run gave yet another stream.
# So libx264 runs one thread unless asked otherwise (`--encoder-threads`). x265's frame
# threads are deterministic at a fixed count (1 stream in 18 encodes on 1 and 2 CPUs), so it
# gets a fixed count instead of "auto".
X264_THREADS = 1
X265_THREADS = 8


# --- seq (#13): mastering codecs. Each name is one encoder at one profile; the pixel
# format follows the profile (and, for DNxHR 444, whether the source is RGB).
@dataclass(frozen=True)
class MasteringCodec:
    """A mastering profile: `encoder` (FFmpeg encoder), `options` (its AVOptions), `pix_fmt`
    (what it is fed), `rgb_pix_fmt` (for RGB sources, when the profile codes RGB), `bits`
    (sample depth it keeps), `description` (one line for the docs)."""

    encoder: str
    options: tuple[tuple[str, str], ...]
    pix_fmt: str
    rgb_pix_fmt: str | None
    bits: int
    description: str


MASTERING_CODECS: dict[str, MasteringCodec] = {
    "prores": MasteringCodec("prores_ks", (("profile", "3"), ("vendor", "apl0")), "yuv422p10le", None, 10,
                             "Apple ProRes 422 HQ, 10-bit 4:2:2 (.mov)"),
    "prores_4444": MasteringCodec("prores_ks", (("profile", "4"), ("vendor", "apl0")), "yuv444p10le", None, 10,
                                  "Apple ProRes 4444, 10-bit 4:4:4 (.mov)"),
    "dnxhr_sq": MasteringCodec("dnxhd", (("profile", "dnxhr_sq"),), "yuv422p", None, 8,
                               "Avid DNxHR SQ, 8-bit 4:2:2 (.mov)"),
    "dnxhr_hq": MasteringCodec("dnxhd", (("profile", "dnxhr_hq"),), "yuv422p", None, 8,
                               "Avid DNxHR HQ, 8-bit 4:2:2 (.mov)"),
    "dnxhr_hqx": MasteringCodec("dnxhd", (("profile", "dnxhr_hqx"),), "yuv422p10le", None, 10,
                                "Avid DNxHR HQX, 10-bit 4:2:2 (.mov)"),
    "dnxhr_444": MasteringCodec("dnxhd", (("profile", "dnxhr_444"),), "yuv444p10le", "gbrp10le", 10,
                                "Avid DNxHR 444, 10-bit 4:4:4, RGB sources kept RGB (.mov)"),
}
MASTERING_ALIASES = {"prores_hq": "prores", "prores_422_hq": "prores", "prores4444": "prores_4444"}
DNXHR_MIN_SIZE = (256, 120)  # the dnxhd encoder refuses smaller DNxHR pictures


def mastering_codec(codec: str) -> MasteringCodec | None:
    """The `MasteringCodec` a user codec name means (prores, prores_4444, dnxhr_*), or None."""
    name = codec.lower()
    return MASTERING_CODECS.get(MASTERING_ALIASES.get(name, name))
_STREAM_METADATA_SKIP = TECHNICAL_METADATA | {"handler_name", "vendor_id", "_STATISTICS_TAGS",
                                              "_STATISTICS_WRITING_APP", "_STATISTICS_WRITING_DATE_UTC",
                                              "NUMBER_OF_FRAMES", "NUMBER_OF_BYTES", "BPS"}


def _repack_name(pix_fmt: str) -> str:
    return _REPACK.get(pix_fmt, "")


BITEXACT = {"fflags": "+bitexact"}  # container options of every file videofix writes


def resolve_codec(codec: str) -> str:
    """User codec name -> FFmpeg encoder: h264/x264 -> libx264, hevc/h265 -> libx265,
    ffv1/lossless -> ffv1. Raises `OutputError` for anything else."""
    name = CODEC_ALIASES.get(codec.lower())
    if name is None:
        master = mastering_codec(codec)
        if master is not None:
            return master.encoder
        raise OutputError(f"unknown codec {codec!r} (choose h264, hevc, ffv1, "
                          f"{', '.join(MASTERING_CODECS)})")
    return name


# libx265 (the build PyAV bundles) corrupts its heap on very small 4:4:4 pictures (seen at
# 33x25, 34x26, 35x27; 40x30 and up encode), so tiny pictures are refused with a clear line.
X265_MIN_SIDE = 40


def check_codec_size(codec: str, width: int, height: int, output) -> None:
    """Refuse sizes an encoder is known to crash on (one-line `OutputError`)."""
    if codec == "libx265" and width < X265_MIN_SIDE and height < X265_MIN_SIDE:
        raise OutputError(f"{output}: libx265 cannot encode {width}x{height} pictures (both sides under "
                          f"{X265_MIN_SIDE} px); use --codec libx264 or ffv1")
    if codec == "dnxhd" and (width < DNXHR_MIN_SIZE[0] or height < DNXHR_MIN_SIZE[1]):
        raise OutputError(f"{output}: DNxHR needs pictures of at least {DNXHR_MIN_SIZE[0]}x{DNXHR_MIN_SIZE[1]}, "
                          f"this one is {width}x{height}; use --codec prores or ffv1")


def _even_size_needed(codec: str, pix_fmt: str, width: int, height: int) -> bool:
    lay = LAYOUTS.get(pix_fmt)
    if codec not in LOSSY_CODECS or lay is None or lay.kind != "yuv":
        return False
    return bool((width % (1 << lay.log2_chroma_w)) or (height % (1 << lay.log2_chroma_h)))


def choose_pix_fmt(codec: str, source_pix_fmt: str, width: int, height: int,
                   requested: str | None = None) -> str:
    """Pixel format the encoder gets: the request, else the source's; moved to the closest
    format the encoder supports. Odd sizes with subsampled chroma go to 4:4:4 of the same
    depth for H.264/HEVC (they cannot code them): no crop, no padding. A mastering codec
    (`MASTERING_CODECS`) is fed its profile's format (RGB sources: the profile's RGB format
    when it has one); a request it cannot code is an `OutputError`."""
    master = mastering_codec(codec)
    if master is not None:
        lay = LAYOUTS.get(source_pix_fmt)
        allowed = [master.pix_fmt] + ([master.rgb_pix_fmt] if master.rgb_pix_fmt else [])
        if requested:
            if requested not in allowed:
                raise OutputError(f"--codec {codec} codes {' or '.join(allowed)}, not {requested}")
            return requested
        if master.rgb_pix_fmt and lay is not None and lay.kind in ("rgb", "bgr", "gbr"):
            return master.rgb_pix_fmt
        if lay is not None and lay.bits > master.bits:
            log.warning("--codec %s keeps %d bits; the source has %d (dnxhr_hqx, dnxhr_444 and prores keep 10)",
                        codec, master.bits, lay.bits)
        return master.pix_fmt
    codec = resolve_codec(codec)
    supported = [f.name for f in (av.Codec(codec, "w").video_formats or [])]
    want = requested or source_pix_fmt
    lay = LAYOUTS.get(want)
    if lay is None:  # nv12, p010le...: their planar twin
        from videofix.io.picture import _REPACK
        want = _REPACK.get(want, "yuv420p")
        lay = LAYOUTS.get(want, LAYOUTS["yuv420p"])
    if _even_size_needed(codec, want, width, height):
        if lay.bits > 8:
            want = f"yuv444p{lay.bits}le"
        else:
            want = "yuvj444p" if lay.full_range else "yuv444p"
        log.info("odd frame size %dx%d: encoding %s (4:2:0/4:2:2 need even sizes)", width, height, want)
    if want in supported:
        return want
    if lay.kind in ("rgb", "bgr", "gbr"):
        for cand in (["gbrp10le"] if lay.bits > 8 else []) + ["gbrp", "bgr0", "yuv444p10le" if lay.bits > 8 else "yuv444p"]:
            if cand in supported:
                return cand
    if lay.kind == "gray":
        for cand in ("gray10le" if lay.bits > 8 else "gray", "yuv420p"):
            if cand in supported:
                return cand
    for cand in (want.replace("yuvj", "yuv"), "yuv420p10le" if lay.bits > 8 else "yuv420p", "yuv420p"):
        if cand in supported:
            return cand
    return supported[0]


def temp_path_for(output: str | os.PathLike, tag: str) -> Path:
    """Hidden temporary path next to `output`, same extension (so the same container)."""
    out = Path(output)
    return out.with_name(f".{out.stem}.videofix-{os.getpid()}-{secrets.token_hex(3)}.{tag}{out.suffix}")


def refuse_same_path(source: str | os.PathLike, output: str | os.PathLike) -> None:
    """`OutputError` if `output` is `source` (same path, or same file through a link)."""
    src, out = Path(source), Path(output)
    same = src.resolve() == out.resolve()
    if not same and src.exists() and out.exists():
        try:
            same = os.path.samefile(src, out)
        except OSError:
            same = False
    if same:
        raise OutputError(f"{out}: the output is the input file; choose another output path")


def check_output(info: VideoInfo, output: str | os.PathLike, codec: str = "libx264") -> None:
    """Fail fast, before any decoding: the output is not the input, its folder is writable,
    its container is known and can hold the video codec and every audio/subtitle stream of
    the source (stream copy). Raises `OutputError` with one line. An image-sequence pattern
    (`out/%06d.dpx`) is checked by `videofix.io.sequence.check_sequence_output`."""
    from videofix.io.sequence import check_sequence_output, is_sequence_pattern

    if is_sequence_pattern(output):
        check_sequence_output(info, output)
        return
    out = Path(output)
    refuse_same_path(info.path, out)
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"{out}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{out}: folder {parent} is not writable")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory")
    codec = resolve_codec(codec)
    check_codec_size(codec, info.width, info.height, out)
    dry = temp_path_for(out, "check")
    try:
        try:
            container = av.open(str(dry), "w")
        except (ValueError, av.error.FFmpegError):
            raise OutputError(f"{out}: unknown output container (use .mp4, .mkv or .mov)") from None
        try:
            fmt = container.format.name
            try:
                container.add_stream(codec)
            except (ValueError, av.error.FFmpegError):
                hint = ".mov" if codec in ("prores_ks", "dnxhd") else ".mkv" + (" for ffv1" if codec == "ffv1" else "")
                raise OutputError(f"{out}: the {fmt} container cannot hold {codec} video (use {hint})") from None
            src = open_input(info.path)
            try:
                for s in src.streams:
                    if s.type not in ("audio", "subtitle") or s.index == info.stream_index:
                        continue
                    try:
                        container.add_stream_from_template(s)
                    except (ValueError, av.error.FFmpegError):
                        name = s.codec_context.name if s.codec_context else "unknown"
                        raise OutputError(f"{out}: the {fmt} container cannot hold the source's {name} "
                                          f"{s.type} stream #{s.index} (use .mkv)") from None
            finally:
                src.close()
        finally:
            container.close()
    finally:
        if dry.exists():
            dry.unlink()


def _frac(tb) -> Fraction:
    return Fraction(tb.numerator, tb.denominator)


class VideoWriter:
    """Encode pictures, with their source pts, to a temporary video-only file.

    Args:
        path: the final output path (the temporary file sits next to it, same extension).
        info: the source's `VideoInfo` (time base, fps, colour tags, SAR, rotation).
        codec: "libx264" (default; also h264), "libx265" (hevc), "ffv1" (lossless; .mkv).
        crf, preset: quality settings for libx264 / libx265 (ignored for ffv1).
        pix_fmt: encoder pixel format; None = the source's (see `choose_pix_fmt`).
        options: extra encoder options (FFmpeg AVOptions, strings).
        threads: encoder threads; 0 = the reproducible default (libx264: 1 thread, libx265:
            8 frame threads; see X264_THREADS). More libx264 threads are faster but the
            stream then varies from run to run.

    `write(picture, pts)` takes a `Picture` of the source size and its pts in
    `info.time_base`; pts must increase. `close()` flushes and returns the temporary path
    (for `finalize_output` / `join_segments`); `commit()` renames it onto `path` instead;
    `abort()` deletes it. Also a context manager (aborts on error, else closes).
    """

    def __init__(self, path: str | os.PathLike, info: VideoInfo, codec: str = "libx264", crf: int = 18,
                 preset: str = "medium", pix_fmt: str | None = None, *, options: dict | None = None,
                 threads: int = 0):
        self.output = Path(path)
        refuse_same_path(info.path, self.output)
        self.info = info
        self.codec = resolve_codec(codec)
        self.mastering = mastering_codec(codec)
        check_codec_size(self.codec, info.width, info.height, self.output)
        self.pix_fmt = choose_pix_fmt(codec if self.mastering else self.codec, info.pix_fmt, info.width,
                                      info.height, pix_fmt)
        self.temp_path = temp_path_for(self.output, "video")
        self.frames_written = 0
        self._last_pts: int | None = None
        self._closed = False
        try:
            self._container = av.open(str(self.temp_path), "w")
        except (ValueError, av.error.FFmpegError) as exc:
            raise OutputError(f"{self.output}: cannot create output ({exc})") from None
        try:
            self._stream = self._container.add_stream(self.codec)
        except (ValueError, av.error.FFmpegError):
            self._container.close()
            raise OutputError(f"{self.output}: the {self._container.format.name} container cannot hold "
                              f"{self.codec} video (use .mkv)") from None
        s, cc = self._stream, self._stream.codec_context
        s.width, s.height, s.pix_fmt = info.width, info.height, self.pix_fmt
        cc.time_base = info.time_base  # keep source pts exactly (VFR stays VFR)
        s.time_base = info.time_base
        if info.avg_fps:
            cc.framerate = info.avg_fps
        cc.thread_count = threads
        lay = LAYOUTS.get(self.pix_fmt)
        if lay is not None and lay.kind in ("rgb", "bgr", "gbr") or self.pix_fmt in ("bgr0", "rgb0"):
            cc.colorspace = AVCOL_SPC_RGB
            cc.color_range = 2
        else:
            cc.colorspace = info.colorspace
            cc.color_range = info.color_range if info.color_range else 1
        # an RGB source (DPX/TIFF/PNG scans...) coded as YUV: the size's usual matrix, TV
        # range, written into the stream and used by the conversion (not swscale's 601 default)
        self._yuv_from_rgb: tuple[int, int] | None = None
        src_lay = LAYOUTS.get(info.pix_fmt) or LAYOUTS.get(_repack_name(info.pix_fmt))
        if src_lay is not None and src_lay.kind in ("rgb", "bgr", "gbr") and lay is not None and lay.kind == "yuv":
            matrix = default_matrix(info.width, info.height)
            self._yuv_from_rgb = (matrix_to_tag(matrix), 1)
            cc.colorspace, cc.color_range = self._yuv_from_rgb
        cc.color_primaries = info.color_primaries
        cc.color_trc = info.color_trc
        if info.sar:
            cc.sample_aspect_ratio = info.sar
        if info.rotation:
            s.set_display_rotation(info.rotation)
        opts: dict[str, str] = {}
        if self.codec == "libx264":
            opts = {"crf": str(crf), "preset": preset, "threads": str(threads or X264_THREADS)}
        elif self.codec == "libx265":
            opts = {"crf": str(crf), "preset": preset,
                    "x265-params": f"log-level=error:frame-threads={min(threads or X265_THREADS, 16)}:"
                                   f"pools={threads or X265_THREADS}"}
        elif self.codec == "ffv1":
            opts = {"level": "3", "g": "1", "slicecrc": "1"}
        elif self.mastering is not None:
            opts = dict(self.mastering.options)  # intra-only profiles: no crf, no preset
        opts.update({k: str(v) for k, v in (options or {}).items()})
        cc.options = opts

    def write(self, picture: Picture, pts: int) -> None:
        """Encode one picture (native format, source size) at `pts` (units of info.time_base)."""
        if self._closed:
            raise RuntimeError("VideoWriter is closed")
        if (picture.width, picture.height) != (self.info.width, self.info.height):
            raise ValueError(f"picture is {picture.width}x{picture.height}, the video is "
                             f"{self.info.width}x{self.info.height}")
        pts = int(pts)
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts must increase: {pts} after {self._last_pts}")
        frame = picture.to_av_frame()
        if frame.format.name != self.pix_fmt:
            if self._yuv_from_rgb is not None and picture.layout.kind in ("rgb", "bgr", "gbr"):
                frame = frame.reformat(format=self.pix_fmt, dst_colorspace=self._yuv_from_rgb[0],
                                       dst_color_range=self._yuv_from_rgb[1])
            else:
                frame = frame.reformat(format=self.pix_fmt)
        frame.pts = pts
        frame.time_base = self.info.time_base
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except av.error.FFmpegError as exc:
            raise OutputError(f"{self.output}: encoding failed ({exc})") from None
        self._last_pts = pts
        self.frames_written += 1

    def close(self) -> Path:
        """Flush the encoder, close the file; returns the temporary video path."""
        if not self._closed:
            self._closed = True
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
                self._container.close()
            except av.error.FFmpegError as exc:
                self.abort()
                raise OutputError(f"{self.output}: encoding failed ({exc})") from None
        return self.temp_path

    def commit(self) -> Path:
        """Close and atomically rename the video-only file onto `path` (for segment files)."""
        temp = self.close()
        os.replace(temp, self.output)
        return self.output

    def abort(self) -> None:
        """Stop and delete the temporary file (the output path is never touched)."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - cleanup must not mask the first error
                pass
        if self.temp_path.exists():
            self.temp_path.unlink()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


# --------------------------------------------------------------------------- remux
def _packet_time(packet) -> Fraction | None:
    ts = packet.dts if packet.dts is not None else packet.pts
    return None if ts is None else ts * _frac(packet.time_base)


def _ordered(packets: Iterator, stream_order: int) -> Iterator[tuple[Fraction, int, int, object]]:
    """(time, stream order, sequence, packet) for heap-merging by decode time."""
    last = Fraction(-10**9)
    for seq, packet in enumerate(packets):
        t = _packet_time(packet)
        if t is None:
            t = last
        last = t
        yield (t, stream_order, seq, packet)


def _real_packets(container, *streams) -> Iterator:
    for packet in container.demux(*streams):
        if packet.size == 0:  # demuxer flush packets
            continue
        yield packet


def _clean_metadata(md: dict) -> dict:
    return {k: v for k, v in md.items() if k not in _STREAM_METADATA_SKIP and not k.startswith("DURATION")}


# --- seq (#13): timecode and reel name
_TIMECODE = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


def _timecode_base(fps: Fraction) -> tuple[int, int]:
    """(nominal frames per second, frames dropped per minute) of a timecode at `fps`:
    23.976 counts as 24, 29.97 as 30 (drop-frame drops 2), 59.94 as 60 (drops 4)."""
    nominal = max(1, int(round(float(fps))))
    return nominal, (nominal // 15 if fps.denominator == 1001 and nominal % 30 == 0 else 0)


def timecode_to_frames(tc: str, fps: Fraction) -> int | None:
    """SMPTE timecode "HH:MM:SS:FF" (";" = drop-frame) -> frame count from 00:00:00:00;
    None when `tc` is not a timecode."""
    m = _TIMECODE.match(tc.strip())
    if m is None:
        return None
    hh, mm, ss, sep, ff = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4), int(m.group(5))
    nominal, drop = _timecode_base(fps)
    frames = (hh * 3600 + mm * 60 + ss) * nominal + ff
    if sep in ";," and drop:
        minutes = hh * 60 + mm
        frames -= drop * (minutes - minutes // 10)
    return frames


def frames_to_timecode(frames: int, fps: Fraction, drop_frame: bool = False) -> str:
    """Frame count -> SMPTE timecode at `fps` ("HH:MM:SS:FF"; "HH:MM:SS;FF" drop-frame),
    wrapping at 24 hours."""
    nominal, drop = _timecode_base(fps)
    if drop_frame and drop:
        per10 = nominal * 600 - 9 * drop
        per1 = nominal * 60 - drop
        d, m = divmod(frames, per10)
        frames += 9 * drop * d + (drop * ((m - drop) // per1) if m > drop else 0)
    frames %= nominal * 86400
    ff = frames % nominal
    secs = frames // nominal
    sep = ";" if drop_frame and drop else ":"
    return f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}{sep}{ff:02d}"


def source_timecode(src, info: VideoInfo) -> tuple[str | None, str | None]:
    """(timecode of the source's first frame, reel name) of an open source container, from
    the video stream's tags, a MOV `tmcd` (data) track, the container's tags, or for a DPX
    sequence the first file's header. (None, None) when it has none."""
    dicts = [dict(src.streams[info.stream_index].metadata)]
    dicts += [dict(s.metadata) for s in src.streams if s.type == "data"]
    dicts.append(dict(src.metadata))
    tc = reel = None
    for d in dicts:
        low = {k.lower(): v for k, v in d.items()}
        tc = tc or low.get("timecode")
        reel = reel or low.get("reel_name")
    if tc is None:
        from videofix.io.sequence import sequence_timecode

        tc = sequence_timecode(info.path)
    return tc, reel


def carry_timecode(src, info: VideoInfo, vout, out, offset_seconds) -> None:
    """Tag the output video stream with the source's timecode (moved on by `offset_seconds`,
    the output's first frame in seconds from the source's first frame) and reel name; the
    MOV muxer writes them as a `tmcd` track, Matroska as tags."""
    tc, reel = source_timecode(src, info)
    for k in [k for k in vout.metadata if k.lower() in ("timecode", "reel_name")]:
        del vout.metadata[k]
    if tc is not None and info.avg_fps:
        start = timecode_to_frames(tc, info.avg_fps)
        if start is not None:
            shift = int(round(Fraction(offset_seconds) * info.avg_fps))
            tc = frames_to_timecode(start + shift, info.avg_fps, drop_frame=";" in tc or "," in tc)
        vout.metadata["timecode"] = tc
        if vout.codec_context is not None and not vout.codec_context.framerate:
            vout.codec_context.framerate = info.avg_fps  # the MOV muxer counts tmcd frames at this rate
        for k in [k for k in out.metadata if k.lower() == "timecode"]:
            out.metadata[k] = tc
    if reel:
        vout.metadata["reel_name"] = reel


def finalize_output(video_path: str | os.PathLike, source: str | os.PathLike | VideoInfo,
                    output: str | os.PathLike, range: TimeRange | str | None = None, *,
                    remove_video: bool = True) -> Path:
    """Mux the encoded video with the source's other streams and rename onto `output`.

    Args:
        video_path: video-only file from `VideoWriter.close()` / `join_segments`, same container
            type as `output`, frames at source pts.
        source: the input file (or its `VideoInfo`).
        output: final path; written under a temporary name and renamed atomically.
        range: the `TimeRange` the video was restricted to (None = whole file). Audio and
            subtitle packets are kept from the first video frame's time to the range end, and
            every stream is shifted so the output starts at 0.

    Carries over by stream copy (packets bit-exact): every audio and subtitle stream, Matroska
    attachments (when the output can hold them); and container metadata, chapters,
    per-stream language/title, rotation, colour tags and SAR. Returns the output path.
    """
    info = source if isinstance(source, VideoInfo) else probe(source)
    if isinstance(range, str):
        range = parse_range(range)
    out_path = Path(output)
    refuse_same_path(info.path, out_path)
    part = temp_path_for(out_path, "part")
    video_in = src = out = None
    try:
        video_in = av.open(str(video_path))
        vin = video_in.streams.video[0]
        src = open_input(info.path)
        # bitexact: no random Matroska UIDs, no date or muxer version: the same input and
        # settings give the same bytes
        out = av.open(str(part), "w", container_options=BITEXACT)
        vout = out.add_stream_from_template(vin)
        if vin.codec_context is not None and vin.codec_context.name == "prores" and vin.codec_tag.strip("\x00"):
            # the MOV tag names the ProRes profile (apch = 422 HQ, ap4h = 4444); a template copy
            # clears it and the muxer would then label every profile 422 HQ
            vout.codec_tag = vin.codec_tag
        if info.sar and vout.codec_context is not None:
            vout.codec_context.sample_aspect_ratio = info.sar
        src_video = src.streams[info.stream_index]
        vout.metadata.update(_clean_metadata(dict(src_video.metadata)))
        side = vin.codec_context.coded_side_data if vin.codec_context is not None else {}
        if info.rotation and not (isinstance(side, dict) and side.get("display_matrix")):
            vout.set_display_rotation(info.rotation)

        # time window of the output, in source seconds
        offset = Fraction(0)
        if range is not None:
            first = None
            for packet in _real_packets(video_in, vin):
                if packet.pts is not None:
                    t = packet.pts * _frac(packet.time_base)
                    first = t if first is None else min(first, t)
            if first is None:
                raise OutputError(f"{video_path}: encoded video has no frames")
            offset = first
            video_in.seek(0)
        end = None
        if range is not None and range.end is not None:
            # --range counts from the first frame (the timeline's, as the reader's), whatever
            # the stream's start time is
            from videofix.io.timeline import frame_timeline

            end = Fraction(frame_timeline(info.path).first) * info.time_base + Fraction(range.end)

        copied = []  # (source stream, output stream)
        for s in src.streams:
            if s.index == info.stream_index:
                continue
            if s.type in ("audio", "subtitle"):
                try:
                    o = out.add_stream_from_template(s)
                except (ValueError, av.error.FFmpegError):
                    name = s.codec_context.name if s.codec_context else "unknown"
                    raise OutputError(f"{out_path}: the {out.format.name} container cannot hold the source's "
                                      f"{name} {s.type} stream #{s.index} (use .mkv)") from None
                o.metadata.update(_clean_metadata(dict(s.metadata)))
                try:
                    o.disposition = s.disposition
                except (AttributeError, TypeError, ValueError):
                    pass
                copied.append((s, o))
            elif s.type == "attachment":
                data = getattr(s, "data", None)
                name = s.metadata.get("filename") or getattr(s, "name", None) or f"attachment{s.index}"
                mimetype = getattr(s, "mimetype", None) or s.metadata.get("mimetype") or "application/octet-stream"
                if data:
                    try:
                        out.add_attachment(name, mimetype, bytes(data))
                    except (ValueError, av.error.FFmpegError, NotImplementedError):
                        log.warning("%s: the %s container cannot hold attachment %s; dropped",
                                    out_path, out.format.name, name)
            elif s.type == "video":
                log.warning("%s: extra video stream #%d (%s) not carried over", out_path, s.index,
                            s.codec_context.name if s.codec_context else "?")

        out.metadata.update({k: v for k, v in info.metadata.items() if k not in TECHNICAL_METADATA})
        carry_timecode(src, info, vout, out, offset - Fraction(info.start_pts) * info.time_base if range else 0)
        chapters = []
        for ch in info.chapters:
            s0 = Fraction(ch["start"]).limit_denominator(10**6)
            s1 = Fraction(ch["end"]).limit_denominator(10**6)
            if range is not None:
                s0, s1 = s0 - offset, s1 - offset
                if end is not None:
                    s1 = min(s1, end - offset)
                if s1 <= 0:
                    continue
                s0 = max(s0, Fraction(0))
            if s1 <= s0:
                continue
            chapters.append({"id": len(chapters) + 1, "start": int(s0 * 10**6), "end": int(s1 * 10**6),
                             "time_base": Fraction(1, 10**6), "metadata": dict(ch.get("metadata") or {})})
        if chapters:
            out.set_chapters(chapters)

        out_stream_of = {s.index: o for s, o in copied}

        def video_packets():
            for packet in _real_packets(video_in, vin):
                if offset:
                    shift = round(offset / _frac(packet.time_base))
                    if packet.pts is not None:
                        packet.pts -= shift
                    if packet.dts is not None:
                        packet.dts -= shift
                packet.stream = vout
                yield packet

        def other_packets():
            if not copied:
                return
            for packet in _real_packets(src, *[s for s, _ in copied]):
                if packet.stream.type == "subtitle" and bytes(packet) == b"\x00\x00" \
                        and packet.stream.codec_context is not None and packet.stream.codec_context.name == "mov_text":
                    continue  # MP4 gap fillers: the muxer writes its own, copying them doubles them
                tb = _frac(packet.time_base)
                ts = packet.pts if packet.pts is not None else packet.dts
                if range is not None and ts is not None:
                    t = ts * tb
                    dur = (packet.duration or 0) * tb
                    if end is not None and t >= end:
                        continue
                    if packet.stream.type == "subtitle":
                        if t + dur <= offset:
                            continue
                        if t < offset:  # a subtitle already on screen at the cut: start it at 0
                            packet.duration = int((t + dur - offset) / tb)
                            t = offset
                            packet.pts = packet.dts = int(offset / tb)
                    elif t < offset:
                        continue
                    shift = round(offset / tb)
                    if packet.pts is not None:
                        packet.pts -= shift
                    if packet.dts is not None:
                        packet.dts -= shift
                packet.stream = out_stream_of[packet.stream.index]
                yield packet

        for _, _, _, packet in heapq.merge(_ordered(video_packets(), 0), _ordered(other_packets(), 1)):
            out.mux(packet)
        out.close()
        out = None
        video_in.close()
        video_in = None
        os.replace(part, out_path)
    except (InputError, OutputError):
        raise
    except av.error.FFmpegError as exc:
        raise OutputError(f"{out_path}: cannot write ({getattr(exc, 'strerror', None) or exc})") from None
    finally:
        for c in (out, video_in, src):
            if c is not None:
                try:
                    c.close()
                except Exception:  # noqa: BLE001
                    pass
        if part.exists():
            part.unlink()
    if remove_video and Path(video_path).exists():
        Path(video_path).unlink()
    return out_path


class OutputFile:
    """Context manager tying a `VideoWriter` to `finalize_output`.

    >>> with open_video(src) as reader, OutputFile(src, "out.mp4", reader.info) as out:
    ...     for f in reader:
    ...         out.write(f.picture, f.pts)

    Checks the output up front (`check_output`). On a clean exit the output appears
    atomically; on an exception nothing appears under the output name.

    An output pattern such as `out/%06d.dpx` writes an image sequence instead
    (`videofix.io.sequence.SequenceWriter`: same numbering as a sequence source, unchanged
    frames byte-copied; `codec`, `crf`, `preset` do not apply).
    """

    def __init__(self, source: str | os.PathLike, output: str | os.PathLike, info: VideoInfo | None = None,
                 codec: str = "libx264", crf: int = 18, preset: str = "medium", pix_fmt: str | None = None,
                 range: TimeRange | str | None = None, *, options: dict | None = None, threads: int = 0):
        from videofix.io.sequence import SequenceWriter, is_sequence_pattern

        self.info = info or probe(source)
        self.output = Path(output)
        self.range = parse_range(range) if isinstance(range, str) else range
        self.sequence = is_sequence_pattern(output)
        if self.sequence:
            self.writer = SequenceWriter(output, self.info, pix_fmt)
            return
        check_output(self.info, self.output, codec)
        self.writer = VideoWriter(self.output, self.info, codec, crf, preset, pix_fmt, options=options,
                                  threads=threads)

    def write(self, picture: Picture, pts: int) -> None:
        self.writer.write(picture, pts)

    def __enter__(self) -> "OutputFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.writer.abort()
            return
        if self.sequence:
            self.writer.commit()
            return
        try:
            video = self.writer.close()
            if self.writer.frames_written == 0:
                raise OutputError(f"{self.output}: no frames were written")
            finalize_output(video, self.info, self.output, self.range)
        except BaseException:
            self.writer.abort()
            raise
