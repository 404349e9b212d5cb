"""Which TCP ports a Ray run opens, on which interfaces: videofix's embedded cluster against a
plain `ray.init()`.

    python bench/ray_ports.py [--out bench/results/ray_ports.md]

Starts each cluster in turn in a subprocess (`--mode embedded`: `videofix.pipeline.ray.
cluster.embedded_cluster`, what `restore --ray` / `batch` start without `--address`;
`--mode plain`: `ray.init(num_cpus=2, include_dashboard=False)` with a token, what the
embedded cluster did before it bound loopback), runs a task so a worker exists, and lists
every listening TCP socket of the cluster's processes (from /proc: no `ss` needed) with
what it is: the GCS, the raylet's node manager and object manager, the driver's and the
workers' core-worker servers, the agents, the metrics servers. Also says whether a token
file appeared in the home folder. Prints a markdown table per mode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _descendants(pid: int) -> set[int]:
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parents[int(d)] = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
    tree, grew = {pid}, True
    while grew:
        below = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= below
        grew = bool(below)
    return tree


def _naming(text: str) -> set[int]:
    """Processes whose command line names `text` (the session folder): Ray's own, wherever
    they hang in the process tree."""
    out = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if text.encode() in Path(f"/proc/{d}/cmdline").read_bytes():
                    out.add(int(d))
            except OSError:
                continue
    return out


def _listening(pids: set[int]) -> list[dict]:
    import ipaddress

    sockets = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A":
                continue
            hex_addr, hex_port = f[1].split(":")
            raw = bytes.fromhex(hex_addr)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            ip = ipaddress.ip_address(raw)
            shown = str(ip.ipv4_mapped) if getattr(ip, "ipv4_mapped", None) else str(ip)
            if shown in ("::", "0.0.0.0"):
                shown = "* (every interface)"
            sockets[f[9]] = (shown, int(hex_port, 16))
    out = []
    for pid in sorted(pids):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in sockets:
                addr, port = sockets[target[8:-1]]
                out.append({"pid": pid, "comm": comm, "cmd": cmd, "address": addr, "port": port})
    return out


CHILD = """
import json, os, sys
sys.path.insert(0, {root!r})
mode = sys.argv[1]
if mode == "plain":  # before Ray is imported: it reads its authentication settings once
    import secrets
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
import ray

def measure(gcs):
    @ray.remote(num_cpus=1)
    def pid():
        return os.getpid()
    ray.get(pid.remote())
    node = ray.nodes()[0]
    ports = {{"gcs": int(gcs.rsplit(":", 1)[1]), "node_manager": node["NodeManagerPort"],
             "object_manager": node["ObjectManagerPort"], "metrics_export": node.get("MetricsExportPort"),
             "runtime_env_agent": node.get("RuntimeEnvAgentPort")}}
    session = ray._private.worker.global_worker.node.get_session_dir_path()
    print(json.dumps({{"pid": os.getpid(), "gcs": gcs, "ports": ports, "session": session}}), flush=True)
    sys.stdin.readline()  # the parent lists the sockets, then lets go

if mode == "embedded":
    from videofix.pipeline.ray.cluster import embedded_cluster
    with embedded_cluster(num_cpus=2) as gcs:
        measure(gcs)
else:
    ctx = ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    measure(ctx.address_info["gcs_address"])
    ray.shutdown()
"""


def _role(entry: dict, ports: dict, driver: int) -> str:
    by_port = {v: k for k, v in ports.items() if v}
    names = {"gcs": "GCS server (gRPC)", "node_manager": "raylet: node manager (gRPC)",
             "object_manager": "raylet: object manager", "metrics_export": "dashboard agent: metrics export",
             "runtime_env_agent": "runtime env agent (HTTP)"}
    if entry["port"] in by_port:
        return names[by_port[entry["port"]]]
    if entry["pid"] == driver:
        return "driver: core worker (gRPC)"
    if "DashboardA" in entry["comm"]:
        return "dashboard agent (gRPC / HTTP)"
    if "RuntimeEnv" in entry["comm"]:
        return "runtime env agent"
    if entry["comm"].startswith("ray::"):
        return "worker: core worker (gRPC)"
    if "dashboard.py" in entry["cmd"]:
        return "dashboard head process (metrics; no web UI: include_dashboard=False)"
    if "monitor.py" in entry["cmd"]:
        return "autoscaler monitor (metrics)"
    if "raylet" in entry["comm"]:
        return "raylet"
    return entry["comm"]


def measure(mode: str) -> dict:
    home = Path(tempfile.mkdtemp(prefix="videofix-ports-home-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), PYTHONPATH=str(ROOT))
    err = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(root=str(ROOT)), mode], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    try:
        line = ""
        while not line.startswith("{"):  # Ray may print lines of its own first
            line = proc.stdout.readline()
            if not line:
                err.seek(0)
                raise RuntimeError(f"the {mode} cluster did not start: {err.read()[-3000:]}")
        info = json.loads(line)
        # agents and metrics servers come up a little after ray.init returns: list the sockets
        # once they have stayed the same for 3 s (20 s at most)
        import time

        rows, stable_since, deadline = [], time.monotonic(), time.monotonic() + 20
        while time.monotonic() < deadline:
            now = _listening(_descendants(proc.pid) | _naming(info["session"]))
            if {(r["pid"], r["port"]) for r in now} != {(r["pid"], r["port"]) for r in rows}:
                rows, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= 3:
                break
            time.sleep(0.5)
        token_file = (home / ".ray" / "auth_token").exists()
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    for r in rows:
        r["role"] = _role(r, info["ports"], proc.pid)
    return {"mode": mode, "gcs": info["gcs"], "rows": rows, "home_token_file": token_file}


def table(result: dict) -> str:
    title = {"embedded": "videofix's embedded cluster (`restore --ray`, `batch` without `--address`)",
             "plain": "a plain `ray.init()` on this machine (token on, no loopback binding)"}[result["mode"]]
    lines = [f"### {title}", "", f"GCS address: `{result['gcs']}`; `~/.ray/auth_token` written: "
             f"{'yes' if result['home_token_file'] else 'no'}", "", "| what | listens on | port |", "|---|---|---|"]
    seen = set()
    for r in sorted(result["rows"], key=lambda r: (r["role"], r["port"])):
        key = (r["role"], r["address"], r["port"])
        if key not in seen:
            seen.add(key)
            lines.append(f"| {r['role']} | {r['address']} | {r['port']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="also write the tables to this markdown file")
    ap.add_argument("--mode", choices=("both", "embedded", "plain"), default="both")
    args = ap.parse_args()
    modes = ["plain", "embedded"] if args.mode == "both" else [args.mode]
    text = "".join(table(measure(m)) + "\n" for m in modes)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
