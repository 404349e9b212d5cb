"""Shot boundaries: TransNetV2 (`transnet`), the decisions drawn from its probabilities
(`decisions`), the streaming detector of pass 1 (`stream`) and the Ray runner's segments
(`segments`). Not about faces: pass 1 runs it beside the face detector on the same small
frames. Frames are uint8 (H, W, 3) **RGB**.
"""

from .decisions import ShotDecider, ShotDecision, decide_shots
from .segments import SEGMENT_EDGE, SegmentShotRecorder, SegmentShots, join_segment_shots
from .stream import ShotDetector, detect_cuts
from .transnet import (
    CONTEXT,
    STEP,
    THUMB_H,
    THUMB_W,
    WINDOW,
    TransNetV2Model,
    shot_thumbnail,
    transnetv2,
    window_frames,
    window_probabilities,
    window_ready,
)

__all__ = [
    "CONTEXT", "SEGMENT_EDGE", "STEP", "THUMB_H", "THUMB_W", "WINDOW", "SegmentShotRecorder", "SegmentShots",
    "ShotDecider", "ShotDecision", "ShotDetector", "TransNetV2Model", "decide_shots", "detect_cuts",
    "join_segment_shots", "shot_thumbnail", "transnetv2", "window_frames", "window_probabilities", "window_ready",
]
