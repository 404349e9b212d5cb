"""videofix.restore.smoothing: code pooling along a track, windows, cuts, AdaIN statistics."""

from __future__ import annotations

import pytest
import torch

from videofix.metrics import code_flip_rate
from videofix.restore.smoothing import (
    SmoothingConfig,
    channel_stats,
    restyle,
    smooth_codes,
    window_indices,
)


def _noisy_track(frames=24, tokens=64, codes=32, noise=1.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(tokens, codes, generator=g)
    return base + noise * torch.randn(frames, tokens, codes, generator=g)


def test_radius_zero_is_the_per_frame_argmax_exactly():
    logits = _noisy_track()
    assert torch.equal(smooth_codes(logits, SmoothingConfig(radius=0)), logits.argmax(-1))
    # one-frame shots have a one-frame window at any radius
    cuts = [True] * logits.shape[0]
    assert torch.equal(smooth_codes(logits, SmoothingConfig(radius=4), cut_before=cuts), logits.argmax(-1))


@pytest.mark.parametrize("confidence", ["max", "entropy", "none"])
def test_smoothing_cuts_flips_on_a_noisy_still_track(confidence):
    logits = _noisy_track()
    flips = {
        r: code_flip_rate(smooth_codes(logits, SmoothingConfig(radius=r, confidence=confidence)).numpy())
        for r in (0, 2, 4, 8)
    }
    assert flips[0] > 0.3
    assert flips[4] < 0.5 * flips[0]
    assert flips[8] <= flips[2]


def test_windows_never_cross_a_cut():
    # shot A (frames 0-2) mildly prefers code 0; shot B (frames 3-5) strongly prefers code 1.
    logits = torch.zeros(6, 2, 3)
    logits[:3, :, 0] = 0.2
    logits[3:, :, 1] = 8.0
    cfg = SmoothingConfig(radius=3)
    crossing = smooth_codes(logits, cfg)
    assert (crossing[2] == 1).all(), "construction check: without the cut, frame 2 follows shot B"
    cut = smooth_codes(logits, cfg, cut_before=[False, False, False, True, False, False])
    assert (cut[:3] == 0).all()
    assert (cut[3:] == 1).all()


def test_window_shrinks_at_track_ends_and_shots():
    assert list(window_indices(0, 0, 10, 3)) == [0, 1, 2, 3]
    assert list(window_indices(9, 0, 10, 3)) == [6, 7, 8, 9]
    assert list(window_indices(5, 4, 7, 3)) == [4, 5, 6]


def test_confident_frames_outweigh_flat_ones():
    # frame 1 is flat (low confidence) and slightly prefers code 2; its neighbours are sure of 0.
    logits = torch.zeros(3, 1, 4)
    logits[0, 0, 0] = logits[2, 0, 0] = 6.0
    logits[1, 0, 2] = 0.5
    assert smooth_codes(logits, SmoothingConfig(radius=1))[1, 0] == 0


def test_restyle_gives_the_target_statistics_and_keeps_the_pattern():
    g = torch.Generator().manual_seed(3)
    feat = torch.randn(8, 16, 16, generator=g) * 3 + 1
    target = torch.stack([torch.linspace(-1, 1, 8), torch.linspace(0.5, 2, 8)], dim=-1)
    out = restyle(feat, target)
    assert torch.allclose(channel_stats(out), target, atol=1e-5)
    # same spatial pattern: per-channel correlation is 1
    a = feat.flatten(1) - feat.flatten(1).mean(1, keepdim=True)
    b = out.flatten(1) - out.flatten(1).mean(1, keepdim=True)
    corr = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    assert torch.allclose(corr, torch.ones(8), atol=1e-5)


def test_config_validation():
    with pytest.raises(ValueError):
        SmoothingConfig(radius=-1)
    with pytest.raises(ValueError):
        SmoothingConfig(confidence="bogus")
    assert SmoothingConfig(radius=4).kernel()[0] == 1.0
