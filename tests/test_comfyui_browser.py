"""The UI-format workflows opened, checked and run in ComfyUI's own editor, in a real browser.

ComfyUI (the one ``scripts/setup_comfyui.sh`` installs into ``.comfyui/``, see
tests/test_comfyui_headless.py) is started with its own web frontend, the
``comfyui-frontend-package`` its requirements.txt pins, and Debian's Chromium (installed by
``scripts/setup_chromium.sh``) is driven through Playwright. For every ``example_workflows/*.json``
that is not an ``*.api.json``:

1. the file is opened through the editor's file-open input (what *Workflow > Open* and a
   drop on the canvas use), in a tab named after it;
2. the graph the editor built is read back from the page: node types missing from the
   editor's node registry (and the editor's own missing-node warning), every widget's
   value, the links that survived;
3. every widget value is checked against the node definitions the server publishes in
   ``/object_info`` (combo value in its list, number within min/max, types), and no node may
   be missing, no link dropped;
4. a screenshot of the loaded graph is saved (pytest's tmp dir and ``test-artifacts/``);
5. the few widgets this machine needs are set in the editor (small CodeFormer, dlib, no face
   parser: no weights can be downloaded here), the Run button is pressed, and ``/history``
   must report success with the saved video (and previews) on disk; the video is decoded.

VideoHelperSuite is no package in any registry (a git repository), so the machine has no
VHS: the VHS workflow must show exactly its VHS nodes as missing in the editor (and its
videofix nodes must be valid), and its VHS nodes are checked against a pinned copy of
VHS's node definitions, ``tests/data/vhs_object_info.json`` (widget names, values, link
types). With ``VIDEOFIX_VHS=/path/to/ComfyUI-VideoHelperSuite`` the checkout is linked into
ComfyUI, the pinned copy is compared with the live definitions, and the workflow is run too.

Deliberately broken copies of a workflow (a node type that does not exist, a combo value not
in its list, a number above its max) must be reported by the same checks, and ComfyUI must
refuse to queue the one with bad values.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import die_with_parent, free_port

ROOT = Path(__file__).resolve().parents[1]
COMFYUI = os.environ.get("VIDEOFIX_COMFYUI")
PYTHON = os.environ.get("VIDEOFIX_COMFYUI_PYTHON", sys.executable)
CHROMIUM = os.environ.get("VIDEOFIX_CHROMIUM", "/usr/bin/chromium")
VHS_CHECKOUT = os.environ.get("VIDEOFIX_VHS")
VHS_DEFS = ROOT / "tests" / "data" / "vhs_object_info.json"
ARTIFACTS = ROOT / "test-artifacts" / "comfyui-browser"
UI_WORKFLOWS = sorted((ROOT / "example_workflows").glob("*.json"))
FRAMES, WIDTH, HEIGHT, FPS = 3, 192, 160, 25
# The flags the closed network here needs (else Chromium keeps calling home and stalls).
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# What this machine needs changed before a run (set in the editor, like a user would):
# no face-parsing weights, dlib is the only offline detector, a short temporal window.
RUN_WIDGETS = {"parsing": False, "detector": "dlib", "temporal_radius": 1}
OUTPUT_NODES = {"SaveVideo", "PreviewImage", "VHS_VideoCombine"}
WIDGET_TYPES = {"INT", "FLOAT", "BOOLEAN", "STRING", "COMBO"}

pytestmark = pytest.mark.skipif(not COMFYUI, reason="set VIDEOFIX_COMFYUI to a ComfyUI folder "
                                                    "(see tests/test_comfyui_headless.py)")


# ----------------------------------------------------------------------------- checks


def spec_choices(spec) -> list | None:
    """The allowed values of a combo input spec (old ``[[...], {...}]`` or ``["COMBO", {"options"}]``)."""
    kind = spec[0]
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        return list((spec[1] if len(spec) > 1 else {}).get("options", []))
    return None


def is_widget_spec(spec) -> bool:
    return isinstance(spec[0], list) or spec[0] in WIDGET_TYPES


def value_problem(spec, value) -> str | None:
    """Why `value` is not valid for the input spec `spec` of ``/object_info``, or None."""
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    choices = spec_choices(spec)
    if choices is not None:
        return None if value in choices else f"{value!r} is not one of {choices}"
    kind = spec[0]
    if kind in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{value!r} is not a number"
        if kind == "INT" and float(value) != int(value):
            return f"{value!r} is not an integer"
        if "min" in opts and value < opts["min"]:
            return f"{value!r} is below the minimum {opts['min']}"
        if "max" in opts and value > opts["max"]:
            return f"{value!r} is above the maximum {opts['max']}"
        return None
    if kind == "BOOLEAN":
        return None if isinstance(value, bool) else f"{value!r} is not a boolean"
    if kind == "STRING":
        return None if isinstance(value, str) else f"{value!r} is not a string"
    return None


def node_inputs(info: dict) -> dict:
    """Input name -> spec, required then optional, of one ``/object_info`` entry."""
    out = {}
    for section in ("required", "optional"):
        out.update(info.get("input", {}).get(section, {}) or {})
    return out


def check_loaded_graph(workflow: dict, loaded: dict, object_info: dict) -> tuple[dict, list[str]]:
    """Compare the graph the editor built from `workflow` with the server's node definitions.

    `loaded` is what `read_graph` returned from the page. Returns ({node id: type} of the
    nodes the editor does not know, [problems]); a problem names the node and the widget.
    """
    problems = []
    missing = {str(n["id"]): n["type"] for n in loaded["nodes"] if not n["registered"]}
    warned = {str(m["nodeId"]): m["type"] for m in loaded["missing_warning"]}
    if warned != missing:
        problems.append(f"the editor warned of missing nodes {warned}, the registry lacks {missing}")
    by_id = {str(n["id"]): n for n in workflow["nodes"]}
    for node in loaded["nodes"]:
        nid, ntype = str(node["id"]), node["type"]
        if nid in missing:
            continue
        if ntype not in object_info:
            problems.append(f"node {nid} {ntype}: the editor knows it, the server does not")
            continue
        specs = node_inputs(object_info[ntype])
        for widget in node["widgets"]:
            spec = specs.get(widget["name"])
            if spec is None or not is_widget_spec(spec):
                continue  # the editor's own widgets (upload button, preview, ...)
            why = value_problem(spec, widget["value"])
            if why:
                problems.append(f"node {nid} {ntype}: widget {widget['name']}: {why}")
        saved = by_id[nid].get("widgets_values")
        if isinstance(saved, list) and len(saved) > len(node["widgets_values"]):
            problems.append(f"node {nid} {ntype}: the file has {len(saved)} widget values, "
                            f"the node takes {len(node['widgets_values'])}")
    if loaded["links"] != len(workflow.get("links", [])):
        problems.append(f"{len(workflow.get('links', []))} links in the file, {loaded['links']} in the editor")
    return missing, problems


def check_vhs_nodes(workflow: dict, pinned: dict) -> list[str]:
    """Check the VideoHelperSuite nodes of a UI workflow against VHS's node definitions.

    `pinned` maps node type -> ``/object_info`` entry (tests/data/vhs_object_info.json, or
    the live ones). VHS saves its widgets as a {name: value} dict; VHS_VideoCombine's format
    adds the widgets its format file lists (``formats`` of the ``format`` input).
    """
    problems = []
    nodes = {n["id"]: n for n in workflow["nodes"]}
    for node in workflow["nodes"]:
        if not node["type"].startswith("VHS_"):
            continue
        tag = f"node {node['id']} {node['type']}"
        info = pinned.get(node["type"])
        if info is None:
            problems.append(f"{tag}: not in VHS's node definitions")
            continue
        specs = {k: v for k, v in node_inputs(info).items() if is_widget_spec(v)}
        values = node.get("widgets_values") or {}
        if not isinstance(values, dict):
            problems.append(f"{tag}: widgets_values is not VHS's {{name: value}} form")
            continue
        fmt_spec = specs.get("format")
        if node["type"] == "VHS_VideoCombine" and fmt_spec and "format" in values:
            for extra in (fmt_spec[1].get("formats", {}).get(values["format"]) or []):
                specs[extra[0]] = extra[1:]  # [name, type or choices, options?]
        linked = {i["name"] for i in node.get("inputs", []) if i.get("link") is not None}
        for name, value in values.items():
            if name not in specs:
                problems.append(f"{tag}: VHS has no widget {name!r}")
            elif name not in linked:
                why = value_problem(specs[name], value)
                if why:
                    problems.append(f"{tag}: widget {name}: {why}")
        required = info.get("input", {}).get("required", {})
        for name, spec in required.items():
            if is_widget_spec(spec) and name not in values and name not in linked:
                problems.append(f"{tag}: required widget {name!r} has no value")
    for link in workflow.get("links", []):
        _, src, src_slot, dst, dst_slot, ltype = link
        if nodes[src]["type"] in pinned:
            outputs = pinned[nodes[src]["type"]]["output"]
            if src_slot >= len(outputs) or outputs[src_slot] != ltype:
                problems.append(f"link {link[0]}: node {src} {nodes[src]['type']} output {src_slot} is not {ltype}")
        if nodes[dst]["type"] in pinned:
            name = nodes[dst]["inputs"][dst_slot]["name"]
            spec = node_inputs(pinned[nodes[dst]["type"]]).get(name)
            if spec is None or (spec[0] != ltype and not (is_widget_spec(spec) and spec[0] in (ltype, "*"))):
                problems.append(f"link {link[0]}: node {dst} {nodes[dst]['type']} has no {ltype} input {name!r}")
    return problems


def pinned_vhs() -> dict:
    return json.loads(VHS_DEFS.read_text())["nodes"]


# ----------------------------------------------------------------------------- ComfyUI + browser


def call(port: int, path: str, timeout: float = 30.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def comfy(tmp_path_factory):
    """A ComfyUI serving its web frontend, with the pack, the small CodeFormer saved as the
    file name the workflows use (``codeformer.pth``), and ``input/faces.mp4``."""
    import torch

    from videofix.models.synthetic import formula_codeformer, small_codeformer_config
    from videofix.samples import face_content, write_sample_clip

    assert (Path(COMFYUI) / "main.py").is_file(), f"VIDEOFIX_COMFYUI={COMFYUI} has no main.py"
    assert Path(PYTHON).is_file(), f"VIDEOFIX_COMFYUI_PYTHON={PYTHON} does not exist"
    probe = subprocess.run([PYTHON, "-c", "import comfyui_frontend_package"], capture_output=True, text=True)
    assert probe.returncode == 0, ("ComfyUI's Python lacks comfyui-frontend-package (run scripts/setup_comfyui.sh):\n"
                                   + probe.stderr[-2000:])
    base = tmp_path_factory.mktemp("comfy_ui_base")
    for d in ("custom_nodes", "models/facerestore_models", "input", "output", "temp", "user/default"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "custom_nodes" / "videofix").symlink_to(ROOT / "plugins" / "comfyui", target_is_directory=True)
    if VHS_CHECKOUT:
        (base / "custom_nodes" / "ComfyUI-VideoHelperSuite").symlink_to(Path(VHS_CHECKOUT).resolve(),
                                                                      target_is_directory=True)
    # The editor's first-start template browser would cover the canvas; the minimap too.
    (base / "user" / "default" / "comfy.settings.json").write_text(json.dumps(
        {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False, "LiteGraph.Canvas.MinFontSizeForLOD": 0}))
    model = formula_codeformer(small_codeformer_config())
    torch.save({"params_ema": model.state_dict()}, base / "models" / "facerestore_models" / "codeformer.pth")
    # dlib finds this face in all 3 frames of its (reproducible, one-thread x264) encoding
    write_sample_clip(base / "input" / "faces.mp4", face_content(WIDTH, HEIGHT, face_size=120, seed=3),
                      FRAMES, fps=FPS, crf=12)
    port = free_port()
    env = dict(os.environ, VIDEOFIX_OFFLINE="1", PYTHONUNBUFFERED="1")
    log = open(base / "comfyui.log", "w")
    # No --front-end-root: ComfyUI serves the frontend package it finds installed.
    proc = subprocess.Popen(
        [PYTHON, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
         "--disable-auto-launch", "--database-url", "sqlite:///:memory:"],
        cwd=COMFYUI, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    try:
        deadline = time.time() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail("ComfyUI exited:\n" + (base / "comfyui.log").read_text()[-4000:])
            try:
                call(port, "/object_info/VideofixRestoreFaces", timeout=5)
                break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("ComfyUI did not start:\n" + (base / "comfyui.log").read_text()[-4000:])
                time.sleep(1)
        yield port, base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def object_info(comfy):
    return call(comfy[0], "/object_info")


@pytest.fixture(scope="module")
def page(comfy):
    """One Chromium tab on ComfyUI's editor, with its node definitions loaded."""
    assert Path(CHROMIUM).is_file(), f"{CHROMIUM} missing: run scripts/setup_chromium.sh (Debian's chromium)"
    from playwright.sync_api import sync_playwright

    port, _ = comfy
    profile = tempfile.mkdtemp(prefix="videofix-chromium-")
    errors: list[str] = []
    with sync_playwright() as pw:
        # A persistent context on a fresh profile folder: --user-data-dir the Playwright way.
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 2200, "height": 1000})
        try:
            tab = context.pages[0] if context.pages else context.new_page()
            tab.set_default_timeout(60_000)
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.goto(f"http://127.0.0.1:{port}/")
            tab.wait_for_function("() => window.app && window.app.graph && window.LiteGraph"
                                  " && 'VideofixRestoreFaces' in window.LiteGraph.registered_node_types")
            tab.page_errors = errors
            yield tab
        finally:
            context.close()
            shutil.rmtree(profile, ignore_errors=True)


