"""SMPTE timecode: frame counts <-> "HH:MM:SS:FF" (drop-frame too), and carrying a source's
timecode and reel name over to an output.

A source's timecode is its first frame's (video stream tags, a MOV `tmcd` track, the
container's tags, or a DPX sequence's first header); an output that starts later (a
`--range`) gets it moved on by the frames it starts after.
"""

from __future__ import annotations

import re
from fractions import Fraction

from videofix.io.info import VideoInfo
from videofix.io.sequence.headers import sequence_timecode

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
