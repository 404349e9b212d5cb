"""videofix nodes for ComfyUI: temporally stable face restoration of frame batches.

Thin front-end over the library (docs/DESIGN.md): every node calls
`videofix.pipeline.frames` (which runs the same `analyze_frames` / `FaceRestorationPass`
stages as `videofix restore`); nothing here detects, aligns, restores or pastes by itself.

Types passed between the nodes:

* ``IMAGE``: torch float32 (B, H, W, C=3) **RGB** in 0..1 (ComfyUI's own); a batch is the
  consecutive frames of a video (VideoHelperSuite's Load Video, or the native Load Video ->
  Get Video Components).
* ``VIDEOFIX_MODEL``: `FaceRestorerModel` (the loaded restorer, face parser, and detectors
  built on demand), from the loader node.
* ``VIDEOFIX_TRACKS``: `videofix.pipeline.analysis.FaceAnalysis` (face tracks of a batch).
* ``VIDEOFIX_FACES``: `videofix.pipeline.frames.RestoredFaces` (restored aligned crops).
* ``VIDEO``: ComfyUI's video type, where the host has it (`comfy_api`).

Model files come from ComfyUI's model folders as face-restoration users keep them:
``models/facerestore_models`` (CodeFormer, VQFR), ``models/facedetection`` (RetinaFace,
ParseNet) and ``models/insightface/models/buffalo_l`` (SCRFD, ArcFace), with every path
extra_model_paths.yaml adds to those folders (`folder_paths`). Every stage resolves its
files through the videofix registry (`videofix.modelfiles`), which the pack points at
ComfyUI's folders; a missing file is downloaded into ComfyUI's own folder for it
(``models/<folder>``), never into a private cache.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field, replace
from typing import Any

import folder_paths  # ComfyUI's module

from videofix import modelfiles
from videofix import settings as schema
from videofix.errors import VideofixError
from videofix.pipeline.factory import LoadedStages, load_stages
from videofix.pipeline.frames import detect_and_track, paste_back, restore_frames, restore_tracks
from videofix.settings import RestoreSettings

CATEGORY = "videofix"
RESTORER_FOLDER = "facerestore_models"
DETECTOR_FOLDER = "facedetection"
INSIGHTFACE_FOLDER = "insightface"  # packs in models/insightface/models/<pack>/, as insightface's own root
DETECTORS = list(schema.DETECTORS)
ARCHITECTURES = ["auto", "codeformer", "vqfr"]
DEVICES = ["auto", "cpu", "cuda"]

MODEL_TYPE = "VIDEOFIX_MODEL"
TRACKS_TYPE = "VIDEOFIX_TRACKS"
FACES_TYPE = "VIDEOFIX_FACES"


# ----------------------------------------------------------------------------- model folders


def register_model_folders() -> None:
    """Register ``facerestore_models``, ``facedetection`` and ``insightface`` with ComfyUI's
    `folder_paths`, and make videofix's registry look files up (and download missing ones)
    there.

    Folders another pack (or extra_model_paths.yaml) registered are kept; ours is added to
    the list, and the extensions a face-restoration file can have are allowed. Nothing is
    created on disk here.
    """
    extensions = set(getattr(folder_paths, "supported_pt_extensions", {".pth", ".pt", ".ckpt", ".safetensors"}))
    extensions |= {".pth", ".pt", ".onnx", ".dat", ".zip"}
    for name in (RESTORER_FOLDER, DETECTOR_FOLDER, INSIGHTFACE_FOLDER):
        path = os.path.join(folder_paths.models_dir, name)
        known = folder_paths.folder_names_and_paths.get(name)
        if known is None:
            folder_paths.folder_names_and_paths[name] = ([path], extensions)
            continue
        paths, exts = known[0], known[1]
        if path not in paths:
            paths.append(path)
        if isinstance(exts, set):
            exts |= extensions
    modelfiles.use_comfy_folders(_folder_paths_of, folder_paths.models_dir)


def _folder_paths_of(name: str) -> list[str]:
    """Every path ComfyUI has for folder `name` (its own and extra_model_paths.yaml's), in its order."""
    get = getattr(folder_paths, "get_folder_paths", None)
    return list(get(name)) if get is not None else list(folder_paths.folder_names_and_paths[name][0])


def restorer_choices() -> list[str]:
    """Files in ``facerestore_models``, then the registry's restorers not present there
    (chosen, those are found elsewhere or downloaded)."""
    try:
        files = list(folder_paths.get_filename_list(RESTORER_FOLDER))
    except Exception:  # noqa: BLE001 - a broken folder entry must not hide the node
        files = []
    names = {os.path.basename(f) for f in files}
    for entry in modelfiles.REGISTRY.values():
        if entry.kind == "restorer" and entry.filename not in names:
            files.append(entry.filename)
    return files


def _registry_entry(filename: str):
    for entry in modelfiles.REGISTRY.values():
        if entry.filename == os.path.basename(filename):
            return entry
    return None


def _comfy_device(device: str) -> str:
    """"auto" = the device ComfyUI runs models on (honours --cpu); else as given."""
    if device != "auto":
        return device
    try:
        import comfy.model_management

        return str(comfy.model_management.get_torch_device())
    except Exception:  # noqa: BLE001 - outside ComfyUI: videofix's own choice
        return "auto"


def check_detector(name: str) -> None:
    if name not in DETECTORS:
        raise ValueError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")


@dataclass
class FaceRestorerModel:
    """The ``VIDEOFIX_MODEL`` value: loaded stages plus the settings they were loaded with.

    Detectors are built when a node first asks for one (by name) and kept.
    """

    stages: LoadedStages
    settings: RestoreSettings
    weights: str
    detectors: dict[str, Any] = field(default_factory=dict)

    def detector(self, name: str, score_threshold: float | None = None):
        """The face detector `name` (``auto``: see `videofix.faces.create_detector`), keeping faces
        scoring at least `score_threshold` (None: the detector's own threshold)."""
        check_detector(name)
        key = name if score_threshold is None else f"{name}@{float(score_threshold)}"
        if key not in self.detectors:
            from videofix.faces import create_detector

            # files through the registry, which searches (and downloads into) ComfyUI's folders
            self.detectors[key] = create_detector(name, self.settings.models_dir, str(self.stages.devices.detector),
                                                  score_threshold=score_threshold)
        return self.detectors[key]

    def stages_with(self, detector: str, score_threshold: float | None = None) -> LoadedStages:
        return replace(self.stages, detector=self.detector(detector, score_threshold))


def load_model(model_name: str, architecture: str = "auto", device: str = "auto", dtype: str = "fp32",
               parsing: bool = True) -> FaceRestorerModel:
    """Resolve and load a restorer (and the face parser when its file is present).

    `model_name` is a file of ``facerestore_models`` (any of ComfyUI's paths for it) or a
    registry file name; a registry file found nowhere is downloaded into ComfyUI's own
    ``models/facerestore_models``, printing its licence when that allows non-commercial use
    only.
    """
    path = folder_paths.get_full_path(RESTORER_FOLDER, model_name)
    entry = _registry_entry(model_name)
    if architecture == "auto":
        architecture = "vqfr" if "vqfr" in os.path.basename(model_name).lower() else "codeformer"
    if path is None:
        if entry is None:
            raise FileNotFoundError(f"{model_name} is not in models/{RESTORER_FOLDER} and is not a known model file")
        path = modelfiles.resolve(entry.name, models_dir=folder_paths.models_dir, download=True, quiet=True)
    settings = RestoreSettings(weights=str(path), models_dir=folder_paths.models_dir, model=architecture,
                               device=_comfy_device(device), dtype=dtype, parsing=bool(parsing))
    stages = load_stages(settings, need_detector=False, quiet=True)
    return FaceRestorerModel(stages, settings, str(path))


# ----------------------------------------------------------------------------- progress


class _Progress:
    """ComfyUI's progress bar counted in frames; also lets the user cancel between frames."""

    def __init__(self, total: int):
        import comfy.utils

        self.bar = comfy.utils.ProgressBar(int(total))
        try:
            import comfy.model_management as mm

            self.check = mm.throw_exception_if_processing_interrupted
        except (ImportError, AttributeError):
            self.check = None

    def __call__(self, n: int = 1) -> None:
        if self.check is not None:
            self.check()
        self.bar.update(n)


def _settings(model: FaceRestorerModel, values: dict) -> RestoreSettings:
    """The loaded model's settings with the node's widget values (checked by the schema;
    a widget's `unset` number, e.g. det_threshold 0, means the stage's own default)."""
    try:
        return schema.settings_from(values, base=model.settings, unset_is_none=True)
    except VideofixError as exc:
        raise ValueError(exc.named()) from None


# ----------------------------------------------------------------------------- widgets


def widget(name: str) -> tuple:
    """The ComfyUI input of setting `name`, read off `videofix.settings`: its type (BOOLEAN,
    INT, FLOAT, STRING or the list of choices), default, range, step and tooltip."""
    opt, default = schema.option_of(name), schema.default_of(name)
    tooltip = opt.help
    info: dict = {}
    if opt.kind == "bool":
        return ("BOOLEAN", {"default": default, "tooltip": tooltip})
    if opt.kind == "choice":
        return (list(opt.choices), {"default": default, "tooltip": tooltip})
    if opt.kind in ("int", "float"):
        step = opt.step if opt.step is not None else (1 if opt.kind == "int" else 0.01)
        lo, hi = opt.lo, opt.hi
        if opt.hi_open:
            hi = hi - step
        if default is None:  # a widget cannot say None: the option's `unset` number stands for it
            default, lo = opt.unset, min(lo, opt.unset)
            tooltip = f"{tooltip} ({schema._fmt(opt.unset)} = {opt.none})"
        elif opt.lo_open:
            lo = lo + step
        cast = int if opt.kind == "int" else float
        info = {"default": cast(default), "min": cast(lo), "max": cast(hi), "tooltip": tooltip}
        if opt.kind == "float":
            info["step"] = step
        return ("INT" if opt.kind == "int" else "FLOAT", info)
    if opt.kind == "regions":
        return ("STRING", {"default": ",".join(default), "tooltip": tooltip})
    raise ValueError(f"setting {name} ({opt.kind}) has no ComfyUI widget")


class _Node:
    """A node whose inputs are listed in order (`REQUIRED`, `OPTIONAL`): names of settings
    (their widget comes from the schema) or (name, ComfyUI input spec) for the node's own
    inputs. The order is the widgets' order in saved UI workflows: new inputs go at the end.
    `GROUPS`: the settings groups the node takes; their options added after the first release
    (`Option.added`) are appended to `OPTIONAL` by themselves, in the order they were added, so
    a new option of the schema reaches the node without an edit here."""

    DESCRIPTION = ""
    CATEGORY = CATEGORY
    REQUIRED: tuple = ()
    OPTIONAL: tuple = ()
    GROUPS: tuple = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        listed = {cls._spec(i)[0] for i in (*cls.REQUIRED, *cls.OPTIONAL)}
        cls.OPTIONAL = (*cls.OPTIONAL, *schema.later_options(cls.GROUPS, "comfyui", listed))
        # The node's function takes its inputs by name (and in order): say so in its signature,
        # which ComfyUI and scripts read, instead of the generic (*args, **kwargs).
        fn = cls.__dict__.get(getattr(cls, "FUNCTION", ""))
        if fn is None or not cls.REQUIRED:
            return
        P = inspect.Parameter
        params = [P("self", P.POSITIONAL_OR_KEYWORD)]
        params += [P(cls._spec(i)[0], P.POSITIONAL_OR_KEYWORD) for i in cls.REQUIRED]
        for item in cls.OPTIONAL:
            name = cls._spec(item)[0]
            default = None
            if isinstance(item, str):
                default = schema.default_of(name)
                if default is None:
                    default = schema.option_of(name).unset
                elif isinstance(default, list):
                    default = ",".join(default)
            params.append(P(name, P.POSITIONAL_OR_KEYWORD, default=default))
        fn.__signature__ = inspect.Signature(params)

    @staticmethod
    def _spec(item) -> tuple[str, tuple]:
        return (item, widget(item)) if isinstance(item, str) else item

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": dict(cls._spec(i) for i in cls.REQUIRED),
                "optional": dict(cls._spec(i) for i in cls.OPTIONAL)}

    @classmethod
    def input_names(cls) -> list[str]:
        return [cls._spec(i)[0] for i in (*cls.REQUIRED, *cls.OPTIONAL)]

    @classmethod
    def _bind(cls, args: tuple, kwargs: dict) -> dict:
        """Positional and keyword inputs -> {input name: value} (ComfyUI passes keywords;
        scripts may pass the inputs in their order)."""
        names = cls.input_names()
        if len(args) > len(names):
            raise TypeError(f"{cls.__name__} takes at most {len(names)} inputs, got {len(args)}")
        values = dict(zip(names, args))
        for key, value in kwargs.items():
            if key not in names:
                raise TypeError(f"{cls.__name__} has no input {key!r}")
            if key in values:
                raise TypeError(f"{cls.__name__} got input {key!r} twice")
            values[key] = value
        return values

    @staticmethod
    def _split(values: dict, own: tuple[str, ...]) -> tuple[dict, dict]:
        """(the node's own inputs, the settings)."""
        return ({k: v for k, v in values.items() if k in own}, {k: v for k, v in values.items() if k not in own})


