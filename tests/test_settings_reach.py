"""Each setting that changes the picture reaches its stage, through every front-end.

Bug class (issue 25): `radius=settings.temporal_radius` replaced by `radius=0` in the stage
factory passed every test, because no test checked that a front-end's setting changes the
output. Here one cheap run per setting value, per front-end, shows that changing the setting
changes the output the way it should:

* temporal_radius 0 vs 2: the outputs differ, and the reported code flip rate is lower at 2;
* fidelity 0 vs 1, grain off vs auto, dtype fp32 vs bf16: the outputs differ;
* blend 0: the output is bit-identical to the source;
* color luma: the chroma is the source's exactly (video: the U and V planes; RGB frames: a
  grey source stays grey, while color mode paints colour);
* the face choices: max_faces 1 restores one of two faces (the other stays the source's),
  min_face_size above every face restores none, and so does min_detections above a track's
  detections.

Front-ends: the command line (in-process `videofix.cli.main`, an FFV1 4:4:4 file), the frames
API (`restore_frames`), the VapourSynth function and the ComfyUI nodes (RGB frames: these
three must also give the same pixels for the same settings). The Ray runner's reach is
checked in tests/test_ray_pipeline.py. Every front-end has every setting listed here (dtype on
ComfyUI's loader node). The network is the tiny CodeFormer with formula weights: untrained,
so its faces are noise, which makes every change of code, fidelity or precision visible.
"""

from __future__ import annotations

import json

import av
import numpy as np
import pytest
import torch

from conftest import TINY_CODEFORMER
from videofix.models.synthetic import formula_codeformer
from videofix.samples import face_content, write_sample_clip

vs = pytest.importorskip("vapoursynth")

FRAMES, W, H = 6, 192, 160
FRONTS = ("cli", "frames", "vapoursynth", "comfyui")
BASE = dict(temporal_radius=1, batch_size=4, fidelity=0.5, grain="off", color="color", dedup=False)


def _content(two: bool = False, grey: bool = False):
    width = 2 * W if two else W
    # noise 9 on one face: the frame around it is grainier than the tiny network's faces, so grain
    # is added (dlib still finds the face in 5 of 6 frames; two faces need the default noise)
    make = face_content(width, H, faces=2 if two else 1, face_size=110, seed=1, noise=6 if two else 9)

    def content(i):
        rgb = make(i)
        if grey:
            y = np.rint(rgb.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])).astype(np.uint8)
            rgb = np.repeat(y[..., None], 3, axis=-1)
        return rgb

    return content


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("reach")
    models = root / "models"
    (models / "facerestore_models").mkdir(parents=True)
    weights = models / "facerestore_models" / "codeformer_tiny.pth"
    torch.save({"params_ema": formula_codeformer(TINY_CODEFORMER).state_dict()}, weights)
    sources = {}
    for key, kwargs in {"one": {}, "two": {"two": True}, "grey": {"grey": True}}.items():
        content = _content(**kwargs)
        path = root / f"{key}.mkv"
        write_sample_clip(path, content, FRAMES, codec="ffv1", pix_fmt="yuv444p", audio=False)
        sources[key] = (path, np.stack([content(i) for i in range(FRAMES)]))
    return {"root": root, "models": models, "weights": weights, "sources": sources}


def _yuv_planes(path) -> np.ndarray:
    """uint8 (N, 3, H, W): the Y, U, V planes of every frame of an FFV1 4:4:4 file."""
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray() for f in c.decode(video=0)])


# ----------------------------------------------------------------------------- the front-ends


def _run_cli(assets, source: str, changes: dict, tmp_path) -> tuple[np.ndarray, dict]:
    from videofix.cli import main
    from videofix.commands.options import flag

    out, report = tmp_path / f"out-{len(list(tmp_path.iterdir()))}.mkv", tmp_path / "report.json"
    args = ["restore", str(assets["sources"][source][0]), "-o", str(out), "--weights", str(assets["weights"]),
            "--detector", "dlib", "--device", "cpu", "--no-parsing", "--codec", "ffv1", "--quiet", "--workers", "1",
            "--report", str(report)]
    for name, value in {**BASE, **changes}.items():
        if isinstance(value, bool):
            args += [flag(name) if value else "--no-" + name.replace("_", "-")]
        else:
            args += [flag(name), str(value)]
    assert main(args) == 0
    return _yuv_planes(out), json.loads(report.read_text())


