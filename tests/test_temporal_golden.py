"""The temporal engine at R = 0 is the per-frame network: golden case A through the engine.

Full-size CodeFormer with the golden-formula weights (shared/golden/README.md), input A,
w = 0.5, AdaIN on. One encode + one decode of a 512x512 face (~20 s on a 2-core CPU).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from videofix.restore.crops import tensor_to_crops
from videofix.restore.temporal import TemporalRestorer


def _golden_root() -> Path:
    repo = Path(__file__).resolve().parents[1]
    for c in (os.environ.get("VIDEOFIX_GOLDEN", ""), str(repo / "shared" / "golden"), "/work/shared/golden"):
        if c and (Path(c) / "A_codes_int32.npy").is_file():
            return Path(c)
    pytest.skip("golden data not found (set VIDEOFIX_GOLDEN to shared/golden)", allow_module_level=True)


GOLDEN = _golden_root()


@pytest.mark.slow
def test_radius_zero_through_the_engine_matches_golden_case_a():
    from videofix.models.synthetic import formula_codeformer

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model = formula_codeformer()
    crop = np.load(GOLDEN / "input_A_rgb_uint8.npy")
    engine = TemporalRestorer(model, radius=0, fidelity=0.5, batch_size=1, keep_output=True)
    faces = engine.push("a", 0, crop) + engine.flush()
    assert len(faces) == 1
    face = faces[0]

    assert np.array_equal(face.codes, np.load(GOLDEN / "A_codes_int32.npy")[0].astype(np.int64))
    out = face.output.numpy()[None]
    crop_ref = np.load(GOLDEN / "A_out_crop192_320_float32.npy")
    assert np.abs(out[:, :, 192:320, 192:320] - crop_ref).max() <= 5e-4
    full_ref = np.load(GOLDEN / "A_out_float16.npy").astype(np.float32)
    assert (np.abs(full_ref - out) <= 1e-3 + 1e-3 * np.abs(full_ref)).all()
    # the uint8 image is the official post-processing of that output
    assert np.array_equal(face.image, tensor_to_crops(face.output[None])[0])
