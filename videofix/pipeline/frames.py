"""Face restoration over in-memory RGB frame sequences (the front-ends' library API).

The CLI reads files; the ComfyUI nodes and the VapourSynth filter hold frames in memory
(an IMAGE batch, frames asked of a clip). They all run the same stages: this module only
wraps RGB arrays as `DecodedFrame`s holding rgb24 `Picture`s and feeds them to the pass-1
analysis (`analyze_frames`) and to the pass-2 `FaceRestorationPass`.

One call does everything::

    out = restore_frames(frames, stages, settings)          # (N, H, W, 3), like `frames`

or, step by step (what the ComfyUI graph nodes expose)::

    analysis = detect_and_track(frames, stages.detector)    # FaceAnalysis (tracks)
    restored = restore_tracks(frames, analysis, stages, settings)   # RestoredFaces (crops)
    out = paste_back(frames, analysis, restored, parser=stages.parser)

and the two give the same pixels: the split steps are the two halves of the same
`FaceRestorationPass` (`paste=False`, then its `FacePaster`), not a second implementation.

Old-film features apply as in `videofix restore` (docs/FILM.md, `videofix.film.plan.FilmPlan`
built by `FilmPlan.for_frames`): pass 1 scores each frame's chroma and finds repeated
frames; faces of monochrome / tinted shots are pasted luma-only (`settings.color`: auto,
color, luma; on RGB frames a grey frame stays grey, R = G = B), seeded grain matching the
frame is added to the faces (`grain`, `grain_seed`), and repeated frames (`dedup`) are
restored once and their faces copied. Frames are never deinterlaced (an IMAGE batch holds no
field information), and an upscaled background is resized bilinearly. Tracks found without
the film survey (`FaceAnalysis` saved earlier) get the colour check over the frames, no
repeats.

Frames: (N, H, W, 3) **RGB**, a numpy array or a torch tensor (CPU or not), uint8 (0..255)
or float (0..1, float16/32/64), or a sequence of (H, W, 3) arrays of one size. The network
works on uint8 crops (as the official pipeline reads uint8 frames), so float frames are
rounded to uint8 for the stages; the result is written back only where the restoration
changed a pixel: every pixel outside the faces' paste masks keeps its exact input value,
float or not.

Memory: `restore_frames` streams (the pass holds about R + batch frames besides the input
and the output); `restore_tracks` keeps every restored crop (S x S x 3 uint8 per face per
frame: 768 KiB at S = 512) until `paste_back`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from videofix.faces import warp_face
from videofix.faces.regions import PasteOptions
from videofix.film.paste import FilmPaster
from videofix.film.plan import FilmPlan
from videofix.io.picture import Picture
from videofix.io.reader import DecodedFrame
from videofix.pipeline.analysis import DETECTION_SHORT_SIDE, FaceAnalysis, analyze_frames
from videofix.pipeline.factory import LoadedStages, make_engine
from videofix.pipeline.restoration import FacePaster, FaceRestorationPass, upscale_picture
from videofix.settings import DetectionSettings, RestoreSettings

__all__ = [
    "FrameBatch",
    "RestoredFaces",
    "detect_and_track",
    "paste_back",
    "restore_frames",
    "restore_tracks",
]

Progress = Callable[[int], None]
_TIME_BASE = Fraction(1, 1)  # in-memory frames have no timestamps: pts = index


# ----------------------------------------------------------------------------- frames in


@dataclass
class FrameBatch:
    """A batch of RGB frames seen as uint8 for the stages, remembering the caller's form.

    Attributes:
        rgb: uint8 (N, H, W, 3) **RGB**; the stages read it, never write it.
        source: the caller's float frames as a float numpy array (N, H, W, 3) in 0..1 (its own
            dtype), or None when the input was uint8.
        torch_like: the input tensor when the input was a torch tensor (its dtype and device
            are given back), else None.
    """

    rgb: np.ndarray
    source: np.ndarray | None = None
    torch_like: object | None = None

    @classmethod
    def wrap(cls, frames) -> "FrameBatch":
        """Read `frames` (see the module docstring); raises ValueError on anything else."""
        torch_like = None
        if hasattr(frames, "detach") and hasattr(frames, "cpu"):  # a torch tensor
            torch_like = frames
            arr = frames.detach().cpu()
            if str(arr.dtype) == "torch.bfloat16":  # numpy has no bfloat16
                arr = arr.float()
            arr = arr.numpy()
        elif isinstance(frames, np.ndarray):
            arr = frames
        elif isinstance(frames, Sequence) and len(frames) > 0:
            shapes = {np.shape(f) for f in frames}
            if len(shapes) != 1:
                raise ValueError(f"frames must all have one size, got shapes {sorted(shapes)}")
            arr = np.stack([np.asarray(f) for f in frames])
        else:
            raise ValueError(f"frames must be an (N, H, W, 3) RGB array or tensor, got {type(frames).__name__}")
        if arr.ndim == 3 and arr.shape[-1] == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3) RGB, got shape {tuple(arr.shape)}")
        if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
            raise ValueError(f"frames must hold at least one non-empty frame, got shape {tuple(arr.shape)}")
        if arr.dtype == np.uint8:
            return cls(np.ascontiguousarray(arr), None, torch_like)
        if not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"frames must be uint8 (0..255) or float (0..1), got {arr.dtype}")
        rgb = np.clip(np.rint(arr.astype(np.float32) * np.float32(255.0)), 0, 255).astype(np.uint8)
        return cls(rgb, arr, torch_like)

    def __len__(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.rgb.shape[2]), int(self.rgb.shape[1])

    def picture(self, index: int, *, copy: bool = False) -> Picture:
        """Frame `index` as an rgb24 `Picture` (a copy when it is going to be written)."""
        plane = self.rgb[index].copy() if copy else self.rgb[index]
        width, height = self.size
        return Picture((plane,), "rgb24", width, height)

    def decoded(self, index: int, *, copy: bool = False) -> DecodedFrame:
        """Frame `index` as the `DecodedFrame` the pipeline stages consume (pts = index)."""
        return DecodedFrame(index, index, _TIME_BASE, self.picture(index, copy=copy), index == 0)

    def decoded_frames(self, *, copy: bool = False) -> Iterator[DecodedFrame]:
        for i in range(len(self)):
            yield self.decoded(i, copy=copy)

    def give_back(self, restored_rgb: np.ndarray):
        """Return restored uint8 frames in the caller's form.

        uint8 input: the uint8 array. Float input: the input values, replaced by the restored
        value / 255 only where the restoration changed the uint8 pixel (so everything outside
        the faces is bit-identical to the input). A torch input gives a tensor of its dtype on
        its device. An upscaled result (a different size) is converted as a whole.
        """
        out = restored_rgb
        if self.source is not None:
            if restored_rgb.shape == self.rgb.shape:
                out = self.source.copy()
                changed = np.any(restored_rgb != self.rgb, axis=-1)
                out[changed] = (restored_rgb[changed].astype(np.float32) / np.float32(255.0)).astype(out.dtype)
            else:
                out = (restored_rgb.astype(np.float32) / np.float32(255.0)).astype(self.source.dtype)
        if self.torch_like is not None:
            import torch

            t = self.torch_like
            return torch.from_numpy(np.ascontiguousarray(out)).to(device=t.device, dtype=t.dtype)
        return out


# ----------------------------------------------------------------------------- pass 1


def detect_and_track(frames, detector, *, settings: RestoreSettings | None = None,
                     short_side: int = DETECTION_SHORT_SIDE, min_detections: int | None = None,
                     progress: Progress | None = None, reference_images: Sequence | None = None) -> FaceAnalysis:
    """Pass 1 over in-memory frames: detect faces, find cuts, link and smooth tracks.

    Also the film survey (per-shot colour, repeated frames), kept in
    ``analysis.extra["film"]`` as the file runner keeps it.

    Args:
        frames: (N, H, W, 3) RGB frames (see the module docstring).
        detector: a `videofix.faces.Detector` (``.name``, ``.detect(rgb uint8) -> list``).
        settings: `landmark_sigma`, `max_gap`, `color` and `dedup` are read from it
            (defaults when None), and the face selection options (`only_center_face`,
            `largest_face`, `min_face_size`, `max_faces`, `face_ref` + `exclude`:
            `videofix.pipeline.selection`); `det_threshold` is the detector's own
            (`create_detector(score_threshold=)`).
        short_side: detection image short side (the official 640).
        min_detections: tracks detected in fewer frames are dropped (flash false positives);
            default: the settings' `min_detections` (2), at most the batch's length (a still
            image keeps its faces).
        progress: called with 1 after each frame.
        reference_images: face photos (uint8 HxWx3 **RGB** arrays or float 0..1) used as
            `settings.face_ref` (restore only those people, or all but them with `exclude`).

    Returns:
        `FaceAnalysis` whose frame indices are positions in `frames` (0..N-1), holding the
        chosen tracks only (what was left out: ``extra["selection"]``).
    """
    from videofix.pipeline.selection import FaceChooser

    batch = frames if isinstance(frames, FrameBatch) else FrameBatch.wrap(frames)
    settings = settings or RestoreSettings()
    chooser = FaceChooser.from_settings(settings, detector, reference_images=reference_images)
    if min_detections is None:  # a track cannot be seen in more frames than the batch has
        min_detections = min(settings.min_detections, len(batch))
    tracking = dataclasses.replace(DetectionSettings.take(settings), min_detections=min_detections)
    plan = FilmPlan.for_frames(settings)
    survey = plan.survey()
    analysis = analyze_frames(plan.frames(batch.decoded_frames(), survey), detector, frame_size=batch.size,
                              tracking=tracking, short_side=short_side, progress=progress, observer=survey)
    plan.finalize(analysis, survey)
    if chooser.active:
        analysis = chooser.apply(analysis, lambda: ((i, batch.rgb[i]) for i in range(len(batch))))
    return analysis


# ----------------------------------------------------------------------------- pass 2


@dataclass
class RestoredFaces:
    """Restored aligned faces of a frame sequence, per track and frame.

    Attributes:
        size: crop side S (the restorer's input size).
        frame_count: frames of the sequence the faces belong to.
        frame_size: (width, height) of those frames.
        crops: {(track_id, frame_index): uint8 (S, S, 3) **RGB** restored aligned crop}.
        affines: {(track_id, frame_index): float64 (2, 3) frame -> crop affine}.
        codes: {(track_id, frame_index): int64 (T,) chosen code per latent token}.
        repeats: {frame_index: first frame of its run of repeated frames}: the frame was not
            restored again; its crops, codes and affines are the first frame's, and
            `paste_back` copies that frame's pasted faces into it.
        shot_modes: [(start frame, "luma"|"color"), ...]: the paste mode of each shot.
        grain: add grain matching the frame to the pasted faces; grain_seed: its seed.
    """

    size: int
    frame_count: int
    frame_size: tuple[int, int]
    crops: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    affines: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    codes: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    repeats: dict[int, int] = field(default_factory=dict)
    shot_modes: list[tuple[int, str]] = field(default_factory=list)
    grain: bool = False
    grain_seed: int = 0

    def __len__(self) -> int:
        return len(self.crops)

    def faces_in(self, frame_index: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """[(track_id, crop, affine), ...] of one frame, ordered by track id (paste order)."""
        keys = sorted(k for k in self.crops if k[1] == frame_index)
        return [(k[0], self.crops[k], self.affines[k]) for k in keys]

    def track_ids(self) -> list[int]:
        return sorted({k[0] for k in self.crops})

    def track_crops(self, track_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(frame indices int64 (T,), crops uint8 (T, S, S, 3) RGB) of one track, in frame order."""
        keys = sorted(k for k in self.crops if k[0] == track_id)
        if not keys:
            raise KeyError(track_id)
        return (np.array([k[1] for k in keys], np.int64), np.stack([self.crops[k] for k in keys]))

    def all_crops(self) -> np.ndarray:
        """Every crop, ordered by (track id, frame): uint8 (M, S, S, 3) RGB ((0, S, S, 3) if none)."""
        keys = sorted(self.crops)
        if not keys:
            return np.zeros((0, self.size, self.size, 3), np.uint8)
        return np.stack([self.crops[k] for k in keys])


def _settings_or_default(settings: RestoreSettings | None) -> RestoreSettings:
    settings = settings or RestoreSettings()
    settings.validate()
    return settings


def _film(batch: FrameBatch, analysis: FaceAnalysis, settings: RestoreSettings) -> tuple[FilmPlan, FaceAnalysis, dict]:
    """The film plan, the tracks with their film survey (a copy gets the colour check when
    they have none) and the pass's film options (paster, repeats)."""
    plan = FilmPlan.for_frames(settings)
    if "film" not in analysis.extra:
        analysis = copy.copy(analysis)
        analysis.extra = dict(analysis.extra)
        plan.survey_colors(analysis, batch.decoded_frames())
    return plan, analysis, plan.pass_options(analysis)


def restore_tracks(frames, analysis: FaceAnalysis, stages: LoadedStages, settings: RestoreSettings | None = None,
                   *, engine=None, progress: Progress | None = None) -> RestoredFaces:
    """Align and restore (temporally) every face of `analysis`, without pasting.

    The first half of `restore_frames`: the same `FaceRestorationPass`, with ``paste=False``,
    so the crops equal those `restore_frames` pastes. Repeated frames are not restored
    again (`RestoredFaces.repeats`); the film paste settings (per-shot colour mode, grain)
    travel in the result for `paste_back`.

    Args:
        frames: the (N, H, W, 3) RGB frames `analysis` was made on.
        analysis: pass-1 result (`detect_and_track`).
        stages: loaded stages (the restorer and its device are used).
        settings: `fidelity`, `temporal_radius`, `batch_size`, and the film settings `color`,
            `grain`, `grain_seed`, `dedup` (defaults when None).
        engine: a ready `TemporalRestorer` to use instead of one built from `settings`.
        progress: called with 1 after each frame.
    """
    batch = frames if isinstance(frames, FrameBatch) else FrameBatch.wrap(frames)
    _check_analysis(batch, analysis)
    settings = _settings_or_default(settings)
    _, analysis, film = _film(batch, analysis, settings)
    engine = engine or make_engine(stages, settings)
    restorer = FaceRestorationPass(analysis, engine, repeats=film["repeats"], paste=False)
    paster: FilmPaster = film["paster"]
    out = RestoredFaces(size=restorer.size, frame_count=len(batch), frame_size=batch.size,
                        shot_modes=list(zip(paster.starts, paster.modes)), grain=paster.grain, grain_seed=paster.seed)
    written = 0
    for finished in restorer.run(batch.decoded_frames()):
        index = finished.frame.index
        for track_id, affine in finished.faces:
            key = (int(track_id), index)
            face = finished.restored[track_id]
            out.affines[key] = affine
            out.crops[key] = face.image
            out.codes[key] = np.asarray(face.codes)
        if finished.repeat_of is not None:
            out.repeats[index] = int(finished.repeat_of)
        written += 1
        if progress is not None:
            progress(1)
    if written != len(batch):
        raise RuntimeError(f"restored {written} frames of {len(batch)}")
    return out


def paste_back(frames, analysis: FaceAnalysis | None, restored: RestoredFaces, *, parser=None, upscale: int = 1,
               progress: Progress | None = None, paste_options: PasteOptions | None = None):
    """Blend restored faces into their frames; returns frames in the input's form.

    The second half of `restore_frames`: the restoration pass's own `FacePaster` (faces in
    track-id order, square soft mask and the parsing mask when `parser` is given, the film
    paste: luma-only shots and grain as `restored` says; repeated frames get their run's
    first pasted faces copied). Pixels outside the masks keep their input values
    (bit-identical, float input included).

    Args:
        frames: the (N, H, W, 3) RGB frames the faces were restored from.
        analysis: the tracks (checked against the frames; may be None).
        restored: `restore_tracks` output.
        parser: optional `videofix.faces.FaceParser` (e.g. `stages.parser`).
        upscale: integer output scale (background resized bilinearly, faces pasted at that size).
        progress: called with 1 after each frame.
        paste_options: blend, regions kept from the source, occlusions
            (`videofix.faces.regions.PasteOptions`, e.g. `settings.paste_options()`); None =
            the official paste. Occlusions and kept regions are found on the source crops,
            cut again from `frames` with the faces' affines (the crops the network saw).
    """
    batch = frames if isinstance(frames, FrameBatch) else FrameBatch.wrap(frames)
    if analysis is not None:
        _check_analysis(batch, analysis)
    if restored.frame_count != len(batch) or tuple(restored.frame_size) != batch.size:
        raise ValueError(f"restored faces belong to {restored.frame_count} frames of "
                         f"{restored.frame_size[0]}x{restored.frame_size[1]}, got {len(batch)} frames of "
                         f"{batch.size[0]}x{batch.size[1]}")
    upscale = int(upscale)
    film = FilmPaster(restored.shot_modes, grain=restored.grain, seed=restored.grain_seed, grain_scale=float(upscale))
    paster = FacePaster(restored.size, upscale=upscale, parser=parser, paster=film, repeats=restored.repeats,
                        options=paste_options)
    need_sources = paste_options is not None and bool(paste_options.keep_regions or
                                                      (paste_options.occlusion and parser is not None))
    width, height = batch.size
    out = np.empty((len(batch), height * upscale, width * upscale, 3), np.uint8)
    for index in range(len(batch)):
        faces = restored.faces_in(index)
        picture = upscale_picture(batch.picture(index), upscale) if (faces or upscale != 1) else None
        if faces:
            repeat_of = restored.repeats.get(index)
            sources = None
            if need_sources and repeat_of is None:
                source = batch.picture(index)
                sources = {t: warp_face(source, affine, size=restored.size) for t, _, affine in faces}
            paster.paste(picture, index, faces, repeat_of=repeat_of, sources=sources)
        out[index] = picture.planes[0] if picture is not None else batch.rgb[index]
        if progress is not None:
            progress(1)
    return batch.give_back(out)


def restore_frames(frames, stages: LoadedStages, settings: RestoreSettings | None = None, *,
                   analysis: FaceAnalysis | None = None, progress: Progress | None = None,
                   reference_images: Sequence | None = None):
    """Restore the faces of a frame sequence: detect + track, then restore + paste.

    Args:
        frames: (N, H, W, 3) RGB frames (uint8 or float 0..1, numpy or torch; see the module
            docstring). The frames are consecutive frames of a video: faces are tracked and
            restored with temporal context across them.
        stages: `load_stages(settings)` (restorer, detector, optional parser).
        settings: fidelity, temporal radius, batch size, landmark smoothing, upscale, and
            the film settings color, grain, grain_seed, dedup (defaults when None).
        analysis: tracks found earlier on these frames (skips detection).
        progress: called with 1 per frame and pass: 2 N calls in all (N with `analysis`).
        reference_images: face photos for the identity selection (see `detect_and_track`).

    Returns:
        The frames with restored faces, same form as the input ((N, H*up, W*up, 3)).
    """
    batch = FrameBatch.wrap(frames)
    settings = _settings_or_default(settings)
    if analysis is None:
        if stages.detector is None:
            raise ValueError("restore_frames: the stages hold no detector (load_stages(need_detector=True))")
        analysis = detect_and_track(batch, stages.detector, settings=settings, progress=progress,
                                    reference_images=reference_images)
    _check_analysis(batch, analysis)
    _, analysis, film = _film(batch, analysis, settings)
    restorer = FaceRestorationPass(analysis, make_engine(stages, settings), upscale=settings.upscale,
                                   parser=stages.parser, **film, paste_options=settings.paste_options())
    width, height = batch.size
    up = int(settings.upscale)
    out = np.empty((len(batch), height * up, width * up, 3), np.uint8)
    written = 0
    # Frames are copied on the way in because the pass pastes into their pictures in place.
    for finished in restorer.run(batch.decoded_frames(copy=True)):
        out[finished.frame.index] = finished.picture.planes[0]
        written += 1
        if progress is not None:
            progress(1)
    if written != len(batch):
        raise RuntimeError(f"restored {written} frames of {len(batch)}")
    return batch.give_back(out)


def _check_analysis(batch: FrameBatch, analysis: FaceAnalysis) -> None:
    if analysis.frame_count != len(batch):
        raise ValueError(f"the tracks were found on {analysis.frame_count} frames, got {len(batch)} frames")
    fw, fh = (int(v) for v in analysis.frame_size)
    if (fw, fh) != (0, 0) and (fw, fh) != batch.size:
        raise ValueError(f"the tracks were found on {fw}x{fh} frames, got {batch.size[0]}x{batch.size[1]}")
