"""Temporal-stability metrics for restored face tracks.

Two figures per face track, both reported by the pipeline (``tracks[i].code_flip_rate``,
``tracks[i].flicker``) and by ``videofix eval``:

* **code flip rate** -- the fraction of latent tokens whose chosen code changes between
  consecutive frames of a track. 0 means the restorer picked the same codes in every frame;
  per-frame CodeFormer on a noisy still face flips a large share of them.
* **temporal flicker** -- the mean absolute difference between consecutive aligned restored
  crops of a track, divided by the same figure for the aligned input crops. 1 means the output
  changes as much as the input from frame to frame; above 1 the restorer adds flicker, below 1
  it removes some.

Pairs of frames separated by a cut (``cut_before[t]`` true) are not counted: a cut is a real
change, not flicker. Every function here works on plain numpy arrays; the streaming
:class:`TrackMetrics` keeps only the previous frame, so a long track needs no more memory than
a short one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

__all__ = [
    "code_flip_rate",
    "temporal_flicker",
    "mean_abs_frame_difference",
    "TrackMetrics",
    "json_number",
]


def _pair_mask(count: int, cut_before: Sequence[bool] | np.ndarray | None) -> np.ndarray:
    """Boolean (count-1,): True where the pair (t-1, t) lies inside one shot."""
    if count < 2:
        return np.zeros(0, dtype=bool)
    if cut_before is None:
        return np.ones(count - 1, dtype=bool)
    cuts = np.asarray(cut_before, dtype=bool).reshape(-1)
    if cuts.shape[0] != count:
        raise ValueError(f"cut_before has {cuts.shape[0]} entries for {count} frames")
    return ~cuts[1:]


def code_flip_rate(
    codes: np.ndarray | Sequence[Sequence[int]],
    cut_before: Sequence[bool] | np.ndarray | None = None,
) -> float:
    """Fraction of tokens whose code changes between consecutive frames of one track.

    Args:
        codes: (T, N) integer codes, frame-major (N tokens per frame, e.g. 256).
        cut_before: optional (T,) bools; ``cut_before[t]`` true means frames t-1 and t are in
            different shots and that pair is not counted.

    Returns:
        A float in [0, 1]: changed tokens over compared tokens, pooled over all counted pairs.
        NaN when no pair is counted (fewer than two frames, or a cut before every frame).
    """
    arr = np.asarray(codes)
    if arr.ndim != 2:
        raise ValueError(f"codes must be (T, N), got shape {arr.shape}")
    keep = _pair_mask(arr.shape[0], cut_before)
    if not keep.any():
        return math.nan
    changed = arr[1:] != arr[:-1]  # (T-1, N)
    return float(changed[keep].mean())


def mean_abs_frame_difference(
    frames: np.ndarray | Sequence[np.ndarray],
    cut_before: Sequence[bool] | np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> float:
    """Mean absolute difference between consecutive frames, in the frames' own units.

    Args:
        frames: (T, H, W, C) or a sequence of (H, W, C) arrays, any real dtype (uint8 0..255 or
            float); colour order does not matter as long as it is the same for every frame.
        cut_before: optional (T,) bools, pairs across a cut are skipped.
        mask: optional (H, W) float weights in 0..1 (e.g. the face region of an aligned crop).

    Returns:
        The weighted mean over counted pairs, pixels and channels (float64). NaN when no pair
        is counted.
    """
    seq = list(frames) if not isinstance(frames, np.ndarray) else frames
    count = len(seq)
    keep = _pair_mask(count, cut_before)
    total = 0.0
    weight = 0.0
    for t in range(1, count):
        if not keep[t - 1]:
            continue
        a = np.asarray(seq[t - 1], dtype=np.float64)
        b = np.asarray(seq[t], dtype=np.float64)
        if a.shape != b.shape:
            raise ValueError(f"frame {t} has shape {b.shape}, frame {t - 1} has {a.shape}")
        diff = np.abs(b - a)
        if mask is None:
            total += float(diff.sum())
            weight += float(diff.size)
        else:
            m = np.asarray(mask, dtype=np.float64)
            if diff.ndim == 3:
                m = m[..., None]
            total += float((diff * m).sum())
            weight += float(np.broadcast_to(m, diff.shape).sum())
    if weight == 0.0:
        return math.nan
    return total / weight


def temporal_flicker(
    restored: np.ndarray | Sequence[np.ndarray],
    inputs: np.ndarray | Sequence[np.ndarray],
    cut_before: Sequence[bool] | np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> float:
    """Frame-to-frame change of the restored crops relative to that of the input crops.

    Args:
        restored: (T, S, S, 3) aligned restored crops (uint8 RGB 0..255, or float in the same
            scale as ``inputs``).
        inputs: (T, S, S, 3) the aligned input crops the restorer was given, same scale.
        cut_before: optional (T,) bools; pairs across a cut are not counted.
        mask: optional (S, S) float weights in 0..1.

    Returns:
        ``mean|restored[t] - restored[t-1]| / mean|inputs[t] - inputs[t-1]|``. NaN when no pair
        is counted; ``inf`` when the input is perfectly still but the output is not (0/0 is NaN).
    """
    if len(restored) != len(inputs):
        raise ValueError(f"{len(restored)} restored crops for {len(inputs)} input crops")
    num = mean_abs_frame_difference(restored, cut_before, mask)
    den = mean_abs_frame_difference(inputs, cut_before, mask)
    return _ratio(num, den)


def _ratio(num: float, den: float) -> float:
    if math.isnan(num) or math.isnan(den):
        return math.nan
    if den == 0.0:
        return math.nan if num == 0.0 else math.inf
    return num / den


def json_number(value: float) -> float | None:
    """A float for a JSON report: NaN and infinities become ``None`` (JSON has neither)."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _exact(crop) -> np.ndarray:
    """A crop kept for exact differences with the next one: uint8 stays uint8 (a copy: the
    caller may reuse its buffer), anything else becomes float64."""
    a = np.asarray(crop)
    return np.array(a, dtype=np.uint8, order="C") if a.dtype == np.uint8 else a.astype(np.float64)


