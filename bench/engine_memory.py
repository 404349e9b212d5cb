"""What the temporal engine keeps per face, and its CPU rate, with the small CodeFormer.

    PYTHONPATH=. python bench/engine_memory.py [--tracks 3] [--frames 12] [--batch 8] [--radius 2]

Prints the bytes of the storages the engine holds per held encoded face (`held_bytes`
counted over unique storages, so a view into a batch counts the whole batch) against the
bytes of the face's own tensors, and faces/s on the CPU (fp32, formula weights).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def held_storages(engine) -> tuple[int, int, int]:
    """(bytes of the unique storages the engine's slots hold, bytes of the tensors themselves, held faces)."""
    if hasattr(engine, "held_tensors"):
        tensors = engine.held_tensors()
        faces = sum(1 for t in engine._tracks.values() for s in t.slots if s.state is not None)
        return engine.held_bytes, sum(t.numel() * t.element_size() for t in tensors), faces
    seen: dict[int, int] = {}
    own = 0
    faces = 0
    for track in engine._tracks.values():
        for slot in track.slots:
            tensors = []
            enc = getattr(slot, "encoded", None)
            if enc is not None:
                tensors += [enc.logits, *enc.state.values()]
            for name in ("state", "evidence"):
                value = getattr(slot, name, None)
                if isinstance(value, dict):
                    tensors += list(value.values())
                elif isinstance(value, torch.Tensor):
                    tensors.append(value)
            tensors += list(getattr(slot, "stats", {}).values())
            codes = getattr(slot, "codes", None)
            if isinstance(codes, torch.Tensor):
                tensors.append(codes)
            if enc is not None or getattr(slot, "state", None):
                faces += 1
            for t in tensors:
                st = t.untyped_storage()
                seen[st.data_ptr()] = st.nbytes()
                own += t.numel() * t.element_size()
    return sum(seen.values()), own, faces


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tracks", type=int, default=3)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--radius", type=int, default=2)
    args = ap.parse_args()
    from videofix.models.synthetic import formula_codeformer, small_codeformer_config
    from videofix.restore.batching import fixed_batch_model
    from videofix.restore.temporal import TemporalRestorer

    torch.set_num_threads(1)
    model = formula_codeformer(small_codeformer_config())
    engine = TemporalRestorer(fixed_batch_model(model, "cpu", args.batch), radius=args.radius, fidelity=0.5,
                              batch_size=args.batch)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (args.tracks, args.frames, 128, 128, 3), dtype=np.uint8)
    worst_ratio, worst_held, worst_own = 0.0, 0, 0
    done = 0
    t0 = time.perf_counter()
    for f in range(args.frames):
        for k in range(args.tracks):
            # track k appears at frame k and has a cut at frame 2k + 1: batches of the encoder
            # and of the decoder do not line up, as in a film
            if f < k:
                continue
            done += len(engine.push(k, f, crops[k, f], cut_before=(f == 2 * k + 1)))
            held, own, faces = held_storages(engine)
            if faces and held / own > worst_ratio:
                worst_ratio, worst_held, worst_own = held / own, held / faces, own / faces
    done += len(engine.flush())
    seconds = time.perf_counter() - t0
    print(f"faces {done}, {done / seconds:.2f} faces/s "
          f"(CPU, 1 thread, small config, batch {args.batch}, R {args.radius})")
    print(f"held bytes per held face (unique storages): {worst_held / 1e6:.3f} MB; "
          f"the faces' own tensors: {worst_own / 1e6:.3f} MB (worst moment, {worst_ratio:.2f}x)")


if __name__ == "__main__":
    main()
