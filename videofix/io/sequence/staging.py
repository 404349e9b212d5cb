"""Where a sequence output's files wait before they appear: a hidden staging folder
(`videofix.atomic` names), renamed into place at once or file by file at the end.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from videofix.atomic import temp_path
from videofix.errors import OutputError
from videofix.io.sequence.spec import source_sequence, split_spec

class StagingFolder:
    """Where the files of a sequence output are gathered before they appear.

    A new output folder is built as a hidden sibling (`videofix.atomic.temp_path` of the
    folder) and renamed into place at once; in an existing folder the files wait in a hidden
    subfolder (`temp_path` of the pattern) and are renamed onto their names one by one at the
    end (each rename atomic). `protected`
    files (the input sequence) are never overwritten.
    """

    def __init__(self, pattern: str, protected: set[Path] | None = None):
        self.pattern = pattern
        self.folder = Path(pattern).parent
        self.create = not self.folder.is_dir()
        self.path = temp_path(self.folder if self.create else Path(pattern), "staging")
        self.path.mkdir()
        self.protected = protected or set()
        self.names: list[str] = []

    def commit(self) -> Path:
        try:
            if not self.names:
                raise OutputError(f"{self.pattern}: no frames were written")
            for name in self.names:
                if (self.folder / name).resolve() in self.protected:
                    raise OutputError(f"{self.pattern}: {name} is a file of the input sequence; not overwritten")
            if self.create and not self.folder.exists():
                os.rename(self.path, self.folder)
            else:
                for name in self.names:
                    os.replace(self.path / name, self.folder / name)
                self.path.rmdir()
        except BaseException:
            self.abort()
            raise
        return self.folder

    def abort(self) -> None:
        if self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)


def join_sequence(parts: list[str | os.PathLike], output: str | os.PathLike, source: str | None = None) -> Path:
    """Gather the segment folders of a parallel run (each holding its frames under their
    final names) into the output sequence, all or nothing. Returns the output folder."""
    pattern = split_spec(output)[0]
    src = source_sequence(source) if source else None
    protected = {src.path_of(n).resolve() for n in range(src.first, src.last + 1)} if src else set()
    staging = StagingFolder(pattern, protected)
    try:
        for part in parts:
            for f in sorted(Path(part).iterdir()):
                if f.name in staging.names:
                    raise OutputError(f"{pattern}: frame file {f.name} written by two segments")
                shutil.move(str(f), staging.path / f.name)
                staging.names.append(f.name)
    except BaseException:
        staging.abort()
        raise
    folder = staging.commit()
    for part in parts:
        shutil.rmtree(part, ignore_errors=True)
    return folder
