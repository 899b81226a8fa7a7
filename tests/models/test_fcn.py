"""FCN-32s/16s/8s: sizes, parameter count against Long et al., stage-wise initialisation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from mammotools.errors import InputError
from mammotools.models import build_model, init_from_previous_stage
from mammotools.models.fcn import FCN
from mammotools.models.layers import bilinear_kernel, upsample2x


def test_fcn8_at_the_papers_input_gives_the_input_size(seeded: None) -> None:
    model = build_model("fcn8", 2).eval()  # width 1: the full VGG16
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 256))
    assert out.shape == (1, 2, 256, 256)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["fcn32", "fcn16", "fcn8"])
def test_output_is_the_input_size_also_non_square(name: str, seeded: None) -> None:
    model = build_model(name, 5, width=0.25).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 256, 256)).shape == (2, 5, 256, 256)
        assert model(torch.randn(1, 3, 96, 160)).shape == (1, 5, 96, 160)


def test_parameter_count_matches_long_et_al(parameter_count: Callable[[nn.Module], int]) -> None:
    with torch.device("meta"):  # shapes only: no memory, no init time
        fcn8 = build_model("fcn8", 21)
        vgg16 = torchvision.models.vgg16()
    # VGG16 without fc8 (4096 x 1000 + 1000), plus score_fr (4096 x 21 + 21), score_pool4
    # (512 x 21 + 21), score_pool3 (256 x 21 + 21) and two 4x4 transposed convs (21 x 21 x 16, no bias)
    heads = (4096 * 21 + 21) + (512 * 21 + 21) + (256 * 21 + 21) + 2 * 21 * 21 * 16
    expected = parameter_count(vgg16) - (4096 * 1000 + 1000) + heads
    assert parameter_count(fcn8) == expected == 134_376_863
    # Long et al.'s 134.5M also counts the final x8 upsampling as a (frozen) 16x16 transposed
    # conv, 21 x 21 x 256 weights; ours is the fixed bilinear kernel, not a parameter.
    assert round((expected + 21 * 21 * 256) / 1e5) == 1345


def test_refuses_sizes_not_divisible_by_32() -> None:
    model = build_model("fcn32", 2, width=0.125)
    with pytest.raises(InputError, match="224 or 256"):
        model(torch.randn(1, 3, 250, 256))


def test_transposed_conv_starts_as_bilinear_interpolation() -> None:
    x = torch.randn(2, 3, 5, 7)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(upsample2x(x, bilinear_kernel(3)), expected, atol=1e-6)  # the edges too


@pytest.mark.parametrize("relu", [False, True])
def test_each_stage_starts_from_the_previous_ones_output(relu: bool, seeded: None) -> None:
    fcn32 = FCN(3, 0.125, stride=32, relu_after_upsampling=relu).eval()
    if relu:  # the paper's ReLU after the transposed conv passes non-negative scores only
        with torch.no_grad():
            fcn32.score_fr.bias += 5.0
    fcn16 = FCN(3, 0.125, stride=16, relu_after_upsampling=relu).eval()
    loaded = init_from_previous_stage(fcn16, fcn32.state_dict())
    assert loaded[0] == "features.0" and loaded[-3:] == ["fc6", "fc7", "score_fr"]
    for key, value in fcn32.state_dict().items():
        assert torch.equal(fcn16.state_dict()[key], value), key
    assert not fcn16.score_pool4.weight.any()  # the new skip starts at zero
    fcn8 = FCN(3, 0.125, stride=8, relu_after_upsampling=relu).eval()
    assert "upscore2" in init_from_previous_stage(fcn8, fcn16.state_dict())
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        out32, out16, out8 = fcn32(x), fcn16(x), fcn8(x)
    if not relu:
        assert (out32 < 0).any()  # negative scores too, passed unchanged
    assert torch.equal(out16, out32)
    assert torch.equal(out8, out16)


def test_stages_in_the_wrong_order_are_refused() -> None:
    fcn16 = build_model("fcn16", 3, width=0.125)
    with pytest.raises(InputError, match="score_pool4"):
        init_from_previous_stage(build_model("fcn32", 3, width=0.125), fcn16.state_dict())
    with pytest.raises(InputError, match="score_fr"):  # another num_classes
        init_from_previous_stage(fcn16, build_model("fcn32", 4, width=0.125).state_dict())
