"""U-Net as published: unpadded convolutions, 572 px in, 388 px out.

Reference: Ronneberger, Fischer & Brox, "U-Net: Convolutional Networks for Biomedical Image
Segmentation", MICCAI 2015 (Fig. 1). Four levels down (two unpadded 3x3 convs + ReLU, 2x2 max
pool), a 1024-channel bottom, four levels up (2x2 transposed conv halving the channels, the
encoder's map of that level centre-cropped and concatenated, two unpadded 3x3 convs + ReLU), a
1x1 conv to the class scores. As the paper we reproduce says (section 2.2), every conv and
transposed conv is followed by ReLU; the final 1x1 conv gives logits, without. Dropout
(p = 0.5) after the last two contracting stages, as in the authors' Caffe release
(phseg_v5-train.prototxt: in-place dropout on d3c and d4c): on the 4th level's output (512
channels, before pool4; in place, so its skip to the expanding path is the dropped map too) and
on the bottom's (1024 channels), where the paper only says "drop-out layers at the end of the
contracting path". Weights drawn from N(0, 2/fan_in) as the original prescribes. 31,031,810
parameters at width 1 with 2 classes.

Input sides must be 16k + 124 px (k >= 4): each level's conv output must halve evenly. The
output is the input's central (side - 184) px square: 572 -> 388.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mammotools.models.layers import scaled
from mammotools.models.sizes import InputSizes

INPUT_SIZES = InputSizes(start=188, step=16, border=184, rule="16k + 124 with k >= 4 (188, 204, ..., 572, ...)")
CHANNELS = (64, 128, 256, 512, 1024)
DROPOUT_LEVELS = (3, 4)  # d3c, d4c of the authors' release: the 4th level and the bottom (0-based)


class DoubleConv(nn.Sequential):
    """Two unpadded 3x3 convs, each + ReLU: (N, C_in, h, w) -> (N, C_out, h - 4, w - 4)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """The original U-Net. (N, 3, S, S) -> logits (N, num_classes, S - 184, S - 184), S = 16k + 124.

    Non-square inputs work side by side under the same rule.
    """

    def __init__(self, num_classes: int, width: float = 1.0, in_channels: int = 3) -> None:
        super().__init__()
        channels = [scaled(c, width) for c in CHANNELS]
        self.down = nn.ModuleList()
        previous = in_channels
        for c in channels:
            self.down.append(DoubleConv(previous, c))
            previous = c
        self.pool = nn.MaxPool2d(2, 2)
        self.dropout = nn.ModuleDict({str(level): nn.Dropout(0.5) for level in DROPOUT_LEVELS})
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for c in reversed(channels[:-1]):
            self.up.append(nn.ConvTranspose2d(previous, c, 2, stride=2))
            self.up_conv.append(DoubleConv(2 * c, c))
            previous = c
        self.head = nn.Conv2d(previous, num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        INPUT_SIZES.check("unet", x.shape[-2], x.shape[-1])
        skips: list[torch.Tensor] = []
        for level, block in enumerate(self.down):
            if level:
                x = self.pool(x)
            x = block(x)
            if str(level) in self.dropout:
                x = self.dropout[str(level)](x)
            skips.append(x)
        x = skips.pop()
        for up, conv in zip(self.up, self.up_conv, strict=True):
            x = F.relu(up(x))
            x = conv(torch.cat([centre_crop(skips.pop(), x.shape[-2:]), x], dim=1))
        return self.head(x)


def centre_crop(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """The central ``size`` (h, w) window of (N, C, H, W) ``x``; U-Net's skip cropping."""
    top = (x.shape[-2] - size[0]) // 2
    left = (x.shape[-1] - size[1]) // 2
    return x[..., top : top + size[0], left : left + size[1]]


def unet(num_classes: int, width: float = 1.0) -> UNet:
    """The original U-Net (3 input channels). (N, 3, S, S) -> (N, num_classes, S - 184, S - 184)."""
    return UNet(num_classes, width)
