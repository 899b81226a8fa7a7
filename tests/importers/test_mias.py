"""import-mias: Info.txt lines -> discs at the right place, notes, pairs, missing images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from conftest import shared

from mammotools.classes import default_class_table
from mammotools.errors import InputError
from mammotools.export import ExportSettings, export_dataset
from mammotools.importers.mias import disc, import_mias, parse_info, parse_mapping
from mammotools.palette import read_label_png
from mammotools.qupath import open_source

INFO = """MIAS header text that is not data
mdb001 G CIRC B 535 425 197
mdb002 G CIRC B 522 280 69
mdb003 D NORM
mdb004 D CALC M 100 900 20
mdb004 D SPIC M 300 200 30
mdb005 F CALC M *NOTE 3*
mdb007 F CIRC B 10 10 5
"""


def write_mias(root: Path) -> tuple[Path, Path]:
    import cv2

    (root / "images").mkdir()
    for n in range(1, 6):  # mdb007's image is missing
        cv2.imwrite(str(root / "images" / f"mdb{n:03d}.pgm"), np.zeros((1024, 1024), np.uint8))
    (root / "Info.txt").write_text(INFO)
    return root / "Info.txt", root / "images"


def test_discs_notes_pairs_and_missing(tmp_path: Path) -> None:
    info, images = write_mias(tmp_path)
    table = default_class_table()
    summary = import_mias(info, images, tmp_path / "proj", table, parse_mapping((), table))
    assert summary.missing_images == ["mdb007"]
    assert summary.notes == ["mdb005"]
    assert summary.annotations == {"Tumor": 3, "Calcifications": 1}
    assert len(summary.images) == 5  # the normal image is kept, without annotations

    def features(ref: str) -> list[dict]:
        return json.loads((tmp_path / "proj" / "annotations" / f"{ref}.geojson").read_text())["features"]

    [lesion] = features("mdb001")
    centre = shapely.geometry.shape(lesion["geometry"]).centroid
    assert (round(centre.x, 3), round(centre.y, 3)) == (535, 1024 - 425)  # origin bottom-left
    assert lesion["properties"]["name"] == "circumscribed mass (benign)"
    two = features("mdb004")
    assert sorted(f["properties"]["classification"]["name"] for f in two) == ["Calcifications", "Tumor"]
    assert features("mdb003") == [] and features("mdb005") == []
    source = open_source(tmp_path / "proj")
    meta = {r.name: r.metadata for r in source.images}
    assert meta["mdb001.pgm"]["subject"] == meta["mdb002.pgm"]["subject"] == "mias_p001"
    assert "no centre" in meta["mdb005.pgm"]["mias_notes"]

    export_dataset(tmp_path / "proj", tmp_path / "ds", images, table=table, settings=ExportSettings(sigma=0))
    label = read_label_png(tmp_path / "ds" / "labels" / "mdb002.png")
    assert label[1024 - 280, 522] == 1 and label[280, 522] == 0  # the disc is where the lesion is
    assert abs(int((label == 1).sum()) - np.pi * 69**2) < 0.005 * np.pi * 69**2


def test_mapping_changes_and_errors(tmp_path: Path) -> None:
    info, images = write_mias(tmp_path)
    table = default_class_table()
    summary = import_mias(info, images, tmp_path / "p", table, parse_mapping((("CALC", "ignore"), ("SPIC", "Tumor")), table))
    assert summary.annotations == {"Tumor": 3}
    with pytest.raises(InputError, match="not a MIAS class"):
        parse_mapping((("CYST", "Tumor"),), table)
    with pytest.raises(InputError, match="not a class of the table"):
        parse_mapping((("CALC", "Dots"),), table)
    bad = tmp_path / "bad.txt"
    bad.write_text("mdb001 G XXXX B 1 2 3\n")
    with pytest.raises(InputError, match="unknown class"):
        parse_info(bad)


def test_disc_accuracy() -> None:
    for radius in (3, 20, 197):
        polygon = disc(0, 0, radius)
        assert radius - polygon.exterior.distance(shapely.Point(0, 0)) <= 0.05 + 1e-9


def test_real_info_file() -> None:
    folder = shared("mini-mias")
    entries = parse_info(folder / "Info.txt")
    assert len({e.ref for e in entries}) == 322
    assert sum(1 for e in entries if e.x is None and e.abnormality != "NORM") == 4  # 3 CALC + mdb059
    first = [e for e in entries if int(e.ref[3:]) <= 120]
    assert sum(e.ref == "mdb005" for e in first) == 2


@pytest.mark.parametrize(("line", "message"), [
    ("mdb001 G CIRC B 535 425", "x, y and radius together"),
    ("mdb001 G CIRC B 535 425 30 extra", "cannot read"),
    ("mdb001 G CIRC B 535 425 0", "radius 0"),
])  # fmt: skip
def test_damaged_lines_are_errors(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "Info.txt"
    path.write_text(line + "\n")
    with pytest.raises(InputError, match=message):
        parse_info(path)


def test_centre_outside_the_image(tmp_path: Path) -> None:
    info, images = write_mias(tmp_path)
    info.write_text("mdb001 G CIRC B 5220 2800 20\n")
    table = default_class_table()
    with pytest.raises(InputError, match="outside the 1024x1024 image"):
        import_mias(info, images, tmp_path / "p", table, parse_mapping((), table))
    assert not (tmp_path / "p").exists()  # nothing half-written
