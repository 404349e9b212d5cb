"""Paste restored faces back into frames (RGB arrays or native-format Pictures).

Follows the official rule (see :mod:`videofix.faces.masks`), computed only in the region
a face can touch. Every pixel whose blend weight is 0 is left exactly as it was: RGB arrays
are only written where the mask is positive, and Pictures blend through
``Picture.blend_rgb``, which keeps mask-0 samples bit-identical in the native format.

One deliberate difference from the official script: the blended RGB result is rounded to
the nearest integer, where the official code truncates (``astype(np.uint8)``), which darkens
every blended pixel by half a level on average.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .alignment import paste_affine, shift_affine
from .masks import RegionMask, region_for_paste, square_mask, warp_parse_mask


def upscale_frame(rgb: np.ndarray, upscale: int) -> np.ndarray:
    """The official background for ``upscale`` > 1: bilinear resize by an integer factor.
    uint8 HxWx3 RGB in, uint8 (H*up)x(W*up)x3 RGB out."""
    if upscale == 1:
        return rgb.copy()
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (w * upscale, h * upscale), interpolation=cv2.INTER_LINEAR)


def _is_picture(target) -> bool:
    return hasattr(target, "blend_rgb") and hasattr(target, "align_box")


def face_layer(restored_crop: np.ndarray, affine: np.ndarray, frame_hw: tuple[int, int], *, upscale: int = 1,
               parse_mask: np.ndarray | None = None, align_box=None, blend: float = 1.0):
    """What a paste writes: (box, face float32 (h,w,3) RGB 0..255, mask float32 (h,w) 0..1).

    restored_crop: uint8 (S, S, 3) RGB. affine: (2, 3) frame -> crop at the frame's original
    size (from :func:`estimate_alignment`). frame_hw: (H, W) of the output frame (upscale times
    the original). parse_mask: optional float32 (S, S) crop-space mask from
    :class:`~videofix.faces.masks.FaceParser`. align_box: optional callable that grows the
    region box (``Picture.align_box``). blend: the mask is multiplied by it (0..1: the restored
    face mixed with the source, see `videofix.faces.regions`). Returns None when the face
    misses the frame.
    """
    crop = np.asarray(restored_crop)
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] != crop.shape[1]:
        raise ValueError("paste_face: restored_crop must be a square HxWx3 RGB image")
    size = int(crop.shape[0])
    inv = paste_affine(affine, upscale)
    box = region_for_paste(inv, size, frame_hw)
    if box is None:
        return None
    if align_box is not None:
        box = tuple(int(v) for v in align_box(box))
        if box[2] <= box[0] or box[3] <= box[1]:
            return None
    region: RegionMask = square_mask(inv, size, frame_hw, upscale=upscale, box=box)
    x0, y0, x1, y1 = box
    local = shift_affine(inv, x0, y0)
    warped = cv2.warpAffine(crop, local, (x1 - x0, y1 - y0))  # bilinear, border 0, as official
    face = region.eroded[:, :, None] * warped.astype(np.float32)
    mask = region.soft
    if parse_mask is not None:
        pm = warp_parse_mask(parse_mask, region, inv, size)
        mask = np.minimum(mask, pm)
    if blend != 1.0:
        mask = mask * np.float32(blend)
    return box, face, np.clip(mask, 0.0, 1.0).astype(np.float32)


def paste_face(target, restored_crop: np.ndarray, affine: np.ndarray, *, upscale: int = 1,
               parse_mask: np.ndarray | None = None, inplace: bool = False, blend: float = 1.0):
    """Blend one restored face into a frame.

    target: uint8 HxWx3 **RGB** array, or a ``videofix.io.Picture`` (native pixel format,
        blended in place through ``Picture.blend_rgb``). For ``upscale`` > 1 the target is the
        frame already upscaled (e.g. :func:`upscale_frame`) and `affine` is still the one
        estimated on the original frame, as in the official pipeline.
    restored_crop: uint8 (S, S, 3) RGB. affine: (2, 3) frame -> crop. parse_mask: crop-space
    float32 (S, S) limit of the mask (the official parse mask, or `videofix.faces.regions.
    paste_limit`). blend: 0..1, the mask is multiplied by it.
    Returns the target (a new array unless `inplace`; the same Picture).
    """
    if _is_picture(target):
        hw = (int(target.height), int(target.width))
        layer = face_layer(restored_crop, affine, hw, upscale=upscale, parse_mask=parse_mask,
                           align_box=target.align_box, blend=blend)
        if layer is not None:
            box, face, mask = layer
            target.blend_rgb(np.clip(face / 255.0, 0.0, 1.0).astype(np.float32), mask, box)
        return target
    if not isinstance(target, np.ndarray) or target.dtype != np.uint8 or target.ndim != 3 or target.shape[2] != 3:
        raise ValueError("paste_face: target must be uint8 HxWx3 RGB or a Picture")
    out = target if inplace else target.copy()
    layer = face_layer(restored_crop, affine, out.shape[:2], upscale=upscale, parse_mask=parse_mask, blend=blend)
    if layer is None:
        return out
    (x0, y0, x1, y1), face, mask = layer
    bg = out[y0:y1, x0:x1]
    m = mask[:, :, None]
    blended = np.clip(np.rint(m * face + (1.0 - m) * bg.astype(np.float32)), 0, 255).astype(np.uint8)
    touched = mask > 0
    bg[touched] = blended[touched]
    return out


def paste_faces(target, restored_crops: Sequence[np.ndarray], affines: Sequence[np.ndarray], *, upscale: int = 1,
                parse_masks: Sequence[np.ndarray | None] | None = None, inplace: bool = False):
    """Paste several faces one after the other (later faces over earlier ones where they
    overlap, as the official loop does). Same conventions as :func:`paste_face`."""
    if len(restored_crops) != len(affines):
        raise ValueError("paste_faces: as many crops as affines are needed")
    out = target if (inplace or _is_picture(target)) else target.copy()
    for i, (crop, affine) in enumerate(zip(restored_crops, affines)):
        pm = parse_masks[i] if parse_masks is not None else None
        out = paste_face(out, crop, affine, upscale=upscale, parse_mask=pm, inplace=True)
    return out
