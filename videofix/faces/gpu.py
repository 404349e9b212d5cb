"""Torch versions of :func:`warp_face` and :func:`paste_face` for frames already on a device.

Same conventions as the OpenCV path (pixel centres at integer coordinates, bilinear, constant
border mixed into edge samples as OpenCV does, the official mask rule with OpenCV's erosion
anchor and Gaussian kernels), written with ``grid_sample`` / pooling / convolutions so a CUDA
frame never leaves the GPU. OpenCV interpolates in fixed point (5-bit weights), torch in
float, so results agree to about one grey level, not bit for bit (see tests/test_faces_gpu.py).

Images are **RGB**, CHW, float (0..255) or uint8 tensors; affines are (2, 3) numpy arrays
or tensors (frame -> crop, as :func:`estimate_alignment` returns).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .alignment import BORDER_VALUE_RGB, invert_affine, paste_affine, shift_affine
from .masks import region_for_paste


def _grid(affine_dst_to_src: np.ndarray, out_hw: tuple[int, int], src_hw: tuple[int, int], device) -> torch.Tensor:
    """grid_sample grid (1, h, w, 2) for a dst->src pixel affine (align_corners=True)."""
    h, w = out_hw
    sh, sw = src_hw
    a = torch.as_tensor(np.asarray(affine_dst_to_src, np.float64), device=device)
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float64),
                            torch.arange(w, device=device, dtype=torch.float64), indexing="ij")
    sx = a[0, 0] * xs + a[0, 1] * ys + a[0, 2]
    sy = a[1, 0] * xs + a[1, 1] * ys + a[1, 2]
    gx = 2 * sx / max(sw - 1, 1) - 1
    gy = 2 * sy / max(sh - 1, 1) - 1
    return torch.stack([gx, gy], dim=-1).float().unsqueeze(0)


def _sample(src: torch.Tensor, grid: torch.Tensor, border=None) -> torch.Tensor:
    """Bilinear sample (C,H,W) float -> (C,h,w); outside = `border` per channel (or 0)."""
    x = src.float().unsqueeze(0)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
    if border is not None:
        ones = torch.ones((1, 1) + tuple(src.shape[1:]), device=src.device)
        cover = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0]
        b = torch.as_tensor(border, dtype=out.dtype, device=out.device).view(-1, 1, 1)
        out = out + (1 - cover) * b
    return out


def warp_face_torch(frame: torch.Tensor, affine, size: int = 512, border_value=BORDER_VALUE_RGB) -> torch.Tensor:
    """Aligned crop of a (3, H, W) RGB tensor: float32 (3, size, size) in 0..255 (not rounded)."""
    if frame.ndim != 3 or frame.shape[0] != 3:
        raise ValueError("warp_face_torch: frame must be a (3, H, W) RGB tensor")
    inv = invert_affine(np.asarray(affine, np.float64))
    grid = _grid(inv, (size, size), tuple(frame.shape[1:]), frame.device)
    return _sample(frame, grid, border_value)


def _erode(x: torch.Tensor, k: int) -> torch.Tensor:
    """cv2.erode with ones((k, k)) on (h, w): anchor k // 2, outside = +inf; k = 0 -> 3x3."""
    if k == 0:
        k = 3
    if k == 1:
        return x
    a = k // 2
    big = float(x.max().item()) + 1.0 if x.numel() else 1.0
    p = F.pad(x[None, None], (a, k - 1 - a, a, k - 1 - a), value=big)
    return -F.max_pool2d(-p, kernel_size=k, stride=1)[0, 0]


def _gaussian_blur(x: torch.Tensor, ksize: int) -> torch.Tensor:
    """cv2.GaussianBlur(x, (ksize, ksize), 0) on (h, w), reflect-101 border."""
    if ksize <= 1:
        return x
    k = torch.as_tensor(cv2.getGaussianKernel(ksize, 0).ravel(), dtype=torch.float32, device=x.device)
    r = ksize // 2
    y = F.pad(x[None, None], (r, r, 0, 0), mode="reflect")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    y = F.pad(y, (0, 0, r, r), mode="reflect")
    return F.conv2d(y, k.view(1, 1, -1, 1))[0, 0]


def paste_face_torch(frame: torch.Tensor, restored_crop: torch.Tensor, affine, *, upscale: int = 1,
                     parse_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Blend a restored face into a frame on its device; returns a new tensor.

    frame: (3, H, W) RGB, uint8 or float 0..255 (the upscaled frame when upscale > 1).
    restored_crop: (3, S, S) RGB, uint8 or float 0..255. affine: (2, 3) frame -> crop at the
    original size. parse_mask: optional (S, S) float 0..1 crop-space mask (official rule: min
    with the square mask). Output has the frame's dtype (uint8 results are rounded); pixels
    whose mask is 0 are copied unchanged.
    """
    h, w = frame.shape[1:]
    size = int(restored_crop.shape[-1])
    inv = paste_affine(np.asarray(affine, np.float64), upscale)
    box = region_for_paste(inv, size, (h, w))
    out = frame.clone()
    if box is None:
        return out
    x0, y0, x1, y1 = box
    local = shift_affine(inv, x0, y0)
    grid = _grid(invert_affine(local), (y1 - y0, x1 - x0), (size, size), frame.device)
    warped = _sample(restored_crop, grid)
    ones = torch.ones((1, size, size), device=frame.device)
    inv_mask = _sample(ones, grid)[0]
    eroded = _erode(inv_mask, int(2 * upscale))
    w_edge = int(float(eroded.double().sum().item()) ** 0.5) // 20
    center = _erode(eroded, 2 * w_edge)
    soft = _gaussian_blur(center, 2 * w_edge + 1)
    if parse_mask is not None:
        pm = _sample(parse_mask.float()[None], grid)[0]
        soft = torch.minimum(soft, pm)
    soft = soft.clamp(0, 1)
    face = eroded[None] * warped
    bg = frame[:, y0:y1, x0:x1].float()
    blended = soft[None] * face + (1 - soft[None]) * bg
    if frame.dtype == torch.uint8:
        blended = blended.round().clamp(0, 255).to(torch.uint8)
    else:
        blended = blended.to(frame.dtype)
    touched = (soft > 0)[None].expand_as(blended)
    region = out[:, y0:y1, x0:x1]
    region[touched] = blended[touched]
    return out
