"""VQFR v2 (Gu et al., "VQFR: Blind Face Restoration with Vector-Quantized Dictionary and
Parallel Decoder", ECCV 2022), written for videofix.

The network, in the order data flows through it:

1. ``encoder``: a VQGAN encoder maps the low-quality face (B,3,512,512) to ``enc_feat``
   (B,256,16,16).
2. ``feat2index``: LayerNorm + Linear classify every latent token (token = y*16 + x) over the
   1024-entry codebook ("Predict" code selection); the argmax picks a code per token.
3. ``quantizer``: the codebook rows of the chosen codes, back on the 16x16 grid.
4. ``decoder`` (the texture decoder): a VQGAN decoder that sees only the codebook features.
   Its per-level features ``Level_32 .. Level_1`` feed the main branch; its output head
   ``conv_out`` gives ``texture_dec``.
5. ``main_branch`` (the main decoder): at every level a texture-warping module predicts
   offsets from the input's shallow feature (``inpfeat_extraction``) and the texture
   feature, warps the texture feature with a modulated deformable convolution
   (``torchvision.ops.deform_conv2d``), and a residual block merges it into the running
   main feature. ``main_dec = decoder.conv_out(Level_1 + fidelity * main_feature)``.

The module tree and the state-dict keys are those of the official ``VQFRv2``
(TencentARC/VQFR, ``vqfr/archs/vqfrv2_arch.py``) so the released ``VQFR_v2.pth`` loads with
``strict=True``. Only "Predict" code selection (the released model) is implemented.

Every image tensor here is RGB, NCHW, float in [-1, 1] on input; outputs are unclamped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

from videofix.errors import ModelFileError
from videofix.models.base import Encoded
from videofix.models.layers import AttnBlock, group_norm

__all__ = ["VQFRv2", "ModulatedDeformConv", "TextureWarpingModule"]


# ---------------------------------------------------------------------------------------------
# small blocks (VQGAN style: GroupNorm(32, eps=1e-6) + SiLU)
# ---------------------------------------------------------------------------------------------


class ResnetBlock(nn.Module):
    """GN-SiLU-conv3x3 twice plus a skip (1x1 conv ``residual_func`` when channels change)."""

    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.norm1 = group_norm(channels_in)
        self.conv1 = nn.Conv2d(channels_in, channels_out, kernel_size=3, padding=1)
        self.norm2 = group_norm(channels_out)
        self.conv2 = nn.Conv2d(channels_out, channels_out, kernel_size=3, padding=1)
        self.act = nn.SiLU()
        self.residual_func = (
            nn.Conv2d(channels_in, channels_out, kernel_size=1) if channels_in != channels_out else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return h + self.residual_func(x)


class Downsample(nn.Module):
    """Pad one zero right and bottom, then a 3x3 stride-2 conv without padding: H -> H/2."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest x2, then a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _head(channels: int, out_channels: int) -> nn.Sequential:
    # Indices 0/1/2 are part of the checkpoint layout (conv_out.0 = GN, conv_out.2 = conv).
    return nn.Sequential(group_norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))


def _mid_blocks(channels: int, attention: bool) -> nn.Sequential:
    middle = AttnBlock(channels) if attention else ResnetBlock(channels, channels)
    return nn.Sequential(ResnetBlock(channels, channels), middle, ResnetBlock(channels, channels))


def _level_blocks(channels_prev: int, channels: int, num_blocks: int, attention: bool) -> list[nn.Module]:
    blocks: list[nn.Module] = []
    for j in range(num_blocks):
        blocks.append(ResnetBlock(channels_prev if j == 0 else channels, channels))
        if attention:
            blocks.append(AttnBlock(channels))
    return blocks


