"""``inspect``: what a project, a folder of exports or one export holds, without the images.

The report is plain data (what ``--json`` prints)::

    {"qupath_version": "0.6.0" | null, "source": "project" | "folder" | "file", "path": ...,
     "unknown_classes": [...], "error": null | "why no image has annotations to read",
     "images": [{"name", "entry_id", "width", "height", "annotation_file",
                 "annotation_counts": {CLASS: N}, "other_objects": {TYPE: N}, "predicted": {"untouched": N, "edited": N},
                 "unknown_classes": [...], "problems": [...], "unreadable": bool}]}

Annotation counts are keyed by the full QuPath class name (``"Tumor: Positive"`` stays as is),
unclassified annotations under ``"Unclassified"``, as QuPath's own ``summary.json`` does.
Detections, cells and other non-annotation objects are counted apart in ``other_objects``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from mammotools.annotations import prediction_state, repair_geometry
from mammotools.classes import ClassTable, default_class_table
from mammotools.errors import MammoError
from mammotools.qupath.entries import SourceImage
from mammotools.qupath.source import nothing_to_read, open_source, read_annotations

UNCLASSIFIED = "Unclassified"


def inspect_source(path: str | Path, table: ClassTable | None = None, reader: str = "auto") -> dict:
    """Report on ``path`` (see module docstring); raises only if ``path`` cannot be opened."""
    table = table or default_class_table()
    source = open_source(path, reader)
    images = []
    all_unknown: set[str] = set()
    for image in source.images:
        counts: Counter[str] = Counter()
        others: Counter[str] = Counter()
        predicted: Counter[str] = Counter()
        problems = list(image.problems)
        unreadable = False
        try:
            objects = read_annotations(image)
        except MammoError as exc:
            problems.append(str(exc))
            objects, unreadable = [], True
        for ann in objects:
            if not ann.is_annotation:
                others[ann.object_type] += 1
                continue
            counts[ann.class_name or UNCLASSIFIED] += 1
            state = prediction_state(ann.name, ann.geometry, ann.class_name)
            if state:
                predicted[state] += 1
            repair_geometry(ann)
            problems.extend(f"{ann.describe()}: {p}" for p in ann.problems)
            if image.width and image.height and not ann.geometry.is_empty:
                minx, miny, maxx, maxy = ann.geometry.bounds
                if minx < 0 or miny < 0 or maxx > image.width or maxy > image.height:
                    problems.append(f"{ann.describe()}: extends outside the {image.width}x{image.height} image")
        problems.extend(_summary_mismatch(image, counts))
        unknown = sorted(c for c in counts if c != UNCLASSIFIED and table.find(c) is None)
        all_unknown.update(unknown)
        images.append(
            {
                "name": image.name,
                "entry_id": image.entry_id,
                "width": image.width,
                "height": image.height,
                "annotation_file": str(image.annotation_path) if image.annotation_path else None,
                "reader": image.reader,
                "annotation_counts": dict(sorted(counts.items())),
                "other_objects": dict(sorted(others.items())),
                "predicted": {"untouched": predicted["untouched"], "edited": predicted["edited"]},
                "unknown_classes": unknown,
                "problems": problems,
                "unreadable": unreadable,
            }
        )
    return {
        "qupath_version": source.qupath_version,
        "source": source.kind,
        "path": str(source.path),
        "unknown_classes": sorted(all_unknown),
        "error": nothing_to_read(source, reader),
        "images": images,
    }


def _summary_mismatch(image: SourceImage, counts: Counter[str]) -> list[str]:
    """A problem when QuPath's own summary.json (beside a data.qpdata) counts otherwise."""
    if image.reader != "qpdata" or image.annotation_path is None:
        return []
    summary = image.annotation_path.parent / "summary.json"
    try:
        expected = json.loads(summary.read_text("utf-8"))["hierarchy"]["annotationClassificationCounts"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    if {k: v for k, v in expected.items() if v} == dict(counts):
        return []
    return [
        f"annotation counts differ from QuPath's own count in {summary} ({expected}): the file may be damaged, "
        "or misread; cross-check with --reader paquo or a GeoJSON export"
    ]


def format_report(report: dict) -> str:
    """The report as text for people."""
    lines = [
        f"{report['path']}: {report['source']}"
        + (f", QuPath {report['qupath_version']}" if report["qupath_version"] else "")
        + f", {len(report['images'])} image(s)"
    ]
    totals: Counter[str] = Counter()
    for img in report["images"]:
        size = f"{img['width']}x{img['height']}" if img["width"] else "size unknown"
        n = sum(img["annotation_counts"].values())
        lines.append(f"  {img['name']} ({size}): {n} annotation(s)")
        for cls, count in img["annotation_counts"].items():
            mark = "  (unknown class)" if cls in img["unknown_classes"] else ""
            lines.append(f"      {count:6d}  {cls}{mark}")
            totals[cls] += count
        marked = img.get("predicted", {})
        if sum(marked.values()):
            lines.append(
                f"      of which predicted by mammotools: {marked['untouched']} untouched, {marked['edited']} edited in review"
            )
        for kind, count in img["other_objects"].items():
            lines.append(f"      {count:6d}  {kind} object(s), not annotations: ignored")
        for p in img["problems"]:
            lines.append(f"      problem: {p}")
    if report["unknown_classes"]:
        lines.append(
            "Classes unknown to the class table: "
            + ", ".join(report["unknown_classes"])
            + " (export-qupath needs --map CLASS=KNOWN, --ignore CLASS or --classes FILE)"
        )
    n_problems = sum(len(i["problems"]) for i in report["images"])
    lines.append(f"Total: {sum(totals.values())} annotation(s), {n_problems} problem(s)")
    if report.get("error"):
        lines.append(f"Error: {report['error']}")
    return "\n".join(lines)
