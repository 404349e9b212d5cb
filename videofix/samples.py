"""Sample clips with real faces, for the demo, the benchmarks and the tests.

The faces are real photographs that ship inside packages (scikit-image's astronaut); a
clip moves and zooms them over a textured background and degrades them the way old or
compressed footage is degraded (blur, noise, blocky downscaling), with a sine audio
track, so every stage of the pipeline has real work to do.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np


def astronaut_face(size: int = 256) -> np.ndarray:
    """scikit-image's astronaut, the head and shoulders region, as uint8 (size, size, 3) RGB."""
    from skimage import data

    img = data.astronaut()
    face = img[0:260, 110:370]
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)


def _background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([60 + 80 * xx / max(1, width - 1), 70 + 60 * yy / max(1, height - 1),
                     90 + 40 * np.sin((xx + 2 * yy) / 37.0)], axis=-1)
    texture = cv2.GaussianBlur(rng.normal(0, 18, (height, width, 1)).astype(np.float32), (0, 0), 3)[..., None]
    return np.clip(base + texture, 0, 255).astype(np.float32)


def face_content(width: int, height: int, *, faces: int = 1, face_size: int | None = None, motion: bool = True,
                 degrade: bool = True, noise: float = 6.0, seed: int = 0) -> Callable[[int], np.ndarray]:
    """A `content(frame_index) -> uint8 (height, width, 3) RGB` with real faces.

    faces: 1 or 2 (the second is the astronaut mirrored, on the other side). face_size:
    side of each face patch in pixels (default: 45% of the frame height). motion: the
    faces drift and zoom slowly. degrade: blur + blocky downscale on the faces and fresh
    Gaussian noise (`noise` levels) over the whole frame every frame.
    """
    size = int(face_size or max(64, int(0.45 * height)))
    patches = [astronaut_face(size)]
    if faces >= 2:
        patches.append(patches[0][:, ::-1].copy())
    bg = _background(width, height, seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot((xx - size / 2) / (size / 2), (yy - size / 2) / (size / 2))
    alpha = np.clip((1.0 - r) * 4.0, 0, 1)[..., None]  # soft round matte

    def content(i: int) -> np.ndarray:
        rng = np.random.default_rng(seed * 100003 + i)
        frame = bg.copy()
        for k, patch in enumerate(patches):
            zoom = 1.0 + (0.08 * np.sin(i / 9.0) if motion else 0.0)
            s = max(16, int(round(size * zoom)))
            p = cv2.resize(patch, (s, s), interpolation=cv2.INTER_LINEAR)
            a = cv2.resize(alpha, (s, s), interpolation=cv2.INTER_LINEAR)[..., None]
            if degrade:
                small = cv2.resize(p, (max(8, s // 3), max(8, s // 3)), interpolation=cv2.INTER_AREA)
                p = cv2.GaussianBlur(cv2.resize(small, (s, s), interpolation=cv2.INTER_LINEAR), (0, 0), 1.0)
            cx = width * (0.3 + 0.4 * k) + (0.06 * width * np.sin(i / 12.0 + k) if motion else 0.0)
            cy = height * 0.5 + (0.04 * height * np.cos(i / 15.0) if motion else 0.0)
            x0, y0 = int(round(cx - s / 2)), int(round(cy - s / 2))
            fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(width, x0 + s), min(height, y0 + s)
            if fx1 <= fx0 or fy1 <= fy0:
                continue
            px, py = fx0 - x0, fy0 - y0
            sub_p = p[py:py + fy1 - fy0, px:px + fx1 - fx0].astype(np.float32)
            sub_a = a[py:py + fy1 - fy0, px:px + fx1 - fx0]
            frame[fy0:fy1, fx0:fx1] = sub_a * sub_p + (1 - sub_a) * frame[fy0:fy1, fx0:fx1]
        if noise > 0:
            frame += rng.normal(0, noise, frame.shape).astype(np.float32)
        return np.clip(np.rint(frame), 0, 255).astype(np.uint8)

    return content


def write_sample_clip(path: str | Path, content: Callable[[int], np.ndarray], frames: int, *, fps: int = 25,
                      codec: str = "libx264", pix_fmt: str = "yuv420p", crf: int = 20, audio: bool = True,
                      sample_rate: int = 48000) -> Path:
    """Write `frames` frames of `content` to `path` (H.264 + AAC sine by default) with PyAV."""
    path = Path(path)
    first = content(0)
    h, w = first.shape[:2]
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            v.options = {"crf": str(crf), "preset": "veryfast"}
        a = None
        if audio:
            a = out.add_stream("aac", rate=sample_rate)
            a.layout = "mono"
        for i in range(frames):
            rgb = first if i == 0 else content(i)
            vf = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for pkt in v.encode(vf):
                out.mux(pkt)
        for pkt in v.encode():
            out.mux(pkt)
        if a is not None:
            total = int(round(frames / fps * sample_rate))
            t = np.arange(total) / sample_rate
            samples = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
            step = 1024
            for start in range(0, total, step):
                chunk = samples[start:start + step][None, :]
                af = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                af.sample_rate = sample_rate
                af.pts = start
                af.time_base = Fraction(1, sample_rate)
                for pkt in a.encode(af):
                    out.mux(pkt)
            for pkt in a.encode():
                out.mux(pkt)
    return path
