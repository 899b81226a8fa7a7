"""The benchmark's tables: each model's figures over its runs (seeds, and folds with
``--folds``: mean and standard deviation), the paper's own figures beside them, and paired
comparisons of models per validation image.

Every figure of a model's run comes from its saved confusion matrix (mammotools.metrics); means
and standard deviations are over runs (sample standard deviation, 0 with one run). With folds,
each image is scored once per seed, by the models of the fold that held it out.
"""

from __future__ import annotations

import csv
import io
import math
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

METRICS = ("pixel_accuracy", "mean_iou", "mean_accuracy", "mean_dice")
METRIC_TITLES = {
    "pixel_accuracy": "pixel accuracy",
    "mean_iou": "mean IoU",
    "mean_accuracy": "mean class accuracy",
    "mean_dice": "mean Dice",
}

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


def model_rows(entries: list[Any], paper: dict[str, tuple[float, float, float]]) -> list[dict[str, Any]]:
    """One row per model (entries in benchmark order): figures per run, mean and std over runs."""
    rows: list[dict[str, Any]] = []
    for model in dict.fromkeys(e.model for e in entries):
        mine = [e for e in entries if e.model == model]
        classes = list(mine[0].metrics["classes"])
        row: dict[str, Any] = {
            "model": model,
            "seeds": [e.seed for e in mine],
            "input_size": mine[0].input_size,
            "crops": str(mine[0].crops),
            "parameters": mine[0].parameters,
            "per_seed": [
                {
                    "seed": e.seed,
                    "fold": e.fold,
                    **{m: e.metrics[m] for m in METRICS},
                    "classes": {n: {k: e.metrics["classes"][n][k] for k in ("iou", "dice", "accuracy")} for n in classes},
                    "train_seconds": e.train_seconds,
                    "seconds_per_image": e.metrics["seconds"] / max(e.metrics["images"], 1),
                }
                for e in mine
            ],
        }
        for metric in METRICS:
            row[metric], row[f"{metric}_std"] = _stats([e.metrics[metric] for e in mine])
        row["classes"] = {
            name: {key: _stats([e.metrics["classes"][name][key] for e in mine])[0] for key in ("iou", "dice", "accuracy")}
            for name in classes
        }
        row["train_seconds"], _ = _stats([e.train_seconds for e in mine])
        row["epochs"] = mine[0].epochs
        row["seconds_per_image"], _ = _stats([e.metrics["seconds"] / max(e.metrics["images"], 1) for e in mine])
        figures = paper.get(model)
        row["paper"] = dict(zip(("pixel_accuracy", "mean_iou", "mean_accuracy"), figures, strict=True)) if figures else None
        rows.append(row)
    return rows


def per_image_miou(entries: list[Any]) -> dict[str, dict[str, float]]:
    """model -> validation image -> mean IoU, averaged over seeds (per_image.csv of each evaluation;
    with folds, an image is in its own fold's evaluations only)."""
    table: dict[str, dict[str, list[float]]] = {}
    for e in entries:
        with (e.evaluation / "per_image.csv").open(encoding="utf-8", newline="") as f:
            for r in csv.DictReader(f):
                if r["mean_iou"]:
                    table.setdefault(e.model, {}).setdefault(r["name"], []).append(float(r["mean_iou"]))
    return {m: {name: float(np.mean(v)) for name, v in images.items()} for m, images in table.items()}


def paired_tests(entries: list[Any]) -> list[dict[str, Any]]:
    """Each pair of models compared on the same validation images: the Wilcoxon signed-rank test
    (two-sided) of their per-image mean IoU, with Holm's adjustment over all pairs.

    With a few dozen images a ranking from one mean can be noise; the test says whether one
    model is better on the images, not only on average. Pairs whose images all tie get p = 1."""
    from scipy.stats import wilcoxon  # type: ignore[import-untyped]

    mious = per_image_miou(entries)
    models = [m for m in dict.fromkeys(e.model for e in entries) if m in mious]
    tests = []
    for a, b in combinations(models, 2):
        names = sorted(set(mious[a]) & set(mious[b]))
        x = np.array([mious[a][n] for n in names])
        y = np.array([mious[b][n] for n in names])
        diff = x - y
        nonzero = int(np.count_nonzero(diff))
        if nonzero == 0:
            p = 1.0
        else:
            p = float(wilcoxon(x, y, zero_method="wilcox", alternative="two-sided").pvalue)
        tests.append(
            {
                "a": a,
                "b": b,
                "images": len(names),
                "mean_difference": float(diff.mean()) if len(names) else None,
                "a_better": int((diff > 0).sum()),
                "b_better": int((diff < 0).sum()),
                "p": p,
            }
        )
    # Holm: sort p ascending, multiply the k-th smallest by (m - k), keep it monotone, cap at 1.
    order = sorted(range(len(tests)), key=lambda i: tests[i]["p"])
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, tests[i]["p"] * (len(tests) - rank)))
        tests[i]["p_holm"] = running
    return tests


