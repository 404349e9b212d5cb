"""Layers both restorers share (the VQGAN building blocks of CodeFormer and VQFR)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def group_norm(channels: int) -> nn.GroupNorm:
    """The VQGAN normalisation: 32 groups, eps 1e-6, affine."""
    return nn.GroupNorm(num_groups=32, num_channels=channels, eps=1e-6, affine=True)


class AttnBlock(nn.Module):
    """Single-head spatial self-attention with 1x1-conv projections (keys: norm, q, k, v,
    proj_out), scores scaled by C^-0.5, residual: x + proj_out(attention)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = group_norm(channels)
        self.q = nn.Conv2d(channels, channels, kernel_size=1)
        self.k = nn.Conv2d(channels, channels, kernel_size=1)
        self.v = nn.Conv2d(channels, channels, kernel_size=1)
        self.proj_out = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        normed = self.norm(x)
        # (B, C, H, W) -> (B, HW, C): one token per pixel
        q = self.q(normed).flatten(2).transpose(1, 2)
        k = self.k(normed).flatten(2).transpose(1, 2)
        v = self.v(normed).flatten(2).transpose(1, 2)
        attended = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(C)) v
        attended = attended.transpose(1, 2).reshape(b, c, h, w)
        return x + self.proj_out(attended)
