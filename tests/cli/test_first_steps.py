"""What a new user tripped on (issue 19, section 3): each case one clear line, the right exit
status, and nothing half-written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_dataset

from mammotools.cli import main


def run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_make_crops_refuses_an_export_that_was_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: make-crops drew split.csv over the images a stopped export had written; once the
    export was finished it refused the new subjects. A stopped export is now refused until finished."""
    import mammotools.export.image as export_image

    make_dataset(tmp_path)
    real, calls = export_image.export_image, []

    def stop_at_third(*args: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    export = ["export-qupath", tmp_path / "project", "--images", tmp_path / "images", "--out", tmp_path / "ds", "--workers", "1"]
    with monkeypatch.context() as patch:
        patch.setattr(export_image, "export_image", stop_at_third)
        assert run(*export)[0] == 130
    crops = ["make-crops", tmp_path / "ds", "--size", "32", "--per-image", "1", "--out", tmp_path / "c"]
    for command in (crops, ["augment", tmp_path / "ds", "--out", tmp_path / "a"]):
        code, output = run(*command)
        assert code == 1 and "export-qupath run was stopped before it finished, or some of its images failed (2 of 6" in output
        assert "run the same export-qupath command again" in output and len(output.strip().splitlines()) == 1
    assert not (tmp_path / "ds" / "split.csv").exists() and not (tmp_path / "c").exists() and not (tmp_path / "a").exists()
    assert run(*export)[0] == 0  # finished: the dataset is whole
    code, output = run(*crops)
    assert code == 0 and "6 image(s) cropped" in output


def test_an_export_with_failed_images_is_refused_until_they_are_exported(tmp_path: Path) -> None:
    """Review of issue 19: an export where an image failed was accepted by make-crops, which drew the
    split without that subject; once the image was fixed and exported, make-crops refused it."""
    make_dataset(tmp_path)
    image = next((tmp_path / "images").iterdir())
    good = image.read_bytes()
    image.write_bytes(good[: len(good) // 3])  # cut short: its export fails
    export = ["export-qupath", tmp_path / "project", "--images", tmp_path / "images", "--out", tmp_path / "ds", "--workers", "1"]
    assert run(*export)[0] == 1
    crops = ["make-crops", tmp_path / "ds", "--size", "32", "--per-image", "1", "--out", tmp_path / "c"]
    code, output = run(*crops)
    assert code == 1 and "or some of its images failed (5 of 6 images exported)" in output
    assert not (tmp_path / "ds" / "split.csv").exists() and not (tmp_path / "c").exists()
    image.write_bytes(good)  # fixed
    assert run(*export)[0] == 0
    code, output = run(*crops)
    assert code == 0 and "6 image(s) cropped" in output


@pytest.mark.parametrize("command", ["make-crops", "augment"])
def test_a_stopped_crop_folder_is_refused_until_finished(tmp_path: Path, command: str) -> None:
    """Review of issue 19: a stopped make-crops or augment folder was used by augment, train and
    benchmark without a word (a part of the crops)."""
    import mammotools.augment.crop as augment_crop
    import mammotools.crops.image as crops_image

    dataset = make_dataset(tmp_path)
    make = ["make-crops", dataset, "--size", "32", "--per-image", "2", "--out", tmp_path / "c", "--workers", "1"]
    aug = ["augment", tmp_path / "c", "--out", tmp_path / "a", "--variants", "flip_lr", "--workers", "1"]
    module, name = (crops_image, "cut_image_crops") if command == "make-crops" else (augment_crop, "write_crop_variants")
    if command == "augment":
        assert run(*make)[0] == 0
    real, calls = getattr(module, name), []

    def stop_at_third(*args: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, name, stop_at_third)
        assert run(*(make if command == "make-crops" else aug))[0] == 130
    stopped = tmp_path / ("c" if command == "make-crops" else "a")
    train = ["train", stopped, "--model", "fcn32", "--width", "0.0625", "--input-size", "32", "--out", tmp_path / "r"]
    for use in ([aug] if command == "make-crops" else []) + [train]:
        code, output = run(*use)
        assert code == 1 and f"its {command} run was stopped before it finished" in output, output
        assert f"run the same {command} command again" in output and len(output.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()
    assert run(*(make if command == "make-crops" else aug))[0] == 0  # finished: the folder is whole
    from mammotools.crops import open_crop_dataset

    assert open_crop_dataset(stopped).files


def test_crops_larger_than_the_images_are_warned_once(tmp_path: Path) -> None:
    """Issue 19: `make-crops --size 2000` on small images wrote per image ten identical padded
    windows without a word. One warning names how many images fit one window and a size that fits."""
    dataset = make_dataset(tmp_path)  # five 200x300 images and one 90x100
    code, output = run("make-crops", dataset, "--size", "400", "--per-image", "3", "--out", tmp_path / "c", "--workers", "1")
    warnings = [line for line in output.splitlines() if line.startswith("warning:")]
    assert code == 0 and len(warnings) == 1, output
    assert "6 of 6 image(s) fit inside one 400 px window (the largest 300x200 px)" in warnings[0]
    assert "each of their 3 crops is the same padded copy" in warnings[0] and "--size 90 or less" in warnings[0]
    code, output = run("make-crops", dataset, "--size", "120", "--per-image", "3", "--out", tmp_path / "d", "--workers", "1")
    assert code == 0 and "warning: --size 120: 1 of 6 image(s)" in output and "(the largest 100x90 px)" in output
    code, output = run("make-crops", dataset, "--size", "64", "--out", tmp_path / "e", "--workers", "1")
    assert code == 0 and "warning" not in output


def _label_images(root: Path, count: int = 3) -> tuple[Path, Path]:
    import cv2
    import numpy as np

    (root / "lab").mkdir()
    (root / "img").mkdir()
    label = np.full((20, 30), 64, np.uint8)
    label[5:15, 5:15] = 128
    for i in range(count):
        cv2.imwrite(str(root / "img" / f"case_{i}.png"), np.zeros((20, 30), np.uint8))
        cv2.imwrite(str(root / "lab" / f"case_{i}_LI.png"), label)
    return root / "lab", root / "img"


TISSUE = Path(__file__).resolve().parents[2] / "docs" / "classes" / "breast_tissue.json"


def test_a_rerun_of_an_import_completes_as_every_command_does(tmp_path: Path) -> None:
    """Issue 19: a rerun of a finished import-masks / import-mias was refused ("already holds a
    QuPath project") where every other command's rerun completes: the same inputs and settings
    say it is complete (exit 0, nothing written); other settings ask for --overwrite."""
    labels, images = _label_images(tmp_path)
    args = ["import-masks", labels, "--images", images, "--values", "64=Background,128=Adipose", "--classes", TISSUE]
    out = tmp_path / "p"
    assert run(*args, "--out", out)[0] == 0
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    code, output = run(*args, "--out", out)
    assert code == 0 and "complete, imported earlier from the same files with the same settings (3 image(s))" in output
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing rewritten
    code, output = run(*args, "--out", out, "--tolerance", "0")
    assert code == 1 and "other inputs or settings (changed: tolerance)" in output and "--overwrite" in output
    code, output = run(*args, "--out", out, "--tolerance", "0", "--overwrite")
    assert code == 0 and "3 image(s) imported" in output
    code, output = run(*args, "--out", out, "--tolerance", "0")
    assert code == 0 and "complete" in output
    project = tmp_path / "annotators"  # a project no import wrote is never replaced
    project.mkdir()
    (project / "project.qpproj").write_text("{}")
    code, output = run(*args, "--out", project, "--overwrite")
    assert code == 1 and "not one an import wrote" in output

    info = tmp_path / "Info.txt"
    info.write_text("mdb001 G CIRC B 10 10 5\n")
    import cv2
    import numpy as np

    (tmp_path / "mias").mkdir()
    cv2.imwrite(str(tmp_path / "mias" / "mdb001.pgm"), np.zeros((40, 40), np.uint8))
    mias = ["import-mias", info, "--images", tmp_path / "mias", "--out", tmp_path / "m"]
    assert run(*mias)[0] == 0
    code, output = run(*mias)
    assert code == 0 and "complete" in output and "1 image(s)" in output
    code, output = run(*mias, "--map", "CIRC=ignore")
    assert code == 1 and "(changed: map)" in output


def test_import_masks_with_the_folders_swapped_says_so(tmp_path: Path) -> None:
    labels, images = _label_images(tmp_path)
    code, output = run("import-masks", images, "--images", labels, "--values", "128=Adipose", "--classes", TISSUE,
                       "--out", tmp_path / "p")  # fmt: skip
    assert code == 1 and "the folders look swapped" in output and f"import-masks {labels} --images {images}" in output
    assert not (tmp_path / "p").exists()


def test_a_missing_images_folder_is_named_as_such(tmp_path: Path) -> None:
    """Issue 19: `export-qupath --images sample_data/image` (no such folder) said "3 image file(s)
    not found". Every --images folder that does not exist is named as such, exit 2, nothing written."""
    make_dataset(tmp_path)
    gone = tmp_path / "image"
    for command in (
        ["export-qupath", tmp_path / "project", "--images", gone, "--out", tmp_path / "ds"],
        ["import-masks", tmp_path / "images", "--images", gone, "--values", "1=Tumor", "--out", tmp_path / "p"],
        ["import-mias", tmp_path / "Info.txt", "--images", gone, "--out", tmp_path / "p"],
        ["predict", tmp_path / "run", tmp_path / "project", "--images", gone, "--out", tmp_path / "p"],
    ):
        code, output = run(*command)
        assert code == 2 and f"'--images': Directory '{gone}' does not exist" in output, output
    assert not (tmp_path / "ds").exists() and not (tmp_path / "p").exists()
    from mammotools.errors import MissingFileError
    from mammotools.export import export_dataset

    with pytest.raises(MissingFileError, match=f"--images {gone}: no such folder"):
        export_dataset(tmp_path / "project", tmp_path / "ds", gone)


def test_evaluate_on_a_dataset_of_other_classes_says_how_to_fix(tmp_path: Path) -> None:
    import json

    from mammotools.classes import load_class_table
    from mammotools.crops import CropSettings, make_crops
    from mammotools.train.evaluate import _lut_for

    tissue = load_class_table(TISSUE)
    with pytest.raises(Exception, match=r"not a class of the dataset .*; score the run on a dataset exported with its classes"):
        _lut_for(tissue, ["Background", "Tumor"], "/runs/crops/classes.json")
    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c", CropSettings(size=64, per_image=1))
    small = ["--width", "0.0625", "--input-size", "64", "--epochs", "1", "--workers", "0"]
    assert run("train", tmp_path / "c", "--model", "fcn32", "--out", tmp_path / "r", *small)[0] == 0
    table = json.loads((dataset / "classes.json").read_text())
    (dataset / "classes.json").write_text(json.dumps([c | {"name": c["name"] + "X"} for c in table]))
    code, output = run("evaluate", tmp_path / "r", dataset, "--out", tmp_path / "e")
    assert code == 1 and "--classes " + str((tmp_path / "c" / "classes.json").resolve()) in output, output
    assert len(output.strip().splitlines()) == 1


def test_readme_lists_inspects_json_keys_and_says_how_timings_were_taken(tmp_path: Path) -> None:
    import json
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    make_dataset(tmp_path)
    code, output = run("inspect", tmp_path / "project", "--json")
    report = json.loads(output)
    listed = re.search(r'`\{("qupath_version".*?)"images": \[\{(.*?)\}\]\}`', readme, re.S)
    assert code == 0 and listed, "README no longer lists inspect's JSON keys"
    assert set(re.findall(r'"(\w+)"', listed[1])) | {"images"} == set(report)
    assert set(re.findall(r'"(\w+)"', listed[2])) == set(report["images"][0])  # "predicted" among them
    words = " ".join(readme.split())
    assert "otherwise idle 2-core" in words and "may differ in the last digits" in words


@pytest.mark.parametrize(
    ("module", "function", "args", "said"),
    [
        ("mammotools.benchmark", "run_benchmark", ["benchmark", "DS", "DS", "--out", "OUT"], "the same benchmark command"),
        ("mammotools.train", "evaluate_run", ["evaluate", "RUN", "DS"], "run the same evaluate command again"),
        ("mammotools.importers", "import_masks", ["import-masks", "DS", "--images", "DS", "--values", "1=Tumor", "--out", "OUT"],
         "no project was written"),
    ],
)  # fmt: skip
def test_ctrl_c_of_every_command_is_one_line_and_exit_130(
    tmp_path: Path, module: str, function: str, args: list[str], said: str
) -> None:
    """Review of issue 19: evaluate, benchmark and import-masks printed click's bare "Aborted!" (exit 1)."""
    import importlib

    dataset = make_dataset(tmp_path)
    (tmp_path / "RUN").mkdir()

    def interrupted(*a: object, **k: object) -> None:
        raise KeyboardInterrupt

    names = {"DS": str(dataset), "OUT": str(tmp_path / "out"), "RUN": str(tmp_path / "RUN")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(importlib.import_module(module), function, interrupted)
        result = CliRunner().invoke(main, [names.get(a, a) for a in args])
    assert result.exit_code == 130, result.output
    assert "Aborted!" not in result.output and "Traceback" not in result.output
    assert "Stopped: " in result.output and said in result.output
