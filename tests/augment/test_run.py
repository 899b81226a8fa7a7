"""augment: each variant keeps image and labels together; only training crops are augmented."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset

from mammotools.augment import VARIANTS, apply_variant, augment_dataset, parse_variants
from mammotools.classes import load_class_table
from mammotools.crops import CropSettings, make_crops
from mammotools.errors import InputError
from mammotools.palette import read_label_png


def marked_pair() -> tuple[np.ndarray, np.ndarray]:
    """A 12-bit image with one bright 5x5 block off-centre, and its label (7) at the same place."""
    image = np.full((64, 80), 1000, np.uint16)
    label = np.full((64, 80), 13, np.uint8)
    image[10:15, 50:55] = 4000
    label[10:15, 50:55] = 7
    return image, label


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_marked_pixel_moves_with_its_label(name: str) -> None:
    image, label = marked_pair()
    out_image, out_label = apply_variant(name, image, label, np.random.default_rng(0), bits=12, fill_label=0)
    assert out_image.dtype == np.uint16 and out_label.dtype == np.uint8
    assert out_image.shape == image.shape and out_label.shape == label.shape
    assert int(out_image.max()) <= 4095  # the 12-bit depth is respected
    assert set(np.unique(out_label)) <= {0, 7, 13}  # no new label values
    if VARIANTS[name].geometric:
        # the block's centre, found in the image, carries the block's label
        smoothed = out_image.astype(float)
        r, c = np.unravel_index(np.argmax(smoothed), smoothed.shape)
        assert out_label[r, c] == 7
        assert abs(int((out_label == 7).sum()) - 25) <= 6
    else:
        assert np.array_equal(out_label, label)
        assert out_label[12, 52] == 7 and out_image[12, 52] > out_image[40, 20]


def test_flips_and_rotation_are_exact_where_they_can_be() -> None:
    image, label = marked_pair()
    img, lab = apply_variant("flip_lr", image, label, np.random.default_rng(0), 12, 0)
    assert np.array_equal(img, image[:, ::-1]) and np.array_equal(lab, label[:, ::-1])
    img, lab = apply_variant("rotate_cw", image, label, np.random.default_rng(0), 12, 0)
    assert lab[0, 0] == 0 and img[0, 0] == 0  # corners uncovered by the rotation: background, black


def test_variants_parsed_and_checked() -> None:
    assert len(parse_variants(None)) == 10
    assert parse_variants("noise, flip_lr,noise") == ("noise", "flip_lr")
    with pytest.raises(InputError, match="blur"):
        parse_variants("noise,blur")


def test_only_training_crops_are_augmented(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=2))
    summary = augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants(None), seed=3)
    crops = list(csv.DictReader((tmp_path / "c" / "manifest.csv").open()))
    n_train = sum(r["split"] == "train" for r in crops)
    assert summary.files == {"train": n_train * 11, "val": len(crops) - n_train}
    manifest = list(csv.DictReader((tmp_path / "a" / "manifest.csv").open()))
    assert {r["variant"] for r in manifest if r["split"] == "val"} == {"original"}
    val_files = {p.stem for p in (tmp_path / "a" / "val" / "images").iterdir()}
    assert val_files == {r["crop"] for r in crops if r["split"] == "val"}
    # reproducible from the seed, byte for byte
    augment_dataset(tmp_path / "c", tmp_path / "b", parse_variants(None), seed=3, workers=2)
    for p in (tmp_path / "a" / "train" / "images").iterdir():
        assert p.read_bytes() == (tmp_path / "b" / "train" / "images" / p.name).read_bytes()
    with pytest.raises(InputError, match="neither a crop dataset"):
        augment_dataset(tmp_path / "c" / "train", tmp_path / "x", parse_variants(None))
    # each row's pixel counts are those of the label file it names (kept, not recounted, where a
    # variant cannot change them)
    table = load_class_table(tmp_path / "a" / "classes.json")
    for row in manifest:
        label = read_label_png(tmp_path / "a" / row["split"] / "labels" / f"{row['file']}.png")
        counts = {k.removeprefix("pixels_"): int(v) for k, v in row.items() if k.startswith("pixels_")}
        assert counts == {c.slug: int((label == c.label).sum()) for c in table}, row["file"]


def test_whole_images_of_an_export_dataset(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    summary = augment_dataset(dataset, tmp_path / "a", parse_variants("flip_lr,noise"), workers=1)
    split = {r["name"]: r["split"] for r in csv.DictReader((dataset / "split.csv").open())}
    n_train = sum(v == "train" for v in split.values())
    assert summary.files == {"train": n_train * 3, "val": len(split) - n_train}
    for name, side in split.items():
        variants = {p.name for p in (tmp_path / "a" / side / "images").glob(f"{name}*.png")}
        assert variants == ({f"{name}.png", f"{name}_flip_lr.png", f"{name}_noise.png"} if side == "train" else {f"{name}.png"})


def test_variant_seeds_do_not_depend_on_the_order(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants("noise,flip_lr"))
    augment_dataset(tmp_path / "c", tmp_path / "b", parse_variants("flip_lr,noise"))
    for p in (tmp_path / "a" / "train" / "images").glob("*_noise.png"):
        assert p.read_bytes() == (tmp_path / "b" / "train" / "images" / p.name).read_bytes()


def test_a_bit_depth_the_image_cannot_hold_is_refused() -> None:
    image, label = marked_pair()
    for pixels, bits in ((image.astype(np.uint8), 12), (image, 99), (image, 0)):
        with pytest.raises(InputError, match=f"bit depth {bits}: a {pixels.dtype} image holds 1..{8 * pixels.itemsize}-bit"):
            apply_variant("noise", pixels, label, np.random.default_rng(0), bits, 0)


def test_recorded_bits_are_checked_against_the_crop_files(tmp_path: Path) -> None:
    import cv2

    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    manifest = (tmp_path / "c" / "manifest.csv").read_text()
    (tmp_path / "c" / "manifest.csv").write_text(manifest.replace(",12,", ",99,"))  # an edited manifest
    with pytest.raises(InputError, match=r"manifest\.csv:2: damaged row \(bits '99': must be 1\.\.16\)"):
        augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants("noise"))
    (tmp_path / "c" / "manifest.csv").write_text(manifest)
    # the manifest says 12 bits, the crop files were replaced by 8-bit ones
    eight_bit = sorted((tmp_path / "c" / "train" / "images").glob("*.png"))
    for p in eight_bit:
        cv2.imwrite(str(p), (cv2.imread(str(p), cv2.IMREAD_UNCHANGED) >> 4).astype(np.uint8))
    summary = augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants("noise"))
    assert sorted(name for name, _ in summary.failed) == [p.stem for p in eight_bit]
    message = dict(summary.failed)[eight_bit[0].stem]
    assert message.startswith(f"{eight_bit[0]}: the manifest records 12-bit values, but the file holds uint8")
    assert message.endswith("rerun make-crops with --overwrite")
    assert not list((tmp_path / "a" / "train" / "images").glob("*.png"))  # nothing trained on from them
    assert summary.files == {"train": 0, "val": 2}


def test_a_variant_cut_short_is_remade_by_a_rerun(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants("noise"))
    damaged = sorted((tmp_path / "a" / "train" / "images").glob("*_noise.png"))[0]
    whole = damaged.read_bytes()
    damaged.write_bytes(whole[: len(whole) // 2])
    again = augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants("noise"))
    assert again.done == [damaged.stem.removesuffix("_noise")] and not again.failed
    assert damaged.read_bytes() == whole


def test_no_training_subject_means_nothing_to_augment(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    split = (dataset / "split.csv").read_text()
    (dataset / "split.csv").write_text(split.replace(",train\n", ",val\n"))
    with pytest.raises(InputError, match=r"dataset/split\.csv: puts every subject in validation .*no training image"):
        augment_dataset(dataset, tmp_path / "w", parse_variants("noise"))
    manifest = (tmp_path / "c" / "manifest.csv").read_text()
    (tmp_path / "c" / "manifest.csv").write_text(manifest.replace(",train,", ",val,"))  # a crop folder made so earlier
    with pytest.raises(InputError, match=r"c/split\.csv: puts every subject in validation .*rerun make-crops"):
        augment_dataset(tmp_path / "c", tmp_path / "a", parse_variants("noise"))
