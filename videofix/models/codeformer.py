"""CodeFormer (Zhou et al., NeurIPS 2022), written for videofix.

The module tree and parameter names reproduce the official ``codeformer.pth``
(``params_ema``: 515 float32 tensors), so the released file loads with ``strict=True``,
and the arithmetic follows the official forward pass (sczhou/CodeFormer,
``basicsr/archs/codeformer_arch.py``) so outputs match the golden parity data.

Besides the official ``forward``, the network is split into the steps the temporal
engine needs (docs/DESIGN.md, "Restorers")::

    encode(x)                     -> Encoded(logits (B,256,1024), state)
    code_features(codes)          -> quant_feat (B,256,16,16)   (codebook look-up)
    generate(quant_feat, enc, w)  -> out (B,3,512,512)          (decoder + fusion)
    decode(codes, state, w)       =  code_features -> AdaIN(lq_feat) -> generate

All image tensors are RGB, NCHW, float, nominally in [-1, 1]; outputs are not clamped.

File layout: helpers, blocks, the encoder / generator builders, the model class, and the
shape-based builder ``CodeFormer.from_state_dict``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from videofix.errors import ModelFileError
from videofix.models.base import Encoded
from videofix.models.layers import AttnBlock, group_norm

# --------------------------------------------------------------------------- helpers


def _mean_std(feat: Tensor, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-sample, per-channel mean and std (unbiased variance + eps, as the official AdaIN)."""
    b, c = feat.shape[:2]
    flat = feat.reshape(b, c, -1)
    std = (flat.var(dim=2) + eps).sqrt().view(b, c, 1, 1)
    mean = flat.mean(dim=2).view(b, c, 1, 1)
    return mean, std


def adaptive_instance_normalization(content: Tensor, style: Tensor) -> Tensor:
    """Give ``content`` (B,C,H,W) the per-channel mean / std of ``style`` (B,C,H',W').

    Statistics are taken in float32 (a no-op for float32 inputs) so half-precision runs
    keep the colour statistics accurate; the result has ``content``'s dtype.
    """
    c32, s32 = content.float(), style.float()
    style_mean, style_std = _mean_std(s32)
    content_mean, content_std = _mean_std(c32)
    out = (c32 - content_mean) / content_std * style_std + style_mean
    return out.to(content.dtype)


# --------------------------------------------------------------------------- blocks


class ResBlock(nn.Module):
    """GroupNorm-swish-conv3x3 twice, plus a 1x1 projection of the input when widths differ."""

    def __init__(self, in_channels: int, out_channels: int | None = None):
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        self.norm2 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if in_channels != out_channels:
            self.conv_out = nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x), inplace=True))
        h = self.conv2(F.silu(self.norm2(h), inplace=True))
        skip = self.conv_out(x) if self.in_channels != self.out_channels else x
        return h + skip


class Downsample(nn.Module):
    """Stride-2 3x3 conv after zero-padding one pixel right and bottom (halves H and W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TransformerSALayer(nn.Module):
    """Pre-norm transformer layer: self-attention (position added to q and k only), GELU MLP.

    Tokens are sequence-first, (T, B, E), as in the official network.
    """

    def __init__(self, embed_dim: int, n_head: int, dim_mlp: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(embed_dim, n_head, dropout=0.0)
        self.linear1 = nn.Linear(embed_dim, dim_mlp)
        self.linear2 = nn.Linear(dim_mlp, embed_dim)
        self.norm1 = nn.LayerNorm(embed_dim)
        self.norm2 = nn.LayerNorm(embed_dim)

    def forward(self, tokens: Tensor, pos: Tensor) -> Tensor:
        normed = self.norm1(tokens)
        query = normed + pos
        tokens = tokens + self.self_attn(query, query, value=normed, need_weights=False)[0]
        tokens = tokens + self.linear2(F.gelu(self.linear1(self.norm2(tokens))))
        return tokens


class FuseSFTBlock(nn.Module):
    """Controllable feature transformation: out = dec + w * (dec * scale + shift).

    ``scale`` and ``shift`` are predicted from the encoder skip feature joined with the
    decoder feature; ``w`` is CodeFormer's fidelity weight.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.encode_enc = ResBlock(2 * channels, channels)
        self.scale = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        )
        self.shift = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
        )

    def forward(self, enc_feat: Tensor, dec_feat: Tensor, w: float) -> Tensor:
        joint = self.encode_enc(torch.cat([enc_feat, dec_feat], dim=1))
        return dec_feat + w * (dec_feat * self.scale(joint) + self.shift(joint))


