"""A damaged user file never gives `internal error`, a traceback or a partial output.

One tiny clip (H.264 + AAC + subtitles in Matroska, no face: the fast path) is cut at 20
seeded random offsets and has 50 seeded random bytes flipped (10 copies, 5 flips each).
Each goes through the real `videofix restore` command line (in-process, so the suite stays
fast): it either fails with exit code 3..6 and one `videofix: error:` line, or it finishes
with an output that decodes, and a note in the report when frames were damaged. Nothing is
ever left under the output name by a failed run, nor any temporary file.
"""

from __future__ import annotations

import json
import random

import av
import pytest

from media import make_clip
from videofix import cli

N_TRUNCATED = 20
N_FLIPPED_FILES, FLIPS_PER_FILE = 10, 5


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    return make_clip(d / "clip.mkv", frames=16, size=(64, 48), gop=6, audio=True, subtitles=True)


def variants(clip):
    data = clip.path.read_bytes()
    rng = random.Random(1313)
    out = []
    for k in range(N_TRUNCATED):
        cut = rng.randrange(1, len(data))
        out.append((f"cut{k}_{cut}", data[:cut]))
    for k in range(N_FLIPPED_FILES):
        b = bytearray(data)
        where = sorted(rng.randrange(len(b)) for _ in range(FLIPS_PER_FILE))
        for pos in where:
            b[pos] ^= rng.randrange(1, 256)
        out.append((f"flip{k}_" + "_".join(map(str, where)), bytes(b)))
    return out


def run(argv, capsys) -> tuple[int, str]:
    rc = cli.main(argv)
    err = capsys.readouterr().err
    return rc, err


def test_damaged_files_give_one_line_errors_or_finished_outputs(clip, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VIDEOFIX_OFFLINE", "1")
    monkeypatch.delenv("VIDEOFIX_DEBUG", raising=False)
    outcomes = {"failed": 0, "finished": 0}
    for name, data in variants(clip):
        work = tmp_path / name
        work.mkdir()
        src = work / "in.mkv"
        src.write_bytes(data)
        out = work / "out.mkv"
        report = work / "report.json"
        rc, err = run(["restore", str(src), "-o", str(out), "--model", "identity", "--detector", "dlib",
                       "--codec", "ffv1", "--device", "cpu", "--no-parsing", "--quiet", "--report", str(report)], capsys)
        assert "internal error" not in err and "Traceback" not in err, f"{name}: {err}"
        assert src.read_bytes() == data, f"{name}: the input was touched"
        leftovers = [p.name for p in work.iterdir() if p.name.startswith(".")]
        assert not leftovers, f"{name}: temporary files left: {leftovers}"
        if rc == 0:
            outcomes["finished"] += 1
            with av.open(str(out)) as c:  # a finished, readable output
                n = sum(1 for _ in c.decode(video=0))
            rep = json.loads(report.read_text())
            assert n == rep["frames_written"] > 0, name
            if n < clip.frames:  # what was lost is said
                assert any("lost" in x or "decoded" in x for x in rep["notes"]), f"{name}: {rep['notes']}"
        else:
            outcomes["failed"] += 1
            lines = [x for x in err.strip().splitlines() if x]
            assert rc in (3, 4, 5, 6), f"{name}: exit {rc}: {err}"
            assert len(lines) == 1 and lines[0].startswith("videofix: error: "), f"{name}: {err}"
            assert not out.exists(), f"{name}: a failed run left {out}"
    # both kinds happen: the damage is real, and damaged files are not all refused
    assert outcomes["failed"] > 0 and outcomes["finished"] > 0, outcomes


def test_ffmpeg_errors_from_any_stage_are_one_line_input_errors(clip, tmp_path, capsys, monkeypatch):
    """Safety net: FFmpeg refusing data deep inside a stage (where no stage turned it into an
    InputError) is a bad-input line with exit 3, not `internal error`; other bugs still are."""
    import videofix.pipeline.local as local

    monkeypatch.delenv("VIDEOFIX_DEBUG", raising=False)

    def damaged(*a, **k):
        raise av.error.InvalidDataError(1094995529, "Invalid data found when processing input", str(clip.path))

    monkeypatch.setattr(local, "restore_video", damaged)
    rc, err = run(["restore", str(clip.path), "-o", str(tmp_path / "o.mkv"), "--model", "identity", "--quiet"], capsys)
    assert rc == 3 and err.count("\n") == 1
    assert err.startswith("videofix: error: cannot read the media: ") and "Invalid data" in err

    def bug(*a, **k):
        raise KeyError("x")

    monkeypatch.setattr(local, "restore_video", bug)
    rc, err = run(["restore", str(clip.path), "-o", str(tmp_path / "o.mkv"), "--model", "identity", "--quiet"], capsys)
    assert rc == 1 and "internal error: KeyError" in err
