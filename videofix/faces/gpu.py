"""The torch face path: alignment warp, paste masks, parsing-mask blurs, grain and the face
regions' colour conversion in torch, on the restorer's device (CUDA) or on the CPU.

`FaceRestorationPass` uses it when the restorer runs on CUDA (`face_path` auto; `torch` forces
it, `numpy` keeps numpy/OpenCV): a frame's face regions go to the device once (`FaceRegions`:
one box of every plane holding each face's alignment source, paste region and grain ring), the
crops are cut there with one batched grid (one copy back), the faces that do not read each
other's regions are blended there together, in one set of kernels (`face_layers_torch`,
`FaceRegions.blend_rgb_many`), in the picture's own pixel format, and the box comes back once.
Host data goes up through pinned memory without a sync (`_upload`); copies back share one
sync (`_download`). On the CPU numpy/OpenCV is faster and stays the default
(bench/results/feed-rate-2026-12-04.md).

Same conventions as the OpenCV path (pixel centres at integer coordinates, bilinear, constant
border mixed into edge samples as OpenCV does, the official mask rule with OpenCV's erosion
anchor and Gaussian kernels), written with ``grid_sample`` / pooling / convolutions so a CUDA
frame never leaves the GPU. OpenCV interpolates in fixed point (5-bit weights), torch in
float, so results agree to about one grey level, not bit for bit (tolerances:
tests/test_faces_gpu.py, tests/test_face_path.py); samples no mask touches are never written.

Images are **RGB**, CHW, float (0..255) or uint8 tensors unless stated; affines are (2, 3)
numpy arrays or tensors (frame -> crop, as :func:`estimate_alignment` returns).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .alignment import BORDER_VALUE_RGB, affine_region, invert_affine, paste_affine, shift_affine
from .masks import region_for_paste


_CONSTANTS: dict = {}  # small constant tensors, per (name, device): uploaded once, not once per face


def _constant(name, device, make) -> torch.Tensor:
    """A cached constant tensor on `device` (`make()` builds it on the host the first time).
    On CUDA each upload of host data is a blocking copy from pageable memory, which waits
    for the work queued before it: a hidden sync per face, which the cache removes."""
    key = (name, str(device))
    t = _CONSTANTS.get(key)
    if t is None:
        t = _CONSTANTS[key] = make().to(device)
    return t


def _grid(affine_dst_to_src: np.ndarray, out_hw: tuple[int, int], src_hw: tuple[int, int], device) -> torch.Tensor:
    """grid_sample grid (1, h, w, 2) for a dst->src pixel affine (align_corners=True)."""
    return _affine_grids([affine_dst_to_src], out_hw, src_hw, device)[0]


def _affine_grids(affines_dst_to_src, out_hw: tuple[int, int], src_hw: tuple[int, int], device, sizes=None):
    """grid_sample grids (n, h, w, 2) for n dst->src pixel affines (align_corners=True), in
    one set of kernels whatever n and the size, and their validity: None, or with `sizes`
    ((h_k, w_k) each, within out_hw) bool (n, h, w), True in grid k's top-left h_k x w_k,
    where the grid reads its affine (beyond it: a point far outside the source, so zeros).

    grid_sample's coordinate g = 2 s / (n - 1) - 1 of the source pixel s = a0 x + a1 y + a2
    is affine in x and y: its coefficients (float64, computed on the host) go up in one
    upload with the sizes, and every grid is one float64 product of the pixel coordinates
    (x, y, 1) with them."""
    h, w = out_hw
    sh, sw = src_hw
    cx, cy = 2.0 / max(sw - 1, 1), 2.0 / max(sh - 1, 1)
    n = len(affines_dst_to_src)
    coef = np.empty((n, 4, 2), np.float64)  # rows x, y, 1 of each grid's (x, y, 1) -> g map, then (w_k, h_k)
    for k, a in enumerate(affines_dst_to_src):
        (a00, a01, a02), (a10, a11, a12) = np.asarray(a, np.float64).tolist()
        coef[k, :3] = ((cx * a00, cy * a10), (cx * a01, cy * a11), (cx * a02 - 1.0, cy * a12 - 1.0))
        coef[k, 3] = (sizes[k][1], sizes[k][0]) if sizes is not None else (w, h)
    c = _upload(coef, device)
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64, device=c.device),
                            torch.arange(w, dtype=torch.float64, device=c.device), indexing="ij")
    points = torch.stack([xx, yy, torch.ones_like(xx)], dim=-1)  # (h, w, 3)
    grid = torch.matmul(points.view(1, h * w, 3), c[:, :3]).view(n, h, w, 2)
    if sizes is None:
        return grid.float(), None
    valid = (points[..., :2] < c[:, None, 3:4]).all(dim=-1)  # x < w_k and y < h_k
    return torch.where(valid[..., None], grid, 3.0).float(), valid


def _sample(src: torch.Tensor, grid: torch.Tensor, border=None) -> torch.Tensor:
    """Bilinear sample (C,H,W) float -> (C,h,w) with a grid (1, h, w, 2), or (n,C,H,W) ->
    (n,C,h,w) with grids (n, h, w, 2); outside = `border` per channel (or 0)."""
    single = src.ndim == 3
    x = src.float().unsqueeze(0) if single else src.float()
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    out = out[0] if single else out
    if border is not None:
        ones = torch.ones((1, 1) + tuple(src.shape[-2:]), device=src.device).expand(grid.shape[0], -1, -1, -1)
        cover = F.grid_sample(ones, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        cover = cover[0] if single else cover
        values = tuple(float(v) for v in np.ravel(border))
        b = _constant(("border", values, out.dtype), out.device,
                      lambda: torch.tensor(values, dtype=out.dtype)).view(-1, 1, 1)
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
    """cv2.erode with ones((k, k)) on (h, w) (or each (h, w) of (n, h, w)): anchor k // 2,
    outside = +inf; k = 0 -> 3x3."""
    if k == 0:
        k = 3
    if k == 1:
        return x
    a = k // 2
    p = F.pad(-x.reshape((-1, 1) + tuple(x.shape[-2:])), (a, k - 1 - a, a, k - 1 - a),
              value=float("-inf"))  # outside = +inf, no host sync
    # a rectangle's erosion is separable: rows, then columns (k + k compares a pixel, not k * k)
    return -F.max_pool2d(F.max_pool2d(p, kernel_size=(1, k), stride=1), kernel_size=(k, 1), stride=1).view(x.shape)


def _gaussian_blur(x: torch.Tensor, ksize: int) -> torch.Tensor:
    """cv2.GaussianBlur(x, (ksize, ksize), 0) on (h, w), reflect-101 border."""
    if ksize <= 1:
        return x
    k = _constant(("gaussian", ksize), x.device,
                  lambda: torch.as_tensor(cv2.getGaussianKernel(ksize, 0).ravel(), dtype=torch.float32))
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


# ----------------------------------------------------------------------------- a frame's face regions
# The pipeline's torch face path (`FaceRestorationPass` when the restorer runs on CUDA, or
# `face_path="torch"`): the samples of a frame's face regions go to the device once, in their
# native pixel format (one box holding every face's alignment source, paste region and grain
# ring); alignment, masks, parsing-mask blurs, grain and the colour conversion run there, and
# the box comes back once. Samples no mask touches are never written, so they come back as
# they went (codes are whole numbers, exact in float32).


def _box_union(boxes) -> tuple[int, int, int, int] | None:
    boxes = [b for b in boxes if b is not None and b[2] > b[0] and b[3] > b[1]]
    if not boxes:
        return None
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


class FaceRegions:
    """The samples of one `Picture` inside `box`, on a torch device, as float32 codes.

    Mirrors `Picture.to_rgb` / `rgb_to_luma` / `blend_rgb` (same formulas, torch instead of
    numpy) on the region only; `write_back()` copies the region into the picture's planes.
    All boxes are (x0, y0, x1, y1) in the picture's luma pixels (absolute, x1/y1 exclusive).
    Images are **RGB**, CHW float32 in 0..1 unless stated.
    """

    def __init__(self, picture, box, device):
        self.picture = picture
        self.device = torch.device(device)
        self.box = tuple(int(v) for v in picture.align_box(box))
        lay = picture.layout
        self.kind = lay.kind
        self.top = float(lay.max_code)
        self.sx, self.sy = (lay.log2_chroma_w, lay.log2_chroma_h) if lay.kind == "yuv" else (0, 0)
        x0, y0, x1, y1 = self.box
        self.planes = [_upload_codes(p, self.device) for p in self._host_regions()]
        if self.kind in ("rgb", "bgr"):
            self.planes = [self.planes[0].permute(2, 0, 1).contiguous()]  # (3, h, w) in its byte order
        self._source_rgb = None

    # the planes' sub-arrays of the box (views into the picture)
    def _host_regions(self) -> list[np.ndarray]:
        x0, y0, x1, y1 = self.box
        p = self.picture.planes
        if self.kind != "yuv":
            return [q[y0:y1, x0:x1] for q in p]
        cy0, cx0 = y0 >> self.sy, x0 >> self.sx
        cy1, cx1 = -((-y1) >> self.sy), -((-x1) >> self.sx)
        return [p[0][y0:y1, x0:x1], p[1][cy0:cy1, cx0:cx1], p[2][cy0:cy1, cx0:cx1]]

    def holds(self, box) -> bool:
        """Whether `box` lies inside the region held."""
        bx0, by0, bx1, by1 = self.box
        return box[0] >= bx0 and box[1] >= by0 and box[2] <= bx1 and box[3] <= by1

    def _local(self, box) -> tuple[int, int, int, int]:
        bx0, by0, bx1, by1 = self.box
        x0, y0, x1, y1 = (int(v) for v in box)
        if x0 < bx0 or y0 < by0 or x1 > bx1 or y1 > by1:
            raise ValueError(f"FaceRegions: box {box} is outside the region held {self.box}")
        return x0 - bx0, y0 - by0, x1 - bx0, y1 - by0

    def to_rgb(self, box=None) -> torch.Tensor:
        """`Picture.to_rgb` of `box` (default: the whole region): float32 (3, h, w) RGB 0..1."""
        x0, y0, x1, y1 = self._local(box or self.box)
        pic = self.picture
        if self.kind in ("rgb", "bgr"):
            c = self.planes[0][:, y0:y1, x0:x1]
            if self.kind == "bgr":
                c = c.flip(0)
            return c * np.float32(1.0 / 255.0)
        if self.kind == "gbr":
            g, b, r = (q[y0:y1, x0:x1] for q in self.planes)
            return torch.stack([r, g, b]) * np.float32(1.0 / self.top)
        if self.kind == "gray":
            yo, ys, _, _ = pic._yuv_scale()
            y = (self.planes[0][y0:y1, x0:x1] - np.float32(yo)) * np.float32(1.0 / ys)
            return y.clamp(0.0, 1.0).expand(3, -1, -1).clone()
        return self.codes_to_rgb(self.planes[0][y0:y1, x0:x1], self._chroma(1, x0, y0, x1, y1),
                                 self._chroma(2, x0, y0, x1, y1))

    def codes_to_rgb(self, y: torch.Tensor, cb: torch.Tensor, cr: torch.Tensor) -> torch.Tensor:
        """YUV codes (float32 (..., h, w) each, chroma at luma size) -> float32 (3, ..., h,
        w) RGB 0..1 with the picture's matrix and range (`to_rgb`'s formula)."""
        pic = self.picture
        yo, ys, co, cs = pic._yuv_scale()
        y = (y - np.float32(yo)) * np.float32(1.0 / ys)
        cb = (cb - np.float32(co)) * np.float32(1.0 / cs)
        cr = (cr - np.float32(co)) * np.float32(1.0 / cs)
        kr, kg, kb = pic._coeffs()
        r = y + np.float32(2.0 * (1.0 - kr)) * cr
        b = y + np.float32(2.0 * (1.0 - kb)) * cb
        g = y - np.float32(2.0 * kr * (1.0 - kr) / kg) * cr - np.float32(2.0 * kb * (1.0 - kb) / kg) * cb
        return torch.stack([r, g, b]).clamp(0.0, 1.0)

    def _chroma(self, index: int, x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
        """Chroma plane upsampled by repetition over local luma box (x0, y0, x1, y1)."""
        # the region starts on the chroma grid, so local luma x maps to local chroma x >> sx
        cy0, cx0 = y0 >> self.sy, x0 >> self.sx
        cy1, cx1 = ((y1 - 1) >> self.sy) + 1, ((x1 - 1) >> self.sx) + 1
        c = self.planes[index][cy0:cy1, cx0:cx1]
        if self.sy:
            c = c.repeat_interleave(1 << self.sy, dim=0)
        if self.sx:
            c = c.repeat_interleave(1 << self.sx, dim=1)
        oy, ox = y0 - (cy0 << self.sy), x0 - (cx0 << self.sx)
        return c[oy:oy + (y1 - y0), ox:ox + (x1 - x0)]

    def rgb_to_luma(self, rgb: torch.Tensor) -> torch.Tensor:
        """`Picture.rgb_to_luma` of (3, h, w) RGB 0..1: float32 (h, w) luma codes."""
        yuv = self.kind in ("yuv", "gray")
        kr, kg, kb = self.picture._coeffs() if yuv else (0.299, 0.587, 0.114)
        y = np.float32(kr) * rgb[0] + np.float32(kg) * rgb[1] + np.float32(kb) * rgb[2]
        if yuv:
            yo, ys, _, _ = self.picture._yuv_scale()
            return y * np.float32(ys) + np.float32(yo)
        return y * np.float32(self.top)

    def luma(self, box) -> torch.Tensor:
        """float32 (h, w) luma codes of `box` (the Y plane itself for YUV and gray)."""
        if self.kind in ("yuv", "gray"):
            x0, y0, x1, y1 = self._local(box)
            return self.planes[0][y0:y1, x0:x1]
        return self.rgb_to_luma(self.to_rgb(box))

    def source_rgb_codes(self) -> torch.Tensor:
        """The region as RGB 0..255 whole numbers (3, h, w) float32, as decoded (before any
        paste): what `warp_face` reads from a Picture (`to_rgb`, rounded to uint8)."""
        if self._source_rgb is None:
            self._source_rgb = (self.to_rgb() * 255.0).round_().clamp_(0, 255)
        return self._source_rgb

    def warp(self, affines, size: int = 512, border_value=BORDER_VALUE_RGB) -> torch.Tensor:
        """Aligned crops of the region's faces: uint8 (N, 3, size, size) RGB on the device.

        affines: (2, 3) frame -> crop each (absolute picture coordinates); the region must
        hold every source pixel a crop reads (see `warp_box`)."""
        src = self.source_rgb_codes()
        x0, y0 = self.box[:2]
        inverses = []
        for a in affines:
            a = np.asarray(a, np.float64)
            local = a.copy()
            local[:, 2] += a[:, :2] @ np.array([x0, y0], np.float64)
            inverses.append(invert_affine(local))
        grid, _ = _affine_grids(inverses, (size, size), tuple(src.shape[1:]), self.device)  # every crop's at once
        crops = _sample(src.expand(len(inverses), -1, -1, -1), grid, border_value)
        return crops.round_().clamp_(0, 255).to(torch.uint8)

    def blend_rgb(self, rgb: torch.Tensor, mask: torch.Tensor, box, luma_only: bool = False) -> None:
        """`Picture.blend_rgb` on the region, in place: rgb float32 (3, h, w) RGB 0..1 and
        mask float32 (h, w) 0..1 cover `box` (aligned, inside the region). Samples whose
        weight is 0 keep their exact value."""
        box = tuple(int(v) for v in box)
        if box != self.picture.align_box(box):
            raise ValueError(f"blend_rgb: box {box} is not aligned")
        x0, y0, x1, y1 = self._local(box)
        h, w = y1 - y0, x1 - x0
        if tuple(rgb.shape) != (3, h, w) or tuple(mask.shape) != (h, w):
            raise ValueError(f"blend_rgb: rgb {tuple(rgb.shape)} / mask {tuple(mask.shape)} must be (3, {h}, {w}) / "
                             f"({h}, {w})")
        if h == 0 or w == 0:
            return
        if luma_only and self.kind in ("rgb", "bgr", "gbr"):
            old_rgb = self.to_rgb(box)
            delta = self.rgb_to_luma(rgb) - self.rgb_to_luma(old_rgb)
            rgb = (old_rgb + (delta / np.float32(self.top))[None]).clamp(0.0, 1.0)
        m = mask.float().clamp(0.0, 1.0)
        touched = m > 0
        top = self.top

        def blend_plane(plane, new_codes, weight, sel, ys, xs):
            old = plane[ys, xs]
            val = (old + weight * (new_codes - old)).round_().clamp_(0.0, top)
            plane[ys, xs] = torch.where(sel, val, old)

        ry, rx = slice(y0, y1), slice(x0, x1)
        if self.kind in ("rgb", "bgr"):
            codes = rgb * np.float32(top)
            if self.kind == "bgr":
                codes = codes.flip(0)
            old = self.planes[0][:, ry, rx]
            val = (old + m[None] * (codes - old)).round_().clamp_(0.0, top)
            self.planes[0][:, ry, rx] = torch.where(touched[None], val, old)
            return
        if self.kind == "gbr":
            codes = rgb * np.float32(top)
            for plane, ch in zip(self.planes, (1, 2, 0)):
                blend_plane(plane, codes[ch], m, touched, ry, rx)
            return
        yc, cbc, crc = self._rgb_to_codes(rgb)
        blend_plane(self.planes[0], yc, m, touched, ry, rx)
        if self.kind == "gray" or luma_only:
            return
        by, bx = 1 << self.sy, 1 << self.sx
        mb = _block_sum_t(m, by, bx)
        count = _block_sum_t(torch.ones_like(m), by, bx)
        sel = mb > 0
        cy0, cx0 = y0 >> self.sy, x0 >> self.sx
        creg = (slice(cy0, cy0 + mb.shape[0]), slice(cx0, cx0 + mb.shape[1]))
        for plane, codes in ((self.planes[1], cbc), (self.planes[2], crc)):
            old = plane[creg]
            val = (old + (_block_sum_t(m * codes, by, bx) - mb * old) / count).round_().clamp_(0.0, top)
            plane[creg] = torch.where(sel, val, old)

    def blend_rgb_many(self, rgb: torch.Tensor, layers: "FaceLayers", luma_only: bool = False) -> None:
        """`blend_rgb` of n faces whose boxes do not overlap, in one set of kernels: rgb float32
        (n, 3, H, W) RGB 0..1 and `layers.masks` (n, H, W) hold face k in [:h_k, :w_k] of its
        canvas (`FaceLayers`). For YUV the codes, weights and chroma block sums run on the
        canvases at once; each face costs a copy of its samples out and one back per plane.
        The same formulas as `blend_rgb`, so each sample gets `blend_rgb`'s value."""
        boxes = layers.boxes
        for box in boxes:
            if tuple(box) != self.picture.align_box(box):
                raise ValueError(f"blend_rgb_many: box {box} is not aligned")
        local = [self._local(box) for box in boxes]
        if self.kind != "yuv":
            for k, ((h, w), box) in enumerate(zip(layers.sizes, boxes)):
                self.blend_rgb(rgb[k, :, :h, :w], layers.masks[k, :h, :w], box, luma_only=luma_only)
            return
        m = layers.masks.clamp(0.0, 1.0)
        top = self.top

        def blend_planes(plane, like, sel, spans, step):
            """Each face's span of `plane` -> step(old), rounded and clamped, where `sel`."""
            old = torch.zeros_like(like)
            for k, (x0, y0, x1, y1) in enumerate(spans):
                old[k, :y1 - y0, :x1 - x0] = plane[y0:y1, x0:x1]
            new = torch.where(sel, step(old).round_().clamp_(0.0, top), old)
            for k, (x0, y0, x1, y1) in enumerate(spans):
                plane[y0:y1, x0:x1] = new[k, :y1 - y0, :x1 - x0]

        yc, cbc, crc = self._rgb_to_codes(rgb.transpose(0, 1))
        blend_planes(self.planes[0], yc, m > 0, local, lambda old: old + m * (yc - old))
        if luma_only:
            return
        by, bx = 1 << self.sy, 1 << self.sx
        mb = _block_sum_t(m, by, bx)
        count = _block_sum_t(layers.valid.float(), by, bx).clamp_(min=1.0)  # the samples of each block in its box
        sel = mb > 0
        spans = [(x0 >> self.sx, y0 >> self.sy, (x0 >> self.sx) + (-(-(x1 - x0) // bx)),
                  (y0 >> self.sy) + (-(-(y1 - y0) // by))) for x0, y0, x1, y1 in local]
        for plane, codes in ((self.planes[1], cbc), (self.planes[2], crc)):
            sums = _block_sum_t(m * codes, by, bx)
            blend_planes(plane, sums, sel, spans, lambda old, sums=sums: old + (sums - mb * old) / count)

    def _rgb_to_codes(self, rgb: torch.Tensor):
        kr, kg, kb = self.picture._coeffs()
        r, g, b = rgb[0], rgb[1], rgb[2]
        y = np.float32(kr) * r + np.float32(kg) * g + np.float32(kb) * b
        cb = (b - y) * np.float32(0.5 / (1.0 - kb))
        cr = (r - y) * np.float32(0.5 / (1.0 - kr))
        yo, ys, co, cs = self.picture._yuv_scale()
        return y * np.float32(ys) + np.float32(yo), cb * np.float32(cs) + np.float32(co), cr * np.float32(cs) + np.float32(co)

    def write_back(self) -> None:
        """Copy the region into the picture's planes (one device -> host copy per plane)."""
        dtype = self.picture.layout.dtype
        tdtype = torch.uint8 if dtype == np.uint8 else torch.int32
        planes = self.planes
        if self.kind in ("rgb", "bgr"):
            planes = [planes[0].permute(1, 2, 0)]
        for host, values in zip(self._host_regions(), _download([dev.round().to(tdtype) for dev in planes])):
            host[...] = values.astype(dtype, copy=False)


# The torch face path's traffic between host and device goes through these three, so that a
# CUDA run makes no hidden host sync (and bench/feed_rate.py can count what a run moves).

def _upload(array: np.ndarray, device) -> torch.Tensor:
    """Host data -> a tensor on `device`. To CUDA through pinned memory with a non-blocking
    copy: a copy from pageable memory waits for all the work queued on the device first (a
    host sync); the pinned block is not reused before the copy is done (torch's host cache)."""
    t = torch.from_numpy(np.ascontiguousarray(array))
    device = torch.device(device)
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def _download(tensors) -> list[np.ndarray]:
    """Device tensors -> numpy arrays, with one host sync for all of them (non-blocking
    copies into pinned memory, then one wait on the stream)."""
    tensors = list(tensors)
    cuda = [t for t in tensors if t.device.type == "cuda"]
    if not cuda:
        return [t.numpy() for t in tensors]
    host = [t.to("cpu", non_blocking=True) if t.device.type == "cuda" else t for t in tensors]
    torch.cuda.current_stream(cuda[0].device).synchronize()
    return [h.numpy() for h in host]


def _host_values(t: torch.Tensor) -> list:
    """A small device tensor's values as Python numbers (one host sync: it waits for the work
    that makes them)."""
    return _download([t])[0].tolist()


def _upload_codes(plane: np.ndarray, device) -> torch.Tensor:
    """A uint8 / uint16 plane region -> float32 codes on `device` (the samples travel in their
    own width; uint16 as int16 bits, since torch's uint16 has few kernels)."""
    if plane.dtype == np.uint8:
        return _upload(plane, device).float()
    bits = _upload(np.ascontiguousarray(plane).view(np.int16), device).int()
    return (bits & 0xFFFF).float()


def _block_sum_t(a: torch.Tensor, by: int, bx: int) -> torch.Tensor:
    """`videofix.io.picture._block_sum` in torch: sums over by x bx blocks (edge blocks cut) of
    (h, w), or of each (h, w) of (..., h, w)."""
    if by == 1 and bx == 1:
        return a.clone()
    h, w = a.shape[-2:]
    hp, wp = -(-h // by) * by, -(-w // bx) * bx
    if (hp, wp) != (h, w):
        a = F.pad(a, (0, wp - w, 0, hp - h))
    return a.reshape(tuple(a.shape[:-2]) + (hp // by, by, wp // bx, bx)).sum(dim=(-3, -1))


def warp_box(picture, affine, size: int = 512) -> tuple[int, int, int, int] | None:
    """The picture box `warp_face` reads to cut the crop of `affine` (clipped; None if none)."""
    return affine_region(invert_affine(np.asarray(affine, np.float64)), size, (picture.height, picture.width), margin=4)


def face_layer_torch(restored: torch.Tensor, affine, frame_hw: tuple[int, int], *, upscale: int = 1,
                     parse_mask: torch.Tensor | None = None, align_box=None, blend: float = 1.0):
    """`videofix.faces.paste.face_layer` on a device: (box, face float32 (3, h, w) RGB 0..255,
    mask float32 (h, w) 0..1), or None when the face misses the frame.

    restored: (3, S, S) RGB, uint8 or float 0..255, on the device. parse_mask: (S', S')
    float 0..1 crop-space limit on the device, or None. `face_layers_torch` of one face."""
    box = layer_box(affine, int(restored.shape[-1]), frame_hw, upscale=upscale, align_box=align_box)
    if box is None:
        return None
    layers = face_layers_torch(restored[None], [affine], [box], upscale=upscale,
                               parse_masks=None if parse_mask is None else [parse_mask], blend=blend)
    return box, layers.faces[0], layers.masks[0]


def layer_box(affine, size: int, frame_hw: tuple[int, int], *, upscale: int = 1, align_box=None):
    """The output box (x0, y0, x1, y1) a face pasted with `affine` is blended into
    (`face_layer_torch`'s box), or None when the face misses the frame."""
    box = region_for_paste(paste_affine(np.asarray(affine, np.float64), upscale), size, frame_hw)
    if box is None:
        return None
    if align_box is not None:
        box = tuple(int(v) for v in align_box(box))
        if box[2] <= box[0] or box[3] <= box[1]:
            return None
    return tuple(int(v) for v in box)


class FaceLayers:
    """The layers of n faces pasted together (`face_layers_torch`), each in the top-left
    corner of one canvas of the largest box's size: face k covers [:h_k, :w_k] of its canvas
    (`boxes[k]`), and its canvas is zero beyond.

    faces: float32 (n, 3, H, W) RGB 0..255 (the eroded mask times the warped crop); masks:
    float32 (n, H, W) 0..1; valid: bool (n, H, W), inside each face's box."""

    def __init__(self, boxes, faces, masks, valid):
        self.boxes = [tuple(int(v) for v in b) for b in boxes]
        self.faces, self.masks, self.valid = faces, masks, valid
        self.sizes = [(b[3] - b[1], b[2] - b[0]) for b in self.boxes]  # (h, w) each


def face_layers_torch(restored: torch.Tensor, affines, boxes, *, upscale: int = 1, parse_masks=None,
                      blend: float = 1.0) -> FaceLayers:
    """`face_layer_torch` of n faces in one set of kernels: restored uint8 / float (n, 3, S, S)
    RGB 0..255 on the device, their affines (frame -> crop at the original size) and boxes
    (`layer_box`, none None). The sampling grids, the warp, the first erosion, the mask sums
    (one host read for all) and the parse limits run on the n canvases at once; the feather
    (its erosion and blur sizes differ per face) runs per face on its own box. Each face's
    layer is the one it gets alone (`face_layer_torch`, n = 1) within float rounding (its
    canvas is larger). parse_masks: None, or one (S', S') float 0..1 limit per face."""
    n = len(boxes)
    size = int(restored.shape[-1])
    device = restored.device
    sizes = [(int(b[3]) - int(b[1]), int(b[2]) - int(b[0])) for b in boxes]
    hm, wm = max(h for h, _ in sizes), max(w for _, w in sizes)
    inverses = [invert_affine(shift_affine(paste_affine(np.asarray(a, np.float64), upscale), b[0], b[1]))
                for a, b in zip(affines, boxes)]  # box pixel -> crop pixel
    grid, valid = _affine_grids(inverses, (hm, wm), (size, size), device, sizes=sizes)
    ones = _constant(("ones", size), device, lambda: torch.ones((1, 1, size, size)))
    both = torch.cat([restored.float(), ones.expand(n, -1, -1, -1)], dim=1)  # the crop and its ones-mask, one pass
    sampled = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    warped = sampled[:, :3].round()  # cv2.warpAffine of the uint8 crop rounds to uint8
    # the first erosion on every canvas at once; beyond a box the mask reads as 1 (the
    # per-box erosion's +inf outside), then is zeroed
    eroded = _erode(torch.where(valid, sampled[:, 3], 1.0), int(2 * upscale)) * valid
    sums = _host_values(eroded.double().sum(dim=(1, 2)))  # the batch's one host read
    masks = torch.zeros((n, hm, wm), dtype=torch.float32, device=device)
    for k, ((h, w), total) in enumerate(zip(sizes, sums)):
        w_edge = int(float(total) ** 0.5) // 20
        masks[k, :h, :w] = _gaussian_blur(_erode(eroded[k, :h, :w], 2 * w_edge), 2 * w_edge + 1)
    if parse_masks is not None:
        pm = torch.stack([p.float() for p in parse_masks])
        if pm.shape[-1] != size:
            pm = F.interpolate(pm[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        sampled_pm = F.grid_sample(pm[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        masks = torch.minimum(masks, sampled_pm[:, 0])
    if blend != 1.0:
        masks = masks * np.float32(blend)
    return FaceLayers(boxes, eroded[:, None] * warped, masks.clamp(0.0, 1.0), valid)


def paste_faces_regions(regions: FaceRegions, restored: torch.Tensor, affines, boxes, *, upscale: int = 1,
                        parse_masks=None, blend: float = 1.0, luma_only: bool = False) -> None:
    """`paste_face` of n faces into a Picture's `FaceRegions` at once (the plain paste, no
    grain), in place: restored (n, 3, S, S) on the device, their affines and boxes
    (`layer_box`, none None). The faces' boxes must not overlap (a later face would read what
    an earlier one wrote: paste those one by one)."""
    layers = face_layers_torch(restored, affines, boxes, upscale=upscale, parse_masks=parse_masks, blend=blend)
    regions.blend_rgb_many((layers.faces * np.float32(1.0 / 255.0)).clamp(0.0, 1.0), layers, luma_only=luma_only)


def parse_map_to_mask_torch(classes: torch.Tensor) -> torch.Tensor:
    """`videofix.faces.masks.parse_map_to_mask` on a device: (S, S) int class map -> float32
    (S, S) 0..1 (two Gaussian blurs 101 / sigma 11, separable, float32; a 10-px border zeroed)."""
    from .masks import PARSE_KEEP

    keep = _constant("parse_keep", classes.device, lambda: torch.as_tensor(PARSE_KEEP))[classes.long()]
    k = _constant(("gaussian", 101, 11), classes.device,
                  lambda: torch.as_tensor(cv2.getGaussianKernel(101, 11).ravel(), dtype=torch.float32))
    m = _separable_blur(_separable_blur(keep, k), k)
    t = 10
    m[:t, :] = 0
    m[-t:, :] = 0
    m[:, :t] = 0
    m[:, -t:] = 0
    return m * np.float32(1.0 / 255.0)


def _separable_blur(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable blur of (h, w) with the 1D kernel `k`, reflect-101 border (cv2's default)."""
    r = k.numel() // 2
    y = F.conv2d(F.pad(x[None, None], (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(y, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1))[0, 0]


# Immerkaer's kernel (videofix.film.grain)
_NOISE_KERNEL = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))


def noise_sigma_torch(luma: torch.Tensor, mask: torch.Tensor | None = None, *, host_index: bool | None = None) -> float:
    """`videofix.film.grain.noise_sigma` of a (h, w) float tensor (same estimator, same
    strided median); nan when too few pixels are measurable. host_index: pick the sample with
    a boolean index (two host syncs; the cheapest on the CPU) or with device indices (one
    sync, `noise_sigmas_t`); None = the first on the CPU, the second elsewhere."""
    from videofix.film.grain import MAX_SAMPLES, MIN_PIXELS

    if luma.ndim != 2 or min(luma.shape) < 3:
        return float("nan")
    if mask is None:
        mask = torch.ones(tuple(luma.shape), dtype=torch.bool, device=luma.device)
    if not (luma.device.type == "cpu" if host_index is None else host_index):
        return float(noise_sigmas_t(luma[None], mask[None])[0].item())
    vals = _residual_inside(luma[None])[0][mask[1:-1, 1:-1]]  # on the CPU a boolean index is cheapest
    n = int(vals.numel())
    if n < MIN_PIXELS:
        return float("nan")
    if n > MAX_SAMPLES:
        vals = vals[:: n // MAX_SAMPLES]
    s = vals.sort().values
    n = int(s.numel())
    med = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) * 0.5
    return float(med.item()) * 1.4826 / 6.0


def _residual_inside(lumas: torch.Tensor) -> torch.Tensor:
    """|Immerkaer residual| of (k, h, w) images at their inside: float32 (k, h - 2, w - 2) (the
    1-px border is never measured, so it needs no padding)."""
    kernel = _constant("noise_kernel", lumas.device,
                       lambda: torch.tensor(_NOISE_KERNEL, dtype=torch.float32)).view(1, 1, 3, 3)
    return F.conv2d(lumas.float()[:, None], kernel)[:, 0].abs()


def _lowbias32_t(x: torch.Tensor) -> torch.Tensor:
    """`videofix.film.grain._lowbias32` on int64 tensors holding uint32 values; each product
    is split in 16-bit halves so that no intermediate leaves int64."""
    from videofix.film.grain import _HASH_MULTIPLIERS, _MASK32

    def mul(v: torch.Tensor, m: int) -> torch.Tensor:
        lo, hi = m & 0xFFFF, m >> 16
        return (v * lo + (((v * hi) & 0xFFFF) << 16)) & _MASK32

    x = x ^ (x >> 16)
    x = mul(x, _HASH_MULTIPLIERS[0])
    x = x ^ (x >> 15)
    x = mul(x, _HASH_MULTIPLIERS[1])
    return x ^ (x >> 16)


def grain_field_torch(shape: tuple[int, int], *, seed: int, frame_index: int, track_id: int, scale: float = 1.0,
                      device="cpu") -> torch.Tensor:
    """`videofix.film.grain.grain_field` drawn on `device`: float32 (h, w), the same integers
    (so the same field, within a few float32 ulps of its logarithm and cosine), no host work
    but the key. `grain_fields_torch` of one face."""
    return grain_fields_torch([shape], seed=seed, frame_index=frame_index, track_ids=[track_id], scale=scale,
                              device=device)[0]


def grain_fields_torch(shapes, *, seed: int, frame_index: int, track_ids, scale: float = 1.0, device="cpu",
                       canvas: tuple[int, int] | None = None) -> torch.Tensor:
    """`grain_field_torch` of n faces in one set of kernels: float32 (n, H, W), face k's field
    (shape (h_k, w_k), track `track_ids[k]`) in the top-left corner of its canvas, zeros
    beyond; the same integers as each drawn alone. canvas: (H, W), default the largest shape."""
    from videofix.film.grain import _MASK32, grain_draw_shape, grain_key

    shapes = [(int(h), int(w)) for h, w in shapes]
    n = len(shapes)
    hm, wm = canvas or (max(h for h, _ in shapes), max(w for _, w in shapes))
    draws = [grain_draw_shape(shape, scale) for shape in shapes]
    counts = [2 * dh * dw for dh, dw in draws]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    keys = np.array([grain_key(seed, frame_index, t) for t in track_ids], np.int64)
    total = int(sum(counts))
    # element e of face k hashes index (e - start_k) + key_k (its sample i hashes 2 i + key_k
    # for u1 and 2 i + 1 + key_k for u2, one pass over both): one offset per face, repeated
    plan = _upload(np.stack([keys - starts, np.asarray(counts, np.int64)], axis=1), device)
    offset = torch.repeat_interleave(plan[:, 0], plan[:, 1], output_size=total)  # output_size: no host sync
    index = (torch.arange(total, dtype=torch.int64, device=device) + offset) & _MASK32
    u = (((_lowbias32_t(index) >> 8).float() + 0.5) * np.float32(2.0 ** -24)).view(total // 2, 2)
    flat = torch.sqrt(np.float32(-2.0) * torch.log(u[:, 0])) * torch.cos(np.float32(2.0 * np.pi) * u[:, 1])
    out = torch.zeros((n, hm, wm), dtype=torch.float32, device=device)
    for k, ((h, w), (dh, dw), start) in enumerate(zip(shapes, draws, starts.tolist())):
        field = flat[start // 2:start // 2 + dh * dw].view(dh, dw)
        if (dh, dw) != (h, w):  # cv2.resize INTER_LINEAR: half-pixel centres, edge samples repeated
            field = F.interpolate(field[None, None], size=(h, w), mode="bilinear", align_corners=False)[0, 0]
        out[k, :h, :w] = field
    return out


def _strided_median_sigma(r: torch.Tensor, valid: torch.Tensor) -> float:
    """`noise_sigma_torch`'s estimate from residuals `r` and the bool mask `valid` (any shape,
    row-major order) with device indices, read on the host (one sync)."""
    return float(_strided_median_sigmas_t(r.reshape(1, -1), valid.reshape(1, -1))[0].item())


def _strided_median_sigmas_t(flat: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """The noise estimate of each row of (k, n) residuals `flat` with bool masks `ok`, in one
    set of kernels and no host sync: the strided sample of `videofix.film.grain.noise_sigma`
    (every k-th valid residual in row-major order, k = n // MAX_SAMPLES when n > MAX_SAMPLES)
    and its median, found with device indices. float64 (k,) (nan where a row has too few
    valid samples)."""
    from videofix.film.grain import MAX_SAMPLES, MIN_PIXELS

    n = ok.sum(1)
    rank = torch.cumsum(ok, 1) - 1
    step = torch.where(n > MAX_SAMPLES, n // MAX_SAMPLES, 1)
    sel = ok & (rank % step[:, None] == 0)
    m = sel.sum(1)
    ordered = torch.where(sel, flat, float("inf")).sort(dim=1).values
    lo = ((m - 1) // 2).clamp(min=0)
    hi = (m // 2).clamp(max=flat.shape[1] - 1)
    med = ordered.gather(1, torch.stack([lo, hi], 1)).sum(1) * 0.5  # no tensor-as-index: that reads it on the host
    # scaled in float64, as `videofix.film.grain.noise_sigma` scales numpy's median
    return torch.where(n >= MIN_PIXELS, med.double() * 1.4826 / 6.0, float("nan"))


def noise_sigmas_t(lumas: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """`noise_sigma` of k images at once: lumas (k, h, w), valid (k, h, w) bool (the samples
    each one measures; the 1-px border of the canvas is never measured) -> float64 (k,) on
    the device, no host sync. An image smaller than the canvas is measured as on its own when
    its valid samples keep one pixel inside its own edges (their 3x3 neighbourhoods then lie
    in it), e.g. a face box placed in its grain ring's box (`FilmPaster`)."""
    k, h, w = lumas.shape
    if min(h, w) < 3:
        return torch.full((k,), float("nan"), dtype=torch.float64, device=lumas.device)
    return _strided_median_sigmas_t(_residual_inside(lumas).reshape(k, -1), valid[:, 1:-1, 1:-1].reshape(k, -1))
