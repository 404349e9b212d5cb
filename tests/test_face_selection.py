"""Which faces are restored, and how much of each: track-level selection, identity
references (dlib's real face recognition network on real faces), --blend, --keep-regions,
occlusions. The options run through the command line (`videofix.cli.main`, in-process) on
a clip with two different real people (scikit-image's astronaut, large, on the left; a face
of insightface's t1.jpg, smaller, nearer the centre); the small CodeFormer configuration
restores them.
"""

from __future__ import annotations

import contextlib
import io
import json
import os

import cv2
import numpy as np
import pytest

import media
from videofix.faces.selection import (
    DLIB_MATCH_DISTANCE,
    DlibFaceEmbedder,
    FaceSelection,
    reference_embedding,
    select_tracks,
)
from videofix.faces.types import FaceTrack
from videofix.samples import astronaut_face

W, H = 320, 240
FRAMES = 3
# dlib boxes of the six faces of insightface's t1.jpg (x0, y0, x1, y1)
T1_BOXES = [(1118, 283, 1226, 390), (67, 283, 175, 390), (724, 367, 832, 474), (450, 295, 557, 402),
            (870, 67, 999, 196), (275, 176, 364, 265)]


def group_photo() -> np.ndarray:
    import insightface

    bgr = cv2.imread(os.path.join(os.path.dirname(insightface.__file__), "data", "images", "t1.jpg"))
    return np.ascontiguousarray(bgr[:, :, ::-1])


