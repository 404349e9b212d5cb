"""The restorer contract (Encoded, CodeRestorer), shape inference for other configurations,
and device / precision validation. Small networks only: fast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from videofix.errors import DeviceError, UsageError
from videofix.models import CodeRestorer, Encoded, resolve_device, resolve_dtype
from videofix.models.codeformer import CodeFormer, infer_config
from videofix.models.synthetic import formula_codeformer, formula_state_dict, small_codeformer_config
from videofix.restore.crops import crops_to_tensor


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_encoded(batch: int) -> Encoded:
    logits = torch.arange(batch * 4 * 5, dtype=torch.float32).view(batch, 4, 5)
    return Encoded(logits, {"lq_feat": torch.arange(batch * 6.0).view(batch, 2, 3), "enc_8": torch.ones(batch, 1)})


def test_encoded_select_and_cat_round_trip():
    enc = make_encoded(4)
    assert len(enc) == 4 and enc.codes.shape == (4, 4) and enc.codes.dtype == torch.int64
    one = enc.select(2)
    assert len(one) == 1 and torch.equal(one.logits, enc.logits[2:3]) and torch.equal(one.state["lq_feat"], enc.state["lq_feat"][2:3])
    assert torch.equal(enc.select(-1).logits, enc.logits[3:4])
    picked = enc.select([3, 0])
    assert torch.equal(picked.state["lq_feat"], enc.state["lq_feat"][[3, 0]])
    assert torch.equal(enc.select(torch.tensor([True, False, True, False])).logits, enc.logits[[0, 2]])
    joined = Encoded.cat([enc.select(slice(0, 1)), enc.select(slice(1, 4))])
    assert torch.equal(joined.logits, enc.logits)
    assert all(torch.equal(joined.state[k], enc.state[k]) for k in enc.state)


def test_encoded_rejects_inconsistent_batches():
    with pytest.raises(ValueError, match="batch"):
        Encoded(torch.zeros(2, 4, 5), {"lq_feat": torch.zeros(3, 1)})
    with pytest.raises(ValueError, match="state keys differ"):
        Encoded.cat([make_encoded(1), Encoded(torch.zeros(1, 4, 5), {})])


def test_codeformer_is_a_code_restorer_and_encoded_slices_decode():
    model = formula_codeformer(small_codeformer_config())
    assert isinstance(model, CodeRestorer)
    x = crops_to_tensor(np.random.default_rng(2).integers(0, 256, (3, 128, 128, 3), dtype=np.uint8))
    with torch.inference_mode():
        enc = model.encode(x)
        assert enc.logits.shape == (3, model.num_tokens, model.codebook_size)
        assert all(v.shape[0] == 3 for v in enc.state.values())
        # decoding a selected sample equals decoding it on its own (each sample is independent)
        part = enc.select(1)
        out = model.decode(part.codes, part.state, 0.5)
        assert out.shape == (1, 3, 128, 128)
        alone = model.decode(model.encode(x[1:2]).codes, model.encode(x[1:2]).state, 0.5)
        assert (out - alone).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match=r"\(B, 3, 128, 128\)"):
        model.encode(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize(
    "config",
    [
        small_codeformer_config(),
        # five levels, attention at 32 and 16, fusion everywhere but the latent level
        dict(img_size=256, nf=32, ch_mult=(1, 1, 2, 2, 4), res_blocks=1, attn_resolutions=(32, 16), emb_dim=32,
             codebook_size=64, dim_embd=64, n_head=8, n_layers=1, connect_list=("32", "64", "128", "256")),
        # two levels, a width 8 does not divide (heads inferred as 6), three residual blocks
        dict(img_size=64, nf=32, ch_mult=(1, 2), res_blocks=3, attn_resolutions=(32,), emb_dim=16,
             codebook_size=40, dim_embd=36, n_head=6, n_layers=2, connect_list=("32", "64")),
    ],
)  # fmt: skip
def test_every_hyperparameter_is_inferred_from_shapes(config):
    with torch.device("meta"):
        skeleton = CodeFormer(**config)
    sd = formula_state_dict(skeleton)
    inferred = infer_config(sd)
    assert inferred == skeleton.config
    model = CodeFormer.from_state_dict(sd)
    assert model.config == skeleton.config and not model.training
    assert all(not p.requires_grad and p.device.type == "cpu" for p in model.parameters())
    side = config["img_size"] // 2 ** (len(config["ch_mult"]) - 1)
    assert (model.input_size, model.num_tokens, model.codebook_size) == (config["img_size"], side * side, config["codebook_size"])
    with torch.inference_mode():
        x = torch.rand(1, 3, config["img_size"], config["img_size"]) * 2 - 1
        out, logits, lq_feat = model(x, w=0.5, adain=True)
    assert out.shape == x.shape and logits.shape == (1, side * side, config["codebook_size"])
    assert lq_feat.shape == (1, config["emb_dim"], side, side) and torch.isfinite(out).all()


def test_fusion_taps_generalise_the_official_rule():
    # two levels (64, 32), attention at the latent level 32, two residual blocks per level
    with torch.device("meta"):
        model = CodeFormer(img_size=64, nf=32, ch_mult=(1, 2), attn_resolutions=(32,), emb_dim=16, codebook_size=8,
                           dim_embd=32, n_layers=1, connect_list=("32", "64"))  # fmt: skip
    # encoder: 0 conv | 1 res 2 res 3 down | 4 res 5 attn 6 res 7 attn | tail: last res block of each level
    assert model._enc_taps == {2: "64", 6: "32"}
    # generator: 0 conv 1 res 2 attn 3 res | 4 res 5 attn 6 res 7 attn 8 up | 9 res 10 res:
    # the last res block at attention levels, else the first
    assert model._gen_taps == {6: "32", 9: "64"}


def test_resolve_device_and_dtype():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    assert resolve_dtype("fp32", "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    with pytest.raises(DeviceError, match="fp16 needs a CUDA GPU"):
        resolve_dtype("fp16", "cpu")
    with pytest.raises(UsageError, match="expected fp32, fp16 or bf16"):
        resolve_dtype("int8", "cpu")
    with pytest.raises(UsageError, match="expected auto, cpu"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        for spec in ("cuda", "cuda:0"):
            with pytest.raises(DeviceError, match="CUDA is not available"):
                resolve_device(spec)


def test_crop_conversions_are_the_official_arithmetic():
    """Crops in: uint8 / 255 -> float32 -> (x - 0.5) / 0.5 (written out in numpy here); out: clamp
    to [-1, 1], (t + 1) / 2, * 255, round half to even, uint8; the network output is not changed."""
    from videofix.restore.crops import tensor_to_crops

    rng = np.random.default_rng(5)
    crops = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    x = crops_to_tensor(crops)
    ref = (crops.astype(np.float32) / np.float32(255.0) - np.float32(0.5)) / np.float32(0.5)
    assert x.dtype == torch.float32 and x.shape == (3, 3, 16, 16)
    assert np.array_equal(x.permute(0, 2, 3, 1).numpy(), ref)
    assert crops_to_tensor(crops, dtype=torch.float16).dtype == torch.float16

    out = torch.from_numpy(rng.uniform(-1.3, 1.3, (3, 3, 16, 16)).astype(np.float32))
    out[0, 0, 0, :4] = torch.tensor([-1.0, 1.0, 2 * 0.5 / 255 - 1, 2 * 1.5 / 255 - 1])  # halves: to even
    before = out.clone()
    got = tensor_to_crops(out)
    t = np.clip(out.numpy(), np.float32(-1), np.float32(1))
    want = np.round((t + np.float32(1)) / np.float32(2) * np.float32(255)).astype(np.uint8).transpose(0, 2, 3, 1)
    assert np.array_equal(got, want)
    assert torch.equal(out, before)  # the caller's tensor is untouched
    assert np.array_equal(tensor_to_crops(crops_to_tensor(crops)), crops)  # in and out give the crop back
