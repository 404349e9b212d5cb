"""Reading and writing video without losing anything but the faces' old pixels.

Decode (`open_video`, threaded, native pixel formats as `Picture`), encode (`VideoWriter`;
codec names, pixel formats and encoder options in `videofix.io.codecs`), mux the source's
audio/subtitles/metadata back by stream copy and rename atomically (`finalize_output` in
`videofix.io.remux`, `OutputFile`; timecodes in `videofix.io.timecode`), and keyframe-aligned
segments for the parallel runner (`plan_segments`, `open_segment`, `join_segments`); image
sequences (`frames/%06d.dpx`) in and out through the same calls (`videofix.io.sequence`).
See docs/DESIGN.md for the contracts.
"""

from videofix.io.info import StreamInfo, TimeRange, VideoInfo, parse_range, probe
from videofix.io.picture import LAYOUTS, Picture, default_matrix
from videofix.io.reader import DecodedFrame, ReadReport, VideoReader, open_video
from videofix.io.segments import Segment, SegmentPlan, join_segments, open_segment, plan_segments
from videofix.io.sequence import ImageSequence, SequenceWriter, is_sequence_pattern, scan_sequence, sequence_spec
from videofix.io.codecs import choose_pix_fmt, resolve_codec
from videofix.io.remux import finalize_output
from videofix.io.writer import OutputFile, VideoWriter, check_output

__all__ = [
    "LAYOUTS", "DecodedFrame", "ImageSequence", "SequenceWriter", "is_sequence_pattern", "scan_sequence",
    "sequence_spec", "OutputFile", "Picture", "ReadReport", "Segment", "SegmentPlan",
    "StreamInfo", "TimeRange", "VideoInfo", "VideoReader", "VideoWriter", "check_output",
    "choose_pix_fmt", "default_matrix", "finalize_output", "join_segments", "open_segment",
    "open_video", "parse_range", "plan_segments", "probe", "resolve_codec",
]
