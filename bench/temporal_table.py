"""Code flip rate and flicker for temporal radii R = 0, 2, 4, 8 (issue 5's table).

Clip: a still real face (scikit-image astronaut, the golden crop region, resized to the model
size) with fresh Gaussian noise in every frame, then a cut, then a second shot (the same face
mirrored, fresh noise again). Network: CodeFormer with the golden-formula weights (full size,
or ``--small`` for the small test configuration).

The logits do not depend on R, so every frame is encoded once; the code flip rate of every R
comes from re-smoothing the logits (``smooth_codes``, the engine's own arithmetic). Flicker
needs decoding: the first shot is decoded once per setting through ``TemporalRestorer`` fed
with the stored encodings (``push_encoded``). Settings: R = 0, 2, 4, 8 with the default
smoothing (codes + AdaIN statistics), and at R = 4 the stabilisation switches one by one
(codes only; codes + AdaIN statistics; + encoder features at w > 0).

Also checked: no window crosses the cut (codes of each shot smoothed alone equal the codes of
the whole clip smoothed with the cut flag).

Usage:  python bench/temporal_table.py [--frames 16] [--decode-frames 8] [--noise 10]
        [--fidelity 0.5] [--small] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from videofix.metrics import code_flip_rate, temporal_flicker
from videofix.models.synthetic import formula_codeformer, small_codeformer_config
from videofix.restore.crops import crops_to_tensor
from videofix.restore.smoothing import SmoothingConfig, smooth_codes
from videofix.restore.temporal import TemporalRestorer


def still_face_clip(size: int, frames: int, noise: float, seed: int = 0, mirror: bool = False) -> np.ndarray:
    """(frames, size, size, 3) uint8 RGB: the astronaut's face, N(0, noise^2) added per frame."""
    from PIL import Image
    from skimage import data

    face = Image.fromarray(data.astronaut()[30:200, 140:310]).resize((size, size), Image.BICUBIC)
    base = np.asarray(face, dtype=np.float64)
    if mirror:
        base = base[:, ::-1]
    rng = np.random.default_rng(seed)
    clip = base[None] + rng.normal(0.0, noise, size=(frames, size, size, 3))
    return np.clip(np.round(clip), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=16, help="frames per shot for the flip rate (two shots)")
    p.add_argument("--decode-frames", type=int, default=8, help="frames of shot 1 decoded for flicker (0: none)")
    p.add_argument("--noise", type=float, default=10.0, help="noise std in 0..255 units")
    p.add_argument("--fidelity", type=float, default=0.5)
    p.add_argument("--small", action="store_true", help="small CodeFormer config (fast)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    model = formula_codeformer(small_codeformer_config() if args.small else None).eval()
    size = model.input_size
    shot_a = still_face_clip(size, args.frames, args.noise, seed=1)
    shot_b = still_face_clip(size, args.frames, args.noise, seed=2, mirror=True)
    clip = np.concatenate([shot_a, shot_b])
    cuts = [False] * len(clip)
    cuts[args.frames] = True
    print(f"# model: CodeFormer formula weights, {'small' if args.small else 'full-size'}, {size}px; "
          f"clip: {args.frames}+{args.frames} frames (cut), noise sigma {args.noise}; w = {args.fidelity}; "
          f"built in {time.perf_counter() - t0:.1f}s", flush=True)

    t0 = time.perf_counter()
    encoded = []
    with torch.inference_mode():
        for crop in clip:
            encoded.append(model.encode(crops_to_tensor(crop)))
    enc_s = (time.perf_counter() - t0) / len(clip)
    logits = torch.cat([e.logits for e in encoded])
    print(f"# encoder + transformer: {enc_s:.2f} s/frame", flush=True)

    results: dict[str, dict] = {}
    radii = (0, 2, 4, 8)
    t_smooth = {}
    for r in radii:
        t0 = time.perf_counter()
        codes = smooth_codes(logits, SmoothingConfig(radius=r), cut_before=cuts).numpy()
        t_smooth[r] = (time.perf_counter() - t0) / len(clip)
        alone = np.concatenate([
            smooth_codes(logits[: args.frames], SmoothingConfig(radius=r)).numpy(),
            smooth_codes(logits[args.frames :], SmoothingConfig(radius=r)).numpy(),
        ])
        if not np.array_equal(alone, codes):
            print(f"ERROR: R={r}: smoothing crossed the cut", file=sys.stderr)
            return 1
        results[f"R{r}"] = {"radius": r, "code_flip_rate": code_flip_rate(codes, cuts),
                            "smooth_ms_per_frame": 1000 * t_smooth[r]}

    settings = [
        (f"R{r}", dict(radius=r)) for r in radii
    ] + [
        ("R4 codes only", dict(radius=4, smooth_stats=())),
        ("R4 + enc features", dict(radius=4, smooth_features="all_enc", feature_radius=2)),
    ]
    n_dec = min(args.decode_frames, args.frames)
    dec_s = None
    if n_dec >= 2:
        inputs = shot_a[:n_dec]
        for name, kw in settings:
            engine = TemporalRestorer(model, fidelity=args.fidelity, batch_size=1, **kw)
            t0 = time.perf_counter()
            faces = []
            for t in range(n_dec):
                faces += engine.push_encoded("a", t, encoded[t])
            faces += engine.flush()
            dec_s = (time.perf_counter() - t0) / n_dec
            images = np.stack([f.image for f in faces])
            codes = np.stack([f.codes for f in faces])
            row = results.setdefault(name, {"radius": kw["radius"]})
            row["flicker"] = temporal_flicker(images, inputs)
            row["decoded_flip_rate"] = code_flip_rate(codes)
            print(f"#   decoded {name}: flicker {row['flicker']:.3f} ({dec_s:.1f} s/frame)", flush=True)

    print()
    def fmt(v):
        return "-" if v is None else f"{v:.3f}"

    print(f"| setting | code flip rate ({2 * args.frames} frames, 1 cut) | flip rate (shot 1, {n_dec} frames) "
          f"| flicker (shot 1, {n_dec} frames) |")
    print("| --- | --- | --- | --- |")
    for name, row in results.items():
        print(f"| {name} | {fmt(row.get('code_flip_rate'))} | {fmt(row.get('decoded_flip_rate'))} | {fmt(row.get('flicker'))} |")
    print()
    print("smoothing cost: " + ", ".join(f"R={r}: {1000 * t_smooth[r]:.1f} ms/frame" for r in radii)
          + f"; encoder {enc_s:.2f} s/frame" + (f", decoder {dec_s:.2f} s/frame" if dec_s else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "encode_s_per_frame": enc_s, "decode_s_per_frame": dec_s,
                       "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
