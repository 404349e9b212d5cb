"""The batch coalescer of a restorer actor: the network calls of concurrent segment engines
merged into full batches. No Ray here: it is plain threads around the network."""

from __future__ import annotations

import threading


class CoalescingRestorer:
    """A `CodeRestorer` that merges the network calls of concurrent callers into one batch.

    A restorer actor serves many segment tasks at once, each through its own
    `TemporalRestorer` in its own actor thread. Each engine calls `encode` / `decode` with its
    own (often partial) batch; the calls waiting at the same time are concatenated along the
    batch, run as one network call and split back. One call runs at a time, so the GPU is
    never shared between threads. Results equal per-caller calls up to the network's batch
    invariance, which `FixedBatchRestorer` (the model given here) makes exact.

    Args:
        model: the network (`encode(x)`, `decode(codes, state, fidelity)`, `input_size`...).
        max_batch: most faces merged into one call (a caller's own batch is never split).
    """

    fixed_batch = True  # wraps a FixedBatchRestorer: make_engine must not wrap it again
    # one caller's thread runs the merged call of all: the engines keep their GPU work on the
    # one current stream instead of a stream each (videofix.restore.transfer.HostTransfer)
    shared_stream = True

    def __init__(self, model, max_batch: int):
        self.model = model
        self.input_size = model.input_size
        self.num_tokens = model.num_tokens
        self.codebook_size = model.codebook_size
        self.max_batch = max(1, int(max_batch))
        self._cond = threading.Condition()
        self._queue: list[dict] = []
        self._busy = False
        self.calls = 0
        self.faces = 0
        self.merged_calls = 0

    def parameters(self):
        return self.model.parameters()

    def encode(self, x):
        return self._submit(("encode",), (x,), len(x))

    def decode(self, codes, state, fidelity):
        return self._submit(("decode", float(fidelity)), (codes, state), len(codes))

    def _submit(self, kind: tuple, args: tuple, size: int):
        req = {"kind": kind, "args": args, "size": size, "done": False, "result": None, "error": None}
        with self._cond:
            self._queue.append(req)
            while not req["done"] and self._busy:
                self._cond.wait()
            if req["done"]:
                return self._result(req)
            self._busy = True  # this thread runs its own request and those of its kind waiting
            batch, total = [req], size
            for r in self._queue:
                if r is not req and r["kind"] == kind and total + r["size"] <= self.max_batch:
                    batch.append(r)
                    total += r["size"]
            taken = {id(r) for r in batch}  # by identity: requests hold tensors
            self._queue = [r for r in self._queue if id(r) not in taken]
        try:
            self._run(kind, batch)
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
        return self._result(req)

    @staticmethod
    def _result(req):
        if req["error"] is not None:
            raise req["error"]
        return req["result"]

    def _run(self, kind: tuple, batch: list[dict]) -> None:
        import torch

        try:
            sizes = [r["size"] for r in batch]
            if kind[0] == "encode":
                if len(batch) == 1:
                    outs = [self.model.encode(batch[0]["args"][0])]
                else:
                    enc = self.model.encode(torch.cat([r["args"][0] for r in batch]))
                    outs, a = [], 0
                    for n in sizes:
                        outs.append(enc.select(slice(a, a + n)))
                        a += n
            else:
                if len(batch) == 1:
                    outs = [self.model.decode(batch[0]["args"][0], batch[0]["args"][1], kind[1])]
                else:
                    states = [r["args"][1] for r in batch]
                    state = {k: torch.cat([st[k] for st in states]) for k in states[0]}
                    out = self.model.decode(torch.cat([r["args"][0] for r in batch]), state, kind[1])
                    outs = list(torch.split(out, sizes))
            self.calls += 1
            self.merged_calls += len(batch) > 1
            self.faces += sum(sizes)
            for r, o in zip(batch, outs):
                r["result"], r["done"] = o, True
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of the batch
            for r in batch:
                r["error"], r["done"] = exc, True
