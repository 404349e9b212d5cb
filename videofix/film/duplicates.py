"""Repeated frames: slow films (16/18 fps) in 24/25/29.97 fps containers.

Transfers repeat film frames to fill the faster container rate (18 -> 24 fps repeats every
third frame). Restoring each copy on its own makes the copies differ slightly, so a still
image shimmers; and it spends the network on the same face twice. Pass 1 finds the runs of
repeats (a frame whose grey thumbnail matches the run's first frame block by block, with no
cut between and the same detections); pass 2 restores the first frame of each run and
pastes the identical result into the repeats. No frame is dropped or added and no
timestamp changes: only the pixels of the repeats' face regions are taken from the first.
"""

from __future__ import annotations

import cv2
import numpy as np

# A block's mean absolute luma difference (8-bit levels, on a 96-px-wide thumbnail) above
# which two frames differ. A repeated frame re-encoded by x264 (crf 20) differs by up to
# ~1.2; a new film frame (grain, motion) by 10 and more; a talking mouth or a blink moves
# its 8x8 block by several levels.
DUPLICATE_THRESHOLD = 2.0
THUMB_WIDTH = 96
_BLOCK = 8


def duplicate_thumbnail(rgb: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """float32 grey thumbnail (area filter) of uint8 (H, W, 3) **RGB**, or of a grey (H, W)
    image (a thumbnail made on the GPU: `videofix.pipeline.analysis.device_thumbnails`)."""
    h, w = rgb.shape[:2]
    grey = np.asarray(rgb, np.float32) if rgb.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if w > width:
        grey = cv2.resize(grey, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    return grey.astype(np.float32)


def block_difference(a: np.ndarray, b: np.ndarray, block: int = _BLOCK) -> float:
    """The largest mean absolute difference over `block` x `block` tiles of two same-size
    float thumbnails (a local change counts, not diluted by the whole frame)."""
    d = np.abs(a - b)
    h, w = d.shape
    hb, wb = max(1, h // block), max(1, w // block)
    d = d[: hb * block, : wb * block] if h >= block and w >= block else d
    if d.shape[0] < block or d.shape[1] < block:
        return float(d.mean())
    return float(d.reshape(hb, block, wb, block).mean(axis=(1, 3)).max())


def _same_detections(a, b, tolerance: float) -> bool:
    if len(a) != len(b):
        return False
    for da, db in zip(sorted(a, key=lambda d: float(d.box[0])), sorted(b, key=lambda d: float(d.box[0]))):
        if float(np.abs(np.asarray(da.landmarks) - np.asarray(db.landmarks)).max()) > tolerance:
            return False
    return True


class DuplicateFinder:
    """Finds runs of repeated frames, fed frame by frame in pass 1.

    `update(index, rgb, detections, cut)`: the detection image (uint8 RGB), the frame's
    detections (frame coordinates) and whether a shot starts there. `runs()`: [first, last]
    frame index pairs (inclusive) of every run of two or more identical frames.
    Memory: one thumbnail (the current run's first frame).
    """

    def __init__(self, threshold: float = DUPLICATE_THRESHOLD, landmark_tolerance: float = 1.5):
        self.threshold = float(threshold)
        self.landmark_tolerance = float(landmark_tolerance)
        self._first: tuple[int, np.ndarray, list] | None = None
        self._runs: list[list[int]] = []
        self.last_difference = 0.0

    def update(self, index: int, rgb: np.ndarray, detections, cut: bool = False) -> bool:
        """Returns True when frame `index` repeats the current run's first frame."""
        return self.update_thumb(index, duplicate_thumbnail(rgb), detections, cut)

    def update_thumb(self, index: int, thumb: np.ndarray, detections, cut: bool = False) -> bool:
        """`update` with the frame's `duplicate_thumbnail` already made (the Ray runner's
        driver joins the segments' checks from their thumbnails)."""
        thumb = np.asarray(thumb, np.float32)
        first = self._first
        repeat = False
        if first is not None and not cut and first[1].shape == thumb.shape:
            self.last_difference = block_difference(first[1], thumb)
            repeat = self.last_difference < self.threshold and _same_detections(first[2], detections, self.landmark_tolerance)
        if repeat:
            if self._runs and self._runs[-1][0] == first[0]:
                self._runs[-1][1] = index
            else:
                self._runs.append([first[0], index])
        else:
            self._first = (index, thumb, list(detections))
        return repeat

    def runs(self) -> list[list[int]]:
        return [list(r) for r in self._runs]

    def runs_since(self, first: int) -> list[list[int]]:
        """`runs()` whose first frame is `first` or later (read from the end: cheap on long films)."""
        k = len(self._runs)
        while k > 0 and self._runs[k - 1][0] >= first:
            k -= 1
        return [list(r) for r in self._runs[k:]]


def repeat_map(runs: list[list[int]], track_sets: dict[int, frozenset]) -> dict[int, int]:
    """frame index -> first frame of its run, for the repeats whose set of face tracks equals
    the first frame's (otherwise the repeat is restored on its own). track_sets: frame index
    -> track ids present (frames without faces may be missing)."""
    out = {}
    for first, last in runs:
        want = track_sets.get(first, frozenset())
        for f in range(first + 1, last + 1):
            if track_sets.get(f, frozenset()) == want:
                out[f] = first
            else:
                break
    return out


def copy_region(picture, box: tuple[int, int, int, int]) -> list[np.ndarray]:
    """Copies of every plane's samples under `box` (an aligned box, luma pixels, x1/y1
    exclusive; chroma planes at their subsampled size). See `put_region`."""
    return [plane[sl].copy() for plane, sl in zip(picture.planes, _plane_slices(picture, box))]


def put_region(picture, box: tuple[int, int, int, int], samples: list[np.ndarray]) -> None:
    """Write samples taken by `copy_region` (same box, same-format picture) back, in place."""
    for plane, sl, data in zip(picture.planes, _plane_slices(picture, box), samples):
        plane[sl] = data


def _plane_slices(picture, box) -> list[tuple[slice, slice]]:
    x0, y0, x1, y1 = (int(v) for v in box)
    lay = picture.layout
    out = []
    for i in range(len(picture.planes)):
        if lay.kind == "yuv" and i > 0:
            sx, sy = lay.log2_chroma_w, lay.log2_chroma_h
            out.append((slice(y0 >> sy, -(-y1 >> sy)), slice(x0 >> sx, -(-x1 >> sx))))
        else:
            out.append((slice(y0, y1), slice(x0, x1)))
    return out
