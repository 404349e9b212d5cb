"""The local runner: restore the faces of one video on one machine.

decode -> detect -> track (pass 1, over the whole video or range) -> decode -> align ->
restore (temporal) -> paste back -> encode (pass 2, streaming, decode and encode in their
own threads). Memory does not grow with the video's length: pass 1 keeps a few floats per
face per frame, pass 2 holds at most about R + batch frames.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from videofix.errors import UsageError
from videofix.film.plan import FilmOptions
from videofix.io import OutputFile, open_video, parse_range, probe
from videofix.io.info import TimeRange
from videofix.pipeline.analysis import FaceAnalysis, analyze_frames
from videofix.pipeline.report import PreviewCollector, choose_preview_frames, run_report, write_json_atomic
from videofix.pipeline.restoration import FaceRestorationPass
from videofix.pipeline.stages import BackgroundConsumer, Progress, StageTimer, prefetch

log = logging.getLogger("videofix")


@dataclass
class RestoreSettings:
    """Everything `videofix restore` can be told. Plain data (JSON-able) so the Ray runner
    ships it to workers unchanged."""

    weights: str | None = None
    models_dir: str | None = None
    model: str = "codeformer"
    detector: str = "auto"
    fidelity: float = 0.7
    temporal_radius: int = 4
    device: str = "auto"
    batch_size: int = 8
    dtype: str = "fp32"
    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    pix_fmt: str | None = None
    range: str | None = None
    upscale: int = 1
    landmark_sigma: float = 2.0
    max_gap: int = 5
    parsing: bool = True
    download: bool = True
    # old films (videofix.film): colour mode, grain, deinterlacing, background upscaler,
    # repeats; the defaults are the film layer's own (`FilmOptions`)
    color: str = FilmOptions.color
    grain: str = FilmOptions.grain
    grain_seed: int = FilmOptions.grain_seed
    deinterlace: str = FilmOptions.deinterlace
    upscaler: str = FilmOptions.upscaler
    dedup: bool = FilmOptions.dedup

    def validate(self) -> None:
        if not 0.0 <= self.fidelity <= 1.0:
            raise UsageError(f"--fidelity must be between 0 and 1, got {self.fidelity}")
        if self.temporal_radius < 0:
            raise UsageError(f"--temporal-radius must be >= 0, got {self.temporal_radius}")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.upscale < 1 or self.upscale > 8:
            raise UsageError(f"--upscale must be an integer from 1 to 8, got {self.upscale}")
        if self.range is not None:
            parse_range(self.range)
        for name, value, allowed in (("color", self.color, ("auto", "color", "luma")), ("grain", self.grain, ("auto", "off")),
                                     ("deinterlace", self.deinterlace, ("auto", "on", "off")),
                                     ("upscaler", self.upscaler, ("auto", "realesrgan", "lanczos", "bilinear"))):
            if value not in allowed:
                raise UsageError(f"--{name} must be one of {', '.join(allowed)}, got {value!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class LoadedStages:
    """The heavy objects a run needs, built once (also reused by the Ray actors)."""

    model: torch.nn.Module
    detector: object
    parser: object | None
    device: torch.device


def load_stages(settings: RestoreSettings, *, need_detector: bool = True, quiet: bool = True) -> LoadedStages:
    """Build the restorer, the detector and (when its file is present) the face parser."""
    from videofix.faces import create_detector, load_face_parser
    from videofix.models import load_restorer

    model = load_restorer(settings.weights, settings.models_dir, settings.model, settings.device, settings.dtype,
                          download=settings.download, quiet=quiet)
    device = next(model.parameters()).device
    det_device = "cuda" if device.type == "cuda" else "cpu"
    detector = create_detector(settings.detector, settings.models_dir, det_device) if need_detector else None
    parser = None
    if settings.parsing:
        parser = load_face_parser(settings.models_dir, device=det_device, download=False)
    return LoadedStages(model, detector, parser, device)


def make_engine(stages: LoadedStages, settings: RestoreSettings):
    """The temporal engine; the network only ever sees batches of one fixed size
    (`fixed_batch_model`), so a face's output does not depend on its batch neighbours and the
    Ray runner's segments give the same frames as one piece."""
    from videofix.restore.batching import fixed_batch_model
    from videofix.restore.temporal import TemporalRestorer

    model = fixed_batch_model(stages.model, stages.device, settings.batch_size)
    return TemporalRestorer(model, radius=settings.temporal_radius, fidelity=settings.fidelity,
                            batch_size=settings.batch_size, device=stages.device)


