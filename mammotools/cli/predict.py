"""The ``predict`` command: a trained run pre-annotates images; the result opens in QuPath.

torch is imported inside the command."""

from __future__ import annotations

from pathlib import Path

import click

from mammotools.cli.options import (
    FOLDER,
    INPUT_FOLDER,
    Progress,
    alias,
    cluster_option,
    device_option,
    example,
    finite,
    one_writer,
    overlap_option,
    report_failures,
    report_warnings,
    stops_cleanly,
    user_errors,
    window_batch_option,
)
from mammotools.defaults import PREDICT_MIN_AREA, PREDICT_TOLERANCE


@click.command(
    "predict",
    short_help="Pre-annotate images with a trained run, as a QuPath project.",
    epilog=example(
        "mammotools predict runs/fcn8/ new-images/ --out predicted/",
        "mammotools predict runs/fcn8/ project/ --images images/ --out predicted/   # a QuPath project's images",
    ),
)
@click.argument("run", type=click.Path(path_type=Path))
@click.argument("source", type=click.Path(path_type=Path), metavar="IMAGES")
@click.option("--out", required=True, type=FOLDER, help="New folder: a QuPath project with the predicted annotations.")
@click.option("--images", "images_dir", type=INPUT_FOLDER, help="Where a project's images are (as export-qupath --images).")
@click.option("--probabilities", is_flag=True, help="Also write each class's probability as an 8-bit PNG.")
@click.option(
    "--tolerance", type=click.FloatRange(0, 100), default=PREDICT_TOLERANCE, callback=finite, help="Shape simplification, px."
)
@click.option(
    "--min-area",
    type=click.IntRange(min=1),
    default=PREDICT_MIN_AREA,
    help="Regions smaller than this (px) are dropped as specks.",
)
@device_option()
@window_batch_option(4, "4")
@alias("--batch", "batch_size", click.IntRange(min=1))
@overlap_option
@click.option(
    "--decode-threads",
    "workers",
    type=click.IntRange(min=1),
    default=1,
    help="Threads decoding the next images while the model runs (with --scheduler, the cluster's workers do it all).",
)
@alias("--workers", "workers", click.IntRange(min=1))
@click.option(
    "--dicom-voi/--no-dicom-voi", default=True, help="Apply a DICOM's VOI window, as export-qupath does (the run saw that)."
)
@cluster_option
@stops_cleanly("image")
@user_errors
@one_writer
def predict_cmd(
    run: Path,
    source: Path,
    out: Path,
    images_dir: Path | None,
    probabilities: bool,
    tolerance: float,
    min_area: int,
    device: str,
    batch_size: int,
    overlap: float | None,
    workers: int,
    dicom_voi: bool,
) -> None:
    """Predict every image of IMAGES (a folder of images, an image, or a QuPath project) with the
    final model of RUN, into --out: label maps, QuPath annotations marked as predictions (with
    their mean probability), and a QuPath project of the images (a project's own annotations kept).

    Open --out/project.qpproj in QuPath and run qupath_scripts/import_annotations.groovy to load the
    shapes; review them; export-qupath the reviewed project; train again (docs/predict.md).
    """
    from mammotools.predict import PredictSettings, predict_images

    settings = PredictSettings(
        device=device,
        batch_size=batch_size,
        overlap=overlap,
        probabilities=probabilities,
        tolerance=tolerance,
        min_area=min_area,
        dicom_voi=dicom_voi,
        images_dir=str(images_dir) if images_dir else None,
        workers=workers,
    )
    progress = Progress("Predicting", " image(s)")
    try:
        summary = predict_images(run, source, out, settings, progress.on_item, progress.on_plan)
    finally:
        progress.close()
    shapes = ", ".join(f"{n} {name}" for name, n in sorted(summary.shapes.items())) or "none"
    click.echo(
        f"{len(summary.done)} image(s) predicted, {len(summary.skipped)} skipped (complete), {len(summary.failed)} failed; "
        f"predicted shapes: {shapes}; {summary.kept} annotation(s) of the input kept; {summary.seconds:.1f} s"
    )
    click.echo(f"QuPath project: {out}/project.qpproj  (label maps: {out}/labels, per image: {out}/predictions.csv)")
    report_warnings(summary.warnings, out)  # the input project's annotations repaired or left out
    report_failures(sorted(summary.failed.items()))
