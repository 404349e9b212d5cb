"""videofix.metrics: code flip rate and temporal flicker."""

from __future__ import annotations

import math

import numpy as np
import pytest

from videofix.metrics import TrackMetrics, code_flip_rate, json_number, temporal_flicker


def test_flip_rate_counts_changed_tokens_between_consecutive_frames():
    codes = np.array([[1, 2, 3, 4], [1, 2, 3, 5], [9, 9, 3, 5]])
    # pair 0-1: 1 of 4 changed; pair 1-2: 2 of 4 changed -> 3 / 8
    assert code_flip_rate(codes) == pytest.approx(3 / 8)
    assert code_flip_rate(codes[:1]) != code_flip_rate(codes[:1])  # NaN for one frame
    assert code_flip_rate(np.repeat(codes[:1], 5, axis=0)) == 0.0


def test_flip_rate_skips_pairs_across_a_cut():
    codes = np.array([[1, 1], [1, 1], [7, 7], [7, 7]])
    assert code_flip_rate(codes) == pytest.approx(2 / 6)
    assert code_flip_rate(codes, cut_before=[False, False, True, False]) == 0.0
    assert math.isnan(code_flip_rate(codes[:2], cut_before=[False, True]))
    with pytest.raises(ValueError):
        code_flip_rate(codes, cut_before=[False, True])


def test_flicker_is_restored_change_over_input_change():
    rng = np.random.default_rng(0)
    inputs = rng.integers(0, 256, size=(5, 8, 8, 3), dtype=np.uint8)
    still = np.repeat(inputs[:1], 5, axis=0)
    assert temporal_flicker(still, inputs) == 0.0
    assert temporal_flicker(inputs, inputs) == pytest.approx(1.0)
    half = (inputs.astype(np.float64) - 128.0) * 0.5 + 128.0
    assert temporal_flicker(half, inputs.astype(np.float64)) == pytest.approx(0.5)
    assert temporal_flicker(inputs, still) == math.inf
    assert math.isnan(temporal_flicker(still, still))


def test_flicker_ignores_the_jump_at_a_cut():
    a = np.zeros((4, 4, 4, 3), np.uint8)
    a[2:] = 200  # a cut between frames 1 and 2
    x = a.copy()
    x[1] += 10
    x[3] += 10
    cuts = [False, False, True, False]
    # restored is still within each shot; input moves by 10 within each shot
    assert temporal_flicker(a, x, cut_before=cuts) == 0.0
    assert temporal_flicker(a, x) > 0.0


def test_streaming_track_metrics_equal_the_batch_functions():
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 4, size=(7, 16))
    restored = rng.integers(0, 256, size=(7, 6, 6, 3), dtype=np.uint8)
    inputs = rng.integers(0, 256, size=(7, 6, 6, 3), dtype=np.uint8)
    cuts = [False, False, False, True, False, False, False]
    m = TrackMetrics()
    for t in range(7):
        m.update(codes[t], restored[t], inputs[t], cut_before=cuts[t])
    assert m.code_flip_rate == pytest.approx(code_flip_rate(codes, cuts))
    assert m.flicker == pytest.approx(temporal_flicker(restored, inputs, cuts))
    summary = m.summary()
    assert summary["frames"] == 7
    assert summary["code_flip_rate"] == pytest.approx(code_flip_rate(codes, cuts))


def test_streaming_sums_of_uint8_crops_are_exact_integers():
    """The streaming sums (what Ray segments add up) of full-size uint8 crops equal numpy's
    int64 sums exactly, also for crops that are views of a batch, and a crop's buffer
    reused by the caller after `update` changes nothing."""
    rng = np.random.default_rng(2)
    batch = rng.integers(0, 256, size=(4, 512, 512, 3), dtype=np.uint8)
    inputs = rng.integers(0, 256, size=(4, 512, 512, 3), dtype=np.uint8)
    m = TrackMetrics()
    buffer = np.empty((512, 512, 3), np.uint8)
    for t in range(4):
        buffer[...] = inputs[t]
        m.update(None, batch[t][:, ::-1] if t % 2 else batch[t], buffer)
        buffer[...] = 0  # the caller reuses its buffer
    want_r = want_x = 0
    for t in range(1, 4):
        prev = batch[t - 1][:, ::-1] if (t - 1) % 2 else batch[t - 1]
        cur = batch[t][:, ::-1] if t % 2 else batch[t]
        want_r += int(np.abs(cur.astype(np.int64) - prev).sum())
        want_x += int(np.abs(inputs[t].astype(np.int64) - inputs[t - 1]).sum())
    assert m.restored_abs_diff == want_r and m.input_abs_diff == want_x
    assert m.compared_values == 3 * 512 * 512 * 3


def test_json_number_drops_nan_and_inf():
    assert json_number(math.nan) is None
    assert json_number(math.inf) is None
    assert json_number(0.25) == 0.25
