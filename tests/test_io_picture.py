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


@pytest.mark.parametrize("pix_fmt,size", [("yuv420p", (64, 36)), ("yuvj420p", (64, 36)), ("yuv420p", (51, 37)),
                                           ("yuv422p", (64, 36)), ("rgb24", (64, 36))])
def test_av_frame_view_reads_what_a_copy_reads(pix_fmt, size):
    """`av_frame_view` (no copy for decoded even-sized yuv420p: the planes lie in one buffer)
    gives libswscale the same picture, tags included, as `to_av_frame`'s copy; writes to the
    planes show through; `copy` keeps the layout; planes replaced fall back to a copy."""
    from videofix.io.picture import _packed_base

    w, h = size
    rgb = smooth_rgb(h, w)
    pic = Picture.from_av(Picture.from_rgb(rgb, pix_fmt, colorspace="bt709").to_av_frame())
    packed = pix_fmt in ("yuv420p", "yuvj420p") and w % 2 == 0 and h % 2 == 0
    assert (_packed_base(pic) is not None) == packed

    def small(frame):
        return frame.reformat(width=w // 2, height=h // 2, format="rgb24", interpolation="AREA").to_ndarray()

    view = pic.av_frame_view()
    assert (view.colorspace, view.color_range) == (pic.to_av_frame().colorspace, pic.to_av_frame().color_range)
    np.testing.assert_array_equal(small(view), small(pic.to_av_frame()))
    pic.planes[0][: h // 2] = 16  # pass 2 pastes into its planes in place
    np.testing.assert_array_equal(small(pic.av_frame_view()), small(pic.to_av_frame()))
    twin = pic.copy()
    assert (_packed_base(twin) is not None) == packed
    assert all(np.array_equal(a, b) and not np.shares_memory(a, b) for a, b in zip(pic.planes, twin.planes))
    apart = Picture(tuple(p.copy() for p in pic.planes), pic.pix_fmt, w, h, pic.colorspace, pic.color_range)
    assert _packed_base(apart) is None
    np.testing.assert_array_equal(small(apart.av_frame_view()), small(pic.to_av_frame()))


def test_decoded_yuv420p_is_viewed_without_a_copy(tmp_path):
    """A decoded yuv420p picture's view is its own memory (what pass 1's detection image
    reads), and the detection image equals the one made from a copy."""
    from videofix.io.reader import open_video
    from videofix.pipeline.analysis import detection_image
    from videofix.samples import face_content, write_sample_clip

    clip = write_sample_clip(tmp_path / "c.mp4", face_content(320, 240), 3, audio=False)
    with open_video(clip) as reader:
        frames = list(reader)
    pic = frames[1].picture
    view = pic.av_frame_view()
    assert np.shares_memory(np.frombuffer(view.planes[0], np.uint8), pic.planes[0])
    small, scale = detection_image(pic)
    old = pic.to_av_frame().reformat(width=small.shape[1], height=small.shape[0], format="rgb24",
                                     interpolation="AREA").to_ndarray()
    np.testing.assert_array_equal(small, old)


def test_shot_thumbnail_is_the_area_average_within_one_level():
    """The shot thumbnail (libswscale's area filter) is OpenCV's area average within one
    level of rounding, on a real face at detection size."""
    import cv2

    from videofix.samples import face_content
    from videofix.shots.transnet import THUMB_H, THUMB_W, shot_thumbnail

    rgb = face_content(1138, 640)(3)
    thumb = shot_thumbnail(rgb)
    assert thumb.shape == (THUMB_H, THUMB_W, 3) and thumb.dtype == np.uint8
    want = cv2.resize(rgb, (THUMB_W, THUMB_H), interpolation=cv2.INTER_AREA)
    assert np.abs(thumb.astype(int) - want).max() <= 1
    assert np.array_equal(shot_thumbnail(thumb), thumb)


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
