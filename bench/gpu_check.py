"""One prepared GPU check: run it once whenever a session is lent a GPU, commit the results.

    python bench/gpu_check.py            # on one CUDA GPU, about 8 minutes at most
    python bench/gpu_check.py --dry      # on the CPU at tiny sizes, seconds (CI runs this)

It prints one markdown table and writes bench/results/gpu-<date>.json and .md:

1. **Engine alone** (`TemporalRestorer` over real aligned face crops, 4 interleaved tracks,
   R = 4): fp32 / fp16 / bf16 x batch 1 / 8 / 16 / 32, without and with `torch.compile`:
   faces/s and peak GPU memory; the code agreement of fp16 and bf16 with fp32 (fraction of
   tokens given the same code, same crops, same batch).
2. **End to end** on a generated 1080p clip with 4 real faces: `restore_video` (what
   `videofix restore` runs) faces/s, and efficiency = end-to-end / engine-only at the same
   dtype and batch.
3. **Per-frame baseline** doing what the official CodeFormer script does: frame by frame,
   batch 1, fp32, each face pasted back over the whole BGR frame (full-size inverse warp,
   erosion and blur, as facexlib's `paste_faces_to_input_image`), on the same clip; the
   ratio end-to-end / baseline.
4. The same end-to-end figure for `--model vqfr` (with its engine-only rate) and for
   `--ray` (an embedded Ray cluster on the one GPU).

Weights are the golden formula (the official network shapes, so the cost is the real one);
no download. Every section runs under a time budget (`--budget`, seconds): what does not fit
is listed as skipped, never silently dropped. `--dry` uses tiny configurations of the
two networks (64x64 crops), a 320x240 clip and the CPU (no torch.compile, no fp16).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Config:
    device: str
    dtypes: tuple[str, ...]
    batches: tuple[int, ...]
    compile: tuple[bool, ...]
    size: tuple[int, int]  # clip (width, height)
    frames: int
    faces: int
    small: bool
    engine_faces: int  # faces per engine cell: max(this, 2 * batch)
    e2e_dtype: str
    e2e_batch: int
    budget: float
    detector: str = "auto"
    ray: bool = True
    notes: list = field(default_factory=list)


def full_config(budget: float) -> Config:
    return Config(device="cuda", dtypes=("fp32", "fp16", "bf16"), batches=(1, 8, 16, 32), compile=(False, True),
                  size=(1920, 1080), frames=48, faces=4, small=False, engine_faces=64, e2e_dtype="bf16",
                  e2e_batch=16, budget=budget)


def dry_config(budget: float) -> Config:
    return Config(device="cpu", dtypes=("fp32", "bf16"), batches=(1, 2), compile=(False,), size=(320, 240),
                  frames=2, faces=3, small=True, engine_faces=2, e2e_dtype="fp32", e2e_batch=2, budget=budget,
                  detector="dlib", notes=["dry run: CPU (1 torch thread), tiny networks (64x64 crops), 320x240 "
                                          "clip; no torch.compile, no fp16"])


# ----------------------------------------------------------------------------- helpers
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tiny_configs() -> dict[str, dict]:
    """The dry run's networks: the small test configurations at 64x64 input (same block
    structure as the official networks, a few hundred times cheaper)."""
    from videofix.models.synthetic import small_codeformer_config, small_vqfr_config

    return {"codeformer": dict(small_codeformer_config(), img_size=64, attn_resolutions=(8,),
                               connect_list=("16", "32", "64"), n_layers=1),
            "vqfr": dict(small_vqfr_config(), input_size=64)}


def make_weights(path: Path, model: str, small: bool) -> Path:
    from videofix.models.synthetic import formula_codeformer, formula_vqfr

    config = tiny_configs()[model] if small else None
    if model == "codeformer":
        net = formula_codeformer(config)
    else:
        net = formula_vqfr(config)
    torch.save({"params_ema": net.state_dict()}, path)
    return path


def load_net(weights: Path, model: str, device: str, dtype: str):
    from videofix.models import load_restorer

    return load_restorer(str(weights), model=model, device=device, dtype=dtype, download=False, quiet=True)


def clip_crops(clip: Path, size: int, detector) -> list[tuple[int, int, np.ndarray]]:
    """(track id, frame, uint8 (size, size, 3) RGB crop) of every face of the clip, in frame
    order, aligned as the pipeline aligns them (pass 1 tracks, smoothed landmarks)."""
    from videofix.faces import estimate_alignment, warp_face
    from videofix.io import open_video
    from videofix.pipeline.local import RestoreSettings, analyze_video

    analysis = analyze_video(clip, detector, RestoreSettings())
    crops = []
    with open_video(clip) as reader:
        for frame in reader:
            for face in analysis.faces_in(frame.index):
                affine = estimate_alignment(face.landmarks, size=size)
                crops.append((face.track_id, frame.index, warp_face(frame.picture, affine, size=size)))
    return crops


def engine_run(net, crops, batch: int, device: torch.device, faces: int):
    """Push `faces` crops (cycled from `crops`, 4 interleaved tracks) through a fresh
    TemporalRestorer; returns (seconds, {(track, key): codes})."""
    from videofix.restore.batching import FixedBatchRestorer
    from videofix.restore.temporal import TemporalRestorer

    # the GPU policy (fixed batch shapes) on every device, so the CPU dry run batches too
    engine = TemporalRestorer(FixedBatchRestorer(net, batch), radius=4, fidelity=0.7, batch_size=batch,
                              device=device)
    sync(device)
    t0 = time.perf_counter()
    out = []
    for k in range(faces):
        crop = crops[k % len(crops)][2]
        out += engine.push(k % 4, k // 4, crop)
    out += engine.flush()
    sync(device)
    seconds = time.perf_counter() - t0
    if len(out) != faces:
        raise RuntimeError(f"engine gave {len(out)} faces for {faces}")
    return seconds, {(r.track_id, r.frame_key): np.asarray(r.codes) for r in out}


def peak_memory(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def compile_net(net):
    """torch.compile the network's two steps (the engine calls encode and decode); fixed
    shapes (the engine's batches always have one size)."""
    net.encode = torch.compile(net.encode, dynamic=False)
    net.decode = torch.compile(net.decode, dynamic=False)
    return net


# ----------------------------------------------------------------------------- sections
def engine_grid(cfg: Config, weights: Path, crops, deadline: float, model: str = "codeformer") -> tuple[list, list]:
    device = torch.device(cfg.device)
    rows, agreement = [], []
    reference: dict[int, dict] = {}
    for compiled in cfg.compile:
        for dtype in cfg.dtypes:
            net = None
            for batch in cfg.batches:
                cell = {"model": model, "dtype": dtype, "batch": batch, "compile": compiled}
                if time.perf_counter() > deadline:
                    rows.append({**cell, "skipped": "time budget"})
                    continue
                try:
                    if net is None:
                        net = load_net(weights, model, cfg.device, dtype)
                        if compiled:
                            net = compile_net(net)
                    faces = max(cfg.engine_faces, 2 * batch)
                    reset_peak(device)
                    t0 = time.perf_counter()
                    engine_run(net, crops, batch, device, batch)  # warm-up (compilation, cuDNN choice)
                    warm = time.perf_counter() - t0
                    seconds, codes = engine_run(net, crops, batch, device, faces)
                    row = {**cell, "faces": faces, "faces_per_s": faces / seconds, "warmup_s": warm,
                           "peak_mib": peak_memory(device)}
                    if not compiled:
                        if dtype == "fp32":
                            reference[batch] = codes
                        elif batch in reference:
                            ref = reference[batch]
                            same = [np.mean(codes[k] == ref[k]) for k in ref if k in codes]
                            agreement.append({"model": model, "dtype": dtype, "batch": batch,
                                              "code_agreement": float(np.mean(same))})
                    rows.append(row)
                except Exception as exc:  # noqa: BLE001 - a cell that fails is reported, the check goes on
                    rows.append({**cell, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
                    net = None
            del net
    return rows, agreement


def end_to_end(cfg: Config, clip: Path, weights: Path, model: str, work: Path, *, ray: bool = False) -> dict:
    from videofix.pipeline.local import RestoreSettings, restore_video

    settings = RestoreSettings(weights=str(weights), model=model, detector=cfg.detector, device=cfg.device,
                               dtype=cfg.e2e_dtype, batch_size=cfg.e2e_batch, codec="libx264", preset="veryfast",
                               parsing=False, download=False)
    out = work / f"out-{model}{'-ray' if ray else ''}.mp4"
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    if ray:
        from videofix.pipeline.ray.jobs import restore_video_ray

        report = restore_video_ray(clip, out, settings, quiet=True)
    else:
        report = restore_video(clip, out, settings, quiet=True)
    wall = time.perf_counter() - t0
    timings = report["timings"]
    seconds = float(timings.get("total", wall)) - float(timings.get("load_models", 0.0))
    return {"model": model, "runner": "ray" if ray else "local", "dtype": cfg.e2e_dtype, "batch": cfg.e2e_batch,
            "frames": report["frames_written"], "faces": report["faces_restored"],
            "faces_per_s": report["faces_restored"] / max(seconds, 1e-9), "seconds": seconds,
            "detector": report.get("detector"), "timings": timings}


def per_frame_baseline(cfg: Config, clip: Path, weights: Path, model: str, work: Path, detector) -> dict:
    """What the official script does, frame by frame: detect, align, restore each face alone
    (batch 1, fp32, per-frame codes), paste over the whole BGR frame, encode."""
    import av
    import cv2

    from videofix.faces import estimate_alignment, warp_face
    from videofix.faces.alignment import invert_affine
    from videofix.restore.crops import crops_to_tensor, tensor_to_crops

    device = torch.device(cfg.device)
    net = load_net(weights, model, cfg.device, "fp32")
    size = int(net.input_size)
    faces = frames = 0
    out_path = work / f"baseline-{model}.mp4"
    sync(device)
    t0 = time.perf_counter()
    with av.open(str(clip)) as inp, av.open(str(out_path), "w") as out:
        src = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=src.average_rate or 25)
        stream.width, stream.height, stream.pix_fmt = src.codec_context.width, src.codec_context.height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "18"}
        for frame in inp.decode(video=0):
            bgr = frame.to_ndarray(format="bgr24")
            h, w = bgr.shape[:2]
            canvas = bgr.astype(np.float32)
            for det in detector.detect(np.ascontiguousarray(bgr[:, :, ::-1])):
                affine = estimate_alignment(det.landmarks, size=size)
                crop = warp_face(np.ascontiguousarray(bgr[:, :, ::-1]), affine, size=size)
                with torch.inference_mode():
                    enc = net.encode(crops_to_tensor([crop], device=device))
                    restored = tensor_to_crops(net.decode(enc.codes, enc.state, 0.7))[0][:, :, ::-1]  # BGR
                inv = invert_affine(affine)
                inv_restored = cv2.warpAffine(np.ascontiguousarray(restored), inv, (w, h))
                inv_mask = cv2.warpAffine(np.ones((size, size), np.float32), inv, (w, h))
                eroded = cv2.erode(inv_mask, np.ones((2, 2), np.uint8))
                pasted = eroded[:, :, None] * inv_restored
                w_edge = int(np.sum(eroded) ** 0.5) // 20
                center = cv2.erode(eroded, np.ones((2 * w_edge, 2 * w_edge), np.uint8))
                soft = cv2.GaussianBlur(center, (2 * w_edge + 1, 2 * w_edge + 1), 0)[:, :, None]
                canvas = soft * pasted + (1 - soft) * canvas
                faces += 1
            vf = av.VideoFrame.from_ndarray(np.clip(canvas, 0, 255).astype(np.uint8), format="bgr24")
            for pkt in stream.encode(vf):
                out.mux(pkt)
            frames += 1
        for pkt in stream.encode():
            out.mux(pkt)
    sync(device)
    seconds = time.perf_counter() - t0
    return {"model": model, "runner": "per-frame baseline", "dtype": "fp32", "batch": 1, "frames": frames,
            "faces": faces, "faces_per_s": faces / max(seconds, 1e-9), "seconds": seconds}


def engine_rate(rows: list, model: str, dtype: str, batch: int) -> float | None:
    for r in rows:
        if (r["model"], r["dtype"], r["batch"], r["compile"]) == (model, dtype, batch, False) and "faces_per_s" in r:
            return r["faces_per_s"]
    return None


# ----------------------------------------------------------------------------- report
def fmt(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def markdown(result: dict) -> str:
    lines = [f"# GPU check {result['date']}: {result['device_name']}", "",
             f"torch {result['torch']}, {result['cpus']} CPUs; {'DRY RUN (CPU)' if result['dry'] else 'CUDA'}", ""]
    lines += ["| section | model | runner / compile | dtype | batch | faces/s | peak MiB | code agreement | "
              "efficiency / ratio | note |", "|---|---|---|---|---|---|---|---|---|---|"]
    agree = {(a["model"], a["dtype"], a["batch"]): a["code_agreement"] for a in result["agreement"]}
    for r in result["engine"]:
        note = r.get("skipped") or r.get("error") or (f"warm-up {r['warmup_s']:.1f} s" if "warmup_s" in r else "")
        lines.append(f"| engine | {r['model']} | {'compile' if r['compile'] else 'eager'} | {r['dtype']} | {r['batch']} "
                     f"| {fmt(r.get('faces_per_s'))} | {fmt(r.get('peak_mib'), 0)} | "
                     f"{fmt(agree.get((r['model'], r['dtype'], r['batch'])) if not r['compile'] else None, 4)} | | {note} |")
    for r in result["end_to_end"]:
        extra = ""
        if r.get("efficiency") is not None:
            extra = f"efficiency {r['efficiency']:.2f}"
        if r.get("vs_baseline") is not None:
            extra += f"{', ' if extra else ''}x{r['vs_baseline']:.2f} baseline"
        note = r.get("skipped") or r.get("error") or f"{r.get('faces', '-')} faces, {r.get('frames', '-')} frames"
        lines.append(f"| end to end | {r['model']} | {r['runner']} | {r.get('dtype', '-')} | {r.get('batch', '-')} | "
                     f"{fmt(r.get('faces_per_s'))} | | | {extra} | {note} |")
    for n in result["notes"]:
        lines.append("")
        lines.append(f"- {n}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry", action="store_true", help="CPU, tiny sizes, seconds (CI)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for the whole check (default 450; dry 300)")
    ap.add_argument("--out-dir", default=str(HERE / "results"), help="where the JSON and markdown go")
    ap.add_argument("--no-ray", action="store_true", help="skip the --ray end-to-end run")
    args = ap.parse_args(argv)

    start = time.perf_counter()
    cfg = dry_config(args.budget or 300.0) if args.dry else full_config(args.budget or 450.0)
    if args.no_ray:
        cfg.ray = False
    if not args.dry and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (use --dry for the CPU check)", file=sys.stderr)
        return 2
    deadline = start + cfg.budget
    from feed_clips import make_clip

    from videofix.faces import create_detector

    work = Path(tempfile.mkdtemp(prefix="videofix-gpucheck-"))
    device_name = torch.cuda.get_device_name(0) if cfg.device == "cuda" else platform.processor() or "CPU"
    result = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "dry": args.dry, "device": cfg.device,
              "device_name": device_name, "torch": torch.__version__, "cpus": __import__("os").cpu_count(),
              "engine": [], "agreement": [], "end_to_end": [], "notes": list(cfg.notes)}

    clip = make_clip(work / "clip.mp4", cfg.size[0], cfg.size[1], cfg.faces, cfg.frames)
    if args.dry:
        torch.set_num_threads(1)  # a CI machine is shared: no spinning intra-op threads
    detector = create_detector(cfg.detector, device="cuda" if cfg.device == "cuda" else "cpu", download=False)
    result["notes"].append(f"clip: {cfg.size[0]}x{cfg.size[1]}, {cfg.frames} frames, {cfg.faces} real faces; "
                           f"detector {detector.name}")
    weights = {m: make_weights(work / f"{m}.pth", m, cfg.small) for m in ("codeformer", "vqfr")}
    size = int(load_net(weights["codeformer"], "codeformer", "cpu", "fp32").input_size)
    crops = clip_crops(clip, size, detector)
    if not crops:
        raise SystemExit("gpu_check: the detector found no face in the generated clip")

    # engine grid: eager cells first (they are quick and give the reference codes), then compiled
    rows, agreement = engine_grid(cfg, weights["codeformer"], crops, start + 0.55 * cfg.budget)
    result["engine"] += rows
    result["agreement"] += agreement

    def section(name: str, fn, share: float) -> dict | None:
        if time.perf_counter() > start + share * cfg.budget:
            result["end_to_end"].append({"model": name[0], "runner": name[1], "skipped": "time budget"})
            return None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - reported, the check goes on
            result["end_to_end"].append({"model": name[0], "runner": name[1],
                                         "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"})
            return None

    e2e = section(("codeformer", "local"), lambda: end_to_end(cfg, clip, weights["codeformer"], "codeformer", work), 0.7)
    base = section(("codeformer", "per-frame baseline"),
                   lambda: per_frame_baseline(cfg, clip, weights["codeformer"], "codeformer", work, detector), 0.8)
    if e2e is not None:
        eng = engine_rate(result["engine"], "codeformer", cfg.e2e_dtype, cfg.e2e_batch)
        e2e["efficiency"] = e2e["faces_per_s"] / eng if eng else None
        e2e["vs_baseline"] = e2e["faces_per_s"] / base["faces_per_s"] if base else None
        result["end_to_end"].append(e2e)
    if base is not None:
        result["end_to_end"].append(base)

    # VQFR: its engine rate at the end-to-end setting, then end to end
    vq_rows = []
    if time.perf_counter() < start + 0.85 * cfg.budget:
        vq_cfg = Config(**{**cfg.__dict__, "dtypes": (cfg.e2e_dtype,), "batches": (cfg.e2e_batch,),
                           "compile": (False,), "notes": []})
        vq_size = int(load_net(weights["vqfr"], "vqfr", "cpu", "fp32").input_size)
        vq_crops = crops if vq_size == size else clip_crops(clip, vq_size, detector)
        vq_rows, _ = engine_grid(vq_cfg, weights["vqfr"], vq_crops, start + 0.85 * cfg.budget, model="vqfr")
        result["engine"] += vq_rows
    vq = section(("vqfr", "local"), lambda: end_to_end(cfg, clip, weights["vqfr"], "vqfr", work), 0.9)
    if vq is not None:
        eng = engine_rate(vq_rows, "vqfr", cfg.e2e_dtype, cfg.e2e_batch)
        vq["efficiency"] = vq["faces_per_s"] / eng if eng else None
        result["end_to_end"].append(vq)
    if cfg.ray:
        ray_row = section(("codeformer", "ray"),
                          lambda: end_to_end(cfg, clip, weights["codeformer"], "codeformer", work, ray=True), 0.92)
        if ray_row is not None:
            eng = engine_rate(result["engine"], "codeformer", cfg.e2e_dtype, cfg.e2e_batch)
            ray_row["efficiency"] = ray_row["faces_per_s"] / eng if eng else None
            result["end_to_end"].append(ray_row)
    else:
        result["end_to_end"].append({"model": "codeformer", "runner": "ray", "skipped": "--no-ray"})

    result["seconds"] = round(time.perf_counter() - start, 1)
    result["notes"].append(f"check took {result['seconds']} s (budget {cfg.budget:.0f} s)")
    text = markdown(result)
    print(text)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"gpu-{time.strftime('%Y%m%d-%H%M%S')}{'-dry' if args.dry else ''}"
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str))
    (out_dir / f"{stem}.md").write_text(text)
    print(f"wrote {out_dir / (stem + '.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
