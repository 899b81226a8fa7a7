"""The crop dataset's public reader (make-crops and augment folders): files, bits, weights, settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset
from PIL import Image

from mammotools.augment import augment_dataset
from mammotools.crops import CropSettings, make_crops, open_crop_dataset, read_class_weights
from mammotools.errors import InputError, MissingFileError


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("croplayout")
    dataset = make_dataset(root)
    make_crops(dataset, root / "c", CropSettings(size=48, per_image=3, task="tumor"))
    augment_dataset(root / "c", root / "a", ("flip_lr", "noise"))
    return dataset, root / "c", root / "a"


def test_crop_folder(folders: tuple[Path, Path, Path]) -> None:
    _, crops, _ = folders
    opened = open_crop_dataset(crops)
    assert opened.kind == "crops" and opened.size == 48
    assert opened.crop_settings == CropSettings(size=48, per_image=3, task="tumor")
    assert [c.name for c in opened.table] == ["Tumor", "Non-tumor"]
    assert len(opened.files) == 18 and len(opened.train) + len(opened.val) == 18
    assert {f.split for f in opened.val} == {"val"} and len({f.subject for f in opened.val}) == 1
    for f in opened.files:
        assert f.variant == "original" and f.bits == 12  # 12-bit data in uint16
        label = np.array(Image.open(f.label_path))
        assert label.shape == (48, 48) and f.pixels["Tumor"] == int((label == 1).sum())
        assert np.array(Image.open(f.image_path)).dtype == np.uint16
    weights = {w.name: w for w in opened.class_weights}
    train_tumor = sum(f.pixels["Tumor"] for f in opened.train)
    share = train_tumor / (len(opened.train) * 48 * 48)
    assert weights["Tumor"].weight == pytest.approx(1 - share) and weights["Tumor"].percent == pytest.approx(100 * share)
    assert weights["Non-tumor"].weight == pytest.approx(share)
    assert read_class_weights(crops / "class_weights.json") == opened.class_weights


def test_augmented_folder(folders: tuple[Path, Path, Path]) -> None:
    _, crops, aug = folders
    base = open_crop_dataset(crops)
    opened = open_crop_dataset(aug)
    assert opened.kind == "augmented" and opened.size == 48
    assert len(opened.train) == 3 * len(base.train) and len(opened.val) == len(base.val)
    assert {f.variant for f in opened.train} == {"original", "flip_lr", "noise"}
    assert {f.variant for f in opened.val} == {"original"}
    assert all(f.bits == 12 for f in opened.files)
    flipped = next(f for f in opened.train if f.variant == "flip_lr")
    original = next(f for f in opened.train if f.name == flipped.crop)
    assert np.array_equal(np.array(Image.open(flipped.label_path)), np.array(Image.open(original.label_path))[:, ::-1])


def test_whole_image_augment_has_no_crop_size(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    dataset, _, _ = folders
    augment_dataset(dataset, tmp_path / "w", ("flip_ud",))
    opened = open_crop_dataset(tmp_path / "w")
    assert opened.size is None and opened.crop_settings is None
    assert {f.bits for f in opened.train if f.variant == "flip_ud"} == {12}


def test_refusals(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    dataset, crops, _ = folders
    with pytest.raises(MissingFileError, match="not found"):
        open_crop_dataset(tmp_path / "none")
    with pytest.raises(InputError, match="a file of a crop dataset"):
        open_crop_dataset(crops / "manifest.csv")
    with pytest.raises(InputError, match="not a crop dataset"):
        open_crop_dataset(dataset)
    bad = tmp_path / "weights.json"
    bad.write_text(json.dumps({"classes": [{"name": "Tumor"}]}))
    with pytest.raises(InputError, match="not a class weights file"):
        read_class_weights(bad)


def test_damaged_settings_weights_and_rows(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import shutil

    _, crops, _ = folders
    copy = tmp_path / "c"
    shutil.copytree(crops, copy)
    settings = json.loads((copy / "settings.json").read_text())
    settings["settings"]["added_later"] = 1  # a key a newer version may write: ignored
    (copy / "settings.json").write_text(json.dumps(settings))
    assert open_crop_dataset(copy).size == 48
    del settings["settings"]["size"]
    (copy / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(InputError, match="no crop size recorded"):
        _ = open_crop_dataset(copy).size
    with pytest.raises(MissingFileError, match="not found"):
        read_class_weights(tmp_path / "none.json")
    with pytest.raises(InputError, match="cannot be read"):
        read_class_weights(copy)
    text = (crops / "manifest.csv").read_text().splitlines()
    (copy / "manifest.csv").write_text("\n".join([text[0], ",".join(text[1].split(",")[:2])]) + "\n")
    with pytest.raises(InputError, match=r"manifest\.csv:2: damaged row"):
        open_crop_dataset(copy)


def edited_copy(crops: Path, dest: Path, column: str, value: str) -> Path:
    """A copy of a crop folder whose manifest holds ``value`` in ``column`` of its first row."""
    import shutil

    shutil.copytree(crops, dest)
    lines = (dest / "manifest.csv").read_text().splitlines()
    header, first = lines[0].split(","), lines[1].split(",")
    first[header.index(column)] = value
    (dest / "manifest.csv").write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    return dest


@pytest.mark.parametrize(
    ("column", "value"),
    [("bits", "-3"), ("bits", "0"), ("bits", "99"), ("bits", "abc"), ("size", "abc"), ("size", "-64"), ("row0", "abc"),
     ("seed", "x1"), ("pixels_tumor", "-5")],
)  # fmt: skip
def test_manifest_values_out_of_range_are_refused_naming_the_line(
    folders: tuple[Path, Path, Path], tmp_path: Path, column: str, value: str
) -> None:
    _, crops, _ = folders
    copy = edited_copy(crops, tmp_path / "c", column, value)
    with pytest.raises(InputError, match=rf"manifest\.csv:2: damaged row \({column} '{value}': must be .*--overwrite") as err:
        open_crop_dataset(copy)
    assert "\n" not in str(err.value)


def test_undecodable_manifest_is_one_line_naming_it(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    import shutil

    _, crops, _ = folders
    shutil.copytree(crops, tmp_path / "c")
    (tmp_path / "c" / "manifest.csv").write_bytes(b"crop,split\n\xff\xfe\x80abc,train\n")
    with pytest.raises(InputError, match=r"manifest\.csv: not a readable CSV file .*--overwrite"):
        open_crop_dataset(tmp_path / "c")


def test_recorded_bits_are_checked_against_the_pixels(tmp_path: Path) -> None:
    from mammotools.crops.layout import checked_bits

    path = tmp_path / "x.png"
    twelve = np.full((4, 4), 4000, np.uint16)
    assert checked_bits(12, twelve, path) == 12
    assert checked_bits(None, twelve, path) == 12  # not recorded: found from the pixels
    assert checked_bits(8, np.full((4, 4), 255, np.uint8), path) == 8
    with pytest.raises(InputError, match=r"x\.png: the manifest records 12-bit values, but the file holds uint8 .*--overwrite"):
        checked_bits(12, np.zeros((4, 4), np.uint8), path)  # uint8 holds at most 8 bits
    with pytest.raises(InputError, match=r"records 8-bit values, but the file holds uint16 values up to 4000"):
        checked_bits(8, twelve, path)
    with pytest.raises(InputError, match="records 17-bit"):
        checked_bits(17, twelve, path)


def test_a_png_cut_short_or_zero_filled_is_not_complete(folders: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from mammotools.records import pngs_complete

    _, crops, _ = folders
    whole = sorted((crops / "train" / "images").glob("*.png"))
    assert pngs_complete(whole)
    data = whole[0].read_bytes()
    cut, zeroed = tmp_path / "cut.png", tmp_path / "zeroed.png"
    cut.write_bytes(data[: len(data) // 2])
    zeroed.write_bytes(data[:-100] + bytes(100))  # the size is right, the end never reached the disk
    for bad in (cut, zeroed, tmp_path / "missing.png", tmp_path):
        assert not pngs_complete([whole[1], bad])
