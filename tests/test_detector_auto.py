"""`--detector auto`: RetinaFace ResNet-50 downloaded like the restorer weights when online
(here from a local HTTP server on 127.0.0.1 serving a generated file in the official layout,
through VIDEOFIX_MODEL_BASE_URL); dlib only offline or when the download fails, with one line
saying so; `videofix models fetch --all-defaults`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch


def _online_cli(*args) -> subprocess.CompletedProcess:
    """The real command line with this process's environment (downloads allowed: the
    `online` fixture points them at the local server)."""
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "videofix", *map(str, args)], capture_output=True, text=True, env=env)


@pytest.fixture
def online(tmp_path, monkeypatch, server):
    root, base = server
    monkeypatch.setenv("VIDEOFIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VIDEOFIX_OFFLINE", raising=False)
    monkeypatch.delenv("VIDEOFIX_MODELS", raising=False)
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.setenv("VIDEOFIX_MODEL_BASE_URL", base)
    return root, base


def _retinaface_file(folder: Path) -> Path:
    """RetinaFace ResNet-50 in the official layout (facexlib's network, random weights)."""
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    path = folder / "detection_Resnet50_Final.pth"
    torch.save(RetinaFace(network_name="resnet50", half=False, device="cpu").state_dict(), path)
    return path


def test_auto_downloads_retinaface_when_online(online, tmp_path):
    from videofix.faces import create_detector

    root, _ = online
    _retinaface_file(root)
    det = create_detector("auto")
    assert det.name == "retinaface"
    assert "downloaded" in det.choice
    assert (tmp_path / "cache" / "detection_Resnet50_Final.pth").is_file()
    # the next run finds the cached file (no server needed)
    (root / "detection_Resnet50_Final.pth").unlink()
    again = create_detector("auto")
    assert again.name == "retinaface" and "file present" in again.choice


def test_auto_falls_back_to_dlib_offline_or_when_the_download_fails(online, monkeypatch, caplog):
    from videofix.faces import create_detector

    caplog.set_level(logging.INFO)
    det = create_detector("auto")  # the server has no such file: 404
    assert det.name == "dlib" and "download failed" in det.choice
    lines = [r.getMessage() for r in caplog.records if "dlib" in r.getMessage()]
    assert len(lines) == 1 and "offline fallback" in lines[0]
    assert "could not download detection_Resnet50_Final.pth" in lines[0]
    caplog.clear()
    monkeypatch.setenv("VIDEOFIX_OFFLINE", "1")
    det = create_detector("auto")
    assert det.name == "dlib" and "VIDEOFIX_OFFLINE=1" in det.choice
    assert len([r for r in caplog.records if "dlib" in r.getMessage()]) == 1


def test_models_fetch_all_defaults_gets_what_a_default_run_needs(online, tmp_path, small_weights):
    import shutil

    from facexlib.parsing.parsenet import ParseNet

    root, _ = online
    _retinaface_file(root)
    shutil.copy(small_weights, root / "codeformer.pth")
    torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(), root / "parsing_parsenet.pth")
    proc = _online_cli("models", "fetch", "--all-defaults", "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name, filename in (("codeformer", "codeformer.pth"), ("retinaface_resnet50", "detection_Resnet50_Final.pth"),
                           ("parsenet", "parsing_parsenet.pth")):
        assert f"{name}: {tmp_path / 'cache' / filename}" in proc.stdout
        assert (tmp_path / "cache" / filename).read_bytes() == (root / filename).read_bytes()
    # then offline: the default detector is RetinaFace from the cache, no dlib line
    from videofix.faces import create_detector

    os.environ["VIDEOFIX_OFFLINE"] = "1"
    try:
        assert create_detector("auto").name == "retinaface"
    finally:
        del os.environ["VIDEOFIX_OFFLINE"]
    proc = _online_cli("models", "fetch")
    assert proc.returncode == 2 and "--all-defaults" in proc.stderr
