"""The report's pictures (PNG, matplotlib's Agg backend, no display needed): confusion matrices,
bar charts of the figures, training curves, and validation images with every model's
prediction side by side in the class table's colours.

Array contracts: confusion matrix (C, C) int64, rows truth, columns prediction; label maps are
the dataset's palette PNGs, shown in their own palette colours.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from mammotools.benchmark.results import METRIC_TITLES, METRICS
from mammotools.classes import ClassTable
from mammotools.files import atomic_write_bytes

DPI = 110
PICTURE_SIDE = 420  # px: the longer side each panel of a side-by-side picture is drawn at
PANELS_PER_ROW = 5  # image, truth and three models on the first row of a side-by-side picture


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def _rgb(color: tuple[int, int, int]) -> tuple[float, float, float]:
    return color[0] / 255, color[1] / 255, color[2] / 255


def _save(fig: Any, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def confusion_png(matrix: np.ndarray, classes: list[str], title: str, path: Path) -> Path:
    """Heat map of the confusion matrix, each row normalised to the truth's pixels (%), counts kept in the CSV."""
    plt = _pyplot()
    rows = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape, np.float64), where=rows > 0) * 100
    n = len(classes)
    fig, ax = plt.subplots(figsize=(2.2 + 0.55 * n, 1.8 + 0.5 * n))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=100)
    ax.set_xticks(range(n), classes, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(title, fontsize=10)
    for i in range(n):
        for j in range(n):
            if share[i, j] >= 0.5:
                ax.text(j, i, f"{share[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 60 else "black")  # fmt: skip
    fig.colorbar(image, ax=ax, label="% of the truth's pixels")
    return _save(fig, path)


def error_bars(rows: list[dict[str, Any]]) -> tuple[dict[str, np.ndarray], str]:
    """The error bars of metric_bars: metric -> (2, models) distances below and above each bar
    (in %), and what they are, in words. A model with several runs: the standard deviation over
    them; with one run: its 95% subject-bootstrap interval where there is one, else none (a
    standard deviation of one run is no spread)."""
    bars = {m: np.zeros((2, len(rows))) for m in METRICS}
    kinds = set()
    for i, r in enumerate(rows):
        for metric in METRICS:
            value = r[metric]
            if value is None:
                continue
            ci = (r.get("ci") or {}).get(metric)
            if r.get("runs", 1) > 1 and r[f"{metric}_std"] is not None:
                bars[metric][:, i] = 100 * r[f"{metric}_std"]
                kinds.add("std over runs")
            elif ci:
                bars[metric][:, i] = [100 * max(value - ci[0], 0.0), 100 * max(ci[1] - value, 0.0)]
                kinds.add("95% CI by subject bootstrap (one run)")
    if not kinds:
        return bars, "no error bars: one run, no interval"
    return bars, "error bars: " + "; ".join(sorted(kinds, reverse=True))


def metric_bars(rows: list[dict[str, Any]], path: Path, quick: bool) -> Path:
    """Pixel accuracy, mean IoU, mean class accuracy and mean Dice per model; error bars as
    error_bars says (the title names them). Rows of models that failed are not drawn."""
    plt = _pyplot()
    rows = [r for r in rows if not r.get("failed")]
    models = [r["model"] for r in rows]
    bars, label = error_bars(rows)
    x = np.arange(len(models))
    width = 0.8 / len(METRICS)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(models) + 2), 4.2))
    for k, metric in enumerate(METRICS):
        values = [100 * (r[metric] or 0.0) for r in rows]
        errors = bars[metric] if bars[metric].any() else None
        ax.bar(x + (k - 1.5) * width, values, width, yerr=errors, capsize=2, label=METRIC_TITLES[metric])
    ax.set_xticks(x, models, rotation=30, ha="right")
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=8, ncols=4, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    ax.set_title(("QUICK benchmark: " if quick else "") + f"the paper's figures per model ({label})", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def class_iou_map(rows: list[dict[str, Any]], path: Path, quick: bool) -> Path:
    """IoU of every class (columns) for every model (rows), as a heat map with the values;
    grey where a class is absent from both truth and prediction."""
    plt = _pyplot()
    rows = [r for r in rows if not r.get("failed")]
    classes = next((list(r["classes"]) for r in rows), [])
    models = [r["model"] for r in rows]
    values = np.array([[np.nan if r["classes"][c]["iou"] is None else 100 * r["classes"][c]["iou"] for c in classes]
                       for r in rows])  # fmt: skip
    fig, ax = plt.subplots(figsize=(2.5 + 0.62 * len(classes), 1.4 + 0.42 * len(models)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#dddddd")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(classes)), classes, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    for i in range(len(models)):
        for j in range(len(classes)):
            if not np.isnan(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.0f}", ha="center", va="center", fontsize=7,
                        color="black" if values[i, j] > 60 else "white")  # fmt: skip
    fig.colorbar(image, ax=ax, label="IoU %")
    ax.set_title(("QUICK benchmark: " if quick else "") + "IoU per class (grey: class absent)", fontsize=10)
    return _save(fig, path)


def _history(run: Path, stages: list[str]) -> list[dict[str, Any]]:
    records = []
    for stage in stages:
        log = run / "stages" / stage / "log.jsonl"
        if log.is_file():
            records += [json.loads(line) for line in log.read_text("utf-8").splitlines() if line.strip()]
    return records


def training_curves(runs: dict[str, tuple[Path, list[str]]], path: Path, quick: bool) -> Path:
    """Training loss and validation mean IoU per epoch of every training run; a staged run's
    stages follow one another, a dotted line where a stage starts."""
    plt = _pyplot()
    fig, (loss_ax, miou_ax) = plt.subplots(1, 2, figsize=(10, 3.8))
    for label, (run, stages) in runs.items():
        history = _history(run, stages)
        epochs = np.arange(1, len(history) + 1)
        (line,) = loss_ax.plot(epochs, [h["train_loss"] for h in history], marker=".", label=label)
        miou_ax.plot(epochs, [100 * (h["val_mean_iou"] or 0.0) for h in history], marker=".", label=label,
                     color=line.get_color())  # fmt: skip
        starts = [i + 1 for i in range(1, len(history)) if history[i]["stage"] != history[i - 1]["stage"]]
        for ax in (loss_ax, miou_ax):
            for start in starts:
                ax.axvline(start - 0.5, color=line.get_color(), linestyle=":", linewidth=0.8)
    loss_ax.set_xlabel("epoch (a staged model's stages in sequence)")
    loss_ax.set_ylabel("training loss")
    miou_ax.set_xlabel("epoch (a staged model's stages in sequence)")
    miou_ax.set_ylabel("validation mean IoU %")
    for ax in (loss_ax, miou_ax):
        ax.grid(alpha=0.3)
    miou_ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(("QUICK benchmark: " if quick else "") + "training curves (first seed; with folds, the first fold)", fontsize=10)
    return _save(fig, path)


def _display(path: Path, gray: bool, palette: bytes | None = None) -> np.ndarray:
    """An image file as RGB uint8 for display, its longer side at most PICTURE_SIDE px: an image
    (``gray``: contrast-stretched; an 8-bit RGB photograph as it is), or a label map in its class
    colours (its own palette, or ``palette`` for a grayscale map of label values)."""
    from PIL import Image

    with Image.open(path) as im:
        if gray and im.mode == "RGB":
            rgb = im.copy()  # a colour photograph (Cityscapes): shown as taken
        elif gray:
            array = np.asarray(im)
            if array.ndim == 3:
                array = array.mean(axis=2)
            lo, hi = np.percentile(array, (0.5, 99.5))
            array = np.clip((array.astype(np.float64) - lo) / max(hi - lo, 1e-9), 0, 1)
            rgb = Image.fromarray((array * 255).astype(np.uint8)).convert("RGB")
        elif im.mode == "L" and palette is not None:  # label values without a palette (Cityscapes' labelIds)
            colours = np.frombuffer(palette, np.uint8).reshape(256, 3)
            rgb = Image.fromarray(colours[np.asarray(im)])
        else:
            rgb = im.convert("RGB")  # a palette PNG: its own class colours
        scale = PICTURE_SIDE / max(rgb.size)
        if scale < 1:
            resample = Image.Resampling.BILINEAR if gray else Image.Resampling.NEAREST
            rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), resample)
        return np.asarray(rgb)


