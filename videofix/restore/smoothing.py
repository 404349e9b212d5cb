"""Temporal smoothing of code predictions and of decoder-side statistics along a face track.

A code restorer predicts, per frame and per latent token, logits over its codebook. Picking
the argmax in every frame independently makes the chosen codes (eyes, skin texture, identity
details) jump between frames when the evidence is weak. Here the choice for frame t pools the
evidence of its neighbours t' within +-R frames of the same shot:

    evidence[t'] = confidence[t'] * softmax(logits[t'] / temperature)      (tokens x codes)
    score[t]     = sum over t' in window(t) of kernel(|t - t'|) * evidence[t']
    codes[t]     = argmax(score[t])

``kernel`` is a Gaussian in the frame distance, ``confidence`` is per token (the top
probability, or one minus the normalised entropy), so a blurred or noisy frame with flat
predictions weighs less than a sharp one. Windows shrink at the ends of a track and never
cross a cut. A window holding only frame t itself (R = 0, or a one-frame shot) gives exactly
``argmax(logits[t])``: the per-frame network.

Every per-frame operation is done frame by frame in a fixed order, so the result for a frame
does not depend on how frames were batched (the streaming engine relies on this).

Statistics smoothing (AdaIN): CodeFormer re-styles the codebook features with the per-channel
mean/std of ``lq_feat`` (AdaIN). Those statistics come from the noisy input and move from
frame to frame, which shifts colour and contrast of the whole face. :func:`channel_stats` and
:func:`restyle` let the engine replace a state tensor's per-channel mean/std by their
kernel-weighted average over the window while keeping its spatial pattern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "SmoothingConfig",
    "token_evidence",
    "combine_evidence",
    "window_indices",
    "smooth_codes",
    "channel_stats",
    "average_stats",
    "restyle",
    "ADAIN_EPS",
]

# CodeFormer's calc_mean_std: std = sqrt(unbiased variance + eps) over H*W, per channel.
ADAIN_EPS = 1e-5

_CONFIDENCES = ("max", "entropy", "none")


@dataclass(frozen=True)
class SmoothingConfig:
    """How code predictions are pooled along a track.

    Attributes:
        radius: R, frames on each side (0 = per-frame network, exactly).
        sigma: standard deviation of the Gaussian temporal kernel in frames; None means
            ``max(R / 2, 0.5)``.
        confidence: per-token weight of a frame's evidence: ``"max"`` (top probability),
            ``"entropy"`` (1 - entropy / log N) or ``"none"`` (1).
        temperature: logits are divided by this before the softmax (> 0).
    """

    radius: int = 4
    sigma: float | None = None
    confidence: str = "max"
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if int(self.radius) != self.radius or self.radius < 0:
            raise ValueError(f"radius must be an integer >= 0, got {self.radius!r}")
        if self.sigma is not None and not self.sigma > 0:
            raise ValueError(f"sigma must be > 0, got {self.sigma!r}")
        if self.confidence not in _CONFIDENCES:
            raise ValueError(f"confidence must be one of {_CONFIDENCES}, got {self.confidence!r}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature!r}")

    @property
    def effective_sigma(self) -> float:
        return float(self.sigma) if self.sigma is not None else max(self.radius / 2.0, 0.5)

    def kernel(self) -> tuple[float, ...]:
        """Weights for frame distances 0..R (float, kernel(0) = 1)."""
        s = self.effective_sigma
        return tuple(math.exp(-0.5 * (d / s) ** 2) for d in range(self.radius + 1))


def token_evidence(logits: Tensor, confidence: str = "max", temperature: float = 1.0) -> Tensor:
    """Per-token code probabilities weighted by the token's confidence.

    Args:
        logits: (B, T, N) or (T, N) float logits (any float dtype, any device).
        confidence: ``"max"``, ``"entropy"`` or ``"none"`` (see :class:`SmoothingConfig`).
        temperature: softmax temperature (> 0).

    Returns:
        float32 tensor of the same shape, values in [0, 1]; each token's row sums to its
        confidence.
    """
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if confidence == "none":
        return probs
    if confidence == "max":
        conf = probs.amax(dim=-1, keepdim=True)
    elif confidence == "entropy":
        n = probs.shape[-1]
        ent = -(probs * torch.log(probs.clamp_min(1e-30))).sum(dim=-1, keepdim=True)
        conf = (1.0 - ent / math.log(n)).clamp_min(1e-6)
    else:
        raise ValueError(f"unknown confidence {confidence!r}")
    return probs * conf


def combine_evidence(evidence: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Kernel-weighted sum of the window's evidence, then the best code per token.

    Args:
        evidence: W tensors (T, N) float32 from :func:`token_evidence`, in frame order.
        weights: W kernel weights, one per frame.

    Returns:
        (T,) int64 codes.
    """
    if len(evidence) != len(weights) or not evidence:
        raise ValueError("combine_evidence needs one weight per evidence tensor, at least one")
    score = evidence[0] * float(weights[0])
    for ev, w in zip(evidence[1:], weights[1:]):
        score = score + ev * float(w)  # fixed order: the result does not depend on batching
    return score.argmax(dim=-1)


