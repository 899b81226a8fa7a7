"""The registry and the builder: names, stages, sizes, errors; every model learns."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from mammotools.errors import InputError
from mammotools.models import MODELS, build_model, get_spec, output_size, valid_input_size

PAPER_OUTPUTS = {  # name: (paper input, output for it)
    "fcn32": (256, 256),
    "fcn16": (256, 256),
    "fcn8": (256, 256),
    "unet": (572, 388),
    "dilation10-front": (632, 632),
    "dilation10-context": (1024, 1024),
    "dilation10-global": (1400, 1400),
    "deeplabv3-r18": (769, 769),
    "smp-unet": (256, 256),
    "smp-fpn": (256, 256),
    "smp-deeplabv3plus": (256, 256),
}


def test_names_and_paper_sizes() -> None:
    assert list(MODELS) == list(PAPER_OUTPUTS)
    for name, (paper_input, output) in PAPER_OUTPUTS.items():
        spec = MODELS[name]
        assert spec.name == name and spec.paper_input == paper_input and spec.description
        assert output_size(name, paper_input) == output


def test_stages_and_backbones() -> None:
    assert MODELS["fcn8"].stages == ("fcn32", "fcn16", "fcn8")
    assert MODELS["dilation10-global"].stages == ("dilation10-front", "dilation10-context", "dilation10-global")
    assert MODELS["unet"].stages == ("unet",) and MODELS["unet"].backbone is None
    assert {spec.backbone for spec in MODELS.values()} == {"vgg16", "resnet18", "smp", None}
    for spec in MODELS.values():
        assert spec.stages[-1] == spec.name and all(stage in MODELS for stage in spec.stages)


def test_unknown_name_lists_the_names() -> None:
    with pytest.raises(InputError, match="unknown model 'nope': valid names are fcn32, fcn16, fcn8, unet, dilation10-front"):
        build_model("nope", 2)
    with pytest.raises(InputError, match="smp-deeplabv3plus"):
        get_spec("nope")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(InputError, match="num_classes"):
        build_model("fcn32", 0)
    with pytest.raises(InputError, match="width"):
        build_model("fcn32", 2, width=0)
    with pytest.raises(InputError, match="smp models only"):
        build_model("unet", 2, encoder="resnet18")


def test_valid_input_size_for_the_papers_crops() -> None:
    assert [valid_input_size("unet", s) for s in (256, 700, 900, 1500)] == [252, 700, 892, 1500]
    assert [valid_input_size("fcn8", s) for s in (256, 700, 900, 1500)] == [256, 672, 896, 1472]
    assert valid_input_size("dilation10-front", 700) == 696 and valid_input_size("deeplabv3-r18", 769) == 769
    with pytest.raises(InputError, match="smallest is 188"):
        valid_input_size("unet", 100)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_few_steps_lower_the_loss(
    name: str, seeded: None, block_batch: Callable[..., tuple[torch.Tensor, torch.Tensor]]
) -> None:
    encoder = {"encoder": "resnet18"} if MODELS[name].family == "smp" else {}
    model = build_model(name, 3, width=0.125, **encoder)
    size = valid_input_size(name, 64) if name != "unet" else 204
    images, labels = block_batch(size)
    out = output_size(name, size)
    border = (size - out) // 2
    labels = labels[:, border : border + out, border : border + out]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    losses = []
    for _ in range(8):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.99 * losses[0], losses
