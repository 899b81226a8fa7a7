"""ImageNet weights from local torchvision / smp state dicts; refusals of wrong files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from mammotools.errors import InputError
from mammotools.models import build_model, load_pretrained


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """torchvision's VGG16 state dict (random weights, ImageNet's names and shapes), saved to a file."""
    path = tmp_path_factory.mktemp("weights") / "vgg16.pth"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        torch.save(torchvision.models.vgg16(weights=None).state_dict(), path)
    return path


def test_vgg16_into_fcn(vgg16_file: Path) -> None:
    model = build_model("fcn8", 21)
    loaded = load_pretrained(model, "fcn8", vgg16_file)
    assert loaded == [f"features.{i}" for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)] + ["fc6", "fc7"]
    state = torch.load(vgg16_file, weights_only=True)
    assert torch.equal(model.features[28].weight, state["features.28.weight"])
    assert torch.equal(model.fc6.weight, state["classifier.0.weight"].reshape(4096, 512, 7, 7))
    assert torch.equal(model.fc7.weight.flatten(1), state["classifier.3.weight"])
    assert not model.score_pool3.weight.any()  # the heads keep their own initialisation


def test_vgg16_into_dilation_front(vgg16_file: Path) -> None:
    model = build_model("dilation10-front", 2)
    loaded = load_pretrained(model, "dilation10-front", vgg16_file)
    assert loaded[0] == "front.features.0" and loaded[-1] == "front.fc7"
    assert torch.equal(model.front.features[0].bias, torch.load(vgg16_file, weights_only=True)["features.0.bias"])


def test_refuses_another_width(vgg16_file: Path) -> None:
    model = build_model("fcn32", 2, width=0.5)
    before = model.features[0].weight.clone()
    with pytest.raises(InputError, match=r"features.0.weight: the model has shape \(32, 3, 3, 3\).*width 1.0"):
        load_pretrained(model, "fcn32", vgg16_file)
    assert torch.equal(model.features[0].weight, before)  # nothing copied


def test_refuses_wrong_files(tmp_path: Path) -> None:
    model = build_model("fcn32", 2, width=0.125)
    with pytest.raises(InputError, match=r"does not exist.*nothing is downloaded"):
        load_pretrained(model, "fcn32", tmp_path / "missing.pth")
    text = tmp_path / "notes.pth"
    text.write_text("not weights")
    with pytest.raises(InputError, match="is not a PyTorch state dict file"):
        load_pretrained(model, "fcn32", text)
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(InputError, match="holds a list, not a state dict"):
        load_pretrained(model, "fcn32", listing)
    resnet = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), resnet)
    with pytest.raises(InputError, match=r"no features.0.weight.*vgg16"):
        load_pretrained(model, "fcn32", resnet)
    with pytest.raises(InputError, match=r"the model is a FCN, not a deeplabv3-r18"):
        load_pretrained(model, "deeplabv3-r18", resnet)


def test_resnet18_into_deeplab(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    source = torchvision.models.resnet18()
    with torch.no_grad():
        source.layer3[1].bn2.weight.uniform_()  # BatchNorm scales other than 1, to see them arrive
    torch.save(source.state_dict(), path)
    model = build_model("deeplabv3-r18", 2)
    loaded = load_pretrained(model, "deeplabv3-r18", path)
    assert loaded[:2] == ["backbone.conv1", "backbone.gn1"] and "backbone.layer4.0.downsample.0" in loaded
    assert torch.equal(model.backbone.layer3[1].gn2.weight, source.layer3[1].bn2.weight)
    assert torch.equal(model.backbone.layer4[1].conv2.weight, source.layer4[1].conv2.weight)


def test_smp_encoder_weights(tmp_path: Path) -> None:
    donor = build_model("smp-fpn", 2, encoder="resnet18")
    path = tmp_path / "encoder.pth"
    torch.save(donor.encoder.state_dict(), path)
    model = build_model("smp-unet", 5, encoder="resnet18")
    loaded = load_pretrained(model, "smp-unet", path)
    assert loaded[0] == "encoder.conv1"
    ours, theirs = model.encoder.state_dict(), donor.encoder.state_dict()
    assert all(torch.equal(ours[key], theirs[key]) for key in theirs)
    resnet = tmp_path / "resnet18.pth"  # torchvision's names are smp's ResNet encoder's, plus fc
    torch.save(torchvision.models.resnet18().state_dict(), resnet)
    assert load_pretrained(model, "smp-unet", resnet) == loaded
    with pytest.raises(InputError, match=r"no layer1\.2\.conv1\.weight"):  # resnet34 has a third block in layer1
        load_pretrained(build_model("smp-unet", 5, encoder="resnet34"), "smp-unet", path)


def test_no_backbone_no_weights(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no ImageNet backbone"):
        load_pretrained(build_model("unet", 2, width=0.125), "unet", tmp_path / "x.pth")
