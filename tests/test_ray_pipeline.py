"""The Ray runner on a local 2-CPU Ray: segment invariance, resume after a kill, bad input.

One Ray is started for the module. The network is a tiny formula-filled CodeFormer (64 px
crops) so a face costs milliseconds; the clips hold real faces (scikit-image's astronaut)
that dlib finds, with a keyframe every 4 frames so they cut into several segments.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from media import decode_audio, decode_frames, make_clip  # noqa: E402
from videofix.pipeline.local import RestoreSettings, restore_video  # noqa: E402

TINY_CODEFORMER = dict(img_size=64, nf=32, ch_mult=(1, 1, 2), res_blocks=1, attn_resolutions=(16,), emb_dim=32,
                       codebook_size=64, dim_embd=64, n_head=4, n_layers=1, connect_list=("32", "64"))
# the film options keep their defaults (--color auto --grain auto --dedup --deinterlace auto)
SETTINGS = dict(detector="dlib", codec="ffv1", temporal_radius=2, device="cpu", parsing=False, download=False,
                batch_size=4)
CLI_OPTIONS = ["--detector", "dlib", "--codec", "ffv1", "--temporal-radius", "2", "--device", "cpu", "--no-parsing",
               "--batch-size", "4"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    import torch

    from videofix.models.synthetic import formula_codeformer
    from videofix.samples import face_content

    d = tmp_path_factory.mktemp("ray_assets")
    weights = d / "tiny_codeformer.pth"
    torch.save({"params_ema": formula_codeformer(TINY_CODEFORMER).state_dict()}, weights)
    a = make_clip(d / "a.mkv", frames=16, size=(224, 160), gop=4, subtitles=False,
                  content=face_content(224, 160, face_size=120, seed=1))
    b = make_clip(d / "b.mkv", frames=12, size=(224, 160), gop=4, subtitles=False,
                  content=face_content(224, 160, face_size=120, seed=2))
    settings = RestoreSettings(weights=str(weights), **SETTINGS)
    local = {}
    for clip in (a, b):  # the reference: the local runner, one piece
        out = d / f"local_{clip.path.name}"
        local[clip.path.name] = (out, restore_video(clip.path, out, settings, quiet=True))
    return {"dir": d, "weights": weights, "a": a, "b": b, "settings": settings, "local": local}


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ctx = ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ctx.address_info["address"]
    ray.shutdown()


def assert_same_video(got, want):
    a, b = decode_frames(got), decode_frames(want)
    assert len(a) == len(b)
    assert [t for t, _, _ in a] == [t for t, _, _ in b]  # pts
    for i, ((_, pa, fa), (_, pb, fb)) in enumerate(zip(a, b)):
        assert fa == fb
        for x, y in zip(pa, pb):
            assert np.array_equal(x, y), f"frame {i} differs"
    np.testing.assert_array_equal(decode_audio(got), decode_audio(want))


def test_segments_give_the_local_runners_frames(assets, cluster, tmp_path):
    from videofix.pipeline.distributed import restore_video_ray

    clip = assets["a"]
    local_out, local_report = assets["local"][clip.path.name]
    out = tmp_path / "ray.mkv"
    report = restore_video_ray(clip.path, out, assets["settings"], segments=3, quiet=True,
                               report_path=tmp_path / "report.json")
    assert report["ray"]["segments"] == 3
    assert_same_video(out, local_out)
    assert local_report["faces_restored"] > 10
    # same report keys, same tracks and per-track metrics (summed over segments)
    assert set(local_report) - {"film", "deinterlaced", "preview"} <= set(report)
    assert report["tracks"] == local_report["tracks"]
    for key in ("frames_read", "frames_written", "faces_restored", "cuts", "detector"):
        assert report[key] == local_report[key], key
    # only crops travel: what was sent is about the faces' crops (64x64x3 bytes each), not frames
    crop = 64 * 64 * 3
    faces = report["faces_restored"] + report["ray"]["context_frames"]
    sent = report["ray"]["object_store_bytes"]["crops_sent"]
    assert report["faces_restored"] * crop <= sent <= faces * (crop + 400)
    assert report["ray"]["object_store_bytes_per_frame"] > 0
    assert json.loads((tmp_path / "report.json").read_text())["ray"]["segments"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temporary job folder gone


def _batch_cmd(assets, out, *extra):
    return [sys.executable, "-m", "videofix", "batch", str(assets["a"].path), str(assets["b"].path), "--out", str(out),
            "--weights", str(assets["weights"]), "--segments", "3", "--quiet", *CLI_OPTIONS, *extra]


def test_batch_killed_midway_resumes_without_redoing_segments(assets, cluster, tmp_path):
    from videofix.pipeline.distributed import RayOptions
    from videofix.pipeline.jobs import JobDir, run_batch

    out = tmp_path / "out"
    job = JobDir(out / ".videofix-job")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"
    # its own embedded Ray: the kill takes the driver and that cluster down together (a lost driver)
    proc = subprocess.Popen(_batch_cmd(assets, out), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if list((job.root / "items").glob("*/seg-*.done")):
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"batch ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = {(e["item"], e["segment"]) for e in job.events()}
    assert done_before, "no segment was done before the kill"
    items = job.load()["items"]
    for item in items:  # nothing half-written under an output name
        if Path(item["output"]).exists():
            assert job.state(item["id"])["status"] == "done"

    summary = run_batch([], out, RestoreSettings(), RayOptions(), resume=True, quiet=True)
    assert (summary["done"], summary["failed"]) == (2, 0)
    events = [(e["item"], e["segment"]) for e in job.events()]
    assert len(events) == len(set(events)), "a segment was done twice"
    planned = {(it["id"], k) for it in items for k in range(3)}
    assert set(events) == planned, "a segment was lost"
    for item in items:
        name = Path(item["input"]).name
        assert_same_video(item["output"], assets["local"][name][0])  # = an uninterrupted run
        report = json.loads((job.item_dir(item["id"]) / "report.json").read_text())
        assert report["tracks"] == assets["local"][name][1]["tracks"]
    assert sum(json.loads((job.item_dir(i["id"]) / "report.json").read_text())["ray"]["segments_resumed"]
               for i in items) == 0  # finished segments were skipped, not re-run
    assert not list(out.glob(".*.videofix-*"))  # no partial output left

    again = run_batch([], out, RestoreSettings(), RayOptions(), resume=True, quiet=True)
    assert (again["skipped"], again["done"]) == (2, 0)  # finished outputs are never rewritten


def test_corrupt_file_fails_alone(assets, cluster, tmp_path, capsys):
    from videofix.cli import main

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    truncated = tmp_path / "cut.mkv"
    truncated.write_bytes(assets["b"].path.read_bytes()[:700])
    out = tmp_path / "out"
    code = main(["batch", str(assets["b"].path), str(bad), str(truncated), "--out", str(out), "--address", cluster,
                 "--weights", str(assets["weights"]), "--segments", "2", "--quiet", *CLI_OPTIONS])
    assert code == 3
    summary = json.loads((out / ".videofix-job" / "summary.json").read_text())
    assert (summary["done"], summary["failed"], summary["skipped"]) == (1, 2, 0)
    by_name = {Path(i["input"]).name: i for i in summary["items"]}
    assert by_name["b.mkv"]["status"] == "done"
    for name in ("broken.mp4", "cut.mkv"):
        assert by_name[name]["status"] == "failed"
        assert name in by_name[name]["reason"]
        assert not Path(by_name[name]["output"]).exists()
    assert_same_video(out / "b.mkv", assets["local"]["b.mkv"][0])
    err = capsys.readouterr().err
    assert "1 done, 2 failed, 0 skipped" in err
