"""Image sequences in and out (DPX, TIFF, PNG, EXR): bit depth, untouched files, atomic output.

The sequences are written here with PyAV's own image encoders; the "scanner" DPX has a
big-endian 10-bit image under a full 2048-byte header with a timecode and a frame rate in
its television header, as film scanners write it. Pictures are compared with an
independent PyAV decode of each file.
"""

from __future__ import annotations

import json
import os
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import media
from conftest import TINY_CODEFORMER, run_cli
from videofix.errors import InputError, OutputError
from videofix.io import OutputFile, open_video, probe

W, H = 48, 32
FORMATS = {  # name: (encoded pixel format, codec, extension, bits)
    "dpx10": ("gbrp10be", "dpx", ".dpx", 10),
    "dpx16": ("rgb48le", "dpx", ".dpx", 16),
    "tiff16": ("rgb48le", "tiff", ".tif", 16),
    "png16": ("rgb48be", "png", ".png", 16),
    "png8": ("rgb24", "png", ".png", 8),
    "exr": ("gbrpf32le", "exr", ".exr", 32),
}


def _encode(frame, codec: str, pix_fmt: str) -> bytes:
    ctx = av.CodecContext.create(codec, "w")
    ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = frame.width, frame.height, pix_fmt, Fraction(1, 24)
    if frame.format.name != pix_fmt:
        frame = frame.reformat(format=pix_fmt)
    frame.pts = 0
    return b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None))


def _planes_frame(planes: list[np.ndarray], pix_fmt: str):
    """An av frame of a planar format filled with `planes` (G, B, R order for gbrp*)."""
    h, w = planes[0].shape
    frame = av.VideoFrame(w, h, pix_fmt)
    for plane, values in zip(frame.planes, planes):
        buf = np.frombuffer(plane, dtype=values.dtype)
        np.lib.stride_tricks.as_strided(buf, shape=(h, w), strides=(plane.line_size, values.dtype.itemsize))[...] = values
    return frame


def image_bytes(rgb: np.ndarray, kind: str) -> bytes:
    """One image file. rgb: (H, W, 3) RGB, uint8 (8-bit), uint16 holding `bits`-bit codes, or
    float32 (EXR, any values)."""
    pix_fmt, codec, _, bits = FORMATS[kind]
    if kind == "exr":
        frame = _planes_frame([rgb[..., 1], rgb[..., 2], rgb[..., 0]], "gbrpf32le")
    elif bits == 8:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
    elif bits == 10:
        frame = _planes_frame([rgb[..., 1], rgb[..., 2], rgb[..., 0]], "gbrp10le")
    else:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le")
    return _encode(frame, codec, pix_fmt)


def scanner_dpx(data: bytes, timecode: int = 0x01000012, fps: float = 24.0) -> bytes:
    """Move libav's DPX (1664-byte header) under a full 2048-byte header with a BCD timecode
    (offset 1920) and a frame rate (film header 1724, television header 1952)."""
    assert data[:4] == b"SDPX"
    off = struct.unpack(">I", data[4:8])[0]
    header = bytearray(data[:off]) + bytearray(2048 - off)
    body = data[off:]
    struct.pack_into(">I", header, 4, 2048)
    struct.pack_into(">I", header, 16, 2048 + len(body))
    struct.pack_into(">I", header, 808, 2048)
    struct.pack_into(">I", header, 1920, timecode)
    struct.pack_into(">f", header, 1724, fps)
    struct.pack_into(">f", header, 1952, fps)
    header[1556:1556 + 8] = b"SCANNER1"  # orientation header: input device name
    return bytes(header) + body


def random_rgb(rng, kind: str, h: int = H, w: int = W) -> np.ndarray:
    bits = FORMATS[kind][3]
    if kind == "exr":
        return (rng.random((h, w, 3), dtype=np.float32) * 1.5 - 0.1).astype(np.float32)  # HDR and negatives
    if bits == 8:
        return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return rng.integers(0, 1 << bits, (h, w, 3), dtype=np.uint16)


