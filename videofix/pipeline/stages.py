"""Plumbing shared by the runners: background threads, stage timers, progress.

Decoding and encoding run in their own threads behind bounded queues, so the restoration
(GPU) work never waits for I/O and memory stays bounded by the queue depths. PyAV releases
the GIL while it decodes and encodes, so the threads really overlap.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from videofix.errors import check_interrupted

_DONE = object()


class StageTimer:
    """Seconds spent per named stage (summed over calls; threads may overlap)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            with self._lock:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + dt

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.seconds.items()}


def prefetch(items: Iterable, depth: int = 8, timer: StageTimer | None = None, stage: str = "decode") -> Iterator:
    """Iterate `items` in a background thread, `depth` items ahead.

    Exceptions raised by the producer are re-raised in the consumer. Closing the returned
    generator early stops the producer.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            it = iter(items)
            while not stop.is_set():
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    break
                if timer is not None:
                    timer.add(stage, time.perf_counter() - t0)
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
            q.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=produce, name=f"videofix-{stage}", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def ordered_map(fn: Callable, items: Iterable, executor, ahead: int = 4) -> Iterator:
    """`fn(item)` for each item, computed on `executor` (threads) up to `ahead` items ahead,
    yielded in the items' order. An exception of `fn` is raised at its item."""
    from collections import deque

    ahead = max(1, int(ahead))
    futures: deque = deque()
    try:
        for item in items:
            futures.append(executor.submit(fn, item))
            if len(futures) > ahead:
                yield futures.popleft().result()
        while futures:
            yield futures.popleft().result()
    finally:
        for f in futures:
            f.cancel()


class BackgroundConsumer:
    """Run `consume(item)` for each submitted item in a background thread, in order.

    `submit` blocks when `depth` items are waiting; `close()` waits for the queue to drain
    and re-raises the first error of the consumer (also raised on the next submit).
    """

    def __init__(self, consume: Callable[[object], None], depth: int = 8, timer: StageTimer | None = None,
                 stage: str = "encode"):
        self._consume = consume
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._timer, self._stage = timer, stage
        self._thread = threading.Thread(target=self._run, name=f"videofix-{stage}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue  # drain after a failure
            t0 = time.perf_counter()
            try:
                self._consume(item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producer
                self._error = exc
            if self._timer is not None:
                self._timer.add(self._stage, time.perf_counter() - t0)

    def submit(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(item)

    def close(self) -> None:
        self._q.put(_DONE)
        self._thread.join()
        if self._error is not None:
            raise self._error


class Progress:
    """A progress bar counted in frames, with fps and ETA, on stderr (tqdm); silent when quiet."""

    def __init__(self, total: int | None, desc: str, quiet: bool = False, position: int | None = None):
        self._bar = None
        if not quiet:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, dynamic_ncols=True,
                             smoothing=0.1, leave=True, position=position)

    def update(self, n: int = 1) -> None:
        check_interrupted()  # once per frame, in both passes (see videofix.errors.INTERRUPTED)
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