def open_workflow(page, path: Path) -> dict:
    """Open `path` through the editor's file input; return what the editor built (`read_graph`)."""
    nodes = len(json.loads(path.read_text())["nodes"])
    page.set_input_files("#comfy-file-input", str(path))
    page.wait_for_function("([name, n]) => { const w = app.extensionManager.workflow.activeWorkflow;"
                           " return w && w.path.endsWith(name) && app.graph.nodes.length === n; }",
                           arg=[path.name, nodes])
    # The editor's missing-node warning is set after the graph is built: wait until it
    # covers every unregistered node (at once when none is missing; a timeout fails the test).
    page.wait_for_function("() => { const w = app.extensionManager.workflow.activeWorkflow;"
                           " const warned = (w.pendingWarnings && w.pendingWarnings.missingNodeTypes || []).length;"
                           " return warned === app.graph.nodes.filter("
                           "n => !(n.type in LiteGraph.registered_node_types)).length; }")
    page.wait_for_timeout(200)
    return read_graph(page)


def read_graph(page) -> dict:
    return page.evaluate("""() => {
        const wf = app.extensionManager.workflow.activeWorkflow;
        const types = LiteGraph.registered_node_types;
        return {
          missing_warning: (wf.pendingWarnings && wf.pendingWarnings.missingNodeTypes || [])
              .map(m => typeof m === 'string' ? {type: m, nodeId: null} : {type: m.type, nodeId: m.nodeId}),
          links: app.graph.links instanceof Map ? app.graph.links.size : Object.keys(app.graph.links).length,
          nodes: app.graph.nodes.map(n => ({
            id: n.id, type: n.type, registered: n.type in types,
            widgets: (n.widgets || []).map(w => ({name: w.name, value: w.value})),
            widgets_values: n.serialize().widgets_values || [],
          })),
        };
    }""")


