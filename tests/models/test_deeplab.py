"""DeepLabV3-ResNet18: 769 px, output stride 8, GroupNorm only, torchvision's names."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torchvision
from torch import nn

from mammotools.models import build_model, output_size
from mammotools.models.deeplab import DeepLabV3
from mammotools.models.layers import group_count
from mammotools.models.weights import _resnet_source


def test_769_at_width_1(seeded: None) -> None:
    model = build_model("deeplabv3-r18", 2).eval()
    assert isinstance(model, DeepLabV3)
    x = torch.randn(1, 3, 769, 769)
    with torch.no_grad():
        assert model.backbone(x).shape == (1, 512, 97, 97)  # output stride 8
        assert model(x).shape == (1, 2, 769, 769)
    assert output_size("deeplabv3-r18", 769) == 769


def test_parameter_count(parameter_count: Callable[[nn.Module], int]) -> None:
    with torch.device("meta"):
        model = build_model("deeplabv3-r18", 19)
        resnet18 = torchvision.models.resnet18()
    # ResNet-18 without fc (GroupNorm's affine has BatchNorm's parameter count) + ASPP: 1x1 and
    # three 3x3 convs 512 -> 256 without bias, each + GroupNorm (2 x 256); image pooling 1x1 conv
    # with bias; projection 1280 -> 256 + GroupNorm; classifier 256 -> 19 with bias.
    backbone = parameter_count(resnet18) - (512 * 1000 + 1000)
    aspp = (512 * 256 + 512) + 3 * (512 * 256 * 9 + 512) + (512 * 256 + 256) + (1280 * 256 + 512)
    assert parameter_count(model) == backbone + aspp + 256 * 19 + 19 == 15_312_979


def test_group_norm_everywhere_and_atrous_blocks() -> None:
    model = build_model("deeplabv3-r18", 2, width=0.25)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 25  # 20 in the backbone, 5 in ASPP (not in its image pooling)
    assert all(m.num_channels % m.num_groups == 0 and m.num_groups <= 32 for m in norms)
    assert group_count(64) == 32 and group_count(48) == 24 and group_count(8) == 8
    backbone = model.get_submodule("backbone")
    for layer, rate in (("layer3", 2), ("layer4", 4)):
        convs = [m for m in backbone.get_submodule(layer).modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        assert [c.dilation for c in convs] == [(rate, rate)] * 4 and all(c.stride == (1, 1) for c in convs)
    aspp_rates = [b[0].dilation[0] for b in model.get_submodule("aspp").branches]
    assert aspp_rates == [1, 12, 24, 36]


def test_names_are_torchvisions() -> None:
    with torch.device("meta"):
        ours = build_model("deeplabv3-r18", 2).get_submodule("backbone").state_dict()
        theirs = torchvision.models.resnet18().state_dict()
    mapped = {_resnet_source(key) for key in ours}
    assert mapped <= set(theirs)
    left = {k for k in set(theirs) - mapped if not k.startswith("fc.")}
    assert all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in left)  # BatchNorm statistics only


def test_any_input_size(seeded: None) -> None:
    model = build_model("deeplabv3-r18", 3, width=0.125).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 65, 90)).shape == (1, 3, 65, 90)


def test_backbone_kaiming_fan_out_head_pytorch_default(seeded: None) -> None:
    """The documented init: torchvision's ResNet init in the backbone, PyTorch's default in ASPP and classifier."""
    model = build_model("deeplabv3-r18", 19, width=0.5)
    assert isinstance(model, DeepLabV3)
    conv = model.backbone.layer4[0].conv1  # 256 -> 256 x 3 x 3 at width 0.5
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.02)
    assert all(
        torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any()
        for m in model.modules()
        if isinstance(m, nn.GroupNorm)
    )
    head = [*(branch[0] for branch in model.aspp.branches), model.aspp.pooling[1], model.aspp.project[0], model.classifier]
    for m in head:
        assert isinstance(m, nn.Conv2d)
        bound = 1 / (m.weight[0].numel()) ** 0.5  # 1 / sqrt(fan_in)
        assert m.weight.abs().max().item() <= bound
        assert m.weight.std().item() == pytest.approx(bound / 3**0.5, rel=0.05)  # uniform on [-bound, bound]
        if m.bias is not None:
            assert m.bias.abs().max().item() <= bound and m.bias.any()
