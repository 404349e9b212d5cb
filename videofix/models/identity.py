"""The null restorer (`--model identity`): gives back the aligned crop, loads no weights.

It measures the pipeline's *feed rate*: everything but the network (decode, detection,
tracking, alignment, the temporal engine's bookkeeping, crop <-> tensor conversion, paste,
colour conversion, encode), in faces/s. It implements ``CodeRestorer`` like CodeFormer and
VQFR, so it runs through exactly the same path (``load_restorer`` -> ``fixed_batch_model``
-> ``TemporalRestorer`` -> ``FaceRestorationPass``):

- ``encode(x)`` returns one latent token with a one-entry codebook (logits (B, 1, 1) zeros:
  the engine's evidence pooling and code choice run, trivially) and keeps the input as the
  decode state ``{"x": (B, 3, S, S)}``;
- ``decode(codes, state, fidelity)`` returns ``state["x"]``, so the restored crop equals the
  aligned crop exactly (the official post-processing inverts the official pre-processing
  to the same uint8 value; float16/bfloat16 inputs round back to it too).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from videofix.models.base import Encoded


class IdentityRestorer(nn.Module):
    """A ``CodeRestorer`` whose output is its input (see the module docstring).

    input_size: crop side S (512 like the official networks, so alignment and paste cost
    what they cost with CodeFormer).
    """

    num_tokens = 1
    codebook_size = 1

    def __init__(self, input_size: int = 512):
        super().__init__()
        self.input_size = int(input_size)
        # an empty parameter: the runners read the model's device and dtype from its parameters
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def encode(self, x: Tensor) -> Encoded:
        """x: (B, 3, S, S) RGB float in [-1, 1] -> logits (B, 1, 1) float32 zeros, state {"x": x}."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"identity restorer: expected (B, 3, S, S), got {tuple(x.shape)}")
        logits = torch.zeros((x.shape[0], 1, 1), dtype=torch.float32, device=x.device)
        return Encoded(logits=logits, state={"x": x})

    def decode(self, codes: Tensor, state: dict[str, Tensor], fidelity: float) -> Tensor:
        """codes (B, 1) int64 (ignored), state from ``encode`` -> (B, 3, S, S): the input."""
        return state["x"]

    def forward(self, x: Tensor, w: float = 0.0) -> Tensor:
        return x
