"""`videofix restore-faces INPUT... -o OUTDIR`: restore already aligned face crops.

Inputs are image files or folders of them (png, jpg, jpeg, bmp, webp, tif), each an
aligned face as the official pipeline makes it (512x512; other sizes are resized
bilinearly, as the official script does for aligned inputs). Each result is written as
OUTDIR/<input name>.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from videofix.errors import InputError, OutputError, UsageError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "restore-faces",
        help="restore aligned face crops (images or folders of images)",
        description=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of aligned crops")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the restored crops (PNG)")
    parser.add_argument("--model", default="codeformer", choices=("codeformer", "vqfr"), help="restoration network")
    parser.add_argument("--weights", metavar="FILE", help="weights file (default: looked up, see `videofix models`)")
    parser.add_argument("--models-dir", metavar="DIR", help="folder holding model files")
    parser.add_argument("--comfyui", metavar="ROOT", help="a ComfyUI installation whose model folders to search")
    parser.add_argument(
        "--fidelity", type=float, default=0.5, metavar="W",
        help="0 = rely on the codebook (strongest restoration), 1 = closest to the input (default 0.5)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "fp16", "bf16"), help="precision (default fp32)")
    parser.add_argument("--batch-size", type=int, default=4, metavar="N", help="crops per network pass (default 4)")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(func=run)
    return parser


def _collect_inputs(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return files


def _output_names(files: list[Path]) -> list[str]:
    """<stem>.png, with _2, _3, ... added when two inputs share a stem."""
    names, seen = [], {}
    for f in files:
        count = seen.get(f.stem, 0) + 1
        seen[f.stem] = count
        names.append(f"{f.stem}.png" if count == 1 else f"{f.stem}_{count}.png")
    return names


def read_rgb(path: Path) -> np.ndarray:
    """An image file -> uint8 (H, W, 3) RGB (opencv reads BGR: converted here)."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if bgr is None:
        raise InputError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    """uint8 (H, W, 3) RGB -> PNG file (converted to opencv's BGR)."""
    import cv2

    ok, encoded = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OutputError(f"{path}: could not encode PNG")
    try:
        encoded.tofile(str(path))
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UsageError(f"--batch-size {args.batch_size}: must be 1 or more")
    if not 0.0 <= args.fidelity <= 1.0:
        raise UsageError(f"--fidelity {args.fidelity}: must be between 0 and 1")
    files = _collect_inputs(args.inputs)
    outdir = Path(args.output)
    if outdir.exists() and not outdir.is_dir():
        raise OutputError(f"{outdir}: exists and is not a folder")
    sources = {f.resolve() for f in files}
    names = _output_names(files)
    targets = [outdir / n for n in names]
    clash = next((t for t in targets if t.resolve() in sources), None)
    if clash is not None:
        raise OutputError(f"{clash}: would overwrite an input; choose another -o folder")

    from videofix.models import load_restorer
    from videofix.restore.crops import prepare_crop, restore_crops

    model = load_restorer(
        weights=args.weights, models_dir=args.models_dir, model=args.model,
        device=args.device, dtype=args.dtype, comfy_root=args.comfyui, quiet=args.quiet,
    )  # fmt: skip
    size = int(model.input_size)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{outdir}: cannot create folder ({exc.strerror or exc})") from None

    started = time.monotonic()
    done = 0
    # read, restore and write one batch at a time: memory stays bounded by the batch
    for start in range(0, len(files), args.batch_size):
        chunk = files[start : start + args.batch_size]
        crops = np.stack([prepare_crop(read_rgb(f), size) for f in chunk])
        restored = restore_crops(model, crops, fidelity=args.fidelity, batch_size=args.batch_size)
        for rgb, target in zip(restored, targets[start : start + len(chunk)]):
            write_rgb(target, rgb)
        done += len(chunk)
        if not args.quiet:
            rate = done / max(time.monotonic() - started, 1e-9)
            print(f"videofix: restored {done}/{len(files)} faces ({rate:.2f} faces/s)", file=sys.stderr)
    if not args.quiet:
        print(f"videofix: wrote {done} restored faces to {outdir}", file=sys.stderr)
    return 0
