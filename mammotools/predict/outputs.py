"""What ``predict`` writes per image and for the whole run, and how a rerun tells a complete
image from one whose outputs were deleted, cut short or damaged since.

An image is complete when its record (``records/<name>.json``, written last) has the shape
below and every file it stands for is there and whole: the label map and probability PNGs end
with their IEND chunk (:func:`mammotools.records.pngs_complete`) and are of the recorded size
with every chunk's CRC intact (:func:`png_fits`); the GeoJSON parses as a FeatureCollection of
the recorded number of features. Anything else is redone: its record goes first, then its files
(:func:`mammotools.records.forget`), as export-qupath, make-crops and augment do.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mammotools.annotations import prediction_state, repair_geometry
from mammotools.classes import ClassTable, RegionClass
from mammotools.files import atomic_write_text
from mammotools.qupath import project_entry, read_annotations, write_project
from mammotools.records import forget, pngs_complete, read_record


@dataclass
class PredictSummary:
    """What a predict run did: images done, skipped (complete earlier) and failed, shapes per class."""

    out: Path
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # complete from an earlier run
    failed: dict[str, str] = field(default_factory=dict)
    shapes: dict[str, int] = field(default_factory=dict)
    kept: int = 0  # annotations of the input project carried over
    warnings: list[str] = field(default_factory=list)  # input annotations repaired or left out, by image
    seconds: float = 0.0


if TYPE_CHECKING:
    from mammotools.predict.inputs import PredictInput

# A record of another shape (edited, damaged, or from before kept_classes was recorded) counts as
# missing: its image is predicted again.
PREDICT_RECORD = {"name": str, "image": str, "width": int, "height": int, "pixels": {"*": int}, "shapes": {"*": int},
                  "kept": int, "kept_classes": {"*": [int]}, "notes": [str], "seconds": float}  # fmt: skip
DEFAULT_KEPT_COLOR = (200, 0, 0)


def prediction_files(out: Path, record: dict) -> list[Path]:
    """The files and folders one image's record stands for (its name is the record's)."""
    name = record["name"]
    return [out / "labels" / f"{name}.png", out / "annotations" / f"{name}.geojson", out / "probabilities" / name]


def complete_record(out: Path, name: str, probabilities: list[str] | None) -> dict | None:
    """The record of ``name`` if the image is complete in ``out`` (see the module doc), else None.

    probabilities: the class file stems (``RegionClass.slug``) whose maps must be there, or None."""
    record = read_record(out, name, PREDICT_RECORD)
    if record is None or record["name"] != name:
        return None
    pngs = [out / "labels" / f"{name}.png"]
    if probabilities is not None:
        pngs += [out / "probabilities" / name / f"{slug}.png" for slug in probabilities]
    if not pngs_complete(pngs) or not all(png_fits(p, record["width"], record["height"]) for p in pngs):
        return None
    features = sum(record["shapes"].values()) + record["kept"]
    if not geojson_complete(out / "annotations" / f"{name}.geojson", features):
        return None
    return record


def png_fits(path: Path, width: int, height: int) -> bool:
    """Whether the PNG at ``path`` is ``width`` x ``height`` and every chunk's CRC holds (a map of
    another image copied over it, or bytes overwritten inside, is not; nothing is decompressed)."""
    import struct
    import zlib

    try:
        data = path.read_bytes()
    except OSError:
        return False
    at, size = 8, None
    while at + 12 <= len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        if len(body) != length or data[at + 8 + length : at + 12 + length] != struct.pack(">I", zlib.crc32(kind + body)):
            return False
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        if kind == b"IEND":
            return size == (width, height)
        at += 12 + length
    return False


def geojson_complete(path: Path, features: int) -> bool:
    """Whether ``path`` is a whole FeatureCollection of ``features`` features (a file cut short,
    emptied or edited into something else is not)."""
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    if not isinstance(value, dict) or not isinstance(value.get("features"), list):
        return False
    found = value["features"]
    return len(found) == features and all(isinstance(f, dict) and isinstance(f.get("geometry"), dict) for f in found)


def forget_prediction(out: Path, name: str) -> None:
    """Remove an image's record, then its outputs, before it is predicted again."""
    forget(out, name, prediction_files, fallback={"name": name})


