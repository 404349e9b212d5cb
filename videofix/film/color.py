"""Monochrome and tinted material: detection per shot.

A black-and-white film has no chroma; a sepia-toned or tinted one has chroma that depends
on luma alone (a toning curve), never on what is filmed. Colour material has pixels of the
same brightness in different hues. So the test is: bin the pixels of a small thumbnail by
luma and measure how far Cb / Cr stray from the median of their bin. That residual is near
zero (compression noise) for grey, sepia, tints and duotones, and large for colour film.

Per frame it reads the native chroma planes, subsampled to ~80 samples wide (no RGB
conversion: its rounding alone gives a grey picture +-1 of chroma), and takes a few medians;
the decision is made per shot (between the cuts pass 1 finds) from the median of the
frames' scores, so one colour insert in a black-and-white film is handled on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from videofix.io.picture import Picture

# Residual chroma (8-bit code values, 90th percentile) below which a shot is monochrome/tinted.
# Grey, sepia and tinted test material scores 2-4 after x264 (4:2:0 misregistration at edges,
# coding noise); a face in colour scores > 20. A false "monochrome" only keeps the source's
# chroma on the faces (harmless), a false "colour" brings colour: so the bar is high.
MONOCHROME_THRESHOLD = 8.0
THUMB_WIDTH = 160
_LUMA_BINS = 32
PERCENTILE = 90
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

    residual: 90th percentile of |Cb - curve_Cb(Y)| + |Cr - curve_Cr(Y)| (8-bit code
    values), where curve is the median chroma of pixels of similar luma; ~0 for monochrome
    and tinted pictures. tint: (median Cb - 128, median Cr - 128) of the picture, the hue a
    tint or toning gives (0, 0 for neutral grey).
    """

    residual: float
    tint: tuple[float, float]


def chroma_score(rgb: np.ndarray) -> ChromaScore:
    """`ChromaScore` of a uint8 (H, W, 3) **RGB** picture (a thumbnail: cost grows with size)."""
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb).reshape(-1, 3).astype(np.float32)
    return chroma_score_planes(ycc[:, 0], ycc[:, 2], ycc[:, 1])


def picture_chroma_score(picture: Picture, width: int = THUMB_WIDTH // 2) -> ChromaScore:
    """`ChromaScore` straight from a picture's native planes (no RGB round trip, whose
    rounding alone gives grey pictures +-1 of chroma). YUV: the chroma planes and the luma
    averaged onto the chroma grid, subsampled to about `width` samples wide; gray: none;
    RGB formats: through `chroma_score` of a thumbnail."""
    lay = picture.layout
    if lay.kind == "gray":
        return ChromaScore(0.0, (0.0, 0.0))
    if lay.kind != "yuv":
        return chroma_score(color_thumbnail(np.rint(picture.to_rgb() * 255).astype(np.uint8), 2 * width))
    u, v = picture.planes[1], picture.planes[2]
    step = max(1, u.shape[1] // width)
    u, v = u[::step, ::step], v[::step, ::step]
    y = cv2.resize(picture.planes[0].astype(np.float32), (picture.planes[1].shape[1], picture.planes[1].shape[0]),
                   interpolation=cv2.INTER_AREA)[::step, ::step]
    scale = np.float32(1.0 / (1 << (lay.bits - 8)))
    return chroma_score_planes(y.ravel() * scale, u.astype(np.float32).ravel() * scale,
                               v.astype(np.float32).ravel() * scale)


def chroma_score_planes(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> ChromaScore:
    """`ChromaScore` of matching 1-D float samples of Y, Cb, Cr (8-bit scale, chroma centred
    on 128). The chroma-versus-luma curve is the per-bin median (32 luma bins) interpolated
    linearly between bin centres, so a toning curve's slope inside a bin is not counted."""
    keep = (y > 12) & (y < 243)  # clipped blacks and whites carry no hue
    if keep.sum() < 32:
        keep = np.ones_like(y, bool)
    y, cr, cb = y[keep], cr[keep], cb[keep]
    tint = (float(np.median(cb)) - 128.0, float(np.median(cr)) - 128.0)
    bins = np.minimum((y * (_LUMA_BINS / 256.0)).astype(np.int64), _LUMA_BINS - 1)
    counts = np.bincount(bins, minlength=_LUMA_BINS)
    full = counts >= _MIN_BIN_PIXELS
    if not full.any():
        return ChromaScore(0.0, tint)
    # per-bin medians without a Python loop: sort by (bin, value), take each bin's middle
    middle = (np.cumsum(counts) - counts + counts // 2)[full]

    def bin_medians(values: np.ndarray) -> np.ndarray:
        return values[np.lexsort((values, bins))][middle]

    centres, curve_cb, curve_cr = bin_medians(y), bin_medians(cb), bin_medians(cr)
    dev = np.abs(cb - np.interp(y, centres, curve_cb)) + np.abs(cr - np.interp(y, centres, curve_cr))
    return ChromaScore(float(np.percentile(dev, PERCENTILE)), tint)


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


def classify_shots(scores: list[ChromaScore], cuts: list[int], threshold: float = MONOCHROME_THRESHOLD,
                   window: int = 5) -> list[ShotColor]:
    """One `ShotColor` per shot. scores: one per frame, in order; cuts: frame indices that
    start a new shot (pass 1's). A shot whose frames change verdict and keep it (a colour
    film cutting to a black-and-white insert the cut detector missed: similar brightness,
    similar layout) is split there: the per-frame verdict is median-filtered over `window`
    frames and every change of the filtered verdict starts a new shot."""
    n = len(scores)
    bounds = [0] + sorted(c for c in set(cuts) if 0 < c < n) + [n]
    mono = np.array([s.residual < threshold for s in scores], bool)
    starts = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b <= a:
            continue
        starts.append(a)
        half = window // 2
        smooth = [bool(mono[max(a, i - half):min(b, i + half + 1)].mean() >= 0.5) for i in range(a, b)]
        starts += [a + k for k in range(1, b - a) if smooth[k] != smooth[k - 1]]
    shots = []
    for a, b in zip(starts, starts[1:] + [n]):
        res = float(np.median([s.residual for s in scores[a:b]]))
        tint = (float(np.median([s.tint[0] for s in scores[a:b]])), float(np.median([s.tint[1] for s in scores[a:b]])))
        shots.append(ShotColor(a, b, res, tint, res < threshold))
    return shots
