"""Film grain: measure it around a face, put matching grain back on the restored face.

A restored face is clean; the frame around it is grainy, so it looks pasted on. For each
face and frame we measure the noise level in a ring around the face (source luma) and the
residual noise of the restored face, then add zero-mean grain so the two match.

Noise level: Immerkær's estimator made robust. The 3x3 kernel [[1,-2,1],[-2,4,-2],[1,-2,1]]
(a difference of two Laplacians) ignores flat areas and linear ramps; for white noise of
standard deviation s its output has standard deviation 6 s, and the median of its absolute
value (MAD) is insensitive to the edges and texture that remain. Sigma is in luma code
values of the picture being measured.

Grain: seeded Gaussian noise, a new field per frame (film grain changes every frame) and
per track, so runs are reproducible and independent of batching or segmenting. The field is
counter-based: each sample is a pure function of (seed, frame, track, its position), two
32-bit integer hashes (Wellons' lowbias32) of its index giving two 24-bit uniforms and
Box-Muller giving the Gaussian. So the torch face path draws the same field on the GPU
(`videofix.faces.gpu.grain_field_torch`: the same integers, float32 maths within a few
ulps) instead of drawing it on the host and copying it over. When the picture was upscaled, the grain is
drawn at the source resolution and resized the same way, so its grain size matches the
upscaled grain around it. Its amplitude is calibrated with the same estimator on the
field itself, whatever the field's spatial correlation.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
MIN_PIXELS = 64  # fewer measurable pixels than this: no estimate
MAX_SAMPLES = 20000  # median over at most about this many residuals


def noise_residual(luma: np.ndarray) -> np.ndarray:
    """The high-pass residual (float32, same shape) whose spread measures noise: six times
    the noise for white noise."""
    return cv2.filter2D(luma.astype(np.float32, copy=False), cv2.CV_32F, _KERNEL, borderType=cv2.BORDER_REFLECT)


def noise_sigma(luma: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Noise standard deviation of a luma region (2D, any dtype; result in its units).

    mask: optional bool (same shape) of the pixels to measure (the 1-px border never is).
    Returns nan when fewer than `MIN_PIXELS` pixels are measurable.
    """
    luma = np.asarray(luma)
    if luma.ndim != 2 or min(luma.shape) < 3:
        return float("nan")
    r = np.abs(noise_residual(luma))
    valid = np.zeros(luma.shape, bool)
    valid[1:-1, 1:-1] = True
    if mask is not None:
        valid &= mask
    vals = r[valid]
    if vals.size < MIN_PIXELS:
        return float("nan")
    if vals.size > MAX_SAMPLES:  # a strided sample reads the same median, much faster
        vals = vals[:: vals.size // MAX_SAMPLES]
    # residual is zero-mean: median |r| = 0.6745 * std(r) = 0.6745 * 6 * sigma
    return float(np.median(vals)) * 1.4826 / 6.0


_MASK32 = 0xFFFFFFFF
_HASH_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)  # lowbias32 (C. Wellons, "hash-prospector")


def _hash32_int(x: int) -> int:
    """lowbias32 of one Python int (the key's mixing)."""
    x &= _MASK32
    x ^= x >> 16
    x = (x * _HASH_MULTIPLIERS[0]) & _MASK32
    x ^= x >> 15
    x = (x * _HASH_MULTIPLIERS[1]) & _MASK32
    return x ^ (x >> 16)


def grain_key(seed: int, frame_index: int, track_id: int) -> int:
    """The 32-bit key of one face's field in one frame."""
    return _hash32_int(int(seed) ^ _hash32_int(int(frame_index) ^ _hash32_int(int(track_id) ^ 0x9E3779B9)))


def grain_draw_shape(shape: tuple[int, int], scale: float) -> tuple[int, int]:
    """The size the field is drawn at before resizing (`scale` > 1: 1/scale of it, plus one)."""
    h, w = int(shape[0]), int(shape[1])
    if scale <= 1.0:
        return h, w
    return max(2, math.ceil(h / scale) + 1), max(2, math.ceil(w / scale) + 1)


def _lowbias32(x: np.ndarray) -> np.ndarray:
    x ^= x >> np.uint32(16)
    x *= np.uint32(_HASH_MULTIPLIERS[0])
    x ^= x >> np.uint32(15)
    x *= np.uint32(_HASH_MULTIPLIERS[1])
    x ^= x >> np.uint32(16)
    return x


def grain_field(shape: tuple[int, int], *, seed: int, frame_index: int, track_id: int, scale: float = 1.0) -> np.ndarray:
    """Unit Gaussian grain, float32 `shape` (h, w): drawn at 1/`scale` of the size and
    resized bilinearly when `scale` > 1 (grain of an upscaled picture). Same arguments,
    same field (see the module docstring; `videofix.faces.gpu.grain_field_torch` draws it
    on a torch device)."""
    h, w = int(shape[0]), int(shape[1])
    dh, dw = grain_draw_shape((h, w), scale)
    key = np.uint32(grain_key(seed, frame_index, track_id))
    index = np.arange(dh * dw, dtype=np.uint32) * np.uint32(2) + key  # wraps mod 2**32
    u1 = ((_lowbias32(index.copy()) >> np.uint32(8)).astype(np.float32) + np.float32(0.5)) * np.float32(2.0 ** -24)
    index += np.uint32(1)
    u2 = ((_lowbias32(index) >> np.uint32(8)).astype(np.float32) + np.float32(0.5)) * np.float32(2.0 ** -24)
    z = np.sqrt(np.float32(-2.0) * np.log(u1)) * np.cos(np.float32(2.0 * math.pi) * u2)
    field = z.astype(np.float32, copy=False).reshape(dh, dw)
    if (dh, dw) == (h, w):
        return field
    return cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)


def ring_mask(shape: tuple[int, int], inner: tuple[int, int, int, int], face: np.ndarray) -> np.ndarray:
    """bool `shape` mask of a ring: everything in the region except the face.
    inner: (x0, y0, x1, y1) of the face box inside the region; face: bool (y1-y0, x1-x0)
    True where the face is pasted (mask > 0)."""
    ring = np.ones(shape, bool)
    x0, y0, x1, y1 = inner
    ring[y0:y1, x0:x1] &= ~face
    return ring


def added_sigma(target: float, present: float) -> float:
    """Standard deviation of independent noise that brings `present` up to `target`
    (0 when already noisier; nan-safe)."""
    if not math.isfinite(target):
        return 0.0
    present = present if math.isfinite(present) else 0.0
    return math.sqrt(max(0.0, target * target - present * present))
