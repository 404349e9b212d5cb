"""Pass 2: align, restore (temporally) and paste back the faces of decoded frames.

`FaceRestorationPass` is fed decoded frames in order and gives back finished frames in
order. It is the one implementation of the restoration stage: the local runner feeds it a
whole video, a Ray segment task feeds it one segment with context frames around it.

For each frame it aligns every face of the pass-1 tracks (smoothed landmarks) straight
from the native-format picture (only the face region is converted to RGB), pushes the
crops to the `TemporalRestorer`, and holds the frame until all of its faces are back;
then it pastes them (in track-id order) into the picture in its own pixel format, so every
sample outside the faces' masks stays exactly as decoded. Memory is bounded by the
temporal window: at most about R + batch frames wait for their faces.
"""

from __future__ import annotations

import copy
from collections import deque
from concurrent.futures import Executor, Future, wait
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from videofix.faces import estimate_alignment, paste_affine, paste_face, warp_face
from videofix.faces.masks import region_for_paste
from videofix.faces.regions import PasteOptions, paste_limit, paste_limit_torch
from videofix.film.duplicates import copy_region, put_region
from videofix.film.upscale import ResizeUpscaler
from videofix.io.picture import Picture
from videofix.io.reader import DecodedFrame
from videofix.metrics import TrackMetrics
from videofix.pipeline.analysis import FaceAnalysis
from videofix.restore.temporal import RestoredFace, TemporalRestorer


_BILINEAR = ResizeUpscaler("bilinear")


def upscale_picture(picture: Picture, factor: int) -> Picture:
    """The picture resized `factor` times in each direction, plane by plane, in its own
    pixel format (bilinear, as the official pipeline resizes the background when it has no
    background upsampler). factor 1 returns a copy."""
    return _BILINEAR.upscale(picture, factor)


@dataclass
class _PendingFrame:
    frame: DecodedFrame
    output: Picture
    affines: dict[int, np.ndarray]
    inputs: dict[int, np.ndarray]
    restored: dict[int, RestoredFace] = field(default_factory=dict)
    emit: bool = True
    repeat_of: int | None = None  # a repeated frame: its faces are copied from this frame's output
    keep: bool = False  # a context frame that starts a run whose repeats are emitted: pasted, not emitted
    regions: object = None  # torch face path: the frame's face regions on the device (`FaceRegions`)

    @property
    def complete(self) -> bool:
        return len(self.restored) == len(self.affines)


@dataclass
class FinishedFrame:
    """A frame ready to encode: the decoded frame (source pts) and the output picture.

    With `FaceRestorationPass(paste=False)` nothing is pasted: `picture` is the decoded
    picture as fed, `regions` is empty and `restored` holds the frame's restored faces.
    """

    frame: DecodedFrame
    picture: Picture
    faces: list[tuple[int, np.ndarray]]  # (track id, affine frame -> crop), for reports
    regions: dict[int, tuple[int, int, int, int]]  # track id -> output region the paste may touch
    restored: dict[int, RestoredFace] = field(default_factory=dict)  # paste=False: track id -> face (image, codes)
    repeat_of: int | None = None  # a repeated frame: its faces are those of this frame (its run's first)


