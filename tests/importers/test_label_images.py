"""import-masks: label images -> QuPath project; round trip through export-qupath."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import shared
from PIL import Image

from mammotools.classes import load_class_table
from mammotools.errors import InputError
from mammotools.export import ExportSettings, export_dataset
from mammotools.importers import import_masks, parse_values
from mammotools.palette import read_label_png
from mammotools.qupath import open_source

TISSUE = Path(__file__).resolve().parents[2] / "docs" / "classes" / "breast_tissue.json"
VALUES = "64=Background,128=Adipose,192=Fibroglandular,255=Pectoral"


def expected_labels(label: np.ndarray) -> np.ndarray:
    lut = np.zeros(256, np.uint8)
    lut[128], lut[192], lut[255] = 1, 2, 3  # the tissue table's labels
    return lut[label]


def iou_per_class(a: np.ndarray, b: np.ndarray) -> dict[int, float]:
    return {
        int(c): float(((a == c) & (b == c)).sum() / ((a == c) | (b == c)).sum()) for c in np.union1d(np.unique(a), np.unique(b))
    }


def test_synthetic_round_trip_keeps_holes(tmp_path: Path) -> None:
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    label = np.full((60, 80), 64, np.uint8)
    label[10:50, 10:70] = 192
    label[20:30, 20:30] = 128  # a hole in the gland, filled by adipose
    label[35:45, 40:50] = 64  # a hole showing background
    label[0:8, 60:80] = 255
    cv2.imwrite(str(tmp_path / "img" / "case_1.png"), np.zeros((60, 80), np.uint16))
    cv2.imwrite(str(tmp_path / "lab" / "case_1_LI.png"), label)
    table = load_class_table(TISSUE)
    summary = import_masks(tmp_path / "lab", tmp_path / "img", parse_values(VALUES, table), tmp_path / "proj", table)
    assert summary.images == ["case_1.png"] and summary.annotations == {
        "Adipose tissue": 1,
        "Mammary gland": 1,
        "Pectoral muscle": 1,
    }
    source = open_source(tmp_path / "proj")
    # no server metadata (QuPath reads the size from the file when it opens the image)
    assert source.qupath_version == "0.5.1" and (source.images[0].width, source.images[0].height) == (None, None)
    gland = next(
        f
        for f in json.loads((tmp_path / "proj" / "annotations" / "case_1.geojson").read_text())["features"]
        if f["properties"]["classification"]["name"] == "Mammary gland"
    )
    assert len(gland["geometry"]["coordinates"]) == 3  # outer ring + two holes
    export_dataset(tmp_path / "proj", tmp_path / "ds", tmp_path / "img", table=table, settings=ExportSettings(sigma=0))
    assert np.array_equal(read_label_png(tmp_path / "ds" / "labels" / "case_1.png"), expected_labels(label))


def test_bad_values_and_unmatched(tmp_path: Path) -> None:
    table = load_class_table(TISSUE)
    with pytest.raises(InputError, match="not a class"):
        parse_values("64=Background,128=Fat", table)
    with pytest.raises(InputError, match="VALUE=Class"):
        parse_values("300=Background", table)
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    cv2.imwrite(str(tmp_path / "lab" / "other.png"), np.zeros((5, 5), np.uint8))
    with pytest.raises(InputError, match="--suffix"):
        import_masks(tmp_path / "lab", tmp_path / "img", parse_values(VALUES, table), tmp_path / "p", table)


def test_ddsm_round_trip_iou_on_all_60_images(tmp_path: Path) -> None:
    ddsm = shared("ddsm-tissue")
    table = load_class_table(TISSUE)
    summary = import_masks(ddsm / "labels", ddsm / "images", parse_values(VALUES, table), tmp_path / "proj", table)
    assert len(summary.images) == 60 and not summary.unmatched_labels and not summary.unknown_values
    export_dataset(tmp_path / "proj", tmp_path / "ds", ddsm / "images", table=table, settings=ExportSettings(sigma=0), workers=2)
    worst = 1.0
    for label_file in sorted((ddsm / "labels").glob("*_LI.png")):
        original = expected_labels(np.array(Image.open(label_file)))
        name = label_file.stem[: -len("_LI")]
        ious = iou_per_class(original, read_label_png(tmp_path / "ds" / "labels" / f"{name}.png"))
        worst = min(worst, *ious.values())
    assert worst >= 0.99


def test_palette_labels_shared_folder_and_ambiguity(tmp_path: Path) -> None:
    from mammotools.palette import encode_label_png

    table = load_class_table(TISSUE)
    folder = tmp_path / "both"
    folder.mkdir()
    cv2.imwrite(str(folder / "p1.png"), np.full((20, 30), 900, np.uint16))
    label = np.zeros((20, 30), np.uint8)
    label[5:10, 5:20] = 3  # pectoral, as a mammotools label map (palette PNG) holds it
    (folder / "p1_LI.png").write_bytes(encode_label_png(label, table.palette()))
    summary = import_masks(folder, folder, parse_values("0=Background,3=Pectoral", table), tmp_path / "proj", table)
    assert summary.images == ["p1.png"] and summary.annotations == {"Pectoral muscle": 1}  # p1.png is no label
    (folder / "p1.tif").write_bytes((folder / "p1.png").read_bytes())
    with pytest.raises(InputError, match="both image"):
        import_masks(folder, folder, parse_values("0=Background", table), tmp_path / "proj2", table)


def test_a_bad_label_leaves_no_half_project(tmp_path: Path) -> None:
    table = load_class_table(TISSUE)
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for name in ("a1", "b1"):
        cv2.imwrite(str(tmp_path / "img" / f"{name}.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "lab" / "a1_LI.png"), np.full((8, 8), 64, np.uint8))
    cv2.imwrite(str(tmp_path / "lab" / "b1_LI.png"), np.zeros((8, 8, 3), np.uint8))  # colour: refused
    with pytest.raises(InputError, match="one 8-bit value per pixel"):
        import_masks(tmp_path / "lab", tmp_path / "img", parse_values(VALUES, table), tmp_path / "proj", table)
    assert not (tmp_path / "proj").exists()


def test_duplicate_values_and_size_mismatch(tmp_path: Path) -> None:
    table = load_class_table(TISSUE)
    with pytest.raises(InputError, match="give each value once"):
        parse_values("64=Background,64=Adipose", table)
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a.png"), np.zeros((80, 100), np.uint8))
    cv2.imwrite(str(tmp_path / "lab" / "a_LI.png"), np.full((40, 50), 64, np.uint8))
    with pytest.raises(InputError, match=r"50x40 but a\.png is 100x80"):
        import_masks(tmp_path / "lab", tmp_path / "img", parse_values(VALUES, table), tmp_path / "p", table)


def test_a_label_png_whose_text_chunk_inflates_past_pillows_limit_is_one_line(tmp_path: Path) -> None:
    from PIL import PngImagePlugin

    table = load_class_table(TISSUE)
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "a1.png"), np.zeros((8, 8), np.uint8))
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "a" * (PngImagePlugin.MAX_TEXT_CHUNK + 1), zip=True)  # 2 KB inflating past 1 MB
    Image.fromarray(np.full((8, 8), 64, np.uint8)).convert("P").save(tmp_path / "lab" / "a1_LI.png", pnginfo=info)
    with pytest.raises(InputError) as error:
        import_masks(tmp_path / "lab", tmp_path / "img", parse_values(VALUES, table), tmp_path / "proj", table)
    assert str(tmp_path / "lab" / "a1_LI.png") in str(error.value) and "MAX_TEXT_CHUNK" in str(error.value)
    assert not (tmp_path / "proj").exists()


def test_an_image_name_that_is_not_utf8_is_refused_with_one_line(tmp_path: Path) -> None:
    import os

    table = load_class_table(TISSUE)
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    Path(os.fsdecode(bytes(tmp_path) + b"/img/\xff.png")).write_bytes(cv2.imencode(".png", np.zeros((8, 8), np.uint8))[1])
    Path(os.fsdecode(bytes(tmp_path) + b"/lab/\xff_LI.png")).write_bytes(cv2.imencode(".png", np.full((8, 8), 64, np.uint8))[1])
    with pytest.raises(InputError, match=r"\\xff\.png.*not valid UTF-8.*rename"):
        import_masks(tmp_path / "lab", tmp_path / "img", parse_values(VALUES, table), tmp_path / "proj", table)
    assert not (tmp_path / "proj").exists()
