"""``export-qupath``: QuPath annotations -> a dataset folder every later command reads.

Layout (a contract)::

    dataset/classes.json               the class table used
    dataset/manifest.csv               a row per image (see MANIFEST_FIELDS)
    dataset/images/<name>.png          the image, lossless, original bit depth
    dataset/labels/<name>.png          merged label map: uint8 palette PNG, values = labels
    dataset/masks/<name>/<region>.png  binary map (0/255) per region present, after smoothing
    dataset/records/<name>.json        what was done for the image; written last, so its
                                       presence marks the image's outputs complete

The work is in two steps. :func:`~mammotools.export_plan.plan_export` reads every annotation
file in this process and checks everything that can be checked before writing (unknown classes,
missing images, names, earlier outputs), so a mistake stops the run before any file is written.
:func:`~mammotools.export_image.export_image` then does one image (in a worker process with
``workers > 1``); an image that fails there (truncated file, size differing from the project's)
is reported and written nowhere. This module runs the two and owns the dataset folder.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mammotools.classes import ClassTable, default_class_table
from mammotools.errors import InputError
from mammotools.export_plan import MAX_LISTED, ExportSettings, ImageJob, check_settings, plan_export, subject_of
from mammotools.files import atomic_path, atomic_write_bytes, atomic_write_text, remove_stale_temporaries
from mammotools.records import forget, leftovers, read_record
from mammotools.runner import Outcome

__all__ = ["ExportSettings", "ExportSummary", "ImageJob", "export_dataset", "plan_export", "subject_of", "write_manifest"]


@dataclass
class ExportSummary(Outcome):
    """What an export did."""

    not_annotated: list[str] = field(default_factory=list)  # images with no annotation file
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # summed per stage, exported images

    @property
    def exported(self) -> list[str]:
        """Names of the images exported by this run."""
        return self.done


def export_dataset(
    source_path: str | Path,
    out: str | Path,
    images_dir: str | Path | None = None,
    table: ClassTable | None = None,
    settings: ExportSettings | None = None,
    workers: int = 1,
    overwrite: bool = False,
    on_plan: Callable[[int, int], None] | None = None,
    on_image: Callable[[str], None] | None = None,
    reader: str = "auto",
) -> ExportSummary:
    """Export a QuPath project (or GeoJSON exports) to a dataset folder; see module docstring.

    ``on_plan(todo, done)`` is called once the work is known; ``on_image(name)`` after each
    image (for a progress bar).
    """
    from mammotools.export_image import export_image  # cv2 etc. only when working
    from mammotools.runner import run_tracked

    start = time.perf_counter()
    table = table or default_class_table()
    settings = settings or ExportSettings()
    check_settings(settings)
    out = Path(out)
    if (out / "settings.json").is_file():  # before planning, whose advice would not fit such a folder
        raise InputError(f"{out}: a crop or augmented dataset, not an export-qupath dataset; choose another --out")
    todo, done, summary = plan_export(
        Path(source_path), out, Path(images_dir) if images_dir else None, table, settings, overwrite, reader
    )
    if on_plan:
        on_plan(len(todo), len(done))
    _prepare_out(out, table, overwrite)
    summary.skipped = [j.name for j in done]

    def add_result(record: dict) -> None:
        for k, v in record["timings"].items():
            summary.timings[k] = summary.timings.get(k, 0.0) + v
        summary.warnings.extend(f"{record['name']}: {w}" for w in record["image_warnings"])

    args = (out, table, settings)
    current = {j.name for j in todo} | {j.name for j in done} | {name for name, _ in summary.failed}
    try:
        run_tracked(export_image, todo, args, workers, summary, lambda job: job.name, on_image, add_result)
        summary.warnings.extend(_leftovers(out, current, overwrite))
    finally:  # also after Ctrl-C: the manifest lists what is complete
        write_manifest(out, table, current)
    summary.seconds = time.perf_counter() - start
    return summary


def _prepare_out(out: Path, table: ClassTable, overwrite: bool) -> None:
    """Create the dataset folder; refuse to mix class tables or to write into a foreign folder."""
    classes_file = out / "classes.json"
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; choose another --out")
    if (out / "settings.json").is_file():
        raise InputError(f"{out}: a crop or augmented dataset, not an export-qupath dataset; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not classes_file.is_file():
        raise InputError(f"{out}: folder is not empty and is not a mammotools dataset; choose an empty or new --out")
    if classes_file.is_file():
        try:
            same = json.loads(classes_file.read_text("utf-8")) == json.loads(table.to_json())
        except ValueError:
            same = False
        if not same and not overwrite:
            raise InputError(
                f"{classes_file}: this dataset was made with another class table; pass --overwrite "
                "to rebuild it with the new one, or choose another --out"
            )
        if not same:  # rebuilding with another table: earlier outputs no longer mean anything
            for sub in ("images", "labels", "masks", "records"):
                shutil.rmtree(out / sub, ignore_errors=True)
    for sub in ("images", "labels", "masks", "records"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out)
    atomic_write_text(classes_file, table.to_json())


MANIFEST_FIELDS = ["name", "subject", "width", "height", "source", "annotations", "entry_id"]


def export_files(out: Path, record: dict) -> list[Path]:
    """The files and folder an export record stands for."""
    name = record.get("name", "")
    if not name or "/" in name or name in (".", ".."):
        return []
    return [out / "images" / f"{name}.png", out / "labels" / f"{name}.png", out / "masks" / name]


def _leftovers(out: Path, current: set[str], overwrite: bool) -> list[str]:
    """Outputs of images no longer in the input: removed with ``overwrite``, else reported."""
    old = leftovers(out, current)
    if not old:
        return []
    if overwrite:
        for name in old:
            forget(out, name, export_files, fallback={"name": name})
        return [f"removed the outputs of {len(old)} image(s) no longer in the input: {', '.join(old[:MAX_LISTED])}"]
    listed = ", ".join(old[:MAX_LISTED]) + (" ..." if len(old) > MAX_LISTED else "")
    return [
        f"{len(old)} image(s) exported earlier are no longer in the input ({listed}): left out of the manifest; "
        "their files stay until a run with --overwrite"
    ]


def write_manifest(out: Path, table: ClassTable, names: set[str] | None = None) -> Path:
    """Write ``manifest.csv`` from the complete image records (of ``names`` if given); return its path.

    Columns: MANIFEST_FIELDS, then ``pixels_<class slug>`` for each class (pixels of the merged
    label map), then ``overlaps``: ``A|B=n`` pairs joined by ``;`` (pixels both binary maps
    covered before merging; empty when no regions overlapped).
    """
    records = []
    for path in sorted((out / "records").glob("*.json")):
        record = read_record(out, path.stem) if names is None or path.stem in names else None
        if record is not None:
            records.append(record)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(MANIFEST_FIELDS + [f"pixels_{c.slug}" for c in table] + ["overlaps"])
    for r in records:
        overlaps = ";".join(f"{o['regions'][0]}|{o['regions'][1]}={o['pixels']}" for o in r.get("overlaps", []))
        pixels = r.get("pixels", {})
        writer.writerow([r.get(k, "") for k in MANIFEST_FIELDS] + [pixels.get(c.name, 0) for c in table] + [overlaps])
    target = out / "manifest.csv"
    atomic_write_bytes(target, buf.getvalue().encode("utf-8"))
    return target


def write_masks_folder(folder: Path, masks: dict[str, bytes]) -> None:
    """Write a region-name -> PNG bytes dict as ``folder/<region>.png``, the folder atomically."""
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for slug, data in masks.items():
            (tmp / f"{slug}.png").write_bytes(data)
