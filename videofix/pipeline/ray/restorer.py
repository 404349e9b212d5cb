"""The restorer actors: where the network runs, one per GPU, serving every segment task.

Each pass-2 segment task talks to an actor through a `RemoteEngine` (the `TemporalRestorer`
interface, operations sent in chunks); the actor keeps one engine per task run and merges
the network calls of all its engines with a `CoalescingRestorer`, so the GPU sees full
batches.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import threading
import uuid

import numpy as np
import ray

from videofix.pipeline.factory import LoadedStages, make_engine
from videofix.pipeline.ray.cluster import cluster_shape
from videofix.pipeline.ray.coalescer import CoalescingRestorer
from videofix.restore.batching import fixed_batch_model
from videofix.restore.temporal import RestoredFace
from videofix.settings import RestoreSettings


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
