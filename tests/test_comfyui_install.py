"""Installed as a ComfyUI user installs it (issue 22), into the real ComfyUI of ``make test``.

What ComfyUI-Manager does, by hand: the repository goes into
``custom_nodes/ComfyUI-videofix`` (the files a clone holds), ``pip install -r
requirements.txt`` runs there with ComfyUI's Python, ComfyUI starts. Then ``/object_info``
lists the videofix nodes, ``/api/workflow_templates`` lists the pack's example workflows,
and torch is the one ComfyUI had (version and location, also as ``/system_stats`` reports it).

So that the other tests' ``.comfyui`` is not touched, ComfyUI's Python is a throwaway venv
layered over ComfyUI's (its own site-packages first, then ComfyUI's venv, which sees
``.venv``): pip sees exactly the packages ComfyUI has and installs into the throwaway one.
Offline: ``pip --isolated install --no-index --no-build-isolation``, so a requirement that
wanted another torch (or anything not installed) fails here instead of downloading. The pack
folder is ComfyUI's ``--base-directory``'s ``custom_nodes``, with extra_model_paths.yaml
entries (ComfyUI's own loader) for the model folders.

Skipped when ``$VIDEOFIX_COMFYUI`` is not set (see tests/test_comfyui_headless.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[1]
COMFYUI = os.environ.get("VIDEOFIX_COMFYUI")
PYTHON = os.environ.get("VIDEOFIX_COMFYUI_PYTHON", sys.executable)
PACK_NAME = "ComfyUI-videofix"
NODES = {"VideofixLoadModel", "VideofixRestoreFaces", "VideofixDetectAndTrack", "VideofixRestoreTracks",
         "VideofixPasteBack", "VideofixRestoreFacesVideo"}

pytestmark = pytest.mark.skipif(not COMFYUI, reason="set VIDEOFIX_COMFYUI to a ComfyUI folder (see the module docstring)")


def clean_env(**extra) -> dict:
    """The environment without this checkout on PYTHONPATH: the installed copy must be used."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME") and not k.startswith("PIP_")}
    return {**env, "PYTHONNOUSERSITE": "1", **extra}


def run(cmd, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def python_info(python: Path, code: str) -> dict:
    # cwd: not this checkout (python -c puts the current folder first on sys.path)
    return json.loads(run([python, "-c", code], env=clean_env(), cwd="/").stdout.splitlines()[-1])


def copy_clone(dest: Path) -> None:
    """The files `git clone` of this tree gives (tracked ones, and new ones git does not ignore)."""
    names = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT).stdout
    for name in filter(None, names.split("\0")):
        src = ROOT / name
        if src.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())