def write_sequence(folder: Path, kind: str, frames: int = 3, start: int = 10, scanner: bool = False,
                   content=None, seed: int = 0) -> tuple[str, list[np.ndarray]]:
    """Write a sequence `folder/%04d.ext` numbered from `start`; returns (pattern, RGB arrays)."""
    folder.mkdir(parents=True, exist_ok=True)
    ext = FORMATS[kind][2]
    rng = np.random.default_rng(seed)
    arrays = []
    for i in range(frames):
        rgb = content(i) if content is not None else random_rgb(rng, kind)
        data = image_bytes(rgb, kind)
        if scanner:
            data = scanner_dpx(data, timecode=0x01000012 + i)
        (folder / f"{start + i:04d}{ext}").write_bytes(data)
        arrays.append(rgb)
    return str(folder / f"%04d{ext}"), arrays


def decode_file(path) -> av.VideoFrame:
    codec = {".dpx": "dpx", ".tif": "tiff", ".png": "png", ".exr": "exr"}[Path(path).suffix]
    return av.CodecContext.create(codec, "r").decode(av.Packet(Path(path).read_bytes()))[0]


def samples(frame) -> np.ndarray:
    """(H, W, C) samples of an av frame: to_ndarray's own channel layout (bit-exact)."""
    return frame.to_ndarray()


def paint_box(picture, box=(8, 8, 24, 20), value=0.5):
    """Blend a flat grey box into a Picture (what a pasted face does); returns the aligned box."""
    x0, y0, x1, y1 = picture.align_box(box)
    picture.blend_rgb(np.full((y1 - y0, x1 - x0, 3), value, np.float32), np.ones((y1 - y0, x1 - x0), np.float32),
                      (x0, y0, x1, y1))
    return x0, y0, x1, y1


# ------------------------------------------------------------------------------------ reading
def test_dpx_sequence_reads_at_its_bit_depth_rate_and_numbers(tmp_path):
    pattern, arrays = write_sequence(tmp_path / "scan", "dpx10", frames=4, start=86400, scanner=True)
    info = probe(f"{pattern}@24000/1001")
    assert (info.codec, info.pix_fmt, info.bit_depth) == ("dpx", "gbrp10le", 10)
    assert info.avg_fps == Fraction(24000, 1001) and info.time_base == Fraction(1001, 24000)
    assert info.frame_count == 4 and info.frame_count_exact
    with open_video(f"{pattern}@24000/1001") as reader:
        frames = list(reader)
    assert [f.pts for f in frames] == [0, 1, 2, 3] and reader.report.complete
    for f, rgb in zip(frames, arrays):
        g, b, r = f.picture.planes  # 10-bit codes, not 8-bit ones scaled: the depth is kept
        np.testing.assert_array_equal(np.stack([r, g, b], -1), rgb)
    assert any((rgb % 4).any() for rgb in arrays)
    with open_video(f"{pattern}@24", "0.05:0.1") as reader:  # --range in seconds at the given rate
        assert [f.pts for f in reader] == [2]


@pytest.mark.parametrize("kind", ["dpx16", "tiff16", "png16", "png8"])
def test_16_and_8_bit_sequences_decode_exactly(tmp_path, kind):
    pattern, arrays = write_sequence(tmp_path / kind, kind, frames=2)
    with open_video(pattern) as reader:  # a bare pattern: 24 fps
        assert reader.info.avg_fps == 24
        frames = list(reader)
    for f, rgb in zip(frames, arrays):
        pic = f.picture
        assert pic.bit_depth == FORMATS[kind][3]
        got = pic.planes[0] if pic.layout.kind == "rgb" else np.stack([pic.planes[2], pic.planes[0], pic.planes[1]], -1)
        np.testing.assert_array_equal(got, rgb)


