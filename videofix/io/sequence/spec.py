"""What a sequence is: its pattern and frame rate (the source spec `PATTERN@FPS`), and the
files on disk that it names (`ImageSequence`, `scan_sequence`), opened as one video with
libav's image2 demuxer (`open_sequence`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from videofix.errors import InputError, UsageError

# file extension -> libav image codec (decoder and encoder of the same name)
SEQUENCE_FORMATS = {".dpx": "dpx", ".tif": "tiff", ".tiff": "tiff", ".png": "png", ".exr": "exr"}
DEFAULT_FPS = Fraction(24)
VIDEO_START_NUMBER = 1  # a video written out as a sequence is numbered like ffmpeg's image2 muxer
SPEC_SEPARATOR = "@"

_TOKEN = re.compile(r"%(0\d+)?d")
_NTSC = {23.976: Fraction(24000, 1001), 29.97: Fraction(30000, 1001), 47.952: Fraction(48000, 1001),
         59.94: Fraction(60000, 1001), 119.88: Fraction(120000, 1001)}


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
