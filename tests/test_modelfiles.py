"""Model-file registry: look-up order, offline message, download, safe loading, clear errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from videofix import modelfiles
from videofix.errors import ModelFileError
from videofix.models import build_restorer
from videofix.models.synthetic import formula_codeformer, small_codeformer_config


@pytest.fixture(autouse=True)
def isolated_env(offline_models_env):
    """Every test starts offline, with an empty private cache and no models / ComfyUI folder."""


def put(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def small_sd() -> dict[str, torch.Tensor]:
    return formula_codeformer(small_codeformer_config()).state_dict()


# ------------------------------------------------------------------------ registry


def test_registry_lists_every_file_we_use():
    expected = {
        "codeformer": "codeformer.pth",
        "vqfr": "VQFR_v2.pth",
        "retinaface_resnet50": "detection_Resnet50_Final.pth",
        "retinaface_mobile0.25": "detection_mobilenet0.25_Final.pth",
        "parsenet": "parsing_parsenet.pth",
        "bisenet": "parsing_bisenet.pth",
        "realesrgan_x2plus": "RealESRGAN_x2plus.pth",
        "buffalo_l": "buffalo_l.zip",
    }
    assert {n: e.filename for n, e in modelfiles.REGISTRY.items()} == expected
    for entry in modelfiles.REGISTRY.values():
        assert entry.urls and all(u.startswith("https://github.com/") and u.endswith("/" + entry.filename) for u in entry.urls)
        assert entry.kind in {"restorer", "detector", "parsing", "upscaler", "landmarks"}
        assert entry.licence and entry.description and entry.comfy_folder
    assert modelfiles.REGISTRY["codeformer"].urls[0] == (
        "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth"
    )
    assert modelfiles.REGISTRY["codeformer"].comfy_folder == "facerestore_models"
    assert modelfiles.REGISTRY["retinaface_resnet50"].comfy_folder == "facedetection"


# ----------------------------------------------------------------------- look-up


def test_lookup_order(tmp_path, monkeypatch):
    explicit = put(tmp_path / "mine" / "cf.pth")
    models_dir = tmp_path / "models"
    in_models = put(models_dir / "codeformer.pth")
    comfy = tmp_path / "ComfyUI"
    in_comfy = put(comfy / "models" / "facerestore_models" / "codeformer.pth")
    in_cache = put(tmp_path / "cache" / "codeformer.pth")

    def resolve(**kw):
        return modelfiles.resolve("codeformer", models_dir=models_dir, comfy_root=comfy, **kw)

    assert resolve(path=explicit) == explicit
    assert resolve() == in_models
    in_models.unlink()
    assert resolve() == in_comfy
    in_comfy.unlink()
    assert resolve() == in_cache
    # the environment stands in for the arguments
    monkeypatch.setenv("VIDEOFIX_MODELS", str(models_dir))
    monkeypatch.setenv("COMFYUI_PATH", str(comfy))
    put(in_comfy)
    assert modelfiles.resolve("codeformer") == in_comfy
    put(in_models)
    assert modelfiles.resolve("codeformer") == in_models
    # an explicit models dir wins over $VIDEOFIX_MODELS, and ComfyUI-style sub-folders count
    other = put(tmp_path / "other" / "facerestore_models" / "codeformer.pth")
    assert modelfiles.resolve("codeformer", models_dir=tmp_path / "other") == other


def test_detector_files_are_found_in_comfyui_facedetection(tmp_path):
    found = put(tmp_path / "ComfyUI" / "models" / "facedetection" / "detection_Resnet50_Final.pth")
    assert modelfiles.resolve("retinaface_resnet50", comfy_root=tmp_path / "ComfyUI") == found


def test_explicit_path_must_exist(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        modelfiles.resolve("codeformer", path=tmp_path / "missing.pth")


def test_offline_missing_file_message(tmp_path):
    with pytest.raises(ModelFileError) as info:
        modelfiles.resolve("codeformer", models_dir=tmp_path / "models")
    message = str(info.value)
    assert "\n" not in message
    assert "codeformer.pth" in message
    assert "https://github.com/sczhou/CodeFormer/releases/download/v0.1.0/codeformer.pth" in message
    assert str(tmp_path / "cache") in message  # where to put it
    assert "VIDEOFIX_OFFLINE" in message


def test_unknown_model_name_is_a_usage_error():
    from videofix.errors import UsageError

    with pytest.raises(UsageError, match="known: codeformer"):
        modelfiles.resolve("gfpgan")


# ---------------------------------------------------------------------- download


def test_download_records_hash_and_checks_it(server, tmp_path, monkeypatch, capsys):
    root, base = server
    payload = bytes(range(256)) * 4096
    put(root / "codeformer.pth", payload)
    entry = dataclasses.replace(modelfiles.REGISTRY["codeformer"], urls=(f"{base}/missing/codeformer.pth", f"{base}/codeformer.pth"))
    monkeypatch.setitem(modelfiles.REGISTRY, "codeformer", entry)
    monkeypatch.setenv("VIDEOFIX_OFFLINE", "0")

    path = modelfiles.resolve("codeformer")
    assert path == tmp_path / "cache" / "codeformer.pth" and path.read_bytes() == payload
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # atomic: no temporary file left
    assert "downloading codeformer.pth" in capsys.readouterr().err
    hashes = json.loads((tmp_path / "cache" / "hashes.json").read_text())
    import hashlib

    assert hashes["codeformer.pth"]["sha256"] == hashlib.sha256(payload).hexdigest()

    assert modelfiles.resolve("codeformer") == path  # cached and verified: no second download
    path.write_bytes(payload[:-1] + b"\0")  # same size, different content
    with pytest.raises(ModelFileError, match="SHA-256"):
        modelfiles.resolve("codeformer")


def test_download_size_mismatch_leaves_nothing(server, tmp_path, monkeypatch):
    root, base = server
    put(root / "codeformer.pth", b"0123456789")
    entry = dataclasses.replace(modelfiles.REGISTRY["codeformer"], urls=(f"{base}/codeformer.pth",), size=11)
    monkeypatch.setitem(modelfiles.REGISTRY, "codeformer", entry)
    monkeypatch.setenv("VIDEOFIX_OFFLINE", "0")
    with pytest.raises(ModelFileError, match="expected 11"):
        modelfiles.resolve("codeformer", quiet=True)
    assert not list((tmp_path / "cache").glob("*codeformer.pth*"))


# ------------------------------------------------------------------------ loading


def test_load_state_dict_unwraps_official_wrappers(tmp_path):
    sd = {"a.weight": torch.ones(2, 3), "a.bias": torch.zeros(2)}
    for wrapper in ("params_ema", "params"):
        path = tmp_path / f"{wrapper}.pth"
        torch.save({wrapper: sd, "iter": 5}, path)
        loaded = modelfiles.load_state_dict(path)
        assert set(loaded) == set(sd) and torch.equal(loaded["a.weight"], sd["a.weight"])
    torch.save({"params": {"x": torch.zeros(1)}, "params_ema": sd}, tmp_path / "both.pth")
    assert set(modelfiles.load_state_dict(tmp_path / "both.pth")) == set(sd)  # EMA preferred
    torch.save({"module." + k: v for k, v in sd.items()}, tmp_path / "dp.pth")
    assert set(modelfiles.load_state_dict(tmp_path / "dp.pth")) == set(sd)


def test_truncated_checkpoint_is_one_clear_error(tmp_path, small_sd):
    path = tmp_path / "codeformer.pth"
    torch.save({"params_ema": small_sd}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as info:
        modelfiles.load_state_dict(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "truncated" in message and "\n" not in message


@pytest.mark.parametrize(
    "content, expected",
    [(b"", "empty file"), (b"<html>404 Not Found</html>", "not a PyTorch checkpoint")],
)
def test_non_checkpoints_are_clear_errors(tmp_path, content, expected):
    path = put(tmp_path / "codeformer.pth", content)
    with pytest.raises(ModelFileError, match=expected):
        modelfiles.load_state_dict(path)


class NotATensor:
    pass


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"params_ema": {"w": torch.zeros(1)}, "payload": NotATensor()}, path)
    with pytest.raises(ModelFileError, match="other than tensors"):
        modelfiles.load_state_dict(path)


def test_wrong_key_names_the_keys(small_sd):
    sd = dict(small_sd)
    sd["ft_layers.1.linear1.gain"] = sd.pop("ft_layers.1.linear1.weight")
    with pytest.raises(ModelFileError) as info:
        build_restorer("codeformer", sd, source="weights/codeformer.pth")
    message = str(info.value)
    assert message.startswith("weights/codeformer.pth: not a CodeFormer checkpoint")
    assert "1 missing keys (ft_layers.1.linear1.weight)" in message
    assert "1 unexpected keys (ft_layers.1.linear1.gain)" in message


def test_broken_structure_is_explained_against_the_official_layout(small_sd):
    sd = dict(small_sd)
    sd["encoder.blocks.1.norm1.gain"] = sd.pop("encoder.blocks.1.norm1.weight")
    with pytest.raises(ModelFileError, match="not a CodeFormer checkpoint: .*missing keys"):
        build_restorer("codeformer", sd)


def test_shape_mismatch_is_named(small_sd):
    sd = dict(small_sd)
    sd["generator.blocks.0.bias"] = torch.zeros(7)
    with pytest.raises(ModelFileError, match=r"shape mismatches \(generator\.blocks\.0\.bias is \(7,\), expected \(128,\)"):
        build_restorer("codeformer", sd)


def test_check_state_dict_lists_a_few():
    expected = {f"k{i}": (2,) for i in range(10)}
    with pytest.raises(ModelFileError) as info:
        modelfiles.check_state_dict({}, expected, what="Net", source="f.pth")
    assert str(info.value) == "f.pth: not a Net checkpoint: 10 missing keys (k0, k1, k2, ... (7 more))"


# ------------------------------------------------------------------------ licences (#22)


def test_every_file_states_its_licence_and_non_commercial_ones_say_so():
    entries = [*modelfiles.REGISTRY.values(), *modelfiles.BUNDLED.values()]
    for entry in entries:
        assert entry.licence and entry.licence_url.startswith(("https://", "http://")), entry.name
        assert ("non-commercial" in entry.licence.lower()) == (not entry.commercial_use), entry.name
        assert all(":" in use for use in entry.used_by), entry.name
    non_commercial = {e.name for e in entries if not e.commercial_use}
    assert non_commercial == {"codeformer", "parsenet", "buffalo_l", "dlib_landmarks_68"}
    assert "S-Lab License 1.0" in modelfiles.REGISTRY["codeformer"].licence
    # every stage that reads a file names it: the run report depends on this
    assert [e.name for e in modelfiles.files_used(["restorer:codeformer"])] == ["codeformer"]
    assert {e.name for e in modelfiles.files_used(["detector:dlib"])} == {"dlib_hog", "dlib_landmarks_68"}
    assert {e.name for e in modelfiles.files_used(["detector:scrfd", "identity:arcface"])} == {"buffalo_l"}
    assert [e.name for e in modelfiles.files_used(["shots:transnetv2"])] == ["transnetv2"]


def test_bundled_files_are_found_inside_their_packages():
    for name in ("transnetv2", "dlib_landmarks_68", "dlib_face_recognition"):
        path = modelfiles.BUNDLED[name].locate()
        assert path is not None and path.is_file() and path.name == modelfiles.BUNDLED[name].filename, name
    missing = dataclasses.replace(modelfiles.BUNDLED["transnetv2"], module="no_such_module_here")
    assert missing.locate() is None


def serve_codeformer(server, monkeypatch, payload: bytes = b"weights" * 1000):
    root, base = server
    put(root / "codeformer.pth", payload)
    put(root / "VQFR_v2.pth", payload)
    monkeypatch.setenv("VIDEOFIX_MODEL_BASE_URL", base)
    monkeypatch.setenv("VIDEOFIX_OFFLINE", "0")
    return payload


def test_first_download_of_a_non_commercial_file_prints_its_licence_once(server, tmp_path, monkeypatch, capsys):
    serve_codeformer(server, monkeypatch)
    path = modelfiles.resolve("codeformer", quiet=True)  # quiet: no progress, the licence all the same
    # (the local server logs its requests on stderr too: only videofix's lines count)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("videofix")]
    assert lines == ["videofix: codeformer.pth: S-Lab License 1.0 (non-commercial use only); "
                     "see https://github.com/sczhou/CodeFormer/blob/master/LICENSE"]
    assert path == tmp_path / "cache" / "codeformer.pth"
    assert modelfiles.resolve("codeformer", quiet=True) == path  # found: no download, no line
    assert "videofix" not in capsys.readouterr().err
    modelfiles.resolve("vqfr", quiet=True)  # downloaded, Apache-2.0: nothing to say
    err = capsys.readouterr().err
    assert "GET /VQFR_v2.pth" in err and "videofix" not in err


def test_models_list_shows_every_licence(tmp_path):
    from conftest import run_cli

    out = run_cli("models", "list", env={"VIDEOFIX_CACHE": str(tmp_path / "cache")}).stdout
    blocks = {}
    for line in out.splitlines():
        if line and not line.startswith(" "):
            name = line.split()[0]
            blocks[name] = []
        elif line.strip().startswith("licence: "):
            blocks[name].append(line.strip())
    for entry in [*modelfiles.REGISTRY.values(), *modelfiles.BUNDLED.values()]:
        assert blocks[entry.name] == [f"licence: {entry.licence} ({entry.licence_url})"], entry.name


# ------------------------------------------------------------------ inside ComfyUI (#22)


def test_inside_comfyui_files_are_found_in_every_folder_path_and_downloaded_into_comfyuis_own(
        server, tmp_path, monkeypatch, capsys):
    comfy_models = tmp_path / "ComfyUI" / "models"
    extra = tmp_path / "shared" / "facerestore"  # an extra_model_paths.yaml entry, listed first
    folders = {"facerestore_models": [str(extra), str(comfy_models / "facerestore_models")],
               "facedetection": [str(comfy_models / "facedetection")],
               "insightface": [str(comfy_models / "insightface")]}
    monkeypatch.setattr(modelfiles, "_comfy_folders", None)
    modelfiles.use_comfy_folders(lambda name: folders[name], comfy_models)
    in_extra = put(extra / "VQFR_v2.pth")
    assert modelfiles.resolve("vqfr") == in_extra  # no download: found in the extra path
    payload = serve_codeformer(server, monkeypatch)
    path = modelfiles.resolve("codeformer", quiet=True)
    assert path == comfy_models / "facerestore_models" / "codeformer.pth" and path.read_bytes() == payload
    assert not (tmp_path / "cache" / "codeformer.pth").exists()  # not into a private cache
    assert "S-Lab License 1.0" in capsys.readouterr().err
    # insightface packs live in models/insightface/models/, as insightface's own root
    assert modelfiles.download_target(modelfiles.get("buffalo_l")) == comfy_models / "insightface" / "models" / "buffalo_l.zip"
    modelfiles.use_comfy_folders(None)
    assert modelfiles.download_target(modelfiles.get("codeformer")) == tmp_path / "cache" / "codeformer.pth"
