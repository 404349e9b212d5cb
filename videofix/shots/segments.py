"""Shot detection over the Ray runner's segments: each segment's own windows, joined by the driver.

A segment computes the windows that lie inside it (`SegmentShotRecorder`) and sends back the
probabilities and the thumbnails of its edges (`SegmentShots`); the driver computes the
windows across segment boundaries from those edges (`join_segment_shots`) and decides every
frame as a one-piece run would (`videofix.shots.decisions.decide_shots`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .decisions import ShotDecision
from .transnet import CONTEXT, STEP, WINDOW, TransNetV2Model, shot_thumbnail, transnetv2, window_probabilities

SEGMENT_EDGE = 150  # thumbnails a segment sends back from each end (a window reads <= 124 past a block)


@dataclass
class SegmentShots:
    """What a segment's pass 1 sends back for shot detection (small: 2 floats per frame and
    the 48x27 thumbnails of its first and last `SEGMENT_EDGE` frames).

    start, count: the segment's frames [start, start + count) (video frame indices).
    single, many: float32 (count,) probabilities, NaN where the segment alone could not
    compute them (windows reaching past its ends). thumbs: frame index -> uint8 (27, 48, 3).
    """

    start: int
    count: int
    single: np.ndarray
    many: np.ndarray
    thumbs: dict


class SegmentShotRecorder:
    """The shot detector of a Ray pass-1 task: `detect_frames` gets every frame back at once
    with no cut (``latency`` 0); the probabilities of the windows that lie inside the segment
    are computed here (`result`), and the driver joins the segments (`join_segment_shots`)
    and decides every frame as a one-piece run would (`decide_shots`)."""

    name = "transnetv2"
    latency = 0

    def __init__(self, start: int, device: str = "cpu", model: TransNetV2Model | None = None, batch: int = 4):
        self.start = int(start)
        self.model = model or transnetv2(device)
        self.batch = int(batch)
        self._thumbs: list[np.ndarray] = []

    def push(self, rgb: np.ndarray) -> list[ShotDecision]:
        self._thumbs.append(shot_thumbnail(rgb))
        return [ShotDecision(len(self._thumbs) - 1)]

    def flush(self) -> list[ShotDecision]:
        return []

    def result(self) -> SegmentShots:
        n, s = len(self._thumbs), self.start
        single = np.full(n, np.nan, np.float32)
        many = np.full(n, np.nan, np.float32)
        # blocks whose frames are in the segment and whose window reads only segment frames
        # (frames before 0 read frame 0, as in a whole-video run)
        first_block = -(-s // STEP)
        blocks = []
        b = first_block
        while STEP * b < s + n:
            lo, hi = STEP * b - CONTEXT, STEP * b - CONTEXT + WINDOW - 1
            if (lo >= s or s == 0) and hi < s + n:
                blocks.append(b)
            b += 1
        local = {s + i: t for i, t in enumerate(self._thumbs)}
        if blocks:
            probs = window_probabilities(self.model, local, blocks, s + n, batch=self.batch)
            for b, (p1, p2) in probs.items():
                i0 = STEP * b - s
                single[i0:i0 + len(p1)] = p1
                many[i0:i0 + len(p2)] = p2
        edge = {f: t for f, t in local.items() if f < s + SEGMENT_EDGE or f >= s + n - SEGMENT_EDGE}
        return SegmentShots(s, n, single, many, edge)


def join_segment_shots(parts: list[SegmentShots], model: TransNetV2Model | None = None,
                       batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The probabilities (single, many) of every frame of consecutive segments: the segments'
    own, and the windows across their boundaries computed here from the edge thumbnails.
    Equal to a whole-video run (up to the network's batch invariance)."""
    parts = sorted(parts, key=lambda p: p.start)
    total = sum(p.count for p in parts)
    single = np.concatenate([p.single for p in parts]) if parts else np.zeros(0, np.float32)
    many = np.concatenate([p.many for p in parts]) if parts else np.zeros(0, np.float32)
    missing = np.flatnonzero(np.isnan(single))
    if len(missing):
        thumbs = {}
        for p in parts:
            thumbs.update(p.thumbs)
        blocks = sorted({int(f) // STEP for f in missing})
        probs = window_probabilities(model or transnetv2("cpu"), thumbs, blocks, total, batch=batch)
        for b, (p1, p2) in probs.items():
            single[STEP * b:STEP * b + len(p1)] = p1
            many[STEP * b:STEP * b + len(p2)] = p2
    return single, many
