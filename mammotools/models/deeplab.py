"""DeepLabV3 on a dilated ResNet-18 with GroupNorm.

References: Chen, Papandreou, Schroff & Adam, "Rethinking Atrous Convolution for Semantic Image
Segmentation" (DeepLabV3), arXiv:1706.05587, 2017; He et al., "Deep Residual Learning for Image
Recognition", CVPR 2016 (ResNet-18); Wu & He, "Group Normalization", ECCV 2018; and the paper
we reproduce (section 2.4): block3 and block4 atrous with rates 2 and 4 (output stride 8), an
ASPP head, every BatchNorm replaced by GroupNorm because the mini-batch is 2, input 769 px.

Written here because torchvision's ResNet-18 (BasicBlock) refuses dilation, torchvision's ASPP
takes no norm layer, and segmentation_models_pytorch offers no GroupNorm encoder.

* Backbone: torchvision's ResNet-18 layout and names (``conv1``, ``layer1`` ... ``layer4``,
  ``downsample.0``/``.1``), strides of layer3 and layer4 set to 1 and every 3x3 conv of layer3
  dilated (and padded) by 2, of layer4 by 4. GroupNorms are named ``gn*`` where torchvision's
  BatchNorms are ``bn*``; :func:`mammotools.models.load_pretrained` copies ImageNet conv weights
  and the BatchNorm scale and shift into the GroupNorm affine (the running statistics have no
  GroupNorm counterpart and are dropped).
* GroupNorm groups: the largest divisor of the channels not above 32 (32 for 64..512 channels).
* ASPP at output stride 8 (DeepLabV3's OS = 8 setting): a 1x1 conv and 3x3 convs at rates 12,
  24, 36, each 256 channels + GroupNorm + ReLU; image pooling (global average, 1x1 conv, ReLU,
  upsampled); concatenated, 1x1 conv to 256 + GroupNorm + ReLU, then a 1x1 conv to the classes.
  The image-pooling branch has no norm: a GroupNorm over a 1x1 map normalises a handful of
  values per group (one, at reduced widths), so it is left out there, as detectron2's DeepLab
  does when it uses GroupNorm.
* Initialisation: the backbone's convs get torchvision's ResNet init (Kaiming normal, fan_out,
  ReLU gain; GroupNorms weight 1, bias 0), replaced by ImageNet weights when loaded; the ASPP,
  its image pooling and the classifier keep PyTorch's default conv init (Kaiming uniform with
  a = sqrt(5), i.e. weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))), as torchvision's
  DeepLabHead does: Chen et al. state no init for the head, so torchvision's DeepLabV3 is the
  reference followed.
* The stride-8 logits are upsampled bilinearly to the input size (``align_corners=True``, as
  DeepLab does for its 8k + 1 input sizes such as 769 -> 97 -> 769). Any input size works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mammotools.models.layers import group_norm, resize_to, scaled
from mammotools.models.sizes import InputSizes, multiples_of

INPUT_SIZES: InputSizes = multiples_of(1)
ASPP_RATES = (12, 24, 36)
ASPP_CHANNELS = 256


class BasicBlock(nn.Module):
    """ResNet's basic block (two 3x3 convs) with GroupNorm and optional dilation.

    (N, C_in, H, W) -> (N, C_out, H / stride, W / stride). Names as torchvision's, ``bn`` -> ``gn``.
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.gn1 = group_norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, padding=dilation, dilation=dilation, bias=False)
        self.gn2 = group_norm(channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False), group_norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.gn1(self.conv1(x)))
        out = self.gn2(self.conv2(out))
        return F.relu(out + identity)


class DilatedResNet18(nn.Module):
    """ResNet-18 to output stride 8: layer3 dilated 2, layer4 dilated 4, no pooling head.

    (N, 3, H, W) -> (N, 512*width, ~H/8, ~W/8).
    """

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c64, c128, c256, c512 = (scaled(c, width) for c in (64, 128, 256, 512))
        self.conv1 = nn.Conv2d(3, c64, 7, 2, padding=3, bias=False)
        self.gn1 = group_norm(c64)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(c64, c64), BasicBlock(c64, c64))
        self.layer2 = nn.Sequential(BasicBlock(c64, c128, stride=2), BasicBlock(c128, c128))
        self.layer3 = nn.Sequential(BasicBlock(c128, c256, dilation=2), BasicBlock(c256, c256, dilation=2))
        self.layer4 = nn.Sequential(BasicBlock(c256, c512, dilation=4), BasicBlock(c512, c512, dilation=4))
        self.out_channels = c512
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")  # torchvision's init

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.gn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def conv_gn_relu(in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1) -> nn.Sequential:
    """Conv (padded to keep the size, no bias) + GroupNorm + ReLU."""
    padding = dilation * (kernel_size // 2)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=False),
        group_norm(out_channels),
        nn.ReLU(inplace=True),
    )


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLabV3, OS 8): (N, C_in, h, w) -> (N, channels, h, w)."""

    def __init__(self, in_channels: int, channels: int, rates: tuple[int, ...] = ASPP_RATES) -> None:
        super().__init__()
        self.branches = nn.ModuleList([conv_gn_relu(in_channels, channels, 1)])
        self.branches.extend(conv_gn_relu(in_channels, channels, 3, rate) for rate in rates)
        self.pooling = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, channels, 1), nn.ReLU(inplace=True))
        self.project = conv_gn_relu(channels * (len(rates) + 2), channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [branch(x) for branch in self.branches]
        outputs.append(self.pooling(x).expand(-1, -1, x.shape[-2], x.shape[-1]))
        return self.project(torch.cat(outputs, dim=1))


class DeepLabV3(nn.Module):
    """DeepLabV3 + dilated ResNet-18 + GroupNorm. (N, 3, H, W) -> logits (N, num_classes, H, W).

    Names: ``backbone.*`` (torchvision's ResNet-18 names, ``bn`` -> ``gn``), ``aspp.*``, ``classifier``.
    """

    def __init__(self, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        self.backbone = DilatedResNet18(width)
        channels = scaled(ASPP_CHANNELS, width)
        self.aspp = ASPP(self.backbone.out_channels, channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        INPUT_SIZES.check("deeplabv3-r18", x.shape[-2], x.shape[-1])
        scores = self.classifier(self.aspp(self.backbone(x)))
        return resize_to(scores, (x.shape[-2], x.shape[-1]), align_corners=True)


def deeplabv3_r18(num_classes: int, width: float = 1.0) -> DeepLabV3:
    """DeepLabV3 on a dilated, GroupNorm ResNet-18. (N, 3, H, W) -> (N, num_classes, H, W)."""
    return DeepLabV3(num_classes, width)
