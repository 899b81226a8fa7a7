"""U-Net as published: 572 -> 388, 31.03 M parameters, valid sizes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from mammotools.errors import InputError
from mammotools.models import build_model, output_size
from mammotools.models.unet import centre_crop


def test_572_in_388_out_at_width_1(seeded: None) -> None:
    model = build_model("unet", 2).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 572, 572))
    assert out.shape == (1, 2, 388, 388)
    assert output_size("unet", 572) == 388


def test_parameter_count_is_the_papers(parameter_count: Callable[[nn.Module], int]) -> None:
    with torch.device("meta"):
        model = build_model("unet", 2)

    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + cout

    channels = [3, 64, 128, 256, 512, 1024]
    down = sum(conv(channels[i], channels[i + 1], 3) + conv(channels[i + 1], channels[i + 1], 3) for i in range(5))
    up = sum(conv(c * 2, c, 2) + conv(c * 2, c, 3) + conv(c, c, 3) for c in (512, 256, 128, 64))  # up-conv 2x2, two 3x3
    assert parameter_count(model) == down + up + conv(64, 2, 1) == 31_031_810


def test_non_square_and_smallest_input(seeded: None) -> None:
    model = build_model("unet", 3, width=0.125).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 188, 204)).shape == (1, 3, 4, 20)


def test_invalid_size_names_the_nearest_valid_ones() -> None:
    model = build_model("unet", 2, width=0.125)
    with pytest.raises(InputError, match="556 or 572"):
        model(torch.randn(1, 3, 570, 572))
    with pytest.raises(InputError, match="556 or 572"):
        output_size("unet", 570)


def test_centre_crop_takes_the_middle() -> None:
    x = torch.arange(36.0).reshape(1, 1, 6, 6)
    assert centre_crop(x, torch.Size([2, 2])).flatten().tolist() == [14.0, 15.0, 20.0, 21.0]


def test_dropout_after_the_last_two_contracting_stages(seeded: None) -> None:
    """As the authors' release (d3c and d4c): 0.5 on the 4th level's output, before pool4 and its skip, and on the bottom."""
    model = build_model("unet", 2, width=0.125).train()
    seen: list[tuple[float, torch.Size]] = []

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        assert isinstance(module, nn.Dropout)
        seen.append((module.p, inputs[0].shape))

    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.register_forward_hook(record)
    model(torch.randn(1, 3, 188, 188))
    # 188 -> 184 -> 92 -> 88 -> 44 -> 40 -> 20 -> 16 (d3c, 64 channels) -> 8 -> 4 (d4c, 128 channels)
    assert seen == [(0.5, torch.Size([1, 64, 16, 16])), (0.5, torch.Size([1, 128, 4, 4]))]
    # in place, as Caffe's: the skip of the 4th level gets the dropped map too, not the one before
    skips: list[torch.Tensor] = []
    model.up_conv[0].register_forward_pre_hook(lambda module, inputs: skips.append(inputs[0][:, :64]))
    x = torch.randn(1, 3, 188, 188)
    with torch.no_grad():
        model.eval()(x)
        model.train()(x)
    kept, trained = skips[0], skips[1]
    dropped = (kept > 0) & (trained == 0)
    assert 0.3 < dropped.sum() / (kept > 0).sum() < 0.7
    assert torch.allclose(trained[~dropped], 2 * kept[~dropped])  # the others scaled by 1 / (1 - p)
