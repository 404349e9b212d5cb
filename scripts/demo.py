"""`make demo`: restore the faces of a generated sample clip with `videofix restore`.

1. writes demo/sample.mp4: real faces (scikit-image's astronaut) moving over a textured
   background, degraded (blur, downscale, noise), with a sine audio track;
2. finds codeformer.pth through the model registry (explicit $VIDEOFIX_MODELS, a ComfyUI
   install, the user cache, or a download from the official release);
3. runs `videofix restore demo/sample.mp4 -o demo/restored.mp4 --report --preview`.

Where the official weights cannot be had (no network, as on the CI machines), it says so
and runs the same pipeline with a small CodeFormer filled with the golden parity formula:
every stage does its real work, but those weights are not trained, so the faces come out
as noise. Put codeformer.pth in $VIDEOFIX_MODELS for a real restoration.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "demo"), help="folder for the sample, output, report, preview")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    import torch

    from videofix import modelfiles
    from videofix.errors import ModelFileError
    from videofix.samples import face_content, write_sample_clip

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sample = out / "sample.mp4"
    print(f"demo: writing {sample} ({args.frames} frames, 640x360, 2 real faces, audio)")
    write_sample_clip(sample, face_content(640, 360, faces=2, face_size=170), args.frames, fps=24)

    weights_args: list[str] = []
    try:
        path = modelfiles.resolve("codeformer", download=True)
        print(f"demo: restorer weights: {path}")
        weights_args = ["--weights", str(path)]
    except ModelFileError as exc:
        from videofix.models.synthetic import formula_codeformer, small_codeformer_config

        print(f"demo: {exc}")
        print("demo: the official codeformer.pth is not available here, so this demo runs with a small "
              "CodeFormer filled with the golden parity formula (untrained: the faces come out as noise). "
              "Every stage still runs for real.")
        fallback = out / "codeformer_formula_small.pth"
        torch.save({"params_ema": formula_codeformer(small_codeformer_config()).state_dict()}, fallback)
        weights_args = ["--weights", str(fallback)]

    restored = out / "restored.mp4"
    report = out / "report.json"
    preview = out / "preview.png"
    cmd = [sys.executable, "-m", "videofix", "restore", str(sample), "-o", str(restored), *weights_args,
           "--device", args.device, "--report", str(report), "--preview", str(preview)]
    print("demo: " + " ".join(cmd[2:]))
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    if rc != 0:
        print(f"demo: videofix restore failed with exit code {rc}", file=sys.stderr)
        return rc
    r = json.loads(report.read_text())
    print(f"demo: done in {time.perf_counter() - t0:.1f} s: {restored}")
    print(f"demo: {r['frames_written']} frames, {len(r['tracks'])} face tracks, detector {r['detector']}, "
          f"device {r['device']}")
    for t in r["tracks"]:
        print(f"demo:   track {t['id']}: {len(t['frames'])} frames, code flip rate {t['code_flip_rate']}, "
              f"flicker {t['flicker']}")
    print(f"demo: report {report}, before/after preview {preview}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
