"""Dilation10: sizes, parameter count, identity context, frozen front, stage initialisation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from mammotools.errors import InputError
from mammotools.models import build_model, freeze_front, init_from_previous_stage, output_size, unfreeze_front
from mammotools.models.dilation import CONTEXT_DILATIONS, ContextModule, Dilation10


@pytest.mark.slow  # about 8 s on 2 cores: fc6 (7x7, 512 -> 4096) runs on 79 x 79 maps
def test_632_at_width_1(seeded: None) -> None:
    model = build_model("dilation10-global", 2).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 632, 632)).shape == (1, 2, 632, 632)


@pytest.mark.parametrize("name", ["dilation10-front", "dilation10-global"])
def test_632_at_reduced_width(name: str, seeded: None) -> None:
    model = build_model(name, 2, width=0.125).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 632, 632)).shape == (1, 2, 632, 632)
        assert model.front(torch.randn(1, 3, 632, 632)).shape == (1, 2, 79, 79)  # output stride 8
    assert output_size(name, 632) == 632


def test_parameter_count(parameter_count: Callable[[nn.Module], int]) -> None:
    with torch.device("meta"):
        model = build_model("dilation10-global", 19)
        vgg16 = torchvision.models.vgg16()
    # VGG16 without fc8 (dilation changes no shape), a 1x1 score layer 4096 -> 19, then the
    # context module: nine 3x3 convs 19 -> 19 and one 1x1, all with bias
    context = len(CONTEXT_DILATIONS) * (19 * 19 * 9 + 19) + 19 * 19 + 19
    expected = parameter_count(vgg16) - (4096 * 1000 + 1000) + (4096 * 19 + 19) + context
    assert parameter_count(model) == expected == 134_368_179


def test_front_layout_is_dilated_vgg16() -> None:
    model = build_model("dilation10-front", 2, width=0.125)
    features = model.front.features
    assert isinstance(features[23], torch.nn.Identity) and isinstance(features[30], torch.nn.Identity)  # pool4, pool5
    assert [features[i].dilation for i in (24, 26, 28)] == [(2, 2)] * 3
    assert model.front.fc6.dilation == (4, 4) and model.front.fc6.kernel_size == (7, 7)
    assert model.context is None


def test_identity_context_passes_the_scores_through(seeded: None) -> None:
    context = ContextModule(4)
    assert [conv.dilation[0] for conv in context.layers] == [1, 1, 2, 4, 8, 16, 32, 64, 1]
    scores = torch.randn(2, 4, 30, 30)
    with torch.no_grad():
        assert torch.equal(context(scores.relu()), scores.relu())  # identity on what its ReLUs pass
        out = context(scores)
    assert torch.equal(out, scores.relu())  # Yu & Koltun's ReLUs clip negative scores
    positive = scores.amax(dim=1) > 0
    assert torch.equal(out.argmax(1)[positive], scores.argmax(1)[positive])


def test_context_stage_starts_from_the_front_stage(seeded: None) -> None:
    front = build_model("dilation10-front", 3, width=0.125).eval()
    with torch.no_grad():
        front.front.final.bias += 5.0  # positive scores: the context's ReLUs pass them unchanged
    context = build_model("dilation10-context", 3, width=0.125).eval()
    loaded = init_from_previous_stage(context, front.state_dict())
    assert loaded[0] == "front.features.0" and loaded[-1] == "front.final"
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(context(x), front(x))
    glob = build_model("dilation10-global", 3, width=0.125)
    assert "context.final" in init_from_previous_stage(glob, context.state_dict())
    assert all(p.requires_grad for p in glob.parameters())


def test_frozen_front_is_unchanged_by_an_optimizer_step(seeded: None) -> None:
    model = build_model("dilation10-context", 3, width=0.125)  # built frozen, its training stage
    assert isinstance(model, Dilation10) and model.front_frozen
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.005)  # every parameter, even
    model.train()
    assert not model.front.training  # no dropout in the frozen front
    x = torch.randn(2, 3, 64, 64)
    for _ in range(2):
        optimizer.zero_grad()
        F.cross_entropy(model(x), torch.randint(0, 3, (2, 64, 64))).backward()
        optimizer.step()
    after = model.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in before if k.startswith("front."))
    assert any(not torch.equal(after[k], before[k]) for k in before if k.startswith("context."))
    unfreeze_front(model)
    assert all(p.requires_grad for p in model.parameters()) and model.front.training


def test_freeze_front_wants_a_dilation_model() -> None:
    with pytest.raises(InputError, match="Dilation10"):
        freeze_front(build_model("fcn32", 2, width=0.125))


def test_input_must_be_a_multiple_of_8() -> None:
    with pytest.raises(InputError, match="624 or 632"):
        output_size("dilation10-front", 630)
