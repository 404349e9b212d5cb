"""One settings schema for every front-end (videofix/settings.py).

The command line, the VapourSynth function and the ComfyUI nodes are generated from the
schema; these tests read each front-end as its users meet it (argparse's options, the
function's signature, the nodes' INPUT_TYPES) and check that they expose the same settings
with the same defaults, choices and ranges, that each refuses a value outside the range with
a message naming the option its own way, and that the README's option tables are the schema's.
"""

from __future__ import annotations

import argparse
import inspect
import json
import pickle
import re
import sys
from pathlib import Path

import pytest

from videofix import settings as schema
from videofix.errors import UsageError, VideofixError
from videofix.settings import RestoreSettings

ROOT = Path(__file__).resolve().parents[1]


def cli_actions() -> dict[str, argparse.Action]:
    from videofix.cli import build_parser

    parser = build_parser("restore")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["restore"]._actions}


def comfy_inputs(monkeypatch, tmp_path) -> dict[str, list[tuple[str, tuple]]]:
    """setting name -> [(node, its input spec)] over every node of the pack."""
    from test_comfyui_nodes import import_pack

    (tmp_path / "models").mkdir()
    module, _ = import_pack(monkeypatch, tmp_path / "models", video_api=True)
    names = {name for name, _, _ in schema.options()}
    found: dict[str, list] = {}
    classes = dict(module.NODE_CLASS_MAPPINGS)
    assert "VideofixRestoreFacesVideo" in classes
    for key, cls in classes.items():
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                widget = isinstance(entry[0], list) or entry[0] in ("INT", "FLOAT", "BOOLEAN", "STRING")
                widget |= name == "face_ref" and entry[0] == "IMAGE"  # ComfyUI's own form: reference photos
                if name in names and widget:  # "model" is also the name of the VIDEOFIX_MODEL link
                    found.setdefault(name, []).append((key, entry))
    return found


def test_the_command_line_exposes_every_setting_with_the_schemas_default_and_choices():
    actions = cli_actions()
    for name, opt, default in schema.options():
        if not opt.exposed_in("cli"):
            assert name not in actions, f"--{name} is exposed although the schema says: {opt.absent['cli']}"
            continue
        action = actions[name]
        assert action.default == default, name
        if opt.choices:
            assert tuple(action.choices) == opt.choices, name
        if opt.kind in ("int", "float"):
            assert action.type is (int if opt.kind == "int" else float), name
        if opt.kind == "bool":
            assert action.nargs == 0, name  # a switch
        assert opt.help.split(" (")[0][:30] in action.help, name


def test_vapoursynth_takes_every_setting_with_the_schemas_default():
    from videofix.vs import restore_faces

    params = inspect.signature(restore_faces).parameters
    assert list(params)[:2] == ["clip", "analysis"]
    for name, opt, default in schema.options():
        if opt.exposed_in("vapoursynth"):
            assert params[name].default == default, name
            assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
            assert f"{name}: {opt.help[:40]}" in " ".join(restore_faces.__doc__.split()), name
        else:
            assert name not in params, f"{name}: the schema says {opt.absent['vapoursynth']}"


def test_comfyui_nodes_take_every_setting_with_the_schemas_default_and_range(monkeypatch, tmp_path):
    found = comfy_inputs(monkeypatch, tmp_path)
    for name, opt, default in schema.options():
        if not opt.exposed_in("comfyui"):
            assert name not in found, f"{name}: the schema says {opt.absent['comfyui']}"
            continue
        assert name in found, f"no ComfyUI node takes {name}"
        for node, entry in found[name]:
            kind, info = entry[0], entry[1]
            if name == "device":  # the loader's own list: ComfyUI's device names
                assert info["default"] == default and "cuda" in kind, node
                continue
            if name == "face_ref":  # photos as an IMAGE batch instead of paths
                assert kind == "IMAGE" and node in ("VideofixRestoreFaces", "VideofixRestoreFacesVideo",
                                                    "VideofixDetectAndTrack"), node
                continue
            want = default if default is not None else opt.unset
            if opt.kind == "regions":
                want = ",".join(default)
            assert info["default"] == want, (node, name)
            if opt.choices:
                assert kind == list(opt.choices), (node, name)
            elif opt.kind == "bool":
                assert kind == "BOOLEAN", (node, name)
            elif opt.kind in ("int", "float"):
                assert kind == ("INT" if opt.kind == "int" else "FLOAT"), (node, name)
                step = info.get("step", 1)
                lo = opt.lo + (step if opt.lo_open and default is not None else 0)
                hi = opt.hi - (step if opt.hi_open else 0)
                if default is None:  # the widget's unset number stands for None
                    assert info["min"] == opt.unset and not opt.in_range(opt.unset), (node, name)
                else:
                    assert info["min"] == pytest.approx(lo), (node, name)
                assert info["max"] == pytest.approx(hi), (node, name)
                assert opt.help in info["tooltip"], (node, name)


