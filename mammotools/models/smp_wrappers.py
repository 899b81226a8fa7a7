"""segmentation_models_pytorch models: U-Net, FPN and DeepLabV3+ on any of its encoders.

References: Iakubovskii, segmentation_models.pytorch (smp); Ronneberger et al. 2015 (U-Net),
Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017 (FPN; smp's is the
segmentation variant of Kirillov et al.'s panoptic FPN), Chen et al., "Encoder-Decoder with
Atrous Separable Convolution for Semantic Image Segmentation", ECCV 2018 (DeepLabV3+).

Not in the paper: offered as modern baselines next to its models. ``encoder_weights=None``
always, so nothing is downloaded; ImageNet weights load from a local file through
:func:`mammotools.models.load_pretrained`. ``width`` scales the decoder's channels only (the
encoder keeps its own; pick a smaller encoder to shrink it). smp is imported when a model is
built, not with this package, since it costs about a second.

Input sizes, as smp 0.6 checks them: U-Net takes any size (its decoder resizes to each skip's
size; smp releases before 0.5 need a multiple of 32); FPN needs multiples of 32; DeepLabV3+ of
16 (its encoder runs at output stride 16). These hold for smp's convolutional encoders at their
default depth; transformer encoders may ask for more.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from torch import nn

from mammotools.errors import InputError
from mammotools.models.layers import scaled
from mammotools.models.sizes import InputSizes, multiples_of

DEFAULT_ENCODER = "resnet34"
UNET_DECODER = (256, 128, 64, 32, 16)
FPN_PYRAMID, FPN_SEGMENTATION = 256, 128
FPN_GROUPS = 32  # smp's FPN segmentation blocks use GroupNorm(32, channels)
DEEPLABV3PLUS_DECODER = 256


def _smp() -> ModuleType:
    return importlib.import_module("segmentation_models_pytorch")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _build(architecture: str, num_classes: int, encoder: str, **decoder: object) -> nn.Module:
    smp = _smp()
    try:
        model: nn.Module = getattr(smp, architecture)(
            encoder_name=encoder, encoder_weights=None, in_channels=3, classes=num_classes, **decoder
        )
    except KeyError as err:
        names = ", ".join(smp.encoders.get_encoder_names())
        raise InputError(f"unknown smp encoder {encoder!r}: valid encoders are {names}") from err
    return model


def smp_unet(num_classes: int, width: float = 1.0, encoder: str = DEFAULT_ENCODER) -> nn.Module:
    """smp's U-Net. (N, 3, H, W) -> logits (N, num_classes, H, W)."""
    channels = tuple(scaled(c, width) for c in UNET_DECODER)
    return _build("Unet", num_classes, encoder, decoder_channels=channels)


def smp_fpn(num_classes: int, width: float = 1.0, encoder: str = DEFAULT_ENCODER) -> nn.Module:
    """smp's FPN. (N, 3, H, W), H and W multiples of 32 -> logits (N, num_classes, H, W).

    The segmentation channels are rounded up to a multiple of 32 (smp's GroupNorm needs it).
    """
    segmentation = _round_up(scaled(FPN_SEGMENTATION, width), FPN_GROUPS)
    pyramid = scaled(FPN_PYRAMID, width)
    return _build("FPN", num_classes, encoder, decoder_pyramid_channels=pyramid, decoder_segmentation_channels=segmentation)


def smp_deeplabv3plus(num_classes: int, width: float = 1.0, encoder: str = DEFAULT_ENCODER) -> nn.Module:
    """smp's DeepLabV3+ (output stride 16). (N, 3, H, W), H and W multiples of 16 -> (N, num_classes, H, W)."""
    return _build("DeepLabV3Plus", num_classes, encoder, decoder_channels=scaled(DEEPLABV3PLUS_DECODER, width))


def unet_sizes() -> InputSizes:
    """smp-unet's sizes: any side where the installed smp's U-Net resizes to its skips, else multiples of 32."""
    divisible = getattr(_smp().Unet, "requires_divisible_input_shape", True)
    return multiples_of(32) if divisible else multiples_of(1)


SMP_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "smp-unet": smp_unet,
    "smp-fpn": smp_fpn,
    "smp-deeplabv3plus": smp_deeplabv3plus,
}
SMP_SIZES: dict[str, Callable[[], InputSizes]] = {
    "smp-unet": unet_sizes,
    "smp-fpn": lambda: multiples_of(32),
    "smp-deeplabv3plus": lambda: multiples_of(16),
}
