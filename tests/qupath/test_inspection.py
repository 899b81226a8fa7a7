"""inspect: per-class annotation counts and problems, without the images."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import feature, rect, shared, write_project

from mammotools.qupath.inspection import format_report, inspect_source


def test_real_export_matches_qupath_summary() -> None:
    folder = shared("qupath", "coscialab-0.6.0")
    summary = json.loads((folder / "data" / "1" / "summary.json").read_text())
    report = inspect_source(folder / "Single_cells.geojson")
    [image] = report["images"]
    # the same hierarchy as data/1: QuPath's own counts, and none of its 121 cells
    assert image["annotation_counts"] == summary["hierarchy"]["annotationClassificationCounts"]
    assert image["other_objects"] == {"cell": 121}
    assert report["unknown_classes"] == ["circles", "class_1", "two_circles"]


def test_real_project_without_exports_says_how_to_get_them() -> None:
    report = inspect_source(shared("qupath", "coscialab-0.6.0"), reader="geojson")
    assert report["qupath_version"] == "0.6.0"
    [image] = report["images"]
    assert (image["name"], image["entry_id"], image["width"], image["height"]) == ("TD_01_verysmall_mIF.ome.tif", 1, 1000, 1000)
    assert "export_annotations.groovy" in image["problems"][0]


def test_synthetic_project_counts_and_problems(tmp_path: Path) -> None:
    import numpy as np

    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [9, 9], [9, 0], [0, 9], [0, 0]]]}
    feats = [
        feature(rect(0, 0, 5, 5), "Tumor"),
        feature(rect(0, 0, 5, 5), "Tumor: Malignant"),
        feature(bowtie, "Mammary gland", name="twisted"),
        feature(rect(15, 15, 30, 30), "Skin"),  # outside the 20x20 image
        feature({"type": "Polygon", "coordinates": []}, "Nipple"),
        feature(rect(1, 1, 2, 2), None),
        feature(rect(1, 1, 2, 2), "Tumor", object_type="detection"),
    ]
    project = write_project(tmp_path, {"m.png": (np.zeros((20, 20), np.uint8), feats)})
    report = inspect_source(project)
    [image] = report["images"]
    assert image["annotation_counts"] == {
        "Mammary gland": 1,
        "Nipple": 1,
        "Skin": 1,
        "Tumor": 1,
        "Tumor: Malignant": 1,
        "Unclassified": 1,
    }
    assert image["other_objects"] == {"detection": 1}
    assert image["unknown_classes"] == []
    problems = " | ".join(image["problems"])
    assert "'twisted'" in problems and "Self-intersection" in problems
    assert "empty geometry" in problems
    assert "outside the 20x20 image" in problems
    text = format_report(report)
    assert "m.png (20x20): 6 annotation(s)" in text and "3 problem(s)" in text


def test_project_with_only_qpdata_matches_every_summary(tmp_path: Path) -> None:
    import shutil

    folder = shared("qupath", "coscialab-0.6.0")
    # only project.qpproj and data/<id>/: no GeoJSON exports, no image files
    project = tmp_path / "proj"
    shutil.copytree(folder / "data", project / "data")
    shutil.copy(folder / "project.qpproj", project / "project.qpproj")
    report = inspect_source(project)
    assert report["images"], "the project lists images"
    for image in report["images"]:
        summary = json.loads((project / "data" / str(image["entry_id"]) / "summary.json").read_text())
        assert image["annotation_counts"] == summary["hierarchy"]["annotationClassificationCounts"]
        assert sum(image["other_objects"].values()) == summary["hierarchy"]["objectTypeCounts"]["Cells"]
        assert image["problems"] == []  # includes the cross-check against summary.json


def test_qpdata_project_exports_with_a_class_map(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from mammotools.export import ExportSettings, export_dataset

    folder = shared("qupath", "coscialab-0.6.0")
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((1000, 1000), np.uint16)).save(images / "TD_01_verysmall_mIF.ome.tif")
    settings = ExportSettings(sigma=0, class_map=(("circles", "Tumor"), ("two_circles", "Tumor"), ("class_1", "Text")))
    summary = export_dataset(folder, tmp_path / "ds", images, settings=settings)
    assert summary.exported == ["TD_01_verysmall_mIF.ome"] and not summary.failed
    assert any("3 unclassified" in w for w in summary.warnings) and any("121" in w for w in summary.warnings)