def test_bad_sequences_are_one_line_input_errors(tmp_path):
    pattern, _ = write_sequence(tmp_path / "gap", "png8", frames=4)
    os.unlink(tmp_path / "gap" / "0012.png")
    with pytest.raises(InputError, match=r"frame 0012\.png is missing \(3 files numbered 10 to 13"):
        probe(pattern)
    with pytest.raises(InputError, match="no files match"):
        probe(str(tmp_path / "gap" / "%06d.png"))
    with pytest.raises(InputError, match="folder .* does not exist"):
        probe(str(tmp_path / "nowhere" / "%04d.dpx"))
    with pytest.raises(InputError, match="unknown image format '.jpg'"):
        probe(str(tmp_path / "gap" / "%04d.jpg"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "0001.dpx").write_bytes(b"not a dpx file at all" * 10)
    proc = run_cli("restore", tmp_path / "bad" / "%04d.dpx", "-o", tmp_path / "out" / "%04d.dpx", check_rc=None)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ writing
@pytest.mark.parametrize("kind", list(FORMATS))
def test_only_changed_frames_are_rewritten_and_only_inside_the_face(tmp_path, kind):
    """Frame 1 gets a painted box; frames 0 and 2 must be byte copies of their files, and
    frame 1 must equal its source sample for sample outside the box, in the source's format."""
    scanner = kind == "dpx10"
    pattern, _ = write_sequence(tmp_path / "src", kind, frames=3, scanner=scanner)
    ext = FORMATS[kind][2]
    out = tmp_path / "out" / f"%04d{ext}"
    with open_video(pattern) as reader, OutputFile(pattern, out, reader.info) as o:
        for f in reader:
            if f.index == 1:
                box = paint_box(f.picture)
            o.write(f.picture, f.pts)
    assert sorted(os.listdir(tmp_path / "out")) == [f"{n:04d}{ext}" for n in (10, 11, 12)]
    assert o.writer.frames_copied == 2
    for n in (10, 12):
        assert (tmp_path / "out" / f"{n:04d}{ext}").read_bytes() == (tmp_path / "src" / f"{n:04d}{ext}").read_bytes()
    src, dst = decode_file(tmp_path / "src" / f"0011{ext}"), decode_file(tmp_path / "out" / f"0011{ext}")
    assert dst.format.name == src.format.name  # same depth, same layout
    a, b = samples(src), samples(dst)
    x0, y0, x1, y1 = box
    outside = np.ones(a.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(a[outside], b[outside])  # exact, floats included
    assert (a[~outside] != b[~outside]).any()
    if scanner:  # the scan's own header (timecode, frame rate, device) is kept on the rewritten frame
        assert o.writer.headers_kept == 1
        s, d = (tmp_path / "src" / "0011.dpx").read_bytes(), (tmp_path / "out" / "0011.dpx").read_bytes()
        assert d[:2048] == s[:2048] and len(d) == len(s)
        assert dict(dst.metadata)["timecode"] == "01:00:00:13"


def test_output_is_all_or_nothing_and_never_the_input(tmp_path):
    pattern, _ = write_sequence(tmp_path / "src", "png8", frames=3)
    before = {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}
    out = tmp_path / "new" / "%04d.png"
    with pytest.raises(RuntimeError, match="boom"):
        with open_video(pattern) as reader, OutputFile(pattern, out, reader.info) as o:
            for f in reader:
                o.write(f.picture, f.pts)
                if f.index == 1:
                    raise RuntimeError("boom")
    assert sorted(os.listdir(tmp_path)) == ["src"]  # no folder, no hidden staging folder

    with pytest.raises(OutputError, match="is the input sequence"):
        OutputFile(pattern, pattern, probe(pattern))
    # into an existing folder: files renamed into place, other files left alone, staging gone
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "notes.txt").write_text("keep me")
    (tmp_path / "old" / "0010.png").write_bytes(b"stale")
    with open_video(pattern) as reader, OutputFile(pattern, tmp_path / "old" / "%04d.png", reader.info) as o:
        for f in reader:
            o.write(f.picture, f.pts)
    assert sorted(os.listdir(tmp_path / "old")) == ["0010.png", "0011.png", "0012.png", "notes.txt"]
    assert (tmp_path / "old" / "0010.png").read_bytes() == before["0010.png"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()} == before


def test_video_to_sequence_and_sequence_to_video(tmp_path):
    # video in -> PNG sequence out: numbered from 1, RGB of the source's matrix
    clip = media.make_clip(tmp_path / "v.mkv", frames=4, size=(W, H), codec="ffv1", pix_fmt="yuv444p",
                           colorspace="bt709", audio=True)
    with open_video(clip.path) as reader, OutputFile(clip.path, tmp_path / "png" / "f_%03d.png", reader.info) as o:
        pictures = [(f.picture.to_rgb(), o.write(f.picture, f.pts)) for f in reader]
    assert sorted(os.listdir(tmp_path / "png")) == ["f_001.png", "f_002.png", "f_003.png", "f_004.png"]
    for i, (rgb, _) in enumerate(pictures):
        got = decode_file(tmp_path / "png" / f"f_{i + 1:03d}.png").to_ndarray()
        np.testing.assert_array_equal(got, np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8))

    # 10-bit DPX sequence in -> FFV1 (gbrp10le, lossless) out: the samples, the frame count and rate
    pattern, arrays = write_sequence(tmp_path / "scan", "dpx10", frames=3, scanner=True)
    out = tmp_path / "scan.mkv"
    with open_video(f"{pattern}@25") as reader, OutputFile(reader.info.path, out, reader.info, codec="ffv1") as o:
        for f in reader:
            o.write(f.picture, f.pts)
    decoded = media.decode_frames(out)
    assert len(decoded) == 3 and [t for t, _, _ in decoded] == [Fraction(i, 25) for i in range(3)]
    for (_, planes, fmt), rgb in zip(decoded, arrays):
        assert fmt == "gbrp10le"
        np.testing.assert_array_equal(np.stack([planes[2], planes[0], planes[1]], -1), rgb)
    with av.open(str(out)) as c:  # the scan's timecode goes with it
        assert c.streams.video[0].metadata.get("TIMECODE") == "01:00:00:12"


