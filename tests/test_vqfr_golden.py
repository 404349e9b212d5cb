"""VQFR v2: state-dict layout, loading, the CodeRestorer contract, and parity with the official
network on the golden cases of shared/golden/vqfr (README there: formula, cases, tolerances;
the repository copy the tests read is tests/data/golden/vqfr, see tests/golden_data.py).

The full network runs three times in this module (about a minute on a 2-core CPU): one
official ``forward`` of the batch [A, C1] at fidelity 0.5 (case C, and case A's encoder,
logits, texture decoder and Level_32 intermediates from sample 0, which the README says are
independent of the fidelity), then ``encode(A)`` + ``decode(..., 1.0)`` (case B) and
``decode(..., 0.0)`` (case A's full output) through the CodeRestorer path. Contract details
(forward == encode -> argmax -> decode, bit for bit) are checked on a small configuration.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from golden_data import golden as golden_set

from videofix.errors import ModelFileError
from videofix.models.base import CodeRestorer, Encoded
from videofix.models.synthetic import formula_state_dict
from videofix.models.vqfr import ModulatedDeformConv, VQFRv2


G = golden_set()  # tests/data/golden, or the official folder named by VIDEOFIX_GOLDEN
CODEBOOK = "quantizer.embedding.weight"
CROP = (slice(None), slice(None), slice(192, 320), slice(192, 320))


def _load(name: str) -> np.ndarray:
    return G.array("vqfr/" + name.removesuffix(".npy"))


def _check(ours, name: str) -> None:
    """README section 7 tolerance for ``name`` (stricter by the storage error of the repository copy)."""
    G.check(ours, "vqfr/" + name.removesuffix(".npy"))


def _official_key_shapes() -> list[tuple[str, list[int]]]:
    return [(k, s) for k, s in G.json("vqfr/vqfr_state_dict_keys.json")]


def vqfr_formula_state_dict(model_or_key_shapes) -> dict[str, torch.Tensor]:
    """The golden formula (README section 2) for a VQFR key set (the codebook
    ``quantizer.embedding.weight`` unscaled, as the shared generator knows)."""
    return formula_state_dict(model_or_key_shapes)


def _input(name: str) -> torch.Tensor:
    lut = G.array("normalize_lut_float32")
    rgb = G.array(name.removesuffix(".npy"))
    return torch.from_numpy(lut[rgb]).permute(2, 0, 1).unsqueeze(0).contiguous()


def _maxabs(a: torch.Tensor | np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.asarray(a, dtype=np.float64) - b.astype(np.float64)).max())


# --------------------------------------------------------------------------------------------
# fixtures: the official-size network, built once, and the runs the cases share
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def official_sd() -> dict[str, torch.Tensor]:
    return vqfr_formula_state_dict(_official_key_shapes())


@pytest.fixture(scope="module")
def model(official_sd) -> VQFRv2:
    return VQFRv2.from_state_dict(official_sd)


@pytest.fixture(scope="module")
def x_a() -> torch.Tensor:
    return _input("input_A_rgb_uint8.npy")


@pytest.fixture(scope="module")
def x_c1() -> torch.Tensor:
    return _input("input_C1_rgb_uint8.npy")


@pytest.fixture(scope="module")
def forward_ac(model, x_a, x_c1) -> dict[str, torch.Tensor]:
    """Official forward of [A, C1] at fidelity 0.5, plus Level_32 intermediates (hooks)."""
    captured: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(_module, _inputs, output):
            captured[name] = output.detach().clone()

        return hook

    dcn = model.main_branch.align_func_dict["Level_32"].dcn
    handles = [
        model.decoder.blocks[0].register_forward_hook(keep("texfeat_L32")),
        dcn.conv_offset.register_forward_hook(keep("dcn_L32_offset_raw")),
        dcn.register_forward_hook(keep("dcn_L32_out")),
    ]
    try:
        with torch.no_grad():
            res = model(torch.cat([x_a, x_c1]), fidelity_ratio=0.5)
    finally:
        for h in handles:
            h.remove()
    return {**res, **captured}


@pytest.fixture(scope="module")
def encoded_a(model, x_a) -> Encoded:
    with torch.no_grad():
        return model.encode(x_a)


# --------------------------------------------------------------------------------------------
# layout and weights
# --------------------------------------------------------------------------------------------


def test_state_dict_layout_is_official():
    with torch.device("meta"):
        net = VQFRv2()
    ours = [(k, list(v.shape)) for k, v in net.state_dict().items()]
    assert ours == _official_key_shapes()  # same keys, shapes and order: 503 tensors
    assert sum(v.numel() for v in net.state_dict().values()) == 83_486_539
    assert (net.input_size, net.num_tokens, net.codebook_size) == (512, 256, 1024)
    assert isinstance(net, CodeRestorer)


def test_formula_weights_match_checksums(official_sd):
    table = G.json("vqfr/vqfr_weights_checksums.json")["tensors"]
    assert len(table) == len(official_sd) == 503
    sha_mismatch = []
    for entry in table:
        t = official_sd[entry["key"]].numpy()
        assert list(t.shape) == entry["shape"]
        if hashlib.sha256(t.astype("<f4").tobytes()).hexdigest() != entry["sha256_f32le"]:
            sha_mismatch.append(entry["key"])
            # README: a different libm sin may flip a last bit; the sums must still agree.
            assert abs(float(t.astype(np.float64).sum()) - entry["sum_f64"]) <= 1e-6 * max(1.0, entry["abs_sum_f64"])
    assert len(sha_mismatch) <= 2, sha_mismatch


def test_config_inferred_from_official_shapes(official_sd):
    assert VQFRv2.config_from_state_dict(official_sd) == VQFRv2().config


# --------------------------------------------------------------------------------------------
# golden cases
# --------------------------------------------------------------------------------------------


def test_case_a_encoder_logits_codes(forward_ac, encoded_a):
    assert forward_ac["enc_feat"].shape == (2, 256, 16, 16)
    assert forward_ac["quant_logit"].shape == (2, 256, 1024)
    _check(forward_ac["enc_feat"][:1], "A_enc_feat_float32")  # max abs <= 1e-4
    _check(forward_ac["quant_logit"][:1], "A_logits_float32")  # max abs <= 1e-4
    # The CodeRestorer path, batch of one.
    assert encoded_a.logits.dtype == torch.float32 and encoded_a.logits.shape == (1, 256, 1024)
    _check(encoded_a.logits, "A_logits_float32")
    _check(encoded_a.codes, "A_codes_int32")  # exact
    _check(forward_ac["quant_logit"][:1].argmax(-1), "A_codes_int32")


def test_case_a_level32_intermediates(forward_ac):
    _check(forward_ac["texfeat_L32"][:1], "A_texfeat_L32_float32")  # max abs <= 1e-4
    _check(forward_ac["dcn_L32_offset_raw"][:1], "A_dcn_L32_offset_raw_float32")  # max abs <= 5e-5
    _check(forward_ac["dcn_L32_out"][:1], "A_dcn_L32_out_float32")  # max abs <= 5e-5


def test_case_a_output(model, encoded_a, forward_ac):
    with torch.no_grad():
        out = model.decode(encoded_a.codes, encoded_a.state, 0.0)
    assert out.shape == (1, 3, 512, 512) and out.dtype == torch.float32
    _check(out[CROP], "A_out_crop192_320_float32")  # max abs <= 2e-3, rms <= 3e-4
    _check(out, "A_out_float16")  # |ref - ours| <= 1e-3 + 1e-3*|ref|
    # Fidelity 0 gives the texture decoder's image (official forward, sample 0 of [A, C1]).
    _check(forward_ac["texture_dec"][:1][CROP], "A_out_crop192_320_float32")


def test_case_b_output(model, encoded_a):
    with torch.no_grad():
        out = model.decode(encoded_a.codes, encoded_a.state, 1.0)
    _check(out[CROP], "B_out_crop192_320_float32")
    _check(out, "B_out_float16")
    # The main branch has a real effect (README: B differs from A by up to 2.07).
    assert _maxabs(out, _load("A_out_float16.npy")) > 1.0


def test_case_c_batch_of_two(forward_ac):
    _check(forward_ac["quant_logit"].argmax(-1), "C_codes_int32")
    assert forward_ac["main_dec"].shape == (2, 3, 512, 512)
    _check(forward_ac["main_dec"][CROP], "C_out_crop192_320_float32")


# --------------------------------------------------------------------------------------------
# a small configuration: contract and loading details, bit for bit
# --------------------------------------------------------------------------------------------

SMALL = dict(
    base_channels=32,
    channel_multipliers=(1, 2, 2, 4),
    num_enc_blocks=1,
    use_enc_attention=True,
    num_dec_blocks=2,
    use_dec_attention=True,
    code_dim=64,
    inpfeat_dim=16,
    deformable_groups=4,
    num_code=128,
    input_size=64,
)


@pytest.fixture(scope="module")
def small_sd() -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        skeleton = VQFRv2(**SMALL)
    return vqfr_formula_state_dict(skeleton)


@pytest.fixture(scope="module")
def small(small_sd) -> VQFRv2:
    return VQFRv2.from_state_dict(small_sd, input_size=64)


@pytest.fixture(scope="module")
def small_x() -> torch.Tensor:
    # The golden faces, area-downsampled to 64x64 (still RGB in [-1, 1]).
    return F.avg_pool2d(torch.cat([_input("input_A_rgb_uint8.npy"), _input("input_C1_rgb_uint8.npy")]), 8)


def test_small_config_inferred(small, small_sd):
    assert small.config == SMALL
    assert (small.input_size, small.num_tokens, small.codebook_size) == (64, 64, 128)
    assert not small.training
    assert not any(p.requires_grad for p in small.parameters())


@pytest.mark.parametrize("fidelity", [0.0, 0.3, 1.0])
def test_forward_equals_encode_argmax_decode(small, small_x, fidelity):
    with torch.no_grad():
        res = small(small_x, fidelity_ratio=fidelity)
        enc = small.encode(small_x)
        out = small.decode(enc.logits.argmax(-1), enc.state, fidelity)
    assert torch.equal(enc.logits, res["quant_logit"])
    assert torch.equal(out, res["main_dec"])
    assert res["main_dec"].shape == small_x.shape and torch.isfinite(res["main_dec"]).all()
    if fidelity == 0.0:
        assert torch.equal(res["main_dec"], res["texture_dec"])
    else:
        assert (res["main_dec"] - res["texture_dec"]).abs().max() > 1e-2


def test_decode_of_selected_and_joined_batches(small, small_x):
    with torch.no_grad():
        enc = small.encode(small_x)
        joined = Encoded.cat([enc.select(1), enc.select(0)])
        out = small.decode(joined.codes, joined.state, 0.7)
        ref = small.decode(enc.codes, enc.state, 0.7)
    torch.testing.assert_close(out, ref.flip(0), rtol=0, atol=1e-4)


def test_codes_drive_the_texture_decoder(small, small_x):
    with torch.no_grad():
        enc = small.encode(small_x[:1])
        codes = enc.codes.clone()
        base = small.decode(codes, enc.state, 0.5)
        codes[0, 0] = (codes[0, 0] + 1) % small.codebook_size
        changed = small.decode(codes, enc.state, 0.5)
    diff = (changed - base).abs()[0].amax(0)  # token 0 covers the top-left 8x8 pixels
    assert diff[:8, :8].max() > 1e-3


def test_checkpoint_wrappers_load_strictly(small_sd):
    ref = VQFRv2.from_state_dict(small_sd, input_size=64)
    for wrapped in ({"params_ema": small_sd, "params": {}}, {"params": small_sd}):
        net = VQFRv2.from_state_dict(wrapped, input_size=64)
        assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), ref.state_dict().values()))
    fresh = VQFRv2(**SMALL)
    fresh.load_state_dict({"params_ema": small_sd})
    assert torch.equal(fresh.quantizer.embedding.weight, small_sd[CODEBOOK])


def test_bad_state_dicts_raise_model_file_error(small_sd):
    missing = {k: v for k, v in small_sd.items() if k != "main_branch.align_func_dict.Level_1.dcn.bias"}
    with pytest.raises(ModelFileError, match="1 missing keys"):
        VQFRv2.from_state_dict(missing, input_size=64)
    extra = {**small_sd, "quantizer.extra.weight": torch.zeros(1)}
    with pytest.raises(ModelFileError, match="unexpected keys"):
        VQFRv2.from_state_dict(extra, input_size=64)
    wrong = {**small_sd, "feat2index.1.bias": torch.zeros(7)}
    with pytest.raises(ModelFileError, match="shape mismatches"):
        VQFRv2.from_state_dict(wrong, input_size=64)
    with pytest.raises(ModelFileError, match="not a VQFR"):
        VQFRv2.from_state_dict({"conv.weight": torch.zeros(1, 1, 1, 1)})
    nearest = {k: v for k, v in small_sd.items() if not k.startswith("feat2index.")}
    with pytest.raises(ModelFileError, match="Predict"):
        VQFRv2.from_state_dict(nearest, input_size=64)


def test_bad_inputs_are_refused(small, small_x):
    with pytest.raises(ValueError, match="expects"):
        small.encode(small_x[:, :, :32])
    with pytest.raises(ValueError, match="fidelity"):
        small(small_x, fidelity_ratio=1.5)
    enc = small.encode(small_x)
    with pytest.raises(ValueError, match=r"\[0, 128\)"):
        small.decode(enc.codes + 1000, enc.state, 0.5)
    with pytest.raises(ValueError, match="codes must be"):
        small.decode(enc.codes[:, :10], enc.state, 0.5)


# --------------------------------------------------------------------------------------------
# the deformable convolution against plain convolution
# --------------------------------------------------------------------------------------------


def test_deformable_conv_reduces_to_conv_and_shifts():
    torch.manual_seed(0)
    dcn = ModulatedDeformConv(32, deformable_groups=4)
    x = torch.randn(1, 32, 12, 12)
    cond = torch.randn(1, 32, 12, 12)
    with torch.no_grad():
        off_w, off_b = dcn.conv_offset.weight, dcn.conv_offset.bias
        off_w.zero_()
        off_b.zero_()
        off_b[72:] = 40.0  # mask = sigmoid(40) = 1 in float32
        plain = F.conv2d(x, dcn.weight, dcn.bias, padding=1)
        torch.testing.assert_close(dcn(x, cond), plain, rtol=1e-5, atol=1e-5)
        # Offsets are (dy, dx) pairs per tap: dy = +1 everywhere samples one row lower, so
        # output row y is the plain conv centred on row y + 1 (zeros below the last row).
        off_b[0:72:2] = 1.0
        shifted = F.conv2d(F.pad(x, (1, 1, 1, 2)), dcn.weight, dcn.bias)[:, :, 1:]
        torch.testing.assert_close(dcn(x, cond), shifted, rtol=1e-5, atol=1e-5)
        # Mask logits of 0 halve every tap's contribution.
        off_b[0:72] = 0.0
        off_b[72:] = 0.0
        half = F.conv2d(x, dcn.weight * 0.5, dcn.bias, padding=1)
        torch.testing.assert_close(dcn(x, cond), half, rtol=1e-5, atol=1e-5)


def test_deformable_conv_float32_path_is_torchvision_as_it_was():
    """fp32 (the default) runs torchvision's deform_conv2d exactly as before the half-precision
    path existed: sigmoid of the mask logits, every operand as given, bit for bit."""
    from torchvision.ops import deform_conv2d

    torch.manual_seed(1)
    dcn = ModulatedDeformConv(32, deformable_groups=4)
    x, cond = torch.randn(2, 32, 10, 10), torch.randn(2, 32, 10, 10)
    with torch.no_grad():
        out = dcn.conv_offset(cond)
        want = deform_conv2d(x, out[:, :72], dcn.weight, dcn.bias, padding=1, mask=torch.sigmoid(out[:, 72:]))
        assert torch.equal(dcn(x, cond), want)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_deformable_conv_half_runs_in_float32(dtype):
    """In bf16 (torchvision has no bf16 kernel) and fp16 the deformable conv is float32 on the
    upcast operands, cast back: exactly that, bit for bit."""
    from torchvision.ops import deform_conv2d

    torch.manual_seed(2)
    dcn = ModulatedDeformConv(32, deformable_groups=4).to(dtype)
    x, cond = torch.randn(2, 32, 10, 10, dtype=dtype), torch.randn(2, 32, 10, 10, dtype=dtype)
    with torch.no_grad():
        got = dcn(x, cond)
        out = dcn.conv_offset(cond).float()
        want = deform_conv2d(x.float(), out[:, :72], dcn.weight.float(), dcn.bias.float(), padding=1,
                             mask=torch.sigmoid(out[:, 72:])).to(dtype)
    assert got.dtype == dtype and torch.equal(got, want)


# --------------------------------------------------------------------------------------------
# half precision (the small configuration of videofix.models.synthetic, 128x128, 256 tokens)
# --------------------------------------------------------------------------------------------
# Rule, measured on the CPU (two astronaut crops, 512 tokens, formula weights): codes agree with
# fp32 where the fp32 logit gap (top-1 minus top-2) is at least GAP_SURE, and on at least
# MIN_AGREEMENT of all tokens (measured: bf16 0.979, every disagreeing token's gap <= 0.054;
# autocast bf16 over fp32 weights 0.967, its largest disagreeing gap 0.054; fp16, not tested
# here for time, 0.998). Decoding fp32's codes in half precision stays within MEAN_LEVELS /
# MAX_LEVELS uint8 levels of fp32 (measured at fidelity 1: bf16 mean 0.96, max 10; autocast
# mean 0.89, max 10).
GAP_SURE = 0.1
MIN_AGREEMENT = 0.95
MEAN_LEVELS, MAX_LEVELS = 2.0, 24


@pytest.fixture(scope="module")
def half_case():
    from videofix.models.synthetic import formula_vqfr, small_vqfr_config
    from videofix.restore.crops import crops_to_tensor
    from videofix.samples import astronaut_face

    net = formula_vqfr(small_vqfr_config())
    face = astronaut_face(net.input_size)
    x = crops_to_tensor([face, np.ascontiguousarray(face[:, ::-1])])
    with torch.no_grad():
        enc = net.encode(x)
        ref = net.decode(enc.logits.argmax(-1), enc.state, 1.0)
    return net, x, enc.logits, ref


def _levels(out: torch.Tensor) -> torch.Tensor:
    return ((out.float().clamp(-1, 1) + 1) * 127.5).round()


@pytest.mark.parametrize("mode", ["bf16", "autocast-bf16"])  # fp16 is CUDA-only in videofix (a minute here)
def test_vqfr_half_precision_runs_and_codes_agree(half_case, mode):
    import copy

    net, x, logits, ref = half_case
    codes = logits.argmax(-1)
    if mode == "autocast-bf16":
        run, xin = net, x
        ctx = torch.autocast("cpu", dtype=torch.bfloat16)
    else:
        run, xin = copy.deepcopy(net).to(torch.bfloat16), x.to(torch.bfloat16)
        ctx = torch.autocast("cpu", enabled=False)
    with torch.no_grad(), ctx:
        enc = run.encode(xin)  # logits come back float32
        half_codes = enc.logits.argmax(-1)
        out = run.decode(codes, enc.state, 1.0)  # fp32's codes: the decoder's own error
    top2 = logits.topk(2, dim=-1).values
    gap = top2[..., 0] - top2[..., 1]
    same = half_codes == codes
    assert same.float().mean() >= MIN_AGREEMENT, float(same.float().mean())
    assert bool(same[gap >= GAP_SURE].all()), float(gap[~same].max())
    assert torch.isfinite(out.float()).all()
    diff = (_levels(out) - _levels(ref)).abs()
    assert diff.mean() <= MEAN_LEVELS and diff.max() <= MAX_LEVELS, (float(diff.mean()), float(diff.max()))
