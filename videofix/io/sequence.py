"""Image sequences in and out: film scans and finishing tools' `frames/%06d.dpx`.

A sequence is named by a printf pattern whose file name holds one frame-number token
(`%d` or `%0Nd`): `scan/%06d.dpx`, `reel1/frame.%04d.tif`. Formats: DPX, TIFF (.tif/.tiff),
PNG and OpenEXR, read and written with the libav codecs PyAV bundles (`dpx`, `tiff`, `png`,
`exr`).

**Input.** Images carry no frame rate, so the rate travels with the pattern as a *source
spec* `PATTERN@FPS` (`scan/%06d.dpx@24000/1001`; `--fps` of the CLI builds it, and a bare
pattern means `DEFAULT_FPS`). `open_input` (videofix.io.info) opens a spec with libav's
image2 demuxer, so every reader of the io layer (`probe`, `open_video`, `plan_segments`,
`open_segment`) and both runners take a spec wherever they take a file. Frame i of the
sequence (the i-th number from the first file found) has pts i in time base 1/FPS; every
frame is a keyframe. The numbers must run without a gap (a missing scan is an error, never
a silently shorter film). Bit depth is kept: 10/12-bit DPX decode as gbrp10le/gbrp12le,
16-bit DPX/TIFF/PNG as rgb48 (held by `Picture` as gbrp16le, an exact repacking), EXR as
32-bit float (held as gbrp16le for the face stages, see below).

**Output** (`SequenceWriter`, also behind `OutputFile`): one file per frame, named with the
output pattern and the *source's* frame number (a video source: numbers from
`VIDEO_START_NUMBER`, as ffmpeg numbers them). When the source is a sequence of the same
format, a frame whose picture is unchanged (no face pasted) is a byte-identical copy of
its source file; a changed frame is encoded in the source file's own pixel format (and
byte order for DPX; DPX under the source file's own header, TIFF with its compression, EXR
with its sample type and compression), so every sample outside the faces keeps its value;
alpha channels and EXR floats are taken from the source file sample by sample wherever the
picture did not change. The files are written into a hidden temporary folder and moved into place when the
run succeeds (`commit`): nothing appears under the final names on failure, and an input
file is never overwritten.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from videofix.errors import InputError, OutputError, UsageError
from videofix.io.picture import Picture

log = logging.getLogger("videofix.io")

# file extension -> libav image codec (decoder and encoder of the same name)
SEQUENCE_FORMATS = {".dpx": "dpx", ".tif": "tiff", ".tiff": "tiff", ".png": "png", ".exr": "exr"}
DEFAULT_FPS = Fraction(24)
VIDEO_START_NUMBER = 1  # a video written out as a sequence is numbered like ffmpeg's image2 muxer
SPEC_SEPARATOR = "@"

_TOKEN = re.compile(r"%(0\d+)?d")
# packed formats with alpha the encoders write -> index of alpha in `to_ndarray()`'s last axis
_ALPHA_CHANNEL = {"rgba": 3, "rgba64le": 3, "rgba64be": 3, "abgr": 0, "ya8": 1, "ya16le": 1, "ya16be": 1}
_NTSC = {23.976: Fraction(24000, 1001), 29.97: Fraction(30000, 1001), 47.952: Fraction(48000, 1001),
         59.94: Fraction(60000, 1001), 119.88: Fraction(120000, 1001)}


# --------------------------------------------------------------------------- names
def _tokens(name: str) -> list[re.Match]:
    return list(_TOKEN.finditer(name.replace("%%", "")))


def is_sequence_pattern(path: str | os.PathLike) -> bool:
    """True when `path` names an image sequence: its file name holds exactly one
    frame-number token (%d or %0Nd) and no file of that literal name exists."""
    text = str(path)
    if SPEC_SEPARATOR in text:
        text = split_spec(text)[0]
    if Path(text).exists():
        return False
    return len(_tokens(Path(text).name)) == 1


def parse_fps(text: str | float | Fraction) -> Fraction:
    """"24", "25", "23.976" (-> 24000/1001), "29.97", "24000/1001" -> a positive Fraction.
    Raises `UsageError` (one line) otherwise."""
    if isinstance(text, Fraction):
        fps = text
    else:
        raw = str(text).strip()
        try:
            fps = Fraction(raw)
        except (ValueError, ZeroDivisionError):
            raise UsageError(f"bad frame rate {text!r}: give a number such as 24, 23.976 or 24000/1001") from None
        for approx, exact in _NTSC.items():
            if "/" not in raw and abs(float(fps) - approx) < 0.0015:
                fps = exact
        if fps.denominator > 1001 and "/" not in raw:
            fps = fps.limit_denominator(1001)
    if fps <= 0 or fps > 1000:
        raise UsageError(f"bad frame rate {text!r}: must be above 0 and at most 1000")
    return fps


def split_spec(spec: str | os.PathLike) -> tuple[str, Fraction | None]:
    """`PATTERN@FPS` -> (PATTERN, FPS); a bare pattern -> (pattern, None)."""
    text = str(spec)
    head, sep, tail = text.rpartition(SPEC_SEPARATOR)
    if sep and len(_tokens(Path(head).name)) == 1 and re.fullmatch(r"[0-9./]+", tail):
        return head, parse_fps(tail)
    return text, None


def sequence_spec(pattern: str | os.PathLike, fps: str | float | Fraction | None = None) -> str:
    """The source spec of a sequence: `PATTERN@FPS` (fps None = `DEFAULT_FPS`)."""
    pattern, given = split_spec(pattern)
    rate = parse_fps(fps) if fps is not None else (given or DEFAULT_FPS)
    return f"{pattern}{SPEC_SEPARATOR}{rate}"


# --------------------------------------------------------------------------- input
@dataclass(frozen=True)
class ImageSequence:
    """The files of one sequence on disk.

    pattern: the printf pattern (folder + name with one token); fps: frames per second;
    codec: libav image codec ("dpx", "tiff", "png", "exr"); first / count: frame numbers
    first .. first + count - 1, every one present.
    """

    pattern: str
    fps: Fraction
    codec: str
    first: int
    count: int

    @property
    def folder(self) -> Path:
        return Path(self.pattern).parent

    @property
    def spec(self) -> str:
        return f"{self.pattern}{SPEC_SEPARATOR}{self.fps}"

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def path_of(self, number: int) -> Path:
        """File of frame `number` (a sequence number, not an index)."""
        return self.folder / (Path(self.pattern).name % number)

    def number_of(self, index: int) -> int:
        return self.first + index


def _name_regex(name: str) -> re.Pattern:
    parts, pos = [], 0
    for m in _TOKEN.finditer(name):
        if name[max(0, m.start() - 1):m.start()] == "%" and name[:m.start()].count("%") % 2:
            continue  # "%%d" is a literal
        parts.append(re.escape(name[pos:m.start()].replace("%%", "%")))
        parts.append(r"(\d+)")
        pos = m.end()
    parts.append(re.escape(name[pos:].replace("%%", "%")))
    return re.compile("".join(parts))


def scan_sequence(spec: str | os.PathLike) -> ImageSequence:
    """List the files of a sequence (`PATTERN` or `PATTERN@FPS`). Raises `InputError` with
    one line when the folder or the files are missing, the format is unknown, or the
    numbering has a gap."""
    pattern, fps = split_spec(spec)
    fps = fps or DEFAULT_FPS
    p = Path(pattern)
    folder = p.parent
    codec = SEQUENCE_FORMATS.get(p.suffix.lower())
    if codec is None:
        raise InputError(f"{pattern}: unknown image format {p.suffix or '(no extension)'!r} "
                         f"(sequences can be {', '.join(sorted(set(SEQUENCE_FORMATS)))})")
    if not folder.is_dir():
        raise InputError(f"{pattern}: folder {folder} does not exist")
    if not os.access(folder, os.R_OK | os.X_OK):
        raise InputError(f"{pattern}: folder {folder} is not readable")
    regex = _name_regex(p.name)
    numbers = []
    for entry in os.listdir(folder):
        m = regex.fullmatch(entry)
        if m is None:
            continue
        n = int(m.group(1))
        if p.name % n == entry:  # %06d matches 000123, not 123 (what the demuxer would look for)
            numbers.append(n)
    if not numbers:
        raise InputError(f"{pattern}: no files match the pattern")
    numbers.sort()
    first, last = numbers[0], numbers[-1]
    if last - first + 1 != len(numbers):
        present = set(numbers)
        missing = next(n for n in range(first, last + 1) if n not in present)
        raise InputError(f"{pattern}: frame {p.name % missing} is missing ({len(numbers)} files numbered "
                         f"{first} to {last}; a sequence must have no gaps)")
    return ImageSequence(pattern, fps, codec, first, len(numbers))


def open_sequence(spec: str | os.PathLike) -> av.container.InputContainer:
    """Open a sequence with libav's image2 demuxer: pts = index from the first file, time
    base 1 / fps. Raises `InputError`."""
    seq = scan_sequence(spec)
    first_file = seq.path_of(seq.first)
    if first_file.stat().st_size == 0:
        raise InputError(f"{first_file}: empty file")
    # image2 reads the whole string as a pattern: a '%' in the folder names must be doubled
    folder = str(seq.folder).replace("%", "%%")
    demux_pattern = os.path.join(folder, Path(seq.pattern).name)
    try:
        return av.open(demux_pattern, "r", format="image2",
                       options={"framerate": str(seq.fps), "start_number": str(seq.first),
                                "start_number_range": "1"})
    except av.error.FFmpegError as exc:
        msg = (getattr(exc, "strerror", None) or str(exc)).strip().rstrip(".").lower()
        raise InputError(f"{seq.pattern}: cannot open the sequence ({msg})") from None


def source_sequence(path: str | os.PathLike) -> ImageSequence | None:
    """The `ImageSequence` a source path or spec names, or None for a plain file."""
    return scan_sequence(path) if is_sequence_pattern(path) else None


def decode_image(path: str | os.PathLike, codec: str) -> "av.VideoFrame":
    """Decode one image file with libav's codec (no demuxer). Raises `InputError`."""
    return decode_image_bytes(Path(path).read_bytes(), codec, path)


