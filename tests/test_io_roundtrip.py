"""Reading, writing and remuxing: nothing but the picture changes."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from media import decode_audio, decode_frames, make_clip, subtitle_packets, video_packets
from videofix.errors import OutputError, UsageError
from videofix.io import OutputFile, TimeRange, open_video, parse_range, probe


def copy_through(src, dst, codec="ffv1", range=None, edit=None, **kw):
    """Decode src and write every picture back (optionally edited) -> dst."""
    with open_video(src, range) as reader, OutputFile(src, dst, reader.info, codec=codec, range=range, **kw) as out:
        for frame in reader:
            if edit is not None:
                edit(frame)
            out.write(frame.picture, frame.pts)
    return reader


def assert_same_pixels(a, b):
    assert len(a) == len(b)
    for (ta, pa, fa), (tb, pb, fb) in zip(a, b):
        assert fa == fb
        for x, y in zip(pa, pb):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_cfr_clip_keeps_everything(tmp_path, ext):
    clip = make_clip(tmp_path / f"in{ext}", frames=30, rotation=90, metadata={"title": "Holiday"},
                     chapters=[(0.0, 0.5, "Intro"), (0.5, 1.2, "Main")])
    out = tmp_path / f"out{ext}"
    reader = copy_through(clip.path, out, codec="ffv1" if ext == ".mkv" else "libx264")
    assert reader.report.complete and reader.report.frames == 30
    src, dst = probe(clip.path), probe(out)
    assert dst.frame_count == 30 or not dst.frame_count_exact
    assert dst.rotation == 90
    assert (dst.colorspace, dst.color_range) == (src.colorspace, src.color_range) == (6, 1)
    assert dst.metadata["title"] == "Holiday"
    assert [(c["start"], c["end"], c["title"]) for c in dst.chapters] == [(0.0, 0.5, "Intro"), (0.5, 1.2, "Main")]
    # timestamps, audio samples and subtitle packets identical
    a, b = decode_frames(clip.path), decode_frames(out)
    assert [t for t, _, _ in a] == [t for t, _, _ in b] == clip.times
    np.testing.assert_array_equal(decode_audio(clip.path), decode_audio(out))
    assert subtitle_packets(clip.path) == subtitle_packets(out)
    assert [s.language for s in dst.subtitle_streams] == ["eng"]
    if ext == ".mkv":  # lossless: every pixel is the source's decoded pixel
        assert_same_pixels(a, b)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_vfr_pts_preserved_and_unedited_pixels_bit_identical(tmp_path):
    pts = [0, 40, 90, 100, 180, 200, 260, 300, 333, 400, 480, 481, 560]
    clip = make_clip(tmp_path / "vfr.mkv", pts=pts, size=(64, 48))
    out = tmp_path / "out.mkv"

    def paint_face(frame):  # restore a "face" in the middle: everything else must stay
        pic = frame.picture
        box = pic.align_box((20, 12, 44, 36))
        h, w = box[3] - box[1], box[2] - box[0]
        mask = np.zeros((h, w), np.float32)
        mask[4:-4, 4:-4] = 1.0
        pic.blend_rgb(np.full((h, w, 3), 0.5, np.float32), mask, box)

    copy_through(clip.path, out, edit=paint_face)
    a, b = decode_frames(clip.path), decode_frames(out)
    assert [t * 1000 for t, _, _ in b] == pts
    assert [t for t, _, _ in a] == [t for t, _, _ in b]
    for (_, pa, _), (_, pb, _) in zip(a, b):
        outside = np.ones((48, 64), bool)
        outside[16:32, 24:40] = False
        np.testing.assert_array_equal(pa[0][outside], pb[0][outside])
        assert (pa[0][~outside] != pb[0][~outside]).any()
        couts = np.ones((24, 32), bool)
        couts[8:16, 12:20] = False
        for c in (1, 2):
            np.testing.assert_array_equal(pa[c][couts], pb[c][couts])


def test_vfr_mp4_h264_keeps_timestamps(tmp_path):
    pts = [0, 40, 90, 100, 180, 200, 260, 300, 333, 400]
    clip = make_clip(tmp_path / "vfr.mp4", pts=pts)
    copy_through(clip.path, tmp_path / "out.mp4", codec="libx264", preset="ultrafast")
    assert [t * 1000 for t, _, _ in decode_frames(tmp_path / "out.mp4")] == pts


def test_10bit_stays_10bit_and_lossless(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=8, pix_fmt="yuv420p10le", codec="libx264", subtitles=False)
    info = probe(clip.path)
    assert (info.pix_fmt, info.bit_depth) == ("yuv420p10le", 10)
    copy_through(clip.path, tmp_path / "out.mkv")
    a, b = decode_frames(clip.path), decode_frames(tmp_path / "out.mkv")
    assert b[0][2] == "yuv420p10le" and b[0][1][0].dtype == np.uint16
    assert b[0][1][0].max() > 255
    assert_same_pixels(a, b)
    copy_through(clip.path, tmp_path / "out_h264.mkv", codec="libx264", preset="ultrafast")
    assert decode_frames(tmp_path / "out_h264.mkv")[0][2] == "yuv420p10le"


def test_odd_size_no_crop(tmp_path):
    clip = make_clip(tmp_path / "odd.mkv", frames=6, size=(33, 25), codec="ffv1", subtitles=False)
    copy_through(clip.path, tmp_path / "lossless.mkv")
    assert_same_pixels(decode_frames(clip.path), decode_frames(tmp_path / "lossless.mkv"))
    copy_through(clip.path, tmp_path / "h264.mp4", codec="libx264", preset="ultrafast")
    # libx265 crashes (heap corruption) on 4:4:4 pictures this small: refused with one line
    with pytest.raises(OutputError, match="libx265 cannot encode 33x25"):
        copy_through(clip.path, tmp_path / "hevc_tiny.mkv", codec="hevc", preset="ultrafast")
    assert not (tmp_path / "hevc_tiny.mkv").exists()
    wide = make_clip(tmp_path / "odd_wide.mkv", frames=6, size=(65, 49), codec="ffv1", subtitles=False)
    copy_through(wide.path, tmp_path / "hevc.mkv", codec="hevc", preset="ultrafast")
    for name, size in (("h264.mp4", (33, 25)), ("hevc.mkv", (65, 49))):
        info = probe(tmp_path / name)
        assert (info.width, info.height) == size
        assert info.pix_fmt == "yuv444p"  # 4:2:0 cannot code odd sizes: full chroma, no crop
        assert len(decode_frames(tmp_path / name)) == 6


def test_range_trims_video_audio_subtitles(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=50, gop=10)  # 2 s at 25 fps
    out = tmp_path / "cut.mp4"
    copy_through(clip.path, out, codec="libx264", range="0.5:1.2", preset="ultrafast")
    frames = decode_frames(out)
    assert len(frames) == 17  # 0.52 .. 1.16
    assert frames[0][0] == 0 and frames[-1][0] == Fraction(16, 25)
    audio = decode_audio(out)
    assert abs(audio.shape[1] / 48000 - 0.68) < 0.05
    cues = [(p, t) for p, t, _ in subtitle_packets(out) if len(p) > 2]
    assert [p[2:] for p, _ in cues] == [b"Line 1", b"Line 2"]


def test_parse_range():
    assert parse_range("1.5:3") == TimeRange(1.5, 3.0)
    assert parse_range("00:01:00:00:01:30.5") == TimeRange(60.0, 90.5)
    assert parse_range("10:") == TimeRange(10.0, None)
    assert parse_range(":00:00:02.5") == TimeRange(None, 2.5)
    assert parse_range("01:00:00:4000") == TimeRange(3600.0, 4000.0)
    for bad in ("abc", "5:2", "1:2:3", "00:00:01:00:00:01"):
        with pytest.raises(UsageError):
            parse_range(bad)


def test_output_equal_to_input_is_refused(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=4, audio=False, subtitles=False)
    before = clip.path.read_bytes()
    with pytest.raises(OutputError, match="output is the input"):
        copy_through(clip.path, clip.path)
    with pytest.raises(OutputError, match="output is the input"):
        copy_through(clip.path, tmp_path / "." / "in.mp4")
    assert clip.path.read_bytes() == before


def test_failure_leaves_no_output(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=6, subtitles=False)
    out = tmp_path / "out.mkv"
    with pytest.raises(RuntimeError):
        with open_video(clip.path) as reader, OutputFile(clip.path, out, reader.info, codec="ffv1") as o:
            for i, f in enumerate(reader):
                o.write(f.picture, f.pts)
                if i == 3:
                    raise RuntimeError("restorer crashed")
    assert list(tmp_path.iterdir()) == [clip.path]


def test_incompatible_output_container_fails_fast(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=4)  # SubRip subtitles
    info = probe(clip.path)
    with pytest.raises(OutputError, match="cannot hold"):
        OutputFile(clip.path, tmp_path / "out.mp4", info, codec="ffv1")
    assert list(tmp_path.iterdir()) == [clip.path]


def test_decode_fps_64x48(tmp_path, record_property):
    import time
    clip = make_clip(tmp_path / "in.mp4", frames=60, audio=False, subtitles=False)
    t = time.perf_counter()
    n = sum(1 for _ in open_video(clip.path))
    record_property("decode_fps_64x48", n / (time.perf_counter() - t))
    assert n == 60
    keys = [k for _, _, k in video_packets(clip.path)]
    assert sum(keys) == 5
