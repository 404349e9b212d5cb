"""What of a restored face is pasted: blend, parts kept from the source, occlusions.

All masks here are **crop space**: float32 (S, S) in 0..1 over the aligned crop (the 512
template), the space of the official parse mask. ``paste_limit`` gives the most of the
restored face each crop pixel may take; paste-back takes the per-pixel minimum of it and the
official square soft mask (as it does with the official parse mask), then multiplies by
``blend``.

* **blend** b in 0..1: output = b * pasted + (1 - b) * source inside the paste mask (the
  mask is multiplied by b); 1 = the official paste, 0 = the source unchanged.
* **keep_regions** (mouth, eyes, brows, nose): these parts stay the source's, e.g. the mouth
  of dubbed or lip-synced material. With the face-parsing network (ParseNet,
  ``parsing_parsenet.pth`` present), the parts are its classes on the **source** crop
  (mouth = inner mouth 11 + upper lip 12 + lower lip 13; eyes = 4, 5; brows = 2, 3; nose =
  10), grown by S/48 and feathered (Gaussian, sigma S/64). Without it, they are polygons
  around dlib's 68 landmarks predicted on the source crop (mouth = outer lip contour 48-59,
  eyes 36-41 / 42-47, brows 17-21 / 22-26, nose 27-35), grown by S/24 (S/12 below and above
  the mouth, which opens) and feathered the same way; without dlib, ellipses at the 5-point
  template positions.
* **occlusion** (default on): a hand, microphone, hair or glass in front of the face stays
  the source's. With ParseNet, the **source** crop is parsed too and its non-face pixels
  (background 0, neck 14, cloth 16, hair 17, hat 18: whatever is not face, as the official
  mask rule says) get the official parse-mask treatment (blurred twice, border zeroed); the
  paste takes the minimum with the official mask of the restored crop (the official mask
  alone misses occluders, because the network paints a face over them and the official mask
  parses the *restored* crop). Without ParseNet nothing is detected as an occluder: the whole
  square soft mask is pasted, as the official script does without its parser.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from videofix.settings import check_value, option_of, parse_keep_regions

from .alignment import FACE_TEMPLATE_512
from .masks import parse_map_to_mask

PARSE_REGION_CLASSES = {"mouth": (11, 12, 13), "eyes": (4, 5), "brows": (2, 3), "nose": (10,)}
LANDMARK68_REGIONS = {"mouth": (range(48, 60),), "eyes": (range(36, 42), range(42, 48)),
                      "brows": (range(17, 22), range(22, 27)), "nose": (range(27, 36),)}
# Where dlib's HOG box falls on the 512 template (measured on the aligned faces of the
# astronaut and insightface's t1.jpg: about (95..136, 130..194, 394..405, 439..474)).
TEMPLATE_FACE_RECT_512 = (104, 140, 408, 444)


@dataclass(frozen=True)
class PasteOptions:
    """How much of each restored face is pasted (see the module docstring).

    blend: float in 0..1. keep_regions: names from `KEEP_REGIONS`. occlusion: parse the
    source crop too (only when a face parser is loaded).
    """

    blend: float = 1.0
    keep_regions: tuple[str, ...] = ()
    occlusion: bool = True
    face_path: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_regions", tuple(parse_keep_regions(self.keep_regions)))
        object.__setattr__(self, "blend", check_value("blend", option_of("blend"), self.blend))
        object.__setattr__(self, "face_path", check_value("face_path", option_of("face_path"), self.face_path))

    def face_device(self, restorer_device) -> "str | None":
        """The torch device the face work runs on (`videofix.faces.gpu`), or None for the
        numpy/OpenCV path: auto = the restorer's device when it is CUDA (on the CPU numpy/OpenCV
        is the faster, bench/results/feed-rate-2026-12-04.md), torch = the restorer's device."""
        import torch

        device = torch.device(restorer_device if restorer_device is not None else "cpu")
        if self.face_path == "numpy" or (self.face_path == "auto" and device.type != "cuda"):
            return None
        return str(device)


def _feather(binary: np.ndarray, size: int, grow: int) -> np.ndarray:
    """uint8/bool (S, S) region -> float32 (S, S) 0..1, dilated by `grow` px and feathered."""
    m = (np.asarray(binary) > 0).astype(np.uint8)
    if grow > 0:
        m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    sigma = max(size / 64.0, 1.0)
    return np.clip(cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma), 0.0, 1.0)


