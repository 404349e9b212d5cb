"""The temporal restoration engine: restore each face track as a sequence.

Per-frame CodeFormer picks the codes of every frame alone, so eyes, skin and identity details
flicker. :class:`TemporalRestorer` runs any :class:`~videofix.models.base.CodeRestorer`
(CodeFormer, VQFR) in its two steps and works between them:

1. **encode** aligned crops in batches across all live tracks (GPU-friendly); keep, per frame,
   the code evidence (confidence-weighted probabilities), the AdaIN statistics and the
   decoder state;
2. **smooth** along each track: the codes of frame t pool the evidence of frames t-R..t+R of
   the same shot (see :mod:`videofix.restore.smoothing`); optionally the AdaIN statistics of
   ``lq_feat`` and the encoder skip features fused at ``w > 0`` are averaged over the window;
3. **decode** with the network's own ``decode(codes, state, fidelity)`` (fidelity fusion and
   AdaIN exactly as the network does) in batches across tracks, and post-process to uint8 RGB
   as the official script does.

With ``radius=0`` and the statistic/feature smoothing off (both are identities at R = 0) the
engine is the per-frame network, exactly.

Streaming: a frame is decoded as soon as the R frames after it in its shot are encoded (or the
shot is known to be over), and forgotten once no later frame can pool it. Memory is bounded by
the window (2R+1 frames of evidence, R+1 decoder states, plus a batch), not the track. Every
per-frame computation is done frame by frame in a fixed order, so the output does not depend on
the batch size nor on how the frames are cut into pushes (up to the network's own batch
invariance; on CPU it is exact).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from videofix.models.base import CodeRestorer, Encoded
from videofix.restore.crops import crops_as_uint8, crops_to_tensor, lookup_on_device, stage_crops
from videofix.restore.smoothing import (
    SmoothingConfig,
    average_stats,
    channel_stats,
    combine_evidence,
    restyle,
    token_evidence,
)
from videofix.restore.transfer import HostCopy, HostTransfer

__all__ = [
    "RestoredFace",
    "SequenceResult",
    "TemporalRestorer",
    "restore_sequence",
    "encode_logits",
    "DEFAULT_STAT_KEYS",
]

# State tensors whose per-channel mean/std style the decoder (CodeFormer's AdaIN reads them
# from lq_feat). Keys a restorer does not have are ignored, so VQFR runs unchanged.
DEFAULT_STAT_KEYS: tuple[str, ...] = ("lq_feat",)


@dataclass
class RestoredFace:
    """One restored face, as the engine hands it back.

    Attributes:
        track_id: the id given to :meth:`TemporalRestorer.push`.
        frame_key: the key given with the crop (e.g. the frame index), returned untouched.
        image: (S, S, 3) uint8 RGB restored aligned crop (official post-processing: clamp to
            [-1, 1], map to 0..255, round).
        codes: (T,) int64 CPU, the code chosen for each latent token.
        cut_before: the flag the crop was pushed with.
        output: (3, S, S) float32 CPU raw network output (unclamped RGB in about [-1, 1]); only
            when the engine was built with ``keep_output=True``, else None.
    """

    track_id: Hashable
    frame_key: Any
    image: np.ndarray
    codes: np.ndarray
    cut_before: bool = False
    output: Tensor | None = None


@dataclass
class _Slot:
    """One frame of one track inside the engine's window."""

    seq: int  # global push order
    track_id: Hashable
    frame_key: Any
    index: int  # frame number within the track
    shot: int  # shot number within the track
    cut_before: bool
    crop: np.ndarray | None  # (S, S, 3) uint8 until encoded
    is_encoded: bool = False
    top: Tensor | None = None  # (T,) int64: the network's own codes (argmax), until decoded
    # the face's decoder state, batch 1, in tensors of its own (never views of its encode
    # batch, which would keep the whole batch alive); dropped once no longer needed
    state: dict[str, Tensor] | None = None
    evidence: Tensor | None = None  # (T, N) float32
    stats: dict[str, Tensor] = field(default_factory=dict)  # key -> (C, 2) float32
    decoded: bool = False


