"""Pass 1 running alongside pass 2: restoration starts as soon as a shot's tracks are final.

No track crosses a cut, and every whole-video step of pass 1 is per shot: linking, the
zero-phase landmark smoothing, the drop of tracks seen in fewer than `min_detections`
frames, the renumbering in order of appearance (`TrackLinker`), the colour verdict of each
shot and the runs of repeated frames (`FilmPlan.shot_group_options`). So at each cut pass 1
hands pass 2 the group of shots it has just closed, and pass 2 restores those frames while
pass 1 goes on with the next shot. The output is the same as with pass 1 run whole first.

`ShotFeed` runs pass 1 in a thread of the local runner (detection itself runs in the
`DetectorPool`'s processes or on the GPU, so the thread mostly waits); pass 2 reads its
frames through `ShotFeed.gate`, which lets a frame through once the group of shots holding
it is final. Pass 1 keeps only a few floats per face per frame, so it may run any distance
ahead; pass 2 holds its usual bounded window. A shot longer than the film's other shots
simply delays pass 2 until it ends (its colour verdict and tracks need all of it).
Pass 2 restores the frames pass 1 decoded (`ShotFeed.shared`, a bounded
`videofix.pipeline.shared.SharedFrames`): one decode of the video instead of two.

Choices that compare tracks across the whole film (`--largest-face`, `--max-faces`, face
references, the preview's frame choice) cannot be made before its end: the runner then runs
the two passes one after the other (`overlap_blocker` says why).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator

from videofix.errors import check_interrupted
from videofix.faces.pool import detector_on_gpu
from videofix.pipeline.analysis import TrackLinker, detect_frames, detector_choice
from videofix.pipeline.stages import Progress, StageTimer, prefetch


def overlap_blocker(*, preview: bool, pool, detector, chooser_active: bool) -> str | None:
    """Why pass 1 cannot overlap pass 2 in this run (pass 1 not given), or None when it can."""
    if chooser_active:
        return "the face choices (--largest-face, --max-faces, --only-center-face, --min-face-size, --face-ref) compare whole tracks"
    if preview:
        return "the preview's frames are chosen over the whole video"
    if pool is None and not detector_on_gpu(detector):
        return "one worker: detection would share this process's interpreter lock with pass 2"
    return None


class ShotFeed:
    """Pass 1 of one input in a background thread (see the module docstring).

    Args:
        reader_factory: () -> a context manager giving the video's `DecodedFrame`s (the same
            frames pass 2 decodes: same file, same range).
        detector, pool, shots: pass 1's face detector, `DetectorPool` (or None) and streaming
            shot-boundary detector.
        linker: the `TrackLinker` whose `analysis` pass 2 reads (tracks are added to it group
            by group).
        film: the `FilmPlan` (its `frames` deinterlaces and measures colour; its
            `shot_group_options` gives each group's paste modes and repeats).
        timer: pass 1's own `StageTimer` (`timer`).
    `attach` gives it pass 2's `FaceRestorationPass` (repeats are added to it) and `FilmPaster`
    (shot modes are added to it) before `start`.
    """

    def __init__(self, reader_factory, *, detector, pool, shots, linker: TrackLinker, film, timer: StageTimer,
                 total: int | None = None, quiet: bool = True, decode_memory: int = 0):
        self._reader_factory = reader_factory
        # pass 1's decoded frames kept for pass 2 (one decode; `videofix.pipeline.shared`), or None
        self.shared = None
        if decode_memory > 0:
            from videofix.pipeline.shared import SharedFrames

            self.shared = SharedFrames(reader_factory, decode_memory, lambda: self.pass2_waiting)
        self.pass2_waiting = False  # pass 2 is in `wait_for`
        self._detector, self.pool, self._shots = detector, pool, shots
        self.linker = linker
        self.analysis = linker.analysis
        self.film = film
        self._restorer = self._paster = None
        self.timer = timer
        self._total, self._quiet = total, quiet
        self._cond = threading.Condition()
        self._horizon = 0  # frames before this index are final
        self._done = False
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self.groups: list[list[int]] = []  # [start, stop) of each group handed over
        self.frames_detected = 0
        self.detected_when_restoring_began: int | None = None  # pass 1's frame count when pass 2 took its first frame
        self.waits = 0.0  # seconds pass 2 waited for pass 1
        self.survey = None
        self._thread = threading.Thread(target=self._run, name="videofix-pass1", daemon=True)

    def attach(self, restorer, paster) -> "ShotFeed":
        self._restorer, self._paster = restorer, paster
        return self

    def start(self) -> "ShotFeed":
        if self._restorer is None:
            raise RuntimeError("ShotFeed.start: attach pass 2 first")
        self._thread.start()
        return self

    # ------------------------------------------------------------------ pass 1 (its thread)
    def _run(self) -> None:
        try:
            with self._reader_factory() as reader, Progress(self._total, "detect ", self._quiet, position=0) as bar:
                survey = self.survey = self.film.survey()
                source = self.shared.tap(reader) if self.shared is not None else reader
                frames = prefetch(self.film.frames(source, survey), 8, self.timer, "decode_pass1")
                t0 = time.perf_counter()

                def progress(n: int) -> None:
                    self.frames_detected += n
                    bar.update(n)

                start = 0
                per_frame = detect_frames(frames, self._detector, progress=progress, observer=survey,
                                          pool=self.pool, shots=self._shots)
                try:
                    for fd in per_frame:
                        if self._stop.is_set():
                            return
                        closed = self.linker.push(fd)
                        if fd.cut and fd.index > start:
                            self._hand_over(start, fd.index, closed)
                            start = fd.index
                finally:
                    per_frame.close()
                    frames.close()
                before = len(self.analysis.tracks)
                analysis = self.linker.finish()
                self.timer.add("detect_and_track", time.perf_counter() - t0
                                - self.timer.seconds.get("decode_pass1", 0.0))
            analysis.extra["detector_choice"] = detector_choice(self._detector)
            self.film.finalize(analysis, survey)  # the whole video's film section (the report)
            self._hand_over(start, math.inf, analysis.tracks[before:], last=True)
        except BaseException as exc:  # noqa: BLE001 - raised in pass 2's thread
            with self._cond:
                self._error = exc
                self._cond.notify_all()
        finally:
            if self.shared is not None:  # whatever the reader reached: pass 2 decodes the rest itself
                self.shared.pass1_ended()

    def _hand_over(self, start: int, stop: float, tracks, last: bool = False) -> None:
        """Give pass 2 the frames [start, stop): their paste modes and repeats, then the horizon."""
        end = self.analysis.frame_count if last else int(stop)
        if end > start:
            modes, repeats = self.film.shot_group_options(self.survey, self.analysis, start, end, tracks)
            self._paster.add_shots(modes)
            self._restorer.add_repeats(repeats)
            self.groups.append([int(start), int(end)])
        with self._cond:
            self._horizon = stop
            self._done = last
            self._cond.notify_all()

    # ------------------------------------------------------------------ pass 2 (the caller's thread)
    def gate(self, frames: Iterable) -> Iterator:
        """`frames` (pass 2's decoded frames), each let through once its group of shots is final."""
        for frame in frames:
            self.wait_for(frame.index)
            yield frame

    def wait_for(self, index: int) -> None:
        """Block until frame `index`'s tracks are final; raises pass 1's error."""
        t0 = time.perf_counter()
        with self._cond:
            try:
                while self._error is None and self._horizon <= index:
                    if not self.pass2_waiting:
                        self.pass2_waiting = True
                        if self.shared is not None:  # a pass 1 waiting for room sees it at once
                            self.shared.pass2_blocked()
                    self._cond.wait(timeout=0.2)
                    check_interrupted()
            finally:
                self.pass2_waiting = False
            if self._error is not None:
                raise self._error
        if self.detected_when_restoring_began is None:
            self.detected_when_restoring_began = self.frames_detected
        self.waits += time.perf_counter() - t0

    def finish(self):
        """Wait for pass 1's end; the whole video's `FaceAnalysis` (raises pass 1's error)."""
        with self._cond:
            while self._error is None and not self._done:
                self._cond.wait(timeout=0.2)
                check_interrupted()
            if self._error is not None:
                raise self._error
        self._thread.join()
        return self.analysis

    def close(self) -> None:
        """Stop pass 1 (after an error in pass 2) and wait for its thread."""
        self._stop.set()
        if self.shared is not None:  # a pass 1 waiting for room goes on (and stops)
            self.shared.close()
        if self._thread.ident is not None:
            self._thread.join()

    def report(self) -> dict:
        return {"groups": len(self.groups), "frames_detected_when_restoring_began": self.detected_when_restoring_began,
                "seconds_waiting_for_pass1": round(self.waits, 4),
                "shared_decode": self.shared.report() if self.shared is not None else None}