class _Blocks(nn.Module):
    """A plain ``blocks`` list (keeps the official ``encoder.blocks.N`` / ``generator.blocks.N`` names)."""

    def __init__(self, blocks: list[nn.Module]):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


class VectorQuantizer(nn.Module):
    """The codebook: ``embedding.weight`` (codebook_size, emb_dim)."""

    def __init__(self, codebook_size: int, emb_dim: int):
        super().__init__()
        self.embedding = nn.Embedding(codebook_size, emb_dim)


# ------------------------------------------------------------- encoder / generator


def build_encoder(
    img_size: int, nf: int, emb_dim: int, ch_mult: Sequence[int], res_blocks: int, attn_resolutions: Sequence[int]
) -> tuple[list[nn.Module], dict[int, int]]:
    """Encoder blocks and, per resolution, the block index whose output is the skip feature.

    The skip feature of a level is the output of its last residual block (before that
    block's attention, at attention levels): for the official network
    {512: 2, 256: 5, 128: 8, 64: 11, 32: 14, 16: 18}.
    """
    blocks: list[nn.Module] = [nn.Conv2d(3, nf, kernel_size=3, stride=1, padding=1)]
    taps: dict[int, int] = {}
    res, in_ch = img_size, nf
    for level, mult in enumerate(ch_mult):
        out_ch = nf * mult
        for _ in range(res_blocks):
            blocks.append(ResBlock(in_ch, out_ch))
            in_ch = out_ch
            taps[res] = len(blocks) - 1
            if res in attn_resolutions:
                blocks.append(AttnBlock(in_ch))
        if level != len(ch_mult) - 1:
            blocks.append(Downsample(in_ch))
            res //= 2
    blocks += [ResBlock(in_ch), AttnBlock(in_ch), ResBlock(in_ch), group_norm(in_ch)]
    blocks.append(nn.Conv2d(in_ch, emb_dim, kernel_size=3, stride=1, padding=1))
    return blocks, taps


def build_generator(
    img_size: int, nf: int, emb_dim: int, ch_mult: Sequence[int], res_blocks: int, attn_resolutions: Sequence[int]
) -> tuple[list[nn.Module], dict[int, int]]:
    """Generator blocks and, per resolution, the block index after which fusion happens.

    Fusion follows the level's first residual block, except at attention levels where it
    follows the last residual block (before its attention): for the official network
    {16: 6, 32: 9, 64: 12, 128: 15, 256: 18, 512: 21}.
    """
    in_ch = nf * ch_mult[-1]
    res = img_size // 2 ** (len(ch_mult) - 1)
    blocks: list[nn.Module] = [nn.Conv2d(emb_dim, in_ch, kernel_size=3, stride=1, padding=1)]
    blocks += [ResBlock(in_ch), AttnBlock(in_ch), ResBlock(in_ch)]
    taps: dict[int, int] = {}
    for level in reversed(range(len(ch_mult))):
        out_ch = nf * ch_mult[level]
        res_indices = []
        for _ in range(res_blocks):
            blocks.append(ResBlock(in_ch, out_ch))
            in_ch = out_ch
            res_indices.append(len(blocks) - 1)
            if res in attn_resolutions:
                blocks.append(AttnBlock(in_ch))
        taps[res] = res_indices[-1] if res in attn_resolutions else res_indices[0]
        if level != 0:
            blocks.append(Upsample(in_ch))
            res *= 2
    blocks += [group_norm(in_ch), nn.Conv2d(in_ch, 3, kernel_size=3, stride=1, padding=1)]
    return blocks, taps


