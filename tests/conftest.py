"""Fixtures and helpers shared by the test modules.

`run_cli` runs the real `videofix` command line in a subprocess (offline, warnings off);
`small_weights` is a checkpoint in the official layout (`{'params_ema': state_dict}`) of the
small CodeFormer configuration filled with the golden formula: the same loading code path as
codeformer.pth at ~1/20 of its cost; `offline_models_env` gives a test an empty private
model cache with downloads off.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch


# The tiny CodeFormer the Ray, corpus, sequence, mastering and shot tests restore with (64 px,
# formula weights): every stage does its real work in a fraction of the small config's time.
TINY_CODEFORMER = dict(img_size=64, nf=32, ch_mult=(1, 1, 2), res_blocks=1, attn_resolutions=(16,), emb_dim=32,
                       codebook_size=64, dim_embd=64, n_head=4, n_layers=1, connect_list=("32", "64"))


def die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, even if it is killed (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/www (no network leaves the machine):
    yields (root folder, base URL)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def run_cli(*args, check_rc: int | None = 0, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python -m videofix ARGS...`; asserts the exit code unless `check_rc` is None.
    `env`: extra environment variables."""
    env = dict(os.environ, VIDEOFIX_OFFLINE="1", PYTHONWARNINGS="ignore", **(env or {}))
    proc = subprocess.run([sys.executable, "-m", "videofix", *map(str, args)], capture_output=True, text=True, env=env)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="session")
def small_weights(tmp_path_factory) -> Path:
    from videofix.models.synthetic import formula_codeformer, small_codeformer_config

    path = tmp_path_factory.mktemp("weights") / "codeformer_small.pth"
    torch.save({"params_ema": formula_codeformer(small_codeformer_config()).state_dict()}, path)
    return path


@pytest.fixture
def offline_models_env(tmp_path, monkeypatch):
    """An empty private model cache, downloads off, no models / ComfyUI folder configured."""
    monkeypatch.setenv("VIDEOFIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VIDEOFIX_OFFLINE", "1")
    monkeypatch.delenv("VIDEOFIX_MODELS", raising=False)
    monkeypatch.delenv("COMFYUI_PATH", raising=False)
    monkeypatch.delenv("VIDEOFIX_DEBUG", raising=False)


# ------------------------------------------------------------------ skip accounting (issue 16)
# `make test` must show at a glance whether anything was skipped, and why: pytest's own last
# line leaves "skipped" out when there are none, and -ra lists reasons but no total. With
# VIDEOFIX_FAIL_ON_SKIP=1 a run with any skip exits non-zero (CI: "0 skipped" is enforced).


def _skip_reasons(terminalreporter) -> dict[str, int]:
    reasons: dict[str, int] = {}
    for rep in terminalreporter.stats.get("skipped", []):
        longrepr = rep.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        where = rep.nodeid.split("::")[0]
        key = f"{where}: {reason}"
        reasons[key] = reasons.get(key, 0) + 1
    return reasons


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    reasons = _skip_reasons(terminalreporter)
    total = sum(reasons.values())
    terminalreporter.write_sep("-", f"skipped: {total}", bold=True, yellow=bool(total), green=not total)
    for key, n in sorted(reasons.items()):
        terminalreporter.write_line(f"  {n} x {key}")


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("VIDEOFIX_FAIL_ON_SKIP") == "1" and exitstatus == 0:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and reporter.stats.get("skipped"):
            session.exitstatus = 1
