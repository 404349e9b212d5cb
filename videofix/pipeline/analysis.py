"""Pass 1: find the faces of a whole video and link them into tracks.

The restoration pass needs, for every frame, which faces it holds and their *smoothed*
landmarks; smoothing is zero-phase (it looks ahead), and the Ray runner needs the same
tracks on every segment so that segments restore exactly as one piece. So videofix first
decodes the video once for detection alone (a small RGB copy of each frame, never a full
resolution conversion), links the detections into tracks over the whole film, and keeps
only small metadata (a few floats per face per frame) for the second pass.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from videofix.faces import CutDetector, Detection, FaceTrack, TrackedFace, Tracker, smooth_track
from videofix.io.picture import Picture

DETECTION_SHORT_SIDE = 640  # the official pipeline resizes so the short side is 640


def detection_image(picture: Picture, short_side: int = DETECTION_SHORT_SIDE) -> tuple[np.ndarray, float]:
    """A small RGB copy of a picture for detection and cut detection.

    Scales and converts in one libswscale call (area filter), so a 4K frame is never
    converted to RGB at full size. Returns (uint8 HxWx3 **RGB**, scale) where frame
    coordinates = detection coordinates * scale.
    """
    w, h = picture.width, picture.height
    scale = max(1.0, min(w, h) / float(short_side))
    dw, dh = max(2, int(round(w / scale))), max(2, int(round(h / scale)))
    frame = picture.to_av_frame()
    if (dw, dh) == (w, h) and picture.pix_fmt == "rgb24":
        return np.ascontiguousarray(picture.planes[0]), 1.0
    rgb = frame.reformat(width=dw, height=dh, format="rgb24", interpolation="AREA").to_ndarray()
    return np.ascontiguousarray(rgb), w / float(dw)


@dataclass
class FaceAnalysis:
    """What pass 1 found: the tracks of a video (or of a range of it).

    frame_count: frames decoded. cuts: frame indices that start a new shot.
    tracks: `FaceTrack`s (landmarks smoothed when smoothing is on), frame indices counted from
    the first decoded frame. detector: the backend used. seconds: time spent.
    """

    frame_count: int
    cuts: list[int]
    tracks: list[FaceTrack]
    detector: str
    frame_size: tuple[int, int] = (0, 0)  # (width, height)
    seconds: float = 0.0
    detections: int = 0
    extra: dict = field(default_factory=dict)

    def faces_in(self, frame_index: int) -> list[TrackedFace]:
        """Faces of frame `frame_index`, ordered by track id."""
        out = []
        for t in self._by_frame().get(frame_index, ()):
            face = t.at(frame_index)
            if face is not None:
                out.append(face)
        return out

    def _by_frame(self) -> dict[int, list[FaceTrack]]:
        index = getattr(self, "_index", None)
        if index is None:
            index = {}
            for t in sorted(self.tracks, key=lambda t: t.track_id):
                for f in range(t.start, t.end + 1):
                    index.setdefault(f, []).append(t)
            self._index = index
        return index

    def track(self, track_id: int) -> FaceTrack:
        for t in self.tracks:
            if t.track_id == track_id:
                return t
        raise KeyError(track_id)

    # ------------------------------------------------------------------ (de)serialise
    def to_dict(self) -> dict:
        return {
            "frame_count": self.frame_count,
            "cuts": list(map(int, self.cuts)),
            "detector": self.detector,
            "frame_size": list(self.frame_size),
            "seconds": self.seconds,
            "detections": self.detections,
            "extra": self.extra,
            "tracks": [
                {
                    "id": int(t.track_id),
                    "frames": t.frames.astype(int).tolist(),
                    "boxes": t.boxes.astype(float).tolist(),
                    "raw_landmarks": t.raw_landmarks.astype(float).tolist(),
                    "landmarks": t.landmarks.astype(float).tolist(),
                    "scores": t.scores.astype(float).tolist(),
                    "detected": t.detected.astype(bool).tolist(),
                }
                for t in self.tracks
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> "FaceAnalysis":
        tracks = [
            FaceTrack(
                track_id=int(t["id"]),
                frames=np.asarray(t["frames"], np.int64),
                boxes=np.asarray(t["boxes"], np.float32).reshape(-1, 4),
                raw_landmarks=np.asarray(t["raw_landmarks"], np.float32).reshape(-1, 5, 2),
                landmarks=np.asarray(t["landmarks"], np.float32).reshape(-1, 5, 2),
                scores=np.asarray(t["scores"], np.float32),
                detected=np.asarray(t["detected"], bool),
            )
            for t in d["tracks"]
        ]
        return cls(
            frame_count=int(d["frame_count"]), cuts=[int(c) for c in d["cuts"]], tracks=tracks,
            detector=str(d["detector"]), frame_size=tuple(d.get("frame_size", (0, 0))),
            seconds=float(d.get("seconds", 0.0)), detections=int(d.get("detections", 0)),
            extra=dict(d.get("extra", {})),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> "FaceAnalysis":
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class FrameDetections:
    """Detections of one frame (frame coordinates) and whether a new shot starts there."""

    index: int
    detections: list[Detection]
    cut: bool


def detect_frames(frames: Iterable, detector, *, short_side: int = DETECTION_SHORT_SIDE,
                  progress: Callable[[int], None] | None = None,
                  observer: Callable[[int, np.ndarray, list[Detection], bool], None] | None = None,
                  ) -> Iterable[FrameDetections]:
    """Run detection and cut detection over decoded frames (`DecodedFrame`s, in order).

    Yields one `FrameDetections` per frame; detections are in full-frame pixel coordinates.
    Embeddings (scrfd) are kept for tracking only. observer: called per frame with (index,
    the detection image (uint8 RGB), detections, cut), e.g. `videofix.film.plan.FilmSurvey`.
    """
    cuts = CutDetector()
    for i, frame in enumerate(frames):
        small, scale = detection_image(frame.picture, short_side)
        cut = cuts.update(small)
        dets = detector.detect(small)
        if scale != 1.0:
            dets = [d.scaled(scale, scale) for d in dets]
        if observer is not None:
            observer(i, small, dets, cut)
        if progress is not None:
            progress(1)
        yield FrameDetections(i, dets, cut)


def link_detections(per_frame: Iterable[FrameDetections], *, detector_name: str, frame_size: tuple[int, int],
                    sigma: float = 2.0, max_gap: int = 5, min_detections: int = 2) -> FaceAnalysis:
    """Link the detections of all frames of a video (in order, streamed) into smoothed tracks.

    Detections are linked as they come (nothing per frame is kept but the tracks' own
    landmarks), so memory stays small on long films. sigma: landmark smoothing in frames
    (0 = off); max_gap: misses a track survives (filled by interpolation); tracks detected in
    fewer than `min_detections` frames are dropped (flash false positives). Track ids are
    renumbered 0.. in order of appearance so runs and reports are stable.
    """
    t0 = time.perf_counter()
    tracker = Tracker(max_gap=max_gap)
    cuts: list[int] = []
    count = detections = 0
    for fd in per_frame:
        if fd.cut:
            cuts.append(fd.index)
        tracker.update(fd.index, fd.detections, cut=fd.cut)
        count += 1
        detections += len(fd.detections)
    tracks = [t for t in tracker.finish() if int(t.detected.sum()) >= min_detections]
    for t in tracks:
        smooth_track(t, sigma)
    tracks.sort(key=lambda t: (t.start, t.track_id))
    for new_id, t in enumerate(tracks):
        t.track_id = new_id
    return FaceAnalysis(frame_count=count, cuts=cuts, tracks=tracks, detector=detector_name,
                        frame_size=frame_size, seconds=time.perf_counter() - t0, detections=detections)


def analyze_frames(frames: Iterable, detector, *, frame_size: tuple[int, int], sigma: float = 2.0,
                   max_gap: int = 5, min_detections: int = 2, short_side: int = DETECTION_SHORT_SIDE,
                   progress: Callable[[int], None] | None = None, observer=None) -> FaceAnalysis:
    """Pass 1 over decoded frames: detect, find cuts, link tracks, smooth landmarks
    (`observer`: see `detect_frames`)."""
    return link_detections(detect_frames(frames, detector, short_side=short_side, progress=progress,
                                         observer=observer),
                           detector_name=detector.name, frame_size=frame_size, sigma=sigma,
                           max_gap=max_gap, min_detections=min_detections)
