"""The streaming shot-boundary detector of pass 1 (TransNetV2 windows + `ShotDecider`).

:class:`ShotDetector`: ``push(rgb)`` per frame returns the `ShotDecision`s that became
final, ``flush()`` returns the rest. A frame's decision is final at most
:attr:`ShotDetector.latency` frames after it was pushed.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .decisions import ShotDecider, ShotDecision
from .transnet import CONTEXT, STEP, WINDOW, TransNetV2Model, shot_thumbnail, transnetv2, window_frames, window_ready


class ShotDetector:
    """Streaming shot-boundary detection for pass 1.

    ``push(rgb)``: the next frame (uint8 (H, W, 3) RGB, any size, or its `shot_thumbnail`),
    frames numbered from 0 in push order; returns the `ShotDecision`s that became final, in
    frame order. ``flush()``: every remaining decision. A frame's decision comes at most
    :attr:`latency` frames after the frame (``74 + 50 (batch - 1)`` for the windows plus the
    decider's ``max_run``). Memory: the thumbnails of about `latency` frames (3.9 KB each).

    device: where the network runs ("cpu", "cuda[:i]"). batch: windows per network call (1
    on CPU; on a GPU larger batches fill the device, at 50 frames more latency per window).
    """

    name = "transnetv2"
    takes_thumbnails = True  # `push` takes a frame's `shot_thumbnail` made elsewhere (on the GPU)

    def __init__(self, device: str = "cpu", batch: int | None = None, decider: ShotDecider | None = None,
                 model: TransNetV2Model | None = None):
        self.model = model or transnetv2(device)
        self.batch = int(batch or (4 if str(device).startswith("cuda") else 1))
        self.decider = decider or ShotDecider()
        self._thumbs: dict[int, np.ndarray] = {}
        self._count = 0
        self._next_block = 0
        self._ready: deque[ShotDecision] = deque()

    @property
    def latency(self) -> int:
        return (WINDOW - CONTEXT - 1) + STEP * (self.batch - 1) + self.decider.latency

    def push(self, rgb: np.ndarray) -> list[ShotDecision]:
        self._thumbs[self._count] = shot_thumbnail(rgb)
        self._count += 1
        last = self._count - 1
        if window_ready(self._next_block + self.batch - 1, None, last):
            self._run_blocks(list(range(self._next_block, self._next_block + self.batch)), None)
        return self._take()

    def flush(self) -> list[ShotDecision]:
        total = self._count
        if total == 1 and self._next_block == 0:  # a still image: no boundary, no network call
            self._next_block = 1
            self._ready.extend(self.decider.push(0, 0.0, 0.0))
        elif total:
            blocks = []
            b = self._next_block
            while window_ready(b, total, total - 1):
                blocks.append(b)
                b += 1
            if blocks:
                self._run_blocks(blocks, total)
        for d in self.decider.flush():
            self._ready.append(d)
        return self._take()

    def _run_blocks(self, blocks: list[int], total: int | None) -> None:
        last = self._count - 1
        windows = np.stack([np.stack([self._thumbs[int(f)] for f in window_frames(b, total, last)]) for b in blocks])
        out_single, out_many = [], []
        for i in range(0, len(blocks), self.batch):
            s, m = self.model.predict(windows[i:i + self.batch])
            out_single.extend(s)
            out_many.extend(m)
        for b, s, m in zip(blocks, out_single, out_many):
            n = STEP if total is None else min(STEP, total - STEP * b)
            for k in range(n):
                self._ready.extend(self.decider.push(STEP * b + k, float(s[k]), float(m[k])))
        self._next_block = blocks[-1] + 1
        # thumbnails no later window reads
        keep_from = STEP * self._next_block - CONTEXT
        for f in [f for f in self._thumbs if f < keep_from]:
            del self._thumbs[f]

    def _take(self) -> list[ShotDecision]:
        out = list(self._ready)
        self._ready.clear()
        return out


def detect_cuts(frames, device: str = "cpu", soft: bool = True) -> list[int]:
    """Indices of the frames that start a new shot (uint8 RGB frames in order); soft=False
    leaves out the ends of fades and dissolves."""
    det = ShotDetector(device)
    out = []
    for f in frames:
        out += det.push(f)
    out += det.flush()
    return [d.index for d in out if d.cut and (soft or not d.soft)]