def screenshot(page, tmp_path: Path, name: str) -> Path:
    """Fit the graph to the window and save a screenshot (tmp_path and test-artifacts/)."""
    page.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
    page.wait_for_timeout(500)
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
    return shot


def set_widgets(page, values: dict) -> None:
    page.evaluate("""(values) => {
        for (const n of app.graph.nodes) for (const w of n.widgets || [])
            if (w.name in values) { w.value = values[w.name]; if (w.callback) w.callback(w.value); }
        app.graph.setDirtyCanvas(true, true);
    }""", values)


def press_run(page) -> dict:
    """Press the editor's Run button; return the server's reply to the POST /prompt it sends."""
    with page.expect_response(lambda r: r.url.endswith("/prompt") and r.request.method == "POST") as reply:
        page.get_by_role("button", name="Run", exact=True).first.click()
    return reply.value.json()


def wait_history(port: int, base: Path, prompt_id: str, timeout: float = 240) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        history = call(port, f"/history/{prompt_id}")
        entry = history.get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            assert entry["status"]["status_str"] == "success", json.dumps(entry["status"]["messages"])[-4000:]
            return entry
        time.sleep(0.5)
    pytest.fail(f"prompt {prompt_id} did not finish:\n" + (base / "comfyui.log").read_text()[-4000:])


