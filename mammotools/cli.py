"""The ``mammotools`` command line. Each command parses, calls one library function, reports.

Heavy packages (numpy, OpenCV, rasterio, torch) are imported inside the commands, so
``mammotools --help`` is instant and works when an optional part is missing.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from pathlib import Path

import click

from mammotools import __version__
from mammotools.defaults import (
    DEFAULT_KEEP_ORIGINALS,
    DEFAULT_PER_IMAGE,
    DEFAULT_POINT_RADIUS,
    DEFAULT_SIGMA,
    DEFAULT_TOLERANCE,
    DEFAULT_VAL_FRACTION,
    MAX_POINT_RADIUS,
    MAX_SIGMA,
)
from mammotools.errors import MammoError

MAX_WARNINGS_SHOWN = 20


def user_errors(fn):  # type: ignore[no-untyped-def]
    """Turn the library's user-facing errors into one clear line and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return fn(*args, **kwargs)
        except MammoError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value}: give a finite number")
    return value


def _class_pair(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for v in values:
        src, sep, dst = v.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise click.BadParameter(f"{v!r}: write it as 'FROM=TO', e.g. 'Mass=Tumor'")
        pairs.append((src.strip(), dst.strip()))
    return tuple(pairs)


reader_option = click.option(
    "--reader",
    type=click.Choice(["auto", "qpdata", "geojson", "paquo"]),
    default="auto",
    help="auto: a project's data.qpdata read directly, else its GeoJSON exports; paquo: through a local QuPath.",
)

classes_option = click.option(
    "--classes",
    "classes_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Class table JSON (list of {name, label, color, rank, smooth, aliases}); default: the paper's 14 regions.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="mammotools")
def main() -> None:
    """From QuPath annotations of mammograms to segmentation datasets and benchmarks."""


@main.command("export-qupath")
@click.argument("project", type=click.Path(path_type=Path))
@click.option(
    "--images",
    "images_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding the image files (searched by name); default: where the project says they are.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Dataset folder to write.")
@classes_option
@click.option(
    "--sigma",
    type=click.FloatRange(min=0, max=MAX_SIGMA),
    default=DEFAULT_SIGMA,
    callback=_finite,
    help="Gaussian sigma (px) for smoothed regions; 0 turns smoothing off.",
)
@click.option(
    "--point-radius",
    type=click.FloatRange(min=0.5, max=MAX_POINT_RADIUS),
    default=DEFAULT_POINT_RADIUS,
    callback=_finite,
    help="Radius (px) of the disc a point annotation becomes.",
)
@click.option(
    "--map",
    "class_map",
    multiple=True,
    callback=_class_pair,
    metavar="CLASS=KNOWN",
    help="Treat annotations of CLASS as the table's class KNOWN (repeatable).",
)
@click.option("--ignore", multiple=True, metavar="CLASS", help="Leave annotations of CLASS out (repeatable).")
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    help="Worker processes; 0 = one per CPU core.  [default: 0]",
    show_default=False,
)
@click.option("--overwrite", is_flag=True, help="Replace outputs made earlier from other inputs or settings.")
@reader_option
@click.option(
    "--dicom-voi/--no-dicom-voi",
    default=True,
    help="Apply a DICOM's VOI window (values outside it are clipped; recorded as a warning).",
)
@user_errors
def export_qupath(
    project, images_dir, out, classes_file, sigma, point_radius, class_map, ignore, workers, overwrite, reader, dicom_voi
):  # type: ignore[no-untyped-def]
    """Export QuPath annotations (PROJECT folder, GeoJSON export folder or file) to a dataset.

    Writes OUT/images, OUT/labels (merged label maps), OUT/masks (a binary map per region),
    OUT/classes.json and OUT/manifest.csv. A rerun skips images whose outputs are complete.
    """
    from mammotools.classes import load_class_table
    from mammotools.export import ExportSettings, export_dataset

    table = load_class_table(classes_file)
    settings = ExportSettings(
        sigma=sigma,
        point_radius=point_radius,
        class_map=class_map,
        ignore=tuple(ignore),
        dicom_voi=dicom_voi,
    )
    workers = workers or os.cpu_count() or 1
    bar = None

    def on_plan(todo: int, done: int) -> None:
        nonlocal bar
        if done:
            click.echo(f"{done} image(s) already exported, skipped", err=True)
        bar = click.progressbar(length=todo, label=f"Exporting {todo} image(s)", file=sys.stderr, show_pos=True, show_eta=True)
        bar.__enter__()

    def on_image(name: str) -> None:
        if bar is not None:
            bar.update(1)

    try:
        summary = export_dataset(project, out, images_dir, table, settings, workers, overwrite, on_plan, on_image, reader)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    for w in summary.warnings[:MAX_WARNINGS_SHOWN]:
        click.echo(f"warning: {w}", err=True)
    if len(summary.warnings) > MAX_WARNINGS_SHOWN:
        click.echo(f"... and {len(summary.warnings) - MAX_WARNINGS_SHOWN} more warnings (see {out}/records/*.json)", err=True)
    for name, message in summary.failed:
        click.echo(f"failed: {name}: {message}", err=True)
    t = summary.timings
    click.echo(
        f"{len(summary.exported)} exported, {len(summary.skipped)} skipped (complete), "
        f"{len(summary.failed)} failed, {len(summary.not_annotated)} without annotations; "
        f"{len(summary.warnings)} warning(s); {summary.seconds:.1f} s"
        + (
            f" (decode {t['decode']:.1f} s, masks {t['masks']:.1f} s, writing {t['encode_image'] + t['encode_maps']:.1f} s)"
            if t
            else ""
        )
    )
    click.echo(f"Dataset: {out}  (manifest: {out / 'manifest.csv'})")
    if summary.failed:
        raise SystemExit(1)


def _progress(label: str):  # type: ignore[no-untyped-def]
    """(on_plan, on_item, close) callbacks drawing a progress bar on stderr."""
    state: dict = {}

    def on_plan(todo: int, done: int) -> None:
        if done:
            click.echo(f"{done} already complete, skipped", err=True)
        bar = click.progressbar(length=todo, label=f"{label} {todo}", file=sys.stderr, show_pos=True, show_eta=True)
        state["bar"] = bar.__enter__()

    def on_item(name: str) -> None:
        if "bar" in state:
            state["bar"].update(1)

    def close() -> None:
        if "bar" in state:
            state.pop("bar").__exit__(None, None, None)

    return on_plan, on_item, close


def _report_failures(failed: list[tuple[str, str]]) -> None:
    for name, message in failed:
        click.echo(f"failed: {name}: {message}", err=True)
    if failed:
        raise SystemExit(1)


workers_option = click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=0,
    help="Worker processes; 0 = one per CPU core.  [default: 0]",
    show_default=False,
)