def _abs_diff_sum(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of |a - b| as a float. uint8 crops go through OpenCV's L1 norm, one pass with
    integer sums per block (exact: every partial sum is an integer well under 2**53; about
    35 times faster than numpy's widen, subtract, abs and sum); others in float64."""
    if a.dtype == np.uint8 and b.dtype == np.uint8:
        return float(cv2.norm(a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1), cv2.NORM_L1))
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).sum())


@dataclass
class TrackMetrics:
    """Streaming code flip rate and flicker of one track (keeps only the previous frame).

    Feed frames in track order with :meth:`update`; :meth:`summary` gives the two figures.
    The results equal :func:`code_flip_rate` and :func:`temporal_flicker` on the whole track.
    """

    changed_tokens: int = 0
    compared_tokens: int = 0
    restored_abs_diff: float = 0.0
    input_abs_diff: float = 0.0
    compared_values: int = 0
    frames: int = 0
    _prev_codes: np.ndarray | None = field(default=None, repr=False)
    _prev_restored: np.ndarray | None = field(default=None, repr=False)
    _prev_input: np.ndarray | None = field(default=None, repr=False)

    def update(
        self,
        codes: np.ndarray | None = None,
        restored: np.ndarray | None = None,
        input_crop: np.ndarray | None = None,
        cut_before: bool = False,
    ) -> None:
        """Add one frame.

        Args:
            codes: (N,) integer codes chosen for this frame, or None to skip the flip rate.
            restored: (S, S, 3) restored crop (uint8 RGB), or None to skip flicker.
            input_crop: (S, S, 3) aligned input crop (uint8 RGB); needed with ``restored``.
            cut_before: a cut lies between the previous frame and this one.
        """
        self.frames += 1
        if codes is not None:
            c = np.asarray(codes).reshape(-1)
            if self._prev_codes is not None and not cut_before:
                if c.shape != self._prev_codes.shape:
                    raise ValueError("codes changed length within a track")
                self.changed_tokens += int((c != self._prev_codes).sum())
                self.compared_tokens += int(c.size)
            self._prev_codes = c.copy()
        if restored is not None:
            if input_crop is None:
                raise ValueError("flicker needs the input crop with the restored crop")
            r, x = _exact(restored), _exact(input_crop)
            if r.shape != x.shape:
                raise ValueError(f"restored {r.shape} and input {x.shape} crops differ in shape")
            if self._prev_restored is not None and not cut_before:
                self.restored_abs_diff += _abs_diff_sum(r, self._prev_restored)
                self.input_abs_diff += _abs_diff_sum(x, self._prev_input)
                self.compared_values += int(r.size)
            self._prev_restored = r
            self._prev_input = x

    @property
    def code_flip_rate(self) -> float:
        """Changed over compared tokens; NaN before two frames of one shot were seen."""
        if self.compared_tokens == 0:
            return math.nan
        return self.changed_tokens / self.compared_tokens

    @property
    def flicker(self) -> float:
        """Restored over input mean absolute frame difference; NaN when nothing compared."""
        if self.compared_values == 0:
            return math.nan
        return _ratio(self.restored_abs_diff, self.input_abs_diff)

    def summary(self) -> dict[str, float | int | None]:
        """JSON-ready figures: ``{"frames", "code_flip_rate", "flicker"}`` (None for NaN)."""
        return {
            "frames": self.frames,
            "code_flip_rate": json_number(self.code_flip_rate),
            "flicker": json_number(self.flicker),
        }
