"""The final remux: the encoded video and everything else of the source, into the output.

`finalize_output` builds the output by stream copy under a temporary name
(`videofix.atomic`) and renames it onto the output's name: the encoded video (from
`VideoWriter.close()` or `join_segments`), every audio / subtitle stream and attachment of
the source (bit-exact packets, trimmed to a range if one is given), container metadata,
chapters, rotation, colour tags, sample aspect ratio and timecode. The input is never
written, and an output that is the input is refused (`refuse_same_path`).
"""

from __future__ import annotations

import heapq
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from videofix.atomic import AtomicFile
from videofix.errors import InputError, OutputError
from videofix.io.info import TECHNICAL_METADATA, TimeRange, VideoInfo, open_input, parse_range, probe
from videofix.io.timecode import carry_timecode

log = logging.getLogger("videofix.io")

BITEXACT = {"fflags": "+bitexact"}  # container options of every output file videofix writes
_STREAM_METADATA_SKIP = TECHNICAL_METADATA | {"handler_name", "vendor_id", "_STATISTICS_TAGS",
                                              "_STATISTICS_WRITING_APP", "_STATISTICS_WRITING_DATE_UTC",
                                              "NUMBER_OF_FRAMES", "NUMBER_OF_BYTES", "BPS"}


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


def _frac(tb) -> Fraction:
    return Fraction(tb.numerator, tb.denominator)


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
    part = AtomicFile(out_path, "part")
    video_in = src = out = None
    try:
        video_in = av.open(str(video_path))
        vin = video_in.streams.video[0]
        src = open_input(info.path)
        # bitexact: no random Matroska UIDs, no date or muxer version: the same input and
        # settings give the same bytes
        out = av.open(str(part.path), "w", container_options=BITEXACT)
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
        part.commit()
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
        part.discard()
    if remove_video and Path(video_path).exists():
        Path(video_path).unlink()
    return out_path
