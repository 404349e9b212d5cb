"""Deterministic synthetic weights: the golden README formula ("v2").

No real weights can ship with the tests, so every test and the offline demo fill networks
with this formula instead. For a tensor named ``key`` with ``n`` elements:

    s      = crc32(key) mod 1000
    m_i    = i + (i * i mod 1000003),        i = 0 .. n-1 (int64)
    base_i = sin(float64(m_i) * 0.61803398875 + float64(s))
    value  = base                      for quantize.embedding.weight (the codebook)
             base * 0.02               for position_emb
             base * (1 / sqrt(fan_in)) for ``*weight`` with >= 2 dims, fan_in = n / shape[0]
             1 + 0.1 * base            for ``*weight`` with 1 dim (norm gains)
             base * 0.02               for ``*bias`` and anything else
    cast float64 -> float32 (round to nearest), reshape to ``shape`` in C order.

The phase ``m_i * 0.61803398875`` does not depend on the key, so it is computed once for
the largest tensor and sliced: the full official CodeFormer (94,112,707 values) takes a
second or two.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

KeyShapes = Iterable[tuple[str, Any]]

_PHASE_STEP = 0.61803398875
# codebooks the formula leaves unscaled: CodeFormer's and VQFR's (both golden READMEs, section 2)
UNSCALED_CODEBOOKS = frozenset({"quantize.embedding.weight", "quantizer.embedding.weight"})
_M_MODULUS = 1000003


def _phases(n: int) -> np.ndarray:
    """float64 (n,): float64(m_i) * 0.61803398875 for i = 0 .. n-1 (exact integer m_i)."""
    i = np.arange(n, dtype=np.int64)
    m = i + (i * i) % _M_MODULUS  # i*i < 2**63 for every tensor we meet
    return m.astype(np.float64) * _PHASE_STEP


def formula_values(key: str, shape: tuple[int, ...], phases: np.ndarray | None = None) -> np.ndarray:
    """The formula's float32 array for one tensor ``key`` of ``shape`` (C order).

    ``phases`` (float64, at least ``prod(shape)`` long) may be passed to reuse the
    key-independent part across tensors.
    """
    shape = tuple(int(d) for d in shape)
    n = math.prod(shape)
    if phases is None or phases.shape[0] < n:
        phases = _phases(n)
    s = float((zlib.crc32(key.encode("utf-8")) & 0xFFFFFFFF) % 1000)
    base = np.sin(phases[:n] + s)
    if key in UNSCALED_CODEBOOKS:
        values = base
    elif key == "position_emb":
        values = base * 0.02
    elif key.endswith("weight") and len(shape) >= 2:
        fan_in = n // shape[0]
        values = base * (1.0 / math.sqrt(fan_in))
    elif key.endswith("weight") and len(shape) == 1:
        values = 1.0 + 0.1 * base
    else:  # biases, and the README's catch-all
        values = base * 0.02
    return values.astype(np.float32).reshape(shape)


def _key_shapes(model_or_key_shapes: nn.Module | Mapping[str, Any] | KeyShapes) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    if isinstance(model_or_key_shapes, nn.Module):
        items = [(k, tuple(v.shape), v.dtype) for k, v in model_or_key_shapes.state_dict().items()]
    else:
        pairs = model_or_key_shapes.items() if isinstance(model_or_key_shapes, Mapping) else model_or_key_shapes
        items = []
        for key, shape in pairs:
            if isinstance(shape, torch.Tensor):
                items.append((key, tuple(shape.shape), shape.dtype))
            else:
                items.append((key, tuple(int(d) for d in shape), torch.float32))
    return items


def formula_state_dict(
    model_or_key_shapes: nn.Module | Mapping[str, Any] | KeyShapes,
) -> dict[str, torch.Tensor]:
    """A state dict filled with the golden formula, in the given key order.

    Args:
        model_or_key_shapes: a module (its ``state_dict()`` keys and shapes are used; it may
            live on the meta device), a mapping ``key -> shape or tensor``, or an iterable of
            ``(key, shape)`` pairs such as the golden ``codeformer_state_dict_keys.json``.

    Returns:
        ``{key: float32 CPU tensor of that shape}``; integer buffers of a module are zeros.
    """
    items = _key_shapes(model_or_key_shapes)
    largest = max((math.prod(shape) for _, shape, dtype in items if dtype.is_floating_point), default=0)
    phases = _phases(largest)
    out: dict[str, torch.Tensor] = {}
    for key, shape, dtype in items:
        if not dtype.is_floating_point:
            out[key] = torch.zeros(shape, dtype=dtype)
            continue
        out[key] = torch.from_numpy(formula_values(key, shape, phases))
    return out


def small_codeformer_config() -> dict[str, Any]:
    """A small CodeFormer for fast tests: 128x128 input, 16x16 = 256 tokens, 256 codes.

    Same block structure as the official network (two residual blocks per level, attention
    at 16x16, fusion at three levels including the full-resolution one), ~1/20 of its cost.
    """
    return dict(
        img_size=128,
        nf=32,
        ch_mult=(1, 2, 2, 4),
        res_blocks=2,
        attn_resolutions=(16,),
        emb_dim=64,
        codebook_size=256,
        dim_embd=128,
        n_head=8,
        n_layers=2,
        connect_list=("32", "64", "128"),
    )


def formula_codeformer(config: Mapping[str, Any] | None = None):
    """A ``CodeFormer`` (eval mode, CPU, float32) filled with the formula.

    ``config`` holds ``CodeFormer`` keyword arguments (None: the official network). The
    network is built through ``CodeFormer.from_state_dict``, the same path as a real file.
    """
    from videofix.models.codeformer import CodeFormer

    with torch.device("meta"):
        skeleton = CodeFormer(**dict(config or {}))
    return CodeFormer.from_state_dict(formula_state_dict(skeleton))


def small_vqfr_config() -> dict[str, Any]:
    """A small VQFR v2 for fast tests: 128x128 input, 16x16 = 256 tokens, 128 codes (the
    input size follows from the levels, as `VQFRv2.from_state_dict` infers it)."""
    return dict(
        base_channels=32,
        channel_multipliers=(1, 2, 2, 4),
        num_enc_blocks=1,
        use_enc_attention=True,
        num_dec_blocks=1,
        use_dec_attention=True,
        code_dim=64,
        inpfeat_dim=16,
        deformable_groups=4,
        num_code=128,
        input_size=128,
    )


def formula_vqfr(config: Mapping[str, Any] | None = None):
    """A ``VQFRv2`` (eval mode, CPU, float32) filled with the formula (VQFR golden README),
    built through ``VQFRv2.from_state_dict`` like a real file. ``config``: ``VQFRv2`` keyword
    arguments (None: the released network)."""
    from videofix.models.vqfr import VQFRv2

    config = dict(config or {})
    with torch.device("meta"):
        skeleton = VQFRv2(**config)
    return VQFRv2.from_state_dict(formula_state_dict(skeleton), input_size=config.get("input_size"))
