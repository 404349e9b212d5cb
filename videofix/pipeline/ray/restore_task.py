"""Pass 2 of the Ray runner: one task per segment restores its faces and encodes its frames.

A task decodes its segment widened by the context the temporal window needs
(`videofix.pipeline.ray.windows.restore_window`), aligns the faces, sends the crops to a
restorer actor (`RemoteEngine`), pastes the restored crops back with `FaceRestorationPass`
(the one implementation of the stage: `emit_range` / `metrics_from` for the context) and
encodes the segment's own frames to a segment file (`VideoWriter.commit`), then writes its
done marker atomically. Only crops, restored crops, codes and small figures travel through
the object store; frames never do.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from videofix.io import Segment, VideoWriter, open_segment, probe
from videofix.pipeline.analysis import FaceAnalysis
from videofix.settings import RestoreSettings
from videofix.pipeline.ray.figures import METRIC_COUNTERS, paster_figures
from videofix.pipeline.ray.jobdir import read_marker, write_json_atomic
from videofix.pipeline.ray.restorer import RemoteEngine
from videofix.pipeline.ray.worker_cache import worker_film_plan, worker_parser
from videofix.pipeline.report import PreviewCollector
from videofix.pipeline.restoration import FaceRestorationPass


@dataclass
class SegmentWork:
    """Everything a pass-2 task needs (plain data; the analysis is cut to its window)."""

    source: str
    segment: Segment  # the segment's own frames (emitted)
    window: Segment  # segment + context (decoded)
    analysis: dict  # FaceAnalysis.to_dict() of the window
    settings: dict
    segment_path: str  # committed segment file
    marker_path: str  # JSON written atomically once the segment file is committed
    events_path: str | None  # append-only log: one line per finished segment
    item: str
    input_size: int
    chunk: int = 16
    preview_frames: list[int] = field(default_factory=list)
    film: dict | None = None  # the driver's FilmPlan.worker_state()
    decode_window: Segment | None = None  # window + one frame each side when deinterlacing


def _segment_writer(path: str, info, s: RestoreSettings, start_frame: int):
    """The writer of one segment: a video file, or (seq #13: an image-sequence output) a
    folder of frame files named as in the final sequence (a video source's frames numbered
    from the segment's first frame)."""
    from videofix.io.sequence import VIDEO_START_NUMBER, SequenceWriter, is_sequence_pattern

    if is_sequence_pattern(path):
        return SequenceWriter(path, info, s.pix_fmt, first_number=VIDEO_START_NUMBER + start_frame)
    return VideoWriter(path, info, s.codec, s.crf, s.preset, s.pix_fmt, threads=s.encoder_threads)


def restore_segment(work: SegmentWork, actor) -> dict:
    """Pass 2 over one segment: decode (with context), align, restore through `actor`, paste,
    encode the segment's frames to `work.segment_path`, then write the done marker.

    Idempotent: a segment whose marker and file exist is not redone (a task retried after a
    crash that came too late). Returns the marker: frames, faces, metric counters per track,
    object-store bytes, timings; plus the preview pictures asked for (uint8 RGB).
    """
    done = read_marker(work.marker_path)
    if done is not None and Path(work.segment_path).exists():
        return {**done, "already_done": True}
    t0 = time.perf_counter()
    s = RestoreSettings(**work.settings)
    seg, win = work.segment, work.window
    analysis = FaceAnalysis.from_dict(work.analysis)
    parser = worker_parser(s.models_dir) if s.parsing else None
    engine = RemoteEngine(actor, work.input_size, work.chunk)
    # the same deinterlacing, paste-back, repeats and background upscaler as the local runner
    film = worker_film_plan(s, work.film)
    preview_frames = [f for f in work.preview_frames if seg.start_frame <= f < seg.end_frame]
    film_options = film.pass_options(analysis, keep_clean=preview_frames)
    restorer = FaceRestorationPass(analysis, engine, upscale=s.upscale, parser=parser,
                                   emit_range=(seg.start_frame, seg.end_frame), metrics_from=seg.start_frame,
                                   **film_options, paste_options=s.paste_options())
    preview = PreviewCollector(preview_frames, analysis) if preview_frames else None
    info = probe(work.source)
    out_info = info
    if s.upscale != 1:
        out_info = dataclasses.replace(info, width=info.width * s.upscale, height=info.height * s.upscale)
    frames = faces = 0
    regions: dict[str, list] = {}  # track id -> paste region per emitted frame (report)
    try:
        with open_segment(work.source, work.decode_window or win) as reader, \
                _segment_writer(work.segment_path, out_info, s, seg.start_frame) as writer:

            def emit(finished) -> None:
                nonlocal frames, faces
                for done in finished:
                    if preview is not None:
                        preview.add_after(done.frame.index, done.picture)
                    writer.write(done.picture, done.frame.pts)
                    frames += 1
                    if getattr(done, "repeat_of", None) is None:  # a repeat's faces are reused, not restored
                        faces += len(done.faces)
                    for track_id, box in (getattr(done, "regions", None) or {}).items():
                        regions.setdefault(str(track_id), []).append([int(v) for v in box])

            for frame in film.frames(reader, keep=(win.start_frame, win.end_frame)):
                if preview is not None:
                    preview.add_before(frame.index, frame.picture)
                emit(restorer.feed(frame))
            emit(restorer.finish())
            if frames != seg.frame_count:
                raise RuntimeError(f"segment {seg.index}: wrote {frames} frames, the plan says {seg.frame_count}")
            writer.commit()
    finally:
        engine.close()
    film_figures = film.figures()
    if film.interlace.deinterlace:  # the segment's own frames (the local runner's count); the time is all
        film_figures["frames_deinterlaced"] = frames
    marker = {
        "item": work.item,
        "segment": seg.index,
        "frames": frames,
        "faces_restored": faces,
        "max_frames_held": restorer.max_pending,
        "context_frames": win.frame_count - seg.frame_count,
        "metrics": {str(t): {k: getattr(m, k) for k in METRIC_COUNTERS} for t, m in restorer.metrics.items()},
        "paste_regions": regions,
        "bytes_sent": engine.bytes_sent,
        "bytes_received": engine.bytes_received,
        "actor_calls": engine.calls,
        "faces_reused": restorer.faces_reused,
        # damaged / repeated frames, timestamp remarks (videofix.io.timeline) for the report
        "notes": reader.report.report_notes(str(work.source)),
        "film": {"plan": film_figures, "paster": paster_figures(film_options["paster"])},
        "seconds": round(time.perf_counter() - t0, 4),
        "worker": f"{os.uname().nodename}:{os.getpid()}",
    }
    write_json_atomic(work.marker_path, marker)
    if work.events_path:
        with open(work.events_path, "a") as f:  # one short line per write: an atomic append
            f.write(json.dumps({"event": "segment_done", "item": work.item, "segment": seg.index,
                                "worker": marker["worker"], "time": time.time()}) + "\n")
    if preview is not None:
        preview.add_clean(film_options["paster"].clean)
        marker = {**marker, "preview_before": preview.before, "preview_after": preview.after,
                  "preview_clean": preview.clean}
    return marker
