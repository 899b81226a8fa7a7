"""What intensities a model is fed: the paper's scaling, or ImageNet's for pretrained backbones.

The data pipeline always gives value / peak - 0.5 (``data.scale_image``: [-0.5, 0.5]), the
paper's scaling, which a model trained from scratch keeps. torchvision's and timm's ImageNet
weights were trained on (x - mean) / std of x in [0, 1], values about 4.4 times larger: a VGG16
with its conv biases fed [-0.5, 0.5] starts from scaled-down activations, while a GroupNorm'd
ResNet cancels the scale, a handicap that falls on some models and not others. So a run whose
first stage loaded ImageNet weights wraps its model in :class:`ImageNetInput`, which turns the
pipeline's values into ImageNet's at the model's door: training, validation, ``evaluate`` and
``predict`` all go through it, and the sliding window's padding (-0.5: intensity 0) becomes
what a black pixel is to ImageNet weights. The run records which (``run.json``:
``input_normalization``); runs written before it was recorded used the paper's scaling.
"""

from __future__ import annotations

import torch
from torch import nn

PAPER, IMAGENET = "paper", "imagenet"
NORMALIZATIONS = (PAPER, IMAGENET)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet statistics (RGB)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNetInput(nn.Module):
    """``model`` fed ImageNet-normalised input: x in [-0.5, 0.5] -> ((x + 0.5) - mean) / std.

    Holds no parameters or state of its own: ``state_dict`` keys are the wrapped model's under
    ``model.``, so runs save and load the wrapped model itself, never this wrapper.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean.to(x.device, x.dtype), self.std.to(x.device, x.dtype)
        return self.model((x + 0.5 - mean) / std)


def with_input_normalization(model: nn.Module, kind: str) -> nn.Module:
    """``model`` as the pipeline must call it: itself for the paper's scaling, wrapped for ImageNet's."""
    if kind not in NORMALIZATIONS:
        raise ValueError(f"input normalization {kind!r}: one of {', '.join(NORMALIZATIONS)}")
    return ImageNetInput(model) if kind == IMAGENET else model
