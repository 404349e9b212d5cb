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

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from videofix.film.color import ChromaScore, classify_shots, picture_chroma_score
from videofix.film.duplicates import DuplicateFinder, repeat_map
from videofix.film.interlace import Deinterlacer, InterlaceDecision, decide_deinterlace, probe_interlace
from videofix.film.paste import FilmPaster
from videofix.film.upscale import create_upscaler

log = logging.getLogger("videofix")

COLOR_MODES = ("auto", "color", "luma")
GRAIN_MODES = ("auto", "off")
DEINTERLACE_MODES = ("auto", "on", "off")


@dataclass
class FilmOptions:
    """The film options of `RestoreSettings` (defaults when a settings object lacks them)."""

    color: str = "auto"
    grain: str = "auto"
    grain_seed: int = 0
    deinterlace: str = "auto"
    upscaler: str = "auto"
    dedup: bool = True
    upscale: int = 1

    @classmethod
    def from_settings(cls, settings) -> "FilmOptions":
        d = cls()
        return cls(**{k: getattr(settings, k, getattr(d, k)) for k in d.__dataclass_fields__})


class FilmSurvey:
    """What pass 1 measures for films: a chroma score per decoded picture
    (`observe_picture`, fed by `FilmPlan.frames`) and the duplicate check on the detection
    image (the call, pass 1's `observer`)."""

    def __init__(self, dedup: bool = True):
        self.scores: list[ChromaScore] = []
        self.duplicates = DuplicateFinder() if dedup else None
        self.seconds = {"color_check": 0.0, "duplicate_check": 0.0}

    def observe_picture(self, index: int, picture) -> None:
        t0 = time.perf_counter()
        if index != len(self.scores):
            raise RuntimeError(f"film survey: frame {index} after {len(self.scores)} frames")
        self.scores.append(picture_chroma_score(picture))
        self.seconds["color_check"] += time.perf_counter() - t0

    def __call__(self, index: int, rgb: np.ndarray, detections, cut: bool) -> None:
        t0 = time.perf_counter()
        if self.duplicates is not None:
            self.duplicates.update(index, rgb, detections, cut)
        self.seconds["duplicate_check"] += time.perf_counter() - t0


@dataclass
class FilmPlan:
    """Decisions for one input (see the module docstring). Build with `FilmPlan.create`."""

    options: FilmOptions
    interlace: InterlaceDecision
    upscaler: object | None = None
    seconds: dict = field(default_factory=lambda: {"interlace_probe": 0.0, "deinterlace": 0.0, "upscale": 0.0})
    frames_deinterlaced: int = 0
    frames_upscaled: int = 0

    @classmethod
    def create(cls, path: str | Path, settings, *, device="cpu") -> "FilmPlan":
        """Probe `path` for interlacing (unless off) and build the upscaler (upscale > 1)."""
        opts = FilmOptions.from_settings(settings)
        t0 = time.perf_counter()
        probe = probe_interlace(path) if opts.deinterlace != "off" else None
        decision = decide_deinterlace(opts.deinterlace, probe)
        plan = cls(opts, decision)
        plan.seconds["interlace_probe"] = time.perf_counter() - t0
        if decision.deinterlace:
            log.info("deinterlacing (bwdif, %s): %s", decision.parity, decision.reason)
        if opts.upscale > 1:
            plan.upscaler = create_upscaler(opts.upscaler, models_dir=getattr(settings, "models_dir", None),
                                            device=device, download=bool(getattr(settings, "download", False)))
        return plan

    @classmethod
    def for_frames(cls, settings) -> "FilmPlan":
        """A plan for in-memory frames (the frames API, the VapourSynth filter): per-shot
        colour, grain and repeats as for a file; never deinterlaced (an RGB frame batch holds
        no field information); the background is upscaled by the pass's own bilinear
        `upscale_picture` (no upscaler is built)."""
        opts = FilmOptions.from_settings(settings)
        return cls(opts, InterlaceDecision(False, None, "in-memory frames: no field information"))

    # ------------------------------------------------------------------ pass 1 and 2
    def frames(self, frames: Iterable, survey: FilmSurvey | None = None) -> Iterator:
        """`frames` (DecodedFrames), deinterlaced when the plan says so, one out per one in;
        in pass 1 (`survey` given) each picture is also measured for colour."""
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
            if self.interlace.deinterlace:
                self.frames_deinterlaced += 1
            if survey is not None:
                survey.observe_picture(frame.index, frame.picture)
            yield frame

    def survey(self) -> FilmSurvey:
        return FilmSurvey(dedup=self.options.dedup)

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
        shots = classify_shots(survey.scores, analysis.cuts)
        color = []
        for shot in shots:
            mode = {"luma": "luma", "color": "color"}.get(self.options.color, "luma" if shot.monochrome else "color")
            color.append({**shot.to_dict(), "mode": mode})
        repeats: dict[int, int] = {}
        if survey.duplicates is not None:
            track_sets: dict[int, set] = {}
            for t in analysis.tracks:
                for f in t.frames:
                    track_sets.setdefault(int(f), set()).add(int(t.track_id))
            repeats = repeat_map(survey.duplicates.runs(), {f: frozenset(s) for f, s in track_sets.items()})
        runs: list[list[int]] = []
        for f in sorted(repeats):
            if runs and runs[-1][0] == repeats[f] and runs[-1][1] == f - 1:
                runs[-1][1] = f
            else:
                runs.append([repeats[f], f])
        analysis.extra["film"] = {"shots": color, "repeat_runs": runs,
                                  "survey_seconds": {k: round(v, 4) for k, v in survey.seconds.items()}}

    def pass_options(self, analysis, keep_clean: Iterable[int] = ()) -> dict:
        """Keyword arguments for `FaceRestorationPass`: upscaler, paster, repeats."""
        film = analysis.extra.get("film", {})
        # with --color auto the verdict (kind) decides, whatever colour setting finalized the tracks
        shot_modes = [(int(s["start"]), ("luma" if s["kind"] != "color" else "color")
                       if self.options.color == "auto" and "kind" in s else s["mode"]) for s in film.get("shots", [])]
        if self.options.color in ("luma", "color"):
            shot_modes = [(0, self.options.color)]
        repeats = {}
        for first, last in film.get("repeat_runs", []):
            for f in range(first + 1, last + 1):
                repeats[f] = first
        paster = FilmPaster(shot_modes, grain=self.options.grain != "off", seed=self.options.grain_seed,
                            grain_scale=float(self.options.upscale), keep_clean=set(keep_clean))
        return {"upscaler": self._timed_upscale if self.upscaler is not None else None, "paster": paster,
                "repeats": repeats}

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
