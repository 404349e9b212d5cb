"""Host <-> device traffic of the temporal engine (issue 20): one copy down per decoded batch,
no per-face `.cpu()` nor `.item()`, decoder states kept in storage of their own (never views
that keep a whole encode batch alive), and the CUDA code paths (packing, device look-up, the
batch kept in flight) run on the CPU with the same results.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videofix.models.synthetic import formula_codeformer
from videofix.restore.batching import fixed_batch_model
from videofix.restore.crops import crops_to_tensor, lookup_on_device, stage_crops
from videofix.restore.temporal import TemporalRestorer
from videofix.restore.transfer import HostTransfer

TRACKS, FRAMES, S = 3, 4, 64
# a tiny CodeFormer (64x64, 8x8 tokens, fusion at three levels): the engine's logic, not the
# network, is what these tests look at, and it runs about 0.06 s a face here
TINY = dict(img_size=S, nf=32, ch_mult=(1, 1, 1, 2), res_blocks=1, attn_resolutions=(8,), emb_dim=32,
            codebook_size=64, dim_embd=64, n_head=4, n_layers=1, connect_list=("16", "32", "64"))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on the shared 2-core machine two threads of a tiny network run 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return formula_codeformer(TINY)


@pytest.fixture(scope="module")
def crops():
    return np.random.default_rng(5).integers(0, 256, (TRACKS, FRAMES, S, S, 3), dtype=np.uint8)


def _run(engine, crops, after_push=None) -> list:
    """Staggered tracks (track k appears at frame k, cut at frame 2k + 1): the encoder's and
    the decoder's batches do not line up, as in a film."""
    out = []
    for f in range(FRAMES):
        for k in range(TRACKS):
            if f < k:
                continue
            out += engine.push(k, f, crops[k, f], cut_before=(f == 2 * k + 1))
            if after_push is not None:
                after_push(engine)
    return out + engine.flush()


def _inside(array: np.ndarray, buffer: torch.Tensor) -> bool:
    start, size = buffer.data_ptr(), buffer.numel() * buffer.element_size()
    at = array.__array_interface__["data"][0]
    return start <= at and at + array.nbytes <= start + size


def test_each_decoded_batch_comes_down_in_one_copy_without_per_face_syncs(model, crops, monkeypatch):
    calls = {"cpu": 0, "item": 0}
    for name in calls:
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _name=name, _original=original, **k):
            calls[_name] += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counted)
    engine = TemporalRestorer(fixed_batch_model(model, "cpu", 3), radius=1, fidelity=0.5, batch_size=3,
                              keep_output=True)
    copies = []
    to_host = engine.transfer.to_host
    engine.transfer.to_host = lambda tensors: copies.append(to_host(tensors)) or copies[-1]
    faces = _run(engine, crops)
    monkeypatch.undo()
    assert len(faces) == sum(FRAMES - k for k in range(TRACKS))
    assert calls == {"cpu": 0, "item": 0}  # no per-face (nor per-batch) .cpu() / .item() sync
    batches = engine.counters["decode_calls"]
    assert batches >= 3 and engine.counters["host_copies"] == batches == engine.transfer.to_host_copies
    # every face's crop, codes and raw output are views of its batch's one host buffer
    assert len(copies) == batches
    used = set()
    for face in faces:
        (home,) = [i for i, c in enumerate(copies) if _inside(face.image, c.buffer)]
        assert _inside(face.codes, copies[home].buffer) and _inside(face.output.numpy(), copies[home].buffer)
        used.add(home)
        assert face.image.shape == (S, S, 3) and face.codes.dtype == np.int64 and face.output.dtype == torch.float32
    assert used == set(range(batches))


def test_a_batch_kept_in_flight_gives_the_same_faces_later(model, crops):
    """CUDA keeps the newest decoded batch in flight while the caller works; run here on the
    CPU that policy returns the same faces, each batch one call later, all by `flush`."""
    now = TemporalRestorer(fixed_batch_model(model, "cpu", 3), radius=1, fidelity=0.5, batch_size=3)
    later = TemporalRestorer(fixed_batch_model(model, "cpu", 3), radius=1, fidelity=0.5, batch_size=3)
    later._max_in_flight = 1  # the CUDA policy
    faces_now = _run(now, crops)
    before_flush = []
    faces_later = _run(later, crops, after_push=lambda e: before_flush.append(len(e._in_flight)))
    assert max(before_flush) == 1  # a batch was held back while pushing went on
    key = lambda r: (r.track_id, r.frame_key)  # noqa: E731
    faces_now, faces_later = sorted(faces_now, key=key), sorted(faces_later, key=key)
    assert [key(r) for r in faces_now] == [key(r) for r in faces_later] and len(faces_now) == 9
    for a, b in zip(faces_now, faces_later):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.codes, b.codes)


def test_held_decoder_states_own_their_storage(model, crops):
    """What the window keeps is exactly the faces' own tensors: no view into an encode batch
    (which kept the whole batch alive: here 1.9x the bytes, and up to the batch size)."""
    worst = []

    def check(engine):
        tensors = engine.held_tensors()
        own = sum(t.numel() * t.element_size() for t in tensors)
        assert engine.held_bytes == own
        worst.append(own)

    engine = TemporalRestorer(fixed_batch_model(model, "cpu", 3), radius=1, fidelity=0.5, batch_size=3,
                              smooth_features="all_enc")
    _run(engine, crops, after_push=check)
    assert max(worst) > 0 and engine.held_tensors() == []


def test_one_host_copy_gives_back_every_tensor_exactly():
    transfer = HostTransfer("cpu")
    assert not transfer.pinned and transfer.stream is None
    g = torch.Generator().manual_seed(0)
    given = [torch.randint(0, 256, (3, 5, 7, 3), dtype=torch.uint8, generator=g),
             torch.randint(-2**40, 2**40, (3, 11), dtype=torch.int64, generator=g),
             torch.randn(3, 3, 5, 5, generator=g), torch.randn(2, 3, generator=g).to(torch.bfloat16),
             torch.randn(4, 6, generator=g)[:, ::2]]  # not contiguous
    copy = transfer.to_host(given)
    assert copy.ready()
    back = copy.tensors()
    for a, b in zip(given, back):
        assert b.dtype == a.dtype and b.shape == a.shape and torch.equal(a, b)
        assert b.untyped_storage().data_ptr() == copy.buffer.untyped_storage().data_ptr()
    assert transfer.to_host_copies == 1
    host = transfer.host_empty((2, 3), torch.uint8)
    assert not host.is_pinned() and transfer.to_device(host) is host


def test_the_device_look_up_equals_the_cpu_one():
    rng = np.random.default_rng(1)
    crops = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    crops[0, 0, :4, 0] = [0, 127, 128, 255]
    staged = stage_crops(list(crops))
    assert staged.dtype == torch.uint8 and not staged.is_pinned() and np.array_equal(staged.numpy(), crops)
    assert torch.equal(lookup_on_device(staged), crops_to_tensor(crops))
    half = lookup_on_device(stage_crops(crops[1]), torch.bfloat16)
    assert torch.equal(half, crops_to_tensor(crops[1], dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="one size"):
        stage_crops([crops[0], crops[0, :8]])
    with pytest.raises(ValueError, match="uint8"):
        stage_crops([crops[0].astype(np.float32)])