# ------------------------------------------------------------------------------------ end to end
FACE_W, FACE_H = 256, 192


@pytest.fixture(scope="module")
def face_scan(tmp_path_factory):
    """A 10-bit scanner DPX sequence, 4 frames: no face in frames 0 and 3, a face in 1-2."""
    import torch

    from videofix.models.synthetic import formula_codeformer
    from videofix.samples import face_content

    d = tmp_path_factory.mktemp("face_scan")
    weights = d / "tiny.pth"
    torch.save({"params_ema": formula_codeformer(TINY_CODEFORMER).state_dict()}, weights)
    faces = face_content(FACE_W, FACE_H, face_size=150, seed=3)
    plain = media.gradient_content(FACE_W, FACE_H, seed=3)
    rng = np.random.default_rng(7)

    def content(i):
        rgb8 = faces(i) if i in (1, 2) else plain(i)
        return rgb8.astype(np.uint16) * 4 + rng.integers(0, 4, rgb8.shape, dtype=np.uint16)  # 10-bit

    pattern, _ = write_sequence(d / "scan", "dpx10", frames=4, start=1000, scanner=True, content=content)
    return {"dir": d, "pattern": pattern, "weights": weights}


CLI = ["--detector", "dlib", "--device", "cpu", "--temporal-radius", "1", "--no-parsing", "--batch-size", "2"]


def _check_restored_scan(scan_dir: Path, out_dir: Path, report: dict) -> None:
    names = sorted(os.listdir(scan_dir))
    assert sorted(os.listdir(out_dir)) == names
    face_frames = sorted({f for t in report["tracks"] for f in t["frames"]})
    assert face_frames == [1, 2], report["tracks"]
    for i, name in enumerate(names):
        a, b = (scan_dir / name).read_bytes(), (out_dir / name).read_bytes()
        if i in face_frames:
            assert a != b and a[:2048] == b[:2048]  # restored under the scan's own header
            fa, fb = decode_file(scan_dir / name), decode_file(out_dir / name)
            assert fb.format.name == "gbrp10le"
            sa, sb = samples(fa), samples(fb)
            keep = np.ones(sa.shape[:2], bool)
            for t in report["tracks"]:
                for f, (x0, y0, x1, y1) in zip(t["frames"], t["paste_regions"]):
                    if f == i:
                        keep[y0:y1, x0:x1] = False
            assert keep.mean() > 0.3
            np.testing.assert_array_equal(sa[keep], sb[keep])
        else:
            assert a == b, f"{name}: a frame without a face must be a byte copy"


@pytest.fixture(scope="module")
def restored_scan(face_scan):
    """`videofix restore scan/%04d.dpx -o restored/%04d.dpx --fps 24`, run once for the module."""
    d = face_scan["dir"]
    proc = run_cli("restore", face_scan["pattern"], "-o", d / "restored" / "%04d.dpx", "--fps", "24", "--weights",
                   face_scan["weights"], *CLI, "--report", d / "r.json")
    return {"out": d / "restored", "report": json.loads((d / "r.json").read_text()), "stderr": proc.stderr}


