"""Spread and comparisons that respect subjects: a woman's images go together.

The validation images are not independent: two views of one breast, four images of one woman.
Every interval and test here resamples or pairs **subjects** (split.csv's ``subject``; a
Cityscapes scene is its own unit), never images.

- :func:`model_cis`: a 95% bootstrap confidence interval of each figure of a model (pixel
  accuracy, mean IoU, mean class accuracy, mean Dice, per-class IoU and Dice). Each resample
  draws the subjects with replacement (within each fold, with ``--folds``, so every fold keeps
  its number of subjects), pools the drawn subjects' per-image pixel counts into one confusion
  summary per run, and computes the figures from it exactly as the headline figures are
  computed from the summed confusion matrix (mammotools.metrics.scores: classes absent from
  truth and prediction left out of the means); the figure of a model is the mean over its runs
  (seeds, folds), like the headline. Percentile interval; the seed and the number of resamples
  are fixed, so the interval is the same at every run and recomputable from results.json's
  ``per_image`` rows. A hold-out (or a fold) of one subject has no interval: resampling one
  subject gives no spread.
- :func:`paired_tests`: each pair of models compared on their common subjects, a subject's value
  being the mean over its images of the per-image mean IoU (each image's mean over seeds): the
  two-sided Wilcoxon signed-rank test (scipy), Holm's adjustment over all pairs, and the
  bootstrap 95% interval of the mean difference (subjects resampled). Fewer than
  :data:`MIN_WILCOXON_PAIRS` subjects can never reach p < 0.05 (the smallest two-sided p of
  n pairs is 2 / 2**n): then no test is run and a note says so.

A per-image row (what :func:`read_per_image` returns and results.json saves)::

    {"model", "seed", "fold", "name", "subject", "mean_iou": float | None,
     "tp": [C ints], "true": [C ints], "predicted": [C ints]}   (the counts when per_image.csv has them)

``tp[k]`` = pixels of class k predicted k, ``true[k]`` = pixels whose truth is k, ``predicted[k]``
= pixels predicted k: the diagonal, row sums and column sums of the image's confusion matrix,
all that the figures need.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

BOOTSTRAP_SEED = 2000
RESAMPLES = 2000
CONFIDENCE = 0.95
MIN_WILCOXON_PAIRS = 6  # 2 / 2**5 = 0.0625: five pairs or fewer can never give a two-sided p < 0.05
COUNTS = ("tp", "true", "predicted")  # per_image.csv columns <kind>_<class>
FIGURES = ("pixel_accuracy", "mean_iou", "mean_accuracy", "mean_dice")


def subjects_of(dataset: Path) -> dict[str, str]:
    """``name -> subject`` from the dataset's split.csv; {} without one (Cityscapes: each scene
    is then its own unit)."""
    from mammotools.split import SPLIT_FILE, read_split

    path = Path(dataset) / SPLIT_FILE
    if not path.is_file():
        return {}
    return {name: subject for name, (subject, _) in read_split(path).items()}


def read_per_image(entry: Any, subject_of: Mapping[str, str]) -> list[dict[str, Any]]:
    """The per-image rows of one evaluation (``entry.evaluation/per_image.csv``), with each image's
    subject (its own name when ``subject_of`` does not know it) and, when the file has the columns
    ``tp_<class>``, ``true_<class>`` and ``predicted_<class>`` for every class, its pixel counts."""
    classes = list(entry.metrics["classes"])
    rows = []
    with (Path(entry.evaluation) / "per_image.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = set(reader.fieldnames or [])
        counted = all(f"{kind}_{c}" in fields for kind in COUNTS for c in classes)
        for r in reader:
            row: dict[str, Any] = {
                "model": entry.model,
                "seed": entry.seed,
                "fold": entry.fold,
                "name": r["name"],
                "subject": subject_of.get(r["name"], r["name"]),
                "mean_iou": float(r["mean_iou"]) if r.get("mean_iou") else None,
            }
            if counted:
                for kind in COUNTS:
                    row[kind] = [int(r[f"{kind}_{c}"]) for c in classes]
            rows.append(row)
    return rows


def has_counts(rows: Iterable[dict[str, Any]]) -> bool:
    """Whether every row carries its pixel counts (evaluations written before they were saved do not)."""
    rows = list(rows)
    return bool(rows) and all(all(kind in r for kind in COUNTS) for r in rows)


def _mean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` of the finite values (NaN where there is none), without warnings."""
    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def figures_of(pooled: np.ndarray) -> dict[str, np.ndarray]:
    """The figures of pooled counts, as mammotools.metrics.scores computes them from a confusion
    matrix. pooled: (..., 3, C) float, [tp, true, predicted] per class; returns (...) arrays for
    the four means and (..., C) for "iou" and "dice" (NaN: undefined)."""
    tp, true, predicted = pooled[..., 0, :], pooled[..., 1, :], pooled[..., 2, :]
    iou = _ratio(tp, true + predicted - tp)
    dice = _ratio(2 * tp, true + predicted)
    accuracy = _ratio(tp, true)
    return {
        "pixel_accuracy": _ratio(tp.sum(axis=-1), true.sum(axis=-1)),
        "mean_iou": _mean(iou, -1),
        "mean_accuracy": _mean(accuracy, -1),
        "mean_dice": _mean(dice, -1),
        "iou": iou,
        "dice": dice,
    }