def get(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as resp:
        body = resp.read()
    return json.loads(body)


def versions(python: Path) -> dict:
    """torch's and torchvision's versions and torch's location, as `python` imports them."""
    return python_info(python, "import json, torch, torchvision; print(json.dumps({'torch': torch.__version__, "
                               "'file': torch.__file__, 'torchvision': torchvision.__version__}))")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    assert (Path(COMFYUI) / "main.py").is_file(), f"VIDEOFIX_COMFYUI={COMFYUI} has no main.py"
    tmp = tmp_path_factory.mktemp("comfy_install")
    venv = tmp / "venv"
    run([PYTHON, "-m", "venv", "--without-pip", venv])
    py = venv / "bin" / "python"
    comfy_site = python_info(Path(PYTHON), "import json, sysconfig; print(json.dumps(sysconfig.get_path('purelib')))")
    own_site = python_info(py, "import json, sysconfig; print(json.dumps(sysconfig.get_path('purelib')))")
    Path(own_site, "zz_comfyui_venv.pth").write_text(f"import site; site.addsitedir({comfy_site!r})\n")
    before = versions(py)

    base = tmp / "base"
    pack = base / "custom_nodes" / PACK_NAME
    copy_clone(pack)
    for d in ("input", "output", "temp", "user", "frontend", "models"):
        (base / d).mkdir(parents=True, exist_ok=True)
    shared = tmp / "shared"
    (shared / "facerestore").mkdir(parents=True)
    (shared / "facerestore" / "from_extra_paths.pth").write_bytes(b"listed only")
    yaml = tmp / "extra_model_paths.yaml"
    yaml.write_text(f"shared:\n    base_path: {shared}\n    facerestore_models: facerestore\n")

    # what ComfyUI-Manager runs, in the pack folder, with ComfyUI's Python
    t0 = time.perf_counter()
    pip = run([py, "-m", "pip", "--isolated", "--disable-pip-version-check", "install", "--no-index",
               "--no-build-isolation", "-r", "requirements.txt"], cwd=pack, env=clean_env())
    pip_seconds = time.perf_counter() - t0
    # ComfyUI-Manager also installs the file line by line (`pip install <line>`, cwd = the
    # pack): each line must be one valid argument ("-e ." is not)
    for line in (pack / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            run([py, "-m", "pip", "--isolated", "--disable-pip-version-check", "install", "--dry-run", "--no-index",
                 "--no-build-isolation", line.strip()], cwd=pack, env=clean_env())
    after = versions(py)
    where = python_info(py, "import json, videofix; print(json.dumps(videofix.__file__))")

    port = free_port()
    log_path = tmp / "comfyui.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [py, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
         "--front-end-root", str(base / "frontend"), "--disable-auto-launch", "--database-url", "sqlite:///:memory:",
         "--disable-api-nodes",  # ComfyUI's own cloud nodes: not what is tested, seconds of start-up
         "--extra-model-paths-config", str(yaml)],
        cwd=COMFYUI, env=clean_env(VIDEOFIX_OFFLINE="1", PYTHONUNBUFFERED="1"), stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent)
    try:
        deadline = time.time() + 240
        while True:  # until the server answers (or exits)
            if proc.poll() is not None:
                pytest.fail("ComfyUI exited:\n" + log_path.read_text()[-4000:])
            try:
                get(port, "/system_stats")
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("ComfyUI did not start:\n" + log_path.read_text()[-4000:])
                time.sleep(0.5)
        yield dict(port=port, pip=pip, pip_seconds=pip_seconds, before=before, after=after, videofix=where,
                   venv=venv, pack=pack, log=log_path, base=base)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_requirements_install_the_package_and_keep_comfyuis_torch(installed):
    print(f"pip install -r requirements.txt: {installed['pip_seconds']:.1f} s")
    out = installed["pip"].stdout
    assert "Successfully installed videofix-" in out, out[-2000:]
    collected = [line for line in out.splitlines() if line.startswith("Installing collected packages")]
    assert collected == ["Installing collected packages: videofix"], collected
    assert installed["after"] == installed["before"]  # version and location
    assert not installed["before"]["file"].startswith(str(installed["venv"]))
    # the clone was installed (a copy in ComfyUI's Python), not this checkout
    assert installed["videofix"].startswith(str(installed["venv"])), installed["videofix"]


def test_comfyui_lists_the_nodes_the_templates_and_its_own_torch(installed):
    port = installed["port"]
    info = get(port, "/object_info")
    assert NODES <= set(info), sorted(n for n in info if n.startswith("Videofix"))
    for name in NODES:
        assert info[name]["python_module"] == f"custom_nodes.{PACK_NAME}", info[name]["python_module"]
    templates = get(port, "/api/workflow_templates")
    ours = sorted(p.stem for p in (ROOT / "example_workflows").glob("*.json"))
    assert sorted(templates.get(PACK_NAME, [])) == ours, templates
    served = get(port, f"/api/workflow_templates/{PACK_NAME}/{ours[0]}.json")
    assert served == json.loads((ROOT / "example_workflows" / f"{ours[0]}.json").read_text())
    stats = get(port, "/system_stats")
    assert stats["system"]["pytorch_version"] == installed["before"]["torch"]
    # extra_model_paths.yaml's facerestore_models path, through ComfyUI's own loader
    choices = info["VideofixLoadModel"]["input"]["required"]["model_name"][0]
    assert "from_extra_paths.pth" in choices and "codeformer.pth" in choices
    log = installed["log"].read_text()
    assert f"Cannot import {installed['pack']}" not in log and "Unable to parse pyproject.toml" not in log, log[-3000:]


def test_comfyui_reads_the_packs_tool_comfy(installed):
    """ComfyUI's own parser of a pack's pyproject.toml ([tool.comfy] as the registry reads it)."""
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from comfy_config import config_parser; "
            "c = config_parser.extract_node_configuration(sys.argv[2]); "
            "print(json.dumps({'id': c.project.name, 'publisher': c.tool_comfy.publisher_id, "
            "'name': c.tool_comfy.display_name, 'icon': c.tool_comfy.icon, 'repo': c.project.urls.repository}))")
    got = json.loads(run([installed["venv"] / "bin" / "python", "-c", code, COMFYUI, installed["pack"]],
                         env=clean_env(), cwd="/").stdout.splitlines()[-1])
    assert got["id"] == "videofix" and got["publisher"] == "videofix"
    assert got["name"].startswith("videofix") and got["icon"].endswith("/docs/icon.svg")
    assert got["repo"].startswith("https://github.com/")
