"""Jobs: the plan and the state of a Ray run on disk, and the driver that schedules it.

A job directory holds everything needed to continue after a kill (Ctrl-C, a crashed node,
a lost driver)::

    JOB/plan.json                      settings, Ray options, the items (input -> output)
    JOB/events.log                     one JSON line per finished segment (appended by tasks)
    JOB/attempts.log                   one JSON line per start / end of a segment task run, with
                                       the Ray node that ran it (node loss, redone segments)
    JOB/summary.json                   the last run's summary (done / failed / skipped)
    JOB/items/<id>/state.json          pending | running | done | failed | skipped (+ reason)
    JOB/items/<id>/segments.json       the item's `SegmentPlan`
    JOB/items/<id>/analysis.json       pass 1 (tracks, cuts, pts of every frame)
    JOB/items/<id>/seg-00003.mkv       a committed segment file (video only)
    JOB/items/<id>/seg-00003.done      its marker, written atomically after the commit
    JOB/items/<id>/report.json         the item's report once its output is finished

Resume = plan minus done: finished items are skipped, pass 1 is reused when saved,
segments with a marker are not redone, temporary files of killed writers are deleted, and
an output appears (atomic rename) only when complete; a finished output is never rewritten.
A bad input fails alone with its reason; the other items go on. Worker crashes are retried
by Ray (`max_retries`), bad input never is. When a node of the cluster dies, Ray re-runs the
tasks it was running on the other nodes; the driver logs which node was lost, which segments
it was running and which segments were redone where (from the attempts log), and the
summary lists them (`nodes_lost`, `redone`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray

from videofix import atomic
from videofix.errors import ClusterError, InputError, UsageError, VideofixError
from videofix.io import SegmentPlan, check_output, join_segments, plan_segments, probe
from videofix.io.sequence import is_sequence_pattern, join_sequence
from videofix.pipeline.analysis import FaceAnalysis, link_detections
from videofix.pipeline.distributed import (
    RayOptions,
    SegmentWork,
    analysis_window,
    attempt_task,
    cluster_shape,
    context_window,
    detect_segment,
    join_detections,
    merge_pasters,
    plan_frame_pts,
    ray_session,
    read_marker,
    redo_duplicates,
    restore_segment,
    restore_window,
    start_restorers,
    sum_metrics,
    write_json_atomic,
)
from videofix.pipeline.local import RestoreSettings
from videofix.pipeline.report import PreviewCollector, choose_preview_frames, run_report

log = logging.getLogger("videofix")

PLAN_VERSION = 1
STATES = ("pending", "running", "done", "failed", "skipped")


# --------------------------------------------------------------------------- the job directory
class JobDir:
    """The files of one job (see the module docstring). Plain paths; every write is atomic."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def plan_path(self) -> Path:
        return self.root / "plan.json"

    @property
    def events_path(self) -> Path:
        return self.root / "events.log"

    @property
    def attempts_path(self) -> Path:
        return self.root / "attempts.log"

    def exists(self) -> bool:
        return self.plan_path.exists()

    def create(self, items: list[dict], settings: RestoreSettings, options: RayOptions) -> dict:
        self.root.mkdir(parents=True, exist_ok=True)
        plan = {"version": PLAN_VERSION, "created": time.time(), "settings": settings.to_dict(),
                "segments": options.segments, "segment_seconds": options.segment_seconds, "items": items}
        write_json_atomic(self.plan_path, plan)
        for item in items:
            self.item_dir(item["id"]).mkdir(parents=True, exist_ok=True)
            self.set_state(item["id"], "pending")
        return plan

    def load(self) -> dict:
        try:
            plan = json.loads(self.plan_path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.root}: not a videofix job directory ({exc})") from None
        if plan.get("version") != PLAN_VERSION:
            raise UsageError(f"{self.plan_path}: job plan version {plan.get('version')} is not {PLAN_VERSION}")
        return plan

    def item_dir(self, item_id: str) -> Path:
        return self.root / "items" / item_id

    def state(self, item_id: str) -> dict:
        return read_marker(self.item_dir(item_id) / "state.json") or {"status": "pending"}

    def set_state(self, item_id: str, status: str, reason: str | None = None, **extra) -> None:
        assert status in STATES, status
        write_json_atomic(self.item_dir(item_id) / "state.json",
                          {"status": status, "reason": reason, "updated": time.time(), **extra})

    def segment_path(self, item_id: str, index: int, ext: str) -> Path:
        return self.item_dir(item_id) / f"seg-{index:05d}{ext}"

    def marker_path(self, item_id: str, index: int) -> Path:
        return self.item_dir(item_id) / f"seg-{index:05d}.done"

    def clean_partials(self, item_id: str, output: Path) -> int:
        """Delete what killed runs left half-written: hidden temporary files of segment
        writers in the item folder and of the final mux next to `output`. Returns a count."""
        gone = 0
        d = self.item_dir(item_id)
        candidates = list(d.glob(".seg-*")) + list(d.glob(".*.videofix-*"))
        if output.parent.is_dir():
            candidates += list(output.parent.glob(f".{glob_escape(output.stem)}.videofix-*"))
        for p in candidates:
            if p.is_file():
                p.unlink(missing_ok=True)
                gone += 1
        return gone

    def events(self) -> list[dict]:
        """The events log, one dict per line (a line cut by a kill is ignored)."""
        out = []
        if self.events_path.exists():
            for line in self.events_path.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out


