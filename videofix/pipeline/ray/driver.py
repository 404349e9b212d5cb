"""The driver: schedules every item of a job through pass 1, pass 2 and the join.

All items run at once (the cluster's queues keep it busy across files): each item is
planned (`_prepare`: resume = plan minus done), its pass-1 tasks are submitted, their
detections linked into tracks on the driver exactly as the local runner links them
(`_link`), then its pass-2 tasks go out, one per segment, to the restorer actors in turn, and
the committed segment files are joined into the output (`_finish`). A bad input fails alone
with its reason; the other items go on. Worker crashes are retried by Ray (`max_retries`),
bad input never is.

The other ideas live beside it: the job folder (`jobdir`), the attempts log (`attempts`),
node-loss bookkeeping (`nodes`), progress (`progress`), the report (`item_report`).
"""

from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import ray

from videofix.errors import InputError, VideofixError
from videofix.io import SegmentPlan, check_output, join_segments, plan_segments, probe
from videofix.io.sequence import is_sequence_pattern, join_sequence
from videofix.pipeline.analysis import FaceAnalysis, link_detections
from videofix.settings import RestoreSettings
from videofix.pipeline.ray.attempts import AttemptsLog, attempt_record, attempt_task
from videofix.pipeline.ray.cluster import cluster_shape
from videofix.pipeline.ray.detect_task import detect_segment, join_detections, redo_duplicates
from videofix.pipeline.ray.item_report import item_report
from videofix.pipeline.ray.jobdir import JobDir, read_marker, segment_target, write_json_atomic
from videofix.pipeline.ray.nodes import NodeWatch
from videofix.pipeline.ray.options import RayOptions
from videofix.pipeline.ray.progress import JobProgress
from videofix.pipeline.ray.restore_task import SegmentWork, restore_segment
from videofix.pipeline.ray.restorer import start_restorers
from videofix.pipeline.ray.windows import analysis_window, context_window, plan_frame_pts, restore_window
from videofix.pipeline.report import choose_preview_frames

log = logging.getLogger("videofix")


@dataclass
class JobItem:
    """One input of a job and everything the driver knows of it while it runs."""

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


