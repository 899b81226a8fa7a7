"""The benchmark's tables: each model's figures over its runs (seeds, and folds with
``--folds``: mean and standard deviation) with their 95% confidence intervals by subject
(mammotools.benchmark.stats), the paper's own figures beside them, and paired comparisons of
models by subject.

Every figure of a model's run comes from its saved confusion matrix (mammotools.metrics); means
and standard deviations are over runs (sample standard deviation, 0 with one run). With folds,
each image is scored once per seed, by the models of the fold that held it out. A run whose
training failed (Entry.failed) is left out of the figures and named in its model's row; a model
that predicts one class almost everywhere is flagged as one that did not learn.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from mammotools.benchmark.settings import epochs_cell, settings_line
from mammotools.benchmark.stats import BOOTSTRAP_SEED, RESAMPLES, model_cis

METRICS = ("pixel_accuracy", "mean_iou", "mean_accuracy", "mean_dice")
METRIC_TITLES = {
    "pixel_accuracy": "pixel accuracy",
    "mean_iou": "mean IoU",
    "mean_accuracy": "mean class accuracy",
    "mean_dice": "mean Dice",
}
ONE_CLASS_SHARE = 0.99  # a model predicting one class on this share of the scored pixels did not learn

# The paper's figures (pixel accuracy / mean IoU / mean per-class accuracy, %), as printed
# (../docs/method.md, "Results the paper reports"; the paper's tables are partly garbled).
PAPER_MAMMOGRAPHY = {  # Table 10: the paper's own mammograms, its class set
    "fcn32": (80.37, 40.06, 49.20),
    "fcn16": (78.90, 41.75, 53.13),
    "fcn8": (78.17, 45.12, 57.03),
    "unet": (80.49, 43.47, 53.78),
    "dilation10-front": (93.03, 47.65, 60.74),
}
PAPER_CITYSCAPES = {  # Table 9, first block: Cityscapes validation, 19 classes
    "fcn32": (91.84, 57.35, 66.59),
    "fcn16": (92.88, 59.25, 67.86),
    "fcn8": (92.57, 59.01, 67.96),
    "dilation10-global": (93.69, 57.91, 67.97),
    "deeplabv3-r18": (92.17, 51.34, 62.01),
    "unet": (91.81, 58.87, 68.86),
}


def _stats(values: list[float | None]) -> tuple[float | None, float | None]:
    present = [v for v in values if v is not None and not math.isnan(v)]
    if not present:
        return None, None
    mean = float(np.mean(present))
    std = float(np.std(present, ddof=1)) if len(present) > 1 else 0.0
    return mean, std


def runs_per_model(record: dict[str, Any]) -> int:
    """How many runs each model's figures are averaged over (seeds x folds)."""
    return len(record["seeds"]) * max(int(record.get("folds") or 0), 1)


def over_words(record: dict[str, Any]) -> str:
    """What the means and spreads are over: "seeds", "folds" or "folds and seeds"."""
    folds = int(record.get("folds") or 0)
    if not folds:
        return "seeds"
    return "folds" if len(record["seeds"]) == 1 else "folds and seeds"


def repeats_line(record: dict[str, Any]) -> str:
    """``Seed(s): 0, 1`` or ``5 folds by subject; seed(s): 0``, in words."""
    seeds = f"seed(s) {', '.join(map(str, record['seeds']))}"
    folds = int(record.get("folds") or 0)
    return (f"{folds}-fold cross-validation by subject, " if folds else "") + seeds


def data_line(record: dict[str, Any]) -> str:
    """What was trained and scored on, in words (from run.json)."""
    split, folds = record["split"], int(record.get("folds") or 0)
    if record.get("dataset_kind") == "cityscapes":
        return f"{split['train']} training and {split['val']} val scenes (Cityscapes' own split)"
    if folds:
        return f"{split['val']} image(s) in {folds} folds by subject, each fold scored by the models trained on the others"
    return f"{split['train']} training and {split['val']} validation image(s), split by subject"


def repeat_of(entry: Any) -> str:
    """``seed 1`` or ``fold 2, seed 0``: which run of its model an entry is."""
    return f"seed {entry.seed}" if not entry.fold else f"fold {entry.fold}, seed {entry.seed}"


def _scored(entry: Any) -> bool:
    return not getattr(entry, "failed", "") and bool(entry.metrics)


def _reason(entry: Any) -> str:
    return str(getattr(entry, "failed", "") or "no evaluation")


