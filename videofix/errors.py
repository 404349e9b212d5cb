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
    """Base class: an error with a one-line, user-facing message.

    option: the setting the error is about (its field name in `videofix.settings`, e.g.
    "temporal_radius"), or None. The message then reads as a sentence about the option
    ("temporal_radius must be ..."), and each front-end names the option its own way
    (`named`): the command line as ``--temporal-radius``, VapourSynth and ComfyUI by the
    argument's name.
    """

    exit_code = 1

    def __init__(self, message: str = "", *, option: str | None = None):
        super().__init__(message)
        self.option = option

    @property
    def detail(self) -> str:
        """The message without the option's name."""
        return super().__str__()

    def named(self, name_of=None) -> str:
        """The message with the option named by `name_of(field_name)` (default: the field name)."""
        detail = self.detail
        if self.option is None:
            return detail
        name = name_of(self.option) if name_of is not None else self.option
        return f"{name}{'' if detail[:1] in (':', ',') else ' '}{detail}"

    def __str__(self) -> str:
        return self.named()

    def __reduce__(self):  # keep `option` through pickling (Ray ships errors back)
        return (type(self), (self.detail,), {"option": self.option})


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
