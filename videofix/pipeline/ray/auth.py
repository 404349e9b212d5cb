"""Token authentication: nobody runs code on a Ray cluster of videofix without its token.

A Ray cluster executes whatever a connected driver sends it, as the user who started it.
Ray 2.60 checks a shared token on every connection when `RAY_AUTH_MODE=token`; the token
comes from `RAY_AUTH_TOKEN`, else the file named by `RAY_AUTH_TOKEN_PATH`, else
`~/.ray/auth_token` (measured here: with the first two set, Ray writes no file).

* **The embedded cluster** (no `--address`) gets a fresh random token per run
  (`new_token`). It lives only in the environment of the processes the run starts (the GCS,
  the raylet and every worker inherit it; `/proc/PID/environ` is readable by the user only)
  and in no file: not in the home folder, not in Ray's session folder, not on a command line.
* **Joining a cluster** (`--address`) uses the operator's token (`operator_token`):
  `--ray-token-file FILE`, else `$RAY_AUTH_TOKEN`, else `$RAY_AUTH_TOKEN_PATH`, else
  `~/.ray/auth_token` (what `ray get-auth-token --generate` writes). Before Ray's own
  connection, which retries a refusal for 20-30 s (printing a line a second through its C++
  logger) and then calls it a timeout, `check_token` asks the cluster once whether it
  accepts the token, so a missing or wrong token is one line and exit code 7.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from videofix.errors import ClusterError, UsageError

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
HOW_TO_SET = ("set RAY_AUTH_TOKEN or give --ray-token-file FILE (the cluster's token: `ray get-auth-token` "
              "on its head)")


def new_token() -> str:
    """A fresh random token for one run: 256 bits as 64 hex digits."""
    return secrets.token_hex(32)


def default_token_path() -> Path:
    """Where Ray keeps a token it generated (`ray get-auth-token --generate`)."""
    return Path.home() / ".ray" / "auth_token"


def operator_token(token_file: str | os.PathLike | None = None) -> tuple[str | None, str]:
    """(token, where it came from) for joining a cluster; (None, "") when none is given.

    Order: `token_file` (`--ray-token-file`), `$RAY_AUTH_TOKEN`, the file named by
    `$RAY_AUTH_TOKEN_PATH`, `~/.ray/auth_token`. A file given explicitly that cannot be read
    or holds nothing is a `UsageError`.
    """
    if token_file:
        return _read_token(Path(token_file), "--ray-token-file"), f"--ray-token-file {token_file}"
    if os.environ.get(TOKEN_ENV, "").strip():
        return os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    if os.environ.get(TOKEN_PATH_ENV):
        path = Path(os.environ[TOKEN_PATH_ENV])
        return _read_token(path, f"${TOKEN_PATH_ENV}"), f"${TOKEN_PATH_ENV} ({path})"
    path = default_token_path()
    if path.is_file():
        token = path.read_text().strip()
        if token:
            return token, str(path)
    return None, ""


def _read_token(path: Path, given_by: str) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise UsageError(f"{given_by} {path}: cannot read the token ({exc.strerror or type(exc).__name__})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{given_by} {path}: not a token (binary data)") from None
    if not token:
        raise UsageError(f"{given_by} {path}: the file is empty")
    return token


@contextlib.contextmanager
def token_environment(token: str):
    """Token authentication with `token` for this process and the processes it starts, for
    the length of the block; the environment and Ray's cached configuration are restored
    after it (a later run in the same process gets its own token)."""
    names = (MODE_ENV, TOKEN_ENV, TOKEN_PATH_ENV)
    saved = {k: os.environ.get(k) for k in names}
    os.environ[MODE_ENV] = "token"
    os.environ[TOKEN_ENV] = token
    os.environ.pop(TOKEN_PATH_ENV, None)
    _reload_ray_auth()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _reload_ray_auth()


def _reload_ray_auth() -> None:
    """Make Ray re-read the authentication mode and token from the environment: its
    configuration and its token loader cache both (in this order, as Ray's own tests do)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def check_token(address: str, host: str, port: int, token: str | None, source: str,
                timeout_s: float = 10.0) -> None:
    """Ask the cluster at (host, port) once whether it accepts `token` (None: no token);
    raise `ClusterError` (one line: what to set) when it refuses.

    A GCS address is asked for its cluster id, a Ray client server (``ray://``) is pinged:
    the first call a Ray driver or client makes, answered at once by a token-protected server
    with UNAUTHENTICATED. Any other outcome (an answer, no answer, TLS) is left to Ray's own
    connection, which says what is wrong.
    """
    import grpc

    metadata = [("authorization", f"Bearer {token}")] if token else []
    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        if address.startswith("ray://"):
            from ray.core.generated import ray_client_pb2, ray_client_pb2_grpc

            request = ray_client_pb2.ClusterInfoRequest(type=ray_client_pb2.ClusterInfoType.PING)
            ray_client_pb2_grpc.RayletDriverStub(channel).ClusterInfo(request, metadata=metadata, timeout=timeout_s)
        else:
            from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc

            stub = gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel)
            stub.GetClusterId(gcs_service_pb2.GetClusterIdRequest(), metadata=metadata, timeout=timeout_s)
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.UNAUTHENTICATED:
            return
        if token is None:
            raise ClusterError(f"the Ray cluster at {address} requires token authentication and no token was "
                               f"given: {HOW_TO_SET}") from None
        raise ClusterError(f"the Ray cluster at {address} refused the token from {source}: {HOW_TO_SET}") from None
    finally:
        channel.close()