class VQGANEncoder(nn.Module):
    """(B,3,S,S) -> (B, code_dim, S/2^(L-1), S/2^(L-1)); attention only at the coarsest level."""

    def __init__(
        self, base_channels: int, channel_multipliers: Sequence[int], num_blocks: int, attention: bool, code_dim: int
    ) -> None:
        super().__init__()
        chans = [base_channels * m for m in channel_multipliers]
        levels = len(chans)
        self.conv_in = nn.Conv2d(3, chans[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        for i in range(levels):
            prev = chans[max(i - 1, 0)]
            blocks: list[nn.Module] = [Downsample(prev)] if i > 0 else []
            blocks += _level_blocks(prev, chans[i], num_blocks, attention and i == levels - 1)
            self.blocks.append(nn.Sequential(*blocks))
        self.mid_blocks = _mid_blocks(chans[-1], attention)
        self.conv_out = _head(chans[-1], code_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_in(x)
        for block in self.blocks:
            x = block(x)
        return self.conv_out(self.mid_blocks(x))


class VQGANDecoder(nn.Module):
    """The texture decoder: codebook features (B, code_dim, h, w) -> per-level features.

    ``forward`` returns ``{"Level_<r>": (B, C_r, h*32/r, w*32/r)}`` for r = 2^(L-1) .. 1
    (coarse to fine); ``conv_out`` (GN, SiLU, conv to 3 channels) turns ``Level_1`` into
    the RGB image. The main branch reuses ``conv_out`` for ``main_dec``.
    """

    def __init__(
        self, base_channels: int, channel_multipliers: Sequence[int], num_blocks: int, attention: bool, code_dim: int
    ) -> None:
        super().__init__()
        chans = [base_channels * m for m in channel_multipliers]
        levels = len(chans)
        self.conv_in = nn.Conv2d(code_dim, chans[-1], kernel_size=3, padding=1)
        # Registered before mid_blocks: the official state-dict order has blocks first.
        self.blocks = nn.ModuleList()
        self.mid_blocks = _mid_blocks(chans[-1], attention)
        for i in reversed(range(levels)):
            prev = chans[min(i + 1, levels - 1)]
            blocks: list[nn.Module] = [Upsample(prev)] if i < levels - 1 else []
            blocks += _level_blocks(prev, chans[i], num_blocks, attention and i == levels - 1)
            self.blocks.append(nn.Sequential(*blocks))
        self.conv_out = _head(chans[0], 3)

    def forward(self, quant_feat: Tensor) -> dict[str, Tensor]:
        x = self.mid_blocks(self.conv_in(quant_feat))
        feats: dict[str, Tensor] = {}
        levels = len(self.blocks)
        for i, block in enumerate(self.blocks):
            x = block(x)
            feats[f"Level_{2 ** (levels - 1 - i)}"] = x
        return feats


# ---------------------------------------------------------------------------------------------
# texture warping (modulated deformable convolution)
# ---------------------------------------------------------------------------------------------


class ModulatedDeformConv(nn.Module):
    """3x3 modulated deformable conv (DCNv2) whose offsets and masks come from a second feature.

    ``conv_offset`` (3x3, pad 1) maps the conditioning feature to ``3 * G * 9`` channels:
    the first ``2 * G * 9`` are offsets in torchvision's layout (group-major, then tap
    k = 3*i + j, then (dy, dx)), the last ``G * 9`` are mask logits (sigmoid). The
    deformable conv itself is ``torchvision.ops.deform_conv2d`` (stride 1, pad 1, weight
    groups 1, with bias); zero padding outside the feature.
    """

    def __init__(self, channels: int, deformable_groups: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.deformable_groups = deformable_groups
        self.padding = kernel_size // 2
        taps = kernel_size * kernel_size
        self.weight = nn.Parameter(torch.empty(channels, channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(channels))
        self.conv_offset = nn.Conv2d(channels, 3 * deformable_groups * taps, kernel_size, padding=self.padding)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, cond: Tensor) -> Tensor:
        """x: (B,C,H,W) feature to warp; cond: (B,C,H,W) offset feature -> (B,C,H,W) in x's dtype.

        In float32 (and float64) the deformable conv runs as it is. In a half-precision run
        (bf16 / fp16 parameters, or under ``torch.autocast``) it runs in float32:
        torchvision's ``deform_conv2d`` has no bfloat16 kernel (CPU or CUDA), and float16
        takes the same path, so both half precisions sample, weight by the mask (sigmoid)
        and accumulate in float32. The offsets and mask logits keep the rounding of the
        half-precision ``conv_offset``; the result is cast back to x's dtype.
        """
        out = self.conv_offset(cond)
        n_offset = 2 * out.shape[1] // 3
        offset = out[:, :n_offset]
        full = (torch.float32, torch.float64)
        if (x.dtype in full and out.dtype == x.dtype and self.weight.dtype == x.dtype
                and not torch.is_autocast_enabled(x.device.type)):
            mask = torch.sigmoid(out[:, n_offset:])
            return deform_conv2d(x, offset, self.weight, self.bias, padding=self.padding, mask=mask)
        return _deform_conv2d_float32(x, offset, out[:, n_offset:], self.weight, self.bias, self.padding)


def _deform_conv2d_float32(x: Tensor, offset: Tensor, mask_logits: Tensor, weight: Tensor, bias: Tensor | None,
                           padding: int) -> Tensor:
    """``deform_conv2d`` with every operand in float32 and autocast off; the result in x's dtype."""
    with torch.autocast(x.device.type, enabled=False):
        mask = torch.sigmoid(mask_logits.float())
        out = deform_conv2d(x.float(), offset.float(), weight.float(), None if bias is None else bias.float(),
                            padding=padding, mask=mask)
    return out.to(x.dtype)


class TextureWarpingModule(nn.Module):
    """Warp one level's texture feature towards the low-quality input.

    Offset feature = GN-SiLU-3x3 conv over [offset_conv1([input feature resized to the level,
    texture feature]), previous level's offset feature (already upsampled x2 and doubled)].
    Returns ``(warped texture feature, offset feature)``, both (B, C, h, w).
    """

    def __init__(self, channels: int, cond_channels: int, deformable_groups: int, previous_offset_channels: int = 0):
        super().__init__()
        self.offset_conv1 = nn.Sequential(
            nn.Conv2d(channels + cond_channels, channels, kernel_size=1),
            group_norm(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, kernel_size=7, padding=3, groups=channels),
            group_norm(channels),
            nn.SiLU(),
            nn.Conv2d(channels, channels, kernel_size=1),
        )
        self.offset_conv2 = nn.Sequential(
            nn.Conv2d(channels + previous_offset_channels, channels, kernel_size=3, padding=1),
            group_norm(channels),
            nn.SiLU(),
        )
        self.dcn = ModulatedDeformConv(channels, deformable_groups)

    def forward(self, texture: Tensor, inpfeat: Tensor, previous_offset: Tensor | None = None) -> tuple[Tensor, Tensor]:
        size = texture.shape[-2:]
        if inpfeat.shape[-2:] != size:
            inpfeat = F.interpolate(inpfeat, size=size, mode="bilinear", align_corners=False)
        offset = self.offset_conv1(torch.cat([inpfeat, texture], dim=1))
        if previous_offset is not None:
            offset = torch.cat([offset, previous_offset], dim=1)
        offset = self.offset_conv2(offset)
        return self.dcn(texture, offset), offset


class MainDecoder(nn.Module):
    """The main branch: texture features + input feature -> the fidelity feature (B, C_0, S, S)."""

    def __init__(
        self, base_channels: int, channel_multipliers: Sequence[int], cond_channels: int, deformable_groups: int
    ) -> None:
        super().__init__()
        chans = [base_channels * m for m in channel_multipliers]
        levels = len(chans)
        self.num_levels = levels
        self.decoder_dict = nn.ModuleDict()
        self.pre_upsample_dict = nn.ModuleDict()
        self.align_func_dict = nn.ModuleDict()
        for i in reversed(range(levels)):
            name = f"Level_{2 ** i}"
            channels = chans[i]
            prev = chans[min(i + 1, levels - 1)]
            top = i == levels - 1
            if not top:
                self.pre_upsample_dict[name] = nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(prev, channels, kernel_size=3, padding=1)
                )
            self.align_func_dict[name] = TextureWarpingModule(
                channels, cond_channels, deformable_groups, previous_offset_channels=0 if top else prev
            )
            if not top:
                self.decoder_dict[name] = ResnetBlock(2 * channels, channels)

    def forward(self, texture_feats: Mapping[str, Tensor], inpfeat: Tensor) -> Tensor:
        """texture_feats: ``VQGANDecoder`` output; inpfeat: (B, cond, S, S) -> (B, C_0, S, S).

        The official module returns ``Level_1 + fidelity * x``; this returns ``x`` so the
        caller can apply several fidelities to one main-branch run.
        """
        top = f"Level_{2 ** (self.num_levels - 1)}"
        x, offset = self.align_func_dict[top](texture_feats[top], inpfeat)
        for i in reversed(range(self.num_levels - 1)):
            name = f"Level_{2 ** i}"
            x = self.pre_upsample_dict[name](x)
            # Offsets are in pixels of their level, so they double when the grid does.
            previous = F.interpolate(offset, scale_factor=2, mode="bilinear", align_corners=False) * 2
            warped, offset = self.align_func_dict[name](texture_feats[name], inpfeat, previous)
            x = self.decoder_dict[name](torch.cat([x, warped], dim=1))
        return x


class CodebookLookup(nn.Module):
    """The codebook (``embedding.weight``, (N, code_dim)); codes (B, h*w) -> (B, code_dim, h, w)."""

    def __init__(self, num_code: int, code_dim: int, grid: int) -> None:
        super().__init__()
        self.grid = grid
        self.embedding = nn.Embedding(num_code, code_dim)

    def get_feature(self, codes: Tensor) -> Tensor:
        feat = self.embedding(codes)  # (B, T, C), token = y * grid + x
        return feat.transpose(1, 2).reshape(feat.shape[0], feat.shape[2], self.grid, self.grid)


# ---------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------


def _unwrap_checkpoint(sd: Mapping[str, object]) -> Mapping[str, Tensor]:
    for key in ("params_ema", "params"):
        if key in sd and isinstance(sd[key], Mapping):
            return sd[key]  # type: ignore[return-value]
    return sd  # type: ignore[return-value]


LATENT_GRID = 16  # tokens per side of the released model (512 / 2**5)


class VQFRv2(nn.Module):
    """VQFR v2 face restorer; implements ``videofix.models.base.CodeRestorer``.

    ``VQFRv2()`` is the configuration of the released ``VQFR_v2.pth`` (503 tensors,
    83.5 M parameters): base_channels 64, channel_multipliers (1,2,2,4,4,8), 2 encoder and
    2 decoder blocks per level, attention on, code_dim 256, inpfeat_dim 32, 4 deformable
    groups, 1024 codes on a 16x16 token grid for 512x512 faces. Constructor weights are
    random; load real ones with ``from_state_dict`` or ``load_state_dict(..., strict=True)``.

    Attributes:
        input_size: S, side of the square RGB input (512).
        num_tokens: T = (S / 2^(L-1))^2 latent tokens (256), token = y * 16 + x.
        codebook_size: N codebook entries (1024).
        config: the constructor keyword arguments.
    """

    def __init__(
        self,
        base_channels: int = 64,
        channel_multipliers: Sequence[int] = (1, 2, 2, 4, 4, 8),
        num_enc_blocks: int = 2,
        use_enc_attention: bool = True,
        num_dec_blocks: int = 2,
        use_dec_attention: bool = True,
        code_dim: int = 256,
        inpfeat_dim: int = 32,
        deformable_groups: int = 4,
        num_code: int = 1024,
        input_size: int = 512,
    ) -> None:
        super().__init__()
        channel_multipliers = tuple(int(m) for m in channel_multipliers)
        levels = len(channel_multipliers)
        scale = 2 ** (levels - 1)
        if levels < 1 or input_size % scale:
            raise ValueError(f"VQFRv2: input_size {input_size} is not divisible by 2^(levels-1) = {scale}")
        self.config = dict(
            base_channels=base_channels,
            channel_multipliers=channel_multipliers,
            num_enc_blocks=num_enc_blocks,
            use_enc_attention=use_enc_attention,
            num_dec_blocks=num_dec_blocks,
            use_dec_attention=use_dec_attention,
            code_dim=code_dim,
            inpfeat_dim=inpfeat_dim,
            deformable_groups=deformable_groups,
            num_code=num_code,
            input_size=input_size,
        )
        self.input_size = int(input_size)
        self.token_grid = self.input_size // scale
        self.num_tokens = self.token_grid**2
        self.codebook_size = int(num_code)

        # Registration order = official state-dict order.
        self.encoder = VQGANEncoder(base_channels, channel_multipliers, num_enc_blocks, use_enc_attention, code_dim)
        self.feat2index = nn.Sequential(nn.LayerNorm(code_dim), nn.Linear(code_dim, num_code))
        self.decoder = VQGANDecoder(base_channels, channel_multipliers, num_dec_blocks, use_dec_attention, code_dim)
        self.main_branch = MainDecoder(base_channels, channel_multipliers, inpfeat_dim, deformable_groups)
        self.inpfeat_extraction = nn.Conv2d(3, inpfeat_dim, kernel_size=3, padding=1)
        self.quantizer = CodebookLookup(num_code, code_dim, self.token_grid)

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def config_from_state_dict(cls, sd: Mapping[str, Tensor], input_size: int | None = None) -> dict:
        """Constructor kwargs implied by the tensor shapes of a VQFRv2 state dict.

        Raises ``ModelFileError`` when ``sd`` does not look like a VQFR v2 state dict.
        """
        sd = _unwrap_checkpoint(sd)
        try:
            n_levels = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.blocks."))
            chans = []
            for i in range(n_levels):
                convs = sorted(
                    (int(k.split(".")[3]), sd[k].shape[0])
                    for k in sd
                    if k.startswith(f"encoder.blocks.{i}.") and k.endswith(".conv2.weight")
                )
                chans.append(int(convs[-1][1]))
            base = math.gcd(*chans)
            num_enc_blocks = sum(
                1 for k in sd if k.startswith("encoder.blocks.0.") and k.endswith(".conv1.weight")
            )
            num_dec_blocks = sum(
                1 for k in sd if k.startswith("decoder.blocks.0.") and k.endswith(".conv1.weight")
            )
            codebook = sd["quantizer.embedding.weight"]
            offset_out = sd[f"main_branch.align_func_dict.Level_{2 ** (n_levels - 1)}.dcn.conv_offset.weight"]
            return dict(
                base_channels=base,
                channel_multipliers=tuple(c // base for c in chans),
                num_enc_blocks=num_enc_blocks,
                use_enc_attention="encoder.mid_blocks.1.q.weight" in sd,
                num_dec_blocks=num_dec_blocks,
                use_dec_attention="decoder.mid_blocks.1.q.weight" in sd,
                code_dim=int(sd["encoder.conv_out.2.weight"].shape[0]),
                inpfeat_dim=int(sd["inpfeat_extraction.weight"].shape[0]),
                deformable_groups=int(offset_out.shape[0]) // (3 * offset_out.shape[2] * offset_out.shape[3]),
                num_code=int(codebook.shape[0]),
                # the input size is not in the weights: the released model codes a 16x16 grid
                input_size=input_size or LATENT_GRID * 2 ** (n_levels - 1),
            )
        except (KeyError, ValueError, IndexError) as exc:
            raise ModelFileError(f"not a VQFR v2 state dict (cannot infer the architecture: {exc!r})") from exc

    @classmethod
    def from_state_dict(cls, sd: Mapping[str, object], input_size: int | None = None) -> VQFRv2:
        """Build a model whose hyperparameters are inferred from ``sd`` and load it strictly.

        ``sd`` is a state dict or a training checkpoint holding one under ``params_ema``
        (preferred, as the official demo does) or ``params``. The model is built on the
        meta device and takes the given tensors (``assign=True``, no copy), so it lives on
        their device and dtype; returned in eval mode with gradients off. Raises
        ``ModelFileError`` (missing / unexpected keys, wrong shapes, not VQFR v2).
        ``input_size`` is not stored in the weights: by default the latent grid is 16x16 as in
        the released model, i.e. 16 * 2**(levels - 1) (512 for the official file).
        """
        from videofix.modelfiles import check_state_dict

        sd = _unwrap_checkpoint(sd)
        if "feat2index.1.weight" not in sd and "quantizer.embedding.weight" in sd and "encoder.conv_in.weight" in sd:
            raise ModelFileError("VQFR checkpoint uses 'Nearest' code selection; only 'Predict' (v2) is supported")
        try:
            config = cls.config_from_state_dict(sd, input_size)
        except ModelFileError:
            # A damaged official file is best explained by what differs from the official layout.
            with torch.device("meta"):
                official = cls(input_size=input_size or 512)
            check_state_dict(sd, official.state_dict(), what="VQFR v2")
            raise
        with torch.device("meta"):
            model = cls(**config)
        check_state_dict(sd, model.state_dict(), what="VQFR v2")
        model.load_state_dict(dict(sd), strict=True, assign=True)
        return model.eval().requires_grad_(False)

    def load_state_dict(self, state_dict: Mapping[str, object], strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` that also accepts ``{"params_ema": sd}`` / ``{"params": sd}``."""
        return super().load_state_dict(_unwrap_checkpoint(state_dict), strict=strict, assign=assign)

    # -- steps -----------------------------------------------------------------------------

    def _check_input(self, x: Tensor) -> None:
        s = self.input_size
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(f"VQFRv2 expects (B, 3, {s}, {s}) RGB in [-1, 1], got {tuple(x.shape)}")

    def code_logits(self, enc_feat: Tensor) -> Tensor:
        """enc_feat (B, code_dim, 16, 16) -> quant_logit (B, 256, N), token = y*16 + x."""
        return self.feat2index(enc_feat.flatten(2).transpose(1, 2))

    def texture_features(self, codes: Tensor) -> dict[str, Tensor]:
        """codes (B, T) int64 -> texture-decoder features ``{"Level_32": (B,512,16,16), ...,
        "Level_1": (B,64,512,512)}`` (official channel counts); ``decoder.conv_out`` of
        ``Level_1`` is ``texture_dec``."""
        return self.decoder(self.quantizer.get_feature(codes))

    def main_features(self, texture_feats: Mapping[str, Tensor], x_lq: Tensor) -> Tensor:
        """Main-branch feature (B, 64, S, S) from the texture features and the RGB input x_lq
        (B,3,S,S in [-1,1]); independent of the fidelity."""
        return self.main_branch(texture_feats, self.inpfeat_extraction(x_lq))

    def _check_fidelity(self, fidelity: float) -> float:
        fidelity = float(fidelity)
        if not 0.0 <= fidelity <= 1.0:
            raise ValueError(f"VQFRv2: fidelity must be in [0, 1], got {fidelity}")
        return fidelity

    def _decode(self, codes: Tensor, x_lq: Tensor, fidelity: float) -> tuple[Tensor, Tensor]:
        feats = self.texture_features(codes)
        finest = feats["Level_1"]
        texture_dec = self.decoder.conv_out(finest)
        if fidelity == 0.0:
            # Official: conv_out(Level_1 + 0 * x) is bit-identical to texture_dec (x is
            # finite), so the main branch, about half of the decode cost, is skipped.
            return texture_dec, texture_dec
        main = self.main_features(feats, x_lq)
        return texture_dec, self.decoder.conv_out(finest + fidelity * main)

    def forward(self, x_lq: Tensor, fidelity_ratio: float = 1.0) -> dict[str, Tensor]:
        """Official forward.

        Args:
            x_lq: (B, 3, S, S) RGB float in [-1, 1] (S = ``input_size``).
            fidelity_ratio: 0 (best quality, texture decoder only) .. 1 (most faithful).

        Returns:
            ``enc_feat`` (B, 256, 16, 16), ``quant_logit`` (B, 256, 1024), ``texture_dec``
            and ``main_dec`` (B, 3, S, S) RGB, unclamped (the restored face is ``main_dec``).
        """
        self._check_input(x_lq)
        fidelity = self._check_fidelity(fidelity_ratio)
        enc_feat = self.encoder(x_lq)
        quant_logit = self.code_logits(enc_feat)
        texture_dec, main_dec = self._decode(quant_logit.argmax(-1), x_lq, fidelity)
        return {"enc_feat": enc_feat, "quant_logit": quant_logit, "texture_dec": texture_dec, "main_dec": main_dec}

    # -- CodeRestorer ------------------------------------------------------------------------

    def encode(self, x: Tensor) -> Encoded:
        """x: (B, 3, S, S) RGB float in [-1, 1] -> ``Encoded``.

        ``logits``: (B, 256, 1024) float32 (the classifier's ``quant_logit``).
        ``state``: ``{"x_lq": x}`` (B, 3, S, S), the input itself: the main branch needs its
        32-channel shallow feature at full resolution, which is 10x larger than the input
        and cheap to recompute, so decode recomputes it.
        """
        self._check_input(x)
        logits = self.code_logits(self.encoder(x))
        return Encoded(logits=logits.float(), state={"x_lq": x})

    def decode(self, codes: Tensor, state: Mapping[str, Tensor], fidelity: float) -> Tensor:
        """codes: (B, 256) int64 in [0, 1024); state from ``encode``; fidelity in [0, 1].

        Returns ``main_dec`` (B, 3, S, S) RGB, unclamped, in the model's dtype.
        ``decode(encode(x).codes, encode(x).state, f)`` equals ``forward(x, f)["main_dec"]``.
        """
        fidelity = self._check_fidelity(fidelity)
        x_lq = state["x_lq"]
        if codes.dim() != 2 or codes.shape[1] != self.num_tokens or codes.shape[0] != x_lq.shape[0]:
            raise ValueError(
                f"VQFRv2.decode: codes must be ({x_lq.shape[0]}, {self.num_tokens}), got {tuple(codes.shape)}"
            )
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"VQFRv2.decode: codes must lie in [0, {self.codebook_size})")
        return self._decode(codes.long(), x_lq, fidelity)[1]