class FacePaster:
    """The paste half of pass 2: blends a frame's restored faces into its output picture.

    `FaceRestorationPass` pastes every finished frame through one; the frames API's
    `paste_back` pastes faces restored earlier (`FaceRestorationPass(paste=False)`) through
    another, so both give the same pixels. Frames must be pasted in order.

    Args:
        size: crop side S the faces were restored at.
        upscale: integer output scale (output pictures are `upscale` times the source frames).
        parser: optional face parser (`videofix.faces.FaceParser`) for parsing masks.
        paster: object whose `paste(output, frame_index, track_id, restored, affine,
            upscale=, parse_mask=)` replaces `paste_face` (`videofix.film.paste.FilmPaster`).
        repeats: frame index -> first frame of its run of repeated frames: after pasting a
            run's first frame its face regions are kept for `paste(..., repeat_of=)`.
        options: `videofix.faces.regions.PasteOptions` (blend, keep_regions, occlusion);
            None = the official paste.
        device: torch device of the face work (`videofix.faces.gpu`: masks, parsing-mask
            blurs, grain and the colour conversion of a frame's face regions, which go there
            and back once a frame); None = numpy/OpenCV.
    """

    def __init__(self, size: int, *, upscale: int = 1, parser=None, paster=None,
                 repeats: dict[int, int] | None = None, options: PasteOptions | None = None,
                 device: str | None = None):
        self.size = int(size)
        self.upscale = int(upscale)
        self.parser = parser
        self.paster = paster
        self.options = options or PasteOptions()
        self.device = device
        self._run_firsts = set((repeats or {}).values())
        self._snapshot: tuple[int, list, dict, dict] | None = None  # (frame, faces, regions, samples)
        self.faces_reused = 0

    def paste(self, output: Picture, frame_index: int, faces: Sequence[tuple[int, np.ndarray, np.ndarray]], *,
              repeat_of: int | None = None, sources: dict[int, np.ndarray] | None = None, held=None,
              ) -> tuple[list[tuple[int, np.ndarray]], dict[int, tuple[int, int, int, int]]]:
        """Paste one frame's faces into `output` (in place), in track-id order.

        Args:
            output: the frame's output picture (source size times `upscale`).
            frame_index: the frame's index (film paste mode and grain depend on it).
            faces: [(track id, restored uint8 (S, S, 3) **RGB** crop, float (2, 3) frame -> crop
                affine at source size), ...].
            repeat_of: for a repeated frame, the first frame of its run (the last run's first
                frame this paster pasted): its face regions are copied unchanged and `faces`
                is not used.
            sources: {track id: the aligned source crop uint8 (S, S, 3) RGB the face was
                restored from}: occlusions and kept regions (`options`) are found on it.
            held: torch face path: `FaceRegions` of `output` already on the device (from the
                alignment), used when it holds every box the paste reads.

        Returns:
            ([(track id, affine), ...] in paste order, {track id: output region (x0, y0, x1, y1)
            the paste may have changed}).
        """
        if repeat_of is not None:
            if self._snapshot is None or self._snapshot[0] != repeat_of:
                raise RuntimeError(f"frame {frame_index} repeats {repeat_of}, whose output is not held")
            _, placed, regions, samples = self._snapshot
            for t, box in regions.items():
                put_region(output, box, samples[t])
            self.faces_reused += len(regions)
            return list(placed), dict(regions)
        ordered = sorted(faces, key=lambda f: int(f[0]))
        blend = {} if self.options.blend == 1.0 else {"blend": self.options.blend}
        kept_clean = self.paster is not None and frame_index in getattr(self.paster, "keep_clean", ())
        if self.device is not None and ordered and not kept_clean:  # the preview's clean copy: numpy
            self._paste_torch(output, frame_index, ordered, sources or {}, held, blend)
        else:
            for track_id, crop, affine in ordered:
                source = (sources or {}).get(track_id)
                parse = paste_limit(self.options, self.size, parser=self.parser, restored=crop, source=source)
                if self.paster is not None:
                    self.paster.paste(output, frame_index, track_id, crop, affine, upscale=self.upscale,
                                      parse_mask=parse, **blend)
                else:
                    paste_face(output, crop, affine, upscale=self.upscale, parse_mask=parse, **blend)
        placed = [(int(t), affine) for t, _, affine in ordered]
        regions = {t: self.region(output, affine) for t, affine in placed}
        if frame_index in self._run_firsts:
            self._snapshot = (frame_index, placed, regions, {t: copy_region(output, box) for t, box in regions.items()})
        return placed, regions

    def reads_box(self, output: Picture, affine: np.ndarray) -> tuple[int, int, int, int] | None:
        """The box of `output` a paste of `affine` reads and writes (its region and, with the
        film paster's grain, the ring measured around it); None when it misses the frame."""
        box = self.region(output, affine)
        if box[2] <= box[0] or box[3] <= box[1]:
            return None
        ring = getattr(self.paster, "ring_box", None)
        return ring(output, box) if ring is not None else box

    def _paste_torch(self, output: Picture, frame_index: int, ordered, sources: dict, held, blend: dict) -> None:
        """The torch face path of `paste`: the frame's face regions go to the device once
        (or are `held` there since the alignment), the faces are blended there in track-id
        order, and the regions come back once. Faces that do not touch each other's reads are
        pasted together, in one set of kernels (`_paste_groups`); a face whose reads (its
        region, and its grain ring) meet an earlier face's region waits for it."""
        from videofix.faces.gpu import FaceRegions, _box_union, _upload, paste_faces_regions

        reads = [self.reads_box(output, affine) for _, _, affine in ordered]
        box = _box_union(reads)
        if box is None:
            return
        if held is not None and held.picture is output and held.holds(box):
            regions = held
        else:
            regions = FaceRegions(output, box, self.device)
        restored = _upload(np.stack([c for _, c, _ in ordered]), regions.device).permute(0, 3, 1, 2)  # one copy a frame
        boxes = [None if r is None else self.region(output, affine) for r, (_, _, affine) in zip(reads, ordered)]
        limits = [paste_limit_torch(self.options, self.size, regions.device, parser=self.parser, restored=restored[i],
                                    source=sources.get(track_id)) for i, (track_id, _, _) in enumerate(ordered)]
        for group in _paste_groups(reads, boxes, limits):
            first, last = group[0], group[-1]
            crops = restored[first:last + 1] if last - first + 1 == len(group) else restored[list(group)]
            affines = [ordered[i][2] for i in group]
            parse = None if limits[first] is None else [limits[i] for i in group]
            if self.paster is not None:
                self.paster.paste_regions_many(regions, frame_index, [ordered[i][0] for i in group], crops, affines,
                                               [boxes[i] for i in group], upscale=self.upscale, parse_masks=parse,
                                               **blend)
            else:
                paste_faces_regions(regions, crops, affines, [boxes[i] for i in group], upscale=self.upscale,
                                    parse_masks=parse, **blend)
        regions.write_back()

    def region(self, output: Picture, affine: np.ndarray) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the output picture that pasting a face with `affine` may
        change (x1/y1 exclusive; empty when the face misses the frame). Every sample outside
        it stays as decoded."""
        box = region_for_paste(paste_affine(affine, self.upscale), self.size, (output.height, output.width))
        return (0, 0, 0, 0) if box is None else tuple(int(v) for v in output.align_box(box))


def _paste_groups(reads, boxes, limits) -> list[list[int]]:
    """The faces of one frame (in paste order) in groups pasted together: consecutive faces
    none of which reads (`reads[k]`: its region and grain ring) the region (`boxes`) of an
    earlier face of its group, with parse limits for all or for none. Faces that miss the
    frame (read None) are left out."""

    def meet(a, b) -> bool:
        return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]

    groups: list[list[int]] = []
    for k, read in enumerate(reads):
        if read is None:
            continue
        group = groups[-1] if groups else None
        # an earlier face of the group reads before any face writes, as it would alone; a later
        # one must not read what an earlier one writes
        if group is None or (limits[k] is None) != (limits[group[0]] is None) or any(
                meet(read, boxes[j]) for j in group):
            groups.append([k])
        else:
            group.append(k)
    return groups


class FaceRestorationPass:
    """Align, restore and paste the faces of frames fed in order.

    Args:
        analysis: pass-1 tracks; frame indices must match `DecodedFrame.index`.
        engine: the temporal restoration engine (its `input_size` is the crop size).
        upscale: integer output scale (background resized, faces pasted at that size).
        parser: optional face parser (`videofix.faces.FaceParser`) for parsing masks.
        emit_range: (start, stop) frame indices to give back; frames outside are context
            only (pushed for their code predictions, then dropped). None = all.
        metrics_from: first frame index whose metrics are counted (pairs are counted from the
            pair (metrics_from - 1, metrics_from) on, the pair crossing the segment's start);
            default = emit start. Frames after the emit range (trailing context) are never
            counted, so segments' counters add up to the whole video's.
        upscaler: `picture, factor -> Picture` for the background when upscale > 1
            (default `upscale_picture`, bilinear; see `videofix.film.upscale`).
        paster: object whose `paste(output, frame_index, track_id, restored, affine,
            upscale=, parse_mask=)` replaces `paste_face` (`videofix.film.paste.FilmPaster`:
            luma-only mode, grain).
        repeats: frame index -> first frame of its run of repeated frames (pass 1,
            `videofix.film.duplicates`): a repeat is not restored again (nor pushed when it is
            context: the engine's windows are a one-piece run's); the face regions of the
            run's first output are copied into it. A run's first frame before the emit range
            whose repeats are emitted is restored and pasted too (not emitted; a Ray segment
            decodes it as context); an emitted repeat whose first was not fed is restored.
        paste: False = restore without pasting (the frames API's split steps): finished
            frames carry their restored faces (`FinishedFrame.restored`, a repeat those of
            its run's first frame) and the pictures as fed; paste them later with a
            `FacePaster` built like `self.face_paster`.
        executor: a `concurrent.futures.Executor` (threads) that pastes finished frames,
            several at once; frames still come back in order and with the same pixels
            (repeats are chained after their run's first frame). None = paste in `feed`.
        paste_depth: with an executor, how many frames may wait in pastes before `feed`
            waits for the oldest (memory bound).
        paste_options: `videofix.faces.regions.PasteOptions` (blend, keep_regions,
            occlusion), found on the aligned source crops; None = the official paste.
    """

    def __init__(self, analysis: FaceAnalysis, engine: TemporalRestorer, *, upscale: int = 1, parser=None,
                 emit_range: tuple[int, int] | None = None, metrics_from: int | None = None,
                 upscaler=None, paster=None, repeats: dict[int, int] | None = None, paste: bool = True,
                 executor: Executor | None = None, paste_depth: int = 4, paste_options: PasteOptions | None = None):
        self.analysis = analysis
        self.engine = engine
        self.size = int(engine.size)
        self.upscale = int(upscale)
        self.parser = parser
        self.emit_range = emit_range
        start = emit_range[0] if emit_range else 0
        self.metrics_from = start if metrics_from is None else metrics_from
        self.metrics_to = emit_range[1] if emit_range else None
        self._pending: deque[_PendingFrame] = deque()
        self._by_index: dict[int, _PendingFrame] = {}
        self.metrics: dict[int, TrackMetrics] = {}
        self.faces_restored = 0
        self.max_pending = 0
        self.upscaler = upscaler
        self.paster = paster
        self.repeats = dict(repeats or {})
        self._run_firsts = set(self.repeats.values())
        self._fed_firsts: set[int] = set()
        # runs whose first frame lies before the emitted range (a Ray segment's context) and
        # whose repeats are emitted: that first frame is restored and pasted (not emitted) so
        # the repeats copy the same face regions as in a one-piece run; its paste figures go
        # to a copy of the paster (the segment that emits the frame counts them)
        self._keep_firsts = {f for r, f in self.repeats.items() if self._emits(r) and not self._emits(f)}
        self._context_paster = copy.deepcopy(paster) if paster is not None and self._keep_firsts else None
        self._openers: dict[int, tuple[RestoredFace, np.ndarray]] = {}  # track -> last face before metrics_from
        self.paste = bool(paste)
        # the face work runs in torch on the restorer's device when it is CUDA (paste_options.face_path)
        self.face_device = (paste_options or PasteOptions()).face_device(getattr(engine, "device", None))
        self._held: dict[int, object] = {}  # frame index -> its FaceRegions from `prepare` (torch path)
        self.face_paster = FacePaster(self.size, upscale=self.upscale, parser=parser, paster=paster,
                                      repeats=self.repeats, options=paste_options, device=self.face_device)
        self._kept: tuple[int, list, dict] | None = None  # paste=False: (run's first frame, faces, restored)
        self.faces_reused = 0
        # parallel paste (the local runner's --workers): finished frames are pasted by
        # `executor`, several frames at once, and given back in order; at most `paste_depth`
        # frames wait in the pastes. Every frame's pixels depend only on that frame, except
        # repeated frames (copied from their run's first output): the pastes of runs' first
        # frames and of repeats are chained one after the other, so the output is the same
        # whatever the number of workers.
        self.executor = executor
        self.paste_depth = max(1, int(paste_depth))
        self._pasting: deque[Future] = deque()
        self._chain: Future | None = None

    def add_repeats(self, repeats: dict[int, int]) -> None:
        """Add repeated frames (frame index -> first frame of its run) of frames not fed yet:
        the overlapped runner adds those of each group of shots pass 1 has closed. Only for a
        pass that emits every frame (no `emit_range`)."""
        if self.emit_range is not None:
            raise ValueError("add_repeats: only for a pass without emit_range")
        for first in repeats.values():
            self._run_firsts.add(first)
            self.face_paster._run_firsts.add(first)
        self.repeats.update(repeats)  # last: a frame is a repeat only once its run's first is known

    def _emits(self, index: int) -> bool:
        return self.emit_range is None or self.emit_range[0] <= index < self.emit_range[1]

    def prepare(self, frame: DecodedFrame) -> dict[int, tuple[np.ndarray, np.ndarray]] | None:
        """The alignment of one frame's faces, ahead of `feed`: {track id: (affine (2, 3)
        float64 frame -> crop, uint8 (S, S, 3) RGB crop)}, or None for a repeated frame
        (`feed` decides then). Reads only the frame and the tracks, so it may run in worker
        threads, several frames at once (the local runner's --workers); `feed(frame,
        prepared)` then uses these crops, which are exactly those `feed` would cut."""
        if frame.index in self.repeats:
            return None
        if self.face_device is not None:
            return self._align_torch(frame, self.analysis.faces_in(frame.index))
        out = {}
        for face in self.analysis.faces_in(frame.index):
            affine = estimate_alignment(face.landmarks, size=self.size)
            out[face.track_id] = (affine, warp_face(frame.picture, affine, size=self.size))
        return out

    def _align_torch(self, frame: DecodedFrame, faces) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """`prepare` on the torch face path: the frame's face regions (every crop's source and,
        when the frame is its own output, every paste region and grain ring) go to the device
        in one box; the crops are cut there and come back in one copy. The regions are held
        for the paste (`_held`)."""
        from videofix.faces.gpu import FaceRegions, _box_union, _download, warp_box

        if not faces:
            return {}
        pic = frame.picture
        affines = {f.track_id: estimate_alignment(f.landmarks, size=self.size) for f in faces}
        boxes = [warp_box(pic, a, self.size) for a in affines.values()]
        own_output = self.paste and self.upscale == 1
        if own_output:
            boxes += [self.face_paster.reads_box(pic, a) for a in affines.values()]
        box = _box_union(boxes)
        if box is None:  # every face outside the picture: border-grey crops
            return {t: (a, warp_face(pic, a, size=self.size)) for t, a in affines.items()}
        regions = FaceRegions(pic, box, self.face_device)
        crops = _download([regions.warp(list(affines.values()), self.size).permute(0, 2, 3, 1).contiguous()])[0]
        if own_output:
            self._held[frame.index] = regions
        return {t: (a, crops[i]) for i, (t, a) in enumerate(affines.items())}

    def feed(self, frame: DecodedFrame, prepared: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
             ) -> list[FinishedFrame]:
        """Add the next decoded frame; returns the frames finished so far, in order.
        prepared: `prepare(frame)`, computed ahead (e.g. in a worker thread), or None."""
        emit = self._emits(frame.index)
        keep = not emit and frame.index in self._keep_firsts
        faces = self.analysis.faces_in(frame.index)
        if (emit or keep) and self.paste and self.upscale != 1:
            output = (self.upscaler or upscale_picture)(frame.picture, self.upscale)
        else:
            output = frame.picture
        if prepared is None and self.face_device is not None and faces and frame.index not in self.repeats:
            prepared = self._align_torch(frame, faces)
        pending = _PendingFrame(frame, output, {}, {}, emit=emit, keep=keep, regions=self._held.pop(frame.index, None))
        self._pending.append(pending)
        self._by_index[frame.index] = pending
        results: list[RestoredFace] = []
        if (emit or keep) and frame.index in self._run_firsts:
            self._fed_firsts.add(frame.index)
        # a repeat is never pushed (context repeats neither: the engine's windows must hold the
        # same frames as a one-piece run's), except an emitted one whose first was not fed
        if frame.index in self.repeats and (not emit or self.repeats[frame.index] in self._fed_firsts):
            pending.repeat_of = self.repeats[frame.index]
            faces = [f for f in faces if frame.index == self.analysis.track(f.track_id).end]
            for face in faces:  # a track ending on a repeat still ends here
                results += self.engine.end_track(face.track_id)
            faces = []
        for face in faces:
            if prepared is not None and face.track_id in prepared:
                affine, crop = prepared[face.track_id]
            else:
                affine = estimate_alignment(face.landmarks, size=self.size)
                crop = warp_face(frame.picture, affine, size=self.size)
            pending.affines[face.track_id] = affine
            pending.inputs[face.track_id] = crop
            # inside a fade or dissolve (and on the frame after it) the temporal window holds the
            # frame alone: its neighbours are other mixes of two shots, no evidence to pool
            soft = self.analysis.in_transition(frame.index) or self.analysis.in_transition(frame.index - 1)
            results += self.engine.push(face.track_id, frame.index, crop, cut_before=soft)
            if frame.index == self.analysis.track(face.track_id).end:
                results += self.engine.end_track(face.track_id)
        self._take(results)
        self.max_pending = max(self.max_pending, len(self._pending) + len(self._pasting))
        return self._pop_ready()

    def finish(self) -> list[FinishedFrame]:
        """Restore what is still held (end of the input) and return the remaining frames."""
        self._take(self.engine.flush())
        out = self._pop_ready()
        out += self._harvest(everything=True)
        if self._pending:  # every face comes back from flush(); anything left is a bug
            raise RuntimeError(f"{len(self._pending)} frames still wait for faces after flush")
        return out

    # ------------------------------------------------------------------ parallel paste
    def _submit_paste(self, p: _PendingFrame) -> None:
        """Paste frame `p` on the executor (see `executor` in __init__)."""
        faces = [(t, p.restored[t].image, p.affines[t]) for t in sorted(p.affines)]
        chained = p.repeat_of is not None or p.frame.index in self._run_firsts
        before = self._chain if chained else None

        def task() -> FinishedFrame:
            if before is not None:
                before.result()  # the run's first frame (or the previous repeat) is pasted
            placed, regions = self.face_paster.paste(p.output, p.frame.index, faces, repeat_of=p.repeat_of,
                                                     sources=p.inputs, held=p.regions)
            p.regions = None
            return FinishedFrame(p.frame, p.output, placed, regions, repeat_of=p.repeat_of)

        future = self.executor.submit(task)
        if chained:
            self._chain = future
        self._pasting.append(future)

    def _harvest(self, everything: bool = False) -> list[FinishedFrame]:
        """Pasted frames, in order: those already done, and the oldest while more than
        `paste_depth` wait (all of them with `everything`)."""
        done = []
        while self._pasting and (everything or self._pasting[0].done() or len(self._pasting) > self.paste_depth):
            finished = self._pasting.popleft().result()
            if finished.repeat_of is not None:
                self.faces_reused += len(finished.regions)
            done.append(finished)
        if not self._pasting:
            self._chain = None
        return done

    def _take(self, results: Iterable[RestoredFace]) -> None:
        for r in results:
            pending = self._by_index[int(r.frame_key)]
            pending.restored[int(r.track_id)] = r
            self.faces_restored += 1

    def _pop_ready(self) -> list[FinishedFrame]:
        done = []
        while self._pending and self._pending[0].complete:
            p = self._pending.popleft()
            del self._by_index[p.frame.index]
            for track_id in sorted(p.affines):
                r = p.restored[track_id]
                if p.frame.index < self.metrics_from:
                    # the track's last face before metrics_from only opens the first counted pair
                    self._openers[track_id] = (r, p.inputs[track_id])
                elif self.metrics_to is None or p.frame.index < self.metrics_to:
                    m = self.metrics.get(track_id)
                    if m is None:
                        m = self.metrics[track_id] = TrackMetrics()
                        opener = self._openers.pop(track_id, None)
                        if opener is not None:
                            m.update(codes=np.asarray(opener[0].codes), restored=opener[0].image,
                                     input_crop=opener[1])
                    m.update(codes=np.asarray(r.codes), restored=r.image, input_crop=p.inputs[track_id])
            if not p.emit:
                if p.keep:
                    if self._pasting:  # it swaps the paster: no paste may run meanwhile
                        wait(list(self._pasting))
                    self._keep_context(p)
                continue
            if not self.paste:
                done.append(self._unpasted(p))
                continue
            if self.executor is not None:
                self._submit_paste(p)
                continue
            faces = [(t, p.restored[t].image, p.affines[t]) for t in sorted(p.affines)]
            placed, regions = self.face_paster.paste(p.output, p.frame.index, faces, repeat_of=p.repeat_of,
                                                     sources=p.inputs, held=p.regions)
            p.regions = None
            if p.repeat_of is not None:
                self.faces_reused += len(regions)
            done.append(FinishedFrame(p.frame, p.output, placed, regions, repeat_of=p.repeat_of))
        if self.executor is not None:
            done += self._harvest()
        return done

    def _keep_context(self, p: _PendingFrame) -> None:
        """A run's first frame before the emitted range: pasted (or, paste=False, kept) but
        not emitted, so that the emitted repeats of its run get its faces."""
        if not self.paste:
            self._kept = (p.frame.index, [(t, p.affines[t]) for t in sorted(p.affines)],
                          {t: p.restored[t] for t in sorted(p.affines)})
            return
        faces = [(t, p.restored[t].image, p.affines[t]) for t in sorted(p.affines)]
        main, self.face_paster.paster = self.face_paster.paster, self._context_paster
        try:
            self.face_paster.paste(p.output, p.frame.index, faces, sources=p.inputs, held=p.regions)
            p.regions = None
        finally:
            self.face_paster.paster = main

    def _unpasted(self, p: _PendingFrame) -> FinishedFrame:
        """paste=False: the frame with its restored faces (a repeat: its run's first frame's)."""
        if p.repeat_of is not None:
            if self._kept is None or self._kept[0] != p.repeat_of:
                raise RuntimeError(f"frame {p.frame.index} repeats {p.repeat_of}, whose faces are not held")
            _, faces, restored = self._kept
            self.faces_reused += len(faces)
            return FinishedFrame(p.frame, p.output, list(faces), {}, dict(restored), p.repeat_of)
        faces = [(t, p.affines[t]) for t in sorted(p.affines)]
        restored = {t: p.restored[t] for t in sorted(p.affines)}
        if p.frame.index in self._run_firsts:
            self._kept = (p.frame.index, faces, restored)
        return FinishedFrame(p.frame, p.output, faces, {}, restored)

    def paste_region(self, output: Picture, affine: np.ndarray) -> tuple[int, int, int, int]:
        """`FacePaster.region` of this pass's paster."""
        return self.face_paster.region(output, affine)

    def run(self, frames: Iterable[DecodedFrame]) -> Iterator[FinishedFrame]:
        """Feed all `frames` and yield finished frames in order."""
        for frame in frames:
            yield from self.feed(frame)
        yield from self.finish()
