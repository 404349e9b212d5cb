"""The Ray driver's dealings with a cluster: connecting, and its account of a lost node.

Connecting: a wrong `--address` is one `videofix: error:` line with exit code 7 within
seconds (Ray itself retries an absent GCS for minutes), and a `ray://` connection whose
server side failed to start (seen once in CI on a loaded 2-core machine: "Starting Ray
client server failed") is tried again.

A lost node when the retry wins the race against the GCS:

On a loaded machine Ray can finish a segment's second attempt before its health check
declares the first attempt's node dead (CI saw this: `redone` said the first node "did not
finish" but not that it was lost). The runner settles the `redone` records at the end of the
job from the nodes' final state. Here the attempts log is a real file written the way
`videofix.pipeline.ray.attempts.run_attempt` writes it, and `ray.nodes()` answers what the
GCS answered in that order (the node alive when the retry's result came back, dead a moment
later).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from conftest import free_port
from media import make_clip
from videofix.errors import ClusterError
from videofix.pipeline.ray import cluster
from videofix.pipeline.ray import nodes as node_loss
from videofix.pipeline.ray.driver import JobRunner
from videofix.pipeline.ray.jobdir import JobDir
from videofix.pipeline.ray.options import RayOptions
from videofix.pipeline.local import RestoreSettings


def _node(node_id: str, alive: bool) -> dict:
    return {"NodeID": node_id, "Alive": alive, "NodeManagerAddress": "127.0.0.1", "NodeManagerPort": 4000,
            "Resources": {"CPU": 1.0}}


def _runner(tmp_path, gcs: list[list[dict]], monkeypatch) -> JobRunner:
    answers = iter(gcs)
    last = {"nodes": gcs[0]}

    def nodes():
        last["nodes"] = next(answers, last["nodes"])
        return last["nodes"]

    monkeypatch.setattr(node_loss.ray, "nodes", nodes)
    job = JobDir(tmp_path / "job")
    job.root.mkdir(parents=True)
    items = [{"id": "00000-a", "input": str(tmp_path / "a.mkv"), "output": str(tmp_path / "out" / "a.mkv")}]
    return JobRunner(job, items, RestoreSettings(), RayOptions())


def _log(runner: JobRunner, lines: list[tuple]) -> None:
    with open(runner.job.attempts_path, "a") as f:
        for attempt, node, event in lines:
            f.write(json.dumps({"item": "00000-a", "pass": 2, "segment": 0, "attempt": attempt, "node": node,
                                "pid": 1, "event": event, "time": time.time()}) + "\n")


def test_a_node_declared_dead_after_the_retry_finished_is_marked_lost(tmp_path, monkeypatch, caplog):
    alive = [_node("victim", True), _node("survivor", True)]
    dead = [_node("victim", False), _node("survivor", True)]
    runner = _runner(tmp_path, [alive, alive, alive, dead], monkeypatch)
    runner.node_watch.watch(force=True)  # the job's start: both alive
    _log(runner, [("a1", "victim", "start"), ("a2", "survivor", "start"), ("a2", "survivor", "end")])
    it = runner.items[0]
    runner.node_watch.note_redone(it.id, 2, 0, {"frames": 9})  # the GCS still lists the victim alive
    assert runner.node_watch.redone[0]["attempts"][0] == {"node": "victim", "pid": 1, "ended": False,
                                                          "node_lost": False}
    assert runner.node_watch.lost == []

    assert "redone" not in caplog.text  # not said yet: the GCS has not settled
    runner.node_watch.settle(wait_s=10.0)  # the end of the job: the GCS has declared it dead
    said = [r.getMessage() for r in caplog.records if "redone" in r.getMessage()]
    assert said == ["a.mkv pass 2 segment 0 redone on node survivor (attempt 2 of 2; before: node victim (lost) "
                    "did not finish)"]
    attempts = runner.summary()["redone"][0]["attempts"]
    assert [(a["node"], a["ended"], a["node_lost"]) for a in attempts] == [("victim", False, True),
                                                                           ("survivor", True, False)]
    lost = runner.summary()["nodes_lost"]
    assert [n["node"] for n in lost] == ["victim"]
    assert lost[0]["running"] == [{"item": "00000-a", "input": str(tmp_path / "a.mkv"), "pass": 2, "segment": 0}]


def test_a_worker_that_crashed_on_a_live_node_is_not_called_lost(tmp_path, monkeypatch):
    alive = [_node("n1", True), _node("n2", True)]
    runner = _runner(tmp_path, [alive], monkeypatch)
    runner.node_watch.watch(force=True)
    _log(runner, [("a1", "n1", "start"), ("a2", "n2", "start"), ("a2", "n2", "end")])
    runner.node_watch.note_redone(runner.items[0].id, 2, 0, {"frames": 9})
    t = time.monotonic()
    runner.node_watch.settle(wait_s=1.0)  # looks again for a while, then gives up: no node died
    assert time.monotonic() - t >= 1.0
    assert [a["node_lost"] for a in runner.summary()["redone"][0]["attempts"]] == [False, False]
    assert runner.summary()["nodes_lost"] == []


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_an_unreachable_cluster_is_one_line_and_exit_7(tmp_path, scheme):
    clip = make_clip(tmp_path / "in.mkv", frames=4, size=(64, 48))
    address = f"{scheme}127.0.0.1:{free_port()}"  # nothing listens there
    said = []
    for argv in (["batch", str(clip.path), "--out", str(tmp_path / "out")],
                 ["restore", str(clip.path), "-o", str(tmp_path / "o.mkv"), "--ray"]):
        t = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "videofix", *argv, "--address", address, "--quiet",
                               "--model", "identity"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 7, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"videofix: error: cannot reach the Ray cluster at {address}: ")
        assert time.monotonic() - t < 60
        said.append(lines[0])
    assert f"the job is planned in {tmp_path / 'out' / '.videofix-job'}: run the same command with --resume" \
        in said[0]
    assert not (tmp_path / "o.mkv").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # restore --ray left no job folder
    # the batch's plan stays for --resume, and the error says where it is
    assert (tmp_path / "out" / ".videofix-job" / "plan.json").is_file()


def test_a_client_server_that_failed_to_start_is_tried_again(monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    address = f"ray://127.0.0.1:{listener.getsockname()[1]}"
    calls = []
    failure = ConnectionAbortedError("Initialization failure from server:\nTraceback (most recent call last):\n"
                                     "  File \"proxier.py\", line 772, in Datapath\n    raise RuntimeError(\n"
                                     "RuntimeError: Starting Ray client server failed. See "
                                     "ray_client_server_23000.err for detailed logs.\n")

    def init(address, **kwargs):
        calls.append(address)
        if len(calls) < 3:
            raise failure

    monkeypatch.setattr(cluster.ray, "init", init)
    monkeypatch.setattr(cluster.ray, "shutdown", lambda: None)
    monkeypatch.setattr(cluster.time, "sleep", lambda s: None)
    try:
        cluster.connect(address)  # two failures, then joined
        assert calls == [address] * 3
        calls.clear()
        with pytest.raises(ClusterError) as err:  # it keeps failing: one line saying why
            cluster.connect(address, attempts=2)
        assert len(calls) == 2
        assert str(err.value) == (f"cannot connect to the Ray cluster at {address}: RuntimeError: Starting Ray "
                                  "client server failed. See ray_client_server_23000.err for detailed logs.")
        calls.clear()

        def refused(address, **kwargs):  # not a transient failure: no second try
            calls.append(address)
            raise ConnectionError("version mismatch: the cluster runs Ray 2.9")

        monkeypatch.setattr(cluster.ray, "init", refused)
        with pytest.raises(ClusterError, match="version mismatch"):
            cluster.connect(address)
        assert len(calls) == 1
    finally:
        listener.close()


def test_token_options_are_checked_before_any_cluster(tmp_path, capsys):
    """A token file that cannot be read, or a token option where it means nothing, is one
    line and exit code 2, before any cluster is started or reached."""
    from videofix.cli import main

    clip = make_clip(tmp_path / "in.mkv", frames=4, size=(64, 48)).path
    empty = tmp_path / "empty"
    empty.write_text("\n")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there: the token is read first
    cases = [
        (["restore", str(clip), "-o", str(tmp_path / "a.mkv"), "--ray", "--address", address,
          "--ray-token-file", str(tmp_path / "missing")],
         f"--ray-token-file {tmp_path / 'missing'}: cannot read the token (No such file or directory)"),
        (["batch", str(clip), "--out", str(tmp_path / "out"), "--address", address, "--ray-token-file", str(empty)],
         f"--ray-token-file {empty}: the file is empty"),
        (["restore", str(clip), "-o", str(tmp_path / "b.mkv"), "--ray-token-file", str(empty)],
         "--address, --ray-token-file, --segments and --segment-seconds need --ray"),
        (["restore", str(clip), "-o", str(tmp_path / "c.mkv"), "--ray", "--ray-token-file", str(empty)],
         "--ray-token-file is for a cluster joined with --address (the embedded cluster makes a token of its own)"),
    ]
    for argv, says in cases:
        assert main([*argv, "--quiet", "--model", "identity"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines == [f"videofix: error: {says}"], lines
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".mkv" and p.name != "in.mkv"]


def test_the_operators_token_comes_from_the_option_then_the_environment_then_ray_s_file(tmp_path, monkeypatch):
    from videofix.errors import UsageError
    from videofix.pipeline.ray.auth import operator_token, token_environment

    for k in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert operator_token(None) == (None, "")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-ray-home\n")  # what `ray get-auth-token --generate` writes
    assert operator_token(None) == ("from-ray-home", str(tmp_path / ".ray" / "auth_token"))
    (tmp_path / "path").write_text(" from-path ")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "path"))
    assert operator_token(None) == ("from-path", f"$RAY_AUTH_TOKEN_PATH ({tmp_path / 'path'})")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert operator_token(None) == ("from-env", "$RAY_AUTH_TOKEN")
    (tmp_path / "file").write_text("from-file\n")
    assert operator_token(tmp_path / "file") == ("from-file", f"--ray-token-file {tmp_path / 'file'}")
    with pytest.raises(UsageError, match="cannot read the token"):
        operator_token(tmp_path / "nothing")

    # the token is this process's (and its children's) for the block only
    before = dict(os.environ)
    with token_environment("abc"):
        assert (os.environ["RAY_AUTH_MODE"], os.environ["RAY_AUTH_TOKEN"]) == ("token", "abc")
        assert "RAY_AUTH_TOKEN_PATH" not in os.environ  # Ray reads no other token meanwhile
    assert dict(os.environ) == before
