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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from videofix.io import OutputFile, check_output, open_video, parse_range, probe
from videofix.io.info import TimeRange
from videofix.pipeline.analysis import FaceAnalysis, analyze_frames, make_shot_detector
from videofix.pipeline.factory import LoadedStages, load_stages, make_engine, stage_devices
from videofix.pipeline.report import PreviewCollector, choose_preview_frames, run_report, write_json_atomic
from videofix.pipeline.restoration import FaceRestorationPass
from videofix.pipeline.stages import BackgroundConsumer, Progress, StageTimer, ordered_map, prefetch
from videofix.settings import RestoreSettings

log = logging.getLogger("videofix")


# A detection worker costs about a second to start (imports, the landmark model): fewer
# frames than this are detected in the main process (the detections are the same).
POOL_MIN_FRAMES = 48


def detector_pool(detector, settings: RestoreSettings, workers: int, frames: int | None = None):
    """A `DetectorPool` of `workers` processes with `detector`'s backend, or None when one
    worker is asked for, the detector runs on a GPU (it stays in this process) or the input
    has fewer than `POOL_MIN_FRAMES` frames (`frames`, when known)."""
    from videofix.faces.pool import DetectorPool, detector_on_gpu

    if workers < 2 or detector is None or detector_on_gpu(detector) or (frames is not None and 0 < frames < POOL_MIN_FRAMES):
        return None
    return DetectorPool(detector.name, workers, models_dir=settings.models_dir,
                        det_short_side=getattr(detector, "det_short_side", 640),
                        score_threshold=getattr(detector, "score_threshold", None))


def frame_total(path: str | Path, time_range: TimeRange | None, info) -> int | None:
    """Frames a run over `path` (or its range) will read, for the progress bars: the file's
    count, or the frames of the range on the video's timeline (which the reader reads anyway,
    and caches). None when unknown."""
    if time_range is None:
        return info.frame_count or None
    from videofix.errors import VideofixError
    from videofix.io.timeline import frame_timeline

    try:
        tl = frame_timeline(path)
    except (VideofixError, OSError):  # e.g. an image sequence: no container timeline
        return None
    return sum(1 for i in range(len(tl)) if time_range.contains(tl.seconds(i))) or None


def analyze_video(path: str | Path, detector, settings: RestoreSettings, *, time_range: TimeRange | None = None,
                  quiet: bool = True, timer: StageTimer | None = None, film=None, pool=None,
                  chooser=None, total: int | None = None, shots=None) -> FaceAnalysis:
    """Pass 1 over a file (or its range): detections linked into smoothed tracks.
    film: a `videofix.film.plan.FilmPlan` (deinterlacing, per-shot colour, repeats), or None.
    pool: a `videofix.faces.pool.DetectorPool` to detect in (see `detector_pool`), or None.
    The faces chosen by the settings' selection options are kept (`videofix.pipeline.selection`;
    reference photos are embedded before pass 1, so a bad one fails at once; `chooser`: a
    `FaceChooser` of these settings made earlier). total: frames to expect, for the progress
    bar (default: `frame_total`). shots: the shot detector (default: TransNetV2 beside the
    device the settings name, `stage_devices`)."""
    from videofix.models.device import resolve_device
    from videofix.pipeline.selection import FaceChooser, picture_frames

    timer = timer or StageTimer()
    chooser = chooser if chooser is not None else FaceChooser.from_settings(settings, detector)
    with open_video(path, time_range) as reader:
        info = reader.info
        total = total if total is not None else frame_total(path, time_range, info)
        survey = film.survey() if film is not None else None
        frames = film.frames(reader, survey) if film is not None else reader
        with Progress(total, "detect ", quiet) as bar:
            t0 = time.perf_counter()
            analysis = analyze_frames(prefetch(frames, 8, timer, "decode_pass1"), detector,
                                      frame_size=(info.width, info.height), tracking=settings,
                                      progress=bar.update, observer=survey, pool=pool,
                                      shots=shots if shots is not None else
                                      make_shot_detector(stage_devices(resolve_device(settings.device)).shots))
            timer.add("detect_and_track", time.perf_counter() - t0 - timer.seconds.get("decode_pass1", 0.0))
    if film is not None:
        film.finalize(analysis, survey)
    if chooser.active:

        def frames():
            with open_video(path, time_range) as again:
                yield from picture_frames(again)

        with timer("select_faces"):
            analysis = chooser.apply(analysis, frames)
    return analysis


