"""``make-crops``: class-balanced crop datasets (layout.py) from an export dataset.

Images from the dataset are split by subject first (mammotools.split); a subject's crops all go
to one side. Centres are chosen by the paper's balanced rule (centres.py), each crop from its
own seed; image.py cuts one image's crops (in a worker process with ``workers > 1``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mammotools.classes import ClassTable, normalize_name
from mammotools.crops.layout import (
    CROP_FIELDS,
    CropSettings,
    check_split_folder,
    mark_finished,
    mark_unfinished,
    prepare_split_folder,
    two_class_table,
    write_class_weights,
    write_records_manifest,
)
from mammotools.defaults import (
    CROP_SIZES,
    DEFAULT_COMMON,
    DEFAULT_VAL_FRACTION,
    MAX_CROP_SIZE,
    MAX_PER_IMAGE,
    MIN_CROP_SIZE,
    TASKS,
)
from mammotools.errors import InputError
from mammotools.files import atomic_write_bytes, atomic_write_text
from mammotools.records import CROPS_RECORD, files_present, forget, leftovers, read_record
from mammotools.runner import Outcome, choose_workers, run_tracked
from mammotools.split import TRAIN, VAL, load_or_draw_split, read_subjects_csv, subject_from_name

# make-crops work per source megapixel (decode image and label, write crops): sizes the pool.
SECONDS_PER_MEGAPIXEL = 0.02

if TYPE_CHECKING:
    from mammotools.crops.image import CropJob
    from mammotools.export import ExportDataset


@dataclass
class CropSummary(Outcome):
    """What make-crops did (images done/skipped/failed, crops per split)."""

    crops: dict[str, int] = field(default_factory=lambda: {TRAIN: 0, VAL: 0})
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # settings that work but are most likely a mistake


def make_crops(
    dataset_path: str | Path,
    out: str | Path,
    settings: CropSettings,
    workers: int = 0,
    overwrite: bool = False,
    subjects_csv: Path | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    split_seed: int = 0,
    on_plan: Callable[[int, int], None] | None = None,
    on_item: Callable[[str], None] | None = None,
) -> CropSummary:
    """Write a crop dataset (layout above) from an export-qupath dataset."""
    from mammotools.crops.image import crop_files, cut_image_crops  # cv2 etc. only when working
    from mammotools.export import open_export_dataset

    start = time.perf_counter()
    out = Path(out)
    _check_settings(settings)
    dataset = open_export_dataset(dataset_path)
    common = _common_labels(dataset.table, settings.common)
    out_table, lut = two_class_table(dataset.table) if settings.task == "tumor" else (dataset.table, list(range(256)))
    if (dataset.path / "split.csv").is_file() and (val_fraction, split_seed) != (DEFAULT_VAL_FRACTION, 0):
        note = f"the split recorded in {dataset.path / 'split.csv'} is used; --val-fraction and --split-seed apply only"
        summary_notes = [note + " when it is drawn (delete the file to redraw it)"]
    else:
        summary_notes = []
    whole_images = _whole_image_windows(dataset, settings)
    recorded = {"kind": "crops", "settings": asdict(settings), "dataset": str(Path(dataset_path).resolve())}
    recorded = json.loads(json.dumps(recorded))  # JSON types, as settings.json holds them
    check_split_folder(out, "crops", recorded, overwrite, dataset.path)  # before the split is drawn
    jobs = _jobs(dataset, subjects_csv, val_fraction, split_seed, summary_notes)
    if not any(job.split == TRAIN for job in jobs):  # an edited split.csv: no crop to train on, weights all 1
        raise InputError(
            f"{dataset.path / 'split.csv'}: puts every subject in validation ({VAL}), so no crop would be left to train on; "
            f"delete the file to redraw the split (--val-fraction sets the validation share), or set some subjects to {TRAIN}"
        )
    _prepare_out(out, recorded, out_table, overwrite, dataset.path)
    summary = CropSummary(notes=summary_notes, warnings=whole_images)
    todo = []
    for job in jobs:
        record = read_record(out, job.name, CROPS_RECORD)
        current = (job.split, job.source_fingerprint)
        if (
            record is not None
            and not overwrite
            and (record.get("split"), record.get("source_fingerprint")) == current
            and files_present(out, record, crop_files)
        ):
            summary.skipped.append(job.name)
        else:
            todo.append(job)
    if on_plan:
        on_plan(len(todo), len(summary.skipped))

    args = (out, dataset.table, out_table, lut, sorted(common), settings)
    if todo:  # until every image is cropped: a stopped or partly failed folder is refused by augment and train
        mark_unfinished(out, "crops", [job.name for job in jobs])
    try:
        sizes = {image.name: image.width * image.height for image in dataset.images}
        megapixels = sum(sizes.get(job.name, 0) for job in todo) / 1e6
        n = choose_workers(workers, len(todo), megapixels * SECONDS_PER_MEGAPIXEL)
        run_tracked(cut_image_crops, todo, args, n, summary, lambda job: job.name, on_item)
        gone = leftovers(out, {job.name for job in jobs})
        for name in gone:  # images no longer in the dataset: their crops go too
            forget(out, name, crop_files)
        if gone:
            summary.notes.append(f"removed the crops of {len(gone)} image(s) no longer in the dataset: {', '.join(gone[:8])}")
    finally:  # also after Ctrl-C: the manifest lists what is complete
        rows = write_crop_manifest(out, out_table)
    for row in rows:
        summary.crops[row["split"]] += 1
    write_class_weights(out, out_table, rows)
    if not summary.failed:
        mark_finished(out)
    summary.seconds = time.perf_counter() - start
    return summary


def _check_settings(settings: CropSettings) -> None:
    if not MIN_CROP_SIZE <= settings.size <= MAX_CROP_SIZE:
        raise InputError(
            f"--size {settings.size}: crops must be {MIN_CROP_SIZE}..{MAX_CROP_SIZE} px "
            f"(the paper's sizes: {', '.join(map(str, CROP_SIZES))})"
        )
    if not 1 <= settings.per_image <= MAX_PER_IMAGE:
        raise InputError(f"--per-image {settings.per_image}: give 1..{MAX_PER_IMAGE} crops per image")
    if settings.task not in TASKS:
        raise InputError(f"--task {settings.task!r}: choose one of {', '.join(TASKS)}")


def _common_labels(table: ClassTable, names: tuple[str, ...]) -> set[int]:
    labels = {table.bottom.label}
    for name in names:
        found = table.find(name)
        if found is not None:
            labels.add(found.label)
        elif normalize_name(name) != normalize_name(DEFAULT_COMMON[0]):
            raise InputError(f"--common {name!r}: not a class of the dataset ({', '.join(table.names)})")
    return labels


def _whole_image_windows(dataset: ExportDataset, settings: CropSettings) -> list[str]:
    """A warning when images are no larger than ``--size`` on both sides: such an image fits inside
    one window, so wherever its centre falls each of its crops is the same padded copy of the whole
    image. Warned, not refused: padded whole images are a choice some make (one crop per image);
    the warning names how many images and a size that cuts distinct crops from all of them."""
    size = settings.size
    whole = [image for image in dataset.images if image.width <= size and image.height <= size]
    if not whole:
        return []
    fits = min(min(image.width, image.height) for image in dataset.images)  # crops of every image without padding
    largest = max(whole, key=lambda image: image.width * image.height)
    each = f"each of their {settings.per_image} crops is the same" if settings.per_image > 1 else "their crop is a"
    return [
        f"--size {size}: {len(whole)} of {len(dataset.images)} image(s) fit inside one {size} px window (the largest "
        f"{largest.width}x{largest.height} px): {each} padded copy of the whole image; --size {fits} or less (the "
        "shortest image side) cuts distinct crops without padding from every image"
    ]


def _jobs(dataset: ExportDataset, subjects_csv: Path | None, val_fraction: float, seed: int, notes: list[str]) -> list[CropJob]:
    from mammotools.crops.image import CropJob

    overrides = read_subjects_csv(subjects_csv) if subjects_csv else {}
    extra = sorted(set(overrides) - set(dataset.names))
    if extra:
        notes.append(f"{subjects_csv}: {len(extra)} name(s) not in the dataset, ignored: {', '.join(extra[:8])}")
    subjects = {}
    for image in dataset.images:
        name = image.name
        subjects[name] = overrides.get(name) or image.subject or subject_from_name(name)
    splits = load_or_draw_split(dataset.path, subjects, val_fraction, seed)
    return [
        CropJob(name, subj, split, dataset.image_path(name), dataset.label_path(name), dataset.fingerprint(name))
        for name, (subj, split) in sorted(splits.items())
    ]


def _prepare_out(out: Path, recorded: dict, table: ClassTable, overwrite: bool, dataset: Path) -> None:
    prepare_split_folder(out, "crops", recorded, overwrite, dataset)
    atomic_write_text(out / "classes.json", table.to_json())
    atomic_write_bytes(out / "split.csv", (dataset / "split.csv").read_bytes())


def write_crop_manifest(out: Path, table: ClassTable) -> list[dict]:
    """Write manifest.csv from all image records; return the crop rows."""
    return write_records_manifest(out, "crops", CROP_FIELDS, table, CROPS_RECORD)
