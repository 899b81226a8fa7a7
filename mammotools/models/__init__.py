"""Segmentation models: the paper's (FCN32/16/8, U-Net, Dilation10, DeepLabV3-ResNet18) and smp's.

Public face for the training code: :data:`MODELS` (a plain dict of :class:`ModelSpec`), one
builder :func:`build_model`, the input/output size rules, and the weight initialisations
(ImageNet backbones from local files; each training stage from the previous one).

Parts: ``fcn.py``, ``unet.py``, ``dilation.py``, ``deeplab.py`` (the paper's models, plain
PyTorch, each citing its reference), ``smp_wrappers.py`` (segmentation_models_pytorch),
``vgg.py`` and ``layers.py`` (shared blocks), ``sizes.py`` (input sizes), ``registry.py``
(the registry and builder), ``weights.py`` (pretrained and stage weights).

Every model maps (N, 3, H, W) float images to (N, num_classes, H', W') logits, with H' = H
except for ``unet`` (H' = H - 184).
"""

from mammotools.models.dilation import freeze_front, unfreeze_front
from mammotools.models.inputs import IMAGENET, NORMALIZATIONS, PAPER, with_input_normalization
from mammotools.models.registry import (
    MODELS,
    ModelSpec,
    build_model,
    get_spec,
    input_sizes,
    output_size,
    paper_shape,
    valid_input_size,
)
from mammotools.models.sizes import InputSizes
from mammotools.models.weights import init_from_previous_stage, load_pretrained

__all__ = [
    "IMAGENET",
    "MODELS",
    "NORMALIZATIONS",
    "PAPER",
    "InputSizes",
    "ModelSpec",
    "build_model",
    "freeze_front",
    "get_spec",
    "init_from_previous_stage",
    "input_sizes",
    "load_pretrained",
    "output_size",
    "paper_shape",
    "unfreeze_front",
    "valid_input_size",
    "with_input_normalization",
]
