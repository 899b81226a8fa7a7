"""Planning an export: every check made before a file is written, and what the plan decides."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import feature, rect, write_project
from PIL import Image

from mammotools.classes import default_class_table
from mammotools.errors import InputError, MissingFileError
from mammotools.export import ExportSettings, export_dataset
from mammotools.export.plan import plan_export

EXACT = ExportSettings(sigma=0, point_radius=5)


def test_plan_decides_before_writing(tmp_path: Path) -> None:
    feats = [feature(rect(0, 0, 10, 10), "Tumor"), feature(rect(0, 0, 4, 4), "Scribble"), feature(rect(2, 2, 3, 3), None)]
    project = write_project(tmp_path, {"a.png": (np.zeros((30, 40), np.uint8), feats)})
    out = tmp_path / "ds"
    settings = ExportSettings(sigma=0, ignore=("scribble",))
    plan = plan_export(project, out, tmp_path / "images", default_class_table(), settings)
    assert [job.name for job in plan.todo] == ["a"] and not plan.done and not plan.failed
    [job] = plan.todo
    assert (job.width, job.height) == (40, 30) and list(job.geometries) == ["Tumor"]
    assert job.geometries["Tumor"][0].area == 100
    assert any("1 unclassified annotation(s)" in w for w in plan.warnings)
    assert not out.exists()  # planning writes nothing
    export_dataset(project, out, tmp_path / "images", settings=settings)
    again = plan_export(project, out, tmp_path / "images", default_class_table(), settings)
    assert not again.todo and [job.name for job in again.done] == ["a"]
    with pytest.raises(InputError, match="--ignore 'Scribbel'"):
        plan_export(project, out, tmp_path / "images", default_class_table(), ExportSettings(ignore=("scribble", "Scribbel")))


def test_unknown_class_fails_before_writing(tmp_path: Path) -> None:
    feats = [feature(rect(0, 0, 10, 10), "Tumor"), feature(rect(5, 5, 20, 20), "Cyst")]
    project = write_project(tmp_path, {"a.png": (np.zeros((30, 30), np.uint8), feats)})
    out = tmp_path / "ds"
    with pytest.raises(InputError) as err:
        export_dataset(project, out, tmp_path / "images", settings=EXACT)
    message = str(err.value)
    assert "'Cyst'" in message and "a.geojson" in message and "Mammary gland" in message
    assert "--map" in message and "--ignore" in message
    assert not out.exists()

    mapped = export_dataset(project, out, tmp_path / "images", settings=ExportSettings(sigma=0, class_map=(("Cyst", "Tumor"),)))
    label = np.array(Image.open(out / "labels" / "a.png"))
    assert int((label == 1).sum()) == 100 + 15 * 15 - 25
    assert mapped.exported == ["a"]
    ignored = export_dataset(project, tmp_path / "ds2", tmp_path / "images", settings=ExportSettings(sigma=0, ignore=("cyst",)))
    assert ignored.exported == ["a"]
    assert int((np.array(Image.open(tmp_path / "ds2" / "labels" / "a.png")) == 1).sum()) == 100


def test_missing_image_names_it(tmp_path: Path) -> None:
    project = write_project(tmp_path, {"a.png": (np.zeros((30, 30), np.uint8), [])})
    (tmp_path / "images" / "a.png").unlink()
    with pytest.raises(MissingFileError, match=r"a\.png"):
        export_dataset(project, tmp_path / "ds", tmp_path / "images")
    assert not (tmp_path / "ds").exists()


def test_dataset_inside_the_image_folder_and_renamed_images(tmp_path: Path) -> None:
    project = write_project(tmp_path, {"IMG_0001.png": (np.zeros((20, 20), np.uint8), [feature(rect(0, 0, 5, 5), "Tumor")])})
    data = json.loads((project / "project.qpproj").read_text())
    data["images"][0]["imageName"] = "Patient 7 left CC"  # renamed in QuPath; the URI keeps the file name
    (project / "project.qpproj").write_text(json.dumps(data))
    (project / "annotations" / "IMG_0001.geojson").rename(project / "annotations" / "Patient 7 left CC.geojson")
    out = tmp_path / "images" / "dataset"
    for _ in range(2):  # the second run must not find the dataset's own PNGs as images
        summary = export_dataset(project, out, tmp_path / "images", settings=EXACT)
        assert not summary.failed
    assert (out / "labels" / "IMG_0001.png").exists()


def test_cbis_style_images_sharing_one_file_name(tmp_path: Path) -> None:
    """Every CBIS-DDSM image is 1-1.dcm in its own case folder: found by folder, named apart."""
    cases = ["Mass-Training_P_00001_LEFT_CC", "Mass-Training_P_00001_LEFT_MLO", "Calc-Test_P_00038_RIGHT_CC"]
    entries, project = [], tmp_path / "project"
    (project / "annotations").mkdir(parents=True)
    for i, case in enumerate(cases, start=1):
        folder = tmp_path / "cbis" / case / "07-20-2016-DDSM-1" / "1.000000-full mammogram images-2"
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / "1-1.png"), np.full((20, 30), 100 * i, np.uint16))
        entries.append({
            "serverBuilder": {"builderType": "uri", "uri": f"file:/data/CBIS/{case}/07-20-2016-DDSM-1/"
                              "1.000000-full%20mammogram%20images-2/1-1.png", "metadata": {"width": 30, "height": 20}},
            "entryID": i, "imageName": f"{case}.png", "metadata": {},
        })  # fmt: skip
        (project / "annotations" / f"{case}.geojson").write_text(json.dumps([feature(rect(0, 0, 5 * i, 5), "Tumor")]))
    (project / "project.qpproj").write_text(json.dumps({"version": "0.5.1", "images": entries}))
    summary = export_dataset(project, tmp_path / "ds", tmp_path / "cbis", settings=EXACT)
    assert sorted(summary.exported) == [f"{c}_1-1" for c in sorted(cases)]
    for i, case in enumerate(cases, start=1):
        image = cv2.imread(str(tmp_path / "ds" / "images" / f"{case}_1-1.png"), cv2.IMREAD_UNCHANGED)
        assert int(image[0, 0]) == 100 * i  # each entry got its own file
        assert int((np.array(Image.open(tmp_path / "ds" / "labels" / f"{case}_1-1.png")) == 1).sum()) == 25 * i
