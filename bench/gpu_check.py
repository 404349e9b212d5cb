"""The GPU check: run it once whenever a session is lent a GPU, and commit what it writes.

HOW TO RUN IT ON THE GPU MACHINE (no install, no network, one command of at most 10 minutes)
------------------------------------------------------------------------------------------
That machine has Python 3.12, torch, torchvision, numpy, opencv-python-headless, scikit-image,
scipy, pillow, tqdm and onnxruntime, but no PyAV and no videofix. PyAV travels as a wheel:

1. Here, once (the wheel is 35.0 MB; `.whl/` is gitignored):

       pip download av==19.0.2 --no-deps --only-binary :all: --python-version 3.12 \\
           --implementation cp --abi cp312 --platform manylinux_2_28_x86_64 -d .whl

   which saves .whl/av-19.0.2-cp312-abi3-manylinux_2_28_x86_64.whl (the version of our venv).
2. The device tool, carry [".whl"], this one command:

       W=.whl/av-19.0.2-cp312-abi3-manylinux_2_28_x86_64.whl; (python3 -m pip install -q --no-index --no-deps --target /tmp/pyav $W || python3 -m zipfile -e $W /tmp/pyav) && PYTHONPATH=/tmp/pyav python3 bench/gpu_check.py

   (`python3 -m zipfile -e` unpacks the wheel where pip is missing: the same files for this
   wheel, which has no scripts and no data.)

   The results come back from $OUT: gpu-<date>.json and gpu-<date>.md, both rewritten after
   every section (a crash or a kill keeps what was measured). Without PyAV the engine
   sections still run; the clip sections report the missing module.

The tree plus the wheel stay under the 64 MiB that travel (tests/test_gpu_check.py).
------------------------------------------------------------------------------------------

    python bench/gpu_check.py                    # one CUDA GPU: 7 minutes of sections at most
    python bench/gpu_check.py --dry --out-dir D  # the CPU, tiny networks, seconds (the rehearsal)

It runs from the repository tree (the tree's videofix, never an installed one) and imports only
what that machine has plus PyAV: no face detector, no shot detector, no Ray. Weights are the
golden formula (`videofix.models.synthetic`: the official network shapes, so the cost is the
real one). Sections, in order of value, each with its own time budget (`--budget` scales them;
420 s in all):

1. engine bf16 at batch 1 / 8 / 16 / 32, eager (`TemporalRestorer` over real aligned crops,
   4 interleaved tracks, R = 4), then the end-to-end batch with cuDNN benchmark on and with
   channels-last weights;
2. end to end: `restore_video` (what `videofix restore` runs) on a generated 1080p clip with
   4 real faces (480 frames, 48 of them distinct), bf16, batch 16, its tracks given from
   where the faces were drawn (`feed_clips.known_analysis`: no detection, no shot
   detection), no face parsing (no weights); efficiency = end to end / engine (same dtype,
   batch, R and fidelity);
3. the official-style per-frame baseline on the same clip: frame by frame, batch 1, fp32,
   each face pasted over the whole BGR frame (full-size inverse warp, erosion, blur), encoded
   with videofix's encoder settings and threads (`encoder_threads`, 16 libx264 frame threads);
4. engine fp16 and fp32 (TF32 off: fp32 is fp32) at batch 1 / 8 / 16 / 32, and the code
   agreement of bf16 and fp16 with fp32 (fraction of tokens given the same code, same
   crops, same batch);
5. `torch.compile` of the end-to-end dtype and batch only (one shape), in a child process
   killed at the section's budget (which takes the time the sections before it left unused);
6. VQFR: engine bf16 and fp32 at the end-to-end batch, code agreement;
7. detection alone, for speed only: RetinaFace ResNet-50 and MobileNet-0.25 (formula weights)
   on batches of 1080p frames, and pass 1's CUDA configuration from yuv420p pictures (the
   detection images made on the device, one copy back a batch): frames/s, host CPU ms a frame;
8. decoding the end-to-end clip on the CPU (FFmpeg's automatic threads, as videofix's reader)
   and with NVDEC through PyAV's `hwaccel`: host CPU ms and wall ms a frame, and whether
   NVDEC's pictures equal the CPU decoder's (the decode is about half of the host's work per
   face on a GPU run: `bench/feed_rate.py`).

TF32, cuDNN benchmark and memory format are stated with every row (`settings`): videofix's
rows run with torch's defaults, as `videofix restore` does (cuDNN benchmark off, contiguous
NCHW, TF32 on for cuDNN convolutions and off for matmuls), the fp32 rows with TF32 off, the
baseline with torch's defaults. A watchdog writes the results and exits 90 s after the
budget, well inside the command's 10 minutes.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The tree's videofix first, never an installed one; bench/ for feed_clips.
for _p in (str(HERE), str(ROOT)):
    if _p in sys.path:
        sys.path.remove(_p)
    sys.path.insert(0, _p)

import numpy as np  # noqa: E402
import torch  # noqa: E402

SECTIONS = ("engine_bf16", "end_to_end", "baseline", "engine_fp16_fp32", "compile", "vqfr", "detection", "decode")
# seconds of each section at --budget 420 (scaled with it)
BUDGETS = {"engine_bf16": 60, "end_to_end": 90, "baseline": 50, "engine_fp16_fp32": 60, "compile": 80,
           "vqfr": 40, "detection": 20, "decode": 20}
TOTAL_BUDGET = 420.0
WATCHDOG_GRACE = 90.0  # seconds past the budget before the watchdog writes the results and exits (command: 600 s)


@dataclass
class Config:
    device: str
    dry: bool
    batches: tuple[int, ...]
    size: tuple[int, int]  # clip (width, height)
    faces: int
    frames: int
    loop: int  # distinct content frames of the clip (drawn once, shown forwards and backwards)
    crop_frames: int  # content frames the engine's crops come from
    engine_faces: int  # faces of a timed engine cell: max(this, batches_timed * batch)
    batches_timed: int = 8
    e2e_dtype: str = "bf16"
    e2e_batch: int = 16
    radius: int = 4
    fidelity: float = 0.7
    budget: float = TOTAL_BUDGET
    notes: list = field(default_factory=list)


def full_config(budget: float) -> Config:
    return Config(device="cuda", dry=False, batches=(1, 8, 16, 32), size=(1920, 1080), faces=4, frames=480, loop=48,
                  crop_frames=8, engine_faces=96, budget=budget)


def dry_config(budget: float) -> Config:
    return Config(device="cpu", dry=True, batches=(1, 2), size=(320, 240), faces=3, frames=8, loop=4, crop_frames=2,
                  engine_faces=4, batches_timed=3, e2e_batch=2, radius=2, budget=budget,
                  notes=["dry run: the CPU (1 torch thread), tiny networks (64x64 crops), a 320x240 clip; "
                         "no fp16 (CUDA only), the compile section's child runs eager"])


# ----------------------------------------------------------------------------- results
class Results:
    """The check's figures, written (JSON and markdown, atomically) after every section."""

    def __init__(self, out_dir: Path, stem: str, meta: dict):
        self.out_dir = out_dir
        self.json_path, self.md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
        self.data = {**meta, "sections": {}}
        self._lock = threading.Lock()

    def section(self, name: str) -> dict:
        return self.data["sections"].setdefault(name, {"status": "running", "rows": []})

    def write(self) -> None:
        with self._lock:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            # the markdown first: a JSON file that shows a section implies its table is written too
            for path, text in ((self.md_path, markdown(self.data)),
                               (self.json_path, json.dumps(self.data, indent=1, default=str))):
                tmp = path.with_name(f".{path.name}.tmp")
                tmp.write_text(text)
                os.replace(tmp, path)


