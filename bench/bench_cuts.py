"""Shot-boundary detectors compared on edited clips of real photographs with known truth.

Detectors: TransNetV2 (videofix.shots.ShotDetector, the one videofix runs), PySceneDetect's
ContentDetector and AdaptiveDetector (scenedetect-headless, default settings, 25 fps), and the
hand-written thumbnail detector videofix used before (`FormerCutDetector` below, removed from the
library).

Clips (videofix.samples.edited_content; every shot pans, every frame has fresh noise):
  speaker->audience  the failing case of issue 14: a speaker under a spotlight on a dark stage
                     (astronaut) then a dark audience (insightface's group photo, histogram
                     matched to the stage picture): similar histograms, small thumbnail change
  hard cuts          five hard cuts between skimage/insightface photographs, zooms and pans
  fades/dissolves    two dissolves (8, 16 frames) and two fades through black (12, 20 frames)
  motion/flash       no boundary at all: a fast pan across a photograph, then a shot with a
                     3-frame flash (x1.8 brightness): every reported cut is false
  faces              face_content-like shots with two real faces that swap places at the cuts

Figures per detector (all clips together): hard cuts found within +-1 frame (recall), of those
found exactly at the truth frame; soft boundaries found (a reported boundary inside the
transition, +-1); false cuts (reported boundaries matching no truth; a second report inside one
transition counts as false); milliseconds per frame on this machine (detector alone, frames
already decoded at 320x180, CPU threads as torch sets them).

Run: .venv/bin/python bench/bench_cuts.py [--frames-scale 1.0]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import cv2
import numpy as np

from videofix.samples import (EditTruth, ShotSpec, astronaut_face, edited_content, group_face, match_histogram,
                              real_image)

W, H = 320, 180


def clips() -> dict[str, tuple]:
    ast, grp, cam = real_image("astronaut"), real_image("group"), real_image("camera")
    cof, cat, rock = real_image("coffee"), real_image("chelsea"), real_image("rocket")
    speaker, audience = speaker_and_audience()
    out = {}
    out["speaker->audience"] = edited_content(W, H, [
        ShotSpec(speaker, 60, start=(0.0, 0.2), end=(0.6, 0.5), crop=0.6), ShotSpec(audience, 60, crop=0.8),
        ShotSpec(speaker, 50, start=(0.6, 0.2), end=(0.4, 0.3), crop=0.5),
        ShotSpec(audience, 50, start=(0.1, 0.5), end=(0.3, 0.5), crop=0.6)], seed=1, noise=4)
    out["hard cuts"] = edited_content(W, H, [
        ShotSpec(cam, 45), ShotSpec(cof, 40, crop=0.5), ShotSpec(grp, 50, start=(0.0, 0.2), end=(0.6, 0.3)),
        ShotSpec(cat, 35, crop=0.9), ShotSpec(rock, 45, start=(0.5, 0.1), end=(0.3, 0.4)),
        ShotSpec(ast, 40, crop=0.4)], seed=2)
    out["fades/dissolves"] = edited_content(W, H, [
        ShotSpec(ast, 50), ShotSpec(cof, 50, transition_in=("dissolve", 8)),
        ShotSpec(cam, 50, transition_in=("fade", 12)), ShotSpec(grp, 50, transition_in=("dissolve", 16)),
        ShotSpec(cat, 50, transition_in=("fade", 20))], seed=3)
    flash = ShotSpec(cof, 60, start=(0.3, 0.3), end=(0.35, 0.3))
    content_m, truth_m = edited_content(W, H, [ShotSpec(grp, 70, start=(0.0, 0.1), end=(1.0, 0.6), crop=0.45), flash],
                                        seed=4)
    # the second shot starts with a hard cut (truth), then flashes at frames 100..102 (not a cut)

    def flashing(f, base=content_m):
        img = base(f)
        return np.clip(img.astype(np.float32) * 1.8, 0, 255).astype(np.uint8) if 100 <= f <= 102 else img

    out["motion/flash"] = (flashing, truth_m)
    face_a, face_b = astronaut_face(200), group_face(0)
    bg1, bg2, bg3 = real_image("immunohistochemistry"), real_image("coffee"), real_image("camera")
    faces = [(face_a, 0.3, 0.5, 0.55), (face_b, 0.7, 0.5, 0.55)]
    swapped = [(face_b, 0.3, 0.5, 0.55), (face_a, 0.7, 0.5, 0.55)]
    out["faces"] = edited_content(W, H, [
        ShotSpec(bg1, 40, faces=faces), ShotSpec(bg2, 40, faces=swapped),
        ShotSpec(bg3, 40, faces=faces, transition_in=("fade", 10)), ShotSpec(bg1, 40, faces=swapped, gain=0.7)], seed=5)
    return out


def speaker_and_audience() -> tuple[np.ndarray, np.ndarray]:
    """The failing case of issue 14 from real photographs: a speaker lit by a spotlight on a
    dark stage (the astronaut under a Gaussian light, 0.6 gain) and a dark audience (the group
    photo with its histogram matched to the stage picture). Across the cut the old detector
    sees a histogram distance of about 0.18 (threshold 0.4) and a thumbnail change of about
    0.09 (threshold 0.1): no cut."""
    ast, grp = real_image("astronaut"), real_image("group")
    h, w = ast.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    light = np.exp(-(((xx - w * 0.45) / (w * 0.25)) ** 2 + ((yy - h * 0.35) / (h * 0.25)) ** 2))
    speaker = np.clip(ast * 0.6 * (0.15 + light)[..., None], 0, 255).astype(np.uint8)
    return speaker, match_histogram(grp, speaker)


@dataclass
class Score:
    hard: int = 0
    hard_found: int = 0
    hard_exact: int = 0
    soft: int = 0
    soft_found: int = 0
    false: int = 0
    frames: int = 0
    seconds: float = 0.0


def score(found: list[int], truth: EditTruth, s: Score) -> None:
    used = set()
    s.hard += len(truth.hard)
    for c in truth.hard:
        near = [f for f in found if abs(f - c) <= 1 and f not in used]
        if near:
            best = min(near, key=lambda f: abs(f - c))
            used.add(best)
            s.hard_found += 1
            s.hard_exact += best == c
    s.soft += len(truth.soft)
    for a, b in truth.soft:
        near = [f for f in found if a - 1 <= f <= b + 1 and f not in used]
        if near:
            used.add(near[0])
            s.soft_found += 1
    s.false += len([f for f in found if f not in used])


class FormerCutDetector:
    """videofix's former hand-written detector (removed from the library by issue 14; kept
    here as the baseline). Shot-cut detection on small blurred colour thumbnails (64x36).

    ``update(rgb) -> bool`` (uint8 HxWx3 RGB; True when this frame starts a new shot, never for
    the first frame). Two cues against the previous frame: the distance of per-channel
    16-bin histograms (half L1, 0..1; blind to motion inside the shot) and the mean absolute
    difference of the thumbnails (0..1). A cut is a histogram change above `hist_threshold`,
    or a thumbnail change above `diff_threshold` that is also `ratio` times the median change
    of the last `history` frames of the shot: fast motion raises that baseline, so a moving
    face is not a cut while a new shot with similar colours still is.
    ``last_scores`` keeps (hist, diff) of the last frame for inspection.
    """

    def __init__(self, hist_threshold: float = 0.4, diff_threshold: float = 0.1, ratio: float = 2.5,
                 history: int = 8, thumb_size: tuple[int, int] = (64, 36)):
        self.hist_threshold = float(hist_threshold)
        self.diff_threshold = float(diff_threshold)
        self.ratio = float(ratio)
        self.history = int(history)
        self.thumb_size = thumb_size
        self._prev = None
        self._diffs: list[float] = []
        self.last_scores = (0.0, 0.0)

    def _features(self, rgb: np.ndarray):
        thumb = cv2.resize(np.ascontiguousarray(rgb), self.thumb_size, interpolation=cv2.INTER_AREA)
        thumb = cv2.GaussianBlur(thumb, (5, 5), 0).astype(np.float32) / 255.0
        bins = (thumb * 15.999).astype(np.int64)
        hist = np.concatenate([np.bincount(bins[..., c].ravel(), minlength=16) for c in range(3)]).astype(np.float64)
        return thumb, hist / (hist.sum() / 3.0)

    def update(self, rgb: np.ndarray) -> bool:
        thumb, hist = self._features(rgb)
        prev, self._prev = self._prev, (thumb, hist)
        if prev is None:
            return False
        h = 0.5 * float(np.abs(hist - prev[1]).sum()) / 3.0
        d = float(np.abs(thumb - prev[0]).mean())
        self.last_scores = (h, d)
        baseline = float(np.median(self._diffs)) if self._diffs else 0.0
        cut = h > self.hist_threshold or (d > self.diff_threshold and d > self.ratio * baseline)
        if cut:
            self._diffs = []
        else:
            self._diffs = (self._diffs + [d])[-self.history:]
        return cut

    def reset(self) -> None:
        self._prev = None
        self._diffs = []


def run_transnet(frames):
    from videofix.shots import ShotDetector

    det = ShotDetector("cpu")
    t0 = time.perf_counter()
    out = []
    for f in frames:
        out += det.push(f)
    out += det.flush()
    return [d.index for d in out if d.cut], time.perf_counter() - t0


def run_old(frames):
    det = FormerCutDetector()
    t0 = time.perf_counter()
    found = [i for i, f in enumerate(frames) if det.update(f)]
    return found, time.perf_counter() - t0


def run_scenedetect(kind):
    def run(frames):
        from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode

        det = ContentDetector() if kind == "content" else AdaptiveDetector()
        t0 = time.perf_counter()
        found = []
        tc = None
        for i, f in enumerate(frames):
            tc = FrameTimecode(i, fps=25.0)
            found += det.process_frame(tc, np.ascontiguousarray(f[:, :, ::-1]))  # BGR, as OpenCV decodes
        found += det.post_process(tc)
        return [int(c.frame_num) for c in found], time.perf_counter() - t0

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.parse_args()
    detectors = {"transnetv2": run_transnet, "scenedetect-content": run_scenedetect("content"),
                 "scenedetect-adaptive": run_scenedetect("adaptive"), "former hand-written": run_old}
    totals = {name: Score() for name in detectors}
    per_clip = {}
    for clip_name, (content, truth) in clips().items():
        frames = [content(i) for i in range(truth.frames)]
        for name, run in detectors.items():
            found, seconds = run(frames)
            s = Score()
            score(found, truth, s)
            per_clip[(clip_name, name)] = (s, found)
            t = totals[name]
            for k in ("hard", "hard_found", "hard_exact", "soft", "soft_found", "false"):
                setattr(t, k, getattr(t, k) + getattr(s, k))
            t.frames += len(frames)
            t.seconds += seconds
        print(f"{clip_name}: {truth.frames} frames, hard cuts {truth.hard}, soft {truth.soft}")
        for name in detectors:
            s, found = per_clip[(clip_name, name)]
            print(f"  {name:<22} found {found}  (hard {s.hard_found}/{s.hard}, soft {s.soft_found}/{s.soft}, "
                  f"false {s.false})")
    print()
    print(f"{'detector':<22} {'hard recall':>11} {'exact':>6} {'soft found':>10} {'false cuts':>10} {'ms/frame':>9}")
    for name, t in totals.items():
        print(f"{name:<22} {t.hard_found:>5}/{t.hard:<5} {t.hard_exact:>6} {t.soft_found:>5}/{t.soft:<4} "
              f"{t.false:>10} {1000 * t.seconds / max(t.frames, 1):>9.2f}")


if __name__ == "__main__":
    main()
