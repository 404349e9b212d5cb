"""The run report (JSON) and the before/after preview picture."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import cv2
import numpy as np

from videofix import atomic
from videofix.metrics import TrackMetrics, json_number
from videofix.pipeline.analysis import FaceAnalysis


def track_entries(analysis: FaceAnalysis, metrics: dict[int, TrackMetrics], upscale: int = 1,
                  first_frame: int = 0, regions: dict[int, list] | None = None) -> list[dict]:
    """`tracks` of the report: id, output frame indices, face boxes in output pixels
    ([x0, y0, x1, y1] per frame, scaled by `upscale`), the regions the pastes may have
    changed (`paste_regions`, ints, x1/y1 exclusive; outside them every pixel is the
    source's), `detected_frames` (the output frames where the face detector really found the
    face; the track's other frames were bridged by interpolation), code flip rate and flicker."""
    out = []
    for t in sorted(analysis.tracks, key=lambda t: t.track_id):
        m = metrics.get(t.track_id)
        out.append({
            "id": int(t.track_id),
            "frames": [int(f) - first_frame for f in t.frames],
            "boxes": np.round(t.boxes.astype(np.float64) * upscale, 2).tolist(),
            "paste_regions": (regions or {}).get(t.track_id, []),
            "detected_frames": [int(f) - first_frame for f in t.frames[t.detected]],
            "code_flip_rate": json_number(m.code_flip_rate) if m else None,
            "flicker": json_number(m.flicker) if m else None,
        })
    return out


def run_report(*, input_path, output_path, settings, analysis: FaceAnalysis, device: str, frames_read: int,
               frames_written: int, faces_restored: int, timings: dict, max_frames_held: int,
               metrics: dict[int, TrackMetrics], regions: dict[int, list], film, paster, faces_reused: int,
               notes: list[str] = (), overlap: dict | None = None) -> dict:
    """The report both runners write: the same keys whether the video was restored in one
    piece or in Ray segments. `timings` must hold "total"; `notes`: runner-specific notes,
    after the no-face note and before the deinterlacing note. `overlap`: how pass 1 overlapped
    pass 2 (`videofix.pipeline.overlap.ShotFeed.report`), or {"groups": 0, "why_not": ...}."""
    selection = analysis.extra.get("selection")
    if not analysis.tracks and selection and selection.get("dropped"):
        notes = [f"no face chosen: the {len(selection['dropped'])} face tracks found were all left out by the "
                 f"face selection options (see `selection`); the frames were re-encoded unchanged"] + list(notes)
    else:
        notes = (["no face found: the frames were re-encoded unchanged"] if not analysis.tracks else []) + list(notes)
    if film.interlace.deinterlace:
        notes.append(f"deinterlaced with bwdif ({film.interlace.reason})")
    film_report = film.report(analysis, paster, frames=frames_written, faces_reused=faces_reused)
    return {
        "input": str(input_path),
        "output": str(output_path),
        "settings": settings.to_dict(),
        "detector": analysis.detector,
        "device": device,
        "frames_read": frames_read,
        "frames_written": frames_written,
        "faces_restored": faces_restored,
        # shot boundaries, output frame indices of the first frame of each new shot: `cuts`
        # hard cuts, `soft_cuts` the ends of fades/dissolves (`transitions`: their spans)
        "cuts": analysis.hard_cuts,
        "soft_cuts": list(analysis.soft_cuts),
        "transitions": [list(t) for t in analysis.transitions],
        "cut_detector": analysis.cut_detector,
        "detector_choice": analysis.extra.get("detector_choice"),
        "timings": timings,
        "fps": round(frames_written / max(timings["total"], 1e-9), 3),
        "max_frames_held": max_frames_held,
        # pass 1 handing closed shots to pass 2 (videofix.pipeline.overlap), or why it did not
        "overlap": overlap if overlap is not None else {"groups": 0, "why_not": "not reported by this runner"},
        "notes": notes,
        "tracks": track_entries(analysis, metrics, settings.upscale, regions=regions),
        "deinterlaced": film.interlace.deinterlace,
        "film": film_report,
        # which faces were chosen (videofix.pipeline.selection); None without selection options
        "selection": selection,
        # every model file the run read, with its licence (NOTICE; `videofix models list`)
        "model_files": model_files_used(settings, analysis, film_report),
    }


def model_files_used(settings, analysis: FaceAnalysis, film_report: dict) -> list[dict]:
    """The model files a run read, from what its stages report: name, file (the local path
    when found), licence, whether the licence allows commercial use, where to read it."""
    from videofix import modelfiles
    from videofix.errors import ModelFileError

    def found(name: str, **kw) -> str | None:
        try:
            return str(modelfiles.resolve(name, models_dir=settings.models_dir, download=False, quiet=True, **kw))
        except ModelFileError:
            return None

    identity = ((analysis.extra.get("selection") or {}).get("identity") or {}).get("embedder")
    # the parser is loaded exactly when its file resolves without a download (load_stages)
    parser = settings.parsing and found("parsenet") is not None
    uses = {f"restorer:{settings.model}", f"detector:{analysis.detector}", f"shots:{analysis.cut_detector}",
            f"upscaler:{film_report.get('upscaler')}", f"identity:{identity}",
            "parser:parsenet" if parser else "regions:dlib" if settings.keep_regions else ""}
    out = []
    for entry in modelfiles.files_used(uses):
        if isinstance(entry, modelfiles.BundledFile):
            where = entry.locate()
            file = str(where) if where is not None else entry.filename
        else:
            explicit = settings.weights if entry.kind == "restorer" else None
            file = found(entry.name, path=explicit) or explicit or entry.filename
        out.append({"name": entry.name, "file": file, "licence": entry.licence,
                    "commercial_use": entry.commercial_use, "licence_url": entry.licence_url})
    return out


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """Write JSON under a temporary name, then rename (never a half-written report)."""
    atomic.write_text(path, json.dumps(data, indent=2, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        v = float(o)
        return None if math.isnan(v) else v
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def choose_preview_frames(analysis: FaceAnalysis, count: int = 3) -> list[int]:
    """Up to `count` frame indices with the most faces, spread over the video."""
    per_frame: dict[int, int] = {}
    for t in analysis.tracks:
        for f in t.frames[t.detected]:
            per_frame[int(f)] = per_frame.get(int(f), 0) + 1
    if not per_frame:
        return []
    frames = sorted(per_frame)
    picks = []
    for k in range(count):
        lo = frames[len(frames) * k // count]
        hi_i = len(frames) * (k + 1) // count
        chunk = [f for f in frames if lo <= f <= frames[max(hi_i - 1, 0)]] or [lo]
        best = max(chunk, key=lambda f: (per_frame[f], -abs(f - chunk[len(chunk) // 2])))
        if best not in picks:
            picks.append(best)
    return picks


class PreviewCollector:
    """Keeps the before and after RGB of a few chosen frames and writes them side by side.

    Each row: the frame before | after, then the first face zoomed before | after; with
    grain matching on, the face zoom is before | restored without grain | with grain. A
    strip above each row names its columns (`row_labels`) and the frame.
    """

    LABEL_HEIGHT = 22  # pixels of the label strip above each row

    def __init__(self, frames: list[int], analysis: FaceAnalysis, width: int = 640):
        self.frames = set(frames)
        self.analysis = analysis
        self.width = width
        self.before: dict[int, np.ndarray] = {}
        self.after: dict[int, np.ndarray] = {}
        self.clean: dict[int, np.ndarray] = {}  # after, restored faces without added grain

    def wants(self, index: int) -> bool:
        return index in self.frames

    def add_before(self, index: int, picture) -> None:
        if index in self.frames:
            self.before[index] = _to_u8(picture.to_rgb())

    def add_after(self, index: int, picture) -> None:
        if index in self.frames:
            self.after[index] = _to_u8(picture.to_rgb())

    def add_clean(self, pictures: dict) -> None:
        """Frames pasted without grain (`FilmPaster.clean`: index -> Picture), shown in the
        face zoom between before and after."""
        for index, picture in pictures.items():
            if index in self.frames:
                self.clean[index] = _to_u8(picture.to_rgb())

    def row_labels(self, index: int, columns: int) -> list[str]:
        """The column titles of frame `index`'s row of `columns` pictures."""
        labels = [f"frame {index}: source", "restored"]
        if columns >= 4:
            labels.append("face: source")
            if columns == 5:
                labels.append("face: restored, no grain")
            labels.append("face: restored")
        return labels

    def write(self, path: str | os.PathLike, upscale: int = 1) -> bool:
        rows = []
        for f in sorted(self.frames):
            if f not in self.before or f not in self.after:
                continue
            before = self.before[f]
            after = self.after[f]
            if before.shape != after.shape:
                before = cv2.resize(before, (after.shape[1], after.shape[0]), interpolation=cv2.INTER_LINEAR)
            h, w = after.shape[:2]
            s = self.width / float(w)
            size = (self.width, max(1, int(round(h * s))))
            row = [cv2.resize(before, size, interpolation=cv2.INTER_AREA), cv2.resize(after, size, interpolation=cv2.INTER_AREA)]
            faces = self.analysis.faces_in(f)
            if faces:
                x0, y0, x1, y1 = (faces[0].box.astype(np.float64) * upscale).tolist()
                cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 0.75
                bx0, by0 = int(max(0, cx - half)), int(max(0, cy - half))
                bx1, by1 = int(min(w, cx + half)), int(min(h, cy + half))
                if bx1 > bx0 and by1 > by0:
                    zs = (size[1], size[1])
                    row.append(cv2.resize(before[by0:by1, bx0:bx1], zs, interpolation=cv2.INTER_CUBIC))
                    if f in self.clean and self.clean[f].shape == after.shape:
                        row.append(cv2.resize(self.clean[f][by0:by1, bx0:bx1], zs, interpolation=cv2.INTER_CUBIC))
                    row.append(cv2.resize(after[by0:by1, bx0:bx1], zs, interpolation=cv2.INTER_CUBIC))
            labels = self.row_labels(f, len(row))
            rows.append(_label_strip([part.shape[1] for part in row], labels, self.LABEL_HEIGHT))
            rows.append(np.concatenate(row, axis=1))
        if not rows:
            return False
        width = max(r.shape[1] for r in rows)
        rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
        image = np.concatenate(rows, axis=0)
        path = Path(path)
        ext = path.suffix or ".png"
        ok, buf = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            return False
        atomic.write_bytes(path, buf.tobytes())
        return True


def _label_strip(widths: list[int], labels: list[str], height: int) -> np.ndarray:
    """uint8 (height, sum(widths), 3) RGB: dark grey with each label in white at the left of
    its column, cut to the column's width."""
    strip = np.full((height, sum(widths), 3), 32, np.uint8)
    x = 0
    for width, text in zip(widths, labels):
        column = np.ascontiguousarray(strip[:, x:x + width])
        cv2.putText(column, text, (4, height - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        strip[:, x:x + width] = column
        x += width
    return strip


def _to_u8(rgb01: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb01 * 255.0), 0, 255).astype(np.uint8)
