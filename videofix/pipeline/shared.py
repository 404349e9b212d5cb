"""One decode for both passes: pass 1's decoded frames, kept for pass 2.

When pass 1 overlaps pass 2 (`videofix.pipeline.overlap`), both passes read the same frames
of the same file and range, pass 1 a shot group or so ahead. Decoding a 1080p H.264 frame
costs about as much host CPU as everything else pass 2 does with it on a GPU run, so the
frames pass 1 decodes are kept here, in order, for pass 2, instead of being decoded again.

Memory is bounded (`capacity` bytes of pictures, `RestoreSettings.decode_memory_mb`):
  - While the kept frames fill it and pass 2 is restoring, pass 1's decoding waits for room
    (pass 1 then runs at pass 2's pace: on a GPU run it is the faster one).
  - When they fill it and pass 2 waits for pass 1 instead (a shot longer than the budget:
    its tracks are final only at its end, which pass 1 has not read yet), neither side could
    go on. Pass 1 then stops keeping frames (`overflow_at`, its first frame not kept) and
    goes on; pass 2 reads the kept ones, then decodes the rest itself: it opens the file
    again and decodes from the start, giving only the frames from `overflow_at` on. That
    costs what a second decode always cost before, and no more; the frames are the same.
  - Pass 1 ending early (an error, also before its first frame, Ctrl-C, the run stopping)
    counts as an overflow at its next frame (`pass1_ended`, called when pass 1's thread
    ends), so pass 2 never waits for frames that will not come; pass 1's error reaches pass
    2 through the feed's gate as before.

Pass 2 pastes into its pictures in place, so it takes a copy of each kept picture (a memory
copy, about 1 ms for a 1080p frame, against about 20 ms to decode it): pass 1's detection
images and thumbnails never share memory with pass 2's output.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator

from videofix.errors import check_interrupted

_WAIT_S = 0.2  # condition wait slice: Ctrl-C and the stop flags are checked this often


class SharedFrames:
    """Frames decoded by pass 1 (`tap`), read again by pass 2 (`source`).

    Args:
        reopen: () -> a context manager giving the same `DecodedFrame`s again (pass 2's own
            reader after an overflow: same file, same range).
        capacity: bytes of kept pictures at most (at least one frame is always kept).
        pass2_waiting: () -> whether pass 2 is waiting for pass 1 (the feed's gate).
    """

    def __init__(self, reopen: Callable, capacity: int, pass2_waiting: Callable[[], bool]):
        self._reopen = reopen
        self.capacity = int(capacity)
        self._pass2_waiting = pass2_waiting
        self._cond = threading.Condition()
        self._kept: deque = deque()  # (frame, its pictures' bytes), in order
        self._bytes = 0
        self.overflow_at: int | None = None  # pass 1's first frame not kept
        self.overflow_why: str | None = None
        self._next = 0  # the index pass 1 gives next
        self._ended = False  # pass 1 gave its last frame
        self._closed = False  # pass 2 stopped reading
        self.pass1_reader = None  # pass 1's reader (its read report serves pass 2's)
        self.frames_shared = 0  # frames pass 2 took from pass 1
        self.frames_decoded_again = 0  # frames pass 2 decoded itself (from overflow_at on)
        self.frames_skipped_again = 0  # frames pass 2 decoded only to reach overflow_at
        self.peak_bytes = 0
        self.waits_for_room = 0
        self.waiting_for_room = 0  # pass 1 inside its wait for room now (0 or 1)

    # ------------------------------------------------------------------ pass 1's side
    def tap(self, reader) -> Iterator:
        """`reader`'s frames, each also kept for pass 2 while there is room (pass 1's thread)."""
        self.pass1_reader = reader
        complete = False
        try:
            for frame in reader:
                self._keep(frame)
                yield frame
            complete = True
        finally:
            with self._cond:
                if not complete and self.overflow_at is None:
                    self.overflow_at, self.overflow_why = self._next, "pass 1 stopped reading"
                self._ended = True
                self._cond.notify_all()

    def pass1_ended(self) -> None:
        """Pass 1 is over, whether or not its reader reached the tap or its end (an error
        before the first frame, a stop): pass 2 takes what was kept and decodes the rest
        itself, never waiting for frames that will not come. Idempotent."""
        with self._cond:
            if not self._ended and self.overflow_at is None:
                self.overflow_at, self.overflow_why = self._next, "pass 1 stopped reading"
            self._ended = True
            self._cond.notify_all()

    def _keep(self, frame) -> None:
        size = sum(p.nbytes for p in frame.picture.planes)
        with self._cond:
            self._next = frame.index + 1
            waited = False
            while True:
                # checked after every wait too: pass 2 may have stopped meanwhile (`close`
                # empties the kept frames, which ends the wait for room: nothing may be kept then)
                if self.overflow_at is not None or self._closed:
                    return
                if not self._kept or self._bytes + size <= self.capacity:
                    break
                if self._pass2_waiting():  # pass 2 waits for pass 1, pass 1 for room: let go
                    self.overflow_at = frame.index
                    self.overflow_why = (f"a shot longer than the decode memory ({self.capacity >> 20} MiB) "
                                         f"at frame {frame.index}")
                    self._cond.notify_all()
                    return
                waited = True
                self.waiting_for_room += 1
                self._cond.notify_all()  # (for whoever watches `waiting_for_room`)
                try:
                    self._cond.wait(_WAIT_S)
                finally:
                    self.waiting_for_room -= 1
                check_interrupted()
            self.waits_for_room += waited
            self._kept.append((frame, size))
            self._bytes += size
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self._cond.notify_all()

    def pass2_blocked(self) -> None:
        """The feed's gate calls this when pass 2 starts waiting for pass 1 (wakes a pass 1
        that waits for room, so that it sees the wait)."""
        with self._cond:
            self._cond.notify_all()

    # ------------------------------------------------------------------ pass 2's side
    def source(self) -> "Pass2Source":
        return Pass2Source(self)

    def _take(self):
        """The next kept frame, or None once there are no more (the rest after an overflow)."""
        with self._cond:
            while not self._kept:
                if self._closed or self.overflow_at is not None or self._ended:
                    return None
                self._cond.wait(_WAIT_S)
                check_interrupted()
            frame, size = self._kept.popleft()
            self._bytes -= size
            self._cond.notify_all()
            return frame

    def close(self) -> None:
        """Pass 2 stops reading: frees the kept frames and lets pass 1 go on."""
        with self._cond:
            self._closed = True
            self._kept.clear()
            self._bytes = 0
            self._cond.notify_all()

    def report(self) -> dict:
        return {"frames_shared": self.frames_shared, "frames_decoded_again": self.frames_decoded_again,
                "frames_skipped_again": self.frames_skipped_again, "overflow_at": self.overflow_at,
                "overflow_why": self.overflow_why, "memory_mib": round(self.capacity / 2**20, 1),
                "peak_mib": round(self.peak_bytes / 2**20, 1), "pass1_waits_for_room": self.waits_for_room}


class Pass2Source:
    """What pass 2 reads instead of its own reader: iterable once, a context manager (closes
    its own reader, if an overflow opened one), `report` the read report of a reader that
    read the whole input (pass 1's; pass 2's own, after an overflow, says the same)."""

    def __init__(self, shared: SharedFrames):
        self.shared = shared
        self._own = None

    def __enter__(self) -> "Pass2Source":
        return self

    def __exit__(self, *exc) -> None:
        self.shared.close()
        if self._own is not None:
            self._own.__exit__(None, None, None)
            self._own = None

    @property
    def report(self):
        return self.shared.pass1_reader.report

    def __iter__(self) -> Iterator:
        shared = self.shared
        index = 0
        while True:
            frame = shared._take()
            if frame is None:
                break
            if frame.index != index:
                raise RuntimeError(f"shared decode: frame {frame.index} came where {index} was due")
            index += 1
            shared.frames_shared += 1
            yield dataclasses.replace(frame, picture=frame.picture.copy())
        if shared._closed or shared.overflow_at is None:
            return  # pass 1 gave every frame (or pass 2 stopped)
        yield from self._decode_again(index)

    def _decode_again(self, start: int) -> Iterable:
        shared = self.shared
        self._own = self.shared._reopen()
        reader = self._own.__enter__()
        for frame in reader:
            if shared._closed:
                return
            if frame.index < start:
                shared.frames_skipped_again += 1
                continue
            shared.frames_decoded_again += 1
            yield frame
