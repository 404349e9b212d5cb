"""What a segment counts, and how the driver adds the counts up for a whole video.

A pass-2 task's marker carries its tracks' metric counters and its film paster's figures as
plain numbers; the driver sums them over the segments. The sums are exact (integers, or
sums of integer-valued floats), so the report equals the one-piece run's.
"""

from __future__ import annotations

from videofix.metrics import TrackMetrics

# TrackMetrics counters that add up over segments (see FaceRestorationPass.metrics_from)
METRIC_COUNTERS = ("changed_tokens", "compared_tokens", "restored_abs_diff", "input_abs_diff",
                   "compared_values", "frames")


def paster_figures(paster) -> dict:
    """A `FilmPaster`'s report figures as plain data (summed over segments by `merge_pasters`)."""
    paster.settle()  # the torch face path's grain figures, summed on its device
    return {"luma_faces": paster.luma_faces, "color_faces": paster.color_faces, "seconds": dict(paster.seconds),
            "grain": {str(t): [st.faces, st.ring, st.face, st.added] for t, st in paster.stats.items()}}


def merge_pasters(figures: list[dict], options) -> object:
    """A `FilmPaster` holding the sums of segments' `paster_figures` (for `FilmPlan.report`)."""
    from videofix.film.paste import FilmPaster, GrainStats

    out = FilmPaster(grain=options.grain != "off", seed=options.grain_seed)
    for f in figures:
        out.luma_faces += f.get("luma_faces", 0)
        out.color_faces += f.get("color_faces", 0)
        for k, v in f.get("seconds", {}).items():
            out.seconds[k] = out.seconds.get(k, 0.0) + v
        for t, (faces, ring, face, added) in f.get("grain", {}).items():
            out.stats.setdefault(int(t), GrainStats()).add(faces, ring, face, added)
    return out


def sum_metrics(markers: list[dict]) -> dict[int, TrackMetrics]:
    """Per-track `TrackMetrics` of a whole video from its segments' counters (exact: the
    counters are integers, or sums of integer-valued floats)."""
    out: dict[int, TrackMetrics] = {}
    for m in markers:
        for t, counters in m.get("metrics", {}).items():
            acc = out.setdefault(int(t), TrackMetrics())
            for k in METRIC_COUNTERS:
                setattr(acc, k, getattr(acc, k) + counters[k])
    return out
