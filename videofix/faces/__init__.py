"""Faces: detection (retinaface / scrfd / dlib), tracking, alignment, masks and paste-back.

Contracts in docs/DESIGN.md ("Faces"). Images are uint8 HxWx3 **RGB** unless stated.
Heavy backends (facexlib, onnxruntime, dlib) are imported only when a detector is built.
"""

from .alignment import (
    BORDER_VALUE_BGR,
    BORDER_VALUE_RGB,
    FACE_TEMPLATE_512,
    estimate_alignment,
    face_template,
    invert_affine,
    paste_affine,
    transform_points,
    warp_face,
)
from .detection import AUTO_ORDER, BACKENDS, Detector, available_detectors, create_detector, nms
from .masks import FaceParser, RegionMask, load_face_parser, parse_map_to_mask, square_mask
from .paste import face_layer, paste_face, paste_faces, upscale_frame
from .tracking import (
    StreamingTracker,
    Tracker,
    box_iou,
    landmark_jitter,
    smooth_landmarks,
    smooth_series,
    smooth_track,
    track_faces,
)
from .shots import ShotDetector, detect_cuts
from .types import LANDMARK_NAMES, Detection, FaceTrack, TrackedFace, faces_by_frame


def paste_mask(inv_affine, face_size, frame_hw, upscale=1, parse_mask=None):
    """The blend mask of one face over the whole output frame: float32 (H, W) in 0..1.

    inv_affine: crop -> output frame (see :func:`paste_affine`). For paste-back itself use
    :func:`paste_face`, which works in the face's region only.
    """
    import numpy as np

    from .masks import warp_parse_mask

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


__all__ = [
    "AUTO_ORDER", "BACKENDS", "BORDER_VALUE_BGR", "BORDER_VALUE_RGB", "Detection", "Detector",
    "FACE_TEMPLATE_512", "FaceParser", "FaceTrack", "LANDMARK_NAMES", "RegionMask", "StreamingTracker",
    "TrackedFace", "Tracker", "available_detectors", "box_iou", "create_detector", "detect_cuts", "ShotDetector",
    "estimate_alignment", "face_layer", "face_template", "faces_by_frame", "invert_affine", "landmark_jitter",
    "load_face_parser", "nms", "parse_map_to_mask", "paste_affine", "paste_face", "paste_faces", "paste_mask",
    "smooth_landmarks", "smooth_series", "smooth_track", "square_mask", "track_faces", "transform_points",
    "upscale_frame", "warp_face",
]
