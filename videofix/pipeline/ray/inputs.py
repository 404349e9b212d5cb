"""The inputs of `videofix batch`: paths, globs, folders and list files, and the job items
they become (each input with its output in the output folder)."""

from __future__ import annotations

import glob
import re
from pathlib import Path

from videofix.errors import UsageError

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                  ".wmv", ".flv", ".3gp", ".ogv"}
LIST_SUFFIXES = {".txt", ".list", ".lst"}


def expand_inputs(specs: list[str]) -> list[Path]:
    """Paths, globs, folders (their videos) and list files (`@FILE`, or *.txt / *.list: one
    path or glob per line, # comments) -> files, in order, without duplicates. A spec that
    matches nothing is kept, so that it fails as its own item with a clear reason."""
    out: list[Path] = []

    def add(p: Path) -> None:
        if p not in out:
            out.append(p)

    for spec in specs:
        if spec.startswith("@") or (Path(spec).suffix.lower() in LIST_SUFFIXES and Path(spec).is_file()):
            list_file = Path(spec[1:] if spec.startswith("@") else spec)
            try:
                lines = list_file.read_text().splitlines()
            except OSError as exc:
                raise UsageError(f"{list_file}: cannot read the list ({exc.strerror})") from None
            base = list_file.parent
            nested = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
            for p in expand_inputs([str(base / n) if not Path(n).is_absolute() else n for n in nested]):
                add(p)
        elif any(ch in spec for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(spec, recursive=True))
            for m in matches or [Path(spec)]:
                if m.is_file() or not matches:
                    add(m)
        elif Path(spec).is_dir():
            for m in sorted(Path(spec).iterdir()):
                if m.is_file() and m.suffix.lower() in VIDEO_SUFFIXES:
                    add(m)
        else:
            add(Path(spec))
    return out


def plan_items(inputs: list[Path], out_dir: Path, codec: str) -> list[dict]:
    """Job items: id, input (absolute), output in `out_dir` (the input's name; .mkv for
    ffv1; "-2", "-3"... when two inputs share a name)."""
    items, used = [], set()
    for k, path in enumerate(inputs):
        src = path.resolve() if path.exists() else path.absolute()
        ext = ".mkv" if codec.lower() in ("ffv1", "lossless") else (src.suffix or ".mkv")
        stem, name, n = src.stem, f"{src.stem}{ext}", 2
        while name in used:
            name, n = f"{stem}-{n}{ext}", n + 1
        used.add(name)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", src.stem)[:40]
        items.append({"id": f"{k:05d}-{safe}", "input": str(src), "output": str((out_dir / name).absolute())})
    return items