def _references(face_ref) -> list | None:
    """face_ref IMAGE batch -> uint8 RGB arrays, one reference per image (None: not connected)."""
    if face_ref is None:
        return None
    import numpy as np

    arr = face_ref.detach().cpu().float().numpy() if hasattr(face_ref, "detach") else np.asarray(face_ref)
    if arr.ndim == 3:
        arr = arr[None]
    return [np.clip(np.rint(a[..., :3] * 255.0), 0, 255).astype(np.uint8) for a in arr]


_FACE_REF = ("face_ref", ("IMAGE", {"tooltip": "photos of the people to restore (each image of the batch is one "
                                               "reference), matched by face identity"}))
# which faces, and how much of each is pasted: after the film inputs, so saved UI workflows keep
# their widget order; options added later (max_gap, face_ref_distance, min_detections, ...: the
# schema's Option.added) follow by themselves (_Node.GROUPS)
_SELECT = ("only_center_face", "largest_face", "min_face_size", "max_faces", "det_threshold", "exclude", _FACE_REF)
_PASTE = ("blend", "keep_regions", "occlusion")
_FILM = ("color", "grain", "grain_seed", "dedup")


def _detect_settings(model: FaceRestorerModel, settings: dict, face_ref) -> tuple[RestoreSettings, list | None]:
    s = _settings(model, settings)
    refs = _references(face_ref)
    if s.exclude and not refs and not s.face_ref:
        raise ValueError("exclude needs face references (connect face_ref images)")
    return s, refs


