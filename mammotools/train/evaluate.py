"""``evaluate``: a trained run on a crop dataset's validation files, or on the whole validation
images of an export dataset (or a Cityscapes folder's val scenes), by sliding window.

Writes into ``--out`` (default ``RUN/eval-<dataset folder name>``)::

    metrics.json        the paper's three figures, per-class IoU / Dice / accuracy, the settings
    confusion.csv       the confusion matrix summed over every image (rows truth, columns prediction)
    per_image.csv       name, pixels, pixel accuracy, mean IoU, mean Dice, IoU per class
    predictions/<name>.png   predicted label map, palette PNG in the dataset's label values
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mammotools.classes import ClassTable, RegionClass
from mammotools.crops import open_crop_dataset
from mammotools.data import fold_crops, is_cityscapes, open_cityscapes
from mammotools.defaults import IGNORE_LABEL
from mammotools.errors import InputError
from mammotools.export import open_export_dataset
from mammotools.files import atomic_write_bytes, atomic_write_text, output_lock, remove_dead_temporaries
from mammotools.metrics import scores, write_confusion_csv
from mammotools.models import build_model, with_input_normalization
from mammotools.palette import encode_label_png
from mammotools.split import SPLIT_FILE, TRAIN, VAL, fold_sides, read_split
from mammotools.train.checkpoint import BEST, load_weights
from mammotools.train.evaluation import EvalImage, evaluate_images
from mammotools.train.run import final_model, run_normalization, stage_window
from mammotools.train.runtime import start_runtime


@dataclass
class EvaluationSummary:
    """What evaluate did."""

    out: Path
    images: int
    metrics: dict
    seconds: float


def _dataset_images(path: Path, folds: int = 0, fold: int = 0) -> tuple[list[EvalImage], ClassTable, str]:
    """The validation images of a crop or export dataset (of fold ``fold`` of ``folds`` when the
    run was trained on one), its class table and its kind."""
    if is_cityscapes(path):
        scenes = open_cityscapes(path)
        return [EvalImage(f.name, f.image_path, f.label_path, f.bits) for f in scenes.val], scenes.table, "cityscapes"
    if (path / "settings.json").is_file():
        crops = open_crop_dataset(path)
        if folds:
            crops = fold_crops(crops, folds, fold)
        return [EvalImage(f.name, f.image_path, f.label_path, f.bits) for f in crops.val], crops.table, "crops"
    dataset = open_export_dataset(path)
    if dataset.split is None:
        raise InputError(
            f"{path}: no split.csv: the run's validation subjects are not known here; give the export dataset the crops came from"
        )
    if folds:
        try:
            sides = fold_sides(read_split(path / SPLIT_FILE), folds, fold)
        except InputError:
            raise InputError(
                f"{path}: the run was trained on fold {fold} of {folds} of its dataset's subjects, and this dataset "
                "cannot be split so; give the export dataset the run's crops were cut from"
            ) from None
        names = sorted(n for n, side in sides.items() if side == VAL)
    else:
        names = dataset.names_in(VAL)
    return [EvalImage(n, dataset.image_path(n), dataset.label_path(n)) for n in names], dataset.table, "images"


def _lut_for(table: ClassTable, classes: list[str], run_table: str = "") -> tuple[np.ndarray, list[int]]:
    """Label value -> class index of the run, for this dataset's table, and the label value each
    class is written back as. A two-class run (Non-tumor, Tumor) reads any table with a Tumor.
    ``run_table``: the class table the run's crops were cut with, named in the fix."""
    fix = (
        "; score the run on a dataset exported with its classes (`mammotools export-qupath PROJECT --classes "
        f"{run_table or 'THE_RUN_S_TABLE'} --out DATASET`, --map CLASS=KNOWN for differing names), or train a run on "
        "this dataset's crops"
    )
    lut = np.full(256, IGNORE_LABEL, np.int64)
    if classes == ["Non-tumor", "Tumor"] and table.find("Non-tumor") is None:
        tumor = table.find("Tumor")
        if tumor is None:
            raise InputError("the run is tumor against non-tumor, but the dataset has no Tumor class" + fix)
        for c in table:
            lut[c.label] = 1 if c.label == tumor.label else 0
        return lut, [table.bottom.label, tumor.label]
    values = []
    for index, name in enumerate(classes):
        found = table.find(name)
        if found is None:
            raise InputError(f"the run's class {name!r} is not a class of the dataset ({', '.join(table.names)})" + fix)
        lut[found.label] = index
        values.append(found.label)
    unknown = [c.name for c in table if lut[c.label] == IGNORE_LABEL]
    if unknown:  # their pixels could be neither predicted nor scored: the figures would leave them out unseen
        raise InputError(f"the dataset's class(es) {', '.join(unknown)} are not among the run's ({', '.join(classes)})" + fix)
    return lut, values


