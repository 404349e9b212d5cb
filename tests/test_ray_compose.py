"""`docker/compose.yaml` is secure by default: token authentication on every service, no port
published beyond the host's 127.0.0.1, the dashboard bound to localhost; and the README says
what each published port exposes. Read as compose reads it: YAML merge keys, `${VAR:-default}`
with no variable set."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker" / "compose.yaml"


def _defaults(value):
    """`${VAR:-default}` / `${VAR-default}` -> default, `${VAR}` -> "" (no variable set)."""
    if isinstance(value, str):
        return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)
    if isinstance(value, list):
        return [_defaults(v) for v in value]
    if isinstance(value, dict):
        return {k: _defaults(v) for k, v in value.items()}
    return value


def _environment(service: dict) -> dict:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {k: str(v) for k, v in env.items()}


def _published(port) -> tuple[str, str]:
    """(host address, published port) of a `ports:` entry; "" = every interface."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "")), str(port.get("published", ""))
    parts = str(port).split("/")[0].rsplit(":", 2)
    if len(parts) == 3:
        return parts[0].strip("[]"), parts[1]
    return "", parts[0]  # "8265:8265" or "8265": every interface


def problems(text: str) -> list[str]:
    """What makes a compose file insecure by default (empty when nothing does)."""
    doc = _defaults(yaml.safe_load(text))
    out = []
    secrets = doc.get("secrets") or {}
    for name, service in (doc.get("services") or {}).items():
        for port in service.get("ports") or []:
            host, published = _published(port)
            if host not in ("127.0.0.1", "::1", "localhost"):
                out.append(f"{name}: port {published} published on {host or 'every interface'}")
        env = _environment(service)
        if env.get("RAY_AUTH_MODE") != "token":
            out.append(f"{name}: RAY_AUTH_MODE is {env.get('RAY_AUTH_MODE', 'unset')!r}, not 'token'")
        mounted = {s if isinstance(s, str) else s.get("source") for s in service.get("secrets") or []}
        token_path = env.get("RAY_AUTH_TOKEN_PATH", "")
        if not env.get("RAY_AUTH_TOKEN") and not (token_path.startswith("/run/secrets/")
                                                  and token_path.rsplit("/", 1)[1] in mounted & set(secrets)):
            out.append(f"{name}: no token (neither RAY_AUTH_TOKEN nor a secret at RAY_AUTH_TOKEN_PATH)")
        command = " ".join(service.get("command") or []) if isinstance(service.get("command"), list) \
            else str(service.get("command") or "")
        host = re.search(r"--dashboard-host[= ](\S+)", command)
        if host and host.group(1) not in ("127.0.0.1", "localhost"):
            out.append(f"{name}: dashboard on {host.group(1)}")
    return out


def test_the_compose_file_is_secure_by_default():
    text = COMPOSE.read_text()
    assert problems(text) == []
    doc = _defaults(yaml.safe_load(text))
    head = doc["services"]["head"]
    assert "--dashboard-host=127.0.0.1" in head["command"]  # bound to localhost, not only unpublished
    assert {_published(p)[1] for p in head["ports"]} == {"8265", "10001"}
    assert "disabled" not in re.sub(r"#.*", "", text)  # no RAY_AUTH_MODE: disabled anywhere, even in a list
    # the token file the compose file reads is never committed
    assert "/docker/ray_token" in (ROOT / ".gitignore").read_text().splitlines()


def test_the_check_finds_what_the_old_compose_file_did():
    old = """
x-videofix: &videofix
  image: videofix:0.1.0
  environment:
    RAY_AUTH_MODE: disabled
services:
  head:
    <<: *videofix
    command: ["ray", "start", "--head", "--port=6379", "--dashboard-host=0.0.0.0", "--block"]
    ports:
      - "8265:8265"
      - "${BIND:-0.0.0.0}:10001:10001"
  worker:
    <<: *videofix
    command: ["ray", "start", "--address=ray-head:6379", "--block"]
"""
    found = problems(old)
    assert "head: port 8265 published on every interface" in found
    assert "head: port 10001 published on 0.0.0.0" in found
    assert "head: dashboard on 0.0.0.0" in found
    assert "worker: RAY_AUTH_MODE is 'disabled', not 'token'" in found
    assert "worker: no token (neither RAY_AUTH_TOKEN nor a secret at RAY_AUTH_TOKEN_PATH)" in found


def test_the_docker_readme_says_what_each_port_exposes_and_how_to_tunnel():
    readme = (ROOT / "docker" / "README.md").read_text()
    security = readme[readme.index("### Security"):]
    doc = _defaults(yaml.safe_load(COMPOSE.read_text()))
    for service in doc["services"].values():
        for port in service.get("ports") or []:
            assert f"| {_published(port)[1]} |" in security, port
    assert "| 6379 |" in security  # the GCS: not published, said so
    assert "ssh -N -L 8265:127.0.0.1:8265" in security
    assert "secrets.token_hex" in readme and "umask 077" in readme  # how to make the token file
