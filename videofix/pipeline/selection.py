"""Which faces a run restores, applied to the tracks of pass 1 (every runner calls this).

`FaceChooser.from_settings(settings, detector)` reads the options of `RestoreSettings`
(``only_center_face``, ``largest_face``, ``min_face_size``, ``max_faces``, ``face_ref`` +
``exclude``) and embeds the reference photos at once, so a bad reference fails before
pass 1; `FaceChooser.apply(analysis, frames)` then keeps the chosen tracks (rules:
`videofix.faces.selection`). The local runner, the Ray driver, the frames API (ComfyUI)
and the VapourSynth filter all go through it. ``det_threshold`` acts earlier, on the
detector (`Detector.set_score_threshold`, see `configure_detector`).

What was decided is kept in ``analysis.extra["selection"]`` and the run report's
``selection``: kept and dropped track ids (with the rule that dropped each), and with
references the embedder, its threshold and each track's distance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from videofix.errors import UsageError
from videofix.faces.selection import (
    FaceSelection,
    create_embedder,
    read_reference_image,
    reference_embedding,
    select_tracks,
    track_identity_distances,
)
from videofix.pipeline.analysis import FaceAnalysis


def configure_detector(detector, settings):
    """Apply ``settings.det_threshold`` to a detector (None: the backend's own threshold)."""
    if detector is not None and getattr(settings, "det_threshold", None) is not None:
        detector.set_score_threshold(settings.det_threshold)
    return detector


@dataclasses.dataclass
class FaceChooser:
    """The face-selection options of a run, with the references already embedded."""

    selection: FaceSelection
    embedder: object | None = None
    reference_names: list[str] = dataclasses.field(default_factory=list)

    @classmethod
    def from_settings(cls, settings, detector=None, *, reference_images: Sequence | None = None,
                      device: str = "cpu") -> "FaceChooser":
        """Options from `RestoreSettings`. References: ``settings.face_ref`` (paths) plus
        `reference_images` (uint8 HxWx3 **RGB** arrays, or float 0..1), each embedded from
        its largest face, found by `detector` (needed with references). Raises InputError
        when a reference cannot be read or shows no face."""
        sel = FaceSelection(only_center_face=bool(settings.only_center_face), largest_face=bool(settings.largest_face),
                            min_face_size=float(settings.min_face_size or 0), max_faces=int(settings.max_faces or 0),
                            exclude=bool(settings.exclude), match_distance=settings.face_ref_distance)
        paths = list(settings.face_ref or [])
        images = list(reference_images or [])
        if not paths and not images:
            if sel.exclude:
                raise UsageError("needs face references to compare with", option="exclude")
            return cls(sel)
        if detector is None:
            raise ValueError("face references need a face detector")
        embedder = create_embedder(settings.models_dir, device=device)
        refs, names = [], []
        for path in paths:
            refs.append(reference_embedding(read_reference_image(path), detector, embedder, name=str(path)))
            names.append(str(path))
        for i, image in enumerate(images):
            refs.append(reference_embedding(np.asarray(image), detector, embedder, name=f"reference image {i}"))
            names.append(f"image {i}")
        sel.references = np.stack(refs).astype(np.float32)
        return cls(sel, embedder, names)

    @property
    def active(self) -> bool:
        return self.selection.active

    @property
    def needs_frames(self) -> bool:
        """Whether `apply` reads frames (identity references)."""
        return self.selection.references is not None

    def apply(self, analysis: FaceAnalysis, frames: Callable[[], Iterable] | None = None) -> FaceAnalysis:
        """The analysis with only the chosen tracks (a new object; ids unchanged).

        frames: called once when references are set; gives (frame index, uint8 RGB array or
        `Picture`) pairs in the analysis's numbering, in order (only a few are converted).
        """
        if not self.active:
            return analysis
        distances = None
        threshold = None
        if self.needs_frames:
            if frames is None:
                raise ValueError("face references need the frames to embed the tracks' faces")
            distances = track_identity_distances(analysis.tracks, frames(), self.embedder, self.selection.references)
            threshold = self.embedder.threshold
        kept, dropped = select_tracks(analysis.tracks, tuple(analysis.frame_size), self.selection, distances,
                                      match_distance=threshold)
        record: dict = {"kept": [int(t.track_id) for t in kept],
                        "dropped": {str(k): v for k, v in sorted(dropped.items())}}
        if distances is not None:
            record["identity"] = {
                "embedder": self.embedder.name, "references": self.reference_names, "exclude": self.selection.exclude,
                "threshold": float(self.selection.match_distance if self.selection.match_distance is not None
                                   else threshold),
                "distances": {str(k): (None if v is None else round(v, 4)) for k, v in sorted(distances.items())},
            }
        extra = dict(analysis.extra)
        extra["selection"] = record
        return dataclasses.replace(analysis, tracks=list(kept), extra=extra)


def picture_frames(reader) -> Iterable[tuple[int, object]]:
    """(index, Picture) pairs of decoded frames, numbered from 0 as pass 1 numbers them."""
    for i, frame in enumerate(reader):
        yield i, frame.picture
