"""RetinaFace (facexlib's network, the official CodeFormer detector) with our own loading and decoding.

facexlib's ``init_detection_model`` downloads and unpickles; here the network class is
built from facexlib and filled with a state dict from the safe loader
(``torch.load(weights_only=True)``). Pre-processing is the official one: the image in
**BGR** order, float32, minus the mean (104, 117, 123), no scaling. Decoding (priors,
variances 0.1 / 0.2), the 0.8 confidence threshold and the 0.4 NMS are those of facexlib's
``detect_faces``; the image is padded to a multiple of 32 so the priors always match the
head outputs.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from videofix.errors import ModelFileError

from .detection import Detector, nms
from .types import Detection

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCE = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)
FILES = {"resnet50": "retinaface_resnet50", "mobile0.25": "retinaface_mobile0.25"}


def retinaface_priors(height: int, width: int, min_sizes=MIN_SIZES, steps=STEPS) -> np.ndarray:
    """Prior boxes (P, 4) float32 cx, cy, w, h normalised by (width, height), in the order
    of the network's outputs (stride, row, column, anchor)."""
    out = []
    for sizes, step in zip(min_sizes, steps):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        cy, cx = np.meshgrid((np.arange(fh) + 0.5) * step / height, (np.arange(fw) + 0.5) * step / width,
                             indexing="ij")
        per = []
        for s in sizes:
            per.append(np.stack([cx, cy, np.full_like(cx, s / width), np.full_like(cy, s / height)], axis=-1))
        out.append(np.stack(per, axis=2).reshape(-1, 4))
    return np.concatenate(out, 0).astype(np.float32)


def decode_retinaface(loc: np.ndarray, scores: np.ndarray, landms: np.ndarray, priors: np.ndarray,
                      width: int, height: int, conf_threshold: float = 0.8, nms_threshold: float = 0.4,
                      max_candidates: int = 5000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Network outputs -> (boxes (N,4), scores (N,), landmarks (N,5,2)) in input pixels.

    loc: (P, 4); scores: (P,) face probability; landms: (P, 10); priors: (P, 4) from
    :func:`retinaface_priors`. Candidates above `conf_threshold` (at most `max_candidates`,
    best first) go through NMS.
    """
    v0, v1 = VARIANCE
    keep = np.nonzero(scores > conf_threshold)[0]
    if keep.size > max_candidates:
        keep = keep[np.argsort(-scores[keep], kind="stable")[:max_candidates]]
    loc, scores, landms, pri = loc[keep], scores[keep], landms[keep], priors[keep]
    loc = loc.astype(np.float64)
    centre = pri[:, :2] + loc[:, :2] * v0 * pri[:, 2:]
    # The exponent is bounded so that untrained or damaged weights give huge boxes, not inf.
    size = pri[:, 2:] * np.exp(np.minimum(loc[:, 2:] * v1, 10.0))
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    lm = pri[:, None, :2] + landms.reshape(-1, 5, 2).astype(np.float64) * v0 * pri[:, None, 2:]
    scale = np.array([width, height], dtype=np.float32)
    boxes = boxes * np.tile(scale, 2)
    lm = lm * scale
    order = np.argsort(-scores, kind="stable")
    boxes, scores, lm = boxes[order], scores[order], lm[order]
    k = nms(boxes, scores, nms_threshold)
    return boxes[k].astype(np.float32), scores[k].astype(np.float32), lm[k].astype(np.float32)


class RetinaFaceDetector(Detector):
    """facexlib RetinaFace. Input frames uint8 HxWx3 RGB (converted to BGR inside)."""

    def __init__(self, weights: str | Path, network: str = "resnet50", device: str = "cpu",
                 det_short_side: int | None = 640, conf_threshold: float = 0.8, nms_threshold: float = 0.4,
                 min_eye_distance: float = 5.0, half: bool = False):
        super().__init__(det_short_side=det_short_side, min_eye_distance=min_eye_distance)
        import torch
        from facexlib.detection.retinaface import RetinaFace

        from ._files import load_state_dict

        if network not in FILES:
            raise ValueError(f"retinaface: network must be one of {sorted(FILES)}")
        self.name = "retinaface" if network == "resnet50" else "retinaface_mobile"
        sd = load_state_dict(weights)
        import warnings

        with warnings.catch_warnings():  # facexlib passes torchvision's deprecated `pretrained=False`
            warnings.simplefilter("ignore", UserWarning)
            net = RetinaFace(network_name=network, half=False, phase="test", device="cpu")
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            raise ModelFileError(f"{Path(weights).name}: not a RetinaFace {network} state dict "
                                 f"({str(exc).splitlines()[0]})") from None
        self.device = torch.device(device)
        self.dtype = torch.float16 if (half and self.device.type == "cuda") else torch.float32
        self.net = net.eval().to(self.device, self.dtype)
        self.conf_threshold = float(conf_threshold)
        self.nms_threshold = float(nms_threshold)
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def from_registry(cls, network: str, *, models_dir=None, model_path=None, download: bool = True, **kw):
        from ._files import resolve_model

        weights = resolve_model(FILES[network], path=model_path, models_dir=models_dir, download=download)
        return cls(weights, network=network, **kw)

    def raw_outputs(self, rgb: np.ndarray):
        """(loc (P,4), scores (P,), landms (P,10), priors (P,4), padded W, padded H) for an
        RGB uint8 image at the size given."""
        import torch

        h, w = rgb.shape[:2]
        ph, pw = math.ceil(h / 32) * 32, math.ceil(w / 32) * 32
        x = torch.from_numpy(np.ascontiguousarray(rgb[:, :, ::-1])).to(self.device)
        x = x.permute(2, 0, 1).float() - torch.tensor(MEAN_BGR, device=self.device).view(3, 1, 1)
        # Padding after mean removal = padding with the mean colour, what the net saw as "nothing".
        x = torch.nn.functional.pad(x, (0, pw - w, 0, ph - h)).unsqueeze(0).to(self.dtype)
        with torch.no_grad():
            loc, conf, landms = self.net(x)
        if (ph, pw) not in self._priors:
            self._priors[(ph, pw)] = retinaface_priors(ph, pw)
        priors = self._priors[(ph, pw)]
        return (loc[0].float().cpu().numpy(), conf[0, :, 1].float().cpu().numpy(),
                landms[0].float().cpu().numpy(), priors, pw, ph)

    def _backend_threshold(self, threshold: float | None) -> None:
        self.conf_threshold = 0.8 if threshold is None else float(threshold)

    def _detect_scaled(self, rgb: np.ndarray) -> list[Detection]:
        loc, scores, landms, priors, pw, ph = self.raw_outputs(rgb)
        boxes, scores, lms = decode_retinaface(loc, scores, landms, priors, pw, ph,
                                               self.conf_threshold, self.nms_threshold)
        return [Detection(b, s, l) for b, s, l in zip(boxes, scores, lms)]