def _beyond(opt) -> object:
    """A value just outside the option's range (or of the wrong type when unbounded)."""
    if opt.hi is not None:
        return int(opt.hi) + 1 if opt.kind == "int" else float(opt.hi) + 0.5
    return int(opt.lo) - 1 if opt.kind == "int" else float(opt.lo) - 0.5


NUMERIC = [(name, opt) for name, opt, _ in schema.options() if opt.kind in ("int", "float")]


@pytest.mark.parametrize("name, opt", NUMERIC, ids=[n for n, _ in NUMERIC])
def test_every_front_end_refuses_a_value_out_of_range_naming_the_option(name, opt, tmp_path, capsys, monkeypatch):
    from videofix.cli import main
    from videofix.commands.options import flag

    bad = _beyond(opt)
    sentence = f"must be {'an integer' if opt.kind == 'int' else 'a number'} {opt.range_text()}, got {bad!r}"
    if opt.exposed_in("cli"):
        rc = main(["restore", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "out.mp4"), flag(name), str(bad)])
        assert rc == 2 and capsys.readouterr().err.strip() == f"videofix: error: {flag(name)} {sentence}"
    if opt.exposed_in("vapoursynth"):
        import vapoursynth as vs

        from videofix.vs import restore_faces

        clip = vs.core.std.BlankClip(format=vs.RGB24, width=64, height=48, length=2)
        with pytest.raises(vs.Error) as err:
            restore_faces(clip, **{name: bad})
        assert str(err.value) == f"restore_faces: {name} {sentence}"
    # ComfyUI: the nodes check their widget values through the same schema
    with pytest.raises(VideofixError) as err:
        schema.settings_from({name: bad}, unset_is_none=True)
    assert err.value.named() == f"{name} {sentence}" and err.value.option == name


def test_comfyui_node_refuses_a_bad_widget_value_by_its_input_name(monkeypatch, tmp_path):
    from test_comfyui_nodes import import_pack

    (tmp_path / "models").mkdir()
    module, _ = import_pack(monkeypatch, tmp_path / "models", video_api=False)
    nodes = module.NODE_CLASS_MAPPINGS
    pack_nodes = sys.modules[module.__name__ + ".nodes"]
    # the loaded model's settings are all a node reads before its widgets are checked
    model = pack_nodes.FaceRestorerModel(stages=None, settings=RestoreSettings(), weights="")
    import torch

    frames = torch.zeros((2, 32, 32, 3))
    with pytest.raises(ValueError, match=r"^temporal_radius must be an integer from 0 to 32, got 40$"):
        nodes["VideofixRestoreFaces"]().restore(frames, model, 0.7, 40, "dlib")
    with pytest.raises(ValueError, match=r"^keep_regions: unknown region 'ears'"):
        nodes["VideofixRestoreFaces"]().restore(frames, model, 0.7, 1, "dlib", keep_regions="mouth,ears")


def test_widget_unset_numbers_mean_the_stages_own_default():
    s = schema.settings_from({"det_threshold": 0.0, "face_ref_distance": 0.0}, unset_is_none=True)
    assert s.det_threshold is None and s.face_ref_distance is None
    with pytest.raises(UsageError, match="det_threshold must be a number between 0 and 1"):
        schema.settings_from({"det_threshold": 0.0})  # only a widget's 0 means "unset"
    s = schema.settings_from({"det_threshold": 0.5, "keep_regions": "Mouth, eyes,mouth"})
    assert s.det_threshold == 0.5 and s.keep_regions == ["mouth", "eyes"]


def test_settings_are_plain_data_and_each_group_is_a_view():
    s = RestoreSettings(temporal_radius=2, color="luma", blend=0.5)
    again = RestoreSettings(**pickle.loads(pickle.dumps(s.to_dict())))
    assert again == s
    for group in schema.GROUPS:
        assert isinstance(s, group)
        part = group.take(s)
        assert type(part) is group and all(getattr(part, n) == getattr(s, n) for n, _, _ in group.options())
    names = [n for n, _, _ in schema.options()]
    assert len(names) == len(set(names)) and set(names) <= set(s.to_dict())
    assert [f for f in s.to_dict()][:3] == ["model", "weights", "models_dir"]  # the groups' order


