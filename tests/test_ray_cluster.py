"""A real multi-node Ray cluster on this machine, with a worker node lost in the middle of a job.

The module starts its own cluster with the `ray start` command line: a head node
(`--head --num-cpus 0`: no segment task can run there, only the driver and the restorer
actor) and two worker nodes (`--address`, one CPU and a custom resource each), every node
with its own `--temp-dir`, its own ports, the dashboard off and token authentication on
(`RAY_AUTH_MODE=token`, a fresh token in `RAY_AUTH_TOKEN`: the secure path is the tested
path). Joining it without the token, or with a wrong one, is one line and exit code 7. Then
`videofix batch --address` (the token in `$RAY_AUTH_TOKEN`) restores 6 small clips (9 frames,
3 segments each; two distinct contents, so the local reference runs twice, not six times) on
it; as soon as a pass-2 segment task has started on one worker node, that node's raylet is
killed (SIGKILL, by its pid; the task's worker is frozen first and killed with it, as a
machine going down takes every process: a worker outlives its raylet for as long as its
task runs, and a task that ended between the look and the kill left nothing cut short).
Ray re-runs the node's tasks on the other worker; the test checks that the job finishes
there, that no segment was done twice (the job folder's events log), that
videofix's stderr names the lost node and the segments it redid, and that every output
decodes to the local runner's frames (FFV1, lossless). The same again through a Ray client
(`--address ray://127.0.0.1:PORT`, the head's `--ray-client-server-port`, the token in a file
given with `--ray-token-file`), after a fresh worker node has joined.

Loopback only. Ray 2.60 turns a 127.0.0.1 address into the machine's network address for
multi-node clusters (`services.resolve_ip_for_localhost`), so its servers would listen on
every interface; `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` keeps every node, driver and worker
on 127.0.0.1 (servers bound to 127.0.0.1 only), but then `ray start --address` refuses to
start a worker node. The worker nodes are therefore started by `ray start` through a
few-line launcher (`LOOPBACK_START`) that sets that flag only after the command line's
multi-node check; the node itself is what `ray start --address` builds.

Every Ray process of the cluster runs in a process group the module started: teardown
kills those groups, then any process whose command line names the cluster's temporary
folder, so other Ray sessions on the machine are never touched (no `ray stop`).
Node loss is noticed through the GCS health check, tightened here (1 s period, 5 failures);
Ray's memory monitor is off on this cluster (other programs on a shared machine must not
get its workers killed).

Measured with the machine's 2 cores shared by other test runs (load average ~20): 8-12 min
in all; the `--address` job 126-172 s, the `ray://` job 159-365 s (365 s when the restorer
actor sat on the killed node and two segments took 3 attempts), the local reference with
the cluster start ~3 min; far less on an idle machine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from conftest import TINY_CODEFORMER  # noqa: E402
from media import decode_audio, decode_frames, make_clip  # noqa: E402

SETTINGS = dict(detector="dlib", codec="ffv1", temporal_radius=1, device="cpu", parsing=False, download=False,
                batch_size=4)
CLI_OPTIONS = ["--detector", "dlib", "--codec", "ffv1", "--temporal-radius", "1", "--device", "cpu", "--no-parsing",
               "--batch-size", "4"]
CLIPS = 6  # 6 files of 2 distinct contents (the local reference is computed once per content)
SEGMENTS = 3  # 9 frames, a keyframe every 3
JOB_TIMEOUT = 540  # s, one batch run (126-365 s measured with 2 cores shared by a load of ~20)

# `ray start` with the loopback-only flag set after the command line's multi-node check
# (see the module docstring); everything else is the ray CLI itself
LOOPBACK_START = """
import os, sys
import ray._private.ray_constants as constants, ray._private.services as services
from ray.scripts.scripts import main
canonicalize = services.canonicalize_bootstrap_address
def loopback(addr, temp_dir=None):
    constants.ENABLE_RAY_CLUSTER = False  # 127.0.0.1 stays 127.0.0.1 from here on
    return canonicalize(addr, temp_dir)
