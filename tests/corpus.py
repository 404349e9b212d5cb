"""Real-world file shapes for the timestamp / container corpus, made with PyAV's encoders.

Each `make_*` writes one small file (a real face from `videofix.samples.face_content`, so
faces are found and restored) the way an archive holds it: DivX-style packed B-frames in
AVI, MJPEG in AVI, MPEG-2 in program/transport streams and VOBs, DV, H.264 in MOV with an
edit list and a start offset, variable frame rate Matroska, interlaced MPEG-2, 10-bit
4:2:2 ProRes, a stream whose first timestamp is not 0, and a file with a damaged packet.
`CORPUS` maps a name to its maker; every maker takes the output folder and returns a
`CorpusFile` saying what a correct restore must give back.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np

from videofix.samples import face_content
from conftest import TINY_CODEFORMER

W, H = 256, 192


@dataclass
class CorpusFile:
    """A corpus file. `frames`: frames a player shows; `fps`: nominal rate; `audio`: it has an
    audio track; `damaged`: a packet was overwritten (the restore must note it, not fail);
    `interlaced`: coded as fields."""

    name: str
    path: Path
    frames: int
    fps: Fraction
    audio: bool = True
    damaged: bool = False
    interlaced: bool = False


# --------------------------------------------------------------------------- helpers
def _frames(n: int, width: int = W, height: int = H, seed: int = 1, pix_fmt: str = "yuv420p"):
    content = face_content(width, height, face_size=min(150, int(height * 0.8)), seed=seed)
    for i in range(n):
        yield i, av.VideoFrame.from_ndarray(content(i), format="rgb24").reformat(format=pix_fmt)


def _audio(out: av.container.OutputContainer, stream, seconds: float, frame_size: int = 1152) -> None:
    """A stereo sine covering `seconds`, encoded into `stream`."""
    rate = stream.codec_context.sample_rate
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    fmt = stream.codec_context.format.name if stream.codec_context.format else "fltp"
    samples = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)])
    size = stream.codec_context.frame_size or frame_size
    for start in range(0, n, size):
        chunk = samples[:, start:start + size]
        if fmt == "s16":
            af = av.AudioFrame.from_ndarray((chunk.T.reshape(1, -1) * 32767).astype(np.int16), format="s16", layout="stereo")
        elif fmt == "s16p":
            af = av.AudioFrame.from_ndarray((chunk * 32767).astype(np.int16), format="s16p", layout="stereo")
        elif fmt == "flt":
            af = av.AudioFrame.from_ndarray(chunk.T.reshape(1, -1).astype(np.float32), format="flt", layout="stereo")
        else:
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk, dtype=np.float32), format="fltp", layout="stereo")
        af.sample_rate = rate
        af.pts = start
        af.time_base = Fraction(1, rate)
        for p in stream.encode(af):
            out.mux(p)
    for p in stream.encode(None):
        out.mux(p)


def _add_audio(out, codec: str, rate: int = 48000):
    a = out.add_stream(codec, rate=rate)
    a.layout = "stereo"
    return a


# --------------------------------------------------------------------------- DivX-style packed B-frames
def _bits_reader(data: bytes):
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        v = 0
        for _ in range(n):
            v = (v << 1) | ((data[pos >> 3] >> (7 - (pos & 7))) & 1)
            pos += 1
        return v
    return read


def _vop_time_bits(packet: bytes) -> int:
    """Bits of vop_time_increment, from the video object layer header in `packet`."""
    i = next(j for j in range(len(packet) - 4) if packet[j:j + 3] == b"\0\0\1" and 0x20 <= packet[j + 3] <= 0x2F)
    read = _bits_reader(packet[i + 4:])
    read(1)  # random_accessible_vol
    read(8)  # video_object_type_indication
    if read(1):  # is_object_layer_identifier
        read(4)
        read(3)
    if read(4) == 15:  # aspect_ratio_info: extended PAR
        read(16)
    if read(1):  # vol_control_parameters
        read(2)
        read(1)
        if read(1):  # vbv_parameters: 15+1+15+1+15+1+3+11+1+15+1 bits
            read(79)
    read(2)  # video_object_layer_shape (rectangular)
    read(1)  # marker
    resolution = read(16)
    return max(1, (resolution - 1).bit_length())


def _n_vop(time_bits: int) -> bytes:
    """A not-coded P-VOP (what DivX wrote after a packed chunk)."""
    bits = "01" + "0" + "1" + "0" * time_bits + "1" + "0"  # P, modulo_time_base, marker, increment, marker, not coded
    bits += "0" + "1" * ((8 - (len(bits) + 1) % 8) % 8)  # stuffing to the byte boundary
    return b"\0\0\1\xb6" + int(bits, 2).to_bytes(len(bits) // 8, "big")


DIVX_USER_DATA = b"\0\0\1\xb2DivX503b1393p"  # the 'p': packed bitstream


def pack_divx(packets: list[bytes]) -> list[bytes]:
    """MPEG-4 Part 2 packets in decode order (one B-frame between references) -> the DivX
    packed layout: each reference picture shares its chunk with the B-frame that follows it
    in decode order, and a not-coded VOP takes that B-frame's place. Same chunk count."""
    time_bits = _vop_time_bits(packets[0])
    first = packets[0]
    vop = first.index(b"\0\0\1\xb6")
    gov = first.find(b"\0\0\1\xb3")
    at = gov if 0 <= gov < vop else vop
    packed = [first[:at] + DIVX_USER_DATA + first[at:]]
    rest = packets[1:]
    i = 0
    while i < len(rest):
        cur = rest[i]
        kind = cur[cur.index(b"\0\0\1\xb6") + 4] >> 6
        nxt = rest[i + 1] if i + 1 < len(rest) else None
        if kind != 2 and nxt is not None and nxt[nxt.index(b"\0\0\1\xb6") + 4] >> 6 == 2:
            packed += [cur + nxt, _n_vop(time_bits)]
            i += 2
        else:
            packed.append(cur)
            i += 1
    return packed