def percent(value: float | None, std: float | None = None) -> str:
    """A percentage, with its spread when there is one (std None: a single seed)."""
    if value is None:
        return "n/a"
    return f"{100 * value:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def settings_line(record: dict[str, Any]) -> str:
    """The settings every model shared, in words (from run.json)."""
    first = next(iter(record["configs"].values()))
    overrides = record.get("overrides", {})
    parts = [
        f"recipe {record['recipe']}",
        f"{first['optimizer']} lr {first['lr']:g}",
        f"{first['epochs']} epoch(s) per stage (patience {first['patience']})",
        f"batch {first['batch_size']}",
        f"width {first['width']:g}",
        f"scale {first['scale']:g}",
        f"class weights {first['class_weights']}",
    ]
    pretrained = [r["model"] for r in record["runs"] if r.get("pretrained")]
    parts.append(f"ImageNet weights for {', '.join(pretrained)}" if pretrained else "no pretrained weights (from scratch)")
    given = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in overrides.items() if k not in ("workers",))
    return "; ".join(parts) + (f" (set on the command line: {given})" if given else "")


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def results_markdown(rows: list[dict[str, Any]], tests: list[dict[str, Any]], record: dict[str, Any], paper_name: str) -> str:
    """results.md: the paper's layout (its three figures), then per-class IoU and Dice, cost, the
    paper's figures and the paired tests."""
    quick = record.get("quick")
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
        + (f" (mean ± standard deviation over {over_words(record)}). " if runs_per_model(record) > 1 else ". ")
        + f"Settings: {settings_line(record)}.",
        "",
        "| model | pixel accuracy % | mean IoU % | mean class accuracy % | mean Dice % | parameters | input px | "
        "training s | epochs | inference s/image |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    several = runs_per_model(record) > 1
    for r in rows:
        std = {m: r[f"{m}_std"] if several else None for m in METRICS}
        lines.append(
            f"| {r['model']} | {percent(r['pixel_accuracy'], std['pixel_accuracy'])} | {percent(r['mean_iou'], std['mean_iou'])} "
            f"| {percent(r['mean_accuracy'], std['mean_accuracy'])} | {percent(r['mean_dice'], std['mean_dice'])} "
            f"| {r['parameters']:,} | {r['input_size']} | {_seconds(r['train_seconds'])} | {r['epochs']} "
            f"| {_seconds(r['seconds_per_image'])} |"
        )
    classes = list(rows[0]["classes"]) if rows else []
    lines += ["", "## Per-class IoU / Dice (%)", "", "| model | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for r in rows:
        cells = [f"{percent(r['classes'][c]['iou'])} / {percent(r['classes'][c]['dice'])}" for c in classes]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    with_paper = [r for r in rows if r["paper"]]
    lines += ["", f"## The paper's figures ({paper_name})", ""]
    if with_paper:
        lines += [
            "| model | ours: pixel acc / mIoU / mean class acc % | paper: pixel acc / mIoU / mean class acc % |",
            "|---|---|---|",
        ]
        for r in with_paper:
            p = r["paper"]
            lines.append(
                f"| {r['model']} | {percent(r['pixel_accuracy'])} / {percent(r['mean_iou'])} / {percent(r['mean_accuracy'])} "
                f"| {p['pixel_accuracy']:.2f} / {p['mean_iou']:.2f} / {p['mean_accuracy']:.2f} |"
            )
    else:
        lines.append("The paper reports none of these models for this task.")
    lines += [
        "",
        "## Paired comparison per validation image",
        "",
        "Wilcoxon signed-rank test (two-sided) of per-image mean IoU (averaged over seeds), Holm-adjusted over all pairs."
        + (" With folds, each image is scored by the models of the fold that held it out." if record.get("folds") else ""),
        "",
        "| model A | model B | images | mean IoU A - B (points) | A better | B better | p | p (Holm) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in tests:
        diff = "n/a" if t["mean_difference"] is None else f"{100 * t['mean_difference']:+.2f}"
        lines.append(
            f"| {t['a']} | {t['b']} | {t['images']} | {diff} | {t['a_better']} | {t['b_better']} "
            f"| {t['p']:.3g} | {t['p_holm']:.3g} |"
        )
    lines += [
        "",
        "Absent classes (in neither truth nor prediction) are left out of the means. Training seconds include the earlier "
        "stages a model starts from (fcn16: fcn32 too). Inference seconds per image include reading the image and writing "
        "the prediction.",
        f"Machine: {record['hardware']['cpu']}, {record['hardware']['cores']} cores, GPU: {record['hardware']['gpu'] or 'none'}.",
        "",
    ]
    return "\n".join(lines)


def results_csv(rows: list[dict[str, Any]], quick: bool = False) -> str:
    """results.csv: one line per model and seed, and a ``mean`` line per model (empty cells: not
    applicable or not defined)."""
    classes = list(rows[0]["classes"]) if rows else []
    lines: list[list[Any]] = [
        ["model", "seed", "fold", *METRICS, *[f"iou_{c}" for c in classes], *[f"dice_{c}" for c in classes],
         "parameters", "input_size", "train_seconds", "seconds_per_image", "quick"]
    ]  # fmt: skip
    for r in rows:
        for s in r["per_seed"]:
            lines.append(
                [r["model"], s["seed"], s["fold"] or "", *[s[m] for m in METRICS], *[s["classes"][c]["iou"] for c in classes],
                 *[s["classes"][c]["dice"] for c in classes], r["parameters"], r["input_size"], s["train_seconds"],
                 s["seconds_per_image"], quick]
            )  # fmt: skip
        lines.append(
            [r["model"], "mean", "", *[r[m] for m in METRICS], *[r["classes"][c]["iou"] for c in classes],
             *[r["classes"][c]["dice"] for c in classes], r["parameters"], r["input_size"], r["train_seconds"],
             r["seconds_per_image"], quick]
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