def t1_face(k: int, size: int) -> np.ndarray:
    """Face k of t1.jpg with its head, uint8 (size, size, 3) RGB."""
    img = group_photo()
    x0, y0, x1, y1 = T1_BOXES[k]
    cx, cy, s = (x0 + x1) / 2, (y0 + y1) / 2 + 0.1 * 2.2 * (x1 - x0), 2.2 * (x1 - x0)
    crop = img[int(cy - s / 2):int(cy + s / 2), int(cx - s / 2):int(cx + s / 2)]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def two_people(i: int) -> np.ndarray:
    """The astronaut (190 px patch on the left: dlib box about 68 px, centre 76 px from the
    frame centre) and t1 face 3 (80 px patch: box about 39 px, 35 px from the centre),
    moving 2 px a frame apart (so no frame is a repeat of another)."""
    rng = np.random.default_rng(i)
    f = np.full((H, W, 3), 96, np.float32) + rng.normal(0, 3, (H, W, 3))
    f[25:215, 0:190 - 2 * i] = astronaut_face(190)[:, 2 * i:]
    f[80:160, 150 + 2 * i:230 + 2 * i] = t1_face(3, 80)
    return np.clip(np.rint(f), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- rules on tracks


def _track(tid: int, frames, sizes, cx, cy=120.0) -> FaceTrack:
    frames = np.asarray(frames, np.int64)
    sizes = np.broadcast_to(np.asarray(sizes, np.float32), frames.shape)
    cx = np.broadcast_to(np.asarray(cx, np.float32), frames.shape)
    boxes = np.stack([cx - sizes / 2, cy - sizes / 2, cx + sizes / 2, cy + sizes / 2], 1).astype(np.float32)
    lm = np.zeros((len(frames), 5, 2), np.float32)
    return FaceTrack(tid, frames, boxes, lm, lm.copy(), np.ones(len(frames), np.float32), np.ones(len(frames), bool))


def _ids(tracks):
    return [t.track_id for t in tracks]


def test_largest_face_is_decided_per_track_not_per_frame():
    # A is the larger face in 8 of 10 frames, B in 2 (frames 4 and 5): a per-frame rule would
    # flip to B and back; the track rule restores A in all its frames and B never.
    a = _track(0, range(10), [100, 100, 100, 100, 80, 80, 100, 100, 100, 100], 80)
    b = _track(1, range(10), [90, 90, 90, 90, 95, 95, 90, 90, 90, 90], 240)
    c = _track(2, range(12, 20), 40, 160)  # alone after a cut: the largest of its frames
    kept, dropped = select_tracks([a, b, c], (320, 240), FaceSelection(largest_face=True))
    assert _ids(kept) == [0, 2] and dropped == {1: "largest_face"}


def test_only_center_face_max_faces_and_min_size():
    left = _track(0, range(6), 120, 40)
    centre = _track(1, range(6), 60, 170)
    right = _track(2, range(6), 80, 300)
    kept, _ = select_tracks([left, centre, right], (320, 240), FaceSelection(only_center_face=True))
    assert _ids(kept) == [1]
    kept, dropped = select_tracks([left, centre, right], (320, 240), FaceSelection(max_faces=2))
    assert _ids(kept) == [0, 2] and dropped == {1: "max_faces"}
    # the median size over detected frames decides, so one large outlier frame does not keep a small face
    small = _track(3, range(5), [30, 30, 200, 30, 30], 100)
    kept, dropped = select_tracks([left, small], (320, 240), FaceSelection(min_face_size=50))
    assert _ids(kept) == [0] and dropped == {3: "min_face_size"}


def test_at_most_n_faces_in_any_frame():
    rng = np.random.default_rng(1)
    tracks = [_track(i, range(s, s + n), float(rng.uniform(30, 120)), float(rng.uniform(0, 320)))
              for i, (s, n) in enumerate([(0, 20), (5, 10), (8, 30), (15, 5), (0, 40), (30, 10)])]
    kept, dropped = select_tracks(tracks, (320, 240), FaceSelection(max_faces=2))
    per_frame = {}
    for t in kept:
        for f in t.frames:
            per_frame[int(f)] = per_frame.get(int(f), 0) + 1
    assert max(per_frame.values()) <= 2
    assert len(kept) + len(dropped) == len(tracks) and dropped


# ----------------------------------------------------------------------------- identity


@pytest.fixture(scope="module")
def dlib_detector():
    from videofix.faces import create_detector

    return create_detector("dlib")


def test_dlib_identity_distances_separate_real_people(dlib_detector):
    """The figures behind DLIB_MATCH_DISTANCE: the same face degraded stays well under it,
    different people stay well over it."""
    emb = DlibFaceEmbedder()
    face = astronaut_face(200)
    ref = reference_embedding(face, dlib_detector, emb)
    small = cv2.resize(cv2.resize(face, (66, 66), interpolation=cv2.INTER_AREA), (200, 200))
    same = [reference_embedding(img, dlib_detector, emb) for img in
            (face[:, ::-1].copy(), small, cv2.GaussianBlur(face, (0, 0), 2.0))]
    others = [reference_embedding(t1_face(k, 200), dlib_detector, emb) for k in (0, 3, 4)]
    d_same = emb.distance(np.stack(same), ref).ravel()
    d_other = emb.distance(np.stack(others), ref).ravel()
    d_between = emb.distance(np.stack(others), np.stack(others))[np.triu_indices(3, 1)]
    assert d_same.max() < DLIB_MATCH_DISTANCE - 0.05, d_same
    assert min(d_other.min(), d_between.min()) > DLIB_MATCH_DISTANCE + 0.05, (d_other, d_between)


# ----------------------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("select")
    c = media.make_clip(d / "two.mkv", frames=FRAMES, size=(W, H), fps=25, codec="ffv1", pix_fmt="yuv444p",
                        audio=False, subtitles=False, content=two_people)
    ref = d / "ref.png"  # a different photo of the t1 person than the clip's (other size and crop)
    cv2.imwrite(str(ref), cv2.cvtColor(t1_face(3, 180), cv2.COLOR_RGB2BGR))
    noface = d / "noface.png"
    cv2.imwrite(str(noface), np.full((120, 120, 3), 128, np.uint8))
    return c, ref, noface


# One run per option set; several options share a run where their effects can be told apart.
RUNS = {
    "largest": ("--largest-face", "--grain", "off"),
    "max_faces_half": ("--max-faces", "1", "--blend", "0.5", "--grain", "off"),
    "min_size_mouth": ("--min-face-size", "55", "--keep-regions", "mouth", "--grain", "off"),
    "centre_blend0": ("--only-center-face", "--blend", "0"),
    "ref": ("--face-ref", "{ref}"),
    "ref_exclude": ("--face-ref", "{ref}", "--exclude", "--det-threshold", "0.3"),
    "threshold": ("--det-threshold", "0.99"),
}


@pytest.fixture(scope="module")
def runs(clip, small_weights, tmp_path_factory):
    """name -> (decoded output frames, report), each run made when a test first asks for it."""
    from videofix.cli import main

    c, ref, _ = clip
    d = tmp_path_factory.mktemp("runs")
    cache = {}

    def get(name):
        if name not in cache:
            out, report = d / f"{name}.mkv", d / f"{name}.json"
            options = [o.format(ref=ref) for o in RUNS[name]]
            argv = ["restore", c.path, "-o", out, "--weights", small_weights, "--detector", "dlib", "--codec", "ffv1",
                    "--device", "cpu", "--temporal-radius", "1", "--batch-size", "1", "--workers", "1",
                    "--report", report, "--quiet", *options]
            # in-process: `videofix.cli.main` is what the command runs, without an interpreter start each
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                rc = main([str(a) for a in argv])
            assert rc == 0, err.getvalue()
            cache[name] = (media.decode_frames(out), json.loads(report.read_text()))
        return cache[name]

    return get


@pytest.fixture(scope="module")
def src(clip):
    return media.decode_frames(clip[0].path)


def _sides(report):
    """Sides ("left" / "right" of the frame centre) of the restored tracks."""
    return sorted("left" if np.mean([(b[0] + b[2]) / 2 for b in t["boxes"]]) < W / 2 else "right"
                  for t in report["tracks"])


def _changed(src, dst, x0, x1):
    """Mean absolute change of the luma plane in columns x0..x1, rows 60..180."""
    return float(np.mean([np.abs(s[1][0][60:180, x0:x1].astype(int) - d[1][0][60:180, x0:x1]).mean()
                          for s, d in zip(src, dst)]))


def _identical(src, dst):
    return all(np.array_equal(a, b) for s, t in zip(src, dst) for a, b in zip(s[1], t[1]))


LEFT, RIGHT = (30, 130), (180, 212)  # columns inside the astronaut's and the t1 person's face only


@pytest.mark.parametrize("name, side, reason", [
    ("largest", "left", "largest_face"),
    ("max_faces_half", "left", "max_faces"),
    ("min_size_mouth", "left", "min_face_size"),
    ("centre_blend0", "right", "only_center_face"),
])
def test_track_options_through_the_cli(runs, src, name, side, reason):
    dst, report = runs(name)
    assert _sides(report) == [side], report["selection"]
    assert list(report["selection"]["dropped"].values()) == [reason]
    other = RIGHT if side == "left" else LEFT
    assert _changed(src, dst, *other) == 0  # the other person is the source, bit for bit
    if name != "centre_blend0":
        assert _changed(src, dst, *(LEFT if side == "left" else RIGHT)) > 5


def test_face_ref_and_exclude_through_the_cli(runs, src):
    dst, report = runs("ref")
    assert _sides(report) == ["right"]
    ident = report["selection"]["identity"]
    assert ident["embedder"] == "dlib_resnet" and ident["threshold"] == DLIB_MATCH_DISTANCE
    d = sorted(v for v in ident["distances"].values())
    assert d[0] < 0.3 and d[1] > 0.6, d  # measured: 0.20 (the same person, a 39 px face), 0.80 (the astronaut)
    assert _changed(src, dst, *LEFT) == 0 and _changed(src, dst, *RIGHT) > 5
    dst, report = runs("ref_exclude")
    assert _sides(report) == ["left"] and report["settings"]["det_threshold"] == 0.3
    assert list(report["selection"]["dropped"].values()) == ["face_ref_excluded"]
    assert _changed(src, dst, *RIGHT) == 0 and _changed(src, dst, *LEFT) > 5


def test_det_threshold_through_the_cli(runs, src):
    # dlib's scores here are about 0.75-0.9 (logistic of the HOG margin): 0.99 keeps none
    dst, report = runs("threshold")
    assert report["tracks"] == [] and report["settings"]["det_threshold"] == 0.99
    assert _identical(src, dst)
    assert len(runs("ref_exclude")[1]["selection"]["kept"]) == 1  # 0.3 keeps both faces (one excluded)


def test_blend_through_the_cli(runs, src):
    full, _ = runs("largest")
    half, _ = runs("max_faces_half")  # the same face (the astronaut), blend 0.5
    assert _identical(src, runs("centre_blend0")[0])  # blend 0: the source, bit for bit
    for s, f, h in zip(src, full, half):  # luma half-way between the source and the full paste
        sy, fy, hy = (p[1][0].astype(float) for p in (s, f, h))
        changed = np.abs(fy - sy) > 8
        assert changed.sum() > 2000
        assert np.abs(hy - (sy + fy) / 2)[changed].mean() < 1.5


def test_keep_regions_through_the_cli(runs, src):
    full, report = runs("largest")
    mouth, _ = runs("min_size_mouth")
    x0, y0, x1, y1 = report["tracks"][0]["boxes"][0]
    # the astronaut's mouth corners sit at 69% of the dlib box height, her eyes at 29%:
    # the lips' middle, and the bridge of the nose between the eyes (not a kept region)
    mx, my = int((x0 + x1) / 2), int(y0 + 0.72 * (y1 - y0))
    ey = int(y0 + 0.29 * (y1 - y0))

    def change(frames, x, y, r=4):
        return np.mean([np.abs(s[1][0][y - r:y + r, x - r:x + r].astype(int) - d[1][0][y - r:y + r, x - r:x + r]).mean()
                        for s, d in zip(src, frames)])

    assert change(full, mx, my) > 10 and change(mouth, mx, my) < 1.0  # the source's mouth kept
    assert change(mouth, mx, ey) == pytest.approx(change(full, mx, ey), abs=0.5)  # eyes restored as before


@pytest.mark.parametrize("options, code, message", [
    (("--blend", "1.5"), 2, "--blend must be a number from 0 to 1"),
    (("--keep-regions", "mouth,ears"), 2, "unknown region 'ears'"),
    (("--exclude",), 2, "--exclude needs face references"),
    (("--face-ref", "missing.png", "--max-faces", "-1"), 2, "--max-faces must be an integer from 0 to 1000"),
    (("--face-ref", "missing.png"), 2, "no such file"),
    (("--face-ref", "{noface}"), 3, "no face found in this reference image"),
])
def test_bad_selection_options_fail_with_one_line(clip, small_weights, tmp_path, capsys, options, code, message):
    # in-process (videofix.cli.main, what the `videofix` command runs): no interpreter start-up per case
    from videofix.cli import main

    out = tmp_path / "bad.mkv"
    options = [o.format(noface=clip[2]) for o in options]
    rc = main(["restore", str(clip[0].path), "-o", str(out), "--weights", str(small_weights), "--detector", "dlib",
               "--device", "cpu", "--quiet", *options])
    err = capsys.readouterr().err
    assert rc == code and message in err and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


# ----------------------------------------------------------------------------- occlusion masks


def test_occlusion_uses_the_parse_of_the_source_crop(tmp_path):
    """With a face parser (ParseNet, the real network; weights drawn at random since the
    official file cannot be downloaded here), the paste limit is the official parse mask of
    the restored crop AND the same mask of the source crop: what the parse of the source
    does not call face stays the source's, and pasting leaves it untouched."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("facexlib")
    from facexlib.parsing.parsenet import ParseNet

    from videofix.faces import FaceParser, estimate_alignment, warp_face
    from videofix.faces.masks import PARSE_KEEP, parse_map_to_mask
    from videofix.faces.regions import PasteOptions, paste_limit
    from videofix.pipeline.restoration import FacePaster

    torch.manual_seed(0)
    path = tmp_path / "parsenet_random.pth"
    torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(), path)
    parser = FaceParser(path, parse_size=128)
    size = 128
    frame = two_people(0)
    from videofix.faces import create_detector

    det = max(create_detector("dlib").detect(frame), key=lambda d: d.size)
    affine = estimate_alignment(det.landmarks, size=size)
    source = warp_face(frame, affine, size=size)
    occluded = source.copy()
    occluded[70:128, 30:100] = (30, 30, 30)  # a microphone in front of the mouth
    restored = np.ascontiguousarray(source[:, ::-1])  # a face where the microphone is
    classes = parser.parse(occluded)
    assert len(np.unique(PARSE_KEEP[classes])) == 2, "the test needs face and non-face classes"
    limit = paste_limit(PasteOptions(), size, parser=parser, restored=restored, source=occluded)
    official = paste_limit(PasteOptions(occlusion=False), size, parser=parser, restored=restored, source=occluded)
    np.testing.assert_array_equal(official, parser.mask(restored))
    np.testing.assert_allclose(limit, np.minimum(official, parse_map_to_mask(classes)), atol=1e-6)
    assert (limit < official - 0.05).any()  # the source parse takes something away
    # the pass's paster pastes with that limit, found on the source crop it is given
    from videofix.faces import paste_face
    from videofix.io.picture import Picture

    outs = {}
    for occlusion in (True, False):
        picture = Picture((frame.copy(),), "rgb24", W, H)
        FacePaster(size, parser=parser, options=PasteOptions(occlusion=occlusion)).paste(
            picture, 0, [(0, restored, affine)], sources={0: occluded})
        outs[occlusion] = picture.planes[0].astype(int)
    np.testing.assert_array_equal(outs[True], paste_face(frame, restored, affine, parse_mask=limit))
    np.testing.assert_array_equal(outs[False], paste_face(frame, restored, affine, parse_mask=official))
    # with the occluder's parse, less of the restored face and more of the source is pasted
    assert np.abs(outs[True] - frame).sum() < 0.95 * np.abs(outs[False] - frame).sum()
