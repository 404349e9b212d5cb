"""The Ray runner: one film (or an archive) restored on a Ray cluster.

The video is cut into keyframe-aligned segments (`videofix.io.plan_segments`) and goes
through the same two passes as the local runner, spread over the cluster:

* **pass 1** (`detect_task`, CPU tasks, one per segment): decode the segment, run
  `detect_frames`; the detections (a few floats per face) come back to the driver, which
  links them with `link_detections` in frame order, exactly as the local runner does, so the
  tracks are the same. Shot boundaries (TransNetV2, `videofix.shots`): each task
  returns the network's probabilities for the windows inside its segment and the 48x27
  thumbnails of its ends; the driver computes the windows across the boundaries and decides
  every frame's cut as one streamed run would (`join_segment_shots`, `decide_shots`). The
  film survey (`videofix.film`: chroma score per frame, repeated frames) runs in the same
  tasks and is joined by `FilmSurvey.merge`; the driver then decides the per-shot colour
  modes and repeat runs exactly as the local runner.
* **pass 2** (`restore_task`, CPU tasks, one per segment): decode the segment widened by
  R + 1 context frames before and R after (R = temporal radius; `windows`), align the
  faces, send the **crops** to a restorer actor, paste the restored crops back with
  `FaceRestorationPass` and encode the segment's own frames to a segment file. The driver
  joins the segment files and muxes audio once (`join_segments`).
* **restorer actors** (`restorer`, one per GPU, `num_gpus=1`; one CPU actor on a cluster
  without GPUs) hold a `TemporalRestorer` per segment task; their network calls go through
  a `CoalescingRestorer` (`coalescer`) that merges the batches of all segments the actor
  serves, so the GPU sees full batches.

Because every segment sees the same frames around its boundaries that the whole-film run
sees (the temporal window is +-R restored frames of each track; repeated frames are not
restored, so the context reaches back past them, and back to the first frame of a run of
repeats that crosses the segment's start; interlaced sources are deinterlaced with one more
decoded frame on each side, as bwdif reads the frames before and after), and the network
only ever runs fixed-shape batches (`FixedBatchRestorer`, in both runners: a face's output
then does not depend on its batch neighbours), the output frames equal the local runner's
(in lossless mode the files decode to identical frames). Only face crops, restored crops,
codes and small metadata go through the object store; frames never do. The bytes are
measured and reported.

The files, one idea each (no module imports one that imports it back):

    options.py       RayOptions: how the runner uses the cluster
    auth.py          token authentication: the embedded run's token, the operator's token
    cluster.py       connecting: the embedded cluster (loopback only) or a cluster joined
    windows.py       the frames a segment task decodes, the tracks it needs (no Ray)
    worker_cache.py  what a worker process loads once (detector, parser, upscaler)
    detect_task.py   pass 1 of a segment; the driver's join of the segments' detections
    restore_task.py  pass 2 of a segment
    coalescer.py     the restorer actor's batch coalescer (no Ray)
    restorer.py      the restorer actor, its client (RemoteEngine), starting the actors
    figures.py       what a segment counts, summed for the whole video
    attempts.py      the attempts log: every segment task run and its node
    nodes.py         node-loss bookkeeping: nodes lost, segments redone
    jobdir.py        the job folder: plan, states, markers, resume
    inputs.py        batch inputs (globs, folders, lists) -> job items
    progress.py      the job's progress bar
    item_report.py   the report of one video
    driver.py        JobRunner: schedules the items through both passes and the join
    jobs.py          the entry points: restore_video_ray, run_batch

Importing this package imports no Ray; `restore_video_ray`, `run_batch`, `RayOptions` and
`ray_session` are loaded on first use.
"""

from __future__ import annotations

_LAZY = {
    "restore_video_ray": "videofix.pipeline.ray.jobs",
    "run_batch": "videofix.pipeline.ray.jobs",
    "RayOptions": "videofix.pipeline.ray.options",
    "ray_session": "videofix.pipeline.ray.cluster",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
