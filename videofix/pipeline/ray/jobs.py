"""The entry points of the Ray runner: one film (`restore --ray`) and an archive (`batch`).

`restore_video_ray` is a one-item job in a hidden temporary folder next to the output,
removed at the end whatever happens. `run_batch` plans a job folder (`jobdir`) for many
inputs, or continues one (`--resume`: finished items are skipped, finished segments are not
redone); an output appears (atomic rename) only when complete, and a finished output is
never rewritten.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

from videofix.errors import ClusterError, UsageError, VideofixError
from videofix.io import check_output, probe
from videofix.io.sequence import is_sequence_pattern
from videofix.settings import RestoreSettings
from videofix.pipeline.ray.cluster import ray_session
from videofix.pipeline.ray.driver import JobRunner
from videofix.pipeline.ray.inputs import expand_inputs, plan_items
from videofix.pipeline.ray.jobdir import JobDir, write_json_atomic
from videofix.pipeline.ray.options import RayOptions
from videofix.pipeline.report import PreviewCollector


def restore_video_ray(input_path: str | os.PathLike, output_path: str | os.PathLike, settings: RestoreSettings, *,
                      address: str | None = None, segments: int | None = None, segment_seconds: float | None = None,
                      report_path: str | os.PathLike | None = None, preview_path: str | os.PathLike | None = None,
                      quiet: bool = False, restorers: int | None = None, chunk: int = 16,
                      token_file: str | None = None) -> dict:
    """`videofix restore --ray`: restore one video on a Ray cluster; returns the report.

    The report has the local runner's keys plus `ray` (segments, restorers, object-store
    bytes per frame, ...). The output appears atomically at the end; segment files live in a
    hidden temporary job folder next to the output (shared storage on a real cluster) and are
    removed at the end. Raises `VideofixError`s like the local runner.
    """
    options = RayOptions(address=address, segments=segments, segment_seconds=segment_seconds,
                         restorers=restorers, chunk=chunk, token_file=token_file)
    return run_single(input_path, output_path, settings, options, report_path=report_path,
                      preview_path=preview_path, quiet=quiet)


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
        with ray_session(options.address, token_file=options.token_file, quiet=quiet):
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
        options.validate()
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
            stack.enter_context(ray_session(options.address, token_file=options.token_file, quiet=quiet))
        except ClusterError as exc:  # the plan is kept: --resume starts it once the cluster is there
            raise ClusterError(f"{exc}; the job is planned in {job.root}: run the same command with --resume "
                               "when the cluster is reachable") from exc
        summary = JobRunner(job, items, settings, options, quiet=quiet).run()
    summary["job_dir"] = str(job.root)
    write_json_atomic(job.root / "summary.json", summary)
    return summary
