"""smp models: built offline on any encoder, their input sizes, width on the decoder."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from mammotools.errors import InputError
from mammotools.models import build_model, output_size, valid_input_size


@pytest.mark.parametrize("name", ["smp-unet", "smp-fpn", "smp-deeplabv3plus"])
def test_paper_crop_size_in_same_size_out(name: str, seeded: None) -> None:
    model = build_model(name, 4, encoder="resnet18").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 256, 256)).shape == (1, 4, 256, 256)
    assert output_size(name, 256) == 256


def test_input_size_rules_of_smp_0_6() -> None:
    assert output_size("smp-unet", 900) == 900  # smp 0.6's U-Net resizes to each skip
    assert valid_input_size("smp-fpn", 900) == 896
    assert valid_input_size("smp-deeplabv3plus", 900) == 896 and output_size("smp-deeplabv3plus", 880) == 880
    with pytest.raises(InputError, match="multiple of 32"):
        output_size("smp-fpn", 880)


def test_width_scales_the_decoder_only(parameter_count: Callable[[nn.Module], int]) -> None:
    full = build_model("smp-unet", 2, encoder="resnet18")
    thin = build_model("smp-unet", 2, encoder="resnet18", width=0.125)
    assert parameter_count(full.encoder) == parameter_count(thin.encoder)
    assert parameter_count(thin.decoder) < parameter_count(full.decoder) / 10


def test_unknown_encoder_lists_the_valid_ones() -> None:
    with pytest.raises(InputError, match=r"unknown smp encoder 'resnet7'.*resnet18"):
        build_model("smp-fpn", 2, encoder="resnet7")