def restore_video(input_path: str | Path, output_path: str | Path, settings: RestoreSettings, *,
                  report_path: str | Path | None = None, preview_path: str | Path | None = None,
                  quiet: bool = False, stages: LoadedStages | None = None,
                  analysis: FaceAnalysis | None = None) -> dict:
    """Restore the faces of `input_path` into `output_path`; returns the report (a dict).

    The output appears atomically at the end (nothing under its name on failure); the
    input is only read. Raises `VideofixError`s with one-line messages on bad input.
    analysis: pass 1 done earlier on this input and range (`analyze_video` with a film
    plan of the same settings, e.g. a saved analysis.json): pass 1 is skipped.
    """
    t_start = time.perf_counter()
    settings.validate()
    time_range = parse_range(settings.range) if settings.range else None
    info = probe(input_path)  # fails fast on bad input
    check_output(info, output_path, settings.codec)  # ... and on an output it cannot write, before any work
    timer = StageTimer()
    with timer("load_models"):
        stages = stages or load_stages(settings, quiet=quiet)
    if not quiet:
        log.info("detector: %s, restorer: %s on %s", stages.detector.name, settings.model, stages.device)

    from videofix.film.plan import FilmPlan

    with timer("film_plan"):
        film = FilmPlan.create(input_path, settings, device=stages.device)
    # parallel CPU stages (--workers): detection in worker processes (one detector each),
    # alignment and paste in threads; the output is the same for any number of workers
    workers = settings.worker_count()
    total = frame_total(input_path, time_range, info)  # the progress bars count the range's frames
    # pass 1 overlaps pass 2 (videofix.pipeline.overlap) unless a choice needs the whole video
    feed = None
    overlap_blocker_reason = "pass 1 was given (a saved analysis)"
    if analysis is None:
        from videofix.pipeline.overlap import overlap_blocker
        from videofix.pipeline.selection import FaceChooser

        chooser = FaceChooser.from_settings(settings, stages.detector)  # references fail here, before pass 1
        pool = detector_pool(stages.detector, settings, workers, info.frame_count)
        overlap_blocker_reason = overlap_blocker(preview=bool(preview_path), pool=pool, detector=stages.detector,
                                                 chooser_active=chooser.active)
        if overlap_blocker_reason is None:
            try:
                feed, analysis = _start_shot_feed(input_path, time_range, info, stages, settings, film, pool, quiet,
                                                  total)
            except BaseException:
                if pool is not None:
                    pool.close()
                raise
        else:
            try:
                analysis = analyze_video(input_path, stages.detector, settings, time_range=time_range, quiet=quiet,
                                         timer=timer, film=film, pool=pool, chooser=chooser, total=total,
                                         shots=make_shot_detector(stages.devices.shots))
            finally:
                if pool is not None:
                    pool.close()
    try:
        return _restore_pass2(input_path, output_path, settings, info=info, time_range=time_range, stages=stages,
                              film=film, analysis=analysis, feed=feed, timer=timer, workers=workers,
                              report_path=report_path, preview_path=preview_path, quiet=quiet, t_start=t_start,
                              overlap_blocker_reason=overlap_blocker_reason, total=total)
    finally:
        if feed is not None:
            feed.close()
            if feed.pool is not None:
                feed.pool.close()


def _start_shot_feed(input_path, time_range, info, stages: LoadedStages, settings: RestoreSettings, film, pool,
                     quiet: bool, total: int | None):
    """Pass 1 in a background thread (`videofix.pipeline.overlap.ShotFeed`); its analysis
    grows shot by shot while pass 2 runs. Returns (feed, analysis); the pass is attached by
    `_restore_pass2` before the feed starts."""
    from videofix.pipeline.analysis import TrackLinker
    from videofix.pipeline.overlap import ShotFeed

    shots = make_shot_detector(stages.devices.shots)
    linker = TrackLinker(detector_name=stages.detector.name, frame_size=(info.width, info.height),
                         tracking=settings, cut_detector=shots.name)
    # pass 1's own plan object: the same decisions, its own counters (the threads do not share them)
    film1 = dataclasses.replace(film, seconds=dict.fromkeys(film.seconds, 0.0), frames_deinterlaced=0,
                                frames_upscaled=0)
    feed = ShotFeed(lambda: open_video(input_path, time_range), detector=stages.detector, pool=pool, shots=shots,
                    linker=linker, film=film1, timer=StageTimer(), total=total, quiet=quiet,
                    decode_memory=settings.decode_memory_mb << 20)
    return feed, linker.analysis


