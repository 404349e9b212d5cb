"""Waiting for what a running process does, never for a fixed time.

A test that sleeps a fixed time before it signals or inspects a process races that
process's start-up: on a loaded machine the sleep ends before the process got anywhere (the
old Ctrl-C test sent SIGINT before the handler was installed). `wait_until` polls a
condition instead (a file appearing or growing, a child process existing) and fails with
the process's own stderr when the process ends first; its deadline is only a guard against
a hung process, never the thing waited for.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

GUARD_S = 600.0  # a hung process, not a slow one: a loaded CI machine may take minutes
POLL_S = 0.01


def wait_until(condition: Callable[[], T], proc: subprocess.Popen | None, what: str, guard_s: float = GUARD_S) -> T:
    """Poll `condition()` until it returns something true (returned). Raises AssertionError
    when `proc` (None: no process to watch) exits first (its stderr, if piped, in the
    message) or after `guard_s`."""
    deadline = time.monotonic() + guard_s
    while True:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr is not None else ""
            raise AssertionError(f"the process ended (exit {proc.returncode}) before {what}: {err[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen after {guard_s:.0f} s")
        time.sleep(POLL_S)


def temporary_files(output: str | os.PathLike) -> list[Path]:
    """The temporary files videofix writes next to `output` (`videofix.atomic` names:
    `.STEM.videofix-HOST-PID-XXXXXX.TAG.EXT`)."""
    out = Path(output)
    if not out.parent.is_dir():
        return []
    return sorted(p for p in out.parent.iterdir() if p.name.startswith(f".{out.stem}.videofix-"))


def encoded_output(output: str | os.PathLike) -> Path | None:
    """The temporary video file of a run writing `output` once it exists, else None. PyAV
    creates an output file when the first packet is muxed (not when it is opened), so it
    exists only once a frame has been encoded (its bytes may still sit in the I/O buffer)."""
    found = [p for p in temporary_files(output) if ".video." in p.name]
    return found[0] if found else None


def children(pid: int) -> list[int]:
    """Live child processes of `pid` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return sorted(found)


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def gone(pid: int) -> bool:
    """Whether process `pid` has ended (or is a zombie waiting for its parent)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
