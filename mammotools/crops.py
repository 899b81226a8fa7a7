"""``make-crops``: class-balanced crop datasets from an export-qupath dataset.

Layout of the output (read by ``augment`` and the training step)::

    crops/settings.json                 size, crops per image, seed, task, common classes
    crops/classes.json                  class table of the crops (two classes with --task tumor)
    crops/split.csv                     the dataset's subject-level split (name, subject, split)
    crops/train/images/<name>_<i>.png   image crop, lossless, bit depth kept
    crops/train/labels/<name>_<i>.png   label crop, uint8 palette PNG
    crops/val/images/..., crops/val/labels/...   the validation subjects' crops
    crops/manifest.csv                  one row per crop (MANIFEST_FIELDS, then pixels per class)
    crops/class_weights.json            w = 1 - x/100, x = the class's % of training pixels
    crops/records/<name>.json           one image's crops; written last, marks it complete

Images from the dataset are split by subject first (split.py); a subject's crops all go to one
side. Centres are chosen by the paper's balanced rule (sampling.py), each crop from its own seed.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mammotools.classes import ClassTable, RegionClass, normalize_name
from mammotools.dataset import Dataset, open_dataset
from mammotools.defaults import DEFAULT_COMMON, DEFAULT_PER_IMAGE, DEFAULT_VAL_FRACTION
from mammotools.errors import InputError
from mammotools.files import atomic_write_bytes, atomic_write_text
from mammotools.records import files_present, forget, leftovers, prepare_split_folder, read_record
from mammotools.runner import Outcome
from mammotools.split import TRAIN, VAL, load_or_draw_split, read_subjects_csv, subject_from_name

DOCUMENTED_SIZES = (256, 700, 900, 1500)  # the paper's crop sizes
MIN_SIZE, MAX_SIZE = 16, 8192
TASKS = ("regions", "tumor")
MANIFEST_FIELDS = [
    "crop", "split", "source", "subject", "size", "row0", "col0", "padded",
    "centre_row", "centre_col", "centre_class", "seed", "bits",
]  # fmt: skip


@dataclass(frozen=True)
class CropSettings:
    """What a crop dataset is made with (recorded in settings.json)."""

    size: int
    per_image: int = DEFAULT_PER_IMAGE
    seed: int = 0
    task: str = "regions"
    common: tuple[str, ...] = DEFAULT_COMMON


@dataclass
class CropJob:
    """One source image: where it is, and which side of the split it is on."""

    name: str
    subject: str
    split: str
    image_path: Path
    label_path: Path
    source_fingerprint: str = ""  # the dataset record's: changes when export-qupath redid the image


@dataclass
class CropSummary(Outcome):
    """What make-crops did (images done/skipped/failed, crops per split)."""

    crops: dict[str, int] = field(default_factory=lambda: {TRAIN: 0, VAL: 0})
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def two_class_table(table: ClassTable) -> tuple[ClassTable, list[int]]:
    """The tumor-vs-rest table and the lookup (256 entries) mapping labels into it."""
    tumor = table.find("Tumor")
    if tumor is None:
        raise InputError(f"--task tumor needs a class named Tumor; the dataset's classes are {', '.join(table.names)}")
    out = ClassTable(
        [RegionClass("Tumor", 1, tumor.color, 1, tumor.smooth), RegionClass("Non-tumor", 0, (0, 0, 0), 2, False)],
        source="two-class task",
    )
    lut = [0] * 256
    lut[tumor.label] = 1
    return out, lut


def make_crops(
    dataset_path: str | Path,
    out: str | Path,
    settings: CropSettings,
    workers: int = 1,
    overwrite: bool = False,
    subjects_csv: Path | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    split_seed: int = 0,
    on_plan: Callable[[int, int], None] | None = None,
    on_item: Callable[[str], None] | None = None,
) -> CropSummary:
    """Write a crop dataset (layout above) from an export-qupath dataset."""
    from mammotools.crop_image import crop_files, crop_image
    from mammotools.runner import run_tracked

    start = time.perf_counter()
    out = Path(out)
    _check_settings(settings)
    dataset = open_dataset(dataset_path)
    common = _common_labels(dataset.table, settings.common)
    out_table, lut = two_class_table(dataset.table) if settings.task == "tumor" else (dataset.table, list(range(256)))
    if (dataset.path / "split.csv").is_file() and (val_fraction, split_seed) != (DEFAULT_VAL_FRACTION, 0):
        note = f"the split recorded in {dataset.path / 'split.csv'} is used; --val-fraction and --split-seed apply only"
        summary_notes = [note + " when it is drawn (delete the file to redraw it)"]
    else:
        summary_notes = []
    jobs = _jobs(dataset, subjects_csv, val_fraction, split_seed, summary_notes)
    recorded = {"kind": "crops", "settings": asdict(settings), "dataset": str(Path(dataset_path).resolve())}
    recorded = json.loads(json.dumps(recorded))  # JSON types, as settings.json holds them
    _prepare_out(out, recorded, out_table, overwrite, dataset.path)
    summary = CropSummary(notes=summary_notes)
    todo = []
    for job in jobs:
        record = read_record(out, job.name)
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
    try:
        run_tracked(crop_image, todo, args, workers, summary, lambda job: job.name, on_item)
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
    summary.seconds = time.perf_counter() - start
    return summary


def _check_settings(settings: CropSettings) -> None:
    if not MIN_SIZE <= settings.size <= MAX_SIZE:
        raise InputError(
            f"--size {settings.size}: crops must be {MIN_SIZE}..{MAX_SIZE} px "
            f"(the paper's sizes: {', '.join(map(str, DOCUMENTED_SIZES))})"
        )
    if settings.per_image < 1:
        raise InputError(f"--per-image {settings.per_image}: give at least 1 crop per image")
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


def _jobs(dataset: Dataset, subjects_csv: Path | None, val_fraction: float, seed: int, notes: list[str]) -> list[CropJob]:
    overrides = read_subjects_csv(subjects_csv) if subjects_csv else {}
    extra = sorted(set(overrides) - {row["name"] for row in dataset.rows})
    if extra:
        notes.append(f"{subjects_csv}: {len(extra)} name(s) not in the dataset, ignored: {', '.join(extra[:8])}")
    subjects = {}
    for row in dataset.rows:
        name = row["name"]
        subjects[name] = overrides.get(name) or row.get("subject") or subject_from_name(name)
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
    return write_records_manifest(out, "crops", MANIFEST_FIELDS, table)


def write_records_manifest(out: Path, key: str, fields: list[str], table: ClassTable) -> list[dict]:
    """``out/manifest.csv`` from the ``key`` lists of every ``out/records/*.json``: ``fields``,
    then ``pixels_<class>`` per class; returns the rows. A damaged record is left out (its item
    is redone on the next run)."""
    rows: list[dict] = []
    for path in sorted((out / "records").glob("*.json")):
        record = read_record(out, path.stem)
        if record is not None and isinstance(record.get(key), list):
            rows.extend(record[key])
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(fields + [f"pixels_{c.slug}" for c in table])
    for row in rows:
        writer.writerow([row[k] for k in fields] + [row["pixels"].get(c.name, 0) for c in table])
    atomic_write_bytes(out / "manifest.csv", buf.getvalue().encode("utf-8"))
    return rows


def class_weights(table: ClassTable, rows: list[dict]) -> list[dict]:
    """Per class: share x (%) of the training crops' pixels and weight w = 1 - x/100 (paper, 3.5)."""
    totals = {c.name: 0 for c in table}
    for row in rows:
        if row["split"] == TRAIN:
            for name, n in row["pixels"].items():
                totals[name] = totals.get(name, 0) + n
    all_pixels = sum(totals.values()) or 1
    return [
        {"name": c.name, "label": c.label, "percent": 100 * totals[c.name] / all_pixels,
         "weight": 1 - totals[c.name] / all_pixels}
        for c in table
    ]  # fmt: skip


def write_class_weights(out: Path, table: ClassTable, rows: list[dict]) -> None:
    """Write class_weights.json for the training step."""
    atomic_write_text(out / "class_weights.json", json.dumps({"classes": class_weights(table, rows)}, indent=1))
