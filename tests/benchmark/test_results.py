"""The report's tables from hand-built entries and tiny fake evaluation folders (no training):
subject-bootstrap intervals recomputable from results.json, paired tests by subject (or the note
saying there are too few subjects), a model that did not learn flagged, a failed run marked
failed in every table while the report still comes out."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from scipy.stats import wilcoxon

from mammotools.benchmark.figures import error_bars
from mammotools.benchmark.report import write_report
from mammotools.benchmark.results import flags
from mammotools.benchmark.run import Entry
from mammotools.benchmark.sources import ScoredImages
from mammotools.benchmark.stats import (
    MIN_WILCOXON_PAIRS,
    mean_difference_ci,
    model_cis,
    pooled_figures,
    subject_means,
    subject_weights,
)
from mammotools.metrics import scores, write_confusion_csv

CLASSES = ["Background", "Gland", "Tumor"]


def _image_matrix(rng: np.random.Generator, skill: float) -> np.ndarray:
    """One image's confusion matrix: each true pixel right with probability ``skill`` (per image
    jittered), else another class at random; skill < 0: every pixel predicted Background."""
    truth = np.array([rng.integers(600, 900), rng.integers(100, 300), rng.integers(0, 40)])
    matrix = np.zeros((3, 3), np.int64)
    for k, n in enumerate(truth):
        if skill < 0:
            matrix[k, 0] = n
            continue
        right = rng.binomial(n, float(np.clip(skill + rng.normal(0, 0.08), 0, 1)))
        wrong = rng.multinomial(n - right, [0.5, 0.5])
        matrix[k, k] = right
        for j, other in enumerate(c for c in range(3) if c != k):
            matrix[k, other] = wrong[j]
    return matrix


def _evaluation(folder: Path, images: dict[str, np.ndarray]) -> dict[str, Any]:
    """A fake evaluate output: per_image.csv (with the per-class pixel counts), confusion.csv; the metrics."""
    folder.mkdir(parents=True)
    with (folder / "per_image.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        counts = [f"{kind}_{c}" for kind in ("tp", "true", "predicted") for c in CLASSES]
        writer.writerow(["name", "pixels", "pixel_accuracy", "mean_iou", "mean_dice", *[f"iou_{c}" for c in CLASSES], *counts])
        for name, m in images.items():
            s = scores(m, CLASSES)
            writer.writerow([name, int(m.sum()), s["pixel_accuracy"], s["mean_iou"], s["mean_dice"],
                             *["" if s["classes"][c]["iou"] is None else s["classes"][c]["iou"] for c in CLASSES],
                             *np.diag(m).tolist(), *m.sum(axis=1).tolist(), *m.sum(axis=0).tolist()])  # fmt: skip
    total = sum(images.values())
    write_confusion_csv(folder / "confusion.csv", total, CLASSES)
    return {**scores(total, CLASSES), "images": len(images), "seconds": 1.5}


def _entry(root: Path, model: str, seed: int, images: dict[str, np.ndarray], failed: str = "") -> Entry:
    run = root / "runs" / f"{model}-seed{seed}"
    (run / "stages" / model).mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"stages": [model]}))
    log = [{"stage": model, "train_loss": 1.0 / (i + 1), "val_mean_iou": 0.1 * i, "seconds": 2.0} for i in range(3)]
    (run / "stages" / model / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    evaluation = run / f"eval-{model}"
    metrics = {} if failed else _evaluation(evaluation, images)
    return Entry(model, seed, model, run, evaluation, 64, root / "crops", 6.0, 3, 1000, metrics, 0, failed)


def _bench(root: Path, subjects: int, models: dict[str, float], seeds: tuple[int, ...] = (0,),
           failed: dict[tuple[str, int], str] | None = None) -> tuple[Path, list[Entry], dict[str, Any]]:  # fmt: skip
    """A benchmark of ``models`` (name -> skill) on ``subjects`` subjects of two images each;
    ``failed``: (model, seed) -> why its training failed. Returns the report folder, the entries
    and each entry's per-image matrices."""
    dataset = root / "dataset"
    dataset.mkdir(parents=True)
    names = [f"s{k}_{view}" for k in range(subjects) for view in ("L_CC", "R_CC")]
    with (dataset / "split.csv").open("w", newline="") as f:
        f.write("name,subject,split\n" + "".join(f"{n},s{n.split('_')[0][1:]},val\n" for n in names))
    rng = np.random.default_rng(7)
    entries, matrices = [], {}
    for model, skill in models.items():
        for seed in seeds:
            images = {n: _image_matrix(rng, skill) for n in names}
            reason = (failed or {}).get((model, seed), "")
            entries.append(_entry(root, model, seed, images, reason))
            matrices[(model, seed)] = images
    record = {
        "dataset": str(dataset), "dataset_kind": "mammography", "split": {"train": 20, "val": len(names)},
        "seeds": list(seeds), "folds": 0, "quick": False, "recipe": "fast", "overrides": {}, "runs": [],
        "configs": {"x": {"optimizer": "adamw", "lr": 1e-3, "epochs": 3, "patience": 0, "batch_size": 4, "width": 1.0,
                          "scale": 1.0, "class_weights": "none"}},
        "hardware": {"cpu": "test", "cores": 2, "gpu": None}, "versions": {}, "started": "t0", "finished": "t1",
    }  # fmt: skip
    scored = ScoredImages("mammography", dataset, None, 20, names, {}, [])  # type: ignore[arg-type]
    out = root / "bench"
    write_report(out, scored, entries, record, SimpleNamespace(quick=False, pictures=0))
    return out, entries, matrices


