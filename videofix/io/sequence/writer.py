"""Writing pictures as an image sequence, all or nothing (`SequenceWriter`), and the early
check of a sequence output (`check_sequence_output`).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videofix.errors import InputError, OutputError
from videofix.io.picture import Picture
from videofix.io.sequence.headers import decode_image, decode_image_bytes, dpx_big_endian, dpx_splice, exr_options, \
    tiff_options
from videofix.io.sequence.spec import SEQUENCE_FORMATS, VIDEO_START_NUMBER, source_sequence, split_spec
from videofix.io.sequence.staging import StagingFolder

log = logging.getLogger("videofix.io")

# packed formats with alpha the encoders write -> index of alpha in `to_ndarray()`'s last axis
_ALPHA_CHANNEL = {"rgba": 3, "rgba64le": 3, "rgba64be": 3, "abgr": 0, "ya8": 1, "ya16le": 1, "ya16be": 1}
# float image formats the exr decoder gives -> numpy sample type
_FLOAT_DTYPES = {"gbrpf32le": np.float32, "gbrapf32le": np.float32, "grayf32le": np.float32,
                 "gbrpf16le": np.float16, "gbrapf16le": np.float16, "grayf16le": np.float16}

def _same_samples(a: "av.VideoFrame", b: "av.VideoFrame") -> bool:
    if (a.width, a.height) != (b.width, b.height):
        return False
    pa, pb = Picture.from_av(a), Picture.from_av(b)
    return pa.pix_fmt == pb.pix_fmt and all(np.array_equal(x, y) for x, y in zip(pa.planes, pb.planes))


def _encoder_formats(codec: str) -> list[str]:
    return [f.name for f in (av.Codec(codec, "w").video_formats or [])]


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_sequence_output(info, output: str | os.PathLike, *, warn: bool = True) -> None:
    """Fail fast for a sequence output: known image format whose encoder exists, folder
    (or its parent, when the folder will be created) writable, not the input sequence.
    `info`: the source's `VideoInfo`. Raises `OutputError`. `warn`: log that the source's
    audio and subtitles cannot go into a sequence (the runners' early check says it once)."""
    pattern = split_spec(output)[0]
    p = Path(pattern)
    codec = SEQUENCE_FORMATS.get(p.suffix.lower())
    if codec is None:
        raise OutputError(f"{pattern}: unknown image format {p.suffix or '(no extension)'!r} "
                          f"(sequences can be {', '.join(sorted(set(SEQUENCE_FORMATS)))})")
    try:
        av.Codec(codec, "w")
    except Exception:  # noqa: BLE001 - a libav build without the encoder
        raise OutputError(f"{pattern}: this libav build cannot write {codec} images") from None
    folder = p.parent
    base = folder if folder.is_dir() else folder.parent
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{pattern}: {folder} is a file, not a folder")
    if not base.is_dir():
        raise OutputError(f"{pattern}: folder {base} does not exist")
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{pattern}: folder {base} is not writable")
    src = source_sequence(info.path)
    if src is not None and folder.is_dir() and _same_path(src.folder, folder) and src.path_of(src.first).name == \
            p.name % src.first:
        raise OutputError(f"{pattern}: the output is the input sequence; choose another folder or name")
    others = [s for s in getattr(info, "streams", []) if s.type in ("audio", "subtitle")]
    if others and warn:
        log.warning("%s: an image sequence holds pictures only; the source's %d audio/subtitle stream(s) "
                    "are not written", pattern, len(others))


class SequenceWriter:
    """Write pictures as an image sequence, all or nothing.

    Args:
        output: pattern of the files to write (`out/%06d.dpx`).
        info: the source's `VideoInfo` (its `path` may be a sequence spec).
        pix_fmt: pixel format of the written files; None = the source file's own when the
            source is a sequence of this format, else the closest the encoder has at the
            picture's bit depth (RGB; YUV pictures are converted with their matrix and range).

    `write(picture, pts)` takes a `Picture` and its source pts (for a sequence source, the
    frame index from its first file, which gives the file number; a video source's frames
    are numbered in writing order from `first_number`: a segment of a parallel run passes
    its first frame's number). `commit()` moves the
    files into place, `abort()` deletes them; also a context manager.
    """

    def __init__(self, output: str | os.PathLike, info, pix_fmt: str | None = None, *,
                 first_number: int = VIDEO_START_NUMBER):
        self.pattern = split_spec(output)[0]
        self.output = Path(self.pattern)
        check_sequence_output(info, self.pattern, warn=False)
        self.info = info
        self.codec = SEQUENCE_FORMATS[self.output.suffix.lower()]
        self.source = source_sequence(info.path)
        # byte copies and per-sample merges need the source files in this very format
        self.same_format = self.source is not None and self.source.codec == self.codec
        self.requested_pix_fmt = pix_fmt
        self._pix_fmt: str | None = None
        self.names: list[str] = []
        self.frames_written = 0
        self.frames_copied = 0
        self.headers_kept = 0  # DPX frames re-encoded under their source file's own header
        self.damaged_copied = 0  # source files that do not decode, copied unchanged
        self._closed = False
        self._next_video_number = first_number
        protected = ({self.source.path_of(n).resolve() for n in range(self.source.first, self.source.last + 1)}
                     if self.source is not None else set())
        self.staging = StagingFolder(self.pattern, protected)
        self.names = self.staging.names

    # ------------------------------------------------------------------ choices
    def _choose_pix_fmt(self, picture: Picture, source_frame) -> str:
        supported = _encoder_formats(self.codec)
        if self.requested_pix_fmt:
            if self.requested_pix_fmt not in supported:
                raise OutputError(f"{self.pattern}: the {self.codec} encoder cannot write {self.requested_pix_fmt} "
                                  f"(it writes {', '.join(supported)})")
            return self.requested_pix_fmt
        if source_frame is not None and source_frame.format.name in supported:
            fmt = source_frame.format.name
            if self.codec == "dpx" and self._source_be is not None:
                # keep the scanner's byte order (the decoder hands out native-endian samples)
                twin = re.sub(r"(le|be)$", "be" if self._source_be else "le", fmt)
                if twin in supported:
                    fmt = twin
            return fmt
        lay = picture.layout
        deep = lay.bits > 8
        if self.codec == "exr":
            return "grayf32le" if lay.kind == "gray" else "gbrpf32le"
        if lay.kind == "gray":
            cands = ["gray16le", "gray16be"] if deep else ["gray"]
        elif self.codec == "dpx":
            cands = {10: ["gbrp10le"], 12: ["gbrp12le"]}.get(lay.bits, []) + (["rgb48le"] if deep else ["rgb24"])
        else:
            cands = ["rgb48le", "rgb48be"] if deep else ["rgb24"]
        for c in cands + ["rgb48be", "rgb48le", "rgb24"]:
            if c in supported:
                return c
        return supported[0]

    @property
    def _source_be(self) -> bool | None:
        if self.codec != "dpx" or not self.same_format:
            return None
        return dpx_big_endian(self.source.path_of(self.source.first))

    # ------------------------------------------------------------------ writing
    def _number(self, pts: int) -> int:
        if self.source is not None:
            return self.source.number_of(int(pts) - int(self.info.start_pts))
        n = self._next_video_number
        self._next_video_number += 1
        return n

    def write(self, picture: Picture, pts: int) -> None:
        """Write one picture (native format, any size) as the file of its frame number."""
        if self._closed:
            raise RuntimeError("SequenceWriter is closed")
        number = self._number(pts)
        name = self.output.name % number
        target = self.staging.path / name
        source_file = self.source.path_of(number) if self.source is not None else None
        source_frame = None
        if self.same_format and source_file is not None and source_file.exists():
            try:
                source_frame = decode_image(source_file, self.codec)
            except InputError:
                # a damaged scan (the reader stood in the frame before for it): the file is
                # left as it was, not replaced by a neighbour's picture
                log.warning("%s: cannot decode the source file; copied as it is", source_file)
                shutil.copyfile(source_file, target)
                self.damaged_copied += 1
                self._done(name, copied=True)
                return
            if (source_frame.width, source_frame.height) == (picture.width, picture.height):
                before = Picture.from_av(source_frame, self.info.colorspace, self.info.color_range)
                if before.pix_fmt == picture.pix_fmt and all(np.array_equal(a, b) for a, b in
                                                            zip(before.planes, picture.planes)):
                    shutil.copyfile(source_file, target)  # no face here: the scan itself
                    self._done(name, copied=True)
                    return
            else:
                source_frame = None  # upscaled: nothing of the source can be kept as is
        if self._pix_fmt is None:
            self._pix_fmt = self._choose_pix_fmt(picture, source_frame)
        frame = self._frame(picture, self._pix_fmt, source_frame)
        ctx = av.CodecContext.create(self.codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt = picture.width, picture.height, self._pix_fmt
        ctx.time_base = Fraction(1, 1)
        if source_frame is not None and self.codec in ("tiff", "exr"):
            # the source file's own compression (and EXR sample type): the same kind of file
            head = source_file.read_bytes()
            ctx.options = tiff_options(head) if self.codec == "tiff" else exr_options(head)
        frame.pts = 0
        try:
            packets = ctx.encode(frame) + ctx.encode(None)
        except av.error.FFmpegError as exc:
            raise OutputError(f"{self.pattern}: cannot encode {name} ({getattr(exc, 'strerror', None) or exc})") from None
        data = b"".join(bytes(packet) for packet in packets)
        if self.codec == "dpx" and source_frame is not None:
            spliced = dpx_splice(source_file.read_bytes(), data)
            if spliced is not None and _same_samples(decode_image_bytes(spliced, "dpx"), frame):
                data = spliced
                self.headers_kept += 1
        with open(target, "wb") as f:
            f.write(data)
        self._done(name, copied=False)

    def _done(self, name: str, copied: bool) -> None:
        self.names.append(name)
        self.frames_written += 1
        self.frames_copied += int(copied)

    def _frame(self, picture: Picture, pix_fmt: str, source_frame) -> "av.VideoFrame":
        """`picture` as an av frame in `pix_fmt`. Samples the picture left as the source has
        them take the source file's exact values (alpha, float EXR)."""
        lay = picture.layout
        target_bits = None
        desc = av.VideoFormat(pix_fmt)
        if desc.components:
            target_bits = desc.components[0].bits
        is_float = pix_fmt.endswith("f32le") or pix_fmt.endswith("f32be")
        if is_float:
            return self._float_frame(picture, pix_fmt, source_frame)
        if lay.kind == "yuv" and not pix_fmt.startswith(("yuv", "gray")):
            # YUV pictures (a video source): RGB with the picture's own matrix and range
            rgb = picture.to_rgb()
            if target_bits and target_bits > 8:
                arr = np.clip(np.rint(rgb * 65535.0), 0, 65535).astype(np.uint16)
                frame = av.VideoFrame.from_ndarray(arr, format="rgb48le")
            else:
                arr = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
        else:
            frame = picture.to_av_frame()
        if frame.format.name != pix_fmt:
            frame = frame.reformat(format=pix_fmt)
        alpha = _ALPHA_CHANNEL.get(pix_fmt)
        if alpha is not None and source_frame is not None and source_frame.format.name == pix_fmt:
            # the picture holds no alpha: the source file's alpha, sample for sample
            arr = frame.to_ndarray()
            arr[..., alpha] = source_frame.to_ndarray()[..., alpha]
            frame = av.VideoFrame.from_ndarray(arr, format=pix_fmt)
        return frame

    def _float_frame(self, picture: Picture, pix_fmt: str, source_frame) -> "av.VideoFrame":
        """EXR: float samples. Where the 16-bit picture equals the source file quantised the
        same way, the source's float value is kept (values above 1.0, negative values and
        full float precision survive outside the faces)."""
        src16 = src_dtype = None
        if source_frame is not None and source_frame.format.name in _FLOAT_DTYPES and \
                len(source_frame.planes) == len(av.VideoFrame(1, 1, pix_fmt).planes):
            src16 = Picture.from_av(source_frame)  # quantised as the reader quantised it
            src_dtype = _FLOAT_DTYPES[source_frame.format.name]
        conv = picture if picture.pix_fmt in ("gbrp16le", "gray16le") else None
        if conv is None:
            target = "gray16le" if pix_fmt.startswith("gray") else "gbrp16le"
            if picture.layout.kind == "yuv":
                rgb = np.clip(np.rint(picture.to_rgb() * 65535.0), 0, 65535).astype(np.uint16)
                conv = Picture.from_av(av.VideoFrame.from_ndarray(rgb, format="rgb48le"))
            else:
                conv = Picture.from_av(picture.to_av_frame().reformat(format=target))
        frame = av.VideoFrame(picture.width, picture.height, pix_fmt)
        for i, plane in enumerate(frame.planes):
            dst = _plane_array(plane, np.float32, picture.width, picture.height)
            src_vals = None
            if src16 is not None:
                src_vals = _plane_array(source_frame.planes[i], src_dtype, picture.width, picture.height)
            if i >= len(conv.planes):  # alpha: the source's, else opaque
                dst[...] = src_vals if src_vals is not None else 1.0
                continue
            values = conv.planes[i].astype(np.float32) / 65535.0
            if src_vals is not None:
                values = np.where(conv.planes[i] == src16.planes[i], src_vals.astype(np.float32), values)
            dst[...] = values
        return frame

    # ------------------------------------------------------------------ ending
    def commit(self) -> Path:
        """Move the written files into place (a new folder appears at once by rename; in an
        existing folder each file is renamed into place). Returns the folder."""
        if not self._closed:
            self._closed = True
            self.staging.commit()
        return self.staging.folder

    def abort(self) -> None:
        """Delete what was written; the final names are never touched."""
        self._closed = True
        self.staging.abort()

    def __enter__(self) -> "SequenceWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.commit()


def _plane_array(plane, dtype, width: int, height: int) -> np.ndarray:
    """Writable (height, width) view of one plane of an av frame (honours line padding)."""
    dt = np.dtype(dtype)
    buf = np.frombuffer(plane, dtype=dt)
    return np.lib.stride_tricks.as_strided(buf, shape=(height, width), strides=(plane.line_size, dt.itemsize))
