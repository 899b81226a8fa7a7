"""Commands that bring existing annotations into QuPath: ``import-masks`` and ``import-mias``."""

from __future__ import annotations

from pathlib import Path

import click

from mammotools.cli.options import (
    FOLDER,
    INPUT_FOLDER,
    class_pairs,
    classes_option,
    example,
    finite,
    one_writer,
    overwrite_option,
    stops_saying,
    user_errors,
)
from mammotools.defaults import DEFAULT_TOLERANCE

SHOWN = 5  # names listed in a warning before "..."

VALUES_EXAMPLE = "--values 64=Background,128=Adipose,192=Fibroglandular,255=Pectoral --classes docs/classes/breast_tissue.json"


def _say_complete(out: Path, images: int) -> None:
    click.echo(f"{out}: complete, imported earlier from the same files with the same settings ({images} image(s)); nothing to do")
    click.echo(f"QuPath project: {out / 'project.qpproj'}  (annotations in {out / 'annotations'})")


def _listed(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (" ..." if len(names) > SHOWN else "")


@click.command(
    "import-masks",
    short_help="Label images -> a QuPath project for review.",
    epilog=f"\b\nExample (DDSM tissue maps; Adipose and the like are not among the default classes,\n"
    f"so their class table comes with --classes), one line:\n"
    f"  mammotools import-masks labels/ --images images/ --out project/ {VALUES_EXAMPLE}",
)
@click.argument("labels_dir", type=click.Path(path_type=Path), metavar="LABELS")
@click.option(
    "--images",
    "images_dir",
    required=True,
    type=INPUT_FOLDER,
    help="Folder of the images the label files belong to (matched by name).",
)
@click.option(
    "--values",
    required=True,
    metavar="V=CLASS,...",
    help="Label value to class name, comma-separated; each class must be in the class table (see --classes and "
    "the example below).",
)
@click.option("--out", required=True, type=FOLDER, help="QuPath project folder to create.")
@classes_option
@click.option(
    "--suffix",
    default=None,
    help="Suffix of the label files' names after the image stem (default: tried _LI, _label, _mask, ...).",
)
@click.option(
    "--tolerance",
    type=click.FloatRange(0, 100),
    default=DEFAULT_TOLERANCE,
    callback=finite,
    help="Polygon simplification in px (0 = exact pixel outlines).",
)
@overwrite_option
@user_errors
@stops_saying("no project was written; run the same command again.")
@one_writer
def import_masks_cmd(
    labels_dir: Path,
    images_dir: Path,
    values: str,
    out: Path,
    classes_file: Path | None,
    suffix: str | None,
    tolerance: float,
    overwrite: bool,
) -> None:
    """Turn existing label images (the folder LABELS) into a QuPath project with GeoJSON annotations.

    The project opens in QuPath for review (qupath_scripts/import_annotations.groovy loads the
    annotations) and feeds export-qupath like any project.
    """
    from mammotools.classes import load_class_table
    from mammotools.importers import import_masks, parse_values

    table = load_class_table(classes_file)
    mapping = parse_values(values, table)
    summary = import_masks(labels_dir, images_dir, mapping, out, table, suffix, tolerance, overwrite=overwrite)
    if summary.complete:
        _say_complete(summary.out, len(summary.images))
        return
    if summary.unmatched_labels:
        click.echo(
            f"warning: {len(summary.unmatched_labels)} label file(s) in {labels_dir} have no image of the same name in "
            f"{images_dir} ({_listed(summary.unmatched_labels)}); skipped",
            err=True,
        )
    by_value: dict[int, list[str]] = {}
    for name, extra in summary.unknown_values.items():
        for value in extra:
            by_value.setdefault(int(value), []).append(name)
    for value, names in sorted(by_value.items()):
        click.echo(
            f"warning: value {value} is not in --values; {len(names)} label file(s) of {labels_dir} hold it "
            f"({_listed(names)}); left unannotated",
            err=True,
        )
    counts = ", ".join(f"{n} {cls}" for cls, n in summary.annotations.items()) or "no annotations"
    click.echo(f"{len(summary.images)} image(s) imported: {counts}")
    click.echo(f"QuPath project: {out / 'project.qpproj'}  (annotations in {out / 'annotations'})")


@click.command(
    "import-mias",
    short_help="The mini-MIAS lesion list -> a QuPath project.",
    epilog=example("mammotools import-mias all-mias/Info.txt --images all-mias/ --out mias-project/"),
)
@click.argument("info", type=click.Path(path_type=Path), metavar="INFO_TXT")
@click.option("--images", "images_dir", required=True, type=INPUT_FOLDER, help="Folder of the mini-MIAS images (mdbNNN.pgm).")
@click.option("--out", required=True, type=FOLDER, help="QuPath project folder to create.")
@classes_option
@click.option(
    "--map",
    "class_map",
    multiple=True,
    callback=class_pairs,
    metavar="MIAS=REGION",
    help="Change the mapping, e.g. ASYM=ignore or CALC=Tumor (default: masses, distortions and "
    "asymmetries -> Tumor, CALC -> Calcifications).",
)
@overwrite_option
@user_errors
@stops_saying("no project was written; run the same command again.")
@one_writer
def import_mias_cmd(
    info: Path,
    images_dir: Path,
    out: Path,
    classes_file: Path | None,
    class_map: tuple[tuple[str, str], ...],
    overwrite: bool,
) -> None:
    """Turn the mini-MIAS lesion list INFO_TXT (its Info.txt) into a QuPath project with lesion annotations.

    Lesions become discs (origin bottom-left handled); lines without a centre become image notes.
    """
    from mammotools.classes import load_class_table
    from mammotools.importers import import_mias, parse_mapping

    table = load_class_table(classes_file)
    summary = import_mias(info, images_dir, out, table, parse_mapping(class_map, table), overwrite=overwrite)
    if summary.complete:
        _say_complete(summary.out, len(summary.images))
        return
    if summary.missing_images:
        click.echo(
            f"warning: {len(summary.missing_images)} image(s) listed in {info} are not in {images_dir}: "
            f"{_listed(summary.missing_images)}; left out",
            err=True,
        )
    for ref in summary.notes:
        click.echo(f"note: {ref}: a lesion without a centre is kept as an image note, not a shape", err=True)
    counts = ", ".join(f"{n} {cls}" for cls, n in summary.annotations.items()) or "no annotations"
    click.echo(f"{len(summary.images)} image(s) imported: {counts}")
    click.echo(f"QuPath project: {out / 'project.qpproj'}  (annotations in {out / 'annotations'})")