@dataclass
class _Track:
    slots: deque = field(default_factory=deque)
    next_index: int = 0
    shot: int = 0
    ended: bool = False


class TemporalRestorer:
    """Streaming temporally smoothed face restoration over many interleaved tracks.

    Usage::

        engine = TemporalRestorer(model, radius=4, fidelity=0.5, batch_size=8)
        for frame_index, faces in enumerate(video):
            for track_id, crop, cut in faces:
                for face in engine.push(track_id, frame_index, crop, cut_before=cut):
                    paste(face)                      # RestoredFace, in frame order per track
            for track_id in tracks_that_ended:
                for face in engine.end_track(track_id):
                    paste(face)
        for face in engine.flush():
            paste(face)

    Faces of one track come back in the order they were pushed; faces of different tracks
    come back as they become ready (each returned list is in push order).

    Args:
        model: a CodeRestorer (eval mode; its parameters on ``device``).
        radius: R, frames on each side whose code evidence is pooled (0 = per-frame network).
        fidelity: the network's fidelity weight w in [0, 1] (CodeFormer: fusion of encoder
            features; VQFR: its fidelity ratio).
        batch_size: faces per encode and per decode call (across tracks).
        device: where the network runs; crops are moved there.
        dtype: torch.float32 (exact), or torch.bfloat16 / torch.float16 to run a float32 model
            under autocast (logits, evidence and statistics stay float32). A model already cast
            to a half dtype runs in that dtype whatever this says.
        sigma, confidence, temperature: code smoothing, see
            :class:`~videofix.restore.smoothing.SmoothingConfig`.
        smooth_stats: average the per-channel mean/std of these state tensors over the window
            (AdaIN statistics; default ``("lq_feat",)`` when ``radius > 0``; absent keys are
            ignored). Pass ``()`` to switch off.
        smooth_features: average these state tensors themselves over +-``feature_radius``
            frames (e.g. CodeFormer's encoder skip features ``enc_*`` fused at w > 0); pass
            ``"all_enc"`` for every state key starting with ``enc_``. Default: none.
        feature_radius: window of ``smooth_features`` (default: ``radius``); at most ``radius``.
        keep_output: also return the raw float network output of each face.
        profile: accumulate wall time per stage in ``self.timings`` (seconds: ``encode``,
            ``smooth`` (evidence, pooling, statistics), ``gather`` (joining per-frame states
            into a decode batch), ``decode`` (network + post-processing)); synchronises CUDA
            around each stage, so off for speed.
    """

    def __init__(
        self,
        model: CodeRestorer,
        radius: int = 4,
        fidelity: float = 0.5,
        batch_size: int = 8,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        *,
        sigma: float | None = None,
        confidence: str = "max",
        temperature: float = 1.0,
        smooth_stats: Sequence[str] | None = None,
        smooth_features: Sequence[str] | str = (),
        feature_radius: int | None = None,
        keep_output: bool = False,
        profile: bool = False,
    ) -> None:
        if not isinstance(model, CodeRestorer):
            raise TypeError(f"model must implement CodeRestorer (encode/decode), got {type(model).__name__}")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if not 0.0 <= float(fidelity) <= 1.0:
            raise ValueError(f"fidelity must be in [0, 1], got {fidelity!r}")
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"dtype must be float32, float16 or bfloat16, got {dtype}")
        self.model = model
        self.config = SmoothingConfig(radius=int(radius), sigma=sigma, confidence=confidence, temperature=temperature)
        self.radius = self.config.radius
        self.kernel = self.config.kernel()
        self.fidelity = float(fidelity)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.dtype = dtype
        self.stat_keys = tuple(DEFAULT_STAT_KEYS if smooth_stats is None else smooth_stats) if self.radius > 0 else ()
        self.feature_keys: tuple[str, ...] | str = (
            smooth_features if isinstance(smooth_features, str) else tuple(smooth_features)
        )
        if isinstance(self.feature_keys, str) and self.feature_keys != "all_enc":
            raise ValueError(f"smooth_features must be a list of state keys or 'all_enc', got {smooth_features!r}")
        self.feature_radius = self.radius if feature_radius is None else int(feature_radius)
        if not 0 <= self.feature_radius <= self.radius:
            raise ValueError(f"feature_radius must be in [0, radius={self.radius}], got {feature_radius!r}")
        if not self.feature_keys:
            self.feature_radius = 0
        self.keep_output = bool(keep_output)
        self.size = int(model.input_size)
        params = getattr(model, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        self._input_dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
        self._tracks: dict[Hashable, _Track] = {}
        self._pending: list[_Slot] = []  # pushed, not yet encoded (push order)
        self._seq = 0
        # host <-> device traffic: pinned staging, the network's own CUDA stream, one copy down
        # per decoded batch (videofix.restore.transfer); on the CPU the same code, unpinned
        self.transfer = HostTransfer(self.device, own_stream=not getattr(model, "shared_stream", False))
        # decoded batches whose copy to the host is under way, oldest first: (copy, faces'
        # (track id, frame key, cut flag)); on CUDA the newest stays in flight while the
        # caller works, on the CPU every copy has landed when it is made
        self._in_flight: deque[tuple[HostCopy, list[tuple[Hashable, Any, bool]]]] = deque()
        self._max_in_flight = 1 if self.device.type == "cuda" else 0
        self.profile = bool(profile)
        self.timings = {"encode": 0.0, "smooth": 0.0, "gather": 0.0, "decode": 0.0}
        self.counters = {"encoded": 0, "decoded": 0, "encode_calls": 0, "decode_calls": 0, "max_held_states": 0,
                         "host_copies": 0}

    # ------------------------------------------------------------------ public API
    def push(self, track_id: Hashable, frame_key: Any, crop: np.ndarray, cut_before: bool = False) -> list[RestoredFace]:
        """Add the next aligned crop of a track.

        Args:
            track_id: any hashable id; a new id starts a new track.
            frame_key: returned with the result untouched (e.g. the frame index).
            crop: (S, S, 3) uint8 RGB aligned face crop, S = ``model.input_size``.
            cut_before: a cut (new shot) lies between the track's previous crop and this one;
                no window reaches across it.

        Returns:
            Faces finished by this call (possibly none), see the class docstring for the order.
        """
        slot = self._new_slot(track_id, frame_key, self._check_crop(crop), cut_before)
        self._pending.append(slot)
        if len(self._pending) >= self.batch_size:
            self._encode_pending()
        return self._decode_ready(force=False)

    def _new_slot(self, track_id: Hashable, frame_key: Any, crop: np.ndarray | None, cut_before: bool) -> _Slot:
        track = self._tracks.get(track_id)
        if track is None:
            track = self._tracks[track_id] = _Track()
        elif track.ended:
            raise ValueError(f"track {track_id!r} was ended; start a new track id")
        if cut_before and track.next_index > 0:
            track.shot += 1
        slot = _Slot(
            seq=self._seq,
            track_id=track_id,
            frame_key=frame_key,
            index=track.next_index,
            shot=track.shot,
            cut_before=bool(cut_before),
            crop=crop,
        )
        self._seq += 1
        track.next_index += 1
        track.slots.append(slot)
        return slot

    def push_encoded(
        self, track_id: Hashable, frame_key: Any, encoded: Encoded, cut_before: bool = False
    ) -> list[RestoredFace]:
        """Like :meth:`push`, for a face already encoded elsewhere (``model.encode`` of a batch
        of one, e.g. on another worker, or reused to compare smoothing settings).

        Args:
            encoded: ``Encoded`` with batch 1, on ``device``.
        """
        if len(encoded) != 1:
            raise ValueError(f"push_encoded takes one face (batch 1), got {len(encoded)}")
        slot = self._new_slot(track_id, frame_key, None, cut_before)
        with torch.inference_mode(), self.transfer.on_stream():
            self.transfer.adopt([encoded.logits, *encoded.state.values()])
            self._store_encoded(slot, encoded)
        return self._decode_ready(force=False)

    def end_track(self, track_id: Hashable) -> list[RestoredFace]:
        """Declare that a track gets no more crops, so its last frames need no lookahead.

        Returns the faces finished by this call. The track's last faces may still come in a
        later call (when a full decode batch is ready) or from :meth:`flush`.
        """
        track = self._tracks.get(track_id)
        if track is None:
            raise KeyError(f"unknown track {track_id!r}")
        track.ended = True
        return self._decode_ready(force=False)

    def flush(self) -> list[RestoredFace]:
        """End every track, encode and decode everything left; returns the remaining faces."""
        for track in self._tracks.values():
            track.ended = True
        self._encode_pending()
        out = self._decode_ready(force=True)
        out += self._harvest(everything=True)
        self._tracks.clear()
        return out

    @property
    def held_frames(self) -> int:
        """Frames currently held (encoded or not) over all tracks."""
        return sum(len(t.slots) for t in self._tracks.values())

    def held_tensors(self) -> list[Tensor]:
        """Every tensor the engine's window holds now (decoder states, codes, evidence,
        statistics), to measure what it keeps (`held_bytes`)."""
        out: list[Tensor] = []
        for track in self._tracks.values():
            for slot in track.slots:
                out += [t for t in (slot.top, slot.evidence) if t is not None]
                out += list((slot.state or {}).values()) + list(slot.stats.values())
        return out

    @property
    def held_bytes(self) -> int:
        """Bytes of the storages behind `held_tensors` (each storage once, whole: a view
        into a larger tensor counts all of it, since it keeps all of it alive)."""
        storages = {}
        for t in self.held_tensors():
            st = t.untyped_storage()
            storages[(st.device, st.data_ptr())] = st.nbytes()
        return sum(storages.values())

    # ------------------------------------------------------------------ internals
    def _check_crop(self, crop: np.ndarray) -> np.ndarray:
        arr = np.asarray(crop)
        if arr.dtype != np.uint8 or arr.shape != (self.size, self.size, 3):
            raise ValueError(
                f"crop must be a ({self.size}, {self.size}, 3) uint8 RGB array, got {arr.dtype} {arr.shape}"
            )
        return np.ascontiguousarray(arr)

    def _clock(self) -> float:
        if not self.profile:
            return 0.0
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _autocast(self):
        # A model already cast to a dtype (load_restorer(dtype=...)) runs as it is; a float32
        # model asked for fp16/bf16 runs under autocast (weights stay float32).
        if self.dtype == torch.float32 or self.dtype == self._input_dtype:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def _network_input(self, crops: list[np.ndarray]) -> Tensor:
        """(B, 3, S, S) network input of uint8 RGB crops: stacked once into a host tensor
        (pinned on CUDA), sent up non-blocking and looked up there; on the CPU numpy's look-up."""
        host = stage_crops(crops, pin=self.transfer.pinned)
        if self.device.type == "cpu":
            return crops_to_tensor(host.numpy(), device=self.device, dtype=self._input_dtype)
        return lookup_on_device(self.transfer.to_device(host), self._input_dtype)

    def _encode_pending(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[: self.batch_size], self._pending[self.batch_size :]
            t0 = self._clock()
            with torch.inference_mode(), self.transfer.on_stream():
                x = self._network_input([s.crop for s in batch])
                with self._autocast():
                    enc = self.model.encode(x)
                t1 = self._clock()
                self.timings["encode"] += t1 - t0
                self.counters["encode_calls"] += 1
                for i, slot in enumerate(batch):
                    self._store_encoded(slot, enc.select(i))
                del enc, x  # the batch's own tensors go now; each slot holds copies of its face
            self.timings["smooth"] += self._clock() - t1  # evidence and statistics
        held = sum(1 for t in self._tracks.values() for s in t.slots if s.state is not None)
        self.counters["max_held_states"] = max(self.counters["max_held_states"], held)

    def _store_encoded(self, slot: _Slot, one: Encoded) -> None:
        """Keep what the window needs of one encoded face (batch-1 ``Encoded``), each tensor
        in storage of its own (a view of the encode batch would keep the batch alive)."""
        logits = one.logits[0].float()
        slot.top = logits.argmax(dim=-1)
        slot.state = {k: _own(v) for k, v in one.state.items()}
        if self.radius > 0:
            slot.evidence = _own(token_evidence(logits, self.config.confidence, self.config.temperature))
            for key in self.stat_keys:
                if key in slot.state:
                    slot.stats[key] = _own(channel_stats(slot.state[key][0]))
        slot.crop = None
        slot.is_encoded = True
        self.counters["encoded"] += 1

    def _shot_closed(self, track: _Track, shot: int) -> bool:
        return track.ended or track.shot > shot

    def _is_ready(self, track: _Track, pos: int) -> bool:
        """Frame ``track.slots[pos]`` can be decoded: its lookahead window is encoded."""
        slot = track.slots[pos]
        if slot.decoded or not slot.is_encoded:
            return False
        need = self.radius
        seen = 0
        for nxt in list(track.slots)[pos + 1 : pos + 1 + need]:
            if nxt.shot != slot.shot:
                return True  # the shot ended before the window did
            if not nxt.is_encoded:
                return False
            seen += 1
        return seen == need or self._shot_closed(track, slot.shot)

    def _ready_slots(self) -> list[tuple[_Track, int]]:
        ready = []
        for track in self._tracks.values():
            for pos, slot in enumerate(track.slots):
                if slot.decoded:
                    continue
                if not self._is_ready(track, pos):
                    break  # readiness is monotonic along a track
                ready.append((track, pos))
        ready.sort(key=lambda tp: tp[0].slots[tp[1]].seq)
        return ready

    def _window(self, track: _Track, pos: int, radius: int) -> list[_Slot]:
        """Slots within +-radius of ``track.slots[pos]`` in the same shot, in frame order."""
        slots = track.slots
        centre = slots[pos]
        lo = pos
        while lo > 0 and centre.index - slots[lo - 1].index <= radius and slots[lo - 1].shot == centre.shot:
            lo -= 1
        hi = pos
        while hi + 1 < len(slots) and slots[hi + 1].index - centre.index <= radius and slots[hi + 1].shot == centre.shot:
            hi += 1
        return [slots[i] for i in range(lo, hi + 1)]

    def _codes_and_state(self, track: _Track, pos: int) -> tuple[Tensor, dict[str, Tensor]]:
        """Smoothed codes (T,) and the (possibly smoothed) batch-1 state of one frame."""
        slot = track.slots[pos]
        window = self._window(track, pos, self.radius)
        if len(window) == 1:
            codes = slot.top
        else:
            weights = [self.kernel[abs(s.index - slot.index)] for s in window]
            codes = combine_evidence([s.evidence for s in window], weights)
        state = dict(slot.state)
        if len(window) > 1:
            weights = [self.kernel[abs(s.index - slot.index)] for s in window]
            for key in self.stat_keys:
                if key in slot.stats:
                    target = average_stats([s.stats[key] for s in window], weights)
                    state[key] = restyle(state[key], target[None])
        if self.feature_radius > 0:
            fwin = [s for s in window if abs(s.index - slot.index) <= self.feature_radius]
            if len(fwin) > 1:
                fweights = [self.kernel[abs(s.index - slot.index)] for s in fwin]
                total = float(sum(fweights))
                for key in self._feature_keys_of(state):
                    acc = fwin[0].state[key].float() * fweights[0]
                    for s, w in zip(fwin[1:], fweights[1:]):
                        acc = acc + s.state[key].float() * w
                    state[key] = (acc / total).to(state[key].dtype)
        return codes, state

    def _feature_keys_of(self, state: dict[str, Tensor]) -> list[str]:
        if self.feature_keys == "all_enc":
            return [k for k in state if k.startswith("enc_")]
        return [k for k in self.feature_keys if k in state]

    def _decode_ready(self, force: bool) -> list[RestoredFace]:
        while True:
            ready = self._ready_slots()
            if not ready or (len(ready) < self.batch_size and not force):
                break
            batch = ready[: self.batch_size]
            t0 = self._clock()
            with torch.inference_mode(), self.transfer.on_stream():
                codes, states = [], []
                for track, pos in batch:
                    c, st = self._codes_and_state(track, pos)
                    codes.append(c)
                    states.append(st)
                t_gather = self._clock()
                code_batch = torch.stack(codes).to(self.device)
                state_batch = {k: torch.cat([st[k] for st in states]) for k in states[0]}
                del codes, states
                t1 = self._clock()
                self.timings["gather"] += t1 - t_gather
                with self._autocast():
                    out = self.model.decode(code_batch, state_batch, self.fidelity)
                out = out.float()
                # the batch's crops, codes (and raw outputs) come down together: one copy
                parts = [crops_as_uint8(out), code_batch.to(torch.int64)] + ([out] if self.keep_output else [])
                copy = self.transfer.to_host(parts)
                del parts, out, state_batch, code_batch
            self.counters["host_copies"] += 1
            self.timings["smooth"] += t_gather - t0
            self.timings["decode"] += self._clock() - t1
            self.counters["decode_calls"] += 1
            faces = []
            for track, pos in batch:
                slot = track.slots[pos]
                slot.decoded = True
                self.counters["decoded"] += 1
                faces.append((slot.track_id, slot.frame_key, slot.cut_before))
            self._in_flight.append((copy, faces))
            self._evict()
        return self._harvest(everything=False)

    def _harvest(self, everything: bool) -> list[RestoredFace]:
        """The faces of decoded batches, oldest batch first: all of them when `everything`;
        else all but the newest `_max_in_flight` (CUDA: 1, whose copy lands while the caller
        prepares the next batch; it comes back with the next call; the CPU: 0)."""
        results: list[RestoredFace] = []
        while self._in_flight and (everything or len(self._in_flight) > self._max_in_flight):
            copy, faces = self._in_flight.popleft()
            t0 = self._clock()
            tensors = copy.tensors()
            images, codes = tensors[0].numpy(), tensors[1].numpy()
            outputs = tensors[2] if self.keep_output else None
            for i, (track_id, frame_key, cut_before) in enumerate(faces):
                results.append(
                    RestoredFace(
                        track_id=track_id,
                        frame_key=frame_key,
                        image=images[i],
                        codes=codes[i],
                        cut_before=cut_before,
                        output=outputs[i] if outputs is not None else None,
                    )
                )
            self.timings["decode"] += self._clock() - t0
        return results

    def _evict(self) -> None:
        """Drop frames no undecoded or future frame can pool; free decoder states early."""
        keep_radius = self.radius
        for track_id in list(self._tracks):
            track = self._tracks[track_id]
            slots = track.slots
            for slot in slots:
                # a decoded frame's decoder state is needed only for feature smoothing
                if slot.decoded:
                    slot.top = None
                    if self.feature_radius == 0:
                        slot.state = None
            while slots and slots[0].decoded:
                first = slots[0]
                later = [s for s in list(slots)[1 : 1 + keep_radius] if s.shot == first.shot]
                closed = self._shot_closed(track, first.shot) or any(s.shot != first.shot for s in slots)
                covered = len(later) == keep_radius or closed
                if covered and all(s.decoded for s in later):
                    slots.popleft()
                else:
                    break
            if track.ended and not slots:
                del self._tracks[track_id]


def _own(t: Tensor) -> Tensor:
    """`t` in storage of its own: the tensor itself when it already is (contiguous, the
    whole of its storage), else a compact copy, so keeping it keeps nothing else alive."""
    if t.is_contiguous() and t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size():
        return t
    return t.clone(memory_format=torch.contiguous_format)


@dataclass
class SequenceResult:
    """A whole track restored by :func:`restore_sequence`.

    Attributes:
        images: (F, S, S, 3) uint8 RGB restored crops.
        codes: (F, T) int64 chosen codes.
        outputs: (F, 3, S, S) float32 raw network outputs, or None unless asked for.
    """

    images: np.ndarray
    codes: np.ndarray
    outputs: Tensor | None = None


def restore_sequence(
    model: CodeRestorer,
    crops: Sequence[np.ndarray] | np.ndarray,
    radius: int = 4,
    fidelity: float = 0.5,
    cut_before: Sequence[bool] | None = None,
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> SequenceResult:
    """Restore one whole track held in memory (a convenience over :class:`TemporalRestorer`).

    Args:
        model: a CodeRestorer.
        crops: F aligned crops, (S, S, 3) uint8 RGB each (or an (F, S, S, 3) array).
        radius, fidelity, batch_size, device, dtype: as for :class:`TemporalRestorer`.
        cut_before: optional F bools, true where a new shot starts.
        **options: further :class:`TemporalRestorer` keyword options (``smooth_stats``,
            ``smooth_features``, ``keep_output``, ...).

    Returns:
        :class:`SequenceResult` in frame order.
    """
    count = len(crops)
    cuts = [False] * count if cut_before is None else [bool(c) for c in cut_before]
    if len(cuts) != count:
        raise ValueError(f"cut_before has {len(cuts)} entries for {count} crops")
    engine = TemporalRestorer(model, radius=radius, fidelity=fidelity, batch_size=batch_size, device=device, dtype=dtype, **options)
    faces: list[RestoredFace] = []
    for t in range(count):
        faces.extend(engine.push(0, t, crops[t], cut_before=cuts[t]))
    faces.extend(engine.flush())
    faces.sort(key=lambda f: f.frame_key)
    if [f.frame_key for f in faces] != list(range(count)):
        raise RuntimeError("temporal engine lost or duplicated frames")  # a bug, not user error
    outputs = torch.stack([f.output for f in faces]) if engine.keep_output and faces else None
    return SequenceResult(
        images=np.stack([f.image for f in faces]) if faces else np.zeros((0, model.input_size, model.input_size, 3), np.uint8),
        codes=np.stack([f.codes for f in faces]) if faces else np.zeros((0, model.num_tokens), np.int64),
        outputs=outputs,
    )


def encode_logits(
    model: CodeRestorer,
    crops: Iterable[np.ndarray],
    batch_size: int = 8,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Code logits of a track's crops, without decoding (to study smoothing cheaply).

    Args:
        crops: (S, S, 3) uint8 RGB aligned crops.

    Returns:
        (F, T, N) float32 CPU logits; feed them to
        :func:`videofix.restore.smoothing.smooth_codes` for any radius.
    """
    dev = torch.device(device)
    params = getattr(model, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    in_dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    plain = dtype == torch.float32 or dtype == in_dtype
    ctx = nullcontext() if plain else torch.autocast(device_type=dev.type, dtype=dtype)
    chunks: list[Tensor] = []
    batch: list[np.ndarray] = []

    def run() -> None:
        x = crops_to_tensor(batch, device=dev, dtype=in_dtype)
        with torch.inference_mode(), ctx:
            chunks.append(model.encode(x).logits.float().cpu())
        batch.clear()

    for crop in crops:
        batch.append(np.asarray(crop))
        if len(batch) == batch_size:
            run()
    if batch:
        run()
    if not chunks:
        return torch.zeros((0, model.num_tokens, model.codebook_size))
    return torch.cat(chunks)
