"""Tracking: ids on a generated clip with two real faces that move, cross, hide and meet a cut;
gating, gaps, cuts, embeddings; zero-phase and bounded-lag smoothing; cut detection."""

from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from videofix.faces import (
    Detection,
    StreamingTracker,
    Tracker,
    faces_by_frame,
    landmark_jitter,
    smooth_series,
    track_faces,
)
from videofix.faces.dlib_backend import DlibDetector
from videofix.shots import detect_cuts


def _faces():
    """Two real faces as RGB patches: the astronaut and one face of insightface's t1.jpg."""
    import insightface
    import skimage.data

    astro = skimage.data.astronaut()[40:220, 130:320]  # 180x190
    t1 = cv2.imread(os.path.join(os.path.dirname(insightface.__file__), "data", "images", "t1.jpg"))[:, :, ::-1]
    other = t1[250:430, 30:220]  # the leftmost face, 180x190
    return np.ascontiguousarray(astro), np.ascontiguousarray(other)


def _background(seed, h=360, w=640):
    rng = np.random.default_rng(seed)
    small = rng.integers(30, 220, (6, 10, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def make_clip():
    """24 frames, 640x360. Shot 1 (frames 0-15): face A moves right, face B moves left, they
    cross around frame 8 (B drawn over A), A is also hidden in frames 3-4. Cut at frame 16:
    new background, the faces swap sides. Returns frames, per-frame ground truth
    {face: (x, y) top-left} and the cut index."""
    a, b = _faces()
    frames, truth = [], []
    for f in range(24):
        if f < 16:
            bg = _background(1)
            pa, pb = (20 + 28 * f, 90), (430 - 28 * f, 150)
        else:
            bg = _background(2)
            pa, pb = (430 - 10 * (f - 16), 40), (20 + 10 * (f - 16), 160)
        img = bg.copy()
        visible = {}
        if not (3 <= f <= 4):
            img[pa[1]:pa[1] + 180, pa[0]:pa[0] + 190] = a
            visible["A"] = pa
        img[pb[1]:pb[1] + 180, pb[0]:pb[0] + 190] = b
        visible["B"] = pb
        frames.append(img)
        truth.append(visible)
    return frames, truth, 16


def _owner(det: Detection, visible: dict) -> str | None:
    """Which drawn face a detection belongs to: the face patch holding its nose landmark and
    lying on top there (B is drawn last)."""
    x, y = det.landmarks[2]
    for name in ("B", "A"):
        if name in visible:
            px, py = visible[name]
            if px <= x < px + 190 and py <= y < py + 180:
                return name
    return None


@pytest.fixture(scope="module")
def clip_detections():
    frames, truth, cut = make_clip()
    det = DlibDetector(det_short_side=None)
    return frames, truth, cut, [det.detect(f) for f in frames]


def test_ids_stay_right_through_crossing_hiding_and_a_cut(clip_detections):
    frames, truth, cut, dets = clip_detections
    assert detect_cuts(frames) == [cut]
    tracks = track_faces(dets, cuts=[cut], max_gap=4, sigma=1.5)
    per_frame = faces_by_frame(tracks)
    owners: dict[int, set] = {}
    for f, faces in per_frame.items():
        for face in faces:
            if not face.detected:
                continue
            d = next(d for d in dets[f] if np.allclose(d.landmarks, face.raw_landmarks))
            who = _owner(d, truth[f])
            assert who is not None, f"frame {f}: a detection on no face"
            shot = 0 if f < cut else 1
            owners.setdefault(face.track_id, set()).add((who, shot))
    # Every track belongs to one face in one shot: no merge, no id across the cut.
    for tid, own in owners.items():
        assert len(own) == 1, f"track {tid} mixes {own}"
    # Each face keeps a single id per shot (survives the crossing and the 2-frame hiding).
    by_face = {}
    for tid, own in owners.items():
        by_face.setdefault(next(iter(own)), []).append(tid)
    for key, tids in by_face.items():
        assert len(tids) == 1, f"{key} split into tracks {tids}"
    assert set(by_face) == {("A", 0), ("B", 0), ("A", 1), ("B", 1)}
    # A's gap in frames 3-4 is filled by interpolation inside its track.
    a_track = next(t for t in tracks if t.track_id == by_face[("A", 0)][0])
    assert a_track.start <= 2 and a_track.end >= 5
    assert not a_track.detected[3 - a_track.start] and not a_track.detected[4 - a_track.start]
    lm3 = a_track.raw_landmarks[3 - a_track.start]
    assert 20 + 28 * 3 < lm3[2, 0] < 20 + 28 * 3 + 190  # the interpolated nose is where A was
    # Detection rate of the test clip, for the report: detections found / faces visible.
    visible = sum(len(t) for t in truth)
    found = sum(len(d) for d in dets)
    assert found >= 0.8 * visible


def test_two_faces_on_screen_together_are_never_merged():
    lm = np.array([[10, 10], [30, 10], [20, 20], [12, 30], [28, 30]], np.float32)
    tr = Tracker(max_gap=3)
    for f in range(5):
        # Two faces almost on top of each other (boxes overlap by half).
        d1 = Detection([0, 0, 40, 40], 0.9, lm)
        d2 = Detection([20, 0, 60, 40], 0.9, lm + [20, 0])
        ids = tr.update(f, [d1, d2])
        assert len(set(ids)) == 2
    tracks = tr.finish()
    assert len(tracks) == 2 and all(len(t) == 5 for t in tracks)


def _det_at(x, y, emb=None, s=40):
    lm = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.35, 0.75], [0.65, 0.75]]) * s + [x, y]
    return Detection([x, y, x + s, y + s], 0.9, lm, emb)


