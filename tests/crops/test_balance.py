"""On real DDSM tissue masks: make-crops and augment run end to end, and the balanced crops are
more balanced than uniformly random ones."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import shared

from mammotools.augment import augment_dataset, parse_variants
from mammotools.classes import load_class_table
from mammotools.crops import CropSettings, make_crops
from mammotools.crops.balance import manifest_pixels, normalized_entropy, uniform_crop_pixels
from mammotools.export import ExportSettings, export_dataset
from mammotools.importers import import_masks, parse_values

TISSUE = Path(__file__).resolve().parents[2] / "docs" / "classes" / "breast_tissue.json"


def test_normalized_entropy() -> None:
    assert normalized_entropy({"a": 5, "b": 5}) == pytest.approx(1.0)
    assert normalized_entropy({"a": 10, "b": 0}) == 0.0
    assert 0 < normalized_entropy({"a": 9, "b": 1}) < 1


def test_ddsm_crops_and_augment_end_to_end(tmp_path: Path) -> None:
    ddsm = shared("ddsm-tissue")
    table = load_class_table(TISSUE)
    values = parse_values("64=Background,128=Adipose,192=Fibroglandular,255=Pectoral", table)
    import_masks(ddsm / "labels", ddsm / "images", values, tmp_path / "proj", table)
    export_dataset(tmp_path / "proj", tmp_path / "ds", ddsm / "images", table=table, settings=ExportSettings(sigma=0), workers=2)
    crops = make_crops(tmp_path / "ds", tmp_path / "crops", CropSettings(size=256, per_image=8), workers=2)
    assert crops.crops["train"] + crops.crops["val"] == 480 and not crops.failed
    aug = augment_dataset(tmp_path / "crops", tmp_path / "aug", parse_variants(None), workers=2)
    assert aug.files["train"] == crops.crops["train"] * 11 and aug.files["val"] == crops.crops["val"]

    rows = list(csv.DictReader((tmp_path / "crops" / "manifest.csv").open()))
    balanced = manifest_pixels(rows, table.names, [c.slug for c in table])
    uniform = uniform_crop_pixels(tmp_path / "ds", 256, 8)
    share = {k: {n: v / sum(d.values()) for n, v in d.items()} for k, d in (("b", balanced), ("u", uniform))}
    # the rare class gains, the dominant background loses, the smallest share grows
    assert share["b"]["Pectoral muscle"] > 2 * share["u"]["Pectoral muscle"]
    assert share["b"]["Background"] < share["u"]["Background"]
    assert min(share["b"].values()) > min(share["u"].values())
    assert normalized_entropy(balanced) > normalized_entropy(uniform)
