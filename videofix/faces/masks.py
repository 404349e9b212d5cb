"""Paste-back masks: the official square-mask rule and the face-parsing (ParseNet) mask.

Official rule (facelib FaceRestoreHelper.paste_faces_to_input_image), with ``up`` the
integer upscale of the output and ``inv`` the crop -> output affine:

1. ``inv_mask = warpAffine(ones(face), inv)`` (bilinear, border 0);
2. ``eroded = erode(inv_mask, ones(2*up, 2*up))``  (removes the black, half-covered rim);
3. ``w_edge = int(sqrt(sum(eroded))) // 20``;
4. ``center = erode(eroded, ones(2*w_edge, 2*w_edge))``;
5. ``soft = GaussianBlur(center, (2*w_edge+1, 2*w_edge+1), 0)``.

The restored face pasted is ``eroded * warped_face`` and the blend is
``soft * face + (1 - soft) * background``. With a parsing mask, the final mask is the
per-pixel minimum of ``soft`` and the warped parse mask.

Here everything is computed in a **region** of the output (the face square's image plus a
margin wider than the blur) instead of the whole frame, which gives the same numbers: OpenCV's
erosion treats the outside as "+inf" and the blur reflects, so a region edge that lies on the
frame edge behaves as the frame edge, and a region edge inside the frame only ever sees zeros.
For tiny faces (w_edge = 0) the official code passes an empty kernel, which OpenCV reads as
3x3; that is kept so the numbers match.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .alignment import affine_region, shift_affine

# ParseNet's 19 classes -> kept (255) or not (0): background, neck, cloth, hair, hat are not face.
PARSE_KEEP = np.array([0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 255, 0, 0, 0],
                      dtype=np.float32)


@dataclass
class RegionMask:
    """A mask over a region of the output frame.

    box: (x0, y0, x1, y1) ints, x1/y1 exclusive, inside the frame.
    soft: float32 (h, w) in 0..1, the blend weight.
    eroded: float32 (h, w) in 0..1, the official multiplier of the pasted face.
    """

    box: tuple[int, int, int, int]
    soft: np.ndarray
    eroded: np.ndarray


def region_for_paste(inv_affine: np.ndarray, face_size: int, frame_hw: tuple[int, int]):
    """The output region a pasted face can touch, with a margin wider than the feather."""
    scale = math.sqrt(abs(np.linalg.det(np.asarray(inv_affine)[:, :2])))
    side = face_size * scale
    margin = int(side / 10) + 8  # blur radius is about side / 20
    return affine_region(inv_affine, face_size, frame_hw, margin=margin)


def square_mask(inv_affine: np.ndarray, face_size: int, frame_hw: tuple[int, int], upscale: int = 1,
                box: tuple[int, int, int, int] | None = None) -> RegionMask | None:
    """The official square mask for a face pasted with `inv_affine` (crop -> output frame).

    face_size: side of the crop the affine starts from (512). frame_hw: (H, W) of the output
    frame (already upscaled). Returns None when the face lies wholly outside the frame.
    """
    if box is None:
        box = region_for_paste(inv_affine, face_size, frame_hw)
        if box is None:
            return None
    x0, y0, x1, y1 = box
    local = shift_affine(inv_affine, x0, y0)
    ones = np.ones((face_size, face_size), dtype=np.float32)
    inv_mask = cv2.warpAffine(ones, local, (x1 - x0, y1 - y0))
    k = int(2 * upscale)
    eroded = cv2.erode(inv_mask, np.ones((k, k), np.uint8))
    w_edge = int(float(np.sum(eroded)) ** 0.5) // 20
    center = cv2.erode(eroded, np.ones((2 * w_edge, 2 * w_edge), np.uint8))
    soft = cv2.GaussianBlur(center, (2 * w_edge + 1, 2 * w_edge + 1), 0)
    return RegionMask(box=box, soft=soft, eroded=eroded)


def parse_map_to_mask(parse: np.ndarray) -> np.ndarray:
    """Official parse-map post-processing: (S, S) int class map -> float32 (S, S) in 0..1.

    Classes 0, 14, 16, 17, 18 -> 0, others -> 255; Gaussian blur (101, sigma 11) twice; a 10-px
    border zeroed; / 255.
    """
    m = PARSE_KEEP[np.asarray(parse, dtype=np.int64)].astype(np.float64)
    m = cv2.GaussianBlur(m, (101, 101), 11)
    m = cv2.GaussianBlur(m, (101, 101), 11)
    t = 10
    m[:t, :] = 0
    m[-t:, :] = 0
    m[:, :t] = 0
    m[:, -t:] = 0
    return (m / 255.0).astype(np.float32)


def warp_parse_mask(parse_mask: np.ndarray, region: RegionMask, inv_affine: np.ndarray, face_size: int) -> np.ndarray:
    """Warp a crop-space parse mask (S, S) into the region, official interpolation flag 3."""
    x0, y0, x1, y1 = region.box
    pm = parse_mask
    if pm.shape[0] != face_size:
        pm = cv2.resize(pm, (face_size, face_size))
    local = shift_affine(inv_affine, x0, y0)
    return cv2.warpAffine(pm.astype(np.float32), local, (x1 - x0, y1 - y0), flags=3)


class FaceParser:
    """facexlib's ParseNet (19 classes, 512x512) loaded with our safe loader.

    ``mask(crop)`` takes the restored crop, uint8 (S, S, 3) **RGB**, and returns the official
    parse mask, float32 (512, 512) in 0..1 (crop space). ``parse_size`` is the side the network
    sees: 512 is the official value; a smaller one (the network is fully convolutional) is
    faster and coarser, its class map is resized back to 512 (nearest).
    """

    def __init__(self, weights: str | Path, device: str = "cpu", parse_size: int = 512):
        import torch
        from facexlib.parsing.parsenet import ParseNet

        from ._files import load_state_dict

        sd = load_state_dict(weights)
        net = ParseNet(in_size=512, out_size=512, parsing_ch=19)
        try:
            net.load_state_dict(sd, strict=True)
        except RuntimeError as exc:
            from videofix.errors import ModelFileError

            raise ModelFileError(f"{Path(weights).name}: not a ParseNet state dict ({str(exc).splitlines()[0]})") from None
        self.device = torch.device(device)
        self.net = net.eval().to(self.device)
        self.parse_size = int(parse_size)

    def parse(self, crop_rgb: np.ndarray) -> np.ndarray:
        """Class map int64 (512, 512) of a uint8 RGB crop."""
        import torch

        img = crop_rgb
        n = self.parse_size
        if img.shape[0] != n or img.shape[1] != n:
            img = cv2.resize(img, (n, n), interpolation=cv2.INTER_LINEAR)
        x = torch.from_numpy(np.ascontiguousarray(img)).to(self.device).permute(2, 0, 1).float() / 255.0
        x = ((x - 0.5) / 0.5).unsqueeze(0)
        with torch.no_grad():
            out = self.net(x)[0]
        classes = out.argmax(dim=1).squeeze(0).cpu().numpy()
        if n != 512:
            classes = cv2.resize(classes.astype(np.uint8), (512, 512), interpolation=cv2.INTER_NEAREST)
        return classes.astype(np.int64)

    def mask(self, crop_rgb: np.ndarray) -> np.ndarray:
        return parse_map_to_mask(self.parse(crop_rgb))

    def parse_tensor(self, crops) -> "torch.Tensor":
        """Class maps int64 (N, 512, 512) on the parser's device of N crops: a uint8 (N, 3, S, S)
        RGB tensor (any device) or a list of uint8 (S, S, 3) RGB arrays; one network call."""
        import torch
        import torch.nn.functional as F

        if not isinstance(crops, torch.Tensor):
            crops = torch.from_numpy(np.stack([np.ascontiguousarray(c) for c in crops])).permute(0, 3, 1, 2)
        x = crops.to(self.device).float()
        n = self.parse_size
        if x.shape[-1] != n:
            # cv2.resize bilinear on uint8 rounds: the same here, up to its fixed point
            x = F.interpolate(x, size=(n, n), mode="bilinear", align_corners=False).round().clamp(0, 255)
        x = (x / 255.0 - 0.5) / 0.5
        with torch.no_grad():
            classes = self.net(x)[0].argmax(dim=1)
        if n != 512:
            classes = F.interpolate(classes[:, None].float(), size=(512, 512), mode="nearest")[:, 0].long()
        return classes


def load_face_parser(models_dir=None, path=None, device: str = "cpu", download: bool = False,
                     parse_size: int = 512) -> FaceParser | None:
    """The ParseNet masker when ``parsenet`` (parsing_parsenet.pth) resolves, else None (square mask only)."""
    from videofix.errors import ModelFileError

    from ._files import resolve_model

    try:
        weights = resolve_model("parsenet", path=path, models_dir=models_dir, download=download)
    except ModelFileError:
        if path is not None:
            raise
        return None
    return FaceParser(weights, device=device, parse_size=parse_size)
