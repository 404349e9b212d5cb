"""One image file of a sequence: decoding it alone, and what its header says (DPX timecode
and frame rate, byte order; TIFF compression; EXR sample type and compression), so a
rewritten file is written like its source file (`tiff_options`, `exr_options`,
`dpx_splice`).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av

from videofix.errors import InputError
from videofix.io.sequence.spec import is_sequence_pattern, parse_fps, scan_sequence, source_sequence, split_spec

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


def dpx_big_endian(path: str | os.PathLike) -> bool | None:
    """Byte order of a DPX file from its magic number: True = "SDPX" (big-endian, what most
    scanners write), False = "XPDS", None = not a DPX file."""
    with open(path, "rb") as f:
        magic = f.read(4)
    return {b"SDPX": True, b"XPDS": False}.get(magic)