services.canonicalize_bootstrap_address = loopback
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # the node's raylet, agents and workers
sys.argv = ["ray", *sys.argv[1:]]
sys.exit(main())
"""


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the test process dies (a `ray start --block`
    takes its node's processes down with it), so a killed test run leaves no cluster."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _pids_naming(text: str) -> list[int]:
    """Processes whose command line contains `text` (the cluster's temporary folder)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                if text.encode() in Path(f"/proc/{d}/cmdline").read_bytes():
                    out.append(int(d))
            except OSError:
                continue
    return out


class LocalCluster:
    """A head node and worker nodes started with `ray start --block`, each in its own
    process group (so the test can end exactly these processes) and its own temp dir."""

    def __init__(self, root: Path):
        self.root = root
        self.port = _free_port()
        self.client_port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: dict[str, dict] = {}  # name -> {"proc", "temp_dir", "log", "id"}
        self.token = secrets.token_hex(32)  # the cluster's: every node, driver and client needs it
        self.token_file = root / "token"
        self.token_file.touch(mode=0o600)
        self.token_file.write_text(self.token + "\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
        self.env.update(HOME=str(root), RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=self.token, RAY_USAGE_STATS_ENABLED="0",
                        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
                        # node death noticed in ~5 s (a killed raylet refuses the checks at once)
                        RAY_health_check_period_ms="1000", RAY_health_check_failure_threshold="5",
                        RAY_health_check_initial_delay_ms="1000",
                        # no worker killed for the memory other programs on this shared machine use
                        RAY_memory_monitor_refresh_ms="0")
        (root / "launch.py").write_text(LOOPBACK_START)

    def _start(self, name: str, args: list[str], launcher: list[str], env: dict, attempt: int = 1) -> None:
        suffix = "" if attempt == 1 else f"_{attempt}"
        temp_dir = self.root / f"{name}{suffix}"
        log = self.root / f"{name}{suffix}.log"
        cmd = [*launcher, "start", "--block", f"--temp-dir={temp_dir}", "--disable-usage-stats",
               "--object-store-memory=100000000", "--include-log-monitor=false",
               f"--node-manager-port={_free_port()}", f"--object-manager-port={_free_port()}",
               f"--dashboard-agent-listen-port={_free_port()}", f"--dashboard-agent-grpc-port={_free_port()}",
               f"--runtime-env-agent-port={_free_port()}", f"--metrics-export-port={_free_port()}",
               # each node its own worker ports (the default range is shared with other Rays here)
               # (above 24000: the head's Ray client server starts its per-client servers on
               # 23000-23999, and a worker that took such a port made one fail to start)
               f"--min-worker-port={self._worker_ports}", f"--max-worker-port={self._worker_ports + 99}", *args]
        self._worker_ports += 100
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        self.nodes[name] = {"proc": proc, "temp_dir": str(temp_dir), "log": log, "id": None,
                            "start": (args, launcher, env), "attempt": attempt}

    _worker_ports = 24000 + 100 * (os.getpid() % 40)  # below the ephemeral ports (32768 on)

    def start_head(self) -> None:
        ray_cli = [str(Path(sys.executable).with_name("ray"))]
        self._start("head", ["--head", f"--port={self.port}", f"--ray-client-server-port={self.client_port}",
                             "--include-dashboard=false", f"--dashboard-port={_free_port()}", "--num-cpus=0"],
                    ray_cli, self.env)

    def add_worker(self, name: str) -> None:
        self._start(name, [f"--address={self.address}", "--num-cpus=1", f"--resources={json.dumps({name: 1})}"],
                    [sys.executable, str(self.root / "launch.py")],
                    {k: v for k, v in self.env.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"})

    def wait_ready(self) -> None:
        """Wait until every node started has joined (the workers wait for the head)."""
        for name in self.nodes:
            if self.nodes[name]["id"] is None:
                self._wait_for(name)

    def node_infos(self) -> list:
        from ray._raylet import GcsClient

        from videofix.pipeline.ray.auth import token_environment

        with token_environment(self.token):  # this process asks the GCS too: with the token
            return list(GcsClient(address=self.address).get_all_node_info(timeout=10).values())

    def _wait_for(self, name: str, timeout: float = 240) -> None:
        node = self.nodes[name]
        deadline = time.time() + timeout
        while time.time() < deadline:
            if node["proc"].poll() is not None:
                text = node["log"].read_text(errors="replace")
                # on 2 loaded cores a node can miss Ray's own start-up deadline (the GCS answers
                # "Deadline Exceeded" while the local reference runs): start it again, twice at most
                if name != "head" and node["attempt"] < 3 and "timed out during startup" in text:
                    print(f"ray node {name} timed out during its start-up (attempt {node['attempt']}); "
                          "starting it again")
                    with_suppress(os.killpg, node["proc"].pid, signal.SIGKILL)
                    self._start(name, *node["start"], attempt=node["attempt"] + 1)
                    node = self.nodes[name]
                    continue
                raise RuntimeError(f"ray node {name} exited: {text[-3000:]}")
            if "Ray runtime started" not in node["log"].read_text(errors="replace"):
                time.sleep(0.5)  # not up yet (asking the GCS before it listens only prints retries)
                continue
            try:
                for info in self.node_infos():
                    if info.temp_dir == node["temp_dir"] and info.state == 0:  # ALIVE
                        assert info.node_manager_address == "127.0.0.1", info.node_manager_address
                        node["id"] = info.node_id.hex()
                        return
            except Exception:  # noqa: BLE001 - the GCS is still starting
                pass
            time.sleep(0.5)
        raise RuntimeError(f"ray node {name} did not join in {timeout} s: {node['log'].read_text()[-3000:]}")

    def alive(self) -> dict[str, bool]:
        state = {info.node_id.hex(): info.state == 0 for info in self.node_infos()}
        return {name: state.get(n["id"], False) for name, n in self.nodes.items()}

    def raylet_pid(self, name: str) -> int:
        pids = [p for p in _children(self.nodes[name]["proc"].pid) if _comm(p) == "raylet"]
        assert len(pids) == 1, pids
        return pids[0]

    def node_pids(self, name: str) -> list[int]:
        """Every live process of one node (its `ray start`, raylet, agents, workers)."""
        return [p for p in _pids_naming(self.nodes[name]["temp_dir"] + "/") + [self.nodes[name]["proc"].pid]
                if _alive(p)]

    def name_of(self, node_id: str) -> str:
        return next(name for name, n in self.nodes.items() if n["id"] == node_id)

    def stop(self) -> None:
        for node in self.nodes.values():
            with_suppress(os.killpg, node["proc"].pid, signal.SIGKILL)
        for node in self.nodes.values():
            with_suppress(node["proc"].wait, 30)
        deadline = time.time() + 20
        while (left := _pids_naming(str(self.root))) and time.time() < deadline:
            for pid in left:  # workers that left the group: only this cluster's (its folder in argv)
                with_suppress(os.kill, pid, signal.SIGKILL)
            time.sleep(0.5)


def with_suppress(fn, *args):
    try:
        return fn(*args)
    except (OSError, subprocess.TimeoutExpired):
        return None


@pytest.fixture(scope="module")
def cluster():
    # short: Ray's socket paths (TEMP/session_.../sockets/...) must fit in 107 bytes
    root = Path(tempfile.mkdtemp(prefix="vfray", dir="/tmp"))
    c = LocalCluster(root)
    try:
        c.start_head()  # the nodes start while `assets` runs the local reference; tests wait_ready()
        c.add_worker("worker_a")
        c.add_worker("worker_b")
        yield c
    finally:
        c.stop()
        assert not _pids_naming(str(root)), "a process of the test cluster survived"
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """6 clips with real faces (3 keyframe segments each), the tiny network, and each clip
    restored by the local runner (the reference)."""
    import torch

    from videofix.models.synthetic import formula_codeformer
    from videofix.pipeline.local import RestoreSettings, restore_video
    from videofix.samples import face_content

    d = tmp_path_factory.mktemp("cluster_assets")
    (d / "in").mkdir()
    weights = d / "tiny_codeformer.pth"
    torch.save({"params_ema": formula_codeformer(TINY_CODEFORMER).state_dict()}, weights)
    settings = RestoreSettings(weights=str(weights), **SETTINGS)
    clips, local = [], {}
    for k in range(2):
        clip = make_clip(d / f"content{k}.mkv", frames=9, size=(256, 192), gop=3, subtitles=False,
                         content=face_content(256, 192, face_size=150, seed=10 + k))
        restore_video(clip.path, d / f"local{k}.mkv", settings, quiet=True)
        for j in range(k, CLIPS, 2):  # clip0, clip2, clip4 are content0; clip1, clip3, clip5 content1
            clips.append(d / "in" / f"clip{j}.mkv")
            shutil.copyfile(clip.path, clips[-1])
            local[clips[-1].name] = d / f"local{k}.mkv"
    return {"clips": sorted(clips), "local": local, "weights": weights}


def assert_same_video(got, want) -> None:
    a, b = decode_frames(got), decode_frames(want)
    assert len(a) == len(b)
    assert [t for t, _, _ in a] == [t for t, _, _ in b]  # pts
    for i, ((_, pa, fa), (_, pb, fb)) in enumerate(zip(a, b)):
        assert fa == fb
        for x, y in zip(pa, pb):
            assert np.array_equal(x, y), f"{got}: frame {i} differs from the local runner's"
    np.testing.assert_array_equal(decode_audio(got), decode_audio(want))


def _attempts(job: Path) -> list[dict]:
    path = job / "attempts.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _running_on(job: Path, node_id: str) -> list[tuple[tuple, int]]:
    """((item, pass, segment, attempt), worker pid) of the pass-2 attempts that started on the
    node and have not ended."""
    attempts = _attempts(job)
    ended = {(a["item"], a["pass"], a["segment"], a["attempt"]) for a in attempts if a["event"] == "end"}
    return [((a["item"], a["pass"], a["segment"], a["attempt"]), a["pid"]) for a in attempts
            if a["event"] == "start" and a["node"] == node_id and a["pass"] == 2
            and (a["item"], a["pass"], a["segment"], a["attempt"]) not in ended]


def run_job_losing_a_node(cluster: LocalCluster, assets, out: Path, address: str, victim: str, survivor: str,
                          token_file: bool = False):
    """`videofix batch --address ADDRESS` over the clips; kill `victim`'s raylet as soon as a
    pass-2 task runs there. The cluster's token comes from $RAY_AUTH_TOKEN, or with
    `token_file` from `--ray-token-file` alone. Returns (stderr, summary, attempts, kill time)."""
    job = out / ".videofix-job"
    victim_id = cluster.nodes[victim]["id"]
    cmd = [sys.executable, "-m", "videofix", "batch", *map(str, assets["clips"]), "--out", str(out),
           "--address", address, "--weights", str(assets["weights"]), "--segments", str(SEGMENTS), "--retries", "3",
           "--quiet", *CLI_OPTIONS]
    env = dict(cluster.env, VIDEOFIX_OFFLINE="1", PYTHONWARNINGS="ignore")
    if token_file:
        cmd += ["--ray-token-file", str(cluster.token_file)]
        env = {k: v for k, v in env.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE")}
    err_path = out.parent / f"{out.name}.stderr"
    t0 = time.time()
    with open(err_path, "w") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
                                preexec_fn=_die_with_parent)
    killed_at = None
    try:
        deadline = t0 + JOB_TIMEOUT
        while time.time() < deadline and proc.poll() is None and killed_at is None:
            running = _running_on(job, victim_id)
            if running:  # a segment is being restored on the victim: kill its node now
                # A worker outlives its raylet for as long as its task needs (it hands the result
                # to the driver itself): freeze the workers first, so a task this loop saw
                # running cannot finish between the look and the kill (seen on a loaded machine)
                raylet = cluster.raylet_pid(victim)
                workers = {pid for _, pid in running} & set(_children(raylet))  # the victim's own workers
                for pid in workers:
                    with_suppress(os.kill, pid, signal.SIGSTOP)
                still = {key for key, pid in _running_on(job, victim_id) if pid in workers}
                if not still:  # they all ended meanwhile: let them go, look again
                    for pid in workers:
                        with_suppress(os.kill, pid, signal.SIGCONT)
                    continue
                pid = raylet
                os.kill(pid, signal.SIGKILL)
                killed_at = time.time()
                for worker in workers:  # the node's processes die with it
                    with_suppress(os.kill, worker, signal.SIGKILL)
                print(f"killed the raylet of {victim} (node {victim_id}, pid {pid}) at {killed_at - t0:.1f} s, "
                      f"while it ran pass-2 segments {sorted(still)}")
            time.sleep(0.02)
        assert killed_at is not None, f"no pass-2 task ran on {victim}: {err_path.read_text()[-3000:]}"
        proc.wait(timeout=max(1.0, deadline - time.time()))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    stderr = err_path.read_text()
    print(f"videofix batch ({address}) took {time.time() - t0:.1f} s; its stderr:\n{stderr}")
    assert proc.returncode == 0, stderr[-4000:]
    summary = json.loads((job / "summary.json").read_text())
    print("restorer actors on: " + ", ".join(f"{cluster.name_of(a['node'])} ({a['device']})"
                                             for a in summary["restorers"]))
    return stderr, summary, _attempts(job), killed_at


def check_job(cluster: LocalCluster, assets, out: Path, stderr: str, summary: dict, attempts: list[dict],
              killed_at: float, victim: str, survivor: str) -> None:
    job = out / ".videofix-job"
    victim_id, survivor_id = cluster.nodes[victim]["id"], cluster.nodes[survivor]["id"]
    # the node is gone: every process of it ended, the GCS marks it dead
    deadline = time.time() + 30
    while cluster.node_pids(victim) and time.time() < deadline:
        time.sleep(0.5)
    assert not cluster.node_pids(victim), f"{victim} left processes behind"
    assert cluster.alive()[victim] is False and cluster.alive()[survivor] is True

    assert (summary["done"], summary["failed"], summary["skipped"]) == (CLIPS, 0, 0), summary
    items = json.loads((job / "plan.json").read_text())["items"]
    planned = {(it["id"], k) for it in items for k in range(SEGMENTS)}

    # no segment done twice, none lost (the events log: one line per committed segment)
    events = [(e["item"], e["segment"]) for e in map(json.loads, (job / "events.log").read_text().splitlines())]
    assert len(events) == len(set(events)), "a segment was done twice"
    assert set(events) == planned

    # tasks ran on both workers, never on the head (0 CPUs); after the kill only on the survivor
    nodes_used = {a["node"] for a in attempts}
    assert nodes_used == {victim_id, survivor_id}, (nodes_used, cluster.nodes)
    late = [a for a in attempts if a["event"] == "start" and a["time"] > killed_at + 0.5]
    assert late and all(a["node"] == survivor_id for a in late), late
    # what the victim was running when it died, from the attempts log itself
    by_attempt: dict[str, dict] = {}
    for a in attempts:
        by_attempt.setdefault(a["attempt"], {**a, "events": set()})["events"].add(a["event"])
    cut = {(a["item"], a["pass"], a["segment"]) for a in by_attempt.values()
           if a["node"] == victim_id and "end" not in a["events"]}
    assert cut, "the victim ran no segment task when it died"
    # ... each of them finished later by an attempt on the survivor
    for item, pass_, seg in cut:
        assert any(a["node"] == survivor_id and "end" in a["events"] and (a["item"], a["pass"], a["segment"])
                   == (item, pass_, seg) for a in by_attempt.values()), (item, pass_, seg)

    # videofix said which node died and which segments it redid
    lost = summary["nodes_lost"]
    assert [n["node"] for n in lost] == [victim_id], lost
    assert {(r["item"], r["pass"], r["segment"]) for r in lost[0]["running"]} == cut
    assert lost[0]["resources"].get(victim) == 1
    assert f"node {victim_id} (127.0.0.1:" in stderr and " lost; it was running: " in stderr, stderr
    redone = {(r["item"], r["pass"], r["segment"]): r for r in summary["redone"]}
    assert cut <= set(redone), (cut, redone)
    names = {it["id"]: Path(it["input"]).name for it in items}
    for key in cut:
        r = redone[key]
        assert any(a["node"] == victim_id and a["node_lost"] and not a["ended"] for a in r["attempts"]), r
        assert r["attempts"][-1]["node"] == survivor_id and r["attempts"][-1]["ended"], r
        line = f"{names[key[0]]} pass {key[1]} segment {key[2]} redone on node {survivor_id}"
        assert line in stderr, (line, stderr)
        assert f"node {victim_id} (lost) did not finish" in stderr

    # the outputs are the local runner's, frame for frame
    for it in items:
        assert_same_video(it["output"], assets["local"][Path(it["input"]).name])
    assert not list(out.glob(".*.videofix-*"))  # no partial output


def test_joining_without_the_right_token_is_one_line_and_exit_7(cluster, tmp_path):
    """`--address` (a GCS address, or `ray://`) with no token, or with a wrong one, is refused
    with one line saying what to set, exit code 7, within seconds (Ray alone retries a
    refusal for 20-30 s, a line a second, and then calls it a timeout)."""
    from media import make_clip

    cluster._wait_for("head")
    clip = make_clip(tmp_path / "in.mkv", frames=4, size=(64, 48)).path
    wrong = tmp_path / "wrong-token"
    wrong.write_text(secrets.token_hex(32))
    home = tmp_path / "home"  # no ~/.ray/auth_token to fall back on
    home.mkdir()
    bare = {k: v for k, v in cluster.env.items() if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_MODE")}
    bare.update(HOME=str(home), VIDEOFIX_OFFLINE="1")
    gcs, client = cluster.address, f"ray://127.0.0.1:{cluster.client_port}"
    refused_without = "requires token authentication and no token was given: set RAY_AUTH_TOKEN or give " \
                      "--ray-token-file FILE"
    cases = [  # (command, address, options, environment, what the line says)
        ("batch", gcs, [], bare, refused_without),
        ("restore", client, [], bare, refused_without),
        ("restore", gcs, ["--ray-token-file", str(wrong)], bare, f"refused the token from --ray-token-file {wrong}"),
        ("batch", client, [], dict(bare, RAY_AUTH_TOKEN=wrong.read_text()), "refused the token from $RAY_AUTH_TOKEN"),
    ]
    procs = []  # all at once: each is a whole CLI start-up, and a refusal takes no cluster time
    t = time.monotonic()
    for k, (command, address, options, env, says) in enumerate(cases):
        target = ["--out", str(tmp_path / f"out{k}")] if command == "batch" else ["-o", str(tmp_path / f"{k}.mkv"),
                                                                                  "--ray"]
        procs.append(subprocess.Popen([sys.executable, "-m", "videofix", command, str(clip), *target, "--address",
                                       address, *options, "--quiet", "--model", "identity"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    for proc, (command, address, options, env, says) in zip(procs, cases):
        _, stderr = proc.communicate(timeout=180)
        took = time.monotonic() - t
        lines = stderr.strip().splitlines()
        assert proc.returncode == 7, stderr
        assert len(lines) == 1, stderr
        assert lines[0].startswith(f"videofix: error: the Ray cluster at {address} {says}"), lines[0]
        assert took < 90, took  # 4 CLI start-ups on 2 loaded cores; Ray alone takes 20-30 s for each refusal
        print(f"{command} --address {address} {' '.join(options)}: {took:.1f} s: {lines[0]}")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".mkv") and p.name != "in.mkv"]
    assert not (home / ".ray").exists()


def test_batch_on_a_cluster_losing_a_worker_node(cluster, assets, tmp_path):
    t0 = time.time()
    cluster.wait_ready()
    print(f"cluster up ({time.time() - t0:.1f} s after the local reference): " +
          ", ".join(f"{k} {v['id']} ({v['temp_dir']})" for k, v in cluster.nodes.items()))
    out = tmp_path / "out"
    assert all(cluster.alive().values())
    stderr, summary, attempts, killed_at = run_job_losing_a_node(cluster, assets, out, cluster.address,
                                                                 victim="worker_b", survivor="worker_a")
    check_job(cluster, assets, out, stderr, summary, attempts, killed_at, victim="worker_b", survivor="worker_a")


def test_ray_client_on_a_cluster_losing_a_worker_node(cluster, assets, tmp_path):
    """The same through `ray://` (the driver runs in the head's client server)."""
    cluster.wait_ready()
    live = [name for name, up in cluster.alive().items() if up and name != "head"]
    while len(live) < 2:  # the other test lost a worker: a fresh one joins
        name = f"worker_{chr(ord('a') + len(cluster.nodes) - 1)}"
        cluster.add_worker(name)
        cluster.wait_ready()
        live.append(name)
    victim, survivor = live[0], live[1]
    out = tmp_path / "out"
    stderr, summary, attempts, killed_at = run_job_losing_a_node(
        cluster, assets, out, f"ray://127.0.0.1:{cluster.client_port}", victim=victim, survivor=survivor,
        token_file=True)
    check_job(cluster, assets, out, stderr, summary, attempts, killed_at, victim=victim, survivor=survivor)
