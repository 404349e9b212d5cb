"""Old films (videofix.film): monochrome/tinted shots, grain, interlacing, small faces with
--upscale, repeated frames. Unit tests of each piece, then one end-to-end `videofix restore`
run per property on a generated clip that has it (small CodeFormer, dlib, lossless output).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import media
from conftest import run_cli
from videofix.film.color import MONOCHROME_THRESHOLD, ChromaScore, classify_shots, picture_chroma_score
from videofix.film.duplicates import DuplicateFinder, repeat_map
from videofix.film.grain import grain_field, noise_sigma
from videofix.film.interlace import Deinterlacer, comb_scores, field_order_from_motion, is_combed
from videofix.film.rrdbnet import RRDBNet
from videofix.film.upscale import RealESRGANUpscaler, ResizeUpscaler, create_upscaler
from videofix.io.picture import Picture
from videofix.io.reader import DecodedFrame
from videofix.models.synthetic import formula_codeformer, small_codeformer_config
from videofix.samples import astronaut_face, face_content

W, H = 320, 240
GRAIN_TOLERANCE = 0.20  # the face's noise level is within 20% of the ring's


def restore(clip_path, out, weights, *extra):
    report = Path(out).with_suffix(".json")
    run_cli("restore", clip_path, "-o", out, "--weights", weights, "--detector", "dlib", "--codec", "ffv1",
            "--device", "cpu", "--temporal-radius", "1", "--batch-size", "4", "--report", report, "--quiet", *extra)
    return json.loads(report.read_text())


@pytest.fixture(scope="module")
def flat_weights(tmp_path_factory) -> Path:
    """A restorer whose faces are perfectly clean (a flat skin tone): the grain test needs
    a clean restored face, which the formula weights (a noisy pattern) are not."""
    sd = formula_codeformer(small_codeformer_config()).state_dict()
    sd["generator.blocks.18.weight"].zero_()
    sd["generator.blocks.18.bias"].copy_(torch.tensor([0.3, 0.0, -0.2]))
    path = tmp_path_factory.mktemp("weights") / "codeformer_flat.pth"
    torch.save({"params_ema": sd}, path)
    return path


def sepia(grey: np.ndarray) -> np.ndarray:
    g = grey.astype(np.float32)[..., None]
    return np.clip(g * np.array([1.07, 0.74, 0.43]) + np.array([20, 14, 6]), 0, 255).astype(np.uint8)


def to_grey3(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=-1)


# ============================================================================ unit tests
def test_luma_only_blend_keeps_chroma_bit_identical():
    rng = np.random.default_rng(0)
    for pix_fmt in ("yuv420p", "yuv422p10le", "yuv444p"):
        pic = Picture.from_rgb(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), pix_fmt)
        before = pic.copy()
        box = pic.align_box((9, 7, 41, 33))
        h, w = box[3] - box[1], box[2] - box[0]
        new = rng.random((h, w, 3), dtype=np.float32)
        mask = np.ones((h, w), np.float32)
        pic.blend_rgb(new, mask, box, luma_only=True)
        np.testing.assert_array_equal(pic.planes[1], before.planes[1])
        np.testing.assert_array_equal(pic.planes[2], before.planes[2])
        y = pic.planes[0][box[1]:box[3], box[0]:box[2]].astype(np.float64)
        want = pic.rgb_to_luma(new)
        assert np.abs(y - np.clip(np.rint(want), 0, pic.layout.max_code)).max() <= 1
        colour = before.copy()
        colour.blend_rgb(new, mask, box)  # the default still writes chroma
        assert not np.array_equal(colour.planes[1], before.planes[1])
    rgb = Picture.from_rgb(np.full((16, 16, 3), (200, 100, 50), np.uint8), "rgb24")
    rgb.blend_rgb(np.full((8, 8, 3), 0.6, np.float32), np.ones((8, 8), np.float32), (0, 0, 8, 8), luma_only=True)
    px = rgb.planes[0][2, 2].astype(int)
    assert abs(px[0] - px[1] - 100) <= 1 and abs(px[1] - px[2] - 50) <= 1  # hue kept
    assert abs(0.299 * px[0] + 0.587 * px[1] + 0.114 * px[2] - 153) <= 1  # luma of the new picture


def yuv(rgb: np.ndarray) -> Picture:
    enc = Picture.from_rgb(rgb, "yuv420p")
    return enc


def test_chroma_score_tells_monochrome_and_tints_from_colour():
    face = cv2.resize(astronaut_face(256), (320, 240))
    grey = to_grey3(face)
    tinted = np.clip(grey.astype(np.float32) * np.array([0.8, 1.0, 0.85]), 0, 255).astype(np.uint8)  # green tint
    duotone = np.clip(grey.astype(np.float32) * np.array([1.0, 0.9, 1.2]) + np.array([0, 0, -10]), 0, 255).astype(np.uint8)
    for name, img in (("grey", grey), ("sepia", sepia(grey[..., 0])), ("tinted", tinted), ("duotone", duotone)):
        score = picture_chroma_score(yuv(img))
        assert score.residual < MONOCHROME_THRESHOLD / 2, (name, score)
    assert picture_chroma_score(yuv(grey)).tint == (0.0, 0.0)
    assert max(map(abs, picture_chroma_score(yuv(sepia(grey[..., 0]))).tint)) > 5
    colour = picture_chroma_score(yuv(face))
    assert colour.residual > 2 * MONOCHROME_THRESHOLD, colour
    assert picture_chroma_score(Picture.from_rgb(face, "gray")).residual == 0.0


def test_shots_are_classified_and_split_where_colour_changes():
    c, m = ChromaScore(30.0, (0, 0)), ChromaScore(2.0, (0, 0))
    shots = classify_shots([c] * 6 + [m] * 6 + [m] * 5, cuts=[12])  # the colour -> grey change had no cut
    assert [(s.start, s.end, s.monochrome) for s in shots] == [(0, 6, False), (6, 12, True), (12, 17, True)]
    one_off = classify_shots([m] * 4 + [c] + [m] * 4, cuts=[])  # one odd frame does not split a shot
    assert [(s.start, s.end, s.monochrome) for s in one_off] == [(0, 9, True)]


def test_noise_sigma_reads_known_noise_on_structured_content():
    rng = np.random.default_rng(1)
    base = cv2.resize(cv2.cvtColor(astronaut_face(256), cv2.COLOR_RGB2GRAY), (200, 200)).astype(np.float32)
    clean = noise_sigma(base)
    for sigma in (3.0, 8.0, 15.0):
        est = noise_sigma(base + rng.normal(0, sigma, base.shape))
        assert abs(np.sqrt(max(est ** 2 - clean ** 2, 0)) - sigma) < 0.15 * sigma, (sigma, est, clean)
    assert np.isnan(noise_sigma(base[:5, :5]))


def test_grain_is_seeded_and_changes_every_frame():
    a = grain_field((40, 50), seed=7, frame_index=3, track_id=1)
    np.testing.assert_array_equal(a, grain_field((40, 50), seed=7, frame_index=3, track_id=1))
    assert not np.array_equal(a, grain_field((40, 50), seed=7, frame_index=4, track_id=1))
    assert not np.array_equal(a, grain_field((40, 50), seed=8, frame_index=3, track_id=1))
    assert abs(float(a.std()) - 1.0) < 0.1
    big = grain_field((80, 100), seed=7, frame_index=3, track_id=1, scale=2.0)
    assert big.shape == (80, 100) and noise_sigma(big) < 0.6 * noise_sigma(a)  # coarser grain


def test_the_grain_field_is_gaussian_and_the_same_drawn_by_torch():
    """The counter-based field: unit Gaussian (mean, spread, tails, no correlation between
    neighbours), and `grain_field_torch` (the torch face path's, drawn on the device) gives
    the same samples as numpy within float32 rounding of log and cos, also resized."""
    from scipy import stats

    from videofix.faces.gpu import grain_field_torch

    a = grain_field((300, 400), seed=11, frame_index=5, track_id=2)
    assert abs(float(a.mean())) < 0.01 and abs(float(a.std()) - 1.0) < 0.01
    assert stats.kstest(a.ravel()[::3], "norm").pvalue > 1e-3
    assert abs(float(np.mean(np.abs(a) > 3.0)) - 0.0027) < 0.001  # the tails of N(0, 1)
    for lag in ((0, 1), (1, 0), (1, 1)):
        x, y = a[: a.shape[0] - lag[0], : a.shape[1] - lag[1]], a[lag[0]:, lag[1]:]
        assert abs(float(np.corrcoef(x.ravel(), y.ravel())[0, 1])) < 0.01, lag
    for shape, scale in (((300, 400), 1.0), ((37, 53), 1.0), ((80, 100), 2.0), ((61, 47), 1.5)):
        want = grain_field(shape, seed=11, frame_index=5, track_id=2, scale=scale)
        got = grain_field_torch(shape, seed=11, frame_index=5, track_id=2, scale=scale).numpy()
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


def panning_frame(t: float, w: int = W, h: int = H) -> np.ndarray:
    """A sharp scene panning 5 px per field time."""
    base = face_content(w + 200, h, faces=1, face_size=150, motion=False, degrade=False, noise=0.0)(0)
    x = int(round(5 * t)) % 200
    return np.ascontiguousarray(base[:, x:x + w])


def weave(t: int, order: str = "tff") -> np.ndarray:
    """Frame t of an interlaced video: its two fields show moments 2t and 2t+1."""
    first, second = panning_frame(2 * t), panning_frame(2 * t + 1)
    out = first.copy()
    if order == "tff":
        out[1::2] = second[1::2]
    else:
        out[0::2] = second[0::2]
        out[1::2] = first[1::2]
    return out


def test_comb_detection_field_order_and_bwdif():
    woven = [cv2.cvtColor(weave(t), cv2.COLOR_RGB2GRAY) for t in range(4)]
    progressive = [cv2.cvtColor(panning_frame(2 * t), cv2.COLOR_RGB2GRAY) for t in range(4)]
    assert all(is_combed(y) for y in woven) and not any(is_combed(y) for y in progressive)
    assert field_order_from_motion(woven) == "tff"
    assert field_order_from_motion([cv2.cvtColor(weave(t, "bff"), cv2.COLOR_RGB2GRAY) for t in range(4)]) == "bff"
    frames = [DecodedFrame(i, 1000 + 40 * i, Fraction(1, 1000), Picture.from_rgb(weave(i), "yuv420p"), i == 0)
              for i in range(5)]
    out = list(Deinterlacer("tff").run(iter(frames)))
    assert [(f.index, f.pts, f.key_frame) for f in out] == [(f.index, f.pts, f.key_frame) for f in frames]
    for f in out:
        assert f.picture.pix_fmt == "yuv420p" and (f.picture.width, f.picture.height) == (W, H)
        assert comb_scores(f.picture.planes[0])[0] < 0.2 * comb_scores(frames[f.index].picture.planes[0])[0]


def test_duplicate_finder_finds_runs_and_keeps_motion():
    content = face_content(160, 120, noise=4.0)
    seq = [content(i * 3 // 4) for i in range(12)]  # 18 fps in 24: every 4th frame repeats
    finder = DuplicateFinder()
    for i, img in enumerate(seq):
        finder.update(i, img, [], cut=False)
    assert finder.runs() == [[0, 1], [4, 5], [8, 9]]
    mouth = seq[2].copy()
    mouth[70:76, 70:82] += 12  # a small local change (a mouth moving) is not a repeat
    finder = DuplicateFinder()
    finder.update(0, seq[2], [])
    assert not finder.update(1, mouth, [])
    assert repeat_map([[0, 3]], {0: frozenset({1}), 1: frozenset({1}), 2: frozenset({1, 2})}) == {1: 0}


def official_key_shapes(num_block: int = 23, num_feat: int = 64, grow: int = 32) -> dict:
    """Key -> shape of basicsr's RRDBNet(3, 3, scale=2, ...), written out from its layout."""
    shapes = {"conv_first.weight": (num_feat, 12, 3, 3), "conv_first.bias": (num_feat,)}
    for b in range(num_block):
        for r in (1, 2, 3):
            for c in range(1, 6):
                cin, cout = num_feat + (c - 1) * grow, (grow if c < 5 else num_feat)
                shapes[f"body.{b}.rdb{r}.conv{c}.weight"] = (cout, cin, 3, 3)
                shapes[f"body.{b}.rdb{r}.conv{c}.bias"] = (cout,)
    for name in ("conv_body", "conv_up1", "conv_up2", "conv_hr"):
        shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (num_feat, num_feat, 3, 3), (num_feat,)
    shapes["conv_last.weight"], shapes["conv_last.bias"] = (3, num_feat, 3, 3), (3,)
    return shapes


def test_rrdbnet_has_the_official_x2plus_layout():
    with torch.device("meta"):
        net = RRDBNet(3, 3, scale=2, num_feat=64, num_block=23, num_grow_ch=32)
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert got == official_key_shapes()
    assert sum(v.numel() for v in net.state_dict().values()) == 16_703_171  # RealESRGAN_x2plus's parameter count
    torch.manual_seed(0)
    small = RRDBNet(3, 3, scale=2, num_feat=8, num_block=2, num_grow_ch=4)
    again = RRDBNet.from_state_dict(small.state_dict())
    assert (again.num_feat, again.num_block, again.num_grow_ch, again.scale) == (8, 2, 4, 2)
    x = torch.rand(1, 3, 12, 10)
    # basicsr's pixel_unshuffle, written out: the channel order the checkpoints expect
    b, c, hh, hw = x.shape
    ref = x.view(b, c, hh // 2, 2, hw // 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(b, c * 4, hh // 2, hw // 2)
    torch.testing.assert_close(torch.nn.functional.pixel_unshuffle(x, 2), ref)
    with torch.no_grad():
        assert small(x).shape == (1, 3, 24, 20)
        torch.testing.assert_close(again(x), small(x))


def small_realesrgan(path: Path) -> Path:
    torch.manual_seed(0)
    torch.save({"params_ema": RRDBNet(3, 3, scale=2, num_feat=8, num_block=1, num_grow_ch=4).state_dict()}, path)
    return path


def test_upscalers(tmp_path):
    net_path = small_realesrgan(tmp_path / "RealESRGAN_x2plus.pth")
    up = create_upscaler("auto", models_dir=str(tmp_path))
    assert isinstance(up, RealESRGANUpscaler)
    assert create_upscaler("auto", models_dir=str(tmp_path / "empty")).name == "lanczos"
    rgb = np.random.default_rng(0).random((37, 51, 3), dtype=np.float32)
    whole = RealESRGANUpscaler(up.net, tile=0).upscale_rgb(rgb)
    tiled = RealESRGANUpscaler(up.net, tile=16, tile_pad=10).upscale_rgb(rgb)
    assert whole.shape == (74, 102, 3)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)  # tiles land in place; context beyond the pad is negligible here
    pic = Picture.from_rgb(face_content(51, 37)(0), "yuv420p")
    for name in ("lanczos", "bilinear"):
        out = ResizeUpscaler(name).upscale(pic, 2)
        assert (out.width, out.height, out.pix_fmt) == (102, 74, "yuv420p")
        assert [p.shape for p in out.planes] == [(74, 102), (37, 51), (37, 51)]
        back = cv2.resize(out.planes[0], (51, 37), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(back - pic.planes[0]).mean() < 4
    out = up.upscale(pic, 3)
    assert (out.width, out.height, out.pix_fmt) == (153, 111, "yuv420p")
    assert net_path.exists()


# ============================================================================ end to end
def test_greyscale_and_sepia_shots_keep_their_chroma(tmp_path, small_weights):
    colour = face_content(W, H, faces=1, face_size=160)
    mono = face_content(W, H, faces=1, face_size=150, seed=3)

    def content(i):
        if i < 4:
            return colour(i)
        g = to_grey3(mono(i))
        return g if i < 8 else sepia(g[..., 0])

    clip = media.make_clip(tmp_path / "mono.mkv", frames=12, size=(W, H), fps=25, content=content, audio=False,
                           subtitles=False)
    out = tmp_path / "out.mkv"
    report = restore(clip.path, out, small_weights, "--preview", tmp_path / "p.png")
    shots = report["film"]["shots"]
    assert [(s["start"], s["mode"]) for s in shots] == [(0, "color"), (4, "luma"), (8, "luma")], shots
    assert [s["kind"] for s in shots] == ["color", "grey", "tinted"]
    src, dst = media.decode_frames(clip.path), media.decode_frames(out)
    assert len(src) == len(dst) == 12 and [t for t, _, _ in src] == [t for t, _, _ in dst]
    faces = [f for t in report["tracks"] for f in t["frames"]]
    assert len(set(faces)) >= 10  # dlib may miss a face at a shot's first frame
    for f in range(12):
        (_, sp, _), (_, dp, _) = src[f], dst[f]
        if f >= 4:  # the chroma check: monochrome and sepia shots, every chroma sample
            np.testing.assert_array_equal(sp[1], dp[1], err_msg=f"frame {f} U")
            np.testing.assert_array_equal(sp[2], dp[2], err_msg=f"frame {f} V")
        elif f in faces:  # the colour shot got the restorer's colours
            assert np.abs(sp[1].astype(int) - dp[1]).max() > 20
        if f in faces:
            assert np.abs(sp[0].astype(int) - dp[0]).max() > 20  # the face was restored (luma)
    assert report["film"]["color_faces"] == sum(f < 4 for f in faces) > 0
    assert report["film"]["luma_only_faces"] == sum(f >= 4 for f in faces) > 0


def test_grain_around_the_face_is_matched_inside_it(tmp_path, flat_weights):
    clean = face_content(W, H, faces=1, face_size=160, noise=0.0, degrade=False)

    def content(i):  # film grain: luma noise of 9 levels, new every frame
        grain = np.random.default_rng(100 + i).normal(0, 9.0, (H, W, 1))
        return np.clip(np.rint(clean(i) + grain), 0, 255).astype(np.uint8)

    clip = media.make_clip(tmp_path / "grain.mkv", frames=6, size=(W, H), fps=25, codec="ffv1", content=content,
                           audio=False, subtitles=False)
    out = tmp_path / "out.mkv"
    preview = tmp_path / "p.png"
    report = restore(clip.path, out, flat_weights, "--preview", preview, "--grain-seed", "5")
    dst = media.decode_frames(out)
    (track,) = report["tracks"]
    stats = report["film"]["grain"][str(track["id"])]
    assert stats["face_sigma_before"] < 0.3 * stats["ring_sigma"]  # the restored face is clean...
    ratios = []
    for f, box, region in zip(track["frames"], track["boxes"], track["paste_regions"]):
        y = dst[f][1][0].astype(np.float32)
        x0, y0, x1, y1 = box
        cx, cy, hw = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 4
        inside = noise_sigma(y[int(cy - hw):int(cy + hw), int(cx - hw):int(cx + hw)])
        rx0, ry0, rx1, ry1 = region
        around = y[max(0, ry0 - 16):ry1 + 16, max(0, rx0 - 16):rx1 + 16]
        ring = np.ones(around.shape, bool)
        ring[ry0 - max(0, ry0 - 16):ry1 - max(0, ry0 - 16), rx0 - max(0, rx0 - 16):rx1 - max(0, rx0 - 16)] = False
        ratios.append(inside / noise_sigma(around, ring))
    # ...and the grain put back on it matches the ring's level
    assert abs(float(np.mean(ratios)) - 1.0) < GRAIN_TOLERANCE, ratios
    assert all(abs(r - 1.0) < 1.5 * GRAIN_TOLERANCE for r in ratios), ratios
    img = cv2.imread(str(preview))
    from videofix.pipeline.report import PreviewCollector

    rows = len(report["tracks"][0]["frames"][:3])  # each row: a label strip above the pictures
    zoom = img.shape[0] // rows - PreviewCollector.LABEL_HEIGHT
    assert img.shape[1] >= 2 * 640 + 3 * zoom - 2  # before | without grain | with grain


def test_interlaced_transfer_is_deinterlaced(tmp_path, small_weights):
    path = tmp_path / "tv.mkv"
    clip = media.make_clip(path, frames=8, size=(W, H), fps=25, content=weave, audio=False, subtitles=False, crf=16)
    # re-encode as interlaced H.264 (field order tagged top first) with PyAV
    import av

    src_frames = media.decode_frames(clip.path)
    tagged = tmp_path / "tv_tff.mkv"
    with av.open(str(tagged), "w") as oc:
        vs = oc.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.codec_context.options = {"x264-params": "tff=1", "crf": "16"}
        for i in range(8):
            vf = av.VideoFrame.from_ndarray(weave(i), format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            vf.time_base = Fraction(1, 25)
            for pk in vs.encode(vf):
                oc.mux(pk)
        for pk in vs.encode():
            oc.mux(pk)
    del src_frames
    out = tmp_path / "out.mkv"
    report = restore(tagged, out, small_weights)
    film = report["film"]["interlace"]
    assert report["deinterlaced"] is True and film["parity"] == "tff"
    assert film["probe"]["field_order"] == "tt" and film["probe"]["combed_frames"] >= 6
    assert any("deinterlaced" in n for n in report["notes"])
    src, dst = media.decode_frames(tagged), media.decode_frames(out)
    assert len(dst) == len(src) == 8 and [t for t, _, _ in dst] == [t for t, _, _ in src]
    assert report["film"]["frames_deinterlaced"] == 16  # both passes, every frame
    assert report["tracks"] and len(report["tracks"][0]["frames"]) >= 6
    for (_, sp, _), (_, dp, _) in zip(src, dst):
        assert comb_scores(dp[0])[0] < 0.25 * comb_scores(sp[0])[0]


def test_small_faces_in_sd_with_upscale_2(tmp_path, small_weights):
    w, h = 352, 288
    clip = media.make_clip(tmp_path / "sd.mkv", frames=5, size=(w, h), fps=25, audio=False, subtitles=False,
                           content=face_content(w, h, faces=1, face_size=100, degrade=False))
    models = tmp_path / "models"
    models.mkdir()
    small_realesrgan(models / "RealESRGAN_x2plus.pth")
    out = tmp_path / "out.mkv"
    report = restore(clip.path, out, small_weights, "--upscale", "2", "--models-dir", models)
    assert report["film"]["upscaler"] == "realesrgan"
    dst = media.decode_frames(out)
    assert len(dst) == 5 and dst[0][1][0].shape == (2 * h, 2 * w)
    (track,) = report["tracks"]
    assert track["frames"] == list(range(5))
    for x0, y0, x1, y1 in track["boxes"]:  # output pixels: the face is 30-80 px in the source
        assert 60 <= x1 - x0 <= 160
    assert report["faces_restored"] == 5


def test_18fps_film_in_24fps_container_keeps_timing_and_repeats(tmp_path, small_weights):
    base = face_content(W, H, faces=1, face_size=160, degrade=False)  # a sharp face: dlib finds it every frame
    clip = media.make_clip(tmp_path / "film18.mkv", frames=12, size=(W, H), fps=24, audio=False, subtitles=False,
                           content=lambda i: base(i * 3 // 4))
    out = tmp_path / "out.mkv"
    report = restore(clip.path, out, small_weights)
    runs = report["film"]["repeat_runs"]
    assert runs == [[0, 1], [4, 5], [8, 9]]
    src, dst = media.decode_frames(clip.path), media.decode_frames(out)
    assert len(dst) == len(src) == 12 and [t for t, _, _ in dst] == [t for t, _, _ in src]
    (track,) = report["tracks"]
    assert track["frames"] == list(range(12))
    assert report["faces_restored"] == 9 and report["film"]["faces_reused"] == 3  # restored once per film frame
    region = dict(zip(track["frames"], track["paste_regions"]))
    for first, last in runs:
        x0, y0, x1, y1 = region[first]
        assert region[last] == region[first] and x1 > x0
        for p, (a, b) in enumerate(zip(dst[first][1], dst[last][1])):
            s = 1 if p == 0 else 2
            np.testing.assert_array_equal(a[y0 // s:y1 // s, x0 // s:x1 // s], b[y0 // s:y1 // s, x0 // s:x1 // s])
        # and the face was restored (the region differs from the source)
        assert np.abs(src[first][1][0][y0:y1, x0:x1].astype(int) - dst[first][1][0][y0:y1, x0:x1]).mean() > 3
    # frames that are not repeats are restored on their own: their faces differ
    x0, y0, x1, y1 = region[2]
    assert not np.array_equal(dst[2][1][0][y0:y1, x0:x1], dst[3][1][0][y0:y1, x0:x1])