def make_avi_divx_packed(d: Path, frames: int = 24) -> CorpusFile:
    """MPEG-4 ASP, one B-frame, packed bitstream as DivX 5 wrote it; AC3 audio; 23.976 fps."""
    rate = Fraction(24000, 1001)
    cc = av.CodecContext.create("mpeg4", "w")
    cc.width, cc.height, cc.pix_fmt = W, H, "yuv420p"
    cc.time_base, cc.framerate = 1 / rate, rate
    cc.options = {"bf": "1", "g": "12", "qscale": "3"}
    pkts: list[bytes] = []
    for i, f in _frames(frames):
        f.pts = i
        pkts += [bytes(p) for p in cc.encode(f)]
    pkts += [bytes(p) for p in cc.encode(None)]
    chunks = pack_divx(pkts)
    path = d / "divx_packed.avi"
    out = av.open(str(path), "w")
    v = out.add_stream("mpeg4", rate=rate)
    v.width, v.height, v.pix_fmt = W, H, "yuv420p"
    v.codec_context.time_base = 1 / rate
    v.time_base = 1 / rate
    a = _add_audio(out, "ac3")
    for k, data in enumerate(chunks):
        p = av.Packet(data)
        p.stream = v
        p.time_base = 1 / rate
        p.dts = p.pts = k
        if k == 0 or data[data.index(b"\0\0\1\xb6") + 4] >> 6 == 0:
            p.is_keyframe = True
        out.mux(p)
    _audio(out, a, frames / rate)
    out.close()
    return CorpusFile("avi_divx_packed", path, frames, rate)


