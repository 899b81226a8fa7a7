"""export-qupath on synthetic projects whose masks are known exactly (rectangles and discs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import feature, point, rect, write_project
from PIL import Image

from mammotools.classes import default_class_table
from mammotools.errors import InputError
from mammotools.export import ExportSettings, export_dataset

H, W = 100, 120
EXACT = ExportSettings(sigma=0, point_radius=5)


def known_features() -> list[dict]:
    return [
        feature(rect(10, 10, 110, 90), "Mammary gland"),  # 8000 px
        feature(rect(20, 20, 40, 50), "Tumor"),  # 600 px, inside the gland
        feature(rect(95, 30, 105, 45), "tumor"),  # 150 px, case variant; 100 px over the pectoral muscle
        feature(rect(90, 0, 120, 40), "Pectoral muscle"),  # 1200 px, 600 over the gland
        feature(point(70.5, 70.5), "Nipple"),  # disc of radius 5: 81 pixel centres
        feature(rect(65, 65, 80, 80), "Areola"),  # 225 px around the nipple
        feature(rect(0, 0, 50, 50), "Tumor", object_type="detection"),  # not an annotation: ignored
        feature(rect(0, 90, 10, 100), None),  # unclassified: left out with a warning
    ]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    pixels = (np.arange(H * W, dtype=np.uint32).reshape(H, W) * 7 % 4096).astype(np.uint16)
    return write_project(tmp_path, {"case1.png": (pixels, known_features())})


def test_pixel_counts_ranking_and_overlaps(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    summary = export_dataset(project, out, tmp_path / "images", settings=EXACT)
    assert summary.exported == ["case1"] and not summary.failed

    label = np.array(Image.open(out / "labels" / "case1.png"))
    assert Image.open(out / "labels" / "case1.png").mode == "P"
    assert label.shape == (H, W) and label.dtype == np.uint8
    table = default_class_table()
    counts = {table.by_label(v).name: int(n) for v, n in zip(*np.unique(label, return_counts=True), strict=True)}
    assert counts == {
        "Tumor": 750,
        "Nipple": 81,
        "Areola": 144,
        "Pectoral muscle": 1100,
        "Mammary gland": 6525,
        "Background": 3400,
    }
    # ranking: Tumor (1) over Pectoral muscle (7) over Mammary gland (13)
    assert label[35, 100] == table.find("Tumor").label
    assert label[5, 100] == table.find("Pectoral muscle").label
    assert label[70, 70] == table.find("Nipple").label
    assert label[66, 66] == table.find("Areola").label
    assert label[95, 5] == table.find("Background").label == 0

    record = json.loads((out / "records" / "case1.json").read_text())
    overlaps = {tuple(o["regions"]): o["pixels"] for o in record["overlaps"]}
    assert overlaps == {
        ("Tumor", "Pectoral muscle"): 100,
        ("Tumor", "Mammary gland"): 750,
        ("Nipple", "Areola"): 81,
        ("Nipple", "Mammary gland"): 81,
        ("Areola", "Mammary gland"): 225,
        ("Pectoral muscle", "Mammary gland"): 600,
    }
    # binary maps before merging, one per region present
    masks = sorted(p.name for p in (out / "masks" / "case1").iterdir())
    assert masks == ["areola.png", "mammary_gland.png", "nipple.png", "pectoral_muscle.png", "tumor.png"]
    tumor = cv2.imread(str(out / "masks" / "case1" / "tumor.png"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(tumor)) == {0, 255} and int((tumor == 255).sum()) == 750
    assert int((cv2.imread(str(out / "masks" / "case1" / "nipple.png"), 0) == 255).sum()) == 81

    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert len(rows) == 1
    row = rows[0]
    assert (row["name"], row["subject"], row["width"], row["height"]) == ("case1", "case1", str(W), str(H))
    assert row["pixels_tumor"] == "750" and row["pixels_background"] == "3400"
    assert "Tumor|Pectoral muscle=100" in row["overlaps"].split(";")
    assert json.loads((out / "classes.json").read_text())[0]["name"] == "Tumor"

    # the image: same pixels, same bit depth
    img = cv2.imread(str(out / "images" / "case1.png"), cv2.IMREAD_UNCHANGED)
    src = cv2.imread(str(tmp_path / "images" / "case1.png"), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16 and np.array_equal(img, src)
    assert any("unclassified" in w for w in summary.warnings)
    assert any("detection" in w for w in summary.warnings)


def test_rerun_skips_complete_and_refuses_stale_outputs(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    export_dataset(project, out, tmp_path / "images", settings=EXACT)
    before = (out / "labels" / "case1.png").stat().st_mtime_ns
    again = export_dataset(project, out, tmp_path / "images", settings=EXACT)
    assert again.skipped == ["case1"] and again.exported == []
    assert (out / "labels" / "case1.png").stat().st_mtime_ns == before

    with pytest.raises(InputError, match="--overwrite"):
        export_dataset(project, out, tmp_path / "images", settings=ExportSettings(sigma=0, point_radius=9))
    redone = export_dataset(project, out, tmp_path / "images", settings=ExportSettings(sigma=0, point_radius=9), overwrite=True)
    assert redone.exported == ["case1"]
    nipple = cv2.imread(str(out / "masks" / "case1" / "nipple.png"), 0)
    assert int((nipple == 255).sum()) > 81


def test_interrupted_image_is_redone(project: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    export_dataset(project, out, tmp_path / "images", settings=EXACT)
    (out / "records" / "case1.json").unlink()  # as if killed before the record was written
    (out / "labels" / ".case1.png.tmp-123").write_bytes(b"half")
    summary = export_dataset(project, out, tmp_path / "images", settings=EXACT)
    assert summary.exported == ["case1"]
    assert not list(out.rglob("*.tmp-*"))


def test_bad_images_fail_alone(tmp_path: Path) -> None:
    good = np.full((30, 40), 9, np.uint8)
    project = write_project(
        tmp_path,
        {
            "good.png": (good, [feature(rect(0, 0, 10, 10), "Tumor")]),
            "wrongsize.png": (good, [feature(rect(0, 0, 10, 10), "Tumor")]),
            "truncated.png": (np.random.default_rng(0).integers(0, 255, (30, 40), dtype=np.uint8), []),
        },
    )
    cv2.imwrite(str(tmp_path / "images" / "wrongsize.png"), np.zeros((31, 40), np.uint8))
    data = (tmp_path / "images" / "truncated.png").read_bytes()
    (tmp_path / "images" / "truncated.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "ds"
    summary = export_dataset(project, out, tmp_path / "images", settings=EXACT)
    assert summary.exported == ["good"]
    failed = dict(summary.failed)
    assert set(failed) == {"wrongsize", "truncated"}
    assert "40x31" in failed["wrongsize"] and "40x30" in failed["wrongsize"]
    assert "truncated.png" in failed["truncated"]
    for name in ("wrongsize", "truncated"):
        assert not (out / "labels" / f"{name}.png").exists()
        assert not (out / "images" / f"{name}.png").exists() or name == "wrongsize"
        assert not (out / "records" / f"{name}.json").exists()
    assert [r["name"] for r in csv.DictReader((out / "manifest.csv").open())] == ["good"]


def test_repairs_clips_and_keeps_holes(tmp_path: Path) -> None:
    bowtie = {"type": "Polygon", "coordinates": [[[0, 0], [20, 20], [20, 0], [0, 20], [0, 0]]]}
    with_hole = {
        "type": "Polygon",
        "coordinates": [
            [[30, 0], [60, 0], [60, 30], [30, 30], [30, 0]],
            [[40, 10], [50, 10], [50, 20], [40, 20], [40, 10]],
        ],
    }
    feats = [
        feature(bowtie, "Tumor", name="bow"),
        feature(with_hole, "Mammary gland"),
        feature(rect(50, 25, 80, 45), "Text"),  # crosses the right and bottom edges
    ]
    project = write_project(tmp_path, {"x.png": (np.zeros((40, 70), np.uint16), feats)})
    summary = export_dataset(project, tmp_path / "ds", tmp_path / "images", settings=EXACT)
    label = np.array(Image.open(tmp_path / "ds" / "labels" / "x.png"))
    table = default_class_table()
    assert int((label == table.find("Mammary gland").label).sum()) == 900 - 100 - 5 * 10
    assert label[15, 45] == 0  # the hole stays a hole
    assert int((label == table.find("Text").label).sum()) == 20 * 15
    warnings = " ".join(summary.warnings)
    assert "'bow'" in warnings and "make_valid" in warnings
    assert "clipped" in warnings and "70x40" in warnings
    assert int((label == 1).sum()) == 200  # two triangles of the bowtie: 2 * (20*20/4) pixel centres


def test_smoothing_follows_the_table(tmp_path: Path) -> None:
    feats = [feature(rect(10, 10, 30, 30), "Tumor"), feature(rect(40, 10, 60, 30), "Nipple")]
    project = write_project(tmp_path, {"s.png": (np.zeros((40, 70), np.uint8), feats)})
    export_dataset(project, tmp_path / "ds", tmp_path / "images", settings=ExportSettings(sigma=4))
    label = np.array(Image.open(tmp_path / "ds" / "labels" / "s.png"))
    assert label[10, 10] == 0 and label[20, 20] == 1  # Tumor (smoothed) loses its corners
    assert int((label == 2).sum()) == 400  # Nipple is not smoothed: exact square


def test_parallel_workers_give_identical_outputs(tmp_path: Path) -> None:
    pixels = np.full((H, W), 300, np.uint16)
    project = write_project(tmp_path, {f"c{i}.png": (pixels, known_features()) for i in range(3)})
    one = export_dataset(project, tmp_path / "a", tmp_path / "images", workers=1)
    two = export_dataset(project, tmp_path / "b", tmp_path / "images", workers=2)
    assert sorted(one.exported) == sorted(two.exported) == ["c0", "c1", "c2"]
    for sub in ("labels/c2.png", "masks/c1/tumor.png", "manifest.csv"):
        assert (tmp_path / "a" / sub).read_bytes() == (tmp_path / "b" / sub).read_bytes()


def test_sample_data_exports(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2] / "sample_data"
    summary = export_dataset(root / "project", tmp_path / "ds", root / "images", workers=1)
    assert sorted(summary.exported) == [f"phantom_{i:03d}" for i in range(1, 25)]
    assert not summary.failed
    rows = list(csv.DictReader((tmp_path / "ds" / "manifest.csv").open()))
    assert {r["subject"] for r in rows} == {f"P{i:03d}" for i in range(1, 13)}  # twelve women
    assert all(sum(r["subject"] == s for r in rows) == 2 for s in {r["subject"] for r in rows})  # CC and MLO each
    for r in rows:
        assert int(r["pixels_mammary_gland"]) > 100_000
    assert sum(int(r["pixels_tumor"]) > 500 for r in rows) >= 18  # a tumour in most images
    assert sum(int(r["pixels_pectoral_muscle"]) > 10_000 for r in rows) == 12  # every MLO view


def test_folder_of_exports_beside_images(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    cv2.imwrite(str(folder / "left.png"), np.full((50, 60), 1000, np.uint16))
    cv2.imwrite(str(folder / "right.tif"), np.full((40, 30), 2000, np.uint16))
    (folder / "left.geojson").write_text(json.dumps([feature(rect(0, 0, 10, 10), "Tumor")]))
    (folder / "right.json").write_text(
        json.dumps({"type": "FeatureCollection", "features": [feature(rect(0, 0, 30, 20), "Pectoral muscle")]})
    )
    summary = export_dataset(folder, tmp_path / "ds", settings=EXACT)
    assert sorted(summary.exported) == ["left", "right"]
    right = cv2.imread(str(tmp_path / "ds" / "images" / "right.png"), cv2.IMREAD_UNCHANGED)
    assert right.dtype == np.uint16 and right.shape == (40, 30) and int(right.max()) == 2000  # TIFF -> lossless PNG
    label = np.array(Image.open(tmp_path / "ds" / "labels" / "right.png"))
    assert int((label == 7).sum()) == 600


def test_project_paths_cannot_escape_out(tmp_path: Path) -> None:
    project = write_project(tmp_path, {"ok.png": (np.zeros((20, 20), np.uint8), [feature(rect(0, 0, 5, 5), "Tumor")])})
    qpproj = project / "project.qpproj"
    data = json.loads(qpproj.read_text())
    data["images"][0]["imageName"] = "../../../ok.png"
    data["images"][0]["serverBuilder"]["uri"] = "file:/etc/../../ok.png"
    qpproj.write_text(json.dumps(data))
    before = {p for p in tmp_path.rglob("*")}
    summary = export_dataset(project, tmp_path / "ds", tmp_path / "images", settings=EXACT)
    assert summary.exported == ["ok"]
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(tmp_path / "ds" in p.parents or p == tmp_path / "ds" for p in created)


def test_interrupted_overwrite_is_redone_not_trusted(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mammotools.export.image as worker

    out = tmp_path / "ds"
    export_dataset(project, out, tmp_path / "images", settings=ExportSettings(sigma=5, point_radius=5))
    real = worker.atomic_write_text

    def killed(path, text):  # type: ignore[no-untyped-def]
        if "records" in str(path):
            raise KeyboardInterrupt  # interrupted just before the record is written
        real(path, text)

    monkeypatch.setattr(worker, "atomic_write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        export_dataset(project, out, tmp_path / "images", settings=EXACT, overwrite=True, workers=1)
    monkeypatch.setattr(worker, "atomic_write_text", real)
    again = export_dataset(project, out, tmp_path / "images", settings=ExportSettings(sigma=5, point_radius=5))
    assert again.exported == ["case1"]  # the old record was gone: the new, half-written outputs are redone
    label = np.array(Image.open(out / "labels" / "case1.png"))
    row = next(csv.DictReader((out / "manifest.csv").open()))
    assert int(row["pixels_tumor"]) == int((label == 1).sum())


def test_changed_image_and_missing_output(project: Path, tmp_path: Path) -> None:
    import os

    out = tmp_path / "ds"
    export_dataset(project, out, tmp_path / "images", settings=EXACT)
    (out / "masks" / "case1" / "tumor.png").unlink()  # an output lost: redone, no --overwrite needed
    assert export_dataset(project, out, tmp_path / "images", settings=EXACT).exported == ["case1"]
    image = tmp_path / "images" / "case1.png"
    cv2.imwrite(str(image), np.full((H, W), 3000, np.uint16))  # same size, other pixels
    os.utime(image, ns=(1, 1))
    with pytest.raises(InputError, match="--overwrite"):
        export_dataset(project, out, tmp_path / "images", settings=EXACT)


def test_removed_images_leave_the_manifest(tmp_path: Path) -> None:
    pixels = np.zeros((20, 20), np.uint8)
    project = write_project(tmp_path, {"a.png": (pixels, []), "b.png": (pixels, [])})
    out = tmp_path / "ds"
    export_dataset(project, out, tmp_path / "images")
    data = json.loads((project / "project.qpproj").read_text())
    data["images"] = data["images"][:1]
    (project / "project.qpproj").write_text(json.dumps(data))
    summary = export_dataset(project, out, tmp_path / "images")
    assert [r["name"] for r in csv.DictReader((out / "manifest.csv").open())] == ["a"]
    assert any("no longer in the input" in w for w in summary.warnings)
    export_dataset(project, out, tmp_path / "images", overwrite=True)
    assert not (out / "labels" / "b.png").exists()


def test_one_unreadable_image_in_a_folder_fails_alone(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), np.zeros((10, 10), np.uint8))
    (folder / "bad.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00")
    for stem in ("good", "bad"):
        (folder / f"{stem}.geojson").write_text(json.dumps([feature(rect(0, 0, 5, 5), "Tumor")]))
    summary = export_dataset(folder, tmp_path / "ds", settings=EXACT)
    assert summary.exported == ["good"] and [name for name, _ in summary.failed] == ["bad"]
    assert "bad.dcm" in summary.failed[0][1]


def windowed_mammogram(path: Path, width: int) -> None:
    """An 8x8 12-bit MG DICOM with a VOI window of ``width`` (centre 2000), and an empty export beside it."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.DigitalMammographyXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "MG"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 8, 8, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2000, width
    ds.PixelData = (np.arange(64, dtype=np.uint16) * 60).tobytes()
    ds.save_as(path, enforce_file_format=True)
    path.with_suffix(".geojson").write_text("[]")


