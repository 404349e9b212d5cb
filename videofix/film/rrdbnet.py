"""RRDBNet, the Real-ESRGAN network (ESRGAN's generator, with pixel-unshuffle for x2/x1).

Written for videofix with the state-dict layout of the official checkpoints
(RealESRGAN_x2plus.pth: ``params_ema``, num_feat 64, num_block 23, num_grow_ch 32,
scale 2), so they load with ``load_state_dict`` unchanged:

    conv_first                      (num_feat, in * 4 (x2) or in * 16 (x1) or in, 3, 3)
    body.{i}.rdb{1,2,3}.conv{1..5}  residual dense blocks, growth num_grow_ch
    conv_body, conv_up1, conv_up2, conv_hr, conv_last

Forward (RGB float in 0..1, NCHW): pixel-unshuffle by 2 (x2) -> conv_first -> trunk of RRDBs
plus a long skip -> two nearest x2 upsamplings each followed by a conv and LeakyReLU(0.2)
-> conv_hr -> conv_last. Output ~0..1 (callers clamp).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing all earlier outputs; residual scaled by 0.2."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Three residual dense blocks in a residual, scaled by 0.2."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32):
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """The Real-ESRGAN generator. scale 2 (x2plus) or 4 or 1; RGB in 0..1, (B, 3, H, W)
    -> (B, 3, H*scale, W*scale). For scale 2, H and W must be even (callers pad)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 2, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32):
        super().__init__()
        if scale not in (1, 2, 4):
            raise ValueError(f"RRDBNet: scale must be 1, 2 or 4, got {scale}")
        self.scale = scale
        self.num_in_ch, self.num_out_ch = num_in_ch, num_out_ch
        self.num_feat, self.num_block, self.num_grow_ch = num_feat, num_block, num_grow_ch
        unshuffle = {2: 4, 1: 16, 4: 1}[scale]
        self.conv_first = nn.Conv2d(num_in_ch * unshuffle, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch) for _ in range(num_block)])
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 2:
            feat = F.pixel_unshuffle(x, 2)  # channel c*4 + dy*2 + dx, as basicsr's pixel_unshuffle
        elif self.scale == 1:
            feat = F.pixel_unshuffle(x, 4)
        else:
            feat = x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = F.leaky_relu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        feat = F.leaky_relu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))

    @classmethod
    def config_from_state_dict(cls, sd: dict[str, torch.Tensor]) -> dict:
        """Constructor kwargs inferred from tensor shapes (official or smaller layouts)."""
        try:
            first = sd["conv_first.weight"]
            last = sd["conv_last.weight"]
            grow = sd["body.0.rdb1.conv1.weight"].shape[0]
        except KeyError as exc:
            raise ValueError(f"not an RRDBNet state dict (no {exc.args[0]})") from None
        blocks = 1 + max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
        num_out = int(last.shape[0])
        in_ch = int(first.shape[1])
        # in channels = num_in_ch * (4 for x2, 16 for x1, 1 for x4); RGB networks have 3
        scale = {12: 2, 48: 1, 3: 4}.get(in_ch)
        if scale is None:
            raise ValueError(f"RRDBNet: cannot tell the scale from conv_first with {in_ch} input channels")
        return {"num_in_ch": 3, "num_out_ch": num_out, "scale": scale, "num_feat": int(first.shape[0]),
                "num_block": blocks, "num_grow_ch": int(grow)}

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> "RRDBNet":
        """Build on the meta device with the inferred config and load `sd` (strict)."""
        from videofix.modelfiles import check_state_dict

        config = cls.config_from_state_dict(sd)
        with torch.device("meta"):
            net = cls(**config)
        check_state_dict(sd, net.state_dict(), what="RRDBNet (Real-ESRGAN)")
        net.load_state_dict(sd, assign=True)
        return net.eval()
