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
    g.add_argument("--model", default=d.model, choices=("codeformer", "vqfr", "identity"),
                   help="restoration network; identity = none (gives back the aligned face: measures the "
                        "pipeline's feed rate without a network)")
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
    e.add_argument("--codec", default=d.codec,
                   help="libx264 (default), libx265, ffv1 (lossless, .mkv), or a mastering codec in .mov: prores "
                        "(422 HQ), prores_4444, dnxhr_sq, dnxhr_hq, dnxhr_hqx, dnxhr_444")
    e.add_argument("--crf", type=int, default=d.crf, help=f"quality for libx264/libx265 (default {d.crf})")
    e.add_argument("--preset", default=d.preset, help=f"encoder preset (default {d.preset})")
    e.add_argument("--pix-fmt", default=None, help="output pixel format (default: the source's)")
    e.add_argument("--encoder-threads", type=int, default=d.encoder_threads, metavar="N",
                   help="encoder threads: 0 (default) = a fixed count, 16 frame threads for libx264 and 8 for "
                        "libx265; N = N threads. Any fixed count gives the same bytes on every run and machine, "
                        "whatever its number of cores; another count gives another stream")
    e.add_argument("--range", default=None, metavar="START:END",
                   help="restore only this part: seconds or HH:MM:SS.mmm from the first frame, whatever the "
                        "stream's start time (START included, END excluded)")
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
    # --- feed (#15): parallel CPU stages of the local runner
    p = parser.add_argument_group("speed")
    p.add_argument("--workers", type=int, default=d.workers, metavar="N",
                   help="CPU workers of the local runner: detection processes, alignment and paste threads "
                        "(default 0 = all cores; the output is the same for any N)")
    # --- select (#14): which faces are restored, and how much of each is pasted
    s = parser.add_argument_group("which faces", "decided per face track (one person through a shot), "
                                                 "never frame by frame; see the README")
    s.add_argument("--only-center-face", action="store_true",
                   help="restore only the face closest to the frame centre (the track that is most often so)")
    s.add_argument("--largest-face", action="store_true",
                   help="restore only the largest face (the track that is the largest in most of its frames)")
    s.add_argument("--min-face-size", type=float, default=d.min_face_size, metavar="PX",
                   help="leave out faces whose median size (sqrt of box width x height) is under PX pixels")
    s.add_argument("--max-faces", type=int, default=d.max_faces, metavar="N",
                   help="restore at most N faces in any frame, the largest first (default 0 = all)")
    s.add_argument("--det-threshold", type=float, default=None, metavar="T",
                   help="detection score threshold, 0..1 (default: the detector's own: RetinaFace 0.8, "
                        "SCRFD 0.5, dlib 0.5)")
    s.add_argument("--face-ref", nargs="+", default=[], metavar="IMAGE",
                   help="restore only the people whose face matches one of these photos (ArcFace when "
                        "buffalo_l is present, else dlib's face recognition network)")
    s.add_argument("--exclude", action="store_true", help="with --face-ref: restore everyone but those people")
    s.add_argument("--face-ref-distance", type=float, default=None, metavar="D",
                   help="identity match threshold (default: dlib 0.5 Euclidean, ArcFace 0.65 cosine distance)")
    s.add_argument("--blend", type=float, default=d.blend, metavar="B",
                   help="mix the restored face with the original: 1 = restored (default), 0 = original")
    s.add_argument("--keep-regions", default="", metavar="LIST",
                   help="parts that stay the source's, e.g. mouth (dubbed or lip-synced material): any of "
                        "mouth,eyes,brows,nose")
    s.add_argument("--no-occlusion", dest="occlusion", action="store_false",
                   help="paste over hands and objects in front of the face (by default, with the face-parsing "
                        "model present, they stay the source's)")


def settings_from_args(args: argparse.Namespace):
    from videofix.pipeline.local import RestoreSettings

    return RestoreSettings(
        weights=args.weights, models_dir=args.models_dir, model=args.model, detector=args.detector,
        fidelity=args.fidelity, temporal_radius=args.temporal_radius, device=args.device,
        batch_size=args.batch_size, dtype=args.dtype, codec=args.codec, crf=args.crf, preset=args.preset,
        encoder_threads=args.encoder_threads, pix_fmt=args.pix_fmt, range=args.range, upscale=args.upscale, parsing=args.parsing,
        color=args.color, grain=args.grain, grain_seed=args.grain_seed, deinterlace=args.deinterlace,
        upscaler=args.upscaler, dedup=args.dedup, workers=getattr(args, "workers", 0),
        # select (#14)
        only_center_face=args.only_center_face, largest_face=args.largest_face, min_face_size=args.min_face_size,
        max_faces=args.max_faces, det_threshold=args.det_threshold, face_ref=list(args.face_ref),
        exclude=args.exclude, face_ref_distance=args.face_ref_distance, blend=args.blend,
        keep_regions=args.keep_regions, occlusion=args.occlusion,
    )


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
