"""A quick benchmark end to end on tiny crops: every file it writes, figures recomputable from the
saved confusion matrices, a second run reusing every model and giving the same table."""

from __future__ import annotations

import base64
import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dataset
from PIL import Image

from mammotools.benchmark import BenchmarkSettings, run_benchmark
from mammotools.benchmark.protocol import QUICK_WIDTH
from mammotools.benchmark.results import flags
from mammotools.benchmark.stats import MIN_WILCOXON_PAIRS, model_cis
from mammotools.crops import CropSettings, make_crops
from mammotools.errors import InputError
from mammotools.metrics import read_confusion_csv, scores

MODELS = ["fcn32", "fcn16", "deeplabv3-r18"]
SEEDS = [0, 1]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, object]:
    root = tmp_path_factory.mktemp("bench")
    dataset = make_dataset(root)
    make_crops(dataset, root / "c64", CropSettings(size=64, per_image=2))
    settings = BenchmarkSettings(models=MODELS, seeds=SEEDS, quick=True, overrides={"workers": 0}, device="cpu", pictures=2)
    result = run_benchmark(dataset, [root / "c64"], root / "bench", settings)
    return dataset, root / "c64", root / "bench", result


def test_every_file_is_written(bench: tuple) -> None:
    dataset, _, out, result = bench
    val = [r["name"] for r in csv.DictReader((dataset / "split.csv").open()) if r["split"] == "val"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        "deeplabv3-r18-seed0",
        "deeplabv3-r18-seed1",
        "fcn16-seed0",
        "fcn16-seed1",
    ]
    for seed in SEEDS:  # fcn32 and fcn16 scored from one fcn32 -> fcn16 run
        assert (out / "runs" / f"fcn16-seed{seed}" / "eval-fcn32" / "metrics.json").is_file()
        assert (out / "runs" / f"fcn16-seed{seed}" / "eval-fcn16" / "metrics.json").is_file()
    for name in ("results.md", "results.csv", "results.json", "report.html", "run.json"):
        assert (out / name).stat().st_size > 0, name
    for model in MODELS:
        for seed in SEEDS:
            assert (out / "confusion" / f"{model}-seed{seed}.csv").is_file()
            with Image.open(out / "confusion" / f"{model}-seed{seed}.png") as im:
                assert im.format == "PNG" and min(im.size) > 100
    for figure in ("metrics", "class_iou", "curves"):
        with Image.open(out / "figures" / f"{figure}.png") as im:
            assert im.format == "PNG" and min(im.size) > 100
    assert sorted(p.stem for p in (out / "figures" / "images").iterdir()) == sorted(val)[:2]
    run = json.loads((out / "run.json").read_text())
    assert run["seeds"] == SEEDS and run["quick"] is True and run["finished"] >= run["started"]
    assert run["split"]["val_images"] == sorted(val) or sorted(run["split"]["val_images"]) == sorted(val)
    assert {"torch", "mammotools"} <= set(run["versions"]) and run["hardware"]["cores"]
    assert set(run["configs"]) == {"fcn16-seed0", "fcn16-seed1", "deeplabv3-r18-seed0", "deeplabv3-r18-seed1"}
    assert run["configs"]["fcn16-seed1"]["seed"] == 1 and run["configs"]["fcn16-seed1"]["width"] == QUICK_WIDTH
    md = (out / "results.md").read_text()
    assert md.startswith("**QUICK BENCHMARK**") and "| fcn16 |" in md and "Table 10" in md
    assert len(result.entries) == len(MODELS) * len(SEEDS)