# --------------------------------------------------------------------------- the others
def _write(path: Path, codec: str, *, frames: int, rate: Fraction, size=(W, H), pix_fmt="yuv420p",
           options: dict | None = None, fmt: str | None = None, audio: str | None = None, audio_rate: int = 48000,
           pts: list[int] | None = None, time_base: Fraction | None = None, container_options: dict | None = None,
           stream_setup: Callable | None = None) -> Path:
    """Encode `frames` face frames with `codec` into `path`; `pts` (in `time_base`) for a
    variable rate or a start offset; an `audio` stream covering the video."""
    out = av.open(str(path), "w", format=fmt, options=container_options or {})
    v = out.add_stream(codec, rate=rate)
    v.width, v.height, v.pix_fmt = size[0], size[1], pix_fmt
    tb = time_base or 1 / rate
    v.codec_context.time_base = tb
    if options:
        v.options = options
    if stream_setup:
        stream_setup(v)
    a = _add_audio(out, audio, audio_rate) if audio else None
    pts = pts if pts is not None else list(range(frames))
    for i, f in _frames(len(pts), size[0], size[1], pix_fmt=pix_fmt):
        f.pts = pts[i]
        f.time_base = tb
        for p in v.encode(f):
            out.mux(p)
    for p in v.encode(None):
        out.mux(p)
    if a is not None:
        _audio(out, a, float((pts[-1] + (pts[-1] - pts[0]) / max(1, len(pts) - 1)) * tb))
    out.close()
    return path


def make_avi_xvid_bframes(d: Path) -> CorpusFile:
    """MPEG-4 ASP with two B-frames in AVI (unpacked, as Xvid wrote it), MP3 audio, 23.976 fps."""
    rate = Fraction(24000, 1001)
    p = _write(d / "xvid_bf2.avi", "mpeg4", frames=20, rate=rate, options={"bf": "2", "g": "12", "qscale": "3"},
               audio="mp3")
    return CorpusFile("avi_xvid_bframes", p, 20, rate)


def make_avi_mjpeg(d: Path) -> CorpusFile:
    """Motion JPEG in AVI (capture cards), PCM audio, 25 fps."""
    p = _write(d / "mjpeg.avi", "mjpeg", frames=16, rate=Fraction(25), pix_fmt="yuvj420p",
               options={"q:v": "3"}, audio="pcm_s16le")
    return CorpusFile("avi_mjpeg", p, 16, Fraction(25))


def _mpeg2(d: Path, name: str, ext: str, fmt: str, audio: str, frames: int = 20) -> CorpusFile:
    rate = Fraction(25)
    p = _write(d / f"{name}.{ext}", "mpeg2video", frames=frames, rate=rate, fmt=fmt, audio=audio,
               options={"bf": "2", "g": "12", "b": "3M"})
    return CorpusFile(name, p, frames, rate)


def make_mpg(d: Path) -> CorpusFile:
    """MPEG-2 video + MP2 audio in an MPEG program stream (.mpg)."""
    return _mpeg2(d, "mpeg2_ps", "mpg", "mpeg", "mp2")


def make_ts(d: Path) -> CorpusFile:
    """MPEG-2 video + MP2 audio in an MPEG transport stream (starts at 1.4 s, as muxers do)."""
    return _mpeg2(d, "mpeg2_ts", "ts", "mpegts", "mp2")


def make_vob(d: Path) -> CorpusFile:
    """MPEG-2 video + AC3 audio in a DVD VOB."""
    return _mpeg2(d, "mpeg2_vob", "vob", "vob", "ac3")


def make_interlaced_mpeg2(d: Path) -> CorpusFile:
    """Interlaced MPEG-2 (field-coded, top field first) in .mpg, as DVD/broadcast captures."""
    rate = Fraction(25)

    def setup(v):
        v.codec_context.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
    p = _write(d / "interlaced.mpg", "mpeg2video", frames=16, rate=rate, fmt="mpeg", audio="mp2",
               options={"bf": "2", "g": "12", "b": "3M", "top": "1", "alternate_scan": "1"}, stream_setup=setup)
    return CorpusFile("mpeg2_interlaced", p, 16, rate, interlaced=True)


def make_dv(d: Path) -> CorpusFile:
    """PAL DV (720x576 4:2:0, 25 fps) with 48 kHz PCM audio in a raw .dv file."""
    rate = Fraction(25)
    p = _write(d / "pal.dv", "dvvideo", frames=8, rate=rate, size=(720, 576), pix_fmt="yuv420p", audio="pcm_s16le")
    return CorpusFile("dv", p, 8, rate)


