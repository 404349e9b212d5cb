"""`videofix restore-faces` and `videofix models` end to end, with a small formula checkpoint.

The checkpoint is written in the official format ``{"params_ema": state_dict}``; the small
configuration (128x128 crops) keeps every network pass well under a second.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from videofix.cli import main
from videofix.models import load_restorer
from videofix.models.synthetic import formula_codeformer, small_codeformer_config
from videofix.restore.crops import restore_crops, tensor_to_crops

SIZE = 128


@pytest.fixture(autouse=True)
def isolated_env(offline_models_env):
    """Every test starts offline, with an empty private cache and no models / ComfyUI folder."""


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The small network gains nothing from threads, and on a shared CPU they stall each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small_model():
    return formula_codeformer(small_codeformer_config())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, small_model) -> Path:
    path = tmp_path_factory.mktemp("weights") / "codeformer.pth"
    torch.save({"params_ema": small_model.state_dict()}, path)
    return path


def face_like(seed: int) -> np.ndarray:
    """A smooth, asymmetric uint8 RGB test picture (so an R/B swap would show)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) / SIZE
    rng = np.random.default_rng(seed)
    r = 200 * x + 30 * np.sin(9 * y + seed)
    g = 120 + 60 * np.cos(5 * x * y + seed)
    b = 40 + 150 * y
    rgb = np.stack([r, g, b], axis=-1) + rng.normal(0, 8, (SIZE, SIZE, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_png(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def read_png(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


# -------------------------------------------------------------------- restoring


def test_restore_through_weights(tmp_path, capsys, checkpoint, small_model):
    crop = face_like(0)
    src = write_png(tmp_path / "in" / "face.png", crop)
    code, err = run_cli(
        capsys, "restore-faces", str(src), "-o", str(tmp_path / "out"), "--weights", str(checkpoint),
        "--device", "cpu", "--fidelity", "0.7",
    )  # fmt: skip
    assert code == 0, err
    out = read_png(tmp_path / "out" / "face.png")
    assert out.shape == (SIZE, SIZE, 3)
    expected = restore_crops(small_model, crop[None], fidelity=0.7)[0]
    assert np.array_equal(out, expected)  # same pixels, same colour order as the library
    assert not np.array_equal(out, crop)


def test_restore_through_models_dir(tmp_path, capsys, checkpoint, small_model):
    models = tmp_path / "models"
    models.mkdir()
    os.link(checkpoint, models / "codeformer.pth")
    crop = face_like(1)
    src = write_png(tmp_path / "in" / "a.png", crop)
    code, err = run_cli(capsys, "restore-faces", str(src), "-o", str(tmp_path / "out"), "--models-dir", str(models))
    assert code == 0, err
    assert np.array_equal(read_png(tmp_path / "out" / "a.png"), restore_crops(small_model, crop[None], 0.5)[0])


def test_folder_input_and_batch_size_invariance(tmp_path, capsys, checkpoint):
    folder = tmp_path / "crops"
    for i in range(3):
        write_png(folder / f"f{i}.png", face_like(10 + i))
    outputs = {}
    for batch in (1, 2, 3):
        out = tmp_path / f"out{batch}"
        code, err = run_cli(
            capsys, "restore-faces", str(folder), "-o", str(out), "--weights", str(checkpoint),
            "--batch-size", str(batch), "--fidelity", "1.0",
        )  # fmt: skip
        assert code == 0, err
        outputs[batch] = [read_png(out / f"f{i}.png") for i in range(3)]
    for batch in (2, 3):
        assert all(np.array_equal(a, b) for a, b in zip(outputs[1], outputs[batch]))


def test_restore_crops_is_batch_size_invariant(small_model):
    crops = np.stack([face_like(20 + i) for i in range(5)])
    first = restore_crops(small_model, crops, fidelity=0.5, batch_size=1)
    assert first.dtype == np.uint8 and first.shape == crops.shape
    for batch in (2, 5):
        assert np.array_equal(first, restore_crops(small_model, crops, fidelity=0.5, batch_size=batch))
    # each crop is restored on its own: the result does not depend on its neighbours
    assert np.array_equal(first[3], restore_crops(small_model, crops[3:4], fidelity=0.5)[0])


def test_official_output_rounding():
    out = torch.tensor([-3.0, -1.0, -0.5, 0.0, 0.00196, 0.5, 0.999, 1.0, 7.0]).view(1, 1, 3, 3).repeat(1, 3, 1, 1)
    # official: clamp [-1, 1], (t + 1) / 2, * 255 in float32, round half to even
    ref = np.round(((np.clip(out.numpy(), -1, 1) + 1) / 2).astype(np.float32) * np.float32(255.0)).astype(np.uint8)
    got = tensor_to_crops(out)
    assert got.shape == (1, 3, 3, 3)
    assert np.array_equal(got[0, :, :, 0], ref[0, 0])
    assert got[0, 0, 0, 0] == 0 and got[0, 2, 2, 0] == 255 and got[0, 1, 0, 0] == 128  # 127.5 -> 128 (even)


def test_other_sizes_are_resized_like_the_official_script(tmp_path, capsys, checkpoint, small_model):
    big = cv2.resize(face_like(3), (200, 200), interpolation=cv2.INTER_CUBIC)
    src = write_png(tmp_path / "big.png", big)
    code, err = run_cli(capsys, "restore-faces", str(src), "-o", str(tmp_path / "out"), "--weights", str(checkpoint))
    assert code == 0, err
    resized = cv2.resize(big, (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(read_png(tmp_path / "out" / "big.png"), restore_crops(small_model, resized[None], 0.5)[0])


def test_load_restorer_device_and_dtype(checkpoint):
    model = load_restorer(weights=checkpoint, device="cpu", dtype="fp32")
    assert model.input_size == SIZE and model.num_tokens == 256 and model.codebook_size == 256
    assert next(model.parameters()).device.type == "cpu" and not model.training
    from videofix.errors import DeviceError

    with pytest.raises(DeviceError, match="fp16 needs a CUDA GPU"):
        load_restorer(weights=checkpoint, device="cpu", dtype="fp16")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            load_restorer(weights=checkpoint, device="cuda")


# ------------------------------------------------------------------------ errors


def assert_one_line_error(code: int, err: str, expected_code: int, *needles: str) -> None:
    assert code == expected_code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("videofix: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_truncated_checkpoint(tmp_path, capsys, checkpoint):
    bad = tmp_path / "codeformer.pth"
    bad.write_bytes(checkpoint.read_bytes()[:100_000])
    src = write_png(tmp_path / "face.png", face_like(4))
    code, err = run_cli(capsys, "restore-faces", str(src), "-o", str(tmp_path / "out"), "--weights", str(bad))
    assert_one_line_error(code, err, 4, str(bad), "truncated")
    assert not (tmp_path / "out" / "face.png").exists()


def test_wrong_key_checkpoint(tmp_path, capsys, small_model):
    sd = dict(small_model.state_dict())
    sd["idx_pred_layer.1.weights"] = sd.pop("idx_pred_layer.1.weight")
    bad = tmp_path / "renamed.pth"
    torch.save({"params_ema": sd}, bad)
    src = write_png(tmp_path / "face.png", face_like(5))
    code, err = run_cli(capsys, "restore-faces", str(src), "-o", str(tmp_path / "out"), "--weights", str(bad))
    assert_one_line_error(code, err, 4, str(bad), "idx_pred_layer.1.weight", "idx_pred_layer.1.weights")


def test_missing_weights_offline(tmp_path, capsys):
    src = write_png(tmp_path / "face.png", face_like(6))
    code, err = run_cli(capsys, "restore-faces", str(src), "-o", str(tmp_path / "out"), "--models-dir", str(tmp_path))
    assert_one_line_error(code, err, 4, "codeformer.pth", "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth")


def test_bad_inputs(tmp_path, capsys, checkpoint):
    code, err = run_cli(capsys, "restore-faces", str(tmp_path / "nope.png"), "-o", str(tmp_path / "o"), "--weights", str(checkpoint))
    assert_one_line_error(code, err, 3, "nope.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    code, err = run_cli(capsys, "restore-faces", str(junk), "-o", str(tmp_path / "o"), "--weights", str(checkpoint))
    assert_one_line_error(code, err, 3, "not a readable image")
    code, err = run_cli(capsys, "restore-faces", str(junk), "-o", str(tmp_path / "o"), "--fidelity", "2")
    assert_one_line_error(code, err, 2, "--fidelity")


def test_error_through_the_real_entry_point(tmp_path, checkpoint):
    bad = tmp_path / "codeformer.pth"
    bad.write_bytes(b"\x80\x02garbage")
    src = write_png(tmp_path / "face.png", face_like(7))
    env = {**os.environ, "VIDEOFIX_OFFLINE": "1", "VIDEOFIX_CACHE": str(tmp_path / "cache")}
    env.pop("VIDEOFIX_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "videofix", "restore-faces", str(src), "-o", str(tmp_path / "out"), "--weights", str(bad)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert_one_line_error(proc.returncode, proc.stderr, 4, str(bad))


# ------------------------------------------------------------------------ models


def test_models_list_and_path(tmp_path, capsys, checkpoint):
    models = tmp_path / "models"
    models.mkdir()
    os.link(checkpoint, models / "codeformer.pth")
    assert main(["models", "--models-dir", str(models), "path", "codeformer"]) == 0
    assert capsys.readouterr().out.strip() == str(models / "codeformer.pth")
    assert main(["models", "--models-dir", str(models), "list"]) == 0
    out = capsys.readouterr().out
    assert str(models / "codeformer.pth") in out and "S-Lab" in out and "VQFR_v2.pth" in out
    code, err = run_cli(capsys, "models", "path", "parsenet")
    assert_one_line_error(code, err, 4, "parsing_parsenet.pth", "facexlib/releases/download/v0.2.2")
    code, err = run_cli(capsys, "models", "fetch", "codeformer")
    assert_one_line_error(code, err, 4, "VIDEOFIX_OFFLINE")