def test_intervals_are_recomputable_from_results_json_and_computed_like_the_headline(tmp_path: Path) -> None:
    out, _, matrices = _bench(tmp_path, 7, {"good": 0.85, "fair": 0.6})
    results = json.loads((out / "results.json").read_text())
    boot = results["bootstrap"]
    assert boot["unit"] == "subject" and boot["counts"] is True and boot["resamples"] == 2000 and boot["seed"] == 2000
    for row in results["models"]:
        mine = [r for r in results["per_image"] if r["model"] == row["model"]]
        assert len(mine) == 14 and {r["subject"] for r in mine} == {f"s{k}" for k in range(7)}
        again = model_cis(mine, list(row["classes"]), boot["resamples"], boot["seed"])
        assert again == row["ci"]  # the same numbers from the saved rows, bit for bit
        headline = pooled_figures(mine)  # the per-image counts pool back to the saved confusion matrix's figures
        for metric in ("pixel_accuracy", "mean_iou", "mean_accuracy", "mean_dice"):
            assert headline[metric] == pytest.approx(row[metric], abs=1e-12)
            low, high = row["ci"][metric]
            assert low < row[metric] < high and high - low < 0.2
        for name in CLASSES:
            low, high = row["ci"]["classes"][name]["dice"]
            assert low <= row["classes"][name]["dice"] <= high
    # Independently: resample subjects, sum their images' confusion matrices, score as the headline is scored.
    images = matrices[("good", 0)]
    subjects = sorted({n.split("_")[0] for n in images})
    by_subject = [sum(m for n, m in images.items() if n.startswith(s + "_")) for s in subjects]
    draws = np.random.default_rng(2000).integers(0, len(subjects), size=(300, len(subjects)))
    values = [scores(sum(by_subject[i] for i in d), CLASSES)["mean_iou"] for d in draws]
    again = model_cis([r for r in results["per_image"] if r["model"] == "good"], CLASSES, 300, 2000)
    assert again is not None and again["mean_iou"] == pytest.approx(list(np.percentile(values, [2.5, 97.5])), abs=1e-12)
    md = (out / "results.md").read_text()
    good = results["models"][0]
    low, high = good["ci"]["mean_iou"]
    assert f"{100 * good['mean_iou']:.2f} [{100 * low:.2f}, {100 * high:.2f}]" in md
    assert "95% bootstrap confidence interval, 2000 resamples of the validation subjects" in md
    line = next(r for r in csv.DictReader((out / "results.csv").open()) if r["model"] == "good" and r["seed"] == "mean")
    assert float(line["mean_iou_ci_low"]) == pytest.approx(low) and float(line["dice_Tumor_ci_high"]) > 0
    page = (out / "report.html").read_text()
    assert f"[{100 * low:.2f}, {100 * high:.2f}]" in page
    bars, label = error_bars(results["models"])
    assert "95% CI by subject bootstrap (one run)" in label and "std" not in label
    assert bars["mean_iou"][:, 0] == pytest.approx([100 * (good["mean_iou"] - low), 100 * (high - good["mean_iou"])])