# --------------------------------------------------------------------------- model


class CodeFormer(nn.Module):
    """CodeFormer with the official parameter layout; ``CodeFormer()`` is the released config.

    Args:
        img_size: input side S (512).
        nf: base width (64); level ``i`` has ``nf * ch_mult[i]`` channels.
        ch_mult: width multipliers per level, full resolution first ((1, 2, 2, 4, 4, 8)).
        res_blocks: residual blocks per level (2).
        attn_resolutions: resolutions with spatial attention after each residual block ((16,)).
        emb_dim: latent / codebook vector width (256).
        codebook_size: N codebook entries (1024).
        dim_embd: transformer width (512).
        n_head: attention heads (8).
        n_layers: transformer layers (9).
        dim_mlp: transformer MLP width (default ``2 * dim_embd``).
        connect_list: resolutions (strings, as in the checkpoint keys) whose encoder features
            are fused into the generator (("32", "64", "128", "256")).

    Attributes:
        input_size (S), num_tokens (T = (S / 2**(levels-1))**2), codebook_size (N),
        latent_side (sqrt(T)), config (the keyword arguments above).
    """

    def __init__(
        self,
        img_size: int = 512,
        nf: int = 64,
        ch_mult: Sequence[int] = (1, 2, 2, 4, 4, 8),
        res_blocks: int = 2,
        attn_resolutions: Sequence[int] = (16,),
        emb_dim: int = 256,
        codebook_size: int = 1024,
        dim_embd: int = 512,
        n_head: int = 8,
        n_layers: int = 9,
        dim_mlp: int | None = None,
        connect_list: Sequence[str] = ("32", "64", "128", "256"),
    ):
        super().__init__()
        ch_mult = tuple(int(m) for m in ch_mult)
        attn_resolutions = tuple(int(r) for r in attn_resolutions)
        connect_list = tuple(str(r) for r in connect_list)
        dim_mlp = 2 * dim_embd if dim_mlp is None else int(dim_mlp)
        self.config: dict[str, Any] = dict(
            img_size=img_size, nf=nf, ch_mult=ch_mult, res_blocks=res_blocks,
            attn_resolutions=attn_resolutions, emb_dim=emb_dim, codebook_size=codebook_size,
            dim_embd=dim_embd, n_head=n_head, n_layers=n_layers, dim_mlp=dim_mlp,
            connect_list=connect_list,
        )  # fmt: skip

        self.input_size = int(img_size)
        self.latent_side = img_size // 2 ** (len(ch_mult) - 1)
        if self.latent_side * 2 ** (len(ch_mult) - 1) != img_size:
            raise ValueError(f"img_size {img_size} is not divisible by 2**{len(ch_mult) - 1}")
        self.num_tokens = self.latent_side**2
        self.codebook_size = int(codebook_size)
        self.emb_dim = int(emb_dim)

        # resolution -> channels of that level
        level_res = [img_size // 2**level for level in range(len(ch_mult))]
        channels = {res: nf * mult for res, mult in zip(level_res, ch_mult)}
        for f_size in connect_list:
            if int(f_size) not in channels:
                raise ValueError(f"connect_list entry {f_size!r} is not a level resolution {sorted(channels)}")

        # registration order = the official state_dict order
        self.position_emb = nn.Parameter(torch.zeros(self.num_tokens, dim_embd))
        enc_blocks, enc_taps = build_encoder(img_size, nf, emb_dim, ch_mult, res_blocks, attn_resolutions)
        self.encoder = _Blocks(enc_blocks)
        self.quantize = VectorQuantizer(codebook_size, emb_dim)
        gen_blocks, gen_taps = build_generator(img_size, nf, emb_dim, ch_mult, res_blocks, attn_resolutions)
        self.generator = _Blocks(gen_blocks)
        self.feat_emb = nn.Linear(emb_dim, dim_embd)
        self.ft_layers = nn.Sequential(*[TransformerSALayer(dim_embd, n_head, dim_mlp) for _ in range(n_layers)])
        self.idx_pred_layer = nn.Sequential(nn.LayerNorm(dim_embd), nn.Linear(dim_embd, codebook_size, bias=False))
        self.fuse_convs_dict = nn.ModuleDict({f: FuseSFTBlock(channels[int(f)]) for f in connect_list})

        self.connect_list = connect_list
        # block index -> resolution key, only for the connected resolutions
        self._enc_taps = {enc_taps[int(f)]: f for f in connect_list}
        self._gen_taps = {gen_taps[int(f)]: f for f in connect_list}

    # ------------------------------------------------------------------ steps

    def _check_input(self, x: Tensor) -> None:
        s = self.input_size
        if x.dim() != 4 or x.shape[1] != 3 or x.shape[2] != s or x.shape[3] != s:
            raise ValueError(f"CodeFormer expects (B, 3, {s}, {s}) RGB in [-1, 1], got {tuple(x.shape)}")

    def encode(self, x: Tensor) -> Encoded:
        """Encode faces and predict a code per token.

        Args:
            x: (B, 3, S, S) RGB float in [-1, 1], in the network's dtype and device.

        Returns:
            ``Encoded`` with ``logits`` (B, T, N) float32 and ``state``: ``lq_feat``
            (B, emb_dim, side, side) and ``enc_<res>`` (B, C, res, res) for every resolution
            in ``connect_list``, all in the network's dtype.
        """
        self._check_input(x)
        state: dict[str, Tensor] = {}
        h = x
        for i, block in enumerate(self.encoder.blocks):
            h = block(h)
            f_size = self._enc_taps.get(i)
            if f_size is not None:
                state[f"enc_{f_size}"] = h
        state["lq_feat"] = h
        return Encoded(logits=self.predict_logits(h).float(), state=state)

    def predict_logits(self, lq_feat: Tensor) -> Tensor:
        """lq_feat (B, emb_dim, side, side) -> logits (B, T, N) in the network's dtype."""
        b = lq_feat.shape[0]
        tokens = self.feat_emb(lq_feat.flatten(2).permute(2, 0, 1))  # (T, B, E)
        pos = self.position_emb.unsqueeze(1).expand(-1, b, -1)
        for layer in self.ft_layers:
            tokens = layer(tokens, pos)
        return self.idx_pred_layer(tokens).permute(1, 0, 2)  # (T, B, N) -> (B, T, N)

    def code_features(self, codes: Tensor) -> Tensor:
        """codes (B, T) int64 -> codebook vectors (B, emb_dim, side, side), token = y*side + x.

        Equals the official ``get_codebook_feat`` (a one-hot matmul picks exactly one row).
        """
        if codes.dim() != 2 or codes.shape[1] != self.num_tokens:
            raise ValueError(f"codes must be (B, {self.num_tokens}), got {tuple(codes.shape)}")
        b = codes.shape[0]
        feat = F.embedding(codes.long(), self.quantize.embedding.weight)  # (B, T, C)
        return feat.view(b, self.latent_side, self.latent_side, self.emb_dim).permute(0, 3, 1, 2).contiguous()

    def generate(self, quant_feat: Tensor, enc_feats: Mapping[str, Tensor], w: float) -> Tensor:
        """Decode latent features to an image, fusing encoder features with weight ``w``.

        Args:
            quant_feat: (B, emb_dim, side, side) generator input (codebook features, after
                AdaIN in the official inference).
            enc_feats: encoder skip features keyed by resolution ("32", ...) or by state key
                ("enc_32", ...); only read when ``w > 0``.
            w: fidelity in [0, 1]: 0 = codebook only, 1 = closest to the input.

        Returns:
            (B, 3, S, S) RGB, unclamped.
        """
        w = float(w)
        h = quant_feat
        for i, block in enumerate(self.generator.blocks):
            h = block(h)
            f_size = self._gen_taps.get(i)
            if f_size is not None and w > 0:
                enc = enc_feats[f_size] if f_size in enc_feats else enc_feats[f"enc_{f_size}"]
                h = self.fuse_convs_dict[f_size](enc, h, w)
        return h

    def decode(self, codes: Tensor, state: Mapping[str, Tensor], fidelity: float, adain: bool = True) -> Tensor:
        """codes (B, T) int64 + ``Encoded.state`` -> (B, 3, S, S) RGB, unclamped.

        ``code_features`` -> AdaIN against ``state["lq_feat"]`` (when ``adain``) -> ``generate``.
        """
        quant_feat = self.code_features(codes)
        if adain:
            quant_feat = adaptive_instance_normalization(quant_feat, state["lq_feat"])
        return self.generate(quant_feat, state, fidelity)

    def forward(self, x: Tensor, w: float = 0.0, adain: bool = False, code_only: bool = False):
        """The official forward pass.

        Args:
            x: (B, 3, S, S) RGB float in [-1, 1].
            w: fidelity weight (the official default 0; the inference script uses 0.5).
            adain: match codebook feature statistics to ``lq_feat`` (the script uses True).
            code_only: stop after the transformer.

        Returns:
            ``(out (B,3,S,S), logits (B,T,N), lq_feat (B,emb_dim,side,side))``, or
            ``(logits, lq_feat)`` when ``code_only``.
        """
        encoded = self.encode(x)
        logits = encoded.logits.to(x.dtype)
        lq_feat = encoded.state["lq_feat"]
        if code_only:
            return logits, lq_feat
        out = self.decode(encoded.logits.argmax(dim=-1), encoded.state, w, adain=adain)
        return out, logits, lq_feat

    # ------------------------------------------------------------ from weights

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, Tensor], n_head: int | None = None) -> CodeFormer:
        """Build the network that ``state_dict`` describes and load it (eval mode, no grad).

        Every hyperparameter is read from tensor shapes (see ``infer_config``); the module is
        built on the meta device and takes the given tensors (``assign=True``, no copy), so
        it lives on their device and dtype. Raises ``ModelFileError`` when the tensors do
        not form a CodeFormer.
        """
        from videofix.modelfiles import check_state_dict

        try:
            config = infer_config(state_dict)
        except (ModelFileError, KeyError, IndexError, ValueError) as exc:
            # a damaged official file is best explained by what differs from the official layout
            with torch.device("meta"):
                official = cls()
            check_state_dict(state_dict, official.state_dict(), what="CodeFormer")
            raise ModelFileError(f"not a CodeFormer state dict: {exc}") from None
        if n_head is not None:
            config["n_head"] = int(n_head)
        with torch.device("meta"):
            model = cls(**config)
        check_state_dict(state_dict, model.state_dict(), what="CodeFormer")
        model.load_state_dict(dict(state_dict), strict=True, assign=True)
        return model.eval().requires_grad_(False)


