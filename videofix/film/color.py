"""Monochrome and tinted material: detection per shot.

A black-and-white film has no chroma; a sepia-toned or tinted one has chroma that depends
on luma alone (a toning curve), never on what is filmed. Colour material has pixels of the
same brightness in different hues. So the test is: bin the pixels of a small thumbnail by
luma and measure how far Cb / Cr stray from the median of their bin. That residual is near
zero (compression noise) for grey, sepia, tints and duotones, and large for colour film.

Per frame it costs one `cvtColor` and a few `np.percentile`s on a ~160-px-wide thumbnail;
the decision is made per shot (between the cuts pass 1 finds) from the median of the
frames' scores, so one colour insert in a black-and-white film is handled on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Residual chroma (8-bit code values, 95th percentile) below which a shot is monochrome/tinted.
# Grey, sepia and tinted test material score < 1.5 after x264 at crf 20; skin on a neutral
# background scores > 8.
MONOCHROME_THRESHOLD = 4.0
THUMB_WIDTH = 160
_LUMA_BINS = 16
_MIN_BIN_PIXELS = 12


def color_thumbnail(rgb: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """A small copy of uint8 (H, W, 3) **RGB** (area filter), at most `width` px wide."""
    h, w = rgb.shape[:2]
    if w <= width:
        return np.ascontiguousarray(rgb)
    return cv2.resize(np.ascontiguousarray(rgb), (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)


@dataclass
class ChromaScore:
    """Chroma statistics of one picture.

    residual: 95th percentile of |Cb - median_bin(Cb)| + |Cr - median_bin(Cr)| (8-bit code
    values), where median_bin is the median over pixels of similar luma; ~0 for monochrome
    and tinted pictures. tint: (median Cb - 128, median Cr - 128) of the picture, the hue a
    tint or toning gives (0, 0 for neutral grey).
    """

    residual: float
    tint: tuple[float, float]


def chroma_score(rgb: np.ndarray) -> ChromaScore:
    """`ChromaScore` of a uint8 (H, W, 3) **RGB** picture (a thumbnail: cost grows with size)."""
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.float32)
    y, cr, cb = ycc[:, 0], ycc[:, 1], ycc[:, 2]
    keep = (y > 12) & (y < 243)  # clipped blacks and whites carry no hue
    if keep.sum() < 32:
        keep = np.ones_like(y, bool)
    y, cr, cb = y[keep], cr[keep], cb[keep]
    bins = np.minimum((y * (_LUMA_BINS / 256.0)).astype(np.int64), _LUMA_BINS - 1)
    dev = np.zeros_like(y)
    valid = np.zeros(y.shape, bool)
    for b in np.unique(bins):
        sel = bins == b
        if sel.sum() < _MIN_BIN_PIXELS:
            continue
        dev[sel] = np.abs(cb[sel] - np.median(cb[sel])) + np.abs(cr[sel] - np.median(cr[sel]))
        valid |= sel
    residual = float(np.percentile(dev[valid], 95)) if valid.any() else 0.0
    return ChromaScore(residual, (float(np.median(cb)) - 128.0, float(np.median(cr)) - 128.0))


@dataclass
class ShotColor:
    """The colour verdict of one shot: frames [start, end) (end exclusive)."""

    start: int
    end: int
    residual: float  # median over the shot's frames of ChromaScore.residual
    tint: tuple[float, float]
    monochrome: bool

    @property
    def kind(self) -> str:
        """"color", "grey" or "tinted" (monochrome with a visible hue: sepia, tints)."""
        if not self.monochrome:
            return "color"
        return "tinted" if max(abs(self.tint[0]), abs(self.tint[1])) >= 2.0 else "grey"

    def to_dict(self) -> dict:
        return {"start": self.start, "end": self.end, "chroma_residual": round(self.residual, 3),
                "tint": [round(self.tint[0], 2), round(self.tint[1], 2)], "kind": self.kind}


def classify_shots(scores: list[ChromaScore], cuts: list[int], threshold: float = MONOCHROME_THRESHOLD) -> list[ShotColor]:
    """One `ShotColor` per shot. scores: one per frame, in order; cuts: frame indices that
    start a new shot (pass 1's)."""
    n = len(scores)
    bounds = [0] + sorted(c for c in set(cuts) if 0 < c < n) + [n]
    shots = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b <= a:
            continue
        res = float(np.median([s.residual for s in scores[a:b]]))
        tint = (float(np.median([s.tint[0] for s in scores[a:b]])), float(np.median([s.tint[1] for s in scores[a:b]])))
        shots.append(ShotColor(a, b, res, tint, res < threshold))
    return shots