def _pickled_size(obj) -> int:
    return len(pickle.dumps(obj, protocol=5))


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
        self.items = [JobItem(d["id"], d["input"], Path(d["output"]), bool(d.get("overwrite", False))) for d in items]
        self.refs: dict = {}  # ObjectRef -> (item, kind, segment index)
        self.actors: list = []
        self.actor_info: list[dict] = []
        self._next_actor = 0
        self.progress = JobProgress(quiet)
        self.t0 = time.perf_counter()
        self.chooser = None  # videofix.pipeline.selection.FaceChooser, made by run()
        self.node_watch = NodeWatch(AttemptsLog(job.attempts_path), self._input_of)  # node loss (raycluster #16)

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        self.chooser = self._face_chooser()  # reference photos are read before any pass 1
        todo = [it for it in self.items if self._prepare(it)]
        total_frames = sum(it.plan.frame_count for it in todo)
        done_frames = sum(m["frames"] for it in todo for m in it.markers.values())
        self.progress.open(total_frames, done_frames, self._counts(), len(self.items))
        try:
            if todo:
                self.node_watch.watch()
                self.actors, self.actor_info = start_restorers(self.settings, self.options.restorers)
                self.node_watch.restorers = self.actor_info
            for it in todo:
                self._start(it)
            while self.refs:
                ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=1.0)
                self.node_watch.watch()
                for ref in ready:
                    self._handle(ref)
                self.progress.show(self._counts(), len(self.items))
            self.node_watch.settle()
        except BaseException:
            for it in self.items:
                if it.status == "running":
                    self.job.set_state(it.id, "pending", "interrupted")
            raise
        finally:
            self.progress.close()
        return self.summary()

    def _counts(self) -> dict[str, int]:
        return {s: sum(1 for it in self.items if it.status == s) for s in ("done", "failed", "skipped")}

    def summary(self) -> dict:
        return {
            **self._counts(),
            "total": len(self.items),
            "frames": sum(it.report["frames_written"] for it in self.items if it.report),
            "seconds": round(time.perf_counter() - self.t0, 3),
            "items": [{"id": it.id, "input": it.input, "output": str(it.output), "status": it.status,
                       "reason": it.reason} for it in self.items],
            "exit_code": next((it.exit_code for it in self.items if it.status == "failed"), 0),
            "restorers": self.actor_info,  # device and node of each restorer actor (at the start)
            "nodes_lost": self.node_watch.lost,
            "redone": self.node_watch.redone,
        }

    # ------------------------------------------------------------------ stages
    def _prepare(self, it: JobItem) -> bool:
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
            plan = self.job.saved_plan(it.id)  # None when the input changed: the item starts again
            if plan is None:
                plan = plan_segments(it.input, count=self._segment_count(), seconds=self.options.segment_seconds,
                                     range=self.settings.range)
                self.job.save_plan(it.id, plan)
            it.plan = plan
            it.timings["plan"] = round(time.perf_counter() - t, 4)
            t = time.perf_counter()
            it.film = self._film_plan(it.input)
            it.timings["film_plan"] = round(time.perf_counter() - t, 4)
        except VideofixError as exc:
            self._fail(it, exc)
            return False
        it.analysis = self.job.saved_analysis(it.id)  # None: pass 1 (again)
        it.markers = self.job.done_markers(it.id, it.plan, it.output.suffix)
        it.status = "running"
        self.job.set_state(it.id, "running")
        return True

    def _film_plan(self, path: str):
        """The film decisions of one input (interlace probe), made once here and shipped to
        the tasks; the upscaler is built by the workers (`worker_cache.worker_film_plan`)."""
        from videofix.film.plan import FilmPlan

        try:
            return FilmPlan.create(path, self.settings, build_upscaler=False)
        except VideofixError:
            raise
        except Exception as exc:  # noqa: BLE001 - a file PyAV cannot decode: this item fails
            raise InputError(f"{path}: cannot read the first frames ({exc})") from None

    def _segment_count(self) -> int | None:
        if self.options.segments or self.options.segment_seconds:
            return self.options.segments
        return max(2, 2 * cluster_shape()["cpus"])

    def _attempt(self, it: JobItem, pass_: int, index: int) -> dict:
        return attempt_record(self.job.attempts_path, it.id, pass_, index)

    def _start(self, it: JobItem) -> None:
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

    def _track(self, ref, it: JobItem, kind: str, index: int) -> None:
        self.refs[ref] = (it, kind, index)
        it.refs.add(ref)

    def _start_pass2(self, it: JobItem) -> None:
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
        self.node_watch.note_redone(it.id, 1 if kind == "detect" else 2, index, result)
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
                if not result.get("already_done"):
                    self.progress.advance(result["frames"])
                if len(it.markers) == len(it.plan.segments):
                    self._finish(it)
        except Exception as exc:  # noqa: BLE001
            self._fail(it, exc)

    def _link(self, it: JobItem) -> None:
        t = time.perf_counter()
        parts = [it.parts[k] for k in sorted(it.parts)]
        info = probe(it.input)
        frames = join_detections(parts)
        analysis = link_detections(frames, detector_name=parts[0].detector,
                                   frame_size=(info.width, info.height), tracking=self.settings)
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
        self.job.save_analysis(it.id, analysis)

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

    def _finish(self, it: JobItem) -> None:
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
        it.report = item_report(it, self.settings, self.actor_info)
        write_json_atomic(self.job.item_dir(it.id) / "report.json", it.report)
        it.status = "done"
        self.job.set_state(it.id, "done", frames=it.report["frames_written"])
        for f in files:  # the output holds them now
            f.unlink(missing_ok=True)

    def _fail(self, it: JobItem, exc: BaseException) -> None:
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
            self.progress.write(f"videofix: {Path(it.input).name}: failed: {it.reason}")

    def _input_of(self, item_id: str) -> str:
        return next((it.input for it in self.items if it.id == item_id), item_id)
