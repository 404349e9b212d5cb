"""The progress view of a Ray job: one bar over every frame of the job, files done and failed."""

from __future__ import annotations

import sys


class JobProgress:
    """A tqdm bar on stderr counting frames (fps, ETA), with "files done/total (failed N)"
    beside it; nothing when quiet. Messages written through it do not break the bar."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self._bar = None

    @property
    def active(self) -> bool:
        return self._bar is not None

    def open(self, total: int, done: int, counts: dict[str, int], files: int) -> None:
        """total: the job's frames; done: those finished by earlier runs (resume)."""
        if self.quiet:
            return
        from tqdm import tqdm

        self._bar = tqdm(total=total, initial=done, desc="restore", unit="frame", file=sys.stderr,
                         dynamic_ncols=True, smoothing=0.1)
        self.show(counts, files)

    def advance(self, frames: int) -> None:
        if self._bar is not None:
            self._bar.update(frames)

    def show(self, counts: dict[str, int], files: int) -> None:
        """counts: items "done", "failed", "skipped" so far; files: items in the job."""
        if self._bar is None:
            return
        c = counts
        self._bar.set_postfix_str(f"files {c['done'] + c['failed'] + c['skipped']}/{files} "
                                  f"(failed {c['failed']})", refresh=True)

    def write(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