# ------------------------------------------------------------------ shape inference

_BLOCK_KEY = re.compile(r"^(encoder|generator)\.blocks\.(\d+)\.")


def _block_kinds(sd: Mapping[str, Tensor], part: str) -> list[str]:
    """Kinds of ``part``.blocks.N, in order: conv, res, attn, down, up, norm."""
    indices = sorted({int(m.group(2)) for k in sd if (m := _BLOCK_KEY.match(k)) and m.group(1) == part})
    if not indices or indices != list(range(len(indices))):
        raise ModelFileError(f"not a CodeFormer state dict: {part}.blocks.* missing or not numbered 0..N")
    kinds = []
    for i in indices:
        prefix = f"{part}.blocks.{i}."
        if prefix + "norm1.weight" in sd:
            kinds.append("res")
        elif prefix + "q.weight" in sd:
            kinds.append("attn")
        elif prefix + "conv.weight" in sd:
            kinds.append("down" if part == "encoder" else "up")
        elif prefix + "weight" in sd and sd[prefix + "weight"].dim() == 4:
            kinds.append("conv")
        elif prefix + "weight" in sd and sd[prefix + "weight"].dim() == 1:
            kinds.append("norm")
        else:
            raise ModelFileError(f"not a CodeFormer state dict: cannot tell what {prefix[:-1]} is")
    return kinds


