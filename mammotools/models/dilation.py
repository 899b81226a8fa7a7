"""Dilation10: a VGG16 front end at output stride 8 and a context module of dilated convolutions.

Reference: Yu & Koltun, "Multi-Scale Context Aggregation by Dilated Convolutions", ICLR 2016,
and the paper we reproduce (section 2.3). Three stages share one network: *front* (the front
end alone), *context* (front + context module, the front frozen: :func:`freeze_front`) and
*global* (the same net, everything trained).

Front end: VGG16 without pool4 and pool5; conv5 dilated by 2, fc6 (7x7) dilated by 4, fc7 (1x1),
a 1x1 conv to class scores; output stride 8. Dropout 0.5 after fc6 and fc7, as in VGG.

Context module: Yu & Koltun's Cityscapes model, the one called Dilation10 (10 layers): 3x3 convs
with dilations 1, 1, 2, 4, 8, 16, 32, 64, then a 3x3 (dilation 1) and a 1x1, each C channels
wide (C = num_classes), ReLU after all but the last. Why this one and not the 8-layer basic
module (dilations 1, 1, 2, 4, 8, 16, 1, then 1x1): the name says Dilation10, and its receptive
field, 259 feature pixels = 2072 input pixels at stride 8, fits the context stage's training
crops (1024 x 1400 and 1400 px, i.e. 128-175 feature pixels) and our 1500 px crops, where the
basic module's 67 feature pixels (536 px) would see a third of the crop. At the front stage's
632 px the large module sees mostly padding, but the front stage trains without it.

Initialisation, as fyu/dilation (Yu & Koltun's Caffe code) does it:

* Context module: identity plus noise (Yu & Koltun, eq. 5; their ``identity`` filler with
  std 0.01): each layer's kernel is 1 at the centre tap of channel c -> c and N(0, 0.01^2)
  everywhere else, biases zero. Followed as the reference has it, at a price: at
  initialisation the module returns its input through the ReLUs only approximately,
  max(scores, 0) of the front's scores up to that noise (0.1 to 0.15 of their norm for 4
  classes: each layer adds the noise of its 9C - 1 taps, ten layers in a row).
  ``ContextModule(..., noise_std=0)`` gives the pure identity of eq. 4, through which the
  pass-through is exact for non-negative scores (the ReLU after each layer is Yu & Koltun's; it
  clips negative ones).
* Front end: VGG16's layers He-initialised (torchvision's VGG init; fyu/dilation starts them
  from ImageNet weights, :func:`mammotools.models.load_pretrained`), the 1x1 score layer
  ``final`` drawn from N(0, 0.001^2) with zero bias, the reference's std, so the front's first
  scores are small.

Padding: every conv is padded by its dilation (fc6 by 12), so each map keeps 1/8 of the input
side and the scores, bilinearly upsampled x8, come out at the input size (Yu & Koltun's Caffe
net is unpadded and reflection-pads its input by 186 px instead). Inputs: multiples of 8
(632 = 79 x 8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mammotools.errors import InputError
from mammotools.models.layers import conv_kaiming_init, resize_to
from mammotools.models.sizes import InputSizes, multiples_of
from mammotools.models.vgg import fc6_fc7, vgg16_features

INPUT_SIZES: InputSizes = multiples_of(8)
CONTEXT_DILATIONS = (1, 1, 2, 4, 8, 16, 32, 64, 1)  # the 3x3 layers; a 1x1 layer follows
CONTEXT_NOISE_STD = 0.01  # fyu/dilation's identity filler: N(0, 0.01^2) off the identity taps
FINAL_STD = 0.001  # fyu/dilation's front-end score layer: gaussian, std 0.001


class FrontEnd(nn.Module):
    """VGG16 to stride 8 (pool4, pool5 removed; conv5 dilated 2, fc6 dilated 4) + a 1x1 score layer.

    (N, 3, H, W) -> scores (N, num_classes, H/8, W/8). Names: ``features.*`` (torchvision's VGG16
    indices), ``fc6``, ``fc7``, ``final``.
    """

    def __init__(self, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        self.features = vgg16_features(width, drop_pool4_pool5=True)
        self.fc6, self.fc7 = fc6_fc7(width, dilation=4)
        self.dropout = nn.Dropout(0.5)
        self.final = nn.Conv2d(self.fc7.out_channels, num_classes, 1)
        conv_kaiming_init(self)
        nn.init.normal_(self.final.weight, std=FINAL_STD)  # small scores at first, as fyu/dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.dropout(F.relu(self.fc6(x)))
        x = self.dropout(F.relu(self.fc7(x)))
        return self.final(x)


class ContextModule(nn.Module):
    """Dilation10's context module, identity-initialised plus noise. (N, C, h, w) -> (N, C, h, w).

    ``layers`` holds the nine 3x3 convs (dilations :data:`CONTEXT_DILATIONS`, each + ReLU),
    ``final`` the 1x1 conv (no ReLU). ``noise_std``: std of the normal noise off the identity
    taps (the reference's 0.01; 0 for the pure identity).
    """

    def __init__(self, channels: int, noise_std: float = CONTEXT_NOISE_STD) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=d, dilation=d) for d in CONTEXT_DILATIONS)
        self.final = nn.Conv2d(channels, channels, 1)
        for conv in (*self.layers, self.final):
            identity_init(conv, noise_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.layers:
            x = F.relu(conv(x))
        return self.final(x)


def identity_init(conv: nn.Conv2d, noise_std: float = 0.0) -> None:
    """Kernel that copies channel c to channel c at the centre tap, N(0, noise_std^2) elsewhere; zero bias.

    Yu & Koltun's eq. 4 with ``noise_std`` 0, the ε of their eq. 5 (and of fyu/dilation) otherwise.
    """
    with torch.no_grad():
        if noise_std > 0:
            conv.weight.normal_(0.0, noise_std)
        else:
            conv.weight.zero_()
        centre = conv.kernel_size[0] // 2
        for c in range(min(conv.in_channels, conv.out_channels)):
            conv.weight[c, c, centre, centre] = 1.0
        if conv.bias is not None:
            conv.bias.zero_()


class Dilation10(nn.Module):
    """Dilation10 front end, with or without the context module.

    Input (N, 3, H, W), H and W multiples of 8 -> logits (N, num_classes, H, W): the stride-8
    scores upsampled bilinearly x8. Parameter names: ``front.*`` and, with context, ``context.*``.
    """

    def __init__(self, num_classes: int, width: float = 1.0, *, with_context: bool = True, name: str = "dilation10") -> None:
        super().__init__()
        self.name = name
        self.front = FrontEnd(num_classes, width)
        self.context = ContextModule(num_classes) if with_context else None
        self.front_frozen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        INPUT_SIZES.check(self.name, x.shape[-2], x.shape[-1])
        scores = self.front(x)
        if self.context is not None:
            scores = self.context(scores)
        return resize_to(scores, (x.shape[-2], x.shape[-1]))

    def train(self, mode: bool = True) -> Dilation10:
        """As ``nn.Module.train``, except that a frozen front end stays in eval mode (no dropout)."""
        super().train(mode)
        if self.front_frozen:
            self.front.train(False)
        return self


def freeze_front(model: nn.Module) -> list[str]:
    """The context stage: stop training the front end of a Dilation10 ``model``; returns the frozen parameter names.

    Its parameters get ``requires_grad = False`` and it stays in eval mode (dropout off), so an
    optimizer over ``[p for p in model.parameters() if p.requires_grad]`` trains only the context
    module (an optimizer given every parameter also leaves them unchanged: they get no gradient).
    """
    dilation = _as_dilation(model)
    for parameter in dilation.front.parameters():
        parameter.requires_grad_(False)
    dilation.front_frozen = True
    dilation.front.train(False)
    return [f"front.{name}" for name, _ in dilation.front.named_parameters()]


def unfreeze_front(model: nn.Module) -> None:
    """The global stage: train the front end again (undoes :func:`freeze_front`)."""
    dilation = _as_dilation(model)
    for parameter in dilation.front.parameters():
        parameter.requires_grad_(True)
    dilation.front_frozen = False
    dilation.front.train(dilation.training)


def _as_dilation(model: nn.Module) -> Dilation10:
    if not isinstance(model, Dilation10):
        raise InputError(f"freeze_front/unfreeze_front take a Dilation10 model, not {type(model).__name__}")
    return model


def dilation10_front(num_classes: int, width: float = 1.0) -> Dilation10:
    """Stage 1: the front end alone. (N, 3, H, W) -> (N, num_classes, H, W), H, W multiples of 8."""
    return Dilation10(num_classes, width, with_context=False, name="dilation10-front")


def dilation10_context(num_classes: int, width: float = 1.0) -> Dilation10:
    """Stage 2: front + context module, the front frozen (see :func:`freeze_front`)."""
    model = Dilation10(num_classes, width, with_context=True, name="dilation10-context")
    freeze_front(model)
    return model


def dilation10_global(num_classes: int, width: float = 1.0) -> Dilation10:
    """Stage 3: front + context module, everything trained."""
    return Dilation10(num_classes, width, with_context=True, name="dilation10-global")
