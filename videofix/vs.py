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
import dataclasses
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from fractions import Fraction

import numpy as np
import vapoursynth as vs

from videofix import settings as schema
from videofix.errors import VideofixError
from videofix.film.plan import FilmPlan
from videofix.io.picture import Picture
from videofix.io.reader import DecodedFrame
from videofix.pipeline.analysis import FaceAnalysis, analyze_frames, make_shot_detector
from videofix.pipeline.factory import LoadedStages, load_stages, make_engine
from videofix.pipeline.restoration import FaceRestorationPass
from videofix.settings import RestoreSettings

__all__ = ["restore_faces", "block_length", "DETECTORS"]

_NAME = "restore_faces"
FRONT_END = "vapoursynth"
DETECTORS = schema.DETECTORS
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


def restore_faces(clip: vs.VideoNode, *, analysis: FaceAnalysis | str | os.PathLike | None = None,
                  **settings) -> vs.VideoNode:
    # The signature (every setting of `videofix.settings` a filter can take, with its
    # default) and the docstring are generated from the schema below the function.
    _check_clip(clip)
    unknown = sorted(set(settings) - set(_SETTING_NAMES))
    if unknown:
        raise _error(f"unknown argument {unknown[0]!r} (see help(restore_faces))")
    try:
        values = schema.settings_from(settings)
    except VideofixError as exc:
        raise _error(exc.named()) from None
    tracks = _load_analysis(analysis, clip) if analysis is not None else None
    try:
        stages = load_stages(values, need_detector=tracks is None, quiet=True)
        from videofix.pipeline.selection import FaceChooser

        chooser = FaceChooser.from_settings(values, stages.detector) if tracks is None else None
    except VideofixError as exc:
        raise _error(exc.named()) from None
    restorer = _ClipRestorer(clip, stages, values, tracks, chooser)
    return clip.std.ModifyFrame(clips=[clip], selector=restorer.frame)


_SETTING_NAMES = tuple(name for name, _, _ in schema.options(FRONT_END))

_DOC_HEAD = """Restore the faces of an RGB clip, temporally stable along each face track.

    Args:
        clip: RGB24, RGBS or RGBH clip (float formats in 0..1), constant format and size.
        analysis: tracks found earlier on this very clip (`FaceAnalysis` or the path of its
            JSON, `FaceAnalysis.save`); skips pass 1.
"""

_DOC_TAIL = """
    (The selection rules and masks: `videofix.faces.selection`, `videofix.faces.regions`;
    every setting is documented in `videofix.settings`, the same as `videofix restore`'s.)

    Returns:
        A clip of the same format, size, length and frame rate, frame properties kept.

    Raises:
        vs.Error: ``restore_faces: <what is wrong>`` for any bad argument, missing model
            file or unusable device, before any frame is processed.
    """


def _document() -> None:
    import inspect
    import textwrap

    params = [inspect.Parameter("clip", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation="vs.VideoNode"),
              inspect.Parameter("analysis", inspect.Parameter.KEYWORD_ONLY, default=None)]
    lines = []
    for name, opt, default in schema.options(FRONT_END):
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default))
        said = schema.default_text(opt, default) if default is None else repr(default)
        kind = "True or False" if opt.kind == "bool" else schema.values_text(opt)
        text = f"{name}: {opt.help} ({kind}; default {said})"
        lines.extend(textwrap.wrap(text, 96, initial_indent=" " * 8, subsequent_indent=" " * 12))
    restore_faces.__signature__ = inspect.Signature(params, return_annotation="vs.VideoNode")
    restore_faces.__doc__ = _DOC_HEAD + "\n".join(lines) + "\n" + _DOC_TAIL


_document()


# ----------------------------------------------------------------------------- validation


def _check_clip(clip) -> None:
    """The checks of the clip itself (the settings' checks are the schema's)."""
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
                                      frame_size=(self.clip.width, self.clip.height), observer=survey,
                                      shots=make_shot_detector(self.stages.devices.shots),
                                      tracking=dataclasses.replace(
                                          s, min_detections=min(s.min_detections, self.clip.num_frames)))
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
