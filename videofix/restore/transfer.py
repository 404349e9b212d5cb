"""The one seam between host and device memory of the temporal engine.

On a CUDA device the engine's network work runs on its own stream, crops go up from
page-locked (pinned) host memory with non-blocking copies, and everything a decoded batch
hands back (uint8 crops, codes, optional raw outputs) comes down in **one** non-blocking
copy into one pinned buffer, read once its event has fired: no per-face copy, no per-face
synchronisation, and the host is free to prepare the next batch while the GPU works.

The same code runs on the CPU, where pinning, the stream and the event are skipped (the
bytes are already in host memory): the packing and unpacking below are exercised there
too, and give exactly the tensors they were given (bytes are copied, never converted).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
from torch import Tensor

__all__ = ["HostCopy", "HostTransfer"]

_ALIGN = 16  # every packed tensor starts on a 16-byte boundary, so any dtype can view its bytes


class HostCopy:
    """A device-to-host copy under way: `tensors()` waits for it (once) and gives the host
    tensors, in the order given, each a view of the one host buffer."""

    def __init__(self, buffer: Tensor, layout: list[tuple[int, int, torch.dtype, torch.Size]], event=None):
        self.buffer = buffer
        self._layout = layout
        self._event = event

    def ready(self) -> bool:
        """Whether the copy has landed (always on the CPU)."""
        return self._event is None or self._event.query()

    def tensors(self) -> list[Tensor]:
        if self._event is not None:
            self._event.synchronize()
            self._event = None
        return [self.buffer[a:b].view(dtype).view(shape) for a, b, dtype, shape in self._layout]


class HostTransfer:
    """Host <-> `device` traffic of one engine, counted (``to_device``, ``to_host``).

    ``pinned``: host staging buffers are page-locked (CUDA only). ``stream``: the CUDA stream
    the engine's network work runs on (None elsewhere); `on_stream()` enters it.
    own_stream: False keeps the caller's current stream, for a network shared by engines in
    several threads (`videofix.pipeline.ray.coalescer`: one thread runs the merged call of
    all, so their tensors must live on one stream).
    """

    def __init__(self, device: torch.device | str, own_stream: bool = True):
        self.device = torch.device(device)
        self.pinned = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.pinned and own_stream else None
        self.to_device_copies = 0
        self.to_host_copies = 0

    def on_stream(self):
        """Context for the engine's network work: its own CUDA stream (which first waits for
        the work already queued on the caller's stream, e.g. tensors it was handed)."""
        if self.stream is None:
            return nullcontext()
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        return torch.cuda.stream(self.stream)

    def host_empty(self, shape: Sequence[int], dtype: torch.dtype) -> Tensor:
        """An uninitialised host tensor to fill and send up (pinned on CUDA)."""
        return torch.empty(tuple(shape), dtype=dtype, pin_memory=self.pinned)

    def adopt(self, tensors: Sequence[Tensor]) -> None:
        """Tensors made on the caller's stream, kept and read on the engine's: their memory
        is not handed back to the caller's stream until the engine's work on them is done."""
        if self.stream is None:
            return
        for t in tensors:
            if t.is_cuda:
                t.record_stream(self.stream)

    def to_device(self, host: Tensor) -> Tensor:
        """`host` on the device: a non-blocking copy from pinned memory (the tensor itself on
        the CPU)."""
        if self.device.type == "cpu":
            return host
        self.to_device_copies += 1
        return host.to(self.device, non_blocking=self.pinned)

    def to_host(self, tensors: Sequence[Tensor]) -> HostCopy:
        """Start one device-to-host copy of all `tensors` (their bytes packed into one
        buffer); the returned `HostCopy` gives them back on the host, exactly."""
        layout: list[tuple[int, int, torch.dtype, torch.Size]] = []
        parts: list[Tensor] = []
        offset = 0
        for t in tensors:
            raw = t.detach().contiguous().view(-1).view(torch.uint8)
            size = raw.numel()
            layout.append((offset, offset + size, t.dtype, t.shape))
            parts.append(raw)
            pad = -size % _ALIGN
            if pad:
                parts.append(raw.new_zeros(pad))
            offset += size + pad
        packed = torch.cat(parts) if len(parts) > 1 else parts[0].clone()
        self.to_host_copies += 1
        if packed.device.type == "cpu":
            return HostCopy(packed, layout)
        buffer = torch.empty(packed.shape, dtype=torch.uint8, pin_memory=self.pinned)
        buffer.copy_(packed, non_blocking=self.pinned)
        event = None
        if packed.device.type == "cuda":  # read once this fires; nothing waits before that
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(packed.device))
        return HostCopy(buffer, layout, event)