def error_text(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first[:300]}"


# ----------------------------------------------------------------------------- settings
def torch_settings(memory_format: str = "contiguous (NCHW)") -> dict:
    """The numerics settings in force now, stated with every row."""
    out = {"cudnn_benchmark": bool(torch.backends.cudnn.benchmark), "memory_format": memory_format,
           "float32_matmul_precision": torch.get_float32_matmul_precision()}
    if torch.cuda.is_available():
        out["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
        out["tf32_cudnn"] = bool(torch.backends.cudnn.allow_tf32)
    return out


@contextmanager
def numerics(*, tf32: bool | None = None, benchmark: bool | None = None):
    """Set TF32 (matmul and cuDNN) and cuDNN benchmark for a block; None leaves a flag as it is."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        if tf32 is not None:
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        if benchmark is not None:
            torch.backends.cudnn.benchmark = benchmark
        yield
    finally:
        (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
         torch.backends.cudnn.benchmark) = saved


def process_cpu() -> float:
    """CPU seconds of this process (user + system, every thread)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


# ----------------------------------------------------------------------------- networks
def tiny_configs() -> dict[str, dict]:
    """The dry run's networks: the small test configurations at 64x64 input (the official
    block structure, a few hundred times cheaper)."""
    from videofix.models.synthetic import small_codeformer_config, small_vqfr_config

    return {"codeformer": dict(small_codeformer_config(), img_size=64, attn_resolutions=(8,),
                               connect_list=("16", "32", "64"), n_layers=1),
            "vqfr": dict(small_vqfr_config(), input_size=64)}


def formula_network(model: str, dry: bool):
    """The restorer filled with the golden formula: fp32, CPU, eval mode."""
    from videofix.models.synthetic import formula_codeformer, formula_vqfr

    config = tiny_configs()[model] if dry else None
    return formula_codeformer(config) if model == "codeformer" else formula_vqfr(config)


def on_device(master, device: str, dtype: str, memory_format: str = "contiguous"):
    """A copy of `master` on `device` in `dtype`, as `videofix.models.load_restorer` places it
    (raises videofix's DeviceError where the device cannot run the dtype, e.g. fp16 on a CPU)."""
    from videofix.models.device import resolve_dtype

    dev = torch.device(device)
    net = copy.deepcopy(master).to(device=dev, dtype=resolve_dtype(dtype, dev)).eval().requires_grad_(False)
    if memory_format == "channels_last":
        net = net.to(memory_format=torch.channels_last)
    return net


def compile_net(net):
    """torch.compile the network's two steps (the engine calls encode and decode), fixed
    shapes: the engine's batches always have one size."""
    net.encode = torch.compile(net.encode, dynamic=False)
    net.decode = torch.compile(net.decode, dynamic=False)
    return net


def known_crops(cfg: Config, size: int) -> list[tuple[int, int, np.ndarray]]:
    """(track, frame, uint8 (size, size, 3) RGB aligned crop) of every face of the clip's first
    `crop_frames` content frames, frame-major, aligned at the positions the faces were drawn
    (no detector; needs no PyAV)."""
    from feed_clips import grid_content, grid_faces

    from videofix.faces.alignment import estimate_alignment, warp_face

    w, h = cfg.size
    content = grid_content(w, h, cfg.faces)
    crops = []
    for i in range(cfg.crop_frames):
        picture = content(i)
        for k, (_, landmarks) in enumerate(grid_faces(w, h, cfg.faces, i)):
            crops.append((k, i, warp_face(picture, estimate_alignment(landmarks, size=size), size=size)))
    return crops


def engine_run(net, crops, batch: int, device: torch.device, faces: int, tracks: int, cfg: Config):
    """Push `faces` crops (cycled, `tracks` interleaved tracks) through a fresh TemporalRestorer
    whose network sees batches of exactly `batch`; returns (seconds, {(track, key): codes})."""
    from videofix.restore.batching import FixedBatchRestorer
    from videofix.restore.temporal import TemporalRestorer

    engine = TemporalRestorer(FixedBatchRestorer(net, batch), radius=cfg.radius, fidelity=cfg.fidelity,
                              batch_size=batch, device=device)
    sync(device)
    t0 = time.perf_counter()
    out = []
    for j in range(faces):
        out += engine.push(j % tracks, j // tracks, crops[j % len(crops)][2])
    out += engine.flush()
    sync(device)
    seconds = time.perf_counter() - t0
    if len(out) != faces:
        raise RuntimeError(f"engine gave {len(out)} faces for {faces}")
    return seconds, {(r.track_id, r.frame_key): np.asarray(r.codes) for r in out}


def engine_cell(net, crops, batch: int, cfg: Config, deadline: float, row: dict) -> tuple[dict, dict]:
    """One timed engine cell: a warm-up of 2 batches (cuDNN choices, compilation), then up to
    max(engine_faces, batches_timed * batch) faces, fewer when the warm-up's rate says they would end
    after `deadline` (never under 2 batches). Returns (row, codes of the timed run)."""
    device = torch.device(cfg.device)
    reset_peak(device)
    warm_s, _ = engine_run(net, crops, batch, device, 2 * batch, cfg.faces, cfg)
    want = max(cfg.engine_faces, cfg.batches_timed * batch)
    left = deadline - time.perf_counter()
    faces = int(max(2 * batch, min(want, 0.8 * left * (2 * batch) / max(warm_s, 1e-6))))
    faces -= faces % batch if faces > batch else 0
    seconds, codes = engine_run(net, crops, batch, device, faces, cfg.faces, cfg)
    return ({**row, "batch": batch, "faces": faces, "faces_per_s": round(faces / seconds, 2),
             "seconds": round(seconds, 3), "warmup_s": round(warm_s, 3), "peak_mib": peak_mib(device),
             "settings": torch_settings(row.get("memory_format", "contiguous (NCHW)"))}, codes)


def agreement(codes: dict, reference: dict, radius: int) -> tuple[float, int]:
    """(fraction of tokens given the same code, tokens compared) over the faces both runs
    restored. Runs of different lengths: only frames with `radius` frames after them in both
    (near its end a shorter run pools fewer frames, which is not a precision difference)."""
    last = {max(k[1] for k in codes), max(k[1] for k in reference)}
    limit = min(last) - (radius if len(last) > 1 else 0)
    keys = [k for k in reference if k in codes and k[1] <= limit]
    if not keys:
        return float("nan"), 0
    same = sum(int(np.sum(codes[k] == reference[k])) for k in keys)
    tokens = sum(int(reference[k].size) for k in keys)
    return round(same / tokens, 5), tokens


# ----------------------------------------------------------------------------- the check
class Check:
    """The sections, in order; each writes the results when it ends (however it ends)."""

    def __init__(self, cfg: Config, results: Results, work: Path, start: float):
        self.cfg, self.results, self.work, self.start = cfg, results, work, start
        self.device = torch.device(cfg.device)
        self.masters: dict[str, object] = {}
        self.codes: dict[tuple[str, str, int], dict] = {}  # (model, dtype, batch) -> codes
        self.engine_rates: dict[tuple[str, str, int], float] = {}
        self.clip: Path | None = None
        self.analysis = None

    def master(self, model: str):
        if model not in self.masters:
            self.masters[model] = formula_network(model, self.cfg.dry)
        return self.masters[model]

    def crops(self, model: str):
        size = int(self.master(model).input_size)
        key = f"crops{size}"
        if key not in self.masters:
            self.masters[key] = known_crops(self.cfg, size)
        return self.masters[key]

    def run(self, name: str, fn, *, take_spare: bool = False) -> None:
        """Run section `name` under its budget; its state, time and error go into the results.
        take_spare: the section may also use the time earlier sections left unused (all but the
        budgets of the sections after it)."""
        scale = self.cfg.budget / TOTAL_BUDGET
        begun = time.perf_counter()
        end = self.start + self.cfg.budget
        own = BUDGETS[name] * scale
        if take_spare:
            later = sum(BUDGETS[n] for n in SECTIONS[SECTIONS.index(name) + 1:]) * scale
            own = max(own, end - later - begun)
        deadline = min(begun + own, end)
        sec = self.results.section(name)
        sec.update(budget_s=round(deadline - begun, 1))
        if begun >= self.start + self.cfg.budget:
            sec.update(status="skipped", why="the check's time budget is spent")
        else:
            try:
                fn(sec, deadline)
                sec["status"] = "done" if sec.get("status") == "running" else sec["status"]
            except Exception as exc:  # noqa: BLE001 - a failed section is reported, the check goes on
                sec.update(status="error", error=error_text(exc), traceback=traceback.format_exc()[-3000:])
        sec["seconds"] = round(time.perf_counter() - begun, 2)
        self.results.data["elapsed_s"] = round(time.perf_counter() - self.start, 1)
        self.results.write()
        print(f"gpu_check: {name}: {sec['status']} in {sec['seconds']} s"
              + (f" ({sec.get('error') or sec.get('why')})" if sec["status"] not in ("done",) else ""), flush=True)

    # -- 1 and 4 ----------------------------------------------------------------------
    def engine_grid(self, sec: dict, deadline: float, model: str, dtypes: tuple[str, ...], batches: tuple[int, ...],
                    tf32: bool | None) -> None:
        crops = self.crops(model)
        for batch in batches:
            for dtype in dtypes:
                row = {"model": model, "dtype": dtype, "batch": batch, "compile": False}
                if time.perf_counter() >= deadline:
                    sec["rows"].append({**row, "skipped": "section budget"})
                    continue
                try:
                    net = on_device(self.master(model), self.cfg.device, dtype)
                    with numerics(tf32=tf32):
                        row, codes = engine_cell(net, crops, batch, self.cfg, deadline, row)
                    del net
                    self.codes[(model, dtype, batch)] = codes
                    self.engine_rates[(model, dtype, batch)] = row["faces_per_s"]
                except Exception as exc:  # noqa: BLE001
                    row["error" if "DeviceError" not in type(exc).__name__ else "skipped"] = error_text(exc)
                sec["rows"].append(row)
                self.results.write()

    def engine_bf16(self, sec: dict, deadline: float) -> None:
        cfg = self.cfg
        self.engine_grid(sec, deadline, "codeformer", ("bf16",), cfg.batches, tf32=None)
        # the end-to-end batch again: cuDNN benchmark on; channels-last weights
        crops = self.crops("codeformer")
        for label, benchmark, fmt in (("cudnn.benchmark", True, "contiguous"), ("channels_last", None,
                                                                                 "channels_last")):
            row = {"model": "codeformer", "dtype": "bf16", "batch": cfg.e2e_batch, "compile": False, "variant": label,
                   "memory_format": "channels_last" if fmt == "channels_last" else "contiguous (NCHW)"}
            if time.perf_counter() >= deadline:
                sec["rows"].append({**row, "skipped": "section budget"})
                continue
            try:
                net = on_device(self.master("codeformer"), cfg.device, "bf16", fmt)
                with numerics(benchmark=benchmark):
                    row, _ = engine_cell(net, crops, cfg.e2e_batch, cfg, deadline, row)
                del net
            except Exception as exc:  # noqa: BLE001
                row["error"] = error_text(exc)
            sec["rows"].append(row)
            self.results.write()

    def engine_fp16_fp32(self, sec: dict, deadline: float) -> None:
        # fp32 with TF32 off: the reference of the code agreement is IEEE fp32
        for batch in self.cfg.batches:
            self.engine_grid(sec, deadline, "codeformer", ("fp32",), (batch,), tf32=False)
            self.engine_grid(sec, deadline, "codeformer", ("fp16",), (batch,), tf32=None)
            self.add_agreement(sec, "codeformer", batch)

    def add_agreement(self, sec: dict, model: str, batch: int) -> None:
        ref = self.codes.get((model, "fp32", batch))
        if ref is None:
            return
        for dtype in ("bf16", "fp16"):
            got = self.codes.get((model, dtype, batch))
            if got is not None:
                value, tokens = agreement(got, ref, self.cfg.radius)
                sec.setdefault("code_agreement", []).append(
                    {"model": model, "dtype": dtype, "batch": batch, "agreement_with_fp32": value, "tokens": tokens})

    # -- 2 and 3 ----------------------------------------------------------------------
    def need_clip(self) -> tuple[Path, object]:
        """The generated clip and its known analysis (made once; needs PyAV)."""
        if self.clip is None:
            from feed_clips import known_analysis, make_clip

            cfg = self.cfg
            t0 = time.perf_counter()
            self.clip = make_clip(self.work / "clip.mp4", cfg.size[0], cfg.size[1], cfg.faces, cfg.frames,
                                  loop=cfg.loop)
            self.analysis = known_analysis(cfg.size[0], cfg.size[1], cfg.faces, cfg.frames, loop=cfg.loop)
            self.results.data["clip"] = {
                "size": list(cfg.size), "frames": cfg.frames, "faces_per_frame": cfg.faces, "distinct_frames": cfg.loop,
                "made_in_s": round(time.perf_counter() - t0, 2), "codec": "libx264 crf 20 veryfast, yuv420p",
                "tracks": "given: the positions the faces were drawn at (feed_clips.known_analysis); "
                          "no detection, no shot detection"}
        return self.clip, self.analysis

    def e2e_settings(self, model: str):
        from videofix.settings import RestoreSettings

        return RestoreSettings(model=model, device=self.cfg.device, dtype=self.cfg.e2e_dtype,
                               batch_size=self.cfg.e2e_batch, temporal_radius=self.cfg.radius,
                               fidelity=self.cfg.fidelity, parsing=False, download=False)

    def end_to_end(self, sec: dict, deadline: float, model: str = "codeformer") -> None:
        """The `videofix restore` path with the torch face path (auto on CUDA). If that run
        fails, the error and its traceback are kept and the run is tried once more with the
        numpy/OpenCV face path, so an end-to-end figure still comes back."""
        try:
            self._end_to_end(sec, deadline, model, face_path="auto")
        except Exception as exc:  # noqa: BLE001 - kept in the results, then the fallback
            sec["first_try"] = {"face_path": "auto", "error": error_text(exc),
                                "traceback": traceback.format_exc()[-3000:]}
            self.results.write()
            if time.perf_counter() >= deadline - 5:
                raise
            self._end_to_end(sec, deadline, model, face_path="numpy")

    def _end_to_end(self, sec: dict, deadline: float, model: str, face_path: str) -> None:
        from videofix.errors import INTERRUPTED
        from videofix.pipeline.factory import LoadedStages
        from videofix.pipeline.local import restore_video

        clip, analysis = self.need_clip()
        settings = dataclasses.replace(self.e2e_settings(model), face_path=face_path)
        net = on_device(self.master(model), self.cfg.device, settings.dtype)
        stages = LoadedStages(model=net, detector=None, parser=None, device=self.device)
        out = self.work / f"out-{model}.mp4"
        out.unlink(missing_ok=True)
        # the section's budget: past it, the run stops as at Ctrl-C (checked once per frame)
        guard = threading.Timer(max(1.0, deadline - time.perf_counter()), INTERRUPTED.set)
        guard.start()
        reset_peak(self.device)
        t0 = time.perf_counter()
        try:
            report = restore_video(clip, out, settings, stages=stages, analysis=analysis, quiet=True)
        except KeyboardInterrupt:
            sec.update(status="stopped", why=f"section budget: stopped after {time.perf_counter() - t0:.1f} s")
            return
        finally:
            guard.cancel()
            INTERRUPTED.clear()
        wall = time.perf_counter() - t0
        timings = report.get("timings", {})
        seconds = float(timings.get("total", wall)) - float(timings.get("load_models", 0.0))
        engine = self.engine_rates.get((model, settings.dtype, settings.batch_size))
        rate = report["faces_restored"] / max(seconds, 1e-9)
        # the interlace probe (`film_plan`) is a fixed cost per file, not per frame
        steady = report["faces_restored"] / max(seconds - float(timings.get("film_plan", 0.0)), 1e-9)
        sec["rows"].append({
            "model": model, "runner": "local (restore_video)", "face_path": face_path,
            "dtype": settings.dtype, "batch": settings.batch_size,
            "frames": report["frames_written"], "faces": report["faces_restored"], "faces_per_s": round(rate, 2),
            "frames_per_s": round(report["frames_written"] / max(seconds, 1e-9), 2), "seconds": round(seconds, 3),
            "faces_per_s_without_probe": round(steady, 2),
            "engine_faces_per_s": engine, "efficiency": round(rate / engine, 3) if engine else None,
            "efficiency_without_probe": round(steady / engine, 3) if engine else None,
            "peak_mib": peak_mib(self.device), "timings": timings,
            "encoder": {"codec": settings.codec, "preset": settings.preset, "crf": settings.crf,
                        "encoder_threads": self.encoder_threads(settings)},
            "workers": settings.worker_count(), "parsing": False, "settings": torch_settings()})

    @staticmethod
    def encoder_threads(settings) -> str:
        from videofix.io.codecs import encoder_threads

        count, kind = encoder_threads(settings.codec, settings.encoder_threads)
        return f"{count} {kind or ''} threads".replace("  ", " ")

    def baseline(self, sec: dict, deadline: float) -> None:
        """What the official script does, frame by frame: align, restore each face alone (batch 1,
        fp32, per-frame codes), paste over the whole BGR frame, encode. Faces at their known
        positions (the official script would detect them: not counted here)."""
        import av
        import cv2

        from videofix.faces.alignment import estimate_alignment, invert_affine, warp_face
        from videofix.io.codecs import encoder_options, encoder_threads
        from videofix.restore.crops import crops_to_tensor, tensor_to_crops

        clip, analysis = self.need_clip()
        settings = self.e2e_settings("codeformer")
        net = on_device(self.master("codeformer"), self.cfg.device, "fp32")
        size = int(net.input_size)
        faces = frames = 0
        out_path = self.work / "baseline.mp4"
        threads, thread_type = encoder_threads(settings.codec, settings.encoder_threads)
        stopped = False
        sync(self.device)
        t0 = time.perf_counter()
        with torch.inference_mode(), av.open(str(clip)) as inp, av.open(str(out_path), "w") as out:
            src = inp.streams.video[0]
            stream = out.add_stream(settings.codec, rate=src.average_rate or 25)
            stream.width, stream.height, stream.pix_fmt = src.codec_context.width, src.codec_context.height, "yuv420p"
            stream.codec_context.thread_count = threads
            if thread_type is not None:
                stream.codec_context.thread_type = thread_type
            stream.codec_context.options = encoder_options(settings.codec, settings.crf, settings.preset,
                                                           settings.encoder_threads)
            for frame in inp.decode(video=0):
                if time.perf_counter() >= deadline:
                    stopped = True
                    break
                bgr = frame.to_ndarray(format="bgr24")
                rgb = np.ascontiguousarray(bgr[:, :, ::-1])
                h, w = bgr.shape[:2]
                canvas = bgr.astype(np.float32)
                for face in analysis.faces_in(frames):
                    affine = estimate_alignment(face.landmarks, size=size)
                    crop = warp_face(rgb, affine, size=size)
                    enc = net.encode(crops_to_tensor([crop], device=self.device))
                    restored = tensor_to_crops(net.decode(enc.codes, enc.state, self.cfg.fidelity))[0][:, :, ::-1]
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
        sync(self.device)
        seconds = time.perf_counter() - t0
        rate = faces / max(seconds, 1e-9)
        row = {"model": "codeformer", "runner": "per-frame baseline (official style)", "dtype": "fp32", "batch": 1,
               "frames": frames, "faces": faces, "faces_per_s": round(rate, 2), "seconds": round(seconds, 3),
               "encoder": {"codec": settings.codec, "preset": settings.preset, "crf": settings.crf,
                           "encoder_threads": self.encoder_threads(settings)},
               "settings": torch_settings()}
        if stopped:
            row["note"] = f"section budget: {frames} of {analysis.frame_count} frames"
        sec["rows"].append(row)
        e2e = next(iter(self.results.section("end_to_end")["rows"]), None)
        if e2e is not None and faces:
            e2e["vs_baseline"] = round(e2e["faces_per_s"] / rate, 2)
            row["end_to_end_ratio"] = e2e["vs_baseline"]

    # -- 5 ----------------------------------------------------------------------------
    def compile_section(self, sec: dict, deadline: float) -> None:
        """torch.compile at the end-to-end dtype and batch, in a child process (a compilation
        cannot be stopped in-process; the child is killed at the budget)."""
        out = self.work / "compile.json"
        out.unlink(missing_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "compile", "--child-out", str(out)]
        if self.cfg.dry:
            cmd.append("--dry")
        limit = max(5.0, deadline - time.perf_counter())
        proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        try:
            log, _ = proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the child and its compile workers
            proc.communicate()
            if not out.exists():
                sec.update(status="stopped", why=f"section budget: the compilation ran past {limit:.0f} s")
                return
            sec.update(status="stopped", why=f"section budget: stopped at {limit:.0f} s after a timing on "
                                             "2 batches (the row below)")
        else:
            if proc.returncode != 0 or not out.exists():
                raise RuntimeError(f"the compile child failed (exit {proc.returncode}): {log.strip()[-400:]}")
        row = json.loads(out.read_text())
        with np.load(out.with_suffix(".npz")) as z:
            codes = {tuple(int(p) for p in key.split("_")): z[key] for key in z.files}
        for dtype in (self.cfg.e2e_dtype, "fp32"):  # compiled codes against eager ones
            ref = self.codes.get(("codeformer", dtype, self.cfg.e2e_batch))
            if ref is not None:
                row[f"code_agreement_with_eager_{dtype}"] = agreement(codes, ref, self.cfg.radius)[0]
        eager = self.engine_rates.get(("codeformer", self.cfg.e2e_dtype, self.cfg.e2e_batch))
        row["eager_faces_per_s"] = eager
        row["speedup_vs_eager"] = round(row["faces_per_s"] / eager, 3) if eager and "faces_per_s" in row else None
        sec["rows"].append(row)

    # -- 6 ----------------------------------------------------------------------------
    def vqfr(self, sec: dict, deadline: float) -> None:
        b = self.cfg.e2e_batch
        self.engine_grid(sec, deadline, "vqfr", (self.cfg.e2e_dtype,), (b,), tf32=None)
        self.engine_grid(sec, deadline, "vqfr", ("fp32",), (b,), tf32=False)
        self.add_agreement(sec, "vqfr", b)

    # -- 7 ----------------------------------------------------------------------------
    def detection(self, sec: dict, deadline: float) -> None:
        """RetinaFace with formula weights, for speed only: BatchNorm variances made positive,
        and the class heads biased to "no face" everywhere (the formula alone scores hundreds
        of anchors above the threshold, and NMS over them would be timed instead of the
        network; a real frame's few faces add a few rows)."""
        from feed_clips import grid_content

        from videofix.faces.retinaface import RetinaFaceDetector
        from videofix.faces.retinaface_net import RetinaFaceNet
        from videofix.models.synthetic import formula_state_dict

        w, h = self.cfg.size
        content = grid_content(w, h, self.cfg.faces)
        frames = [content(i) for i in range(8 if not self.cfg.dry else 2)]
        networks = ("resnet50", "mobile0.25") if not self.cfg.dry else ("mobile0.25",)
        for network in networks:
            row = {"model": f"retinaface {network}", "runner": f"detect_batch of {len(frames)} frames"}
            if time.perf_counter() >= deadline:
                sec["rows"].append({**row, "skipped": "section budget"})
                continue
            with torch.device("meta"):
                skeleton = RetinaFaceNet(network)
            sd = formula_state_dict(skeleton)
            for k in sd:
                if k.endswith("running_var"):
                    sd[k] = sd[k].abs() + 1.0
                if k.startswith("ClassHead.") and k.endswith(".bias"):  # (background, face) per anchor
                    sd[k][0::2], sd[k][1::2] = 8.0, -8.0
            det = RetinaFaceDetector(sd, network=network, device=self.cfg.device, batch_size=len(frames))
            det.detect_batch(frames)  # warm-up; decides fp16 on CUDA where the scores agree
            sync(self.device)
            t0, calls = time.perf_counter(), 0
            while calls < 5 and (calls == 0 or time.perf_counter() < deadline):
                det.detect_batch(frames)
                calls += 1
            sync(self.device)
            seconds = time.perf_counter() - t0
            done = calls * len(frames)
            sec["rows"].append({**row, "frames": done, "frames_per_s": round(done / seconds, 2),
                                "precision": det.precision, "half_check": det.half_check,
                                "input": f"{w}x{h} RGB, detection short side {det.det_short_side}",
                                "settings": torch_settings()})
            if network == networks[-1] and time.perf_counter() < deadline:
                sec["rows"].append(self.detection_from_pictures(det, frames, deadline))

    def detection_from_pictures(self, det, frames, deadline: float) -> dict:
        """Pass 1's CUDA configuration from decoded pictures (yuv420p): the detection images
        made on the device (`detection_image_device`), the detector on them there, the batch's
        images copied back for the shot detector; frames/s and the host's CPU ms a frame."""
        from videofix.faces.gpu import _download
        from videofix.io.picture import Picture
        from videofix.pipeline.analysis import detection_image_device


        pictures = [Picture.from_rgb(f, "yuv420p") for f in frames]
        row = {"model": f"{det.name} from pictures", "runner": f"detection images on {self.cfg.device}, "
                                                               f"detect_batch of {len(frames)}, one copy back"}

        def one_batch():
            images = [detection_image_device(p, self.cfg.device)[0] for p in pictures]
            det.detect_batch(images)
            _download(images)

        one_batch()  # warm-up
        sync(self.device)
        t0, c0, calls = time.perf_counter(), process_cpu(), 0
        while calls < 5 and (calls == 0 or time.perf_counter() < deadline):
            one_batch()
            calls += 1
        sync(self.device)
        seconds, host = time.perf_counter() - t0, process_cpu() - c0
        done = calls * len(frames)
        return {**row, "frames": done, "frames_per_s": round(done / seconds, 2),
                "host_cpu_ms_per_frame": round(1000 * host / done, 3), "settings": torch_settings()}


    # -- 8 ----------------------------------------------------------------------------
    def decode(self, sec: dict, deadline: float) -> None:
        """The end-to-end clip decoded by FFmpeg on the CPU and by NVDEC (PyAV `hwaccel`, no
        software fallback): CPU and wall ms a frame, the pictures' format, and the largest
        difference of NVDEC's first frames (as yuv420p) from the CPU decoder's."""
        import av


        clip, _ = self.need_clip()
        compare = 4
        reference: list[np.ndarray] = []
        for name in ("cpu", "nvdec"):
            row = {"decoder": name, "clip": f"{self.cfg.size[0]}x{self.cfg.size[1]} H.264 ({clip.name})"}
            sec["rows"].append(row)
            if time.perf_counter() >= deadline:
                row["skipped"] = "section budget"
                continue
            try:
                options = {}
                if name == "nvdec":
                    from av.codec.hwaccel import HWAccel, hwdevices_available

                    row["hwdevices_available"] = list(hwdevices_available())
                    options["hwaccel"] = HWAccel(device_type="cuda", allow_software_fallback=False)
                c0, t0, frames, formats, diff = process_cpu(), time.perf_counter(), 0, set(), 0
                with av.open(str(clip), **options) as container:
                    stream = container.streams.video[0]
                    stream.thread_type = "AUTO"
                    for frame in container.decode(stream):
                        formats.add(frame.format.name)
                        if frames < compare:
                            planes = frame.to_ndarray(format="yuv420p")
                            if name == "cpu":
                                reference.append(planes)
                            elif frames < len(reference):
                                diff = max(diff, int(np.abs(planes.astype(np.int16) - reference[frames]).max()))
                        frames += 1
                        if time.perf_counter() >= deadline:
                            row["stopped"] = "section budget"
                            break
                    row["hwaccel_in_use"] = getattr(stream.codec_context, "is_hwaccel", None)
                cpu_s, wall = process_cpu() - c0, time.perf_counter() - t0
                row.update(frames=frames, formats=sorted(formats), cpu_ms_per_frame=round(1000 * cpu_s / frames, 2),
                           wall_ms_per_frame=round(1000 * wall / frames, 2), frames_per_s=round(frames / wall, 1))
                if name == "nvdec":
                    row["max_abs_diff_vs_cpu_first_frames"] = diff if reference else None
            except Exception as exc:  # noqa: BLE001 - NVDEC missing is a result, not a failure of the check
                row["error"] = error_text(exc)
            self.results.write()


def child_compile(cfg: Config, out: Path) -> int:
    """The compile section's child: one engine cell, compiled (eager in a dry run). Its row is
    written after a first timing on 2 batches, then again after the full one, so a kill at the
    budget keeps the first."""
    master = formula_network("codeformer", cfg.dry)
    net = on_device(master, cfg.device, cfg.e2e_dtype)
    if not cfg.dry:
        net = compile_net(net)
    crops = known_crops(cfg, int(master.input_size))
    device, batch = torch.device(cfg.device), cfg.e2e_batch
    reset_peak(device)
    warm_s, _ = engine_run(net, crops, batch, device, 2 * batch, cfg.faces, cfg)  # the compilation
    row = {"model": "codeformer", "dtype": cfg.e2e_dtype, "batch": batch, "compile": not cfg.dry,
           "warmup_s": round(warm_s, 3), "settings": torch_settings(),
           "note": "warmup_s includes the compilation" if not cfg.dry else "dry run: eager in the child process"}
    for faces in (2 * batch, max(cfg.engine_faces, cfg.batches_timed * batch)):
        seconds, codes = engine_run(net, crops, batch, device, faces, cfg.faces, cfg)
        row.update(faces=faces, faces_per_s=round(faces / seconds, 2), seconds=round(seconds, 3),
                   peak_mib=peak_mib(device))
        np.savez(out.with_suffix(".npz"), **{f"{t}_{k}": v for (t, k), v in codes.items()})
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(row, default=str))
        os.replace(tmp, out)
    return 0


# ----------------------------------------------------------------------------- report
def fmt(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def markdown(data: dict) -> str:
    lines = [f"# GPU check {data['date']}: {data['device_name']}", "",
             f"{'DRY RUN (CPU)' if data['dry'] else 'CUDA'}; torch {data['torch']}, torchvision {data['torchvision']}, "
             f"PyAV {data['av']}, CUDA {data.get('cuda')}, cuDNN {data.get('cudnn')}; {data['cpus']} CPUs; "
             f"elapsed {data.get('elapsed_s', '-')} s of {data['budget_s']} s", ""]
    for name in SECTIONS:
        sec = data["sections"].get(name)
        if sec is None:
            continue
        head = f"## {name}: {sec['status']}"
        if sec.get("seconds") is not None:
            head += f" ({sec['seconds']} s of {sec.get('budget_s')} s)"
        lines += [head, ""]
        for key in ("error", "why"):
            if sec.get(key):
                lines += [f"{key}: {sec[key]}", ""]
        rows = sec.get("rows", [])
        if rows and name == "decode":
            lines += ["| decoder | frames | formats | CPU ms a frame | wall ms a frame | frames/s | "
                      "max diff from the CPU decoder (first frames) | note |", "|---|---|---|---|---|---|---|---|"]
            for r in rows:
                lines.append(f"| {r['decoder']} | {fmt(r.get('frames'))} | {', '.join(r.get('formats', [])) or '-'} | "
                             f"{fmt(r.get('cpu_ms_per_frame'), 2)} | {fmt(r.get('wall_ms_per_frame'), 2)} | "
                             f"{fmt(r.get('frames_per_s'))} | {fmt(r.get('max_abs_diff_vs_cpu_first_frames'))} | "
                             f"{r.get('skipped') or r.get('error') or r.get('stopped') or ''} |")
            lines.append("")
        elif rows:
            lines += ["| model | runner / variant | dtype | batch | faces/s | frames/s | peak MiB | efficiency | "
                      "vs baseline | settings | note |", "|---|---|---|---|---|---|---|---|---|---|---|"]
            for r in rows:
                st = r.get("settings") or {}
                sets = ", ".join(f"{k}={v}" for k, v in st.items()) if st else ""
                variant = r.get("runner") or r.get("variant") or ("compile" if r.get("compile") else "eager")
                note = r.get("skipped") or r.get("error") or r.get("note") or (
                    f"{r['faces']} faces" if "faces" in r else "")
                if r.get("faces_per_s_without_probe") is not None:
                    note += (f"; without the interlace probe {r['faces_per_s_without_probe']} faces/s, efficiency "
                             f"{fmt(r.get('efficiency_without_probe'), 3)}")
                if r.get("speedup_vs_eager") is not None:
                    agree = ", ".join(f"codes {r[k]:.4f} as eager {k.rsplit('_', 1)[1]}" for k in r
                                      if k.startswith("code_agreement_with_eager_"))
                    note = f"x{r['speedup_vs_eager']} eager; {agree}; " + note
                if r.get("precision"):
                    note = f"precision {r['precision']}; " + note
                if r.get("host_cpu_ms_per_frame") is not None:
                    note = f"host CPU {r['host_cpu_ms_per_frame']} ms a frame; " + note
                lines.append(f"| {r.get('model', '-')} | {variant} | {r.get('dtype', '-')} | {r.get('batch', '-')} | "
                             f"{fmt(r.get('faces_per_s'))} | {fmt(r.get('frames_per_s'))} | "
                             f"{fmt(r.get('peak_mib'), 0)} | "
                             f"{fmt(r.get('efficiency'), 3)} | {fmt(r.get('vs_baseline'), 2)} | {sets} | {note} |")
            lines.append("")
        for a in sec.get("code_agreement", []):
            lines.append(f"- code agreement {a['model']} {a['dtype']} vs fp32, batch {a['batch']}: "
                         f"{a['agreement_with_fp32']:.4f} of {a['tokens']} tokens")
        if sec.get("code_agreement"):
            lines.append("")
    if data.get("clip"):
        c = data["clip"]
        lines += [f"- clip: {c['size'][0]}x{c['size'][1]}, {c['frames']} frames ({c['distinct_frames']} distinct), "
                  f"{c['faces_per_frame']} faces a frame; {c['tracks']}"]
    for n in data.get("notes", []):
        lines.append(f"- {n}")
    return "\n".join(lines) + "\n"


def machine_meta(cfg: Config, budget: float) -> dict:
    import torchvision

    import videofix

    try:
        import av

        av_version, av_file = av.__version__, av.__file__
    except ImportError:
        av_version, av_file = "missing (the clip sections will say so)", None
    on_cuda = cfg.device == "cuda"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "dry": cfg.dry, "device": cfg.device,
        "device_name": torch.cuda.get_device_name(0) if on_cuda else (platform.processor() or "CPU"),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "av": av_version, "av_file": av_file,
        "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if on_cuda else None,
        "python": platform.python_version(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "videofix_file": videofix.__file__, "budget_s": budget, "config": {k: v for k, v in asdict(cfg).items()
                                                                           if k != "notes"},
        "settings_at_start": torch_settings(), "notes": list(cfg.notes),
    }


def stop_everything(results: Results) -> None:
    """The watchdog: the sections ran far past their budgets (a hung kernel, a stuck encoder):
    write what was measured and leave before the command's time limit does."""
    results.data["watchdog"] = f"stopped {WATCHDOG_GRACE:.0f} s after the budget; the running section is incomplete"
    results.write()
    print("gpu_check: watchdog: stopped, results written", file=sys.stderr, flush=True)
    os._exit(3)


def default_out_dir() -> str:
    return os.environ.get("OUT") or str(HERE / "results")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry", action="store_true", help="the CPU, tiny networks, seconds (the rehearsal)")
    ap.add_argument("--budget", type=float, default=TOTAL_BUDGET,
                    help=f"seconds for all sections (default {TOTAL_BUDGET:.0f}; each section gets its share)")
    ap.add_argument("--out-dir", default=default_out_dir(), help="where the JSON and markdown go (default: $OUT when "
                                                                 "set, else bench/results)")
    ap.add_argument("--child", choices=("compile",), help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    cfg = dry_config(args.budget) if args.dry else full_config(args.budget)
    if args.dry:
        torch.set_num_threads(1)  # a CI machine is shared: no spinning intra-op threads
    if args.child == "compile":
        return child_compile(cfg, Path(args.child_out))
    if not args.dry and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (use --dry for the CPU rehearsal)", file=sys.stderr)
        return 2
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="videofix-gpucheck-"))
    stem = f"gpu-{time.strftime('%Y%m%d-%H%M%S')}{'-dry' if args.dry else ''}"
    results = Results(Path(args.out_dir), stem, machine_meta(cfg, args.budget))
    results.write()
    print(f"gpu_check: writing {results.json_path} and {results.md_path.name} after every section", flush=True)
    check = Check(cfg, results, work, start)
    watchdog = threading.Timer(args.budget + WATCHDOG_GRACE, stop_everything, (results,))
    watchdog.daemon = True
    watchdog.start()
    check.run("engine_bf16", check.engine_bf16)
    check.run("end_to_end", check.end_to_end)
    check.run("baseline", check.baseline)
    check.run("engine_fp16_fp32", check.engine_fp16_fp32)
    check.run("compile", check.compile_section, take_spare=True)  # a first compilation takes minutes
    check.run("vqfr", check.vqfr)
    check.run("detection", check.detection)
    check.run("decode", check.decode)
    results.data["finished"] = True
    results.write()
    print(markdown(results.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