class VideofixLoadModel(_Node):
    """Load a face restorer (CodeFormer / VQFR) from ``models/facerestore_models``."""

    DESCRIPTION = __doc__
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        choices = restorer_choices()
        return {
            "required": {
                "model_name": (choices, {"default": choices[0] if choices else "codeformer.pth"}),
                "architecture": (ARCHITECTURES, {"default": "auto", "tooltip": "the restorer's network; auto: "
                                                 "from the file name"}),
                "device": (DEVICES, {"default": "auto", "tooltip": "auto: ComfyUI's device"}),
                "dtype": widget("dtype"),
                "parsing": widget("parsing"),
            }
        }

    def load(self, model_name, architecture="auto", device="auto", dtype="fp32", parsing=True):
        return (load_model(model_name, architecture, device, dtype, parsing),)


class VideofixRestoreFaces(_Node):
    """Restore the faces of a batch of video frames, temporally stable along each face track."""

    DESCRIPTION = __doc__
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "restore"
    REQUIRED = (("images", ("IMAGE", {"tooltip": "consecutive frames of a video"})), ("model", (MODEL_TYPE,)),
                "fidelity", "temporal_radius", "detector")
    OPTIONAL = ("batch_size", "landmark_sigma", *_FILM, *_SELECT, *_PASTE)
    GROUPS = (schema.DetectionSettings, schema.TemporalSettings, schema.PasteSettings, schema.FilmSettings)

    def restore(self, *args, **kwargs):
        own, values = self._split(self._bind(args, kwargs), ("images", "model", "face_ref"))
        return (self.run(own["images"], own["model"], values, own.get("face_ref")),)

    @staticmethod
    def run(images, model: FaceRestorerModel, values: dict, face_ref=None):
        detector = values.get("detector", "auto")
        check_detector(detector)
        settings, refs = _detect_settings(model, values, face_ref)
        stages = model.stages_with(detector, settings.det_threshold)
        progress = _Progress(2 * int(images.shape[0]))
        return restore_frames(images, stages, settings, progress=progress, reference_images=refs)