def _check_split(run_crops: Path, images: list[EvalImage], folds: int = 0, fold: int = 0) -> None:
    """Refuse to score images the run trained on: the run's crops keep the split they were cut by
    (and the run its fold of them)."""
    split_file = run_crops / SPLIT_FILE
    if not split_file.is_file():
        return
    if folds:
        trained = {name for name, side in fold_sides(read_split(split_file), folds, fold).items() if side == TRAIN}
    else:
        trained = {name for name, (_, side) in read_split(split_file).items() if side == TRAIN}
    seen = sorted(item.name for item in images if item.name in trained)
    if seen:
        raise InputError(
            f"{len(seen)} validation image(s) ({', '.join(seen[:5])}) were training images of the run (the split in "
            f"{split_file}); give the export dataset the run's crops were cut from, with its split.csv"
        )


def scored_identity(images: list[tuple[str, Path]]) -> list[list[str]]:
    """[name, size:mtime of its truth] of each scored image: an evaluation is current only for
    the same images with the same truth (metrics.json's "scored")."""
    identity = []
    for name, label in images:
        stat = label.stat()
        identity.append([name, f"{stat.st_size}:{stat.st_mtime_ns}"])
    return identity


def evaluate_run(
    run: str | Path,
    dataset_path: str | Path,
    out: str | Path | None = None,
    device: str = "auto",
    overlap: float | None = None,
    batch_size: int | None = None,
    save_predictions: bool = True,
    on_image: Callable[[str], None] | None = None,
    stage: str | None = None,
    overwrite: bool = False,
) -> EvaluationSummary:
    """Score the run's final model (or the best model of an earlier ``stage``, e.g. fcn16 of an
    fcn8 run) on the dataset's validation images (layout above).

    ``out`` must be new, empty, or an evaluation of this run's stage on this dataset (rewritten);
    an evaluation of another run, stage or dataset is replaced with ``overwrite`` only, and any
    other folder never. The default, ``RUN/eval-<dataset folder name>``, gets the dataset path's
    short hash when that name already holds another dataset's evaluation."""
    start = time.perf_counter()
    run, dataset_path = Path(run), Path(dataset_path)
    description, best, config = final_model(run, stage)
    stage = stage or description["stages"][-1]
    images, table, kind = _dataset_images(dataset_path, config.folds, config.fold)
    if not images:
        raise InputError(f"{dataset_path}: no validation images")
    classes = description["classes"]
    lut, values = _lut_for(table, classes, str(Path(description["dataset"]) / "classes.json"))
    if kind == "images":
        _check_split(Path(description["dataset"]), images, config.folds, config.fold)
    runtime = start_runtime(device, config.precision)
    model = build_model(stage, len(classes), width=config.width, encoder=config.encoder)
    load_weights(model, best["model"], run / "stages" / stage / BEST)
    model = with_input_normalization(model, run_normalization(description)).to(runtime.device)
    marker = {"kind": KIND, "run": str(run.resolve()), "stage": stage, "dataset": str(dataset_path.resolve())}
    out = Path(out) if out else default_folder(run, dataset_path, marker)
    with output_lock(out):
        _prepare_out(out, marker, overwrite)
        return _score(run, dataset_path, out, description, config, stage, images, lut, values, table, kind, runtime, model,
                      overlap, batch_size, save_predictions, on_image, start)  # fmt: skip


KIND = "mammotools evaluation"
MARKER = "evaluation.json"  # written first: what the folder evaluates, so a rerun (or a wrong --out) is recognised
OUTPUTS = (MARKER, "metrics.json", "confusion.csv", "per_image.csv", "predictions")


