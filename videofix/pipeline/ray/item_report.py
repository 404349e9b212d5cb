"""The report of one video restored on Ray: the local runner's report, from the segments'
markers, plus a `ray` section (segments, restorers, object-store bytes)."""

from __future__ import annotations

import time

from videofix.settings import RestoreSettings
from videofix.pipeline.ray.cluster import cluster_shape
from videofix.pipeline.ray.figures import merge_pasters, sum_metrics
from videofix.pipeline.report import run_report


def item_report(it, settings: RestoreSettings, restorers: list[dict]) -> dict:
    """The report of a finished job item (`videofix.pipeline.ray.driver.JobItem`): the same
    keys as the local runner's, figures summed over its segments in order; `restorers`: the
    restorer actors' `describe()`."""
    markers = [it.markers[k] for k in sorted(it.markers)]
    analysis = it.analysis
    frames = sum(m["frames"] for m in markers)
    sent = sum(m["bytes_sent"] for m in markers)
    received = sum(m["bytes_received"] for m in markers)
    total = time.perf_counter() - it.t_start
    regions: dict[int, list] = {}
    for m in markers:  # segments in order, frames in order within each
        for t, boxes in m.get("paste_regions", {}).items():
            regions.setdefault(int(t), []).extend(boxes)
    film = it.film
    for m in markers:  # pass 2's figures (pass 1's were added when pass 1 was linked)
        film.add_figures(m.get("film", {}).get("plan", {}))
    paster = merge_pasters([m.get("film", {}).get("paster", {}) for m in markers], film.options)
    faces_reused = sum(m.get("faces_reused", 0) for m in markers)
    timings = {**it.timings, "restore": round(sum(m["seconds"] for m in markers), 4), "total": round(total, 4)}
    report = run_report(
        input_path=it.input, output_path=it.output, settings=settings, analysis=analysis,
        device=", ".join(sorted({a["device"] for a in restorers})) or "unknown",
        frames_read=it.plan.frame_count, frames_written=frames,
        faces_restored=sum(m["faces_restored"] for m in markers), timings=timings,
        max_frames_held=max((m["max_frames_held"] for m in markers), default=0),
        metrics=sum_metrics(markers), regions=regions, film=film, paster=paster, faces_reused=faces_reused,
        notes=list(dict.fromkeys(n for m in markers for n in m.get("notes", []))),
        overlap={"groups": 0, "why_not": "the Ray runner detects all segments first, then restores the segments "
                                         "in parallel"})
    return {
        **report,
        "ray": {
            "segments": len(it.plan.segments),
            "segment_frames": [s.frame_count for s in it.plan.segments],
            "context_frames": sum(m.get("context_frames", 0) for m in markers),
            "restorers": len(restorers),
            "restorer_devices": [a["device"] for a in restorers],
            "cluster": cluster_shape(),
            "object_store_bytes": {"crops_sent": sent, "restored_received": received,
                                   "pass1_results": it.pass1_bytes},
            "object_store_bytes_per_frame": round((sent + received + it.pass1_bytes) / max(frames, 1), 1),
            "actor_calls": sum(m.get("actor_calls", 0) for m in markers),
            "segments_resumed": sum(1 for m in markers if m.get("already_done")),
        },
    }
