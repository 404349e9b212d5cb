"""Plain data passed between detection, tracking, alignment and paste-back.

Coordinates are frame pixels (x to the right, y down, pixel centres at integers, as
OpenCV). Landmark order everywhere in videofix: left eye, right eye, nose tip, left
mouth corner, right mouth corner, where "left" means the image's left (the subject's
right eye), matching the official 512 alignment template.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


@dataclass
class Detection:
    """One face found in one frame.

    box: float32 (4,) x0, y0, x1, y1 in frame pixels.
    score: detector confidence in 0..1 (dlib's HOG margin is mapped through a logistic).
    landmarks: float32 (5, 2) x, y in the order of `LANDMARK_NAMES`.
    embedding: float32 (D,) L2-normalised identity embedding, or None when the backend has
        none (retinaface, dlib).
    """

    box: np.ndarray
    score: float
    landmarks: np.ndarray
    embedding: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(5, 2)
        self.score = float(self.score)
        if self.embedding is not None:
            self.embedding = np.asarray(self.embedding, dtype=np.float32).reshape(-1)

    @property
    def eye_distance(self) -> float:
        """Distance between the two eye landmarks, in pixels."""
        return float(np.linalg.norm(self.landmarks[0] - self.landmarks[1]))

    @property
    def size(self) -> float:
        """A scale for the face: the geometric mean of the box sides, in pixels."""
        w = max(float(self.box[2] - self.box[0]), 1.0)
        h = max(float(self.box[3] - self.box[1]), 1.0)
        return float(np.sqrt(w * h))

    def scaled(self, sx: float, sy: float) -> "Detection":
        """This detection with x multiplied by `sx` and y by `sy` (e.g. back to frame size)."""
        s4 = np.array([sx, sy, sx, sy], dtype=np.float32)
        s2 = np.array([sx, sy], dtype=np.float32)
        return Detection(self.box * s4, self.score, self.landmarks * s2, self.embedding)


@dataclass
class TrackedFace:
    """One face of one track in one frame, as the restoration stage consumes it.

    landmarks: float32 (5, 2), smoothed over time when smoothing is on (use these for the
        alignment); raw_landmarks: float32 (5, 2) as detected (or interpolated in a gap).
    detected: False where the frame was a short miss filled by interpolation.
    """

    track_id: int
    frame_index: int
    box: np.ndarray
    landmarks: np.ndarray
    raw_landmarks: np.ndarray
    score: float
    detected: bool


@dataclass
class FaceTrack:
    """One face followed over consecutive frames of one shot.

    frames: int64 (T,) consecutive frame indices (misses inside the track are filled).
    boxes: float32 (T, 4); raw_landmarks / landmarks: float32 (T, 5, 2) (landmarks are the
    smoothed ones, equal to raw_landmarks when smoothing is off); scores: float32 (T,),
    0 where interpolated; detected: bool (T,); embedding: float32 (D,) mean L2-normalised
    embedding over the detections that had one, or None.
    """

    track_id: int
    frames: np.ndarray
    boxes: np.ndarray
    raw_landmarks: np.ndarray
    landmarks: np.ndarray
    scores: np.ndarray
    detected: np.ndarray
    embedding: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.frames.shape[0])

    @property
    def start(self) -> int:
        return int(self.frames[0])

    @property
    def end(self) -> int:
        """Last frame index of the track (inclusive)."""
        return int(self.frames[-1])

    def at(self, frame_index: int) -> TrackedFace | None:
        """The face in frame `frame_index`, or None when the track does not cover it."""
        i = frame_index - self.start
        if i < 0 or i >= len(self):
            return None
        return TrackedFace(
            track_id=self.track_id,
            frame_index=int(frame_index),
            box=self.boxes[i],
            landmarks=self.landmarks[i],
            raw_landmarks=self.raw_landmarks[i],
            score=float(self.scores[i]),
            detected=bool(self.detected[i]),
        )


def faces_by_frame(tracks: list[FaceTrack]) -> dict[int, list[TrackedFace]]:
    """Regroup tracks per frame: {frame_index: [TrackedFace, ...]} ordered by track id."""
    out: dict[int, list[TrackedFace]] = {}
    for track in sorted(tracks, key=lambda t: t.track_id):
        for f in track.frames:
            face = track.at(int(f))
            if face is not None:
                out.setdefault(int(f), []).append(face)
    return out
