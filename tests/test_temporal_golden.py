"""The temporal engine at R = 0 is the per-frame network: golden case A through the engine.

Full-size CodeFormer with the golden-formula weights (shared/golden/README.md), input A,
w = 0.5, AdaIN on. One encode + one decode of a 512x512 face (~20 s on a 2-core CPU).
Reference data: tests/data/golden (tests/golden_data.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from golden_data import golden

from videofix.restore.crops import tensor_to_crops
from videofix.restore.temporal import TemporalRestorer


@pytest.mark.slow
def test_radius_zero_through_the_engine_matches_golden_case_a():
    from videofix.models.synthetic import formula_codeformer

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model = formula_codeformer()
    g = golden()
    crop = g.array("input_A_rgb_uint8")
    engine = TemporalRestorer(model, radius=0, fidelity=0.5, batch_size=1, keep_output=True)
    faces = engine.push("a", 0, crop) + engine.flush()
    assert len(faces) == 1
    face = faces[0]

    g.check(face.codes[None], "A_codes_int32")  # exact
    out = face.output.numpy()[None]
    g.check(out[:, :, 192:320, 192:320], "A_out_crop192_320_float32")  # max abs <= 5e-4
    g.check(out, "A_out_float16")  # |ref - ours| <= 1e-3 + 1e-3*|ref|
    # the uint8 image is the official post-processing of that output
    assert np.array_equal(face.image, tensor_to_crops(face.output[None])[0])