def decode(path: Path):
    import av
    import numpy as np

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


# ----------------------------------------------------------------------------- tests


def test_ui_workflows_found():
    names = {p.stem for p in UI_WORKFLOWS}
    assert {"restore_video_native", "restore_video_split", "restore_video_type", "restore_video_vhs"} <= names


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=[p.stem for p in UI_WORKFLOWS])
def test_ui_workflow_loads_and_runs_in_the_editor(comfy, object_info, page, tmp_path, path):
    port, base = comfy
    workflow = json.loads(path.read_text())
    page.page_errors.clear()
    loaded = open_workflow(page, path)
    shot = screenshot(page, tmp_path, path.stem)
    missing, problems = check_loaded_graph(workflow, loaded, object_info)
    assert not problems, "\n".join(problems)
    assert not page.page_errors, f"the editor threw while loading {path.name}: {page.page_errors}"

    vhs_types = {n["type"] for n in workflow["nodes"] if n["type"].startswith("VHS_")}
    if vhs_types:
        vhs_problems = check_vhs_nodes(workflow, pinned_vhs())
        assert not vhs_problems, "\n".join(vhs_problems)
        if VHS_CHECKOUT:  # a real VHS is loaded: the pinned copy must still describe it
            for name, pinned in pinned_vhs().items():
                assert node_inputs(object_info[name]).keys() == node_inputs(pinned).keys(), name
                assert object_info[name]["output"] == pinned["output"], name
            assert check_vhs_nodes(workflow, object_info) == []
    if vhs_types and not VHS_CHECKOUT:
        # VHS cannot be installed here: the editor must flag exactly the VHS nodes.
        assert set(missing.values()) == vhs_types, missing
        print(f"{path.stem}: loaded in the editor, VHS nodes {sorted(vhs_types)} checked against "
              f"the pinned definitions (not run); screenshot {shot}")
        return
    assert not missing, f"nodes missing in the editor: {missing}"

    set_widgets(page, RUN_WIDGETS)
    start = time.time()
    reply = press_run(page)
    assert reply.get("prompt_id") and not reply.get("node_errors"), reply
    entry = wait_history(port, base, reply["prompt_id"])
    seconds = time.time() - start
    screenshot(page, tmp_path, f"{path.stem}.done")
    assert not page.page_errors, f"the editor threw while running {path.name}: {page.page_errors}"

    # Every output node of the workflow reported its files, and they are on disk.
    videos = []
    for node in workflow["nodes"]:
        if node["type"] not in OUTPUT_NODES:
            continue
        out = entry["outputs"].get(str(node["id"]))
        assert out, f"no output from node {node['id']} {node['type']}: {entry['outputs']}"
        items = [i for key in ("images", "gifs", "video", "videos") for i in out.get(key, [])]
        assert items, out
        for item in items:
            folder = base / ("temp" if item.get("type") == "temp" else "output")
            file = folder / item.get("subfolder", "") / item["filename"]
            assert file.is_file(), file
            if file.suffix in (".mp4", ".webm", ".mkv", ".mov"):
                videos.append(file)
    assert videos, f"no video in {entry['outputs']}"
    src = decode(base / "input" / "faces.mp4").astype("float32")
    for video in videos:
        frames = decode(video)
        assert frames.shape == src.shape == (FRAMES, HEIGHT, WIDTH, 3), (video, frames.shape)
        # The face (left third, centred) was restored; the background (right quarter) only
        # went through the lossy re-encode (as in tests/test_comfyui_headless.py).
        diff = abs(frames.astype("float32") - src).mean(axis=-1)
        face, background = diff[:, 60:100, 35:85].mean(), diff[:, :, 3 * WIDTH // 4:].mean()
        assert face > 2.0 * background + 4.0, (video.name, face, background)
    print(f"{path.stem}: ran in {seconds:.1f} s from the Run button, saved {[v.name for v in videos]}")


def break_workflow(workflow: dict) -> dict:
    """restore_video_split with a node type that does not exist, a combo value that is not in
    its list and a number above its max."""
    broken = copy.deepcopy(workflow)
    nodes = {n["type"]: n for n in broken["nodes"]}
    nodes["VideofixPasteBack"]["type"] = "VideofixPasteBackRenamed"
    nodes["VideofixDetectAndTrack"]["widgets_values"][0] = "retinaface_xl"  # detector
    nodes["VideofixRestoreTracks"]["widgets_values"][0] = 1.5  # fidelity, max 1.0
    return broken


def test_broken_workflow_is_caught(comfy, object_info, page, tmp_path):
    workflow = json.loads((ROOT / "example_workflows" / "restore_video_split.json").read_text())
    broken = break_workflow(workflow)
    ids = {n["type"]: str(n["id"]) for n in broken["nodes"]}
    path = tmp_path / "broken_split.json"
    path.write_text(json.dumps(broken))
    loaded = open_workflow(page, path)
    screenshot(page, tmp_path, "broken_split")
    missing, problems = check_loaded_graph(broken, loaded, object_info)
    assert missing == {ids["VideofixPasteBackRenamed"]: "VideofixPasteBackRenamed"}
    assert len(problems) == 2, problems
    assert any("widget detector" in p and "retinaface_xl" in p for p in problems), problems
    assert any("widget fidelity" in p and "above the maximum" in p for p in problems), problems

    # The same bad values, with every node present: ComfyUI itself refuses to queue it.
    nodes = {n["type"]: n for n in broken["nodes"]}
    nodes["VideofixPasteBackRenamed"]["type"] = "VideofixPasteBack"
    path = tmp_path / "broken_values_split.json"
    path.write_text(json.dumps(broken))
    loaded = open_workflow(page, path)
    missing, problems = check_loaded_graph(broken, loaded, object_info)
    assert not missing and len(problems) == 2, (missing, problems)
    reply = press_run(page)
    errors = reply.get("node_errors") or {}
    assert set(errors) == {ids["VideofixDetectAndTrack"], ids["VideofixRestoreTracks"]}, reply


def test_broken_vhs_workflow_is_caught():
    workflow = json.loads((ROOT / "example_workflows" / "restore_video_vhs.json").read_text())
    assert check_vhs_nodes(workflow, pinned_vhs()) == []
    broken = copy.deepcopy(workflow)
    nodes = {n["type"]: n for n in broken["nodes"]}
    combine = nodes["VHS_VideoCombine"]["widgets_values"]
    combine["pix_fmt"] = "yuv999p"
    combine["crff"] = combine.pop("crf")
    nodes["VHS_LoadVideo"]["widgets_values"]["select_every_nth"] = 0
    problems = check_vhs_nodes(broken, pinned_vhs())
    assert len(problems) == 3, problems
    assert any("pix_fmt" in p and "yuv999p" in p for p in problems), problems
    assert any("no widget 'crff'" in p for p in problems), problems
    assert any("select_every_nth" in p and "below the minimum 1" in p for p in problems), problems
