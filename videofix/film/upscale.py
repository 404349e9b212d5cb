"""Whole-frame upscalers for `--upscale N`: the background of small-face films.

Old SD films have faces of 30-80 px; the restorer works at 512 px, so pasting at the
source size throws most of its detail away. With `--upscale N` the whole frame is upscaled
and the faces are pasted at N times their size. The background goes through a pluggable
`Upscaler` (`upscale(picture, factor) -> Picture`, native pixel format in and out):

- ``realesrgan``: Real-ESRGAN x2plus (`RRDBNet`, 23 RRDB blocks). The network runs x2 on
  RGB (tiles of 256 px with 10 px of context, as the official inference), then a Lanczos
  resize brings x2 to N (the official ``--outscale`` rule). About 1.7 T multiply-adds per
  720x576 frame: seconds per frame on a GPU, tens of seconds on a laptop CPU.
- ``lanczos``: Lanczos-4 per plane in the native format (chroma planes at their own size).
- ``bilinear``: bilinear per plane (what the official pipeline does with no upsampler).
- ``auto``: realesrgan when RealESRGAN_x2plus.pth is found locally (see `videofix models`;
  never downloaded for auto), else lanczos.
"""

from __future__ import annotations

import logging
from typing import Protocol

import cv2
import numpy as np
import torch

from videofix.io.picture import Picture
from videofix.settings import UPSCALERS

log = logging.getLogger("videofix")


class Upscaler(Protocol):
    name: str

    def upscale(self, picture: Picture, factor: int) -> Picture: ...


def _plane_sizes(picture: Picture, factor: int) -> list[tuple[int, int]]:
    w, h = picture.width * factor, picture.height * factor
    lay = picture.layout
    sizes = []
    for i in range(len(picture.planes)):
        if lay.kind == "yuv" and i > 0:  # chroma: ceil(size / subsampling)
            sizes.append((-(-w >> lay.log2_chroma_w), -(-h >> lay.log2_chroma_h)))
        else:
            sizes.append((w, h))
    return sizes


class ResizeUpscaler:
    """Plane-by-plane resize in the native pixel format (no RGB round trip)."""

    def __init__(self, name: str = "lanczos"):
        interp = {"lanczos": cv2.INTER_LANCZOS4, "bilinear": cv2.INTER_LINEAR}
        if name not in interp:
            raise ValueError(f"unknown resize upscaler {name!r}")
        self.name = name
        self.interpolation = interp[name]

    def upscale(self, picture: Picture, factor: int) -> Picture:
        """`picture` resized `factor` times each way (a copy for factor 1)."""
        if factor == 1:
            return picture.copy()
        planes = tuple(np.ascontiguousarray(cv2.resize(p, size, interpolation=self.interpolation))
                       for p, size in zip(picture.planes, _plane_sizes(picture, factor)))
        return Picture(planes, picture.pix_fmt, picture.width * factor, picture.height * factor, picture.colorspace,
                       picture.color_range, picture.color_primaries, picture.color_trc)


