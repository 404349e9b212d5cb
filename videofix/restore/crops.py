"""Aligned face crops in and out of a restorer, exactly as the official CodeFormer script.

Pre-processing (official: uint8 BGR / 255 -> float32 -> RGB -> (x - 0.5) / 0.5) is a
256-entry look-up table: ``x[b, c, y, x] = NORMALIZE_LUT[rgb[b, y, x, c]]``.
Post-processing (official ``tensor2img(out, rgb2bgr=True, min_max=(-1, 1))``): clamp to
[-1, 1], ``(t + 1) / 2``, ``* 255`` in float32, round half to even, uint8.

``restore_crops`` runs any ``CodeRestorer`` over many crops in batches; on the CPU every
crop's result is bit-identical whatever the batch size (see ``network_batch_size``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from videofix.models.base import CodeRestorer


def _normalize_lut() -> np.ndarray:
    scaled = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)
    return ((scaled - np.float32(0.5)) / np.float32(0.5)).astype(np.float32)


NORMALIZE_LUT: np.ndarray = _normalize_lut()
NORMALIZE_LUT.setflags(write=False)


def _as_batch(crops: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    batch = np.stack(list(crops)) if not isinstance(crops, np.ndarray) else crops
    if batch.ndim == 3:
        batch = batch[None]
    if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
        raise ValueError(f"crops must be uint8 (B, S, S, 3) RGB, got {batch.dtype} {batch.shape}")
    return batch


def stage_crops(crops: np.ndarray | Sequence[np.ndarray], pin: bool = False) -> Tensor:
    """uint8 RGB crops (B, S, S, 3) or (S, S, 3) -> one uint8 (B, S, S, 3) host tensor, in
    page-locked memory when `pin` (the source of a non-blocking copy to a CUDA device; the
    crops are stacked straight into it, no second copy)."""
    if isinstance(crops, np.ndarray) and crops.ndim == 3:
        crops = crops[None]
    items = crops if isinstance(crops, np.ndarray) else [np.asarray(c) for c in crops]
    if len(items) == 0:
        raise ValueError("crops must be uint8 (B, S, S, 3) RGB, got no crops")
    first = items[0]
    if first.ndim != 3 or first.shape[-1] != 3 or first.dtype != np.uint8:
        raise ValueError(f"crops must be uint8 (B, S, S, 3) RGB, got {first.dtype} {(len(items), *first.shape)}")
    host = torch.empty((len(items), *first.shape), dtype=torch.uint8, pin_memory=pin)
    out = host.numpy()
    for i, crop in enumerate(items):
        if crop.shape != first.shape or crop.dtype != np.uint8:
            raise ValueError(f"crops must be uint8 (B, S, S, 3) RGB of one size, got {crop.dtype} {crop.shape}")
        out[i] = crop
    return host


_DEVICE_LUTS: dict[str, Tensor] = {}


def _device_lut(device: torch.device) -> Tensor:
    """`NORMALIZE_LUT` on `device`, uploaded once (not per batch)."""
    key = str(device)
    if key not in _DEVICE_LUTS:
        _DEVICE_LUTS[key] = torch.from_numpy(NORMALIZE_LUT.copy()).to(device)
    return _DEVICE_LUTS[key]


def lookup_on_device(batch: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """uint8 (B, S, S, 3) RGB on any device -> (B, 3, S, S) RGB in [-1, 1] on that device:
    the official float32 values through `NORMALIZE_LUT` (then cast to ``dtype``)."""
    # int32 indices (a uint8 index would be a mask): half the transient bytes of int64
    return _device_lut(batch.device)[batch.int()].permute(0, 3, 1, 2).contiguous().to(dtype)


def crops_to_tensor(
    crops: np.ndarray | Sequence[np.ndarray],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """uint8 RGB crops (B, S, S, 3) or (S, S, 3) -> network input (B, 3, S, S) RGB in [-1, 1].

    Values are the official float32 ones (then cast to ``dtype``). For a GPU the uint8 data
    goes up from pinned memory, non-blocking, before the look-up, so only a quarter of the
    bytes travel; on the CPU the look-up is numpy's (no int64 index copy of the batch).
    """
    device = torch.device(device)
    if device.type == "cpu":  # the look-up in numpy: no int64 index copy of the batch
        batch = np.ascontiguousarray(_as_batch(crops))
        return torch.from_numpy(NORMALIZE_LUT[batch]).permute(0, 3, 1, 2).contiguous().to(dtype)
    staged = stage_crops(crops, pin=device.type == "cuda")
    return lookup_on_device(staged.to(device, non_blocking=device.type == "cuda"), dtype)


def crops_as_uint8(out: Tensor) -> Tensor:
    """Network output (B, 3, S, S) RGB, any float dtype -> uint8 (B, S, S, 3) RGB on its own
    device (the official rounding: clamp [-1, 1] in float32, (t + 1) / 2, * 255, round half
    to even)."""
    t = out.detach().float().clamp(-1.0, 1.0)  # a new tensor: the steps below work in place on it
    t.add_(1.0).div_(2.0).mul_(255.0).round_()
    return t.to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def tensor_to_crops(out: Tensor) -> np.ndarray:
    """Network output (B, 3, S, S) RGB, any float dtype -> uint8 (B, S, S, 3) RGB (numpy).

    The official rounding: clamp [-1, 1] in float32, (t + 1) / 2, * 255, round half to even.
    """
    return crops_as_uint8(out).cpu().numpy()


def prepare_crop(image: np.ndarray, size: int = 512) -> np.ndarray:
    """An aligned face image (H, W, 3) uint8 RGB -> (size, size, 3) uint8 RGB.

    Images of another size are resized with bilinear interpolation, as the official script
    does for ``--has_aligned`` inputs. Grey (H, W) and RGBA (H, W, 4) images are converted.
    """
    import cv2

    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    elif image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if image.shape[:2] != (size, size):
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(image)


def _model_device_dtype(model: CodeRestorer) -> tuple[torch.device, torch.dtype]:
    param = next(iter(model.parameters()))  # type: ignore[attr-defined]
    return param.device, param.dtype


@torch.inference_mode()
def restore_crops(
    model: CodeRestorer,
    crops: np.ndarray | Sequence[np.ndarray],
    fidelity: float = 0.5,
    batch_size: int = 1,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> np.ndarray:
    """Restore aligned face crops, one network pass per batch.

    Args:
        model: a ``CodeRestorer`` (CodeFormer: decode uses AdaIN, as the official script).
        crops: uint8 RGB (B, S, S, 3) with S = ``model.input_size``, or a list of (S, S, 3).
        fidelity: w in [0, 1]; 0 trusts the codebook, 1 stays closest to the input.
        batch_size: crops per network pass on a GPU (memory vs speed); the CPU always runs
            one crop per pass, see ``network_batch_size``. The network always sees the same
            batch shape (a partial last batch is padded), so a crop's result does not depend
            on the crops around it; on the CPU it does not depend on ``batch_size`` either.
        device, dtype: where and in what precision to run (default: the model's own). The
            model must already be there: ``load_restorer(device=..., dtype=...)``.

    Returns:
        uint8 (B, S, S, 3) RGB restored crops.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 <= float(fidelity) <= 1.0:
        raise ValueError(f"fidelity must be in [0, 1], got {fidelity}")
    batch = _as_batch(crops)
    size = int(model.input_size)
    if batch.shape[1:3] != (size, size):
        raise ValueError(f"crops must be {size}x{size}, got {batch.shape[2]}x{batch.shape[1]}")
    model_device, model_dtype = _model_device_dtype(model)
    device = torch.device(device) if device is not None else model_device
    dtype = dtype or model_dtype
    from videofix.restore.batching import fixed_batch_model

    net = fixed_batch_model(model, device, batch_size)  # a partial last batch is padded
    step = net.batch_size
    results = np.empty_like(batch)
    for start in range(0, len(batch), step):
        x = crops_to_tensor(batch[start : start + step], device=device, dtype=dtype)
        encoded = net.encode(x)
        out = net.decode(encoded.logits.argmax(dim=-1), encoded.state, float(fidelity))
        results[start : start + len(x)] = tensor_to_crops(out)
    return results


def network_batch_size(device: torch.device | str, batch_size: int) -> int:
    """How many crops to put through the network at once on ``device``.

    On the CPU, oneDNN picks convolution kernels by batch size, so a crop restored in a
    batch of 3 can differ in the last float bits (and, after rounding, in a few uint8
    pixels) from the same crop alone; batching also brings no speed there (6.3 s/face at
    batch 1 and 2 on the 2-core test machine). The CPU therefore runs one crop per pass,
    which makes results independent of ``batch_size``. GPUs run ``batch_size`` crops per
    pass for throughput.
    """
    return 1 if torch.device(device).type == "cpu" else max(1, int(batch_size))
