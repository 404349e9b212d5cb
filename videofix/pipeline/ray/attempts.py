"""The attempts log: one line per start and end of every segment task run, with its node.

Ray re-runs a task whose worker or node died; the task itself cannot tell, and Ray does not
say where each run was. So every segment task runs through `run_attempt`, which appends a
"start" line before the work and an "end" line after it to JOB/attempts.log (one short line
per write: an atomic append). The driver reads the log as it grows (`AttemptsLog`) to tell
which node a segment was running on when that node was lost, and which segments were redone.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import ray


def attempt_record(path: str | os.PathLike, item: str, pass_: int, segment: int) -> dict:
    """What `run_attempt` needs to log a segment task's runs."""
    return {"path": str(path), "item": item, "pass": pass_, "segment": segment}


def run_attempt(record: dict | None, fn, *args):
    """Run `fn(*args)` (a segment task: `detect_segment`, `restore_segment`) and record the
    attempt in the job's attempts log: a "start" line before and an "end" line after it.

    record: {"path": attempts log, "item": item id, "pass": 1 | 2, "segment": index}, or
    None (nothing recorded). Each line is one JSON object: event, item, pass, segment,
    attempt (a fresh id per run), node (Ray node id hex), pid, time. Ray re-runs a task
    whose worker or node died; the log is how the driver tells which node a segment was
    running on when that node was lost and which segments were redone (see
    `videofix.pipeline.ray.nodes`). One short line per write: an atomic append (O_APPEND).
    """
    if record is None:
        return fn(*args)
    line = {k: record[k] for k in ("item", "pass", "segment")}
    line.update(attempt=uuid.uuid4().hex[:12], node=ray.get_runtime_context().get_node_id(), pid=os.getpid())

    def write(event: str) -> None:
        with open(record["path"], "a") as f:
            f.write(json.dumps({"event": event, **line, "time": time.time()}) + "\n")

    write("start")
    result = fn(*args)
    write("end")
    return result


attempt_task = ray.remote(run_attempt)  # a segment task recorded in the attempts log


class AttemptsLog:
    """The driver's view of the attempts log, read as it grows.

    `attempts[(item, pass, segment)]` maps each attempt id to {"node", "pid", "start": time,
    "end": time} (an attempt without "end" did not finish, or has not yet)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.attempts: dict[tuple, dict] = {}
        self._offset = 0

    def read(self) -> None:
        """Read the lines appended since the last call."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += end
        for raw in data[:end].splitlines():
            try:
                a = json.loads(raw)
                key = (a["item"], int(a["pass"]), int(a["segment"]))
                entry = self.attempts.setdefault(key, {}).setdefault(a["attempt"], {"node": a["node"],
                                                                                     "pid": a["pid"]})
                entry[a["event"]] = a["time"]
            except (ValueError, KeyError, TypeError):
                continue  # a line cut by a kill

    def unfinished_on(self, node_id: str) -> list[tuple]:
        """(item, pass, segment) of the tasks that started on `node_id` and did not end, in order."""
        return [key for key, attempts in sorted(self.attempts.items())
                if any(a["node"] == node_id and "end" not in a for a in attempts.values())]

    def of(self, key: tuple) -> list[dict]:
        """The attempts of one segment task, in the order they started."""
        return sorted(self.attempts.get(key, {}).values(), key=lambda a: a.get("start", 0))