def _default_heads(dim: int) -> int:
    """8 heads when 8 divides the width, else the largest divisor of ``dim`` below 8."""
    return next(h for h in range(8, 0, -1) if dim % h == 0)


def infer_config(sd: Mapping[str, Tensor]) -> dict[str, Any]:
    """CodeFormer keyword arguments read from the shapes of a state dict.

    nf, ch_mult, res_blocks and attention levels come from the encoder's block sequence;
    img_size from the number of position embeddings (tokens) and the number of levels;
    emb_dim and codebook_size from the codebook; dim_embd, n_layers, dim_mlp from the
    transformer; connect_list from ``fuse_convs_dict``. The head count is not visible in
    shapes: 8 (the official value) when it divides dim_embd.
    """
    required = ("encoder.blocks.0.weight", "quantize.embedding.weight", "position_emb", "feat_emb.weight")
    missing = [k for k in required if k not in sd]
    if missing:
        raise ModelFileError(f"not a CodeFormer state dict: missing {', '.join(missing)}")
    nf = int(sd["encoder.blocks.0.weight"].shape[0])
    codebook_size, emb_dim = (int(d) for d in sd["quantize.embedding.weight"].shape)
    num_tokens, dim_embd = (int(d) for d in sd["position_emb"].shape)

    # encoder: conv, then levels of [res (attn)]* separated by downsamples, then the tail
    kinds = _block_kinds(sd, "encoder")
    tail = ["res", "attn", "res", "norm", "conv"]
    if kinds[0] != "conv" or kinds[-5:] != tail:
        raise ModelFileError("not a CodeFormer state dict: unexpected encoder block sequence")
    levels: list[list[int]] = [[]]
    for i, kind in enumerate(kinds[1:-5], start=1):
        if kind == "down":
            levels.append([])
        else:
            levels[-1].append(i)
    res_counts = [sum(kinds[i] == "res" for i in level) for level in levels]
    res_blocks = res_counts[0]
    if res_blocks == 0 or any(c != res_blocks for c in res_counts):
        raise ModelFileError(f"not a CodeFormer state dict: residual blocks per level differ {res_counts}")
    ch_mult = []
    for level in levels:
        width = int(sd[f"encoder.blocks.{level[0]}.conv1.weight"].shape[0])
        if width % nf:
            raise ModelFileError(f"not a CodeFormer state dict: level width {width} is not a multiple of nf {nf}")
        ch_mult.append(width // nf)

    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise ModelFileError(f"not a CodeFormer state dict: {num_tokens} position embeddings is not a square grid")
    img_size = side * 2 ** (len(levels) - 1)
    attn_resolutions = tuple(
        img_size // 2**lvl for lvl, level in enumerate(levels) if any(kinds[i] == "attn" for i in level)
    )

    layer_ids = {int(m.group(1)) for k in sd if (m := re.match(r"^ft_layers\.(\d+)\.", k))}
    n_layers = len(layer_ids)
    dim_mlp = int(sd["ft_layers.0.linear1.weight"].shape[0]) if n_layers else 2 * dim_embd
    fuse = {m.group(1) for k in sd if (m := re.match(r"^fuse_convs_dict\.(\d+)\.", k))}
    connect_list = tuple(sorted(fuse, key=int))
    return dict(
        img_size=img_size, nf=nf, ch_mult=tuple(ch_mult), res_blocks=res_blocks,
        attn_resolutions=attn_resolutions, emb_dim=emb_dim, codebook_size=codebook_size,
        dim_embd=dim_embd, n_head=_default_heads(dim_embd), n_layers=n_layers, dim_mlp=dim_mlp,
        connect_list=connect_list,
    )  # fmt: skip
