"""What each encoder is and is fed: codec names, mastering profiles, size limits, the
pixel format policy and the encoder options (quality, threads).

`resolve_codec` turns a user's codec name into an FFmpeg encoder, `choose_pix_fmt` picks
the format the encoder gets (the source's, moved to the closest the encoder supports),
`check_codec_size` refuses sizes an encoder is known to crash on, and `encoder_options`
gives the AVOptions of one encode. No file is written here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import av

from videofix.errors import OutputError
from videofix.io.picture import _REPACK, LAYOUTS

log = logging.getLogger("videofix.io")

CODEC_ALIASES = {
    "h264": "libx264", "x264": "libx264", "avc": "libx264", "libx264": "libx264",
    "hevc": "libx265", "h265": "libx265", "x265": "libx265", "libx265": "libx265",
    "ffv1": "ffv1", "lossless": "ffv1",
}
LOSSY_CODECS = {"libx264", "libx265"}
# Reproducible encodes. The streams of libx264 and libx265 depend on how many threads code
# them (x264's also on the kind: frame or slice threads), never on how many cores run those
# threads: a count fixed here gives the same bytes on every machine, while "auto" (FFmpeg's
# and x265's default) follows the CPUs the process may use (a Ray worker, `taskset`, another
# machine). Measured (bench/results/encoder-threads-2026-12-03.md, tests/test_reproducible.py):
# one stream per count in processes pinned to 1 and 2 cores; at 1080p 16 frame threads cost
# the CPU time of one (no overhead), +180 MiB and +0.07% bytes, and let a 16-core machine
# run the encode in parallel instead of one thread capping the whole run. x264 runs frame
# threads: PyAV's default, slice threads, cost bits (+0.8% at 8) and scale worse.
# Not a thread effect: at a few small sizes (96x64, 176x144 seen) PyAV's libx264 gives
# run-to-run different streams even with one thread (valgrind: an uninitialised stack value
# used in its lookahead); sizes from 256x192 to 1080p gave one stream in every run.
X264_THREADS = 16
X264_THREAD_TYPE = "FRAME"
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


def encoder_threads(codec: str, threads: int = 0) -> tuple[int, str | None]:
    """(thread_count, thread_type) for the codec context of an encode with `codec` (an FFmpeg
    encoder name; `threads` 0 = the default). libx264: `threads or X264_THREADS` frame
    threads. Others: `threads` as given (0 = FFmpeg's automatic count) and their own
    threading: libx265's count is set by `encoder_options` (x265-params), and the intra
    codecs (ffv1, prores_ks, dnxhd) code the same stream for any count."""
    if codec == "libx264":
        return threads or X264_THREADS, X264_THREAD_TYPE
    return threads, None


def encoder_options(codec: str, crf: int = 18, preset: str = "medium", threads: int = 0,
                    extra: dict | None = None) -> dict[str, str]:
    """The AVOptions of one encode with `codec` (a user name or an FFmpeg encoder):
    quality (`crf`, `preset`: libx264 / libx265), the fixed thread counts (`threads`; 0 =
    the reproducible default, see X264_THREADS), a mastering profile's own options; then
    `extra` (strings, the caller's last word)."""
    master = mastering_codec(codec)
    name = master.encoder if master is not None else resolve_codec(codec)
    opts: dict[str, str] = {}
    if name == "libx264":
        opts = {"crf": str(crf), "preset": preset, "threads": str(threads or X264_THREADS)}
    elif name == "libx265":
        opts = {"crf": str(crf), "preset": preset,
                "x265-params": f"log-level=error:frame-threads={min(threads or X265_THREADS, 16)}:"
                               f"pools={threads or X265_THREADS}"}
    elif name == "ffv1":
        opts = {"level": "3", "g": "1", "slicecrc": "1"}
    elif master is not None:
        opts = dict(master.options)  # intra-only profiles: no crf, no preset
    opts.update({k: str(v) for k, v in (extra or {}).items()})
    return opts