def test_seven_subjects_give_paired_tests_by_subject(tmp_path: Path) -> None:
    out, _, _ = _bench(tmp_path, 7, {"good": 0.85, "fair": 0.6, "poor": 0.45})
    results = json.loads((out / "results.json").read_text())
    tests = results["paired_tests"]
    assert results["paired_note"] == ""
    assert [(t["a"], t["b"]) for t in tests] == [("good", "fair"), ("good", "poor"), ("fair", "poor")]
    rows = {m: [r for r in results["per_image"] if r["model"] == m] for m in ("good", "fair", "poor")}
    for t in tests:
        a, b = subject_means(rows[t["a"]]), subject_means(rows[t["b"]])
        assert sorted(a) == [f"s{k}" for k in range(7)] and t["subjects"] == 7 and t["images"] == 14
        diff = np.array([a[s] - b[s] for s in sorted(a)])
        assert t["p"] == pytest.approx(wilcoxon(diff).pvalue)
        assert t["mean_difference"] == pytest.approx(diff.mean())
        assert t["ci"] == mean_difference_ci(diff, 2000, 2000) and t["ci"][0] <= t["mean_difference"] <= t["ci"][1]
        assert t["a_better"] == 7 and t["p"] == pytest.approx(2 / 2**7)  # every subject better: the smallest p
    assert sorted(t["p_holm"] for t in tests) == pytest.approx([3 * 2 / 2**7] * 3)  # Holm: 3p, kept monotone
    md = (out / "results.md").read_text()
    assert "## Paired comparison by subject" in md and "| good | fair | 7 | 14 |" in md and "p (Holm)" in md
    assert "p (Holm)" in (out / "report.html").read_text()


def test_three_subjects_give_the_note_instead_of_p_values(tmp_path: Path) -> None:
    out, _, _ = _bench(tmp_path, 3, {"good": 0.85, "fair": 0.6})
    results = json.loads((out / "results.json").read_text())
    assert results["paired_tests"] == []
    note = results["paired_note"]
    assert "With 3 validation subject(s)" in note and "never reach p < 0.05" in note and f"at least {MIN_WILCOXON_PAIRS}" in note
    md = (out / "results.md").read_text()
    assert note in md and "p (Holm)" not in md
    page = (out / "report.html").read_text()
    assert "never reach p &lt; 0.05" in page and "p (Holm)" not in page
    assert all(row["ci"] is not None for row in results["models"])  # the intervals are still given


def test_six_pairs_is_the_smallest_wilcoxon_that_can_reach_005() -> None:
    assert wilcoxon(np.arange(1, MIN_WILCOXON_PAIRS)).pvalue > 0.05
    assert wilcoxon(np.arange(1, MIN_WILCOXON_PAIRS + 1)).pvalue < 0.05


def test_a_model_predicting_one_class_is_flagged(tmp_path: Path) -> None:
    out, _, _ = _bench(tmp_path, 7, {"good": 0.85, "flat": -1})
    results = json.loads((out / "results.json").read_text())
    good, flat = results["models"]
    assert good["flag"] == ""
    assert flat["flag"] == "did not learn (predicts Background on 100% of pixels)"
    assert results["flags"] == flags(results["models"]) == ["flat: did not learn (predicts Background on 100% of pixels)"]
    md = (out / "results.md").read_text()
    assert "- **flat: did not learn (predicts Background on 100% of pixels)**" in md
    assert next(line for line in md.splitlines() if line.startswith("| flat |")).endswith(
        "| did not learn (predicts Background on 100% of pixels) |"
    )
    page = (out / "report.html").read_text()
    assert '<div class="flag">' in page
    assert '<td class="flagged">did not learn (predicts Background on 100% of pixels)</td>' in page
    line = next(r for r in csv.DictReader((out / "results.csv").open()) if r["model"] == "flat" and r["seed"] == "mean")
    assert line["notes"] == "did not learn (predicts Background on 100% of pixels)"