def parse_regions(classes: np.ndarray, regions, size: int) -> np.ndarray:
    """Keep mask float32 (S, S) 0..1 of `regions` from a ParseNet class map (512, 512)."""
    wanted = [c for r in regions for c in PARSE_REGION_CLASSES[r]]
    m = np.isin(np.asarray(classes), wanted).astype(np.uint8)
    if m.shape[0] != size:
        m = cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST)
    return _feather(m, size, max(1, size // 48))


class LandmarkRegions:
    """Keep masks from dlib's 68 landmarks predicted on the aligned source crop."""

    def __init__(self):
        import dlib

        from .dlib_backend import landmark_model_path

        self._dlib = dlib
        self.predictor = dlib.shape_predictor(landmark_model_path())

    def points(self, crop: np.ndarray) -> np.ndarray:
        """(68, 2) float32 landmarks of an aligned uint8 (S, S, 3) RGB crop."""
        s = crop.shape[0] / 512.0
        x0, y0, x1, y1 = (int(round(v * s)) for v in TEMPLATE_FACE_RECT_512)
        shape = self.predictor(np.ascontiguousarray(crop), self._dlib.rectangle(x0, y0, x1, y1))
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)

    def mask(self, crop: np.ndarray, regions) -> np.ndarray:
        size = crop.shape[0]
        pts = self.points(crop)
        m = np.zeros((size, size), np.uint8)
        for r in regions:
            for idx in LANDMARK68_REGIONS[r]:
                hull = cv2.convexHull(np.round(pts[list(idx)]).astype(np.int32))
                if r == "mouth":  # the mouth opens and closes: grow it more vertically
                    c = hull.reshape(-1, 2).astype(np.float32).mean(0)
                    hull = np.round((hull.reshape(-1, 2) - c) * np.array([1.15, 1.6]) + c).astype(np.int32)
                cv2.fillConvexPoly(m, hull, 1)
        return _feather(m, size, max(1, size // 24))


def template_regions(regions, size: int) -> np.ndarray:
    """Keep mask from ellipses at the 5-point template positions (no landmark model)."""
    t = FACE_TEMPLATE_512 * (size / 512.0)
    eye_d = float(np.linalg.norm(t[1] - t[0]))
    m = np.zeros((size, size), np.uint8)

    def ellipse(c, ax, ay):
        cv2.ellipse(m, (int(round(c[0])), int(round(c[1]))), (max(1, int(ax)), max(1, int(ay))), 0, 0, 360, 1, -1)

    for r in regions:
        if r == "mouth":
            c = (t[3] + t[4]) / 2 + np.array([0, 0.08 * eye_d])
            ellipse(c, 0.6 * np.linalg.norm(t[4] - t[3]), 0.4 * eye_d)
        elif r == "eyes":
            for e in (t[0], t[1]):
                ellipse(e, 0.3 * eye_d, 0.17 * eye_d)
        elif r == "brows":
            for e in (t[0], t[1]):
                ellipse(e - np.array([0, 0.3 * eye_d]), 0.35 * eye_d, 0.12 * eye_d)
        elif r == "nose":
            top = (t[0] + t[1]) / 2
            ellipse((top + t[2]) / 2, 0.2 * eye_d, 0.5 * np.linalg.norm(t[2] - top) + 0.1 * eye_d)
    return _feather(m, size, max(1, size // 24))


_LANDMARKS: list = []


def _landmark_regions():
    """The shared dlib predictor (loaded once), or None without dlib."""
    if not _LANDMARKS:
        try:
            _LANDMARKS.append(LandmarkRegions())
        except Exception:  # noqa: BLE001 - dlib or its model missing: template ellipses
            _LANDMARKS.append(None)
    return _LANDMARKS[0]


def paste_limit(options: PasteOptions, size: int, *, parser=None, restored: np.ndarray | None = None,
                source: np.ndarray | None = None) -> np.ndarray | None:
    """The crop-space limit of a face's paste mask: float32 (S, S) in 0..1, or None (none).

    restored / source: uint8 (S, S, 3) **RGB** aligned crops (the network's output and its
    input). parser: a `FaceParser` or None. With a parser and no other option this is the
    official parse mask of the restored crop.
    """
    limits = []
    if parser is not None and restored is not None:
        limits.append(parser.mask(restored))
    classes = None
    if parser is not None and source is not None and (options.occlusion or options.keep_regions):
        classes = parser.parse(source)
        if options.occlusion:
            limits.append(parse_map_to_mask(classes))
    if options.keep_regions:
        if classes is not None:
            keep = parse_regions(classes, options.keep_regions, size)
        elif source is not None and _landmark_regions() is not None:
            keep = _landmark_regions().mask(source, options.keep_regions)
        else:
            keep = template_regions(options.keep_regions, size)
        limits.append(1.0 - keep)
    if not limits:
        return None
    out = limits[0]
    for m in limits[1:]:
        if m.shape != out.shape:
            m = cv2.resize(m, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_LINEAR)
        out = np.minimum(out, m)
    return out.astype(np.float32)


def paste_limit_torch(options: PasteOptions, size: int, device, *, parser=None, restored=None, source=None):
    """`paste_limit` for the torch face path: float32 (S, S) 0..1 on `device`, or None.

    restored / source: uint8 (3, S, S) RGB tensors (or (S, S, 3) arrays). The parse masks
    (class maps on the parser's device, their blurs) are computed in torch; kept regions
    from landmarks or the template are drawn on the host and sent over."""
    import torch

    from videofix.faces.gpu import parse_map_to_mask_torch

    def crops(x):
        if isinstance(x, torch.Tensor):
            return x[None]
        return [x]

    limits = []
    if parser is not None and restored is not None:
        limits.append(parse_map_to_mask_torch(parser.parse_tensor(crops(restored))[0]).to(device))
    classes = None
    if parser is not None and source is not None and (options.occlusion or options.keep_regions):
        classes = parser.parse_tensor(crops(source))[0]
        if options.occlusion:
            limits.append(parse_map_to_mask_torch(classes).to(device))
    if options.keep_regions:
        if classes is not None:
            keep = parse_regions(classes.cpu().numpy(), options.keep_regions, size)
        else:
            src = source.permute(1, 2, 0).cpu().numpy() if isinstance(source, torch.Tensor) else source
            if src is not None and _landmark_regions() is not None:
                keep = _landmark_regions().mask(np.ascontiguousarray(src), options.keep_regions)
            else:
                keep = template_regions(options.keep_regions, size)
        limits.append(1.0 - torch.from_numpy(keep).to(device))
    if not limits:
        return None
    out = limits[0]
    for m in limits[1:]:
        if m.shape != out.shape:
            m = torch.nn.functional.interpolate(m[None, None], size=tuple(out.shape), mode="bilinear",
                                                align_corners=False)[0, 0]
        out = torch.minimum(out, m)
    return out.float()