def default_folder(run: Path, dataset_path: Path, marker: dict[str, str]) -> Path:
    """``RUN/eval-<dataset folder name>``, or ``...-<hash of the dataset's path>`` when that folder
    evaluates another dataset (two datasets of one folder name must not share a folder)."""
    plain = run / f"eval-{dataset_path.resolve().name}"
    if not plain.exists() or _evaluates(plain, marker, same_stage=False):
        return plain
    digest = hashlib.sha1(marker["dataset"].encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return run / f"eval-{dataset_path.resolve().name}-{digest}"


def _recorded(out: Path) -> dict[str, Any] | None:
    """What ``out`` evaluates (evaluation.json; older evaluations: metrics.json's settings), or None."""
    for name in (MARKER, "metrics.json"):
        try:
            data = json.loads((out / name).read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if name == "metrics.json" and isinstance(data, dict) and isinstance(data.get("settings"), dict):
            data = {"kind": KIND, **data["settings"]}
            for key in ("run", "dataset"):
                data[key] = str(Path(str(data.get(key, ""))).resolve())
        if isinstance(data, dict) and data.get("kind") == KIND:
            return data
    return None


def _evaluates(out: Path, marker: dict[str, str], same_stage: bool = True) -> bool:
    recorded = _recorded(out)
    keys = ("run", "stage", "dataset") if same_stage else ("run", "dataset")
    return recorded is not None and all(recorded.get(k) == marker[k] for k in keys)


def _prepare_out(out: Path, marker: dict[str, str], overwrite: bool) -> None:
    """Make ``out`` ready (rules in :func:`evaluate_run`): the marker first, the earlier
    metrics.json (the mark of a complete evaluation) removed until the new one is written."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if _recorded(out) is None:
            raise InputError(f"--out {out}: not empty and not an evaluation; choose an empty or new --out")
        if not _evaluates(out, marker) and not overwrite:
            raise InputError(
                f"--out {out}: holds an evaluation of another run, stage or dataset; pass --overwrite to replace it, "
                "or choose another --out"
            )
        for name in OUTPUTS:
            path = out / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
    remove_dead_temporaries(out)
    atomic_write_text(out / MARKER, json.dumps(marker, indent=1))
    (out / "predictions").mkdir(parents=True, exist_ok=True)


def _score(
    run: Path, dataset_path: Path, out: Path, description: dict[str, Any], config: Any, stage: str, images: list[EvalImage],
    lut: np.ndarray, values: list[int], table: ClassTable, kind: str, runtime: Any, model: Any, overlap: float | None,
    batch_size: int | None, save_predictions: bool, on_image: Callable[[str], None] | None, start: float,
) -> EvaluationSummary:  # fmt: skip
    """Score the images into the prepared ``out`` (metrics.json last)."""
    classes = description["classes"]
    palette = ClassTable(
        [RegionClass(c.name, c.label, c.color, i + 1, False) for i, c in enumerate(table)], source="dataset"
    ).palette()
    to_values = np.asarray(values, np.uint8)
    rows: list[list[object]] = []

    def record(item: EvalImage, prediction: np.ndarray, target: np.ndarray) -> None:
        keep = target != IGNORE_LABEL
        n = len(classes)
        matrix = np.bincount(target[keep] * n + prediction[keep], minlength=n * n).reshape(n, n)
        s = scores(matrix, classes)
        ious = [s["classes"][c]["iou"] for c in classes]
        counts = [*np.diag(matrix).tolist(), *matrix.sum(axis=1).tolist(), *matrix.sum(axis=0).tolist()]
        rows.append([item.name, int(keep.sum()), s["pixel_accuracy"], s["mean_iou"], s["mean_dice"], *ious, *counts])
        if save_predictions:
            atomic_write_bytes(out / "predictions" / f"{item.name}.png", encode_label_png(to_values[prediction], palette))
        if on_image:
            on_image(item.name)

    window, out_size = stage_window(description, stage)
    matrix = evaluate_images(
        model, images, lut, len(classes), window, out_size, runtime.device,
        overlap if overlap is not None else config.overlap, batch_size or config.val_batch, runtime.amp_dtype, record,
        scale=config.scale,
    )  # fmt: skip
    confusion = matrix.to_numpy()
    metrics = scores(confusion, classes)
    settings = {
        "run": str(run),
        "stage": stage,
        "dataset": str(dataset_path),
        "kind": kind,
        "window": window,
        "output": out_size,
        "scale": config.scale,
        "input_normalization": run_normalization(description),
        "folds": config.folds,
        "fold": config.fold,
    }
    seconds = time.perf_counter() - start
    write_confusion_csv(out / "confusion.csv", confusion, classes)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(
        ["name", "pixels", "pixel_accuracy", "mean_iou", "mean_dice", *[f"iou_{c}" for c in classes]]
        + [f"{kind}_{c}" for kind in ("tp", "true", "predicted") for c in classes]  # per-image counts: CIs recomputable
    )
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    atomic_write_bytes(out / "per_image.csv", buf.getvalue().encode("utf-8"))
    scored = scored_identity([(item.name, item.label_path) for item in images])
    written = {**metrics, "images": len(images), "seconds": seconds, "settings": settings, "scored": scored}
    atomic_write_text(out / "metrics.json", json.dumps(written, indent=1))  # last: it marks the evaluation complete
    return EvaluationSummary(out, len(images), metrics, seconds)


__all__ = ["EvaluationSummary", "evaluate_run", "scored_identity"]
