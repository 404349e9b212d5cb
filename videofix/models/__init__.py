"""Restoration networks (CodeFormer, VQFR) and the one way to load them.

``load_restorer`` finds the weights file through the model-file registry, reads it safely,
builds the network its tensor shapes describe and moves it to the device and precision
asked for. Both networks implement ``CodeRestorer`` (``videofix.models.base``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from videofix import modelfiles
from videofix.errors import ModelFileError, UsageError
from videofix.models.base import CodeRestorer, Encoded
from videofix.models.device import resolve_device, resolve_dtype


def _build_codeformer(state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    from videofix.models.codeformer import CodeFormer

    return CodeFormer.from_state_dict(state_dict)


def _build_vqfr(state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    # videofix/models/vqfr.py (VQFRv2.from_state_dict) is written separately; imported lazily
    try:
        from videofix.models.vqfr import VQFRv2
    except ModuleNotFoundError as exc:
        if exc.name == "videofix.models.vqfr":
            raise UsageError("vqfr: the VQFR network is not available in this build", option="model") from None
        raise
    return VQFRv2.from_state_dict(state_dict)


# model name -> (registry entry, builder from a state dict)
RESTORERS: dict[str, tuple[str, Callable[[Mapping[str, torch.Tensor]], nn.Module]]] = {
    "codeformer": ("codeformer", _build_codeformer),
    "vqfr": ("vqfr", _build_vqfr),
}


# `--model identity`: the null restorer (videofix.models.identity), no weights: it returns the
# aligned crop, so a run measures the pipeline's feed rate (everything but the network)
NULL_RESTORER = "identity"
# every --model choice
MODEL_CHOICES: tuple[str, ...] = (*RESTORERS, NULL_RESTORER)


# a key only each restorer's checkpoints hold
_SIGNATURE_KEYS = {"codeformer": "quantize.embedding.weight", "vqfr": "quantizer.embedding.weight"}


def _looks_like(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Which restorer a state dict (or checkpoint holding params_ema/params) belongs to."""
    for wrapper in ("params_ema", "params"):
        inner = state_dict.get(wrapper) if hasattr(state_dict, "get") else None
        if isinstance(inner, Mapping):
            state_dict = inner
            break
    for name, key in _SIGNATURE_KEYS.items():
        if key in state_dict:
            return name
    return None


def build_restorer(model: str, state_dict: Mapping[str, torch.Tensor], source: str | os.PathLike | None = None) -> nn.Module:
    """Build restorer ``model`` from an in-memory state dict (eval mode, on the tensors' device).

    Raises:
        ModelFileError: the tensors do not form that network (the message names ``source``).
    """
    if model not in RESTORERS:
        raise UsageError(f"{model}: expected one of {', '.join(RESTORERS)}", option="model")
    builder = RESTORERS[model][1]
    try:
        return builder(state_dict)
    except ModelFileError as exc:
        message = str(exc)
        if source is not None and not message.startswith(str(source)):
            message = f"{source}: {message}"
        other = _looks_like(state_dict)
        if other is not None and other != model:
            message += f" (it looks like a {other} checkpoint: use --model {other})"
        raise ModelFileError(message) from None
    except (KeyError, IndexError, ValueError, RuntimeError) as exc:
        where = f"{source}: " if source is not None else ""
        raise ModelFileError(f"{where}not a {model} checkpoint ({type(exc).__name__}: {exc})") from None


def load_restorer(
    weights: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
    model: str = "codeformer",
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "fp32",
    *,
    comfy_root: str | os.PathLike | None = None,
    download: bool = True,
    quiet: bool = False,
) -> nn.Module:
    """Find, read and build a restorer, ready for inference.

    Args:
        weights: explicit weights file (``--weights``); else looked up through the registry
            (``--models-dir`` / ``$VIDEOFIX_MODELS`` -> ComfyUI -> cache -> download).
        models_dir: folder holding model files.
        model: ``"codeformer"``, ``"vqfr"`` or ``"identity"`` (the null restorer, no file).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        dtype: ``"fp32"``, ``"fp16"`` (CUDA only) or ``"bf16"``.
        comfy_root: a ComfyUI installation to search (else ``$COMFYUI_PATH``).
        download: allow downloading a missing file.
        quiet: no download progress.

    Returns:
        The network (implements ``CodeRestorer``), eval mode, gradients off, on ``device``
        in ``dtype``.

    Raises:
        ModelFileError, DeviceError, UsageError: with a one-line message.
    """
    if model == NULL_RESTORER:
        # the null restorer (feed-rate measurement): no weights file; `weights` is ignored
        from videofix.models.identity import IdentityRestorer

        dev = resolve_device(device)
        return IdentityRestorer().to(device=dev, dtype=resolve_dtype(dtype, dev)).eval().requires_grad_(False)
    if model not in RESTORERS:
        raise UsageError(f"{model}: expected one of {', '.join(RESTORERS)}", option="model")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    path: Path = modelfiles.resolve(
        RESTORERS[model][0], path=weights, models_dir=models_dir, comfy_root=comfy_root, download=download, quiet=quiet
    )
    state_dict = modelfiles.load_state_dict(path)
    net = build_restorer(model, state_dict, source=path)
    return net.to(device=dev, dtype=dt).eval().requires_grad_(False)


__all__ = [
    "CodeRestorer",
    "Encoded",
    "MODEL_CHOICES",
    "NULL_RESTORER",
    "RESTORERS",
    "build_restorer",
    "load_restorer",
    "resolve_device",
    "resolve_dtype",
]
