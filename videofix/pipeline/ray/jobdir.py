"""The job folder: the plan and the state of a Ray run on disk, so a run can continue.

A job directory holds everything needed to continue after a kill (Ctrl-C, a crashed node,
a lost driver)::

    JOB/plan.json                      settings, Ray options, the items (input -> output)
    JOB/events.log                     one JSON line per finished segment (appended by tasks)
    JOB/attempts.log                   one JSON line per start / end of a segment task run, with
                                       the Ray node that ran it (node loss, redone segments)
    JOB/summary.json                   the last run's summary (done / failed / skipped)
    JOB/items/<id>/state.json          pending | running | done | failed | skipped (+ reason)
    JOB/items/<id>/segments.json       the item's `SegmentPlan`
    JOB/items/<id>/analysis.json       pass 1 (tracks, cuts, pts of every frame)
    JOB/items/<id>/seg-00003.mkv       a committed segment file (video only)
    JOB/items/<id>/seg-00003.done      its marker, written atomically after the commit
    JOB/items/<id>/report.json         the item's report once its output is finished

Resume = plan minus done: finished items are skipped, pass 1 is reused when saved, segments
with a marker are not redone, temporary files of killed writers are deleted. Every write is
atomic (a temporary name, then a rename), so a kill never leaves half a file here.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from videofix import atomic
from videofix.errors import InputError, UsageError
from videofix.io import SegmentPlan
from videofix.io.sequence import is_sequence_pattern
from videofix.pipeline.analysis import FaceAnalysis
from videofix.pipeline.ray.options import RayOptions
from videofix.settings import RestoreSettings

PLAN_VERSION = 1
STATES = ("pending", "running", "done", "failed", "skipped")


def write_json_atomic(path: str | os.PathLike, data: dict) -> None:
    """JSON under a temporary name in the same folder, then renamed (never half a file)."""
    atomic.write_text(path, json.dumps(data, indent=1))


def read_marker(path: str | os.PathLike) -> dict | None:
    """The done marker of a segment (or any JSON state file), or None when it is missing or
    unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


class JobDir:
    """The files of one job (see the module docstring). Plain paths; every write is atomic."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def plan_path(self) -> Path:
        return self.root / "plan.json"

    @property
    def events_path(self) -> Path:
        return self.root / "events.log"

    @property
    def attempts_path(self) -> Path:
        return self.root / "attempts.log"

    def exists(self) -> bool:
        return self.plan_path.exists()

    def create(self, items: list[dict], settings: RestoreSettings, options: RayOptions) -> dict:
        self.root.mkdir(parents=True, exist_ok=True)
        plan = {"version": PLAN_VERSION, "created": time.time(), "settings": settings.to_dict(),
                "segments": options.segments, "segment_seconds": options.segment_seconds, "items": items}
        write_json_atomic(self.plan_path, plan)
        for item in items:
            self.item_dir(item["id"]).mkdir(parents=True, exist_ok=True)
            self.set_state(item["id"], "pending")
        return plan

    def load(self) -> dict:
        try:
            plan = json.loads(self.plan_path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"{self.root}: not a videofix job directory ({exc})") from None
        if plan.get("version") != PLAN_VERSION:
            raise UsageError(f"{self.plan_path}: job plan version {plan.get('version')} is not {PLAN_VERSION}")
        return plan

    def item_dir(self, item_id: str) -> Path:
        return self.root / "items" / item_id

    def state(self, item_id: str) -> dict:
        return read_marker(self.item_dir(item_id) / "state.json") or {"status": "pending"}

    def set_state(self, item_id: str, status: str, reason: str | None = None, **extra) -> None:
        assert status in STATES, status
        write_json_atomic(self.item_dir(item_id) / "state.json",
                          {"status": status, "reason": reason, "updated": time.time(), **extra})

    def segment_path(self, item_id: str, index: int, ext: str) -> Path:
        return self.item_dir(item_id) / f"seg-{index:05d}{ext}"

    def marker_path(self, item_id: str, index: int) -> Path:
        return self.item_dir(item_id) / f"seg-{index:05d}.done"

    # ------------------------------------------------------------------ what a resumed item reuses
    def saved_plan(self, item_id: str) -> SegmentPlan | None:
        """The item's segment plan from an earlier run, or None (none saved, or the input has
        changed since: then the item's saved work is forgotten and it starts again)."""
        seg_file = self.item_dir(item_id) / "segments.json"
        if not seg_file.exists():
            return None
        plan = SegmentPlan.from_json(seg_file.read_text())
        try:
            plan.check_source()
        except (InputError, OSError):
            self.forget(item_id)
            return None
        return plan

    def save_plan(self, item_id: str, plan: SegmentPlan) -> None:
        (self.item_dir(item_id) / "segments.json").write_text(plan.to_json())

    def saved_analysis(self, item_id: str) -> FaceAnalysis | None:
        """Pass 1 of an earlier run, or None (none saved, or saved without the film survey)."""
        ana = self.item_dir(item_id) / "analysis.json"
        if not ana.exists():
            return None
        analysis = FaceAnalysis.load(ana)
        return analysis if "film" in analysis.extra else None

    def save_analysis(self, item_id: str, analysis: FaceAnalysis) -> None:
        atomic.write_with(self.item_dir(item_id) / "analysis.json", analysis.save)

    def done_markers(self, item_id: str, plan: SegmentPlan, ext: str) -> dict[int, dict]:
        """The markers of the item's segments whose file is committed, by segment index."""
        out = {}
        for seg in plan.segments:
            marker = read_marker(self.marker_path(item_id, seg.index))
            if marker is not None and self.segment_path(item_id, seg.index, ext).exists():
                out[seg.index] = marker
        return out

    def forget(self, item_id: str) -> None:
        """Delete an item's segment files, markers and pass 1 (its input changed)."""
        d = self.item_dir(item_id)
        for p in list(d.glob("seg-*")) + [d / "analysis.json"]:
            p.unlink(missing_ok=True)

    def clean_partials(self, item_id: str, output: Path) -> int:
        """Delete what killed runs left half-written: hidden temporary files of segment
        writers in the item folder and of the final mux next to `output`. Returns a count."""
        gone = 0
        d = self.item_dir(item_id)
        candidates = list(d.glob(".seg-*")) + list(d.glob(".*.videofix-*"))
        if output.parent.is_dir():
            candidates += list(output.parent.glob(f".{glob_escape(output.stem)}.videofix-*"))
        for p in candidates:
            if p.is_file():
                p.unlink(missing_ok=True)
                gone += 1
        return gone

    def events(self) -> list[dict]:
        """The events log, one dict per line (a line cut by a kill is ignored)."""
        out = []
        if self.events_path.exists():
            for line in self.events_path.read_text().splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out


def segment_target(segment_path: Path, output: Path) -> str:
    """What a pass-2 task writes: the segment file, or for an image-sequence output (seq
    #13) the output's file-name pattern inside the segment folder."""
    return str(segment_path / output.name) if is_sequence_pattern(output) else str(segment_path)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)
