"""Keyframe-aligned segments: exact frames per segment, joined output equals a one-piece run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from media import decode_audio, decode_frames, make_clip, subtitle_packets, video_packets
from videofix.errors import OutputError
from videofix.io import (
    OutputFile, SegmentPlan, VideoWriter, join_segments, open_segment, open_video, plan_segments, probe,
)


def encode_segments(src, plan, tmp_path, ext=".mkv", codec="ffv1"):
    info = probe(src)
    files, seen = [], []
    for seg in plan.segments:
        with open_segment(src, seg) as reader:
            writer = VideoWriter(tmp_path / f"seg{seg.index:03d}{ext}", info, codec=codec, preset="ultrafast")
            for f in reader:
                seen.append((f.index, f.pts))
                writer.write(f.picture, f.pts)
            files.append(writer.commit())
    return files, seen


@pytest.mark.parametrize("codec,open_gop", [("libx264", False), ("libx264", True), ("libx265", True)])
def test_three_segments_join_equals_one_piece(tmp_path, codec, open_gop):
    clip = make_clip(tmp_path / "in.mkv", frames=40, codec=codec, gop=8, bframes=3, open_gop=open_gop)
    plan = plan_segments(clip.path, count=3)
    plan = SegmentPlan.from_json(json.loads(json.dumps(plan.to_json())))  # plain data round trip
    assert len(plan.segments) == 3
    assert [s.start_frame for s in plan.segments] == [0, 16, 24]
    assert plan.segments[-1].end_frame == plan.frame_count == 40

    files, seen = encode_segments(clip.path, plan, tmp_path)
    source_pts = sorted(p for p, _, _ in video_packets(clip.path))
    assert seen == list(enumerate(source_pts))  # no frame lost or duplicated at boundaries

    joined = join_segments(files, plan, clip.path, tmp_path / "joined.mkv")
    with open_video(clip.path) as reader, OutputFile(clip.path, tmp_path / "one.mkv", reader.info, codec="ffv1") as out:
        for f in reader:
            out.write(f.picture, f.pts)
    a, b, c = decode_frames(clip.path), decode_frames(joined), decode_frames(tmp_path / "one.mkv")
    assert len(b) == len(c) == 40
    assert [t for t, _, _ in b] == [t for t, _, _ in c] == [t for t, _, _ in a]
    for (_, pb, _), (_, pc, _), (_, pa, _) in zip(b, c, a):
        for x, y, z in zip(pb, pc, pa):
            np.testing.assert_array_equal(x, y)
            np.testing.assert_array_equal(x, z)
    np.testing.assert_array_equal(decode_audio(clip.path), decode_audio(joined))  # muxed once
    assert subtitle_packets(clip.path) == subtitle_packets(joined)


def test_h264_mp4_segments_join_keeps_count_and_pts(tmp_path):
    clip = make_clip(tmp_path / "in.mp4", frames=36, gop=12, bframes=2)
    plan = plan_segments(clip.path, seconds=0.5)
    assert len(plan.segments) == 3
    files, _ = encode_segments(clip.path, plan, tmp_path, ext=".mp4", codec="libx264")
    joined = join_segments(files, plan, clip.path, tmp_path / "joined.mp4")
    assert [t for t, _, _ in decode_frames(joined)] == clip.times
    np.testing.assert_array_equal(decode_audio(clip.path), decode_audio(joined))


def test_join_refuses_wrong_frame_count(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=24, gop=8, audio=False, subtitles=False)
    plan = plan_segments(clip.path, count=3)
    files, _ = encode_segments(clip.path, plan, tmp_path)
    plan.segments[1].end_frame += 1
    with pytest.raises(OutputError, match="plan says"):
        join_segments(files, plan, clip.path, tmp_path / "joined.mkv")
    assert not (tmp_path / "joined.mkv").exists()


def test_ranged_plan(tmp_path):
    clip = make_clip(tmp_path / "in.mkv", frames=50, gop=10, subtitles=False)
    plan = plan_segments(clip.path, count=2, range="0.5:1.5")
    assert plan.frame_count == 25 and plan.segments[0].start_frame == 0
    files, seen = encode_segments(clip.path, plan, tmp_path)
    assert [i for i, _ in seen] == list(range(25))
    joined = join_segments(files, plan, clip.path, tmp_path / "joined.mkv")
    times = [t for t, _, _ in decode_frames(joined)]
    assert len(times) == 25 and times[0] == 0


# ------------------------------------------------------------------ the join's guard
def _three_equal_segments(tmp_path):
    """A 36-frame clip in three 12-frame segments, each encoded to its own file (FFV1)."""
    clip = make_clip(tmp_path / "in.mkv", frames=36, gop=12, audio=False, subtitles=False)
    plan = plan_segments(clip.path, count=3)
    assert [s.frame_count for s in plan.segments] == [12, 12, 12]
    files, _ = encode_segments(clip.path, plan, tmp_path)
    return clip, plan, files


def _refused(files, plan, clip, tmp_path, *words) -> str:
    out = tmp_path / "out" / "joined.mkv"
    out.parent.mkdir(exist_ok=True)
    with pytest.raises(OutputError) as e:
        join_segments(files, plan, clip.path, out)
    message = str(e.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert list(out.parent.iterdir()) == []  # nothing under the output name, no temporary file
    return message


def test_join_refuses_overlapping_segments(tmp_path):
    """Segment 1 encoded from frames 10..21 (two of segment 0's frames, the planned count)."""
    clip, plan, files = _three_equal_segments(tmp_path)
    info = probe(clip.path)
    writer = VideoWriter(tmp_path / "seg001-shifted.mkv", info, codec="ffv1")
    with open_video(clip.path) as reader:
        for f in reader:
            if 10 <= f.index < 22:
                writer.write(f.picture, f.pts)
    shifted = writer.commit()
    _refused([files[0], shifted, files[2]], plan, clip, tmp_path, "seg001-shifted.mkv",
             "cannot join: decode times overlap the previous segment")


def test_join_refuses_duplicated_segments(tmp_path):
    clip, plan, files = _three_equal_segments(tmp_path)
    _refused([files[0], files[1], files[1]], plan, clip, tmp_path, "the same file is given for segments 1 and 2")
    copy = tmp_path / "seg002-copy-of-1.mkv"
    copy.write_bytes(files[1].read_bytes())  # segment 1 written twice, once in segment 2's place
    _refused([files[0], files[1], copy], plan, clip, tmp_path, "seg002-copy-of-1.mkv", "decode times overlap")


def test_join_refuses_missing_segments(tmp_path):
    clip, plan, files = _three_equal_segments(tmp_path)
    _refused(files[:2], plan, clip, tmp_path, "2 segment files for 3 planned segments")
    _refused([files[0], files[1], tmp_path / "seg002-never-written.mkv"], plan, clip, tmp_path,
             "seg002-never-written.mkv", "cannot read segment")


def test_x264_segments_with_b_frames_join_in_matroska(tmp_path):
    """Bug: libx264 at its default preset (B-frames) in Matroska segments: the container stores
    no decode times, the first packets of each segment came back without one, and the join
    failed in the muxer ("Invalid argument"). Decode times are now rebuilt for the whole video."""
    clip = make_clip(tmp_path / "in.mkv", frames=36, size=(256, 192), gop=12, bframes=3, subtitles=False)
    plan = plan_segments(clip.path, count=3)
    info = probe(clip.path)
    files = []
    for seg in plan.segments:
        with open_segment(clip.path, seg) as reader:
            writer = VideoWriter(tmp_path / f"seg{seg.index}.mkv", info)  # libx264, preset medium
            for f in reader:
                writer.write(f.picture, f.pts)
            files.append(writer.commit())
    joined = join_segments(files, plan, clip.path, tmp_path / "joined.mkv")
    assert [t for t, _, _ in decode_frames(joined)] == clip.times
    np.testing.assert_array_equal(decode_audio(clip.path), decode_audio(joined))
