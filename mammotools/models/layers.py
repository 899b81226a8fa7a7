"""Small building blocks shared by the models: channel scaling, GroupNorm sizing, bilinear upsampling.

References: the fixed bilinear x2 kernel is the one FCN uses to initialise its transposed
convolutions (Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation",
CVPR 2015); group normalisation is Wu & He, "Group Normalization", ECCV 2018.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MAX_GROUPS = 32  # Wu & He's default group count


def scaled(channels: int, width: float) -> int:
    """Channel count of a layer at ``width`` (1.0 = the reference network): ``max(1, round(c * width))``."""
    return max(1, round(channels * width))


def group_count(channels: int) -> int:
    """Groups for a GroupNorm over ``channels``: the largest divisor of ``channels`` not above 32."""
    return max(g for g in range(1, MAX_GROUPS + 1) if channels % g == 0)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm in place of a BatchNorm over ``channels`` (affine, weight 1, bias 0)."""
    return nn.GroupNorm(group_count(channels), channels)


def bilinear_kernel(channels: int) -> torch.Tensor:
    """Weights of a transposed convolution (kernel 4, stride 2) that upsamples x2 bilinearly.

    Returns (channels, channels, 4, 4) float32: channel c maps to channel c only, through the
    separable kernel [1, 3, 3, 1] / 4 (half-pixel bilinear interpolation, as in FCN).
    """
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    weight = torch.zeros(channels, channels, 4, 4)
    for c in range(channels):
        weight[c, c] = torch.outer(taps, taps)
    return weight


def upsample2x(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x2 upsampling by a transposed convolution with ``weight`` (C_in, C_out, 4, 4), no bias.

    x: (N, C_in, H, W) -> (N, C_out, 2H, 2W). The input is first padded by replicating its edge,
    so that with :func:`bilinear_kernel` weights the result equals bilinear interpolation with
    ``align_corners=False`` (edge pixels included), not a darkened border as zero padding gives.
    """
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    up = F.conv_transpose2d(padded, weight, stride=2, padding=1)
    return up[:, :, 2:-2, 2:-2]


class Upsample2x(nn.Module):
    """A learnable x2 upsampling (transposed convolution, kernel 4, stride 2, no bias) initialised to bilinear.

    Its weight has the shape of ``nn.ConvTranspose2d(channels, channels, 4, 2).weight``. Input
    (N, C, H, W) -> output (N, C, 2H, 2W).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(bilinear_kernel(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upsample2x(x, self.weight)


def resize_to(x: torch.Tensor, size: tuple[int, int], align_corners: bool = False) -> torch.Tensor:
    """Bilinear resize of (N, C, h, w) scores to (N, C, *size)."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)


def conv_kaiming_init(module: nn.Module) -> None:
    """He (fan-out, ReLU) init of every conv in ``module``, zero biases: torchvision's VGG/ResNet init."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
