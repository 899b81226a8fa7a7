"""The VGG16 convolutional stack and its fully connected layers as convolutions.

Reference: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015 (configuration D). Layer indices and parameter names follow
``torchvision.models.vgg16`` (``features.0`` ... ``features.30``), so that an ImageNet state dict
from torchvision loads by name; fc6 and fc7 become a 7x7 and a 1x1 convolution as in FCN
(Long et al. 2015) and Dilation (Yu & Koltun 2016).
"""

from __future__ import annotations

from torch import nn

from mammotools.models.layers import scaled

# torchvision's "D" configuration: channels of each 3x3 conv, "M" = 2x2 max pooling
VGG16_CONFIG: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
POOL3, POOL4, POOL5 = 16, 23, 30  # indices of the pooling layers in ``features``
CONV5 = (24, 26, 28)  # indices of conv5_1..conv5_3
FC_CHANNELS = 4096


def vgg16_features(width: float = 1.0, *, drop_pool4_pool5: bool = False) -> nn.Sequential:
    """VGG16's ``features``: 13 padded 3x3 convs + ReLU, 5 max pools; channels scaled by ``width``.

    Input (N, 3, H, W) -> (N, 512*width, H/32, W/32). With ``drop_pool4_pool5`` (Dilation10's front
    end) pool4 and pool5 become identities and conv5 is dilated by 2, so the output stride is 8:
    (N, 512*width, H/8, W/8). Indices stay torchvision's either way.
    """
    layers: list[nn.Module] = []
    in_channels = 3
    for item in VGG16_CONFIG:
        index = len(layers)
        if item == "M":
            drop = drop_pool4_pool5 and index in (POOL4, POOL5)
            layers.append(nn.Identity() if drop else nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        assert isinstance(item, int)
        out_channels = scaled(item, width)
        dilation = 2 if drop_pool4_pool5 and index in CONV5 else 1
        layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation))
        layers.append(nn.ReLU(inplace=True))
        in_channels = out_channels
    return nn.Sequential(*layers)


def fc6_fc7(width: float = 1.0, *, dilation: int = 1) -> tuple[nn.Conv2d, nn.Conv2d]:
    """VGG16's fc6 and fc7 as convolutions: 7x7 (dilated by ``dilation``, padded to keep the size) and 1x1.

    (N, 512*width, h, w) -> fc6 -> (N, 4096*width, h, w) -> fc7 -> same. The caller applies ReLU and
    dropout (0.5) after each, as VGG, FCN and Dilation do.
    """
    in_channels, channels = scaled(512, width), scaled(FC_CHANNELS, width)
    fc6 = nn.Conv2d(in_channels, channels, 7, padding=3 * dilation, dilation=dilation)
    fc7 = nn.Conv2d(channels, channels, 1)
    return fc6, fc7