def side_by_side(
    name: str, image: Path, truth: Path, predictions: dict[str, Path], table: ClassTable, path: Path, quick: bool
) -> Path:
    """One validation image: the image, the truth and every model's prediction, with a legend."""
    panels = [("image", _display(image, True)), ("truth", _display(truth, False, table.palette()))]
    panels += [(model, _display(p, False)) for model, p in predictions.items()]
    return _save(panel_grid(panels, table, ("QUICK benchmark: " if quick else "") + name), path)


def panel_grid(panels: list[tuple[str, np.ndarray]], table: ClassTable, title: str) -> Any:
    """The figure of side_by_side: titled panels on a grid of PANELS_PER_ROW columns, any number
    of rows, the class legend below."""
    plt = _pyplot()
    from matplotlib.patches import Patch

    columns = min(len(panels), PANELS_PER_ROW)
    rows = -(-len(panels) // columns)
    height, width = panels[0][1].shape[:2]
    panel_w = 2.6
    panel_h = panel_w * height / max(width, 1) + 0.35  # the picture at its own aspect, plus its title
    legend_rows = -(-len(table.classes) // 5)
    # Constrained layout keeps every title above its own panel and the legend below the grid,
    # whatever the number of models (rows of PANELS_PER_ROW panels).
    fig, axes = plt.subplots(
        rows, columns, figsize=(panel_w * columns, panel_h * rows + 0.25 * legend_rows + 0.4),
        squeeze=False, layout="constrained",
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (heading, pixels) in zip(axes.ravel(), panels, strict=False):
        ax.imshow(pixels)
        ax.set_title(heading, fontsize=9)
    handles = [Patch(facecolor=_rgb(c.color), edgecolor="black", label=c.name) for c in table]
    fig.suptitle(title, fontsize=10)
    fig.legend(handles=handles, loc="outside lower center", ncols=min(5, len(handles)), fontsize=7)
    return fig
