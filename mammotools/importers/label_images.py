"""``import-masks``: existing label images -> a QuPath project with GeoJSON annotations.

So a team can review and correct an existing dataset in QuPath (or feed it to export-qupath).
Each label image is matched to its image by name: the same stem, or the stem plus a suffix
(``--suffix``, or one of :data:`KNOWN_SUFFIXES`, e.g. DDSM's ``_LI``). Each value of ``--values``
becomes one class's polygons: the pixel outlines traced exactly (rasterio's ``shapes``), then
simplified with ``--tolerance`` px (Douglas-Peucker, topology kept), holes kept. The bottom class
of the table (Background) is not written: export-qupath fills it anyway, and in QuPath it would
only hide the image. Written::

    PROJECT/project.qpproj                 QuPath 0.5 project, image URIs = the image files' paths
    PROJECT/classifiers/classes.json       the table's classes and colours
    PROJECT/annotations/<stem>.geojson     QuPath 0.4+ GeoJSON, one file per image

In QuPath, open the project and run ``qupath_scripts/import_annotations.groovy`` for the project
to load the annotations (docs/qupath-scripts.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mammotools.classes import ClassTable
from mammotools.defaults import DEFAULT_TOLERANCE
from mammotools.errors import InputError, MissingFileError
from mammotools.files import atomic_path, image_stem, remove_dead_siblings
from mammotools.qupath import (
    annotation_feature,
    check_new_project,
    file_stamps,
    project_entry,
    write_annotations,
    write_import_record,
    write_project,
)

# numpy, rasterio and shapely are imported where they are used, so the CLI starts without them.
if TYPE_CHECKING:
    import numpy as np
    from shapely.geometry.base import BaseGeometry

KNOWN_SUFFIXES = ("_LI", "_label", "_labels", "_mask", "_masks", "_seg", "_gt", "-label", "-mask")


@dataclass
class ImportSummary:
    out: Path
    images: list[str] = field(default_factory=list)
    annotations: dict[str, int] = field(default_factory=dict)  # class -> polygons written
    unmatched_labels: list[str] = field(default_factory=list)
    unknown_values: dict[str, list[int]] = field(default_factory=dict)  # label file -> values not in --values
    complete: bool = False  # --out held this very import already: nothing was written


def parse_values(text: str, table: ClassTable) -> dict[int, str]:
    """``"64=Background,128=Adipose"`` -> ``{64: "Background", 128: "Adipose"}`` (table names)."""
    out: dict[int, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        value, sep, name = part.partition("=")
        if not sep or not re.fullmatch(r"[0-9]{1,3}", value.strip()) or not 0 <= int(value) <= 255:
            raise InputError(f"--values {part!r}: write VALUE=Class with VALUE 0..255, e.g. 64=Background,255=Pectoral muscle")
        if int(value) in out:
            raise InputError(
                f"--values {part!r}: value {int(value)} is already given to {out[int(value)]!r}; give each value once"
            )
        found = table.find(name.strip())
        if found is None:
            raise InputError(
                f"--values {part!r}: {name.strip()!r} is not a class of the table ({', '.join(table.names)}); "
                "give your classes with --classes FILE (for DDSM tissue: --classes docs/classes/breast_tissue.json)"
            )
        out[int(value)] = found.name
    if not out:
        raise InputError("--values: give at least one VALUE=Class pair")
    return out


def match_labels(labels_dir: Path, images_dir: Path, suffix: str | None) -> list[tuple[Path, Path | None]]:
    """(label file, image file or None) pairs: a label's stem is an image's stem plus a suffix
    (``--suffix``, else one of KNOWN_SUFFIXES, else none). Label files are never taken for images,
    even in a shared folder; an image stem with two files, or an image with two labels, is an
    error naming them."""
    from mammotools.images import is_image_file

    suffixes = (suffix,) if suffix is not None else (*KNOWN_SUFFIXES, "")
    shared = labels_dir.resolve() == images_dir.resolve()
    files = sorted(p for p in labels_dir.iterdir() if p.is_file() and is_image_file(p))
    if shared:  # one folder: a label is a file named like another file plus a suffix
        stems = {image_stem(p.name) for p in files}
        labels = [
            p for p in files
            if any(s and image_stem(p.name).endswith(s) and image_stem(p.name)[: -len(s)] in stems for s in suffixes)
        ]  # fmt: skip
    else:
        labels = files
    label_set = {p.resolve() for p in labels}
    images: dict[str, Path] = {}
    for p in sorted(images_dir.iterdir()):
        if not p.is_file() or not is_image_file(p) or p.resolve() in label_set:
            continue
        stem = image_stem(p.name)
        if stem in images:
            raise InputError(f"{images_dir}: {images[stem].name} and {p.name} are both image {stem!r}; keep one")
        images[stem] = p
    pairs: list[tuple[Path, Path | None]] = []
    label_of: dict[Path, Path] = {}
    for label in labels:
        stem = image_stem(label.name)
        match = None
        for s in suffixes:
            if s == "" and shared:
                continue  # in one folder, a file without a suffix is an image, not its own label
            if stem.endswith(s) and stem[: len(stem) - len(s)] in images:
                match = images[stem[: len(stem) - len(s)]]
                break
        if shared and match is None and stem in images:
            continue  # an image of the shared folder, not a label
        if match is not None and match in label_of:
            raise InputError(f"{labels_dir}: {label_of[match].name} and {label.name} are both labels of {match.name}; keep one")
        if match is not None:
            label_of[match] = label
        pairs.append((label, match))
    return pairs


def read_label_image(path: Path) -> np.ndarray:
    """A label image's values: (H, W) uint8. Palette PNGs give their indices (as mammotools writes
    label maps), grayscale PNG/TIFF/PGM their values; anything else is refused."""
    import numpy as np

    from mammotools.images import open_pillow, read_image

    if path.suffix.lower() == ".png":
        with open_pillow(path, "label image") as im:
            if im.mode == "P":
                return np.asarray(im).astype(np.uint8, copy=False)
    label = read_image(path)
    if label.ndim != 2 or label.dtype != np.uint8:
        kind = f"{label.shape[2]}-channel colour" if label.ndim == 3 else f"{label.dtype}"
        raise InputError(
            f"{path}: a label image must hold one 8-bit value per pixel (grayscale or palette), not {kind}; "
            "convert it to 8-bit grayscale with the class values"
        )
    return label


def label_polygons(label: np.ndarray, value: int, tolerance: float) -> list[BaseGeometry]:
    """Shapely polygons (with holes) covering exactly the pixels equal to ``value``, simplified."""
    from rasterio.features import shapes
    from shapely.geometry import shape

    mask = label == value
    polygons = []
    for geom, _ in shapes(mask.view("uint8"), mask=mask, connectivity=4):
        poly = shape(geom)
        if tolerance > 0:
            poly = poly.simplify(tolerance, preserve_topology=True)
        if not poly.is_empty:
            polygons.append(poly)
    return polygons


def import_masks(
    labels_dir: str | Path,
    images_dir: str | Path,
    values: dict[int, str],
    out: str | Path,
    table: ClassTable,
    suffix: str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    on_item: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> ImportSummary:
    """Write a QuPath project (layout above) from label images; see the module docstring.

    A rerun into a project this import wrote from the same files and settings writes nothing
    (``summary.complete``); other inputs or settings are refused unless ``overwrite``."""
    labels_dir, images_dir, out = Path(labels_dir), Path(images_dir), Path(out)
    for d, opt in ((labels_dir, "LABELS"), (images_dir, "--images")):
        if not d.is_dir():
            raise MissingFileError(f"{d}: not a folder; give {opt} as a folder of image files")
    pairs = match_labels(labels_dir, images_dir, suffix)
    summary = ImportSummary(out)
    summary.unmatched_labels = [p.name for p, img in pairs if img is None]
    matched = [(p, img) for p, img in pairs if img is not None]
    if not matched:
        tried = f"the suffix {suffix!r}" if suffix is not None else f"the suffixes {', '.join(KNOWN_SUFFIXES)} and none"
        if any(image is not None for _, image in match_labels(images_dir, labels_dir, suffix)):
            raise InputError(
                f"{labels_dir}: no label file matches an image in {images_dir} by name, but the other way round they "
                f"match: the folders look swapped; give the label images first: `mammotools import-masks {images_dir} "
                f"--images {labels_dir} ...`"
            )
        raise InputError(
            f"{labels_dir}: no label file matches an image in {images_dir} by name (tried {tried}); "
            "pass --suffix with the text after the image's name"
        )
    recorded = {
        "command": "import-masks",
        "labels": str(labels_dir.resolve()),
        "images": str(images_dir.resolve()),
        "values": {str(k): v for k, v in sorted(values.items())},
        "classes": json.loads(table.to_json()),
        "suffix": suffix,
        "tolerance": tolerance,
        "files": file_stamps([p for pair in matched for p in pair]),
    }
    earlier = check_new_project(out, recorded, overwrite)
    if earlier is not None:
        summary.complete, summary.images = True, list(earlier.get("images") or [])
        summary.annotations = dict(earlier.get("annotations") or {})
        return summary
    remove_dead_siblings(out)  # what a killed import left beside it
    with atomic_path(out) as tmp:  # the whole project appears at once, or not at all
        _write_import(matched, values, tmp, table, tolerance, summary, on_item, out)
        write_import_record(tmp, recorded, summary.images, summary.annotations)
    return summary


def _write_import(
    pairs: list[tuple[Path, Path]],
    values: dict[int, str],
    out: Path,
    table: ClassTable,
    tolerance: float,
    summary: ImportSummary,
    on_item: Callable[[str], None] | None,
    final: Path,
) -> None:
    import numpy as np

    from mammotools.images import name_problem, read_image_size

    entries = []
    bottom = table.bottom.name
    for entry_id, (label_path, image_path) in enumerate(pairs, start=1):
        problem = name_problem(image_path)  # the project names it: a name QuPath can open, in UTF-8 text
        if problem:
            raise InputError(problem)
        label = read_label_image(label_path)
        height, width = label.shape
        if read_image_size(image_path) != (width, height):
            w, h = read_image_size(image_path)
            raise InputError(
                f"{label_path}: the label image is {width}x{height} but {image_path.name} is {w}x{h}; "
                "labels must have their image's size"
            )
        found = set(np.unique(label).tolist())
        if found - set(values):
            summary.unknown_values[label_path.name] = sorted(found - set(values))
        features: list[dict] = []
        for value, cls in sorted(values.items()):
            if cls == bottom or value not in found:
                continue
            for poly in label_polygons(label, value, tolerance):
                features.append(annotation_feature(poly, cls, table, f"{image_path.name}/{value}/{len(features)}"))
                summary.annotations[cls] = summary.annotations.get(cls, 0) + 1
        write_annotations(out, image_path.name, features)
        entries.append(project_entry(entry_id, image_path))
        summary.images.append(image_path.name)
        if on_item:
            on_item(image_path.name)
    write_project(out, entries, table, final)
