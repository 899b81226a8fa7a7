"""Commands that read QuPath annotations: ``inspect`` and ``export-qupath``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from mammotools.cli.options import (
    FOLDER,
    INPUT_FOLDER,
    Progress,
    class_pairs,
    classes_option,
    cluster_option,
    example,
    finite,
    one_writer,
    overwrite_option,
    reader_option,
    report_failures,
    report_warnings,
    stops_cleanly,
    user_errors,
    workers_option,
)
from mammotools.defaults import DEFAULT_POINT_RADIUS, DEFAULT_SIGMA, MAX_POINT_RADIUS, MAX_SIGMA


@click.command(
    "inspect",
    short_help="Audit a QuPath project or GeoJSON export before exporting.",
    epilog=example("mammotools inspect project/", "mammotools inspect project/ --json > audit.json"),
)
@click.argument("path", type=click.Path(path_type=Path), metavar="PROJECT")
@classes_option
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@reader_option
@user_errors
def inspect_cmd(path: Path, classes_file: Path | None, as_json: bool, reader: str) -> None:
    """Report what PROJECT holds: a QuPath project folder, a folder of GeoJSON exports, or one export.

    Images with sizes, annotation counts per class, classes unknown to the class table, and
    problems (invalid or empty geometries), without needing the image files.
    """
    from mammotools.classes import load_class_table
    from mammotools.qupath import format_report, inspect_source

    report = inspect_source(path, load_class_table(classes_file), reader)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    if report["error"] or any(image.get("unreadable") for image in report["images"]):
        raise SystemExit(1)  # no annotations to read, or a file that could not be read at all: the audit failed


@click.command(
    "export-qupath",
    short_help="QuPath annotations -> region maps and label maps.",
    epilog=example("mammotools export-qupath project/ --images images/ --out dataset/"),
)
@click.argument("project", type=click.Path(path_type=Path))
@click.option(
    "--images",
    "images_dir",
    type=INPUT_FOLDER,
    help="Folder holding the image files (searched by name); default: where the project says they are.",
)
@click.option("--out", required=True, type=FOLDER, help="Dataset folder to write.")
@classes_option
@click.option(
    "--sigma",
    type=click.FloatRange(min=0, max=MAX_SIGMA),
    default=DEFAULT_SIGMA,
    callback=finite,
    help="Gaussian sigma (px) for smoothed regions; 0 turns smoothing off.",
)
@click.option(
    "--point-radius",
    type=click.FloatRange(min=0.5, max=MAX_POINT_RADIUS),
    default=DEFAULT_POINT_RADIUS,
    callback=finite,
    help="Radius (px) of the disc a point annotation becomes.",
)
@click.option(
    "--map",
    "class_map",
    multiple=True,
    callback=class_pairs,
    metavar="CLASS=KNOWN",
    help="Treat annotations of CLASS as the table's class KNOWN (repeatable).",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="CLASS",
    help="Leave annotations of CLASS out (repeatable; a class of the table or of the annotations).",
)
@workers_option
@cluster_option
@overwrite_option
@reader_option
@click.option(
    "--dicom-voi/--no-dicom-voi",
    default=True,
    help="Apply a DICOM's VOI window (values outside it are clipped; recorded as a warning).",
)
@stops_cleanly("image")
@user_errors
@one_writer
def export_qupath(
    project: Path,
    images_dir: Path | None,
    out: Path,
    classes_file: Path | None,
    sigma: float,
    point_radius: float,
    class_map: tuple[tuple[str, str], ...],
    ignore: tuple[str, ...],
    workers: int,
    overwrite: bool,
    reader: str,
    dicom_voi: bool,
) -> None:
    """Export QuPath annotations (PROJECT folder, GeoJSON export folder or file) to a dataset.

    Writes OUT/images, OUT/labels (merged label maps), OUT/masks (a binary map per region),
    OUT/classes.json and OUT/manifest.csv. A rerun skips images whose outputs are complete.
    """
    from mammotools.classes import load_class_table
    from mammotools.export import ExportSettings, export_dataset

    table = load_class_table(classes_file)
    settings = ExportSettings(sigma=sigma, point_radius=point_radius, class_map=class_map, ignore=ignore, dicom_voi=dicom_voi)
    progress = Progress("Exporting", " image(s)", "image(s) already exported, skipped")
    try:
        summary = export_dataset(
            project, out, images_dir, table, settings, workers, overwrite, progress.on_plan, progress.on_item, reader
        )
    finally:
        progress.close()
    report_warnings(summary.warnings, out)
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
    report_failures(summary.failed)
