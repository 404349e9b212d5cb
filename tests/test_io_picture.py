"""Picture: native-format regions, exact blending, colour maths against swscale."""

from __future__ import annotations

import time

import av
import numpy as np
import pytest

from videofix.io.picture import LAYOUTS, Picture


def smooth_rgb(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([40 + 3 * xx, 30 + 4 * yy, 128 + 50 * np.sin(xx / 6.0)], -1).clip(0, 255).astype(np.uint8)


FORMATS = ["yuv420p", "yuv422p", "yuv444p", "yuv440p", "yuv420p10le", "yuv422p10le", "yuvj420p",
           "gray", "gray10le", "rgb24", "bgr24", "gbrp", "gbrp10le"]


@pytest.mark.parametrize("pix_fmt", FORMATS)
def test_av_frame_round_trip_is_exact(pix_fmt):
    pic = Picture.from_rgb(smooth_rgb(37, 51), pix_fmt)  # odd size on purpose
    back = Picture.from_av(pic.to_av_frame())
    assert back.pix_fmt == pix_fmt and (back.width, back.height) == (51, 37)
    assert back.colorspace == pic.colorspace and back.color_range == pic.color_range
    for a, b in zip(pic.planes, back.planes):
        assert a.dtype == LAYOUTS[pix_fmt].dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pix_fmt", FORMATS)
def test_blend_leaves_masked_out_samples_bit_identical(pix_fmt):
    pic = Picture.from_rgb(smooth_rgb(37, 51), pix_fmt)
    before = [p.copy() for p in pic.planes]
    box = pic.align_box((5, 7, 30, 26))
    x0, y0, x1, y1 = box
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    mask[4:10, 6:14] = 0.8
    pic.blend_rgb(np.zeros((y1 - y0, x1 - x0, 3), np.float32), mask, box)
    luma_changed = (pic.planes[0] != before[0])
    if luma_changed.ndim == 3:
        luma_changed = luma_changed.any(-1)
    # nothing outside the mask's footprint moved; inside it did
    outside = np.ones(luma_changed.shape, bool)
    outside[y0 + 4:y0 + 10, x0 + 6:x0 + 14] = False
    assert not luma_changed[outside].any()
    assert luma_changed[~outside].all()
    lay = LAYOUTS[pix_fmt]
    if lay.kind == "yuv":
        sy, sx = lay.log2_chroma_h, lay.log2_chroma_w
        allowed = np.zeros(pic.planes[1].shape, bool)
        allowed[(y0 + 4) >> sy:((y0 + 9) >> sy) + 1, (x0 + 6) >> sx:((x0 + 13) >> sx) + 1] = True
        for a, b in zip(pic.planes[1:], before[1:]):
            assert not (a != b)[~allowed].any()


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "gbrp", "rgb24"])
def test_to_rgb_then_full_blend_is_identity_on_smooth_content(pix_fmt):
    pic = Picture.from_rgb(smooth_rgb(40, 48), pix_fmt)
    before = [p.copy() for p in pic.planes]
    box = pic.align_box((3, 5, 31, 22))
    rgb = pic.to_rgb(box)
    assert rgb.dtype == np.float32 and rgb.shape == (box[3] - box[1], box[2] - box[0], 3)
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    pic.blend_rgb(rgb, np.ones(rgb.shape[:2], np.float32), box)
    for a, b in zip(pic.planes, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("matrix,sws", [("bt601", "itu601"), ("bt709", "itu709")])
def test_to_rgb_matches_swscale_on_444(matrix, sws):
    rgb = smooth_rgb(32, 48)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv444p", dst_colorspace=sws)
    pic = Picture.from_av(frame, colorspace_tag=6 if matrix == "bt601" else 1, range_tag=1)
    assert pic.colorspace == matrix
    ours = np.rint(pic.to_rgb() * 255)
    assert np.abs(ours - rgb.astype(np.float32)).max() <= 2


def test_from_rgb_close_to_input_and_align_box_grid():
    rgb = smooth_rgb(36, 50)
    pic = Picture.from_rgb(rgb, "yuv420p")
    assert np.abs(np.rint(pic.to_rgb() * 255) - rgb).max() <= 8  # 4:2:0 chroma on a gradient
    assert pic.align_box((3, 5, 30, 21)) == (2, 4, 30, 22)
    assert pic.align_box((-10, -3, 99, 99)) == (0, 0, 50, 36)
    odd = Picture.from_rgb(smooth_rgb(37, 51), "yuv420p")
    assert odd.align_box((40, 30, 51, 37)) == (40, 30, 51, 37)  # the picture edge, not beyond
    with pytest.raises(ValueError):
        odd.blend_rgb(np.zeros((4, 4, 3), np.float32), np.ones((4, 4), np.float32), (1, 1, 5, 5))


def test_untagged_default_matrix_by_size():
    small = Picture.from_av(av.VideoFrame(640, 480, "yuv420p"))
    hd = Picture.from_av(av.VideoFrame(1280, 720, "yuv420p"))
    assert (small.colorspace, small.color_range) == ("bt601", "tv")
    assert (hd.colorspace, hd.color_range) == ("bt709", "tv")
    assert Picture.from_av(av.VideoFrame(64, 48, "nv12")).pix_fmt == "yuv420p"


def test_face_region_conversion_cost_1080p(record_property):
    rng = np.random.default_rng(0)
    pic = Picture.from_rgb(rng.integers(0, 256, (1080, 1920, 3), dtype=np.uint8), "yuv420p")
    box = pic.align_box((700, 300, 1212, 812))  # a 512x512 face region
    t0 = time.perf_counter()
    for _ in range(5):
        rgb = pic.to_rgb(box)
    t1 = time.perf_counter()
    mask = np.ones(rgb.shape[:2], np.float32)
    for _ in range(5):
        pic.blend_rgb(rgb, mask, box)
    t2 = time.perf_counter()
    to_ms, blend_ms = (t1 - t0) * 200, (t2 - t1) * 200
    record_property("to_rgb_512_ms", to_ms)
    record_property("blend_512_ms", blend_ms)
    assert to_ms < 100 and blend_ms < 200  # generous: shared 2-core machine