def decode_image_bytes(data: bytes, codec: str, path: str | os.PathLike = "image") -> "av.VideoFrame":
    """Decode the bytes of one image file with libav's codec. Raises `InputError`."""
    ctx = av.CodecContext.create(codec, "r")
    try:
        frames = ctx.decode(av.Packet(data)) + ctx.decode(None)
    except av.error.FFmpegError as exc:
        raise InputError(f"{path}: cannot decode ({getattr(exc, 'strerror', None) or exc})") from None
    if not frames:
        raise InputError(f"{path}: no picture decoded")
    return frames[0]


def sequence_timecode(path: str | os.PathLike) -> str | None:
    """Timecode in the header of a sequence's first file (DPX: its television header, as
    libav's decoder reads it), or None (not a sequence, or no timecode)."""
    seq = source_sequence(path) if is_sequence_pattern(path) else None
    if seq is None:
        return None
    try:
        frame = decode_image(seq.path_of(seq.first), seq.codec)
    except InputError:
        return None
    return dict(frame.metadata).get("timecode")


def header_fps(path: str | os.PathLike) -> Fraction | None:
    """Frame rate written in a sequence's first file (DPX film/television header), or None."""
    seq = scan_sequence(split_spec(path)[0])
    ctx = av.CodecContext.create(seq.codec, "r")
    try:
        ctx.decode(av.Packet(seq.path_of(seq.first).read_bytes()))
    except av.error.FFmpegError:
        return None
    rate = ctx.framerate
    if not rate or not rate.numerator or not rate.denominator:
        return None
    fps = Fraction(rate.numerator, rate.denominator)
    return parse_fps(str(float(fps))) if 0 < fps <= 1000 else None


