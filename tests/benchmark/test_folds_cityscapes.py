"""--folds K (cross-validation by subject) and --dataset cityscapes, end to end on tiny data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_cityscapes, make_dataset

from mammotools.benchmark import BenchmarkSettings, run_benchmark
from mammotools.cli import main
from mammotools.crops import CropSettings, make_crops
from mammotools.errors import InputError
from mammotools.metrics import read_confusion_csv, scores


def _quick(**more: object) -> BenchmarkSettings:
    values = dict(models=["fcn32"], quick=True, overrides={"workers": 0, "epochs": 1}, device="cpu", pictures=6)
    values.update(more)
    return BenchmarkSettings(**values)  # type: ignore[arg-type]


def test_folds_score_every_image_once_by_models_that_never_saw_its_subject(tmp_path: Path) -> None:
    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c64", CropSettings(size=64, per_image=2))
    out = tmp_path / "bench"
    result = run_benchmark(dataset, [tmp_path / "c64"], out, _quick(folds=3))
    split = {r["name"]: r["subject"] for r in csv.DictReader((dataset / "split.csv").open())}
    assert sorted(p.name for p in (out / "runs").iterdir()) == [f"fcn32-fold{k}-seed0" for k in (1, 2, 3)]
    scored: list[str] = []
    for k in (1, 2, 3):
        run = out / "runs" / f"fcn32-fold{k}-seed0"
        config = json.loads((run / "config.json").read_text())
        assert (config["folds"], config["fold"]) == (3, k)
        names = [r["name"] for r in csv.DictReader((run / "eval-fcn32" / "per_image.csv").open())]
        assert len({split[n] for n in names}) == 1  # 3 subjects, 3 folds: each run scores one subject's images
        assert (run / "stages" / "fcn32" / "log.jsonl").read_text().count("\n") == 1  # one epoch trained
        scored += names
    assert sorted(scored) == sorted(split)  # every image scored exactly once
    record = json.loads((out / "run.json").read_text())
    assert record["folds"] == 3 and sorted(n for names in record["split"]["folds"].values() for n in names) == sorted(split)
    results = json.loads((out / "results.json").read_text())
    row = results["models"][0]
    assert [(s["seed"], s["fold"]) for s in row["per_seed"]] == [(0, 1), (0, 2), (0, 3)]
    per_fold = [scores(*read_confusion_csv(out / "confusion" / f"fcn32-fold{k}-seed0.csv")) for k in (1, 2, 3)]
    assert row["mean_iou"] == pytest.approx(np.mean([p["mean_iou"] for p in per_fold]))
    assert row["mean_iou_std"] == pytest.approx(np.std([p["mean_iou"] for p in per_fold], ddof=1))
    lines = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["seed"], r["fold"]) for r in lines] == [("0", "1"), ("0", "2"), ("0", "3"), ("mean", "")]
    md = (out / "results.md").read_text()
    assert "3-fold cross-validation by subject" in md and "over folds" in md
    assert len(list((out / "figures" / "images").iterdir())) == 6  # each image drawn from its own fold's model
    assert len(result.entries) == 3
    again = run_benchmark(dataset, [tmp_path / "c64"], out, _quick(folds=3))
    assert again.trained == [] and again.rows == result.rows


def test_folds_refuse_augmented_crops_and_too_many_folds(tmp_path: Path) -> None:
    from mammotools.augment import augment_dataset

    dataset = make_dataset(tmp_path)
    make_crops(dataset, tmp_path / "c64", CropSettings(size=64, per_image=1))
    augment_dataset(tmp_path / "c64", tmp_path / "aug", variants=("flip_lr",))
    with pytest.raises(InputError, match="augmented dataset"):
        run_benchmark(dataset, [tmp_path / "aug"], tmp_path / "b1", _quick(folds=3))
    with pytest.raises(InputError, match="give 2 to 3"):
        run_benchmark(dataset, [tmp_path / "c64"], tmp_path / "b2", _quick(folds=4))
    assert not (tmp_path / "b1").exists() and not (tmp_path / "b2").exists()


def test_cityscapes_benchmark_beside_the_papers_table_9(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs")
    out = tmp_path / "bench"
    run_benchmark(root, [], out, _quick(dataset="cityscapes"))
    results = json.loads((out / "results.json").read_text())
    assert results["paper_table"].startswith("Table 9")
    row = results["models"][0]
    assert row["paper"] == {"pixel_accuracy": 91.84, "mean_iou": 57.35, "mean_accuracy": 66.59}
    assert len(row["classes"]) == 19
    matrix, classes = read_confusion_csv(out / "confusion" / "fcn32-seed0.csv")
    assert classes[0] == "road" and matrix.sum() > 0
    record = json.loads((out / "run.json").read_text())
    assert record["dataset_kind"] == "cityscapes" and record["split"]["val"] == 2
    md = (out / "results.md").read_text()
    assert "Table 9, Cityscapes validation" in md and "| fcn32 | " in md and "91.84 / 57.35 / 66.59" in md
    assert sorted(p.stem for p in (out / "figures" / "images").iterdir()) == [
        "frankfurt_000000_000019",
        "frankfurt_000001_000019",
    ]
    with pytest.raises(InputError, match="leave out CROPS"):
        run_benchmark(root, [tmp_path / "c"], tmp_path / "b2", _quick(dataset="cityscapes"))
    with pytest.raises(InputError, match="leave out --folds"):
        run_benchmark(root, [], tmp_path / "b3", _quick(dataset="cityscapes", folds=2))


def test_cli_options(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs")
    runner = CliRunner()
    args = ["benchmark", str(root), "--dataset", "cityscapes", "--folds", "2", "--out", str(tmp_path / "b")]
    result = runner.invoke(main, args)
    assert result.exit_code != 0 and "leave out --folds" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, ["train", str(root), "--model", "fcn32", "--fold", "2", "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "give --folds K too" in result.output
    result = runner.invoke(main, ["train", str(root), "--model", "fcn32", "--folds", "2", "--out", str(tmp_path / "r")])
    assert result.exit_code != 0 and "give --fold k too" in result.output


def test_a_changed_validation_set_is_scored_again(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs")
    out = tmp_path / "bench"
    run_benchmark(root, [], out, _quick(dataset="cityscapes"))
    for kind, suffix in (("leftImg8bit", "_leftImg8bit.png"), ("gtFine", "_gtFine_labelIds.png")):
        src = root / kind / "val" / "frankfurt" / f"frankfurt_000000_000019{suffix}"
        (src.parent / src.name.replace("000000", "000002")).write_bytes(src.read_bytes())
    again = run_benchmark(root, [], out, _quick(dataset="cityscapes"))
    assert again.trained == [] and again.entries[0].metrics["images"] == 3
    (out / "runs" / "fcn32-seed0" / "eval-fcn32" / "per_image.csv").unlink()  # an evaluation stopped before its end
    third = run_benchmark(root, [], out, _quick(dataset="cityscapes"))
    assert third.entries[0].metrics["images"] == 3 and (out / "runs" / "fcn32-seed0" / "eval-fcn32" / "per_image.csv").is_file()


def test_a_cityscapes_folder_without_the_option_says_so(tmp_path: Path) -> None:
    root = make_cityscapes(tmp_path / "cs")
    with pytest.raises(InputError, match="add --dataset cityscapes"):
        run_benchmark(root, [], tmp_path / "b", _quick())
    with pytest.raises(InputError, match="smaller --input-size, or a larger --scale"):
        run_benchmark(root, [], tmp_path / "b", _quick(dataset="cityscapes", overrides={"workers": 0, "input_size": 128}))