class RealESRGANUpscaler:
    """Real-ESRGAN (an `RRDBNet`) over whole pictures, tiled.

    Args:
        net: the network (scale 2 for x2plus), eval mode, on `device`.
        device: torch device. tile: tile size in input pixels (0 = whole picture at once);
        tile_pad: context around each tile, in input pixels. half: run in float16 (CUDA).
    """

    name = "realesrgan"

    def __init__(self, net, device: torch.device | str = "cpu", tile: int = 256, tile_pad: int = 10, half: bool = False):
        self.net = net
        self.device = torch.device(device)
        self.tile = int(tile)
        self.tile_pad = int(tile_pad)
        self.half = bool(half) and self.device.type == "cuda"
        self.net_scale = int(net.scale)
        if self.half:
            self.net.half()

    @torch.inference_mode()
    def _run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float16 if self.half else torch.float32)
        return self.net(x).float().clamp_(0.0, 1.0).cpu()

    def upscale_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """float32 (H, W, 3) **RGB** 0..1 -> float32 (H*s, W*s, 3) RGB 0..1, s = the network's scale."""
        h, w = rgb.shape[:2]
        s = self.net_scale
        x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None]
        mod = {2: 2, 1: 4}.get(s, 1)  # pixel-unshuffle needs sizes divisible by this
        ph, pw = (-h) % mod, (-w) % mod
        if ph or pw:
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        if self.tile <= 0 or (x.shape[2] <= self.tile and x.shape[3] <= self.tile):
            out = self._run(x)
        else:
            out = self._tiled(x)
        out = out[0, :, : h * s, : w * s]
        return np.ascontiguousarray(out.numpy().transpose(1, 2, 0))

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        s, t, pad = self.net_scale, self.tile, self.tile_pad
        mod = {2: 2, 1: 4}.get(s, 1)
        out = torch.zeros((1, c, h * s, w * s), dtype=torch.float32)
        for y0 in range(0, h, t):
            for x0 in range(0, w, t):
                y1, x1 = min(y0 + t, h), min(x0 + t, w)
                # context, kept on the unshuffle grid so tiles see the same pixel phases
                py0, px0 = max(0, y0 - pad) // mod * mod, max(0, x0 - pad) // mod * mod
                py1, px1 = min(h, -(-(y1 + pad) // mod) * mod), min(w, -(-(x1 + pad) // mod) * mod)
                tile_out = self._run(x[:, :, py0:py1, px0:px1])
                oy, ox = (y0 - py0) * s, (x0 - px0) * s
                out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = tile_out[:, :, oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
        return out

    def upscale(self, picture: Picture, factor: int) -> Picture:
        """`picture` upscaled `factor` times, back in its own pixel format and colour tags."""
        if factor == 1:
            return picture.copy()
        rgb = self.upscale_rgb(picture.to_rgb())
        w, h = picture.width * factor, picture.height * factor
        if rgb.shape[:2] != (h, w):
            rgb = np.clip(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LANCZOS4), 0.0, 1.0)
        out = Picture.from_rgb(rgb, picture.pix_fmt, picture.colorspace if picture.colorspace != "rgb" else None,
                               picture.color_range)
        out.color_primaries, out.color_trc = picture.color_primaries, picture.color_trc
        return out


def load_realesrgan(models_dir: str | None = None, path: str | None = None, device: torch.device | str = "cpu",
                    download: bool = False, **kwargs) -> RealESRGANUpscaler:
    """The Real-ESRGAN x2plus upscaler from its model file (found through
    `videofix.modelfiles.resolve`; loaded with ``torch.load(weights_only=True)``).
    Raises `ModelFileError` when the file is missing or not an RRDBNet checkpoint."""
    from videofix.errors import ModelFileError
    from videofix.film.rrdbnet import RRDBNet
    from videofix.modelfiles import load_state_dict, resolve

    file = resolve("realesrgan_x2plus", path=path, models_dir=models_dir, download=download, quiet=True)
    sd = load_state_dict(file)
    try:
        net = RRDBNet.from_state_dict(sd)
    except ValueError as exc:
        raise ModelFileError(f"{file}: {exc}") from None
    return RealESRGANUpscaler(net.to(device), device, **kwargs)


def create_upscaler(name: str = "auto", *, models_dir: str | None = None, device: torch.device | str = "cpu",
                    download: bool = False) -> Upscaler:
    """An upscaler by name (see the module docstring). auto never downloads."""
    from videofix.errors import ModelFileError

    if name in ("lanczos", "bilinear"):
        return ResizeUpscaler(name)
    if name == "realesrgan":
        return load_realesrgan(models_dir, device=device, download=download)
    if name == "auto":
        try:
            up = load_realesrgan(models_dir, device=device, download=False)
        except ModelFileError:
            return ResizeUpscaler("lanczos")
        if torch.device(device).type == "cpu":
            log.info("Real-ESRGAN background upscaling on the CPU: expect many seconds per frame "
                     "(--upscaler lanczos is fast)")
        return up
    raise ValueError(f"unknown upscaler {name!r} (choose from {', '.join(UPSCALERS)})")