class VideofixDetectAndTrack(_Node):
    """Find the faces of a batch of video frames and link them into smoothed tracks."""

    DESCRIPTION = __doc__
    RETURN_TYPES = (TRACKS_TYPE, "INT")
    RETURN_NAMES = ("tracks", "track_count")
    FUNCTION = "detect"
    REQUIRED = (("images", ("IMAGE",)), ("model", (MODEL_TYPE,)), "detector")
    OPTIONAL = ("landmark_sigma", "max_gap", *_SELECT)
    GROUPS = (schema.DetectionSettings,)

    def detect(self, *args, **kwargs):
        own, values = self._split(self._bind(args, kwargs), ("images", "model", "face_ref"))
        model, detector = own["model"], values.get("detector", "auto")
        check_detector(detector)
        settings, refs = _detect_settings(model, values, own.get("face_ref"))
        analysis = detect_and_track(own["images"], model.detector(detector, settings.det_threshold),
                                    settings=settings, progress=_Progress(int(own["images"].shape[0])),
                                    reference_images=refs)
        return (analysis, len(analysis.tracks))


class VideofixRestoreTracks(_Node):
    """Align and restore every tracked face (temporal smoothing along each track); no pasting.

    ``face_crops`` is every restored aligned crop as an IMAGE batch, ordered by track then
    frame (one black crop when no face was found), for previews.
    """

    DESCRIPTION = __doc__
    RETURN_TYPES = (FACES_TYPE, "IMAGE")
    RETURN_NAMES = ("faces", "face_crops")
    FUNCTION = "restore"
    REQUIRED = (("images", ("IMAGE",)), ("model", (MODEL_TYPE,)), ("tracks", (TRACKS_TYPE,)), "fidelity",
                "temporal_radius")
    OPTIONAL = ("batch_size",)

    def restore(self, *args, **kwargs):
        import torch

        own, values = self._split(self._bind(args, kwargs), ("images", "model", "tracks"))
        images, model = own["images"], own["model"]
        settings = _settings(model, values)
        faces = restore_tracks(images, own["tracks"], model.stages, settings, progress=_Progress(int(images.shape[0])))
        crops = faces.all_crops()
        if len(crops) == 0:
            crops = torch.zeros((1, faces.size, faces.size, 3), dtype=torch.float32)
        else:
            crops = torch.from_numpy(crops).float() / 255.0
        return (faces, crops)