# float image formats the exr decoder gives -> numpy sample type
_FLOAT_DTYPES = {"gbrpf32le": np.float32, "gbrapf32le": np.float32, "grayf32le": np.float32,
                 "gbrpf16le": np.float16, "gbrapf16le": np.float16, "grayf16le": np.float16}
_TIFF_COMPRESSION = {1: "raw", 5: "lzw", 8: "deflate", 32946: "deflate", 32773: "packbits"}
_EXR_COMPRESSION = {0: "none", 1: "rle", 2: "zip1", 3: "zip16"}  # others (PIZ, PXR24, B44, DWA): zip16


def tiff_options(data: bytes) -> dict[str, str]:
    """libav tiff encoder options that write like the source file: its first image's
    Compression tag (none, LZW, deflate, PackBits; JPEG and others: PackBits, lossless)."""
    order = {b"II": "little", b"MM": "big"}.get(data[:2])
    if order is None or len(data) < 8:
        return {}
    try:
        ifd = int.from_bytes(data[4:8], order)
        for k in range(int.from_bytes(data[ifd:ifd + 2], order)):
            e = ifd + 2 + 12 * k
            if int.from_bytes(data[e:e + 2], order) == 259:
                value = int.from_bytes(data[e + 8:e + 10], order)  # SHORT, left-justified
                return {"compression_algo": _TIFF_COMPRESSION.get(value, "packbits")}
    except (IndexError, ValueError):
        pass
    return {}


