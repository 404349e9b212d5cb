"""The Ray runner: one film (or an archive) restored on a Ray cluster.

The video is cut into keyframe-aligned segments (`videofix.io.plan_segments`) and goes
through the same two passes as the local runner, spread over the cluster:

* **pass 1** (CPU tasks, one per segment): decode the segment, run `detect_frames`; the
  detections (a few floats per face) come back to the driver, which links them with
  `link_detections` in frame order, exactly as the local runner does, so the tracks are the
  same. Shot boundaries (TransNetV2, `videofix.faces.shots`): each task returns the network's
  probabilities for the windows inside its segment and the 48x27 thumbnails of its ends; the
  driver computes the windows across the boundaries and decides every frame's cut as one
  streamed run would (`join_segment_shots`, `decide_shots`). The film survey (`videofix.film`: chroma score per
  frame, repeated frames) runs in the same tasks and is joined by `FilmSurvey.merge`; the
  driver then decides the per-shot colour modes and repeat runs exactly as the local runner.
* **pass 2** (CPU tasks, one per segment): decode the segment widened by R + 1 context
  frames before and R after (R = temporal radius), align the faces, send the **crops** to a
  restorer actor, paste the restored crops back with `FaceRestorationPass` (the one
  implementation of the stage, `emit_range` / `metrics_from` for the context) and encode
  the segment's own frames to a segment file (`VideoWriter.commit`). The driver joins the
  segment files and muxes audio once (`join_segments`).
* **restorer actors** (one per GPU, `num_gpus=1`; one CPU actor on a cluster without GPUs)
  hold a `TemporalRestorer` per segment task; their network calls go through a
  `CoalescingRestorer` that merges the batches of all segments the actor serves, so the
  GPU sees full batches.

Because every segment sees the same frames around its boundaries that the whole-film run
sees (the temporal window is +-R restored frames of each track; repeated frames are not
restored, so the context reaches back past them, and back to the first frame of a run of
repeats that crosses the segment's start; interlaced sources are deinterlaced with one more
decoded frame on each side, as bwdif reads the frames before and after), and the network only ever runs
fixed-shape batches (`FixedBatchRestorer`, in both runners: a face's output then does not
depend on its batch neighbours), the output frames equal the local runner's (in lossless
mode the files decode to identical frames). Only face crops, restored crops,
codes and small metadata go through the object store; frames never do. The bytes are
measured and reported.

The scheduling over segments and files, the job directory and resume live in
`videofix.pipeline.jobs`; `restore_video_ray` is a one-file job in a temporary directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import pickle
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ray

from videofix import atomic
from videofix.errors import ClusterError, InputError, UsageError
from videofix.faces import FaceTrack
from videofix.io import Segment, SegmentPlan, VideoWriter, open_segment, probe
from videofix.metrics import TrackMetrics
from videofix.pipeline.analysis import FaceAnalysis, FrameDetections, detect_frames, detection_image
from videofix.pipeline.local import LoadedStages, RestoreSettings, make_engine
from videofix.pipeline.report import PreviewCollector
from videofix.pipeline.restoration import FaceRestorationPass
from videofix.restore.batching import fixed_batch_model
from videofix.restore.temporal import RestoredFace

log = logging.getLogger("videofix")

# TrackMetrics counters that add up over segments (see FaceRestorationPass.metrics_from)
METRIC_COUNTERS = ("changed_tokens", "compared_tokens", "restored_abs_diff", "input_abs_diff",
                   "compared_values", "frames")


@dataclass
class RayOptions:
    """How the Ray runner uses the cluster.

    address: None = start an embedded local Ray sized to the machine (stopped at the end);
        "auto" or "ray://host:port" (or host:port) = join that cluster.
    segments / segment_seconds: how each video is cut (default: 2 segments per CPU).
    restorers: restorer actors (default: one per GPU, else one CPU actor).
    chunk: crops sent to the actor per call (more = fewer round trips, more frames held).
    max_retries: times a task is re-run after a worker crash (bad input is never retried).
    """

    address: str | None = None
    segments: int | None = None
    segment_seconds: float | None = None
    restorers: int | None = None
    chunk: int = 16
    max_retries: int = 2

    def validate(self) -> None:
        if self.segments is not None and self.segments < 1:
            raise UsageError(f"--segments must be >= 1, got {self.segments}")
        if self.segment_seconds is not None and self.segment_seconds <= 0:
            raise UsageError(f"--segment-seconds must be > 0, got {self.segment_seconds}")
        if self.segments is not None and self.segment_seconds is not None:
            raise UsageError("give --segments or --segment-seconds, not both")
        if self.restorers is not None and self.restorers < 1:
            raise UsageError(f"--restorers must be >= 1, got {self.restorers}")
        if self.chunk < 1:
            raise UsageError(f"chunk must be >= 1, got {self.chunk}")


# --------------------------------------------------------------------------- cluster
@contextlib.contextmanager
def ray_session(address: str | None = None, *, quiet: bool = True):
    """Connect to Ray for the length of a run.

    address None: start an embedded local cluster with every CPU (and GPU) of this machine,
    no dashboard, and shut it down at the end. "auto", "host:port" or "ray://host:port": join
    that cluster (disconnect at the end). When this process is already connected (a test
    fixture, a notebook), that connection is used and left open.
    """
    if ray.is_initialized():
        yield
        return
    kwargs = dict(include_dashboard=False, log_to_driver=not quiet, logging_level=logging.WARNING,
                  configure_logging=True)
    if address is None:
        # a private, local-only cluster: no token file written into the user's home
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=os.cpu_count() or 1, **kwargs)
    else:
        connect(address, **kwargs)
    try:
        yield
    finally:
        ray.shutdown()


# Errors of a Ray client connection that a new attempt can get past: the head's proxy could
# not start the job's client server process (seen on a loaded 2-core machine) or dropped it.
_TRANSIENT = ("Starting Ray client server failed", "Proxy failed to Connect to backend", "Initialization failure")


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of "host:port" or "ray://host:port"; None for "auto" and other forms."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def connect(address: str, *, attempts: int = 3, reach_timeout_s: float = 5.0, **kwargs) -> None:
    """`ray.init(address=...)` for a cluster that runs already, failing with one line.

    The address's port is tried first (`reach_timeout_s`): a wrong address fails at once with
    `ClusterError` instead of Ray retrying the GCS for minutes. A client connection
    (``ray://``) whose server side failed to start is tried `attempts` times. Any other
    failure of `ray.init` is a `ClusterError` naming the address."""
    import socket

    target = _host_port(address)
    if target is not None:
        try:
            socket.create_connection(target, timeout=reach_timeout_s).close()
        except OSError as exc:
            raise ClusterError(f"cannot reach the Ray cluster at {address}: "
                               f"{exc.strerror or type(exc).__name__}") from exc
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, **kwargs)
            return
        except Exception as exc:  # noqa: BLE001 - any failure to join is the cluster's, said in one line
            with contextlib.suppress(Exception):
                ray.shutdown()
            lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
            # a server-side traceback inside the message: its last "...Error: ..." line says why
            said = [x for x in lines if re.match(r"^[\w.]+(Error|Exception): ", x)]
            first = said[-1] if said else (lines[0] if lines else type(exc).__name__)
            if attempt < attempts and any(t in str(exc) for t in _TRANSIENT):
                log.warning("connecting to the Ray cluster at %s failed (%s); trying again (%d of %d)",
                            address, first, attempt + 1, attempts)
                time.sleep(2.0 * attempt)
                continue
            raise ClusterError(f"cannot connect to the Ray cluster at {address}: {first}") from exc


def cluster_shape() -> dict:
    """{"cpus": int, "gpus": int, "nodes": int} of the connected cluster."""
    res = ray.cluster_resources()
    return {"cpus": int(res.get("CPU", 0)), "gpus": int(res.get("GPU", 0)),
            "nodes": sum(1 for n in ray.nodes() if n.get("Alive"))}


# --------------------------------------------------------------------------- per-worker caches
@functools.lru_cache(maxsize=4)
def _detector(name: str, models_dir: str | None, score_threshold: float | None = None):
    """The detector of a CPU worker, built once per worker process (workers are reused).
    score_threshold: `--det-threshold` (None: the backend's own)."""
    from videofix.faces import create_detector

    return create_detector(name, models_dir, "cpu", score_threshold=score_threshold)


@functools.lru_cache(maxsize=2)
def _parser(models_dir: str | None):
    from videofix.faces import load_face_parser

    return load_face_parser(models_dir, device="cpu", download=False)


@functools.lru_cache(maxsize=2)
def _upscaler(name: str, models_dir: str | None, download: bool):
    """The background upscaler (Real-ESRGAN: a network) of a worker, loaded once per process."""
    from videofix.film.upscale import create_upscaler

    return create_upscaler(name, models_dir=models_dir, device="cpu", download=download)


def _film_plan(s: RestoreSettings, state: dict | None):
    """A fresh `FilmPlan` (its figures are this task's) from the driver's decisions, with the
    worker's cached upscaler: nothing is probed or loaded per segment."""
    from videofix.film.plan import FilmPlan

    upscaler = _upscaler(s.upscaler, s.models_dir, bool(s.download)) if s.upscale > 1 else None
    return FilmPlan.for_worker(s, state or {"deinterlace": False, "parity": None, "reason": ""}, upscaler=upscaler)


# --------------------------------------------------------------------------- pass 1
@dataclass
class SegmentDetections:
    """What a pass-1 task returns for one segment (small: no frames, a few small thumbnails).

    frames: `FrameDetections` with plan frame indices; their `cut` flags are decided by the
        driver from every segment's `shots` (`join_detections`).
    pts: source pts of every frame of the segment, in order.
    shots: the shot-boundary network's probabilities and edge thumbnails (`SegmentShots`).
    """

    index: int
    frames: list[FrameDetections]
    pts: list[int]
    detector: str
    shots: object  # videofix.faces.shots.SegmentShots
    seconds: float
    film: object | None = None  # videofix.film.plan.SegmentSurvey
    film_figures: dict = field(default_factory=dict)  # FilmPlan.figures() (deinterlacing)


def detect_segment(source: str, segment: Segment, settings: dict, need_head: bool, film: dict | None = None,
                   window: Segment | None = None) -> SegmentDetections:
    """Pass 1 over one segment: detections in full-frame coordinates, cut flags, pts, and the
    film survey (`film`: the driver's `FilmPlan.worker_state()`; None = no film processing).
    window: what to decode, the segment with one frame on each side when deinterlacing.
    Shot boundaries: the network's probabilities and edge thumbnails (`SegmentShots`) for the
    driver; need_head is no longer used (every segment sends its edges)."""
    from videofix.faces.shots import SegmentShotRecorder

    t0 = time.perf_counter()
    s = RestoreSettings(**settings)
    detector = _detector(s.detector, s.models_dir, s.det_threshold)
    shots = SegmentShotRecorder(segment.start_frame)
    plan = _film_plan(s, film) if film is not None else None
    survey = plan.survey(segment.start_frame) if plan is not None else None
    pts: list[int] = []

    def frames(reader):
        for f in reader:
            pts.append(int(f.pts))
            yield f

    def observer(i, rgb, dets, cut):
        # cuts are decided by the driver; the duplicate check only uses a cut to refuse a
        # repeat across it, and TransNetV2 never cuts between two identical frames
        survey(segment.start_frame + i, rgb, dets, cut)

    out = []
    with open_segment(source, window or segment) as reader:
        src = reader
        if plan is not None:  # deinterlaced (window frames outside the segment only feed bwdif), colour scores
            src = plan.frames(reader, survey, keep=(segment.start_frame, segment.end_frame))
        # detect_frames numbers frames from 0: renumber to the plan
        for fd in detect_frames(frames(src), detector, observer=observer if survey is not None else None,
                                shots=shots):
            out.append(FrameDetections(segment.start_frame + fd.index, fd.detections, False))
    return SegmentDetections(segment.index, out, pts, detector.name, shots.result(), time.perf_counter() - t0,
                             survey.segment_result() if survey is not None else None,
                             plan.figures() if plan is not None else {})


def redo_duplicates(source: str, segment: Segment, window: Segment | None, settings: dict, film: dict,
                    frames: list[FrameDetections], finder, from_index: int) -> None:
    """Feed `finder` (a `DuplicateFinder`) frames [from_index, segment end) decoded again: the
    rare fallback of `FilmSurvey.merge` when a segment's head thumbnails do not reach the
    frame where its own duplicate check meets the whole video's."""
    from videofix.film.plan import FilmPlan

    plan = FilmPlan.for_worker(RestoreSettings(**settings), film)  # no upscaler: it runs on the driver
    by_index = {fd.index: fd for fd in frames}
    with open_segment(source, window or segment) as reader:
        for f in plan.frames(reader, keep=(from_index, segment.end_frame)):
            fd = by_index[f.index]
            finder.update(f.index, detection_image(f.picture)[0], fd.detections, fd.cut)


def join_detections(parts: list[SegmentDetections]) -> list[FrameDetections]:
    """Frame detections of consecutive segments, in frame order, with every frame's shot
    decision (cut, soft, in transition) made from the joined probabilities exactly as a
    one-piece `detect_frames` run makes them."""
    from videofix.faces.shots import decide_shots, join_segment_shots

    parts = sorted(parts, key=lambda p: p.index)
    frames: list[FrameDetections] = [fd for part in parts for fd in part.frames]
    single, many = join_segment_shots([p.shots for p in parts])
    first = frames[0].index if frames else 0
    for d in decide_shots(single, many):
        fd = frames[d.index]
        frames[d.index] = FrameDetections(first + d.index, fd.detections, bool(d.cut), bool(d.soft),
                                          bool(d.in_transition))
    return frames


# --------------------------------------------------------------------------- windows
def plan_frame_pts(path: str | os.PathLike, plan: SegmentPlan) -> list[int]:
    """The source pts of every frame of `plan`, from the packets (no decoding): what pass 1
    needs to widen its segments by a frame before pass 1 has returned the pts."""
    from videofix.io.segments import frame_pts

    _, pts, _ = frame_pts(path, plan.range)
    if len(pts) != plan.frame_count:
        raise InputError(f"{path}: {len(pts)} frames, the segment plan says {plan.frame_count} (file changed?)")
    return pts


def context_window(plan: SegmentPlan, segment: Segment, pts: list[int], before: int, after: int) -> Segment:
    """`segment` widened by `before` frames before it and `after` after it (clipped to the
    plan), as a `Segment` `open_segment` can decode. `pts`: source pts of every planned frame.

    The widened start is usually not a keyframe: the reader seeks to its pts (FFmpeg lands on
    the keyframe before it) and drops the frames in between; if that fails it falls back on
    the keyframe that starts the segment holding the first context frame, then on the start.
    """
    n = plan.frame_count
    lo = max(0, segment.start_frame - before)
    hi = min(n, segment.end_frame + after)
    if lo == segment.start_frame:
        seek, preroll = segment.seek_pts, segment.preroll_pts
    else:
        holder = next(s for s in plan.segments if s.start_frame <= lo < s.end_frame)
        seek = None if (lo == 0 and plan.range is None) else pts[lo]
        preroll = holder.seek_pts if holder.seek_pts != seek else None
    return Segment(index=segment.index, start_frame=lo, end_frame=hi, start_pts=pts[lo],
                   end_pts=pts[hi] if hi < n else None, seek_pts=seek, preroll_pts=preroll)


def restore_window(plan: SegmentPlan, segment: Segment, pts: list[int], radius: int, repeats: dict[int, int],
                   *, deinterlace: bool = False) -> tuple[Segment, Segment]:
    """(restore window, decode window) of a pass-2 segment task.

    The restore window holds R + 1 restored frames before the segment (R for the temporal
    window of its first frames, one to open the first metrics pair) and R after it; repeated
    frames (`repeats`: frame -> its run's first frame) are not restored, so it reaches past
    them, and back to the first frame of a run that crosses the segment's start. The decode
    window adds one frame on each side when deinterlacing (bwdif reads the neighbours)."""
    n = plan.frame_count
    lo, need = segment.start_frame, radius + 1
    while lo > 0 and need > 0:
        lo -= 1
        need -= lo not in repeats
    hi, need = segment.end_frame, radius
    while hi < n and need > 0:
        need -= hi not in repeats
        hi += 1
    win = context_window(plan, segment, pts, segment.start_frame - lo, hi - segment.end_frame)
    if not deinterlace:
        return win, win
    return win, context_window(plan, segment, pts, segment.start_frame - max(0, lo - 1),
                               min(n, hi + 1) - segment.end_frame)


def analysis_window(analysis: FaceAnalysis, lo: int, hi: int) -> FaceAnalysis:
    """The tracks of frames [lo, hi) only (landmarks already smoothed over the whole track,
    so a window keeps them exactly); what a segment task needs, not the whole film's. The
    film decisions (`extra["film"]`: shots, repeat runs) are cut to the window too."""
    tracks = []
    for t in analysis.tracks:
        keep = (t.frames >= lo) & (t.frames < hi)
        if not keep.any():
            continue
        tracks.append(FaceTrack(track_id=t.track_id, frames=t.frames[keep], boxes=t.boxes[keep],
                                raw_landmarks=t.raw_landmarks[keep], landmarks=t.landmarks[keep],
                                scores=t.scores[keep], detected=t.detected[keep], embedding=None))
    extra = {}
    film = analysis.extra.get("film")
    if film is not None:
        extra["film"] = {**film, "shots": [sh for sh in film.get("shots", []) if sh["end"] > lo and sh["start"] < hi],
                         "repeat_runs": [r for r in film.get("repeat_runs", []) if r[1] >= lo and r[0] < hi]}
    return FaceAnalysis(frame_count=hi - lo, cuts=[c for c in analysis.cuts if lo <= c < hi], tracks=tracks,
                        detector=analysis.detector, frame_size=analysis.frame_size, extra=extra,
                        soft_cuts=[c for c in analysis.soft_cuts if lo <= c < hi],
                        transitions=[t for t in analysis.transitions if t[1] >= lo - 1 and t[0] < hi],
                        cut_detector=analysis.cut_detector)


# --------------------------------------------------------------------------- restorer actor
class CoalescingRestorer:
    """A `CodeRestorer` that merges the network calls of concurrent callers into one batch.

    A restorer actor serves many segment tasks at once, each through its own
    `TemporalRestorer` in its own actor thread. Each engine calls `encode` / `decode` with its
    own (often partial) batch; the calls waiting at the same time are concatenated along the
    batch, run as one network call and split back. One call runs at a time, so the GPU is
    never shared between threads. Results equal per-caller calls up to the network's batch
    invariance, which `FixedBatchRestorer` (the model given here) makes exact.

    Args:
        model: the network (`encode(x)`, `decode(codes, state, fidelity)`, `input_size`...).
        max_batch: most faces merged into one call (a caller's own batch is never split).
    """

    fixed_batch = True  # wraps a FixedBatchRestorer: make_engine must not wrap it again

    def __init__(self, model, max_batch: int):
        self.model = model
        self.input_size = model.input_size
        self.num_tokens = model.num_tokens
        self.codebook_size = model.codebook_size
        self.max_batch = max(1, int(max_batch))
        self._cond = threading.Condition()
        self._queue: list[dict] = []
        self._busy = False
        self.calls = 0
        self.faces = 0
        self.merged_calls = 0

    def parameters(self):
        return self.model.parameters()

    def encode(self, x):
        return self._submit(("encode",), (x,), len(x))

    def decode(self, codes, state, fidelity):
        return self._submit(("decode", float(fidelity)), (codes, state), len(codes))

    def _submit(self, kind: tuple, args: tuple, size: int):
        req = {"kind": kind, "args": args, "size": size, "done": False, "result": None, "error": None}
        with self._cond:
            self._queue.append(req)
            while not req["done"] and self._busy:
                self._cond.wait()
            if req["done"]:
                return self._result(req)
            self._busy = True  # this thread runs its own request and those of its kind waiting
            batch, total = [req], size
            for r in self._queue:
                if r is not req and r["kind"] == kind and total + r["size"] <= self.max_batch:
                    batch.append(r)
                    total += r["size"]
            taken = {id(r) for r in batch}  # by identity: requests hold tensors
            self._queue = [r for r in self._queue if id(r) not in taken]
        try:
            self._run(kind, batch)
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
        return self._result(req)

    @staticmethod
    def _result(req):
        if req["error"] is not None:
            raise req["error"]
        return req["result"]

    def _run(self, kind: tuple, batch: list[dict]) -> None:
        import torch

        try:
            sizes = [r["size"] for r in batch]
            if kind[0] == "encode":
                if len(batch) == 1:
                    outs = [self.model.encode(batch[0]["args"][0])]
                else:
                    enc = self.model.encode(torch.cat([r["args"][0] for r in batch]))
                    outs, a = [], 0
                    for n in sizes:
                        outs.append(enc.select(slice(a, a + n)))
                        a += n
            else:
                if len(batch) == 1:
                    outs = [self.model.decode(batch[0]["args"][0], batch[0]["args"][1], kind[1])]
                else:
                    states = [r["args"][1] for r in batch]
                    state = {k: torch.cat([st[k] for st in states]) for k in states[0]}
                    out = self.model.decode(torch.cat([r["args"][0] for r in batch]), state, kind[1])
                    outs = list(torch.split(out, sizes))
            self.calls += 1
            self.merged_calls += len(batch) > 1
            self.faces += sum(sizes)
            for r, o in zip(batch, outs):
                r["result"], r["done"] = o, True
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            for r in batch:
                r["error"], r["done"] = exc, True


class RestorerActor:
    """Runs the temporal restoration engines of the segment tasks (one engine per task run).

    `run(key, ops)` applies a list of engine operations to the engine `key`, in order:
    ("push", track_id, frame_index, crop uint8 SxSx3 RGB) / ("end", track_id) / ("flush",),
    and returns the faces restored meanwhile as (track_id, frame_index, image uint8 SxSx3
    RGB, codes int16/int32 (T,)). Engines are created on first use and dropped on flush or
    `drop(key)`. Threaded (max_concurrency): the engines' network calls are merged by a
    `CoalescingRestorer`. The engine is built by `make_engine`, as the local runner's.
    """

    def __init__(self, settings: dict):
        from videofix.models import load_restorer

        s = RestoreSettings(**settings)
        self.settings = s
        model = load_restorer(s.weights, s.models_dir, s.model, s.device, s.dtype, download=s.download, quiet=True)
        self.device = next(model.parameters()).device
        if self.device.type == "cpu":
            # Ray starts workers with OMP_NUM_THREADS=1; a CPU network's float sums depend on
            # its thread count, so run with the machine's threads like the local runner does
            import torch

            torch.set_num_threads(os.cpu_count() or 1)
        # merged calls run in chunks of exactly batch_size faces, as the local runner's
        self.model = CoalescingRestorer(fixed_batch_model(model, self.device, s.batch_size), max_batch=4 * s.batch_size)
        self.engines: dict[str, object] = {}
        self._lock = threading.Lock()
        self.code_dtype = np.int16 if model.codebook_size <= np.iinfo(np.int16).max else np.int32

    def describe(self) -> dict:
        return {"device": str(self.device), "input_size": int(self.model.input_size),
                "node": ray.get_runtime_context().get_node_id()}

    def run(self, key: str, ops: list[tuple]) -> list[tuple]:
        with self._lock:
            engine = self.engines.get(key)
            if engine is None:
                engine = self.engines[key] = make_engine(LoadedStages(self.model, None, None, self.device),
                                                         self.settings)
        results: list[RestoredFace] = []
        for op in ops:
            if op[0] == "push":
                results += engine.push(op[1], op[2], op[3])
            elif op[0] == "end":
                results += engine.end_track(op[1])
            elif op[0] == "flush":
                results += engine.flush()
                self.drop(key)
            else:
                raise ValueError(f"unknown engine operation {op[0]!r}")
        return [(int(r.track_id), int(r.frame_key), r.image, r.codes.astype(self.code_dtype)) for r in results]

    def drop(self, key: str) -> None:
        with self._lock:
            self.engines.pop(key, None)

    def stats(self) -> dict:
        return {"network_calls": self.model.calls, "merged_calls": self.model.merged_calls,
                "faces": self.model.faces, "engines": len(self.engines)}


class RemoteEngine:
    """The `TemporalRestorer` interface (`push`, `end_track`, `flush`, `size`) of an engine
    living in a restorer actor, for `FaceRestorationPass`.

    Operations are sent in chunks of `chunk` crops, one call in flight while the caller
    aligns the next chunk; faces come back from later calls (the pass holds its frames until
    they do). Counts the bytes it sends and receives, pickled as the object store holds them.
    """

    def __init__(self, actor, size: int, chunk: int = 16):
        self.actor = actor
        self.size = int(size)
        self.chunk = int(chunk)
        self.key = uuid.uuid4().hex  # a retried task gets a fresh engine
        self._ops: list[tuple] = []
        self._crops = 0
        self._inflight = None
        self._ready: list[RestoredFace] = []
        self.bytes_sent = 0
        self.bytes_received = 0
        self.calls = 0
        self.flushed = False

    def push(self, track_id, frame_key, crop, cut_before: bool = False) -> list[RestoredFace]:
        self._ops.append(("push", int(track_id), int(frame_key), np.ascontiguousarray(crop)))
        self._crops += 1
        if self._crops >= self.chunk:
            self._send()
        return self._take()

    def end_track(self, track_id) -> list[RestoredFace]:
        self._ops.append(("end", int(track_id)))
        return self._take()

    def flush(self) -> list[RestoredFace]:
        self._ops.append(("flush",))
        self._send()
        self._wait()
        self.flushed = True
        return self._take()

    def close(self) -> None:
        """Free the actor's engine if this run stopped before its flush."""
        if not self.flushed:
            with contextlib.suppress(Exception):
                ray.get(self.actor.drop.remote(self.key), timeout=30)

    def _send(self) -> None:
        self._wait()  # one call in flight, so the engine sees the operations in order
        if not self._ops:
            return
        self.bytes_sent += len(pickle.dumps(self._ops, protocol=5))
        self._inflight = self.actor.run.remote(self.key, self._ops)
        self.calls += 1
        self._ops, self._crops = [], 0

    def _wait(self) -> None:
        if self._inflight is None:
            return
        faces = ray.get(self._inflight)
        self._inflight = None
        self.bytes_received += len(pickle.dumps(faces, protocol=5))
        self._ready += [RestoredFace(track_id=t, frame_key=f, image=img, codes=codes.astype(np.int64))
                        for t, f, img, codes in faces]

    def _take(self) -> list[RestoredFace]:
        out, self._ready = self._ready, []
        return out


# --------------------------------------------------------------------------- pass 2
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


def read_marker(path: str | os.PathLike) -> dict | None:
    """The done marker of a segment, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


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
    parser = _parser(s.models_dir) if s.parsing else None
    engine = RemoteEngine(actor, work.input_size, work.chunk)
    # the same deinterlacing, paste-back, repeats and background upscaler as the local runner
    film = _film_plan(s, work.film)
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


def paster_figures(paster) -> dict:
    """A `FilmPaster`'s report figures as plain data (summed over segments by `merge_pasters`)."""
    return {"luma_faces": paster.luma_faces, "color_faces": paster.color_faces, "seconds": dict(paster.seconds),
            "grain": {str(t): [st.faces, st.ring, st.face, st.added] for t, st in paster.stats.items()}}


def merge_pasters(figures: list[dict], options) -> object:
    """A `FilmPaster` holding the sums of segments' `paster_figures` (for `FilmPlan.report`)."""
    from videofix.film.paste import FilmPaster, GrainStats

    out = FilmPaster(grain=options.grain != "off", seed=options.grain_seed)
    for f in figures:
        out.luma_faces += f.get("luma_faces", 0)
        out.color_faces += f.get("color_faces", 0)
        for k, v in f.get("seconds", {}).items():
            out.seconds[k] = out.seconds.get(k, 0.0) + v
        for t, (faces, ring, face, added) in f.get("grain", {}).items():
            st = out.stats.setdefault(int(t), GrainStats())
            st.faces += faces
            st.ring += ring
            st.face += face
            st.added += added
    return out


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """JSON under a temporary name in the same folder, then renamed (never half a file)."""
    atomic.write_text(path, json.dumps(data, indent=1))


def sum_metrics(markers: list[dict]) -> dict[int, TrackMetrics]:
    """Per-track `TrackMetrics` of a whole video from its segments' counters (exact: the
    counters are integers, or sums of integer-valued floats)."""
    out: dict[int, TrackMetrics] = {}
    for m in markers:
        for t, counters in m.get("metrics", {}).items():
            acc = out.setdefault(int(t), TrackMetrics())
            for k in METRIC_COUNTERS:
                setattr(acc, k, getattr(acc, k) + counters[k])
    return out


# --------------------------------------------------------------------------- task attempts
def run_attempt(record: dict | None, fn, *args):
    """Run `fn(*args)` (a segment task: `detect_segment`, `restore_segment`) and record the
    attempt in the job's attempts log: a "start" line before and an "end" line after it.

    record: {"path": attempts log, "item": item id, "pass": 1 | 2, "segment": index}, or
    None (nothing recorded). Each line is one JSON object: event, item, pass, segment,
    attempt (a fresh id per run), node (Ray node id hex), pid, time. Ray re-runs a task
    whose worker or node died; the log is how the driver tells which node a segment was
    running on when that node was lost and which segments were redone (see
    `jobs.JobRunner`). One short line per write: an atomic append (O_APPEND).
    """
    if record is None:
        return fn(*args)
    line = {k: record[k] for k in ("item", "pass", "segment")}
    line.update(attempt=uuid.uuid4().hex[:12], node=ray.get_runtime_context().get_node_id(), pid=os.getpid())

    def write(event: str) -> None:
        with open(record["path"], "a") as f:
            f.write(json.dumps({"event": event, **line, "time": time.time()}) + "\n")

    write("start")
    result = fn(*args)
    write("end")
    return result


# --------------------------------------------------------------------------- remote wrappers
detect_segment_task = ray.remote(detect_segment)
restore_segment_task = ray.remote(restore_segment)
attempt_task = ray.remote(run_attempt)  # a segment task recorded in the attempts log
RestorerActorRemote = ray.remote(RestorerActor)


def start_restorers(settings: RestoreSettings, count: int | None = None) -> tuple[list, list[dict]]:
    """Start the restorer actors: one per GPU of the cluster (num_gpus=1 each) unless
    `--device cpu`; on a cluster without GPUs one CPU actor that reserves no CPU (on CPU the
    segment tasks mostly wait for it). Returns (handles, their `describe()`)."""
    shape = cluster_shape()
    use_gpu = shape["gpus"] > 0 and not settings.device.startswith("cpu")
    n = count or (shape["gpus"] if use_gpu else 1)
    opts = dict(max_restarts=2, max_task_retries=0, max_concurrency=16)
    if use_gpu:
        opts.update(num_gpus=1, num_cpus=1)
    else:
        opts.update(num_cpus=0)
    actors = [RestorerActorRemote.options(**opts).remote(settings.to_dict()) for _ in range(n)]
    described = ray.get([a.describe.remote() for a in actors])
    return actors, described


# --------------------------------------------------------------------------- one film
def restore_video_ray(input_path: str | os.PathLike, output_path: str | os.PathLike, settings: RestoreSettings, *,
                      address: str | None = None, segments: int | None = None, segment_seconds: float | None = None,
                      report_path: str | os.PathLike | None = None, preview_path: str | os.PathLike | None = None,
                      quiet: bool = False, restorers: int | None = None, chunk: int = 16) -> dict:
    """`videofix restore --ray`: restore one video on a Ray cluster; returns the report.

    The report has the local runner's keys plus `ray` (segments, restorers, object-store
    bytes per frame, ...). The output appears atomically at the end; segment files live in a
    hidden temporary job folder next to the output (shared storage on a real cluster) and are
    removed at the end. Raises `VideofixError`s like the local runner.
    """
    from videofix.pipeline.jobs import run_single

    options = RayOptions(address=address, segments=segments, segment_seconds=segment_seconds,
                         restorers=restorers, chunk=chunk)
    return run_single(input_path, output_path, settings, options, report_path=report_path,
                      preview_path=preview_path, quiet=quiet)