def window_indices(t: int, shot_start: int, shot_stop: int, radius: int) -> range:
    """Frames whose evidence frame ``t`` pools: within +-radius and inside [shot_start, shot_stop)."""
    return range(max(shot_start, t - radius), min(shot_stop, t + radius + 1))


def _shot_bounds(count: int, cut_before: Sequence[bool] | np.ndarray | None) -> list[tuple[int, int]]:
    """[start, stop) of every shot of a track of ``count`` frames."""
    cuts = np.zeros(count, dtype=bool) if cut_before is None else np.asarray(cut_before, bool)
    if cuts.shape != (count,):
        raise ValueError(f"cut_before must have {count} entries, got shape {cuts.shape}")
    starts = [0] + [t for t in range(1, count) if cuts[t]]
    stops = starts[1:] + [count]
    return list(zip(starts, stops))


def smooth_codes(
    logits: Tensor,
    config: SmoothingConfig | None = None,
    cut_before: Sequence[bool] | np.ndarray | None = None,
) -> Tensor:
    """Temporally smoothed codes for a whole track held in memory.

    Gives the same codes as the streaming :class:`videofix.restore.temporal.TemporalRestorer`
    (same per-frame operations); use it to study smoothing without decoding.

    Args:
        logits: (F, T, N) float logits of F consecutive frames of one track.
        config: smoothing settings (default ``SmoothingConfig()``).
        cut_before: optional (F,) bools, true where a new shot starts.

    Returns:
        (F, T) int64 codes.
    """
    cfg = config or SmoothingConfig()
    if logits.dim() != 3:
        raise ValueError(f"logits must be (F, T, N), got shape {tuple(logits.shape)}")
    count = logits.shape[0]
    kernel = cfg.kernel()
    evidence = [token_evidence(logits[t], cfg.confidence, cfg.temperature) for t in range(count)]
    out = torch.empty(logits.shape[:2], dtype=torch.long, device=logits.device)
    for start, stop in _shot_bounds(count, cut_before):
        for t in range(start, stop):
            win = window_indices(t, start, stop, cfg.radius)
            if len(win) == 1:
                out[t] = logits[t].argmax(dim=-1)
            else:
                out[t] = combine_evidence([evidence[u] for u in win], [kernel[abs(u - t)] for u in win])
    return out


def channel_stats(feat: Tensor, eps: float = ADAIN_EPS) -> Tensor:
    """Per-channel mean and std as AdaIN computes them.

    Args:
        feat: (B, C, H, W) or (C, H, W) float feature map.

    Returns:
        float32 (B, C, 2) or (C, 2): [..., 0] the mean over H*W, [..., 1] sqrt(unbiased
        variance + eps).
    """
    flat = feat.float().flatten(-2)
    mean = flat.mean(dim=-1)
    std = (flat.var(dim=-1) + eps).sqrt()
    return torch.stack([mean, std], dim=-1)


def average_stats(stats: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Kernel-weighted average of per-frame (C, 2) statistics (fixed summation order)."""
    total = float(sum(weights))
    acc = stats[0] * float(weights[0])
    for s, w in zip(stats[1:], weights[1:]):
        acc = acc + s * float(w)
    return acc / total


def restyle(feat: Tensor, target: Tensor, eps: float = ADAIN_EPS) -> Tensor:
    """Give a feature map the per-channel statistics ``target`` and keep its spatial pattern.

    After ``y = restyle(x, target)``, ``channel_stats(y)`` equals ``target`` up to float
    rounding, so an AdaIN that reads its style from ``y`` uses the target statistics.

    Args:
        feat: (C, H, W) or (B, C, H, W) float feature map.
        target: (C, 2) or (B, C, 2) float32 [mean, std] as returned by :func:`channel_stats`.

    Returns:
        A tensor like ``feat`` (same dtype and device).
    """
    x = feat.float()
    flat = x.flatten(-2)
    mean = flat.mean(dim=-1)[..., None, None]
    raw_std = flat.var(dim=-1).clamp_min(1e-12).sqrt()[..., None, None]
    t_mean = target[..., 0].to(x.device)[..., None, None]
    t_std = (target[..., 1].to(x.device) ** 2 - eps).clamp_min(0.0).sqrt()[..., None, None]
    return ((x - mean) / raw_std * t_std + t_mean).to(feat.dtype)
