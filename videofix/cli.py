"""The `videofix` command line.

Each subcommand lives in `videofix/commands/<name>.py` and exposes
`register(subparsers) -> argparse.ArgumentParser` and `run(args) -> int`.
Modules are imported lazily so `videofix --help` stays fast and an optional
dependency missing for one subcommand does not break the others.

Every error a user can cause is a `VideofixError`: it is printed as one line
(`videofix: error: ...`) with the exit code documented in `videofix.errors`.
Set VIDEOFIX_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from videofix import __version__
from videofix.errors import INTERRUPTED, VideofixError

# subcommand name -> module under videofix.commands
SUBCOMMANDS: dict[str, str] = {
    "restore": "restore",
    "restore-faces": "restore_faces",
    "models": "models",
    "eval": "eval",
    "batch": "batch",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="videofix",
        description="Temporally stable face restoration for video.",
    )
    parser.add_argument("--version", action="version", version=f"videofix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        if only is not None and name != only:
            # still list it in --help, but do not import its module
            sub.add_parser(name, help=f"see `videofix {name} --help`", add_help=False)
            continue
        try:
            module = importlib.import_module(f"videofix.commands.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("videofix.commands"):
                continue  # subcommand not built yet
            raise
        module.register(sub)
    return parser


def _fail(message: str, code: int) -> int:
    print(f"videofix: error: {message}", file=sys.stderr)
    return code


def _from_media(exc: BaseException) -> bool:
    """Whether `exc` is an FFmpeg (PyAV) error about the data, not memory or a missing file."""
    av_error = sys.modules.get("av.error")
    if av_error is None or not isinstance(exc, av_error.FFmpegError):
        return False
    return not isinstance(exc, (MemoryError, av_error.EncoderNotFoundError, av_error.MuxerNotFoundError))


def _av_message(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    name = getattr(exc, "filename", None)
    return f"{name}: {msg}".strip() if name else msg.strip()


def _on_sigint(signum, frame) -> None:
    INTERRUPTED.set()
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """The `videofix` command; returns the exit code. Ctrl-C is remembered as well as raised
    (`videofix.errors.INTERRUPTED`), so a library that swallows the KeyboardInterrupt cannot
    turn an interrupted run into a finished one."""
    import signal
    import threading

    INTERRUPTED.clear()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, _on_sigint)
    try:
        return _main(argv)
    finally:
        INTERRUPTED.clear()  # in-process callers (tests, notebooks) go on with a clean flag
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("VIDEOFIX_DEBUG") == "1"
    first = next((a for a in argv if not a.startswith("-")), None)
    only = first if first in SUBCOMMANDS else None
    try:
        parser = build_parser(only)
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except VideofixError as exc:
        if debug:
            raise
        from videofix.commands.options import flag

        return _fail(exc.named(flag), exc.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # a bug: one line unless debugging
        if debug:
            raise
        if _from_media(exc):
            # FFmpeg refusing data is about the user's file, whichever stage met it: a bad
            # input (exit 3), never "internal error" (the reader handles the known cases)
            return _fail(f"cannot read the media: {_av_message(exc)}", 3)
        return _fail(
            f"internal error: {type(exc).__name__}: {exc} (run with VIDEOFIX_DEBUG=1 for details)", 1
        )


if __name__ == "__main__":
    sys.exit(main())