def test_restore_dpx_sequence_to_dpx_sequence(face_scan, restored_scan, tmp_path):
    scan = Path(face_scan["pattern"]).parent
    report = restored_scan["report"]
    assert report["frames_written"] == 4
    _check_restored_scan(scan, restored_scan["out"], report)
    assert sorted(os.listdir(face_scan["dir"])) == ["r.json", "restored", "scan", "tiny.pth"]  # nothing else
    assert "Traceback" not in restored_scan["stderr"]

    # no --fps: the rate written in the DPX headers, said once (this run stops at the output
    # check: ProRes cannot go into MP4)
    proc = run_cli("restore", face_scan["pattern"], "-o", tmp_path / "v.mp4", "--codec", "prores", "--weights",
                   face_scan["weights"], *CLI, check_rc=5)
    assert "24 fps from the file header" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("cannot hold prores_ks video (use .mov)")
    assert not (tmp_path / "v.mp4").exists()

    # --fps on a video is refused with one line
    proc = run_cli("restore", tmp_path / "r.json", "-o", tmp_path / "w.mov", "--fps", "24", check_rc=None)
    assert proc.returncode == 2 and "--fps applies to an image-sequence input" in proc.stderr


def test_ray_runner_writes_the_same_sequence(face_scan, restored_scan, tmp_path):
    pytest.importorskip("ray")
    from videofix.io.sequence import sequence_spec
    from videofix.pipeline.ray.jobs import restore_video_ray
    from videofix.pipeline.local import RestoreSettings

    settings = RestoreSettings(weights=str(face_scan["weights"]), detector="dlib", device="cpu", temporal_radius=1,
                               parsing=False, batch_size=2, download=False)
    spec = sequence_spec(face_scan["pattern"], 24)
    report = restore_video_ray(spec, tmp_path / "ray" / "%04d.dpx", settings, segments=2, quiet=True)
    assert report["frames_written"] == 4
    assert report["ray"]["segments"] == 2 and sum(report["ray"]["segment_frames"]) == 4
    local = restored_scan["out"]  # the local runner's output, through the CLI
    names = sorted(os.listdir(local))
    assert sorted(os.listdir(tmp_path / "ray")) == names
    for name in names:
        assert (tmp_path / "ray" / name).read_bytes() == (local / name).read_bytes(), name
    _check_restored_scan(Path(face_scan["pattern"]).parent, tmp_path / "ray", report)
    assert sorted(os.listdir(tmp_path)) == ["ray"]  # no job folder, no staging left


@pytest.mark.parametrize("pix_fmt,ext,codec", [("rgba", ".png", "png"), ("rgba64be", ".png", "png"),
                                               ("rgba", ".tif", "tiff")])
