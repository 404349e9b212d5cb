"""Connecting to Ray for the length of a run: the embedded cluster, or a cluster joined.

* **Embedded** (no `--address`): a one-machine cluster started by the run with every CPU
  (and GPU) of the machine, no dashboard, token authentication with a fresh token
  (`videofix.pipeline.ray.auth`), every server bound to 127.0.0.1 (`loopback_only`), and
  stopped at the end.
* **Joined** (`--address auto | host:port | ray://host:port`): the address's port is tried
  first (a wrong address fails within seconds instead of Ray retrying the GCS for minutes),
  then the operator's token is checked once, then Ray connects with it.

Every failure to connect is a `ClusterError`: one line, exit code 7.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time

import ray

from videofix.errors import ClusterError
from videofix.pipeline.ray.auth import check_token, new_token, operator_token, token_environment

log = logging.getLogger("videofix")

LOOPBACK = "127.0.0.1"
# Ray's switch for clusters of several machines (named for Windows and macOS, where it is off)
MULTI_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"

# Errors of a Ray client connection that a new attempt can get past: the head's proxy could
# not start the job's client server process (seen on a loaded 2-core machine) or dropped it.
_TRANSIENT = ("Starting Ray client server failed", "Proxy failed to Connect to backend", "Initialization failure")


@contextlib.contextmanager
def ray_session(address: str | None = None, *, token_file: str | None = None, quiet: bool = True):
    """Connect to Ray for the length of a run.

    address None: the embedded cluster (`embedded_cluster`), shut down at the end. "auto",
    "host:port" or "ray://host:port": join that cluster with the operator's token
    (`joined_cluster`; `token_file`: `--ray-token-file`), disconnect at the end. When this
    process is already connected (a test fixture, a notebook), that connection is used and
    left open.
    """
    if ray.is_initialized():
        yield
        return
    if address is None:
        session = embedded_cluster(quiet=quiet)
    else:
        session = joined_cluster(address, token_file=token_file, quiet=quiet)
    with session:
        yield


def _init_options(quiet: bool) -> dict:
    return dict(include_dashboard=False, log_to_driver=not quiet, logging_level=logging.WARNING,
                configure_logging=True)


@contextlib.contextmanager
def embedded_cluster(num_cpus: int | None = None, *, quiet: bool = True):
    """Start a private one-machine Ray for the block and yield its GCS address ("127.0.0.1:PORT").

    num_cpus: default every CPU of the machine. Token authentication with a fresh token held
    only in the environment of this process and of the processes Ray starts; every server on
    127.0.0.1; no dashboard; `RAY_ADDRESS` is ignored (the run starts its own cluster). Logs
    one line when the cluster is up, naming the GCS address.
    """
    with token_environment(new_token()), loopback_only():
        ctx = ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, _node_ip_address=LOOPBACK,
                       **_init_options(quiet))
        try:
            gcs = ctx.address_info["gcs_address"]
            host = (_host_port(gcs) or ("", 0))[0]
            if host == LOOPBACK:
                log.info("Ray: embedded cluster up at %s (token authentication, listening on %s only)", gcs, LOOPBACK)
            else:  # a Ray that no longer keeps loopback: the token still guards it
                log.warning("Ray: embedded cluster up at %s (token authentication), but not on %s only", gcs, LOOPBACK)
            yield gcs
        finally:
            ray.shutdown()


@contextlib.contextmanager
def loopback_only():
    """Keep every server of a cluster started in the block on 127.0.0.1.

    Ray binds its gRPC servers to 127.0.0.1 alone only when the node's address is 127.0.0.1,
    and on Linux it replaces a loopback address with the machine's network address (for
    clusters of several machines) unless `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`. Measured with
    Ray 2.60 (`ss -ltnp`, bench/ray_ports.py): with it the GCS, the raylet, the object
    manager, the workers, the agents and the metrics servers all listen on 127.0.0.1; without
    it on every interface, even with `_node_ip_address="127.0.0.1"`. The variable reaches the
    processes Ray starts (they read it when they import Ray); this process has imported Ray
    already, so Ray's constant is set here too. Both are restored after the block.
    """
    from ray._private import ray_constants

    saved_env, saved = os.environ.get(MULTI_MACHINE_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[MULTI_MACHINE_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
        if saved_env is None:
            os.environ.pop(MULTI_MACHINE_ENV, None)
        else:
            os.environ[MULTI_MACHINE_ENV] = saved_env


@contextlib.contextmanager
def joined_cluster(address: str, *, token_file: str | None = None, quiet: bool = True,
                   reach_timeout_s: float = 5.0):
    """Join the running cluster at `address` for the block (disconnect after it).

    The operator's token (`operator_token`: `token_file`, $RAY_AUTH_TOKEN, ...) is checked
    with the cluster first (`check_token`) and then held in this process's environment while
    connected; without one, Ray connects as it would (a cluster without authentication).
    Raises `ClusterError` (one line) when the cluster cannot be reached or refuses the token.
    """
    token, source = operator_token(token_file)
    target = _host_port(address)
    if target is not None:
        reach(address, target, reach_timeout_s)
    else:
        target = _auto_target(address)
    if target is not None:
        check_token(address, *target, token, source)
    with token_environment(token) if token else contextlib.nullcontext():
        connect(address, reach_timeout_s=None, **_init_options(quiet))
        try:
            yield
        finally:
            ray.shutdown()


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of "host:port" or "ray://host:port"; None for "auto" and other forms."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def _auto_target(address: str) -> tuple[str, int] | None:
    """(host, port) of the GCS that "auto" means ($RAY_ADDRESS, or the cluster `ray start`
    last started on this machine), or None when Ray cannot tell (it then says why itself)."""
    if address != "auto":
        return None
    try:
        from ray._private.services import canonicalize_bootstrap_address

        resolved = canonicalize_bootstrap_address("auto")
    except Exception:  # noqa: BLE001 - no cluster found: ray.init says so in its own words
        return None
    if not resolved or "://" in resolved:
        return None
    return _host_port(resolved)


def reach(address: str, target: tuple[str, int], timeout_s: float) -> None:
    """Fail at once with `ClusterError` when nothing answers on the address's port."""
    try:
        socket.create_connection(target, timeout=timeout_s).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: "
                           f"{exc.strerror or type(exc).__name__}") from exc