def _predicted_share(metrics: dict[str, Any]) -> tuple[str, float] | None:
    """The class predicted most, and its share of the scored pixels (None: no pixel scored)."""
    pixels = int(metrics.get("pixels") or 0)
    predicted = {name: int(c.get("predicted_pixels") or 0) for name, c in metrics["classes"].items()}
    if not pixels or not predicted:
        return None
    name = max(predicted, key=lambda n: predicted[n])
    return name, predicted[name] / pixels


def _undefined(metrics: dict[str, Any]) -> bool:
    return any(metrics.get(m) is None or math.isnan(metrics[m]) for m in METRICS)


def _share_words(share: float) -> str:
    """A share as a percentage, rounded down (99.96% is not "100.0%")."""
    return "100%" if share >= 1 else f"{math.floor(1000 * share) / 10:.1f}%"


def learn_flag(entries: list[Any]) -> str:
    """``did not learn (predicts <class> on N% of pixels)`` when a model's runs predict one class
    on at least ONE_CLASS_SHARE of the scored pixels (from each run's confusion matrix: its
    column sums), or their figures are undefined (NaN); with several runs of which only some did
    not learn, which ones; "" for a model that learnt."""
    bad = []
    for e in entries:
        share = _predicted_share(e.metrics)
        if _undefined(e.metrics) or share is None:
            bad.append((e, "its figures are undefined (NaN)"))
        elif share[1] >= ONE_CLASS_SHARE:
            bad.append((e, f"predicts {share[0]} on {_share_words(share[1])} of pixels"))
    if not bad:
        return ""
    if len(bad) == len(entries) == 1:
        return f"did not learn ({bad[0][1]})"
    if len(bad) == len(entries):  # every run: the share over all of them
        total = sum(int(e.metrics.get("pixels") or 0) for e in entries)
        predicted: dict[str, int] = {}
        for e in entries:
            for name, c in e.metrics["classes"].items():
                predicted[name] = predicted.get(name, 0) + int(c.get("predicted_pixels") or 0)
        name = max(predicted, key=lambda n: predicted[n])
        if total and predicted[name] / total >= ONE_CLASS_SHARE:
            return f"did not learn (predicts {name} on {_share_words(predicted[name] / total)} of pixels)"
    return "; ".join(f"did not learn in {repeat_of(e)} ({why})" for e, why in bad)


