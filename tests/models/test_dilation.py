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
from mammotools.models.dilation import CONTEXT_DILATIONS, ContextModule, Dilation10, identity_init


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
    context = ContextModule(4, noise_std=0.0)  # the pure identity (Yu & Koltun eq. 4)
    assert [conv.dilation[0] for conv in context.layers] == [1, 1, 2, 4, 8, 16, 32, 64, 1]
    scores = torch.randn(2, 4, 30, 30)
    with torch.no_grad():
        assert torch.equal(context(scores.relu()), scores.relu())  # identity on what its ReLUs pass
        out = context(scores)
    assert torch.equal(out, scores.relu())  # Yu & Koltun's ReLUs clip negative scores
    positive = scores.amax(dim=1) > 0
    assert torch.equal(out.argmax(1)[positive], scores.argmax(1)[positive])


def test_noisy_identity_context_passes_the_scores_through_approximately(seeded: None) -> None:
    context = ContextModule(4)  # the reference's init: identity + N(0, 0.01^2) off the identity taps
    scores = torch.randn(2, 4, 30, 30).abs()  # non-negative, so only the noise makes a difference
    with torch.no_grad():
        out = context(scores)
    error = ((out - scores).norm() / scores.norm()).item()
    assert 0.01 < error < 0.25  # seed 0: 0.13 (ten layers, each adding the noise of its 35 taps)
    assert (out.argmax(1) == scores.argmax(1)).float().mean() > 0.8  # seed 0: 0.89 of the pixels keep their class


def test_context_stage_starts_from_the_front_stage(seeded: None) -> None:
    front = build_model("dilation10-front", 3, width=0.125).eval()
    with torch.no_grad():
        front.front.final.bias += 5.0  # positive scores: the context's ReLUs pass them unchanged
    context = build_model("dilation10-context", 3, width=0.125).eval()
    loaded = init_from_previous_stage(context, front.state_dict())
    assert loaded[0] == "front.features.0" and loaded[-1] == "front.final"
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        noisy = context(x)
        assert context.context is not None
        for conv in (*context.context.layers, context.context.final):
            identity_init(conv)  # the noise left out: then exactly the front's output
        assert torch.equal(context(x), front(x))
    # with the reference's noise, close to it: ten layers, each adding the noise of its 27 taps
    with torch.no_grad():
        error = ((noisy - front(x)).norm() / front(x).norm()).item()
    assert 0.01 < error < 0.25  # seed 0: 0.12
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


def test_front_scores_start_at_the_references_std(seeded: None) -> None:
    front = build_model("dilation10-front", 19, width=0.25).front
    weight = front.final.weight  # 19 x 1024 draws
    assert 0.0009 < weight.std().item() < 0.0011  # fyu/dilation: gaussian, std 0.001
    assert not front.final.bias.any()


def test_context_starts_as_identity_plus_the_references_noise(seeded: None) -> None:
    context = ContextModule(8)
    noise = []
    for conv in (*context.layers, context.final):
        centre = conv.kernel_size[0] // 2
        identity = torch.zeros_like(conv.weight, dtype=torch.bool)
        identity[range(8), range(8), centre, centre] = True
        assert torch.equal(conv.weight[identity], torch.ones(8))  # Yu & Koltun eq. 5: exactly 1 there
        noise.append(conv.weight[~identity])
        assert not conv.bias.any()
    drawn = torch.cat(noise)  # 9 x (8 x 8 x 9 - 8) + (64 - 8) draws
    assert abs(drawn.mean().item()) < 0.001 and 0.0095 < drawn.std().item() < 0.0105  # N(0, 0.01^2)
    assert torch.equal(ContextModule(8, noise_std=0.0).final.weight[:, :, 0, 0], torch.eye(8))