def exr_options(data: bytes) -> dict[str, str]:
    """libav exr encoder options that write like the source file: half or float samples
    (half when every channel is half) and its compression where libav has it (else zip16)."""
    if data[:4] != b"\x76\x2f\x31\x01":
        return {}
    opts: dict[str, str] = {}
    pos = 8
    try:
        while pos < len(data) and data[pos] != 0:
            name_end = data.index(b"\0", pos)
            type_end = data.index(b"\0", name_end + 1)
            name = data[pos:name_end].decode("latin-1")
            size = int.from_bytes(data[type_end + 1:type_end + 5], "little")
            value = data[type_end + 5:type_end + 5 + size]
            if name == "compression" and size == 1:
                opts["compression"] = _EXR_COMPRESSION.get(value[0], "zip16")
            elif name == "channels":
                types, q = [], 0
                while q < len(value) and value[q] != 0:
                    q = value.index(b"\0", q) + 1
                    types.append(int.from_bytes(value[q:q + 4], "little"))
                    q += 16
                if types:
                    opts["format"] = "half" if all(t == 1 for t in types) else "float"
            pos = type_end + 5 + size
    except (IndexError, ValueError):
        return {}
    return opts


def _dpx_u32(data: bytes, offset: int, big: bool) -> int:
    return int.from_bytes(data[offset:offset + 4], "big" if big else "little")


def dpx_splice(source: bytes, encoded: bytes) -> bytes | None:
    """The source DPX file's header (everything before its image data: file, image,
    orientation, film and television headers: timecode, frame rate, film edge codes, user
    data) followed by `encoded`'s image data, when both code the image data alike (byte
    order, one element, size, descriptor, bit size, packing, encoding, line padding, data
    length); otherwise None."""
    if len(source) < 832 or len(encoded) < 832 or source[:4] != encoded[:4] or source[:4] not in (b"SDPX", b"XPDS"):
        return None
    big = source[:4] == b"SDPX"

    def layout(d: bytes) -> tuple:
        return (d[770:772], d[772:780], d[800], d[803], d[804:808], d[812:816])

    if layout(source) != layout(encoded) or int.from_bytes(source[770:772], "big" if big else "little") != 1:
        return None
    src_off, enc_off = _dpx_u32(source, 4, big), _dpx_u32(encoded, 4, big)
    if _dpx_u32(source, 808, big) != src_off or _dpx_u32(encoded, 808, big) != enc_off:
        return None
    if not (0 < src_off <= len(source)) or not (0 < enc_off <= len(encoded)):
        return None
    if len(source) - src_off != len(encoded) - enc_off:
        return None
    return source[:src_off] + encoded[enc_off:]


