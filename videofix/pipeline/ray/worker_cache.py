"""What a Ray worker process builds once and keeps for the segment tasks it runs next.

Workers are reused across tasks, so a detector, the face parser or the background upscaler
is loaded once per process (an `lru_cache` per kind), never once per segment. Everything
here runs on the worker's CPU.
"""

from __future__ import annotations

import functools

from videofix.settings import RestoreSettings


@functools.lru_cache(maxsize=4)
def worker_detector(name: str, models_dir: str | None, score_threshold: float | None = None):
    """The detector of a CPU worker, built once per worker process (workers are reused).
    score_threshold: `--det-threshold` (None: the backend's own)."""
    from videofix.faces import create_detector

    return create_detector(name, models_dir, "cpu", score_threshold=score_threshold)


@functools.lru_cache(maxsize=2)
def worker_parser(models_dir: str | None):
    from videofix.faces import load_face_parser

    return load_face_parser(models_dir, device="cpu", download=False)


@functools.lru_cache(maxsize=2)
def worker_upscaler(name: str, models_dir: str | None, download: bool):
    """The background upscaler (Real-ESRGAN: a network) of a worker, loaded once per process."""
    from videofix.film.upscale import create_upscaler

    return create_upscaler(name, models_dir=models_dir, device="cpu", download=download)


def worker_film_plan(s: RestoreSettings, state: dict | None):
    """A fresh `FilmPlan` (its figures are this task's) from the driver's decisions, with the
    worker's cached upscaler: nothing is probed or loaded per segment."""
    from videofix.film.plan import FilmPlan

    upscaler = worker_upscaler(s.upscaler, s.models_dir, bool(s.download)) if s.upscale > 1 else None
    return FilmPlan.for_worker(s, state or {"deinterlace": False, "parity": None, "reason": ""}, upscaler=upscaler)