def test_errors_name_options_without_a_front_ends_spelling():
    """The schema's messages name a setting by its field; every front-end spells it its own way,
    and an option travels with the error through pickling (Ray ships errors back)."""
    from videofix.commands.options import flag

    with pytest.raises(UsageError) as err:
        RestoreSettings(temporal_radius=-1).validate()
    exc = pickle.loads(pickle.dumps(err.value))
    assert exc.option == "temporal_radius" and "--" not in str(exc)
    assert exc.named(flag) == "--temporal-radius must be an integer from 0 to 32, got -1"
    for bad in (dict(color="sepia"), dict(keep_regions="ears"), dict(range="x"), dict(device="tpu"),
                dict(face_ref=["/nonexistent.png"]), dict(models_dir="/nonexistent")):
        with pytest.raises(VideofixError) as err:
            RestoreSettings(**bad).validate()
        assert not str(err.value).startswith("--"), bad


def test_readme_option_tables_are_the_schemas():
    from videofix.commands.options import flag, markdown_tables

    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- options:begin -->\n(.*?)<!-- options:end -->", text, re.S)
    assert block is not None, "README.md lost its generated option tables"
    assert block.group(1) == markdown_tables(), "regenerate: .venv/bin/python -m videofix.commands.options"
    for name, opt, default in schema.options("cli"):
        row = next(line for line in block.group(1).splitlines() if line.startswith(f"| `{flag(name)}`"))
        assert f"| {schema.default_text(opt, default)} |" in row, name


PROBE = '''
import inspect, json, sys
from pathlib import Path
root = Path(sys.argv[1])
sys.path[:0] = [str(root), str(root / "tests")]
from _pytest.monkeypatch import MonkeyPatch
from videofix.cli import build_parser
from videofix.commands.options import settings_from_args
import videofix.vs
from test_comfyui_nodes import import_pack

args = build_parser("restore").parse_args(["restore", "in.mkv", "-o", "out.mkv", "--probe-option", "7"])
(root / "models").mkdir()
module, _ = import_pack(MonkeyPatch(), root / "models", video_api=True)
nodes = {key: [name for name in cls.INPUT_TYPES().get("optional", {})]
         for key, cls in module.NODE_CLASS_MAPPINGS.items()}
print(json.dumps({"cli": settings_from_args(args).probe_option,
                  "vs": inspect.signature(videofix.vs.restore_faces).parameters["probe_option"].default,
                  "comfy": {k: v[-1] for k, v in nodes.items() if "probe_option" in v},
                  "widget": module.NODE_CLASS_MAPPINGS["VideofixDetectAndTrack"].INPUT_TYPES()["optional"]
                  ["probe_option"][1]}))
'''


def test_an_option_added_to_the_schema_alone_reaches_every_front_end(tmp_path):
    """Adding a setting is an edit of the schema (and of the stage that reads it), nothing else
    (#21): a copy of the package whose settings.py alone gains an option has it on the command
    line (parsed into the settings), in the VapourSynth function's signature with its default,
    and on the ComfyUI nodes that take its group, appended last (saved workflows keep their
    widget order) with its range."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    copy = tmp_path / "tree"
    for part in ("videofix", "plugins", "tests", "__init__.py"):
        src = root / part
        if src.is_dir():
            skip = ("__pycache__", "data") if part == "tests" else ("__pycache__",)  # tests/data: 11 MB of arrays
            shutil.copytree(src, copy / part, ignore=shutil.ignore_patterns(*skip))
        else:
            shutil.copy(src, copy / part)
    settings = copy / "videofix" / "settings.py"
    text = settings.read_text()
    anchor = "    only_center_face: bool = option("
    assert text.count(anchor) == 1
    settings.write_text(text.replace(anchor, '    probe_option: int = option(3, "an option added for this test", '
                                             'lo=0, hi=9, added=99)\n' + anchor))
    proc = subprocess.run([sys.executable, "-c", PROBE, str(copy)], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["cli"] == 7 and got["vs"] == 3
    assert got["comfy"] == {"VideofixRestoreFaces": "probe_option", "VideofixDetectAndTrack": "probe_option",
                            "VideofixRestoreFacesVideo": "probe_option"}
    assert got["widget"]["default"] == 3 and (got["widget"]["min"], got["widget"]["max"]) == (0, 9)
