"""`videofix restore INPUT -o OUTPUT`: restore the faces of a video.

Decode -> detect -> track -> align -> restore (codes smoothed over time along each face
track) -> paste back -> encode. Audio, subtitles, timestamps and metadata are carried
over; the output appears atomically when the run succeeds, the input is never written.
With --ray the video is cut into keyframe-aligned segments restored in parallel on a Ray
cluster (an embedded local one unless --address is given), with identical output frames.

Exit codes: 0 ok, 2 usage, 3 bad input, 4 model file, 5 output, 6 device, 7 Ray cluster
(cannot be reached, or refused the token), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys

from videofix.errors import UsageError


def add_restore_options(parser: argparse.ArgumentParser) -> None:
    """The options shared by `restore` and `batch`: every setting of `videofix.settings`."""
    from videofix.commands.options import add_settings_options

    add_settings_options(parser)


def settings_from_args(args: argparse.Namespace):
    from videofix.commands.options import settings_from_args as from_args

    return from_args(args)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("restore", help="restore the faces of a video",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", metavar="INPUT", help="input video, or image sequence such as frames/%%06d.dpx")
    parser.add_argument("-o", "--output", required=True, metavar="OUTPUT",
                        help="output video, or image sequence such as out/%%06d.dpx (never the input)")
    add_restore_options(parser)
    # --- seq (#13): image sequences (DPX, TIFF, PNG, EXR) in and out
    q = parser.add_argument_group("image sequences")
    q.add_argument("--fps", default=None, metavar="RATE",
                   help="frame rate of an image-sequence input: 24, 25, 23.976, 24000/1001... (default 24)")
    r = parser.add_argument_group("run")
    r.add_argument("--report", metavar="PATH", help="write a JSON report (settings, timings, tracks, metrics)")
    r.add_argument("--preview", metavar="PATH", help="write a before/after picture of a few frames with faces")
    r.add_argument("--quiet", action="store_true", help="no progress bar or messages (errors still go to stderr)")
    r.add_argument("--ray", action="store_true", help="restore segments in parallel with Ray")
    r.add_argument("--address", default=None, help="Ray cluster to join (auto, ray://host:port); default: embedded")
    r.add_argument("--ray-token-file", default=None, metavar="FILE",
                   help="with --ray --address: file holding the cluster's token (default: $RAY_AUTH_TOKEN, "
                        "$RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)")
    r.add_argument("--segments", type=int, default=None, metavar="N", help="with --ray: number of segments")
    r.add_argument("--segment-seconds", type=float, default=None, metavar="S", help="with --ray: target segment length")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="videofix: %(message)s",
                        stream=sys.stderr)
    settings = settings_from_args(args)
    settings.validate()
    # --- seq (#13): a sequence input travels as PATTERN@FPS (videofix.io.sequence)
    from videofix.io.sequence import DEFAULT_FPS, header_fps, is_sequence_pattern, parse_fps, sequence_spec, split_spec

    if is_sequence_pattern(args.input):
        fps = args.fps
        if fps is None and split_spec(args.input)[1] is None:
            fps = header_fps(args.input)  # a DPX header may say it
            if not args.quiet:
                said = f"{fps} fps from the file header" if fps else f"{DEFAULT_FPS} fps assumed"
                print(f"videofix: {args.input}: image sequence without --fps: {said}", file=sys.stderr)
        args.input = sequence_spec(args.input, fps)
    elif args.fps is not None:
        parse_fps(args.fps)
        raise UsageError("--fps applies to an image-sequence input (a pattern such as frames/%06d.dpx); "
                         "a video keeps its own timestamps")
    if not args.ray and (args.address or args.segments or args.segment_seconds or args.ray_token_file):
        raise UsageError("--address, --ray-token-file, --segments and --segment-seconds need --ray")
    if args.ray:
        from videofix.pipeline.ray.jobs import restore_video_ray

        report = restore_video_ray(args.input, args.output, settings, address=args.address, segments=args.segments,
                                   segment_seconds=args.segment_seconds, report_path=args.report,
                                   preview_path=args.preview, quiet=args.quiet, token_file=args.ray_token_file)
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
