"""Alignment to the official template, warping, masks and paste-back (RGB arrays and Pictures)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from videofix.faces import (
    BORDER_VALUE_RGB,
    FACE_TEMPLATE_512,
    estimate_alignment,
    invert_affine,
    load_face_parser,
    parse_map_to_mask,
    paste_affine,
    paste_face,
    paste_faces,
    paste_mask,
    transform_points,
    upscale_frame,
    warp_face,
)

# Astronaut landmarks (dlib 68 -> 5, measured once; the detector itself is tested elsewhere).
ASTRO_LM = np.array([[203.3, 101.7], [246.8, 103.8], [225.0, 127.0], [200.0, 139.0], [246.0, 141.0]], np.float32)


def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut().copy()


def official_paste(frame_up: np.ndarray, crop: np.ndarray, affine: np.ndarray, upscale: int = 1,
                   parse_mask: np.ndarray | None = None) -> np.ndarray:
    """The official full-frame paste (FaceRestoreHelper.paste_faces_to_input_image, square mask,
    RGB images, float result), rewritten here as the reference."""
    h_up, w_up = frame_up.shape[:2]
    inverse_affine = cv2.invertAffineTransform(affine) * upscale
    if upscale > 1:
        inverse_affine[:, 2] += 0.5 * upscale
    face_size = (crop.shape[1], crop.shape[0])
    inv_restored = cv2.warpAffine(crop, inverse_affine, (w_up, h_up))
    mask = np.ones(face_size, dtype=np.float32)
    inv_mask = cv2.warpAffine(mask, inverse_affine, (w_up, h_up))
    inv_mask_erosion = cv2.erode(inv_mask, np.ones((int(2 * upscale), int(2 * upscale)), np.uint8))
    pasted_face = inv_mask_erosion[:, :, None] * inv_restored
    total_face_area = np.sum(inv_mask_erosion)
    w_edge = int(total_face_area**0.5) // 20
    erosion_radius = w_edge * 2
    inv_mask_center = cv2.erode(inv_mask_erosion, np.ones((erosion_radius, erosion_radius), np.uint8))
    blur_size = w_edge * 2
    inv_soft_mask = cv2.GaussianBlur(inv_mask_center, (blur_size + 1, blur_size + 1), 0)
    if parse_mask is not None:
        pm = cv2.warpAffine(cv2.resize(parse_mask, face_size), inverse_affine, (w_up, h_up), flags=3)
        inv_soft_mask = np.minimum(inv_soft_mask, pm)
    inv_soft_mask = inv_soft_mask[:, :, None]
    return inv_soft_mask * pasted_face + (1 - inv_soft_mask) * frame_up


def test_alignment_recovers_a_known_similarity():
    ang, s, t = np.deg2rad(12.0), 0.37, np.array([80.0, 40.0])
    rot = s * np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    lm = FACE_TEMPLATE_512 @ rot.T + t  # landmarks of a face = template moved into the frame
    a = estimate_alignment(lm)
    assert a.shape == (2, 3) and a.dtype == np.float64
    np.testing.assert_allclose(transform_points(a, lm), FACE_TEMPLATE_512, atol=1e-3)
    a256 = estimate_alignment(lm, size=256)
    np.testing.assert_allclose(transform_points(a256, lm), FACE_TEMPLATE_512 / 2, atol=1e-3)
    np.testing.assert_allclose(transform_points(invert_affine(a), FACE_TEMPLATE_512), lm, atol=1e-3)


def test_alignment_is_the_official_lmeds_estimate():
    a = estimate_alignment(ASTRO_LM)
    ref = cv2.estimateAffinePartial2D(ASTRO_LM, FACE_TEMPLATE_512, method=cv2.LMEDS)[0]
    np.testing.assert_array_equal(a, ref)


def test_warp_face_puts_eyes_on_the_template_and_uses_the_official_grey_in_rgb():
    img = astronaut()
    a = estimate_alignment(ASTRO_LM)
    crop = warp_face(img, a)
    assert crop.shape == (512, 512, 3) and crop.dtype == np.uint8
    ref = cv2.warpAffine(img[:, :, ::-1], a, (512, 512), borderMode=cv2.BORDER_CONSTANT, borderValue=(135, 133, 132))
    np.testing.assert_array_equal(crop, ref[:, :, ::-1])  # same as the official BGR call, in RGB
    # A face at the top-left corner: the outside is the official grey, in RGB order.
    shifted = a.copy()
    shifted[:, 2] += 400
    crop2 = warp_face(img, shifted)
    assert tuple(crop2[5, 5]) == BORDER_VALUE_RGB == (132, 133, 135)


def _random_crop(seed=0, size=512):
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (size, size), interpolation=cv2.INTER_CUBIC)
    return base


@pytest.mark.parametrize("upscale", [1, 2])
def test_paste_matches_the_official_full_frame_rule(upscale):
    img = astronaut()
    a = estimate_alignment(ASTRO_LM)
    crop = _random_crop()
    frame_up = upscale_frame(img, upscale)
    out = paste_face(frame_up, crop, a, upscale=upscale)
    ref = official_paste(frame_up.astype(np.float32), crop, a, upscale)
    diff = np.abs(out.astype(np.float32) - ref)
    assert diff.max() <= 1.0 + 1e-3  # region-local vs full frame, rounding vs float
    assert diff.mean() < 0.3


def test_pixels_outside_every_mask_stay_exactly_as_decoded():
    img = astronaut()
    lm2 = ASTRO_LM + np.array([60.0, 180.0], np.float32)  # a second face overlapping the first
    affines = [estimate_alignment(ASTRO_LM), estimate_alignment(lm2)]
    out = paste_faces(img, [_random_crop(1), _random_crop(2)], affines)
    masks = [paste_mask(paste_affine(a), 512, img.shape[:2]) for a in affines]
    outside = (masks[0] == 0) & (masks[1] == 0)
    np.testing.assert_array_equal(out[outside], img[outside])
    inside = (masks[0] > 0.99) | (masks[1] > 0.99)
    assert np.abs(out[inside].astype(int) - img[inside]).mean() > 20  # the faces did change
    assert (out is not img) and not np.shares_memory(out, img)


@pytest.mark.parametrize("shift,scale", [((-150, -60), 1.0), ((230, 330), 1.0), ((0, 0), 0.06), ((300, 400), 0.05)])
def test_faces_cut_by_the_border_and_tiny_faces(shift, scale):
    img = astronaut()
    lm = (ASTRO_LM - ASTRO_LM.mean(0)) * scale + ASTRO_LM.mean(0) + np.array(shift, np.float32)
    a = estimate_alignment(lm)
    crop = warp_face(img, a)
    assert crop.shape == (512, 512, 3)
    out = paste_face(img, _random_crop(), a)
    m = paste_mask(paste_affine(a), 512, img.shape[:2])
    np.testing.assert_array_equal(out[m == 0], img[m == 0])
    ref = official_paste(img.astype(np.float32), _random_crop(), a)
    assert np.abs(out.astype(np.float32) - ref).max() <= 1.0 + 1e-3


def test_face_wholly_outside_the_frame_is_a_no_op():
    img = astronaut()
    a = estimate_alignment(ASTRO_LM + np.array([2000, 0], np.float32))
    np.testing.assert_array_equal(paste_face(img, _random_crop(), a), img)


def test_mask_moves_smoothly_with_the_landmarks():
    img = astronaut()
    prev = None
    steps = []
    for k in range(6):
        a = estimate_alignment(ASTRO_LM + np.array([0.5 * k, 0.0], np.float32))
        m = paste_mask(paste_affine(a), 512, img.shape[:2])
        if prev is not None:
            steps.append(np.abs(m - prev).max())
        prev = m
    # A half-pixel move changes no weight by more than 0.15 (the official feather's steepest slope).
    assert max(steps) < 0.15


def test_parse_map_rule():
    parse = np.ones((512, 512), np.int64)  # skin everywhere
    parse[:, :200] = 17  # hair on the left
    m = parse_map_to_mask(parse)
    assert m.dtype == np.float32 and m.shape == (512, 512)
    assert m[:10].max() == 0 and m[:, -10:].max() == 0
    assert m[256, 400] > 0.99 and m[256, 50] < 0.01
    assert 0.2 < m[256, 200] < 0.8  # feathered edge


def test_parsenet_file_in_official_layout_loads_and_masks(tmp_path, monkeypatch):
    import torch
    from facexlib.parsing.parsenet import ParseNet

    monkeypatch.delenv("VIDEOFIX_MODELS", raising=False)
    monkeypatch.setenv("VIDEOFIX_CACHE", str(tmp_path / "cache"))
    assert load_face_parser(models_dir=tmp_path) is None  # no file: square mask only
    torch.manual_seed(0)
    torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(), tmp_path / "parsing_parsenet.pth")
    parser = load_face_parser(models_dir=tmp_path, parse_size=128)  # 128: keeps the CPU test short
    assert parser is not None
    img = astronaut()
    a = estimate_alignment(ASTRO_LM)
    crop = warp_face(img, a)
    classes = parser.parse(crop)
    assert classes.shape == (512, 512) and classes.min() >= 0 and classes.max() < 19
    pm = parser.mask(crop)
    assert pm.shape == (512, 512) and pm.dtype == np.float32 and 0 <= pm.min() and pm.max() <= 1
    # A controlled parse mask through paste: official min(parse, square) rule.
    pm = parse_map_to_mask(np.where(np.arange(512)[None, :] < 256, 1, 0).repeat(512, 0))
    out = paste_face(img, _random_crop(), a, parse_mask=pm)
    ref = official_paste(img.astype(np.float32), _random_crop(), a, parse_mask=pm)
    assert np.abs(out.astype(np.float32) - ref).max() <= 1.0 + 1e-3


def _picture_or_skip():
    try:
        from videofix.io.picture import Picture
    except ImportError:
        pytest.skip("videofix.io.picture not available yet")
    return Picture


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv420p10le", "rgb24"])
def test_paste_into_a_native_picture_keeps_samples_outside_the_mask(pix_fmt):
    Picture = _picture_or_skip()
    img = astronaut()[:, :509]  # odd width: chroma edge cases
    pic = Picture.from_rgb(img, pix_fmt=pix_fmt)
    before = [p.copy() for p in pic.planes]
    a = estimate_alignment(ASTRO_LM)
    crop = cv2.resize(_random_crop()[::128, ::128], (512, 512), interpolation=cv2.INTER_CUBIC)  # smooth: 4:2:0 keeps it
    result = paste_face(pic, crop, a)
    assert result is pic
    m = paste_mask(paste_affine(a), 512, img.shape[:2])
    luma_outside = m == 0
    np.testing.assert_array_equal(pic.planes[0][luma_outside], before[0][luma_outside])
    if len(pic.planes) == 3:
        # chroma samples whose 2x2 block has no positive weight
        hb, wb = pic.planes[1].shape
        mp = np.zeros((hb * 2, wb * 2), np.float32)
        mp[: m.shape[0], : m.shape[1]] = m
        block = mp.reshape(hb, 2, wb, 2).max(axis=(1, 3)) == 0
        for k in (1, 2):
            np.testing.assert_array_equal(pic.planes[k][block], before[k][block])
    # Inside, the Picture path and the RGB path agree (through the format's own rounding).
    base = np.clip(np.rint(Picture.from_rgb(img, pix_fmt=pix_fmt).to_rgb() * 255), 0, 255).astype(np.uint8)
    rgb_ref = paste_face(base, crop, a)
    got = pic.to_rgb() * 255.0
    inside = m > 0.99
    assert np.abs(got[inside] - rgb_ref[inside]).mean() < 3.0


def test_warp_face_from_a_picture_matches_the_rgb_path():
    Picture = _picture_or_skip()
    img = astronaut()
    pic = Picture.from_rgb(img, pix_fmt="yuv420p")
    rgb = np.clip(np.rint(pic.to_rgb() * 255), 0, 255).astype(np.uint8)
    for lm in (ASTRO_LM, ASTRO_LM - np.array([190, 90], np.float32)):  # inside, and cut by the border
        a = estimate_alignment(lm)
        # OpenCV's fixed-point warp of a translated region may differ by one level here and there.
        d = np.abs(warp_face(pic, a).astype(int) - warp_face(rgb, a))
        assert d.max() <= 1 and (d > 0).mean() < 1e-3
