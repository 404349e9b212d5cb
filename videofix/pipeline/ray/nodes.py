"""Node-loss bookkeeping: which cluster nodes died during a job, what they were running, and
which segments were redone where.

Ray re-runs the tasks of a dead node on the other nodes and restarts its actors by itself;
the driver only has to say so. It watches `ray.nodes()` (a node alive before and now dead or
gone is lost), and reads the attempts log (`videofix.pipeline.ray.attempts`) to name the
segment tasks that had started on that node and not ended, and every segment that took more
than one attempt. The summary lists them (`nodes_lost`, `redone`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import ray

from videofix.pipeline.ray.attempts import AttemptsLog

log = logging.getLogger("videofix")


class NodeWatch:
    """The nodes of the cluster as a job sees them, and what their loss cost.

    attempts: the job's attempts log. input_of: item id -> its input path (for messages).
    `restorers` (the restorer actors' `describe()`, set by the driver once they run) says
    which nodes held an actor. `lost` and `redone` are the summary's `nodes_lost` / `redone`.
    """

    def __init__(self, attempts: AttemptsLog, input_of: Callable[[str], str]):
        self.attempts = attempts
        self.input_of = input_of
        self.restorers: list[dict] = []
        self.nodes: dict[str, dict] = {}  # node id -> ray.nodes() entry, alive when last looked
        self.lost: list[dict] = []
        self.redone: list[dict] = []
        self._checked = 0.0

    def watch(self, force: bool = False) -> None:
        """Notice cluster nodes that died (at most once a second unless forced): a node alive
        before and now dead or gone is lost. Ray re-runs its tasks elsewhere by itself; this says so."""
        now = time.monotonic()
        if not force and now - self._checked < 1.0:
            return
        self._checked = now
        try:
            nodes = ray.nodes()
        except Exception:  # noqa: BLE001 - the GCS is busy or restarting: look again later
            return
        seen = set()
        for n in nodes:
            node_id = n.get("NodeID")
            seen.add(node_id)
            if n.get("Alive"):
                self.nodes[node_id] = n
            elif node_id in self.nodes:
                self._node_lost(node_id, self.nodes.pop(node_id))
        for node_id in [k for k in self.nodes if k not in seen]:
            self._node_lost(node_id, self.nodes.pop(node_id))

    def _node_lost(self, node_id: str, node: dict) -> None:
        self.attempts.read()
        # the segment tasks that had started on that node and not ended
        running = [{"item": item, "input": self.input_of(item), "pass": pass_, "segment": index}
                   for item, pass_, index in self.attempts.unfinished_on(node_id)]
        address = f"{node.get('NodeManagerAddress')}:{node.get('NodeManagerPort')}"
        resources = {k: v for k, v in (node.get("Resources") or {}).items()
                     if not k.startswith(("node:", "memory", "object_store_memory"))}
        self.lost.append({"node": node_id, "address": address, "resources": resources,
                          "time": time.time(), "running": running})
        what = ", ".join(f"{Path(r['input']).name} pass {r['pass']} segment {r['segment']}" for r in running)
        actors = sum(1 for a in self.restorers if a.get("node") == node_id)
        # an idle node going away (an autoscaler scaling down) is news, not a warning
        log.log(logging.WARNING if running or actors else logging.INFO,
                "node %s (%s, %s) lost; it was running: %s; Ray runs them again on the other nodes",
                node_id, address, ", ".join(f"{k} {v:g}" for k, v in sorted(resources.items())) or "no resources",
                what or "no segment task")
        if actors:  # Ray restarts them elsewhere (max_restarts); segments waiting on them are redone too
            self.lost[-1]["restorers"] = actors
            log.warning("node %s held %d restorer actor(s): Ray starts them again on another node; the segments "
                        "that were waiting on them are redone", node_id, actors)

    def note_redone(self, item_id: str, pass_: int, index: int, result) -> None:
        """A segment task's result came back: when it took more than one attempt (its node
        or worker died, the restorer actor was lost), record where each attempt ran (said at
        the end of the job, once the GCS has settled which nodes were lost)."""
        self.attempts.read()
        attempts = self.attempts.of((item_id, pass_, index))
        if len(attempts) < 2:
            return
        lost = {n["node"] for n in self.lost}
        tried = [{"node": a["node"], "pid": a["pid"], "ended": "end" in a, "node_lost": a["node"] in lost}
                 for a in attempts]
        entry = {"item": item_id, "input": self.input_of(item_id), "pass": pass_, "segment": index,
                 "attempts": tried, "already_done": bool(isinstance(result, dict) and result.get("already_done"))}
        self.redone.append(entry)  # said at the end of the job (`settle`), when it is final

    def settle(self, wait_s: float = 20.0) -> None:
        """A retry can finish before the GCS declares the first attempt's node dead (its health
        check needs several missed periods). At the end of the job, look at the nodes again and
        mark each redone segment's attempts whose node was lost meanwhile; while an attempt that
        did not finish ran on a node still listed alive, look again for up to `wait_s` (a worker
        process that crashed on a live node leaves such an attempt too: then the wait ends
        without a loss)."""
        if not self.redone:
            return
        deadline = time.monotonic() + wait_s
        while True:
            self.watch(force=True)
            lost = {n["node"] for n in self.lost}
            pending = False
            for entry in self.redone:
                for a in entry["attempts"]:
                    a["node_lost"] = a["node"] in lost
                    pending |= not a["ended"] and not a["node_lost"] and a["node"] in self.nodes
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        for entry in self.redone:
            tried = entry["attempts"]
            final = next((a for a in reversed(tried) if a["ended"]), tried[-1])
            before = "; ".join(f"node {a['node']}" + (" (lost)" if a["node_lost"] else "")
                               + ("" if a["ended"] else " did not finish") for a in tried if a is not final)
            log.warning("%s pass %d segment %d redone on node %s (attempt %d of %d; before: %s)%s",
                        Path(entry["input"]).name, entry["pass"], entry["segment"], final["node"],
                        tried.index(final) + 1, len(tried), before,
                        "; its file was already committed, not written again" if entry["already_done"] else "")
