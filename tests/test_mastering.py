"""Mastering codecs out (ProRes 422 HQ / 4444, DNxHR SQ/HQ/HQX/444 in .mov), their pixel
formats, and timecode + reel name carried over.

ProRes and DNxHR are lossy, so "pixels outside the faces" are checked against what the codec
itself does to the untouched source: a frame with no face must decode exactly like a plain
ProRes encode of the source frame with the same settings (ProRes is intra-only and
deterministic), and on frames with a face the error outside the paste regions must stay
within the plain encode's own error.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import media
from conftest import TINY_CODEFORMER, run_cli
from videofix.errors import OutputError
from videofix.io import OutputFile, open_video, probe
from videofix.io.codecs import MASTERING_CODECS, choose_pix_fmt
from videofix.io.timecode import frames_to_timecode, timecode_to_frames
from videofix.io.writer import VideoWriter, check_output

W, H = 256, 192


def write_master(path: Path, content, frames: int, fps: int = 24, timecode: str | None = "01:00:00:00",
                 reel: str | None = "A001", size=(W, H)) -> Path:
    """A 10-bit 4:2:2 ProRes HQ .mov with a tmcd track (timecode, reel name) and AAC audio.
    content(i) -> (H, W, 3) uint16 RGB, 10-bit codes."""
    w, h = size
    out = av.open(str(path), "w")
    v = out.add_stream("prores_ks", rate=fps)
    v.width, v.height, v.pix_fmt = w, h, "yuv422p10le"
    v.codec_context.options = {"profile": "3"}
    v.codec_context.colorspace, v.codec_context.color_range = 6, 1
    if timecode:
        v.metadata["timecode"] = timecode
    if reel:
        v.metadata["reel_name"] = reel
    a = out.add_stream("aac", rate=48000)
    a.layout = "stereo"
    for i in range(frames):
        f = av.VideoFrame.from_ndarray(content(i) << 6, format="rgb48le").reformat(
            format="yuv422p10le", dst_colorspace=6, dst_color_range=1)
        f.pts = i
        for p in v.encode(f):
            out.mux(p)
    for p in v.encode(None):
        out.mux(p)
    n = 48000 * frames // fps
    t = np.arange(n) / 48000
    pcm = np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)]).astype(np.float32) * 0.3
    for k in range(0, n, 1024):
        af = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, k:k + 1024]), format="fltp", layout="stereo")
        af.sample_rate, af.pts = 48000, k
        for p in a.encode(af):
            out.mux(p)
    for p in a.encode(None):
        out.mux(p)
    out.close()
    return path


def tmcd(path) -> dict:
    """Metadata of the MOV timecode (data) track."""
    with av.open(str(path)) as c:
        data = [s for s in c.streams if s.type == "data"]
        return dict(data[0].metadata) if data else {}


# ------------------------------------------------------------------------------ codec choices
def test_timecode_arithmetic():
    assert timecode_to_frames("01:00:00:00", Fraction(24)) == 86400
    assert frames_to_timecode(86400 + 25, Fraction(24)) == "01:00:01:01"
    ntsc = Fraction(30000, 1001)  # drop-frame: ;00 and ;01 do not exist at minutes not divisible by 10
    assert frames_to_timecode(timecode_to_frames("00:00:59;29", ntsc) + 1, ntsc, True) == "00:01:00;02"
    assert frames_to_timecode(timecode_to_frames("00:09:59;29", ntsc) + 1, ntsc, True) == "00:10:00;00"
    assert frames_to_timecode(timecode_to_frames("10:00:00;00", ntsc), ntsc, True) == "10:00:00;00"
    assert timecode_to_frames("not a timecode", Fraction(24)) is None


def test_pixel_formats_follow_profile_and_source():
    assert choose_pix_fmt("prores", "yuv420p", W, H) == "yuv422p10le"
    assert choose_pix_fmt("prores_4444", "gbrp10le", W, H) == "yuv444p10le"
    assert choose_pix_fmt("dnxhr_444", "gbrp10le", W, H) == "gbrp10le"  # RGB scans stay RGB
    assert choose_pix_fmt("dnxhr_444", "yuv422p10le", W, H) == "yuv444p10le"
    assert choose_pix_fmt("dnxhr_hqx", "yuv420p", W, H) == "yuv422p10le"
    assert choose_pix_fmt("dnxhr_hq", "yuv422p10le", W, H) == "yuv422p"  # an 8-bit profile (warned)
    with pytest.raises(OutputError, match="codes yuv422p10le, not yuv420p"):
        choose_pix_fmt("prores", "yuv420p", W, H, requested="yuv420p")


@pytest.mark.parametrize("codec,profile,pix_fmt", [
    ("prores", "HQ", "yuv422p10le"), ("prores_4444", "4444", "yuv444p12le"),
    ("dnxhr_sq", "DNXHR SQ", "yuv422p"), ("dnxhr_hq", "DNXHR HQ", "yuv422p"),
    ("dnxhr_hqx", "DNXHR HQX", "yuv422p10le"), ("dnxhr_444", "DNXHR 444", "yuv444p10le"),
])
def test_each_mastering_codec_writes_its_profile(tmp_path, codec, profile, pix_fmt):
    clip = media.make_clip(tmp_path / "src.mkv", frames=3, size=(W, 144), codec="ffv1", pix_fmt="yuv422p10le",
                           audio=True, subtitles=False)
    out = tmp_path / "out.mov"
    with open_video(clip.path) as reader, OutputFile(clip.path, out, reader.info, codec=codec) as o:
        for f in reader:
            o.write(f.picture, f.pts)
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.codec_context.profile == profile
        frames = list(c.decode(v))
    assert len(frames) == 3 and frames[0].format.name == pix_fmt  # ProRes 4444 decodes at 12 bits
    with av.open(str(out)) as c:  # the audio is stream-copied (its sample count through MOV: see issue 13's corpus)
        assert [a.codec_context.name for a in c.streams.audio] == ["aac"]


def test_mastering_codec_errors_are_one_line(tmp_path):
    clip = media.make_clip(tmp_path / "src.mkv", frames=2, size=(64, 48), codec="ffv1", audio=False, subtitles=False)
    info = probe(clip.path)
    with pytest.raises(OutputError, match=r"cannot hold prores_ks video \(use \.mov\)"):
        check_output(info, tmp_path / "x.mp4", "prores")
    with pytest.raises(OutputError, match="DNxHR needs pictures of at least 256x120"):
        check_output(info, tmp_path / "x.mov", "dnxhr_hq")
    with pytest.raises(OutputError, match="unknown codec 'prores_xq'.*prores_4444.*dnxhr_444"):
        check_output(info, tmp_path / "x.mov", "prores_xq")
    proc = run_cli("restore", clip.path, "-o", tmp_path / "y.mov", "--codec", "dnxhr_hqx", check_rc=None)
    assert proc.returncode == 5 and "Traceback" not in proc.stderr
    assert not list(tmp_path.glob("*.mov")) and not list(tmp_path.glob(".*"))
    assert set(MASTERING_CODECS) == {"prores", "prores_4444", "dnxhr_sq", "dnxhr_hq", "dnxhr_hqx", "dnxhr_444"}


def test_timecode_and_reel_survive_a_plain_remux_and_a_range(tmp_path):
    src = write_master(tmp_path / "m.mov", lambda i: np.full((48, 64, 3), 300 + 40 * i, np.uint16), frames=6,
                       size=(64, 48), timecode="10:00:00:20", reel="R12")
    for rng, want in ((None, "10:00:00:20"), ("0.125:", "10:00:00:23")):
        out = tmp_path / f"o{'r' if rng else ''}.mov"
        with open_video(src, rng) as reader, OutputFile(src, out, reader.info, codec="prores", range=rng) as o:
            for f in reader:
                o.write(f.picture, f.pts)
        assert tmcd(out).get("timecode") == want and tmcd(out).get("reel_name") == "R12"
    no_tc = write_master(tmp_path / "n.mov", lambda i: np.full((48, 64, 3), 512, np.uint16), frames=2,
                         size=(64, 48), timecode=None, reel=None)
    with open_video(no_tc) as reader, OutputFile(no_tc, tmp_path / "n_out.mov", reader.info, codec="prores") as o:
        for f in reader:
            o.write(f.picture, f.pts)
    assert tmcd(tmp_path / "n_out.mov") == {}  # none invented


# ------------------------------------------------------------------------------ end to end
def test_restore_prores_master_to_prores(tmp_path):
    """A 10-bit ProRes master with timecode, reel and audio: no face in frames 0 and 3, a face
    in 1-2; restored to ProRes from 1/24 s on."""
    import torch

    from videofix.models.synthetic import formula_codeformer
    from videofix.samples import face_content

    weights = tmp_path / "tiny.pth"
    torch.save({"params_ema": formula_codeformer(TINY_CODEFORMER).state_dict()}, weights)
    faces, plain = face_content(W, H, face_size=150, seed=1), media.gradient_content(W, H, seed=1)
    rng = np.random.default_rng(2)

    def content(i):
        rgb8 = faces(i) if i in (1, 2) else plain(i)
        return rgb8.astype(np.uint16) * 4 + rng.integers(0, 4, rgb8.shape, dtype=np.uint16)

    src = write_master(tmp_path / "master.mov", content, frames=4)
    out = tmp_path / "restored.mov"
    run_cli("restore", src, "-o", out, "--codec", "prores", "--range", "0.04:", "--weights", weights,
            "--detector", "dlib", "--device", "cpu", "--temporal-radius", "1", "--no-parsing", "--batch-size", "2",
            "--report", tmp_path / "r.json", "--quiet")
    report = json.loads((tmp_path / "r.json").read_text())

    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "prores" and v.codec_context.profile == "HQ"
        assert v.codec_context.pix_fmt == "yuv422p10le"  # 10-bit kept
        assert len(c.streams.audio) == 1
    assert tmcd(out) == {"language": "eng", "handler_name": "TimeCodeHandler", "timecode": "01:00:00:01",
                         "reel_name": "A001"}
    restored = media.decode_frames(out)
    assert len(restored) == report["frames_written"] == 3

    # the reference: a plain ProRes encode of the same source frames, same writer settings
    info = probe(src)
    plain_path = None
    with open_video(src, "0.04:") as reader:
        w = VideoWriter(tmp_path / "plain.mov", info, "prores")
        source = []
        for f in reader:
            source.append(f.picture)
            w.write(f.picture, f.pts)
        plain_path = w.close()
    reference = media.decode_frames(plain_path)
    regions = {}
    for t in report["tracks"]:
        for f, box in zip(t["frames"], t["paste_regions"]):
            regions.setdefault(f, []).append(box)
    assert sorted(regions) == [0, 1], report["tracks"]  # source frames 1-2 = output frames 0-1

    # output frame 2 (source frame 3) has no face: exactly the plain encode
    for a, b in zip(restored[2][1], reference[2][1]):
        np.testing.assert_array_equal(a, b)
    # frames with a face: outside the paste regions, no further from the source than the plain encode
    for i in (0, 1):
        y_src = source[i].planes[0].astype(int)
        keep = np.ones(y_src.shape, bool)
        for x0, y0, x1, y1 in regions[i]:
            keep[y0:y1, x0:x1] = False
        assert keep.mean() > 0.2
        err = np.abs(restored[i][1][0].astype(int) - y_src)[keep]
        err_plain = np.abs(reference[i][1][0].astype(int) - y_src)[keep]
        assert err.mean() <= err_plain.mean() * 1.25 + 0.25, (err.mean(), err_plain.mean())
        assert err.max() <= err_plain.max() + 16, (err.max(), err_plain.max())
        # ProRes codes 16-line macroblock rows in independent slices: rows no paste region
        # touches are exactly the plain encode's (measured: the error outside the regions is
        # the plain encode's own, mean 1.6 codes of 1023)
        free = np.ones(-(-H // 16), bool)
        for x0, y0, x1, y1 in regions[i]:
            free[y0 // 16:-(-y1 // 16)] = False
        rows = np.repeat(free, 16)[:H]
        assert rows.any()
        for a, b in zip(restored[i][1], reference[i][1]):
            np.testing.assert_array_equal(a[rows], b[rows])
        inside = ~keep
        assert np.abs(restored[i][1][0].astype(int) - y_src)[inside].mean() > 2 * err_plain.mean()


def test_rgb_scan_to_prores_uses_the_hd_matrix_and_keeps_the_timecode(tmp_path):
    """A 10-bit RGB DPX sequence (HD) coded as ProRes 4:2:2: converted with BT.709 (and tagged
    so), colours within ProRes's loss, the DPX header's timecode on the tmcd track."""
    from test_io_sequences import write_sequence

    from videofix.io.picture import Picture

    w, h = 1280, 720
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([64 + 800 * xx / w, 900 - 700 * yy / h, 200 + 300 * (xx + yy) / (w + h)], -1).astype(np.uint16)
    pattern, _ = write_sequence(tmp_path / "scan", "dpx10", frames=1, scanner=True, content=lambda i: rgb)
    out = tmp_path / "hd.mov"
    with open_video(f"{pattern}@25") as reader, OutputFile(reader.info.path, out, reader.info, codec="prores") as o:
        for f in reader:
            o.write(f.picture, f.pts)
    assert tmcd(out)["timecode"] == "01:00:00:12"
    with av.open(str(out)) as c:
        frame = next(c.decode(video=0))
        assert c.streams.video[0].codec_context.colorspace == 1  # BT.709
    back = Picture.from_av(frame).to_rgb() * 1023
    err = np.abs(back - rgb)
    assert err.mean() < 2.0 and np.percentile(err, 99) < 8, (err.mean(), np.percentile(err, 99))