def kept_features(item: PredictInput) -> tuple[list[dict[str, Any]], dict[str, list[int]], list[str]]:
    """The input project's own annotations of this image, as GeoJSON features (classes, colours,
    names and ids kept), but for earlier predictions left untouched, which the new ones replace;
    the classes they name (name -> RGB, for the output's classes.json); and one note per
    annotation repaired (self-intersecting: shapely's make_valid, as export-qupath repairs) or
    left out (unreadable or empty)."""
    from shapely.geometry import mapping

    if item.entry is None:
        return [], {}, []
    kept: list[dict[str, Any]] = []
    classes: dict[str, list[int]] = {}
    notes: list[str] = []
    for ann in read_annotations(item.entry):
        if not ann.is_annotation:
            continue
        if ann.malformed or ann.geometry.is_empty:
            reason = "; ".join(ann.problems) or "empty geometry"
            notes.append(f"{ann.describe()} of the input project left out ({reason})")
            continue
        if prediction_state(ann.name, ann.geometry, ann.class_name) == "untouched":
            continue  # an earlier prediction nobody corrected: this prediction replaces it
        if not ann.geometry.is_valid:
            repair_geometry(ann)
            notes.append(f"{ann.describe()} of the input project: {ann.problems[-1]}")
        properties: dict[str, Any] = {"objectType": "annotation"}
        if ann.class_name:
            color = list(ann.color or DEFAULT_KEPT_COLOR)
            properties["classification"] = {"name": ann.class_name, "color": color}
            classes.setdefault(ann.class_name, color)
        if ann.name:
            properties["name"] = ann.name
        if ann.locked:
            properties["isLocked"] = True
        feature: dict[str, Any] = {"type": "Feature", "geometry": mapping(ann.geometry), "properties": properties}
        if ann.object_id:
            feature["id"] = ann.object_id
        kept.append(feature)
    return kept, classes, notes


def write_prediction_project(out: Path, images: list[PredictInput], classes: list[RegionClass]) -> None:
    """project.qpproj and classes.json: the images predicted so far (now or by an earlier run), and
    every class their annotations name: the run's, then those of the input project's kept ones."""
    entries: list[dict[str, Any]] = []
    extra: dict[str, list[int]] = {}
    for item in images:
        record = read_record(out, item.name, PREDICT_RECORD) if item.path is not None else None
        if record is None:
            continue
        entry = project_entry(len(entries) + 1, item.path, item.entry.metadata if item.entry else None)  # type: ignore[arg-type]
        if item.entry is not None:
            entry["imageName"] = item.entry.name  # the name QuPath showed; annotations/<its stem>.geojson
        entries.append(entry)
        for name, color in record["kept_classes"].items():
            extra.setdefault(name, color)
    write_project(out, entries, ClassTable(classes, source="run"), extra=_extra_classes(extra, classes))


def _extra_classes(found: dict[str, list[int]], classes: Iterable[RegionClass]) -> list[tuple[str, tuple[int, int, int]]]:
    known = {c.name for c in classes}
    return [(name, (int(c[0]), int(c[1]), int(c[2]))) for name, c in sorted(found.items()) if name not in known and len(c) == 3]


def finish(out: Path, images: list[PredictInput], classes: list[RegionClass], summary: PredictSummary) -> None:
    """predictions.csv from the records, the records' notes as warnings, then the project
    (project.qpproj last)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "status", "width", "height", "seconds", "kept", *[f"pixels_{c.slug}" for c in classes],
                     *[f"shapes_{c.slug}" for c in classes], "problem"])  # fmt: skip
    for item in images:
        r = read_record(out, item.name, PREDICT_RECORD) if item.name not in summary.failed else None
        if r is None:
            writer.writerow([item.name, "failed", "", "", "", "", *[""] * (2 * len(classes)), summary.failed.get(item.name, "")])
            continue
        for name, n in r["shapes"].items():
            summary.shapes[name] = summary.shapes.get(name, 0) + n
        summary.kept += r["kept"]
        if item.name in summary.done:  # an earlier run's were shown by that run
            summary.warnings.extend(f"{item.name}: {note}" for note in r["notes"])
        pixels = [r["pixels"].get(c.name, 0) for c in classes]
        shapes = [r["shapes"].get(c.name, 0) for c in classes]
        writer.writerow([item.name, "done", r["width"], r["height"], f"{r['seconds']:.2f}", r["kept"], *pixels, *shapes, ""])
    atomic_write_text(out / "predictions.csv", buf.getvalue())
    write_prediction_project(out, images, classes)
