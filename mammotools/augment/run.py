"""``augment``: the offline variants (variants.py) of every training crop of a ``make-crops``
dataset, or of every training image of an ``export-qupath`` dataset.

The output keeps the crop dataset's layout (mammotools.crops.layout), so training reads either::

    aug/settings.json, classes.json, split.csv   as in the crop dataset (+ the variants used)
    aug/train/images/<crop>_<variant>.png        each training crop's variants
    aug/train/images/<crop>.png                  the unaugmented original (unless --no-originals)
    aug/val/images/<crop>.png                    validation crops, copied unchanged (never augmented)
    aug/{train,val}/labels/...                   the matching label maps
    aug/manifest.csv                             one row per output file (AUGMENT_FIELDS)
    aug/class_weights.json                       recomputed on the augmented training set
    aug/records/<crop>.json                      one crop's outputs; written last

Only the training split is augmented, so no copy of a validation subject is ever trained on.
crop.py does one crop (in a worker process with ``workers > 1``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mammotools.augment.variants import VARIANTS
from mammotools.classes import ClassTable
from mammotools.crops import (
    AUGMENT_FIELDS,
    check_split_folder,
    mark_finished,
    mark_unfinished,
    missing_files,
    open_crop_dataset,
    prepare_split_folder,
    write_class_weights,
    write_records_manifest,
)
from mammotools.defaults import DEFAULT_KEEP_ORIGINALS
from mammotools.errors import InputError, MissingFileError
from mammotools.files import atomic_path
from mammotools.records import AUGMENT_RECORD, files_present, forget, leftovers, read_record
from mammotools.runner import Outcome, choose_workers, run_tracked
from mammotools.split import TRAIN, VAL, load_or_draw_split, subject_from_name

# augment work per output megapixel (a variant computed and written as PNG): sizes the pool.
SECONDS_PER_MEGAPIXEL = 0.02


@dataclass
class AugmentSummary(Outcome):
    """What augment did (crops done/skipped/failed, files written per split)."""

    files: dict[str, int] = field(default_factory=lambda: {TRAIN: 0, VAL: 0})
    seconds: float = 0.0


def parse_variants(text: str | None) -> tuple[str, ...]:
    """``"noise,flip_lr"`` -> the variant names, checked; None -> all of them."""
    if text is None:
        return tuple(VARIANTS)
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise InputError(
            f"--variants: unknown variant(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(VARIANTS)}"
        )
    return names


def augment_dataset(
    crops_path: str | Path,
    out: str | Path,
    variants: tuple[str, ...],
    seed: int = 0,
    keep_originals: bool = DEFAULT_KEEP_ORIGINALS,
    workers: int = 0,
    overwrite: bool = False,
    on_plan: Callable[[int, int], None] | None = None,
    on_item: Callable[[str], None] | None = None,
) -> AugmentSummary:
    """Write the augmented dataset (layout above) from a make-crops dataset, or from an
    export-qupath dataset (whole images; its subject split is drawn or read as make-crops does)."""
    from mammotools.augment.crop import AugmentJob, augment_files, source_stamp, write_crop_variants

    start = time.perf_counter()
    source, out = Path(crops_path), Path(out)
    if source.exists():
        check_split_folder(out, "augmented", None, overwrite, source)  # before a split is drawn
    items, source_settings, table, missing = _read_source(source)
    recorded = {
        "kind": "augmented",
        "crops": str(source.resolve()),
        "variants": sorted(variants),
        "seed": seed,
        "keep_originals": keep_originals,
        "crop_settings": source_settings,
    }  # JSON types only: compared with the settings.json of an earlier run
    _prepare_out(out, source, recorded, overwrite)
    jobs = [
        AugmentJob(
            item.crop, item.split, item.source, item.subject, item.bits or 0,
            variants if item.split == TRAIN else (), keep_originals or item.split != TRAIN,
            item.image_path, item.label_path,
        )
        for item in items
    ]  # fmt: skip
    summary = AugmentSummary(failed=missing)
    todo = []
    for job in jobs:
        record = read_record(out, job.crop, AUGMENT_RECORD)
        current = [job.split, source_stamp(job)]
        if (
            record is not None
            and not overwrite
            and [record.get("split"), record.get("stamp")] == current
            and files_present(out, record, augment_files)  # a file cut short (or lost) is remade
        ):
            summary.skipped.append(job.crop)
        else:
            todo.append(job)  # new, remade by make-crops, or moved to the other side of the split
    if on_plan:
        on_plan(len(todo), len(summary.skipped))

    if todo or missing:  # until every crop is done: a stopped or partly failed folder is refused by train
        mark_unfinished(out, "augmented", [job.crop for job in jobs])
    try:
        pixels = {item.crop: item.pixels for item in items}
        megapixels = sum(pixels[job.crop] * (len(job.variants) + 1) for job in todo) / 1e6
        n = choose_workers(workers, len(todo), megapixels * SECONDS_PER_MEGAPIXEL)
        run_tracked(write_crop_variants, todo, (out, seed, table), n, summary, lambda job: job.crop, on_item)
        for name in leftovers(out, {job.crop for job in jobs} | {name for name, _ in missing}):  # no longer in the source
            forget(out, name, augment_files)
    finally:  # also after Ctrl-C: the manifest lists what is complete
        outputs = write_records_manifest(out, "outputs", AUGMENT_FIELDS, table, AUGMENT_RECORD)
    for row in outputs:
        summary.files[row["split"]] += 1
    write_class_weights(out, table, outputs)
    if not summary.failed:
        mark_finished(out)
    summary.seconds = time.perf_counter() - start
    return summary


@dataclass(frozen=True)
class _Item:
    """A crop, or a whole image, to augment."""

    crop: str
    split: str
    source: str
    subject: str
    bits: int | None
    image_path: Path
    label_path: Path
    pixels: int  # of the image: sizes the worker pool


def source_unit(path: str | Path) -> str:
    """What augment works on in ``path``: "crop" (a make-crops folder) or "image" (an export dataset)."""
    return "crop" if (Path(path) / "settings.json").is_file() else "image"


def _read_source(path: Path) -> tuple[list[_Item], dict, ClassTable, list[tuple[str, str]]]:
    """(items, the source's settings, class table, (name, error) of listed files that are missing)."""
    if not path.exists():
        raise MissingFileError(f"{path}: not found; give a crop dataset (make-crops) or an image dataset (export-qupath) folder")
    if source_unit(path) == "crop":
        return _crop_items(path)
    return _image_items(path)


def _crop_items(path: Path) -> tuple[list[_Item], dict, ClassTable, list[tuple[str, str]]]:
    dataset = open_crop_dataset(path)
    if dataset.kind != "crops":
        raise InputError(
            f"{path}: an augmented dataset, not a crop dataset; augment the crops it was made from (make-crops output) instead"
        )
    if not (path / "split.csv").is_file():
        raise InputError(f"{path}: no split.csv (the subject split the crops were cut by); rerun make-crops with --overwrite")
    if not dataset.train:
        raise InputError(
            f"{path / 'split.csv'}: puts every subject in validation ({VAL}), so there is no training crop to augment; "
            "delete the export dataset's split.csv to redraw the split, then rerun make-crops with --overwrite"
        )
    missing = missing_files(dataset)
    lost = {name for name, _ in missing}
    items = [
        _Item(f.crop, f.split, f.source, f.subject, f.bits, f.image_path, f.label_path, (dataset.size or 0) ** 2)
        for f in dataset.files
        if f.name not in lost
    ]
    return items, dataset.settings, dataset.table, missing


def _image_items(path: Path) -> tuple[list[_Item], dict, ClassTable, list[tuple[str, str]]]:
    """Whole images of an export-qupath dataset, with the dataset's subject split."""
    from mammotools.export import open_export_dataset

    if path.is_dir() and not (path / "manifest.csv").is_file():
        raise InputError(
            f"{path}: neither a crop dataset (make-crops) nor an image dataset (export-qupath); "
            "make one with `mammotools make-crops DATASET --size N --out CROPS`"
        )
    dataset = open_export_dataset(path)  # its own errors name the damage and the fix
    subjects = {image.name: image.subject or subject_from_name(image.name) for image in dataset.images}
    splits = load_or_draw_split(dataset.path, subjects)
    if not any(split == TRAIN for _, split in splits.values()):
        raise InputError(
            f"{dataset.path / 'split.csv'}: puts every subject in validation ({VAL}), so there is no training image to "
            f"augment; delete the file to redraw the split, or set some subjects to {TRAIN}"
        )
    sizes = {image.name: image.width * image.height for image in dataset.images}
    items = [
        _Item(name, split, name, subject, None, dataset.image_path(name), dataset.label_path(name), sizes[name])
        for name, (subject, split) in sorted(splits.items())
    ]
    return items, {"dataset": str(path.resolve()), "whole_images": True}, dataset.table, []


def _prepare_out(out: Path, source: Path, recorded: dict, overwrite: bool) -> None:
    prepare_split_folder(out, "augmented", recorded, overwrite, source)
    for name in ("classes.json", "split.csv"):
        with atomic_path(out / name) as tmp:
            shutil.copyfile(source / name, tmp)
