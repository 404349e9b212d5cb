"""`videofix batch INPUTS... --out DIR`: restore an archive of videos on Ray.

Every input file (paths, globs, folders, or list files given as @FILE / *.txt: one path per
line) is a job item restored into DIR with the `restore` options. The job directory (default
DIR/.videofix-job) holds the plan and per-file / per-segment state, so `--resume` continues
after a kill without redoing finished segments; outputs appear only when complete and a
finished output is never rewritten. A bad input fails alone with its reason; the others
finish. One progress view over the job (frames, fps, ETA, files), a summary at the end.

Runs on an embedded local Ray sized to this machine (token authentication with a fresh
token, listening on 127.0.0.1 only) unless --address joins a cluster, with the cluster's
token from --ray-token-file or $RAY_AUTH_TOKEN.
Exit codes: 0 all done or skipped, else the first failure's code (3 bad input, ...), 7 the
cluster cannot be reached or refused the token, 130 interrupted (resume with --resume).
"""

from __future__ import annotations

import argparse
import logging
import sys


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from videofix.commands.restore import add_restore_options

    parser = subparsers.add_parser("batch", help="restore many videos on Ray (resumable job)",
                                   description=__doc__.split("\n\n", 1)[1],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="video files, globs, folders or @LIST files")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    add_restore_options(parser)
    j = parser.add_argument_group("job")
    j.add_argument("--job-dir", metavar="DIR", help="job state folder (default OUT/.videofix-job)")
    j.add_argument("--resume", action="store_true", help="continue the job in the job folder")
    j.add_argument("--address", default=None, help="Ray cluster to join (auto, ray://host:port); default: embedded")
    j.add_argument("--ray-token-file", default=None, metavar="FILE",
                   help="with --address: file holding the cluster's token (default: $RAY_AUTH_TOKEN, "
                        "$RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)")
    j.add_argument("--segments", type=int, default=None, metavar="N", help="segments per video")
    j.add_argument("--segment-seconds", type=float, default=None, metavar="S", help="target segment length")
    j.add_argument("--restorers", type=int, default=None, metavar="N",
                   help="restorer actors (default: one per GPU, else one on CPU)")
    j.add_argument("--retries", type=int, default=2, metavar="N", help="re-runs of a task after a worker crash")
    j.add_argument("--quiet", action="store_true", help="no progress view (the summary still goes to stderr)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from videofix.commands.restore import settings_from_args
    from videofix.pipeline.ray.jobs import run_batch
    from videofix.pipeline.ray.options import RayOptions

    logging.basicConfig(level=logging.WARNING, format="videofix: %(message)s", stream=sys.stderr)
    settings = settings_from_args(args)
    options = RayOptions(address=args.address, segments=args.segments, segment_seconds=args.segment_seconds,
                         restorers=args.restorers, max_retries=args.retries, token_file=args.ray_token_file)
    summary = run_batch(args.inputs, args.out, settings, options, job_dir=args.job_dir, resume=args.resume,
                        quiet=args.quiet)
    print(f"videofix: batch: {summary['done']} done, {summary['failed']} failed, {summary['skipped']} skipped "
          f"of {summary['total']} ({summary['frames']} frames, {summary['seconds']:.1f} s); job {summary['job_dir']}",
          file=sys.stderr)
    for item in summary["items"]:
        if item["status"] == "failed":
            print(f"videofix: failed: {item['input']}: {item['reason']}", file=sys.stderr)
    return int(summary["exit_code"])
