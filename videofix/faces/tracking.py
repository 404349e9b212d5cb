"""Face tracks: frame-to-frame linking, shot cuts, and temporal smoothing of landmarks.

* :class:`Tracker` links detections online. The cost of pairing a live track with a
  detection mixes (1 - IoU) of the boxes, the landmark distance normalised by face size
  (both against the track's constant-velocity prediction, so crossing faces keep their
  ids) and, when the backend gives embeddings, the cosine distance of identities. Pairs
  beyond the gates are impossible; the assignment is Hungarian (scipy), one detection per
  track and one track per detection, so two faces on screen together are never merged.
  A track survives up to ``max_gap`` missed frames; a cut ends every track.
* shot cuts come from :mod:`videofix.shots` (TransNetV2).
* :func:`track_faces` does it all for a whole file, fills the short misses by linear
  interpolation, and smooths the landmarks with a zero-phase filter (a symmetric Gaussian
  along time whose window shrinks symmetrically at the track's ends: no lag, no bias on
  linear motion, never across a cut since tracks end there).
* :class:`StreamingTracker` is the bounded-lag variant for callers that can only wait
  ``lag`` frames: it emits frame t - lag when frame t arrives, smoothed with a window of
  radius at most ``lag``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .types import Detection, FaceTrack, TrackedFace

_IMPOSSIBLE = 1e6


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (N, M) of boxes a (N, 4) and b (M, 4), x0, y0, x1, y1."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class _LiveTrack:
    track_id: int
    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    embedding_sum: np.ndarray | None = None
    velocity_lm: np.ndarray = field(default_factory=lambda: np.zeros((5, 2), np.float64))
    velocity_box: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float64))

    @property
    def last_frame(self) -> int:
        return self.frames[-1]

    def embedding(self) -> np.ndarray | None:
        if self.embedding_sum is None:
            return None
        n = np.linalg.norm(self.embedding_sum)
        return (self.embedding_sum / n).astype(np.float32) if n > 0 else None

    def predict(self, frame_index: int) -> tuple[np.ndarray, np.ndarray]:
        dt = frame_index - self.last_frame
        return (self.boxes[-1] + self.velocity_box * dt, self.landmarks[-1] + self.velocity_lm * dt)

    def add(self, frame_index: int, det: Detection) -> None:
        if self.frames:
            dt = max(frame_index - self.last_frame, 1)
            # Smoothed velocity: enough to carry a face through a crossing, damped against jitter.
            self.velocity_lm = 0.5 * self.velocity_lm + 0.5 * (det.landmarks - self.landmarks[-1]) / dt
            self.velocity_box = 0.5 * self.velocity_box + 0.5 * (det.box - self.boxes[-1]) / dt
        self.frames.append(int(frame_index))
        self.boxes.append(det.box.astype(np.float64))
        self.landmarks.append(det.landmarks.astype(np.float64))
        self.scores.append(det.score)
        if det.embedding is not None:
            e = det.embedding.astype(np.float64)
            # Running mean with a slow forget, so the identity can drift with pose/lighting.
            self.embedding_sum = e if self.embedding_sum is None else 0.9 * self.embedding_sum + 0.1 * e


class Tracker:
    """Online tracker. Feed every frame in order with :meth:`update`; :meth:`finish` returns
    every track with its misses filled (landmarks not smoothed: see :func:`smooth_track`).

    max_gap: frames a track may miss and still continue (filled by interpolation).
    min_iou / max_landmark_distance: gates; a pair passes when IoU >= min_iou **or** the mean
        landmark distance / face size <= max_landmark_distance.
    max_embedding_distance: when both sides have embeddings, cosine distance gate.
    weights: cost = w_iou * (1 - IoU) + w_lm * landmark distance + w_emb * cosine distance.
    """

    def __init__(self, max_gap: int = 5, min_iou: float = 0.1, max_landmark_distance: float = 0.6,
                 max_embedding_distance: float = 0.6, w_iou: float = 1.0, w_landmarks: float = 1.0,
                 w_embedding: float = 1.0):
        self.max_gap = int(max_gap)
        self.min_iou = float(min_iou)
        self.max_landmark_distance = float(max_landmark_distance)
        self.max_embedding_distance = float(max_embedding_distance)
        self.w_iou, self.w_lm, self.w_emb = float(w_iou), float(w_landmarks), float(w_embedding)
        self._next_id = 0
        self._live: list[_LiveTrack] = []
        self._done: list[_LiveTrack] = []
        self._last_frame: int | None = None

    @property
    def live_ids(self) -> list[int]:
        return [t.track_id for t in self._live]

    def cost_matrix(self, frame_index: int, detections: Sequence[Detection]) -> np.ndarray:
        """(tracks, detections) cost with impossible pairs set to a large value."""
        n, m = len(self._live), len(detections)
        cost = np.full((n, m), _IMPOSSIBLE)
        if n == 0 or m == 0:
            return cost
        preds = [t.predict(frame_index) for t in self._live]
        iou = box_iou(np.stack([p[0] for p in preds]), np.stack([d.box for d in detections]))
        for i, (track, (pbox, plm)) in enumerate(zip(self._live, preds)):
            t_emb = track.embedding()
            for j, det in enumerate(detections):
                size = 0.5 * (det.size + float(np.sqrt(max((pbox[2] - pbox[0]) * (pbox[3] - pbox[1]), 1.0))))
                lm = float(np.mean(np.linalg.norm(det.landmarks - plm, axis=1))) / max(size, 1.0)
                if iou[i, j] < self.min_iou and lm > self.max_landmark_distance:
                    continue
                c = self.w_iou * (1.0 - iou[i, j]) + self.w_lm * min(lm, 2.0)
                if t_emb is not None and det.embedding is not None:
                    ed = 1.0 - float(np.dot(t_emb, det.embedding) / max(np.linalg.norm(det.embedding), 1e-12))
                    if ed > self.max_embedding_distance:
                        continue
                    c += self.w_emb * ed
                cost[i, j] = c
        return cost

    def update(self, frame_index: int, detections: Sequence[Detection], cut: bool = False) -> list[int]:
        """Link one frame's detections. Returns the track id of each detection (same order).

        frame_index must increase; cut=True means this frame starts a new shot (every live
        track ends before linking).
        """
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise ValueError("Tracker.update: frame indices must increase")
        self._last_frame = frame_index
        if cut:
            self._done.extend(self._live)
            self._live = []
        # Tracks that missed too many frames end here.
        still = []
        for t in self._live:
            (still if frame_index - t.last_frame <= self.max_gap + 1 else self._done).append(t)
        self._live = still
        ids = [-1] * len(detections)
        cost = self.cost_matrix(frame_index, detections)
        if cost.size:
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] < _IMPOSSIBLE:
                    self._live[r].add(frame_index, detections[c])
                    ids[c] = self._live[r].track_id
        for j, det in enumerate(detections):
            if ids[j] < 0:
                t = _LiveTrack(self._next_id)
                self._next_id += 1
                t.add(frame_index, det)
                self._live.append(t)
                ids[j] = t.track_id
        return ids

    def take_ended(self) -> list[FaceTrack]:
        """The tracks that have ended since the last call (misses filled, landmarks unsmoothed,
        sorted by id), removed from the tracker: after an `update(..., cut=True)` these are
        every track of the frames before the cut not taken yet, so a caller can finish a
        shot's tracks while later frames are still being linked. `finish` then returns only
        the tracks not taken."""
        ended, self._done = self._done, []
        return sorted((_to_face_track(t) for t in ended), key=lambda t: t.track_id)

    def finish(self) -> list[FaceTrack]:
        """All tracks (ended and live), misses filled, landmarks unsmoothed, sorted by id."""
        tracks = [_to_face_track(t) for t in self._done + self._live]
        return sorted(tracks, key=lambda t: t.track_id)


def _to_face_track(t: _LiveTrack) -> FaceTrack:
    frames = np.asarray(t.frames, np.int64)
    full = np.arange(frames[0], frames[-1] + 1, dtype=np.int64)
    boxes = np.stack(t.boxes)
    lms = np.stack(t.landmarks).reshape(len(frames), 10)
    boxes_f = np.stack([np.interp(full, frames, boxes[:, k]) for k in range(4)], axis=1)
    lms_f = np.stack([np.interp(full, frames, lms[:, k]) for k in range(10)], axis=1).reshape(-1, 5, 2)
    detected = np.isin(full, frames)
    scores = np.zeros(len(full), np.float32)
    scores[frames - frames[0]] = t.scores
    return FaceTrack(
        track_id=t.track_id, frames=full, boxes=boxes_f.astype(np.float32),
        raw_landmarks=lms_f.astype(np.float32), landmarks=lms_f.astype(np.float32).copy(),
        scores=scores, detected=detected, embedding=t.embedding(),
    )


# --------------------------------------------------------------------------- smoothing

def smooth_series(values: np.ndarray, sigma: float = 2.0, radius: int | None = None) -> np.ndarray:
    """Zero-phase Gaussian smoothing along axis 0 with windows shrinking at both ends.

    values: (T, ...) float. At step t the window is t - r .. t + r with
    r = min(radius, t, T - 1 - t) (symmetric, so no lag and linear motion is kept exactly);
    radius defaults to ceil(3 * sigma). sigma <= 0 returns a copy. float32 out.
    """
    x = np.asarray(values, dtype=np.float64)
    if sigma <= 0 or len(x) < 3:
        return x.astype(np.float32)
    R = int(np.ceil(3 * sigma)) if radius is None else int(radius)
    T = len(x)
    k = np.exp(-0.5 * (np.arange(-R, R + 1) / sigma) ** 2)
    out = np.empty_like(x)
    flat = x.reshape(T, -1)
    out_flat = out.reshape(T, -1)
    for t in range(T):
        r = min(R, t, T - 1 - t)
        w = k[R - r:R + r + 1]
        out_flat[t] = w @ flat[t - r:t + r + 1] / w.sum()
    return out.astype(np.float32)


def smooth_track(track: FaceTrack, sigma: float = 2.0, radius: int | None = None) -> FaceTrack:
    """Set ``track.landmarks`` to the zero-phase smoothed ``raw_landmarks`` (sigma in frames;
    0 turns smoothing off). Returns the same track."""
    track.landmarks = smooth_series(track.raw_landmarks, sigma, radius)
    track.meta["smoothing_sigma"] = float(sigma)
    return track


smooth_landmarks = smooth_track


def landmark_jitter(landmarks: np.ndarray) -> float:
    """Mean norm of the second temporal difference of (T, 5, 2) landmarks, in pixels: the
    frame-to-frame shake that causes flicker (0 for any constant-velocity motion)."""
    lm = np.asarray(landmarks, np.float64)
    if len(lm) < 3:
        return 0.0
    return float(np.linalg.norm(lm[2:] - 2 * lm[1:-1] + lm[:-2], axis=-1).mean())


def track_faces(detections_per_frame: Sequence[Sequence[Detection]], cuts: Iterable[int] = (), *,
                max_gap: int = 5, sigma: float = 2.0, min_detections: int = 2, **tracker_options) -> list[FaceTrack]:
    """Tracks for a whole file.

    detections_per_frame: list over frames (index = frame index) of that frame's detections.
    cuts: frame indices that start a new shot (e.g. from `videofix.shots.detect_cuts`).
    max_gap: misses a track survives (filled by interpolation). sigma: landmark smoothing in
    frames (0: off). min_detections: drop tracks detected in fewer frames (one-frame false
    positives would flash a restored face; HOG makes some on noisy frames).
    Returns tracks sorted by (start frame, id).
    """
    cut_set = {int(c) for c in cuts}
    tracker = Tracker(max_gap=max_gap, **tracker_options)
    for f, dets in enumerate(detections_per_frame):
        tracker.update(f, list(dets), cut=f in cut_set)
    tracks = [t for t in tracker.finish() if int(t.detected.sum()) >= min_detections]
    for t in tracks:
        smooth_track(t, sigma)
    return sorted(tracks, key=lambda t: (t.start, t.track_id))


class StreamingTracker:
    """Bounded-lag tracking + smoothing for streams.

    ``push(frame_index, detections, cut=False)`` returns the faces of frame
    ``frame_index - lag`` (a list of :class:`TrackedFace`, possibly empty) once it is final,
    or None for the first `lag` frames; ``flush()`` returns the remaining frames as
    (frame_index, faces) pairs. Landmarks are smoothed with the Gaussian of
    :func:`smooth_series` but a radius of at most `lag`; misses are only bridged when the face
    is back within the lag (``max_gap`` is capped at `lag`). Without misses in flight, the
    result equals :func:`track_faces` with ``radius=min(ceil(3 sigma), lag)``.
    """

    def __init__(self, lag: int = 4, sigma: float = 2.0, max_gap: int = 3, **tracker_options):
        self.lag = int(lag)
        self.sigma = float(sigma)
        self.radius = min(int(np.ceil(3 * sigma)), self.lag) if sigma > 0 else 0
        self.tracker = Tracker(max_gap=min(int(max_gap), self.lag), **tracker_options)
        self._frames: list[int] = []
        self._pending: list[int] = []

    def _faces_at(self, f: int) -> list[TrackedFace]:
        faces = []
        reach = self.radius + self.tracker.max_gap + 1
        for t in self.tracker._live + self.tracker._done:
            if not t.frames or not (t.frames[0] <= f <= t.frames[-1]):
                continue
            # Only the detections that can reach frame f: O(window) work per frame.
            lo = bisect.bisect_left(t.frames, f - reach)
            hi = bisect.bisect_right(t.frames, f + reach)
            window = _LiveTrack(t.track_id, t.frames[lo:hi], t.boxes[lo:hi], t.landmarks[lo:hi], t.scores[lo:hi])
            ft = _to_face_track(window)
            i = f - ft.start
            # Symmetric window, shrunk at the true track ends only.
            r = min(self.radius, f - t.frames[0], t.frames[-1] - f)
            seg = ft.raw_landmarks[i - r:i + r + 1]
            if r > 0:
                k = np.exp(-0.5 * (np.arange(-r, r + 1) / self.sigma) ** 2)
                lm = np.tensordot(k / k.sum(), seg.astype(np.float64), axes=1).astype(np.float32)
            else:
                lm = ft.raw_landmarks[i].copy()
            faces.append(TrackedFace(ft.track_id, f, ft.boxes[i], lm, ft.raw_landmarks[i],
                                     float(ft.scores[i]), bool(ft.detected[i])))
        # Tracks that ended before this frame can never be emitted again.
        self.tracker._done = [t for t in self.tracker._done if t.frames[-1] >= f]
        return sorted(faces, key=lambda x: x.track_id)

    def push(self, frame_index: int, detections: Sequence[Detection], cut: bool = False):
        self.tracker.update(frame_index, list(detections), cut=cut)
        self._pending.append(frame_index)
        if len(self._pending) <= self.lag:
            return None
        f = self._pending.pop(0)
        return self._faces_at(f)

    def flush(self) -> list[tuple[int, list[TrackedFace]]]:
        out = [(f, self._faces_at(f)) for f in self._pending]
        self._pending = []
        return out
