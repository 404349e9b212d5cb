"""Clips for the feed-rate and GPU benchmarks: real faces (scikit-image's astronaut) in a
grid, 1 to 4 of them, moving slowly over a textured background, H.264 with audio.

`videofix.samples.face_content` places one or two faces; the benchmarks also need four
(one per quarter of the frame), each big enough for the HOG detector at detection size.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from videofix import atomic
from videofix.samples import astronaut_face, face_content, write_sample_clip


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
            cx = width * (0.25 + 0.5 * (k % 2)) + 0.03 * width * np.sin(i / 10.0 + k)
            cy = height * (0.27 + 0.46 * (k // 2)) + 0.02 * height * np.cos(i / 13.0 + k)
            x0, y0 = int(round(cx - size / 2)), int(round(cy - size / 2))
            x0, y0 = min(max(0, x0), width - size), min(max(0, y0), height - size)
            region = frame[y0:y0 + size, x0:x0 + size]
            frame[y0:y0 + size, x0:x0 + size] = alpha * patch + (1 - alpha) * region
        noise = np.random.default_rng(seed * 7919 + i).normal(0, 4.0, frame.shape).astype(np.float32)
        return np.clip(np.rint(frame + noise), 0, 255).astype(np.uint8)

    return content


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
              shot_frames: int = 0) -> Path:
    """Write (once; reused when it exists) a clip of `frames` frames with `faces` faces;
    `shot_frames` > 0: a hard cut every `shot_frames` frames (`shot_content`)."""
    path = Path(path)
    if not path.exists():
        content = shot_content(width, height, faces, shot_frames) if shot_frames > 0 else grid_content(width, height, faces)
        atomic.write_with(path, lambda tmp: write_sample_clip(tmp, content, frames, fps=fps))
    return path
