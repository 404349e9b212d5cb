"""Face detection on several CPU cores: worker processes, one detector each.

Why processes: dlib's HOG detector holds the GIL while it runs (measured here: two threads,
each with its own detector, detect exactly as fast as one), and one detector object shared
between threads gave different detections. So each worker process builds its own detector
once (`create_detector` with the backend's concrete name, never "auto") and detects the
frames it is sent; results come back in frame order. Detection of a frame depends only on
that frame, so the detections are the same whatever the number of workers.

The workers are plain `python -c` subprocesses talking pickle over their stdin/stdout
(not `multiprocessing`, whose spawn start method re-runs the caller's main script: a
library must not require an `if __name__ == "__main__"` guard from its users). The images
sent are the small detection images (short side 640: about 1.2 MB at 16:9), so the
transfer costs about a millisecond a frame, against 50-200 ms of HOG.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future

import numpy as np

from videofix.errors import DeviceError, VideofixError

from .types import Detection

_STOP = None

# The worker's command: `videofix.faces` loads its submodules lazily, so this imports the
# pool and, once the request names it, the one backend (not tracking's scipy nor torch for
# dlib): about a second less start-up per worker than importing everything.
_BOOTSTRAP = "from videofix.faces.pool import _serve; _serve()"


def _serve() -> None:  # pragma: no cover - runs in the worker processes
    """Worker main loop: read (name, options), build the detector, then answer each pickled
    image (uint8 (H, W, 3) RGB) with its pickled detections, a list of `Detection` in that
    image's pixels (or ("error", text))."""
    import signal

    # Ctrl-C in a terminal reaches the whole process group: the parent handles it (one line,
    # exit 130) and ends the workers by closing their pipes; they must not print tracebacks
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but answers on the pipe
    name, options = pickle.load(stdin)
    if "torch" in sys.modules or "retinaface" in name:
        import torch

        torch.set_num_threads(1)  # the workers share the cores: no nested threads
    from .detection import create_detector

    try:
        detector = create_detector(name, **options)
        pickle.dump(("ready", None), stdout)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        pickle.dump(("error", f"{type(exc).__name__}: {exc}"), stdout)
        stdout.flush()
        return
    stdout.flush()
    while True:
        try:
            rgb = pickle.load(stdin)
        except (EOFError, pickle.UnpicklingError, OSError):  # the parent closed the pipe, or died mid-write
            return
        if rgb is _STOP:
            return
        try:
            answer = ("ok", detector.detect(rgb))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            answer = ("error", f"{type(exc).__name__}: {exc}")
        try:
            pickle.dump(answer, stdout, protocol=pickle.HIGHEST_PROTOCOL)
            stdout.flush()
        except OSError:  # the parent is gone (killed, or it stopped reading): nobody to answer;
            os._exit(0)  # no exit-time flush of the broken pipe, no "Exception ignored" lines


