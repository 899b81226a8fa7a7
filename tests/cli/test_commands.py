"""The command line: thin commands, one-line errors, exit codes, JSON output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import feature, rect, shared, write_project

from mammotools.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def test_help_does_not_import_heavy_packages() -> None:
    code = (
        "import sys; from mammotools.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('numpy', 'cv2', 'rasterio', 'torch', 'shapely', 'paquo') if m in sys.modules]\n"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_export_sample_data_then_rerun(tmp_path: Path) -> None:
    runner = CliRunner()
    args = [
        "export-qupath",
        str(SAMPLE / "project"),
        "--images",
        str(SAMPLE / "images"),
        "--out",
        str(tmp_path / "ds"),
        "--workers",
        "1",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "24 exported, 0 skipped" in result.output
    assert sorted(p.name for p in (tmp_path / "ds" / "labels").iterdir()) == [f"phantom_{i:03d}.png" for i in range(1, 25)]
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "0 exported, 24 skipped" in again.output


def test_user_mistakes_are_one_line_without_traceback(tmp_path: Path) -> None:
    project = write_project(tmp_path, {"a.png": (np.zeros((20, 20), np.uint8), [feature(rect(0, 0, 5, 5), "Cyst")])})
    runner = CliRunner()
    cases = [
        ["export-qupath", str(project), "--images", str(tmp_path / "images"), "--out", str(tmp_path / "o")],
        ["export-qupath", str(tmp_path / "nope"), "--out", str(tmp_path / "o")],
        ["export-qupath", str(project), "--out", str(tmp_path / "o"), "--classes", str(tmp_path / "none.json")],
        ["inspect", str(tmp_path / "images" / "a.png")],
    ]
    for args in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("Error: ") and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    bad_map = runner.invoke(main, ["export-qupath", str(project), "--out", str(tmp_path / "o"), "--map", "Cyst"])
    assert bad_map.exit_code == 2 and "Mass=Tumor" in bad_map.output


def test_failed_images_give_nonzero_exit(tmp_path: Path) -> None:
    project = write_project(tmp_path, {"a.png": (np.zeros((20, 20), np.uint8), [feature(rect(0, 0, 5, 5), "Tumor")])})
    (tmp_path / "images" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    result = CliRunner().invoke(
        main,
        ["export-qupath", str(project), "--images", str(tmp_path / "images"), "--out", str(tmp_path / "o"), "--workers", "1"],
    )
    assert result.exit_code == 1 and "failed: a:" in result.output and "a.png" in result.output


def test_inspect_json_on_real_export() -> None:
    path = shared("qupath", "coscialab-0.6.0", "Single_cells.geojson")
    result = CliRunner().invoke(main, ["inspect", str(path), "--json"])
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["images"][0]["annotation_counts"] == {"Unclassified": 3, "circles": 4, "class_1": 1, "two_circles": 2}
    assert set(report["images"][0]) >= {"name", "entry_id", "width", "height", "annotation_counts", "problems"}


def test_out_of_range_numbers_are_refused(tmp_path: Path) -> None:
    for option in (["--sigma", "nan"], ["--sigma", "inf"], ["--sigma", "1e6"], ["--point-radius", "inf"]):
        result = CliRunner().invoke(main, ["export-qupath", str(SAMPLE / "project"), "--out", str(tmp_path / "o"), *option])
        assert result.exit_code == 2, (option, result.output)
    assert not (tmp_path / "o").exists()


def test_wrong_folder_types_and_unreadable_files(tmp_path: Path) -> None:
    runner = CliRunner()
    export = runner.invoke(main, ["export-qupath", str(SAMPLE / "project"), "--images", str(SAMPLE / "images"),
                                  "--out", str(tmp_path / "ds"), "--workers", "1"])  # fmt: skip
    assert export.exit_code == 0
    for args in (["inspect", str(tmp_path / "ds")], ["export-qupath", str(tmp_path / "ds"), "--out", str(tmp_path / "x")]):
        result = runner.invoke(main, args)
        assert result.exit_code == 1 and "a mammotools dataset" in result.output
    (tmp_path / "bad.geojson").write_text('{"type": "FeatureCollection", "features": [')
    result = runner.invoke(main, ["inspect", str(tmp_path / "bad.geojson")])
    assert result.exit_code == 1 and "not valid JSON" in result.output


def test_ctrl_c_says_how_many_are_complete_and_how_to_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: Ctrl-C of export-qupath printed only "Aborted!"; make-crops and augment the same."""
    from conftest import make_dataset

    import mammotools.crops.image as crop_image
    import mammotools.export.image as export_image

    dataset = make_dataset(tmp_path)  # 6 images
    project = tmp_path / "project"

    def stop_at_third(module: object, name: str) -> None:
        real, calls = getattr(module, name), []

        def work(*args: object) -> object:
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return real(*args)

        monkeypatch.setattr(module, name, work)

    stop_at_third(export_image, "export_image")
    export = ["export-qupath", str(project), "--images", str(tmp_path / "images"), "--out", str(tmp_path / "ds")]
    export += ["--workers", "1"]
    result = CliRunner().invoke(main, export)
    assert result.exit_code == 130 and "Aborted" not in result.output
    assert f"Stopped: 2 of 6 image(s) are complete in {tmp_path / 'ds'}; run the same command again" in result.output
    monkeypatch.undo()
    result = CliRunner().invoke(main, export)
    assert result.exit_code == 0 and "4 exported, 2 skipped" in result.output

    stop_at_third(crop_image, "cut_image_crops")
    crops = ["make-crops", str(dataset), "--size", "32", "--per-image", "1", "--out", str(tmp_path / "c"), "--workers", "1"]
    result = CliRunner().invoke(main, crops)
    assert result.exit_code == 130 and "Stopped: 2 of 6 image(s) are complete" in result.output