def test_a_failed_run_is_marked_in_every_table_and_the_report_comes_out(tmp_path: Path) -> None:
    failed = {("unet", 0): "NaN loss at epoch 2", ("unet", 1): "NaN loss at epoch 2", ("fair", 1): "out of GPU memory"}
    out, entries, _ = _bench(tmp_path, 7, {"good": 0.85, "unet": 0.7, "fair": 0.6}, seeds=(0, 1), failed=failed)
    assert (out / "report.html").stat().st_size > 0
    results = json.loads((out / "results.json").read_text())
    good, unet, fair = results["models"]
    assert unet["failed"] == "NaN loss at epoch 2" and unet["mean_iou"] is None and unet["ci"] is None
    assert [s["failed"] for s in unet["per_seed"]] == ["NaN loss at epoch 2"] * 2
    assert fair["failed"] == "" and fair["failed_runs"] == ["seed 1: out of GPU memory"] and fair["runs"] == 1
    assert fair["mean_iou"] == next(e.metrics["mean_iou"] for e in entries if e.model == "fair" and e.seed == 0)
    assert fair["ci"] == model_cis([r for r in results["per_image"] if r["model"] == "fair"], CLASSES)
    assert {r["seed"] for r in results["per_image"] if r["model"] == "fair"} == {0}
    assert not any(r["model"] == "unet" for r in results["per_image"])
    assert results["flags"] == ["unet: failed: NaN loss at epoch 2", "fair: failed and left out: seed 1: out of GPU memory"]
    assert [(t["a"], t["b"]) for t in results["paired_tests"]] == [("good", "fair")]
    md = (out / "results.md").read_text()
    unet_line = next(line for line in md.splitlines() if line.startswith("| unet |"))
    assert "| failed | failed | failed | failed |" in unet_line and unet_line.endswith("| failed: NaN loss at epoch 2 |")
    assert any(line.startswith("| unet | failed | failed |") for line in md.splitlines())  # the per-class tables
    lines = [r for r in csv.DictReader((out / "results.csv").open()) if r["model"] == "unet"]
    assert [r["notes"] for r in lines] == ["failed: NaN loss at epoch 2"] * 3 and all(r["mean_iou"] == "" for r in lines)
    page = (out / "report.html").read_text()
    assert '<td class="flagged">failed: NaN loss at epoch 2</td>' in page and "<td>unet</td>" in page
    assert sorted(p.name for p in (out / "confusion").glob("*.csv")) == [
        "fair-seed0.csv", "good-seed0.csv", "good-seed1.csv"
    ]  # fmt: skip
    assert (out / "figures" / "metrics.png").is_file() and (out / "figures" / "class_iou.png").is_file()
    bars, label = error_bars(results["models"])
    assert label == "error bars: std over runs; 95% CI by subject bootstrap (one run)"
    assert bars["mean_iou"][:, 0] == pytest.approx([100 * good["mean_iou_std"]] * 2)


def test_every_run_failed_still_writes_the_report(tmp_path: Path) -> None:
    out, _, _ = _bench(tmp_path, 3, {"unet": 0.7}, failed={("unet", 0): "out of memory"})
    results = json.loads((out / "results.json").read_text())
    assert results["models"][0]["failed"] == "out of memory" and results["paired_tests"] == []
    assert "Fewer than two models" in results["paired_note"]
    assert "failed: out of memory" in (out / "report.html").read_text()
    assert not (out / "figures" / "metrics.png").exists()


def test_subjects_are_resampled_within_each_fold() -> None:
    strata = {1: ["a", "b", "c"], 2: ["d", "e"]}
    weights = subject_weights(strata, 500, 2000)
    assert (weights[1].sum(axis=1) == 3).all() and (weights[2].sum(axis=1) == 2).all()
    assert (weights[1] == 0).any() and (weights[1] >= 2).any()  # with replacement
    again = subject_weights(strata, 500, 2000)
    assert all((weights[k] == again[k]).all() for k in strata)  # seeded


def test_one_subject_gives_no_interval_and_says_why(tmp_path: Path) -> None:
    out, _, _ = _bench(tmp_path, 1, {"good": 0.85, "fair": 0.6})
    results = json.loads((out / "results.json").read_text())
    assert results["bootstrap"]["counts"] is True and results["bootstrap"]["fewest_subjects"] == 1
    assert all(row["ci"] is None for row in results["models"])  # one subject resampled is itself: a zero-width interval
    md = (out / "results.md").read_text()
    assert "No confidence intervals: the validation images come from a single subject" in md and " [" not in md.split("##")[0]
    assert "With 1 validation subject(s) no paired test is reported" in md
    _, label = error_bars(results["models"])
    assert label == "no error bars: one run, no interval"
