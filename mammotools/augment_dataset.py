"""``augment``: the offline variants of every training crop of a ``make-crops`` dataset (or of
every training image of an ``export-qupath`` dataset).

Output layout (the same as make-crops', so training reads either)::

    aug/settings.json, classes.json, split.csv   as in the crop dataset (+ the variants used)
    aug/train/images/<crop>_<variant>.png        each training crop's variants
    aug/train/images/<crop>.png                  the unaugmented original (unless --no-originals)
    aug/val/images/<crop>.png                    validation crops, copied unchanged (never augmented)
    aug/{train,val}/labels/...                   the matching label maps
    aug/manifest.csv                             one row per output file
    aug/class_weights.json                       recomputed on the augmented training set
    aug/records/<crop>.json                      one crop's outputs; written last

Only the training split is augmented, so no copy of a validation subject is ever trained on.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mammotools.classes import load_class_table
from mammotools.crops import class_weights, write_records_manifest
from mammotools.dataset import open_dataset
from mammotools.defaults import DEFAULT_KEEP_ORIGINALS
from mammotools.errors import InputError
from mammotools.files import atomic_path, atomic_write_text
from mammotools.records import files_present, folder_kind, forget, leftovers, prepare_split_folder, read_record
from mammotools.runner import Outcome
from mammotools.split import TRAIN, VAL, load_or_draw_split, subject_from_name

MANIFEST_FIELDS = ["file", "split", "crop", "source", "subject", "variant", "seed"]


@dataclass
class AugmentJob:
    """One crop (or whole image) and what to make of it."""

    crop: str
    split: str
    source: str
    subject: str
    bits: int  # 0: found from the image
    variants: tuple[str, ...]  # empty for validation crops: copied as they are
    keep_original: bool
    image_path: Path
    label_path: Path


@dataclass
class AugmentSummary(Outcome):
    """What augment did (crops done/skipped/failed, files written per split)."""

    files: dict[str, int] = field(default_factory=lambda: {TRAIN: 0, VAL: 0})
    seconds: float = 0.0


def parse_variants(text: str | None) -> tuple[str, ...]:
    """``"noise,flip_lr"`` -> the variant names, checked; None -> all ten."""
    from mammotools.augment import DEFAULT_VARIANTS, VARIANTS

    if text is None:
        return DEFAULT_VARIANTS
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise InputError(
            f"--variants: unknown variant(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(VARIANTS)}"
        )
    return names


def augment_crops(
    crops_path: str | Path,
    out: str | Path,
    variants: tuple[str, ...],
    seed: int = 0,
    keep_originals: bool = DEFAULT_KEEP_ORIGINALS,
    workers: int = 1,
    overwrite: bool = False,
    on_plan: Callable[[int, int], None] | None = None,
    on_item: Callable[[str], None] | None = None,
) -> AugmentSummary:
    """Write the augmented dataset (layout above) from a make-crops dataset, or from an
    export-qupath dataset (whole images; its subject split is drawn or read as make-crops does)."""
    from mammotools.augment_crop import augment_crop, augment_files, source_stamp
    from mammotools.runner import run_tracked

    start = time.perf_counter()
    crops, out = Path(crops_path), Path(out)
    rows, source_settings = _open_crops(crops) if (crops / "settings.json").is_file() else _open_images(crops)
    rows, missing = _existing(rows)
    table = load_class_table(crops / "classes.json")
    recorded = {
        "kind": "augmented",
        "crops": str(crops.resolve()),
        "variants": sorted(variants),
        "seed": seed,
        "keep_originals": keep_originals,
        "crop_settings": source_settings,
    }  # JSON types only: compared with the settings.json of an earlier run
    _prepare_out(out, crops, recorded, overwrite)
    jobs = [
        AugmentJob(
            r["crop"], r["split"], r["source"], r["subject"], int(r["bits"]),
            variants if r["split"] == TRAIN else (), keep_originals or r["split"] != TRAIN,
            Path(r["image_path"]), Path(r["label_path"]),
        )
        for r in rows
    ]  # fmt: skip
    summary = AugmentSummary(failed=missing)
    todo = []
    for job in jobs:
        record = read_record(out, job.crop)
        current = [job.split, source_stamp(job)]
        if (
            record is not None
            and not overwrite
            and [record.get("split"), record.get("stamp")] == current
            and files_present(out, record, augment_files)
        ):
            summary.skipped.append(job.crop)
        else:
            todo.append(job)  # new, remade by make-crops, or moved to the other side of the split
    if on_plan:
        on_plan(len(todo), len(summary.skipped))

    try:
        run_tracked(augment_crop, todo, (out, seed, table), workers, summary, lambda job: job.crop, on_item)
        for name in leftovers(out, {job.crop for job in jobs} | {name for name, _ in missing}):  # no longer in the source
            forget(out, name, augment_files)
    finally:  # also after Ctrl-C: the manifest lists what is complete
        outputs = write_records_manifest(out, "outputs", MANIFEST_FIELDS, table)
    for row in outputs:
        summary.files[row["split"]] += 1
    weights = class_weights(table, outputs)
    atomic_write_text(out / "class_weights.json", json.dumps({"classes": weights}, indent=1))
    summary.seconds = time.perf_counter() - start
    return summary


def _open_crops(crops: Path) -> tuple[list[dict[str, str]], dict]:
    needed = [crops / n for n in ("settings.json", "manifest.csv", "classes.json")]
    if not crops.is_dir() or not all(p.is_file() for p in needed):
        raise InputError(
            f"{crops}: not a crop dataset (needs settings.json, manifest.csv and classes.json); "
            "make one with `mammotools make-crops DATASET --size N --out CROPS`"
        )
    try:
        settings = json.loads((crops / "settings.json").read_text("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{crops / 'settings.json'}: damaged; rerun make-crops with --overwrite") from None
    if folder_kind(settings) != "crops":
        raise InputError(
            f"{crops}: an augmented dataset, not a crop dataset; augment the crops it was made from (make-crops output) instead"
        )
    with (crops / "manifest.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "crop" not in rows[0]:
        raise InputError(f"{crops / 'manifest.csv'}: holds no crop; run make-crops first")
    for r in rows:
        r["image_path"] = str(crops / r["split"] / "images" / f"{r['crop']}.png")
        r["label_path"] = str(crops / r["split"] / "labels" / f"{r['crop']}.png")
    return rows, settings


def _existing(rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], list[tuple[str, str]]]:
    """Rows whose image and label files exist, and (name, error) for those whose files are missing."""
    kept, missing = [], []
    for r in rows:
        lost = [p for p in (r["image_path"], r["label_path"]) if not Path(p).is_file()]
        if lost:
            missing.append((r["crop"], f"{lost[0]}: listed in the manifest but missing; rerun the command that made it"))
        else:
            kept.append(r)
    return kept, missing


def _open_images(path: Path) -> tuple[list[dict[str, str]], dict]:
    """Whole images of an export-qupath dataset, with the dataset's subject split."""
    try:
        dataset = open_dataset(path)
    except InputError:
        raise InputError(
            f"{path}: neither a crop dataset (make-crops) nor an image dataset (export-qupath); "
            "make one with `mammotools make-crops DATASET --size N --out CROPS`"
        ) from None
    subjects = {r["name"]: r.get("subject") or subject_from_name(r["name"]) for r in dataset.rows}
    splits = load_or_draw_split(dataset.path, subjects)
    rows = [
        {"crop": name, "split": split, "source": name, "subject": subject, "bits": "0",
         "image_path": str(dataset.image_path(name)), "label_path": str(dataset.label_path(name))}
        for name, (subject, split) in sorted(splits.items())
    ]  # fmt: skip
    return rows, {"dataset": str(path.resolve()), "whole_images": True}


def _prepare_out(out: Path, source: Path, recorded: dict, overwrite: bool) -> None:
    prepare_split_folder(out, "augmented", recorded, overwrite, source)
    for name in ("classes.json", "split.csv"):
        with atomic_path(out / name) as tmp:
            shutil.copyfile(source / name, tmp)