def _run_frames(assets, source: str, changes: dict) -> np.ndarray:
    from videofix.pipeline.factory import load_stages
    from videofix.pipeline.frames import restore_frames
    from videofix.settings import settings_from

    settings = settings_from({**BASE, **changes, "weights": str(assets["weights"]), "detector": "dlib",
                              "device": "cpu", "parsing": False})
    return restore_frames(assets["sources"][source][1], load_stages(settings), settings)


def _clip_of(frames: np.ndarray):
    n, h, w, _ = frames.shape
    blank = vs.core.std.BlankClip(format=vs.RGB24, width=w, height=h, length=n, fpsnum=25, fpsden=1)

    def fill(n, f):
        out = f.copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), frames[n][..., p])
        return out

    return blank.std.ModifyFrame(clips=[blank], selector=fill)


def _run_vapoursynth(assets, source: str, changes: dict) -> np.ndarray:
    from videofix.vs import restore_faces

    clip = restore_faces(_clip_of(assets["sources"][source][1]), weights=str(assets["weights"]), detector="dlib",
                         device="cpu", parsing=False, **{**BASE, **changes})
    return np.stack([np.stack([np.asarray(clip.get_frame(n)[p]) for p in range(3)], axis=-1)
                     for n in range(clip.num_frames)])


def _run_comfyui(assets, source: str, changes: dict, monkeypatch) -> np.ndarray:
    from test_comfyui_nodes import import_pack

    monkeypatch.setenv("VIDEOFIX_OFFLINE", "1")
    module, _ = import_pack(monkeypatch, assets["models"], video_api=False)
    nodes = module.NODE_CLASS_MAPPINGS
    values = {**BASE, **changes}
    dtype = values.pop("dtype", "fp32")
    (model,) = nodes["VideofixLoadModel"]().load(assets["weights"].name, "auto", "cpu", dtype, False)
    images = torch.from_numpy(assets["sources"][source][1].astype(np.float32) / 255.0)
    (out,) = nodes["VideofixRestoreFaces"]().restore(images, model, detector="dlib", **values)
    return np.rint(out.numpy() * 255.0).astype(np.uint8)


_CACHE: dict = {}


def run(front: str, assets, source: str, changes: dict, tmp_path, monkeypatch):
    """(output, report or None) of one front-end for the settings BASE + changes (cached)."""
    key = (front, source, tuple(sorted(changes.items())))
    if key not in _CACHE:
        if front == "cli":
            _CACHE[key] = _run_cli(assets, source, changes, tmp_path)
        elif front == "frames":
            _CACHE[key] = (_run_frames(assets, source, changes), None)
        elif front == "vapoursynth":
            _CACHE[key] = (_run_vapoursynth(assets, source, changes), None)
        else:
            _CACHE[key] = (_run_comfyui(assets, source, changes, monkeypatch), None)
    return _CACHE[key]


def source_of(front: str, assets, source: str) -> np.ndarray:
    """The source as the front-end's output is compared: YUV planes (cli) or RGB frames."""
    path, rgb = assets["sources"][source]
    return _yuv_planes(path) if front == "cli" else rgb


def _flip_rate(report: dict) -> float:
    rates = [t["code_flip_rate"] for t in report["tracks"] if t["code_flip_rate"] is not None]
    assert rates, "no face was restored"
    return float(np.mean(rates))


def _same_pixels_as_other_rgb_front_ends(front, out, source, changes):
    """The frames API, VapourSynth and ComfyUI run the same stages: the same pixels."""
    for other in ("frames", "vapoursynth", "comfyui"):
        key = (other, source, tuple(sorted(changes.items())))
        if front != "cli" and other != front and key in _CACHE:
            assert np.array_equal(_CACHE[key][0], out), f"{front} and {other} disagree for {changes}"


# ----------------------------------------------------------------------------- the settings


@pytest.mark.parametrize("front", FRONTS)
def test_temporal_radius_reaches_the_engine(front, assets, tmp_path, monkeypatch):
    per_frame, report0 = run(front, assets, "one", {"temporal_radius": 0}, tmp_path, monkeypatch)
    pooled, report2 = run(front, assets, "one", {"temporal_radius": 2}, tmp_path, monkeypatch)
    assert not np.array_equal(per_frame, pooled)
    if report0 is not None:  # the figure the runner reports: pooling makes codes flip less often
        assert report0["settings"]["temporal_radius"] == 0 and report2["settings"]["temporal_radius"] == 2
        assert _flip_rate(report2) < _flip_rate(report0)
    _same_pixels_as_other_rgb_front_ends(front, pooled, "one", {"temporal_radius": 2})


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("name, a, b", [("fidelity", 0.0, 1.0), ("grain", "off", "auto"), ("dtype", "fp32", "bf16")])
def test_setting_changes_the_restored_faces(front, name, a, b, assets, tmp_path, monkeypatch):
    out_a, _ = run(front, assets, "one", {name: a}, tmp_path, monkeypatch)
    out_b, _ = run(front, assets, "one", {name: b}, tmp_path, monkeypatch)
    source = source_of(front, assets, "one")
    assert not np.array_equal(out_a, source), "no face was restored"
    assert not np.array_equal(out_a, out_b), f"{name} {a} and {b} gave the same output through {front}"
    _same_pixels_as_other_rgb_front_ends(front, out_b, "one", {name: b})


