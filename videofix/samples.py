"""Sample clips with real faces, for the demo, the benchmarks and the tests.

The faces are real photographs that ship inside packages (scikit-image's astronaut); a
clip moves and zooms them over a textured background and degrades them the way old or
compressed footage is degraded (blur, noise, blocky downscaling), with a sine audio
track, so every stage of the pipeline has real work to do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

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
    import av  # here, not at the top: the faces alone need no PyAV (bench/gpu_check.py's engine sections)

    path = Path(path)
    first = content(0)
    h, w = first.shape[:2]
    with av.open(str(path), "w") as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        if codec == "libx264":
            v.options = {"crf": str(crf), "preset": "veryfast", "threads": "1"}  # reproducible (see io.codecs)
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


# --------------------------------------------------------------------------- edited clips
# Clips with shot boundaries (hard cuts, fades, dissolves) between real photographs, for the
# cut-detector benchmark (bench/bench_cuts.py) and the tests: the truth is known exactly.

def real_image(name: str) -> np.ndarray:
    """A real photograph that ships inside an installed package, uint8 (H, W, 3) RGB.

    name: a scikit-image `data` picture ("astronaut", "camera", "coffee", "chelsea",
    "rocket", "immunohistochemistry", ...; grey ones are stacked to RGB) or "group"
    (insightface's t1.jpg: six people, 886x1280).
    """
    if name == "group":
        import os

        import insightface

        bgr = cv2.imread(os.path.join(os.path.dirname(insightface.__file__), "data", "images", "t1.jpg"))
        if bgr is None:
            raise FileNotFoundError("insightface data/images/t1.jpg")
        return np.ascontiguousarray(bgr[:, :, ::-1])
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def match_histogram(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`image` (uint8 RGB) with each channel's histogram matched to `reference`'s: a new shot
    whose colours are those of the old one (what defeats histogram cut cues)."""
    from skimage.exposure import match_histograms

    return np.clip(np.rint(match_histograms(image, reference, channel_axis=-1)), 0, 255).astype(np.uint8)


@dataclass
class ShotSpec:
    """One shot of an edited clip.

    image: uint8 RGB source picture; the shot is a (crop_w, crop_h) window of it (fraction of
    its size, default 0.7) moving from `start` to `end` (fractions of the free room, x and y),
    resized to the clip size. gain: brightness factor. faces: extra (patch uint8 RGB, cx, cy
    as fractions of the frame, size as a fraction of the frame height) pasted with a soft matte.
    transition_in: how the shot begins after the previous one: ("cut", 0), ("fade", L) (the
    previous shot fades to black over L // 2 frames, this one fades in over the rest) or
    ("dissolve", L) (L frames blending the two).
    """

    image: np.ndarray
    frames: int
    start: tuple[float, float] = (0.2, 0.3)
    end: tuple[float, float] = (0.5, 0.4)
    crop: float = 0.7
    gain: float = 1.0
    faces: list = field(default_factory=list)
    transition_in: tuple[str, int] = ("cut", 0)


@dataclass
class EditTruth:
    """Where the boundaries of an edited clip are. hard: first frames of new shots after a
    hard cut; soft: (first, last) frames of each fade/dissolve (inclusive), with `soft_cut`
    the first frame that belongs to the new shot more than to the old one. shot_of[f]: the
    shot index of frame f (for a transition frame, the shot it mostly shows)."""

    frames: int
    hard: list[int]
    soft: list[tuple[int, int]]
    soft_cut: list[int]
    shot_of: list[int]


def edited_content(width: int, height: int, shots: list[ShotSpec], *, noise: float = 3.0,
                   seed: int = 0) -> tuple[Callable[[int], np.ndarray], EditTruth]:
    """`content(frame_index) -> uint8 (height, width, 3) RGB` of shots joined by hard cuts,
    fades and dissolves, and the truth about its boundaries (`EditTruth`). Every shot moves
    (slow pan) and every frame gets fresh noise, so no two frames are identical."""
    starts, t = [], 0
    for k, s in enumerate(shots):
        kind, length = s.transition_in
        if k > 0 and kind != "cut":
            t -= 0 if kind == "fade" else length  # a dissolve overlaps the two shots
        starts.append(t)
        t += s.frames
    total = t
    hard, soft, soft_cut = [], [], []
    blends: dict[int, list[tuple[int, float]]] = {}
    for k, s in enumerate(shots):
        kind, length = s.transition_in
        if k == 0:
            continue
        a0 = starts[k]
        if kind == "cut":
            hard.append(a0)
        elif kind == "dissolve":
            span = (a0, a0 + length - 1)
            soft.append(span)
            soft_cut.append(a0 + length // 2)
        elif kind == "fade":
            out_len = length // 2
            # the old shot's last `out_len` frames darken, the new shot's first frames brighten
            span = (a0 - out_len, a0 + (length - out_len) - 1)
            soft.append(span)
            soft_cut.append(a0)
        else:
            raise ValueError(f"unknown transition {kind!r}")
    shot_of = []
    for f in range(total):
        live = [k for k in range(len(shots)) if starts[k] <= f < starts[k] + shots[k].frames]
        shot_of.append(live[-1] if len(live) == 1 else _dominant(f, live, starts, shots))

    def shot_frame(k: int, i: int) -> np.ndarray:
        s = shots[k]
        img = s.image.astype(np.float32)
        ih, iw = img.shape[:2]
        ch = int(round(ih * s.crop))
        cw = min(iw, int(round(ch * width / height)))
        ch = min(ih, int(round(cw * height / width)))
        u = i / max(1, s.frames - 1)
        fx = s.start[0] + (s.end[0] - s.start[0]) * u
        fy = s.start[1] + (s.end[1] - s.start[1]) * u
        x0, y0 = fx * (iw - cw), fy * (ih - ch)
        # sub-pixel pan: an affine warp, so the motion is smooth
        m = np.float32([[cw / width, 0, x0], [0, ch / height, y0]])
        frame = cv2.warpAffine(img, m, (width, height), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REFLECT)
        for patch, cx, cy, size in s.faces:
            _paste_face(frame, patch, cx * width, cy * height, int(round(size * height)))
        return frame * s.gain

    def content(f: int) -> np.ndarray:
        rng = np.random.default_rng(seed * 100003 + f)
        live = [k for k in range(len(shots)) if starts[k] <= f < starts[k] + shots[k].frames]
        out = np.zeros((height, width, 3), np.float32)
        for k in live:
            out += _weight(f, k, starts, shots) * shot_frame(k, f - starts[k])
        if noise > 0:
            out += rng.normal(0, noise, out.shape).astype(np.float32)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    return content, EditTruth(total, hard, soft, soft_cut, shot_of)


def _weight(f: int, k: int, starts: list[int], shots: list[ShotSpec]) -> float:
    """How much of shot k frame f shows (1 outside transitions)."""
    s = shots[k]
    w = 1.0
    kind, length = s.transition_in
    i = f - starts[k]
    if k > 0 and kind == "dissolve" and i < length:
        w *= (i + 1) / (length + 1)
    if k > 0 and kind == "fade":
        fade_in = length - length // 2
        if i < fade_in:
            w *= (i + 1) / (fade_in + 1)
    if k + 1 < len(shots):
        nkind, nlen = shots[k + 1].transition_in
        left = s.frames - 1 - i  # frames after this one in the shot
        if nkind == "dissolve" and left < nlen:
            w *= 1.0 - (nlen - left) / (nlen + 1)
        if nkind == "fade":
            out_len = nlen // 2
            if left < out_len:
                w *= (left + 1) / (out_len + 1)
    return w


def _dominant(f: int, live: list[int], starts: list[int], shots: list[ShotSpec]) -> int:
    return max(live, key=lambda k: (_weight(f, k, starts, shots), k))


def _paste_face(frame: np.ndarray, patch: np.ndarray, cx: float, cy: float, size: int) -> None:
    """Paste `patch` (uint8 RGB) resized to `size` at centre (cx, cy) with a soft round matte."""
    p = cv2.resize(patch, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    r = np.hypot((xx - size / 2) / (size / 2), (yy - size / 2) / (size / 2))
    a = np.clip((1.0 - r) * 4.0, 0, 1)[..., None]
    h, w = frame.shape[:2]
    x0, y0 = int(round(cx - size / 2)), int(round(cy - size / 2))
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + size), min(h, y0 + size)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sp = p[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    sa = a[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    frame[fy0:fy1, fx0:fx1] = sa * sp + (1 - sa) * frame[fy0:fy1, fx0:fx1]


# face boxes (x0, y0, x1, y1) dlib finds in insightface's t1.jpg, the clearest first
_GROUP_FACES = ((734, 365, 838, 470), (65, 284, 170, 389), (1114, 284, 1218, 389))


def group_face(index: int = 0, size: int = 200) -> np.ndarray:
    """One person of insightface's group photo (t1.jpg), head and shoulders like
    `astronaut_face`: a square twice the face box, uint8 (size, size, 3) RGB. A second real
    identity for tests where two different people take the same place."""
    img = real_image("group")
    x0, y0, x1, y1 = _GROUP_FACES[index]
    cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2 + 0.1 * (y1 - y0), (x1 - x0)
    h, w = img.shape[:2]
    a0, b0 = int(max(0, cy - half)), int(max(0, cx - half))
    crop = img[a0:int(min(h, cy + half)), b0:int(min(w, cx + half))]
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