def test_figures_are_recomputed_from_the_saved_confusion_matrices(bench: tuple) -> None:
    dataset, _, out, _ = bench
    results = json.loads((out / "results.json").read_text())
    assert [row["model"] for row in results["models"]] == MODELS
    for row in results["models"]:
        per_seed = []
        for s in row["per_seed"]:
            matrix, classes = read_confusion_csv(out / "confusion" / f"{row['model']}-seed{s['seed']}.csv")
            again = scores(matrix, classes)
            for metric in ("pixel_accuracy", "mean_iou", "mean_accuracy", "mean_dice"):
                assert s[metric] == pytest.approx(again[metric], abs=1e-12)
            per_seed.append(again)
        for metric in ("pixel_accuracy", "mean_iou", "mean_accuracy"):
            values = [p[metric] for p in per_seed]
            assert row[metric] == pytest.approx(np.mean(values))
            assert row[f"{metric}_std"] == pytest.approx(np.std(values, ddof=1))
        for name in row["classes"]:
            ious = [p["classes"][name]["iou"] for p in per_seed if p["classes"][name]["iou"] is not None]
            assert row["classes"][name]["iou"] == (pytest.approx(np.mean(ious)) if ious else None)
    csv_rows = list(csv.DictReader((out / "results.csv").open()))
    means = {r["model"]: r for r in csv_rows if r["seed"] == "mean"}
    for row in results["models"]:
        assert float(means[row["model"]]["mean_iou"]) == pytest.approx(row["mean_iou"])
    # Every interval is recomputable from the per-image rows results.json keeps (None: evaluations without pixel counts).
    boot = results["bootstrap"]
    assert boot["unit"] == "subject" and boot["resamples"] == 2000 and boot["seed"] == 2000
    for row in results["models"]:
        mine = [r for r in results["per_image"] if r["model"] == row["model"]]
        assert {r["seed"] for r in mine} == set(SEEDS) and all(r["subject"] for r in mine)
        assert row["ci"] == model_cis(mine, list(row["classes"]), boot["resamples"], boot["seed"])
        assert (row["ci"] is not None) == (boot["counts"] and boot["fewest_subjects"] >= 2)
        assert row["flag"] in ("",) or row["flag"].startswith("did not learn")  # quick models may not learn
    assert results["flags"] == flags(results["models"])
    # The tiny dataset has too few validation subjects for a paired test to reach p < 0.05: a note, no table.
    split = list(csv.DictReader((dataset / "split.csv").open()))
    subjects = {r["subject"] for r in split if r["split"] == "val"}
    assert len(subjects) < MIN_WILCOXON_PAIRS and results["paired_tests"] == []
    assert f"With {len(subjects)} validation subject(s) no paired test is reported" in results["paired_note"]
    assert results["paired_note"] in (out / "results.md").read_text()


def test_a_second_run_reuses_every_model_and_gives_the_same_table(bench: tuple) -> None:
    dataset, crops, out, first = bench
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.pt")}
    results = json.loads((out / "results.json").read_text())
    settings = BenchmarkSettings(models=MODELS, seeds=SEEDS, quick=True, overrides={"workers": 0}, device="cpu", pictures=2)
    again = run_benchmark(dataset, [crops], out, settings)
    assert again.trained == [] and sorted(again.reused) == sorted(first.trained)
    assert {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("*.pt")} == before
    assert json.loads((out / "results.json").read_text())["models"] == results["models"]
    run_json = (out / "run.json").read_bytes()
    changed = BenchmarkSettings(
        models=["fcn32", "fcn16"], seeds=[0], quick=True, overrides={"workers": 0, "lr": 0.01}, device="cpu"
    )
    with pytest.raises(InputError, match="trained by an earlier benchmark with other settings; choose a new --out"):
        run_benchmark(dataset, [crops], out, changed)
    assert (out / "run.json").read_bytes() == run_json  # a refused benchmark writes nothing


def test_out_must_be_a_benchmark_and_the_report_holds_only_this_run(bench: tuple, tmp_path: Path) -> None:
    dataset, crops, out, _ = bench
    training_run = out / "runs" / "fcn16-seed0"
    before = (training_run / "run.json").read_bytes()
    one = BenchmarkSettings(models=["fcn32"], seeds=[0], quick=True, overrides={"workers": 0}, device="cpu", pictures=0)
    with pytest.raises(InputError, match="holds a training run or other output, not a benchmark"):
        run_benchmark(dataset, [crops], training_run, one)
    assert (training_run / "run.json").read_bytes() == before
    copy = tmp_path / "bench"
    shutil.copytree(out, copy)
    fewer = BenchmarkSettings(
        models=["fcn32", "fcn16"], seeds=[0], quick=True, overrides={"workers": 0}, device="cpu", pictures=0
    )
    run_benchmark(dataset, [crops], copy, fewer)
    assert sorted(p.name for p in (copy / "confusion").glob("*.csv")) == ["fcn16-seed0.csv", "fcn32-seed0.csv"]
    assert not (copy / "figures" / "images").exists() or not any((copy / "figures" / "images").iterdir())
    rows = list(csv.DictReader((copy / "results.csv").open()))
    assert {r["model"] for r in rows} == {"fcn32", "fcn16"} and all(r["quick"] == "True" for r in rows)
    assert all(r["iou_Tumor"] != "" for r in rows if r["seed"] == "0")


def test_a_killed_benchmark_resumes(bench: tuple, tmp_path: Path) -> None:
    dataset, crops, out, _ = bench
    copy = tmp_path / "bench"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "runs" / "deeplabv3-r18-seed1")  # killed before its last run
    (copy / "runs" / "fcn16-seed1" / "stages" / "fcn16" / "done.json").unlink()  # and in the middle of a stage
    settings = BenchmarkSettings(models=MODELS, seeds=SEEDS, quick=True, overrides={"workers": 0}, device="cpu", pictures=2)
    result = run_benchmark(dataset, [crops], copy, settings)
    assert sorted(result.trained) == ["deeplabv3-r18-seed1", "fcn16-seed1"]
    assert sorted(result.reused) == ["deeplabv3-r18-seed0", "fcn16-seed0"]
    assert json.loads((copy / "results.json").read_text())["models"][0]["model"] == "fcn32"