@pytest.mark.parametrize("front", FRONTS)
def test_blend_zero_gives_the_source_bit_for_bit(front, assets, tmp_path, monkeypatch):
    full, _ = run(front, assets, "one", {"blend": 1.0}, tmp_path, monkeypatch)
    none, _ = run(front, assets, "one", {"blend": 0.0}, tmp_path, monkeypatch)
    source = source_of(front, assets, "one")
    assert not np.array_equal(full, source)
    assert np.array_equal(none, source)


@pytest.mark.parametrize("front", FRONTS)
def test_color_luma_keeps_the_sources_chroma(front, assets, tmp_path, monkeypatch):
    if front == "cli":  # a YUV video: U and V exactly the source's, Y restored
        luma, _ = run(front, assets, "one", {"color": "luma"}, tmp_path, monkeypatch)
        colour, _ = run(front, assets, "one", {"color": "color"}, tmp_path, monkeypatch)
        source = source_of(front, assets, "one")
        assert np.array_equal(luma[:, 1:], source[:, 1:]) and not np.array_equal(luma[:, 0], source[:, 0])
        assert not np.array_equal(colour[:, 1:], source[:, 1:])
        return
    # RGB frames: a grey source stays grey (R = G = B) in luma mode; colour mode paints colour
    luma, _ = run(front, assets, "grey", {"color": "luma"}, tmp_path, monkeypatch)
    colour, _ = run(front, assets, "grey", {"color": "color"}, tmp_path, monkeypatch)
    source = source_of(front, assets, "grey")
    assert not np.array_equal(luma, source)
    assert np.array_equal(luma[..., 0], luma[..., 1]) and np.array_equal(luma[..., 1], luma[..., 2])
    assert not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 1], colour[..., 2]))


@pytest.mark.parametrize("front", FRONTS)
def test_face_choices_reach_the_selection(front, assets, tmp_path, monkeypatch):
    both, _ = run(front, assets, "two", {}, tmp_path, monkeypatch)
    one, _ = run(front, assets, "two", {"max_faces": 1}, tmp_path, monkeypatch)
    none, _ = run(front, assets, "two", {"min_face_size": 1000.0}, tmp_path, monkeypatch)
    source = source_of(front, assets, "two")
    axis = -1 if front == "cli" else -2  # the width axis: the two faces are side by side

    def changed(out, half):
        cut = [slice(None)] * out.ndim
        cut[axis] = slice(0, W) if half == 0 else slice(W, 2 * W)
        return not np.array_equal(out[tuple(cut)], source[tuple(cut)])

    assert changed(both, 0) and changed(both, 1)
    assert changed(one, 0) != changed(one, 1), "max_faces 1 must restore exactly one of the two faces"
    assert np.array_equal(none, source)


@pytest.mark.parametrize("front", FRONTS)
def test_min_detections_reaches_the_tracker(front, assets, tmp_path, monkeypatch):
    """dlib finds the face in 5 of the 6 frames: a track must be seen in 100 frames (6 for a
    clip or batch of 6) is dropped, and nothing is restored."""
    kept, _ = run(front, assets, "one", {}, tmp_path, monkeypatch)
    dropped, _ = run(front, assets, "one", {"min_detections": 100}, tmp_path, monkeypatch)
    source = source_of(front, assets, "one")
    assert not np.array_equal(kept, source)
    assert np.array_equal(dropped, source)


def test_every_front_end_has_every_setting_checked_here():
    """The settings above exist on every front-end (none needs a 'no such input' note)."""
    from videofix import settings as schema

    for name in ("temporal_radius", "fidelity", "grain", "dtype", "blend", "color", "max_faces", "min_face_size",
                 "min_detections"):
        opt = schema.option_of(name)
        assert all(opt.exposed_in(f) for f in schema.FRONT_ENDS), name
