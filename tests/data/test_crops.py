"""The torch Dataset over crop files: deterministic items, padding ignored, sizes checked, task classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_dataset

from mammotools.crops import CropSettings, make_crops, open_crop_dataset
from mammotools.data import CropSegmentationSet, check_crop_size, task_classes, training_sets
from mammotools.errors import InputError


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("datacrops")
    dataset = make_dataset(root)
    make_crops(dataset, root / "c", CropSettings(size=128, per_image=2))  # the 90x100 image is padded
    return root / "c"


def test_items_are_a_function_of_seed_epoch_and_index(crops: Path) -> None:
    dataset = open_crop_dataset(crops)
    classes = task_classes(dataset)
    a = CropSegmentationSet(dataset.train, classes.lut, 64, 64, train=True, seed=3)
    b = CropSegmentationSet(dataset.train, classes.lut, 64, 64, train=True, seed=3)
    x1, y1 = a[(2, 1)]
    x2, y2 = b[(2, 1)]
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = a[(3, 1)]
    assert not torch.equal(x1, x3)  # another epoch, another window
    assert x1.shape == (3, 64, 64) and x1.dtype == torch.float32 and float(x1.min()) >= -0.5 and float(x1.max()) <= 0.5


def test_padding_is_ignored_never_background(crops: Path) -> None:
    dataset = open_crop_dataset(crops)
    padded = [f for f in dataset.files if f.source == "s2_R_CC"]
    assert padded
    classes = task_classes(dataset)
    val = CropSegmentationSet(padded, classes.lut, 128, 128, train=False)
    _, y = val[0]
    assert int((y == 255).sum()) == 128 * 128 - 90 * 100  # the padding, exactly
    assert int((y == classes.names.index("Background")).sum()) < 128 * 128 - 90 * 100


def test_tumor_task_and_class_shares(crops: Path) -> None:
    dataset = open_crop_dataset(crops)
    two = task_classes(dataset, "tumor")
    assert two.names == ["Non-tumor", "Tumor"]
    tumor = dataset.table.find("Tumor")
    assert tumor is not None and two.lut[tumor.label] == 1 and two.lut[0] == 0 and two.lut[255] == 255
    regions = task_classes(dataset)
    shares = regions.pixel_shares(dataset.train, {c.name: c.label for c in dataset.table})
    weights = {w.name: w.weight for w in dataset.class_weights}
    for name, share in zip(regions.names, shares, strict=True):
        assert weights[name] == pytest.approx(1 - share)  # the same as class_weights.json


def test_crops_smaller_than_the_input_name_the_size_to_make(crops: Path) -> None:
    dataset = open_crop_dataset(crops)
    with pytest.raises(InputError, match=r"make-crops DATASET --size 256"):
        check_crop_size(dataset, 200)
    with pytest.raises(InputError, match="--size 256"):
        training_sets(dataset, task_classes(dataset).lut, 200, 200, 0)
    small = CropSegmentationSet(dataset.train, task_classes(dataset).lut, 200, 200, train=True)
    with pytest.raises(InputError, match="smaller than the model's input"):
        small[0]
    assert np.isfinite(task_classes(dataset).lut).all()


def test_scale_resizes_crops_before_the_window(crops: Path) -> None:
    dataset = open_crop_dataset(crops)
    classes = task_classes(dataset)
    padded = [f for f in dataset.files if f.source == "s2_R_CC"]
    val = CropSegmentationSet(padded, classes.lut, 64, 64, train=False, scale=0.5)
    x, y = val[0]
    assert x.shape == (3, 64, 64)  # the whole 128 px crop at half resolution
    assert int((y == 255).sum()) == 64 * 64 - 45 * 50  # the 90x100 image halves to 45x50; the rest is padding
    full = CropSegmentationSet(padded, classes.lut, 128, 128, train=False)
    _, y_full = full[0]
    assert torch.equal(y, y_full[::2, ::2])  # labels resized by nearest neighbour: no invented values


def test_scale_names_the_crop_size_to_make(crops: Path) -> None:
    dataset = open_crop_dataset(crops)
    check_crop_size(dataset, 64, scale=0.5)  # 128 px at half resolution: 64, enough
    with pytest.raises(InputError, match=r"at --scale 0.25\); .*--size 256"):
        check_crop_size(dataset, 64, scale=0.25)
    small = CropSegmentationSet(dataset.train, task_classes(dataset).lut, 100, 100, train=True, scale=0.5)
    with pytest.raises(InputError, match="at least 200 px are needed: `mammotools make-crops DATASET --size 256"):
        small[0]