@main.command("make-crops")
@click.argument("dataset", type=click.Path(path_type=Path))
@click.option("--size", required=True, type=int, help="Crop side in px (the paper: 256, 700, 900, 1500).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Crop dataset folder to write.")
@click.option("--per-image", type=click.IntRange(min=1), default=DEFAULT_PER_IMAGE, help="Crops per image.")
@click.option("--seed", type=int, default=0, help="Seed of the crop centres (each crop's own seed is recorded).")
@click.option(
    "--task",
    type=click.Choice(["regions", "tumor"]),
    default="regions",
    help="regions: the dataset's classes; tumor: two classes, tumor vs non-tumor.",
)
@click.option(
    "--common",
    multiple=True,
    default=("Mammary gland",),
    metavar="CLASS",
    help="Classes never chosen as a crop's centre class (the bottom class, Background, always).",
)
@click.option(
    "--subjects",
    "subjects_csv",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV with columns name,subject; default: the manifest's subject, else the name without view tokens.",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0, 1, max_open=True),
    default=DEFAULT_VAL_FRACTION,
    help="Share of subjects held out for validation (first run only).",
)
@click.option("--split-seed", type=int, default=0, help="Seed of the subject split (first run only; then split.csv rules).")
@workers_option
@click.option("--overwrite", is_flag=True, help="Remake crops made earlier with other settings.")
@user_errors
def make_crops_cmd(dataset, size, out, per_image, seed, task, common, subjects_csv, val_fraction, split_seed, workers, overwrite):  # type: ignore[no-untyped-def]
    """Cut class-balanced crops from an export-qupath DATASET (subject-level train/val split).

    Each crop is centred on a pixel of a label chosen uniformly among the image's labels other
    than the common ones (mammary gland, background), as in the paper.
    """
    from mammotools.crops import CropSettings, make_crops

    settings = CropSettings(size=size, per_image=per_image, seed=seed, task=task, common=tuple(common))
    on_plan, on_item, close = _progress("Cropping images:")
    try:
        summary = make_crops(
            dataset,
            out,
            settings,
            workers or os.cpu_count() or 1,
            overwrite,
            subjects_csv,
            val_fraction,
            split_seed,
            on_plan,
            on_item,
        )
    finally:
        close()
    click.echo(
        f"{len(summary.done)} image(s) cropped, {len(summary.skipped)} skipped (complete), {len(summary.failed)} failed; "
        f"{summary.crops['train']} training and {summary.crops['val']} validation crops of {size} px; "
        f"{summary.seconds:.1f} s"
    )
    for note in summary.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"Crops: {out}  (manifest: {out / 'manifest.csv'}, class weights: {out / 'class_weights.json'})")
    _report_failures(summary.failed)


