"""Model-file look-up for the face stage, through ``videofix.modelfiles`` (DESIGN.md).

While ``videofix.modelfiles`` is missing (it is written in parallel) a minimal stand-in
resolves an explicit path, then ``models_dir`` / ``$VIDEOFIX_MODELS``, by the official file
name, and never downloads.
"""

from __future__ import annotations

import os
from pathlib import Path

from videofix.errors import ModelFileError

# Names used in the face stage -> candidate registry names (the registry's own first; the
# official file stems as aliases) and the official file (or folder) name for the stand-in.
ALIASES = {
    "retinaface_resnet50": ("retinaface_resnet50", "detection_Resnet50_Final"),
    "retinaface_mobile0.25": ("retinaface_mobile0.25", "detection_mobilenet0.25_Final"),
    "parsenet": ("parsenet", "parsing_parsenet"),
    "buffalo_l": ("buffalo_l",),
}
ALIASES.update({alias: names for names in list(ALIASES.values()) for alias in names})
OFFICIAL_NAMES = {
    "retinaface_resnet50": "detection_Resnet50_Final.pth",
    "retinaface_mobile0.25": "detection_mobilenet0.25_Final.pth",
    "parsenet": "parsing_parsenet.pth",
    "buffalo_l": "buffalo_l",
}
PACK_MARKER = "det_10g.onnx"  # a buffalo_l folder is recognised by its detector


def _modelfiles():
    try:
        from videofix import modelfiles
    except ImportError:
        return None
    if not hasattr(modelfiles, "resolve"):
        return None
    return modelfiles


def _pack_folder(path: Path) -> Path | None:
    for p in (path, path / "models" / "buffalo_l"):  # also insightface's own root layout
        if p.is_dir() and (p / PACK_MARKER).is_file():
            return p
    return None


def resolve_model(name: str, *, path=None, models_dir=None, download: bool = True) -> Path:
    """Path of model `name` (a file; for ``buffalo_l`` the unpacked folder). Raises
    ``ModelFileError`` when it cannot be found (or downloaded, when `download`)."""
    names = ALIASES.get(name, (name,))
    mf = _modelfiles()
    if names[0] == "buffalo_l":
        # An unpacked folder is accepted as is: explicit, models_dir, $VIDEOFIX_MODELS, and
        # wherever the registry would look for the zip (ComfyUI's models/insightface/models/);
        # not the cache, whose zip is hash-checked below.
        unpacked = [p.with_suffix("") for label, p in mf.candidate_paths(mf.get("buffalo_l"), models_dir=models_dir)
                    if label != "cache"] if mf is not None and "buffalo_l" in getattr(mf, "REGISTRY", {}) else []
        for d in (path, Path(models_dir) / "buffalo_l" if models_dir else None,
                  Path(os.environ["VIDEOFIX_MODELS"]) / "buffalo_l" if os.environ.get("VIDEOFIX_MODELS") else None,
                  *unpacked):
            if d is not None and _pack_folder(Path(d)) is not None:
                return _pack_folder(Path(d))
        if path is not None and not str(path).endswith(".zip"):
            raise ModelFileError(f"buffalo_l: {path} is not a folder holding {PACK_MARKER}")
    if mf is not None:
        registry = getattr(mf, "REGISTRY", {})
        key = next((n for n in names if n in registry), names[0])
        p = Path(mf.resolve(key, path=path, models_dir=models_dir, download=download, quiet=True))
        if names[0] == "buffalo_l" and p.suffix == ".zip":
            folder = _pack_folder(Path(mf.extract_archive(p)))
            if folder is None:
                raise ModelFileError(f"{p.name}: the pack holds no {PACK_MARKER}")
            return folder
        return p
    if path is not None:
        p = Path(path)
        if p.exists():
            return p
        raise ModelFileError(f"{name}: {p} does not exist")
    filename = OFFICIAL_NAMES.get(names[0], name)
    dirs = [d for d in (models_dir, os.environ.get("VIDEOFIX_MODELS")) if d]
    for d in dirs:
        p = Path(d) / filename
        if p.exists():
            return p
    where = ", ".join(str(d) for d in dirs) or "a models folder (--models-dir or $VIDEOFIX_MODELS)"
    raise ModelFileError(f"model file {filename} not found: put it in {where}")


def load_state_dict(path) -> dict:
    """A checkpoint's tensors, loaded safely (weights only), ``module.`` prefixes removed."""
    mf = _modelfiles()
    if mf is not None and hasattr(mf, "load_state_dict"):
        sd = mf.load_state_dict(path)
    else:
        import torch

        try:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated, not a checkpoint, pickled code
            raise ModelFileError(f"{Path(path).name}: not a readable checkpoint ({type(exc).__name__})") from None
        for key in ("params_ema", "params", "state_dict"):
            if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
        if not isinstance(sd, dict):
            raise ModelFileError(f"{Path(path).name}: not a state dict")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in sd.items()}
