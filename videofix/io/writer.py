"""Encoding (`VideoWriter`) and the output file of a run (`OutputFile`).

The video is encoded to a temporary file next to the output
(`.NAME.videofix-HOST-PID-XXXXXX.video.EXT`, see `videofix.atomic`); `OutputFile` then hands
it to `finalize_output` (`videofix.io.remux`), which muxes the source's other streams and
renames the result onto the output atomically. On failure the temporary files go and
nothing appears under the output name. `check_output` refuses, before any decoding, an
output that cannot be written. Codec names, pixel formats and encoder options:
`videofix.io.codecs`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import av

from videofix.atomic import AtomicFile, remove_stale, temp_path
from videofix.errors import OutputError
from videofix.io.codecs import (
    check_codec_size,
    choose_pix_fmt,
    encoder_options,
    encoder_threads,
    mastering_codec,
    resolve_codec,
)
from videofix.io.info import TimeRange, VideoInfo, open_input, parse_range, probe
from videofix.io.picture import _REPACK, AVCOL_SPC_RGB, LAYOUTS, Picture, default_matrix, matrix_to_tag
from videofix.io.remux import finalize_output, refuse_same_path
from videofix.io.sequence import SequenceWriter, check_sequence_output, is_sequence_pattern, split_spec

log = logging.getLogger("videofix.io")


def check_output(info: VideoInfo, output: str | os.PathLike, codec: str = "libx264") -> None:
    """Fail fast, before any decoding: the output is not the input, its folder is writable,
    its container is known and can hold the video codec and every audio/subtitle stream of
    the source (stream copy). Raises `OutputError` with one line. An image-sequence pattern
    (`out/%06d.dpx`) is checked by `videofix.io.sequence.check_sequence_output`."""
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
    dry = temp_path(out, "check")
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


class VideoWriter:
    """Encode pictures, with their source pts, to a temporary video-only file.

    Args:
        path: the final output path (the temporary file sits next to it, same extension).
        info: the source's `VideoInfo` (time base, fps, colour tags, SAR, rotation).
        codec: "libx264" (default; also h264), "libx265" (hevc), "ffv1" (lossless; .mkv).
        crf, preset: quality settings for libx264 / libx265 (ignored for ffv1).
        pix_fmt: encoder pixel format; None = the source's (see `choose_pix_fmt`).
        options: extra encoder options (FFmpeg AVOptions, strings).
        threads: encoder threads; 0 = the default (libx264: `X264_THREADS` frame threads,
            libx265: `X265_THREADS` frame threads; see `videofix.io.codecs`). Any fixed count
            gives the same bytes on every machine and core count; another count gives another
            (equally reproducible) stream.

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
        self._file = AtomicFile(self.output, "video")
        self.temp_path = self._file.path
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
        cc.thread_count, thread_type = encoder_threads(self.codec, threads)
        if thread_type is not None:
            cc.thread_type = thread_type
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
        src_lay = LAYOUTS.get(info.pix_fmt) or LAYOUTS.get(_REPACK.get(info.pix_fmt, ""))
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
        cc.options = encoder_options(codec if self.mastering else self.codec, crf, preset, threads, options)

    def write(self, picture: Picture, pts: int) -> None:
        """Encode one picture (native format, source size) at `pts` (units of info.time_base).
        The encoder reads the picture's own memory where it can (`Picture.av_frame_view`: a
        decoded yuv420p picture, no copy) and may hold it a while (frame threads): the picture
        must not change once written (the pipeline writes each output picture last)."""
        if self._closed:
            raise RuntimeError("VideoWriter is closed")
        if (picture.width, picture.height) != (self.info.width, self.info.height):
            raise ValueError(f"picture is {picture.width}x{picture.height}, the video is "
                             f"{self.info.width}x{self.info.height}")
        pts = int(pts)
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts must increase: {pts} after {self._last_pts}")
        frame = picture.av_frame_view()
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
        self.close()
        return self._file.commit()

    def abort(self) -> None:
        """Stop and delete the temporary file (the output path is never touched)."""
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - cleanup must not mask the first error
                pass
        self._file.discard()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()


def remove_leftovers(*targets: str | os.PathLike) -> None:
    """Delete the temporary files (and staging folders) that killed runs left for `targets`
    (`videofix.atomic.remove_stale`: this host's processes that no longer run), saying so."""
    for target in targets:
        for path in remove_stale(target):
            log.warning("%s: removed %s, left by an interrupted run", target, path.name)


class OutputFile:
    """Context manager tying a `VideoWriter` to `finalize_output`.

    >>> with open_video(src) as reader, OutputFile(src, "out.mp4", reader.info) as out:
    ...     for f in reader:
    ...         out.write(f.picture, f.pts)

    Checks the output up front (`check_output`) and deletes what a killed run of the same
    output left next to it (`videofix.atomic.remove_stale`). On a clean exit the output
    appears atomically; on an exception nothing appears under the output name.

    An output pattern such as `out/%06d.dpx` writes an image sequence instead
    (`videofix.io.sequence.SequenceWriter`: same numbering as a sequence source, unchanged
    frames byte-copied; `codec`, `crf`, `preset` do not apply).
    """

    def __init__(self, source: str | os.PathLike, output: str | os.PathLike, info: VideoInfo | None = None,
                 codec: str = "libx264", crf: int = 18, preset: str = "medium", pix_fmt: str | None = None,
                 range: TimeRange | str | None = None, *, options: dict | None = None, threads: int = 0):
        self.info = info or probe(source)
        self.output = Path(output)
        self.range = parse_range(range) if isinstance(range, str) else range
        self.sequence = is_sequence_pattern(output)
        if self.sequence:
            pattern = Path(split_spec(output)[0])
            remove_leftovers(pattern.parent, pattern)  # the staging folder beside it, or inside it
            self.writer = SequenceWriter(output, self.info, pix_fmt)
            return
        check_output(self.info, self.output, codec)
        remove_leftovers(self.output)
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
