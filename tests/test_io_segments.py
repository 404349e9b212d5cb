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