def connect(address: str, *, attempts: int = 3, reach_timeout_s: float | None = 5.0, **kwargs) -> None:
    """`ray.init(address=...)` for a cluster that runs already, failing with one line.

    The address's port is tried first (`reach_timeout_s`; None: not tried here): a wrong
    address fails at once with `ClusterError` instead of Ray retrying the GCS for minutes. A
    client connection (``ray://``) whose server side failed to start is tried `attempts`
    times. Any other failure of `ray.init` is a `ClusterError` naming the address."""
    target = _host_port(address)
    if target is not None and reach_timeout_s is not None:
        reach(address, target, reach_timeout_s)
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, **kwargs)
            return
        except Exception as exc:  # noqa: BLE001 - any failure to join is the cluster's, said in one line
            with contextlib.suppress(Exception):
                ray.shutdown()
            lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
            # a server-side traceback inside the message: its last "...Error: ..." line says why
            said = [x for x in lines if re.match(r"^[\w.]+(Error|Exception): ", x)]
            first = said[-1] if said else (lines[0] if lines else type(exc).__name__)
            if attempt < attempts and any(t in str(exc) for t in _TRANSIENT):
                log.warning("connecting to the Ray cluster at %s failed (%s); trying again (%d of %d)",
                            address, first, attempt + 1, attempts)
                time.sleep(2.0 * attempt)
                continue
            raise ClusterError(f"cannot connect to the Ray cluster at {address}: {first}") from exc


def cluster_shape() -> dict:
    """{"cpus": int, "gpus": int, "nodes": int} of the connected cluster."""
    res = ray.cluster_resources()
    return {"cpus": int(res.get("CPU", 0)), "gpus": int(res.get("GPU", 0)),
            "nodes": sum(1 for n in ray.nodes() if n.get("Alive"))}
