"""Shot decisions from TransNetV2's per-frame probabilities, streamed in frame order.

A **hard cut** starts at the frame after a run of ``single > threshold``; a **soft boundary**
(fade, dissolve) is a run of ``many > soft_threshold`` frames of at least ``min_soft_frames``
frames, whose new shot starts after the frame of highest ``single`` inside it; the frames
of that run are marked ``in_transition`` (the restorer's temporal window does not pool
across them). `ShotDecider` decides as frames come; `decide_shots` decides a whole video's
probabilities (the Ray driver's joined segments) the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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


def decide_shots(single: np.ndarray, many: np.ndarray, decider: ShotDecider | None = None) -> list[ShotDecision]:
    """Decisions for a whole video's probabilities (what the streaming detector decides)."""
    decider = decider or ShotDecider()
    out = []
    for i, (s, m) in enumerate(zip(single, many)):
        out.extend(decider.push(i, float(s), float(m)))
    out.extend(decider.flush())
    return out