def test_report_html_is_self_contained(bench: tuple) -> None:
    _, _, out, _ = bench
    page = (out / "report.html").read_text()
    assert "QUICK BENCHMARK" in page
    sources = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert len(sources) == 3 + 2 + len(MODELS) * len(SEEDS)  # charts, pictures, confusion matrices
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing outside the file
    # Each confusion matrix drawn at its own size (no thumbnail), one click to show or hide.
    matrices = re.findall(r'<details class="matrix"( open)?><summary>([^<]+)</summary><img', page)
    assert [name for _, name in matrices] == [f"{m}-seed{s}" for m in MODELS for s in SEEDS]
    assert [bool(o) for o, _ in matrices] == [True] + [False] * (len(matrices) - 1)
    assert "width: 340px" not in page


def test_report_renders_in_headless_chromium(bench: tuple, tmp_path: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium): the page is not rendered")
    _, _, out, _ = bench
    shot = tmp_path / "shot.png"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--screenshot={shot}",
         "--window-size=1200,2400", (out / "report.html").resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape == (2400, 1200, 3)
    # The quick banner's yellow and the charts' colours are on the page, not a blank one.
    assert ((pixels == (255, 243, 205)).all(axis=2)).sum() > 5000
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    # At 900 px the page does not scroll sideways: the 15-column per-class tables scroll on their own.
    page = tmp_path / "measured.html"
    script = "<script>document.title = 'W' + document.documentElement.scrollWidth;</script></body>"
    page.write_text((out / "report.html").read_text().replace("</body>", script))
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=900,2000", "--dump-dom", page.as_uri()],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    width = int(re.search(r"<title>W(\d+)</title>", dom).group(1))  # type: ignore[union-attr]
    assert width <= 900, f"the page is {width} px wide at 900 px"
    assert '<div class="wide"><table>' in (out / "report.html").read_text()


def test_a_tiny_budget_stops_training_and_the_report_states_it(tmp_path: Path) -> None:
    """--budget: every run stops when its minutes are spent (a staged run's stages sharing them),
    the report still comes out and says the budget and what each model did with it."""
    dataset = make_dataset(tmp_path)
    crops = tmp_path / "c64"
    make_crops(dataset, crops, CropSettings(size=64, per_image=2))
    overrides = {"workers": 0, "budget_minutes": 0.003}  # 0.18 s per run: one (partial) epoch per stage
    models = ["fcn32", "fcn16", "deeplabv3-r18"]
    settings = BenchmarkSettings(models=models, quick=True, overrides=overrides, device="cpu", pictures=0)
    result = run_benchmark(dataset, [crops], tmp_path / "b", settings)
    configs = json.loads((tmp_path / "b" / "run.json").read_text())["configs"]
    assert {c["budget_minutes"] for c in configs.values()} == {0.003}
    assert {c["epochs"] for c in configs.values()} == {10_000}  # no --epochs: the budget decides
    done = json.loads((tmp_path / "b" / "runs" / "fcn16-seed0" / "stages" / "fcn32" / "done.json").read_text())
    assert done["stopped_by"] == "budget" and done["budget_seconds"] == pytest.approx(0.09)
    rows = {r["model"]: r for r in result.rows}
    assert {m: r["stopped_by"] for m, r in rows.items()} == dict.fromkeys(models, "budget")
    assert all(1 <= rows[m]["epochs"] < 10_000 for m in models)  # the budget, not the epochs, stopped them
    assert done["seconds"] >= done["budget_seconds"]  # it stopped once its share was spent
    assert rows["fcn16"]["images_seen"] > rows["fcn32"]["images_seen"] > 0  # fcn16 counts fcn32's stage too
    text = (tmp_path / "b" / "results.md").read_text()
    assert "an equal budget of 0.003 min of wall clock per run" in text
    assert "fcn16's 2 stages 0.0015 min each" in text and "budget) |" in text
    assert "an equal budget of 0.003 min" in (tmp_path / "b" / "report.html").read_text()


