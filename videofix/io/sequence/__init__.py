"""Image sequences in and out: film scans and finishing tools' `frames/%06d.dpx`.

A sequence is named by a printf pattern whose file name holds one frame-number token
(`%d` or `%0Nd`): `scan/%06d.dpx`, `reel1/frame.%04d.tif`. Formats: DPX, TIFF (.tif/.tiff),
PNG and OpenEXR, read and written with the libav codecs PyAV bundles (`dpx`, `tiff`, `png`,
`exr`).

**Input.** Images carry no frame rate, so the rate travels with the pattern as a *source
spec* `PATTERN@FPS` (`scan/%06d.dpx@24000/1001`; `--fps` of the CLI builds it, and a bare
pattern means `DEFAULT_FPS`). `open_input` (videofix.io.info) opens a spec with libav's
image2 demuxer, so every reader of the io layer (`probe`, `open_video`, `plan_segments`,
`open_segment`) and both runners take a spec wherever they take a file. Frame i of the
sequence (the i-th number from the first file found) has pts i in time base 1/FPS; every
frame is a keyframe. The numbers must run without a gap (a missing scan is an error, never
a silently shorter film). Bit depth is kept: 10/12-bit DPX decode as gbrp10le/gbrp12le,
16-bit DPX/TIFF/PNG as rgb48 (held by `Picture` as gbrp16le, an exact repacking), EXR as
32-bit float (held as gbrp16le for the face stages, see below).

**Output** (`SequenceWriter`, also behind `OutputFile`): one file per frame, named with the
output pattern and the *source's* frame number (a video source: numbers from
`VIDEO_START_NUMBER`, as ffmpeg numbers them). When the source is a sequence of the same
format, a frame whose picture is unchanged (no face pasted) is a byte-identical copy of
its source file; a changed frame is encoded in the source file's own pixel format (and
byte order for DPX; DPX under the source file's own header, TIFF with its compression, EXR
with its sample type and compression), so every sample outside the faces keeps its value;
alpha channels and EXR floats are taken from the source file sample by sample wherever the
picture did not change. The files are written into a hidden temporary folder and moved into place when the
run succeeds (`commit`): nothing appears under the final names on failure, and an input
file is never overwritten.
"""

from videofix.io.sequence.headers import (
    decode_image,
    decode_image_bytes,
    dpx_big_endian,
    dpx_splice,
    exr_options,
    header_fps,
    sequence_timecode,
    tiff_options,
)
from videofix.io.sequence.spec import (
    DEFAULT_FPS,
    SEQUENCE_FORMATS,
    SPEC_SEPARATOR,
    VIDEO_START_NUMBER,
    ImageSequence,
    is_sequence_pattern,
    open_sequence,
    parse_fps,
    scan_sequence,
    sequence_spec,
    source_sequence,
    source_stat,
    split_spec,
)
from videofix.io.sequence.staging import StagingFolder, join_sequence
from videofix.io.sequence.writer import SequenceWriter, check_sequence_output

__all__ = [
    "DEFAULT_FPS", "ImageSequence", "SEQUENCE_FORMATS", "SPEC_SEPARATOR", "SequenceWriter", "StagingFolder",
    "VIDEO_START_NUMBER", "check_sequence_output", "decode_image", "decode_image_bytes", "dpx_big_endian",
    "dpx_splice", "exr_options", "header_fps", "is_sequence_pattern", "join_sequence", "open_sequence",
    "parse_fps", "scan_sequence", "sequence_spec", "sequence_timecode", "source_sequence", "source_stat",
    "split_spec", "tiff_options",
]