def segment_target(segment_path: Path, output: Path) -> str:
    """What a pass-2 task writes: the segment file, or for an image-sequence output (seq
    #13) the output's file-name pattern inside the segment folder."""
    return str(segment_path / output.name) if is_sequence_pattern(output) else str(segment_path)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


# --------------------------------------------------------------------------- inputs
VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                  ".wmv", ".flv", ".3gp", ".ogv"}
LIST_SUFFIXES = {".txt", ".list", ".lst"}


def expand_inputs(specs: list[str]) -> list[Path]:
    """Paths, globs, folders (their videos) and list files (`@FILE`, or *.txt / *.list: one
    path or glob per line, # comments) -> files, in order, without duplicates. A spec that
    matches nothing is kept, so that it fails as its own item with a clear reason."""
    out: list[Path] = []

    def add(p: Path) -> None:
        if p not in out:
            out.append(p)

    for spec in specs:
        if spec.startswith("@") or (Path(spec).suffix.lower() in LIST_SUFFIXES and Path(spec).is_file()):
            list_file = Path(spec[1:] if spec.startswith("@") else spec)
            try:
                lines = list_file.read_text().splitlines()
            except OSError as exc:
                raise UsageError(f"{list_file}: cannot read the list ({exc.strerror})") from None
            base = list_file.parent
            nested = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
            for p in expand_inputs([str(base / n) if not Path(n).is_absolute() else n for n in nested]):
                add(p)
        elif any(ch in spec for ch in "*?["):
            matches = sorted(Path(m) for m in __import__("glob").glob(spec, recursive=True))
            for m in matches or [Path(spec)]:
                if m.is_file() or not matches:
                    add(m)
        elif Path(spec).is_dir():
            for m in sorted(Path(spec).iterdir()):
                if m.is_file() and m.suffix.lower() in VIDEO_SUFFIXES:
                    add(m)
        else:
            add(Path(spec))
    return out


def plan_items(inputs: list[Path], out_dir: Path, codec: str) -> list[dict]:
    """Job items: id, input (absolute), output in `out_dir` (the input's name; .mkv for
    ffv1; "-2", "-3"... when two inputs share a name)."""
    items, used = [], set()
    for k, path in enumerate(inputs):
        src = path.resolve() if path.exists() else path.absolute()
        ext = ".mkv" if codec.lower() in ("ffv1", "lossless") else (src.suffix or ".mkv")
        stem, name, n = src.stem, f"{src.stem}{ext}", 2
        while name in used:
            name, n = f"{stem}-{n}{ext}", n + 1
        used.add(name)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", src.stem)[:40]
        items.append({"id": f"{k:05d}-{safe}", "input": str(src), "output": str((out_dir / name).absolute())})
    return items


# --------------------------------------------------------------------------- the driver
@dataclass
class _Item:
    id: str
    input: str
    output: Path
    overwrite: bool = False
    status: str = "pending"
    reason: str | None = None
    exit_code: int = 0
    error: BaseException | None = None
    plan: SegmentPlan | None = None
    analysis: FaceAnalysis | None = None
    parts: dict = field(default_factory=dict)  # pass-1 results by segment
    markers: dict = field(default_factory=dict)  # pass-2 markers by segment
    refs: set = field(default_factory=set)
    timings: dict = field(default_factory=dict)
    pass1_bytes: int = 0
    film: object | None = None  # the driver's videofix.film.plan.FilmPlan (decisions, report figures)
    windows1: dict = field(default_factory=dict)  # pass-1 decode windows by segment (deinterlacing)
    previews: dict = field(default_factory=lambda: {"before": {}, "after": {}, "clean": {}})
    report: dict | None = None
    t_start: float = field(default_factory=time.perf_counter)


def _cause(exc: BaseException) -> BaseException:
    """The user-facing exception behind a Ray task error."""
    return getattr(exc, "cause", None) or exc


