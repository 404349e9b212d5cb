"""The frames API (`videofix.pipeline.frames`) with the old-film features on.

Same material as the front-end tests: real faces (scikit-image's astronaut,
`videofix.samples.face_content`, with fresh noise every frame: grain to match), the small
CodeFormer filled with the formula, dlib's detector. The batch mixes colour and
black-and-white frames and holds repeated frames (a slow film in a faster container).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videofix.faces import create_detector
from videofix.models.synthetic import formula_codeformer, small_codeformer_config
from videofix.pipeline.frames import detect_and_track, paste_back, restore_frames, restore_tracks
from videofix.pipeline.local import LoadedStages, RestoreSettings
from videofix.samples import face_content

WIDTH, HEIGHT = 320, 240
RADIUS, BATCH = 1, 4


def grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB with R = G = B (its luma)."""
    y = np.rint(rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    return np.repeat(np.clip(y, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def stages():
    return LoadedStages(formula_codeformer(small_codeformer_config()), create_detector("dlib"), None,
                        torch.device("cpu"))


@pytest.fixture(scope="module")
def film_frames() -> np.ndarray:
    """8 uint8 frames: 0-3 colour, 4-7 black-and-white; 3 repeats 2 and 6 repeats 5."""
    content = face_content(WIDTH, HEIGHT, face_size=160, seed=1)
    frames = [content(i) for i in range(8)]
    frames[3] = frames[2].copy()
    frames[4:] = [grey(f) for f in frames[4:]]
    frames[6] = frames[5].copy()
    return np.stack(frames)


def settings(**kw) -> RestoreSettings:
    return RestoreSettings(fidelity=0.7, temporal_radius=RADIUS, batch_size=BATCH, parsing=False, **kw)


def test_split_steps_equal_one_call_with_film_features(stages, film_frames):
    s = settings()  # CLI defaults: color auto, grain auto, dedup on
    frames = torch.from_numpy(film_frames.astype(np.float32) / 255.0 + np.float32(0.3 / 255.0))  # like an IMAGE batch
    analysis = detect_and_track(frames, stages.detector, settings=s)
    film = analysis.extra["film"]
    assert [2, 3] in film["repeat_runs"] and [5, 6] in film["repeat_runs"]
    assert {(sh["start"], sh["mode"]) for sh in film["shots"]} >= {(0, "color"), (4, "luma")}

    expected = restore_frames(frames, stages, s, analysis=analysis)
    restored = restore_tracks(frames, analysis, stages, s)
    assert restored.repeats == {3: 2, 6: 5}
    # grain on (its level itself is test_film's: the formula network's faces are noisier than
    # this material, so no grain is added here), luma-only paste from the grey shot on
    assert restored.grain and restored.grain_seed == 0 and dict(restored.shot_modes)[4] == "luma"
    for (track, frame), crop in restored.crops.items():  # a repeat shows its first frame's face
        if frame in restored.repeats:
            assert crop is restored.crops[(track, restored.repeats[frame])]
    got = paste_back(frames, analysis, restored, parser=stages.parser)
    assert torch.equal(got, expected)

    out = np.rint(expected.numpy() * 255)
    src = frames.numpy() * 255
    changed = np.any(out != np.rint(src), axis=-1)
    assert changed[2].mean() > 0.02 and changed[5].mean() > 0.02, "faces must be restored in both shots"
    np.testing.assert_array_equal(out[3], out[2])  # repeated frames: the same restored face
    np.testing.assert_array_equal(out[6], out[5])
    grey_out = out[4:]
    assert (grey_out[..., 0] == grey_out[..., 1]).all() and (grey_out[..., 1] == grey_out[..., 2]).all()


def test_grey_batch_stays_grey_with_color_auto(stages, film_frames):
    batch = np.stack([grey(f) for f in film_frames[:5]])  # with the repeat 2 -> 3
    out = restore_frames(batch, stages, settings())  # color="auto"
    assert out.dtype == np.uint8 and out.shape == batch.shape
    assert np.any(out != batch), "faces must be restored"
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all(), "R = G = B everywhere"
    # the network itself paints colour: forced colour paste brings it in
    coloured = restore_frames(batch, stages, settings(color="color", grain="off"))
    assert np.any(coloured[..., 0] != coloured[..., 1]) or np.any(coloured[..., 1] != coloured[..., 2])
