"""SCRFD detector and ArcFace embedding from insightface's ``buffalo_l`` pack, on onnxruntime.

The files are insightface's (``det_10g.onnx``: SCRFD-10G with keypoints; ``w600k_r50.onnx``:
ArcFace ResNet-50, 112x112 -> 512); the decoding follows insightface's ``SCRFD.forward``: 9
outputs, scores / box distances / keypoint offsets at strides 8, 16, 32, two anchors per
location, distances in units of the stride. Input: **RGB**, (x - 127.5) / 128, NCHW.
Instead of insightface's 640x640 letterbox, the (already resized) frame is padded to a
multiple of 32 when the model accepts any size, so frames of any shape use the whole input.
onnxruntime runs with the CUDA provider when `device` is CUDA and the provider exists.

Batches: an export with a free batch dimension and per-image (B, K, C) outputs (what
insightface's own code calls ``batched``) runs frames of one size in one session call
(``batch_size`` 8 on CUDA); buffalo_l's ``det_10g.onnx`` folds the batch into its 2-D
outputs, so it runs one frame per call, as insightface runs it.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from videofix.errors import ModelFileError

from .alignment import _similarity_lstsq
from .detector_base import Detector, nms
from .types import Detection

STRIDES = (8, 16, 32)
NUM_ANCHORS = 2
DETECTOR_FILE = "det_10g.onnx"
RECOGNISER_FILE = "w600k_r50.onnx"
# insightface's ArcFace 112x112 template, same landmark order as videofix.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


def onnx_providers(device: str, available: list[str] | None = None) -> list:
    """onnxruntime's providers for `device` ("cpu", "cuda", "cuda:N"): the CUDA provider on
    GPU N (its ``device_id``; a bare "cuda" is GPU 0, as torch's current device by default)
    when onnxruntime has it, then the CPU. available: the providers to choose from (default:
    onnxruntime's)."""
    if available is None:
        import onnxruntime as ort

        available = ort.get_available_providers()
    device = str(device)
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _session_device(session, device: str) -> str:
    """"cuda:N" when `session` runs on onnxruntime's CUDA provider (GPU N of `device`), else "cpu"."""
    if "CUDAExecutionProvider" not in session.get_providers():
        return "cpu"
    options = session.get_provider_options().get("CUDAExecutionProvider", {})
    return f"cuda:{int(options.get('device_id', 0))}"


def _session(path: Path, device: str):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=onnx_providers(device))
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelFileError(f"{path.name}: not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None


def anchor_centres(height: int, width: int, stride: int, num_anchors: int = NUM_ANCHORS) -> np.ndarray:
    """(H/s * W/s * A, 2) float32 x, y centres, row-major, anchors consecutive (insightface order)."""
    fh, fw = height // stride, width // stride
    centres = np.stack(np.mgrid[:fh, :fw][::-1], axis=-1).astype(np.float32).reshape(-1, 2) * stride
    return np.repeat(centres, num_anchors, axis=0)


def decode_scrfd(outputs: list[np.ndarray], height: int, width: int, threshold: float = 0.5,
                 nms_threshold: float = 0.4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SCRFD's 9 outputs -> (boxes (N,4), scores (N,), keypoints (N,5,2)) in input pixels.

    outputs: [score_8, score_16, score_32, bbox_8, ..., kps_8, ...] with shapes (K,1), (K,4),
    (K,10) (a leading batch dimension of 1 is accepted).
    """
    if len(outputs) != 9:
        raise ModelFileError(f"SCRFD detector: expected 9 outputs (scores, boxes, keypoints at 3 strides), got {len(outputs)}")
    outs = [o[0] if o.ndim == 3 else o for o in outputs]
    boxes, scores, kpss = [], [], []
    for i, stride in enumerate(STRIDES):
        sc = outs[i].reshape(-1)
        centres = anchor_centres(height, width, stride)
        if centres.shape[0] != sc.shape[0]:
            raise ModelFileError(f"SCRFD detector: stride {stride} output has {sc.shape[0]} anchors, expected {centres.shape[0]}")
        pos = np.nonzero(sc >= threshold)[0]
        if pos.size == 0:
            continue
        d = outs[i + 3].reshape(-1, 4)[pos] * stride
        k = outs[i + 6].reshape(-1, 10)[pos].reshape(-1, 5, 2) * stride
        c = centres[pos]
        boxes.append(np.concatenate([c - d[:, :2], c + d[:, 2:]], axis=1))
        kpss.append(c[:, None, :] + k)
        scores.append(sc[pos])
    if not scores:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32)
    boxes, scores, kpss = np.concatenate(boxes), np.concatenate(scores), np.concatenate(kpss)
    order = np.argsort(-scores, kind="stable")
    boxes, scores, kpss = boxes[order], scores[order], kpss[order]
    keep = nms(boxes, scores, nms_threshold)
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32), kpss[keep].astype(np.float32)


class ArcFaceEmbedder:
    """ArcFace recogniser (112x112 RGB -> D-dim). ``embed(rgb, landmarks)`` -> float32 (D,) unit norm."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        self.path = Path(path)
        self.session = _session(self.path, device)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        size = inp.shape[2] if isinstance(inp.shape[2], int) else 112
        self.size = int(size)

    def align(self, rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """uint8 (S,S,3) RGB crop on insightface's ArcFace template (least-squares similarity)."""
        m = _similarity_lstsq(landmarks, ARCFACE_TEMPLATE_112 * (self.size / 112.0))
        return cv2.warpAffine(rgb, m, (self.size, self.size), borderValue=0.0)

    def embed_crops(self, crops: list[np.ndarray]) -> np.ndarray:
        """(N, D) float32 unit-norm embeddings of aligned uint8 RGB crops."""
        if not crops:
            return np.zeros((0, 0), np.float32)
        x = (np.stack(crops).astype(np.float32) - 127.5) / 127.5
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
        feats = np.concatenate([self.session.run(None, {self.input_name: x[i:i + 1]})[0] for i in range(len(x))])
        feats = feats.reshape(len(crops), -1).astype(np.float32)
        return feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)


class ScrfdDetector(Detector):
    """insightface SCRFD (+ ArcFace embeddings). Input frames uint8 HxWx3 RGB."""

    name = "scrfd"

    def __init__(self, model_dir: str | Path, device: str = "cpu", det_short_side: int | None = 640,
                 det_threshold: float = 0.5, nms_threshold: float = 0.4, min_eye_distance: float = 5.0,
                 with_embedding: bool = True):
        super().__init__(det_short_side=det_short_side, min_eye_distance=min_eye_distance)
        model_dir = Path(model_dir)
        det_path = model_dir / DETECTOR_FILE
        if not det_path.exists():
            raise ModelFileError(f"buffalo_l: {DETECTOR_FILE} missing in {model_dir}")
        self.session = _session(det_path, device)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_names = [o.name for o in self.session.get_outputs()]
        if len(self.output_names) != 9:
            raise ModelFileError(f"{DETECTOR_FILE}: expected 9 outputs (SCRFD with keypoints), found {len(self.output_names)}")
        shape = inp.shape
        self.static_hw = (shape[2], shape[3]) if isinstance(shape[2], int) and isinstance(shape[3], int) else None
        outputs = self.session.get_outputs()
        # one call for several frames: a free batch dimension and (B, K, C) outputs
        self.batched = (self.static_hw is None and not isinstance(shape[0], int)
                        and all(len(o.shape) == 3 for o in outputs))
        self.batch_size = 8 if (self.batched and str(device).startswith("cuda")) else 1
        self.det_threshold = float(det_threshold)
        self.nms_threshold = float(nms_threshold)
        self.providers = self.session.get_providers()
        # where it runs, as torch names it (the shot detector goes there too, `detector_device`)
        self.device = _session_device(self.session, device)
        self.embedder = None
        rec_path = model_dir / RECOGNISER_FILE
        if with_embedding and rec_path.exists():
            self.embedder = ArcFaceEmbedder(rec_path, device)

    @classmethod
    def from_registry(cls, *, models_dir=None, model_path=None, download: bool = True, **kw):
        from ._files import resolve_model

        folder = resolve_model("buffalo_l", path=model_path, models_dir=models_dir, download=download)
        return cls(folder, **kw)

    def _backend_threshold(self, threshold: float | None) -> None:
        self.det_threshold = 0.5 if threshold is None else float(threshold)

    def _detect_scaled_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        if not self.batched or len(images) == 1:
            return [self._detect_scaled(im) for im in images]
        h, w = images[0].shape[:2]
        ih, iw = math.ceil(h / 32) * 32, math.ceil(w / 32) * 32
        canvas = np.zeros((len(images), ih, iw, 3), np.uint8)
        for k, im in enumerate(images):
            canvas[k, :h, :w] = im
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2)
        outs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(blob)})
        result = []
        for k in range(len(images)):
            boxes, scores, kps = decode_scrfd([o[k:k + 1] for o in outs], ih, iw, self.det_threshold,
                                              self.nms_threshold)
            result.append([Detection(b, s_, p) for b, s_, p in zip(boxes, scores, kps)])
        return result

    def _detect_scaled(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        if self.static_hw is not None:
            # Letterbox into the fixed input (insightface's way), then undo the scale.
            ih, iw = self.static_hw
            s = min(ih / h, iw / w)
            nh, nw = max(int(h * s), 1), max(int(w * s), 1)
            canvas = np.zeros((ih, iw, 3), np.uint8)
            canvas[:nh, :nw] = cv2.resize(rgb, (nw, nh))
            sx, sy = w / nw, h / nh
        else:
            ih, iw = math.ceil(h / 32) * 32, math.ceil(w / 32) * 32
            canvas = np.zeros((ih, iw, 3), np.uint8)
            canvas[:h, :w] = rgb
            sx = sy = 1.0
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        outs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(blob)})
        boxes, scores, kps = decode_scrfd(outs, ih, iw, self.det_threshold, self.nms_threshold)
        dets = [Detection(b, s_, k) for b, s_, k in zip(boxes, scores, kps)]
        if (sx, sy) != (1.0, 1.0):
            dets = [d.scaled(sx, sy) for d in dets]
        return dets

    def _postprocess(self, rgb: np.ndarray, dets: list[Detection]) -> list[Detection]:
        # Embeddings from the full-resolution frame, on the frame-coordinate landmarks.
        if self.embedder is None or not dets:
            return dets
        crops = [self.embedder.align(rgb, d.landmarks) for d in dets]
        feats = self.embedder.embed_crops(crops)
        for d, f in zip(dets, feats):
            d.embedding = f
        return dets