def _same_samples(a: "av.VideoFrame", b: "av.VideoFrame") -> bool:
    if (a.width, a.height) != (b.width, b.height):
        return False
    pa, pb = Picture.from_av(a), Picture.from_av(b)
    return pa.pix_fmt == pb.pix_fmt and all(np.array_equal(x, y) for x, y in zip(pa.planes, pb.planes))


def dpx_big_endian(path: str | os.PathLike) -> bool | None:
    """Byte order of a DPX file from its magic number: True = "SDPX" (big-endian, what most
    scanners write), False = "XPDS", None = not a DPX file."""
    with open(path, "rb") as f:
        magic = f.read(4)
    return {b"SDPX": True, b"XPDS": False}.get(magic)


# --------------------------------------------------------------------------- output
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


def source_stat(path: str | os.PathLike) -> tuple[int, int]:
    """(size in bytes, modification time in ns) of a source: a file's own; a sequence's
    total size and newest file time (so a resumed job notices a changed scan)."""
    seq = source_sequence(path)
    if seq is None:
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    size = mtime = 0
    for n in range(seq.first, seq.last + 1):
        st = os.stat(seq.path_of(n))
        size += st.st_size
        mtime = max(mtime, st.st_mtime_ns)
    return size, mtime


class StagingFolder:
    """Where the files of a sequence output are gathered before they appear.

    A new output folder is built as a hidden sibling (`.NAME.videofix-PID-XXXX`) and
    renamed into place at once; in an existing folder the files wait in a hidden subfolder
    and are renamed onto their names one by one at the end (each rename atomic). `protected`
    files (the input sequence) are never overwritten.
    """

    def __init__(self, pattern: str, protected: set[Path] | None = None):
        self.pattern = pattern
        self.folder = Path(pattern).parent
        self.create = not self.folder.is_dir()
        tag = f"videofix-{os.getpid()}-{secrets.token_hex(3)}"
        self.path = (self.folder.parent / f".{self.folder.name}.{tag}") if self.create else (self.folder / f".{tag}.tmp")
        self.path.mkdir()
        self.protected = protected or set()
        self.names: list[str] = []

    def commit(self) -> Path:
        try:
            if not self.names:
                raise OutputError(f"{self.pattern}: no frames were written")
            for name in self.names:
                if (self.folder / name).resolve() in self.protected:
                    raise OutputError(f"{self.pattern}: {name} is a file of the input sequence; not overwritten")
            if self.create and not self.folder.exists():
                os.rename(self.path, self.folder)
            else:
                for name in self.names:
                    os.replace(self.path / name, self.folder / name)
                self.path.rmdir()
        except BaseException:
            self.abort()
            raise
        return self.folder

    def abort(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)


def join_sequence(parts: list[str | os.PathLike], output: str | os.PathLike, source: str | None = None) -> Path:
    """Gather the segment folders of a parallel run (each holding its frames under their
    final names) into the output sequence, all or nothing. Returns the output folder."""
    pattern = split_spec(output)[0]
    src = source_sequence(source) if source else None
    protected = {src.path_of(n).resolve() for n in range(src.first, src.last + 1)} if src else set()
    staging = StagingFolder(pattern, protected)
    try:
        for part in parts:
            for f in sorted(Path(part).iterdir()):
                if f.name in staging.names:
                    raise OutputError(f"{pattern}: frame file {f.name} written by two segments")
                shutil.move(str(f), staging.path / f.name)
                staging.names.append(f.name)
    except BaseException:
        staging.abort()
        raise
    folder = staging.commit()
    for part in parts:
        shutil.rmtree(part, ignore_errors=True)
    return folder


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


__all__ = [
    "DEFAULT_FPS", "ImageSequence", "StagingFolder", "VIDEO_START_NUMBER", "join_sequence", "source_stat", "SEQUENCE_FORMATS", "SequenceWriter", "check_sequence_output",
    "decode_image", "is_sequence_pattern", "open_sequence", "parse_fps", "scan_sequence",
    "sequence_spec", "source_sequence", "split_spec",
]
