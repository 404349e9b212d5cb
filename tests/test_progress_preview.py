"""What a user watches during and after a run: the progress bars (counted in the frames the
run restores, also with --range) and the before/after preview (its columns labelled)."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

import media
from conftest import run_cli
from videofix.samples import face_content


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    # 50 frames at 25 fps with a real face (scikit-image's astronaut, moving)
    return media.make_clip(tmp_path_factory.mktemp("progress") / "faces.mkv", frames=50, size=(192, 144),
                           codec="ffv1", audio=False, subtitles=False, content=face_content(192, 144, face_size=112))


def _bar_totals(stderr: str, desc: str) -> set[int]:
    """Totals the tqdm bar `desc` showed ("restore:  40%|...| 10/25 [...]")."""
    totals = set()
    for piece in re.split(r"[\r\n]", stderr):
        m = re.match(rf"\s*{desc}\s*:.*?(\d+)/(\d+)\s*\[", piece)
        if m:
            totals.add(int(m.group(2)))
    return totals


def test_progress_bars_count_the_ranges_frames(long_clip, tmp_path):
    """Bug: with --range 1:2 on a 270-frame file the bar counted to 270 ('24/270' at the end, an
    ETA of hours). Both bars must count the frames of the range: 25 of the 50 here."""
    out = tmp_path / "out.mkv"
    proc = run_cli("restore", long_clip.path, "-o", out, "--model", "identity", "--detector", "dlib",
                   "--codec", "ffv1", "--range", "1:2", "--workers", "1")
    assert _bar_totals(proc.stderr, "detect") == {25}, proc.stderr[-2000:]
    assert _bar_totals(proc.stderr, "restore") == {25}, proc.stderr[-2000:]
    assert re.search(r"restore\s*:\s*100%.*25/25", proc.stderr)


def test_preview_columns_are_labelled(long_clip, tmp_path):
    from videofix.pipeline.report import PreviewCollector

    preview = tmp_path / "preview.png"
    proc = run_cli("restore", long_clip.path, "-o", tmp_path / "out.mkv", "--model", "identity", "--detector",
                   "dlib", "--codec", "ffv1", "--preview", preview, "--workers", "1")
    assert _bar_totals(proc.stderr, "restore") == {50}  # the whole file: all of its frames
    image = cv2.cvtColor(cv2.imread(str(preview)), cv2.COLOR_BGR2RGB)
    strip_h = PreviewCollector.LABEL_HEIGHT
    # rows are label strip + pictures; every strip is the dark label background with white text
    # at the left of each column (source, restored, face: source, [no grain], face: restored)
    width = 640
    rows_found = 0
    y = 0
    while y < image.shape[0]:
        strip = image[y:y + strip_h]
        background = np.all(strip == 32, axis=-1)
        if background.mean() < 0.7:
            break
        text = ~background
        columns = [0, width] + ([2 * width] if strip.shape[1] > 2 * width else [])
        assert all(text[:, x:x + 150].any() for x in columns), columns
        rows_found += 1
        # the picture row under it: the frame is 640 wide at 4:3 -> 480 high
        y += strip_h + 480
    assert rows_found >= 1 and y == image.shape[0]
    collector = PreviewCollector([], None)
    assert collector.row_labels(12, 2) == ["frame 12: source", "restored"]
    assert collector.row_labels(12, 4) == ["frame 12: source", "restored", "face: source", "face: restored"]
    assert collector.row_labels(12, 5)[3] == "face: restored, no grain"
