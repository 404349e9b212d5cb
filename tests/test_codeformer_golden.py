"""Parity of our CodeFormer with the official network on the golden data (cases A, B, C).

The official network was filled with the README formula's synthetic weights; we compute
the same weights here (no weights file in the repository), run the full-size network in
float32 on the CPU and compare within the README's tolerances. The full network is built
once per module; case A's encoder run is reused for case B.

The reference data are the repository copy in tests/data/golden (tests/golden_data.py; set
VIDEOFIX_GOLDEN to the official shared/golden folder to check against the original files).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from golden_data import golden as golden_set

from videofix.models.codeformer import CodeFormer, adaptive_instance_normalization, infer_config
from videofix.models.synthetic import formula_codeformer, formula_state_dict, small_codeformer_config
from videofix.restore.crops import NORMALIZE_LUT, crops_to_tensor

G = golden_set()


def golden(name: str) -> np.ndarray:
    """The reference array (official file name without .npy; float64 for float data)."""
    return G.array(name.removesuffix(".npy"))


def check(ours, name: str) -> None:
    """README tolerance for ``name`` (made stricter by the repository copy's storage error)."""
    G.check(ours, name.removesuffix(".npy"))


@pytest.fixture(scope="module")
def key_shapes() -> list[tuple[str, list[int]]]:
    return [tuple(p) for p in G.json("codeformer_state_dict_keys.json")]


@pytest.fixture(scope="module")
def official_sd(key_shapes) -> dict[str, torch.Tensor]:
    return formula_state_dict(key_shapes)


@pytest.fixture(scope="module")
def net(official_sd) -> CodeFormer:
    return CodeFormer.from_state_dict(official_sd)


def input_tensor(*names: str) -> torch.Tensor:
    return crops_to_tensor(np.stack([golden(n) for n in names]))


@pytest.fixture(scope="module")
def encoded_a(net):
    with torch.inference_mode():
        return net.encode(input_tensor("input_A_rgb_uint8.npy"))


@pytest.fixture(scope="module")
def forward_c(net):
    with torch.inference_mode():
        return net(input_tensor("input_A_rgb_uint8.npy", "input_C1_rgb_uint8.npy"), w=1.0, adain=True)


# ------------------------------------------------------------------ weights and layout


def test_formula_reproduces_the_reference_weights(official_sd):
    checks = G.json("weights_checksums.json")
    assert checks["n_tensors"] == len(official_sd) == 515
    assert sum(t.numel() for t in official_sd.values()) == checks["n_params"] == 94_112_707
    for entry in checks["tensors"]:
        t = official_sd[entry["key"]]
        assert list(t.shape) == entry["shape"] and t.dtype == torch.float32
        if hashlib.sha256(t.numpy().astype("<f4").tobytes()).hexdigest() != entry["sha256_f32le"]:
            # README: another libm may flip a last float32 bit; the sums must still agree
            values = t.double()
            assert abs(values.sum().item() - entry["sum_f64"]) <= 1e-6 * max(1.0, entry["abs_sum_f64"]), entry["key"]
            assert abs(values.abs().sum().item() - entry["abs_sum_f64"]) <= 1e-6 * entry["abs_sum_f64"], entry["key"]


def test_default_network_has_the_official_layout(key_shapes, official_sd):
    with torch.device("meta"):
        model = CodeFormer()
    assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == [(k, list(s)) for k, s in key_shapes]
    assert (model.input_size, model.num_tokens, model.codebook_size) == (512, 256, 1024)
    model.load_state_dict(official_sd, strict=True, assign=True)


def test_hyperparameters_are_inferred_from_shapes(official_sd, net):
    assert infer_config(official_sd) == dict(
        img_size=512, nf=64, ch_mult=(1, 2, 2, 4, 4, 8), res_blocks=2, attn_resolutions=(16,), emb_dim=256,
        codebook_size=1024, dim_embd=512, n_head=8, n_layers=9, dim_mlp=1024, connect_list=("32", "64", "128", "256"),
    )  # fmt: skip
    # which encoder / generator block feeds each fusion: the official table
    assert net._enc_taps == {14: "32", 11: "64", 8: "128", 5: "256"}
    assert net._gen_taps == {9: "32", 12: "64", 15: "128", 18: "256"}


def test_input_lut_matches_the_reference():
    assert np.array_equal(NORMALIZE_LUT, golden("normalize_lut_float32.npy"))
    rgb = golden("input_A_rgb_uint8.npy")
    x = crops_to_tensor(rgb)
    assert x.shape == (1, 3, 512, 512) and x.dtype == torch.float32
    assert np.array_equal(x[0].permute(1, 2, 0).numpy(), NORMALIZE_LUT[rgb])


# ------------------------------------------------------------------------ case A, B


def test_case_a_codes_logits_lq_feat(encoded_a):
    assert encoded_a.logits.shape == (1, 256, 1024) and encoded_a.logits.dtype == torch.float32
    check(encoded_a.codes, "A_codes_int32.npy")  # exact
    check(encoded_a.logits, "A_logits_float32.npy")  # max abs <= 1e-4
    check(encoded_a.state["lq_feat"], "A_lq_feat_float32.npy")  # max abs <= 2e-4


def test_case_a_quant_feat_after_adain(net, encoded_a):
    with torch.inference_mode():
        quant = net.code_features(encoded_a.codes)
        assert quant.shape == (1, 256, 16, 16)
        adain = adaptive_instance_normalization(quant, encoded_a.state["lq_feat"])
    check(adain, "A_quant_feat_adain_float32.npy")  # max abs <= 5e-5


def test_case_a_output_w05(net, encoded_a):
    with torch.inference_mode():
        out = net.decode(encoded_a.codes, encoded_a.state, 0.5)
    assert out.shape == (1, 3, 512, 512) and torch.isfinite(out).all()
    check(out[:, :, 192:320, 192:320], "A_out_crop192_320_float32.npy")  # max abs <= 5e-4
    check(out, "A_out_float16.npy")  # |ref - ours| <= 1e-3 + 1e-3*|ref|


def test_case_b_output_w0_reuses_a_encoder(net, encoded_a):
    with torch.inference_mode():
        out = net.decode(encoded_a.codes, encoded_a.state, 0.0)
    check(out[:, :, 192:320, 192:320], "B_out_crop192_320_float32.npy")
    check(out, "B_out_float16.npy")


# -------------------------------------------------------------------------- case C


def test_case_c_batch_of_two_forward_w1(forward_c):
    out, logits, lq_feat = forward_c
    assert out.shape == (2, 3, 512, 512)
    check(logits.argmax(-1), "C_codes_int32.npy")
    check(logits, "C_logits_float32.npy")
    check(lq_feat, "C_lq_feat_float32.npy")
    check(out[:, :, 192:320, 192:320], "C_out_crop192_320_float32.npy")
    check(out[0:1], "C_out_sample0_float16.npy")
    check(out[1:2], "C_out_sample1_float16.npy")


def test_split_steps_agree_with_forward_full_size(encoded_a, forward_c):
    # C's sample 0 is input A: forward (batch 2) and encode (batch 1) agree
    _, logits, lq_feat = forward_c
    assert torch.equal(logits[0:1].argmax(-1), encoded_a.codes)
    assert (logits[0:1] - encoded_a.logits).abs().max().item() <= 1e-5
    assert (lq_feat[0:1] - encoded_a.state["lq_feat"]).abs().max().item() <= 1e-5
    assert set(encoded_a.state) == {"lq_feat", "enc_32", "enc_64", "enc_128", "enc_256"}
    assert encoded_a.state["enc_256"].shape == (1, 128, 256, 256)


@pytest.fixture
def one_thread():
    """The small network gains nothing from threads, and on a shared CPU they stall each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_split_steps_equal_forward_exactly_small(one_thread):
    model = formula_codeformer(small_codeformer_config())
    x = crops_to_tensor(np.random.default_rng(1).integers(0, 256, (2, 128, 128, 3), dtype=np.uint8))
    with torch.inference_mode():
        for w, adain in ((0.0, True), (0.7, True), (1.0, False)):
            out, logits, lq_feat = model(x, w=w, adain=adain)
            encoded = model.encode(x)
            assert torch.equal(logits, encoded.logits) and torch.equal(lq_feat, encoded.state["lq_feat"])
            assert torch.equal(out, model.decode(encoded.codes, encoded.state, w, adain=adain))
            quant = model.code_features(encoded.codes)
            if adain:
                quant = adaptive_instance_normalization(quant, lq_feat)
            assert torch.equal(out, model.generate(quant, encoded.state, w))
        code_logits, code_lq = model(x, code_only=True)
        assert torch.equal(code_logits, logits)
    # fidelity matters, and the codes are not degenerate
    assert not torch.equal(model.decode(encoded.codes, encoded.state, 0.0), model.decode(encoded.codes, encoded.state, 1.0))
    assert len(set(encoded.codes[0].tolist())) > 4