def model_rows(
    entries: list[Any],
    paper: dict[str, tuple[float, float, float]],
    per_image: dict[str, list[dict[str, Any]]] | None = None,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> list[dict[str, Any]]:
    """One row per model (entries in benchmark order): figures per run, mean and std over runs,
    the subject-bootstrap 95% interval of each figure ("ci", from ``per_image``: model -> its
    per-image rows, see mammotools.benchmark.stats; None without pixel counts), "flag" (did not
    learn) and "failed" (every run failed: why). Runs that failed while others did not are left
    out of the figures and listed in "failed_runs"."""
    rows: list[dict[str, Any]] = []
    any_classes = next((list(e.metrics["classes"]) for e in entries if _scored(e)), [])
    for model in dict.fromkeys(e.model for e in entries):
        runs = [e for e in entries if e.model == model]
        mine = [e for e in runs if _scored(e)]
        lost = [e for e in runs if not _scored(e)]
        classes = list(mine[0].metrics["classes"]) if mine else any_classes
        row: dict[str, Any] = {
            "model": model,
            "seeds": [e.seed for e in runs],
            "runs": len(mine),
            "input_size": runs[0].input_size,
            "crops": str(runs[0].crops),
            "parameters": runs[0].parameters,
            "per_seed": [
                {
                    "seed": e.seed,
                    "fold": e.fold,
                    **{m: e.metrics[m] for m in METRICS},
                    "classes": {n: {k: e.metrics["classes"][n][k] for k in ("iou", "dice", "accuracy")} for n in classes},
                    "train_seconds": e.train_seconds,
                    "seconds_per_image": e.metrics["seconds"] / max(e.metrics["images"], 1),
                    "failed": "",
                }
                if _scored(e)
                else {"seed": e.seed, "fold": e.fold, **{m: None for m in METRICS}, "classes": {},
                      "train_seconds": e.train_seconds, "seconds_per_image": None, "failed": _reason(e)}
                for e in runs
            ],
        }  # fmt: skip
        for metric in METRICS:
            row[metric], row[f"{metric}_std"] = _stats([e.metrics[metric] for e in mine])
        row["classes"] = {
            name: {key: _stats([e.metrics["classes"][name][key] for e in mine])[0] for key in ("iou", "dice", "accuracy")}
            for name in classes
        }
        row["train_seconds"], _ = _stats([e.train_seconds for e in mine])
        row["epochs"] = (mine or runs)[0].epochs
        row["images_seen"] = int(np.mean([getattr(e, "images_seen", 0) for e in mine])) if mine else 0
        row["stopped_by"] = getattr((mine or runs)[0], "stopped_by", "")
        row["seconds_per_image"], _ = _stats([e.metrics["seconds"] / max(e.metrics["images"], 1) for e in mine])
        rows_of = (per_image or {}).get(model, [])
        row["ci"] = model_cis(rows_of, classes, resamples, seed) if mine and rows_of else None
        row["flag"] = learn_flag(mine)
        row["failed"] = "; ".join(dict.fromkeys(_reason(e) for e in lost)) if not mine else ""
        row["failed_runs"] = [f"{repeat_of(e)}: {_reason(e)}" for e in lost] if mine else []
        figures = paper.get(model)
        row["paper"] = dict(zip(("pixel_accuracy", "mean_iou", "mean_accuracy"), figures, strict=True)) if figures else None
        rows.append(row)
    return rows


def row_notes(row: dict[str, Any]) -> list[str]:
    """What a reader must know about a row before its figures: ``failed: <reason>``, the runs
    left out, ``did not learn (...)``."""
    notes = []
    if row.get("failed"):
        notes.append(f"failed: {row['failed']}")
    if row.get("failed_runs"):
        notes.append(f"failed and left out: {'; '.join(row['failed_runs'])}")
    if row.get("flag"):
        notes.append(row["flag"])
    return notes


def flags(rows: list[dict[str, Any]]) -> list[str]:
    """One line per problem of a model (failed, runs left out, did not learn), e.g. ``fcn32: did
    not learn (predicts Background on 99.8% of pixels)``, for the CLI to print; [] when none."""
    return [f"{row['model']}: {note}" for row in rows for note in row_notes(row)]


def scored_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with figures (a model whose every run failed has none)."""
    return [r for r in rows if not r.get("failed")]


def percent_ci(value: float | None, std: float | None, ci: list[float] | None) -> str:
    """``45.12 ± 0.80 [41.03, 49.31]``: the figure, its spread over runs (std None: not shown)
    and its subject-bootstrap interval (None: none)."""
    text = percent(value, std)
    return text + (f" [{100 * ci[0]:.2f}, {100 * ci[1]:.2f}]" if ci and value is not None else "")


def figure_cell(row: dict[str, Any], metric: str, several: bool) -> str:
    """A table cell of one of the four figures ("failed" for a model whose every run failed)."""
    if row.get("failed"):
        return "failed"
    ci = row["ci"][metric] if row.get("ci") else None
    spread = several and row.get("runs", 2) > 1  # a model left with one run (the others failed) has no spread
    return percent_ci(row[metric], row[f"{metric}_std"] if spread else None, ci)


def class_cell(row: dict[str, Any], name: str, key: str) -> str:
    """A per-class cell: IoU, or Dice with its interval ("failed" for a model whose every run failed)."""
    if row.get("failed"):
        return "failed"
    value = row["classes"].get(name, {}).get(key)
    ci = row["ci"]["classes"].get(name, {}).get(key) if row.get("ci") and key == "dice" else None
    return percent_ci(value, None, ci)


def has_intervals(bootstrap: dict[str, Any]) -> bool:
    """Whether the tables carry intervals: per-image counts, and at least two subjects to resample."""
    return bool(bootstrap.get("counts")) and bootstrap.get("fewest_subjects", 2) >= 2


def ci_line(bootstrap: dict[str, Any]) -> str:
    """What the bracketed intervals are, in one sentence (or why there are none: no pixel counts
    in per_image.csv, or a single subject to resample)."""
    unit = bootstrap.get("unit", "subject")
    if bootstrap.get("scored") is False:
        return "No confidence intervals: no model was scored (every run failed)."
    if not bootstrap.get("counts"):
        return (
            "No confidence intervals: the evaluations' per_image.csv hold no per-class pixel counts (an older "
            "mammotools evaluate wrote them); evaluate again to get them."
        )
    if bootstrap.get("fewest_subjects", 2) < 2:
        where = "a fold holds" if bootstrap.get("folds") else "the validation images come from"
        return f"No confidence intervals: {where} a single {unit}, and resampling one {unit} gives no spread."
    return (
        f"In brackets: the 95% bootstrap confidence interval, {bootstrap['resamples']} resamples of the validation "
        f"{unit}s with replacement (seed {bootstrap['seed']}; a {unit}'s images go together"
        + ("; within each fold" if bootstrap.get("folds") else "")
        + "), each resample's figure computed like the headline one, from the pooled pixel counts."
    )


def percent(value: float | None, std: float | None = None) -> str:
    """A percentage, with its spread when there is one (std None: a single seed)."""
    if value is None:
        return "n/a"
    return f"{100 * value:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


PAIRED_HEADER = ["model A", "model B", "subjects", "images", "mean IoU A - B (points) [95% CI]", "A better", "B better",
                 "p", "p (Holm)"]  # fmt: skip


def paired_intro(record: dict[str, Any], bootstrap: dict[str, Any]) -> str:
    """What the paired table compares, in words."""
    unit = bootstrap.get("unit", "subject")
    return (
        f"Each pair of models on the same validation {unit}s: a {unit}'s value is the mean over its images of the "
        f"per-image mean IoU (each image's mean over seeds); two-sided Wilcoxon signed-rank test of the paired "
        f"{unit} values, Holm-adjusted over all pairs, and the 95% bootstrap interval of the mean difference "
        f"({bootstrap.get('resamples', RESAMPLES)} resamples of the {unit}s, seed {bootstrap.get('seed', BOOTSTRAP_SEED)}). "
        f"A better / B better count {unit}s."
        + (f" With folds, each {unit} is scored by the models of the fold that held it out." if record.get("folds") else "")
        + " Models that failed are left out."
    )


def paired_cells(t: dict[str, Any]) -> list[str]:
    """One paired test as table cells (PAIRED_HEADER's order)."""
    diff = "n/a" if t["mean_difference"] is None else f"{100 * t['mean_difference']:+.2f}"
    if t.get("ci"):
        diff += f" [{100 * t['ci'][0]:+.2f}, {100 * t['ci'][1]:+.2f}]"
    return [t["a"], t["b"], str(t["subjects"]), str(t["images"]), diff, str(t["a_better"]), str(t["b_better"]),
            f"{t['p']:.3g}", f"{t['p_holm']:.3g}"]  # fmt: skip


def results_markdown(
    rows: list[dict[str, Any]],
    tests: list[dict[str, Any]],
    record: dict[str, Any],
    paper_name: str,
    paired_note: str = "",
    bootstrap: dict[str, Any] | None = None,
) -> str:
    """results.md: the paper's layout (its three figures, with their subject-bootstrap intervals),
    then per-class IoU and Dice, cost, the paper's figures and the paired tests (or the note
    saying why there are none). A model that failed or did not learn says so in its row."""
    bootstrap = bootstrap or {}
    quick = record.get("quick")
    several = runs_per_model(record) > 1
    lines = []
    if quick:
        lines += [
            "**QUICK BENCHMARK**: reduced widths, inputs and epochs, for trying the tool; not comparable with the paper.",
            "",
        ]
    lines += [
        "# Benchmark results",
        "",
        f"Dataset: `{record['dataset']}`: {data_line(record)}; whole images scored by sliding window. "
        f"{repeats_line(record).capitalize()}"
        + (f" (mean ± standard deviation over {over_words(record)}). " if several else ". ")
        + f"Settings: {settings_line(record)}.",
        "",
    ]
    problems = flags(rows)
    if problems:
        lines += ["**Check these models:**", "", *[f"- **{p}**" for p in problems], ""]
    lines += [
        "| model | pixel accuracy % | mean IoU % | mean class accuracy % | mean Dice % | parameters | input px | "
        "training s | epochs (windows seen, stopped by) | inference s/image | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | "
            + " | ".join(figure_cell(r, m, several) for m in METRICS)
            + f" | {r['parameters']:,} | {r['input_size']} | {_seconds(r['train_seconds'])} | {epochs_cell(r)} "
            f"| {_seconds(r['seconds_per_image'])} | {'; '.join(row_notes(r))} |"
        )
    lines += ["", ci_line(bootstrap)]
    classes = next((list(r["classes"]) for r in rows if r["classes"]), [])
    dice_title = "## Per-class Dice (%)" + (" [95% CI]" if has_intervals(bootstrap) else "")
    for key, title in (("iou", "## Per-class IoU (%)"), ("dice", dice_title)) if classes else ():
        lines += ["", title, "", "| model | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
        for r in rows:
            lines.append(f"| {r['model']} | " + " | ".join(class_cell(r, c, key) for c in classes) + " |")
    with_paper = [r for r in rows if r["paper"]]
    lines += ["", f"## The paper's figures ({paper_name})", ""]
    if with_paper:
        lines += [
            "| model | ours: pixel acc / mIoU / mean class acc % | paper: pixel acc / mIoU / mean class acc % |",
            "|---|---|---|",
        ]
        for r in with_paper:
            p = r["paper"]
            ours = (
                f"failed: {r['failed']}"
                if r.get("failed")
                else f"{percent(r['pixel_accuracy'])} / {percent(r['mean_iou'])} / {percent(r['mean_accuracy'])}"
            )
            paper_cell = f"{p['pixel_accuracy']:.2f} / {p['mean_iou']:.2f} / {p['mean_accuracy']:.2f}"
            lines.append(f"| {r['model']} | {ours} | {paper_cell} |")
    else:
        lines.append("The paper reports none of these models for this task.")
    lines += ["", "## Paired comparison by subject", ""]
    if paired_note:
        lines.append(paired_note)
    else:
        lines += [
            paired_intro(record, bootstrap),
            "",
            "| " + " | ".join(PAIRED_HEADER) + " |",
            "|---" * len(PAIRED_HEADER) + "|",
            *["| " + " | ".join(paired_cells(t)) + " |" for t in tests],
        ]
    lines += [
        "",
        "Absent classes (in neither truth nor prediction) are left out of the means. Training seconds include the earlier "
        "stages a model starts from (fcn16: fcn32 too). Inference seconds per image include reading the image and writing "
        f"the prediction. A model predicting one class on {100 * ONE_CLASS_SHARE:.0f}% or more of the scored pixels is "
        "marked as one that did not learn.",
        f"Machine: {record['hardware']['cpu']}, {record['hardware']['cores']} cores, GPU: {record['hardware']['gpu'] or 'none'}.",
        "",
    ]
    return "\n".join(lines)


def _ci_pair(ci: list[float] | None) -> list[float | None]:
    return [ci[0], ci[1]] if ci else [None, None]


def results_csv(rows: list[dict[str, Any]], quick: bool = False) -> str:
    """results.csv: one line per model and run, and a ``mean`` line per model with the
    subject-bootstrap intervals (``<figure>_ci_low``, ``_ci_high``; empty cells: not applicable or
    not defined); ``notes``: failed, runs left out, did not learn."""
    classes = next((list(r["classes"]) for r in rows if r["classes"]), [])
    lines: list[list[Any]] = [
        ["model", "seed", "fold", *METRICS, *[f"{m}_ci_{end}" for m in METRICS for end in ("low", "high")],
         *[f"iou_{c}" for c in classes], *[f"dice_{c}" for c in classes],
         *[f"dice_{c}_ci_{end}" for c in classes for end in ("low", "high")],
         "parameters", "input_size", "train_seconds", "seconds_per_image", "quick", "notes"]
    ]  # fmt: skip
    for r in rows:
        for s in r["per_seed"]:
            per_class = s["classes"]
            lines.append(
                [r["model"], s["seed"], s["fold"] or "", *[s[m] for m in METRICS], *[None] * (2 * len(METRICS)),
                 *[per_class.get(c, {}).get("iou") for c in classes], *[per_class.get(c, {}).get("dice") for c in classes],
                 *[None] * (2 * len(classes)), r["parameters"], r["input_size"], s["train_seconds"], s["seconds_per_image"],
                 quick, f"failed: {s['failed']}" if s.get("failed") else ""]
            )  # fmt: skip
        ci = r.get("ci") or {}
        class_ci = ci.get("classes", {})
        lines.append(
            [r["model"], "mean", "", *[r[m] for m in METRICS], *[v for m in METRICS for v in _ci_pair(ci.get(m))],
             *[r["classes"].get(c, {}).get("iou") for c in classes], *[r["classes"].get(c, {}).get("dice") for c in classes],
             *[v for c in classes for v in _ci_pair(class_ci.get(c, {}).get("dice"))],
             r["parameters"], r["input_size"], r["train_seconds"], r["seconds_per_image"], quick, "; ".join(row_notes(r))]
        )  # fmt: skip
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerows([["" if v is None else v for v in line] for line in lines])
    return buf.getvalue()


def paper_for(dataset_kind: str) -> tuple[dict[str, tuple[float, float, float]], str]:
    """The paper's table for this kind of data, and its name."""
    if dataset_kind == "cityscapes":
        return PAPER_CITYSCAPES, "Table 9, Cityscapes validation"
    return PAPER_MAMMOGRAPHY, "Table 10, the paper's own mammograms and classes: a different dataset"


def read_rows(path: Path) -> list[dict[str, str]]:
    """results.csv read back."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))
