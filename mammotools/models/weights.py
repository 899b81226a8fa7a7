"""Initial weights: ImageNet backbones from a local file, and each training stage from the one before.

References: FCN is trained from VGG16 ImageNet weights, then FCN16 from FCN32 and FCN8 from
FCN16 (Long et al. 2015); Dilation10's front end from VGG16, the context module on top of the
trained front, then the whole (Yu & Koltun 2016); DeepLabV3 from an ImageNet ResNet (Chen et
al. 2017). Nothing here downloads: weights come from files the user saved, e.g. on a machine
with internet access::

    torch.save(torchvision.models.vgg16(weights="IMAGENET1K_V1").state_dict(), "vgg16.pth")
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from mammotools.errors import InputError
from mammotools.models.deeplab import DeepLabV3
from mammotools.models.dilation import Dilation10
from mammotools.models.fcn import FCN
from mammotools.models.registry import get_spec
from mammotools.models.vgg import VGG16_CONFIG

SAVE_HINT = {
    "vgg16": "torch.save(torchvision.models.vgg16(weights='IMAGENET1K_V1').state_dict(), PATH)",
    "resnet18": "torch.save(torchvision.models.resnet18(weights='IMAGENET1K_V1').state_dict(), PATH)",
    "smp": "torch.save(model.encoder.state_dict(), PATH) from an smp model built with encoder_weights='imagenet'",
}


def load_pretrained(model: nn.Module, name: str, path: str | Path) -> list[str]:
    """Load ImageNet weights from the local file ``path`` into the backbone of ``model`` (registry name ``name``).

    The file holds a state dict with torchvision's names: ``vgg16().state_dict()`` for the FCNs
    and Dilation10 (conv layers, and fc6/fc7 reshaped into 7x7 and 1x1 convs),
    ``resnet18().state_dict()`` for ``deeplabv3-r18`` (convs, and each BatchNorm's scale and shift
    into the GroupNorm in its place), or an smp encoder's state dict (``model.encoder.state_dict()``;
    keys with an ``encoder.`` prefix also do) for the smp models. The backbone must be at width 1.
    Everything is checked before anything is copied. Returns the names of the layers loaded,
    e.g. ``["features.0", ..., "fc6", "fc7"]``. :class:`InputError` for a missing file, a file that
    is not a state dict, a model that is not ``name``, or shapes that do not fit.
    """
    spec = get_spec(name)
    if spec.backbone is None:
        raise InputError(f"{name} has no ImageNet backbone to load: it trains from scratch")
    expected = {"fcn": FCN, "dilation": Dilation10, "deeplab": DeepLabV3}.get(spec.family)
    if expected is not None and not isinstance(model, expected):
        raise InputError(f"load_pretrained: the model is a {type(model).__name__}, not a {name} ({expected.__name__})")
    state = _read_state_dict(Path(path), spec.backbone)
    if spec.backbone == "vgg16":
        owner, prefix = (model.front, "front.") if isinstance(model, Dilation10) else (model, "")
        pairs = _vgg16_pairs(owner, state)
    elif spec.backbone == "resnet18":
        owner, prefix = model.get_submodule("backbone"), "backbone."
        pairs = {key: _resnet_source(key) for key in owner.state_dict()}
    else:
        encoder = getattr(model, "encoder", None)
        if not isinstance(encoder, nn.Module):
            raise InputError(f"load_pretrained: the model has no smp encoder, so it is not {name}")
        owner, prefix = encoder, "encoder."
        keys = list(owner.state_dict())
        plain = sum(key in state for key in keys) >= sum(f"encoder.{key}" in state for key in keys)
        pairs = {key: key if plain else f"encoder.{key}" for key in keys}
    loaded = _copy(owner, state, pairs, f"{path} for {name} ({spec.backbone}): save it as {SAVE_HINT[spec.backbone]}")
    return [prefix + layer for layer in loaded]


def init_from_previous_stage(model: nn.Module, previous_state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Start a training stage from the previous stage's weights (fcn32 -> fcn16 -> fcn8; dilation10 front -> context -> global).

    Copies every tensor of ``previous_state_dict`` (the previous stage's ``model.state_dict()``)
    into the layer of the same name in ``model``; the layers the new stage adds keep their
    initialisation (FCN's new score layers start at zero, Dilation10's context module at the
    identity). Returns the names of the layers loaded. :class:`InputError` when the previous
    stage holds layers ``model`` lacks (stages in the wrong order), when nothing matches, or
    when shapes differ (another num_classes or width).
    """
    own = model.state_dict()
    extra = [key for key in previous_state_dict if key not in own]
    if extra:
        raise InputError(
            f"the previous stage has layers this model lacks ({', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}): "
            "stages run fcn32 -> fcn16 -> fcn8 and dilation10-front -> -context -> -global"
        )
    if not previous_state_dict:
        raise InputError("the previous stage's state dict is empty")
    pairs = {key: key for key in previous_state_dict}
    return _copy(model, previous_state_dict, pairs, "the previous stage: build it with the same num_classes and width")


