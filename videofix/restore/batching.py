"""Fixed-shape network calls: the same face gives the same output whatever it is batched with.

A network's per-face output is not bit-identical across batch sizes (on CPU CodeFormer's
transformer differs by ~4e-6 between batch 1 and 4, enough to move a rounded pixel), but for
one fixed batch shape it is independent of the face's position and of the other faces in
the batch. `FixedBatchRestorer` therefore runs every `encode` / `decode` in chunks of exactly
`batch_size` faces, padding the last chunk by repeating a face of it. The local runner and
the Ray runner both use it, so a face restored in a segment of a film equals the same face
restored in one piece, even though the two runs batch it with different neighbours. Fixed
shapes are also what a GPU prefers; the cost is the padding of a track's last partial batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from videofix.models.base import Encoded

__all__ = ["FixedBatchRestorer", "fixed_batch_model"]


def fixed_batch_model(model, device, batch_size: int) -> "FixedBatchRestorer":
    """The one batching policy of videofix: `model` wrapped so the network always sees
    `network_batch_size(device, batch_size)` faces per call (1 on the CPU, where batching
    brings no speed and kernels change with the batch size; `batch_size` on a GPU, padded)."""
    from videofix.restore.crops import network_batch_size

    if getattr(model, "fixed_batch", False):
        return model
    return FixedBatchRestorer(model, network_batch_size(device, batch_size))


class FixedBatchRestorer:
    """A `CodeRestorer` running `model` only on batches of exactly `batch_size` faces.

    Args:
        model: a CodeRestorer (`encode(x)`, `decode(codes, state, fidelity)`).
        batch_size: the one batch size the network sees (>= 1).

    `encode(x)` takes (B, 3, S, S) RGB in [-1, 1] for any B >= 1 and returns an `Encoded` of B
    faces; `decode(codes (B, T) int64, state, fidelity)` returns (B, 3, S, S). Padded rows are
    computed and dropped.
    """

    fixed_batch = True

    def __init__(self, model, batch_size: int):
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self.model = model
        self.batch_size = int(batch_size)
        self.input_size = model.input_size
        self.num_tokens = model.num_tokens
        self.codebook_size = model.codebook_size

    def parameters(self):
        return self.model.parameters()

    def _chunks(self, n: int):
        for a in range(0, n, self.batch_size):
            yield a, min(n, a + self.batch_size)

    def _pad(self, t: Tensor, count: int) -> Tensor:
        if count == self.batch_size:
            return t
        # repeat the chunk's first face: real data, so no NaN from all-zero statistics
        return torch.cat([t, t[:1].expand(self.batch_size - count, *t.shape[1:])])

    def encode(self, x: Tensor) -> Encoded:
        parts = []
        for a, b in self._chunks(len(x)):
            enc = self.model.encode(self._pad(x[a:b], b - a))
            parts.append(enc if b - a == self.batch_size else enc.select(slice(0, b - a)))
        return parts[0] if len(parts) == 1 else Encoded.cat(parts)

    def decode(self, codes: Tensor, state: dict[str, Tensor], fidelity: float) -> Tensor:
        outs = []
        for a, b in self._chunks(len(codes)):
            n = b - a
            out = self.model.decode(self._pad(codes[a:b], n), {k: self._pad(v[a:b], n) for k, v in state.items()},
                                    fidelity)
            outs.append(out[:n])
        return outs[0] if len(outs) == 1 else torch.cat(outs)
