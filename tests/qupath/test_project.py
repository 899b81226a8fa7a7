"""project.qpproj: entries, sizes through wrapped builders, URIs, exports found by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import shared

from mammotools.errors import InputError, MissingFileError
from mammotools.qupath import open_source
from mammotools.qupath.project import read_project


def entry(i: int, name: str, builder: dict, **extra: object) -> dict:
    return {"serverBuilder": builder, "entryID": i, "imageName": name, "metadata": {}, **extra}


def uri_builder(name: str, w: int | None = 300, h: int | None = 200) -> dict:
    meta = {"name": name} | ({"width": w, "height": h} if w else {})
    return {"builderType": "uri", "uri": f"file:/Volumes/scans/my%20study/{name}", "args": [], "metadata": meta}


def test_wrapped_builders_and_fallbacks(tmp_path: Path) -> None:
    images = [
        entry(1, "a.png", uri_builder("a.png")),
        entry(
            2,
            "b.png",
            {
                "builderType": "rotated",
                "rotation": "ROTATE_180",
                "builder": {"builderType": "pyramidize", "builder": uri_builder("b.png", 640, 480)},
            },
        ),
        entry(3, "c.png", uri_builder("c.png", None)),
    ]
    (tmp_path / "project.qpproj").write_text(json.dumps({"version": "0.4.3", "images": images}))
    (tmp_path / "data" / "3").mkdir(parents=True)
    (tmp_path / "data" / "3" / "summary.json").write_text(json.dumps({"server": {"width": 50, "height": 60}}))
    project = read_project(tmp_path / "project.qpproj")
    assert project.version == "0.4.3"
    sizes = [(e.name, e.entry_id, e.width, e.height) for e in project.entries]
    assert sizes == [("a.png", 1, 300, 200), ("b.png", 2, 640, 480), ("c.png", 3, 50, 60)]
    assert str(project.entries[0].uri_path) == "/Volumes/scans/my study/a.png"


def test_exports_found_by_stem_or_name(tmp_path: Path) -> None:
    images = [
        entry(1, "a.png", uri_builder("a.png")),
        entry(2, "b.ome.tif", uri_builder("b.ome.tif")),
        entry(3, "c.png", uri_builder("c.png")),
    ]
    (tmp_path / "project.qpproj").write_text(json.dumps({"version": "0.5.1", "images": images}))
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "a.geojson").write_text("[]")
    (tmp_path / "annotations" / "b.ome.geojson.gz").write_bytes(b"")
    source = open_source(tmp_path)
    found = {r.name: (r.annotation_path.name if r.annotation_path else None) for r in source.images}
    assert found == {"a.png": "a.geojson", "b.ome.tif": "b.ome.geojson.gz", "c.png": None}
    assert "export_annotations.groovy" in source.images[2].problems[0]


def test_not_a_project(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError):
        read_project(tmp_path)
    (tmp_path / "project.qpproj").write_text("{oops")
    with pytest.raises(InputError, match=r"project\.qpproj: not valid JSON"):
        read_project(tmp_path)
    with pytest.raises(InputError, match="neither a QuPath project"):
        open_source(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_real_project() -> None:
    project = read_project(shared("qupath", "coscialab-0.6.0"))
    assert project.version == "0.6.0"
    [e] = project.entries
    assert (e.name, e.entry_id, e.width, e.height) == ("TD_01_verysmall_mIF.ome.tif", 1, 1000, 1000)
    assert e.data_dir is not None and (e.data_dir / "data.qpdata").is_file()
    assert ("circles", (0, 255, 0)) in project.path_classes
