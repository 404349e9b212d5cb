"""`FilmPlan`: how a run treats old-film material, and the glue the runners call.

A runner (local or Ray) builds one plan per input, then:

1. `plan.frames(frames)` wraps every decoded-frame iterator (pass 1 and pass 2), so
   interlaced sources are deinterlaced before detection and for the output alike;
2. `survey = plan.survey()` measures pass 1: `plan.frames(frames, survey)` scores each
   picture's chroma, and the survey is `analyze_frames(..., observer=survey)`'s observer
   (duplicate check on the detection image);
3. `plan.finalize(analysis, survey)` stores the per-shot colour modes and the runs of
   repeated frames in `analysis.extra["film"]` (JSON: ships to Ray workers with the tracks);
4. `FaceRestorationPass(..., **plan.pass_options(analysis))` gets the upscaler, the
   `FilmPaster` and the repeat map;
5. `plan.report(...)` is the report's `film` section.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from videofix.film.color import ChromaScore, classify_shots, picture_chroma_score
from videofix.film.duplicates import DuplicateFinder, duplicate_thumbnail, repeat_map
from videofix.film.interlace import Deinterlacer, InterlaceDecision, decide_deinterlace, probe_interlace
from videofix.film.paste import FilmPaster
from videofix.film.upscale import create_upscaler
from videofix.settings import FilmSettings

log = logging.getLogger("videofix")

HEAD_THUMBS = 48  # most head thumbnails a segment's survey keeps (see `SegmentSurvey`)


class FilmSurvey:
    """What pass 1 measures for films: a chroma score per decoded picture
    (`observe_picture`, fed by `FilmPlan.frames`) and the duplicate check on the detection
    image (the call, pass 1's `observer`).

    start: index of the first frame observed (a Ray segment's first frame; 0 for a whole
    video). A segment's survey is shipped with `segment_result()` and the driver joins them
    with `FilmSurvey.merge`, which gives the whole video's survey exactly.
    """

    def __init__(self, dedup: bool = True, start: int = 0):
        self.start = int(start)
        self.scores: list[ChromaScore] = []
        self.duplicates = DuplicateFinder() if dedup else None
        self.seconds = {"color_check": 0.0, "duplicate_check": 0.0}
        self._head: list[np.ndarray] = []  # thumbnails of the first frames (see SegmentSurvey)
        self._recording = self.start > 0

    def observe_picture(self, index: int, picture) -> None:
        t0 = time.perf_counter()
        if index != self.start + len(self.scores):
            raise RuntimeError(f"film survey: frame {index} after {len(self.scores)} frames from {self.start}")
        self.scores.append(picture_chroma_score(picture))
        self.seconds["color_check"] += time.perf_counter() - t0

    def __call__(self, index: int, rgb: np.ndarray, detections, cut: bool) -> None:
        self.observe(index, self.prepare(rgb), detections, cut)

    takes_thumbnails = True  # `prepare` takes the frame's grey thumbnail made elsewhere (on the GPU)

    def prepare(self, rgb: np.ndarray):
        """The part of a frame the survey keeps (its duplicate thumbnail), made as soon as the
        detection image exists: pass 1 calls `observe` later, once the frame's cut is known.
        rgb: the detection image, or its grey thumbnail (`duplicate_thumbnail`)."""
        if self.duplicates is None:
            return None
        t0 = time.perf_counter()
        thumb = duplicate_thumbnail(rgb)
        self.seconds["duplicate_check"] += time.perf_counter() - t0
        return thumb

    def observe(self, index: int, thumb, detections, cut: bool) -> None:
        t0 = time.perf_counter()
        if self.duplicates is not None:
            repeat = self.duplicates.update_thumb(index, thumb, detections, cut)
            if self._recording:
                u8 = thumb.astype(np.uint8)
                self._head.append(u8 if np.array_equal(u8, thumb) else thumb)
                # up to the frame that ends the segment's first run: where the driver's
                # check, which knows the frames before, almost always meets this one's
                if (index > self.start and not repeat) or len(self._head) >= HEAD_THUMBS:
                    self._recording = False
        self.seconds["duplicate_check"] += time.perf_counter() - t0

    # ------------------------------------------------------------------ segments (Ray)
    def segment_result(self) -> "SegmentSurvey":
        """What a segment's pass 1 sends back (small: a few numbers per frame, a few thumbnails)."""
        d = self.duplicates
        tail = None
        if d is not None and d._first is not None:
            first = d._first
            u8 = first[1].astype(np.uint8)
            tail = (int(first[0]), u8 if np.array_equal(u8, first[1]) else first[1])
        return SegmentSurvey(self.start, len(self.scores), list(self.scores), d.runs() if d is not None else None,
                             list(self._head), tail, dict(self.seconds))

    @classmethod
    def merge(cls, parts: list["SegmentSurvey"], frames: list, redo=None) -> "FilmSurvey":
        """The whole video's survey from its consecutive segments' (`segment_result`).

        frames: the joined `FrameDetections` of pass 1 (every frame, in order, the cut flag of
        each segment's first frame decided across the boundary). Chroma scores are per frame.
        The duplicate check is sequential (each frame is compared with its run's first frame,
        which may lie in an earlier segment): the driver replays it over each segment's head
        thumbnails from the state the segments before left, until its run's first frame is
        the one the segment chose on its own; from there on the segment's runs are the
        whole run's. When the head thumbnails end first (rare: a borderline repeat),
        `redo(part, finder, from_index)` must feed the finder the segment's frames from
        `from_index` on (the Ray runner decodes them again)."""
        parts = sorted(parts, key=lambda p: p.start)
        dedup = bool(parts) and parts[0].runs is not None
        out = cls(dedup=dedup)
        for p in parts:
            if p.start != len(out.scores):
                raise RuntimeError(f"film survey: segment from frame {p.start} after {len(out.scores)} frames")
            out.scores += p.scores
            for k, v in p.seconds.items():
                out.seconds[k] = out.seconds.get(k, 0.0) + v
        if not dedup:
            return out
        g = out.duplicates
        by_index = {int(fd.index): fd for fd in frames}
        for p in parts:
            if p.frames == 0:
                continue
            local_first = {f: a for a, b in p.runs for f in range(a + 1, b + 1)}
            met = p.start - 1 if g._first is None else None  # the first segment: all its own
            for off, thumb in enumerate(p.head if met is None else ()):
                i = p.start + off
                fd = by_index[i]
                g.update_thumb(i, thumb, fd.detections, fd.cut)
                if g._first[0] == local_first.get(i, i):
                    met = i
                    break
            if met is None:
                if len(p.head) < p.frames:
                    if redo is None:
                        raise RuntimeError(f"film survey: the duplicate check of frames from {p.start} needs "
                                           "the frames again")
                    redo(p, g, p.start + len(p.head))
                continue
            for a, b in p.runs:  # the segment's own decisions from `met` on
                if b <= met:
                    continue
                if a <= met and g._runs and g._runs[-1][0] == a:
                    g._runs[-1][1] = b
                else:
                    g._runs.append([a, b])
            t_index, t_thumb = p.tail
            g._first = (t_index, np.asarray(t_thumb, np.float32), list(by_index[t_index].detections))
        return out


@dataclass
class SegmentSurvey:
    """A segment's `FilmSurvey` (frames [start, start + frames)), as pass 1 sends it back.

    scores: chroma score per frame. runs: the repeated-frame runs the segment found on its
    own (its first frame starting a run), None when dedup is off. head: duplicate
    thumbnails (uint8 when exact) of its first frames, up to the frame that ended its first
    run (at most `HEAD_THUMBS`; none for the first segment). tail: (index, thumbnail) of the
    run's first frame the segment ended with.
    """

    start: int
    frames: int
    scores: list
    runs: list | None
    head: list
    tail: tuple | None
    seconds: dict


@dataclass
class FilmPlan:
    """Decisions for one input (see the module docstring). Build with `FilmPlan.create`."""

    options: FilmSettings
    interlace: InterlaceDecision
    upscaler: object | None = None
    seconds: dict = field(default_factory=lambda: {"interlace_probe": 0.0, "deinterlace": 0.0, "upscale": 0.0})
    frames_deinterlaced: int = 0
    frames_upscaled: int = 0

    @classmethod
    def create(cls, path: str | Path, settings, *, device="cpu", build_upscaler: bool = True) -> "FilmPlan":
        """Probe `path` for interlacing (unless off) and build the upscaler (upscale > 1 and
        `build_upscaler`: the Ray driver decides, its workers upscale)."""
        opts = FilmSettings.take(settings)
        t0 = time.perf_counter()
        probe = probe_interlace(path) if opts.deinterlace != "off" else None
        decision = decide_deinterlace(opts.deinterlace, probe)
        plan = cls(opts, decision)
        plan.seconds["interlace_probe"] = time.perf_counter() - t0
        if decision.deinterlace:
            log.info("deinterlacing (bwdif, %s): %s", decision.parity, decision.reason)
        if opts.upscale > 1 and build_upscaler:
            plan.upscaler = create_upscaler(opts.upscaler, models_dir=getattr(settings, "models_dir", None),
                                            device=device, download=bool(getattr(settings, "download", False)))
        return plan

    @classmethod
    def for_frames(cls, settings) -> "FilmPlan":
        """A plan for in-memory frames (the frames API, the VapourSynth filter): per-shot
        colour, grain and repeats as for a file; never deinterlaced (an RGB frame batch holds
        no field information); the background is upscaled by the pass's own bilinear
        `upscale_picture` (no upscaler is built)."""
        opts = FilmSettings.take(settings)
        return cls(opts, InterlaceDecision(False, None, "in-memory frames: no field information"))

    def worker_state(self) -> dict:
        """The decisions a Ray worker needs (plain data, see `for_worker`)."""
        return {"deinterlace": self.interlace.deinterlace, "parity": self.interlace.parity,
                "reason": self.interlace.reason}

    @classmethod
    def for_worker(cls, settings, state: dict, upscaler=None) -> "FilmPlan":
        """A Ray worker's plan: the driver's decisions (`worker_state`), the worker's own
        (cached) upscaler; no probe. Its figures are the worker's (`figures`)."""
        decision = InterlaceDecision(bool(state["deinterlace"]), state.get("parity"), str(state.get("reason", "")))
        return cls(FilmSettings.take(settings), decision, upscaler=upscaler)

    def figures(self) -> dict:
        """This plan's run figures (plain data), to add up with `add_figures`."""
        return {"seconds": {k: v for k, v in self.seconds.items() if k != "interlace_probe"},
                "frames_deinterlaced": self.frames_deinterlaced, "frames_upscaled": self.frames_upscaled}

    def add_figures(self, figures: dict) -> None:
        for k, v in figures.get("seconds", {}).items():
            self.seconds[k] = self.seconds.get(k, 0.0) + v
        self.frames_deinterlaced += int(figures.get("frames_deinterlaced", 0))
        self.frames_upscaled += int(figures.get("frames_upscaled", 0))

    # ------------------------------------------------------------------ pass 1 and 2
    def frames(self, frames: Iterable, survey: FilmSurvey | None = None,
               keep: tuple[int, int] | None = None) -> Iterator:
        """`frames` (DecodedFrames), deinterlaced when the plan says so, one out per one in;
        in pass 1 (`survey` given) each picture is also measured for colour.

        keep: (start, stop) frame indices to give back; the others only feed the deinterlacer
        (bwdif reads the frames before and after: a Ray segment decodes one more on each side
        so its frames equal a one-piece run's)."""
        it = iter(frames)
        if self.interlace.deinterlace:
            it = Deinterlacer(self.interlace.parity).run(it)
        while True:
            t0 = time.perf_counter()
            try:
                frame = next(it)
            except StopIteration:
                return
            finally:
                if self.interlace.deinterlace:
                    self.seconds["deinterlace"] += time.perf_counter() - t0
            if keep is not None and not keep[0] <= frame.index < keep[1]:
                continue
            if self.interlace.deinterlace:
                self.frames_deinterlaced += 1
            if survey is not None:
                survey.observe_picture(frame.index, frame.picture)
            yield frame

    def survey(self, start: int = 0) -> FilmSurvey:
        return FilmSurvey(dedup=self.options.dedup, start=start)

    def survey_colors(self, analysis, frames: Iterable) -> None:
        """For tracks found without a film survey (saved earlier, made elsewhere): measure
        the colour of `frames` (the DecodedFrames pass 1 saw) and `finalize`. No repeats:
        the duplicate check needs pass 1's detection images."""
        survey = FilmSurvey(dedup=False)
        for _ in self.frames(frames, survey):
            pass
        self.finalize(analysis, survey)

    def finalize(self, analysis, survey: FilmSurvey) -> None:
        """Store per-shot colour modes and repeat runs in `analysis.extra["film"]`."""
        runs = survey.duplicates.runs() if survey.duplicates is not None else None
        section = self._film_section(survey.scores, analysis.cuts, runs, analysis.tracks)
        analysis.extra["film"] = {**section, "survey_seconds": {k: round(v, 4) for k, v in survey.seconds.items()}}

    def shot_group_options(self, survey: FilmSurvey, analysis, start: int, stop: int,
                           tracks) -> tuple[list[tuple[int, str]], dict[int, int]]:
        """Paste modes and repeats of frames [start, stop), a group of whole shots (`start` 0
        or a cut, `stop` a cut) whose `tracks` are final, while pass 1 still runs on later
        frames: (shot modes to add to the `FilmPaster`, repeats to add to the pass). Every
        step is per shot (colour verdicts, repeat runs, which end at cuts), so these are the
        whole film's `pass_options` for those frames. With `--color luma|color` the paster's
        one mode was set by `pass_options`: no modes come back."""
        runs = survey.duplicates.runs_since(start) if survey.duplicates is not None else None
        runs = None if runs is None else [r for r in runs if r[0] < stop]
        scores = survey.scores[start - survey.start:stop - survey.start]
        section = self._film_section(scores, [c for c in analysis.cuts if start < c < stop], runs, tracks, start)
        modes = self._shot_modes(section) if self.options.color == "auto" else []
        return modes, self._repeats(section)

    def _film_section(self, scores, cuts, runs, tracks, start: int = 0) -> dict:
        """{"shots": per-shot colour verdicts and modes, "repeat_runs": [first, last] runs
        whose repeats hold the same face tracks} of the frames from `start` on (`scores`: one
        per frame; `cuts`, `runs`, `tracks` in whole-video frame indices)."""
        color = []
        for shot in classify_shots(scores, [c - start for c in cuts]):
            shot = dataclasses.replace(shot, start=shot.start + start, end=shot.end + start)
            mode = {"luma": "luma", "color": "color"}.get(self.options.color, "luma" if shot.monochrome else "color")
            color.append({**shot.to_dict(), "mode": mode})
        repeats: dict[int, int] = {}
        if runs is not None:
            track_sets: dict[int, set] = {}
            for t in tracks:
                for f in t.frames:
                    track_sets.setdefault(int(f), set()).add(int(t.track_id))
            repeats = repeat_map(runs, {f: frozenset(s) for f, s in track_sets.items()})
        out_runs: list[list[int]] = []
        for f in sorted(repeats):
            if out_runs and out_runs[-1][0] == repeats[f] and out_runs[-1][1] == f - 1:
                out_runs[-1][1] = f
            else:
                out_runs.append([repeats[f], f])
        return {"shots": color, "repeat_runs": out_runs}

    def _shot_modes(self, film: dict) -> list[tuple[int, str]]:
        # with --color auto the verdict (kind) decides, whatever colour setting finalized the tracks
        if self.options.color in ("luma", "color"):
            return [(0, self.options.color)]
        return [(int(s["start"]), ("luma" if s["kind"] != "color" else "color") if "kind" in s else s["mode"])
                for s in film.get("shots", [])]

    def _repeats(self, film: dict) -> dict[int, int]:
        repeats = {}
        for first, last in film.get("repeat_runs", []) if self.options.dedup else []:
            for f in range(first + 1, last + 1):
                repeats[f] = first
        return repeats

    def pass_options(self, analysis, keep_clean: Iterable[int] = ()) -> dict:
        """Keyword arguments for `FaceRestorationPass`: upscaler, paster, repeats."""
        film = analysis.extra.get("film", {})
        paster = FilmPaster(self._shot_modes(film), grain=self.options.grain != "off", seed=self.options.grain_seed,
                            grain_scale=float(self.options.upscale), keep_clean=set(keep_clean))
        return {"upscaler": self._timed_upscale if self.upscaler is not None else None, "paster": paster,
                "repeats": self._repeats(film)}

    def _timed_upscale(self, picture, factor: int):
        t0 = time.perf_counter()
        out = self.upscaler.upscale(picture, factor)
        self.seconds["upscale"] += time.perf_counter() - t0
        self.frames_upscaled += 1
        return out

    # ------------------------------------------------------------------ report
    def report(self, analysis, paster: FilmPaster | None, *, frames: int, faces_reused: int = 0) -> dict:
        """The report's `film` section: decisions, figures and the cost of each step per frame
        (milliseconds, averaged over the frames it ran on; the probe is once per file)."""
        film = analysis.extra.get("film", {})
        survey = film.get("survey_seconds", {})
        n = max(1, frames)

        def ms(seconds: float, count: int = n) -> float:
            return round(1000.0 * seconds / max(1, count), 3)

        cost = {
            "interlace_probe_once": ms(self.seconds["interlace_probe"], 1),
            "deinterlace": ms(self.seconds["deinterlace"], self.frames_deinterlaced) if self.frames_deinterlaced else 0.0,
            "color_check": ms(survey.get("color_check", 0.0), analysis.frame_count),
            "duplicate_check": ms(survey.get("duplicate_check", 0.0), analysis.frame_count),
            "upscale": ms(self.seconds["upscale"], self.frames_upscaled) if self.frames_upscaled else 0.0,
        }
        out = {
            "color": self.options.color,
            "shots": film.get("shots", []),
            "interlace": self.interlace.to_dict(),
            "frames_deinterlaced": self.frames_deinterlaced,
            "upscaler": getattr(self.upscaler, "name", None),
            "repeat_runs": film.get("repeat_runs", []),
            "repeated_frames": sum(b - a for a, b in film.get("repeat_runs", [])),
            "faces_reused": faces_reused,
            "grain_seed": self.options.grain_seed if self.options.grain != "off" else None,
        }
        if paster is not None:
            out.update(paster.report())
            cost["grain"] = ms(paster.seconds["grain"])
            cost["paste"] = ms(paster.seconds["paste"])
        out["cost_ms_per_frame"] = cost
        return out