@main.command("augment")
@click.argument("crops", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write.")
@click.option(
    "--variants",
    default=None,
    metavar="NAMES",
    help="Comma-separated variants; default: all ten (noise, sharpen, smooth, clahe, contrast_up, "
    "contrast_down, flip_lr, flip_ud, rotate_cw, rotate_ccw).",
)
@click.option("--seed", type=int, default=0, help="Seed of the random variants (noise); each output's seed is recorded.")
@click.option(
    "--originals/--no-originals", default=DEFAULT_KEEP_ORIGINALS, help="Keep the unaugmented training crops beside the variants."
)
@workers_option
@click.option("--overwrite", is_flag=True, help="Remake outputs made earlier with other settings.")
@user_errors
def augment_cmd(crops, out, variants, seed, originals, workers, overwrite):  # type: ignore[no-untyped-def]
    """Write the offline augmentation variants of each training crop of CROPS (a make-crops folder).

    CROPS may also be an export-qupath dataset: its whole training images are augmented. Validation
    crops (or images) are copied unchanged, never augmented.
    """
    from mammotools.augment_dataset import augment_crops, parse_variants

    names = parse_variants(variants)
    on_plan, on_item, close = _progress("Augmenting crops:")
    try:
        summary = augment_crops(crops, out, names, seed, originals, workers or os.cpu_count() or 1, overwrite, on_plan, on_item)
    finally:
        close()
    click.echo(
        f"{len(summary.done)} crop(s) done, {len(summary.skipped)} skipped (complete), {len(summary.failed)} failed; "
        f"{summary.files['train']} training and {summary.files['val']} validation files "
        f"({len(names)} variant(s){', originals kept' if originals else ''}); {summary.seconds:.1f} s"
    )
    click.echo(f"Augmented: {out}  (manifest: {out / 'manifest.csv'})")
    _report_failures(summary.failed)


@main.command("import-masks")
@click.argument("labels_dir", type=click.Path(path_type=Path))
@click.option(
    "--images",
    "images_dir",
    required=True,
    type=click.Path(path_type=Path),
    help="Folder of the images the label files belong to (matched by name).",
)
@click.option(
    "--values",
    required=True,
    metavar="V=CLASS,...",
    help="Label value to class, e.g. 64=Background,128=Adipose,192=Fibroglandular,255=Pectoral.",
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="QuPath project folder to create.")
@classes_option
@click.option(
    "--suffix",
    default=None,
    help="Suffix of the label files' names after the image stem (default: tried _LI, _label, _mask, ...).",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(min=0),
    default=DEFAULT_TOLERANCE,
    help="Polygon simplification in px (0 = exact pixel outlines).",
)
@user_errors
def import_masks_cmd(labels_dir, images_dir, values, out, classes_file, suffix, tolerance):  # type: ignore[no-untyped-def]
    """Turn existing label images in LABELS_DIR into a QuPath project with GeoJSON annotations.

    The project opens in QuPath for review (qupath_scripts/import_annotations.groovy loads the
    annotations) and feeds export-qupath like any project.
    """
    from mammotools.classes import load_class_table
    from mammotools.import_masks import import_masks, parse_values

    table = load_class_table(classes_file)
    summary = import_masks(labels_dir, images_dir, parse_values(values, table), out, table, suffix, tolerance)
    for name in summary.unmatched_labels:
        click.echo(f"warning: {labels_dir / name}: no image of the same name in {images_dir}; skipped", err=True)
    for name, extra in summary.unknown_values.items():
        click.echo(f"warning: {labels_dir / name}: values {extra} are not in --values; left unannotated", err=True)
    counts = ", ".join(f"{n} {cls}" for cls, n in summary.annotations.items()) or "no annotations"
    click.echo(f"{len(summary.images)} image(s) imported: {counts}")
    click.echo(f"QuPath project: {out / 'project.qpproj'}  (annotations in {out / 'annotations'})")


@main.command("import-mias")
@click.argument("info", type=click.Path(path_type=Path))
@click.option(
    "--images", "images_dir", required=True, type=click.Path(path_type=Path), help="Folder of the mini-MIAS images (mdbNNN.pgm)."
)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="QuPath project folder to create.")
@classes_option
@click.option(
    "--map",
    "class_map",
    multiple=True,
    callback=_class_pair,
    metavar="MIAS=REGION",
    help="Change the mapping, e.g. ASYM=ignore or CALC=Tumor (default: masses, distortions and "
    "asymmetries -> Tumor, CALC -> Calcifications).",
)
@user_errors
def import_mias_cmd(info, images_dir, out, classes_file, class_map):  # type: ignore[no-untyped-def]
    """Turn the mini-MIAS INFO file (Info.txt) into a QuPath project with lesion annotations.

    Lesions become discs (origin bottom-left handled); lines without a centre become image notes.
    """
    from mammotools.classes import load_class_table
    from mammotools.mias import import_mias, parse_mapping

    table = load_class_table(classes_file)
    summary = import_mias(info, images_dir, out, table, parse_mapping(class_map, table))
    if summary.missing_images:
        listed = ", ".join(summary.missing_images[:5]) + (" ..." if len(summary.missing_images) > 5 else "")
        click.echo(
            f"warning: {len(summary.missing_images)} image(s) listed in {info} are not in {images_dir}: {listed}; left out",
            err=True,
        )
    for ref in summary.notes:
        click.echo(f"note: {ref}: a lesion without a centre is kept as an image note, not a shape", err=True)
    counts = ", ".join(f"{n} {cls}" for cls, n in summary.annotations.items()) or "no annotations"
    click.echo(f"{len(summary.images)} image(s) imported: {counts}")
    click.echo(f"QuPath project: {out / 'project.qpproj'}  (annotations in {out / 'annotations'})")


@main.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@classes_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@reader_option
@user_errors
def inspect_cmd(path, classes_file, as_json, reader):  # type: ignore[no-untyped-def]
    """Report what PATH holds: a QuPath project, a folder of GeoJSON exports, or one export.

    Images with sizes, annotation counts per class, classes unknown to the class table, and
    problems (invalid or empty geometries), without needing the image files.
    """
    from mammotools.classes import load_class_table
    from mammotools.inspection import format_report, inspect_source

    report = inspect_source(path, load_class_table(classes_file), reader)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    if any(image.get("unreadable") for image in report["images"]):
        raise SystemExit(1)  # an annotation file could not be read at all: the audit failed


if __name__ == "__main__":
    main()