def test_gaps_cuts_and_interpolation():
    tr = Tracker(max_gap=2)
    seq = {0: [_det_at(0, 0)], 1: [_det_at(4, 0)], 2: [], 3: [], 4: [_det_at(16, 0)],  # 2 misses: bridged
           5: [], 6: [], 7: [], 8: [_det_at(32, 0)],  # 3 misses: a new track
           9: [_det_at(36, 0)]}
    ids = {f: tr.update(f, d, cut=(f == 9)) for f, d in seq.items()}
    assert ids[0] == ids[1] == ids[4]
    assert ids[8][0] != ids[4][0]
    assert ids[9][0] != ids[8][0]  # a cut ends every track
    tracks = tr.finish()
    first = tracks[0]
    assert first.frames.tolist() == [0, 1, 2, 3, 4]
    assert first.detected.tolist() == [True, True, False, False, True]
    np.testing.assert_allclose(first.raw_landmarks[2] - first.raw_landmarks[1], [[4, 0]] * 5, atol=1e-4)
    with pytest.raises(ValueError):
        tr.update(3, [])


def test_embeddings_keep_identities_when_positions_swap():
    e1, e2 = np.eye(8, dtype=np.float32)[0], np.eye(8, dtype=np.float32)[1]
    tr = Tracker(max_gap=2, max_landmark_distance=2.0, min_iou=0.0)
    a = tr.update(0, [_det_at(0, 0, e1), _det_at(30, 0, e2)])
    # The faces swap places: positions alone would swap the ids; embeddings do not.
    b = tr.update(1, [_det_at(0, 0, e2), _det_at(30, 0, e1)])
    assert b == [a[1], a[0]]


def test_zero_phase_smoothing_removes_jitter_without_lag():
    t = np.arange(60, dtype=np.float64)
    truth = np.stack([np.stack([3.0 * t + k, 0.5 * t + 2 * k], axis=-1) for k in range(5)], axis=1)
    rng = np.random.default_rng(0)
    noisy = truth + rng.normal(0, 1.0, truth.shape)
    # Linear motion passes exactly (no lag, not at the ends either).
    np.testing.assert_allclose(smooth_series(truth, sigma=2.0), truth, atol=1e-3)
    sm = smooth_series(noisy, sigma=2.0)
    assert landmark_jitter(sm) < 0.25 * landmark_jitter(noisy)
    assert np.abs(sm - truth).mean() < 0.6 * np.abs(noisy - truth).mean()
    np.testing.assert_allclose(smooth_series(noisy, sigma=0), noisy, atol=1e-5)  # off


def test_track_faces_smooths_each_track_and_never_across_a_cut():
    rng = np.random.default_rng(1)
    dets = []
    for f in range(30):
        x = 100 + 2 * f if f < 15 else 300  # a jump at the cut
        dets.append([_det_at(x + rng.normal(0, 0.8), 50 + rng.normal(0, 0.8))])
    tracks = track_faces(dets, cuts=[15], sigma=2.0)
    assert [t.frames.tolist() for t in tracks] == [list(range(15)), list(range(15, 30))]
    for t in tracks:
        assert landmark_jitter(t.landmarks) < 0.5 * landmark_jitter(t.raw_landmarks)
    # The first frame after the cut is not pulled towards the old shot.
    assert abs(tracks[1].landmarks[0, 2, 0] - tracks[1].raw_landmarks[0, 2, 0]) < 3
    off = track_faces(dets, cuts=[15], sigma=0)
    np.testing.assert_array_equal(off[0].landmarks, off[0].raw_landmarks)


def test_streaming_tracker_has_bounded_lag_and_matches_the_offline_result():
    rng = np.random.default_rng(2)
    frames = [[_det_at(100 + 3 * f + rng.normal(0, 1), 40 + rng.normal(0, 1))] for f in range(25)]
    lag = 3
    st = StreamingTracker(lag=lag, sigma=2.0, max_gap=2)
    emitted = []
    for f, d in enumerate(frames):
        out = st.push(f, d)
        if f < lag:
            assert out is None
        else:
            emitted.append((f - lag, out))
    emitted += st.flush()
    assert [f for f, _ in emitted] == list(range(25))
    offline = track_faces(frames, sigma=2.0)
    from videofix.faces import smooth_series as ss

    ref = ss(offline[0].raw_landmarks, sigma=2.0, radius=lag)
    got = np.stack([faces[0].landmarks for _, faces in emitted])
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_cut_detector_ignores_motion_and_finds_cuts():
    """TransNetV2 (videofix.shots): the faces crossing fast (28 px a frame) are not a
    cut, the change of background and sides is, at its first frame."""
    frames, _, cut = make_clip()
    assert detect_cuts(frames) == [cut]
