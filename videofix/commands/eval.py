"""`videofix eval`: temporal-stability figures per face track.

Two ways:

* ``videofix eval REPORT.json`` -- the figures a ``videofix restore --report`` run recorded
  (``tracks[i].code_flip_rate``, ``tracks[i].flicker``), as a table.
* ``videofix eval --source IN --restored OUT`` -- measure the flicker of a restored video
  against its source, whatever made it: faces are detected and tracked in the source, and the
  same aligned crop (same affine) is cut from both videos in every frame. With ``--report``
  the code flip rates of that run are added to the table.

``--json FILE`` writes the table as JSON (``{"tracks": [{"id", "frames", "code_flip_rate",
"flicker"}], "summary": {...}}``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from videofix.errors import InputError, UsageError
from videofix.metrics import TrackMetrics, json_number


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval",
        help="code flip rate and flicker per face track (of a report, or of a restored video)",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    parser.add_argument("report", nargs="?", help="a run report (JSON) written by `videofix restore --report`")
    parser.add_argument("--source", metavar="VIDEO", help="the original video")
    parser.add_argument("--restored", metavar="VIDEO", help="the restored video (same frames; may be upscaled)")
    parser.add_argument("--detector", default="auto", help="face detector for --source (default auto)")
    parser.add_argument("--models-dir", metavar="DIR", help="folder holding model files")
    parser.add_argument("--size", type=int, default=512, help="aligned crop size for flicker (default 512)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    if (args.source is None) != (args.restored is None):
        raise UsageError("eval: give both --source and --restored, or neither")
    if args.source is None and args.report is None:
        raise UsageError("eval: give a report (JSON), or --source and --restored videos")
    report_tracks = _read_report(args.report) if args.report else None
    if args.source is not None:
        rows = measure_videos(args.source, args.restored, detector=args.detector, models_dir=args.models_dir,
                              size=args.size)
        if report_tracks is not None:
            by_id = {t["id"]: t for t in report_tracks}
            for row in rows:
                row["code_flip_rate"] = by_id.get(row["id"], {}).get("code_flip_rate")
    else:
        rows = [
            {"id": t.get("id", i), "frames": len(t.get("frames", [])), "code_flip_rate": t.get("code_flip_rate"),
             "flicker": t.get("flicker")}
            for i, t in enumerate(report_tracks)
        ]
    summary = summarize(rows)
    print(format_table(rows, summary))
    if args.json:
        Path(args.json).write_text(json.dumps({"tracks": rows, "summary": summary}, indent=2))
    return 0


def _read_report(path: str) -> list[dict]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"eval: no such report: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"eval: {path} is not a JSON report ({exc})") from None
    tracks = data.get("tracks") if isinstance(data, dict) else None
    if not isinstance(tracks, list):
        raise InputError(f"eval: {path} has no 'tracks' list (is it a `videofix restore --report` file?)")
    return tracks


def summarize(rows: list[dict]) -> dict:
    """Frame-weighted means over tracks of the figures that are known (None when none is)."""

    def mean(key: str) -> float | None:
        pairs = [(r[key], max(int(r.get("frames") or 0), 1)) for r in rows if r.get(key) is not None]
        if not pairs:
            return None
        return float(sum(v * w for v, w in pairs) / sum(w for _, w in pairs))

    return {"tracks": len(rows), "code_flip_rate": mean("code_flip_rate"), "flicker": mean("flicker")}


def format_table(rows: list[dict], summary: dict) -> str:
    def fmt(v) -> str:
        return "-" if v is None else f"{v:.4f}"

    lines = [f"{'track':>6} {'frames':>7} {'code flip rate':>15} {'flicker':>9}"]
    for r in rows:
        lines.append(f"{r['id']:>6} {r.get('frames') or 0:>7} {fmt(r.get('code_flip_rate')):>15} {fmt(r.get('flicker')):>9}")
    lines.append(f"{'all':>6} {'':>7} {fmt(summary['code_flip_rate']):>15} {fmt(summary['flicker']):>9}")
    return "\n".join(lines)


def measure_videos(source: str, restored: str, *, detector: str = "auto", models_dir: str | None = None,
                   size: int = 512) -> list[dict]:
    """Flicker per track of ``restored`` against ``source``.

    Faces are found in ``source`` (pass 1 of the pipeline: detection, tracking, smoothed
    landmarks); for every face the same aligned ``size`` x ``size`` crop is cut from both videos
    (scaled when the restored video is an integer upscale) and fed to :class:`TrackMetrics`.
    Pairs across a cut are not counted.

    Returns:
        ``[{"id", "frames", "code_flip_rate": None, "flicker"}]`` sorted by track id.
    """
    from videofix.faces import create_detector, estimate_alignment, warp_face
    from videofix.io.reader import open_video
    from videofix.pipeline.local import analyze_video
    from videofix.settings import RestoreSettings

    settings = RestoreSettings(detector=detector, models_dir=models_dir)
    det = create_detector(detector, models_dir, "cpu")
    analysis = analyze_video(source, det, settings)
    cuts = set(int(c) for c in analysis.cuts)
    metrics: dict[int, TrackMetrics] = {}
    last_seen: dict[int, int] = {}
    with open_video(source) as src, open_video(restored) as out:
        si, oi = src.info, out.info
        scale = oi.width / float(si.width)
        if abs(oi.height / float(si.height) - scale) > 1e-6 or scale < 1 or scale != round(scale):
            raise InputError(
                f"eval: restored video is {oi.width}x{oi.height}, source {si.width}x{si.height} "
                "(expected the same size or an integer upscale)"
            )
        frames = 0
        for a, b in zip(src, out, strict=False):
            frames += 1
            faces = analysis.faces_in(a.index)
            for face in faces:
                affine = estimate_alignment(face.landmarks, size=size)
                crop_in = warp_face(a.picture, affine, size=size)
                affine_out = np.array(affine, dtype=np.float64)
                affine_out[:, :2] /= scale  # crop = A @ (p_out / scale)
                crop_out = warp_face(b.picture, affine_out, size=size)
                tid = int(face.track_id)
                cut = a.index in cuts or last_seen.get(tid, a.index - 1) != a.index - 1
                metrics.setdefault(tid, TrackMetrics()).update(restored=crop_out, input_crop=crop_in, cut_before=cut)
                last_seen[tid] = a.index
        if frames != analysis.frame_count:
            raise InputError(f"eval: restored video ended after {frames} of the source's {analysis.frame_count} frames")
    return [
        {"id": tid, "frames": m.frames, "code_flip_rate": None, "flicker": json_number(m.flicker)}
        for tid, m in sorted(metrics.items())
    ]