def _reason(exc: BaseException) -> str:
    cause = _cause(exc)
    if isinstance(cause, VideofixError):
        return str(cause)
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}".strip()


class JobRunner:
    """Drives the items of a job through pass 1, pass 2 and the join, on the connected Ray
    cluster, all items at once (the cluster's queues keep it busy across files)."""

    def __init__(self, job: JobDir, items: list[dict], settings: RestoreSettings, options: RayOptions, *,
                 quiet: bool = True, preview_items: set[str] = frozenset()):
        self.job = job
        self.settings = settings
        self.options = options
        self.quiet = quiet
        self.preview_items = set(preview_items)
        self.items = [_Item(d["id"], d["input"], Path(d["output"]), bool(d.get("overwrite", False))) for d in items]
        self.refs: dict = {}  # ObjectRef -> (item, kind, segment index)
        self.actors: list = []
        self.actor_info: list[dict] = []
        self._next_actor = 0
        self._bar = None
        self.t0 = time.perf_counter()
        self.chooser = None  # videofix.pipeline.selection.FaceChooser, made by run()
        # node loss (raycluster #16): nodes seen alive, the attempts log read so far
        self.nodes: dict[str, dict] = {}  # node id -> ray.nodes() entry, alive when last looked
        self.nodes_lost: list[dict] = []
        self.redone: list[dict] = []
        self._nodes_checked = 0.0
        self._attempts: dict[tuple, dict] = {}  # (item, pass, segment) -> attempt id -> its lines
        self._attempts_offset = 0

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        self.chooser = self._face_chooser()  # reference photos are read before any pass 1
        todo = [it for it in self.items if self._prepare(it)]
        total_frames = sum(it.plan.frame_count for it in todo)
        done_frames = sum(m["frames"] for it in todo for m in it.markers.values())
        self._open_progress(total_frames, done_frames)
        try:
            if todo:
                self._watch_nodes()
                self.actors, self.actor_info = start_restorers(self.settings, self.options.restorers)
            for it in todo:
                self._start(it)
            while self.refs:
                ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=1.0)
                self._watch_nodes()
                for ref in ready:
                    self._handle(ref)
                self._show()
            self._settle_redone()
        except BaseException:
            for it in self.items:
                if it.status == "running":
                    self.job.set_state(it.id, "pending", "interrupted")
            raise
        finally:
            self._close_progress()
        return self.summary()

    def summary(self) -> dict:
        counts = {s: sum(1 for it in self.items if it.status == s) for s in ("done", "failed", "skipped")}
        return {
            **counts,
            "total": len(self.items),
            "frames": sum(it.report["frames_written"] for it in self.items if it.report),
            "seconds": round(time.perf_counter() - self.t0, 3),
            "items": [{"id": it.id, "input": it.input, "output": str(it.output), "status": it.status,
                       "reason": it.reason} for it in self.items],
            "exit_code": next((it.exit_code for it in self.items if it.status == "failed"), 0),
            "restorers": self.actor_info,  # device and node of each restorer actor (at the start)
            "nodes_lost": self.nodes_lost,
            "redone": self.redone,
        }

    # ------------------------------------------------------------------ stages
    def _prepare(self, it: _Item) -> bool:
        """Decide what an item needs; plan it. False when it is skipped or failed here."""
        state = self.job.state(it.id)
        if state.get("status") == "done" and it.output.exists():
            it.status, it.reason = "skipped", "already done"
            it.report = read_marker(self.job.item_dir(it.id) / "report.json")
            return False
        if it.output.exists() and not it.overwrite:
            it.status, it.reason = "skipped", "output exists (never rewritten)"
            self.job.set_state(it.id, "skipped", it.reason)
            return False
        self.job.item_dir(it.id).mkdir(parents=True, exist_ok=True)
        self.job.clean_partials(it.id, it.output)
        try:
            t = time.perf_counter()
            info = probe(it.input)
            check_output(info, it.output, self.settings.codec)
            seg_file = self.job.item_dir(it.id) / "segments.json"
            plan = None
            if seg_file.exists():
                plan = SegmentPlan.from_json(seg_file.read_text())
                try:
                    plan.check_source()
                except (InputError, OSError):
                    plan = None  # the input changed: start this item again
                    self._forget(it)
            if plan is None:
                plan = plan_segments(it.input, count=self._segment_count(), seconds=self.options.segment_seconds,
                                     range=self.settings.range)
                seg_file.write_text(plan.to_json())
            it.plan = plan
            it.timings["plan"] = round(time.perf_counter() - t, 4)
            t = time.perf_counter()
            it.film = self._film_plan(it.input)
            it.timings["film_plan"] = round(time.perf_counter() - t, 4)
        except VideofixError as exc:
            self._fail(it, exc)
            return False
        ana = self.job.item_dir(it.id) / "analysis.json"
        if ana.exists():
            it.analysis = FaceAnalysis.load(ana)
            if "film" not in it.analysis.extra:  # saved without the film survey: pass 1 again
                it.analysis = None
        ext = it.output.suffix
        for seg in it.plan.segments:
            marker = read_marker(self.job.marker_path(it.id, seg.index))
            if marker is not None and self.job.segment_path(it.id, seg.index, ext).exists():
                it.markers[seg.index] = marker
        it.status = "running"
        self.job.set_state(it.id, "running")
        return True

    def _film_plan(self, path: str):
        """The film decisions of one input (interlace probe), made once here and shipped to
        the tasks; the upscaler is built by the workers (`distributed._film_plan`)."""
        from videofix.film.plan import FilmPlan

        try:
            return FilmPlan.create(path, self.settings, build_upscaler=False)
        except VideofixError:
            raise
        except Exception as exc:  # noqa: BLE001 - a file PyAV cannot decode: this item fails
            raise InputError(f"{path}: cannot read the first frames ({exc})") from None

    def _forget(self, it: _Item) -> None:
        d = self.job.item_dir(it.id)
        for p in list(d.glob("seg-*")) + [d / "analysis.json"]:
            p.unlink(missing_ok=True)

    def _segment_count(self) -> int | None:
        if self.options.segments or self.options.segment_seconds:
            return self.options.segments
        return max(2, 2 * cluster_shape()["cpus"])

    def _start(self, it: _Item) -> None:
        if it.analysis is None:
            opts = dict(num_cpus=1, max_retries=self.options.max_retries, retry_exceptions=False)
            if it.film.interlace.deinterlace:  # bwdif reads the frames before and after each segment
                try:
                    pts = plan_frame_pts(it.input, it.plan)
                except Exception as exc:  # noqa: BLE001
                    self._fail(it, exc)
                    return
                it.windows1 = {seg.index: context_window(it.plan, seg, pts, 1, 1) for seg in it.plan.segments}
            for seg in it.plan.segments:
                ref = attempt_task.options(**opts, name=f"detect_segment {it.id} #{seg.index}").remote(
                    self._attempt(it, 1, seg.index), detect_segment, it.input, seg, self.settings.to_dict(),
                    seg.index > 0, it.film.worker_state(), it.windows1.get(seg.index))
                self._track(ref, it, "detect", seg.index)
        else:
            self._start_pass2(it)

    def _track(self, ref, it: _Item, kind: str, index: int) -> None:
        self.refs[ref] = (it, kind, index)
        it.refs.add(ref)

    def _start_pass2(self, it: _Item) -> None:
        R = self.settings.temporal_radius
        pts = it.analysis.extra["pts"]
        repeats = it.film.pass_options(it.analysis)["repeats"]
        deinterlace = it.film.interlace.deinterlace
        preview = choose_preview_frames(it.analysis) if it.id in self.preview_items else []
        it.analysis.extra["preview_frames"] = preview
        opts = dict(num_cpus=1, max_retries=self.options.max_retries,
                    retry_exceptions=[ray.exceptions.RayActorError])
        ext = it.output.suffix
        for seg in it.plan.segments:
            if seg.index in it.markers and not preview:
                continue
            if seg.index in it.markers and not any(seg.start_frame <= f < seg.end_frame for f in preview):
                continue
            if seg.index in it.markers:  # a preview frame lies here: redo to collect it
                self.job.marker_path(it.id, seg.index).unlink(missing_ok=True)
                del it.markers[seg.index]
            win, decode = restore_window(it.plan, seg, pts, R, repeats, deinterlace=deinterlace)
            work = SegmentWork(
                source=it.input, segment=seg, window=win,
                analysis=analysis_window(it.analysis, win.start_frame, win.end_frame).to_dict(),
                settings=self.settings.to_dict(),
                segment_path=segment_target(self.job.segment_path(it.id, seg.index, ext), it.output),
                marker_path=str(self.job.marker_path(it.id, seg.index)),
                events_path=str(self.job.events_path), item=it.id,
                input_size=int(self.actor_info[0]["input_size"]), chunk=self.options.chunk,
                preview_frames=preview, film=it.film.worker_state(), decode_window=decode)
            actor = self.actors[self._next_actor % len(self.actors)]
            self._next_actor += 1
            ref = attempt_task.options(**opts, name=f"restore_segment {it.id} #{seg.index}").remote(
                self._attempt(it, 2, seg.index), restore_segment, work, actor)
            self._track(ref, it, "restore", seg.index)
        if len(it.markers) == len(it.plan.segments):
            self._finish(it)

    def _handle(self, ref) -> None:
        it, kind, index = self.refs.pop(ref)
        it.refs.discard(ref)
        if it.status != "running":
            return  # the item already failed; late results are dropped
        try:
            result = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - one item fails, the job goes on
            self._fail(it, exc)
            return
        self._note_redone(it, 1 if kind == "detect" else 2, index, result)
        try:
            if kind == "detect":
                it.parts[index] = result
                it.pass1_bytes += _pickled_size(result)
                if len(it.parts) == len(it.plan.segments):
                    self._link(it)
                    self._start_pass2(it)
            else:
                if "preview_before" in result:
                    it.previews["before"].update(result.pop("preview_before"))
                    it.previews["after"].update(result.pop("preview_after"))
                    it.previews["clean"].update(result.pop("preview_clean", {}))
                it.markers[index] = result
                if self._bar is not None and not result.get("already_done"):
                    self._bar.update(result["frames"])
                if len(it.markers) == len(it.plan.segments):
                    self._finish(it)
        except Exception as exc:  # noqa: BLE001
            self._fail(it, exc)

    def _link(self, it: _Item) -> None:
        t = time.perf_counter()
        parts = [it.parts[k] for k in sorted(it.parts)]
        info = probe(it.input)
        frames = join_detections(parts)
        analysis = link_detections(frames, detector_name=parts[0].detector,
                                   frame_size=(info.width, info.height), sigma=self.settings.landmark_sigma,
                                   max_gap=self.settings.max_gap)
        # the film survey of the whole video, then the same decisions as the local runner
        from videofix.film.plan import FilmSurvey

        segments = {s.start_frame: s for s in it.plan.segments}

        def redo(part, finder, from_index):
            seg = segments[part.start]
            redo_duplicates(it.input, seg, it.windows1.get(seg.index), self.settings.to_dict(),
                            it.film.worker_state(), frames, finder, from_index)

        survey = FilmSurvey.merge([p.film for p in parts], frames, redo=redo)
        it.film.finalize(analysis, survey)
        for p in parts:
            it.film.add_figures(p.film_figures)
        analysis.extra["pts"] = [p for part in parts for p in part.pts]
        if len(analysis.extra["pts"]) != it.plan.frame_count:
            raise InputError(f"{it.input}: pass 1 decoded {len(analysis.extra['pts'])} frames, "
                             f"the plan says {it.plan.frame_count}")
        if self.chooser is not None and self.chooser.active:  # which faces (videofix.pipeline.selection), as the local runner
            analysis = self.chooser.apply(analysis, lambda: self._picture_frames(it.input))
        it.timings["detect"] = round(sum(p.seconds for p in parts), 4)
        it.timings["link"] = round(time.perf_counter() - t, 4)
        it.analysis = analysis
        it.parts = {}
        atomic.write_with(self.job.item_dir(it.id) / "analysis.json", analysis.save)

    def _face_chooser(self):
        """The run's face-selection options (`FaceChooser`); references are embedded here,
        with a detector built on the driver like the workers' one."""
        from videofix.pipeline.selection import FaceChooser

        detector = None
        if self.settings.face_ref:
            from videofix.faces import create_detector

            detector = create_detector(self.settings.detector, self.settings.models_dir, "cpu",
                                       score_threshold=self.settings.det_threshold)
        return FaceChooser.from_settings(self.settings, detector)

    def _picture_frames(self, path):
        """(index, Picture) of the item's frames (its --range), numbered as pass 1 numbers them."""
        from videofix.io import open_video, parse_range
        from videofix.pipeline.selection import picture_frames

        with open_video(path, parse_range(self.settings.range) if self.settings.range else None) as reader:
            yield from picture_frames(reader)

    def _finish(self, it: _Item) -> None:
        t = time.perf_counter()
        ext = it.output.suffix
        files = [self.job.segment_path(it.id, s.index, ext) for s in it.plan.segments]
        if it.output.exists() and not it.overwrite:  # appeared meanwhile: never rewritten
            it.status, it.reason = "skipped", "output exists (never rewritten)"
            self.job.set_state(it.id, "skipped", it.reason)
            return
        if is_sequence_pattern(it.output):  # seq (#13): segment folders of frame files
            join_sequence(files, it.output, it.input)
        else:
            join_segments(files, it.plan, it.input, it.output)
        it.timings["join"] = round(time.perf_counter() - t, 4)
        it.report = self._report(it)
        write_json_atomic(self.job.item_dir(it.id) / "report.json", it.report)
        it.status = "done"
        self.job.set_state(it.id, "done", frames=it.report["frames_written"])
        for f in files:  # the output holds them now
            f.unlink(missing_ok=True)

    def _fail(self, it: _Item, exc: BaseException) -> None:
        cause = _cause(exc)
        it.status, it.reason, it.error = "failed", _reason(exc), cause
        it.exit_code = cause.exit_code if isinstance(cause, VideofixError) else 1
        self.job.set_state(it.id, "failed", it.reason)
        for ref in list(it.refs):
            self.refs.pop(ref, None)
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001 - best effort
                pass
        it.refs.clear()
        if not self.quiet:
            self._write(f"videofix: {Path(it.input).name}: failed: {it.reason}")

    # ------------------------------------------------------------------ node loss
    def _attempt(self, it: _Item, pass_: int, index: int) -> dict:
        """The attempts-log record of a segment task (`distributed.run_attempt`)."""
        return {"path": str(self.job.attempts_path), "item": it.id, "pass": pass_, "segment": index}

    def _watch_nodes(self, force: bool = False) -> None:
        """Notice cluster nodes that died (at most once a second unless forced): a node alive
        before and now dead or gone is lost. Ray re-runs its tasks elsewhere by itself; this says so."""
        now = time.monotonic()
        if not force and now - self._nodes_checked < 1.0:
            return
        self._nodes_checked = now
        try:
            nodes = ray.nodes()
        except Exception:  # noqa: BLE001 - the GCS is busy or restarting: look again later
            return
        seen = set()
        for n in nodes:
            node_id = n.get("NodeID")
            seen.add(node_id)
            if n.get("Alive"):
                self.nodes[node_id] = n
            elif node_id in self.nodes:
                self._node_lost(node_id, self.nodes.pop(node_id))
        for node_id in [k for k in self.nodes if k not in seen]:
            self._node_lost(node_id, self.nodes.pop(node_id))

    def _node_lost(self, node_id: str, node: dict) -> None:
        self._read_attempts()
        running = []  # the segment tasks that had started on that node and not ended
        for (item, pass_, index), attempts in sorted(self._attempts.items()):
            if any(a["node"] == node_id and "end" not in a for a in attempts.values()):
                running.append({"item": item, "input": self._input_of(item), "pass": pass_, "segment": index})
        address = f"{node.get('NodeManagerAddress')}:{node.get('NodeManagerPort')}"
        resources = {k: v for k, v in (node.get("Resources") or {}).items()
                     if not k.startswith(("node:", "memory", "object_store_memory"))}
        self.nodes_lost.append({"node": node_id, "address": address, "resources": resources,
                                "time": time.time(), "running": running})
        what = ", ".join(f"{Path(r['input']).name} pass {r['pass']} segment {r['segment']}" for r in running)
        actors = sum(1 for a in self.actor_info if a.get("node") == node_id)
        # an idle node going away (an autoscaler scaling down) is news, not a warning
        log.log(logging.WARNING if running or actors else logging.INFO,
                "node %s (%s, %s) lost; it was running: %s; Ray runs them again on the other nodes",
                node_id, address, ", ".join(f"{k} {v:g}" for k, v in sorted(resources.items())) or "no resources",
                what or "no segment task")
        if actors:  # Ray restarts them elsewhere (max_restarts); segments waiting on them are redone too
            self.nodes_lost[-1]["restorers"] = actors
            log.warning("node %s held %d restorer actor(s): Ray starts them again on another node; the segments "
                        "that were waiting on them are redone", node_id, actors)

    def _read_attempts(self) -> None:
        """Read the lines appended to the attempts log since the last call."""
        try:
            with open(self.job.attempts_path, "rb") as f:
                f.seek(self._attempts_offset)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._attempts_offset += end
        for raw in data[:end].splitlines():
            try:
                a = json.loads(raw)
                key = (a["item"], int(a["pass"]), int(a["segment"]))
                entry = self._attempts.setdefault(key, {}).setdefault(a["attempt"], {"node": a["node"],
                                                                                      "pid": a["pid"]})
                entry[a["event"]] = a["time"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill

    def _note_redone(self, it: _Item, pass_: int, index: int, result) -> None:
        """A segment task's result came back: when it took more than one attempt (its node
        or worker died, the restorer actor was lost), record where each attempt ran (said at
        the end of the job, once the GCS has settled which nodes were lost)."""
        self._read_attempts()
        attempts = sorted(self._attempts.get((it.id, pass_, index), {}).values(), key=lambda a: a.get("start", 0))
        if len(attempts) < 2:
            return
        lost = {n["node"] for n in self.nodes_lost}
        tried = [{"node": a["node"], "pid": a["pid"], "ended": "end" in a, "node_lost": a["node"] in lost}
                 for a in attempts]
        entry = {"item": it.id, "input": it.input, "pass": pass_, "segment": index, "attempts": tried,
                 "already_done": bool(isinstance(result, dict) and result.get("already_done"))}
        self.redone.append(entry)  # said at the end of the job (`_settle_redone`), when it is final

    def _settle_redone(self, wait_s: float = 20.0) -> None:
        """A retry can finish before the GCS declares the first attempt's node dead (its health
        check needs several missed periods). At the end of the job, look at the nodes again and
        mark each redone segment's attempts whose node was lost meanwhile; while an attempt that
        did not finish ran on a node still listed alive, look again for up to `wait_s` (a worker
        process that crashed on a live node leaves such an attempt too: then the wait ends
        without a loss)."""
        if not self.redone:
            return
        deadline = time.monotonic() + wait_s
        while True:
            self._watch_nodes(force=True)
            lost = {n["node"] for n in self.nodes_lost}
            pending = False
            for entry in self.redone:
                for a in entry["attempts"]:
                    a["node_lost"] = a["node"] in lost
                    pending |= not a["ended"] and not a["node_lost"] and a["node"] in self.nodes
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for entry in self.redone:
            tried = entry["attempts"]
            final = next((a for a in reversed(tried) if a["ended"]), tried[-1])
            before = "; ".join(f"node {a['node']}" + (" (lost)" if a["node_lost"] else "")
                               + ("" if a["ended"] else " did not finish") for a in tried if a is not final)
            log.warning("%s pass %d segment %d redone on node %s (attempt %d of %d; before: %s)%s",
                        Path(entry["input"]).name, entry["pass"], entry["segment"], final["node"],
                        tried.index(final) + 1, len(tried), before,
                        "; its file was already committed, not written again" if entry["already_done"] else "")

    def _input_of(self, item_id: str) -> str:
        return next((it.input for it in self.items if it.id == item_id), item_id)

    # ------------------------------------------------------------------ report
    def _report(self, it: _Item) -> dict:
        markers = [it.markers[k] for k in sorted(it.markers)]
        analysis = it.analysis
        frames = sum(m["frames"] for m in markers)
        sent = sum(m["bytes_sent"] for m in markers)
        received = sum(m["bytes_received"] for m in markers)
        total = time.perf_counter() - it.t_start
        regions: dict[int, list] = {}
        for m in markers:  # segments in order, frames in order within each
            for t, boxes in m.get("paste_regions", {}).items():
                regions.setdefault(int(t), []).extend(boxes)
        film = it.film
        for m in markers:  # pass 2's figures (pass 1's were added by _link)
            film.add_figures(m.get("film", {}).get("plan", {}))
        paster = merge_pasters([m.get("film", {}).get("paster", {}) for m in markers], film.options)
        faces_reused = sum(m.get("faces_reused", 0) for m in markers)
        timings = {**it.timings, "restore": round(sum(m["seconds"] for m in markers), 4), "total": round(total, 4)}
        report = run_report(
            input_path=it.input, output_path=it.output, settings=self.settings, analysis=analysis,
            device=", ".join(sorted({a["device"] for a in self.actor_info})) or "unknown",
            frames_read=it.plan.frame_count, frames_written=frames,
            faces_restored=sum(m["faces_restored"] for m in markers), timings=timings,
            max_frames_held=max((m["max_frames_held"] for m in markers), default=0),
            metrics=sum_metrics(markers), regions=regions, film=film, paster=paster, faces_reused=faces_reused,
            notes=list(dict.fromkeys(n for m in markers for n in m.get("notes", []))),
            overlap={"groups": 0, "why_not": "the Ray runner detects all segments first, then restores the segments "
                                             "in parallel"})
        return {
            **report,
            "ray": {
                "segments": len(it.plan.segments),
                "segment_frames": [s.frame_count for s in it.plan.segments],
                "context_frames": sum(m.get("context_frames", 0) for m in markers),
                "restorers": len(self.actor_info),
                "restorer_devices": [a["device"] for a in self.actor_info],
                "cluster": cluster_shape(),
                "object_store_bytes": {"crops_sent": sent, "restored_received": received,
                                       "pass1_results": it.pass1_bytes},
                "object_store_bytes_per_frame": round((sent + received + it.pass1_bytes) / max(frames, 1), 1),
                "actor_calls": sum(m.get("actor_calls", 0) for m in markers),
                "segments_resumed": sum(1 for m in markers if m.get("already_done")),
            },
        }

    # ------------------------------------------------------------------ progress
    def _open_progress(self, total: int, done: int) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=done, desc="restore", unit="frame", file=sys.stderr,
                         dynamic_ncols=True, smoothing=0.1)
        self._show()

    def _show(self) -> None:
        if self._bar is None:
            return
        c = {s: sum(1 for it in self.items if it.status == s) for s in ("done", "failed", "skipped")}
        self._bar.set_postfix_str(f"files {c['done'] + c['failed'] + c['skipped']}/{len(self.items)} "
                                  f"(failed {c['failed']})", refresh=True)

    def _write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def _close_progress(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _pickled_size(obj) -> int:
    import pickle

    return len(pickle.dumps(obj, protocol=5))


# --------------------------------------------------------------------------- entry points
def run_single(input_path, output_path, settings: RestoreSettings, options: RayOptions, *,
               report_path=None, preview_path=None, quiet: bool = False) -> dict:
    """One video as a one-item job in a hidden temporary folder next to the output (removed
    at the end, whatever happens); re-raises the item's error. Returns its report."""
    settings.validate()
    options.validate()
    output = Path(output_path)
    probe(input_path)  # fail fast on bad input, before starting a cluster
    check_output(probe(input_path), output, settings.codec)
    # an image-sequence output's folder may not exist yet: the job folder goes next to it
    home = output.parent.parent if is_sequence_pattern(output) else output.parent
    job = JobDir(home / f".{output.parent.name if home != output.parent else output.name}.videofix-ray-"
                 f"{os.getpid()}-{int(time.time() * 1000) % 100000}")
    items = [{"id": "0", "input": str(Path(input_path).absolute()), "output": str(output.absolute()),
              "overwrite": True}]
    try:
        job.create(items, settings, options)
        with ray_session(options.address, quiet=quiet):
            runner = JobRunner(job, items, settings, options, quiet=quiet,
                               preview_items={"0"} if preview_path else set())
            runner.run()
        it = runner.items[0]
        if it.status != "done":
            if it.error is not None:
                raise it.error
            raise VideofixError(it.reason or "restoration failed")
        report = it.report
        if preview_path:
            coll = PreviewCollector(it.analysis.extra.get("preview_frames", []), it.analysis)
            coll.before.update(it.previews["before"])
            coll.after.update(it.previews["after"])
            coll.clean.update(it.previews["clean"])
            report["preview"] = str(preview_path) if coll.write(preview_path, settings.upscale) else None
        if report_path:
            write_json_atomic(report_path, report)
        return report
    finally:
        shutil.rmtree(job.root, ignore_errors=True)


def run_batch(inputs: list[str], out_dir: str | os.PathLike, settings: RestoreSettings, options: RayOptions, *,
              job_dir: str | os.PathLike | None = None, resume: bool = False, quiet: bool = False) -> dict:
    """`videofix batch`: every input file is a job item restored into `out_dir`.

    A new job needs `inputs`; `resume=True` continues the job found in `job_dir` (default
    OUT/.videofix-job) with its own plan and settings (inputs, if given, must be the plan's).
    Returns the summary (also written to JOB/summary.json): done / failed / skipped counts,
    per-item status and reason, and `exit_code` (0, or the first failure's code).
    """
    out = Path(out_dir)
    job = JobDir(job_dir or out / ".videofix-job")
    if resume:
        if not job.exists():
            raise UsageError(f"{job.root}: no job to resume (no plan.json)")
        plan = job.load()
        settings = RestoreSettings(**plan["settings"])
        options.segments, options.segment_seconds = plan["segments"], plan["segment_seconds"]
        items = plan["items"]
        if inputs:
            given = {str(p.resolve()) for p in expand_inputs(inputs)}
            planned = {it["input"] for it in items}
            if not given <= planned:
                raise UsageError("--resume continues the planned job; new inputs need a new job directory")
    else:
        if job.exists():
            raise UsageError(f"{job.root}: a job is already planned there; use --resume to continue it "
                             "or choose another --job-dir")
        if not inputs:
            raise UsageError("no inputs given")
        settings.validate()
        options.validate()
        out.mkdir(parents=True, exist_ok=True)
        items = plan_items(expand_inputs(inputs), out, settings.codec)
        if not items:
            raise UsageError("the inputs match no file")
        job.create(items, settings, options)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(ray_session(options.address, quiet=quiet))
        except ClusterError as exc:  # the plan is kept: --resume starts it once the cluster is there
            raise ClusterError(f"{exc}; the job is planned in {job.root}: run the same command with --resume "
                               "when the cluster is reachable") from exc
        summary = JobRunner(job, items, settings, options, quiet=quiet).run()
    summary["job_dir"] = str(job.root)
    write_json_atomic(job.root / "summary.json", summary)
    return summary
