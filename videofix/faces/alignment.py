"""Alignment of a face to the official 512x512 template, and the way back.

Everything here follows the official CodeFormer pipeline (facelib's FaceRestoreHelper):
the similarity transform is estimated by ``cv2.estimateAffinePartial2D(..., method=LMEDS)``
from the 5 landmarks to the template; the crop is ``cv2.warpAffine`` bilinear with a
constant border. The official border value (135, 133, 132) is given for a **BGR** image;
videofix images are RGB, so the same grey is (132, 133, 135) here.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# Official 512 template (left eye, right eye, nose, left mouth, right mouth), frame x/y.
FACE_TEMPLATE_512 = np.array(
    [
        [192.98138, 239.94708],
        [318.90277, 240.1936],
        [256.63416, 314.01935],
        [201.26117, 371.41043],
        [313.08905, 371.15118],
    ],
    dtype=np.float32,
)

BORDER_VALUE_BGR = (135, 133, 132)  # as written in the official (BGR) code
BORDER_VALUE_RGB = (132, 133, 135)  # the same colour for videofix's RGB images


def face_template(size: int = 512) -> np.ndarray:
    """The template scaled to a `size` x `size` crop: float32 (5, 2)."""
    return FACE_TEMPLATE_512 * np.float32(size / 512.0)


def _similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (Umeyama) from src (N,2) to dst (N,2): (2,3) float64."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    var_s = (s**2).sum() / len(src)
    scale = (sig * sign).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def estimate_alignment(landmarks: np.ndarray, size: int = 512) -> np.ndarray:
    """Affine that maps frame pixels to the aligned `size` crop: (2, 3) float64.

    landmarks: (5, 2) float, frame pixels, videofix landmark order.
    Uses ``cv2.estimateAffinePartial2D(landmarks, template, method=cv2.LMEDS)`` exactly as the
    official pipeline (deterministic: OpenCV seeds its own RNG). Falls back to a least-squares
    similarity when OpenCV finds none (degenerate landmarks).
    """
    lm = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    if not np.all(np.isfinite(lm)):
        raise ValueError("estimate_alignment: landmarks must be finite")
    affine, _ = cv2.estimateAffinePartial2D(lm, face_template(size), method=cv2.LMEDS)
    if affine is None:
        affine = _similarity_lstsq(lm, face_template(size))
    return np.asarray(affine, dtype=np.float64)


def invert_affine(affine: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine: (2, 3) float64 (``cv2.invertAffineTransform``)."""
    return cv2.invertAffineTransform(np.asarray(affine, dtype=np.float64))


def paste_affine(affine: np.ndarray, upscale: int = 1) -> np.ndarray:
    """The official crop -> output-frame affine for an output `upscale` times the frame.

    inverse(affine) * upscale, plus the official extra offset of 0.5 * upscale on the
    translation when upscale > 1 ("for more precise back alignment"). (2, 3) float64.
    """
    inv = invert_affine(affine) * float(upscale)
    if upscale > 1:
        inv[:, 2] += 0.5 * upscale
    return inv


def transform_points(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to points (N, 2): float64 (N, 2)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    a = np.asarray(affine, dtype=np.float64)
    return p @ a[:, :2].T + a[:, 2]


def affine_region(
    affine_to_frame: np.ndarray, crop_size: int, frame_hw: tuple[int, int], margin: int = 2
) -> tuple[int, int, int, int] | None:
    """Integer box (x0, y0, x1, y1), x1/y1 exclusive, clipped to the frame, that contains
    the image of the `crop_size` square under `affine_to_frame`, grown by `margin` pixels.
    None when it does not meet the frame."""
    s = float(crop_size)
    corners = transform_points(affine_to_frame, [[-1, -1], [s, -1], [-1, s], [s, s]])
    h, w = frame_hw
    x0 = max(int(math.floor(corners[:, 0].min())) - margin, 0)
    y0 = max(int(math.floor(corners[:, 1].min())) - margin, 0)
    x1 = min(int(math.ceil(corners[:, 0].max())) + margin + 1, w)
    y1 = min(int(math.ceil(corners[:, 1].max())) + margin + 1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def shift_affine(affine_to_frame: np.ndarray, x0: float, y0: float) -> np.ndarray:
    """The affine whose output is expressed in a region starting at (x0, y0)."""
    a = np.array(affine_to_frame, dtype=np.float64, copy=True)
    a[0, 2] -= x0
    a[1, 2] -= y0
    return a


def warp_face(image, affine: np.ndarray, size: int = 512, border_value=BORDER_VALUE_RGB) -> np.ndarray:
    """Cut the aligned face out of a frame: uint8 (size, size, 3) **RGB**.

    image: uint8 HxWx3 **RGB** array, or a ``videofix.io.Picture`` (only the region the crop
        needs is converted to RGB, then rounded to uint8, which is what a bgr24 decode gives).
    affine: (2, 3) frame -> crop, from :func:`estimate_alignment` with the same `size`.
    Bilinear, constant border `border_value` (RGB order; the official grey by default).
    """
    a = np.asarray(affine, dtype=np.float64)
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError("warp_face: image must be uint8 HxWx3 RGB")
        return cv2.warpAffine(
            image, a, (size, size), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in border_value),
        )
    # A Picture: convert only the source region the crop reads (plus a bilinear margin).
    picture = image
    box = affine_region(invert_affine(a), size, (picture.height, picture.width), margin=4)
    if box is None:
        return np.full((size, size, 3), border_value, dtype=np.uint8)
    x0, y0, x1, y1 = box
    region = picture.to_rgb(box)
    region = np.clip(np.rint(np.asarray(region, np.float32) * 255.0), 0, 255).astype(np.uint8)
    # Pixels of the region that lie outside the picture do not exist (box was clipped), so
    # samples there fall on the constant border exactly as with the whole frame.
    a_local = a.copy()
    a_local[:, 2] += a[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return cv2.warpAffine(
        np.ascontiguousarray(region), a_local, (size, size), flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT, borderValue=tuple(float(v) for v in border_value),
    )