def test_dicom_window_is_recorded_and_can_be_skipped(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    windowed_mammogram(folder / "w.dcm", 1000)
    summary = export_dataset(folder, tmp_path / "a", settings=EXACT)
    assert any("VOI window applied" in w for w in summary.warnings)
    raw = export_dataset(folder, tmp_path / "b", settings=ExportSettings(sigma=0, dicom_voi=False))
    assert not any("VOI" in w for w in raw.warnings)
    kept = cv2.imread(str(tmp_path / "b" / "images" / "w.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(kept.ravel(), np.arange(64) * 60)


def rotated_project(root: Path, pixels: np.ndarray, rotation: str) -> Path:
    """A project of one image r.png (a 5x3 Tumor at the origin) whose entry QuPath shows turned by ``rotation``."""
    project = write_project(root, {"r.png": (pixels, [feature(rect(0, 0, 5, 3), "Tumor")])})
    data = json.loads((project / "project.qpproj").read_text())
    inner = data["images"][0]["serverBuilder"]
    data["images"][0]["serverBuilder"] = {"builderType": "rotated", "rotation": rotation, "builder": inner}
    (project / "project.qpproj").write_text(json.dumps(data))
    return project


def test_rotated_entry_is_exported_as_quPath_shows_it(tmp_path: Path) -> None:
    original = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30)  # 30 wide, 20 high on disk
    project = rotated_project(tmp_path, original, "ROTATE_90")
    summary = export_dataset(project, tmp_path / "ds", tmp_path / "images", settings=EXACT)
    assert summary.exported == ["r"] and not summary.failed
    image = cv2.imread(str(tmp_path / "ds" / "images" / "r.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(image, np.rot90(original, k=-1))  # QuPath's ROTATE_90 is clockwise: 20 wide, 30 high
    label = np.array(Image.open(tmp_path / "ds" / "labels" / "r.png"))
    assert label.shape == (30, 20) and int((label[:3, :5] == 1).sum()) == 15 and int((label == 1).sum()) == 15


def test_dicom_window_width_zero_fails_alone_pointing_at_no_dicom_voi(tmp_path: Path) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    windowed_mammogram(folder / "bad.dcm", 0)
    windowed_mammogram(folder / "good.dcm", 1000)
    summary = export_dataset(folder, tmp_path / "a", settings=EXACT)
    assert summary.exported == ["good"] and [n for n, _ in summary.failed] == ["bad"]
    assert "bad.dcm" in summary.failed[0][1] and "--no-dicom-voi" in summary.failed[0][1]
    raw = export_dataset(folder, tmp_path / "b", settings=ExportSettings(sigma=0, dicom_voi=False))
    assert sorted(raw.exported) == ["bad", "good"]


def test_a_rotation_qupath_does_not_write_is_refused(tmp_path: Path) -> None:
    original = np.arange(20 * 30, dtype=np.uint16).reshape(20, 30)
    project = rotated_project(tmp_path, original, "ROTATE_45")
    summary = export_dataset(project, tmp_path / "ds", tmp_path / "images", settings=EXACT)
    assert summary.exported == [] and [n for n, _ in summary.failed] == ["r"]
    assert "rotation QuPath does not write" in summary.failed[0][1]


def test_an_8_bit_file_for_a_16_bit_project_image_is_refused(tmp_path: Path) -> None:
    pixels = (np.arange(20 * 30).reshape(20, 30) * 7).astype(np.uint16)
    project = write_project(tmp_path, {"m.png": (pixels, [feature(rect(0, 0, 5, 3), "Tumor")])})
    cv2.imwrite(str(tmp_path / "images" / "m.png"), (pixels >> 4).astype(np.uint8))  # a converted copy
    summary = export_dataset(project, tmp_path / "ds", tmp_path / "images", settings=EXACT)
    assert summary.exported == [] and [n for n, _ in summary.failed] == ["m"]
    assert "8-bit pixels but the project's image is UINT16" in summary.failed[0][1]


def test_a_file_name_that_is_not_utf8_fails_alone_with_one_line(tmp_path: Path) -> None:
    import os

    folder = tmp_path / "scans"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), np.zeros((10, 10), np.uint8))
    (folder / "good.geojson").write_text(json.dumps([feature(rect(0, 0, 5, 5), "Tumor")]))
    latin1 = os.fsdecode(bytes(folder) + b"/caf\xe9")  # "café" in Latin-1: not UTF-8
    Path(latin1 + ".png").write_bytes((folder / "good.png").read_bytes())
    Path(latin1 + ".geojson").write_text(json.dumps([feature(rect(0, 0, 5, 5), "Tumor")]))
    summary = export_dataset(folder, tmp_path / "ds", settings=EXACT)  # was a UnicodeEncodeError traceback
    assert summary.exported == ["good"] and [name for name, _ in summary.failed] == ["caf\\xe9"]
    assert "not valid UTF-8" in summary.failed[0][1] and "rename" in summary.failed[0][1]
    summary.failed[0][1].encode("utf-8")
    (tmp_path / "ds" / "manifest.csv").read_text("utf-8")
