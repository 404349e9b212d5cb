"""The Ray runner on a local 2-CPU Ray: segment invariance, resume after a kill, bad input.

One Ray is started for the module. The network is a tiny formula-filled CodeFormer (64 px
crops) so a face costs milliseconds; the clips hold real faces (scikit-image's astronaut)
that dlib finds, with a keyframe every 4 frames so they cut into several segments.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from media import decode_audio, decode_frames, make_clip  # noqa: E402
from videofix.pipeline.local import RestoreSettings, restore_video  # noqa: E402
from conftest import TINY_CODEFORMER  # noqa: E402

# the film options keep their defaults (--color auto --grain auto --dedup --deinterlace auto)
SETTINGS = dict(detector="dlib", codec="ffv1", temporal_radius=2, device="cpu", parsing=False, download=False,
                batch_size=4)
CLI_OPTIONS = ["--detector", "dlib", "--codec", "ffv1", "--temporal-radius", "2", "--device", "cpu", "--no-parsing",
               "--batch-size", "4"]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    import torch

    from videofix.models.synthetic import formula_codeformer
    from videofix.samples import face_content

    d = tmp_path_factory.mktemp("ray_assets")
    weights = d / "tiny_codeformer.pth"
    torch.save({"params_ema": formula_codeformer(TINY_CODEFORMER).state_dict()}, weights)
    a = make_clip(d / "a.mkv", frames=16, size=(256, 192), gop=4, subtitles=False,
                  content=face_content(256, 192, face_size=150, seed=1))
    b = make_clip(d / "b.mkv", frames=12, size=(256, 192), gop=4, subtitles=False,
                  content=face_content(256, 192, face_size=150, seed=2))
    settings = RestoreSettings(weights=str(weights), **SETTINGS)
    local = {}
    for clip in (a, b):  # the reference: the local runner, one piece
        out = d / f"local_{clip.path.name}"
        local[clip.path.name] = (out, restore_video(clip.path, out, settings, quiet=True))
    return {"dir": d, "weights": weights, "a": a, "b": b, "settings": settings, "local": local}


@pytest.fixture(scope="module")
def cluster():
    """The embedded cluster of `restore --ray` (a fresh token, loopback only), 2 CPUs."""
    from videofix.pipeline.ray.cluster import embedded_cluster

    with embedded_cluster(num_cpus=2) as address:
        yield address


def assert_same_video(got, want):
    a, b = decode_frames(got), decode_frames(want)
    assert len(a) == len(b)
    assert [t for t, _, _ in a] == [t for t, _, _ in b]  # pts
    for i, ((_, pa, fa), (_, pb, fb)) in enumerate(zip(a, b)):
        assert fa == fb
        for x, y in zip(pa, pb):
            assert np.array_equal(x, y), f"frame {i} differs"
    np.testing.assert_array_equal(decode_audio(got), decode_audio(want))


def test_segments_give_the_local_runners_frames(assets, cluster, tmp_path):
    from videofix.pipeline.ray.jobs import restore_video_ray

    clip = assets["a"]
    local_out, local_report = assets["local"][clip.path.name]
    out = tmp_path / "ray.mkv"
    report = restore_video_ray(clip.path, out, assets["settings"], segments=3, quiet=True,
                               report_path=tmp_path / "report.json")
    assert report["ray"]["segments"] == 3
    assert_same_video(out, local_out)
    assert local_report["faces_restored"] > 10
    # same report keys, same tracks and per-track metrics (summed over segments)
    assert set(local_report) - {"film", "deinterlaced", "preview"} <= set(report)
    assert report["tracks"] == local_report["tracks"]
    for key in ("frames_read", "frames_written", "faces_restored", "cuts", "detector"):
        assert report[key] == local_report[key], key
    # only crops travel: what was sent is about the faces' crops (64x64x3 bytes each), not frames
    crop = 64 * 64 * 3
    faces = report["faces_restored"] + report["ray"]["context_frames"]
    sent = report["ray"]["object_store_bytes"]["crops_sent"]
    assert report["faces_restored"] * crop <= sent <= faces * (crop + 400)
    assert report["ray"]["object_store_bytes_per_frame"] > 0
    assert json.loads((tmp_path / "report.json").read_text())["ray"]["segments"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temporary job folder gone


# ============================================================================ security (#24)
def _descendants(pid: int) -> set[int]:
    """`pid` and every process below it (the embedded cluster's GCS, raylet, workers, agents)."""
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


def _listening(pids: set[int]) -> list[tuple[int, str, str, int]]:
    """(pid, command name, address, port) of every TCP socket the processes listen on, read
    from /proc (no `ss` needed)."""
    import ipaddress

    sockets = {}  # inode -> (address, port)
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            raw = bytes.fromhex(hex_addr)  # the kernel's words, each in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            sockets[fields[9]] = (str(ipaddress.ip_address(raw)), int(hex_port, 16))
    out = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            name = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in sockets:
                out.append((pid, name, *sockets[target[8:-1]]))
    return out


def _is_loopback(address: str) -> bool:
    import ipaddress

    ip = ipaddress.ip_address(address)
    return ip.is_loopback or bool(getattr(ip, "ipv4_mapped", None) and ip.ipv4_mapped.is_loopback)


def _network_address() -> str | None:
    """This machine's address as another host sees it (how Ray finds it: the source address of
    a UDP socket connected outwards; no packet is sent), or None when it has only loopback."""
    import socket

    for probe in ("8.8.8.8", "192.0.2.1", "10.255.255.255"):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.connect((probe, 9))
            except OSError:
                continue
            if not s.getsockname()[0].startswith("127."):
                return s.getsockname()[0]
    return None


STRANGER = """
import os, sys
import ray

@ray.remote(num_cpus=0)
def stranger():
    return "STRANGER RAN CODE pid %d" % os.getpid()

try:
    ray.init(address=sys.argv[1], logging_level="ERROR")
    print(ray.get(stranger.remote(), timeout=60))
except Exception as exc:  # what the cluster answered
    print("REFUSED", type(exc).__name__, (str(exc).splitlines() or [""])[0])
"""


def _stranger(address: str, home: Path, **env) -> subprocess.CompletedProcess:
    """A Ray client with no token (none in its environment, none in its home) asking
    `address` to run a task."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    # a short patience (Ray would try for about 2 minutes where nothing answers): it is refused either way
    clean.update(HOME=str(home), RAY_gcs_server_port_wait_time_s="1", RAY_py_gcs_connect_timeout_s="3",
                 RAY_gcs_rpc_server_connect_timeout_s="1", **env)
    return subprocess.run([sys.executable, "-c", STRANGER, address], env=clean, capture_output=True, text=True,
                          timeout=180)


def test_the_embedded_cluster_refuses_a_client_without_its_token(assets, tmp_path):
    """`videofix restore --ray` (embedded): while it runs, a Ray client without the token,
    connecting to the run's GCS by the machine's network address or by loopback, runs
    nothing; every port of the run is bound to loopback; the token is in no file and on no
    command line; the restore finishes with the local runner's frames."""
    import queue
    import threading

    from videofix.errors import ClusterError
    from videofix.pipeline.ray.auth import check_token

    home = tmp_path / "home"  # the run's home folder: Ray must not write its token file there
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(HOME=str(home), VIDEOFIX_OFFLINE="1")
    clip = assets["b"]
    out = tmp_path / "ray.mkv"
    cmd = [sys.executable, "-m", "videofix", "restore", str(clip.path), "-o", str(out), "--ray", "--segments", "2",
           "--weights", str(assets["weights"]), *CLI_OPTIONS]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lines: queue.Queue = queue.Queue()
    said: list[str] = []

    def read() -> None:
        for line in proc.stderr:
            said.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    stopped = False
    try:
        gcs = None
        while gcs is None:  # the run says when its cluster is up, and where its GCS is
            line = lines.get(timeout=300)
            assert line is not None, f"the restore ended before its cluster was up: {''.join(said)[-3000:]}"
            if "embedded cluster up at " in line:
                gcs = line.split("embedded cluster up at ", 1)[1].split()[0]
        host, port = gcs.rsplit(":", 1)
        port = int(port)
        assert host == "127.0.0.1", line
        # hold the driver still, so its cluster stays up for as long as the strangers try (the
        # cluster's processes run on: only the driver is stopped)
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = True

        tree = _descendants(proc.pid)
        listening = _listening(tree)
        assert ("gcs_server", port) in {(name, p) for _, name, _, p in listening}, listening
        assert len({name for _, name, _, _ in listening}) >= 3, listening  # GCS, raylet, workers, agents...
        wide = [entry for entry in listening if not _is_loopback(entry[2])]
        assert not wide, f"the run listens beyond loopback: {wide}"
        print("the run listens on:", sorted({(name, a, p) for _, name, a, p in listening}))

        def environ(pid: int) -> dict:
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
                return dict(kv.split("=", 1) for kv in text.split("\0") if "=" in kv)
            return {}

        def cmdline(pid: int) -> list[str]:
            with contextlib.suppress(OSError):
                return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
            return []

        gcs_pid = next(pid for pid, name, _, p in listening if name == "gcs_server")
        token = environ(gcs_pid).get("RAY_AUTH_TOKEN")  # set by the driver after it started: see its children
        assert token and len(token) == 64, "the run's cluster holds no token of its own"
        # each environment read once: a worker that ends between two reads would read as empty
        envs = {pid: environ(pid) for pid in tree}
        holders = [pid for pid, env in envs.items() if env.get("RAY_AUTH_TOKEN") == token]
        assert {name for pid, name, _, _ in listening if pid in holders} >= {"gcs_server", "raylet"}
        # the mode of the servers that answer clients (C++ binaries, environment as started);
        # Ray's Python processes rename themselves ("ray::..." via setproctitle), which may
        # overwrite the memory /proc/PID/environ reads: a missing variable there proves nothing
        # (seen once: the dashboard and runtime-env agents read with the token but no mode).
        # Those agents refusing strangers is what the client checks below show.
        servers = [pid for pid in holders if not (cmdline(pid) or [""])[0].startswith("ray::")]
        assert {name for pid, name, _, _ in listening if pid in servers} >= {"gcs_server", "raylet"}
        assert all(envs[pid].get("RAY_AUTH_MODE") == "token" for pid in servers), \
            {pid: cmdline(pid)[:2] for pid in servers if envs[pid].get("RAY_AUTH_MODE") != "token"}
        for pid in tree:  # command lines are readable by every user: the token is on none
            assert not [arg for arg in cmdline(pid) if token in arg], pid
        session = Path(next(a for a in cmdline(gcs_pid) if a.startswith("--log_dir=")).split("=", 1)[1]).parent

        # the GCS answers the token only (the check `--address` makes before joining)
        check_token(gcs, host, port, token, "the run")
        with pytest.raises(ClusterError, match="requires token authentication and no token was given"):
            check_token(gcs, host, port, None, "")

        network = _network_address()
        if network is not None:  # another host's view: nothing of the run is there to connect to
            import socket

            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((network, port), timeout=10).close()
            got = _stranger(f"{network}:{port}", home)
            assert "STRANGER RAN CODE" not in got.stdout and "REFUSED" in got.stdout, (got.stdout, got.stderr)
        else:
            print("this machine has no network address but loopback: the network-address client is not tried")
        # on the machine itself, through loopback: the GCS answers, and refuses the missing token
        got = _stranger(gcs, home, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")  # Ray keeps 127.0.0.1 as given
        assert "STRANGER RAN CODE" not in got.stdout and "REFUSED" in got.stdout, (got.stdout, got.stderr)
        assert "Authentication token is missing or incorrect" in got.stderr, got.stderr[-2000:]
        assert proc.poll() is None  # all of this while the restore runs

        os.kill(proc.pid, signal.SIGCONT)
        stopped = False
        proc.wait(timeout=600)
    finally:
        if stopped:
            os.kill(proc.pid, signal.SIGCONT)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    stderr = "".join(said)
    assert proc.returncode == 0, stderr[-3000:]
    assert_same_video(out, assets["local"][clip.path.name][0])
    assert not (home / ".ray").exists(), list((home / ".ray").iterdir())
    leaked = [p for p in session.rglob("*") if p.is_file() and token.encode() in p.read_bytes()]
    assert not leaked, f"the token is in {leaked}"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # the job folder is gone


def _batch_cmd(assets, out, *extra):
    return [sys.executable, "-m", "videofix", "batch", str(assets["a"].path), str(assets["b"].path), "--out", str(out),
            "--weights", str(assets["weights"]), "--segments", "3", "--quiet", *CLI_OPTIONS, *extra]


def test_batch_killed_midway_resumes_without_redoing_segments(assets, cluster, tmp_path):
    from videofix.pipeline.ray.jobdir import JobDir
    from videofix.pipeline.ray.jobs import run_batch
    from videofix.pipeline.ray.options import RayOptions

    out = tmp_path / "out"
    job = JobDir(out / ".videofix-job")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    # its own embedded Ray: the kill takes the driver and that cluster down together (a lost driver)
    proc = subprocess.Popen(_batch_cmd(assets, out), env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if list((job.root / "items").glob("*/seg-*.done")):
                break
            time.sleep(0.2)
        assert proc.poll() is None, f"batch ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    done_before = {(e["item"], e["segment"]) for e in job.events()}
    assert done_before, "no segment was done before the kill"
    items = job.load()["items"]
    for item in items:  # nothing half-written under an output name
        if Path(item["output"]).exists():
            assert job.state(item["id"])["status"] == "done"

    summary = run_batch([], out, RestoreSettings(), RayOptions(), resume=True, quiet=True)
    assert (summary["done"], summary["failed"]) == (2, 0)
    events = [(e["item"], e["segment"]) for e in job.events()]
    assert len(events) == len(set(events)), "a segment was done twice"
    planned = {(it["id"], k) for it in items for k in range(3)}
    assert set(events) == planned, "a segment was lost"
    for item in items:
        name = Path(item["input"]).name
        assert_same_video(item["output"], assets["local"][name][0])  # = an uninterrupted run
        report = json.loads((job.item_dir(item["id"]) / "report.json").read_text())
        assert report["tracks"] == assets["local"][name][1]["tracks"]
    assert sum(json.loads((job.item_dir(i["id"]) / "report.json").read_text())["ray"]["segments_resumed"]
               for i in items) == 0  # finished segments were skipped, not re-run
    assert not list(out.glob(".*.videofix-*"))  # no partial output left

    again = run_batch([], out, RestoreSettings(), RayOptions(), resume=True, quiet=True)
    assert (again["skipped"], again["done"]) == (2, 0)  # finished outputs are never rewritten


def test_corrupt_file_fails_alone(assets, cluster, tmp_path, capsys):
    from videofix.cli import main

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000))
    truncated = tmp_path / "cut.mkv"
    truncated.write_bytes(assets["b"].path.read_bytes()[:700])
    out = tmp_path / "out"
    code = main(["batch", str(assets["b"].path), str(bad), str(truncated), "--out", str(out), "--address", cluster,
                 "--weights", str(assets["weights"]), "--segments", "2", "--quiet", *CLI_OPTIONS])
    assert code == 3
    summary = json.loads((out / ".videofix-job" / "summary.json").read_text())
    assert (summary["done"], summary["failed"], summary["skipped"]) == (1, 2, 0)
    by_name = {Path(i["input"]).name: i for i in summary["items"]}
    assert by_name["b.mkv"]["status"] == "done"
    for name in ("broken.mp4", "cut.mkv"):
        assert by_name[name]["status"] == "failed"
        assert name in by_name[name]["reason"]
        assert not Path(by_name[name]["output"]).exists()
    assert_same_video(out / "b.mkv", assets["local"]["b.mkv"][0])
    err = capsys.readouterr().err
    assert "1 done, 2 failed, 0 skipped" in err


# ============================================================================ film features
def test_film_survey_merge_equals_the_one_piece_survey(monkeypatch):
    """Segments' duplicate checks joined by the driver = one sequential check, also where a
    borderline chain of near-repeats makes a segment's own check start differently (and,
    with few head thumbnails, through the re-decode fallback)."""
    from videofix.film import plan as film_plan
    from videofix.film.color import ChromaScore
    from videofix.film.plan import FilmSurvey
    from videofix.pipeline.analysis import FrameDetections

    base = np.random.default_rng(0).integers(40, 140, (24, 32)).astype(np.int32)
    for cap in (1, 3, 48):
        monkeypatch.setattr(film_plan, "HEAD_THUMBS", cap)
        redone = 0
        for seed in range(25):
            r = np.random.default_rng(seed)
            n = 30
            offsets = np.cumsum(r.choice([0, 1, 1, 1, 3], n))
            rgb = [np.repeat(np.clip(base + o, 0, 255).astype(np.uint8)[..., None], 3, -1) for o in offsets]
            cuts = [bool(i > 0 and r.random() < 0.05) for i in range(n)]
            one = FilmSurvey(dedup=True)
            for i in range(n):
                one(i, rgb[i], [], cuts[i])
            bounds = [0, *sorted(r.choice(np.arange(1, n), r.integers(1, 4), replace=False).tolist()), n]
            parts = []
            for a, b in zip(bounds[:-1], bounds[1:]):
                seg = FilmSurvey(dedup=True, start=a)
                for i in range(a, b):
                    seg.scores.append(ChromaScore(0.0, (0.0, 0.0)))
                    seg(i, rgb[i], [], cuts[i] if i > a else False)  # a segment's first frame: no cut known
                parts.append(seg.segment_result())

            def redo(part, finder, start):
                nonlocal redone
                redone += 1
                for i in range(start, part.start + part.frames):
                    finder.update(i, rgb[i], [], cuts[i])

            frames = [FrameDetections(i, [], cuts[i]) for i in range(n)]
            merged = FilmSurvey.merge(parts, frames, redo=redo)
            assert merged.duplicates.runs() == one.duplicates.runs(), (cap, seed, bounds)
            assert len(merged.scores) == n
        if cap == 1:
            assert redone > 0  # the fallback was exercised


def _face_clip(path, content, frames=16, **kw):
    return make_clip(path, frames=frames, size=(256, 192), gop=4, subtitles=False, content=content, **kw)


@pytest.fixture(scope="module")
def film_clips(assets):
    from videofix.samples import face_content

    d = assets["dir"]
    colour = face_content(256, 192, face_size=150, seed=1)
    mono = face_content(256, 192, face_size=150, seed=3)

    def film16(i):  # a colour shot, then a black-and-white one; film grain; 16 fps in 24
        k = i * 2 // 3  # frames 3-4, 6-7, 9-10, 12-13 repeat; the segment from 4 cuts the run 3-4
        rgb = colour(k) if k < 4 else np.repeat(mono(k).mean(axis=2, keepdims=True), 3, axis=2)
        grain = np.random.default_rng(50 + k).normal(0, 6.0, rgb.shape[:2] + (1,))
        return np.clip(np.rint(rgb + grain), 0, 255).astype(np.uint8)

    wide = face_content(256 + 200, 192, face_size=150, motion=False, degrade=False, noise=0.0, seed=4)(0)

    def woven(t):  # interlaced: the two fields of frame t are 2t and 2t + 1 of a pan
        first, second = (np.ascontiguousarray(wide[:, (5 * k) % 200:(5 * k) % 200 + 256]) for k in (2 * t, 2 * t + 1))
        out = first.copy()
        out[1::2] = second[1::2]
        return out

    clips = {
        "film16": _face_clip(d / "film16.mkv", film16, fps=24, codec="ffv1"),  # every frame a keyframe
        "interlaced": _face_clip(d / "interlaced.mkv", woven, frames=12, crf=16),
    }
    local = {}
    for name, clip in clips.items():
        out = d / f"local_{name}.mkv"
        local[name] = (clip, out, restore_video(clip.path, out, assets["settings"], quiet=True))
    return local


@pytest.mark.parametrize("name", ["film16", "interlaced"])
def test_film_features_give_the_local_runners_frames(film_clips, assets, cluster, tmp_path, name):
    from videofix.pipeline.ray.jobs import restore_video_ray

    clip, local_out, local_report = film_clips[name]
    out = tmp_path / "ray.mkv"
    segments = 4 if name == "film16" else 3  # film16: segments start at 4, 8, 12
    report = restore_video_ray(clip.path, out, assets["settings"], segments=segments, quiet=True)
    assert report["ray"]["segments"] == segments
    film, local_film = report["film"], local_report["film"]
    if name == "interlaced":
        assert local_report["deinterlaced"] is True
    else:  # a colour and a black-and-white shot, grain, a run of repeats across a segment boundary
        assert [s["mode"] for s in local_film["shots"]] == ["color", "luma"]
        assert local_film["grain"] and local_film["luma_only_faces"] > 0 and local_film["color_faces"] > 0
        bounds = [s.start_frame for s in __import__("videofix.io", fromlist=["plan_segments"]).plan_segments(
            clip.path, count=segments).segments[1:]]
        assert any(a < b <= c for a, c in local_film["repeat_runs"] for b in bounds), (local_film["repeat_runs"], bounds)
        assert local_film["faces_reused"] > 0
    assert_same_video(out, local_out)
    assert report["tracks"] == local_report["tracks"]
    assert report["deinterlaced"] == local_report["deinterlaced"]
    for key in ("frames_written", "faces_restored", "cuts"):
        assert report[key] == local_report[key], key
    for key in ("shots", "repeat_runs", "repeated_frames", "faces_reused", "luma_only_faces", "color_faces",
                "frames_deinterlaced", "upscaler", "grain_seed"):
        assert film[key] == local_film[key], key
    assert set(film["grain"]) == set(local_film["grain"])
    assert not any("film" in n and "Ray" in n for n in report["notes"])


def test_face_selection_and_paste_options_give_the_local_runners_frames(assets, cluster, tmp_path):
    """Which faces (identity references, decided on the driver after pass 1) and how they are
    pasted (blend, kept mouth) are the same on Ray segments as in one piece (select, #14)."""
    import cv2

    from test_face_selection import t1_face, two_people
    from videofix.pipeline.ray.jobs import restore_video_ray

    clip = make_clip(tmp_path / "two.mkv", frames=8, size=(320, 240), gop=4, subtitles=False, content=two_people)
    ref = tmp_path / "ref.png"
    cv2.imwrite(str(ref), cv2.cvtColor(t1_face(3, 180), cv2.COLOR_RGB2BGR))
    settings = RestoreSettings(weights=str(assets["weights"]), **SETTINGS, face_ref=[str(ref)], exclude=True,
                               blend=0.6, keep_regions=["mouth"], det_threshold=0.6)
    local = restore_video(clip.path, tmp_path / "local.mkv", settings, quiet=True)
    report = restore_video_ray(clip.path, tmp_path / "ray.mkv", settings, segments=2, quiet=True)
    assert report["ray"]["segments"] == 2
    assert_same_video(tmp_path / "ray.mkv", tmp_path / "local.mkv")
    assert report["selection"] == local["selection"] and list(local["selection"]["dropped"].values()) == [
        "face_ref_excluded"]
    assert report["tracks"] == local["tracks"] and len(local["tracks"]) == 1 and local["faces_restored"] == 8


def test_core_settings_reach_the_ray_segments(assets, cluster, tmp_path):
    """The settings travel to the Ray tasks and actors (issue 25): with the temporal radius,
    fidelity, blend, grain and colour mode changed together, the segmented run equals the local
    run with the same settings, which differs from the local run with the module's settings. A
    runner that dropped any one of them would give that setting's default there, and not the
    local output (each changes the local output alone: tests/test_settings_reach.py)."""
    import dataclasses

    from videofix.pipeline.ray.jobs import restore_video_ray

    clip = assets["b"]
    base_out, _ = assets["local"][clip.path.name]
    changed = dataclasses.replace(assets["settings"], temporal_radius=0, fidelity=1.0, blend=0.7, grain="off",
                                  color="luma")
    local = restore_video(clip.path, tmp_path / "local.mkv", changed, quiet=True)
    report = restore_video_ray(clip.path, tmp_path / "ray.mkv", changed, segments=3, quiet=True)
    assert report["ray"]["segments"] == 3
    changed_frames = [p for _, p, _ in decode_frames(tmp_path / "local.mkv")]
    base_frames = [p for _, p, _ in decode_frames(base_out)]
    assert any(not np.array_equal(x, y) for a, b in zip(changed_frames, base_frames) for x, y in zip(a, b))
    assert_same_video(tmp_path / "ray.mkv", tmp_path / "local.mkv")
    assert report["faces_restored"] == local["faces_restored"] > 0
    assert report["film"]["luma_only_faces"] == local["film"]["luma_only_faces"] > 0