def make_mov_editlist(d: Path) -> CorpusFile:
    """H.264 with B-frames in MOV starting 0.5 s in: the muxer writes an edit list (an empty
    edit for the offset, and the B-frame delay)."""
    rate = Fraction(25)
    tb = Fraction(1, 12800)
    start = 6400  # 0.5 s
    pts = [start + 512 * i for i in range(20)]
    p = _write(d / "editlist.mov", "libx264", frames=20, rate=rate, pts=pts, time_base=tb, audio="aac",
               options={"bf": "2", "g": "8", "crf": "20", "preset": "veryfast", "threads": "1"})
    return CorpusFile("mov_editlist", p, 20, rate)


def make_mkv_vfr(d: Path) -> CorpusFile:
    """H.264 in Matroska at a variable frame rate (1 ms time base, uneven frame durations)."""
    steps = [40, 40, 33, 33, 50, 40, 67, 40, 33, 33, 33, 40, 80, 40, 40, 33, 40, 40, 50, 40]
    pts = [0]
    for s in steps[:-1]:
        pts.append(pts[-1] + s)
    p = _write(d / "vfr.mkv", "libx264", frames=len(pts), rate=Fraction(25), pts=pts, time_base=Fraction(1, 1000),
               audio="aac", options={"bf": "2", "g": "8", "crf": "20", "preset": "veryfast", "threads": "1"})
    return CorpusFile("mkv_vfr", p, len(pts), Fraction(25))


def make_prores(d: Path) -> CorpusFile:
    """ProRes 422 HQ, 10-bit 4:2:2 (prores_ks), in MOV with PCM audio."""
    rate = Fraction(24)
    p = _write(d / "prores.mov", "prores_ks", frames=12, rate=rate, pix_fmt="yuv422p10le",
               options={"profile": "3"}, audio="pcm_s16le")
    return CorpusFile("prores_422_10bit", p, 12, rate)


def make_offset_start(d: Path) -> CorpusFile:
    """H.264 in Matroska whose first frame is at 3.2 s (a cut from a longer recording)."""
    pts = [3200 + 40 * i for i in range(20)]
    p = _write(d / "offset.mkv", "libx264", frames=20, rate=Fraction(25), pts=pts, time_base=Fraction(1, 1000),
               audio="aac", options={"bf": "2", "g": "8", "crf": "20", "preset": "veryfast", "threads": "1"})
    return CorpusFile("offset_start", p, 20, Fraction(25))


def make_damaged(d: Path) -> CorpusFile:
    """MPEG-4 ASP in AVI with the payload of a packet in the middle overwritten with junk."""
    f = make_avi_xvid_bframes(d)
    path = d / "damaged.avi"
    data = bytearray(f.path.read_bytes())
    with av.open(str(f.path)) as c:
        v = c.streams.video[0]
        pk = [(p.pos, p.size) for p in c.demux(v) if p.size]
    pos, size = pk[len(pk) // 2]
    rng = np.random.default_rng(7)
    data[pos + 8:pos + size - 8] = rng.integers(0, 256, size - 16, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return CorpusFile("damaged_packet", path, f.frames, f.fps, damaged=True)


CORPUS: dict[str, Callable[[Path], CorpusFile]] = {
    "avi_divx_packed": make_avi_divx_packed,
    "avi_xvid_bframes": make_avi_xvid_bframes,
    "avi_mjpeg": make_avi_mjpeg,
    "mpeg2_ps": make_mpg,
    "mpeg2_ts": make_ts,
    "mpeg2_vob": make_vob,
    "mpeg2_interlaced": make_interlaced_mpeg2,
    "dv": make_dv,
    "mov_editlist": make_mov_editlist,
    "mkv_vfr": make_mkv_vfr,
    "prores_422_10bit": make_prores,
    "offset_start": make_offset_start,
    "damaged_packet": make_damaged,
}


def tiny_weights(path: Path) -> Path:
    # the tiny formula-filled CodeFormer (64 px crops): a face costs milliseconds on a CPU
    import torch

    from videofix.models.synthetic import formula_codeformer

    torch.save({"params_ema": formula_codeformer(TINY_CODEFORMER).state_dict()}, path)
    return path