def _read_state_dict(path: Path, backbone: str) -> Mapping[str, torch.Tensor]:
    hint = f"save one as {SAVE_HINT[backbone]}"
    if not path.is_file():
        raise InputError(f"pretrained weights file {path} does not exist (nothing is downloaded; {hint})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises pickle, zip and runtime errors alike for a file it cannot read
        raise InputError(f"{path} is not a PyTorch state dict file ({type(err).__name__}); {hint}") from err
    if isinstance(state, Mapping) and len(state) == 1 and next(iter(state)) in ("state_dict", "model"):
        state = next(iter(state.values()))  # a checkpoint wrapping its state dict
    if not (isinstance(state, Mapping) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise InputError(f"{path} holds a {type(state).__name__}, not a state dict of tensors; {hint}")
    return state


def _vgg16_pairs(owner: nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """Target key in ``owner`` -> source key in torchvision's VGG16 state dict."""
    pairs: dict[str, str] = {}
    index = 0
    for item in VGG16_CONFIG:
        if item != "M":
            pairs |= {f"features.{index}.{p}": f"features.{index}.{p}" for p in ("weight", "bias")}
            index += 1  # the ReLU
        index += 1
    if "classifier.0.weight" in state:  # fc6, fc7: torchvision's classifier.0 and classifier.3
        pairs |= {f"fc6.{p}": f"classifier.0.{p}" for p in ("weight", "bias")}
        pairs |= {f"fc7.{p}": f"classifier.3.{p}" for p in ("weight", "bias")}
    return pairs


def _resnet_source(key: str) -> str:
    """Torchvision's ResNet name of a backbone key: GroupNorm ``gn1`` stands where BatchNorm ``bn1`` was."""
    return re.sub(r"(^|\.)gn(\d)", r"\1bn\2", key)


def _copy(owner: nn.Module, state: Mapping[str, torch.Tensor], pairs: dict[str, str], source: str) -> list[str]:
    """Check every pair, then copy; returns the layer names (key minus the parameter name), in order."""
    target = owner.state_dict()
    missing = [src for src in pairs.values() if src not in state]
    if missing:
        raise InputError(f"no {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''} in {source}")
    for key, src in pairs.items():
        want, have = target[key], state[src]
        # fc6/fc7 arrive as fully connected matrices: the same numbers as the convs, other shape
        fits = want.shape == have.shape or (
            want.dim() == 4 and have.dim() == 2 and want.shape[:1] == have.shape[:1] and want.numel() == have.numel()
        )
        if not fits:
            raise InputError(
                f"{key}: the model has shape {tuple(want.shape)}, the file {tuple(have.shape)} ({src}); "
                f"pretrained weights fit width 1.0 and the same layers only; loading {source}"
            )
    with torch.no_grad():
        for key, src in pairs.items():
            target[key].copy_(state[src].reshape(target[key].shape))
    return list(dict.fromkeys(key.rsplit(".", 1)[0] for key in pairs))
