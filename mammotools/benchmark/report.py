"""The benchmark's report in ``--out``::

    results.md, results.csv, results.json   the paper's three figures per model with their 95%
                                            confidence intervals by subject, per-class IoU and
                                            Dice, parameters, training and inference time, the
                                            paper's figures beside, paired tests by subject,
                                            failed runs and models that did not learn;
                                            results.json keeps the per-image rows and the
                                            bootstrap's seed, so every interval is recomputable
    confusion/<model>-seed<N>.csv, .png     each model's confusion matrix (<model>-fold<K>-seed<N>
                                            with --folds); every figure of the tables is
                                            recomputable from these
    figures/metrics.png, class_iou.png, curves.png, images/<name>.png
    report.html                             one self-contained page of all the above

A quick benchmark says so at the top of every file a person reads.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from mammotools.benchmark import figures, html
from mammotools.benchmark.results import flags, model_rows, paper_for, results_csv, results_markdown, scored_rows
from mammotools.benchmark.sources import CITYSCAPES, ScoredImages
from mammotools.benchmark.stats import (
    BOOTSTRAP_SEED,
    CONFIDENCE,
    RESAMPLES,
    fewest_subjects,
    has_counts,
    paired_tests,
    read_per_image,
    subjects_of,
)
from mammotools.files import atomic_write_bytes, atomic_write_text
from mammotools.metrics import read_confusion_csv


def write_report(
    out: Path, scored: ScoredImages, entries: list[Any], record: dict[str, Any], settings: Any
) -> tuple[Path, list[dict[str, Any]]]:
    """Write every table, picture and report.html of the benchmark; returns report.html's path
    and the table's rows (one per model). Runs whose training failed are rows marked failed, and
    left out of the pictures, the intervals and the paired tests."""
    paper, paper_name = paper_for(scored.kind)
    good = [e for e in entries if not e.failed and e.metrics]
    subject_of = subjects_of(scored.path) if scored.kind != CITYSCAPES else {}
    per_image: dict[str, list[dict[str, Any]]] = {}
    for e in good:
        per_image.setdefault(e.model, []).extend(read_per_image(e, subject_of))
    bootstrap = {
        "unit": "scene" if scored.kind == CITYSCAPES else "subject",
        "resamples": RESAMPLES,
        "seed": BOOTSTRAP_SEED,
        "confidence": CONFIDENCE,
        "folds": bool(record.get("folds")),
        "counts": any(has_counts(rows) for rows in per_image.values()),  # evaluations by an older evaluate lack them
        "scored": bool(per_image),  # False: every run failed
        "fewest_subjects": min((fewest_subjects(rows) for rows in per_image.values()), default=0),  # per fold
    }
    rows = model_rows(entries, paper, per_image)
    tests, paired_note = paired_tests(per_image)
    confusion_dir, figure_dir = out / "confusion", out / "figures"
    for folder in (confusion_dir, figure_dir / "images"):
        folder.mkdir(parents=True, exist_ok=True)
    confusions = {}
    for e in good:
        target = confusion_dir / f"{e.model}-{e.tag}.csv"
        atomic_write_bytes(target, (e.evaluation / "confusion.csv").read_bytes())
        matrix, classes = read_confusion_csv(target)
        title = ("QUICK: " if settings.quick else "") + f"{e.model}, " + (f"fold {e.fold}, " if e.fold else "") + f"seed {e.seed}"
        confusions[f"{e.model}-{e.tag}"] = figures.confusion_png(matrix, classes, title, target.with_suffix(".png"))
    quick = settings.quick
    charts: dict[str, Path] = {}
    drawn = scored_rows(rows)
    if drawn:
        charts["metrics"] = figures.metric_bars(drawn, figure_dir / "metrics.png", quick)
        charts["class_iou"] = figures.class_iou_map(drawn, figure_dir / "class_iou.png", quick)
    first_seed = min((e.seed for e in good), default=0)
    first = [e for e in good if e.seed == first_seed]
    curves_of = {}
    for e in first:  # one curve per training run: "fcn32 -> fcn16 -> fcn8" once, not three times
        if e.fold > 1:
            continue  # with --folds, the first fold's curves
        stages = _stages_up_to(e.run, max((x.model for x in first if x.run == e.run), key=_stages_of(e.run).index))
        curves_of[" -> ".join(stages)] = (e.run, stages)
    if curves_of:
        charts["curves"] = figures.training_curves(curves_of, figure_dir / "curves.png", quick)
    pictures = {}
    for name in scored.val[: settings.pictures]:
        fold = scored.fold_of.get(name, 0)  # with --folds: the models that did not train on it
        predictions = {e.model: e.evaluation / "predictions" / f"{name}.png" for e in first if e.fold == fold}
        if predictions and all(p.is_file() for p in predictions.values()):
            image, label = scored.files[name]
            pictures[name] = figures.side_by_side(
                name, image, label, predictions, scored.table, figure_dir / "images" / f"{name}.png", quick
            )
    results = {
        "quick": quick,
        "paper_table": paper_name,
        "models": rows,
        "flags": flags(rows),
        "paired_tests": tests,
        "paired_note": paired_note,
        "bootstrap": bootstrap,
        "per_image": [r for rows_of in per_image.values() for r in rows_of],  # the intervals and tests recomputable
        "run": record,
    }
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    atomic_write_text(out / "results.csv", results_csv(rows, quick))
    markdown = results_markdown(rows, tests, record, paper_name, paired_note, bootstrap)
    atomic_write_text(out / "results.md", markdown)
    page = html.report_page(rows, tests, record, charts, confusions, pictures, quick, paired_note, bootstrap)
    atomic_write_text(out / "report.html", page)
    return out / "report.html", rows


def _stages_of(run: Path) -> list[str]:
    return list(json.loads((run / "run.json").read_text("utf-8"))["stages"])


def _stages_up_to(run: Path, model: str) -> list[str]:
    stages = _stages_of(run)
    return stages[: stages.index(model) + 1]


def remove_report(out: Path) -> None:
    """Drop an earlier report (it is rewritten whole at the end of every benchmark)."""
    for name in ("results.md", "results.csv", "results.json", "report.html"):
        (out / name).unlink(missing_ok=True)
    for folder in ("confusion", "figures"):
        shutil.rmtree(out / folder, ignore_errors=True)
