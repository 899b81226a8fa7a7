"""Commands that make training datasets from an export: ``make-crops`` and ``augment``."""

from __future__ import annotations

from pathlib import Path

import click

from mammotools.augment import VARIANTS
from mammotools.cli.options import (
    FILE,
    FOLDER,
    Progress,
    cluster_option,
    example,
    finite,
    one_writer,
    report_failures,
    stops_cleanly,
    user_errors,
    workers_option,
)
from mammotools.defaults import (
    CROP_SIZES,
    DEFAULT_COMMON,
    DEFAULT_KEEP_ORIGINALS,
    DEFAULT_PER_IMAGE,
    DEFAULT_VAL_FRACTION,
    MAX_CROP_SIZE,
    MAX_PER_IMAGE,
    MIN_CROP_SIZE,
    TASKS,
)


@click.command(
    "make-crops",
    short_help="Class-balanced crops of a dataset, split by subject.",
    epilog=example("mammotools make-crops dataset/ --size 256 --out crops256/"),
)
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option(
    "--size",
    required=True,
    type=click.IntRange(MIN_CROP_SIZE, MAX_CROP_SIZE),
    help=f"Crop side in px (the paper: {', '.join(map(str, CROP_SIZES))}).",
)
@click.option("--out", required=True, type=FOLDER, help="Crop dataset folder to write.")
@click.option(
    "--per-image", type=click.IntRange(1, MAX_PER_IMAGE), default=DEFAULT_PER_IMAGE, help=f"Crops per image (1..{MAX_PER_IMAGE})."
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, help="Seed of the crop centres (each crop's own seed is recorded)."
)
@click.option(
    "--task",
    type=click.Choice(TASKS),
    default=TASKS[0],
    help="regions: the dataset's classes; tumor: two classes, tumor vs non-tumor.",
)
@click.option(
    "--common",
    multiple=True,
    default=DEFAULT_COMMON,
    metavar="CLASS",
    help="Classes never chosen as a crop's centre class (the bottom class, Background, always).",
)
@click.option(
    "--subjects",
    "subjects_csv",
    type=FILE,
    help="CSV with columns name,subject; default: the manifest's subject, else the name without view tokens.",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=DEFAULT_VAL_FRACTION,
    callback=finite,
    help="Share of subjects held out for validation (first run only).",
)
@click.option(
    "--split-seed",
    type=click.IntRange(min=0),
    default=0,
    help="Seed of the subject split (first run only; then split.csv rules).",
)
@workers_option
@cluster_option
@click.option("--overwrite", is_flag=True, help="Remake crops made earlier with other settings.")
@stops_cleanly("image")
@user_errors
@one_writer
def make_crops_cmd(
    dataset: Path,
    size: int,
    out: Path,
    per_image: int,
    seed: int,
    task: str,
    common: tuple[str, ...],
    subjects_csv: Path | None,
    val_fraction: float,
    split_seed: int,
    workers: int,
    overwrite: bool,
) -> None:
    """Cut class-balanced crops from an export-qupath DATASET (subject-level train/val split).

    Each crop is centred on a pixel of a label chosen uniformly among the image's labels other
    than the common ones (mammary gland, background), as in the paper.
    """
    from mammotools.crops import CropSettings, make_crops

    settings = CropSettings(size=size, per_image=per_image, seed=seed, task=task, common=tuple(common))
    progress = Progress("Cropping images:")
    try:
        summary = make_crops(
            dataset, out, settings, workers, overwrite, subjects_csv, val_fraction, split_seed, progress.on_plan, progress.on_item
        )
    finally:
        progress.close()
    click.echo(
        f"{len(summary.done)} image(s) cropped, {len(summary.skipped)} skipped (complete), {len(summary.failed)} failed; "
        f"{summary.crops['train']} training and {summary.crops['val']} validation crops of {size} px; "
        f"{summary.seconds:.1f} s"
    )
    for note in summary.notes:
        click.echo(f"note: {note}", err=True)
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"Crops: {out}  (manifest: {out / 'manifest.csv'}, class weights: {out / 'class_weights.json'})")
    report_failures(summary.failed)


def _augment_unit(values: dict) -> str:
    from mammotools.augment import source_unit

    try:
        return source_unit(values["crops"])
    except Exception:  # only the word of the Ctrl-C line
        return "item"


@click.command(
    "augment",
    short_help="The ten offline variants of every training crop.",
    epilog=example(
        "mammotools augment crops256/ --out crops256-aug/",
        "mammotools augment crops256/ --variants flip_lr,flip_ud --out crops256-flips/",
    ),
)
@click.argument("crops", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=FOLDER, help="Folder to write.")
@click.option(
    "--variants",
    default=None,
    metavar="NAMES",
    help=f"Comma-separated variants; default: all {len(VARIANTS)} ({', '.join(VARIANTS)}).",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, help="Seed of the random variants (noise); each output's seed is recorded."
)
@click.option(
    "--originals/--no-originals", default=DEFAULT_KEEP_ORIGINALS, help="Keep the unaugmented training crops beside the variants."
)
@workers_option
@cluster_option
@click.option("--overwrite", is_flag=True, help="Remake outputs made earlier with other settings.")
@stops_cleanly(_augment_unit)
@user_errors
@one_writer
def augment_cmd(crops: Path, out: Path, variants: str | None, seed: int, originals: bool, workers: int, overwrite: bool) -> None:
    """Write the offline augmentation variants of each training crop of CROPS (a make-crops folder).

    CROPS may also be an export-qupath dataset: its whole training images are augmented. Validation
    crops (or images) are copied unchanged, never augmented.
    """
    from mammotools.augment import augment_dataset, parse_variants, source_unit

    names = parse_variants(variants)
    unit = source_unit(crops)
    progress = Progress(f"Augmenting {unit}s:")
    try:
        summary = augment_dataset(crops, out, names, seed, originals, workers, overwrite, progress.on_plan, progress.on_item)
    finally:
        progress.close()
    click.echo(
        f"{len(summary.done)} {unit}(s) done, {len(summary.skipped)} skipped (complete), {len(summary.failed)} failed; "
        f"{summary.files['train']} training and {summary.files['val']} validation files "
        f"({len(names)} variant(s){', originals kept' if originals else ''}); {summary.seconds:.1f} s"
    )
    click.echo(f"Augmented: {out}  (manifest: {out / 'manifest.csv'})")
    report_failures(summary.failed)