class _Worker:
    """One worker process, a writer thread (sends never block the caller) and a reader
    thread (fills the futures in the order the images were sent)."""

    def __init__(self, name: str, options: dict, index: int):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen([sys.executable, "-c", _BOOTSTRAP],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        pickle.dump((name, options), self.proc.stdin)
        self.proc.stdin.flush()
        self._send: queue.Queue = queue.Queue()
        self._waiting: deque[Future] = deque()
        self._lock = threading.Lock()
        self._ready = Future()
        self.index = index
        threading.Thread(target=self._write, name=f"videofix-detect-send{index}", daemon=True).start()
        threading.Thread(target=self._read, name=f"videofix-detect-recv{index}", daemon=True).start()

    def submit(self, rgb: np.ndarray) -> Future:
        """Send one uint8 (H, W, 3) RGB image; a Future of its list of `Detection`s."""
        future: Future = Future()
        with self._lock:
            self._waiting.append(future)
        self._send.put(rgb)
        return future

    def _write(self) -> None:
        while True:
            item = self._send.get()
            try:
                pickle.dump(item, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
                self.proc.stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                return  # the reader reports the failure
            if item is _STOP:
                return

    def _read(self) -> None:
        error = "the detection worker exited"
        try:
            status, value = pickle.load(self.proc.stdout)
            if status != "ready":
                error = str(value)
                raise EOFError
            self._ready.set_result(True)
            while True:
                status, value = pickle.load(self.proc.stdout)
                with self._lock:
                    future = self._waiting.popleft()
                if status == "ok":
                    future.set_result(value)
                else:
                    future.set_exception(RuntimeError(f"face detection failed in a worker: {value}"))
        except (EOFError, OSError, pickle.UnpicklingError):
            exc = self._ended() if error == "the detection worker exited" else None
            exc = exc or VideofixError(f"face detection worker: {error}")
            if not self._ready.done():
                self._ready.set_exception(exc)
            with self._lock:
                while self._waiting:
                    self._waiting.popleft().set_exception(exc)

    def _ended(self) -> VideofixError | None:
        """The error of a worker that died (its pipe closed): killed by a signal (the OOM
        killer's SIGKILL, most often) or exited; None if it still runs."""
        try:
            code = self.proc.wait(timeout=10)  # the pipe closes as it dies: reap it
        except subprocess.TimeoutExpired:
            return None
        if code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
            hint = " (out of memory?)" if code == -signal.SIGKILL else ""
        else:
            how, hint = f"exited with code {code}", ""
        return DeviceError(f"face detection worker {self.index + 1} (pid {self.proc.pid}) {how}{hint}; "
                           "the run stopped")

    def close(self) -> None:
        self._send.put(_STOP)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass


def detector_on_gpu(detector) -> bool:
    """Whether `detector` runs on a GPU (a torch CUDA device, or onnxruntime's CUDA
    provider): it then stays in the main process, never in a pool."""
    return "cuda" in str(getattr(detector, "device", "cpu")) or "CUDAExecutionProvider" in (
        getattr(detector, "providers", None) or ())


class DetectorPool:
    """`workers` processes, each with its own detector `name` (a concrete backend, e.g. the
    `.name` of the detector `create_detector("auto")` chose).

    Args:
        name: backend name ("dlib", "retinaface", ...).
        workers: number of worker processes (>= 1).
        options: keyword arguments of `create_detector` (models_dir, det_short_side,
            thresholds...); must be picklable. device is forced to "cpu" (a GPU detector
            runs in the main process) and downloads off (the main process fetched the file).

    Frames are dealt round-robin, so each worker answers in order. Use as a context manager,
    or call `close()`.
    """

    def __init__(self, name: str, workers: int, **options):
        if int(workers) < 1:
            raise ValueError(f"workers must be >= 1, got {workers!r}")
        self.name = name
        self.workers = int(workers)
        options = dict(options, device="cpu", download=False)
        self._workers = [_Worker(name, options, k) for k in range(self.workers)]
        self._next = 0

    def submit(self, rgb: np.ndarray) -> Future:
        """A `concurrent.futures.Future` of the detections (list[Detection], in the image's
        pixel coordinates) of one uint8 (H, W, 3) **RGB** image, values 0..255."""
        worker = self._workers[self._next]
        self._next = (self._next + 1) % self.workers
        return worker.submit(np.ascontiguousarray(rgb))

    def map(self, images: Iterable[np.ndarray], ahead: int | None = None) -> Iterator[list[Detection]]:
        """Detections of each uint8 (H, W, 3) **RGB** image (0..255), in order, as lists of
        `Detection` in the image's pixels; at most `ahead` images (default 2 per worker) in
        flight, so memory stays bounded."""
        ahead = max(1, int(ahead or 2 * self.workers))
        futures: deque = deque()
        for rgb in images:
            futures.append(self.submit(rgb))
            if len(futures) >= ahead:
                yield futures.popleft().result()
        while futures:
            yield futures.popleft().result()

    def close(self) -> None:
        for w in self._workers:
            w.close()

    def __enter__(self) -> "DetectorPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
