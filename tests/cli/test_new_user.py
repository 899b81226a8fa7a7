"""What a new user tried and tripped over: each case one clear line and the right exit status."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner
from conftest import make_dataset, shared

from mammotools.cli import main

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def export_args(out: Path, *extra: str) -> list[str]:
    return ["export-qupath", str(SAMPLE / "project"), "--images", str(SAMPLE / "images"), "--out", str(out), *extra]


def test_a_reader_finding_nothing_to_read_is_an_error(tmp_path: Path) -> None:
    code, output = run("export-qupath", SAMPLE / "project", "--reader", "qpdata", "--out", tmp_path / "ds")
    assert code == 1 and "no data/<id>/data.qpdata for any of its 24 image(s)" in output and "--reader geojson" in output
    assert not (tmp_path / "ds").exists()  # nothing written
    code, output = run("inspect", SAMPLE / "project", "--reader", "qpdata")
    assert code == 1 and "Error: " in output and "24 problem(s)" in output
    code, output = run("inspect", SAMPLE / "project", "--reader", "geojson")
    assert code == 0 and "Error" not in output


def test_ignore_of_a_class_nobody_has_is_refused(tmp_path: Path) -> None:
    code, output = run(*export_args(tmp_path / "ds", "--ignore", "Nonsense"))
    assert code == 1 and "--ignore 'Nonsense'" in output and "check the spelling" in output
    assert not (tmp_path / "ds").exists()
    code, output = run(*export_args(tmp_path / "ds", "--ignore", "calcifications", "--workers", "1"))
    assert code == 0 and "24 exported" in output  # a class of the annotations (any case) is fine


def test_wrong_out_is_refused_before_any_progress(tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(SAMPLE / "images", images)
    code, output = run("export-qupath", SAMPLE / "project", "--images", images, "--out", images)
    assert code == 1 and "not empty and is not a mammotools dataset" in output
    assert "Exporting" not in output


def test_missing_image_beside_a_geojson_export_says_where_it_looked(tmp_path: Path) -> None:
    export = tmp_path / "phantom_001.geojson"
    shutil.copy(SAMPLE / "project" / "annotations" / "phantom_001.geojson", export)
    code, output = run("export-qupath", export, "--out", tmp_path / "ds")
    assert code == 1 and "beside the GeoJSON export" in output and "--images" in output
    assert "the project records" not in output


def test_a_file_of_a_dataset_is_named_as_such(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    code, output = run("make-crops", dataset / "manifest.csv", "--size", "64", "--out", tmp_path / "c")
    assert code == 1 and "a file of a dataset; give the dataset folder itself" in output and str(dataset) in output
    code, output = run("make-crops", tmp_path / "nowhere", "--size", "64", "--out", tmp_path / "c")
    assert code == 1 and "not found" in output


def test_import_mias_given_the_folder_names_its_info_file(tmp_path: Path) -> None:
    folder = tmp_path / "mias"
    folder.mkdir()
    (folder / "Info.txt").write_text("mdb001 G CIRC B 535 425 197\n")
    code, output = run("import-mias", folder, "--images", folder, "--out", tmp_path / "p")
    assert code == 1 and f"give {folder / 'Info.txt'}" in output
    code, output = run("import-mias", tmp_path / "none.txt", "--images", folder, "--out", tmp_path / "p")
    assert code == 1 and "not found" in output


def test_augment_of_a_missing_folder_says_it_does_not_exist(tmp_path: Path) -> None:
    code, output = run("augment", tmp_path / "nonexistent", "--out", tmp_path / "a")
    assert code == 1 and "not found" in output and "not a crop dataset" not in output


def test_import_masks_help_example_and_classes_hint(tmp_path: Path) -> None:
    code, output = run("import-masks", "--help")
    assert code == 0
    example = "--values 64=Background,128=Adipose,192=Fibroglandular,255=Pectoral --classes docs/classes/breast_tissue.json"
    assert any(line.strip().startswith("mammotools import-masks") and example in line for line in output.splitlines())
    assert "64=Background,128=Adipose,192=Fibroglandular,255=Pectoral" in output  # never broken mid-word
    (tmp_path / "lab").mkdir()
    (tmp_path / "img").mkdir()
    args = ["--images", tmp_path / "img", "--values", "128=Adipose", "--out", tmp_path / "p"]
    code, output = run("import-masks", tmp_path / "lab", *args)
    assert code == 1 and "--classes docs/classes/breast_tissue.json" in output


def test_import_masks_warns_once_with_a_count(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    (tmp_path / "img").mkdir()
    label = np.full((20, 30), 64, np.uint8)
    label[5:15, 5:15] = 128
    label[0:4, 0:4] = 255
    for i in range(4):
        cv2.imwrite(str(tmp_path / "img" / f"case_{i}.png"), np.zeros((20, 30), np.uint8))
        cv2.imwrite(str(tmp_path / "lab" / f"case_{i}_LI.png"), label)
    tissue = Path(__file__).resolve().parents[2] / "docs" / "classes" / "breast_tissue.json"
    code, output = run(
        "import-masks", tmp_path / "lab", "--images", tmp_path / "img", "--values", "64=Background,128=Adipose",
        "--classes", tissue, "--out", tmp_path / "p",
    )  # fmt: skip
    assert code == 0
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "value 255 is not in --values; 4 label file(s)" in warnings[0]


def test_top_level_help_summaries_are_whole() -> None:
    _, output = run("--help")
    commands = output.split("Commands:")[1].strip().splitlines()
    assert len(commands) == 10
    for line in commands:
        assert not line.rstrip().endswith("..."), line
        assert line.rstrip().endswith("."), line


def test_option_types_show_ranges_and_folders() -> None:
    assert re.search(r"--size INTEGER RANGE\s+Crop side.*\[16<=x<=8192", " ".join(run("make-crops", "--help")[1].split()))
    for command in ("export-qupath", "make-crops", "augment", "import-masks", "import-mias"):
        text = " ".join(run(command, "--help")[1].split())
        assert "--out DIRECTORY" in text, command
        if "--images" in text:
            assert "--images DIRECTORY" in text, command


def test_augment_of_whole_images_reports_images(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    code, output = run("augment", dataset, "--out", tmp_path / "a", "--variants", "flip_lr", "--workers", "1")
    assert code == 0 and "image(s) done" in output and "crop" not in output.split("image(s) done")[0]


def test_readme_states_the_machine_and_the_exact_round_trip() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert re.search(r"exact[^.]*--sigma 0|--sigma 0[^.]*exact", readme)  # the DDSM round trip
    for seconds in re.findall(r"; (\d+\.\d) s \(decode", readme):  # every timing shown with its machine
        assert "2-core" in readme.split(seconds + " s (decode")[1][:400]


def test_import_mias_folder_of_the_real_data(tmp_path: Path) -> None:
    folder = shared("mini-mias")
    code, output = run("import-mias", folder, "--images", folder / "images", "--out", tmp_path / "p")
    assert code == 1 and "Info.txt" in output and "a folder" in output


def test_a_refused_out_draws_no_split(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    (dataset / "split.csv").unlink(missing_ok=True)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "x.txt").write_text("mine")
    for command in (["make-crops", dataset, "--size", "32", "--out", busy], ["augment", dataset, "--out", busy]):
        code, output = run(*command)
        assert code == 1 and "not empty" in output
        assert not (dataset / "split.csv").exists()  # the split is drawn by a run that goes ahead, not a refused one


def test_map_typos_and_contradictions_are_refused(tmp_path: Path) -> None:
    for extra, message in (
        (["--map", "Tumr=Tumor"], "no annotation has class 'Tumr'"),
        (["--map", "Tumor=Nipple", "--map", "tumor=Skin"], "already mapped to 'Nipple'"),
        (["--ignore", "Skin", "--map", "Skin=Tumor"], "also given to --map"),
    ):
        code, output = run(*export_args(tmp_path / "ds", *extra))
        assert code == 1 and message in output, output
    assert not (tmp_path / "ds").exists()


def test_a_dataset_inside_the_images_is_not_searched_later(tmp_path: Path) -> None:
    images = tmp_path / "images"
    shutil.copytree(SAMPLE / "images", images)
    project = ["export-qupath", SAMPLE / "project", "--images", images, "--workers", "1"]
    assert run(*project, "--out", images / "dataset")[0] == 0
    code, output = run(*project, "--out", tmp_path / "other")  # must not find the dataset's PNGs as images
    assert code == 0 and "24 exported" in output


def test_augment_of_crops_without_their_split_is_one_line(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    assert run("make-crops", dataset, "--size", "32", "--per-image", "1", "--out", tmp_path / "c")[0] == 0
    (tmp_path / "c" / "split.csv").unlink()
    code, output = run("augment", tmp_path / "c", "--out", tmp_path / "a")
    assert code == 1 and "no split.csv" in output and not (tmp_path / "a").exists()


def test_readme_layout_names_every_module() -> None:
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    layout = readme.split("## Layout")[1]
    for module in sorted((root / "mammotools").rglob("*.py")):
        if module.name in ("__init__.py", "__main__.py"):
            continue
        assert re.search(rf"\b{re.escape(module.name)}\b", layout), f"README's layout does not list {module.relative_to(root)}"
