"""Cost of each old-film step, per frame (videofix.film), on one machine.

Steps (SD 720x576 yuv420p by default, one face of ~200 px; what `videofix restore` adds
per frame for films):

* colour check: per-shot monochrome detection's per-frame chroma score (native planes);
* duplicate check: the repeated-frame test on the detection image;
* comb test: the interlace probe's per-frame combing measure (run on the first 24 frames);
* deinterlace: bwdif (send_frame) through PyAV's filter graph, per frame and pass;
* upscale x2: bilinear / Lanczos per plane, Real-ESRGAN x2plus (official size: 23 blocks,
  random weights; on CPU timed on a tile and scaled by pixel count unless --full-esrgan);
* paste per face: colour blend vs luma-only blend; grain (ring + face noise measures,
  seeded grain field, calibration), at 1x and after a 2x upscale.

Usage:  python bench/bench_film.py [--size 720x576] [--repeat 5] [--device cpu|cuda]
        [--full-esrgan] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction

import numpy as np
import torch

from videofix.faces import create_detector, estimate_alignment, warp_face
from videofix.film.color import picture_chroma_score
from videofix.film.duplicates import DuplicateFinder
from videofix.film.interlace import Deinterlacer, comb_scores
from videofix.film.paste import FilmPaster
from videofix.film.rrdbnet import RRDBNet
from videofix.film.upscale import RealESRGANUpscaler, ResizeUpscaler
from videofix.io.picture import Picture
from videofix.io.reader import DecodedFrame
from videofix.pipeline.analysis import detection_image
from videofix.samples import face_content


def best_ms(fn, repeat: int) -> float:
    """Median wall time of `fn()` over `repeat` runs, in milliseconds (one warm-up)."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000.0 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="720x576")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--full-esrgan", action="store_true", help="time Real-ESRGAN on the whole frame")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    w, h = (int(v) for v in args.size.split("x"))
    content = face_content(w, h, faces=1, face_size=int(0.6 * h), noise=6.0)
    frames = [Picture.from_rgb(content(i), "yuv420p") for i in range(4)]
    pic = frames[0]
    rows: list[tuple[str, float, str]] = []

    def add(name: str, ms: float, unit: str = "per frame") -> None:
        rows.append((name, round(ms, 3), unit))
        print(f"{name:<44} {ms:10.2f} ms  {unit}", flush=True)

    print(f"videofix film steps, {w}x{h} yuv420p, torch threads {torch.get_num_threads()}, device {args.device}")
    add("colour check (chroma score)", best_ms(lambda: picture_chroma_score(pic), args.repeat))
    small, _ = detection_image(pic)
    finder = DuplicateFinder()
    counter = iter(range(10 ** 9))
    add("duplicate check", best_ms(lambda: finder.update(next(counter), small, []), args.repeat))
    add("comb test (probe, first 24 frames only)", best_ms(lambda: comb_scores(pic.planes[0]), args.repeat))

    def deinterlace(n: int = 8) -> None:
        fs = [DecodedFrame(i, i, Fraction(1, 25), frames[i % 4], i == 0) for i in range(n)]
        for _ in Deinterlacer("tff").run(iter(fs)):
            pass

    add("deinterlace (bwdif, per pass)", best_ms(deinterlace, max(1, args.repeat // 2)) / 8)
    for name in ("bilinear", "lanczos"):
        up = ResizeUpscaler(name)
        add(f"upscale x2 {name}", best_ms(lambda: up.upscale(pic, 2), args.repeat))
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = RRDBNet(3, 3, scale=2, num_feat=64, num_block=23, num_grow_ch=32).to(device).eval()
    esrgan = RealESRGANUpscaler(net, device, tile=256, half=device.type == "cuda")
    if args.full_esrgan or device.type == "cuda":
        add("upscale x2 Real-ESRGAN x2plus", best_ms(lambda: esrgan.upscale(pic, 2), max(1, args.repeat // 2)))
    else:
        tile = Picture.from_rgb(content(0)[:128, :128].copy(), "yuv420p")
        ms = best_ms(lambda: esrgan.upscale(tile, 2), 1) * (w * h) / (128 * 128)
        add("upscale x2 Real-ESRGAN x2plus (scaled)", ms, "per frame, from a 128x128 tile")

    det = create_detector("dlib")
    rgb0 = content(0)
    face = max(det.detect(rgb0), key=lambda d: float(d.box[2] - d.box[0]))
    affine = estimate_alignment(face.landmarks, size=512)
    crop = warp_face(rgb0, affine, size=512)  # stands for the restored face
    print(f"face: {float(face.box[2] - face.box[0]):.0f} px wide")
    for upscale in (1, 2):
        target = ResizeUpscaler("lanczos").upscale(pic, upscale)
        for label, kwargs in (("colour paste", {"grain": False}), ("luma-only paste", {"grain": False}),
                              ("colour paste + grain", {"grain": True})):
            mode = [(0, "luma")] if "luma" in label else [(0, "color")]

            def paste(p=FilmPaster(mode, **kwargs)):
                p.paste(target.copy(), 0, 0, crop, affine, upscale=upscale)

            copy_ms = best_ms(lambda: target.copy(), args.repeat)
            add(f"{label} (x{upscale})", best_ms(paste, args.repeat) - copy_ms, "per face")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"size": [w, h], "device": args.device, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
