"""`videofix.pipeline.shared.SharedFrames` on its own: the hand-offs between pass 1 (the tap)
and pass 2 (the source) that a real run reaches only in rare timings. Real decoded frames of a
real clip; the end-to-end runs are in tests/test_feed.py."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import media
from videofix.io import open_video
from videofix.pipeline.shared import SharedFrames

FRAMES = 10


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("shared") / "clip.mkv"
    rng = np.random.default_rng(3)
    media.make_clip(path, frames=FRAMES, size=(64, 48), fps=25, codec="ffv1", pix_fmt="yuv420p", audio=False,
                    content=lambda i: rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return path


def frame_bytes(clip) -> int:
    with open_video(clip) as reader:
        first = next(iter(reader))
        return sum(p.nbytes for p in first.picture.planes)


def pictures(frames) -> list:
    return [(f.index, f.pts, tuple(p.copy() for p in f.picture.planes)) for f in frames]


def same(a, b) -> bool:
    return len(a) == len(b) and all(x[0] == y[0] and x[1] == y[1] and all(np.array_equal(p, q) for p, q in
                                                                       zip(x[2], y[2])) for x, y in zip(a, b))


def truth(clip) -> list:
    with open_video(clip) as reader:
        return pictures(reader)


def test_pass1_stopping_early_hands_the_rest_to_pass2s_own_decode(clip):
    """Pass 1 reads 4 frames and stops (an error or Ctrl-C in its thread): pass 2 gets those 4
    and decodes the other 6 itself, the same frames, never waiting for frames that will not come."""
    shared = SharedFrames(lambda: open_video(clip), 1 << 30, lambda: False)
    with open_video(clip) as reader:
        tap = shared.tap(reader)
        for _ in range(4):
            next(tap)
        tap.close()
    with shared.source() as source:
        got = pictures(source)
    assert same(got, truth(clip))
    r = shared.report()
    assert r["overflow_at"] == 4 and r["overflow_why"] == "pass 1 stopped reading", r
    assert r["frames_shared"] == 4 and r["frames_skipped_again"] == 4 and r["frames_decoded_again"] == 6, r


def test_pass1_ending_before_its_first_frame_leaves_pass2_its_own_decode(clip):
    """Pass 1's thread ends before its reader reached the tap (an error first): pass 2 decodes
    every frame itself instead of waiting."""
    shared = SharedFrames(lambda: open_video(clip), 1 << 30, lambda: False)
    shared.pass1_ended()
    with shared.source() as source:
        got = pictures(source)
    assert same(got, truth(clip))
    r = shared.report()
    assert r["overflow_at"] == 0 and r["frames_shared"] == 0 and r["frames_decoded_again"] == FRAMES, r


def test_pass1_lets_go_when_the_memory_is_full_and_pass2_waits_for_it(clip):
    """Room for 3 frames, pass 2 waiting for pass 1 (its gate): pass 1 keeps 3, lets go at the
    4th instead of waiting for room, and reads on; pass 2 decodes from there itself."""
    shared = SharedFrames(lambda: open_video(clip), 3 * frame_bytes(clip), lambda: True)
    with open_video(clip) as reader:
        assert len(list(shared.tap(reader))) == FRAMES  # pass 1 was never held up
    with shared.source() as source:
        got = pictures(source)
    assert same(got, truth(clip))
    r = shared.report()
    assert r["overflow_at"] == 3 and "shot longer than the decode memory" in r["overflow_why"], r
    assert r["frames_shared"] == 3 and r["frames_decoded_again"] == FRAMES - 3, r


def test_pass1_waits_for_room_while_pass2_reads(clip):
    """Room for 2 frames, pass 2 reading (not waiting for pass 1): pass 1 waits for room when full, every
    frame goes through the memory, none is decoded twice, and at most 2 are held."""
    size = frame_bytes(clip)
    shared = SharedFrames(lambda: open_video(clip), 2 * size, lambda: False)
    got: list = []

    def pass2():
        with shared.source() as source:
            got.extend(pictures(source))

    reader_thread = threading.Thread(target=pass2)
    with open_video(clip) as reader:
        tap = shared.tap(reader)
        first = next(tap)  # kept: pass 2 may start
        reader_thread.start()
        rest = list(tap)
    reader_thread.join(timeout=60)
    assert not reader_thread.is_alive()
    assert 1 + len(rest) == FRAMES and first.index == 0
    assert same(got, truth(clip))
    r = shared.report()
    assert r["overflow_at"] is None and r["frames_shared"] == FRAMES and r["frames_decoded_again"] == 0, r
    assert r["peak_mib"] * 2**20 <= 2 * size + 1, r  # never more than the memory given


def test_pass2_stopping_frees_the_memory_and_lets_pass1_go_on(clip):
    """Pass 2 stops (its error): the kept frames are dropped and pass 1, full, goes on without
    keeping more (it would otherwise wait for room for ever)."""
    shared = SharedFrames(lambda: open_video(clip), frame_bytes(clip), lambda: False)
    with open_video(clip) as reader:
        tap = shared.tap(reader)
        next(tap)
        done = threading.Event()

        def read_on():
            for _ in tap:
                pass
            done.set()

        t = threading.Thread(target=read_on)
        t.start()
        with shared._cond:  # pass 1 is full and waits for room when pass 2 stops
            assert shared._cond.wait_for(lambda: shared.waiting_for_room > 0, timeout=60)
        with shared.source():
            pass  # pass 2 leaves at once
        t.join(timeout=60)
    assert done.is_set() and shared.peak_bytes > 0  # it had kept a frame ...
    assert shared._bytes == 0 and not shared._kept  # ... and holds none now
    assert shared.report()["frames_shared"] == 0