def test_damaged_evaluations_and_logs_are_redone_not_dropped(bench: tuple, tmp_path: Path) -> None:
    """A garbage per_image.csv, a metrics.json of `[]` or cut short, a garbage line in a stage's
    log.jsonl: the rerun redoes (or rewrites from the checkpoint) each one, and the report is the
    undamaged one: no model silently leaves the paired tests."""
    dataset, crops, out, _ = bench
    copy = tmp_path / "bench"
    shutil.copytree(out, copy)
    runs = copy / "runs"
    per_image = runs / "fcn16-seed0" / "eval-fcn16" / "per_image.csv"
    clean_rows = per_image.read_bytes()
    lines = per_image.read_text().splitlines()
    per_image.write_text("\n".join([lines[0], "garbage," + lines[1].split(",", 1)[1].replace("0", "x"), *lines[2:]]) + "\n")
    (runs / "fcn16-seed1" / "eval-fcn32" / "metrics.json").write_text("[]")
    (runs / "fcn16-seed1" / "eval-fcn32" / "evaluation.json").unlink()  # the marker gone too: still redone
    other = runs / "fcn16-seed1" / "eval-fcn16"
    (other / "evaluation.json").write_text("[]")
    (other / "per_image.csv").write_text((other / "per_image.csv").read_text().replace(",0.", ",-5.", 1))  # out of range
    cut = runs / "deeplabv3-r18-seed0" / "eval-deeplabv3-r18" / "metrics.json"
    cut.write_text(cut.read_text()[: len(cut.read_text()) // 2])
    metrics = json.loads((runs / "deeplabv3-r18-seed1" / "eval-deeplabv3-r18" / "metrics.json").read_text())
    del metrics["classes"]
    (runs / "deeplabv3-r18-seed1" / "eval-deeplabv3-r18" / "metrics.json").write_text(json.dumps(metrics))
    log = runs / "fcn16-seed0" / "stages" / "fcn32" / "log.jsonl"
    clean_log = log.read_text()
    log.write_text(clean_log + "not a record\n")
    settings = BenchmarkSettings(models=MODELS, seeds=SEEDS, quick=True, overrides={"workers": 0}, device="cpu", pictures=2)
    result = run_benchmark(dataset, [crops], copy, settings)
    assert result.trained == [] and result.failed == []
    assert per_image.read_bytes() == clean_rows and log.read_text() == clean_log
    before, after = (json.loads((o / "results.json").read_text()) for o in (out, copy))
    key = ("model", "seed", "fold", "name", "subject", "mean_iou", "tp", "true", "predicted")
    assert sorted(tuple(str(r.get(k)) for k in key) for r in after["per_image"]) == sorted(
        tuple(str(r.get(k)) for k in key) for r in before["per_image"]
    )
    for a, b in zip(before["models"], after["models"], strict=True):
        compared = ("model", "mean_iou", "ci", "train_seconds")
        assert [a[k] for k in compared] == [b[k] for k in compared]


def test_one_models_crash_is_a_failed_row_and_the_report_still_comes_out(bench: tuple, tmp_path: Path) -> None:
    import mammotools.train as train

    dataset, crops, out, _ = bench
    copy = tmp_path / "bench"
    shutil.copytree(out, copy)
    real = train.train_run

    def crashing(crops_path: Path, model_name: str, *args: object, **kwargs: object) -> object:
        if model_name == "deeplabv3-r18" and not kwargs.get("check_only"):
            raise ValueError("Expected more than 1 value per channel when training, got input size torch.Size([1, 8, 1, 1])")
        return real(crops_path, model_name, *args, **kwargs)  # type: ignore[arg-type]

    settings = BenchmarkSettings(models=MODELS, seeds=SEEDS, quick=True, overrides={"workers": 0}, device="cpu", pictures=0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "train_run", crashing)
        result = run_benchmark(dataset, [crops], copy, settings)
    assert result.failed == ["deeplabv3-r18-seed0", "deeplabv3-r18-seed1"]
    rows = {r["model"]: r for r in result.rows}
    assert rows["deeplabv3-r18"]["failed"].startswith("ValueError: Expected more than 1 value per channel")
    assert not rows["fcn16"]["failed"] and rows["fcn16"]["mean_iou"] is not None
    assert "| deeplabv3-r18 | failed |" in (copy / "results.md").read_text()


@pytest.mark.parametrize(("option", "says"), [(["--seeds", str(2**64)], "seed 18446744073709551616: give a seed from 0"),
                                              (["--width", "inf"], "width inf: must be a finite number")])  # fmt: skip
def test_options_past_click_are_one_line(bench: tuple, tmp_path: Path, option: list[str], says: str) -> None:
    from click.testing import CliRunner

    from mammotools.cli import main

    dataset, crops, _, _ = bench
    result = CliRunner().invoke(main, ["benchmark", str(dataset), "--crops", str(crops), "--out", str(tmp_path / "b"),
                                       "--quick", "--models", "fcn32", *option])  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output and says in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "b").exists()
