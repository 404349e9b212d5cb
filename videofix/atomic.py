"""Files that appear whole or not at all: write under a temporary name, then rename.

Everything videofix writes under a name that a user or another process reads (outputs,
reports, job state, model files, the hash record) is written to a hidden temporary file
in the same folder and renamed onto its name (`os.replace`: atomic within one file
system). A failure deletes the temporary file; the final name is never touched.

Temporary names say who wrote them: `.NAME.videofix-HOST-PID-XXXXXX.TAG.EXT` (same
extension, so a muxer picks the same container). A process killed outright (SIGKILL, the
OOM killer, a power cut) leaves its temporary file behind; `remove_stale` tells those
leftovers (this host, a process that no longer runs) from the files of a run still going
and deletes them, so the next run of the same output starts clean.

This module imports only the standard library: every layer may use it.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import Callable

MARK = "videofix"


def _host() -> str:
    # a name component: no separators, no dots (so the name still parses from the right)
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname() or "host")[:40] or "host"


def temp_path(target: str | os.PathLike, tag: str = "tmp") -> Path:
    """Hidden temporary path next to `target`: `.STEM.videofix-HOST-PID-XXXXXX.TAG.SUFFIX`
    (the same extension as `target`)."""
    out = Path(target)
    return out.with_name(f".{out.stem}.{MARK}-{_host()}-{os.getpid()}-{secrets.token_hex(3)}.{tag}{out.suffix}")


_TEMP = re.compile(rf"^\.(?P<stem>.*)\.{MARK}-(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)-(?P<token>[0-9a-f]{{6}})\.")


class AtomicFile:
    """One file written under `temp_path(target, tag)` and renamed onto `target`.

    >>> with AtomicFile("report.json") as f:
    ...     f.path.write_text(text)      # renamed onto report.json on a clean exit

    `commit()` renames (once; later calls do nothing), `discard()` deletes the temporary
    file; as a context manager it commits on a clean exit and discards on an exception.
    """

    def __init__(self, target: str | os.PathLike, tag: str = "tmp"):
        self.target = Path(target)
        self.path = temp_path(self.target, tag)
        self.committed = False

    def commit(self) -> Path:
        if not self.committed:
            os.replace(self.path, self.target)
            self.committed = True
        return self.target

    def discard(self) -> None:
        if not self.committed:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `target` atomically."""
    with AtomicFile(target) as f:
        f.path.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `target` atomically."""
    with AtomicFile(target) as f:
        f.path.write_text(text, encoding=encoding)
    return Path(target)


def write_with(target: str | os.PathLike, write: Callable[[Path], object], tag: str = "tmp") -> Path:
    """`write(temporary path)` (any writer that takes a path: a muxer, `np.save`, ...),
    then rename onto `target`."""
    with AtomicFile(target, tag) as f:
        write(f.path)
    return Path(target)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Temporary files and folders of `target` (see `temp_path`) left by processes of this
    host that no longer run. Files of another host (a shared folder) or of a live process
    are never listed."""
    out = Path(target)
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        return []
    host, found = _host(), []
    prefix = f".{out.stem}.{MARK}-"
    try:
        names = [n for n in os.listdir(folder) if n.startswith(prefix)]
    except OSError:
        return []
    for name in names:
        m = _TEMP.match(name)
        if m is None or m.group("stem") != out.stem or m.group("host") != host:
            continue
        pid = int(m.group("pid"))
        if pid != os.getpid() and not _running(pid):
            found.append(folder / name)
    return sorted(found)


def remove_stale(target: str | os.PathLike) -> list[Path]:
    """Delete `stale_temporaries(target)`; returns what was deleted."""
    gone = []
    for p in stale_temporaries(target):
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
            gone.append(p)
        except FileNotFoundError:
            pass
    return gone


__all__ = ["AtomicFile", "remove_stale", "stale_temporaries", "temp_path", "write_bytes", "write_text", "write_with"]
