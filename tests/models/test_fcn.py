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
from mammotools.models.fcn import FCN, FcnStride
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
    # conv, 21 x 21 x 256 weights; ours is F.interpolate, no parameter.
    assert round((expected + 21 * 21 * 256) / 1e5) == 1345


def test_refuses_sizes_not_divisible_by_32() -> None:
    model = build_model("fcn32", 2, width=0.125)
    with pytest.raises(InputError, match="224 or 256"):
        model(torch.randn(1, 3, 250, 256))


def test_transposed_conv_starts_as_bilinear_interpolation() -> None:
    x = torch.randn(2, 3, 5, 7)
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(upsample2x(x, bilinear_kernel(3)), expected, atol=1e-6)  # the edges too


def _corner_cut_bound(scores: torch.Tensor) -> float:
    """How far a bilinear x2 then x(k/2) upsampling of ``scores`` can be from one bilinear xk step.

    1/8 of the largest second difference along each axis, edges replicated (see fcn.py).
    """
    p = F.pad(scores, (1, 1, 1, 1), mode="replicate")
    centre = p[..., 1:-1, 1:-1]
    along_h = (p[..., 2:, 1:-1] - 2 * centre + p[..., :-2, 1:-1]).abs().amax()
    along_w = (p[..., 1:-1, 2:] - 2 * centre + p[..., 1:-1, :-2]).abs().amax()
    return float(along_h + along_w) / 8


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
        scores32, scores16 = fcn32.coarse_scores(x), fcn16.coarse_scores(x)
    if not relu:
        assert (out32 < 0).any()  # negative scores too, passed unchanged
    # The same map, only upsampled differently: one bilinear x32 step against x2 then x16. They
    # differ where the pool5 scores bend, by at most 1/8 of their second differences.
    bound32 = _corner_cut_bound(scores32)
    assert 0 < (out16 - out32).abs().max() <= bound32 + 1e-5
    assert (out8 - out16).abs().max() <= _corner_cut_bound(scores16) + 1e-5
    # where the pool5 scores are affine (rising along the height), the stages agree exactly, but
    # at the edges: there the replicated scores bend
    ramp = (torch.arange(3.0).view(1, 1, 3, 1) + 4.0).expand(2, 3, 3, 2)
    for model in (fcn32, fcn16):
        model.score_fr.register_forward_hook(lambda module, inputs, output: ramp)
    with torch.no_grad():
        out32, out16 = fcn32(x), fcn16(x)
    assert torch.allclose(out16[..., 24:72, :], out32[..., 24:72, :], atol=1e-5)  # pool5 centres 0.25 .. 1.75
    assert (out16 - out32).abs().max() == pytest.approx(1 / 8, abs=0.01)  # at the outer centres


def test_stages_in_the_wrong_order_are_refused() -> None:
    fcn16 = build_model("fcn16", 3, width=0.125)
    with pytest.raises(InputError, match="score_pool4"):
        init_from_previous_stage(build_model("fcn32", 3, width=0.125), fcn16.state_dict())
    with pytest.raises(InputError, match="score_fr"):  # another num_classes
        init_from_previous_stage(fcn16, build_model("fcn32", 4, width=0.125).state_dict())


@pytest.mark.parametrize(("stride", "layer"), [(32, "score_fr"), (16, "score_pool4"), (8, "score_pool3")])
def test_final_upsampling_is_one_bilinear_step(stride: FcnStride, layer: str, seeded: None) -> None:
    """An impulse in the last score map that reaches the output comes out as F.interpolate's bilinear tent.

    The scores of ``layer`` are replaced by one 1 on its stride-``stride`` grid, the other score
    layers by zeros (the transposed convs have no bias, so they pass nothing on).
    """
    model = FCN(2, 0.125, stride=stride).eval()
    x = torch.randn(1, 3, 256, 192)
    side = (256 // stride, 192 // stride)
    impulse = torch.zeros(1, 2, *side)
    impulse[0, 1, side[0] // 2, side[1] // 3] = 1.0

    def replace(module: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        return impulse if module is model.get_submodule(layer) else torch.zeros_like(output)

    for name in ("score_fr", "score_pool4", "score_pool3"):
        if hasattr(model, name):
            model.get_submodule(name).register_forward_hook(replace)
    with torch.no_grad():
        out = model(x)
    expected = F.interpolate(impulse, size=(256, 192), mode="bilinear", align_corners=False)
    assert torch.allclose(out, expected, atol=1e-6)
    assert out.max() == expected.max() > 0.87  # not damped: (1 - 1/16)^2 at x8, (1 - 1/64)^2 at x32
