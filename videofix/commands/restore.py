"""`videofix restore INPUT -o OUTPUT`: restore the faces of a video.

Decode -> detect -> track -> align -> restore (codes smoothed over time along each face
track) -> paste back -> encode. Audio, subtitles, timestamps and metadata are carried
over; the output appears atomically when the run succeeds, the input is never written.
With --ray the video is cut into keyframe-aligned segments restored in parallel on a Ray
cluster (an embedded local one unless --address is given), with identical output frames.

Exit codes: 0 ok, 2 usage, 3 bad input, 4 model file, 5 output, 6 device, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys

from videofix.errors import UsageError


def add_restore_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by `restore` and `batch`."""
    from videofix.pipeline.local import RestoreSettings

    d = RestoreSettings()
    g = parser.add_argument_group("model")
    g.add_argument("--model", default=d.model, choices=("codeformer", "vqfr"), help="restoration network")
    g.add_argument("--weights", metavar="FILE", help="restorer weights (default: looked up, see `videofix models`)")
    g.add_argument("--models-dir", metavar="DIR", help="folder holding model files (also $VIDEOFIX_MODELS)")
    g.add_argument("--detector", default=d.detector, choices=("auto", "retinaface", "retinaface_mobile", "scrfd", "dlib"),
                   help="face detector; auto = best whose files are present, else dlib (offline)")
    g.add_argument("--fidelity", type=float, default=d.fidelity, metavar="W",
                   help=f"0 = strongest restoration, 1 = closest to the input (default {d.fidelity})")
    g.add_argument("--temporal-radius", type=int, default=d.temporal_radius, metavar="R",
                   help=f"smooth code predictions over +-R frames of each track; 0 = per-frame (default {d.temporal_radius})")
    g.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N (default auto)")
    g.add_argument("--batch-size", type=int, default=d.batch_size, metavar="N", help=f"faces per network pass (default {d.batch_size})")
    g.add_argument("--dtype", default=d.dtype, choices=("fp32", "fp16", "bf16"), help="network precision (default fp32)")
    g.add_argument("--no-parsing", dest="parsing", action="store_false",
                   help="never use the face-parsing mask, even when parsing_parsenet.pth is present")
    e = parser.add_argument_group("output")
    e.add_argument("--codec", default=d.codec, help="libx264 (default), libx265, or ffv1 (lossless, .mkv)")
    e.add_argument("--crf", type=int, default=d.crf, help=f"quality for libx264/libx265 (default {d.crf})")
    e.add_argument("--preset", default=d.preset, help=f"encoder preset (default {d.preset})")
    e.add_argument("--pix-fmt", default=None, help="output pixel format (default: the source's)")
    e.add_argument("--range", default=None, metavar="START:END", help="restore only this part (seconds or HH:MM:SS.mmm)")
    e.add_argument("--upscale", type=int, default=d.upscale, metavar="N", help="upscale the whole frame N times (default 1)")
    f = parser.add_argument_group("old films")
    f.add_argument("--color", default=d.color, choices=("auto", "color", "luma"),
                   help="auto: shots found black-and-white, sepia or tinted get luma-only faces (the source's "
                        "chroma kept); luma: always; color: never (default auto)")
    f.add_argument("--grain", default=d.grain, choices=("auto", "off"),
                   help="auto: add grain to restored faces to match the grain around them; off: clean faces")
    f.add_argument("--grain-seed", type=int, default=d.grain_seed, metavar="N",
                   help=f"seed of the added grain (same seed, same output; default {d.grain_seed})")
    f.add_argument("--deinterlace", default=d.deinterlace, choices=("auto", "on", "off"),
                   help="auto: deinterlace (bwdif) when the picture shows combing; on: always; off: never")
    f.add_argument("--upscaler", default=d.upscaler, choices=("auto", "realesrgan", "lanczos", "bilinear"),
                   help="background upscaler for --upscale N: auto = Real-ESRGAN x2plus when its file is "
                        "present, else Lanczos (default auto)")
    f.add_argument("--dedup", dest="dedup", action="store_true", default=d.dedup,
                   help="restore repeated frames once and repeat the result (default)")
    f.add_argument("--no-dedup", dest="dedup", action="store_false", help="restore every frame on its own")


def settings_from_args(args: argparse.Namespace):
    from videofix.pipeline.local import RestoreSettings

    return RestoreSettings(
        weights=args.weights, models_dir=args.models_dir, model=args.model, detector=args.detector,
        fidelity=args.fidelity, temporal_radius=args.temporal_radius, device=args.device,
        batch_size=args.batch_size, dtype=args.dtype, codec=args.codec, crf=args.crf, preset=args.preset,
        pix_fmt=args.pix_fmt, range=args.range, upscale=args.upscale, parsing=args.parsing,
        color=args.color, grain=args.grain, grain_seed=args.grain_seed, deinterlace=args.deinterlace,
        upscaler=args.upscaler, dedup=args.dedup,
    )


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("restore", help="restore the faces of a video",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="INPUT", help="input video")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT", help="output video (never the input)")
    add_restore_options(parser)
    r = parser.add_argument_group("run")
    r.add_argument("--report", metavar="PATH", help="write a JSON report (settings, timings, tracks, metrics)")
    r.add_argument("--preview", metavar="PATH", help="write a before/after picture of a few frames with faces")
    r.add_argument("--quiet", action="store_true", help="no progress bar or messages (errors still go to stderr)")
    r.add_argument("--ray", action="store_true", help="restore segments in parallel with Ray")
    r.add_argument("--address", default=None, help="Ray cluster to join (auto, ray://host:port); default: embedded")
    r.add_argument("--segments", type=int, default=None, metavar="N", help="with --ray: number of segments")
    r.add_argument("--segment-seconds", type=float, default=None, metavar="S", help="with --ray: target segment length")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="videofix: %(message)s",
                        stream=sys.stderr)
    settings = settings_from_args(args)
    settings.validate()
    if not args.ray and (args.address or args.segments or args.segment_seconds):
        raise UsageError("--address, --segments and --segment-seconds need --ray")
    if args.ray:
        from videofix.pipeline.distributed import restore_video_ray

        report = restore_video_ray(args.input, args.output, settings, address=args.address, segments=args.segments,
                                   segment_seconds=args.segment_seconds, report_path=args.report,
                                   preview_path=args.preview, quiet=args.quiet)
    else:
        from videofix.pipeline.local import restore_video

        report = restore_video(args.input, args.output, settings, report_path=args.report,
                               preview_path=args.preview, quiet=args.quiet)
    if not args.quiet:
        tracks = report["tracks"]
        print(f"videofix: wrote {args.output}: {report['frames_written']} frames, {len(tracks)} face tracks, "
              f"{report['faces_restored']} faces restored, detector {report['detector']}, "
              f"{report['timings']['total']:.1f} s", file=sys.stderr)
        for note in report.get("notes", []):
            print(f"videofix: {note}", file=sys.stderr)
    return 0