def test_alpha_channels_are_the_source_files(tmp_path, pix_fmt, ext, codec):
    """`Picture` holds no alpha: a rewritten frame takes its alpha from the source file."""
    rng = np.random.default_rng(4)
    (tmp_path / "src").mkdir()
    for i in range(2):
        rgba = rng.integers(0, 256, (H, W, 4), dtype=np.uint8)
        (tmp_path / "src" / f"{i:02d}{ext}").write_bytes(_encode(av.VideoFrame.from_ndarray(rgba, format="rgba"),
                                                                  codec, pix_fmt))
    pattern = str(tmp_path / "src" / f"%02d{ext}")
    with open_video(pattern) as reader, OutputFile(pattern, tmp_path / "out" / f"%02d{ext}", reader.info) as o:
        for f in reader:
            box = paint_box(f.picture)
            o.write(f.picture, f.pts)
    for i in range(2):
        a = decode_file(tmp_path / "src" / f"{i:02d}{ext}").to_ndarray()
        b = decode_file(tmp_path / "out" / f"{i:02d}{ext}").to_ndarray()
        assert a.shape == b.shape and a.shape[-1] == 4
        np.testing.assert_array_equal(a[..., 3], b[..., 3])
        x0, y0, x1, y1 = box
        keep = np.ones(a.shape[:2], bool)
        keep[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(a[keep], b[keep])
        assert (a[~keep][:, :3] != b[~keep][:, :3]).any()


def _float_or_int_samples(frame) -> np.ndarray:
    from videofix.io.sequence.writer import _FLOAT_DTYPES, _plane_array

    if frame.format.name in _FLOAT_DTYPES:  # to_ndarray has no half floats
        return np.stack([_plane_array(p, _FLOAT_DTYPES[frame.format.name], frame.width, frame.height).copy()
                         for p in frame.planes], -1)
    return frame.to_ndarray()


@pytest.mark.parametrize("codec,pix_fmt,options", [
    ("tiff", "rgb48le", {"compression_algo": "raw"}), ("tiff", "rgb24", {"compression_algo": "lzw"}),
    ("exr", "gbrpf32le", {"format": "half", "compression": "none"}),
    ("exr", "gbrpf32le", {"format": "float", "compression": "zip16"}),
])
def test_rewritten_tiff_and_exr_keep_compression_and_sample_type(tmp_path, codec, pix_fmt, options):
    from videofix.io.sequence import exr_options, tiff_options

    read_options = tiff_options if codec == "tiff" else exr_options
    ext = ".tif" if codec == "tiff" else ".exr"
    rng = np.random.default_rng(5)
    (tmp_path / "src").mkdir()
    for i in range(2):
        if codec == "exr":  # values a half float holds exactly, some above 1.0
            g = (rng.random((H, W), dtype=np.float32) * 2).astype(np.float16).astype(np.float32)
            frame = _planes_frame([g, g * 0.5, g * 0.25], "gbrpf32le")
        elif pix_fmt == "rgb24":
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), format="rgb24")
        else:
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 65536, (H, W, 3), dtype=np.uint16), format="rgb48le")
        ctx = av.CodecContext.create(codec, "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base, ctx.options = W, H, pix_fmt, Fraction(1, 24), options
        frame.pts = 0
        (tmp_path / "src" / f"{i}{ext}").write_bytes(b"".join(bytes(p) for p in ctx.encode(frame) + ctx.encode(None)))
    pattern = str(tmp_path / "src" / f"%d{ext}")
    assert read_options((tmp_path / "src" / f"0{ext}").read_bytes()).items() >= options.items()
    with open_video(pattern) as reader, OutputFile(pattern, tmp_path / "out" / f"%d{ext}", reader.info) as o:
        for f in reader:
            box = paint_box(f.picture)
            o.write(f.picture, f.pts)
    for i in range(2):
        src, out = (tmp_path / "src" / f"{i}{ext}").read_bytes(), (tmp_path / "out" / f"{i}{ext}").read_bytes()
        assert read_options(out) == read_options(src)
        a, b = _float_or_int_samples(decode_file(tmp_path / "src" / f"{i}{ext}")), \
            _float_or_int_samples(decode_file(tmp_path / "out" / f"{i}{ext}"))
        x0, y0, x1, y1 = box
        keep = np.ones(a.shape[:2], bool)
        keep[y0:y1, x0:x1] = False
        np.testing.assert_array_equal(a[keep], b[keep])
        assert (a[~keep] != b[~keep]).any()


def test_a_damaged_scan_is_reported_and_left_as_it_was(tmp_path):
    """One undecodable file in the middle: the reader stands in the frame before (reported,
    numbering kept) and the writer copies the damaged file unchanged, not a neighbour."""
    pattern, _ = write_sequence(tmp_path / "src", "png8", frames=5)
    (tmp_path / "src" / "0012.png").write_bytes(b"\x89PNG damaged" * 20)
    with open_video(pattern) as reader, OutputFile(pattern, tmp_path / "out" / "%04d.png", reader.info) as o:
        pts = []
        for f in reader:
            pts.append(f.pts)
            o.write(f.picture, f.pts)
    assert pts == [0, 1, 2, 3, 4] and not reader.report.complete
    assert "could not be decoded" in reader.report.describe(pattern)
    assert o.writer.damaged_copied == 1
    for n in (10, 11, 12, 13, 14):
        assert (tmp_path / "out" / f"{n:04d}.png").read_bytes() == (tmp_path / "src" / f"{n:04d}.png").read_bytes()