class VideofixPasteBack(_Node):
    """Blend restored faces back into their frames (pixels outside the faces untouched)."""

    DESCRIPTION = __doc__
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "paste"
    REQUIRED = (("images", ("IMAGE",)), ("tracks", (TRACKS_TYPE,)), ("faces", (FACES_TYPE,)))
    OPTIONAL = (("model", (MODEL_TYPE, {"tooltip": "gives the face-parsing mask when it has one"})), *_PASTE)
    GROUPS = (schema.PasteSettings,)

    def paste(self, *args, **kwargs):
        own, values = self._split(self._bind(args, kwargs), ("images", "tracks", "faces", "model"))
        model, images = own.get("model"), own["images"]
        settings = _settings(model, values) if model is not None else schema.settings_from(values)
        parser = model.stages.parser if model is not None else None
        return (paste_back(images, own["tracks"], own["faces"], parser=parser, progress=_Progress(int(images.shape[0])),
                           paste_options=settings.paste_options()),)


NODE_CLASS_MAPPINGS: dict[str, type] = {
    "VideofixLoadModel": VideofixLoadModel,
    "VideofixRestoreFaces": VideofixRestoreFaces,
    "VideofixDetectAndTrack": VideofixDetectAndTrack,
    "VideofixRestoreTracks": VideofixRestoreTracks,
    "VideofixPasteBack": VideofixPasteBack,
}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {
    "VideofixLoadModel": "Load Face Restorer (videofix)",
    "VideofixRestoreFaces": "Restore Faces in Video (videofix)",
    "VideofixDetectAndTrack": "Detect and Track Faces (videofix)",
    "VideofixRestoreTracks": "Restore Face Tracks (videofix)",
    "VideofixPasteBack": "Paste Back Faces (videofix)",
}


# ----------------------------------------------------------------------------- VIDEO type


def _video_api():
    """(VideoFromComponents, VideoComponents) from the host's comfy_api, or None."""
    try:
        from comfy_api.input_impl import VideoFromComponents
        from comfy_api.util import VideoComponents
    except ImportError:
        try:
            from comfy_api.latest import InputImpl, Types

            VideoFromComponents, VideoComponents = InputImpl.VideoFromComponents, Types.VideoComponents
        except (ImportError, AttributeError):
            return None
    return VideoFromComponents, VideoComponents


class VideofixRestoreFacesVideo(_Node):
    """Restore the faces of a VIDEO (ComfyUI's video type); audio and frame rate are kept."""

    DESCRIPTION = __doc__
    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("video",)
    FUNCTION = "restore"
    REQUIRED = (("video", ("VIDEO",)), ("model", (MODEL_TYPE,)), "fidelity", "temporal_radius", "detector")
    OPTIONAL = VideofixRestoreFaces.OPTIONAL
    GROUPS = VideofixRestoreFaces.GROUPS

    def restore(self, *args, **kwargs):
        VideoFromComponents, VideoComponents = _video_api()
        own, values = self._split(self._bind(args, kwargs), ("video", "model", "face_ref"))
        components = own["video"].get_components()
        images = VideofixRestoreFaces.run(components.images, own["model"], values, own.get("face_ref"))
        return (VideoFromComponents(VideoComponents(images=images, audio=components.audio,
                                                    frame_rate=components.frame_rate)),)


if _video_api() is not None:
    NODE_CLASS_MAPPINGS["VideofixRestoreFacesVideo"] = VideofixRestoreFacesVideo
    NODE_DISPLAY_NAME_MAPPINGS["VideofixRestoreFacesVideo"] = "Restore Faces in VIDEO (videofix)"