def analyze_video(path: str | Path, detector, settings: RestoreSettings, *, time_range: TimeRange | None = None,
                  quiet: bool = True, timer: StageTimer | None = None, film=None) -> FaceAnalysis:
    """Pass 1 over a file (or its range): detections linked into smoothed tracks.
    film: a `videofix.film.plan.FilmPlan` (deinterlacing, per-shot colour, repeats), or None."""
    timer = timer or StageTimer()
    with open_video(path, time_range) as reader:
        info = reader.info
        total = info.frame_count or None
        survey = film.survey() if film is not None else None
        frames = film.frames(reader, survey) if film is not None else reader
        with Progress(total, "detect ", quiet) as bar:
            t0 = time.perf_counter()
            analysis = analyze_frames(prefetch(frames, 8, timer, "decode_pass1"), detector,
                                      frame_size=(info.width, info.height), sigma=settings.landmark_sigma,
                                      max_gap=settings.max_gap, progress=bar.update, observer=survey)
            timer.add("detect_and_track", time.perf_counter() - t0 - timer.seconds.get("decode_pass1", 0.0))
    if film is not None:
        film.finalize(analysis, survey)
    return analysis


def restore_video(input_path: str | Path, output_path: str | Path, settings: RestoreSettings, *,
                  report_path: str | Path | None = None, preview_path: str | Path | None = None,
                  quiet: bool = False, stages: LoadedStages | None = None) -> dict:
    """Restore the faces of `input_path` into `output_path`; returns the report (a dict).

    The output appears atomically at the end (nothing under its name on failure); the
    input is only read. Raises `VideofixError`s with one-line messages on bad input.
    """
    t_start = time.perf_counter()
    settings.validate()
    time_range = parse_range(settings.range) if settings.range else None
    info = probe(input_path)  # fails fast on bad input
    timer = StageTimer()
    with timer("load_models"):
        stages = stages or load_stages(settings, quiet=quiet)
    if not quiet:
        log.info("detector: %s, restorer: %s on %s", stages.detector.name, settings.model, stages.device)

    from videofix.film.plan import FilmPlan

    with timer("film_plan"):
        film = FilmPlan.create(input_path, settings, device=stages.device)
    analysis = analyze_video(input_path, stages.detector, settings, time_range=time_range, quiet=quiet, timer=timer,
                             film=film)
    engine = make_engine(stages, settings)
    preview_frames = choose_preview_frames(analysis) if preview_path else []
    film_options = film.pass_options(analysis, keep_clean=preview_frames)
    restorer = FaceRestorationPass(analysis, engine, upscale=settings.upscale, parser=stages.parser, **film_options)
    preview = PreviewCollector(preview_frames, analysis) if preview_path else None

    out_info = info
    if settings.upscale != 1:
        out_info = dataclasses.replace(info, width=info.width * settings.upscale, height=info.height * settings.upscale)
    frames_read = frames_written = 0
    with open_video(input_path, time_range) as reader, \
            OutputFile(input_path, output_path, out_info, settings.codec, settings.crf, settings.preset,
                       settings.pix_fmt, time_range) as out:

        regions: dict[int, list] = {}

        def encode(item) -> None:
            out.write(item.picture, item.frame.pts)
            for track_id, box in item.regions.items():
                regions.setdefault(track_id, []).append(list(box))

        writer = BackgroundConsumer(encode, depth=8, timer=timer, stage="encode")
        try:
            with Progress(analysis.frame_count, "restore", quiet) as bar:

                def emit(finished) -> None:
                    nonlocal frames_written
                    for done in finished:
                        if preview is not None:
                            preview.add_after(done.frame.index, done.picture)
                        writer.submit(done)
                        frames_written += 1
                        bar.update(1)

                for frame in prefetch(film.frames(reader), 8, timer, "decode"):
                    frames_read += 1
                    if preview is not None:
                        preview.add_before(frame.index, frame.picture)
                    with timer("restore"):
                        finished = restorer.feed(frame)
                    emit(finished)
                with timer("restore"):
                    finished = restorer.finish()
                emit(finished)
        finally:
            writer.close()
        read_report = reader.report

    if frames_written != frames_read:
        raise RuntimeError(f"wrote {frames_written} frames of {frames_read}")
    total = round(time.perf_counter() - t_start, 4)
    report = run_report(
        input_path=input_path, output_path=output_path, settings=settings, analysis=analysis,
        device=str(stages.device), frames_read=frames_read, frames_written=frames_written,
        faces_restored=restorer.faces_restored, timings={**timer.as_dict(), "total": total},
        max_frames_held=restorer.max_pending, metrics=restorer.metrics, regions=regions, film=film,
        paster=film_options["paster"], faces_reused=restorer.faces_reused,
        notes=[] if read_report.complete else [read_report.describe(str(input_path))])
    if preview is not None:
        preview.add_clean(film_options["paster"].clean)
        report["preview"] = str(preview_path) if preview.write(preview_path, settings.upscale) else None
    if report_path:
        write_json_atomic(report_path, report)
    return report