def _restore_pass2(input_path, output_path, settings: RestoreSettings, *, info, time_range, stages: LoadedStages,
                   film, analysis: FaceAnalysis, feed, timer: StageTimer, workers: int, report_path, preview_path,
                   quiet: bool, t_start: float, overlap_blocker_reason: str | None, total: int | None) -> dict:
    """Pass 2 of `restore_video` (with `feed`, a `ShotFeed`, while pass 1 still runs)."""
    engine = make_engine(stages, settings)
    preview_frames = choose_preview_frames(analysis) if preview_path else []
    film_options = film.pass_options(analysis, keep_clean=preview_frames)
    executor = ThreadPoolExecutor(workers, thread_name_prefix="videofix-cpu") if workers > 1 else None
    restorer = FaceRestorationPass(analysis, engine, upscale=settings.upscale, parser=stages.parser, **film_options,
                                   executor=executor, paste_depth=2 * workers, paste_options=settings.paste_options())
    preview = PreviewCollector(preview_frames, analysis) if preview_path else None
    if feed is not None:
        feed.attach(restorer, film_options["paster"]).start()
    out_info = info
    if settings.upscale != 1:
        out_info = dataclasses.replace(info, width=info.width * settings.upscale, height=info.height * settings.upscale)
    frames_read = frames_written = 0
    # pass 2 reads the frames pass 1 decoded when the passes overlap (`videofix.pipeline.shared`)
    source = feed.shared.source() if feed is not None and feed.shared is not None else open_video(input_path,
                                                                                                   time_range)
    with source as reader, \
            OutputFile(input_path, output_path, out_info, settings.codec, settings.crf, settings.preset,
                       settings.pix_fmt, time_range, threads=settings.encoder_threads) as out:

        regions: dict[int, list] = {}

        def encode(item) -> None:
            out.write(item.picture, item.frame.pts)
            for track_id, box in item.regions.items():
                regions.setdefault(track_id, []).append(list(box))

        writer = BackgroundConsumer(encode, depth=8, timer=timer, stage="encode")
        prefetched = None
        try:
            bar_total = analysis.frame_count if feed is None else total
            with Progress(bar_total, "restore", quiet, position=None if feed is None else 1) as bar:

                def emit(finished) -> None:
                    nonlocal frames_written
                    for done in finished:
                        if preview is not None:
                            preview.add_after(done.frame.index, done.picture)
                        writer.submit(done)
                        frames_written += 1
                        bar.update(1)

                decoded = prefetched = prefetch(film.frames(reader), 8, timer, "decode")
                if feed is not None:  # a frame goes on once pass 1 has closed its shot
                    decoded = feed.gate(decoded)
                if executor is not None:  # faces aligned in the threads, a few frames ahead
                    items = ordered_map(lambda f: (f, restorer.prepare(f)), decoded, executor, ahead=2 * workers)
                else:
                    items = ((f, None) for f in decoded)
                for frame, prepared in items:
                    frames_read += 1
                    if preview is not None:
                        preview.add_before(frame.index, frame.picture)
                    with timer("restore"):
                        finished = restorer.feed(frame, prepared)
                    emit(finished)
                with timer("restore"):
                    finished = restorer.finish()
                emit(finished)
        finally:
            if feed is not None and feed.shared is not None:  # a decode thread waiting for pass 1 stops
                feed.shared.close()
            if prefetched is not None:  # its decode thread stops before the reader's file closes (a crash after Ctrl-C)
                prefetched.close()
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)
            writer.close()
        if feed is not None:
            feed.finish()  # pass 1's end: the whole analysis, its film section (raises its error)
            if analysis.frame_count != frames_read:
                raise RuntimeError(f"pass 1 saw {analysis.frame_count} frames, pass 2 {frames_read}")
        read_report = reader.report

    if frames_written != frames_read:
        raise RuntimeError(f"wrote {frames_written} frames of {frames_read}")
    if feed is not None:
        for stage, seconds in feed.timer.as_dict().items():
            timer.add(stage, seconds)
        film.add_figures(feed.film.figures())
    total = round(time.perf_counter() - t_start, 4)
    report = run_report(
        input_path=input_path, output_path=output_path, settings=settings, analysis=analysis,
        device=str(stages.device), frames_read=frames_read, frames_written=frames_written,
        faces_restored=restorer.faces_restored, timings={**timer.as_dict(), "total": total},
        max_frames_held=restorer.max_pending, metrics=restorer.metrics, regions=regions, film=film,
        paster=film_options["paster"], faces_reused=restorer.faces_reused,
        notes=read_report.report_notes(str(input_path)),
        overlap=feed.report() if feed is not None else {"groups": 0, "why_not": overlap_blocker_reason})
    if preview is not None:
        preview.add_clean(film_options["paster"].clean)
        report["preview"] = str(preview_path) if preview.write(preview_path, settings.upscale) else None
    if report_path:
        write_json_atomic(report_path, report)
    return report
