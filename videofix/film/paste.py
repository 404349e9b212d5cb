"""`FilmPaster`: the face paste for old films (luma-only mode and matched grain).

`FaceRestorationPass` calls `paste(...)` for every restored face (in track-id order per
frame) instead of the plain `videofix.faces.paste_face`. The paste is the same face layer
(official masks, `face_layer`) blended in the picture's native pixel format, with two
changes:

- luma-only mode (monochrome / tinted shots, or `--color luma`): only the restored face's
  luminance is blended; the chroma planes keep the source's samples bit for bit;
- grain: the noise level in a ring around the face (in the output picture, i.e. after
  any upscaling) and the restored face's own residual noise are measured, and seeded
  Gaussian grain is added to the face so the two match (`videofix.film.grain`).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from videofix.faces.paste import face_layer
from videofix.film.grain import added_sigma, grain_field, noise_sigma, ring_mask
from videofix.io.picture import Picture

RING_MARGIN = 0.2  # ring width around the face box, as a share of the box size
INNER_MASK = 0.98  # where the face is "fully pasted": the mask at or above this


@dataclass
class GrainStats:
    """Per track: sums of the levels measured (luma code values) and of what was added."""

    faces: int = 0
    ring: float = 0.0
    face: float = 0.0
    added: float = 0.0

    def add(self, faces: int, ring: float, face: float, added: float) -> None:
        self.faces += faces
        self.ring += ring
        self.face += face
        self.added += added

    def to_dict(self) -> dict:
        n = max(1, self.faces)
        return {"faces": self.faces, "ring_sigma": round(self.ring / n, 3), "face_sigma_before": round(self.face / n, 3),
                "added_sigma": round(self.added / n, 3)}


# Pastes of different frames may run in threads at once (the local runner's --workers): the
# figures are updated under one lock (a module lock: pasters are deep-copied and pickled)
_FIGURES = threading.Lock()


class FilmPaster:
    """Pastes restored faces into output pictures, film-aware.

    Args:
        shot_modes: [(start frame, "luma"|"color"), ...] sorted by start: the paste mode from
            each frame on (from pass 1's per-shot colour analysis); empty = colour.
        grain: match grain (True) or paste clean faces (False).
        seed: grain seed; grain of (seed, frame, track) is always the same.
        grain_scale: size of a grain in output pixels (the upscale factor: grain drawn at
            source resolution and resized like the picture was).
        keep_clean: frame indices for which a copy of the output pasted *without* grain is
            kept in `clean` (the preview's before/after grain).
    """

    def __init__(self, shot_modes: list[tuple[int, str]] | None = None, *, grain: bool = True, seed: int = 0,
                 grain_scale: float = 1.0, keep_clean: set[int] | frozenset = frozenset()):
        self.starts = [s for s, _ in (shot_modes or [])]
        self.modes = [m for _, m in (shot_modes or [])]
        self.grain = bool(grain)
        self.seed = int(seed)
        self.grain_scale = float(grain_scale)
        self.keep_clean = set(keep_clean)
        self.clean: dict[int, Picture] = {}
        self.stats: dict[int, GrainStats] = {}
        self._pending: dict = {}  # per track, the torch face path's grain figures summed on its device
        self.luma_faces = 0
        self.color_faces = 0
        self.seconds = {"grain": 0.0, "paste": 0.0}

    def add_shots(self, shot_modes: list[tuple[int, str]]) -> None:
        """Append shots starting after every shot held (the overlapped runner adds each group of
        shots once pass 1 has closed it, while frames before it are pasted)."""
        for start, mode in shot_modes:
            if self.starts and start <= self.starts[-1]:
                raise ValueError(f"shot at frame {start} after the shot at {self.starts[-1]}")
            self.modes.append(mode)  # before its start: a reader never finds a start without its mode
            self.starts.append(int(start))

    def mode_at(self, frame_index: int) -> str:
        """"luma" or "color": the paste mode of the shot holding `frame_index`."""
        i = bisect_right(self.starts, frame_index) - 1
        return self.modes[i] if i >= 0 else "color"

    def paste(self, output: Picture, frame_index: int, track_id: int, restored: np.ndarray, affine: np.ndarray, *,
              upscale: int = 1, parse_mask: np.ndarray | None = None, blend: float = 1.0) -> None:
        """Blend one restored face (uint8 (S, S, 3) **RGB**, `affine` frame -> crop at source
        size) into `output` (the frame at `upscale` times the source size), in place.
        parse_mask / blend: see `videofix.faces.paste.face_layer`."""
        t0 = time.perf_counter()
        layer = face_layer(restored, affine, (output.height, output.width), upscale=upscale, parse_mask=parse_mask,
                           align_box=output.align_box, blend=blend)
        if layer is None:
            return
        box, face, mask = layer
        rgb = np.clip(face * np.float32(1.0 / 255.0), 0.0, 1.0)
        luma_only = self.mode_at(frame_index) == "luma"
        with _FIGURES:
            if luma_only:
                self.luma_faces += 1
            else:
                self.color_faces += 1
        if frame_index in self.keep_clean and self.grain:
            clean = self.clean.setdefault(frame_index, output.copy())
            clean.blend_rgb(rgb, mask, box, luma_only=luma_only)
        t1 = time.perf_counter()
        if self.grain:
            rgb = self._add_grain(output, rgb, mask, box, frame_index, track_id)
        t2 = time.perf_counter()
        output.blend_rgb(rgb, mask, box, luma_only=luma_only)
        t3 = time.perf_counter()
        with _FIGURES:
            self.seconds["grain"] += t2 - t1
            self.seconds["paste"] += (t1 - t0) + (t3 - t2)

    def paste_regions(self, regions, frame_index: int, track_id: int, restored, affine: np.ndarray, *,
                      upscale: int = 1, parse_mask=None, blend: float = 1.0) -> None:
        """`paste` on the torch face path: blend one restored face (uint8 (3, S, S) **RGB**
        tensor on the regions' device) into `regions` (`videofix.faces.gpu.FaceRegions` of the
        output picture, holding the face's paste region and grain ring), in place. The same
        masks, luma-only rule and grain (the same seeded field, drawn on the device) as
        `paste`; frames kept clean for the preview go through `paste`."""
        from videofix.faces.gpu import layer_box

        output = regions.picture
        box = layer_box(affine, int(restored.shape[-1]), (output.height, output.width), upscale=upscale,
                        align_box=output.align_box)
        if box is None:
            return
        self.paste_regions_many(regions, frame_index, [track_id], restored[None], [affine], [box], upscale=upscale,
                                parse_masks=None if parse_mask is None else [parse_mask], blend=blend)

    def paste_regions_many(self, regions, frame_index: int, track_ids, restored, affines, boxes, *,
                           upscale: int = 1, parse_masks=None, blend: float = 1.0) -> None:
        """`paste_regions` of n faces of one frame in one set of kernels: restored uint8 (n, 3,
        S, S) RGB on the device, their affines and boxes (`videofix.faces.gpu.layer_box`, none
        None). No face may read what another writes: face k's grain ring (`ring_box`) must miss
        every other face's box (`FacePaster` pastes faces that overlap one by one). Each face
        gets what `paste_regions` gives it alone, within float rounding."""
        import torch

        from videofix.faces.gpu import face_layers_torch

        t0 = time.perf_counter()
        layers = face_layers_torch(restored, affines, boxes, upscale=upscale, parse_masks=parse_masks, blend=blend)
        rgb = (layers.faces * np.float32(1.0 / 255.0)).clamp(0.0, 1.0)
        luma_only = self.mode_at(frame_index) == "luma"
        with _FIGURES:
            if luma_only:
                self.luma_faces += len(boxes)
            else:
                self.color_faces += len(boxes)
        t1 = time.perf_counter()
        if self.grain:
            rgb = self._add_grain_torch(regions, rgb, layers, frame_index, list(track_ids), torch)
        t2 = time.perf_counter()
        regions.blend_rgb_many(rgb, layers, luma_only=luma_only)
        t3 = time.perf_counter()
        with _FIGURES:
            self.seconds["grain"] += t2 - t1
            self.seconds["paste"] += (t1 - t0) + (t3 - t2)

    def _add_grain_torch(self, regions, rgb, layers, frame_index: int, track_ids, torch):
        """`_add_grain` of n faces (`paste_regions_many`: rgb (n, 3, H, W), their `FaceLayers`)
        on the device with no host sync: the levels, the amount to add and whether to add any
        stay device tensors (float64 for the scalar maths, as the host's Python floats), the
        choices are `torch.where`s, and the figures for the report are summed on the device per
        track (`settle` reads them once)."""
        from videofix.faces.gpu import grain_fields_torch, noise_sigmas_t

        output = regions.picture
        n = len(layers.boxes)
        device = rgb.device
        masks = layers.masks
        hm, wm = masks.shape[1:]
        rings = [_ring_box(output, box) for box in layers.boxes]
        rh = max(r[3] - r[1] for r in rings)
        rw = max(r[2] - r[0] for r in rings)
        fields = grain_fields_torch(layers.sizes, seed=self.seed, frame_index=frame_index, track_ids=track_ids,
                                    scale=self.grain_scale, device=device, canvas=(hm, wm))  # drawn on the device
        # the three noise levels of every face in one estimate: the ring around the face (the
        # frame's own grain), the restored face, and the unit field, the last two placed in the
        # ring's box and measured one pixel inside the face box (as each measured on its own);
        # each canvas measures only its own ring box, one pixel inside it
        faces_and_fields = torch.stack([regions.rgb_to_luma(rgb.transpose(0, 1)), fields])
        uncovered = ~(masks > 0)
        inner = masks >= INNER_MASK
        lumas = torch.zeros((3, n, rh, rw), dtype=torch.float32, device=device)
        measured = torch.zeros((3, n, rh, rw), dtype=torch.bool, device=device)
        for k, (ring, box, (h, w)) in enumerate(zip(rings, layers.boxes, layers.sizes)):
            oy, ox = box[1] - ring[1], box[0] - ring[0]
            ring_h, ring_w = ring[3] - ring[1], ring[2] - ring[0]
            lumas[0, k, :ring_h, :ring_w] = regions.luma(ring)
            lumas[1:, k, oy:oy + h, ox:ox + w] = faces_and_fields[:, k, :h, :w]
            measured[0, k, 1:ring_h - 1, 1:ring_w - 1] = True
            ring_part = measured[0, k, oy:oy + h, ox:ox + w]
            torch.logical_and(ring_part, uncovered[k, :h, :w], out=ring_part)  # in place: one kernel
            measured[1:, k, oy + 1:oy + h - 1, ox + 1:ox + w - 1] = inner[k, 1:h - 1, 1:w - 1]
        ring_sigma, face_sigma, unit = noise_sigmas_t(lumas.view(3 * n, rh, rw), measured.view(3 * n, rh, rw)).view(3, n)
        valid = torch.isfinite(ring_sigma) & torch.isfinite(face_sigma)  # else: no grain, not counted
        need = torch.sqrt(torch.clamp(ring_sigma * ring_sigma - face_sigma * face_sigma, min=0.0))  # added_sigma
        zero = torch.zeros((), dtype=torch.float64, device=device)
        rows = torch.stack([valid.double(), torch.where(valid, ring_sigma, zero), torch.where(valid, face_sigma, zero),
                            torch.where(valid, need, zero)])
        for k, track_id in enumerate(track_ids):
            self._count_on_device(track_id, rows[:, k])
        add = valid & (need > 0) & torch.isfinite(unit) & (unit > 0)
        factor = torch.where(add, need / unit / output.luma_code_scale(), zero).float()
        grained = (rgb + (fields * factor[:, None, None])[:, None]).clamp(0.0, 1.0)
        return torch.where(add[:, None, None, None], grained, rgb)

    def _count_on_device(self, track_id: int, row) -> None:
        """One face's (counted, ring, face, added) on the device, summed per track in paste order."""
        with _FIGURES:
            acc = self._pending.get(int(track_id))
            self._pending[int(track_id)] = row if acc is None else acc + row

    def settle(self) -> None:
        """Add the figures summed on the device (the torch face path) to `stats`: one copy to
        the host for all tracks."""
        with _FIGURES:
            pending, self._pending = self._pending, {}
        if not pending:
            return
        import torch

        tracks = sorted(pending)
        values = torch.stack([pending[t] for t in tracks]).cpu().tolist()
        with _FIGURES:
            for t, (faces, ring, face, added) in zip(tracks, values):
                self.stats.setdefault(t, GrainStats()).add(int(round(faces)), ring, face, added)

    def _count(self, track_id: int, ring_sigma: float, face_sigma: float, need: float) -> None:
        """One face's grain figures, summed per track for the report."""
        with _FIGURES:
            self.stats.setdefault(int(track_id), GrainStats()).add(1, ring_sigma, face_sigma, need)

    def ring_box(self, output: Picture, box) -> tuple[int, int, int, int]:
        """The box `paste` reads around a face whose paste region is `box` (grain ring)."""
        return _ring_box(output, box, RING_MARGIN if self.grain else 0.0)

    def _add_grain(self, output: Picture, rgb: np.ndarray, mask: np.ndarray, box, frame_index: int,
                   track_id: int) -> np.ndarray:
        x0, y0, x1, y1 = box
        bw, bh = x1 - x0, y1 - y0
        rx0, ry0, rx1, ry1 = _ring_box(output, box)
        around = _luma(output, (rx0, ry0, rx1, ry1))
        ring = ring_mask(around.shape, (x0 - rx0, y0 - ry0, x1 - rx0, y1 - ry0), mask > 0)
        ring_sigma = noise_sigma(around, ring)
        inner = mask >= INNER_MASK
        face_luma = output.rgb_to_luma(rgb)
        face_sigma = noise_sigma(face_luma, inner)
        if not np.isfinite(ring_sigma) or not np.isfinite(face_sigma):
            return rgb
        need = added_sigma(ring_sigma, face_sigma)
        self._count(track_id, ring_sigma, face_sigma, need)
        if need <= 0.0:
            return rgb
        field = grain_field((bh, bw), seed=self.seed, frame_index=frame_index, track_id=track_id,
                            scale=self.grain_scale)
        unit = noise_sigma(field, inner)  # the estimator's reading of this field at amplitude 1
        if not np.isfinite(unit) or unit <= 0:
            return rgb
        # equal grain on R, G and B changes luma only: code units -> RGB units
        grain = field * np.float32(need / unit / output.luma_code_scale())
        return np.clip(rgb + grain[..., None], 0.0, 1.0)

    def report(self) -> dict:
        self.settle()
        return {"luma_only_faces": self.luma_faces, "color_faces": self.color_faces,
                "grain": {str(t): s.to_dict() for t, s in sorted(self.stats.items())}}


def _luma(picture: Picture, box) -> np.ndarray:
    """float32 luma code values of a region (the Y plane itself for YUV and gray)."""
    x0, y0, x1, y1 = box
    if picture.layout.kind in ("yuv", "gray"):
        return picture.planes[0][y0:y1, x0:x1].astype(np.float32)
    return picture.rgb_to_luma(picture.to_rgb(box))


def _ring_box(output: Picture, box, margin: float = RING_MARGIN) -> tuple[int, int, int, int]:
    """The paste region `box` grown by `margin` of its longer side (the grain ring), inside the picture."""
    x0, y0, x1, y1 = box
    m = int(round(margin * max(x1 - x0, y1 - y0)))
    return (max(0, x0 - m), max(0, y0 - m), min(output.width, x1 + m), min(output.height, y1 + m))
