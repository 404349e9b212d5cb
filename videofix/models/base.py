"""The contract every restoration network implements (see docs/DESIGN.md, "Restorers").

A restorer works in two steps so that the temporal engine can smooth code predictions
between them:

1. ``encode(x) -> Encoded``: predict, for every latent token, logits over the codebook,
   and keep what decoding needs (encoder skip features, the low-quality latent, ...).
2. ``decode(codes, state, fidelity) -> image``: turn one chosen code per token back into
   an image, using the per-sample state from step 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor


@dataclass
class Encoded:
    """What a restorer's ``encode`` returns for a batch of B faces.

    Attributes:
        logits: (B, T, N) float32; T latent tokens (row-major over the latent grid,
            token = y * side + x), N codebook entries. ``argmax(-1)`` gives the codes.
        state: per-sample tensors, batch dimension first (each of shape (B, ...)), that
            ``decode`` needs; the keys are the restorer's own (CodeFormer: ``lq_feat`` and
            ``enc_<resolution>`` skip features).
    """

    logits: Tensor
    state: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.logits.dim() != 3:
            raise ValueError(f"Encoded.logits must be (B, T, N), got shape {tuple(self.logits.shape)}")
        batch = self.logits.shape[0]
        for key, value in self.state.items():
            if value.shape[:1] != (batch,):
                raise ValueError(
                    f"Encoded.state[{key!r}] has batch {tuple(value.shape)[:1]}, logits have {batch}"
                )

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    @property
    def codes(self) -> Tensor:
        """(B, T) int64: the most likely code per token (same as the official softmax top-1)."""
        return self.logits.argmax(dim=-1)

    def select(self, idx: int | slice | Sequence[int] | Tensor) -> Encoded:
        """Samples ``idx`` of the batch, keeping the batch dimension.

        ``idx`` may be an int (gives a batch of 1), a slice, a list of ints or an index /
        bool tensor.
        """
        if isinstance(idx, int):
            idx = slice(idx, idx + 1) if idx != -1 else slice(-1, None)
        elif not isinstance(idx, slice):
            idx = torch.as_tensor(idx)
            if idx.dtype != torch.bool:
                idx = idx.long()

        def take(t: Tensor) -> Tensor:
            return t[idx.to(t.device)] if isinstance(idx, Tensor) else t[idx]

        return Encoded(logits=take(self.logits), state={k: take(v) for k, v in self.state.items()})

    @staticmethod
    def cat(items: Sequence[Encoded]) -> Encoded:
        """Join several ``Encoded`` along the batch; all must have the same state keys."""
        items = list(items)
        if not items:
            raise ValueError("Encoded.cat needs at least one item")
        keys = set(items[0].state)
        for item in items[1:]:
            if set(item.state) != keys:
                raise ValueError(
                    f"Encoded.cat: state keys differ ({sorted(keys)} vs {sorted(item.state)})"
                )
        return Encoded(
            logits=torch.cat([item.logits for item in items], dim=0),
            state={k: torch.cat([item.state[k] for item in items], dim=0) for k in items[0].state},
        )

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Encoded:
        """Move every tensor (e.g. to the CPU to hold a window of frames); logits keep float32."""
        return Encoded(
            logits=self.logits.to(device=device),
            state={
                k: v.to(device=device, dtype=dtype if v.is_floating_point() else None)
                for k, v in self.state.items()
            },
        )


@runtime_checkable
class CodeRestorer(Protocol):
    """A code-predicting face restorer (CodeFormer, VQFR).

    Attributes:
        input_size: side S of the square input, 512 for the official checkpoints.
        num_tokens: T, latent tokens per face (256 = 16 x 16, token = y * 16 + x).
        codebook_size: N, codebook entries (1024).
    """

    input_size: int
    num_tokens: int
    codebook_size: int

    def encode(self, x: Tensor) -> Encoded:
        """x: (B, 3, S, S) RGB float in [-1, 1] -> Encoded (logits (B, T, N) float32)."""
        ...

    def decode(self, codes: Tensor, state: dict[str, Tensor], fidelity: float) -> Tensor:
        """codes: (B, T) int64, state from ``encode`` -> (B, 3, S, S) RGB, unclamped."""
        ...
