"""Bad input: one clear line each, a non-zero exit code, no partial output."""

from __future__ import annotations


import av
import numpy as np
import pytest

from media import make_clip, text_file, truncated_copy
from videofix.errors import InputError
from videofix.io import OutputFile, open_video, probe


def assert_one_line(exc: InputError, *words):
    msg = str(exc)
    assert "\n" not in msg and exc.exit_code == 3
    for w in words:
        assert w in msg


def test_text_file_named_mp4(tmp_path):
    bad = text_file(tmp_path / "movie.mp4")
    with pytest.raises(InputError) as e:
        probe(bad)
    assert_one_line(e.value, "movie.mp4", "not a video file")
    with pytest.raises(InputError):
        open_video(bad)


def test_missing_and_empty(tmp_path):
    with pytest.raises(InputError) as e:
        probe(tmp_path / "nope.mp4")
    assert_one_line(e.value, "no such file")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError) as e:
        probe(tmp_path / "empty.mp4")
    assert_one_line(e.value, "empty")


def test_no_video_stream(tmp_path):
    path = tmp_path / "audio.m4a"
    with av.open(str(path), "w") as out:
        s = out.add_stream("aac", rate=48000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        for p in list(s.encode(frame)) + list(s.encode(None)):
            out.mux(p)
    with pytest.raises(InputError) as e:
        probe(path)
    assert_one_line(e.value, "no video stream")


@pytest.mark.parametrize("name,codec", [("empty_video.mkv", "ffv1"), ("empty_video.mp4", "libx264")])
def test_zero_frames(tmp_path, name, codec):
    path = tmp_path / name
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        out.start_encoding()
    with pytest.raises(InputError) as e:
        probe(path)
    assert_one_line(e.value, name)
    # FFmpeg's MP4 demuxer drops a track without samples altogether
    assert "no frames" in str(e.value) or (name.endswith(".mp4") and "no video stream" in str(e.value))


def test_unsupported_codec(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=3, codec="ffv1", audio=False, subtitles=False)
    data = clip.path.read_bytes()
    assert data.count(b"V_FFV1") == 1
    bad = tmp_path / "alien.mkv"
    bad.write_bytes(data.replace(b"V_FFV1", b"V_ZZZ9"))  # a codec id FFmpeg does not know
    with pytest.raises(InputError) as e:
        probe(bad)
    assert_one_line(e.value, "alien.mkv", "unsupported")


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_truncated_file_decodes_what_is_readable(tmp_path, ext, caplog):
    clip = make_clip(tmp_path / f"in{ext}", frames=60, gop=10, faststart=True, subtitles=False)
    cut = truncated_copy(clip.path, tmp_path / f"cut{ext}", 0.6)
    info = probe(cut)  # still opens: decodable first frame
    out = tmp_path / f"out{ext}"
    with caplog.at_level("WARNING", logger="videofix.io"):
        with open_video(cut) as reader, OutputFile(cut, out, reader.info, codec="libx264", preset="ultrafast") as o:
            for f in reader:
                o.write(f.picture, f.pts)
    rep = reader.report
    assert 10 < rep.frames < 60
    assert rep.lost_frames >= 60 - rep.frames - 3 and rep.lost_seconds > 0.5
    assert "lost" in rep.describe(str(cut)) and "lost" in caplog.text
    assert out.exists() and info.width == 64


def test_truncated_without_index_is_a_clear_error(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=30, subtitles=False)  # index (moov) at the end
    cut = truncated_copy(clip.path, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(InputError) as e:
        probe(cut)
    assert_one_line(e.value, "cut.mp4")


def test_range_outside_video(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=10, audio=False, subtitles=False)
    with pytest.raises(InputError) as e:
        list(open_video(clip.path, "50:60"))
    assert_one_line(e.value, "selects no frames")


def test_cli_style_exit_code(tmp_path):
    from videofix.cli import _fail
    bad = text_file(tmp_path / "x.mp4")
    try:
        probe(bad)
    except InputError as exc:
        assert _fail(str(exc), exc.exit_code) == 3


def test_atomic_files_appear_whole_or_not_at_all(tmp_path):
    from videofix import atomic

    target = tmp_path / "report.json"
    with pytest.raises(RuntimeError):
        with atomic.AtomicFile(target) as f:
            f.path.write_text("half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []  # neither the name nor the temporary file
    atomic.write_text(target, "whole")
    assert target.read_text() == "whole" and list(tmp_path.iterdir()) == [target]


def test_leftovers_of_dead_processes_are_found_and_only_those(tmp_path):
    """`remove_stale` deletes what a process of this host that no longer runs left next to
    the output; a live process's file, another host's (a shared folder) and other files stay."""
    import subprocess
    import sys

    from videofix import atomic

    out = tmp_path / "film.mkv"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid no longer runs
    alive = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        mine = atomic.temp_path(out, "video")
        host = mine.name.split(".videofix-")[1].rsplit("-", 2)[0]
        names = {
            "dead": f".film.videofix-{host}-{dead.pid}-a1b2c3.video.mkv",
            "dead_part": f".film.videofix-{host}-{dead.pid}-d4e5f6.part.mkv",
            "alive": f".film.videofix-{host}-{alive.pid}-a1b2c3.video.mkv",
            "other_host": f".film.videofix-elsewhere-{dead.pid}-a1b2c3.video.mkv",
            "other_output": f".film2.videofix-{host}-{dead.pid}-a1b2c3.video.mkv",
        }
        for name in names.values():
            (tmp_path / name).write_bytes(b"x")
        (tmp_path / names["dead"].replace(".video.mkv", ".staging")).mkdir()  # a sequence's staging folder
        gone = atomic.remove_stale(out)
        assert sorted(p.name for p in gone) == sorted([names["dead"], names["dead_part"],
                                                      names["dead"].replace(".video.mkv", ".staging")])
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted([names["alive"], names["other_host"],
                                                                    names["other_output"]])
    finally:
        alive.kill()
        alive.wait()
