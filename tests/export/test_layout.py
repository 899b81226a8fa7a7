"""The export dataset's public reader: typed manifest rows, paths, the split; refusals name the fix."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset
from PIL import Image

from mammotools.crops import CropSettings, make_crops
from mammotools.errors import InputError, MissingFileError
from mammotools.export import open_export_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("layout"))


def test_rows_are_typed_and_match_the_label_maps(dataset: Path) -> None:
    opened = open_export_dataset(dataset)
    assert opened.names == ["s0_L_CC", "s0_R_CC", "s1_L_CC", "s1_R_CC", "s2_L_CC", "s2_R_CC"]
    assert [c.name for c in opened.table][:2] == ["Tumor", "Nipple"]
    small = next(i for i in opened.images if i.name == "s2_R_CC")
    assert (small.width, small.height, small.subject, small.entry_id) == (100, 90, "s2", 6)
    for image in opened.images:
        label = np.array(Image.open(opened.label_path(image.name)))
        assert label.shape == (image.height, image.width)
        for c in opened.table:  # the manifest's pixel counts are the label map's
            assert image.pixels[c.name] == int((label == c.label).sum()), (image.name, c.name)
        assert image.pixels["Tumor"] == 400  # the 20x20 px rectangle, sigma 0
        assert opened.image_path(image.name).is_file() and opened.mask_path(image.name, "tumor").is_file()
        assert opened.fingerprint(image.name)
    assert opened.split is None
    with pytest.raises(InputError, match=r"no split\.csv yet"):
        opened.names_in("train")


def test_split_is_read_once_drawn(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)  # its own: drawing the split writes split.csv into it
    make_crops(dataset, tmp_path / "c", CropSettings(size=32, per_image=1))
    opened = open_export_dataset(dataset)
    recorded = {r["name"]: r["split"] for r in csv.DictReader((dataset / "split.csv").open())}
    assert opened.split == recorded
    assert sorted(opened.names_in("train") + opened.names_in("val")) == opened.names


def test_overlaps_are_parsed(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    opened = open_export_dataset(dataset)
    image = opened.images[0]
    assert image.overlaps == {("Tumor", "Mammary gland"): 400, ("Nipple", "Mammary gland"): 52}  # inside the gland


def test_refusals(dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="not found"):
        open_export_dataset(tmp_path / "none")
    with pytest.raises(InputError, match="a file of a dataset; give the dataset folder itself"):
        open_export_dataset(dataset / "manifest.csv")
    with pytest.raises(InputError, match="not a mammotools dataset"):
        open_export_dataset(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "classes.json").write_bytes((dataset / "classes.json").read_bytes())
    text = (dataset / "manifest.csv").read_text().splitlines()
    fields = text[1].split(",")
    fields[2] = "wide"
    (broken / "manifest.csv").write_text("\n".join([text[0], ",".join(fields)]) + "\n")
    with pytest.raises(InputError, match=r"manifest\.csv:2: damaged row"):
        open_export_dataset(broken)


def test_spreadsheet_saved_and_damaged_manifests(dataset: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(dataset, copy)
    (copy / "split.csv").unlink(missing_ok=True)
    text = (dataset / "manifest.csv").read_text()
    (copy / "manifest.csv").write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())  # Excel: BOM, CRLF
    assert open_export_dataset(copy).names == open_export_dataset(dataset).names
    (copy / "manifest.csv").write_bytes(b"")
    with pytest.raises(InputError, match="no 'name' column"):
        open_export_dataset(copy)
    (copy / "manifest.csv").write_bytes(b"name,\xff\xfe\n")
    with pytest.raises(InputError, match="not a readable CSV file"):
        open_export_dataset(copy)
    lines = text.splitlines()
    (copy / "manifest.csv").write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(InputError, match="more than once"):
        open_export_dataset(copy)
