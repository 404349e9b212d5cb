"""The torch warp / paste path agrees with the OpenCV path (CPU tensors here; CUDA when present).

Tolerance: OpenCV interpolates with 5-bit fixed-point weights, torch in float, so values
differ by at most 2 grey levels (mean under 0.1 level); pixels outside the mask are equal.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from videofix.faces import estimate_alignment, paste_affine, paste_face, paste_mask, upscale_frame, warp_face
from videofix.faces.gpu import paste_face_torch, warp_face_torch

ASTRO_LM = np.array([[203.3, 101.7], [246.8, 103.8], [225.0, 127.0], [200.0, 139.0], [246.0, 141.0]], np.float32)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut().copy()


def _t(img: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).to(device)


def _crop(seed=0):
    rng = np.random.default_rng(seed)
    return cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (512, 512), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shift", [(0, 0), (-180, -80)])  # inside; cut by the border (border grey)
def test_warp_matches_opencv(device, shift):
    img = astronaut()
    a = estimate_alignment(ASTRO_LM + np.array(shift, np.float32))
    ref = warp_face(img, a).astype(np.float32)
    got = warp_face_torch(_t(img, device), a).round().permute(1, 2, 0).cpu().numpy()  # cv2 rounds to uint8
    diff = np.abs(got - ref)
    assert diff.max() <= 2.0 and diff.mean() < 0.1


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("upscale", [1, 2])
def test_paste_matches_opencv_and_leaves_outside_untouched(device, upscale):
    img = upscale_frame(astronaut(), upscale)
    a = estimate_alignment(ASTRO_LM)
    crop = _crop()
    ref = paste_face(img, crop, a, upscale=upscale)
    got = paste_face_torch(_t(img, device), _t(crop, device), a, upscale=upscale)
    assert got.dtype == torch.uint8
    got = got.permute(1, 2, 0).cpu().numpy()
    diff = np.abs(got.astype(int) - ref)
    assert diff.max() <= 2 and diff.mean() < 0.1
    m = paste_mask(paste_affine(a, upscale), 512, img.shape[:2], upscale=upscale)
    np.testing.assert_array_equal(got[m == 0], img[m == 0])


@pytest.mark.parametrize("device", DEVICES)
def test_paste_with_parse_mask_and_float_frames(device):
    from videofix.faces import parse_map_to_mask

    img = astronaut()
    a = estimate_alignment(ASTRO_LM - np.array([150, 60], np.float32))  # cut by the border
    crop = _crop(3)
    pm = parse_map_to_mask(np.where(np.arange(512)[:, None] < 300, 1, 0).repeat(512, 1))
    ref = paste_face(img, crop, a, parse_mask=pm)
    got = paste_face_torch(_t(img, device).float(), _t(crop, device).float(), a,
                           parse_mask=torch.from_numpy(pm).to(device))
    assert got.dtype == torch.float32
    diff = np.abs(got.permute(1, 2, 0).cpu().numpy() - ref)
    assert diff.max() <= 2.0 and diff.mean() < 0.1
