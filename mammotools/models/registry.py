"""The model registry (a plain dict of :class:`ModelSpec`) and the one builder.

Names, the paper's input sizes and the training stages are the paper's (section 2; Yu & Koltun
2016 for the Dilation10 stages); each architecture's module cites its own reference.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from mammotools.errors import InputError
from mammotools.models import deeplab, dilation, fcn, smp_wrappers, unet
from mammotools.models.sizes import InputSizes

Backbone = Literal["vgg16", "resnet18", "smp"] | None


@dataclass(frozen=True)
class ModelSpec:
    """One model of the registry.

    ``paper_input``: the side the paper trains it at (px; the smp models, not in the paper, use
    its smallest crop size, 256). ``stages``: the models trained in sequence up to and including
    this one, each initialised from the one before (see ``init_from_previous_stage``).
    ``backbone``: whose ImageNet weights ``load_pretrained`` takes (None: none apply).
    """

    name: str
    family: str
    paper_input: int
    stages: tuple[str, ...]
    backbone: Backbone
    description: str


def _spec(
    name: str, family: str, paper_input: int, backbone: Backbone, description: str, stages: tuple[str, ...] = ()
) -> ModelSpec:
    return ModelSpec(name, family, paper_input, stages or (name,), backbone, description)


MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        _spec("fcn32", "fcn", 256, "vgg16", "FCN-32s on VGG16: pool5 scores upsampled x32 (Long et al. 2015)"),
        _spec("fcn16", "fcn", 256, "vgg16", "FCN-16s: x2 transposed conv + pool4 scores, upsampled x16", ("fcn32", "fcn16")),
        _spec(
            "fcn8",
            "fcn",
            256,
            "vgg16",
            "FCN-8s: FCN-16s + x2 transposed conv + pool3 scores, upsampled x8",
            ("fcn32", "fcn16", "fcn8"),
        ),
        _spec("unet", "unet", 572, None, "U-Net as published: unpadded convs, 572 -> 388 px (Ronneberger et al. 2015)"),
        _spec(
            "dilation10-front",
            "dilation",
            632,
            "vgg16",
            "Dilation10 front end: VGG16 at output stride 8, dilated conv5/fc6 (Yu & Koltun 2016)",
        ),
        _spec(
            "dilation10-context",
            "dilation",
            1024,
            "vgg16",
            "Dilation10 front + identity-initialised context module; front frozen (trained on 1024x1400 inputs)",
            ("dilation10-front", "dilation10-context"),
        ),
        _spec(
            "dilation10-global",
            "dilation",
            1400,
            "vgg16",
            "Dilation10 front + context module, all trained",
            ("dilation10-front", "dilation10-context", "dilation10-global"),
        ),
        _spec(
            "deeplabv3-r18",
            "deeplab",
            769,
            "resnet18",
            "DeepLabV3: ResNet-18 atrous (rates 2, 4; stride 8) + ASPP, GroupNorm (Chen et al. 2017)",
        ),
        _spec("smp-unet", "smp", 256, "smp", "segmentation_models_pytorch U-Net on any smp encoder (not in the paper)"),
        _spec("smp-fpn", "smp", 256, "smp", "segmentation_models_pytorch FPN on any smp encoder (not in the paper)"),
        _spec(
            "smp-deeplabv3plus", "smp", 256, "smp", "segmentation_models_pytorch DeepLabV3+ on any smp encoder (not in the paper)"
        ),
    )
}

_PAPER_BUILDERS: dict[str, Callable[[int, float], nn.Module]] = {
    "fcn32": fcn.fcn32,
    "fcn16": fcn.fcn16,
    "fcn8": fcn.fcn8,
    "unet": unet.unet,
    "dilation10-front": dilation.dilation10_front,
    "dilation10-context": dilation.dilation10_context,
    "dilation10-global": dilation.dilation10_global,
    "deeplabv3-r18": deeplab.deeplabv3_r18,
}
_FAMILY_SIZES: dict[str, InputSizes] = {
    "fcn": fcn.INPUT_SIZES,
    "unet": unet.INPUT_SIZES,
    "dilation": dilation.INPUT_SIZES,
    "deeplab": deeplab.INPUT_SIZES,
}


# Stages the paper trains on non-square inputs (height, width): Dilation10's context stage,
# "1024 x 1400 pixels" (section 2.3; read as height x width, as --input-size takes it).
_PAPER_SHAPES: dict[str, tuple[int, int]] = {"dilation10-context": (1024, 1400)}


def paper_shape(name: str) -> tuple[int, int]:
    """(height, width) of the input the paper trains model (or stage) ``name`` at: 632 x 632 for
    the Dilation10 front end, 1024 x 1400 for its context stage, 1400 x 1400 for the global one."""
    spec = get_spec(name)
    return _PAPER_SHAPES.get(name, (spec.paper_input, spec.paper_input))


def get_spec(name: str) -> ModelSpec:
    """The registry entry of ``name``; :class:`InputError` listing the valid names otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(f"unknown model {name!r}: valid names are {', '.join(MODELS)}") from None


def build_model(name: str, num_classes: int, *, width: float = 1.0, encoder: str = smp_wrappers.DEFAULT_ENCODER) -> nn.Module:
    """A freshly initialised model of the registry; nothing is downloaded.

    ``width`` scales every channel count (``max(1, round(c * width))``; 1.0 = the reference
    network; smp models: the decoder only); ``encoder`` names the smp encoder (smp models only).
    The model maps (N, 3, H, W) float images to (N, num_classes, H', W') logits, H' = output_size.
    ``dilation10-context`` comes with its front end frozen (its training stage).
    """
    spec = get_spec(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be a whole number >= 1, not {num_classes!r}")
    if not width > 0:
        raise InputError(f"width must be > 0 (1.0 = the published network), not {width!r}")
    if spec.family == "smp":
        return smp_wrappers.SMP_BUILDERS[name](num_classes, width, encoder)
    if encoder != smp_wrappers.DEFAULT_ENCODER:
        raise InputError(f"--encoder applies to the smp models only; {name} has a fixed backbone ({spec.backbone or 'none'})")
    return _PAPER_BUILDERS[name](num_classes, width)


def input_sizes(name: str) -> InputSizes:
    """The input-size rule of model ``name``."""
    spec = get_spec(name)
    if spec.family == "smp":
        return smp_wrappers.SMP_SIZES[name]()
    return _FAMILY_SIZES[spec.family]


def output_size(name: str, input_size: int) -> int:
    """Side of the output of model ``name`` for a square input of side ``input_size``.

    The input size for every model but ``unet`` (572 -> 388). :class:`InputError` naming the
    nearest valid sizes when the model cannot take ``input_size``.
    """
    sizes = input_sizes(name)
    if not sizes.is_valid(input_size):
        raise InputError(sizes.explain(name, input_size))
    return sizes.output(input_size)


def valid_input_size(name: str, size: int) -> int:
    """The largest input side not above ``size`` that model ``name`` takes (e.g. a crop size -> the model's input).

    :class:`InputError` when even the smallest valid side is above ``size``.
    """
    sizes = input_sizes(name)
    below = sizes.below(size)
    if below is None:
        raise InputError(f"{name} takes input sides that are {sizes.rule}: the smallest is {sizes.start}, above {size}")
    return below
