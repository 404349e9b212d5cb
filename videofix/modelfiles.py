"""Model-file registry: where each file comes from, where we look for it, how we load it.

The registry is data (``videofix/data/models.json``). ``resolve(name)`` finds a file in a
fixed order and downloads it only as the last resort:

1. an explicit path (``--weights``);
2. a models folder: ``models_dir`` (``--models-dir``) or ``$VIDEOFIX_MODELS``
   (``DIR/<file>`` or ``DIR/<comfy folder>/<file>``);
3. ComfyUI's folders: inside ComfyUI, every path ComfyUI has for the file's folder
   (``folder_paths``, so extra_model_paths.yaml entries count; see `use_comfy_folders`);
   else, when a ComfyUI root is known (``comfy_root`` or ``$COMFYUI_PATH``),
   ``ROOT/models/<comfy folder>/<file>`` (``facerestore_models``, ``facedetection``,
   ``insightface/models``, ...);
4. the user cache: ``$VIDEOFIX_CACHE`` or ``~/.cache/videofix``;
5. a download into the cache, or inside ComfyUI into ComfyUI's own folder for the file
   (urllib; temporary file then atomic rename; progress on stderr; size check). Set
   ``VIDEOFIX_OFFLINE=1`` to forbid downloads, or ``VIDEOFIX_MODEL_BASE_URL=URL`` to
   download ``URL/<file>`` instead of the official addresses (a mirror on a closed network;
   also what the tests' local server uses). The first download of a file whose licence
   allows non-commercial use only prints one line naming that licence.

Licences: every entry carries its licence (``videofix models list`` shows them; NOTICE
credits the methods). ``BUNDLED`` lists the model files that ship inside packages videofix
depends on (TransNetV2's weights, dlib's models); `files_used` maps the stages a run used
to the files they read, for the run report.

No upstream publishes hashes, so the SHA-256 of the first good download is recorded in
``<cache>/hashes.json`` and a cached file is checked against it from then on.

``load_state_dict(path)`` reads checkpoints with ``torch.load(weights_only=True)`` only and
turns every failure (missing, empty, truncated, not a checkpoint, unexpected content) into
one ``ModelFileError`` line that names the file. ``check_state_dict`` compares a state
dict with the layout a network expects and names missing / unexpected keys and shape
mismatches.

This module imports nothing else from videofix except the error classes and `videofix.atomic`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from videofix import atomic
from videofix.errors import ModelFileError, UsageError

ENV_MODELS = "VIDEOFIX_MODELS"
ENV_CACHE = "VIDEOFIX_CACHE"
ENV_OFFLINE = "VIDEOFIX_OFFLINE"
ENV_BASE_URL = "VIDEOFIX_MODEL_BASE_URL"
ENV_COMFYUI = "COMFYUI_PATH"

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelFile:
    """One model file we may need.

    Attributes:
        name: registry key (``codeformer``, ``retinaface_resnet50``, ...).
        filename: the file name everywhere (cache, models folder, ComfyUI folder).
        urls: official download addresses, tried in order.
        size: size in bytes, or None when unknown.
        sha256: known hash, or None (then recorded after the first good download).
        kind: ``restorer`` | ``detector`` | ``parsing`` | ``upscaler`` | ``landmarks``.
        description: what it is.
        licence: the licence of the weights.
        comfy_folder: the ComfyUI ``models/`` sub-folder face-restoration packs use (its
            first part is the ``folder_paths`` name: ``insightface/models`` is
            ``models/insightface/models``).
        commercial_use: False when the licence allows non-commercial use only.
        licence_url: where the licence text is.
        used_by: the stages that read the file, as ``stage:name`` (``restorer:codeformer``,
            ``detector:scrfd``, ...); see `files_used`.
    """

    name: str
    filename: str
    urls: tuple[str, ...]
    size: int | None
    sha256: str | None
    kind: str
    description: str
    licence: str
    comfy_folder: str
    commercial_use: bool = True
    licence_url: str = ""
    used_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class BundledFile:
    """A model file shipped inside a package videofix depends on (never downloaded by us).

    Attributes:
        name: key in ``BUNDLED``.
        filename: the file's name (or what it is, for weights compiled into a library).
        package: the distribution that ships it (``face-recognition-models``).
        module: its import name, to find the file without importing it.
        path: the file relative to the module's folder; None when compiled in.
        kind, description, licence, commercial_use, licence_url, used_by: as in `ModelFile`.
    """

    name: str
    filename: str
    package: str
    module: str
    path: str | None
    kind: str
    description: str
    licence: str
    commercial_use: bool
    licence_url: str
    used_by: tuple[str, ...]

    def locate(self) -> Path | None:
        """The installed file (the module's folder when compiled in), or None when the
        package is not installed."""
        from importlib.util import find_spec

        try:
            spec = find_spec(self.module)
        except (ImportError, ValueError):
            return None
        if spec is None:
            return None
        if spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations)))
        elif spec.origin:
            folder = Path(spec.origin).parent
        else:
            return None
        if self.path is None:
            return folder
        p = folder / self.path
        return p if p.exists() else None


def _registry_data() -> dict[str, Any]:
    return json.loads(resources.files("videofix").joinpath("data/models.json").read_text(encoding="utf-8"))


def _load_registry() -> dict[str, ModelFile]:
    return {
        e["name"]: ModelFile(
            name=e["name"],
            filename=e["filename"],
            urls=tuple(e["urls"]),
            size=e.get("size"),
            sha256=e.get("sha256"),
            kind=e["kind"],
            description=e["description"],
            licence=e["licence"],
            comfy_folder=e["comfy_folder"],
            commercial_use=bool(e["commercial_use"]),
            licence_url=e.get("licence_url", ""),
            used_by=tuple(e.get("used_by", ())),
        )
        for e in _registry_data()["models"]
    }


def _load_bundled() -> dict[str, BundledFile]:
    return {
        e["name"]: BundledFile(
            name=e["name"], filename=e["filename"], package=e["package"], module=e["module"], path=e.get("path"),
            kind=e["kind"], description=e["description"], licence=e["licence"],
            commercial_use=bool(e["commercial_use"]), licence_url=e.get("licence_url", ""),
            used_by=tuple(e.get("used_by", ())),
        )
        for e in _registry_data().get("bundled", [])
    }


REGISTRY: dict[str, ModelFile] = _load_registry()
BUNDLED: dict[str, BundledFile] = _load_bundled()


def get(name: str) -> ModelFile:
    """The registry entry ``name``; ``UsageError`` listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown model {name!r}; known: {', '.join(REGISTRY)}") from None


def licence_note(entry: ModelFile | BundledFile) -> str:
    """One line naming a file's licence and where to read it."""
    where = f"; see {entry.licence_url}" if entry.licence_url else ""
    return f"{entry.filename}: {entry.licence}{where}"


def files_used(uses: Iterable[str]) -> list[ModelFile | BundledFile]:
    """The registry and bundled files read by the stages `uses` (``stage:name`` strings such
    as ``restorer:codeformer``, ``detector:dlib``), in registry order, each once."""
    wanted = set(uses)
    return [e for e in (*REGISTRY.values(), *BUNDLED.values()) if wanted.intersection(e.used_by)]


# ------------------------------------------------------------------------ places

# Inside ComfyUI (set by the node pack): folder name -> that folder's paths in ComfyUI's order
# (`folder_paths.get_folder_paths`), and ComfyUI's own models folder. Process-wide on purpose:
# ComfyUI's folder registry is, and every stage (restorer, detectors, parser, identity)
# resolves its files through here without each front-end passing folders down.
_comfy_folders: tuple[Callable[[str], list[str]], Path] | None = None


def use_comfy_folders(lookup: Callable[[str], list[str]] | None, models_dir: str | os.PathLike | None = None) -> None:
    """Look files up in ComfyUI's model folders and download missing ones into ComfyUI's own.

    `lookup(name)` returns every path ComfyUI has for folder `name` (``facerestore_models``,
    ``facedetection``, ``insightface``, ...: ComfyUI's own and those of
    extra_model_paths.yaml); it may raise for a folder ComfyUI does not know. `models_dir`
    is ComfyUI's models folder: a missing file is downloaded into
    ``models_dir/<comfy folder>/``. ``lookup=None`` turns this off again.
    """
    global _comfy_folders
    _comfy_folders = None if lookup is None else (lookup, Path(models_dir) if models_dir is not None else Path("models"))


def comfy_folder_paths(entry: ModelFile) -> list[Path]:
    """Where ComfyUI keeps `entry` (``<path>/<sub-folder>`` for each path of its folder), in
    ComfyUI's order; empty outside ComfyUI."""
    if _comfy_folders is None:
        return []
    folder, _, sub = entry.comfy_folder.partition("/")
    try:
        roots = list(_comfy_folders[0](folder) or [])
    except Exception:  # noqa: BLE001 - a folder ComfyUI does not know: none
        return []
    return [Path(r) / sub if sub else Path(r) for r in roots]


def cache_dir() -> Path:
    """The user cache folder: ``$VIDEOFIX_CACHE`` or ``~/.cache/videofix`` (not created here)."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "videofix"


def offline() -> bool:
    """True when ``VIDEOFIX_OFFLINE`` is set to something other than 0 / false / empty."""
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in ("", "0", "false", "no")


def candidate_paths(
    entry: ModelFile, *, models_dir: str | os.PathLike | None = None, comfy_root: str | os.PathLike | None = None
) -> list[tuple[str, Path]]:
    """Where ``resolve`` looks, in order, as ``(label, path)`` pairs (the download target last)."""
    places: list[tuple[str, Path]] = []
    folder = models_dir if models_dir is not None else os.environ.get(ENV_MODELS) or None
    if folder is not None:
        label = "--models-dir" if models_dir is not None else f"${ENV_MODELS}"
        root = Path(folder).expanduser()
        places.append((label, root / entry.filename))
        places.append((label, root / entry.comfy_folder / entry.filename))
    for d in comfy_folder_paths(entry):
        places.append(("ComfyUI", d / entry.filename))
    comfy = comfy_root if comfy_root is not None else os.environ.get(ENV_COMFYUI) or None
    if comfy is not None:
        places.append(("ComfyUI", Path(comfy).expanduser() / "models" / entry.comfy_folder / entry.filename))
    places.append(("cache", cache_dir() / entry.filename))
    return places


def download_target(entry: ModelFile) -> Path:
    """Where a missing `entry` is downloaded: inside ComfyUI, ComfyUI's own folder for it
    (``models/<comfy folder>/``, not a private cache); else the user cache."""
    if _comfy_folders is not None:
        return _comfy_folders[1] / entry.comfy_folder / entry.filename
    return cache_dir() / entry.filename


def resolve(
    name: str,
    *,
    path: str | os.PathLike | None = None,
    models_dir: str | os.PathLike | None = None,
    comfy_root: str | os.PathLike | None = None,
    download: bool = True,
    quiet: bool = False,
) -> Path:
    """The local path of model file ``name``, downloading it into the cache if needed.

    Args:
        name: registry key (see ``REGISTRY``).
        path: explicit file; used as is (must exist), no fallback.
        models_dir: a folder holding model files (else ``$VIDEOFIX_MODELS``).
        comfy_root: a ComfyUI installation (else ``$COMFYUI_PATH``).
        download: allow a download when no copy is found (also off with ``VIDEOFIX_OFFLINE=1``).
        quiet: no progress on stderr.

    Raises:
        ModelFileError: not found and not downloadable; the message names the file, its
            URL and where to put it.
    """
    entry = get(name)
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise ModelFileError(f"{entry.name} weights not found: {p} (no such file)")
        return p
    places = candidate_paths(entry, models_dir=models_dir, comfy_root=comfy_root)
    for label, p in places:
        if p.is_file():
            if label == "cache":
                _verify_cached(entry, p)
            return p
    target = download_target(entry)
    looked = ", ".join(str(p) for _, p in places)
    if not download or offline():
        why = f"downloads are off ({ENV_OFFLINE}=1)" if offline() else "downloading was not allowed"
        raise ModelFileError(
            f"model file {entry.filename} ({entry.name}) not found (looked in: {looked}); {why}. "
            f"Download {entry.urls[0]} and put it in {target.parent} (or pass its folder with "
            f"--models-dir / ${ENV_MODELS}, or the file with --weights)"
        )
    return _download(entry, target, quiet=quiet)


# --------------------------------------------------------------------- download


def _hashes_path() -> Path:
    return cache_dir() / "hashes.json"


def _read_hashes() -> dict[str, Any]:
    try:
        return json.loads(_hashes_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_hashes(hashes: Mapping[str, Any]) -> None:
    target = _hashes_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(target, json.dumps(hashes, indent=1, sort_keys=True))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_cached(entry: ModelFile, path: Path) -> None:
    """Check a cached file against the known or recorded SHA-256.

    The recorded size and mtime let an unchanged file skip re-hashing.
    """
    record = _read_hashes().get(entry.filename)
    expected = entry.sha256 or (record or {}).get("sha256")
    if not expected:
        return
    st = path.stat()
    if record and record.get("sha256") == expected and record.get("size") == st.st_size and record.get(
        "mtime_ns"
    ) == st.st_mtime_ns:
        return
    actual = _sha256(path)
    if actual != expected:
        raise ModelFileError(
            f"{path}: SHA-256 {actual[:16]}... does not match the recorded {expected[:16]}... "
            f"(corrupted or replaced); delete it to download {entry.urls[0]} again"
        )
    hashes = _read_hashes()
    hashes[entry.filename] = {"sha256": actual, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    _write_hashes(hashes)


def download_urls(entry: ModelFile) -> tuple[str, ...]:
    """Where ``entry`` is downloaded from: ``$VIDEOFIX_MODEL_BASE_URL/<file>`` when that is
    set (a mirror), else the official addresses."""
    base = os.environ.get(ENV_BASE_URL, "").strip()
    if base:
        return (f"{base.rstrip('/')}/{entry.filename}",)
    return entry.urls


def _download(entry: ModelFile, target: Path, *, quiet: bool) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in download_urls(entry):
        try:
            _download_one(entry, url, target, quiet=quiet)
            if not entry.commercial_use:
                # said even when quiet: the user must know before using the file
                print(f"videofix: {licence_note(entry)}", file=sys.stderr, flush=True)
            return target
        except ModelFileError as exc:
            errors.append(str(exc))
    raise ModelFileError(
        f"could not download {entry.filename} ({'; '.join(errors)}); download it yourself from "
        f"{download_urls(entry)[0]} and put it in {target.parent}"
    )


def _download_one(entry: ModelFile, url: str, target: Path, *, quiet: bool) -> None:
    tmp = atomic.AtomicFile(target, "part")
    try:
        digest = hashlib.sha256()
        done = 0
        request = urllib.request.Request(url, headers={"User-Agent": "videofix"})
        with open(tmp.path, "wb") as out, urllib.request.urlopen(request, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or entry.size
            started = last = time.monotonic()
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                now = time.monotonic()
                if not quiet and (now - last > 0.5):
                    last = now
                    _progress(entry.filename, done, total, now - started)
        if not quiet:
            _progress(entry.filename, done, total, time.monotonic() - started, end="\n")
        expected_size = entry.size or total
        if expected_size and done != expected_size:
            raise ModelFileError(f"{url}: got {done} bytes, expected {expected_size}")
        actual = digest.hexdigest()
        expected = entry.sha256 or (_read_hashes().get(entry.filename) or {}).get("sha256")
        if expected and actual != expected:
            raise ModelFileError(f"{url}: SHA-256 {actual[:16]}... differs from {expected[:16]}...")
        tmp.commit()
        st = target.stat()
        hashes = _read_hashes()
        hashes[entry.filename] = {"sha256": actual, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "url": url}
        _write_hashes(hashes)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ModelFileError(f"{url}: {getattr(exc, 'reason', None) or exc}") from None
    finally:
        tmp.discard()


def _progress(filename: str, done: int, total: int | None, elapsed: float, end: str = "\r") -> None:
    mib = done / 2**20
    rate = mib / elapsed if elapsed > 0 else 0.0
    if total:
        text = f"videofix: downloading {filename}: {mib:.1f}/{total / 2**20:.1f} MiB ({100 * done / total:.0f}%) {rate:.1f} MiB/s"
    else:
        text = f"videofix: downloading {filename}: {mib:.1f} MiB {rate:.1f} MiB/s"
    print(text, end=end, file=sys.stderr, flush=True)


def extract_archive(path: str | os.PathLike) -> Path:
    """Unpack a zip model pack (``buffalo_l.zip``) next to it, once; returns the folder.

    The folder is ``<zip without .zip>/`` and holds the pack's files directly.
    """
    path = Path(path)
    folder = path.with_suffix("")
    marker = folder / ".complete"
    if marker.is_file():
        return folder
    try:
        with zipfile.ZipFile(path) as archive:
            tmp = atomic.temp_path(folder, "unpack")
            tmp.mkdir()
            archive.extractall(tmp)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelFileError(f"{path}: not a readable zip archive ({exc})") from None
    # a pack may hold its files at the top or inside one folder named like the pack
    inner = tmp / folder.name
    source = inner if inner.is_dir() and len(list(tmp.iterdir())) == 1 else tmp
    (source / ".complete").touch()
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(source, folder)
    if source != tmp:
        tmp.rmdir()
    return folder


# --------------------------------------------------------------------- loading


def load_state_dict(path: str | os.PathLike) -> dict[str, Any]:
    """Read a PyTorch checkpoint safely and return its state dict (CPU tensors).

    Uses ``torch.load(weights_only=True)`` only, then unwraps ``params_ema`` (preferred, as
    the official scripts do), ``params`` or ``state_dict``, and strips a DataParallel
    ``module.`` prefix.

    Raises:
        ModelFileError: missing, empty, truncated or non-checkpoint file, pickled objects
            other than tensors, or no tensor dictionary inside; the message names the file.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"{path}: empty file (an interrupted download?); delete it and fetch it again")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for broken files
        message = str(exc)
        text = message.splitlines()[0] if message else type(exc).__name__
        if "Unsupported global" in message or "GLOBAL" in message:
            why = "holds pickled objects other than tensors (refused: only weights are loaded)"
        elif zipfile.is_zipfile(path) or "central directory" in text or "PytorchStreamReader" in text:
            why = f"truncated or damaged PyTorch checkpoint ({size} bytes; {text[:120]})"
        else:
            with open(path, "rb") as f:
                head = f.read(16)
            why = f"not a PyTorch checkpoint (starts with {head!r}; {size} bytes)"
        raise ModelFileError(f"{path}: {why}") from None
    state = obj
    if isinstance(obj, Mapping):
        for key in ("params_ema", "params", "state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                state = obj[key]
                break
    if not isinstance(state, Mapping) or not state:
        raise ModelFileError(f"{path}: not a state dict (found {type(state).__name__})")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelFileError(f"{path}: not a state dict: {len(bad)} entries are not tensors (e.g. {bad[0]!r})")
    state = dict(state)
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def check_state_dict(
    state_dict: Mapping[str, Any], expected: Mapping[str, Any], *, what: str, source: str | os.PathLike | None = None
) -> None:
    """Raise one ``ModelFileError`` when ``state_dict`` does not have ``expected``'s layout.

    Args:
        state_dict: key -> tensor, as loaded.
        expected: key -> tensor (meta tensors are fine) or shape, as the network needs.
        what: the network's name for the message ("CodeFormer").
        source: the file, named at the start of the message when given.

    The message counts missing and unexpected keys (naming the first few) and the first
    shape mismatches.
    """

    def shape(v: Any) -> tuple[int, ...]:
        return tuple(int(d) for d in (v.shape if hasattr(v, "shape") else v))

    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} is {shape(state_dict[k])}, expected {shape(v)}"
        for k, v in expected.items()
        if k in state_dict and shape(state_dict[k]) != shape(v)
    ]
    if not (missing or unexpected or mismatched):
        return

    def few(items: list[str], n: int = 3) -> str:
        more = f", ... ({len(items) - n} more)" if len(items) > n else ""
        return ", ".join(items[:n]) + more

    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({few(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({few(unexpected)})")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatches ({few(mismatched, 2)})")
    prefix = f"{source}: " if source is not None else ""
    raise ModelFileError(f"{prefix}not a {what} checkpoint: {'; '.join(parts)}")