def _runs(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    return sorted({(int(r["seed"]), int(r["fold"])) for r in rows})


def _strata(rows: list[dict[str, Any]]) -> dict[int, list[str]]:
    """fold -> its subjects, sorted (fold 0: the one hold-out)."""
    strata: dict[int, set[str]] = {}
    for r in rows:
        strata.setdefault(int(r["fold"]), set()).add(str(r["subject"]))
    return {fold: sorted(strata[fold]) for fold in sorted(strata)}


def fewest_subjects(rows: list[dict[str, Any]]) -> int:
    """The fewest subjects of a stratum (a fold, or the one hold-out): below 2, no interval."""
    strata = _strata(rows)
    return min((len(s) for s in strata.values()), default=0)


def subject_weights(strata: dict[int, list[str]], resamples: int, seed: int) -> dict[int, np.ndarray]:
    """fold -> (resamples, subjects) how many times each subject is drawn in each resample: each
    fold's subjects drawn with replacement, as many as it has, folds in order, one generator."""
    rng = np.random.default_rng(seed)
    weights = {}
    for fold, subjects in strata.items():
        n = len(subjects)
        draws = rng.integers(0, n, size=(resamples, n))
        offsets = (np.arange(resamples) * n)[:, None]
        weights[fold] = np.bincount((draws + offsets).ravel(), minlength=resamples * n).reshape(resamples, n)
    return weights


def _interval(values: np.ndarray) -> list[float] | None:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return None
    tail = 100 * (1 - CONFIDENCE) / 2
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


def model_cis(
    rows: list[dict[str, Any]], classes: list[str], resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> dict[str, Any] | None:
    """The 95% subject-bootstrap interval of each figure of one model, from its per-image rows
    (every run of the model): ``{"pixel_accuracy": [low, high], ..., "classes": {name: {"iou":
    [low, high], "dice": [low, high]}}}``, None for a figure no resample defines; None when the
    rows have no pixel counts or a stratum (fold, or the hold-out) has a single subject."""
    if not has_counts(rows):
        return None
    strata = _strata(rows)
    if fewest_subjects(rows) < 2:  # one subject resampled is always itself: no spread to show
        return None
    weights = subject_weights(strata, resamples, seed)
    per_run = []
    for seed_, fold in _runs(rows):
        index = {s: i for i, s in enumerate(strata[fold])}
        counts = np.zeros((len(index), 3, len(classes)), np.float64)
        for r in rows:
            if (int(r["seed"]), int(r["fold"])) == (seed_, fold):
                counts[index[str(r["subject"])]] += np.array([r[kind] for kind in COUNTS], np.float64)
        pooled = np.einsum("bs,skc->bkc", weights[fold].astype(np.float64), counts)
        per_run.append(figures_of(pooled))
    # The figure of a resample: the mean over the runs (NaN runs left out), like the headline.
    out: dict[str, Any] = {m: _interval(_mean(np.stack([f[m] for f in per_run]), 0)) for m in FIGURES}
    iou = _mean(np.stack([f["iou"] for f in per_run]), 0)
    dice = _mean(np.stack([f["dice"] for f in per_run]), 0)
    out["classes"] = {c: {"iou": _interval(iou[:, k]), "dice": _interval(dice[:, k])} for k, c in enumerate(classes)}
    return out


def pooled_figures(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """The four figures of each run from its images' pooled counts, averaged over the runs: the
    headline figures again, from per_image.csv (a check that the counts are the matrix's)."""
    per_run = []
    for run in _runs(rows):
        pooled = sum(np.array([r[k] for k in COUNTS], np.float64) for r in rows if (int(r["seed"]), int(r["fold"])) == run)
        per_run.append(figures_of(np.asarray(pooled)))
    result: dict[str, float | None] = {}
    for m in FIGURES:
        value = float(_mean(np.array([f[m] for f in per_run], np.float64), 0))
        result[m] = None if math.isnan(value) else value
    return result


def subject_means(rows: list[dict[str, Any]]) -> dict[str, float]:
    """subject -> mean over its images of the per-image mean IoU (each image's mean over seeds);
    images without a mean IoU (no scored pixel) left out."""
    by_image: dict[str, list[float]] = {}
    subject: dict[str, str] = {}
    for r in rows:
        if r["mean_iou"] is not None and not math.isnan(r["mean_iou"]):
            by_image.setdefault(r["name"], []).append(float(r["mean_iou"]))
            subject[r["name"]] = str(r["subject"])
    by_subject: dict[str, list[float]] = {}
    for name, values in by_image.items():
        by_subject.setdefault(subject[name], []).append(float(np.mean(values)))
    return {s: float(np.mean(v)) for s, v in sorted(by_subject.items())}


def mean_difference_ci(differences: np.ndarray, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """95% bootstrap interval of the mean of per-subject differences (subjects drawn with replacement)."""
    n = len(differences)
    if not n:
        return None
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    return _interval(np.asarray(differences, np.float64)[draws].mean(axis=1))


def paired_tests(
    rows_by_model: Mapping[str, list[dict[str, Any]]], resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[list[dict[str, Any]], str]:
    """Each pair of models (in the mapping's order) on their common subjects: Wilcoxon signed-rank
    (two-sided) of the per-subject mean IoU, Holm-adjusted, and the bootstrap interval of the mean
    difference. Returns (tests, note): no tests and a one-sentence note when fewer than two models
    were scored or too few subjects are in common for any test to reach p < 0.05."""
    from scipy.stats import wilcoxon  # type: ignore[import-untyped]

    means = {m: subject_means(rows) for m, rows in rows_by_model.items()}
    models = [m for m in means if means[m]]
    if len(models) < 2:
        return [], "Fewer than two models were scored, so there is no pair to compare."
    common = {(a, b): sorted(set(means[a]) & set(means[b])) for a, b in combinations(models, 2)}
    most = max(len(s) for s in common.values())
    if most < MIN_WILCOXON_PAIRS:
        return [], (
            f"With {most} validation subject(s) no paired test is reported: a two-sided Wilcoxon signed-rank test "
            f"of {most} pairs can never reach p < 0.05 (it needs at least {MIN_WILCOXON_PAIRS} subjects)."
        )
    images = {m: {r["name"] for r in rows_by_model[m] if r["mean_iou"] is not None} for m in models}
    tests = []
    for (a, b), subjects in common.items():
        x = np.array([means[a][s] for s in subjects])
        y = np.array([means[b][s] for s in subjects])
        diff = x - y
        if not np.count_nonzero(diff):
            p = 1.0
        else:
            p = float(wilcoxon(x, y, zero_method="wilcox", alternative="two-sided").pvalue)
        tests.append(
            {
                "a": a,
                "b": b,
                "subjects": len(subjects),
                "images": len(images[a] & images[b]),
                "mean_difference": float(diff.mean()) if len(subjects) else None,
                "ci": mean_difference_ci(diff, resamples, seed),
                "a_better": int((diff > 0).sum()),
                "b_better": int((diff < 0).sum()),
                "p": p,
            }
        )
    holm(tests)
    return tests, ""


def holm(tests: list[dict[str, Any]]) -> None:
    """Holm's step-down adjustment of each test's "p", in place, as "p_holm": the k-th smallest p
    (from 0) times (m - k), kept monotone, capped at 1."""
    order = sorted(range(len(tests)), key=lambda i: tests[i]["p"])
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, tests[i]["p"] * (len(tests) - rank)))
        tests[i]["p_holm"] = running
