"""Errors that the command line turns into one clear line and a documented exit code.

Exit codes (documented in the README):
    0  success
    1  unexpected internal error (a bug: please report it)
    2  bad command-line usage
    3  bad input file (not a video, no video stream, zero frames, unsupported codec, ...)
    4  model file missing, unreadable or of the wrong layout
    5  output problem (refused path, cannot write)
    6  runtime/device problem (CUDA unavailable, out of memory, ...)
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

import threading

# Set by the command line's Ctrl-C handler. A KeyboardInterrupt can be swallowed by a
# library's bare `except:` (an optional import, a C callback): the stages check this flag
# once per frame (`check_interrupted`), so a Ctrl-C always ends the run with exit 130 and
# nothing under the output name.
INTERRUPTED = threading.Event()


def check_interrupted() -> None:
    """Raise KeyboardInterrupt when Ctrl-C was pressed during this run."""
    if INTERRUPTED.is_set():
        raise KeyboardInterrupt


class VideofixError(Exception):
    """Base class: an error with a one-line, user-facing message."""

    exit_code = 1


class UsageError(VideofixError):
    exit_code = 2


class InputError(VideofixError):
    """The input media is unusable (not a video, truncated beyond use, unsupported)."""

    exit_code = 3


class ModelFileError(VideofixError):
    """A model file is missing, truncated, or does not have the expected layout."""

    exit_code = 4


class OutputError(VideofixError):
    exit_code = 5


class DeviceError(VideofixError):
    exit_code = 6


class ClusterError(VideofixError):
    """The Ray cluster given with --address cannot be reached or refused the connection."""

    exit_code = 7
