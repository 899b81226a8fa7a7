"""FCN-32s, FCN-16s and FCN-8s on VGG16.

Reference: Long, Shelhamer & Darrell, "Fully Convolutional Networks for Semantic Segmentation",
CVPR 2015 (and its PAMI 2017 version); as described by the paper we reproduce (section 2.1):
VGG16 with fc6/fc7 as 7x7 and 1x1 convolutions; FCN32 upsamples the pool5 scores bilinearly to
the input size; FCN16 upsamples them x2 with a transposed convolution, adds pool4 scores, then
upsamples bilinearly; FCN8 does it once more with pool3. Transposed convolutions are followed by
ReLU, as the paper says.

Choices, and why:

* Padding: every 3x3 conv is padded by 1 and fc6 (7x7) by 3, so an input whose sides are
  multiples of 32 (the paper's 256) gives score maps of exactly 1/32, 1/16, 1/8 of it and an
  output of exactly the input size. Long et al. instead pad conv1_1 by 100 and crop.
* The final upsampling to the input size is one bilinear step, ``F.interpolate(...,
  mode="bilinear", align_corners=False)``: Long et al.'s final layer is a fixed bilinear
  deconvolution (one kernel of twice the stride). A chain of x2 bilinear steps would be a wider,
  lower kernel (for x32, peak 0.75 against 0.98 per axis, 0.56 against 0.97 in 2D) that damps
  small isolated responses, small lesions.
* FCN16 initialised from FCN32 (upscore2 bilinear, the pool4 score layer at zero) computes
  FCN32's output approximately, no longer exactly: one bilinear x32 step is piecewise linear
  between the pool5 score centres, and a bilinear x2 step followed by a x16 one cuts the corners
  at those centres, by at most 1/8 of the scores' second difference along each axis (edges
  replicated); the two agree exactly only where that second difference is zero. The paper's
  ReLU after upscore2 adds a difference of its own: it clips negative x2-upsampled scores,
  which FCN32 keeps (``relu_after_upsampling=False`` leaves it out). Likewise FCN8 from FCN16,
  with FCN16's fused stride-16 scores in place of the pool5 ones. The learned x2 upsamplings
  (upscore2, upscore_pool4) stay transposed convs initialised to bilinear x2, as Long et al.'s.
* pool4/pool3 score layers start at zero (Long et al.); score_fr starts small (normal, std 0.01)
  rather than at zero, because a zero score map behind a ReLU'd transposed conv gets no gradient.
* Dropout 0.5 after fc6 and fc7, as in VGG and FCN. Transposed convs have no bias, as in FCN.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mammotools.models.layers import Upsample2x, conv_kaiming_init, resize_to, scaled
from mammotools.models.sizes import InputSizes, multiples_of
from mammotools.models.vgg import POOL3, POOL4, fc6_fc7, vgg16_features

INPUT_SIZES: InputSizes = multiples_of(32)

FcnStride = Literal[32, 16, 8]


class FCN(nn.Module):
    """FCN on VGG16 predicting at ``stride`` 32, 16 or 8.

    Input (N, 3, H, W) float, H and W multiples of 32 -> logits (N, num_classes, H, W).
    Parameter names: ``features.*`` (torchvision's VGG16 indices), ``fc6``, ``fc7``, ``score_fr``,
    then ``upscore2`` + ``score_pool4`` (stride <= 16) and ``upscore_pool4`` + ``score_pool3``
    (stride 8), Long et al.'s names, so each stage's weights load into the next by name.
    """

    def __init__(
        self, num_classes: int, width: float = 1.0, *, stride: FcnStride = 32, relu_after_upsampling: bool = True
    ) -> None:
        super().__init__()
        self.stride = stride
        self.relu_after_upsampling = relu_after_upsampling
        self.features = vgg16_features(width)
        self.fc6, self.fc7 = fc6_fc7(width)
        self.dropout = nn.Dropout(0.5)
        self.score_fr = nn.Conv2d(self.fc7.out_channels, num_classes, 1)
        conv_kaiming_init(self)
        nn.init.normal_(self.score_fr.weight, std=0.01)
        if stride <= 16:
            self.upscore2 = Upsample2x(num_classes)
            self.score_pool4 = _zero_conv(scaled(512, width), num_classes)
        if stride == 8:
            self.upscore_pool4 = Upsample2x(num_classes)
            self.score_pool3 = _zero_conv(scaled(256, width), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        INPUT_SIZES.check(f"fcn{self.stride}", x.shape[-2], x.shape[-1])
        return resize_to(self.coarse_scores(x), (x.shape[-2], x.shape[-1]))

    def coarse_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The fused scores at the model's stride, before the final upsampling: (N, C, H/stride, W/stride)."""
        pool3 = pool4 = x
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index == POOL3:
                pool3 = x
            elif index == POOL4:
                pool4 = x
        x = self.dropout(F.relu(self.fc6(x)))
        x = self.dropout(F.relu(self.fc7(x)))
        scores = self.score_fr(x)  # (N, C, H/32, W/32)
        if self.stride <= 16:
            scores = self._activation(self.upscore2(scores)) + self.score_pool4(pool4)  # H/16
        if self.stride == 8:
            scores = self._activation(self.upscore_pool4(scores)) + self.score_pool3(pool3)  # H/8
        return scores

    def _activation(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) if self.relu_after_upsampling else x


def _zero_conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    """1x1 score layer starting at zero, so a new skip adds nothing until trained (Long et al.)."""
    conv = nn.Conv2d(in_channels, out_channels, 1)
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def fcn32(num_classes: int, width: float = 1.0) -> FCN:
    """FCN-32s: pool5 scores upsampled x32. (N, 3, H, W) -> (N, num_classes, H, W)."""
    return FCN(num_classes, width, stride=32)


def fcn16(num_classes: int, width: float = 1.0) -> FCN:
    """FCN-16s: x2 transposed conv of pool5 scores + pool4 scores, upsampled x16."""
    return FCN(num_classes, width, stride=16)


def fcn8(num_classes: int, width: float = 1.0) -> FCN:
    """FCN-8s: FCN-16s' fused scores x2 again + pool3 scores, upsampled x8."""
    return FCN(num_classes, width, stride=8)
