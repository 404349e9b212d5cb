"""The node pack's model files kept as ComfyUI users keep them (issue 22).

``models/facerestore_models``, ``models/facedetection`` and
``models/insightface/models/buffalo_l``, with the paths extra_model_paths.yaml adds to those
folders; a missing file is downloaded into ComfyUI's own folder, not into videofix's cache.
The pack is imported as ComfyUI imports it, with `folder_paths` stubbed as in
``test_comfyui_nodes.py`` (tests/test_comfyui_install.py does the same against the real
ComfyUI and its extra_model_paths.yaml loader). Downloads come from the tests' local HTTP
server (``VIDEOFIX_MODEL_BASE_URL``); the files are real networks (small CodeFormer with
formula weights, facexlib's RetinaFace and ParseNet with random weights, a generated
buffalo_l pack).
"""

from __future__ import annotations

import shutil

import pytest
import torch
from test_comfyui_nodes import WEIGHTS_NAME, import_pack

from videofix import modelfiles
from videofix.models.synthetic import formula_codeformer, small_codeformer_config


@pytest.fixture
def comfy_models(tmp_path, monkeypatch):
    """An empty ComfyUI models folder, an empty private cache, downloads allowed only from
    the local server (set by the tests that download)."""
    models = tmp_path / "ComfyUI" / "models"
    models.mkdir(parents=True)
    monkeypatch.setenv("VIDEOFIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VIDEOFIX_OFFLINE", "1")
    monkeypatch.delenv("VIDEOFIX_MODELS", raising=False)
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    return models


def go_online(server, monkeypatch):
    root, base = server
    monkeypatch.setenv("VIDEOFIX_MODEL_BASE_URL", base)
    monkeypatch.setenv("VIDEOFIX_OFFLINE", "0")
    return root


def test_missing_restorer_is_downloaded_into_comfyuis_facerestore_models(comfy_models, server, monkeypatch, tmp_path,
                                                                         capfd):
    root = go_online(server, monkeypatch)
    torch.save({"params_ema": formula_codeformer(small_codeformer_config()).state_dict()}, root / "codeformer.pth")
    pack, _ = import_pack(monkeypatch, comfy_models, video_api=False)
    (model,) = pack.NODE_CLASS_MAPPINGS["VideofixLoadModel"]().load("codeformer.pth", "auto", "cpu", "fp32", False)
    target = comfy_models / "facerestore_models" / "codeformer.pth"
    assert model.weights == str(target) and target.read_bytes() == (root / "codeformer.pth").read_bytes()
    assert not (tmp_path / "cache" / "codeformer.pth").exists()
    assert model.stages.model.input_size == small_codeformer_config()["img_size"]  # the downloaded file loaded
    assert "videofix: codeformer.pth: S-Lab License 1.0 (non-commercial use only)" in capfd.readouterr().err
    # and the loader's list now shows it from the folder
    choices = pack.NODE_CLASS_MAPPINGS["VideofixLoadModel"].INPUT_TYPES()["required"]["model_name"][0]
    assert choices.count("codeformer.pth") == 1


def test_auto_detector_download_lands_in_comfyuis_facedetection(comfy_models, server, monkeypatch, tmp_path, small_weights):
    from test_detector_auto import _retinaface_file

    root = go_online(server, monkeypatch)
    _retinaface_file(root)
    pack, _ = import_pack(monkeypatch, comfy_models, video_api=False)
    (comfy_models / "facerestore_models").mkdir()
    shutil.copy(small_weights, comfy_models / "facerestore_models" / WEIGHTS_NAME)
    (model,) = pack.NODE_CLASS_MAPPINGS["VideofixLoadModel"]().load(WEIGHTS_NAME, "auto", "cpu", "fp32", False)
    det = model.detector("auto")
    assert det.name == "retinaface" and "downloaded" in det.choice
    assert (comfy_models / "facedetection" / "detection_Resnet50_Final.pth").is_file()
    assert not (tmp_path / "cache" / "detection_Resnet50_Final.pth").exists()


def test_extra_model_paths_folders_are_searched(comfy_models, monkeypatch, tmp_path, small_weights):
    from facexlib.parsing.parsenet import ParseNet

    # as extra_model_paths.yaml leaves them: the extra path registered before the pack's own
    extra_restore, extra_detect = tmp_path / "shared" / "facerestore", tmp_path / "shared" / "facedetection"
    extra_restore.mkdir(parents=True)
    extra_detect.mkdir(parents=True)
    shutil.copy(small_weights, extra_restore / WEIGHTS_NAME)
    torch.manual_seed(0)
    torch.save(ParseNet(in_size=512, out_size=512, parsing_ch=19).state_dict(), extra_detect / "parsing_parsenet.pth")
    pack, fp = import_pack(monkeypatch, comfy_models, video_api=False,
                           preset={"facerestore_models": ([str(extra_restore)], set()),
                                   "facedetection": ([str(extra_detect)], set())})
    assert fp.folder_names_and_paths["facedetection"][0] == [str(extra_detect), str(comfy_models / "facedetection")]
    (model,) = pack.NODE_CLASS_MAPPINGS["VideofixLoadModel"]().load(WEIGHTS_NAME, "auto", "cpu", "fp32", True)
    assert model.weights == str(extra_restore / WEIGHTS_NAME)
    assert model.stages.parser is not None  # parsing_parsenet.pth found in the extra facedetection path
    assert modelfiles.resolve("parsenet", models_dir=comfy_models, download=False) == extra_detect / "parsing_parsenet.pth"
    assert not (comfy_models / "facedetection").exists()  # nothing created, nothing downloaded


def test_buffalo_l_where_comfyui_users_keep_it(comfy_models, monkeypatch, small_weights):
    from test_faces_detect import _make_buffalo_l

    from videofix.faces._files import resolve_model

    pack_dir = _make_buffalo_l(comfy_models / "insightface" / "models")
    pack, fp = import_pack(monkeypatch, comfy_models, video_api=False)
    assert str(comfy_models / "insightface") in fp.folder_names_and_paths["insightface"][0]
    assert resolve_model("buffalo_l", models_dir=comfy_models, download=False) == pack_dir
    (comfy_models / "facerestore_models").mkdir()
    shutil.copy(small_weights, comfy_models / "facerestore_models" / WEIGHTS_NAME)
    (model,) = pack.NODE_CLASS_MAPPINGS["VideofixLoadModel"]().load(WEIGHTS_NAME, "auto", "cpu", "fp32", False)
    assert model.detector("scrfd").name == "scrfd"  # offline: the unpacked pack, no zip, no download


def test_the_pack_points_every_download_at_comfyuis_models_folder(comfy_models, monkeypatch, tmp_path):
    assert modelfiles.download_target(modelfiles.get("codeformer")) == tmp_path / "cache" / "codeformer.pth"
    import_pack(monkeypatch, comfy_models, video_api=False)
    for name, folder in (("codeformer", "facerestore_models"), ("retinaface_resnet50", "facedetection"),
                         ("parsenet", "facedetection"), ("buffalo_l", "insightface/models")):
        entry = modelfiles.get(name)
        assert modelfiles.download_target(entry) == comfy_models / folder / entry.filename, name
